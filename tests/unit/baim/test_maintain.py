"""BAIM after deployment: local fine-tuning, continual learning with replay, few-shot, pruning (hil.baim.maintain).

One tiny deployed system (seed 0: 4 nodes, 2 tasks, one digit class per node, few epochs) is built once
for the module; every check below is deterministic for that seed.
"""

import dataclasses

import pytest
import torch

from hil.baim.config import load_baim_config
from hil.baim.data import N_CLASSES
from hil.baim.maintain import (MaintainConfig, build_deployed, draw_shots, load_maintain_config, prune_big,
                               prune_experts, size_of, study_continual, study_fewshot, study_finetune)
from hil.errors import ConfigError

TINY = dict(n_nodes=4, n_tasks=2, classes_per_node=1, widths=(12, 16), depths=(1, 2), edge_epochs=5,
            cloud_epochs=3, gate_warmup_epochs=1, prune_epoch=3, keep_fraction=1.0)
MCFG = MaintainConfig(seeds=(0,), finetune_epochs=15, absorb_epochs=6, replay_per_task=10, shots=(1,),
                      fewshot_epochs=3, prune_ratios=(0.0, 0.5))


@pytest.fixture(scope="module")
def deployed():
    torch.set_num_threads(1)
    return build_deployed(load_baim_config(None, **TINY), MCFG, seed=0)


def test_finetune_improves_on_the_nodes_new_data(deployed):
    r = study_finetune(deployed, MCFG)
    # NELBO on held-out test images of each node's own classes, mean over nodes (nats/image); the
    # learners are under-trained on purpose, so 15 epochs on the new data must gain at least 0.5 nats
    assert r["deployed_local_after"] < r["deployed_local_before"] - 0.5
    assert r["edge_local_after"] < r["edge_local_before"] - 0.5


def test_replay_reduces_forgetting(deployed):
    r = study_continual(deployed, MCFG)
    assert r["before"]["old_route_acc"] == 1.0  # one old task: the 1-output TSGate routes every image to it
    assert r["replay"]["forgetting_route_acc"] < r["no_replay"]["forgetting_route_acc"]
    assert r["no_replay"]["forgetting_route_acc"] > 0.2  # without replay the gate sends old images to the new task
    assert r["replay"]["old_route_acc"] > r["no_replay"]["old_route_acc"]


