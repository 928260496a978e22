"""End to end: ``hil baim --quick`` writes the report folder and its promises hold (measured)."""

import json

from typer.testing import CliRunner

from hil.cli import app


def test_hil_baim_quick_writes_report_and_meets_traffic_and_exactness(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["baim", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("report.json", "report.md", "config.toml", "baim_convergence.png", "baim_accounting.png",
                 "baim_samples.png"):
        assert (out / name).stat().st_size > 0, name
    rep = json.loads((out / "report.json").read_text())
    ms = rep["must_show"]
    assert ms["per_task_exact"] is True
    s = rep["strategies"]
    cfg, d = rep["config"], rep["data"]
    fed = s["fedavg"]
    # FedAvg's rounds, checked from the data sizes: at least BAIM's per-sample gradient budget
    # (edge epochs x the edges' images + cloud epochs x the cloud set) at local epochs x all clients'
    # images per round, and at least fedavg_rounds; at most fedavg_max_rounds
    n_edge = sum(d["n_per_node"])
    budget = cfg["edge_epochs"] * n_edge + cfg["cloud_epochs"] * d["n_cloud"]
    per_round = cfg["fedavg_local_epochs"] * (n_edge + d["n_cloud"])
    assert fed["budget_samples"] == budget
    assert fed["min_rounds"] == max(cfg["fedavg_rounds"], -(-budget // per_round))
    assert fed["min_rounds"] <= fed["cloud_epochs_or_rounds"] <= cfg["fedavg_max_rounds"]
    assert fed["steps_per_point"][-1] == fed["cloud_epochs_or_rounds"] * per_round
    # uploads, from the wire format independently: every round each node sends one packed model
    from hil.baim.learners import LearnerSpec, VaeLearner
    from hil.baim.wire import pack_state

    blob = len(pack_state(VaeLearner(LearnerSpec(tuple(cfg["fedavg_widths"]), cfg["latent_dim"])).state_dict()))
    assert fed["upload_bytes"] == fed["download_bytes"] == fed["cloud_epochs_or_rounds"] * cfg["n_nodes"] * blob
    for name, at in ms["fedavg_upload_at_strategy_fd"].items():
        if at["round"] is not None:  # the first round whose FD is as good as the strategy's, and its bytes
            assert fed["fd_per_epoch"][at["round"]] <= s[name]["final_fd"]
            assert all(f > s[name]["final_fd"] for f in fed["fd_per_epoch"][: at["round"]])
            assert at["upload_bytes"] == at["round"] * cfg["n_nodes"] * blob
        else:
            assert min(fed["fd_per_epoch"]) > s[name]["final_fd"]
    assert all(r >= 10 for r in ms["fedavg_upload_ratio"].values()), ms["fedavg_upload_ratio"]
    # the central references ran and are in the report with their step axes
    for ref in ("central-small", "central-big"):
        assert len(s[ref]["fd_per_epoch"]) == len(s[ref]["steps_per_point"]) >= 2
    # measured FLOPs: freezing the learners skips their weight gradients, so the cloud does less work
    assert 0 < s["freeze"]["cloud_flops_per_epoch"] < s["fine-tune"]["cloud_flops_per_epoch"]
    assert all(len(v["fd_per_epoch"]) >= 2 for v in s.values())
    assert "NOT Inception FID" in (out / "report.md").read_text()
    # placement: hil.split is part of this package, so every task gets a plan that places every layer
    # of the written profile (only an ImportError of hil.split may turn into a note)
    assert rep["placement"]["fine-tune"], rep["placement"]
    for t, entry in rep["placement"]["fine-tune"].items():
        assert entry["placed"] is True, entry
        prof = json.loads((out / "placement" / "fine-tune" / f"task{t}_profile.json").read_text())
        assert set(entry["plan"]["assignment"]) == {layer["name"] for layer in prof["layers"]}


def test_bad_config_exits_with_message(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[baim]\nwidths = []\n")
    res = CliRunner().invoke(app, ["baim", "--config", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "widths" in res.output
