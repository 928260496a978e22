"""The virtual RF path in process (no sockets): levels, LO offset, AGC, channel files, wiring."""

from __future__ import annotations

import numpy as np
import pytest

from hil.errors import ConfigError
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
    # beyond half the RX bandwidth (18 MHz / 2): attenuated by the RX filter (3rd order Butterworth
    # at 9 MHz: 1 / sqrt(1 + (20 / 9)^6) = -20.8 dB at 20 MHz), not removed
    assert m.write(PHY, "dev", ("altvoltage1", True), "frequency", str(2_400_000_000 + 20_000_000)) > 0
    want = 0.25 * 10 ** ((-10 - 20 + 30) / 20) / np.sqrt(1 + (20 / 9) ** 6)
    got = np.sqrt(np.mean(np.abs(_rx(node, 4096, [0, 1])) ** 2))
    assert abs(20 * np.log10(got / want)) < 0.5, (got, want)  # noise floor ~ -66 dBFS, tone at -33


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
    node = Air([m], AirConfig(path_loss_db=40.0, front_end=False)).nodes[0]  # clean: silence is exact zeros
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
    air = Air([ma, mb], AirConfig(path_loss_db=30.0, front_end=False))  # clean: silence is exact zeros
    a, b = air.nodes
    a.tx_dma([0, 1], _tone_words(400, 3, 16384), cyclic=True)
    assert np.abs(_rx(b, 400, [0, 1])).max() > 0.3  # A -> B
    assert np.abs(_rx(a, 400, [0, 1])).max() <= 1 / 2048  # B sends nothing


def _tx1_tone_above_floor_db(channel: dict, seed: int) -> np.ndarray:
    """Send a tone on TX1 only through a 2r2t virtual Pluto; per RX antenna, the tone's FFT bin
    over the median bin (the noise floor), in dB. The tone (bin 20 of a 1000-sample cyclic buffer)
    sits in bin 40 of the 2000-sample capture."""
    m = PlutoModel("2r2t")
    _manual(m, 40, 0)
    node = Air([m], AirConfig(path_loss_db=40.0, seed=seed, channel=channel)).nodes[0]
    w = _tone_words(1000, 20, 16384, n_ant=2)
    w[:, 2:] = 0  # TX1 only
    node.tx_dma([0, 1, 2, 3], w, cyclic=True)
    y = _rx(node, 2000, [0, 1, 2, 3])
    spec = np.abs(np.fft.fft(y, axis=1))
    return 20 * np.log10(spec[:, 40] / np.median(spec, axis=1))


def test_channel_file_builds_a_hil_channel_model(tmp_path):
    """A 2x2 Rayleigh from hil.channel.build_channel mixes TX1 into both RX antennas (seed 3).

    The evidence is TX1's tone itself on RX2, not RX2's power (noise alone has power). At 30 dB SNR
    the tone's bin is about 56 dB (RX1) and 66 dB (RX2) above the median bin for seed 3; we require
    30 dB. The control: with ``fading = "none"`` (two cables) RX2's tone bin is at the floor
    (about 1 dB), so a channel that did not mix would fail the 30 dB bound.
    """
    cf = tmp_path / "ch.toml"
    cf.write_text('path_loss_db = 40\nseed = 3\n[channel]\nfading = "rayleigh"\nsnr_db = 30\n')
    cfg = load_air_config(cf)
    assert cfg.path_loss_db == 40 and cfg.channel == {"fading": "rayleigh", "snr_db": 30}
    mixed = _tx1_tone_above_floor_db(cfg.channel, cfg.seed)
    assert np.all(mixed > 30.0), mixed  # both RX antennas hear TX1: a 2x2 channel, not two cables
    cables = _tx1_tone_above_floor_db({"fading": "none", "snr_db": 30}, cfg.seed)
    assert cables[0] > 30.0 and cables[1] < 10.0, cables


def test_channel_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_air_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("loss = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: \[air\]\.loss: unknown key; valid: path_loss_db, seed, channel"):
        load_air_config(bad)
    bad.write_text('path_loss_db = "40"\n')
    with pytest.raises(ConfigError, match=r"\[air\]\.path_loss_db: must be a number \(got '40'\)"):
        load_air_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[channel]\nn_tx = 1\nn_rx = 1\n")
    with pytest.raises(ValueError, match="set n_tx/n_rx"):
        Air([PlutoModel("2r2t")], load_air_config(wrong))


