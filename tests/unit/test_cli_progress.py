"""Progress of long jobs: on stderr (stdout stays the command's output, e.g. --json), one line per step in
line mode, nothing with ``--progress off``. The commands run as real processes (``hil`` as users call it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hil.cli import _common
from hil.cli._common import JobProgress

ROOT = Path(__file__).resolve().parents[2]


def _hil(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "HIL_PROGRESS"}  # auto: lines, as stderr is a pipe
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], env={**e, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_bench_phy_json_owns_stdout_and_progress_goes_to_stderr(tmp_path):
    p = _hil("bench", "phy", "--json", "--trials", "2", "--noise", "3", "--out", str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)  # stdout is the JSON and nothing else
    assert report["config"]["n_tx"] == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("bench phy: ")]
    # one line per SNR point and kind of trial, plus the noise-only captures (6 points x 2 + 1)
    assert len(lines) == 13, p.stderr
    assert re.fullmatch(r"bench phy: SNR point 1/6: -5 dB, 2 impaired trials \(\d+ s\)", lines[0]), lines[0]
    assert lines[-1].startswith("bench phy: noise only: 3 captures")


def test_progress_off_prints_no_progress(tmp_path):
    p = _hil("--progress", "off", "bench", "phy", "--json", "--trials", "2", "--noise", "3",
             "--out", str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr
    json.loads(p.stdout)
    assert "bench phy:" not in p.stderr
    q = _hil("bench", "phy", "--json", "--trials", "2", "--noise", "3", "--out", str(tmp_path / "c"),
             env={"HIL_PROGRESS": "off"})
    assert q.returncode == 0 and "bench phy:" not in q.stderr


def test_train_writes_a_line_per_epoch_on_stderr(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('[data]\nlimit_train = 192\nlimit_test = 64\n[model]\nhidden = 16\ncut_out = 16\n'
                   '[ota]\ntransport = "ideal"\nchannel_uses = 4\nsnr_db = 20.0\n[train]\nepochs = 2\ndigital = false\n')
    p = _hil("train", "--config", str(cfg), "--seeds", "1", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    epoch_lines = [ln for ln in p.stderr.splitlines() if ln.startswith("train: ")]
    assert [re.search(r"epoch (\d)/2", ln).group(1) for ln in epoch_lines] == ["1", "2"], p.stderr
    assert "train:" not in p.stdout  # the results stay on stdout, the progress does not


def test_job_progress_modes(monkeypatch):
    from rich.console import Console

    out = []

    class Sink:
        def write(self, s: str) -> int:
            out.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(_common, "err_console", Console(file=Sink(), width=200))
    with JobProgress("job", mode="lines") as prog:
        prog.step("epoch", 1, 3, detail="loss 0.5")
        prog.step("batch", 7, 10, line=False)  # moves a bar only: no line
        prog.step("round", 2, None)
        prog.note("phase two")
    text = "".join(out)
    assert [re.sub(r" \(\d+ s\)$", "", ln) for ln in text.splitlines()] == [
        "job: epoch loss 0.5", "job: round 2/?", "job: phase two"]
    out.clear()
    with JobProgress("job", mode="off") as prog:
        prog.step("epoch", 1, 3)
        prog.note("nothing")
    assert out == []
