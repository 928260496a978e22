"""The fast receiver: :class:`FrameReceiver`'s algorithm, vectorised across antennas and bursts.

[Note: fast receiver]
:class:`FastReceiver` decodes exactly what :class:`FrameReceiver` (the reference) decodes, with the
same estimators and decisions; only the arithmetic is arranged differently:

- the matched filter is evaluated only at the symbol instants it is needed at, by polyphase (tap
  ``p + sps*i`` meets the decimated stream ``x[first + p :: sps]``); the early/late pair of the
  timing-drift detector uses one row of the polyphase table per side, since every payload instant
  has the same fractional part;
- the differential correlator of the candidate search runs all lags and antennas through one
  forward and one inverse FFT of a size chosen by ``scipy.fft.next_fast_len`` once per capture
  length (cached); the strongest separated peaks are picked greedily (the same picks, ties in the
  reference's order);
- the coherent CFO statistic needs, per candidate start, antenna and template, only the searched
  bins (|f| <= max CFO, about a quarter) of an ``nfft``-point spectrum of ``Nw < nfft/2`` samples:
  bin ``4m + j`` is bin ``m`` of the ``nfft/4``-point transform of
  ``u_j[n] = sum_q s[n + q nfft/4] c_j[n + q nfft/4]`` (``c_j``: the conjugate template times
  ``exp(-2j pi n j / nfft)``, precomputed), so it runs as 4x as many transforms of a quarter of
  the length, without zero padding; the window power comes from the same pass;
- the phase-tracking correlations are one ``einsum`` instead of a loop over blocks;
- the CFO de-rotation ``exp(-2j pi f (k - n_ref))`` is the outer product of two tables of ~100
  phasors (``k = 64 i + j``; phases reduced to [-0.5, 0.5] cycles in float64), rounded once to
  complex64 (phase error < 1e-7 rad), instead of an exponential over the whole capture.

When numba is installed (and ``HIL_PHY_NUMBA`` is not ``0``) the element-wise work runs in
numba kernels (``_k_*``: numba is imported, and the kernels compiled with ``cache=True`` or loaded
from that cache, when the first :class:`FastReceiver` of the process is built, not when ``hil.phy``
is imported and never during a receive; ``fastmath`` limited to reassociation and contraction, so
NaN and inf behave as in numpy): the lag products, spectrum products and metric
reduction of the candidate search, the candidate picks, the statistic's template products (into
the transform buffer) and its bin powers and maxima, the polyphase matched filter (vectorised over
tiles of outputs, float64 sums) and :meth:`Pulse.matched_at` of the drift-corrected payload. They
work through per-thread scratch arrays (kept between calls: no page faults from fresh large
allocations) and transform in place. Without numba the numpy path computes the same quantities
(correlations by ``np.correlate``, the statistic by zero-padded ``nfft``-point transforms); both
paths are tested against the reference.

The outputs differ from the reference only by float rounding (sums taken in another order, FFTs
of another length or split, the complex64 de-rotation): tests/unit/phy/test_phy_fast.py checks
every field of the result against the reference over seeds, SNRs, CFOs, delays, clock offsets,
antenna counts and frame modes, with the tolerances it states; test_phy_fast_kernels.py checks
each kernel against the numpy path.

:meth:`FastReceiver.receive_batch` decodes many captures: the candidate search of up to 4 captures
of one length is one call, and ``workers`` threads may decode captures in parallel (the kernels
release the GIL, like numpy and scipy.fft). Grouping saves Python overhead, not arithmetic; the
threads can only help when a second core is free.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from hil.errors import SyncError
from hil.phy.receiver import FrameReceiver, RxResult
from hil.phy.waveform import _POLY_PHASES, Pulse, rrc


#: captures per stacked candidate search (a stack of 16 measured slower per capture than stacks of 4)
_BATCH_CHUNK = 4

#: the coherent statistic's transforms are split this many ways (see _k_stat_fill)
_STAT_SPLIT = 4

#: the CFO de-rotation is the outer product of tables of this many and N / this many phasors
_PHASOR_BLOCK = 64

#: matched-filter outputs per tile of :func:`_k_mf` (the accumulators stay in L1)
_MF_TILE = 128


def available() -> bool:
    """Whether the numba kernels can run here (numba installed, not disabled by ``HIL_PHY_NUMBA=0``).

    Read when a :class:`FastReceiver` is built; without them it runs the numpy path (same results
    within float rounding). numba itself is imported only then (see :func:`_load_kernels`)."""
    global _HAVE_NUMBA
    if _HAVE_NUMBA is None:
        _HAVE_NUMBA = importlib.util.find_spec("numba") is not None
    return _HAVE_NUMBA and os.environ.get("HIL_PHY_NUMBA", "1") != "0"


_HAVE_NUMBA: bool | None = None


# The kernels: plain functions here, compiled by _load_kernels (numba njit, nogil, cache=True). Rows
# are taken as 1-d views before the inner loops (contiguous 1-d loops vectorise).


def _k_mf(x, first, n, sps, taps, out):  # pragma: no cover - compiled
    # out[r, m] = sum_j x[r, first + m*sps + j] taps[j] (complex64 x, float64 taps and sums), by
    # polyphase: phase p of the taps meets the planar copy of x[first + p + sps*k]; per tile of
    # outputs each tap is one contiguous multiply-add over the tile (vectorised)
    w = taps.shape[0]
    ni_max = (w + sps - 1) // sps
    re = np.empty(_MF_TILE + ni_max)
    im = np.empty(_MF_TILE + ni_max)
    ar = np.empty(_MF_TILE)
    ai = np.empty(_MF_TILE)
    for r in range(x.shape[0]):
        xr = x[r]
        orow = out[r]
        for mt in range(0, n, _MF_TILE):
            te = min(_MF_TILE, n - mt)
            ar[:te] = 0.0
            ai[:te] = 0.0
            for p in range(min(sps, w)):
                ni = (w - p + sps - 1) // sps
                s0 = first + p + sps * mt
                for k in range(te + ni - 1):
                    v = xr[s0 + sps * k]
                    re[k] = v.real
                    im[k] = v.imag
                for i in range(ni):
                    t = taps[p + sps * i]
                    for m in range(te):
                        ar[m] += t * re[m + i]
                        ai[m] += t * im[m + i]
            for m in range(te):
                orow[mt + m] = complex(ar[m], ai[m])


def _k_mf_at(x, start, phase, poly, out):  # pragma: no cover - compiled
    # out[r, m] = sum_k x[r, start[m] + k] poly[phase[m], k]: Pulse.matched_at, one window each
    w = poly.shape[1]
    for r in range(x.shape[0]):
        xr = x[r]
        for m in range(start.shape[0]):
            s0 = start[m]
            taps = poly[phase[m]]
            ar = 0.0
            ai = 0.0
            for k in range(w):
                v = xr[s0 + k]
                ar += v.real * taps[k]
                ai += v.imag * taps[k]
            out[r, m] = complex(ar, ai)


def _k_window_power(x, nw, s2):  # pragma: no cover - compiled
    # s2[d] = max(sum_{r, n < nw} |x[r, d + n]|^2 / (n_rx nw), 1e-30) by a float64 running sum
    # (the difference of a cumulative sum, as the reference computes it)
    n_rx, n = x.shape
    p = np.zeros(n)
    for r in range(n_rx):
        xr = x[r]
        for k in range(n):
            v = xr[k]
            p[k] += np.float64(v.real * v.real + v.imag * v.imag)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    acc = 0.0
    for k in range(n):
        acc += p[k]
        cs[k + 1] = acc
    scale = 1.0 / (n_rx * nw)
    for d in range(s2.shape[0]):
        s2[d] = max((cs[d + nw] - cs[d]) * scale, 1e-30)


def _k_diff_products(x, lags, y):  # pragma: no cover - compiled
    # y[i, r, k] = x[r, k + lag_i] conj(x[r, k]) for k < N - lag_i, zero up to the FFT length
    n_rx, n = x.shape
    for i in range(lags.shape[0]):
        lag = lags[i]
        for r in range(n_rx):
            a = x[r, lag:]
            b = x[r]
            o = y[i, r]
            for k in range(n - lag):
                o[k] = a[k] * b[k].conjugate()
            o[n - lag:] = 0


def _k_spec_mul(yf, vf, out):  # pragma: no cover - compiled
    # out[i, r, t, k] = yf[i, r, k] vf[i, t, k]
    n_l, n_rx, nf = yf.shape
    n_tx = vf.shape[1]
    for i in range(n_l):
        for r in range(n_rx):
            a = yf[i, r]
            for t in range(n_tx):
                b = vf[i, t]
                o = out[i, r, t]
                for k in range(nf):
                    o[k] = a[k] * b[k]


def _k_diff_metric(c, s2, m):  # pragma: no cover - compiled
    # m[d] = sum_{i, r, t} |c[i, r, t, d]|^2 / s2[d]^2 (float64 sums)
    n_l, n_rx, n_tx, _ = c.shape
    d_total = m.shape[0]
    m[:] = 0.0
    for i in range(n_l):
        for r in range(n_rx):
            for t in range(n_tx):
                row = c[i, r, t]
                for d in range(d_total):
                    v = row[d]
                    m[d] += np.float64(v.real * v.real + v.imag * v.imag)
    for d in range(d_total):
        m[d] /= s2[d] * s2[d]


def _k_pick(m, n_cand, sep, picks):  # pragma: no cover - compiled
    # greedy: the largest value, then the largest at >= sep from every pick so far, ...; the
    # same picks as walking the values in descending order (ties: the highest index first, as
    # the reference's reversed argsort orders them)
    n = m.shape[0]
    used = np.zeros(n, np.bool_)
    k = 0
    while k < n_cand:
        best = -1
        for d in range(n):
            if not used[d] and (best < 0 or m[d] >= m[best]):
                best = d
        if best < 0:
            break
        picks[k] = best
        k += 1
        for d in range(max(best - sep + 1, 0), min(best + sep, n)):
            used[d] = True
    return k


def _k_grid(base, offset, sps, n_phases):  # pragma: no cover - compiled
    # (True, first sample, polyphase row) when the instants base[m] + offset all share one polyphase
    # row (rint((c - floor(c)) * n_phases)) and their floors step by sps exactly, else (False, 0, 0)
    n = base.shape[0]
    if n < 2:
        return False, 0, 0
    c = base[0] + offset
    b0 = np.floor(c)
    ph0 = np.rint((c - b0) * n_phases)
    prev = b0
    for m in range(1, n):
        c = base[m] + offset
        b = np.floor(c)
        if b - prev != sps or np.rint((c - b) * n_phases) != ph0:
            return False, 0, 0
        prev = b
    return True, int(b0), int(ph0)


def _k_stat_fill(x, positions, cw, buf, s2):  # pragma: no cover - compiled
    # The nfft-point spectrum of x[r, d_p + n] conj(w_t[n]) (n < Nw) split S ways: bin S*m + j is
    # bin m of the L = nfft/S point transform of u_j[n] = sum_q s[n + qL] c_j[n + qL], with
    # c_j[n] = conj(w_t[n]) exp(-2j pi n j / nfft) (cw: [n_tx, S, Nw] complex64) and L < Nw <= 2L
    # (q = 0, 1); buf: [n_tx, n_rx, P, S, L]. s2[p]: the window's mean power per sample (all
    # antennas, float64 sum), floored at 1e-30.
    n_tx, n_rx, n_p, n_s, ln = buf.shape
    nw = cw.shape[2]
    for p in range(n_p):
        pw = 0.0
        for r in range(n_rx):
            seg = x[r, positions[p]:positions[p] + nw]
            for k in range(nw):
                v = seg[k]
                pw += np.float64(v.real * v.real + v.imag * v.imag)
            for t in range(n_tx):
                for j in range(n_s):
                    row = buf[t, r, p, j]
                    c = cw[t, j]
                    for k in range(ln):
                        row[k] = seg[k] * c[k]
                    c2 = c[ln:]
                    s_2 = seg[ln:]
                    for k in range(nw - ln):
                        row[k] += s_2[k] * c2[k]
        s2[p] = max(pw / (n_rx * nw), 1e-30)


def _k_stat_max(z, runs, order, inv_we, s2, best, arg):  # pragma: no cover - compiled
    # acc[k] = sum_t inv_we[t] sum_r |Z_{t,r,p}(bins[k])|^2 / s2[p]; best[p], arg[p]: its max
    # and the first k that reaches it (np.argmax). The searched bins are read as runs (j, m0,
    # m1, o) of consecutive m in z[t, r, p, j] (e[o + m - m0]); order[k]: where bin k is in e
    n_tx, n_rx, n_p = z.shape[0], z.shape[1], z.shape[2]
    nb = order.shape[0]
    acc = np.empty(nb)
    e = np.empty(nb)
    for p in range(n_p):
        acc[:] = 0.0
        for t in range(n_tx):
            e[:] = 0.0
            for r in range(n_rx):
                for q in range(runs.shape[0]):
                    row = z[t, r, p, runs[q, 0], runs[q, 1]:runs[q, 2]]
                    eo = e[runs[q, 3]:]
                    for m in range(row.shape[0]):
                        v = row[m]
                        eo[m] += np.float64(v.real * v.real + v.imag * v.imag)
            w = inv_we[t]
            for k in range(nb):
                acc[k] += w * e[k]
        sp = s2[p]
        a = 0
        va = acc[order[0]] / sp
        for k in range(1, nb):
            v = acc[order[k]] / sp
            if v > va:
                a = k
                va = v
        best[p] = va
        arg[p] = a

class _FastPulse(Pulse):
    """:class:`Pulse` whose :meth:`matched_at` (the re-timed payload of a drifting clock) runs in a
    numba kernel: the same polyphase taps, window and checks, without the ``[n_rx, M, 2L+2]`` gather."""

    def matched_at(self, x: np.ndarray, centres: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.dtype != np.complex64 or not _kernels_loaded:
            return super().matched_at(x, centres)
        centres = np.asarray(centres, np.float64)
        base = np.floor(centres).astype(np.int64)
        if base.min() - self.half < 0 or base.max() + self.half + 2 > x.shape[1]:
            raise IndexError(f"matched filter windows outside capture of {x.shape[1]}")
        phase = np.rint((centres - base) * _POLY_PHASES).astype(np.int64)
        out = np.empty((x.shape[0], len(centres)), np.complex128)
        _k_mf_at(np.ascontiguousarray(x), base - self.half, phase, self._poly, out)
        return out


class FastReceiver(FrameReceiver):
    """:class:`FrameReceiver` with vectorised hot paths (see [Note: fast receiver]); same results."""

    def __init__(self, cfg):
        super().__init__(cfg)
        # [lag, n_tx, Nw'] differential templates, zero-padded to a common length
        self._diff_stack = np.stack(
            [np.pad(v, ((0, 0), (0, self.nw - v.shape[1]))) for v in self._diff_templates]
        )  # [L, n_tx, Nw]
        self._dfast_cache: dict[int, tuple[int, np.ndarray]] = {}
        self._mf_taps: tuple[float, np.ndarray] = (np.nan, np.zeros(0))
        self._conj_w = np.conj(self.templates).astype(np.complex64)  # [n_tx, Nw]
        # self.bins as runs of consecutive FFT bins, in order
        br = np.split(self.bins, np.flatnonzero(np.diff(self.bins) != 1) + 1)
        self._bin_runs = [(int(r[0]), int(r[-1]) + 1) for r in br if len(r)]
        self._nb = available() and _load_kernels()
        if self._nb:
            self.pulse = _FastPulse(cfg)
        self._lags = np.asarray(self._diff_lags, np.int64)
        # the coherent statistic's nfft-point transforms as _STAT_SPLIT transforms of nfft/_STAT_SPLIT
        # points (see _k_stat_fill): twiddled conjugate templates and each searched bin's place
        n_s = _STAT_SPLIT
        ln = self.nfft // n_s
        self._nb_stat = self._nb and self.nfft % n_s == 0 and ln < self.nw <= 2 * ln
        tw = np.exp(-2j * np.pi * np.outer(np.arange(n_s), np.arange(self.nw)) / self.nfft)  # [S, Nw]
        self._split_cw = (np.conj(self.templates)[:, None, :] * tw[None]).astype(np.complex64)  # [n_tx, S, Nw]
        # the searched bins as runs (j, m0, m1, offset) of consecutive m = bin // S with j = bin % S,
        # and where each bin (in self.bins' order) lands in the runs' concatenation
        runs, where, o = [], np.empty(len(self.bins), np.int64), 0
        for j in range(n_s):
            sel = np.flatnonzero(self.bins % n_s == j)
            ms = self.bins[sel] // n_s
            srt = np.argsort(ms)
            for grp in np.split(srt, np.flatnonzero(np.diff(ms[srt]) != 1) + 1):
                if len(grp):
                    runs.append((j, int(ms[grp[0]]), int(ms[grp[-1]]) + 1, o))
                    where[sel[grp]] = o + np.arange(len(grp))
                    o += len(grp)
        self._bin_runs_split = np.array(runs, np.int64).reshape(-1, 4)
        self._bin_order = where
        self._inv_we = 1.0 / np.asarray(self.w_energy, np.float64)
        self._tls = threading.local()  # per-thread scratch arrays (receive_batch's threads)

    def __getstate__(self) -> dict:  # copy/pickle without the per-thread scratch arrays
        state = dict(self.__dict__)
        del state["_tls"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tls = threading.local()
        if self._nb:  # unpickled in another process: the kernels of this one
            self._nb = _load_kernels()
            self._nb_stat = self._nb_stat and self._nb

    def _scratch(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A scratch array of this thread, kept between calls (its contents are not kept)."""
        store = self._tls.__dict__
        a = store.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = store[name] = np.empty(shape, dtype)
        return a

    # ------------------------------------------------------------------ detection
    def _diff_plan(self, n: int) -> tuple[int, np.ndarray]:
        """FFT size and conjugate template spectra ``[L, 1, n_tx, nf]`` for captures of ``n`` samples."""
        if n not in self._dfast_cache:
            nf = sfft.next_fast_len(n, real=True)  # 5-smooth; no wrap-around: see _diff_metric_batch
            vf = np.conj(sfft.fft(self._diff_stack, nf, axis=-1)).astype(np.complex64)
            self._dfast_cache[n] = (nf, vf[:, None])
        return self._dfast_cache[n]

    def _diff_metric(self, x: np.ndarray) -> np.ndarray:
        return self._diff_metric_batch(x[None])[0]

    def _diff_metric_batch(self, xb: np.ndarray) -> np.ndarray:
        """:meth:`_diff_metric` of captures ``[n_b, n_rx, N]`` in one FFT pair -> ``[n_b, N - Nw + 1]``."""
        nb, n_rx, n = xb.shape
        nw = self.nw
        d_total = n - nw + 1
        nf, vf = self._diff_plan(n)
        if self._nb:
            # one capture at a time through scratch arrays that stay in cache, transforms in place
            n_l, n_tx = len(self._diff_lags), vf.shape[2]
            y = self._scratch("diff_y", (n_l, n_rx, nf), np.complex64)
            prod = self._scratch("diff_prod", (n_l, n_rx, n_tx, nf), np.complex64)
            s2 = self._scratch("diff_s2", (d_total,), np.float64)
            out = np.empty((nb, d_total))
            for b in range(nb):
                x = np.ascontiguousarray(xb[b])
                _k_diff_products(x, self._lags, y)
                yf = sfft.fft(y, axis=-1, overwrite_x=True)
                _k_spec_mul(yf, vf[:, 0], prod)
                c = sfft.ifft(prod, axis=-1, overwrite_x=True)
                _k_window_power(x, nw, s2)
                _k_diff_metric(c, s2, out[b])
            return out
        lags = self._diff_lags
        y = np.zeros((len(lags), nb, n_rx, n), np.complex64)
        for i, lag in enumerate(lags):
            y[i, ..., : n - lag] = xb[..., lag:] * np.conj(xb[..., :-lag])
        # circular correlation of length nf >= n: start d < N - Nw + 1 reads y[d : d + Nw] only, never wraps
        yf = sfft.fft(y, nf, axis=-1)  # [L, n_b, n_rx, nf]
        c = sfft.ifft(yf[:, :, :, None, :] * vf[:, :, None], axis=-1)[..., :d_total]  # [L, n_b, r, t, D]
        m = np.sum(c.real**2 + c.imag**2, axis=(0, 2, 3), dtype=np.float64)  # [n_b, D]
        p = np.sum(np.abs(xb) ** 2, axis=1, dtype=np.float64)  # [n_b, N]
        cs = np.concatenate([np.zeros((nb, 1)), np.cumsum(p, axis=1)], axis=1)
        s2 = np.maximum((cs[:, nw:] - cs[:, :-nw]) / (n_rx * nw), 1e-30)
        return m / s2**2

    def _pick_candidates(self, m: np.ndarray, n_cand: int, radius: int) -> np.ndarray:
        sep = max(2 * radius + 1, self.nw // 4)
        if self._nb and not np.isnan(m).any():  # NaN: the reference's sort order (NaN first)
            picks = np.empty(n_cand, np.int64)
            picks = picks[: _k_pick(np.ascontiguousarray(m, np.float64), n_cand, sep, picks)]
            offs = np.arange(-radius, radius + 1)
            pos = (picks[:, None] + offs[None]).ravel()
            return np.unique(pos[(pos >= 0) & (pos < len(m))])
        top = min(len(m), 64 * n_cand)
        while True:
            idx = np.argpartition(m, len(m) - top)[len(m) - top :] if top < len(m) else np.arange(len(m))
            order = idx[np.argsort(m[idx])[::-1]]
            picks: list[int] = []
            for i in order:
                if all(abs(int(i) - q) >= sep for q in picks):
                    picks.append(int(i))
                    if len(picks) == n_cand:
                        break
            # the greedy choice over the top values equals the one over all values once it found
            # n_cand peaks before running out of them (or when it looked at every value)
            if len(picks) == n_cand or top == len(m):
                break
            top = min(len(m), top * 4)
        d_total = len(m)
        offs = np.arange(-radius, radius + 1)
        pos = (np.array(picks, int)[:, None] + offs[None]).ravel()
        return np.unique(pos[(pos >= 0) & (pos < d_total)])

    def statistic(self, x: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_rx, n = x.shape
        nw, n_tx = self.nw, self.cfg.n_tx
        pos = np.asarray(positions)
        if self._nb_stat and x.dtype == np.complex64 and len(pos) and pos.min() >= 0 and pos.max() <= n - nw:
            pos = np.ascontiguousarray(pos, np.int64)
            x = np.ascontiguousarray(x)
            n_s, ln = _STAT_SPLIT, self.nfft // _STAT_SPLIT
            buf = self._scratch("stat_buf", (n_tx, n_rx, len(pos), n_s, ln), np.complex64)
            s2 = np.empty(len(pos))
            _k_stat_fill(x, pos, self._split_cw, buf, s2)
            z = sfft.fft(buf, axis=-1, overwrite_x=True)
            best, arg = np.empty(len(pos)), np.empty(len(pos), np.int64)
            _k_stat_max(z, self._bin_runs_split, self._bin_order, self._inv_we, s2, best, arg)
            return best, arg
        p = np.sum(np.abs(x) ** 2, axis=0, dtype=np.float64)
        cs = np.concatenate([[0.0], np.cumsum(p)])
        s2 = np.maximum((cs[positions + nw] - cs[positions]) / (n_rx * nw), 1e-30)  # [P]
        seg = sliding_window_view(x, nw, axis=-1)[:, positions]  # [n_rx, P, Nw]
        buf = np.zeros((n_tx, n_rx, len(positions), self.nfft), np.complex64)
        np.multiply(seg[None], self._conj_w[:, None, None, :], out=buf[..., :nw])
        z = sfft.fft(buf, axis=-1, overwrite_x=True)
        # the searched bins are two contiguous runs (positive and negative frequencies)
        acc = np.concatenate([self._bin_power(z[..., a:b]) for a, b in self._bin_runs], axis=1)
        acc /= s2[:, None]
        arg = np.argmax(acc, axis=1)
        return acc[np.arange(len(positions)), arg], arg

    def _bin_power(self, z: np.ndarray) -> np.ndarray:
        """``sum_{t,r} |z[t, r, p, k]|^2 / |w_t|^2`` -> ``[P, k]`` (float64)."""
        e = np.sum(z.real**2 + z.imag**2, axis=1, dtype=np.float64)  # [n_tx, P, k]
        return np.tensordot(1.0 / self.w_energy, e, axes=(0, 0))

    @staticmethod
    def _phasor(f: float, n_ref: float, n: int) -> np.ndarray:
        # exp(-2j pi f (i B + j - n_ref)) = row[i] col[j]: two short complex128 tables (phases reduced
        # to [-0.5, 0.5] cycles in float64), their outer product rounded once to complex64
        b = _PHASOR_BLOCK
        rows = -(-n // b)
        th = f * np.arange(b)
        th -= np.rint(th)
        col = np.exp(-2j * np.pi * th)
        th = f * (np.arange(rows) * float(b) - n_ref)
        th -= np.rint(th)
        row = np.exp(-2j * np.pi * th)
        out = np.empty(rows * b, np.complex64)
        np.multiply(row[:, None], col[None, :], out=out.reshape(rows, b))
        return out[:n]

    # ------------------------------------------------------------------ matched filter
    def _poly_mf(self, x: np.ndarray, first: int, n: int, taps: np.ndarray) -> np.ndarray:
        """``out[r, m] = sum_j x[r, first + m*sps + j] taps[j]`` for ``m < n``: complex128 ``[n_rx, n]``.

        Polyphase: tap ``j = p + sps*i`` meets sample ``first + p + sps*(m + i)``, so each phase ``p``
        is one 'valid' correlation of the decimated stream ``x[first + p :: sps]`` with
        ``taps[p::sps]``; only the ``n`` wanted instants are computed. IndexError when a window
        leaves ``x``.
        """
        sps = self.cfg.sps
        w = len(taps)
        stop = first + (n - 1) * sps + w
        if first < 0 or stop > x.shape[1]:
            raise IndexError(f"matched filter window [{first}, {stop}) outside capture of {x.shape[1]}")
        n_rx = x.shape[0]
        if self._nb and x.dtype == np.complex64:
            out = np.empty((n_rx, n), np.complex128)
            _k_mf(np.ascontiguousarray(x), first, n, sps, np.ascontiguousarray(taps, np.float64), out)
            return out
        out = np.zeros((n_rx, 2, n))
        for p in range(min(sps, w)):
            tp = taps[p::sps]
            row = n + len(tp) - 1
            seg = x[:, first + p : first + p + row * sps : sps]
            # real and imaginary parts of every antenna as the rows of one long real signal, one
            # correlation for all of them; the outputs whose window crosses a row end are dropped
            buf = np.empty((n_rx, 2, row))
            buf[:, 0], buf[:, 1] = seg.real, seg.imag
            c = np.correlate(buf.ravel(), tp, mode="valid")
            out += np.concatenate([c, np.zeros(len(tp) - 1)]).reshape(n_rx, 2, row)[..., :n]
        return out[:, 0] + 1j * out[:, 1]

    def _mf(self, x: np.ndarray, t0: float, first_symbol: int, n: int, what: str) -> np.ndarray:
        pulse, sps = self.pulse, self.cfg.sps
        c0 = t0 + pulse.half + first_symbol * sps
        base = int(np.floor(c0))
        mu = c0 - base
        # every call of one frame has the same fractional part, up to the rounding of t0 + integer
        taps = self._mf_taps  # one read: receive_batch's threads may replace it meanwhile
        if not abs(taps[0] - mu) < 1e-9:
            k = np.arange(-pulse.half, pulse.half + 2)
            taps = (mu, rrc((k - mu) / sps, pulse.beta) * pulse.scale / sps)  # Pulse.matched's taps
            self._mf_taps = taps
        try:
            return self._poly_mf(x, base - pulse.half, n, taps[1])
        except IndexError as e:
            raise SyncError(f"burst truncated: the {what} runs outside the capture ({e})") from e

    def _early_late(self, xc: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the payload instants are t0 + half + m*sps: one fractional part, so one polyphase row of
        # Pulse.matched_at's table per side; any other spacing falls back to the reference
        sps, half = self.cfg.sps, self.pulse.half
        out = []
        if self._nb:
            base = np.ascontiguousarray(base, np.float64)
            for off in (-0.5, 0.5):
                ok, b0, ph0 = _k_grid(base, off, sps, _POLY_PHASES)
                if not ok:
                    return super()._early_late(xc, base)
                out.append(self._poly_mf(xc, b0 - half, len(base), self.pulse._poly[ph0]))
            return out[0], out[1]
        for c in (base - 0.5, base + 0.5):
            b = np.floor(c).astype(int)
            ph = np.rint((c - b) * _POLY_PHASES).astype(int)
            if len(c) < 2 or np.any(ph != ph[0]) or np.any(np.diff(b) != sps):
                return super()._early_late(xc, base)
            out.append(self._poly_mf(xc, int(b[0]) - half, len(c), self.pulse._poly[ph[0]]))
        return out[0], out[1]

    @staticmethod
    def _track_corr(y: np.ndarray, blocks: np.ndarray, expected: np.ndarray) -> np.ndarray:
        n_tx = expected.shape[1]
        yb = y[:, blocks[:, None] + np.arange(n_tx)[None, :]]  # [n_rx, n_blocks, n_tx]
        return np.einsum("rt,rbt->b", np.conj(expected), yb)

    # ------------------------------------------------------------------ batches
    def receive_batch(
        self,
        captures,
        expect_seqs=None,
        expect_shapes=None,
        workers: int = 1,
    ) -> list[RxResult | SyncError]:
        """Decode many captures; the candidate search runs on captures of one length together.

        Args:
            captures: sequence of complex ``[n_rx, N_i]`` captures (any lengths).
            expect_seqs: per capture, the sequence number its frame must carry (or None).
            expect_shapes: per capture, the ``(B, K)`` its frame must carry (or None).
            workers: threads that decode captures in parallel (numpy and scipy.fft release the GIL
                in their array work); 1 decodes in this thread. The results do not depend on it.

        Returns:
            one entry per capture: its :class:`RxResult`, or the :class:`SyncError` that says why it
            could not be decoded (a lost frame does not stop the others).
        """
        xs = [self._check_capture(c) for c in captures]
        nb = len(xs)
        seqs = list(expect_seqs) if expect_seqs is not None else [None] * nb
        shapes = list(expect_shapes) if expect_shapes is not None else [None] * nb
        if len(seqs) != nb or len(shapes) != nb:
            raise ValueError(f"receive_batch: {nb} captures but {len(seqs)} expect_seqs, {len(shapes)} expect_shapes")
        if workers < 1:
            raise ValueError(f"receive_batch: workers must be >= 1, got {workers}")
        # groups of up to _BATCH_CHUNK captures of one length share one candidate-search transform
        groups: list[list[int]] = []
        by_len: dict[int, list[int]] = {}
        for i, x in enumerate(xs):
            if x.shape[1] >= self.nw + 1:
                by_len.setdefault(x.shape[1], []).append(i)
            else:
                groups.append([i])
        for idx in by_len.values():
            groups += [idx[j : j + _BATCH_CHUNK] for j in range(0, len(idx), _BATCH_CHUNK)]
        out: list[RxResult | SyncError | None] = [None] * nb

        def run(group: list[int]) -> None:
            if xs[group[0]].shape[1] < self.nw + 1:
                metrics = [None]
            else:
                metrics = list(self._diff_metric_batch(np.stack([xs[i] for i in group])))
            for i, m in zip(group, metrics):
                try:
                    if m is None:
                        self.detect(xs[i])  # raises the reference's "burst truncated" error
                    det = self._detect_at(xs[i], self._pick_candidates(m, 4, 6))
                    out[i] = self._decode(xs[i], det, seqs[i], shapes[i])
                except SyncError as e:
                    out[i] = e

        if workers == 1:
            for g in groups:
                run(g)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, groups))
        return out


#: the kernels, compiled by _load_kernels; all but _k_pick and _k_grid (comparisons) with _FASTMATH
_KERNELS = ("_k_mf", "_k_mf_at", "_k_window_power", "_k_diff_products", "_k_spec_mul", "_k_diff_metric",
            "_k_pick", "_k_grid", "_k_stat_fill", "_k_stat_max")
#: reassociation (vectorised sums) and fused multiply-adds only: no assumptions about NaN or inf
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_kernels_lock = threading.Lock()
_kernels_loaded = False


def _load_kernels() -> bool:
    """Import numba and compile the kernels (or load them from numba's cache) once per process, when
    the first :class:`FastReceiver` is built, not on a first burst; each is called once here with the
    argument types the receiver uses, so no call compiles. False when numba cannot be imported."""
    global _kernels_loaded, _HAVE_NUMBA
    with _kernels_lock:
        if _kernels_loaded:
            return True
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on the environment
            _HAVE_NUMBA = False
            return False

        g = globals()
        for name in _KERNELS:
            fm = _FASTMATH if name not in ("_k_pick", "_k_grid") else False
            g[name] = numba.njit(cache=True, fastmath=fm, nogil=True, boundscheck=False)(g[name])
        x = np.ones((1, 16), np.complex64)
        _k_mf(x, 0, 2, 2, np.ones(4), np.empty((1, 2), np.complex128))
        _k_mf_at(x, np.zeros(2, np.int64), np.zeros(2, np.int64), np.ones((2, 4)), np.empty((1, 2), np.complex128))
        _k_window_power(x, 4, np.empty(13))
        y = np.empty((1, 1, 16), np.complex64)
        _k_diff_products(x, np.ones(1, np.int64), y)
        prod = np.empty((1, 1, 1, 16), np.complex64)
        _k_spec_mul(y, y, prod)
        _k_diff_metric(prod, np.ones(13), np.empty(13))
        _k_pick(np.ones(13), 1, 2, np.empty(1, np.int64))
        _k_grid(np.arange(3.0), 0.5, 2, 64)
        buf = np.zeros((1, 1, 1, 2, 2), np.complex64)
        _k_stat_fill(x, np.zeros(1, np.int64), np.ones((1, 2, 3), np.complex64), buf, np.empty(1))
        i0 = np.zeros(1, np.int64)
        _k_stat_max(buf, np.zeros((1, 4), np.int64), i0, np.ones(1), np.ones(1), np.empty(1), i0.copy())
        _kernels_loaded = True
        return True
