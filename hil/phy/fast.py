"""The fast receiver: :class:`FrameReceiver`'s algorithm, vectorised across antennas and bursts.

[Note: fast receiver]
:class:`FastReceiver` decodes exactly what :class:`FrameReceiver` (the reference) decodes, with the
same estimators and decisions; only the arithmetic is arranged differently:

- the matched filter is evaluated only at the symbol instants it is needed at, by polyphase: for
  each of the ``sps`` phases one real 'valid' correlation of the decimated stream (real and
  imaginary parts of all antennas in one call) with that phase's taps; the early/late pair of the
  timing-drift detector uses one row of the polyphase table per side, since every payload instant
  has the same fractional part;
- the differential correlator of the candidate search runs all lags and antennas in one forward
  and one inverse FFT of a size chosen by ``scipy.fft.next_fast_len`` once per capture length
  (cached), and the strongest peaks are found with a partial sort;
- the coherent CFO statistic transforms all transmit templates in one FFT call;
- the phase-tracking correlations are one ``einsum`` instead of a loop over blocks;
- the CFO de-rotation reduces the phase to [-0.5, 0.5] cycles in float64 and takes cos/sin in
  float32 (phase error < 2e-7 rad) instead of a complex128 exponential.

The outputs differ from the reference only by float rounding (sums taken in another order, FFTs
of another length, the float32 de-rotation): tests/unit/phy/test_phy_fast.py checks every field of
the result against the reference over seeds, SNRs, CFOs, delays, clock offsets, antenna counts and
frame modes, with the tolerances it states.

:meth:`FastReceiver.receive_batch` decodes many captures: the candidate search of up to 4 captures
of one length runs as one stacked transform, and ``workers`` threads may decode captures in
parallel. Stacking saves Python overhead, not arithmetic (docs/performance.md measured no gain on
one core); the threads can only help when a second core is free (not measured: on the shared
benchmark machine none was).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from hil.errors import SyncError
from hil.phy.receiver import FrameReceiver, RxResult
from hil.phy.waveform import _POLY_PHASES, rrc

#: captures per stacked candidate search (a stack of 16 measured slower per capture than stacks of 4)
_BATCH_CHUNK = 4


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
        # the phase in cycles reduced to [-0.5, 0.5] in float64, then cos/sin in float32 (error < 2e-7)
        th = f * (np.arange(n) - n_ref)
        th -= np.rint(th)
        th = (th * (-2 * np.pi)).astype(np.float32)
        out = np.empty(n, np.complex64)
        out.real, out.imag = np.cos(th), np.sin(th)
        return out

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
