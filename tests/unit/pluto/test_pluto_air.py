"""The virtual RF path in process (no sockets): levels, LO offset, AGC, channel files, wiring."""

from __future__ import annotations

import numpy as np
import pytest

from sim_fallback.pluto.air import Air, AirConfig
from sim_fallback.pluto.model import PlutoModel
from sim_fallback.pluto.serve import load_air_config

PHY = "ad9361-phy"


def _manual(m: PlutoModel, rx_db: float, tx_db: float) -> None:
    """Manual gains, and the TX LO on the RX LO (the power-on defaults are 50 MHz apart)."""
    assert m.write(PHY, "dev", ("altvoltage1", True), "frequency", "2400000000") > 0
    for a in range(m.n_chan):
        assert m.write(PHY, "dev", (f"voltage{a}", False), "gain_control_mode", "manual") > 0
        assert m.write(PHY, "dev", (f"voltage{a}", False), "hardwaregain", str(rx_db)) > 0
        assert m.write(PHY, "dev", (f"voltage{a}", True), "hardwaregain", str(tx_db)) > 0


def _tone_words(n: int, k: int, amp: int, n_ant: int = 1) -> np.ndarray:
    t = np.arange(n)
    cols = []
    for a in range(n_ant):
        z = amp * np.exp(2j * np.pi * (k + a) * t / n)
        cols += [np.round(z.real), np.round(z.imag)]
    return np.stack(cols, 1).astype(np.int16)


def _rx(node, n: int, enabled) -> np.ndarray:
    w = node.rx_dma(list(enabled), n).astype(np.float64)
    return (w[:, 0::2] + 1j * w[:, 1::2]).T / 2048.0  # [n_ant, n]


def test_level_follows_gains_and_path_loss():
    m = PlutoModel()
    _manual(m, rx_db=25, tx_db=-7.5)
    air = Air([m], AirConfig(path_loss_db=30.0, seed=0))
    node = air.nodes[0]
    node.tx_dma([0, 1], _tone_words(1000, 50, 8192), cyclic=True)
    y = _rx(node, 4000, [0, 1])
    level = 20 * np.log10(np.abs(np.fft.fft(y[0])).max() / y.shape[1])
    want = 20 * np.log10(8192 / 32768) - 7.5 - 30 + 25
    assert abs(level - want) < 0.1, (level, want)  # 12-bit quantization error only


def test_lo_difference_is_a_phase_continuous_frequency_offset():
    m = PlutoModel()
    _manual(m, 30, -10)
    fs = m.sample_rate_hz()
    assert m.write(PHY, "dev", ("altvoltage1", True), "frequency", str(2_400_000_000 + 60_000)) > 0
    air = Air([m], AirConfig(path_loss_db=20.0))
    node = air.nodes[0]
    n = 3072
    node.tx_dma([0, 1], _tone_words(n, 0, 8192), cyclic=True)  # DC tone
    a, b2 = _rx(node, n, [0, 1]), _rx(node, n, [0, 1])
    y = np.concatenate([a, b2], 1)[0]
    prod = y[1:] * np.conj(y[:-1])
    w = np.angle(prod.sum())  # rad/sample, averaged over 6143 lags
    assert abs(w * fs / (2 * np.pi) - 60_000) < 100
    assert abs(np.angle(prod[n - 1]) - w) < 0.01  # no phase jump between two DMA reads
    # beyond half the RX bandwidth (18 MHz / 2): nothing arrives
    assert m.write(PHY, "dev", ("altvoltage1", True), "frequency", str(2_400_000_000 + 20_000_000)) > 0
    assert np.abs(_rx(node, 256, [0, 1])).max() <= 1 / 2048


def test_agc_brings_the_peak_near_minus_12_dbfs_and_reports_its_gain():
    m = PlutoModel()  # slow_attack by default
    assert m.write(PHY, "dev", ("altvoltage1", True), "frequency", "2400000000") > 0
    air = Air([m], AirConfig(path_loss_db=60.0))
    node = air.nodes[0]
    node.tx_dma([0, 1], _tone_words(1000, 10, 16384), cyclic=True)
    y = _rx(node, 2000, [0, 1])
    assert 0.18 < np.abs(y).max() < 0.36
    gain = m.gain_db(False, 0)
    assert -3 <= gain <= 71 and gain == int(gain) and gain != 71.0


def test_non_cyclic_push_is_received_once_and_tx_stop_silences():
    m = PlutoModel()
    _manual(m, 40, 0)
    node = Air([m], AirConfig(path_loss_db=40.0)).nodes[0]
    node.tx_dma([0, 1], _tone_words(500, 5, 16384), cyclic=False)
    y = _rx(node, 1000, [0, 1])[0]
    assert np.abs(y[:500]).min() > 0.4 and np.abs(y[500:]).max() <= 1 / 2048
    node.tx_dma([0, 1], _tone_words(500, 5, 16384), cyclic=True)
    node.tx_stop()
    assert np.abs(_rx(node, 500, [0, 1])).max() <= 1 / 2048


def test_two_nodes_cross_wired():
    ma, mb = PlutoModel(serial="a"), PlutoModel(serial="b")
    for m in (ma, mb):
        _manual(m, 30, 0)
    air = Air([ma, mb], AirConfig(path_loss_db=30.0))
    a, b = air.nodes
    a.tx_dma([0, 1], _tone_words(400, 3, 16384), cyclic=True)
    assert np.abs(_rx(b, 400, [0, 1])).max() > 0.3  # A -> B
    assert np.abs(_rx(a, 400, [0, 1])).max() <= 1 / 2048  # B sends nothing


def test_channel_file_builds_a_hil_channel_model(tmp_path):
    """A 2x2 Rayleigh from hil.channel.build_channel mixes TX1 into both RX antennas (seed 3)."""
    cf = tmp_path / "ch.toml"
    cf.write_text('path_loss_db = 40\nseed = 3\n[channel]\nfading = "rayleigh"\nsnr_db = 30\n')
    cfg = load_air_config(cf)
    assert cfg.path_loss_db == 40 and cfg.channel == {"fading": "rayleigh", "snr_db": 30}
    m = PlutoModel("2r2t")
    _manual(m, 40, 0)
    node = Air([m], cfg).nodes[0]
    w = _tone_words(1000, 20, 16384, n_ant=2)
    w[:, 2:] = 0  # TX1 only
    node.tx_dma([0, 1, 2, 3], w, cyclic=True)
    y = _rx(node, 2000, [0, 1, 2, 3])
    p = (np.abs(y) ** 2).mean(1)
    assert np.all(p > 1e-4), p  # both RX antennas hear TX1: a 2x2 channel, not two cables


def test_channel_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_air_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("loss = 3\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_air_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[channel]\nn_tx = 1\nn_rx = 1\n")
    with pytest.raises(ValueError, match="set n_tx/n_rx"):
        Air([PlutoModel("2r2t")], load_air_config(wrong))
