"""Impairments against theory: CFO, quantization SQNR, IQ image rejection, fractional delay, SCO,
phase noise, DC offset, clipping."""

import numpy as np
import pytest

from hil.channel import (
    CarrierFrequencyOffset,
    Clipper,
    DCOffset,
    FractionalDelay,
    IQImbalance,
    PhaseNoise,
    Quantizer,
    SamplingClockOffset,
)


def tone(f_norm, n, amp=1.0, n_ant=1):
    return np.tile(amp * np.exp(2j * np.pi * f_norm * np.arange(n)), (n_ant, 1)).astype(np.complex64)


def bandlimited(rng, n, fmax=0.35, n_tones=40):
    """A sum of random tones below fmax (cycles/sample) and its analytic form at any time."""
    f = rng.uniform(-fmax, fmax, n_tones)
    a = rng.standard_normal(n_tones) + 1j * rng.standard_normal(n_tones)
    a *= 0.3 / np.sqrt(np.sum(np.abs(a) ** 2))

    def at(t):
        return (a[None, :] * np.exp(2j * np.pi * f[None, :] * np.asarray(t, float)[:, None])).sum(1)

    return at(np.arange(n)).astype(np.complex64)[None, :], at


def test_cfo_rotation_and_phase_continuity():
    # phase of y / x advances by exactly 2 pi f / fs per sample, across call boundaries
    fs, cfo = 1e6, 12345.0
    c = CarrierFrequencyOffset(2, cfo, fs, phase_rad=0.3)
    x = np.ones((2, 10000), np.complex64)
    y = np.concatenate([c(x[:, :3333]), c(x[:, 3333:7000]), c(x[:, 7000:])], axis=1)
    expect = np.exp(1j * (0.3 + 2 * np.pi * cfo / fs * np.arange(10000)))
    assert np.abs(y - expect[None]).max() < 1e-5
    assert c.state()["phase_rad"] == pytest.approx((0.3 + 2 * np.pi * cfo / fs * 10000) % (2 * np.pi))


def test_cfo_long_run_phase_accuracy():
    # 10^7 samples in 10 calls: the phase stays exact (float64 bookkeeping), error < 1e-4 rad
    fs, cfo = 30.72e6, 1000.3
    c = CarrierFrequencyOffset(1, cfo, fs)
    for _ in range(10):
        phi0 = c.generate(1_000_000)
    assert phi0 == pytest.approx((2 * np.pi * cfo / fs * 9_000_000) % (2 * np.pi), abs=1e-4)


@pytest.mark.parametrize("bits,tol_db", [(4, 0.6), (6, 0.4), (8, 0.2), (10, 0.15), (12, 0.15), (14, 0.15)])
def test_quantization_sqnr_matches_6_02b_plus_1_76(bits, tol_db):
    # full-scale complex tone (I and Q full-scale sines, frequency (sqrt(5) - 1) / 14.6 so the error
    # is not periodic), 2^16 samples. SQNR vs 6.02 b + 1.76 dB within tol_db: the formula assumes a
    # uniform error; at few bits the peaks of a full-scale sine also clip by up to half a step
    # (measured -0.53 dB at 4 bits, -0.13 dB at 8), so the tolerance is wider there.
    n = 1 << 16
    x = tone((np.sqrt(5) - 1) / 2 / 7.3, n, amp=1.0)
    q = Quantizer(1, bits, full_scale=1.0)
    y = q(x)
    err = y - x
    sqnr = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(err) ** 2))
    assert abs(sqnr - (6.02 * bits + 1.76)) < tol_db, sqnr
    assert np.all(np.abs(y.real) <= 1.0) and len(np.unique(y.real)) <= 2**bits


def test_quantizer_clips_at_full_scale():
    q = Quantizer(1, 8, full_scale=0.5)
    y = q(np.array([[2 + 2j, -2 - 2j, 0.1 + 0j]], np.complex64))
    step = 1.0 / 256
    assert y[0, 0].real == pytest.approx(0.5 - step / 2)
    assert y[0, 1].imag == pytest.approx(-0.5 + step / 2)


