"""Results over seeds: the Student-t interval, what a seed varies, the report over seeds, resume per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hil.stats import mean_ci95, mean_db
from hil.train.config import from_dict
from hil.train.seeds import run_seeds, seed_configs


def test_mean_ci95_is_students_t():
    # two values 1, 3: mean 2, s = sqrt(2), half width t_{0.975,1} s / sqrt(2) = 12.7062 * 1
    s = mean_ci95([1.0, 3.0])
    assert s["n"] == 2 and s["mean"] == 2.0 and s["std"] == pytest.approx(np.sqrt(2))
    assert s["ci95"] == pytest.approx([2 - 12.7062047, 2 + 12.7062047], abs=1e-6)
    # five values: t_{0.975,4} = 2.7764451
    x = [0.5, -0.2, 0.1, 0.9, -0.4]
    s = mean_ci95(x)
    half = 2.7764451 * np.std(x, ddof=1) / np.sqrt(5)
    assert s["ci95"] == pytest.approx([np.mean(x) - half, np.mean(x) + half], abs=1e-6)
    assert mean_ci95([4.0])["ci95"] is None
    with pytest.raises(ValueError, match="at least one"):
        mean_ci95([])
    with pytest.raises(ValueError, match="finite"):
        mean_ci95([1.0, float("nan")])
    # dB values average in linear power: 0 dB and 10 dB -> 10 log10(5.5)
    assert mean_db([0.0, 10.0]) == pytest.approx(10 * np.log10(5.5))


def test_a_seed_varies_training_and_channel():
    cfg = from_dict({"train": {"seed": 3}, "ota": {"channel_seed": 10}})
    got = [(c.train.seed, c.ota.channel_seed) for c in seed_configs(cfg, 3)]
    assert got == [(3, 10), (4, 11), (5, 12)]
    with pytest.raises(ValueError, match="n_seeds"):
        seed_configs(cfg, 0)


def _cfg():
    return from_dict({"data": {"limit_train": 128, "limit_test": 64}, "ota": {"transport": "ideal", "channel_uses": 2},
                      "train": {"epochs": 1}, "sweep": {"snr_db": [0.0], "epochs": 1}})


def test_report_over_seeds_and_resume_per_seed(tmp_path, monkeypatch):
    rep = run_seeds(_cfg(), tmp_path, 2, workers=1)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["seeds"] == [0, 1] and on_disk["channel_seeds"] == [1, 2]
    ota, dig = on_disk["accuracy"]["ota"], on_disk["accuracy"]["digital"]
    assert len(ota) == len(dig) == 2
    assert on_disk["gap_points"]["per_seed"] == pytest.approx([o - d for o, d in zip(ota, dig)])
    g = on_disk["gap_points"]
    assert g["mean"] == pytest.approx(np.mean(g["per_seed"]))
    assert g["ci95"][0] <= g["mean"] <= g["ci95"][1]
    # each seed is its own run folder with its own numbers; the two channel draws differ
    per = [json.loads((tmp_path / f"seed-{k}" / "report.json").read_text()) for k in (0, 1)]
    assert [p["accuracy"]["ota"] for p in per] == ota
    m = on_disk["measured_snr_db"]
    assert m["per_seed"][0] != m["per_seed"][1]
    assert m["mean"] == pytest.approx(mean_db(m["per_seed"]))
    assert m["draw_offset_db"] == pytest.approx([v - 10.0 for v in m["per_seed"]])
    # no sweeps unless asked
    assert on_disk["sweeps"] == {} and not (tmp_path / "sweeps.json").exists()
    assert "95 % interval" in (tmp_path / "report.md").read_text()
    # a rerun resumes every seed from its checkpoint: no training step, same numbers
    import hil.train.loop as loop

    monkeypatch.setattr(loop.nn.functional, "cross_entropy", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    again = run_seeds(_cfg(), tmp_path, 2, workers=1)
    assert again["accuracy"] == rep["accuracy"] and again["gap_points"] == rep["gap_points"]


def test_sweeps_run_on_request_over_the_runs_transport(tmp_path):
    rep = run_seeds(_cfg(), tmp_path, 1, workers=1, sweeps=True)
    (pt,) = rep["sweeps"]["snr_db"]
    assert (pt["transport"], pt["epochs"], pt["snr_db"]) == ("ideal", 1, 0.0)
    assert "averaged over the fading" in (tmp_path / "report.md").read_text()


def test_draw_gain_is_the_estimates_power_relative_to_the_average():
    from hil.train.run import draw_gain

    assert draw_gain(np.ones((2, 2), np.complex64)) == pytest.approx(1.0)
    assert draw_gain(np.full((2, 3), 2.0 + 0j)) == pytest.approx(4.0)
    assert draw_gain(np.full((2, 3), 2.0 + 0j), average_gain=4.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_rx, n_tx"):
        draw_gain(np.ones(3))
    with pytest.raises(ValueError, match="average_gain"):
        draw_gain(np.ones((2, 2)), average_gain=0.0)


def test_receivers_average_snr_estimate_matches_the_configured_snr(tmp_path):
    # 3 seeds (3 quasi-static 2x2 Rayleigh draws) on ideal at 10 dB, 8 bursts each: the raw measured
    # SNR follows each draw's gain; minus the draw gain the receiver sees in its own pilot estimate,
    # it estimates the average over the fading. Tolerance 0.5 dB on the mean over seeds (measured
    # 2026-12-04: per-burst std of the estimate about 0.5 dB, so about 0.1 dB over 24 bursts; the
    # pilot estimate's noise biases it by about +0.1 dB); seeds 0-2, channel seeds 1-3.
    cfg = from_dict({"data": {"limit_train": 512, "limit_test": 64}, "ota": {"transport": "ideal", "channel_uses": 2},
                     "train": {"epochs": 1, "digital": False}})
    rep = run_seeds(cfg, tmp_path, 3, workers=1)
    raw, gain = rep["measured_snr_db"]["per_seed"], rep["draw_gain_db"]
    avg = rep["measured_avg_snr_db"]
    assert avg["per_seed"] == pytest.approx([m - g for m, g in zip(raw, gain)])
    assert abs(avg["mean"] - rep["snr_db"]) < 0.5, avg
    assert all(abs(a - 10.0) < 1.0 for a in avg["per_seed"]), avg
    # the draws did differ: the raw values spread with the draws' gains, the estimates do not
    assert max(gain) - min(gain) > 0.5, gain
    assert np.std(avg["per_seed"]) < np.std(raw)
    assert avg["ci95"][0] <= avg["mean"] <= avg["ci95"][1]
    assert "draw gain" in (tmp_path / "report.md").read_text()
