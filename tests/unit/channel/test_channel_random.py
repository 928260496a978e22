"""The one complex-normal helper: same stream as the inline draws it replaced, CN(0, var) statistics."""

import numpy as np
import pytest

from hil.channel import complex_normal


def test_same_values_as_the_inline_draw_it_replaced():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    want = (a.standard_normal((4, 5)) + 1j * a.standard_normal((4, 5))) / np.sqrt(2)
    np.testing.assert_array_equal(complex_normal(b, (4, 5)), want)
    assert a.random() == b.random()  # the generators are left in the same state


def test_variance_and_circular_symmetry():
    # seed 0, 200000 draws at var 2.5: E|z|^2 within 1 %, I and Q variance var/2 within 1 %, E z^2 ~ 0
    z = complex_normal(np.random.default_rng(0), 200_000, var=2.5, dtype=np.complex64)
    assert z.dtype == np.complex64 and z.shape == (200_000,)
    assert abs(np.mean(np.abs(z) ** 2) / 2.5 - 1) < 0.01
    assert abs(np.var(z.real) / 1.25 - 1) < 0.01 and abs(np.var(z.imag) / 1.25 - 1) < 0.01
    assert abs(np.mean(z.astype(np.complex128) ** 2)) / 2.5 < 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match="var must be >= 0"):
        complex_normal(np.random.default_rng(0), 3, var=-1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        complex_normal(0, 3)
