"""Rerunning a finished ``hil train`` keeps its report's history instead of overwriting it.

Tiny run (ideal transport, 64 digits, 1 epoch, seed 0) done twice in one folder: the second session
trains nothing, so its own wall time is short and it measures no SNR; the report must keep the
first session's measurements, sum the wall times and say it was resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")


def test_rerun_of_a_finished_run_keeps_its_measurements(tmp_path: Path):
    from hil.train.config import from_dict
    from hil.train.run import run_experiment

    cfg = from_dict({"data": {"name": "digits", "limit_train": 64, "limit_test": 32},
                     "model": {"kind": "mlp", "hidden": 8, "cut_out": 8},
                     "ota": {"transport": "ideal", "n_tx": 1, "n_rx": 1, "channel_uses": 8, "snr_db": 15.0},
                     "train": {"epochs": 1, "batch_size": 32, "seed": 0, "digital": False}})
    first = run_experiment(cfg, tmp_path)
    assert first["measured_snr_db"] is not None and len(first["sessions"]) == 1
    assert "resumed" not in (tmp_path / "report.md").read_text()
    second = run_experiment(cfg, tmp_path)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["measured_snr_db"] == pytest.approx(first["measured_snr_db"])  # not "n/a"
    assert rep["accuracy"] == first["accuracy"] and rep["frames"] == first["frames"]
    assert len(rep["sessions"]) == 2 and rep["sessions"][1]["resumed"] is True
    assert rep["seconds"] == pytest.approx(first["seconds"] + second["sessions"][1]["seconds"])
    assert rep["seconds"] > first["seconds"]
    md = (tmp_path / "report.md").read_text()
    assert "resumed: 2 sessions" in md and "n/a" not in md
