"""`hil bench phy --json` runs end to end and writes its run folder (tiny trial counts)."""

import json

from typer.testing import CliRunner

from hil.cli import app


def test_bench_phy_json_writes_report(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["bench", "phy", "--json", "--trials", "3", "--noise", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [p["snr_db"] for p in rep["impaired"]] == [-5, 0, 5, 10, 20, 30]
    for k in ("pd", "timing_err_rms_samples", "cfo_rmse_hz", "nmse_ls_db", "nmse_lmmse_db", "nmse_ls_theory_db"):
        assert k in rep["impaired"][-1]
    assert rep["false_alarm"]["captures"] == 5 and set(rep["checks"]) >= {"pd>=0.999 at SNR>=0"}
    for f in ("report.json", "report.md", "config.json", "phy_nmse.png", "phy_constellation.png"):
        assert (out / f).stat().st_size > 0
