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
