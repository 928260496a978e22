"""``hil train --log-dir DIR`` leaves TensorBoard event files that tensorboard's own reader loads.

A 2-epoch run over the in-process ideal transport (reciprocity, so the gradient cosine to the exact
gradient is known) on 128 digits, seed 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

CONFIG = """
[data]
name = "digits"
limit_train = 128
limit_test = 64

[model]
kind = "mlp"
hidden = 16
cut_out = 16

[ota]
transport = "ideal"
gradient_mode = "reciprocity"
n_tx = 2
n_rx = 2
channel_uses = 8
snr_db = 20.0

[train]
epochs = 2
batch_size = 64
seed = 0
digital = true
"""


def _scalars(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_log_dir_writes_the_expected_scalars(tmp_path: Path):
    from typer.testing import CliRunner

    from hil.cli import app

    cfg = tmp_path / "t.toml"
    cfg.write_text(CONFIG)
    logs = tmp_path / "tb"
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "run"),
                                   "--log-dir", str(logs)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ota = _scalars(logs / "ota")
    for tag in ("train/loss", "train/accuracy", "test/accuracy", "link/frames", "time/epoch_s",
                "link/snr_db", "link/grad_cosine", "time/step_s"):
        assert tag in ota, sorted(ota)
    steps = 2  # 128 samples / batch 64
    assert [e.step for e in ota["test/accuracy"]] == [steps, 2 * steps]  # one point per epoch
    assert [e.step for e in ota["time/step_s"]] == list(range(1, 2 * steps + 1))  # one point per step
    assert all(0.0 <= e.value <= 100.0 for e in ota["test/accuracy"])
    assert all(math.isfinite(e.value) and e.value > 0 for e in ota["train/loss"])
    # measured SNR near the configured 20 dB (the ideal transport's estimate; 3 dB tolerance)
    assert all(abs(e.value - 20.0) < 3.0 for e in ota["link/snr_db"]), [e.value for e in ota["link/snr_db"]]
    # calibrated reciprocity at 20 dB: the echoed gradient points nearly along the exact one
    assert all(0.5 < e.value <= 1.0 + 1e-6 for e in ota["link/grad_cosine"]), [e.value for e in ota["link/grad_cosine"]]
    assert ota["link/frames"][-1].value > ota["link/frames"][0].value > 0
    dig = _scalars(logs / "digital")
    assert "test/accuracy" in dig and "link/snr_db" not in dig
