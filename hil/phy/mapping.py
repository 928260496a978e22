"""Analog mapping between real activation vectors and complex channel symbols.

[Note: analog mapping]
A real vector ``v`` of length ``2*n_tx*K`` becomes ``n_tx*K`` complex symbols by pairing
consecutive entries as (I, Q): ``s[t, k] = v[2*(t*K + k)] + 1j*v[2*(t*K + k) + 1]``. A vector whose
length is not a multiple of ``2*n_tx`` is zero-padded; ``symbols_to_real(..., length=L)`` drops the
padding again. Both directions only move float32 values: the round trip is exact, bit for bit,
for float32 input; wider input (float64, integers) is first rounded to float32, so it comes back
as ``v.astype(np.float32)``.
"""

from __future__ import annotations

import numpy as np


def channel_uses_for(length: int, n_tx: int) -> int:
    """Channel uses K needed to carry a real vector of ``length`` over ``n_tx`` antennas."""
    if length < 0 or n_tx < 1:
        raise ValueError(f"length must be >= 0 and n_tx >= 1, got length={length}, n_tx={n_tx}")
    return -(-length // (2 * n_tx))


def real_to_symbols(v: np.ndarray, n_tx: int) -> np.ndarray:
    """Map real vectors to complex symbols.

    Args:
        v: real ``[B, L]`` (or ``[L]``); ``L`` need not be a multiple of ``2*n_tx`` (zero padding).
           Values are rounded to float32 (exact for float32 input).
        n_tx: transmit antennas.

    Returns:
        complex64 ``[B, n_tx, K]`` with ``K = ceil(L / (2*n_tx))`` (``[n_tx, K]`` for 1-D input).
    """
    v = np.asarray(v)
    if not np.issubdtype(v.dtype, np.floating) and not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"real_to_symbols: expected a real array, got dtype {v.dtype}")
    squeeze = v.ndim == 1
    if squeeze:
        v = v[None]
    if v.ndim != 2:
        raise ValueError(f"real_to_symbols: expected shape [B, L], got {v.shape}")
    b, length = v.shape
    k = channel_uses_for(length, n_tx)
    padded = np.zeros((b, 2 * n_tx * k), np.float32)
    padded[:, :length] = v
    pairs = padded.reshape(b, n_tx, k, 2)
    out = np.empty((b, n_tx, k), np.complex64)
    out.real = pairs[..., 0]
    out.imag = pairs[..., 1]
    return out[0] if squeeze else out


def symbols_to_real(s: np.ndarray, length: int | None = None) -> np.ndarray:
    """Inverse of :func:`real_to_symbols`.

    Args:
        s: complex ``[B, n, K]`` (``n`` = antennas or streams) or ``[n, K]``.
        length: keep the first ``length`` reals (drops the padding); default ``2*n*K``.

    Returns:
        float32 ``[B, length]`` (``[length]`` for 2-D input).
    """
    s = np.asarray(s)
    squeeze = s.ndim == 2
    if squeeze:
        s = s[None]
    if s.ndim != 3:
        raise ValueError(f"symbols_to_real: expected shape [B, n, K], got {s.shape}")
    b, n, k = s.shape
    full = 2 * n * k
    if length is None:
        length = full
    if not 0 <= length <= full:
        raise ValueError(f"symbols_to_real: length={length} must be in [0, {full}] for symbols of shape {s.shape}")
    out = np.empty((b, n, k, 2), np.float32)
    out[..., 0] = s.real
    out[..., 1] = s.imag
    out = out.reshape(b, full)[:, :length]
    return out[0] if squeeze else out
