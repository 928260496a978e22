"""Property tests (hypothesis): shapes and dtype, determinism per seed, phase continuity and
stream-cut invariance across calls."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.channel import CarrierFrequencyOffset, PhaseNoise, build_channel

SETTINGS = settings(max_examples=25, deadline=None)

specs = st.sampled_from([
    {"snr_db": 10.0},
    {"cfo_hz": 1234.5, "sample_rate_hz": 1e6},
    {"fading": "rayleigh", "n_tx": 2, "n_rx": 3},
    {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "block_samples": 37, "rho": 0.95},
    {"fading": "rician", "k_factor_db": 3.0, "n_tx": 3, "n_rx": 1, "doppler_hz": 200.0, "sample_rate_hz": 1e5},
    {"tdl": "TDL-B", "delay_spread_s": 1e-6, "sample_rate_hz": 5e6, "n_tx": 1, "n_rx": 2, "block_samples": 50},
    {"delay_samples": 8.3, "sco_ppm": 50.0, "iq_imbalance": {"amplitude_db": 0.5}, "quantization": 10},
])
# models without randomness drawn per sample, so that cutting the stream cannot change the output
deterministic_specs = st.sampled_from([
    {"cfo_hz": -777.0, "sample_rate_hz": 1e5},
    {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "block_samples": 13, "rho": 0.9, "cfo_hz": 50.0},
    {"fading": "rayleigh", "n_tx": 1, "n_rx": 2, "doppler_hz": 300.0, "sample_rate_hz": 1e5},
    {"tdl": {"delays_s": [0.0, 2.5e-6, 4e-6], "powers_db": [0, -3, -6]}, "sample_rate_hz": 1e6, "block_samples": 16},
    {"delay_samples": 7.6},
    {"iq_imbalance": {"amplitude_db": 1.0, "phase_deg": 3.0}, "dc_offset": 0.01, "quantization": 8},
])


def signal(n_ant, n, seed):
    r = np.random.default_rng(seed)
    return (0.2 * (r.standard_normal((n_ant, n)) + 1j * r.standard_normal((n_ant, n)))).astype(np.complex64)


@SETTINGS
@given(spec=specs, n=st.integers(0, 3000), seed=st.integers(0, 2**31), strided=st.booleans())
def test_shape_dtype_and_seed_determinism(spec, n, seed, strided):
    a = build_channel(spec, np.random.default_rng(seed))
    b = build_channel(spec, np.random.default_rng(seed))
    x = signal(a.n_in, n, seed)
    if strided:  # a non-contiguous view of the same samples gives the same result
        x2 = np.zeros((a.n_in, 2 * n), np.complex64)
        x2[:, ::2] = x
        ya, yb = a(x), b(x2[:, ::2])
    else:
        ya, yb = a(x), b(x)
    assert ya.shape == (a.n_out, n) and ya.dtype == np.complex64
    assert np.all(np.isfinite(ya))
    if strided:  # same up to float32 rounding of a differently laid-out product
        assert np.allclose(ya, yb, rtol=1e-5, atol=1e-6)
    else:
        assert np.array_equal(ya, yb)
    assert np.array_equal(x, signal(a.n_in, n, seed))  # the input is not modified


@SETTINGS
@given(spec=deterministic_specs, cuts=st.lists(st.integers(1, 700), min_size=1, max_size=6),
       seed=st.integers(0, 2**31))
def test_stream_cut_invariance(spec, cuts, seed):
    n = sum(cuts) + 10
    whole = build_channel(spec, np.random.default_rng(seed))
    parts = build_channel(spec, np.random.default_rng(seed))
    x = signal(whole.n_in, n, seed + 1)
    x[:, -10:] = 0  # the interpolators see silence after the end
    y1 = whole(x)
    out, t = [], 0
    for c in cuts + [10]:
        out.append(parts(x[:, t : t + c]))
        t += c
    y2 = np.concatenate(out, axis=1)
    assert np.abs(y1 - y2).max() < 2e-5


@SETTINGS
@given(cfo=st.floats(-1e5, 1e5), cuts=st.lists(st.integers(1, 500), min_size=2, max_size=5))
def test_cfo_phase_continuity(cfo, cuts):
    c = CarrierFrequencyOffset(1, cfo, 1e6)
    y = np.concatenate([c(np.ones((1, k), np.complex64)) for k in cuts], axis=1)[0]
    step = np.angle(y[1:] * y[:-1].conj())
    assert np.allclose(step, 2 * np.pi * cfo / 1e6, atol=1e-5)


@SETTINGS
@given(cuts=st.lists(st.integers(1, 500), min_size=2, max_size=5), seed=st.integers(0, 2**31))
def test_phase_noise_continuity(cuts, seed):
    # phase noise of 1 kHz linewidth at 1 Msps: steps have std 0.08 rad, never a jump at a cut
    pn = PhaseNoise(1, 1e6, np.random.default_rng(seed), linewidth_hz=1e3)
    y = np.concatenate([pn(np.ones((1, k), np.complex64)) for k in cuts], axis=1)[0]
    assert np.all(np.abs(np.angle(y[1:] * y[:-1].conj())) < 0.08 * 6)
    assert np.allclose(np.abs(y), 1.0, atol=1e-5)


def test_chunked_chain_equals_whole_call_processing():
    # [Note: chunked chain]: long calls run in cache-sized chunks; same output as whole-call passes
    from hil.channel.awgn import Chain

    for spec in [
        {"fading": "rayleigh", "n_tx": 2, "n_rx": 2, "rho": 0.99, "block_samples": 1000,
         "snr_db": 10.0, "cfo_hz": 1000.0, "sample_rate_hz": 1e6},
        {"snr_db": 10.0, "cfo_hz": -3000.0, "phase_noise": 10.0, "quantization": 12},
        {"tdl": "TDL-A", "delay_spread_s": 300e-9, "sample_rate_hz": 30.72e6, "snr_db": 20.0},
    ]:
        a = build_channel(spec, np.random.default_rng(5))
        b = build_channel(spec, np.random.default_rng(5))
        assert a._chunkable
        x = signal(a.n_in, 100_000, 6)
        old = Chain.CHUNK
        try:
            Chain.CHUNK = 1 << 14  # 7 chunks (the last one partial)
            ya = a(x)
            Chain.CHUNK = 1 << 30  # whole call
            yb = b(x)
        finally:
            Chain.CHUNK = old
        # equal up to float32 rounding; with the 12-bit quantizer a rounding difference before it
        # can move a sample by one level (2 / 2^12 = 4.9e-4)
        assert np.abs(ya - yb).max() < 6e-4, spec
        assert np.mean(np.abs(ya - yb) > 1e-5) < 1e-3, spec
