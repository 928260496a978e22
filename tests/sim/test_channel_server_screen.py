"""The channel server's input screen (NaN/Inf refused, values beyond the full-scale limit saturated):
the integer-maximum pass and the screen folded into the fused kernel's input copy refuse exactly what
the numpy reference refuses, and let everything else through bit-identically."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hil.channel import build_channel, fast
from sim_fallback.channel_server import INPUT_FULL_SCALE_LIMIT, screen_samples, screen_samples_reference

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed (the reference path runs)")

LIM = np.float32(INPUT_FULL_SCALE_LIMIT)
BAD_VALUES = [np.nan, -np.nan, np.inf, -np.inf, np.float32(3e38), np.float32(-1e30), np.nextafter(LIM, np.float32(np.inf)),
              -np.nextafter(LIM, np.float32(np.inf)), LIM, -LIM, np.float32(1e-45), np.float32(-0.0)]
SPECS = {
    "flat 2x2": {"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "time": "gauss_markov", "rho": 0.999,
                 "block_samples": 1024, "snr_db": 10.0, "cfo_hz": 1000.0, "sample_rate_hz": 1e6},
    "TDL 2x2 (history)": {"n_tx": 2, "n_rx": 2, "tdl": "TDL-A", "delay_spread_s": 300e-9, "snr_db": 20.0,
                          "cfo_hz": 500.0, "sample_rate_hz": 30.72e6},
    "AWGN 1x1": {"n_tx": 1, "n_rx": 1, "fading": "none", "snr_db": 20.0, "cfo_hz": 1000.0, "sample_rate_hz": 1e6},
}


def cases(n_ant: int, n: int):
    """(label, x): clean input, then one bad value in each antenna, each of I and Q, at the first, a
    middle and the last sample; then two bad values of different kinds in one input."""
    rng = np.random.default_rng(11)
    base = (0.3 * (rng.standard_normal((n_ant, n)) + 1j * rng.standard_normal((n_ant, n)))).astype(np.complex64)
    yield "clean", base.copy()
    for v in BAD_VALUES:
        for ant in range(n_ant):
            for pos in (0, n // 2, n - 1):
                for part in (0, 1):
                    x = base.copy()
                    x.view(np.float32).reshape(n_ant, n, 2)[ant, pos, part] = v
                    yield f"{v!r} antenna {ant} sample {pos} part {part}", x
    x = base.copy()
    x[0, min(3, n - 1)] = 5000.0
    x[-1, n - 1] += complex(np.nan, 1.0)
    yield "huge and NaN", x


@pytest.mark.parametrize("n", [1, 7, 1024, 4099])
def test_integer_max_screen_answers_as_the_reference(n):
    for label, x in cases(2, n):
        f = x.reshape(-1).view(np.float32)
        assert screen_samples(f) == screen_samples_reference(f), label


@pytest.mark.parametrize("name", sorted(SPECS))
def test_screen_in_the_fused_input_pass_refuses_what_the_reference_refuses(name):
    spec = SPECS[name]
    model = build_channel(spec, np.random.default_rng(3))
    assert model._fused is not None, "the fused path must serve this chain"
    for n in (5, 2048):
        for label, x in cases(spec["n_tx"], n):
            f = x.reshape(-1).view(np.float32)
            bits = model.load_input(x)
            model.unload_input()
            assert screen_samples(f, bits) == screen_samples_reference(f), f"{label}, n={n}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_what_the_fused_screen_passes_is_computed_bit_identically(name):
    """load_input + apply_into (the shared-memory path) gives the very bits of apply alone (the TCP
    path) on a twin model, call after call (the FIR history carried), and a load for another array
    is never used by mistake."""
    spec = SPECS[name]
    a = build_channel(spec, np.random.default_rng(4))
    b = copy.deepcopy(a)
    rng = np.random.default_rng(6)
    for n in (3000, 17, 1024, 4096):
        x = (0.3 * (rng.standard_normal((spec["n_tx"], n)) + 1j * rng.standard_normal((spec["n_tx"], n)))
             ).astype(np.complex64)
        x[0, -1] = LIM  # at the limit: passed unchanged
        bits = a.load_input(x)
        assert screen_samples(x.reshape(-1).view(np.float32), bits) == (0, False)
        ya = a.apply_into(x, a.generate(n), np.empty((spec["n_rx"], n), np.complex64))
        yb = b.apply(x, b.generate(n))
        assert np.array_equal(ya.view(np.uint32), yb.view(np.uint32)), n
    x2 = x.copy()
    a.load_input(x)
    a.unload_input()  # a refused chunk: the load is dropped
    x2[:, :10] = 0.5
    assert np.array_equal(a.apply(x2, a.generate(4096)), b.apply(x2, b.generate(4096)))
    a.load_input(x)  # loaded for x, applied to another array: x2 is read
    assert np.array_equal(a.apply(x2, a.generate(4096)), b.apply(x2, b.generate(4096)))
