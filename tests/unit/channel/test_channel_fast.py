"""The fused fast path (hil.channel.fast) against the numpy stage-by-stage reference."""

import numpy as np
import pytest

from hil.channel import build_channel, fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

FS = 61.44e6
SPECS = {
    "1x1 awgn+cfo (rx reference)": (1, {"fading": "none", "snr_db": 20.0, "cfo_hz": 1000.0}),
    "2x2 gauss-markov+awgn+cfo": (2, {"fading": "rayleigh", "rho": 0.999, "block_samples": 1024,
                                     "snr_db": 10.0, "cfo_hz": 1000.0}),
    "3x2 rician static, exact noise": (3, {"n_rx": 2, "fading": "rician", "k_factor_db": 3.0, "snr_db": 5.0,
                                           "noise": "exact"}),
    "2x2 tdl-a+awgn+cfo": (2, {"tdl": "TDL-A", "delay_spread_s": 30e-9, "rho": 0.999, "block_samples": 1024,
                              "snr_db": 10.0, "cfo_hz": 1000.0}),
    "2x2 tdl-c static, no noise": (2, {"tdl": "TDL-C", "delay_spread_s": 300e-9}),
    "1x1 cfo only": (1, {"cfo_hz": -2500.0}),
    # odd lag and antenna counts (the kernel's remainder branches): lags (0, 3, 10), 3 in, 1 out / 1 in, 3 out
    "3x1 tdl 3 lags+awgn+cfo": (3, {"n_rx": 1, "tdl": {"delays_s": [0.0, 3 / FS, 10 / FS], "powers_db": [0, -3, -6]},
                                   "rho": 0.99, "block_samples": 700, "snr_db": 15.0, "cfo_hz": 300.0}),
    "1x3 tdl 3 lags, block fading": (1, {"n_rx": 3, "tdl": {"delays_s": [0.0, 3 / FS, 10 / FS],
                                                             "powers_db": [0, -3, -6]},
                                         "time": "block", "block_samples": 333}),
}


def _pair(monkeypatch, n, spec):
    s = {"n_tx": n, "n_rx": n, "sample_rate_hz": FS, **spec}
    monkeypatch.setenv("HIL_CHANNEL_FAST", "0")
    ref = build_channel(s, np.random.default_rng(7))
    monkeypatch.setenv("HIL_CHANNEL_FAST", "1")
    fst = build_channel(s, np.random.default_rng(7))
    return ref, fst


@pytest.mark.parametrize("name", list(SPECS))
def test_fused_equals_reference(monkeypatch, name):
    """Same seed, same calls (odd lengths that cut segments, rotator blocks and noise segments):
    outputs within 1e-5 of the signal RMS (float32 rounding only), and the same stage state."""
    n, spec = SPECS[name]
    ref, fst = _pair(monkeypatch, n, spec)
    assert ref._fused is None and fst._fused is not None
    rng = np.random.default_rng(3)
    for length in (5000, 1, 40000, 70001, 1024):
        x = (0.3 * (rng.standard_normal((ref.n_in, length)) + 1j * rng.standard_normal((ref.n_in, length)))
             ).astype(np.complex64)
        ya, yb = ref(x), fst(x)
        assert yb.dtype == np.complex64 and yb.shape == ya.shape
        rms = np.sqrt(np.mean(np.abs(ya) ** 2))
        assert np.max(np.abs(ya - yb)) <= 1e-5 * rms, name
    for sa, sb in zip(ref.stages, fst.stages):
        for k in ("_last_n0", "_last_power", "_hist", "clock", "phase"):
            if hasattr(sa, k) and getattr(sa, k) is not None:
                np.testing.assert_allclose(np.asarray(getattr(sb, k)), np.asarray(getattr(sa, k)), rtol=1e-6)


def test_apply_into_writes_the_given_buffer(monkeypatch):
    ref, fst = _pair(monkeypatch, *SPECS["2x2 gauss-markov+awgn+cfo"])
    x = np.full((2, 4096), 0.5 + 0.25j, np.complex64)
    out = np.zeros((2, 4096), np.complex64)
    y = fst.apply_into(x, fst.generate(4096), out)
    assert y is out
    np.testing.assert_allclose(out, ref(x), atol=1e-5)
    with pytest.raises(ValueError, match="C-contiguous complex64"):
        fst.apply_into(x, fst.generate(4096), np.zeros((2, 4095), np.complex64))


def test_unsupported_chain_uses_the_reference():
    ch = build_channel({"n_tx": 1, "n_rx": 1, "phase_noise": {"linewidth_hz": 10.0}, "snr_db": 10.0},
                       np.random.default_rng(0))
    assert ch._fused is None


@pytest.mark.parametrize("n,spec", [
    (2, {"tdl": "TDL-A", "delay_spread_s": 30e-9, "rho": 0.999, "block_samples": 1024, "cfo_hz": 1000.0}),
    (3, {"n_rx": 1, "tdl": {"delays_s": [0.0, 3 / FS, 10 / FS], "powers_db": [0, -3, -6]}, "time": "block",
         "block_samples": 333, "cfo_hz": -700.0}),
    (2, {"tdl": "TDL-C", "delay_spread_s": 300e-9}),
], ids=["2x2 tdl-a gauss-markov+cfo", "3x1 3 lags block+cfo", "2x2 tdl-c static"])
def test_fused_chunk_splits_equal_one_call(n, spec):
    """The FIR history, the segment grid and the CFO phase carry across calls: one call of 70001
    samples and the same samples cut into calls of 1, 5000, 1023, 40000 and the rest give the same
    output (seed 7 for the channel, 4 for the input; within 1e-5 of the RMS: float32 rounding of the
    per-call rotator start phases and of the kernel's summation order only). No AWGN: its noise
    segments are drawn per call by design."""
    s = {"n_tx": n, "n_rx": n, "sample_rate_hz": FS, **spec}
    one = build_channel(s, np.random.default_rng(7))
    cut = build_channel(s, np.random.default_rng(7))
    assert one._fused is not None
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((one.n_in, 70001)) + 1j * rng.standard_normal((one.n_in, 70001))).astype(np.complex64)
    ya = one(x)
    edges = np.cumsum([0, 1, 5000, 1023, 40000])
    yb = np.concatenate([cut(x[:, a:b]) for a, b in zip(edges, list(edges[1:]) + [x.shape[1]])], axis=1)
    rms = np.sqrt(np.mean(np.abs(ya) ** 2))
    assert np.max(np.abs(ya - yb)) <= 1e-5 * rms
    np.testing.assert_array_equal(one.stages[0]._hist, cut.stages[0]._hist)
