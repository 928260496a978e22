"""Additive white Gaussian noise at a configured SNR or noise power, and the SNR-aware Chain.

[Note: SNR reference]
``snr_db`` is the SNR *per receive antenna*: ``E[signal power at the antenna] / N0``. The signal
power it refers to is, per ``reference``:

- ``"rx"``: measured on the AWGN stage's own input, separately for each receive antenna, over the
  samples where the signal is on. "On" means 64-sample blocks whose mean power is within
  ``active_threshold_db`` (default -30 dB) of the strongest block of that antenna (at burst edges,
  samples above that level), so silent margins of a burst do not dilute the measurement. Inputs
  longer than 4096 blocks (262144 samples) are measured on 4096 evenly spaced blocks (relative
  error of a Gaussian signal's power about 0.2%, 0.01 dB), which saves a pass over the data.
  This is what a probe measures on one burst: with flat fading before it, every realisation gets
  exactly ``snr_db``.
- ``"tx"`` (used by :class:`Chain` when a fading stage precedes the noise, the default of
  ``build_channel`` for fading channels): the *average* SNR over the fading. The chain measures
  the transmit power of its input per TX antenna (same "on" rule) and multiplies by the stages'
  mean power gains (``E|h_ij|^2 = 1`` for the fading models here), so deep fades show up as low
  instantaneous SNR, as in a BER-vs-SNR curve over a fading channel.
- ``signal_power=`` given: that power (full scale 1.0 units) for every antenna, nothing measured.

A silent call (nothing above the threshold, e.g. a stream between bursts) reuses the last
measured power (initially ``signal_power`` or 1.0), so noise never stops.

[Note: noise pool]
``noise="pool"`` (default) reads Gaussian noise from a table of ``2 * pool_samples`` (2^22)
i.i.d. ``N(0, 1/2)`` float32 values (16 MB) drawn once, at the first call, from the model's
generator. Each call takes segments of 16384 complex samples (32768 floats) starting at uniformly
random *float* offsets (so a segment's I/Q pairing also varies), each segment multiplied by an
independent random sign. Every sample is marginally ``CN(0, 1)`` up to the table's sampling error
(sample variance within about 0.1% of 1); within a segment the noise is white; two segments are
independent unless their offsets overlap (probability about ``2 * 32768 / 2^22 = 1.6%`` per pair
of segments), and then the overlap repeats (up to sign) noise seen before. Noise is thus *not*
independent over long runs: with ``n`` samples drawn, each pool value recurs about ``n / 2^21``
times. Reading the pool costs one scaled add per sample (one fused in-place BLAS ``saxpy`` per
segment, see [Note: fused noise add]), about 10x less than drawing (numpy draws about 64 M float32
normals/s on this machine). ``noise="exact"`` draws fresh noise with
``Generator.standard_normal(dtype=float32)``; use it where reuse could matter (very low error
rates, long Monte-Carlo runs, learning on the noise itself).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np

from hil.channel.base import Cascade, ChannelModel

log = logging.getLogger(__name__)

try:  # the fused in-place y += a * x of the noise add (see [Note: fused noise add])
    from scipy.linalg.blas import saxpy as _saxpy
except ImportError:  # pragma: no cover - scipy is a dependency; numpy fallback kept
    _saxpy = None


def _saxpy_works_in_place() -> bool:
    """Whether scipy's saxpy updates a float32 view of a complex64 row in place (it should)."""
    x = np.zeros((2, 8), dtype=np.complex64)
    v = x.view(np.float32)[1]
    y = _saxpy(np.ones(20, dtype=np.float32), v, n=4, a=2.0, offx=3, offy=2)
    return np.shares_memory(y, v) and bool(np.all(x.view(np.float32)[1, 2:6] == 2.0)) \
        and not x.view(np.float32)[0].any() and int(np.count_nonzero(x)) == 2


if _saxpy is not None and not _saxpy_works_in_place():  # pragma: no cover - defensive
    _saxpy = None

POOL_SAMPLES = 1 << 21
POOL_SEGMENT = 16384
ACTIVE_BLOCK = 64
MEASURE_BLOCKS = 4096  # blocks measured at most (262144 samples): +-0.01 dB for Gaussian signals


def _block_energy(v: np.ndarray) -> np.ndarray:
    if hasattr(np, "vecdot"):  # numpy >= 2.0: a SIMD inner product, ~5x faster than einsum
        return np.vecdot(v, v).astype(np.float64)
    return np.einsum("abk,abk->ab", v, v, dtype=np.float32).astype(np.float64)


