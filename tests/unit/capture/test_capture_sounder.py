"""The capture sounder (hil.phy frames) through LoopbackRadio: timing, CFO, LS error vs theory, per-sample
SNR, misses, the [sounder] keys, flat vs OFDM."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.capture.sounder import SOUNDER_AMPLITUDE, PhySounder, sounder_settings
from hil.errors import ConfigError, SyncError
from hil.radio.loopback import LoopbackRadio

A = SOUNDER_AMPLITUDE  # 0.35: the sounder's RMS amplitude per transmit antenna


def test_ls_error_snr_and_cfo_match_theory(gm_channel):
    # seed 20; 2x2, SNR 10 dB for a transmitter at amplitude A on both antennas; static channel (rho = 1)
    rng = np.random.default_rng(20)
    n0 = 2 * A**2 / 10 ** (10 / 10)
    ch = gm_channel(2, 2, rng, rho=1.0, k_db=None, n0=n0, cfo_hz=1200.0)
    radio = LoopbackRadio(ch, lead_samples=150, trail_samples=60)
    sd = PhySounder(radio, np.random.default_rng(0))
    err, snr, cfo, ev = [], [], [], []
    for _ in range(150):
        s = sd.sound()
        h_true = ch.history[-1]
        # under CFO the estimate carries a common phase (the oscillator's phase at the frame): remove it
        e = s.estimate[0]
        e = e * np.exp(-1j * np.angle(np.vdot(h_true.ravel(), e.ravel())))
        err.append(np.mean(np.abs(e - h_true) ** 2))
        snr.append(s.snr_db - 10 * np.log10(np.mean(np.sum(np.abs(h_true) ** 2, axis=1)) * A**2 / n0))
        cfo.append(s.cfo_hz)
        ev.append(s.estimate_var)
        assert s.frame_start == 150
    # LS error variance N0 / (sps n_tx pilot_len A^2) (every pilot sample carries A^2): measured within
    # 15 % (150 frames x 4 coefficients). Removing the common phase above fits one of the 8 real degrees
    # of freedom of the 4 coefficients, so the residual error is 7/8 of it (measured: 0.86).
    assert np.mean(err) == pytest.approx(7 / 8 * np.mean(ev), rel=0.15)
    cfg = sd.cfg
    assert np.mean(ev) == pytest.approx(n0 / (cfg.sps * cfg.n_tx * cfg.pilot_len * A**2), rel=0.05)
    # SNR per sample unbiased within 0.2 dB; CFO within 5 Hz of 1200 Hz
    assert abs(np.mean(snr)) < 0.2
    assert abs(np.mean(cfo) - 1200.0) < 5.0


def test_one_antenna_and_noise_power():
    rng = np.random.default_rng(21)
    from hil.channel.base import ChannelModel

    class Gain(ChannelModel):
        n_in = n_out = 1

        def generate(self, n):
            return (rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n))) * np.sqrt(1e-3 / 2)

        def apply(self, x, w):
            return (0.5j * x + w).astype(np.complex64)

    sd = PhySounder(LoopbackRadio(Gain(), lead_samples=33), np.random.default_rng(1), pilot_len=64)
    s = sd.sound()
    assert s.estimate.shape == (1, 1, 1) and s.frame_start == 33
    assert abs(s.estimate[0, 0, 0] - 0.5j) < 0.02
    assert s.noise_var == pytest.approx(1e-3, rel=0.2)
    # per-sample SNR of a transmitter at A: 0.25 A^2 / 1e-3 = 14.9 dB; one frame (~470 noise samples)
    assert s.snr_db_rx.shape == (1,) and s.snr_db == pytest.approx(10 * np.log10(0.25 * A**2 / 1e-3), abs=0.5)
    assert s.phy_snr_db == pytest.approx(s.snr_db + 10 * np.log10(sd.cfg.sps), abs=0.5)


def test_noise_only_is_a_miss(noise_channel):
    radio = LoopbackRadio(noise_channel(2, 2, np.random.default_rng(22)))
    sd = PhySounder(radio, np.random.default_rng(2), pilot_len=32)
    misses = [sd.sound() for _ in range(20)]
    assert all(s.estimate is None and "no preamble" in s.error and s.capture.shape[0] == 2 for s in misses)
    with pytest.raises(SyncError, match="truncated"):
        sd.estimate(np.zeros((2, 10), np.complex64))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.integers(0, 900), seed=st.integers(0, 2**16))
def test_frame_found_at_any_offset(gm_channel, lead, seed):
    rng = np.random.default_rng(seed)
    ch = gm_channel(2, 1, rng, rho=1.0, k_db=10.0, n0=1e-3)
    sd = PhySounder(LoopbackRadio(ch, lead_samples=lead, trail_samples=5), rng, pilot_len=16, quiet_len=24)
    s = sd.sound()
    assert s.frame_start == lead


def test_sounder_keys_removed_unknown_and_mapped(gm_channel):
    # the earlier pilot sounder's keys name their replacement
    for key, repl in (("seq_len", "pilot_len"), ("n_periods", "pilot_len"), ("n_quiet", "quiet_len"),
                      ("threshold", "p_fa")):
        with pytest.raises(ConfigError, match=rf"\[sounder\]\.{key}: removed.*{repl}"):
            sounder_settings({key: 1})
    with pytest.raises(ConfigError, match=r"\[sounder\]\.kind = 'pilot'.*replaced"):
        sounder_settings({"kind": "pilot"})
    with pytest.raises(ConfigError, match=r"unknown keys \['pilots'\].*pilot_len"):
        sounder_settings({"pilots": 3})
    with pytest.raises(ConfigError, match=r"\[sounder\]\.amplitude = 1.5"):
        sounder_settings({"amplitude": 1.5})
    with pytest.raises(ConfigError, match="not both"):
        sounder_settings({"amplitude": 0.5, "backoff_db": 6.0})
    assert sounder_settings({"kind": "phy", "amplitude": 0.5, "mode": "ofdm"}) == pytest.approx(
        {"backoff_db": 20 * np.log10(2), "mode": "ofdm"})
    # the frame is sent at the amplitude asked for
    sd = PhySounder(LoopbackRadio(gm_channel(1, 1, np.random.default_rng(0))), np.random.default_rng(0),
                    **sounder_settings({"amplitude": 0.2}))
    assert sd.cfg.amplitude == pytest.approx(0.2) and sd.params()["amplitude"] == pytest.approx(0.2)
    with pytest.raises(TypeError, match="Generator"):
        PhySounder(LoopbackRadio(gm_channel(1, 1, np.random.default_rng(0))), 0)


def test_flat_and_ofdm_sounders_agree():
    """Long and short flat frames and the OFDM frame see the same static 2x2 channel (seed 3)."""
    from hil.channel import build_channel

    ch = build_channel({"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "snr_db": 25.0}, np.random.default_rng(3))
    radio = LoopbackRadio(ch)
    ref_s = PhySounder(radio, np.random.default_rng(0)).sound()
    ref = ref_s.estimate[0]
    flat = PhySounder(radio, np.random.default_rng(0), pilot_len=8).sound()
    assert flat.estimate.shape == (1, 2, 2) and flat.capture.shape[0] == 2
    nmse_db = 10 * np.log10(np.sum(np.abs(flat.estimate[0] - ref) ** 2) / np.sum(np.abs(ref) ** 2))
    assert nmse_db < -25.0  # at ~25 dB SNR with 16 pilot symbols per antenna
    ofdm = PhySounder(radio, np.random.default_rng(0), mode="ofdm").sound()
    assert ofdm.estimate.shape == (64, 2, 2)
    # a flat channel: every used subcarrier has |H| of the flat estimate (a timing offset only tilts the
    # phase); within 1.5 dB (per-subcarrier estimates are noisier)
    used = np.r_[1:21, 44:64]
    ratio_db = 20 * np.log10(np.abs(ofdm.estimate[used]) / np.abs(ref)[None])
    assert np.all(np.abs(np.median(ratio_db, axis=0)) < 1.5)
    # the per-sample SNR means the same for both frame kinds (same amplitude, same channel): within 1 dB
    assert ofdm.snr_db == pytest.approx(ref_s.snr_db, abs=1.0)