def test_fewshot_k1_uses_exactly_k_per_class(deployed):
    for k in (1, 3):
        x, y = draw_shots(deployed, k)
        counts = torch.bincount(y, minlength=N_CLASSES)
        new_classes = [c for c in range(N_CLASSES) if c // (N_CLASSES // 2) == deployed.new_task]
        assert counts[new_classes].tolist() == [k] * len(new_classes)
        assert int(counts.sum()) == k * len(new_classes) == len(x)
    r = study_fewshot(deployed, MCFG, 1)
    assert r["n_shots"] == 5 and r["shots_per_class"][5:] == [1] * 5
    for key in ("baim_before", "baim_after", "edge_before", "edge_after"):
        assert torch.isfinite(torch.tensor(r[key])), key


def test_pruning_ratio_zero_is_exact_and_size_falls(deployed):
    big = deployed.big_all
    x, y = deployed.data.x_test, deployed.data.y_test
    t_cloud = deployed.task_of(deployed.data.y_cloud)
    with torch.no_grad():
        ref, _ = big.reconstruct(x)
        for what in ("projections", "experts", "both"):
            p0 = prune_big(big, 0.0, what, deployed.data.x_cloud, t_cloud)
            assert torch.equal(p0.reconstruct(x)[0], ref), what
        assert big.n_projections() >= 4
        for what, ratios in (("projections", (0.0, 0.4, 0.8)), ("experts", (0.0, 0.5)), ("both", (0.0, 0.5))):
            sizes = [size_of(prune_big(big, r, what, deployed.data.x_cloud, t_cloud)) for r in ratios]
            for a, b in zip(sizes, sizes[1:]):
                assert a["params"] > b["params"] and a["bytes"] > b["bytes"], (what, sizes)
        # negative control: real pruning changes what the model computes
        assert not torch.equal(prune_big(big, 0.5, "both", deployed.data.x_cloud, t_cloud).reconstruct(x)[0], ref)
    assert y.numel() == x.shape[0]


def test_prune_experts_keeps_the_most_used_learners(deployed):
    squad = deployed.big_all.squads[0]
    x = deployed.data.x_cloud[deployed.task_of(deployed.data.y_cloud) == 0]
    with torch.no_grad():
        w = squad.gate(x).mean(0)
    pruned = prune_experts(squad, 0.5, x)
    assert pruned.n == squad.n - 1
    kept_spec = [s for l, s in enumerate(squad.specs) if l != int(w.argmin())]
    assert pruned.specs == kept_spec
    with pytest.raises(ValueError, match="ratio"):
        prune_experts(squad, 1.0, x)


def test_maintain_config_validation(tmp_path):
    cfg, m = load_maintain_config(None)
    assert len(m.seeds) >= 3 and m.shots == (1, 5, 10) and cfg.n_tasks >= 2
    with pytest.raises(ConfigError, match="prune_ratios"):
        dataclasses.replace(m, prune_ratios=(1.0,))
    bad = tmp_path / "m.toml"
    bad.write_text("[baim]\nn_nodes = 4\n[maintain]\nsedes = [0]\n")
    with pytest.raises(ConfigError, match="sedes"):
        load_maintain_config(bad)
    bad.write_text("n_nodes = 4\n")
    with pytest.raises(ConfigError, match=r"\[baim\]"):
        load_maintain_config(bad)


def test_cli_baim_maintain_writes_tables_with_intervals(tmp_path):
    import json

    from typer.testing import CliRunner

    from hil.cli import app

    cfg = tmp_path / "m.toml"
    cfg.write_text("[baim]\n" + "".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}\n"
                                         for k, v in TINY.items())
                   + "[maintain]\nfinetune_epochs = 2\nabsorb_epochs = 2\nshots = [1, 2]\nfewshot_epochs = 2\n"
                     "prune_ratios = [0.0, 0.5]\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["baim-maintain", "--config", str(cfg), "--out", str(out), "--seeds", "0,1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert [s["fewshot"]["2"]["n_shots"] for s in rep["per_seed"]] == [10, 10]
    ci = rep["summary"]["finetune"]["deployed_local_after"]
    assert ci["n"] == 2 and ci["ci95"][0] <= ci["mean"] <= ci["ci95"][1]
    md = (out / "report.md").read_text()
    for title in ("Local fine-tuning", "Continual learning", "Few-shot", "Pruning"):
        assert title in md
    bad = CliRunner().invoke(app, ["baim-maintain", "--config", str(cfg), "--out", str(out), "--seeds", "a"])
    assert bad.exit_code == 2 and "comma-separated integers" in bad.output


def test_maintenance_on_node_objects_equals_the_in_process_run(tmp_path):
    """``--cluster none``: edge learners trained and per-task models fine-tuned inside the edge node objects,
    each on its own data; every study's numbers equal the in-process run's bit for bit (same seed, one thread)."""
    import json

    from hil.baim.maintain import run_maintenance
    from hil.baim.wire import pack_state
    from hil.cluster.baim import MaintainEdge, run_maintenance_on

    torch.set_num_threads(1)
    cfg = load_baim_config(None, **TINY)
    mcfg = dataclasses.replace(MCFG, finetune_epochs=3, absorb_epochs=2, prune_ratios=(0.5,))
    ref = run_maintenance(cfg, mcfg)
    got = run_maintenance_on(cfg, mcfg, tmp_path, "none")
    assert json.dumps(got["per_seed"]) == json.dumps(ref["per_seed"])
    d = build_deployed(cfg, mcfg, seed=0)
    edges = got["nodes"]["seeds"][0]["edges"]
    for n in range(cfg.n_nodes):
        e = edges[f"node{n}"]
        assert e["task"] == d.data.node_task[n] and e["n_new"] == len(d.x_new[n])
        assert e["n_init"] + e["n_new"] == len(d.data.x_nodes[n])  # the node's own shard, cut before/after
        assert e["upload_bytes"] == len(pack_state(d.edge[n].state_dict())) and e["finetune_s"] > 0
    new = got["nodes"]["seeds"][0]["new_task_uploads"]
    assert new["messages"] == sum(t == d.new_task for t in d.data.node_task)
    assert "On node actors" in (tmp_path / "report.md").read_text()
    edge = MaintainEdge("node0", 0, cfg, mcfg)
    edge.start(0)
    with pytest.raises(ValueError, match="serves task"):
        edge.finetune(1 - edge.task, [b""], (torch.get_rng_state(), torch.Generator().get_state()))
