"""Flat MIMO fading: Rayleigh and Rician with Kronecker spatial correlation.

The channel matrix of segment ``k`` (see [Note: segment grid] in ``hil.channel.memory``) is::

    H_k = sqrt(K / (K + 1)) a_rx a_tx^T + sqrt(1 / (K + 1)) R_rx^{1/2} G_k R_tx^{1/2}

with ``G_k`` unit-variance i.i.d. ``CN(0, 1)`` entries evolving in time, ``R^{1/2}`` the Hermitian
square roots of the correlation matrices (unit diagonal), ``a`` half-wavelength ULA steering vectors
``a_n = exp(j pi n sin(theta))`` and ``K`` the Rician K-factor (``K = 0``: Rayleigh). Every entry has
``E|h_ij|^2 = 1``, so the mean power per receive antenna is the total transmit power. Second order:
``E[H H^H] = tr(R_tx) R_rx`` and ``E[H^H H] = tr(R_rx) R_tx`` (NLOS part).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import scipy.fft

from hil.channel.base import ChannelModel
from hil.channel.memory import GaussianProcess, TimeBehaviour

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FirCoeffs:
    """Piecewise-constant MIMO FIR coefficients of one ``generate`` call.

    Attributes:
        t0: model-clock index of the first output sample.
        S: segment length in samples (None: ``mats`` has one segment for the whole call).
        mats: complex64 ``[n_segments, n_lags, n_out, n_in]``; ``mats[0]`` is the segment holding t0.
        lags: the integer delay (samples) of each lag, ascending, all >= 0.
    """

    t0: int
    S: int | None
    mats: np.ndarray
    lags: tuple[int, ...]

    def sliced(self, a: int, b: int) -> "FirCoeffs":
        """The coefficients of samples ``a:b`` of the call."""
        if self.S is None or self.mats.shape[0] == 1:
            return dataclasses.replace(self, t0=self.t0 + a)
        k0 = self.t0 // self.S
        i = (self.t0 + a) // self.S - k0
        j = (self.t0 + max(b, a + 1) - 1) // self.S - k0
        return dataclasses.replace(self, t0=self.t0 + a, mats=self.mats[i : j + 1])

    def transposed(self) -> "FirCoeffs":
        """The reverse-link coefficients (``H^T`` for every segment and lag)."""
        return dataclasses.replace(self, mats=np.ascontiguousarray(np.swapaxes(self.mats, -1, -2)))

    def scaled(self, rx_gain: np.ndarray | None, tx_gain: np.ndarray | None) -> "FirCoeffs":
        """``diag(rx_gain) H diag(tx_gain)`` for every segment and lag."""
        m = self.mats
        if rx_gain is not None:
            m = m * np.asarray(rx_gain, dtype=np.complex64)[:, None]
        if tx_gain is not None:
            m = m * np.asarray(tx_gain, dtype=np.complex64)[None, :]
        return dataclasses.replace(self, mats=m.astype(np.complex64, copy=False))


def seg_matmul(x: np.ndarray, mats: np.ndarray, t0: int, S: int | None) -> np.ndarray:
    """Piecewise-constant matrix product.

    Args:
        x: complex64 ``[n_in, n]`` (input aligned with output sample times ``t0 .. t0 + n - 1``).
        mats: complex64 ``[n_segments, n_out, n_in]``, ``mats[0]`` for the segment holding ``t0``.
        t0: model-clock index of the first sample.
        S: segment length, or None for a single matrix.

    Returns:
        complex64 ``[n_out, n]``.
    """
    n_in, n = x.shape
    n_out = mats.shape[1]
    y = np.empty((n_out, n), dtype=np.complex64)
    if S is None or mats.shape[0] == 1:
        # one matrix: a broadcast batched product over chunks is several times faster than
        # BLAS on a [n_out, n_in] @ [n_in, n] product with tiny n_in
        C = 4096
        nfull = n // C
        if nfull:
            xb = x[:, : nfull * C].reshape(n_in, nfull, C).transpose(1, 0, 2)
            yb = y[:, : nfull * C].reshape(n_out, nfull, C).transpose(1, 0, 2)
            np.matmul(mats[0][None], xb, out=yb)
        if nfull * C < n:
            np.matmul(mats[0], x[:, nfull * C :], out=y[:, nfull * C :])
        return y
    a = min(n, S - (t0 % S))  # end of the first (maybe partial) segment
    np.matmul(mats[0], x[:, :a], out=y[:, :a])
    nfull = (n - a) // S
    b = a + nfull * S
    if nfull:
        # batched [n_out, n_in] @ [n_in, S] per segment, written in place (no transposed copies)
        xb = x[:, a:b].reshape(n_in, nfull, S).transpose(1, 0, 2)  # [nfull, n_in, S] view
        yb = y[:, a:b].reshape(n_out, nfull, S).transpose(1, 0, 2)  # [nfull, n_out, S] view
        np.matmul(mats[1 : 1 + nfull], xb, out=yb)
    if b < n:
        np.matmul(mats[1 + nfull], x[:, b:], out=y[:, b:])
    return y


def apply_fir(
    x: np.ndarray, coeffs: FirCoeffs, history: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``y[:, t] = sum_l M_l(t) x[:, t - lag_l]`` with input history carried across calls.

    Args:
        x: complex64 ``[n_in, n]``.
        coeffs: from ``generate``.
        history: the last ``max(lags)`` input samples of the previous call (None: zeros).

    Returns:
        ``(y, new_history)``, ``y`` complex64 ``[n_out, n]``.
    """
    lags = coeffs.lags
    if lags == (0,):
        return seg_matmul(x, coeffs.mats[:, 0], coeffs.t0, coeffs.S), None
    n_in, n = x.shape
    m = max(lags)
    if history is None:
        history = np.zeros((n_in, m), dtype=np.complex64)
    xe = np.concatenate([history, x], axis=1)
    if len(lags) > FFT_MIN_LAGS and (coeffs.S is None or coeffs.S >= max(256, 2 * m)):
        return _fir_fft(xe, coeffs, n, m), xe[:, -m:].copy()
    y = None
    for li, lag in enumerate(lags):
        part = seg_matmul(xe[:, m - lag : m - lag + n], coeffs.mats[:, li], coeffs.t0, coeffs.S)
        if y is None:
            y = part
        else:
            y += part
    return y, (xe[:, -m:].copy() if m else None)


