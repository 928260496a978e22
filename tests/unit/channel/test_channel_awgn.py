"""AWGN: SNR calibration (must-show: within 0.2 dB), fixed noise power, noise statistics."""

import numpy as np
import pytest

from hil.channel import AWGN, active_power, build_channel


def qpsk_burst(rng, n, amp, lead=3000, trail=2000, n_ant=1):
    s = amp * ((rng.integers(0, 2, (n_ant, n)) * 2 - 1) + 1j * (rng.integers(0, 2, (n_ant, n)) * 2 - 1)) / np.sqrt(2)
    x = np.zeros((n_ant, lead + n + trail), np.complex64)
    x[:, lead : lead + n] = s
    return x, slice(lead, lead + n)


@pytest.mark.parametrize("noise", ["pool", "exact"])
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_snr_calibration_burst_with_silent_margins(noise, snr_db):
    # MUST-SHOW: a 40000-sample QPSK burst at -10 dBFS between 5000 silent samples, 2 antennas
    # with different powers; measured SNR = P_signal(on) / P_noise(all samples) within 0.2 dB
    # (estimate std ~0.03 dB), seed 11.
    rng = np.random.default_rng(11)
    x, on = qpsk_burst(rng, 40000, 0.316, n_ant=2)
    x[1] *= 0.1  # antenna 2 is 20 dB weaker: SNR is per receive antenna
    ch = build_channel({"n_tx": 2, "n_rx": 2, "snr_db": snr_db, "noise": noise}, rng)
    y = ch(x)
    w = y - x
    for a in range(2):
        snr_hat = 10 * np.log10(np.mean(np.abs(x[a, on]) ** 2) / np.mean(np.abs(w[a]) ** 2))
        assert abs(snr_hat - snr_db) < 0.2, (a, snr_hat)


def test_explicit_signal_power_and_fixed_noise_power():
    rng = np.random.default_rng(12)
    x = np.zeros((1, 100000), np.complex64)
    a = AWGN(1, rng, snr_db=20, signal_power=0.5, noise="exact")
    w = a(x)
    assert np.mean(np.abs(w) ** 2) == pytest.approx(0.5 / 100, rel=0.02)  # std ~0.45%
    b = AWGN(1, rng, noise_power=1e-3)
    w = b(x)
    assert np.mean(np.abs(w) ** 2) == pytest.approx(1e-3, rel=0.02)


def test_silent_call_reuses_last_measured_power():
    rng = np.random.default_rng(13)
    a = AWGN(1, rng, snr_db=10)
    x, _ = qpsk_burst(rng, 20000, 0.5, lead=0, trail=0)
    a(x)
    w = a(np.zeros((1, 50000), np.complex64))
    assert np.mean(np.abs(w) ** 2) == pytest.approx(0.25 / 10, rel=0.03)


def test_average_snr_over_fading_tx_reference():
    # With fading, snr_reference="auto" -> "tx": N0 = (sum of tx powers) / SNR, so the *average*
    # received SNR per antenna over the fading is the configured one. 2x2 Rayleigh, block fading
    # of 100 samples over 2000 blocks (seed 14): mean |Hx|^2 / N0 within 0.2 dB (std ~0.07 dB).
    rng = np.random.default_rng(14)
    ch = build_channel({"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "block_samples": 100,
                        "snr_db": 15.0, "noise": "exact"}, rng)
    x, on = qpsk_burst(rng, 200000, 0.3, lead=0, trail=0, n_ant=2)
    coeffs = ch.generate(x.shape[1])
    clean = ch.stages[0].apply(x, coeffs[0])
    y = ch.apply(x, coeffs)
    n0 = ch.stages[1].state()["noise_power"]
    p_tx = np.sum(np.mean(np.abs(x) ** 2, axis=1))
    assert n0 == pytest.approx([p_tx / 10**1.5] * 2, rel=1e-3)
    snr_avg = 10 * np.log10(np.mean(np.abs(clean) ** 2) / np.mean(np.abs(y - clean) ** 2))
    assert abs(snr_avg - 15.0) < 0.2


def test_pool_noise_statistics():
    # pool noise: variance 1 +- 1%, E|w|^4 / E|w|^2^2 = 2 (complex Gaussian) +- 0.05,
    # white (|autocorrelation| < 0.01 at lags 1..5), I and Q uncorrelated; 10^6 samples, seed 15
    rng = np.random.default_rng(15)
    w = AWGN(1, rng, noise_power=1.0)(np.zeros((1, 1 << 20), np.complex64))[0].astype(np.complex128)
    p = np.mean(np.abs(w) ** 2)
    assert abs(p - 1) < 0.01
    assert abs(np.mean(np.abs(w) ** 4) / p**2 - 2) < 0.05
    for lag in range(1, 6):
        assert abs(np.mean(w[lag:] * w[:-lag].conj())) < 0.01
    assert abs(np.mean(w.real * w.imag)) < 0.01
    assert abs(np.mean(w.real**2) - 0.5) < 0.01


def test_active_power_ignores_silence():
    x = np.zeros((2, 10000), np.complex64)
    x[0, 1000:3000] = 0.5
    p = active_power(x)
    assert p[0] == pytest.approx(0.25, rel=1e-5)
    assert p[1] == 0.0


def test_awgn_argument_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exactly one"):
        AWGN(1, rng)
    with pytest.raises(ValueError, match="noise"):
        AWGN(1, rng, snr_db=1, noise="fast")


