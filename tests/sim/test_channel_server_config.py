"""Bench files of the channel server: validation messages and the shipped examples (no processes)."""

from __future__ import annotations

import json

import pytest

from hil.errors import ConfigError
from sim_fallback.channel_server import ChannelServer, build_link_models
from sim_fallback.topology import default_config_path, load_topology, two_node_config


def cfg(**over):
    c = two_node_config(None)
    for path, v in over.items():
        obj = c
        *keys, last = path.split("__")
        for k in keys:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        obj[last] = v
    return c


@pytest.mark.parametrize("config, match", [
    (cfg(server__colour="red"), r"^\[server\]\.colour: unknown key; valid: host, transport"),
    (cfg(nodes__1__name="edge"), r"^\[\[nodes\]\] #1\.name: appears twice"),
    (cfg(nodes__0__antennas=0), r"^\[\[nodes\]\] #0\.antennas: out of range \(got 0\); valid: >= 1"),
    (cfg(nodes__0__mode="bursty"), r"^\[\[nodes\]\] #0\.mode: not an allowed value \(got 'bursty'\); valid: one of 'burst', 'stream'"),
    (cfg(nodes__0__pattern="dealer"), r"^\[\[nodes\]\] #0\.pattern: not an allowed value"),
    (cfg(nodes__0__tx_bind=["tcp://127.0.0.1:5000"]), "has 1 endpoint"),
    (cfg(nodes__0__tx_bind=["x", "y"]), "is not a ZMQ endpoint"),
    (cfg(nodes__0__rx_bind=["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"],
         nodes__0__rx_connect=["tcp://127.0.0.1:3", "tcp://127.0.0.1:4"]), r"^\[\[nodes\]\] #0: give either rx_bind or rx_connect"),
    (cfg(links__0__b="ghost"), r"^\[\[links\]\] #0\.b: unknown node \(got 'ghost'\); valid: edge, server"),
    (cfg(links__0__b="edge"), "two different nodes"),
    (cfg(links__0__reverse_channel={"snr_db": 3}), "reverse_channel needs reciprocal = false"),
    (cfg(server__lead_samples=-1), r"^\[server\]\.lead_samples: out of range \(got -1\); valid: >= 0"),
    (cfg(server__transport="udp"), r"^\[server\]\.transport: not an allowed value \(got 'udp'\)"),
    ({"nodes": []}, "at least one"),
    (cfg(server__seed="1"), r"^\[server\]\.seed: must be an integer \(got '1'\)"),
    (cfg(server__hold_s=float("nan")), r"^\[server\]\.hold_s: must be finite"),
    (cfg(nodes__0__antennas=True), r"^\[\[nodes\]\] #0\.antennas: must be an integer \(got True\)"),
    ({"nodes": [{"name": "x"}], "link": []}, r"^\[link\]: unknown section; valid: server, nodes, links"),
    ({"nodes": "x"}, r"^\[\[nodes\]\]: must be a list of tables"),
])
def test_invalid_topologies_name_the_problem(config, match):
    with pytest.raises(ConfigError, match=match):
        load_topology(config)


def test_files_report_their_path_and_syntax_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.* is not valid TOML"):
        load_topology(p)
    with pytest.raises(ConfigError, match=r"missing\.toml.* does not exist"):
        load_topology(tmp_path / "missing.toml")
    q = tmp_path / "t.json"
    q.write_text(json.dumps(cfg(nodes__0__antennas=3)))
    assert load_topology(q).node("edge").antennas == 3


def test_round_trip_through_dict():
    t = load_topology(default_config_path("three_nodes"))
    assert load_topology(json.loads(json.dumps(t.to_dict()))) == t


def test_invalid_channel_spec_is_a_config_error():
    t = load_topology(two_node_config({"fading": "rayleigh", "snr_db": "loud"}))
    with pytest.raises(ConfigError, match="edge<->server: invalid channel spec"):
        ChannelServer(t)


@pytest.mark.parametrize("name", ["edge_server", "stream_1x1", "three_nodes"])
def test_shipped_topologies_build(name):
    t = load_topology(default_config_path(name))
    srv = ChannelServer(t)
    try:
        info = srv.bind()
        assert set(info["nodes"]) == {n.name for n in t.nodes}
        assert all(ep.startswith("tcp://127.0.0.1:") for n in info["nodes"].values() for ep in n["tx"] + n["rx"])
    finally:
        srv.close()


def test_default_topology_is_the_readme_job():
    t = load_topology(default_config_path())
    assert [(n.name, n.antennas) for n in t.nodes] == [("edge", 2), ("server", 2)]
    ch = t.links[0].channel
    assert ch["fading"] == "rayleigh" and ch["snr_db"] == 10.0 and ch["cfo_hz"] > 0 and ch["time"] == "gauss_markov"


def test_fading_none_links_get_negated_offsets_in_reverse():
    import numpy as np

    link = load_topology(two_node_config({"fading": "none", "cfo_hz": 1000.0}, n_a=1, n_b=1)).links[0]
    fwd, rev = build_link_models(link, 1, 1, np.random.default_rng(0), 1e6)
    x = np.ones((1, 1000), np.complex64)
    yf, yr = fwd(x), rev(x)
    # forward rotates by +1 kHz, reverse by -1 kHz: their product is constant
    np.testing.assert_allclose(yf[0] * yr[0], yf[0, 0] * yr[0, 0], atol=1e-4)
    assert abs(np.angle(yf[0, 1] / yf[0, 0]) - 2 * np.pi * 1e-3) < 1e-5
