"""The built-in pilot sounder through LoopbackRadio: timing, CFO, LS error vs theory, SNR, misses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.capture.sounder import PilotSounder, PilotSounderConfig
from hil.errors import SyncError
from hil.radio.loopback import LoopbackRadio

A = 0.35  # default pilot amplitude


def test_ls_error_snr_and_cfo_match_theory(gm_channel):
    # seed 20; 2x2, SNR 10 dB for a transmitter at amplitude A on both antennas; static channel (rho = 1)
    rng = np.random.default_rng(20)
    n0 = 2 * A**2 / 10 ** (10 / 10)
    ch = gm_channel(2, 2, rng, rho=1.0, k_db=None, n0=n0, cfo_hz=1200.0)
    sd = PilotSounder(PilotSounderConfig(n_tx=2))
    radio = LoopbackRadio(ch, lead_samples=150, trail_samples=60)
    err, snr, cfo, ev = [], [], [], []
    for _ in range(150):
        s = sd.sound(radio)
        h_true = ch.history[-1]
        # under CFO the estimate carries a common phase (the oscillator's phase at the frame): remove it
        e = s.estimate[0]
        e = e * np.exp(-1j * np.angle(np.vdot(h_true.ravel(), e.ravel())))
        err.append(np.mean(np.abs(e - h_true) ** 2))
        snr.append(s.snr_db - 10 * np.log10(np.mean(np.sum(np.abs(h_true) ** 2, axis=1)) * A**2 / n0))
        cfo.append(s.cfo_hz)
        ev.append(s.estimate_var)
        assert s.frame_start == 150
    # LS error variance N0 / (n_blocks L A^2): measured within 15 % (150 frames x 4 coefficients)
    assert np.mean(err) == pytest.approx(np.mean(ev), rel=0.15)
    assert np.mean(ev) == pytest.approx(n0 / (sd.n_blocks * 127 * A**2), rel=0.05)
    # SNR estimate unbiased within 0.2 dB; CFO within 5 Hz of 1200 Hz
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

    sd = PilotSounder(PilotSounderConfig(n_tx=1, seq_len=61, n_periods=4))
    s = sd.sound(LoopbackRadio(Gain(), lead_samples=33))
    assert s.estimate.shape == (1, 1, 1)
    assert abs(s.estimate[0, 0, 0] - 0.5j) < 0.02
    assert s.noise_var == pytest.approx(1e-3, rel=0.2)


def test_noise_only_is_a_miss(noise_channel):
    sd = PilotSounder(PilotSounderConfig(n_tx=2))
    radio = LoopbackRadio(noise_channel(2, 2, np.random.default_rng(22)))
    misses = [sd.sound(radio) for _ in range(20)]
    assert all(s.estimate is None and "no sounding frame" in s.error for s in misses)
    with pytest.raises(SyncError, match="shorter"):
        sd.estimate(np.zeros((2, 10), np.complex64))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.integers(0, 900), seed=st.integers(0, 2**16))
def test_frame_found_at_any_offset(gm_channel, lead, seed):
    rng = np.random.default_rng(seed)
    ch = gm_channel(2, 1, rng, rho=1.0, k_db=10.0, n0=1e-3)
    sd = PilotSounder(PilotSounderConfig(n_tx=2, seq_len=61, n_periods=2))
    s = sd.sound(LoopbackRadio(ch, lead_samples=lead, trail_samples=5))
    assert s.frame_start == lead


def test_bad_config():
    with pytest.raises(ValueError, match="n_periods"):
        PilotSounderConfig(n_periods=1)
    with pytest.raises(ValueError, match="amplitude"):
        PilotSounderConfig(amplitude=1.5)
    with pytest.raises(ValueError, match="roots"):
        PilotSounder(PilotSounderConfig(n_tx=4, seq_len=16, n_periods=4))
    with pytest.raises(ValueError, match="threshold"):
        PilotSounderConfig(threshold=2.0)


def test_phy_sounder_agrees_with_the_pilot_sounder():
    """The PHY (hil.phy.PhyLink) and the built-in sounder see the same static 2x2 channel (seed 3)."""
    from hil.capture.sounder import PhySounder
    from hil.channel import build_channel

    ch = build_channel({"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "snr_db": 25.0}, np.random.default_rng(3))
    radio = LoopbackRadio(ch)
    ref = PilotSounder(PilotSounderConfig(n_tx=2)).sound(radio).estimate[0]
    flat = PhySounder(radio, np.random.default_rng(0), mode="flat").sound()
    assert flat.estimate.shape == (1, 2, 2) and flat.capture.shape[0] == 2
    nmse_db = 10 * np.log10(np.sum(np.abs(flat.estimate[0] - ref) ** 2) / np.sum(np.abs(ref) ** 2))
    assert nmse_db < -25.0  # both estimates at ~25 dB SNR with tens of pilot symbols
    ofdm = PhySounder(radio, np.random.default_rng(0), mode="ofdm").sound()
    assert ofdm.estimate.shape == (64, 2, 2)
    # a flat channel: every used subcarrier has |H| of the flat estimate (a timing offset only tilts the
    # phase); within 1.5 dB (per-subcarrier estimates are noisier)
    used = np.r_[1:21, 44:64]
    ratio_db = 20 * np.log10(np.abs(ofdm.estimate[used]) / np.abs(ref)[None])
    assert np.all(np.abs(np.median(ratio_db, axis=0)) < 1.5)