def active_power(x: np.ndarray, threshold_db: float = -30.0, block: int = ACTIVE_BLOCK) -> np.ndarray:
    """Mean power per antenna over the samples where the signal is on.

    Args:
        x: complex64 ``[antennas, n]``.
        threshold_db: a ``block``-sample block counts as on when its mean power is within this many
            dB of the strongest block of the same antenna; in blocks at an on/off transition,
            samples count when their power is above that level.
        block: block length in samples (the tail shorter than a block is ignored unless ``n < block``).

    Returns:
        float64 ``[antennas]``; 0 where an antenna is all zero.
    """
    n_ant, n = x.shape
    if n == 0:
        return np.zeros(n_ant)
    if n < block:
        return np.mean(np.abs(x.astype(np.complex128)) ** 2, axis=1)
    if not x[:, :1].flags.c_contiguous or x.strides[1] != x.itemsize:
        x = np.ascontiguousarray(x)
    nb = n // block
    # long inputs: every stride-th block (at least MEASURE_BLOCKS blocks), see [Note: SNR reference]
    stride = max(1, nb // MEASURE_BLOCKS)
    v = x[:, : nb * block].view(np.float32).reshape(n_ant, nb, 2 * block)[:, ::stride]
    nb = v.shape[1]
    e = _block_energy(v)  # [n_ant, nb] float64
    level = e.max(axis=1, keepdims=True) / block * 10 ** (threshold_db / 10)  # per-sample power
    on = e > level * block
    # blocks at an on/off transition (and their neighbours) are counted sample by sample, so a
    # burst edge inside a block does not bias the mean
    edge = np.zeros_like(on)
    tr = on[:, 1:] != on[:, :-1]
    edge[:, 1:] |= tr
    edge[:, :-1] |= tr
    tot = np.where(on & ~edge, e, 0.0).sum(axis=1)
    cnt = (on & ~edge).sum(axis=1) * float(block)
    for a, b in zip(*np.nonzero(edge)):
        b *= stride
        p = np.abs(x[a, b * block : (b + 1) * block].astype(np.complex128)) ** 2
        keep = p > level[a, 0]
        tot[a] += p[keep].sum()
        cnt[a] += keep.sum()
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)


@dataclasses.dataclass
class AwgnCoeffs:
    """Noise of one call: ``noise`` [n_ant, n] (exact) or pool float ``offsets``/``signs`` [n_ant, n_seg].

    ``signal_power`` [n_ant]: the signal power the SNR refers to, if known in advance (None:
    measured by ``apply``). :class:`Chain` sets it for ``reference="tx"`` in a *copy* of the
    coefficients (``dataclasses.replace``); the caller's object is never written.
    """

    n: int
    noise: np.ndarray | None = None
    offsets: np.ndarray | None = None
    signs: np.ndarray | None = None
    signal_power: np.ndarray | None = None