def test_spawn_keeps_a_chatty_server_running(tmp_path):
    """The server's stderr is not a pipe nobody reads: 256 KiB of logs (4x a pipe's 64 KiB) before
    and after its 'listening' line neither block it nor get lost. With stderr=PIPE this child blocks
    in its first 64 KiB and never prints the URI (spawn times out)."""
    from sim_fallback.pluto.serve import spawn_command

    script = tmp_path / "chatty.py"
    done = tmp_path / "done"
    script.write_text(
        "import sys, pathlib\n"
        "line = 'x' * 1023 + '\\n'\n"
        "for _ in range(128): sys.stderr.write(line)\n"
        "sys.stderr.flush()\n"
        "print('virtual Pluto 0 (1r1t) listening on ip:127.0.0.1:1', flush=True)\n"
        "for _ in range(128): sys.stderr.write(line)\n"
        "sys.stderr.write('last log line\\n'); sys.stderr.flush()\n"
        f"pathlib.Path({str(done)!r}).write_text('ok')\n"
        "sys.stdin.read()\n"  # then serve until stopped
    )
    import sys
    import time

    with spawn_command([sys.executable, str(script)], timeout_s=20.0) as vp:
        assert vp.uris == ["ip:127.0.0.1:1"]
        deadline = time.monotonic() + 20.0
        while not done.exists() and time.monotonic() < deadline and vp.proc.poll() is None:
            time.sleep(0.02)
        assert done.exists(), "the server blocked writing its logs"
        assert vp.stderr_text().endswith("last log line")
        vp.stderr.seek(0, 2)
        assert vp.stderr.tell() == 256 * 1024 + len("last log line\n")


def test_snr_db_sets_the_noise_at_the_receiver():
    """AirConfig(snr_db=10): tone power over the noise left after removing it is 10 dB (+-0.3 dB,
    seed 0, 65536 samples: the estimate's spread is ~0.02 dB)."""
    m = PlutoModel()
    _manual(m, rx_db=40, tx_db=-10)  # tone at -16 dBFS, noise at -26: the ADC's -74 does not matter
    node = Air([m], AirConfig(path_loss_db=30.0, seed=0, snr_db=10.0)).nodes[0]
    n = 65536
    node.tx_dma([0, 1], _tone_words(1024, 16, 16384), cyclic=True)
    y = _rx(node, n, [0, 1])[0]
    spec = np.fft.fft(y) / n
    k = int(np.argmax(np.abs(spec)))
    p_sig = np.abs(spec[k]) ** 2
    p_noise = np.mean(np.abs(y) ** 2) - p_sig
    assert abs(10 * np.log10(p_sig / p_noise) - 10.0) < 0.3


def test_stream_running_dry_sets_tx_underflow_and_register_is_write_one_to_clear():
    m = PlutoModel()
    _manual(m, 30, -10)
    node = Air([m], AirConfig(front_end=False)).nodes[0]
    dds = "cf-ad9361-dds-core-lpc"
    assert m.write(dds, "debug", None, "direct_reg_access", "0x80000088") > 0
    assert m.read(dds, "debug", None, "direct_reg_access") == "0x0"
    node.tx_dma([0, 1], _tone_words(100, 1, 8192), cyclic=False)
    _rx(node, 300, [0, 1])  # 100 samples pushed, 300 on air: the stream ran dry
    assert m.read(dds, "debug", None, "direct_reg_access") == "0x1"
    assert m.write(dds, "debug", None, "direct_reg_access", "0x80000088 0x1") > 0  # write one to clear
    assert m.read(dds, "debug", None, "direct_reg_access") == "0x0"
    assert m.write(PHY, "debug", None, "direct_reg_access", "0x37") > 0
    assert m.read(PHY, "debug", None, "direct_reg_access") == "0xA"  # AD9361 product id
    assert m.write(PHY, "debug", None, "direct_reg_access", "0xzz") == -22


def test_front_end_far_lo_loopback_2_and_dc_tracking():
    m = PlutoModel()
    _manual(m, 60, -10)
    node = Air([m], AirConfig(path_loss_db=40.0, seed=0)).nodes[0]
    y = _rx(node, 8192, [0, 1])  # nothing transmitted: noise, never zeros
    assert np.count_nonzero(y) > 0.9 * y.size
    dc_on = abs(np.mean(y))
    assert m.write(PHY, "dev", ("voltage0", False), "bb_dc_offset_tracking_en", "0") > 0
    dc_off = abs(np.mean(_rx(node, 8192, [0, 1])))
    assert 20 * np.log10(dc_off) > -42 and dc_off > 10 * dc_on  # -40 dBFS without tracking
    # RF loopback (2): the node's own TX through 30 dB of coupling instead of the 40 dB path
    node.tx_dma([0, 1], _tone_words(1024, 8, 4096), cyclic=True)
    assert m.write(PHY, "debug", None, "loopback", "2") > 0
    assert m.write(PHY, "dev", ("voltage0", False), "hardwaregain", "40") > 0
    spec = np.abs(np.fft.fft(_rx(node, 4096, [0, 1])[0])) / 4096
    level = 20 * np.log10(spec.max())
    assert abs(level - (20 * np.log10(4096 / 32768) - 10 - 30 + 40)) < 0.5, level
