"""A fused fast path for the common chains: MIMO FIR (flat or TDL) -> CFO -> AWGN in one pass.

[Note: fused chain]
:class:`hil.channel.awgn.Chain` runs its stages one after the other, each a full pass over the
block in numpy (the FIR by ``np.matmul`` per lag or by FFT, the CFO rotation, the pooled noise
add). For a chain of the form ``[FirStage]? [CarrierFrequencyOffset]? [AWGN]?`` (the channel
server's usual links: flat Rayleigh/Rician or a TDL, then CFO, then noise) :func:`fused_apply` does
the same arithmetic in two numba kernels: ``_load`` copies the input (after the FIR history) into
a private planar buffer, taking the input screen on the way (see [Note: screen in the input pass]),
and ``_kernel`` works from that buffer tile by tile: each tile of at most ``_TILE`` output
samples gets its FIR sum (every lag, every input antenna), its rotation and its noise while it is
in the L1 cache, written straight into the caller's output buffer (no temporaries). The
coefficients come from the stages' own ``generate`` (the same draws, the same segment grid, the
same noise offsets and signs, the same rotator table and block phasors), so the output equals the
stage-by-stage reference up to float32 rounding (summation order, fused multiply-adds): the tests
check it within 1e-5 of the signal's RMS, and the state after the call (the FIR history, the AWGN
stage's last power and N0) is the reference's.

It is used only when numba is importable and ``HIL_CHANNEL_FAST`` is not ``0``; any other chain
(other stages, an "rx"-reference AWGN after a fading stage, exact noise of another shape) takes the
numpy reference path, which is kept as the specification.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

try:  # numba is optional: without it the numpy reference path runs
    import numba as _nb
except ImportError:  # pragma: no cover - depends on the environment
    _nb = None

#: Output samples per kernel tile (a tile's rows stay in L1 while rotated and noised).
_TILE = 1024


def available() -> bool:
    """Whether the fused path can run here (numba importable, not disabled by ``HIL_CHANNEL_FAST=0``)."""
    return _nb is not None and os.environ.get("HIL_CHANNEL_FAST", "1") != "0"


if _nb is not None:

    @_nb.njit(cache=True, fastmath=True, nogil=True, boundscheck=False, inline="always")
    def _fir_tile(xre, xim, mk, lags, base, T, acc_r, acc_i):  # pragma: no cover - compiled
        # acc[o, q] = sum over lags l and inputs i of mk[l, o, i] x_i[base + q - lag_l], q < T.
        # Two lags and two outputs per pass over the tile: each input value loaded feeds four
        # complex multiply-adds and each accumulator load/store two (the pass is bound by the
        # multiply-adds, not by loads; ~2x the one-lag-one-output loop for a 24-lag 2x2 TDL).
        L = mk.shape[0]
        n_out = mk.shape[1]
        n_in = mk.shape[2]
        zero = np.complex64(0.0)
        for o in range(n_out):
            for q in range(T):
                acc_r[o, q] = 0.0
                acc_i[o, q] = 0.0
        li = 0
        while li < L:
            two = li + 1 < L
            b0 = base - lags[li]
            b1 = base - lags[li + 1] if two else b0
            for i in range(n_in):
                x0r = xre[i, b0:b0 + T]
                x0i = xim[i, b0:b0 + T]
                x1r = xre[i, b1:b1 + T]
                x1i = xim[i, b1:b1 + T]
                o = 0
                while o < n_out:
                    o2 = o + 1 < n_out
                    c00 = mk[li, o, i]
                    c01 = mk[li, o + 1, i] if o2 else zero
                    c10 = mk[li + 1, o, i] if two else zero
                    c11 = mk[li + 1, o + 1, i] if (two and o2) else zero
                    if c00 == 0 and c01 == 0 and c10 == 0 and c11 == 0:
                        o += 2
                        continue
                    p_r, p_i, q_r, q_i = c00.real, c00.imag, c10.real, c10.imag
                    r0 = acc_r[o, :T]
                    i0 = acc_i[o, :T]
                    if two and o2:
                        u_r, u_i, v_r, v_i = c01.real, c01.imag, c11.real, c11.imag
                        r1 = acc_r[o + 1, :T]
                        i1 = acc_i[o + 1, :T]
                        for q in range(T):
                            a, b, c, d = x0r[q], x0i[q], x1r[q], x1i[q]
                            r0[q] += p_r * a - p_i * b + q_r * c - q_i * d
                            i0[q] += p_r * b + p_i * a + q_r * d + q_i * c
                            r1[q] += u_r * a - u_i * b + v_r * c - v_i * d
                            i1[q] += u_r * b + u_i * a + v_r * d + v_i * c
                    elif two:
                        for q in range(T):
                            a, b, c, d = x0r[q], x0i[q], x1r[q], x1i[q]
                            r0[q] += p_r * a - p_i * b + q_r * c - q_i * d
                            i0[q] += p_r * b + p_i * a + q_r * d + q_i * c
                    elif o2:
                        u_r, u_i = c01.real, c01.imag
                        r1 = acc_r[o + 1, :T]
                        i1 = acc_i[o + 1, :T]
                        for q in range(T):
                            a, b = x0r[q], x0i[q]
                            r0[q] += p_r * a - p_i * b
                            i0[q] += p_r * b + p_i * a
                            r1[q] += u_r * a - u_i * b
                            i1[q] += u_r * b + u_i * a
                    else:
                        for q in range(T):
                            a, b = x0r[q], x0i[q]
                            r0[q] += p_r * a - p_i * b
                            i0[q] += p_r * b + p_i * a
                    o += 2
            li += 2

    @_nb.njit(cache=True, nogil=True, boundscheck=False)
    def _screen_bits(u):  # pragma: no cover - compiled
        # the largest |value| of float32 values ``u`` (viewed as uint32) as its bit pattern: integer
        # compares, so fastmath cannot drop NaN/Inf (see [Note: screen in the input pass])
        # one accumulator over a unit-stride loop: LLVM vectorises it into a SIMD unsigned-max reduction
        # (two interleaved accumulators did not vectorise: 42 vs 28 us for 2^19 values, faster than np.dot)
        m = np.uint32(0)
        mask = np.uint32(0x7FFFFFFF)
        for i in range(u.shape[0]):
            a = u[i] & mask
            m = a if a > m else m
        return m

    @_nb.njit(cache=True, nogil=True, boundscheck=False)
    def _load(xu, hist, xre, xim, screen=True):  # pragma: no cover - compiled
        # the input, history first, as planar float32 (the kernel's inner loops then vectorise),
        # copied as uint32 bit patterns (exact, NaN payloads included) while the largest |value|
        # of the input (not the history, screened when it was input) is taken on the way. Slices
        # and range() indices only: an index numba cannot prove >= 0 (``m + t``) gets wraparound
        # code that stops the loop vectorising (5x slower).
        n_in = xu.shape[0]
        n = xu.shape[1] // 2
        m = hist.shape[1] // 2
        mask = np.uint32(0x7FFFFFFF)
        m0 = np.uint32(0)
        m1 = np.uint32(0)
        for i in range(n_in):
            ra = xre[i, :m]
            ia = xim[i, :m]
            hr = hist[i]
            for t in range(m):
                ra[t] = hr[2 * t]
                ia[t] = hr[2 * t + 1]
            xa = xu[i]
            rb = xre[i, m:m + n]
            ib = xim[i, m:m + n]
            for t in range(n):
                a = xa[2 * t]
                b = xa[2 * t + 1]
                rb[t] = a
                ib[t] = b
                if screen:  # (False only to time the copy alone: benchmarks/guard_cost.py)
                    a &= mask
                    b &= mask
                    m0 = a if a > m0 else m0
                    m1 = b if b > m1 else m1
        return m0 if m0 > m1 else m1

    @_nb.njit(cache=True, fastmath=True, nogil=True, boundscheck=False)
    def _kernel(xre, xim, m, n, mats, lags, seg0, S, rot_tab, rot_start, pool, noff, nscale, nseg_len,
                wnoise, wsigma, outf):  # pragma: no cover - compiled
        # the input (history first) planar in xre/xim (see _load); the output as a float32 view
        # [rows, 2 n] (re, im interleaved): plain float loops vectorise
        n_out = outf.shape[0]
        nmat = mats.shape[0]
        do_rot = rot_tab.shape[0] > 0
        rb = rot_tab.shape[0] // 2
        do_pool = noff.shape[1] > 0
        do_exact = wnoise.shape[1] > 0
        acc_r = np.empty((n_out, _TILE), np.float32)
        acc_i = np.empty((n_out, _TILE), np.float32)
        t = 0
        while t < n:
            # a tile: inside one FIR segment and one 1024-sample block of the call (so inside one
            # noise segment and one rotator block)
            k = 0
            end = min(n, (t // 1024 + 1) * 1024)
            if S > 0 and nmat > 1:
                k = (seg0 + t) // S - seg0 // S
                end = min(end, ((seg0 + t) // S + 1) * S - seg0)
            T = end - t
            _fir_tile(xre, xim, mats[k], lags, m + t, T, acc_r, acc_i)
            for o in range(n_out):
                are = acc_r[o]
                aim = acc_i[o]
                if do_rot:
                    st = rot_start[t // rb]
                    sr = st.real
                    si = st.imag
                    t0 = 2 * (t % rb)
                    rt = rot_tab[t0:t0 + 2 * T]
                    for q in range(T):
                        ar = rt[2 * q]
                        ai = rt[2 * q + 1]
                        rr = ar * sr - ai * si
                        ri = ar * si + ai * sr
                        yr = are[q] * rr - aim[q] * ri
                        yi = are[q] * ri + aim[q] * rr
                        are[q] = yr
                        aim[q] = yi
                if do_pool:
                    s = t // nseg_len
                    j0 = noff[o, s] + 2 * (t - s * nseg_len)
                    a = nscale[o, s]
                    pw = pool[j0:j0 + 2 * T]
                    for q in range(T):
                        are[q] += a * pw[2 * q]
                        aim[q] += a * pw[2 * q + 1]
                elif do_exact:
                    a = wsigma[o]
                    wn = wnoise[o, 2 * t:2 * end]
                    for q in range(T):
                        are[q] += a * wn[2 * q]
                        aim[q] += a * wn[2 * q + 1]
                ov = outf[o, 2 * t:2 * end]
                for q in range(T):
                    ov[2 * q] = are[q]
                    ov[2 * q + 1] = aim[q]
            t = end


def screen_bits(f: np.ndarray) -> int:
    """The bit pattern of the largest ``|value|`` of the float32 values ``f`` (1-D, e.g. a cf32 message's I and Q).

    [Note: screen in the input pass]
    For float32, ``bits & 0x7FFFFFFF`` orders like ``|value|`` for every finite value, +Inf is
    0x7F800000 and every NaN is above it; so one integer maximum answers both input guards of the
    channel server: some value is NaN/Inf iff the maximum is >= 0x7F800000, some finite value
    exceeds a limit ``L`` iff the maximum is above ``L``'s bit pattern. Integer compares are immune
    to fastmath (which may assume no NaN/Inf in float code) and need no temporaries. The fused
    kernel takes this maximum while it copies its input into its private planar buffer
    (:meth:`FusedPlan.load`), so a chunk is read once for the screen and the channel, and the
    output samples are computed from the copy that was screened (an AWGN stage's signal-power
    estimate still reads the caller's array); :func:`screen_bits` is the same pass alone,
    for a message the server screens on arrival.
    """
    u = f.view(np.uint32) if f.ndim == 1 and f.flags.c_contiguous else np.ascontiguousarray(f).reshape(-1).view(np.uint32)
    if _nb is not None:
        return int(_screen_bits(u))
    return int(np.bitwise_and(u, np.uint32(0x7FFFFFFF)).max()) if u.size else 0


_EMPTY_C = np.zeros(0, np.complex64)
_EMPTY_F = np.zeros(0, np.float32)


class FusedPlan:
    """How a :class:`Chain` maps onto the kernel: its FIR, CFO and AWGN stages (each may be absent)."""

    def __init__(self, fir, cfo, awgn):
        self.fir, self.cfo, self.awgn = fir, cfo, awgn
        self._re = self._im = np.zeros((0, 0), np.float32)
        self._loaded: tuple | None = None  # what the scratch holds after load() (see [Note: screen in the input pass])

    def _history(self, n_in: int, m: int) -> np.ndarray:
        fir = self.fir
        return fir._hist if (m and fir is not None and fir._hist is not None) else np.zeros((n_in, m), np.complex64)

    def _token(self, x: np.ndarray, m: int) -> tuple:
        return (x.__array_interface__["data"][0], x.shape, m, id(self.fir._hist) if self.fir is not None else 0)

    def load(self, x: np.ndarray, m: int | None = None) -> int:
        """Copy ``x`` (C-contiguous complex64 ``[n_in, n]``) into the kernel's private input buffer, and
        return the bit pattern of its largest ``|value|`` (see [Note: screen in the input pass]).

        The next :func:`fused_apply` on the same ``x`` computes from that copy instead of reading
        ``x`` again; any other call (another array, another history) reloads.
        """
        if x.dtype != np.complex64 or not x.flags.c_contiguous or x.ndim != 2:
            raise ValueError(f"load needs a C-contiguous complex64 [n_in, n] array, got {x.dtype} {x.shape}")
        n_in, n = x.shape
        m = self.history_len() if m is None else m
        xre, xim = self.scratch(n_in, m + n)
        bits = _load(x.view(np.uint32), self._history(n_in, m).view(np.uint32), xre.view(np.uint32),
                     xim.view(np.uint32))
        self._loaded = self._token(x, m)
        return int(bits)

    def unload(self) -> None:
        """Forget what :meth:`load` put in the buffer (the next call reads its input)."""
        self._loaded = None

    def history_len(self) -> int:
        """Input samples of history the FIR stage carries (its largest lag; 0 without a FIR)."""
        fir = self.fir
        if fir is None:
            return 0
        if fir._hist is not None:
            return int(fir._hist.shape[1])
        return int(max(getattr(fir, "lags", (0,)) or (0,)))

    def scratch(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Planar float32 input buffers ``[rows, >= cols]``, kept between calls (grown, never shrunk)."""
        if self._re.shape[0] != rows or self._re.shape[1] < cols:
            self._re = np.empty((rows, cols), np.float32)
            self._im = np.empty((rows, cols), np.float32)
        return self._re, self._im


def plan_for(stages: list) -> FusedPlan | None:
    """A :class:`FusedPlan` when ``stages`` are ``[FirStage]? [CFO]? [AWGN]?`` (at least one), else None."""
    from hil.channel.awgn import AWGN
    from hil.channel.fading import FirStage
    from hil.channel.impairments import CarrierFrequencyOffset

    if not available() or not stages:
        return None
    rest = list(stages)
    fir = rest.pop(0) if rest and isinstance(rest[0], FirStage) and type(rest[0]).apply is FirStage.apply else None
    cfo = rest.pop(0) if rest and type(rest[0]) is CarrierFrequencyOffset else None
    awgn = rest.pop(0) if rest and type(rest[0]) is AWGN else None
    if rest:
        return None
    if awgn is not None and awgn.reference == "rx" and awgn.noise_power is None and awgn.signal_power is None \
            and fir is not None:
        return None  # "rx" power measured after a fading stage: needs the faded signal first
    n = (fir or cfo or awgn).n_out
    if fir is None and (cfo or awgn).n_in != n:
        return None
    return FusedPlan(fir, cfo, awgn)


def fused_apply(plan: FusedPlan, x: np.ndarray, coeffs: list, out: np.ndarray | None = None) -> np.ndarray:
    """The chain's output for ``x`` (complex64 ``[n_in, n]``) into ``out`` (``[n_out, n]``, new if None).

    ``coeffs`` are the chain's (one per stage, AWGN's with ``signal_power`` already set by the
    chain when its reference is "tx"). Updates the stages' state exactly as their ``apply`` does.
    """
    from hil.channel.awgn import POOL_SEGMENT, active_power

    x = np.ascontiguousarray(x, dtype=np.complex64)
    n_in, n = x.shape
    it = iter(coeffs)
    fir, cfo, awgn = plan.fir, plan.cfo, plan.awgn
    if fir is not None:
        fc = next(it)
        mats = np.ascontiguousarray(fc.mats, dtype=np.complex64)
        lags = np.asarray(fc.lags, dtype=np.int64)
        seg0, S = int(fc.t0), int(fc.S or 0)
        m = int(lags.max()) if len(lags) else 0
        n_out = mats.shape[2]
    else:
        n_out = n_in
        mats = np.ones((1, 1, n_in, n_in), np.complex64) * np.eye(n_in, dtype=np.complex64)[None, None]
        lags, seg0, S, m = np.zeros(1, np.int64), 0, 0, 0
    rot_tab, rot_start = _EMPTY_C, _EMPTY_C
    if cfo is not None:
        phi0 = next(it)
        if not (cfo.cfo_hz == 0.0 and phi0 == 0.0):
            from hil.channel.impairments import _ROT_BLOCK

            rot_tab = cfo._table
            starts = np.arange(0, max(n, 1), _ROT_BLOCK, dtype=np.float64)
            rot_start = np.exp(1j * (phi0 + cfo._w * starts)).astype(np.complex64)
    noff = np.zeros((n_out, 0), np.int64)
    nscale = np.zeros((n_out, 0), np.float32)
    wnoise = np.zeros((n_out, 0), np.complex64)
    wsigma = _EMPTY_F
    pool = _EMPTY_F
    if awgn is not None:
        ac = next(it)
        if ac.signal_power is None and awgn.noise_power is None and awgn.signal_power is None:
            # "rx" reference, only power-preserving stages (CFO) before: measured on the input
            ac = dataclasses.replace(ac, signal_power=active_power(x, awgn.active_threshold_db))
        p, n0 = awgn._signal_and_noise(x, ac)
        if p is not None:
            awgn._last_power = p
        awgn._last_n0 = n0
        sigma = np.sqrt(n0).astype(np.float32)
        if ac.noise is not None:
            wnoise = np.ascontiguousarray(ac.noise[:, :n])
            wsigma = sigma
        else:
            pool = awgn._pool
            noff = np.ascontiguousarray(ac.offsets, dtype=np.int64)
            nscale = np.ascontiguousarray((sigma[:, None] * ac.signs).astype(np.float32))
    if out is None:
        out = np.empty((n_out, n), np.complex64)
    elif out.shape != (n_out, n) or out.dtype != np.complex64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous complex64 shaped {(n_out, n)}, got {out.dtype} {out.shape}")
    loaded, plan._loaded = plan._loaded, None
    if loaded != plan._token(x, m):
        plan.load(x, m)  # not loaded by the caller (or for another array / history): read x now
        plan._loaded = None
    xre, xim = plan.scratch(n_in, m + n)
    if n:
        _kernel(xre, xim, m, n, mats, lags, seg0, S, rot_tab.view(np.float32), rot_start,
                pool, noff, nscale, POOL_SEGMENT, wnoise.view(np.float32), wsigma, out.view(np.float32))
    if fir is not None and m:  # the new history: the last m samples of [history, x], from the copy computed on
        h = np.empty((n_in, m), np.complex64)
        hv = h.view(np.float32).reshape(n_in, m, 2)
        hv[..., 0] = xre[:, n:n + m]
        hv[..., 1] = xim[:, n:n + m]
        fir._hist = h
    return out


def warm_up() -> None:
    """Compile the kernels now (first call otherwise pays ~1-2 s, or a cache load)."""
    if available():
        from hil.channel.config import build_channel

        ch = build_channel({"n_tx": 1, "n_rx": 1, "fading": "rayleigh", "cfo_hz": 1.0, "snr_db": 10.0},
                           np.random.default_rng(0))
        ch(np.ones((1, 8), np.complex64))
        screen_bits(np.ones(2, np.float32))


def plan_info(plan: Any) -> str:  # pragma: no cover - diagnostics
    return "none" if plan is None else ", ".join(type(s).__name__ for s in (plan.fir, plan.cfo, plan.awgn) if s)