@pytest.mark.parametrize("chunked", [False, True])
def test_chain_apply_does_not_write_into_caller_coefficients(chunked, monkeypatch):
    # [Note: generate/apply]: the power a "tx"-reference AWGN stage needs is measured on the input
    # each time, into a copy: the caller's AwgnCoeffs keep signal_power None, and applying the same
    # coefficients to a 20 dB weaker input gives 20 dB less noise (exactly: N0 = G p_tx / SNR).
    # Chunked: the same through the chunked path of Chain (CHUNK shrunk to 4096). Seed 21.
    from hil.channel.awgn import Chain

    if chunked:
        monkeypatch.setattr(Chain, "CHUNK", 4096)
    rng = np.random.default_rng(21)
    ch = build_channel({"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "snr_db": 10.0,
                        "noise": "exact", "cfo_hz": 100.0, "sample_rate_hz": 1e6}, rng)
    awgn_i = next(i for i, s in enumerate(ch.stages) if isinstance(s, AWGN))
    x, _ = qpsk_burst(rng, 20000, 0.3, lead=0, trail=0, n_ant=2)
    coeffs = ch.generate(x.shape[1])
    ch.apply(x, coeffs)
    n0_strong = np.array(ch.stages[awgn_i].state()["noise_power"])
    assert coeffs[awgn_i].signal_power is None
    ch.apply(0.1 * x, coeffs)
    n0_weak = np.array(ch.stages[awgn_i].state()["noise_power"])
    assert coeffs[awgn_i].signal_power is None
    p_tx = np.sum(np.mean(np.abs(x.astype(np.complex128)) ** 2, axis=1))
    assert n0_strong == pytest.approx([p_tx / 10] * 2, rel=1e-3)
    assert n0_weak == pytest.approx(n0_strong / 100, rel=1e-3)


def test_rx_reference_awgn_power_is_local_to_apply():
    # same coefficients, input 20 dB weaker: the measured power (so N0) follows the input; the
    # coefficient object is unchanged. Seed 22.
    rng = np.random.default_rng(22)
    a = AWGN(1, rng, snr_db=10, noise="exact")
    x, _ = qpsk_burst(rng, 20000, 0.5, lead=0, trail=0)
    c = a.generate(x.shape[1])
    w1 = a.apply(x, c) - x
    w2 = a.apply(0.1 * x, c) - 0.1 * x
    assert c.signal_power is None
    assert np.mean(np.abs(w2) ** 2) / np.mean(np.abs(w1) ** 2) == pytest.approx(0.01, rel=1e-3)


def test_chain_mean_power_gain_is_product_of_stages():
    from hil.channel import FixedMatrix
    from hil.channel.awgn import Chain

    h1 = np.array([[1.0, 0.5j], [0.0, 2.0]])
    h2 = np.array([[0.5, 1.0]])
    ch = Chain([FixedMatrix(h1), AWGN(2, np.random.default_rng(0), noise_power=1e-3), FixedMatrix(h2)])
    g = ch.mean_power_gain()
    assert np.allclose(g, np.abs(h2) ** 2 @ np.abs(h1) ** 2)
    g[:] = 0  # a copy: the chain's own value is untouched
    assert np.allclose(ch.mean_power_gain(), np.abs(h2) ** 2 @ np.abs(h1) ** 2)


def test_pool_slice_coeffs_requires_segment_multiple():
    from hil.channel.awgn import POOL_SEGMENT

    a = AWGN(1, np.random.default_rng(23), snr_db=10)
    c = a.generate(3 * POOL_SEGMENT)
    s = a.slice_coeffs(c, POOL_SEGMENT, 3 * POOL_SEGMENT)
    assert s.n == 2 * POOL_SEGMENT and s.offsets.shape == (1, 2)
    assert np.array_equal(s.offsets[0], c.offsets[0, 1:])
    with pytest.raises(ValueError, match=str(POOL_SEGMENT)):
        a.slice_coeffs(c, 4096, 3 * POOL_SEGMENT)


@pytest.mark.parametrize("noise", ["pool", "exact"])
@pytest.mark.parametrize("n", [1, 16384, 40000])
def test_fused_noise_add_matches_numpy_path(noise, n, monkeypatch):
    # The BLAS saxpy noise add (see [Note: fused noise add]) must add the same noise as the plain
    # numpy multiply + add: equal up to float32 rounding (|diff| <= 1e-6 at unit signal scale),
    # on a column slice (rows contiguous, array not) too; nothing written outside the slice. Seed 31.
    import hil.channel.awgn as awgn_mod

    if awgn_mod._saxpy is None:
        pytest.skip("scipy BLAS saxpy not available: only the numpy path exists")
    rng = np.random.default_rng(31)
    a = AWGN(2, rng, snr_db=5.0, noise=noise)
    c = a.generate(n)
    base = (rng.standard_normal((2, n + 8)) + 1j * rng.standard_normal((2, n + 8))).astype(np.complex64)
    fused = base.copy()
    view = fused[:, 4 : 4 + n]
    a.apply_inplace(view, c)
    monkeypatch.setattr(awgn_mod, "_saxpy", None)
    ref = a.apply(base[:, 4 : 4 + n], c)
    np.testing.assert_allclose(view, ref, rtol=0, atol=1e-6)
    assert np.abs(view - base[:, 4 : 4 + n]).max() > 0.1  # noise was added at all (N0 ~ 0.6)
    np.testing.assert_array_equal(fused[:, :4], base[:, :4])
    np.testing.assert_array_equal(fused[:, 4 + n :], base[:, 4 + n :])
