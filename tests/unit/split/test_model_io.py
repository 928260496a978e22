"""Profiles and topologies: JSON/TOML I/O, validation, and the link cost model."""

import json
import math
from importlib.resources import files

import pytest

from hil.errors import ConfigError
from hil.split.profile import Layer, Profile, chain_profile
from hil.split.topology import Link, Node, Topology, shannon_bytes_per_s

EXAMPLES = files("hil.split.examples")


def test_profile_json_round_trip(tmp_path):
    p = Profile((Layer("a", 10, 4, 2), Layer("b", 5, 8, 0, ("a",), latency_s=1e-3), Layer("c", 1, 4, 0, ("a", "b"))),
                64.0, "m")
    p.save(tmp_path / "p.json")
    q = Profile.load(tmp_path / "p.json")
    assert q == p
    assert not q.is_chain()
    assert q.consumers() == [[1, 2], [2], []]
    assert chain_profile([1, 2, 3], [4, 5, 6], 7).is_chain()


def test_profile_rejects_unknown_dep_and_duplicates():
    with pytest.raises(ConfigError, match="'zz'.*not an earlier layer"):
        Profile((Layer("a", 1, 1), Layer("b", 1, 1, 0, ("zz",))), 1.0)
    with pytest.raises(ConfigError, match="appears twice"):
        Profile((Layer("a", 1, 1), Layer("a", 1, 1)), 1.0)
    with pytest.raises(ValueError, match="flops must be a number >= 0"):
        Layer("a", -1, 1)
    with pytest.raises(ConfigError, match="lacks the key 'flops'"):
        Profile.from_dict({"layers": [{"name": "a", "out_bytes": 1}], "input_bytes": 1})


def test_packaged_profiles_load():
    vgg = Profile.load(EXAMPLES / "vgg16.json")
    res = Profile.load(EXAMPLES / "resnet18.json")
    assert vgg.is_chain() and not res.is_chain()
    # torch's count (hil.flops): 15.47 GMAC (torchvision's count) = 30.94 GFLOP; biases, ReLUs, pooling free
    assert 30.94e9 < vgg.total_flops < 30.95e9
    # ResNet-18: 1.814 GMAC = 3.628 GFLOP; 11.69 M parameters of 4 bytes (plus BN running stats)
    assert 3.62e9 < res.total_flops < 3.64e9
    assert 46.7e6 < res.total_params_bytes < 46.9e6


def test_ota_link_channel_uses_follow_2_ntx_real_values_per_use():
    link = Link("a", "b", ota=True, n_tx=2, sample_rate_hz=1e6, overhead=0.25, latency_s=1e-3)
    # 1000 float32 values -> ceil(1000 / 4) = 250 channel uses
    assert link.channel_uses(4000) == 250
    assert link.channel_uses(4004) == 251
    assert link.transfer_s(4000) == pytest.approx(1e-3 + 250 * 1.25 / 1e6)
    assert link.transfer_s(0) == 0.0
    assert link.effective_bytes_per_s == pytest.approx(2 * 2 * 1e6 * 4 / 1.25)


def test_shannon_rate_with_gap():
    # 20 dB SNR, 3 dB gap -> log2(1 + 10**1.7) bits per Hz
    assert shannon_bytes_per_s(20.0, 1e6) == pytest.approx(1e6 * math.log2(1 + 10**1.7) / 8)
    assert shannon_bytes_per_s(20.0, 1e6, gap_db=0.0, n_streams=2) == pytest.approx(2e6 * math.log2(101) / 8)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        shannon_bytes_per_s(10, 0)


def test_bench_toml_with_extra_keys_and_measured_snr():
    topo = Topology.load(EXAMPLES / "bench.toml")
    assert topo.names == ("pluto_a", "pluto_b", "server")
    assert topo.nodes[0].source and topo.nodes[0].flops_per_s == 10e9 and topo.nodes[0].mem_bytes == 0.5e9
    ota, digital = topo.links
    assert ota.ota and ota.n_tx == 2 and (ota.a, ota.b) == ("pluto_a", "pluto_b")
    assert digital.bytes_per_s == pytest.approx(shannon_bytes_per_s(15.0, 20e6))


