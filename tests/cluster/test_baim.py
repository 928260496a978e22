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


def test_maintenance_on_local_ray_finetunes_on_the_edges_and_equals_the_in_process_run(tmp_path):
    """``hil baim-maintain --cluster local``: four edge processes train their learners and fine-tune their deployed
    per-task models on their own new data; all studies equal the in-process run bit for bit (seed 0, one thread)."""
    import dataclasses
    import json

    from hil.baim.maintain import run_maintenance
    from hil.cluster.baim import run_maintenance_on
    from tests.unit.baim.test_maintain import MCFG
    from tests.unit.baim.test_maintain import TINY as MAINTAIN_TINY

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_baim_config(None, **MAINTAIN_TINY)
        mcfg = dataclasses.replace(MCFG, finetune_epochs=3, absorb_epochs=2, prune_ratios=(0.5,))
        ref = run_maintenance(cfg, mcfg)
        got = run_maintenance_on(cfg, mcfg, tmp_path, "local")
    finally:
        torch.set_num_threads(n)
    assert json.dumps(got["per_seed"]) == json.dumps(ref["per_seed"])
    pids = {i["name"]: i["pid"] for i in got["nodes"]["nodes"]}
    assert len(set(pids.values())) == cfg.n_nodes and os.getpid() not in pids.values()
    for e in got["nodes"]["seeds"][0]["edges"].values():  # measured at the receivers, not computed
        assert e["upload_s"] > 0 and e["download_s"] > 0 and e["download_bytes"] > 0
