"""Channel statistics against theory (fixed seeds, stated tolerances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.capture.stats import (
    autocorrelation,
    channel_stats,
    coherence_time_s,
    gauss_markov_rho,
    power_delay_profile,
    rician_k_mean,
    rician_k_moments,
    rms_delay_spread_s,
    snr_summary,
)


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
def test_gauss_markov_rho_and_autocorrelation(gm_estimates, rho):
    # seed 10; 1500 frames x 4 pairs; the lag-one estimate's std is about sqrt((1-rho^2)/6000) <= 0.011
    h = gm_estimates(np.random.default_rng(10), 1500, 1, 2, 2, rho, 0.0)
    assert abs(gauss_markov_rho(h) - rho) < 0.03 * (1 - rho) / 0.1 + 0.004
    r = autocorrelation(h, max_lag=5).real
    # theory: R[k] = rho^k; tolerance 0.05 absolute (sampling error of correlated sequences)
    np.testing.assert_allclose(r, rho ** np.arange(6), atol=0.05)
    # the multi-lag log fit agrees with the lag-one estimate
    assert abs(gauss_markov_rho(h, max_lag=3) - rho) < 0.03


def test_rho_with_missing_frames(gm_estimates):
    h = gm_estimates(np.random.default_rng(11), 2000, 1, 2, 2, 0.8, 1.0)
    keep = np.random.default_rng(0).random(2000) > 0.3  # 30 % of frames missed
    slot = np.flatnonzero(keep)
    # with gaps, only pairs of frames one slot apart count: still rho (tolerance 0.02)
    assert abs(gauss_markov_rho(h[keep], slot) - 0.8) < 0.02
    # ignoring the gaps would mix lags and bias rho down
    assert gauss_markov_rho(h[keep]) < 0.8 - 0.05


def test_estimation_noise_correction(gm_estimates):
    rng = np.random.default_rng(12)
    h = gm_estimates(rng, 3000, 1, 2, 2, 0.9, 10 ** 0.5)
    s2 = 0.1  # estimate SNR 10 dB
    noisy = h + np.sqrt(s2 / 2) * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    raw, corrected = gauss_markov_rho(noisy), gauss_markov_rho(noisy, estimate_var=s2)
    assert abs(corrected - 0.9) < 0.015
    assert raw < 0.9 - 0.03  # uncorrected: rho * P / (P + s2) with P = 1/(K+1) ~ 0.24
    k_c = 10 * math.log10(rician_k_moments(noisy, s2))
    assert abs(k_c - 5.0) < 0.7
    assert 10 * math.log10(rician_k_moments(noisy)) < 5.0 - 0.5


@pytest.mark.parametrize("k_db", [0.0, 5.0, 10.0])
def test_rician_k_moment_method(gm_estimates, k_db):
    # seed 13; 3000 i.i.d. frames (rho = 0) x 4 pairs: moment-method K within 0.6 dB
    h = gm_estimates(np.random.default_rng(13), 3000, 1, 2, 2, 0.0, 10 ** (k_db / 10))
    assert abs(10 * math.log10(rician_k_moments(h)) - k_db) < 0.6
    assert abs(10 * math.log10(rician_k_mean(h)) - k_db) < 0.6


def test_rayleigh_gives_k_near_zero(gm_estimates):
    h = gm_estimates(np.random.default_rng(14), 4000, 1, 2, 2, 0.0, 0.0)
    assert rician_k_moments(h) < 0.15  # linear; exactly 0 when the sample kurtosis >= 2
    assert rician_k_moments(np.ones((10, 1, 1, 1))) == math.inf


def test_coherence_time(gm_estimates):
    h = gm_estimates(np.random.default_rng(15), 3000, 1, 2, 2, 0.95, 0.0)
    # Gauss-Markov: R[k] = rho^k = 0.5 at k = ln 0.5 / ln rho = 13.5 slots; 1 ms per slot
    tc = coherence_time_s(h, None, 1e-3)
    assert tc == pytest.approx(math.log(0.5) / math.log(0.95) * 1e-3, rel=0.15)
    assert coherence_time_s(np.ones((20, 1, 1, 1)) + 1e-3 * np.arange(20)[:, None, None, None], None, 1e-3) > 0


def test_delay_spread_two_taps():
    # two taps, 0 and 4 samples, powers 1 and 0.25 -> tau_rms = sqrt(0.2*0.8) * 4 samples
    n_sc, fs = 64, 1e6
    taps = np.zeros(n_sc, complex)
    taps[0], taps[4] = 1.0, 0.5
    rng = np.random.default_rng(16)
    ph = np.exp(1j * rng.uniform(0, 2 * np.pi, (50, 1, 1, 2)))
    t = np.zeros((50, n_sc, 1, 1), complex)
    t[:, 0] = ph[..., 0]
    t[:, 4] = 0.5 * ph[..., 1]
    h = np.fft.fft(t, axis=1)
    pdp = power_delay_profile(h)
    np.testing.assert_allclose(pdp[[0, 4]], [0.8, 0.2], atol=1e-9)
    ds = rms_delay_spread_s(pdp, 1 / fs)
    assert ds == pytest.approx(math.sqrt(0.2 * 0.8) * 4 / fs, rel=1e-6)
    st_ = channel_stats(h, frame_interval_s=1e-3, subcarrier_spacing_hz=fs / n_sc)
    assert st_.rms_delay_spread_s == pytest.approx(ds, rel=1e-6)


def test_snr_summary():
    s = snr_summary(np.array([10.0, 10.0, 20.0, np.nan]))
    assert s.n == 3 and s.median_db == 10.0
    assert s.mean_db == pytest.approx(10 * math.log10((10 + 10 + 100) / 3))
    assert snr_summary(np.array([np.nan])).n == 0


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        gauss_markov_rho(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="expected"):
        gauss_markov_rho(np.ones((5, 2)))
    with pytest.raises(ValueError, match="increasing"):
        gauss_markov_rho(np.ones((3, 1, 1, 1)), slot=np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="frame_interval_s"):
        coherence_time_s(np.ones((3, 1, 1, 1)), None, 0.0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture is a pure function
@given(scale_db=st.floats(-60, 40), phase=st.floats(-math.pi, math.pi), seed=st.integers(0, 2**16))
def test_statistics_invariant_to_a_common_complex_gain(gm_estimates, scale_db, phase, seed):
    """rho, K and the coherence time describe the channel's shape, not its gain or phase."""
    h = gm_estimates(np.random.default_rng(seed), 100, 1, 2, 2, 0.7, 2.0)
    g = 10 ** (scale_db / 20) * np.exp(1j * phase)
    a, b = channel_stats(h, frame_interval_s=1e-3), channel_stats(g * h, frame_interval_s=1e-3)
    assert b.gauss_markov_rho == pytest.approx(a.gauss_markov_rho, abs=1e-9)
    assert b.rician_k_db == pytest.approx(a.rician_k_db, abs=1e-6)
    assert b.coherence_time_s == pytest.approx(a.coherence_time_s, rel=1e-9)
    assert b.mean_gain_db == pytest.approx(a.mean_gain_db + scale_db, abs=1e-6)


