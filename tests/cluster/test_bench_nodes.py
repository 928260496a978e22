"""hil run --bench: the placement engine places the digits split on the three nodes of a bench file (device ->
edge over the air, edge -> cloud digital), each node its own actor process; training, then inference alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from hil.cluster.run import run_split
from hil.train.config import load_config

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

BENCH = Path(__file__).resolve().parents[2] / "hil" / "split" / "examples" / "bench_offload.toml"


@pytest.fixture
def ray_bench():
    """One private Ray instance on 127.0.0.1 advertising the bench's nodes, for the training and the inference run."""
    from hil.cluster.driver import resource_name
    from hil.cluster.raylet import keep_loopback
    from hil.split.topology import Topology

    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    keep_loopback()
    ray.init(address="local", num_cpus=2, resources={resource_name(n): 1 for n in Topology.load(BENCH).names},
             include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield
    ray.shutdown()


def test_three_node_bench_places_trains_and_infers(ray_bench, tmp_path):
    cfg = load_config("digits_mlp").replace(train={"epochs": 1, "digital": False}, ota={"transport": "ideal"},
                                            data={"limit_train": 256, "limit_test": 128})
    ref = run_split(cfg, tmp_path / "none", cluster="none", max_steps=3, write=False, bench=BENCH)
    got = run_split(cfg, tmp_path / "local", cluster="local", max_steps=3, bench=BENCH)
    # the plan: the cut where the config puts it, the output layer sent on to the fast server
    stages = got["plan"]["stages"]
    assert list(stages) == ["pluto_a", "pluto_b", "server"]
    assert stages["pluto_a"] == ["edge", "cut.precoder"] and stages["pluto_b"][0] == "cut.combiner"
    assert got["plan"]["assignment"]["server.1"] == "server"
    # one actor process per node, none of them this process
    pids = {n["name"]: n["pid"] for n in got["nodes"]}
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()
    assert {n["name"]: n["layers"] for n in got["nodes"]} == stages
    assert [n["name"] for n in got["nodes"] if n["radios"]] == ["pluto_b"]  # ideal: the link in the receiver
    # the same numbers as in one process
    for node, ws in ref["weights"].items():
        assert ws, node
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k} differs between local and none"
    # latency: predicted and measured per request, per stage and per link
    lat = got["latency"]
    n_req = -(-128 // cfg.train.batch_size)
    assert lat["measured_s"]["request"]["n"] == n_req
    assert set(lat["measured_s"]["stages"]) == set(lat["predicted_s"]["stages"]) == set(stages)
    assert set(lat["measured_s"]["links"]) == set(lat["predicted_s"]["links"]) == {"pluto_a->pluto_b", "pluto_b->server"}
    for st in list(lat["measured_s"]["stages"].values()) + list(lat["measured_s"]["links"].values()):
        assert st["n"] == n_req and 0 < st["median"] <= st["p95"]
    assert lat["predicted_s"]["request"] == pytest.approx(got["plan"]["predicted_latency_s"])
    on_disk = json.loads((tmp_path / "local" / "report.json").read_text())
    assert on_disk["nodes"][0]["ray_node_id"] and (tmp_path / "local" / "plan.png").is_file()
    # inference alone on the trained run: the checkpointed weights, no training step
    inf = run_split(cfg, tmp_path / "local", cluster="local", bench=BENCH, infer=True)
    assert inf["infer"] and inf["steps"] == got["steps"] == 3
    for node, ws in got["weights"].items():
        for k, v in ws.items():
            assert torch.equal(v, inf["weights"][node][k]), f"{node}: {k} not the checkpoint's"
    assert inf["latency"]["measured_s"]["request"]["n"] == n_req


def test_three_node_bench_over_a_split_zmq_link_with_microbatches(ray_bench, tmp_path):
    """The cut over the channel server, each end opened by its own node (pluto_a transmits, pluto_b receives and
    sends the echo from the middle of the chain): 2 steps of 2 micro-batches (each armed, sent and received in
    turn) give the same weights in three actor processes as in one process, over the same bursts."""
    cfg = load_config("digits_mlp").replace(train={"epochs": 1, "digital": False}, ota={"transport": "zmq"},
                                            data={"limit_train": 192, "limit_test": 64})
    kw = dict(max_steps=2, write=False, microbatches=2, bench=BENCH)
    ref = run_split(cfg, tmp_path / "none", cluster="none", **kw)
    got = run_split(cfg, tmp_path / "local", cluster="local", **kw)
    assert {n["name"]: n["air"] for n in got["nodes"]} == {"pluto_a": "tx", "pluto_b": "rx", "server": None}
    assert len({n["pid"] for n in got["nodes"]}) == 3
    assert got["frames"] == ref["frames"] == 8 + 2 * 2 * 2 + 2  # pilots, (forward + echo) x 2 x 2, 2 evaluations
    for node, ws in ref["weights"].items():
        for k, v in ws.items():
            assert torch.equal(v, got["weights"][node][k]), f"{node}: {k} differs between local and none"