FFT_MIN_LAGS = 6
_HF_CACHE: dict = {}  # transfer function of the latest static tap set (chunked calls reuse it)


def _fir_fft(xe: np.ndarray, coeffs: FirCoeffs, n: int, m: int) -> np.ndarray:
    """Segment-wise MIMO FIR by FFT (overlap-save on the segment grid).

    ``xe``: complex64 ``[n_in, m + n]`` (history then input). Each segment of ``S`` output samples
    (or, for one matrix set, blocks of ``N - m``) is one frame of ``S + m`` inputs, transformed with
    an FFT of size ``N >= S + m``; same result as the direct form up to float32 rounding.
    """
    n_in = xe.shape[0]
    mats, lags = coeffs.mats, coeffs.lags
    n_out = mats.shape[2]
    if n == 0:
        return np.zeros((n_out, 0), dtype=np.complex64)
    if coeffs.S is None or mats.shape[0] == 1:
        N = 1 << max(12, int(np.ceil(np.log2(8 * (m + 1)))))
        S, off, nseg = N - m, 0, -(-n // (N - m))
        mats = mats[:1]
    else:
        S = coeffs.S
        N = scipy.fft.next_fast_len(S + m)
        off = coeffs.t0 % S
        nseg = mats.shape[0]
    tot = nseg * S
    xp = np.zeros((n_in, tot + m), dtype=np.complex64)
    xp[:, off : off + m + n] = xe[:, : min(m + n, tot + m - off)]
    frames = np.lib.stride_tricks.sliding_window_view(xp, S + m, axis=1)[:, ::S][:, :nseg]
    X = scipy.fft.fft(frames, N, axis=-1)  # [n_in, nseg, N] complex64
    key = (mats.ctypes.data, mats.shape, N, lags)
    Hf = _HF_CACHE.get(key) if mats.shape[0] == 1 else None
    if Hf is None or not np.array_equal(Hf[1], mats):
        h = np.zeros((mats.shape[0], n_out, n_in, N), dtype=np.complex64)
        for li, lag in enumerate(lags):
            h[..., lag] = mats[:, li]
        Hf = (scipy.fft.fft(h, axis=-1), mats.copy())  # [seg or 1, n_out, n_in, N]
        if mats.shape[0] == 1:
            _HF_CACHE.clear()
            _HF_CACHE[key] = Hf
    Hf = Hf[0]
    Y = np.einsum("koif,ikf->okf", Hf, X) if Hf.shape[0] > 1 else np.einsum("oif,ikf->okf", Hf[0], X)
    y = scipy.fft.ifft(Y, axis=-1)[..., m : m + S]  # [n_out, nseg, S]
    return np.ascontiguousarray(y.reshape(n_out, tot)[:, off : off + n], dtype=np.complex64)


def exponential_correlation(n: int, coeff: complex) -> np.ndarray:
    """Exponential correlation matrix ``R[i, j] = r^(j - i)`` for ``j >= i`` (Hermitian), ``|r| <= 1``."""
    r = complex(coeff)
    if abs(r) > 1:
        raise ValueError(f"correlation coefficient must have |r| <= 1, got {coeff!r}")
    i = np.arange(n)
    d = i[None, :] - i[:, None]
    R = np.where(d >= 0, r ** np.abs(d), np.conj(r) ** np.abs(d))
    return R.astype(np.complex128)


def correlation_matrix(n: int, spec, name: str) -> np.ndarray:
    """A correlation matrix from a coefficient (exponential model) or a given ``[n, n]`` matrix."""
    if spec is None:
        return np.eye(n, dtype=np.complex128)
    if isinstance(spec, dict):  # TOML form of a complex matrix: {real = [[..]], imag = [[..]]}
        try:
            spec = np.asarray(spec["real"], float) + 1j * np.asarray(spec.get("imag", 0.0), float)
        except KeyError as e:
            raise ValueError(f"{name} as a table needs keys 'real' (and optional 'imag')") from e
    if np.isscalar(spec):
        return exponential_correlation(n, complex(spec))
    R = np.asarray(spec, dtype=np.complex128)
    if R.shape != (n, n):
        raise ValueError(f"{name} must be a coefficient or an [{n}, {n}] matrix, got shape {R.shape}")
    if not np.allclose(R, R.conj().T, atol=1e-9):
        raise ValueError(f"{name} must be Hermitian")
    if not np.allclose(np.diag(R), 1.0, atol=1e-9):
        raise ValueError(f"{name} must have a unit diagonal (got {np.diag(R).real})")
    if np.linalg.eigvalsh(R).min() < -1e-9:
        raise ValueError(f"{name} must be positive semidefinite")
    return R


def hermitian_sqrt(R: np.ndarray) -> np.ndarray:
    """The Hermitian square root of a PSD matrix."""
    w, v = np.linalg.eigh(R)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.conj().T


def ula_steering(n: int, angle_deg: float) -> np.ndarray:
    """Half-wavelength ULA steering vector ``exp(j pi n sin(theta))``, complex128 ``[n]``."""
    return np.exp(1j * np.pi * np.arange(n) * np.sin(np.deg2rad(angle_deg)))


class FirStage(ChannelModel):
    """Base of the stages whose ``generate`` returns :class:`FirCoeffs` (FlatFading, FixedMatrix,
    TDL, the directions of a reciprocal link): one ``apply`` and one ``slice_coeffs``.

    ``apply`` carries the last ``max(lags)`` input samples in ``self._hist`` across calls (nothing
    for flat channels, whose only lag is 0), see [Note: generate/apply] in ``hil.channel.base``.
    """

    _hist: np.ndarray | None = None

    def apply(self, x: np.ndarray, coeffs: FirCoeffs) -> np.ndarray:
        y, self._hist = apply_fir(x, coeffs, self._hist)
        return y

    def slice_coeffs(self, coeffs: FirCoeffs, a: int, b: int) -> FirCoeffs:
        return coeffs.sliced(a, b)


class FlatFading(FirStage):
    """Flat MIMO Rayleigh / Rician fading with Kronecker correlation and a time behaviour.

    Args:
        n_tx: transmit antennas (``n_in``).
        n_rx: receive antennas (``n_out``).
        rng: the numpy Generator.
        k_factor_db: Rician K-factor in dB (None: Rayleigh).
        corr_tx: transmit correlation: None, a coefficient ``r`` (``R[i, j] = r^|i-j|``) or a matrix.
        corr_rx: receive correlation, same forms.
        time: the :class:`TimeBehaviour` (default static).
        los_aod_deg: LOS departure angle (Rician), degrees from broadside.
        los_aoa_deg: LOS arrival angle (Rician), degrees from broadside.
    """

    def __init__(
        self,
        n_tx: int,
        n_rx: int,
        rng: np.random.Generator,
        k_factor_db: float | None = None,
        corr_tx=None,
        corr_rx=None,
        time: TimeBehaviour | None = None,
        los_aod_deg: float = 0.0,
        los_aoa_deg: float = 0.0,
    ):
        if int(n_tx) < 1 or int(n_rx) < 1:
            raise ValueError(f"n_tx and n_rx must be >= 1, got {n_tx}, {n_rx}")
        self.n_in, self.n_out = int(n_tx), int(n_rx)
        self.rng = rng
        self.time = time or TimeBehaviour()
        self.k_factor_db = k_factor_db
        K = 0.0 if k_factor_db is None else 10 ** (float(k_factor_db) / 10)
        self.R_tx = correlation_matrix(self.n_in, corr_tx, "corr_tx")
        self.R_rx = correlation_matrix(self.n_out, corr_rx, "corr_rx")
        self._A = hermitian_sqrt(self.R_rx).astype(np.complex64)
        self._B = hermitian_sqrt(self.R_tx).astype(np.complex64)
        self._los = (
            np.sqrt(K / (K + 1)) * np.outer(ula_steering(self.n_out, los_aoa_deg),
                                            ula_steering(self.n_in, los_aod_deg))
        ).astype(np.complex64)
        self._nlos_gain = np.float32(np.sqrt(1 / (K + 1)))
        self._identity = np.allclose(self.R_tx, np.eye(self.n_in)) and np.allclose(
            self.R_rx, np.eye(self.n_out)
        )
        self.process = GaussianProcess((self.n_out, self.n_in), self.time, rng)
        self.clock = 0
        self._h: np.ndarray | None = None

    def mean_power_gain(self) -> np.ndarray:
        """``E|h_ij|^2 = 1`` for every entry."""
        return np.ones((self.n_out, self.n_in))

    def matrices(self, n_samples: int) -> tuple[int | None, np.ndarray]:
        """Draw ``(S, H)`` for the next ``n_samples``: H complex64 ``[n_segments, n_rx, n_tx]``."""
        S, G = self.process.segments(self.clock, n_samples)
        H = G if self._identity else self._A @ G @ self._B
        H = self._los + self._nlos_gain * H
        H = H.astype(np.complex64, copy=False)
        self.clock += int(n_samples)
        self._h = H[-1]
        return S, H

    def generate(self, n_samples: int) -> FirCoeffs:
        t0 = self.clock
        S, H = self.matrices(n_samples)
        return FirCoeffs(t0=t0, S=S, mats=H[:, None], lags=(0,))

    def state(self) -> dict:
        h = self._h if self._h is not None else np.zeros((self.n_out, self.n_in), np.complex64)
        return {
            "clock_samples": int(self.clock),
            "h_real": h.real.tolist(),
            "h_imag": h.imag.tolist(),
        }


class FixedMatrix(FirStage):
    """A fixed channel matrix ``H`` (complex ``[n_rx, n_tx]``), e.g. the identity of an ideal wire.

    Produces :class:`FirCoeffs`, so it can be the shared model of a reciprocal link.
    """

    def __init__(self, h):
        h = np.asarray(h, dtype=np.complex64)
        if h.ndim != 2 or 0 in h.shape:
            raise ValueError(f"FixedMatrix needs a [n_rx, n_tx] matrix, got shape {h.shape}")
        self.h = h
        self.n_out, self.n_in = h.shape
        self.clock = 0

    def mean_power_gain(self) -> np.ndarray:
        return (np.abs(self.h) ** 2).astype(np.float64)

    def generate(self, n_samples: int) -> FirCoeffs:
        t0 = self.clock
        self.clock += int(n_samples)
        return FirCoeffs(t0=t0, S=None, mats=self.h[None, None], lags=(0,))

    def state(self) -> dict:
        return {"clock_samples": int(self.clock), "h_real": self.h.real.tolist(),
                "h_imag": self.h.imag.tolist()}
