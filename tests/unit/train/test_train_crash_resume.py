"""`hil train` killed mid-run (SIGKILL, then Ctrl-C) resumes without losing or repeating an epoch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

EPOCHS = 20


def _start(cfg: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "train", "--config", str(cfg), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


def _wait_for_epoch(ck: Path, proc: subprocess.Popen, at_least: int, deadline_s: float = 60.0) -> int:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stderr.read().decode()
        if ck.is_file():
            try:
                e = torch.load(ck, weights_only=True)["epoch"]
            except Exception:  # noqa: BLE001 - never happens with atomic writes; retry if it did
                e = 0
            if e >= at_least:
                return e
        time.sleep(0.02)  # polling with a deadline, not synchronising by sleep
    raise AssertionError(f"no checkpoint with epoch >= {at_least} within {deadline_s} s")


def test_kill_and_interrupt_then_resume(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        f'[data]\nlimit_train = 192\nlimit_test = 64\n[model]\nhidden = 16\ncut_out = 16\n'
        f'[ota]\ntransport = "ideal"\nchannel_uses = 4\nsnr_db = 20.0\n[train]\nepochs = {EPOCHS}\ndigital = false\n'
    )
    out = tmp_path / "run"
    ck = out / "checkpoints" / "ota.pt"

    p = _start(cfg, out)
    _wait_for_epoch(ck, p, 1)
    p.kill()  # a crash
    p.wait()
    killed_at = torch.load(ck, weights_only=True)["epoch"]
    assert 1 <= killed_at < EPOCHS

    p = _start(cfg, out)
    _wait_for_epoch(ck, p, killed_at + 1)
    p.send_signal(signal.SIGINT)  # Ctrl-C
    assert p.wait(30) == 130
    interrupted_at = torch.load(ck, weights_only=True)["epoch"]
    assert killed_at < interrupted_at <= EPOCHS

    p = _start(cfg, out)
    assert p.wait(120) == 0, p.stderr.read().decode()
    rep = json.loads((out / "report.json").read_text())
    assert rep["epochs"] == EPOCHS
    assert [h["epoch"] for h in rep["history"]["ota"]] == list(range(1, EPOCHS + 1))
    frames = [h["frames"] for h in rep["history"]["ota"]]
    assert frames == sorted(frames) and len(set(frames)) == EPOCHS  # counted across the restarts


def test_resumed_run_equals_the_uninterrupted_run(tmp_path):
    # Static ideal channel, 20 dB (noise on every burst), reciprocity with calibration, seed 0, 4 epochs.
    # A run interrupted in epoch 3 and resumed from its checkpoint must give exactly the same losses,
    # accuracies and frame counts as a run that was never interrupted: model, optimiser, scheduler, torch
    # RNGs, the channel's Generator and draw and the calibration are all restored (tolerance: exact).
    import pytest

    from hil.train.config import from_dict
    from hil.data import load_dataset
    from hil.train.run import train_ota

    cfg = from_dict({"data": {"limit_train": 192, "limit_test": 64}, "model": {"hidden": 16, "cut_out": 16},
                     "ota": {"transport": "ideal", "channel_uses": 4, "snr_db": 20.0},
                     "train": {"epochs": 4, "digital": False}})
    data = load_dataset("digits", "", 0.2, 0, 192, 64)
    whole = train_ota(cfg, data, tmp_path / "a.pt")

    def stop_in_epoch_3(tag, ep, epochs, st, n):
        if ep == 3 and st == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ota(cfg, data, tmp_path / "b.pt", progress=stop_in_epoch_3)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 2
    resumed = train_ota(cfg, data, tmp_path / "b.pt")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])
    assert resumed["calibration_frames"] == whole["calibration_frames"] == 8
    assert resumed["calibration"] == whole["calibration"]