def test_topology_json_round_trip_and_routes(tmp_path):
    topo = Topology((Node("s", 1e9, source=True), Node("m", 1e10), Node("f", 1e11)),
                    (Link("s", "m", bytes_per_s=1e6, latency_s=0.01), Link("m", "f", bytes_per_s=1e5)))
    topo.save(tmp_path / "t.json")
    assert Topology.load(tmp_path / "t.json") == topo
    cost, time, _ = topo.route_costs(1e5)
    # s -> f goes through m: 0.01 + 0.1 + 1.0 s
    assert time[0, 2] == pytest.approx(1.11)
    assert cost[2, 0] == pytest.approx(1.11)


def test_topology_validation_messages(tmp_path):
    with pytest.raises(ConfigError, match="exactly one node must have source"):
        Topology((Node("a", 1, source=True), Node("b", 1, source=True)))
    with pytest.raises(ConfigError, match="names node 'x'"):
        Topology((Node("a", 1, source=True),), (Link("a", "x", bytes_per_s=1),))
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"nodes": [{"name": "a", "flops_per_s": 1, "source": True}, {"name": "b", "gflops": 1}],
                               "links": [{"a": "a", "b": "b"}]}))
    with pytest.raises(ConfigError, match="has no rate"):
        Topology.load(bad)
    with pytest.raises(ValueError, match="flops_per_s must be > 0"):
        Node("a", 0)


def test_trace_counts_flops_and_measures_latency():
    """A conv 1->4 (3x3, bias) on 8x8 then a linear 256->10: FLOPs by hil.flops [Note: FLOP counts]."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from hil.split.plan import Problem
    from hil.split.trace import profile_model

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))

    prof, _ = profile_model(Tiny(), (1, 1, 8, 8), measure=True, repeats=2)
    by = {l.name: l for l in prof.layers}
    assert [l.name for l in prof.layers] == ["conv", "relu", "flatten", "fc"]
    # multiply-adds count 2, the bias and the ReLU count 0
    assert by["conv"].flops == 2 * 256 * 9 and by["conv"].params_bytes == (36 + 4) * 4
    assert by["relu"].flops == 0 and by["flatten"].flops == 0 and by["relu"].deps == ("conv",)
    assert by["fc"].flops == 2 * 10 * 256 and by["fc"].out_bytes == 40
    assert prof.input_bytes == 256 and prof.is_chain()
    assert all(l.latency_s is not None and l.latency_s > 0 for l in prof.layers)
    topo = Topology((Node("here", 1e9, source=True, use_measured=True), Node("far", 1e9)),
                    (Link("here", "far", bytes_per_s=1e6),))
    cm = Problem(prof, topo).costs()
    assert cm.comp_time[0, 0] == by["conv"].latency_s and cm.comp_time[0, 1] == by["conv"].flops / 1e9


def test_placement_file_overlays_a_channel_server_topology(tmp_path):
    """A bench file in the channel server's style (antennas, channel tables, [server]) plus a placement
    overlay naming it: radio links become OTA links with n_tx = antennas of end a, fs = [server]."""
    (tmp_path / "bench.toml").write_text('''
[server]
sample_rate_hz = 2e6
seed = 3
[[nodes]]
name = "edge"
antennas = 2
[[nodes]]
name = "server"
antennas = 4
[[links]]
a = "edge"
b = "server"
channel = { fading = "rician", snr_db = 15.0 }
''')
    (tmp_path / "place.toml").write_text('''
bench = "bench.toml"
[[nodes]]
name = "edge"
gflops = 10
source = true
[[nodes]]
name = "server"
tflops = 1
mem_gb = 2
''')
    topo = Topology.load(tmp_path / "place.toml")
    assert topo.names == ("edge", "server") and topo.nodes[0].source and topo.nodes[1].mem_bytes == 2e9
    (link,) = topo.links
    assert link.ota and link.n_tx == 2 and link.sample_rate_hz == 2e6
    # a digital override: the placement file turns the radio link into a Shannon-rate link
    (tmp_path / "digital.toml").write_text('''
bench = "bench.toml"
[[nodes]]
name = "edge"
gflops = 10
source = true
[[nodes]]
name = "server"
tflops = 1
[[links]]
a = "edge"
b = "server"
ota = false
bandwidth_hz = 1e6
''')
    (link,) = Topology.load(tmp_path / "digital.toml").links
    assert not link.ota and link.bytes_per_s == pytest.approx(shannon_bytes_per_s(15.0, 1e6))
    with pytest.raises(ConfigError, match="no compute speed"):
        Topology.load(tmp_path / "bench.toml")