class AWGN(ChannelModel):
    """Complex white Gaussian noise per antenna (``n_in = n_out = n_ant``).

    Args:
        n_ant: antennas.
        rng: the numpy Generator.
        snr_db: SNR per receive antenna in dB (see [Note: SNR reference]); or
        noise_power: fixed noise power ``N0`` per antenna (full scale 1.0 units, ``E|w|^2``).
        signal_power: the signal power the SNR refers to (skip the measurement).
        reference: ``"rx"`` or ``"tx"`` (see [Note: SNR reference]).
        noise: ``"pool"`` or ``"exact"`` (see [Note: noise pool]).
        active_threshold_db: the "signal is on" threshold of :func:`active_power`.
        pool_samples: the pool size in complex samples.
    """

    def __init__(
        self,
        n_ant: int,
        rng: np.random.Generator,
        snr_db: float | None = None,
        noise_power: float | None = None,
        signal_power: float | None = None,
        reference: str = "rx",
        noise: str = "pool",
        active_threshold_db: float = -30.0,
        pool_samples: int = POOL_SAMPLES,
    ):
        if (snr_db is None) == (noise_power is None):
            raise ValueError("AWGN needs exactly one of snr_db or noise_power")
        if noise_power is not None and float(noise_power) < 0:
            raise ValueError(f"noise_power must be >= 0, got {noise_power}")
        if signal_power is not None and float(signal_power) <= 0:
            raise ValueError(f"signal_power must be > 0, got {signal_power}")
        if reference not in ("rx", "tx"):
            raise ValueError(f"reference must be 'rx' or 'tx', got {reference!r}")
        if noise not in ("pool", "exact"):
            raise ValueError(f"noise must be 'pool' or 'exact', got {noise!r}")
        if int(n_ant) < 1:
            raise ValueError(f"n_ant must be >= 1, got {n_ant}")
        self.n_in = self.n_out = int(n_ant)
        self.rng = rng.spawn(1)[0]  # own child stream (see GaussianProcess)
        self.snr_db = None if snr_db is None else float(snr_db)
        self.noise_power = None if noise_power is None else float(noise_power)
        self.signal_power = None if signal_power is None else float(signal_power)
        self.reference = reference
        self.noise = noise
        self.active_threshold_db = float(active_threshold_db)
        self.pool_samples = int(pool_samples)
        self._pool: np.ndarray | None = None
        self._last_power = np.full(self.n_in, self.signal_power or 1.0)
        self._last_n0 = np.zeros(self.n_in)

    # -- noise ---------------------------------------------------------------------------------
    def _get_pool(self) -> np.ndarray:
        if self._pool is None:
            z = self.rng.standard_normal(2 * (self.pool_samples + POOL_SEGMENT), dtype=np.float32)
            z *= np.float32(np.sqrt(0.5))
            self._pool = z
        return self._pool

    def generate(self, n_samples: int) -> AwgnCoeffs:
        n = int(n_samples)
        if self.noise == "exact":
            w = self.rng.standard_normal((self.n_in, 2 * n), dtype=np.float32).view(np.complex64)
            w *= np.float32(np.sqrt(0.5))
            return AwgnCoeffs(n=n, noise=w)
        self._get_pool()
        nseg = -(-n // POOL_SEGMENT)
        offs = self.rng.integers(0, 2 * self.pool_samples, size=(self.n_in, nseg))
        signs = self.rng.integers(0, 2, size=(self.n_in, nseg)) * 2 - 1
        return AwgnCoeffs(n=n, offsets=offs, signs=signs)

    def slice_coeffs(self, c: AwgnCoeffs, a: int, b: int) -> AwgnCoeffs:
        """The noise of samples ``a:b`` of the call (for the pool, ``a`` a multiple of
        ``POOL_SEGMENT`` = 16384, the segment length)."""
        if c.noise is not None:
            return AwgnCoeffs(n=b - a, noise=c.noise[:, a:b], signal_power=c.signal_power)
        if a % POOL_SEGMENT:
            raise ValueError(f"pool noise slices must start at a multiple of {POOL_SEGMENT}, got {a}")
        i, j = a // POOL_SEGMENT, -(-b // POOL_SEGMENT)
        return AwgnCoeffs(n=b - a, offsets=c.offsets[:, i:j], signs=c.signs[:, i:j],
                          signal_power=c.signal_power)

    def noise_powers(self, x: np.ndarray, coeffs: AwgnCoeffs) -> np.ndarray:
        """``N0`` per antenna (float64 ``[n_ant]``) for input ``x`` under [Note: SNR reference].

        Pure: the power is measured on ``x`` (or taken from ``coeffs.signal_power``) locally;
        silent antennas use the last power recorded by :meth:`apply_inplace`."""
        return self._signal_and_noise(x, coeffs)[1]

    def _signal_and_noise(self, x: np.ndarray, coeffs: AwgnCoeffs) -> tuple[np.ndarray | None, np.ndarray]:
        """``(p, n0)``: the signal power used (None when the SNR needs none) and ``N0``."""
        if self.noise_power is not None:
            return None, np.full(self.n_in, self.noise_power)
        if self.signal_power is not None:
            p = np.full(self.n_in, self.signal_power)
        else:
            if coeffs.signal_power is not None:
                p = np.asarray(coeffs.signal_power, dtype=np.float64)
            else:
                p = active_power(x, self.active_threshold_db)
            p = np.where(p > 0, p, self._last_power)
        return p, p / 10 ** (self.snr_db / 10)

    def apply(self, x: np.ndarray, coeffs: AwgnCoeffs) -> np.ndarray:
        return self.apply_inplace(np.array(x, dtype=np.complex64, copy=True), coeffs)

    def apply_inplace(self, x: np.ndarray, coeffs: AwgnCoeffs) -> np.ndarray:
        """As :meth:`apply` but may overwrite ``x`` (complex64, C-contiguous) and return it."""
        p, n0 = self._signal_and_noise(x, coeffs)
        # the stage's memory (see [Note: generate/apply]): the power of the latest non-silent
        # input, for silent calls, and the latest N0, for state()
        if p is not None:
            self._last_power = p
        self._last_n0 = n0
        sigma = np.sqrt(n0).astype(np.float32)
        n = x.shape[1]
        xv = x.view(np.float32)  # [n_ant, 2 n]
        # saxpy writes into xv's rows only when they are aligned, writeable float32 (else f2py
        # would work on a copy): checked here, numpy otherwise
        fused = _saxpy is not None and n > 0 and xv.flags.aligned and xv.flags.writeable
        if coeffs.noise is not None:
            w = coeffs.noise[:, :n]
            if not fused or w.strides[1] != w.itemsize or not w.flags.aligned:
                x += w * sigma[:, None]
                return x
            for a in range(self.n_in):  # one fused pass per antenna: x_a += sigma_a * w_a
                _saxpy(w[a].view(np.float32), xv[a], a=float(sigma[a]))
            return x
        pool = self._pool
        L2 = 2 * POOL_SEGMENT
        scale = (sigma[:, None] * coeffs.signs).astype(np.float32)
        if fused:
            # [Note: fused noise add] BLAS saxpy adds ``scale * pool[off : off + m]`` to the
            # segment of ``x`` in one pass, in place (no temporary, no second pass): about 2-4x
            # faster than numpy's multiply-into-scratch + add. Same noise, float32 rounding only.
            for a in range(self.n_in):
                xa = xv[a]
                sa = scale[a].tolist()
                for k, off in enumerate(coeffs.offsets[a].tolist()):
                    s = k * L2
                    _saxpy(pool, xa, n=min(2 * n, s + L2) - s, a=sa[k], offx=off, offy=s)
            return x
        tmp = np.empty(L2, dtype=np.float32)
        for a in range(self.n_in):
            xa = xv[a]
            sa = scale[a].tolist()
            for k, off in enumerate(coeffs.offsets[a].tolist()):
                s = k * L2
                m = min(2 * n, s + L2) - s
                t = tmp[:m]
                np.multiply(pool[off : off + m], sa[k], out=t)
                xa[s : s + m] += t
        return x

    def state(self) -> dict:
        return {
            "noise_power": [float(v) for v in self._last_n0],
            "snr_db": self.snr_db,
            "reference": self.reference,
        }


def run_stages(stages: Sequence[ChannelModel], x: np.ndarray, coeffs: list) -> np.ndarray:
    """Apply stages in order; a stage with ``apply_inplace`` may overwrite an intermediate array
    (never the caller's ``x``)."""
    y = x
    for s, c in zip(stages, coeffs):
        f = getattr(s, "apply_inplace", None)
        if f is not None and y is not x and y.flags.c_contiguous and y.flags.writeable:
            y = f(y, c)
        else:
            y = s.apply(y, c)
    return y


def mean_power_gain(model: ChannelModel) -> np.ndarray:
    """``E|h_ij|^2`` of a stage, float64 ``[n_out, n_in]``; identity for same-size impairments."""
    g = getattr(model, "mean_power_gain", None)
    if callable(g):
        return np.asarray(g(), dtype=np.float64)
    if model.n_in == model.n_out:
        return np.eye(model.n_in)
    return np.ones((model.n_out, model.n_in))


class Chain(Cascade):
    """A :class:`Cascade` that gives ``reference="tx"`` AWGN stages their average signal power.

    For each AWGN stage with ``reference="tx"``, the expected signal power per receive antenna is
    ``G @ p_tx``: ``p_tx`` the measured transmit power per TX antenna of the chain's input (the
    "on" rule of :func:`active_power`) and ``G`` the product of the preceding stages' mean power
    gains (:func:`mean_power_gain`).
    """

    def __init__(self, stages: Sequence[ChannelModel]):
        super().__init__(stages)
        # the mean power gain of the stages before each stage, and of the whole chain
        self._gains = []
        g = np.eye(self.n_in)
        for s in self.stages:
            self._gains.append(g)
            g = mean_power_gain(s) @ g
        self._total_gain = g
        self._needs_tx = any(isinstance(s, AWGN) and s.reference == "tx" for s in self.stages)
        # [Note: chunked chain] When every stage can slice its coefficients by sample range
        # (``slice_coeffs``), calls longer than 2 * CHUNK samples run stage after stage on chunks of
        # CHUNK (2^20) samples, which bounds the memory of temporaries; the result is the same
        # (stages with history carry it from chunk to chunk, as across calls). Smaller chunks do
        # not pay here: per-chunk Python overhead outweighs the cache gain (measured with numpy on
        # this machine). An "rx"-reference AWGN stage needs its input's power before chunking:
        # allowed when only power-preserving stages (CFO, phase noise) precede it, and then
        # measured on the chain input.
        self._chunkable = all(
            hasattr(s, "slice_coeffs") and getattr(s, "_chunkable", True) for s in self.stages
        )
        self._rx_pre = []
        for i, s in enumerate(self.stages):
            if isinstance(s, AWGN) and s.reference == "rx" and s.noise_power is None \
                    and s.signal_power is None:
                if all(getattr(p, "power_preserving", False) for p in self.stages[:i]):
                    self._rx_pre.append(i)
                else:
                    self._chunkable = False
        from hil.channel import fast

        self._fused = fast.plan_for(self.stages)  # see [Note: fused chain] in hil.channel.fast

    CHUNK = 1 << 20

    def apply(self, x: np.ndarray, coeffs: list) -> np.ndarray:
        return self.apply_into(x, coeffs, None)

    def apply_into(self, x: np.ndarray, coeffs: list, out: np.ndarray | None) -> np.ndarray:
        """As :meth:`apply`; the fused path (see [Note: fused chain] in ``hil.channel.fast``) writes
        into ``out`` (complex64 ``[n_out, n]``, e.g. a shared-memory slot) when given; the reference
        path copies its result there."""
        # the signal powers measured here go into local copies of the AWGN coefficients: the
        # caller's coefficient objects are never written (see [Note: generate/apply])
        coeffs = list(coeffs)
        if self._needs_tx:
            thr = min(
                s.active_threshold_db for s in self.stages if isinstance(s, AWGN)
            )
            p_tx = active_power(x, thr)
            for i, (s, c, g) in enumerate(zip(self.stages, coeffs, self._gains)):
                if isinstance(s, AWGN) and s.reference == "tx" and c.signal_power is None:
                    coeffs[i] = dataclasses.replace(c, signal_power=g @ p_tx)
        if self._fused is not None:
            from hil.channel.fast import fused_apply

            return fused_apply(self._fused, x, coeffs, out)
        y = self._apply_reference(x, coeffs)
        if out is not None:
            out[...] = y
            return out
        return y

    def load_input(self, x: np.ndarray) -> int | None:
        """Copy ``x`` into the fused kernel's private input buffer (the next :meth:`apply_into` on ``x``
        computes from that copy) and return the bit pattern of its largest ``|value|`` (see [Note:
        screen in the input pass] in ``hil.channel.fast``); None without the fused path or for an
        ``x`` that is not C-contiguous complex64 (the caller screens ``x`` itself)."""
        if self._fused is None or x.dtype != np.complex64 or x.ndim != 2 or not x.flags.c_contiguous:
            return None
        return self._fused.load(x)

    def unload_input(self) -> None:
        """Forget what :meth:`load_input` copied (the next call reads its input)."""
        if self._fused is not None:
            self._fused.unload()

    def _apply_reference(self, x: np.ndarray, coeffs: list) -> np.ndarray:
        n = x.shape[1]
        if not self._chunkable or n < 2 * self.CHUNK:
            return run_stages(self.stages, x, coeffs)
        for i in self._rx_pre:
            if coeffs[i].signal_power is None:
                coeffs[i] = dataclasses.replace(
                    coeffs[i], signal_power=active_power(x, self.stages[i].active_threshold_db)
                )
        out = np.empty((self.n_out, n), dtype=np.complex64)
        for a in range(0, n, self.CHUNK):
            b = min(n, a + self.CHUNK)
            cs = [s.slice_coeffs(c, a, b) for s, c in zip(self.stages, coeffs)]
            out[:, a:b] = run_stages(self.stages, x[:, a:b], cs)
        return out

    def slice_coeffs(self, coeffs: list, a: int, b: int) -> list | None:
        if not self._chunkable:
            raise NotImplementedError("this Chain has stages that cannot be sliced")
        return [s.slice_coeffs(c, a, b) for s, c in zip(self.stages, coeffs)]

    def mean_power_gain(self) -> np.ndarray:
        """``E|h_ij|^2`` of the whole chain, float64 ``[n_out, n_in]`` (computed once, at init)."""
        return self._total_gain.copy()