def test_static_channel_gives_undefined_rho_not_an_error():
    rng = np.random.default_rng(17)
    h = np.ones((50, 1, 2, 2)) + 0.01 * (rng.standard_normal((50, 1, 2, 2)) + 1j * rng.standard_normal((50, 1, 2, 2)))
    st_ = channel_stats(h, frame_interval_s=1e-3, estimate_var=2e-4)  # the variation is all estimation noise
    assert math.isnan(st_.gauss_markov_rho) and st_.coherence_time_s == math.inf
    assert st_.rician_k_db > 20


def test_envelope_rho_is_blind_to_a_random_common_phase(gm_estimates):
    # seed 18; 4x4, K = 5 dB, rho = 0.8, 600 frames, every frame rotated by a random common phase (what
    # an uncorrected CFO between bursts does). Tolerance 0.03 (std ~0.008 over seeds).
    from hil.capture.stats import gauss_markov_rho_envelope

    rng = np.random.default_rng(18)
    h = gm_estimates(rng, 600, 1, 4, 4, 0.8, 10**0.5)
    rotated = h * np.exp(1j * rng.uniform(0, 2 * np.pi, (600, 1, 1, 1)))
    assert gauss_markov_rho(rotated) < 0.3  # the complex estimate breaks
    assert abs(gauss_markov_rho_envelope(rotated) - 0.8) < 0.03
    assert abs(gauss_markov_rho_envelope(h) - gauss_markov_rho_envelope(rotated)) < 1e-9
    assert 10 * math.log10(rician_k_moments(rotated)) == pytest.approx(10 * math.log10(rician_k_moments(h)))


