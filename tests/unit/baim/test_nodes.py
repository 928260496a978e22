"""BAIM's edges and cloud as node objects (hil.cluster.baim, ``--cluster none``): the same numbers as the
single-process run_baim, bit for bit (same seed, same thread count); the pieces on their own."""

import json

import pytest
import torch

from hil.baim.config import QUICK_OVERRIDES, load_baim_config
from hil.baim.experiment import run_baim
from hil.cluster.baim import BaimEdge, node_names, run_baim_on
from hil.cluster.driver import Cluster

# the quick config cut to seconds: 3 edge nodes, few epochs, 2 FedAvg rounds at least
TINY = {**QUICK_OVERRIDES, "n_nodes": 3, "edge_epochs": 3, "cloud_epochs": 2, "prune_epoch": 1,
        "gate_warmup_epochs": 1, "fedavg_rounds": 2, "fedavg_patience": 1, "fedavg_max_rounds": 3,
        "n_fd_samples": 64, "classifier_epochs": 2}


def comparable(report: dict) -> dict:
    """The report without wall-clock fields (elapsed time, solver time) and the nodes section."""
    r = json.loads(json.dumps(report))
    r.pop("elapsed_s")
    r.pop("nodes")
    for s in r["placement"].values():
        for t in s.values():
            t.get("plan", {}).pop("solve_time_s", None)
    return r


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cluster_none_equals_the_single_process_run(tmp_path, one_thread):
    cfg = load_baim_config(None, **TINY)
    ref = run_baim(cfg, tmp_path / "ref", resume=False)
    got = run_baim_on(cfg, tmp_path / "none", "none", resume=False)
    assert comparable(got) == comparable(ref)
    for s in cfg.strategies:
        a, b = torch.load(tmp_path / "ref" / f"big_{s}.pt"), torch.load(tmp_path / "none" / f"big_{s}.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), s
    nodes = got["nodes"]
    assert nodes["mode"] == "none" and [i["name"] for i in nodes["nodes"]] == list(node_names(3))
    for s, v in nodes["strategies"].items():  # what crossed the links is what run_baim metered
        assert v["links"]["up"]["bytes"] == ref["strategies"][s]["upload_bytes"]
        assert v["links"]["down"]["bytes"] == ref["strategies"][s]["download_bytes"]
        assert set(v["deployed"]) == {"node0", "node1", "node2"}
        assert all(d["n_local_test"] > 0 and d["local_test_nelbo"] > 0 for d in v["deployed"].values())
    assert nodes["fedavg_links"]["up"]["bytes"] == ref["strategies"]["fedavg"]["upload_bytes"]
    assert "## On node actors" in (tmp_path / "none" / "report.md").read_text()


def test_an_edge_holds_only_its_shard_and_serves_only_its_task():
    cfg = load_baim_config(None, **TINY)
    from hil.baim.experiment import seeded_split

    data = seeded_split(cfg)[3]
    with Cluster("none", node_names(3)) as cl:
        h = cl.spawn_actor("node1", BaimEdge, "node1", 1, cfg.to_dict())
        info = cl.deploy()[0]
        assert info["role"] == "edge" and info["n_images"] == len(data.x_nodes[1]) and info["task"] == data.node_task[1]
        assert torch.equal(h.target.x, data.x_nodes[1])
        with pytest.raises(ValueError, match="serves task"):
            h.target.install(1 - info["task"], [b""], torch.get_rng_state(), 0)
        with pytest.raises(RuntimeError, match="train first"):
            h.target.upload("fine-tune")