@pytest.mark.parametrize("amp_db,phase_deg", [(0.5, 0.0), (0.0, 3.0), (1.0, 5.0), (-0.3, -2.0)])
def test_iq_imbalance_image_rejection(amp_db, phase_deg):
    # tone at +f: the image at -f has power |nu|^2 / |mu|^2; measured IRR within 0.05 dB of theory
    n = 4096
    k = 301
    x = tone(k / n, n)
    iq = IQImbalance(1, amp_db, phase_deg)
    Y = np.fft.fft(iq(x)[0])
    irr = 10 * np.log10(np.abs(Y[k]) ** 2 / np.abs(Y[-k]) ** 2)
    g = 10 ** (amp_db / 20)
    phi = np.deg2rad(phase_deg)
    theory = 10 * np.log10(np.abs(1 + g * np.exp(-1j * phi)) ** 2 / np.abs(1 - g * np.exp(1j * phi)) ** 2)
    assert irr == pytest.approx(theory, abs=0.05)
    assert iq.image_rejection_db == pytest.approx(theory, abs=1e-3)


@pytest.mark.parametrize("delay", [0.0, 0.37, 3.3, 12.75])
def test_fractional_delay_of_bandlimited_signal(delay):
    # a sum of tones within +-0.35 f_s delayed by `delay` samples: error vs the analytic delayed
    # signal below -50 dB (burst followed by silence, so the end of the call is exact), seed 16
    rng = np.random.default_rng(16)
    x, at = bandlimited(rng, 4000)
    xs = np.concatenate([x, np.zeros((1, 100), np.complex64)], axis=1)
    fd = FractionalDelay(1, delay)
    y = fd(xs)[0, :4000]
    ref = at(np.arange(4000) - delay)
    ref[: int(np.ceil(delay)) + 8] = y[: int(np.ceil(delay)) + 8]  # before the signal started
    err = np.mean(np.abs(y - ref)[50:] ** 2) / np.mean(np.abs(ref) ** 2)
    assert 10 * np.log10(err) < -50, 10 * np.log10(err)


def test_fractional_delay_streaming_equals_one_call():
    # delay >= 7: cutting the stream into calls changes nothing
    rng = np.random.default_rng(17)
    x, _ = bandlimited(rng, 3000)
    a = FractionalDelay(1, 9.4)(x)
    b_model = FractionalDelay(1, 9.4)
    b = np.concatenate([b_model(x[:, :1000]), b_model(x[:, 1000:1001]), b_model(x[:, 1001:])], axis=1)
    assert np.abs(a - b).max() < 1e-6


@pytest.mark.parametrize("ppm", [200.0, -200.0, 1000.0])
def test_sampling_clock_offset_tone_frequency_scaled_by_1_over_1_plus_e(ppm):
    # Physical definition: a receiver clock faster by e = ppm 1e-6 samples at times m T / (1 + e),
    # so a tone at f cycles/sample comes out at f / (1 + e) (lower for ppm > 0). Measured: the
    # least-squares phase slope of the output over a stretch without a wrap (the first 800
    # samples after the start-up), f = 0.05. The slope error of the interpolator (~-60 dB) is
    # below 1e-7 rad/sample; the expected shift 2 pi f e/(1+e) is >= 6e-5 rad/sample, and the
    # sign is checked too (a ppm > 0 that behaves like ppm < 0 fails).
    f, n = 0.05, 4000
    e = ppm * 1e-6
    sco = SamplingClockOffset(1, ppm)
    y = sco(tone(f, n))[0]
    m = np.arange(20, 820)
    d = m * e / (1 + e)
    assert np.all(np.floor(d) == np.floor(d[0]))  # no wrap inside the fitted stretch
    slope = np.polyfit(m, np.unwrap(np.angle(y[m])), 1)[0]
    expect = 2 * np.pi * f / (1 + e)
    assert slope == pytest.approx(expect, abs=1e-6), (slope, expect)
    assert np.sign(slope - 2 * np.pi * f) == -np.sign(ppm)


def test_sampling_clock_offset_time_stretch_of_bandlimited_signal():
    # Output sample m is the input at time m / (1 + e) (physical), plus the whole samples skipped
    # (ppm > 0) at each wrap of the delay modulo one sample (shape contract: one output per input):
    # y[m] = x(m / (1 + e) + floor(m e / (1 + e))). ppm = 200 over 20000 samples in two calls,
    # against the analytic band-limited signal: error below -45 dB outside the edges, seed 18.
    rng = np.random.default_rng(18)
    x, at = bandlimited(rng, 20000, fmax=0.3)
    sco = SamplingClockOffset(1, 200.0)
    y = np.concatenate([sco(x[:, :7000]), sco(x[:, 7000:])], axis=1)[0]
    e = 200e-6
    m = np.arange(20000)
    ref = at(m / (1 + e) + np.floor(m * e / (1 + e)))
    err = np.mean(np.abs(y - ref)[20:19990] ** 2) / np.mean(np.abs(ref) ** 2)
    assert 10 * np.log10(err) < -45, 10 * np.log10(err)
    # the delay grows 0 -> 1 and wraps every (1 + e) / e = 5001 samples: 3 wraps in 20000 samples
    d = sco.delay(m.astype(float))
    assert np.all((d >= 0) & (d < 1))
    assert len(np.flatnonzero(np.diff(d) < -0.5)) == 3
    assert np.all(np.diff(d)[np.diff(d) > -0.5] > 0)  # between wraps the delay grows (ppm > 0)


