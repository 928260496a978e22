"""Over-the-air training through PlutoRadio -> virtual Pluto: ``hil train --radio pluto --uri URI``.

Short version of the run in docs/bench.md: digits, MLP with one 1x1 over-the-air layer, an AWGN
link at 10 dB (the virtual bench's --channel file), 2 epochs on 384 training samples, seed 0.
The full-length comparison with the ZMQ channel server is a manual run (see the issue-5 report).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sim_fallback.pluto.serve import spawn

pytestmark = pytest.mark.sim

CONFIG = """
[data]
name = "digits"
limit_train = 384
limit_test = 200

[model]
kind = "mlp"
hidden = 32
cut_out = 32

[ota]
gradient_mode = "reciprocity"
n_tx = 1
n_rx = 1
channel_uses = 16
snr_db = 10.0

[train]
epochs = 2
batch_size = 64
lr = 0.01
seed = 0
digital = false
"""


def test_hil_train_over_the_virtual_pluto(tmp_path: Path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from hil.cli import app

    ch = tmp_path / "bench.toml"
    ch.write_text('path_loss_db = 40\nseed = 1\n[channel]\nfading = "none"\nsnr_db = 10.0\n')
    with spawn("1r1t", channel_file=str(ch)) as vp:
        cfg = tmp_path / "train.toml"
        cfg.write_text(CONFIG)  # no transport, no uri: both come from the command line
        out = tmp_path / "run"
        res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(out),
                                       "--radio", "pluto", "--uri", vp.uri])
        assert res.exit_code == 0, res.output + repr(res.exception)
    report = json.loads((out / "report.json").read_text())
    assert report["transport"] == "pluto" and report["epochs"] == 2
    resolved = (out / "config.toml").read_text()  # the resolved config records the command line's radio
    assert vp.uri in resolved and '"pluto"' in resolved
    # 10 classes (chance: 10 %); after 2 short epochs through the full PHY the MLP is far above chance
    assert report["accuracy"]["ota"] > 60.0, report["accuracy"]
    assert re.search(r"over the air \(pluto", res.output)
    assert (out / "report.md").is_file()
