"""The one circularly-symmetric complex Gaussian draw of the package.

[Note: complex-normal draw order]
``complex_normal(rng, shape, var)`` draws the real parts, then the imaginary parts, each with one
``rng.standard_normal(shape)`` call, and returns ``(re + j im) / sqrt(2)`` (times ``sqrt(var)``
when ``var != 1``): the stream and the arithmetic of the inline
``(rng.standard_normal(s) + 1j * rng.standard_normal(s)) / np.sqrt(2)`` it replaces, so callers
that switched to it draw bit-identical values. (The fading processes of ``hil.channel.memory`` draw
interleaved ``[..., 2]`` pairs instead; their stream is pinned by recorded channels and tests, so
they keep it.)
"""

from __future__ import annotations

import numpy as np


def complex_normal(
    rng: np.random.Generator, shape, var: float = 1.0, dtype=np.complex128
) -> np.ndarray:
    """I.i.d. ``CN(0, var)`` values: ``E|z|^2 = var``, real and imaginary parts ``N(0, var / 2)``.

    Args:
        rng: the numpy Generator to draw from (see [Note: complex-normal draw order]).
        shape: an int or a tuple of ints.
        var: the variance ``E|z|^2`` (>= 0).
        dtype: complex128 (default) or complex64 (the draws are float64 either way).

    Returns:
        ``dtype`` array of ``shape``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"complex_normal: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    var = float(var)
    if not var >= 0.0:
        raise ValueError(f"complex_normal: var must be >= 0, got {var}")
    re = rng.standard_normal(shape)
    im = rng.standard_normal(shape)
    z = (re + 1j * im) / np.sqrt(2)
    if var != 1.0:
        z *= np.sqrt(var)
    return z.astype(dtype, copy=False)
