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
    # FedAvg (12 rounds in the quick config) uploads >= 10x the measured bytes of every BAIM strategy
    assert all(r >= 10 for r in ms["fedavg_upload_ratio"].values()), ms["fedavg_upload_ratio"]
    s = rep["strategies"]
    assert s["fedavg"]["upload_bytes"] == s["fedavg"]["download_bytes"] > 0
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
