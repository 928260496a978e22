"""The link a training run opens: rho per burst on every transport, --channel replay:DIR, no leaks on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import ConfigError
from hil.train.config import OTAConfig, from_dict
from hil.train.links import burst_samples, channel_spec, open_transport, parse_channel_option


def test_rho_is_per_training_burst_on_radio_links():
    # The Gauss-Markov block of loopback/zmq channels is one forward training burst of a full batch,
    # the unit rho has on the ideal transport; the burst is what the PHY sends for B vectors, K uses.
    from hil.phy import PhyConfig, PhyLink

    cfg = OTAConfig(transport="loopback", rho=0.99, channel_uses=16)
    spec = channel_spec(cfg, vectors_per_burst=128)
    link = PhyLink(_wire(2), PhyConfig(n_tx=2, n_rx=2, mode="flat"))
    assert spec["block_samples"] == burst_samples(cfg, 128) == link.burst_samples(128, 16)
    assert channel_spec(cfg, 32)["block_samples"] < spec["block_samples"]
    assert "block_samples" not in channel_spec(OTAConfig(transport="loopback"))


def _wire(n):
    from hil.channel import build_channel
    from hil.radio.loopback import LoopbackRadio

    return LoopbackRadio(build_channel({"n_tx": n, "n_rx": n}, np.random.default_rng(0)))


def test_channel_option_parsing():
    assert parse_channel_option("replay:/x/y?mode=time") == {"replay": "/x/y", "mode": "time"}
    assert parse_channel_option('{"fading": "rayleigh", "snr_db": 5}') == {"fading": "rayleigh", "snr_db": 5}
    with pytest.raises(ConfigError, match="replay:DIR"):
        parse_channel_option("rayleigh")
    with pytest.raises(ConfigError, match="needs transport 'loopback' or 'zmq'"):
        from_dict({"ota": {"transport": "ideal", "channel": "replay:/x"}})


@pytest.mark.parametrize("fail_in", ["forward", "reverse"])
def test_a_failing_phy_closes_the_radio(monkeypatch, fail_in):
    # A PhyTransport that cannot be built (a bad PHY option) must not leak the radio it was handed,
    # nor the reverse radio it opened itself.
    import hil.ota.transport as tr
    import hil.train.links as links
    from hil.radio.loopback import LoopbackRadio

    opened: list[LoopbackRadio] = []
    real_init = LoopbackRadio.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        opened.append(self)

    monkeypatch.setattr(LoopbackRadio, "__init__", spy)
    if fail_in == "forward":
        monkeypatch.setattr(links, "PhyTransport",
                            lambda radio, *a, **k: tr.PhyTransport(radio, *a, **{**k, "phase_smoothing": 0.0}))
        with pytest.raises(ValueError, match="phase_smoothing"):
            open_transport(OTAConfig(transport="loopback"))
    else:  # 2 -> 5 is a valid forward PHY; the reverse link would need 5 transmit antennas (max 4)
        with pytest.raises(ValueError, match=r"n_tx: out of range \(got 5\)"):
            open_transport(OTAConfig(transport="loopback", n_tx=2, n_rx=5, channel_uses=4))
    assert opened and all(r.closed for r in opened)


def test_train_with_a_replayed_channel(tmp_path):
    # A tiny 2x2 recording (8 frames, seed 5) made with hil.capture's writer, replayed over loopback
    # through the PHY for one epoch via `hil train --channel replay:DIR --hold-channel`.
    from hil.capture.sigmf_io import RecordingWriter

    rng = np.random.default_rng(5)
    rec = tmp_path / "rec"
    w = RecordingWriter(rec, "rec000", sample_rate_hz=1e6, n_rx=2, n_tx=2, sounder={"frame_interval_s": 1e-3})
    w.begin_capture(lo_hz=2.4e9, lo_step=0)
    for i in range(8):
        h = (rng.standard_normal((1, 2, 2)) + 1j * rng.standard_normal((1, 2, 2))) / np.sqrt(2)
        w.add_burst(np.zeros((2, 20), np.complex64), h.astype(np.complex64), slot=i, noise_var=1e-3)
    w.close()
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('[data]\nlimit_train = 128\nlimit_test = 64\n[model]\nhidden = 16\ncut_out = 16\n'
                   '[ota]\nchannel_uses = 4\n[train]\nepochs = 1\ndigital = false\n')
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(out), "--transport", "loopback",
                                   "--channel", f"replay:{rec}?snr_db=20", "--hold-channel"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["transport"] == "loopback" and rep["epochs"] == 1 and rep["hold_channel"] is True
    assert rep["channel"] == f"replay:{rec}?snr_db=20"
    assert rep["frames"] > 0 and rep["calibration_frames"] == 8
    assert 'channel = "replay:' in (out / "config.toml").read_text()
    bad = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "r2"), "--transport",
                                   "loopback", "--channel", f"replay:{tmp_path / 'nothing'}"])
    assert bad.exit_code == 2