def test_input_errors_raise_and_only_undefined_statistics_become_nan():
    """Finding: channel_stats used to turn every ValueError (slots out of order, bad shapes) into NaN."""
    from hil.capture.stats import UndefinedStatistic, gauss_markov_rho

    rng = np.random.default_rng(18)
    h = rng.standard_normal((20, 1, 2, 2)) + 1j * rng.standard_normal((20, 1, 2, 2))
    bad_slots = np.r_[0:10, 5:15]  # not increasing
    with pytest.raises(ValueError, match="strictly increasing") as e:
        channel_stats(h, bad_slots, frame_interval_s=1e-3)
    assert not isinstance(e.value, UndefinedStatistic)
    with pytest.raises(ValueError, match="expected shape"):
        channel_stats(h, np.arange(19), frame_interval_s=1e-3)
    with pytest.raises(ValueError, match="frame_interval_s"):
        channel_stats(h, frame_interval_s=0.0)
    # the undefined case is its own type (still a ValueError for callers that catch those)
    with pytest.raises(UndefinedStatistic):
        gauss_markov_rho(np.ones((10, 1, 1, 1)))
    assert issubclass(UndefinedStatistic, ValueError)


def _rotate(h, cfo_hz, frame_interval_s):
    t = np.arange(h.shape[0]) * frame_interval_s
    return h * np.exp(2j * np.pi * cfo_hz * t)[:, None, None, None]


def test_carrier_offset_between_frames_is_removed_before_complex_correlation(gm_estimates):
    # Seed 31, 2x2 Rayleigh, rho 0.99 per 1 ms slot, 3000 frames, turned by a 1.3 kHz offset between
    # frames (1.3 cycles per slot). Without tracking the complex rho is Re(0.99 e^{j 2 pi 0.3}) < 0;
    # with it, within 0.01 of 0.99 (lag-one standard error sqrt((1 - rho^2) / 12000) = 0.0013).
    from hil.capture.stats import autocorrelation, common_rotation

    h = gm_estimates(np.random.default_rng(31), 3000, 1, 2, 2, 0.99, 0.0)
    rot = _rotate(h, 1300.0, 1e-3)
    assert abs(gauss_markov_rho(rot) - 0.99) < 0.01
    assert autocorrelation(rot, max_lag=1, track_rotation=False)[1].real < 0.0
    w = common_rotation(rot)
    assert abs(np.angle(np.exp(1j * (w - 2 * np.pi * 0.3)))) < 0.01
    # Rician K from the mean (K = 10 dB): the rotating LOS smears the mean unless the rotation goes
    k_rot = _rotate(gm_estimates(np.random.default_rng(32), 3000, 1, 2, 2, 0.0, 10.0), 1300.0, 1e-3)
    assert abs(10 * math.log10(rician_k_mean(k_rot)) - 10.0) < 0.6
    assert 10 * math.log10(rician_k_mean(k_rot, track_rotation=False)) < 0.0


def test_intervals_follow_independent_samples_and_short_recordings_warn(gm_estimates):
    from hil.capture.stats import channel_stats, decorrelation_slots

    assert decorrelation_slots(0.0) == 1.0 and decorrelation_slots(0.999) == pytest.approx(999.5, rel=1e-3)
    # Rayleigh (K = 0) at rho 0.999: 2000 frames are 2 independent fades per pair. Seed 33.
    slow = gm_estimates(np.random.default_rng(33), 2000, 1, 2, 2, 0.999, 0.0)
    st = channel_stats(slow, frame_interval_s=1e-3, n_boot=100)
    assert st.n_independent < 10 and st.decorrelation_slots > 100  # rho estimated from 2 fades: biased low
    assert any("Rician K" in w for w in st.warnings)
    # i.i.d. frames (rho 0): 2000 independent samples per pair, no warning, and the intervals cover
    # the truth (K = 0 -> -inf dB, mean gain 0 dB; 100 block resamples, seed 0) and are narrow
    fast = gm_estimates(np.random.default_rng(34), 2000, 1, 2, 2, 0.0, 0.0)
    st = channel_stats(fast, frame_interval_s=1e-3, n_boot=100)
    assert st.warnings == () or all("coherence" in w for w in st.warnings)
    lo, hi = st.ci95["mean_gain_db"]
    assert lo <= 0.0 <= hi and hi - lo < 0.5
    assert st.ci95["rician_k_db"][0] == -math.inf
    # the same number of frames at rho 0.99 (L = 100 slots): the mean-gain interval is several
    # times wider, because it has 20 independent fades per pair instead of 2000
    mid = channel_stats(gm_estimates(np.random.default_rng(35), 2000, 1, 2, 2, 0.99, 0.0), frame_interval_s=1e-3,
                        n_boot=100)
    lo2, hi2 = mid.ci95["mean_gain_db"]
    assert hi2 - lo2 > 3 * (hi - lo)
    assert lo2 <= 0.0 <= hi2
