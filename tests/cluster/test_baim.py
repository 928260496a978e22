"""BAIM on a private local Ray instance: three edge nodes and a cloud node, each its own process; the
result equals the single-process run_baim bit for bit (same seed, one torch thread)."""

import os

import pytest
import torch

from hil.baim.config import load_baim_config
from hil.baim.experiment import run_baim
from hil.cluster.baim import run_baim_on
from tests.unit.baim.test_nodes import TINY, comparable

pytest.importorskip("ray")
pytestmark = pytest.mark.cluster


def test_baim_on_local_ray_equals_the_single_process_run(tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_baim_config(None, **TINY)
        ref = run_baim(cfg, tmp_path / "ref", resume=False)
        got = run_baim_on(cfg, tmp_path / "local", "local", resume=False)
    finally:
        torch.set_num_threads(n)
    assert comparable(got) == comparable(ref)
    for s in cfg.strategies:
        a, b = torch.load(tmp_path / "ref" / f"big_{s}.pt"), torch.load(tmp_path / "local" / f"big_{s}.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), s
    nodes = got["nodes"]
    pids = {i["name"]: i["pid"] for i in nodes["nodes"]}
    assert set(pids) == {"node0", "node1", "node2", "cloud"}
    assert len(set(pids.values())) == 4 and os.getpid() not in pids.values()  # each node its own process
    for s, v in nodes["strategies"].items():
        assert v["links"]["up"]["bytes"] == ref["strategies"][s]["upload_bytes"]
        assert v["links"]["up"]["seconds"] > 0 and v["links"]["down"]["seconds"] > 0  # measured, not computed
        assert set(v["deployed"]) == {"node0", "node1", "node2"}
    assert nodes["fedavg_links"]["up"]["bytes"] == ref["strategies"]["fedavg"]["upload_bytes"]