def test_phase_noise_wiener_increments():
    # increments of the phase have variance 2 pi beta / f_s (within 3%), and are independent
    fs, beta = 1e6, 100.0
    pn = PhaseNoise(2, fs, np.random.default_rng(19), linewidth_hz=beta)
    x = np.ones((2, 200000), np.complex64)
    y = np.concatenate([pn(x[:, :100000]), pn(x[:, 100000:])], axis=1)
    assert np.array_equal(y[0], y[1])  # one LO for all antennas
    dphi = np.angle(y[0, 1:] * y[0, :-1].conj()).astype(np.float64)
    assert np.var(dphi) == pytest.approx(2 * np.pi * beta / fs, rel=0.03)
    assert abs(np.corrcoef(dphi[1:], dphi[:-1])[0, 1]) < 0.01
    # PSD level form: L(f0) = beta / (2 pi f0^2)
    pn2 = PhaseNoise(1, fs, np.random.default_rng(0), psd_dbc_hz=-80.0, psd_offset_hz=10e3)
    assert pn2.linewidth_hz == pytest.approx(2 * np.pi * 1e8 * 1e-8)


def test_phase_noise_psd_matches_lorentzian_tail():
    # Welch PSD of exp(j phi) (one-sided offsets, both sides averaged) at offsets f >> beta against
    # the documented L(f) = beta / (2 pi f^2) (the tail of the Lorentzian of a Wiener phase), within
    # +-1 dB. beta = 100 Hz, f_s = 1 MHz, 2^21 samples, Hann segments of 2^14 (61 Hz bins),
    # each level the mean of the bins within +-5% of the offset (estimate std ~0.1 dB), seed 20.
    import scipy.signal

    fs, beta = 1e6, 100.0
    pn = PhaseNoise(1, fs, np.random.default_rng(20), linewidth_hz=beta)
    z = pn(np.ones((1, 1 << 21), np.complex64))[0]
    f, p = scipy.signal.welch(z, fs=fs, nperseg=1 << 14, return_onesided=False, detrend=False)
    assert np.sum(p) * (f[1] - f[0]) == pytest.approx(1.0, rel=1e-3)  # dBc: total power 1
    for f0 in (2e3, 5e3, 20e3, 100e3):
        band = (np.abs(np.abs(f) - f0) <= 0.05 * f0)
        measured = 10 * np.log10(np.mean(p[band]))
        theory = 10 * np.log10(np.mean(beta / (2 * np.pi * f[band] ** 2)))
        assert measured == pytest.approx(theory, abs=1.0), (f0, measured, theory)


def test_dc_offset_and_clipping():
    x = np.full((2, 10), 0.5 + 0.5j, np.complex64)
    y = DCOffset(2, [0.1 + 0.0j, -0.2j])(x)
    assert np.allclose(y[0], 0.6 + 0.5j) and np.allclose(y[1], 0.5 + 0.3j)
    big = np.array([[1.5 + 0.2j, -2 - 2j, 0.3j]], np.complex64)
    c = Clipper(1, 1.0, "iq")(big)
    assert np.allclose(c, [[1.0 + 0.2j, -1 - 1j, 0.3j]])
    e = Clipper(1, 1.0, "envelope")(big)
    assert np.allclose(np.abs(e[0, :2]), 1.0, atol=1e-6)
    assert np.allclose(np.angle(e[0, :2]), np.angle(big[0, :2]), atol=1e-6)
    assert e[0, 2] == big[0, 2]


def test_impairment_argument_errors():
    with pytest.raises(ValueError, match="sample_rate_hz"):
        CarrierFrequencyOffset(1, 100.0, 0.0)
    with pytest.raises(ValueError, match="bits"):
        Quantizer(1, 0)
    with pytest.raises(ValueError, match="delay_samples"):
        FractionalDelay(1, -1.0)
    with pytest.raises(ValueError, match="linewidth_hz"):
        PhaseNoise(1, 1e6, np.random.default_rng(0))
