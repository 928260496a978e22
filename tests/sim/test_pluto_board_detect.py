"""Board detection against ``hil emu pluto``: the board's mode is read before a profile is applied.

A 2x2 config (the packaged ``digits_mlp``) against a 1r1t board stops with one line naming the
mismatch and the fix (exit code 2, no traceback); against a 2r2t board a short 2x2 run trains.
With no profile, PlutoRadio picks the profile matching the board.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim_fallback.pluto.serve import spawn

pytestmark = pytest.mark.sim

TINY_2X2 = """
[data]
name = "digits"
limit_train = 128
limit_test = 64

[model]
kind = "mlp"
hidden = 16
cut_out = 16

[ota]
gradient_mode = "reciprocity"
n_tx = 2
n_rx = 2
channel_uses = 8
snr_db = 10.0

[train]
epochs = 1
batch_size = 64
seed = 0
digital = false
"""


def _hil(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_2x2_config_on_a_1r1t_board_stops_with_one_line_naming_the_fix(tmp_path: Path):
    with spawn("1r1t") as vp:
        r = _hil("train", "--radio", "pluto", "--uri", vp.uri, "--config", "digits_mlp", "--out", str(tmp_path / "run"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]  # errors are one line on stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    line = lines[0]
    # what the board is, what the config/profile needs, how to switch modes, which 1x1 setting runs
    assert "1r1t mode (1 RX, 1 TX)" in line and "pluto_2r2t needs 2r2t" in line, line
    assert "fw_setenv mode 2r2t" in line and "n_tx = n_rx = 1 (profile pluto_1r1t)" in line, line
    assert not (tmp_path / "run" / "report.json").exists()


def test_2x2_config_on_a_2r2t_board_trains(tmp_path: Path):
    pytest.importorskip("torch")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_2X2)
    out = tmp_path / "run"
    with spawn("2r2t") as vp:
        r = _hil("train", "--radio", "pluto", "--uri", vp.uri, "--config", str(cfg), "--out", str(out), timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["transport"] == "pluto" and rep["epochs"] == 1 and rep["frames"] > 0


@pytest.mark.parametrize("mode, profile", [("1r1t", "pluto_1r1t"), ("2r2t", "pluto_2r2t")])
def test_no_profile_picks_the_one_matching_the_board(mode, profile):
    from hil.radio.pluto import PlutoRadio, load_profile, read_board

    with spawn(mode) as vp:
        board = read_board(vp.uri)
        assert (board.mode, board.is_pluto, board.profile()) == (mode, True, profile)
        assert board.two_channel_env == ("1" if mode == "2r2t" else "0")
        with PlutoRadio(vp.uri) as r:
            want = PlutoRadio._as_profile(load_profile(profile))
            assert r.profile == want and r.caps.n_rx == r.caps.n_tx == int(mode[0])


def test_capture_with_a_2r2t_profile_on_a_1r1t_board_is_one_line(tmp_path: Path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("lo_hz = [2.40e9]\nframes_per_step = 2\n")
    with spawn("1r1t") as vp:
        r = _hil("capture", "--radio", "pluto", "--uri", vp.uri, "--profile", "pluto_2r2t", "--sweep", str(sweep),
                 "--out", str(tmp_path / "c"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    text = " ".join(r.stderr.split())
    assert "1r1t mode" in text and "fw_setenv mode 2r2t" in text and "use profile pluto_1r1t" in text, r.stderr
