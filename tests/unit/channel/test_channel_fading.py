"""Flat fading against theory: envelope, K-factor, spatial correlation, time correlation."""

import numpy as np
import pytest
import scipy.special
import scipy.stats

from hil.channel import FlatFading, TimeBehaviour, build_channel, exponential_correlation
from hil.channel.memory import rho_from_doppler

IID = TimeBehaviour("block", block_samples=1)  # a fresh independent draw every sample


def draws(n, **kw):
    """``n`` independent channel matrices [n, n_rx, n_tx]."""
    f = FlatFading(kw.pop("n_tx", 1), kw.pop("n_rx", 1), np.random.default_rng(kw.pop("seed", 0)),
                   time=kw.pop("time", IID), **kw)
    return f.matrices(n)[1].astype(np.complex128)


def test_rayleigh_envelope_ks_and_power():
    # seed 1, 20000 draws of a 2x2 = 80000 envelopes; Rayleigh with sigma^2 = 1/2 per component
    h = draws(20000, n_tx=2, n_rx=2, seed=1).ravel()
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 0.02  # E|h|^2 = 1 (std of estimate ~0.35%)
    p = scipy.stats.kstest(np.abs(h), scipy.stats.rayleigh(scale=np.sqrt(0.5)).cdf).pvalue
    assert p > 0.01
    # phase uniform
    assert scipy.stats.kstest(np.angle(h), scipy.stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 0.01


@pytest.mark.parametrize("k_db", [0.0, 5.0, 10.0])
def test_rician_k_recovered(k_db):
    # K = |E h|^2 / var(h) over 40000 draws (seed 2): within 0.3 dB, E|h|^2 within 2%
    h = draws(40000, seed=2, k_factor_db=k_db, los_aod_deg=20, los_aoa_deg=-10)[:, 0, 0]
    k_hat = np.abs(h.mean()) ** 2 / np.var(h)
    assert abs(10 * np.log10(k_hat) - k_db) < 0.3
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 0.02


def test_rician_los_steering_vector():
    # the mean of H is sqrt(K/(K+1)) a_rx a_tx^T with ULA steering vectors (2x3, K = 10 dB)
    k = 10.0
    h = draws(20000, n_tx=3, n_rx=2, seed=3, k_factor_db=10 * np.log10(k), los_aod_deg=30,
              los_aoa_deg=-45)
    a_tx = np.exp(1j * np.pi * np.arange(3) * np.sin(np.deg2rad(30)))
    a_rx = np.exp(1j * np.pi * np.arange(2) * np.sin(np.deg2rad(-45)))
    expect = np.sqrt(k / (k + 1)) * np.outer(a_rx, a_tx)
    assert np.abs(h.mean(axis=0) - expect).max() < 0.02  # std of the mean ~0.002


def test_kronecker_spatial_correlation():
    # 3 tx, 2 rx, R_tx exponential 0.7, R_rx complex 0.5 e^{j0.6}; 20000 draws (seed 4), abs tol 0.04
    r_rx = 0.5 * np.exp(0.6j)
    h = draws(20000, n_tx=3, n_rx=2, seed=4, corr_tx=0.7, corr_rx=r_rx)
    R_tx, R_rx = exponential_correlation(3, 0.7), exponential_correlation(2, r_rx)
    rx_hat = np.einsum("kij,klj->il", h, h.conj()) / len(h) / 3  # E[H H^H] / tr(R_tx)
    tx_hat = np.einsum("kji,kjl->il", h.conj(), h) / len(h) / 2  # E[H^H H] / tr(R_rx)
    assert np.abs(rx_hat - R_rx).max() < 0.04
    assert np.abs(tx_hat - R_tx).max() < 0.04


def test_given_correlation_matrix_validated():
    with pytest.raises(ValueError, match="unit diagonal"):
        FlatFading(2, 2, np.random.default_rng(0), corr_tx=[[2, 0], [0, 1]])
    with pytest.raises(ValueError, match="shape"):
        FlatFading(2, 2, np.random.default_rng(0), corr_rx=np.eye(3))


def test_gauss_markov_autocorrelation_vs_rho_power_lag():
    # MUST-SHOW: rho = 0.9, 10^4 blocks, lags 1..10, |r_hat(lag) - rho^lag| < 0.02.
    # Estimated over the 16 independent entries of a 4x4 channel (seed 5); the single-process
    # estimate has std about sqrt((1 + rho^2) / (1 - rho^2) / 10^4) = 0.03, the 16-entry mean 0.008.
    rho, blocks = 0.9, 10_000
    f = FlatFading(4, 4, np.random.default_rng(5),
                   time=TimeBehaviour("gauss_markov", block_samples=32, rho=rho))
    S, h = f.matrices(blocks * 32)
    assert S == 32 and h.shape == (blocks, 4, 4)
    h = h.reshape(blocks, 16).astype(np.complex128)
    p = np.mean(np.abs(h) ** 2)
    assert abs(p - 1) < 0.05
    for lag in range(1, 11):
        r = np.mean(h[lag:] * h[:-lag].conj()) / p
        assert abs(r.real - rho**lag) < 0.02, (lag, r, rho**lag)
        assert abs(r.imag) < 0.02


def test_gauss_markov_end_to_end_blocks_piecewise_constant():
    # through build_channel: 1x1, block 100, rho from Doppler; y = h x is constant within blocks
    spec = {"fading": "rayleigh", "doppler_hz": 5.0, "block_samples": 100, "sample_rate_hz": 1e4}
    ch = build_channel(spec, np.random.default_rng(6))
    fad = ch.stages[0]
    assert fad.time.kind == "gauss_markov"
    assert fad.time.rho == pytest.approx(scipy.special.j0(2 * np.pi * 5 * 100 / 1e4))
    y = np.concatenate([ch(np.ones((1, 250), np.complex64)), ch(np.ones((1, 750), np.complex64))], 1)
    blocks = y.reshape(10, 100)
    assert np.all(np.abs(blocks - blocks[:, :1]) == 0)
    assert len(np.unique(blocks[:, 0])) == 10


def test_rho_from_doppler():
    assert rho_from_doppler(0.0, 1e-3) == 1.0
    assert rho_from_doppler(100.0, 1e-3) == pytest.approx(scipy.special.j0(2 * np.pi * 0.1))


def test_block_fading_independent_and_static_fixed():
    f = FlatFading(2, 2, np.random.default_rng(7), time=TimeBehaviour("block", block_samples=10))
    _, h = f.matrices(10 * 5000)
    h = h.reshape(5000, 4).astype(np.complex128)
    r1 = np.mean(h[1:] * h[:-1].conj())
    assert abs(r1) < 0.03  # independent blocks (std ~0.007)
    s = FlatFading(2, 2, np.random.default_rng(8))
    a = s(np.eye(2, dtype=np.complex64)); b = s(np.eye(2, dtype=np.complex64))
    assert np.array_equal(a, b)  # static: the same H forever
    s2 = FlatFading(2, 2, np.random.default_rng(8))
    assert np.array_equal(s2(np.eye(2, dtype=np.complex64)), a)  # fixed per seed


def test_jakes_autocorrelation_vs_bessel():
    # Continuous Doppler: f_d = 100 Hz at f_s = 10 kHz (hold 1 sample); 8x8 = 64 coefficients over
    # 20000 samples (200 Doppler periods), seed 9. Time-averaged autocorrelation vs J0(2 pi f_d tau)
    # at tau = 0..4 ms: |error| < 0.05 (finite-sum-of-sinusoids and finite-average error).
    fd, fs = 100.0, 1e4
    f = FlatFading(8, 8, np.random.default_rng(9),
                   time=TimeBehaviour("doppler", doppler_hz=fd, sample_rate_hz=fs))
    S, h = f.matrices(20000)
    assert S == 1
    h = h.reshape(20000, 64).astype(np.complex128)
    p = np.mean(np.abs(h) ** 2)
    assert abs(p - 1) < 0.05
    for lag in range(0, 41, 4):
        r = (np.mean(h[lag:] * h[: len(h) - lag].conj()) / p).real
        assert abs(r - scipy.special.j0(2 * np.pi * fd * lag / fs)) < 0.05, lag
    # amplitude statistics close to Rayleigh (sum of 32 sinusoids)
    assert scipy.stats.kstest(np.abs(h[::50]).ravel(), scipy.stats.rayleigh(scale=np.sqrt(0.5)).cdf).pvalue > 0.001


def test_doppler_coarse_grid_interpolation_error_small():
    # f_s = 1 MHz, f_d = 100 Hz: hold 32 samples, coarse evaluation + interpolation. Compared with
    # exact evaluation at the segment centres: mean squared error < 1e-4 (-40 dB).
    tb = TimeBehaviour("doppler", doppler_hz=100.0, sample_rate_hz=1e6)
    f = FlatFading(2, 2, np.random.default_rng(10), time=tb)
    S, h = f.matrices(200_000)
    tc = (np.arange(h.shape[0]) + 0.5) * S
    exact = f.process._sos(tc)
    assert S == 32
    assert np.mean(np.abs(exact - h) ** 2) < 1e-4


def test_doppler_zero_hz_is_static_even_with_hold_samples():
    # doppler_hz = 0 with a hold length used to divide by zero; it is the static channel
    tb = TimeBehaviour("doppler", doppler_hz=0.0, sample_rate_hz=1e6, hold_samples=64)
    assert tb.segment_samples is None
    f = FlatFading(2, 2, np.random.default_rng(24), time=tb)
    S, H = f.matrices(1000)
    assert S is None and H.shape == (1, 2, 2)
    _, H2 = f.matrices(1000)
    assert np.array_equal(H, H2)
