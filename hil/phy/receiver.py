"""The receiver: detection, CFO, timing, channel estimation, header, noise, payload.

[Note: detection statistic and threshold]
For every candidate start ``d`` and CFO ``f`` on the grid of a zero-padded FFT (``|f| <= max_cfo``)
the detector correlates the capture with each antenna's known preamble waveform ``w_t``::

    M(d, f) = sum_{r,t} |sum_n x_r[d+n] conj(w_t[n]) exp(-2j pi f n)|^2 / (|w_t|^2 * s2(d))

where ``s2(d)`` is the mean power per sample of the window (measured, all receive antennas). On
white Gaussian noise each term is ``Exp(1)``, so ``M ~ Gamma(n_rx*n_tx, 1)`` whatever the noise
power (CFAR). The threshold ``gammainccinv(n_rx n_tx, p_fa / n_tests)`` (union bound over the
``n_tests`` = every possible start of the capture x independent CFO bins searched) gives a
false-alarm probability below ``p_fa`` per capture of noise only. The statistic is evaluated only
around the strongest peaks of a cheap CFO-invariant differential correlator (the candidates), but
since those are selected for looking like the preamble, the union bound counts every start. The coherent search over CFO is what makes the detector work
at 0 dB and below with +-0.12 cycles/sample of CFO, where a lag-autocorrelation detector would
lose most of its SNR to noise x noise terms.

[Note: CFO and phase references]
Coarse CFO: the FFT bin of the detection peak, refined by a parabola (range ``+-max_cfo_hz``).
Fine CFO: the phase between the two halves of the preamble correlation (range ``+-1/Nw``,
``Nw`` = preamble samples), after the coarse correction. The capture is de-rotated by
``exp(-2j pi f (n - n_ref))`` with ``n_ref`` the centre of the pilot block, so the channel
estimate carries the phase at the pilots and the payload phase is tracked relative to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.special import gammainccinv

from hil.errors import SyncError
from hil.phy.config import PhyConfig
from hil.phy.frame import FrameLayout, OfdmGrid
from hil.phy.waveform import HEADER_BITS, Header, Pulse, Sequences, rrc

log = logging.getLogger(__name__)

_CHUNK = 128

#: the smallest noise power the receiver reports (full scale 1.0): float32's smallest normal
_NOISE_FLOOR = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Detection:
    """A preamble found in a capture.

    Attributes:
        start: integer sample of the correlation peak.
        timing: fractional sample index of the frame start.
        cfo: CFO estimate in cycles/sample (coarse + fine).
        cfo_coarse: coarse CFO (cycles/sample).
        metric: peak detection statistic (see [Note: detection statistic and threshold]).
        threshold: the threshold it was compared with.
    """

    start: int
    timing: float
    cfo: float
    cfo_coarse: float
    metric: float
    threshold: float


@dataclass(frozen=True)
class RxResult:
    """One received frame.

    Attributes:
        payload: complex64 ``[B, n_rx, K]``: timing, CFO and phase corrected, not equalised, in the
            units of the transmitted symbols: ``payload[b] ~= H @ symbols[b] + noise`` (flat) or
            ``payload[b, :, k] ~= H[subcarrier[b, k]] @ symbols[b, :, k] + noise`` (ofdm).
        channel_estimate: complex64 ``[n_rx, n_tx]`` (flat/single) or ``[n_data_subcarriers, n_rx, n_tx]``
            (ofdm): the estimate chosen by ``cfg.estimator``.
        channel_estimate_ls: the least-squares estimate, same shape.
        channel_estimate_lmmse: the LMMSE estimate, same shape.
        noise_var: noise variance per payload symbol, in the units of ``payload`` (mean over antennas).
        noise_var_rx: float64 ``[n_rx]``: the same per receive antenna (receive chains differ).
        estimate_error_var: variance of the LS estimate error per matrix entry (same units as H).
        snr_db: SNR per receive antenna and symbol at the average TX power (pilot power).
        cfo_hz: CFO estimate in Hz.
        timing: fractional sample index of the frame start inside the capture.
        header: the decoded :class:`Header`.
        subcarrier: int32 ``[B, K]`` index into ``channel_estimate`` per channel use (ofdm), else None.
        noise_power: noise power per sample at the receiver (full scale 1.0 units).
        detection_metric, detection_threshold: see [Note: detection statistic and threshold].
        phase_track: tracked payload phase per tracking block / OFDM symbol, radians.
        tx_scale: amplitude the transmitter applied to the payload symbols (from the header).
        tx_clipped: samples clipped at the transmitter (filled by PhyLink; -1 when unknown).
        fft_backoff: ofdm: :meth:`FrameReceiver.fft_backoff` of this frame (the delay, in samples, that
            the per-subcarrier estimates carry); 0.0 for flat and single-carrier frames.
        rx_clipped: samples of the frame at the ADC's full scale (``max(|I|, |Q|) >= 0.999``) over all
            receive antennas: the receive gain is too high when this is not 0.
    """

    payload: np.ndarray
    channel_estimate: np.ndarray
    channel_estimate_ls: np.ndarray
    channel_estimate_lmmse: np.ndarray
    noise_var: float
    noise_var_rx: np.ndarray
    estimate_error_var: float
    snr_db: float
    cfo_hz: float
    timing: float
    header: Header
    subcarrier: np.ndarray | None
    noise_power: float
    detection_metric: float
    detection_threshold: float
    phase_track: np.ndarray
    tx_scale: float
    tx_clipped: int = -1
    rx_clipped: int = 0
    fft_backoff: float = 0.0


def smooth_phase(c: np.ndarray, window: int) -> np.ndarray:
    """Phase per block from complex correlations ``c [n]``: linear ramp + smoothed residual (radians)."""
    n = len(c)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.angle(c)
    w = np.angle(np.sum(c[1:] * np.conj(c[:-1])))
    i = np.arange(n)
    cr = c * np.exp(-1j * w * i)
    h = window // 2
    cs = np.convolve(np.pad(cr, h), np.ones(window), mode="valid") if h else cr
    return np.unwrap(np.angle(cs)) + w * i


class FrameReceiver:
    """Finds and decodes frames of one :class:`PhyConfig` in captures."""

    def __init__(self, cfg: PhyConfig):
        self.cfg = cfg
        self.pulse = Pulse(cfg)
        self.seqs = Sequences(cfg)
        self.grid = OfdmGrid(cfg) if cfg.mode == "ofdm" else None
        a = cfg.amplitude
        self.templates = self.pulse.shape(a * self.seqs.preamble)  # [n_tx, Nw]
        self.nw = self.templates.shape[1]
        self.w_energy = np.sum(np.abs(self.templates) ** 2, axis=1)  # [n_tx]
        self.nfft = 2 * (1 << int(np.ceil(np.log2(self.nw))))
        f = np.fft.fftfreq(self.nfft)
        fmax = cfg.max_cfo_hz / cfg.sample_rate_hz
        self.bins = np.flatnonzero(np.abs(f) <= fmax + 1.5 / self.nfft)
        self.freqs = f[self.bins]
        self._diff_lags = (1, 2, 3, 4)
        self._diff_templates = []
        for lag in self._diff_lags:
            v = self.templates[:, lag:] * np.conj(self.templates[:, :-lag])
            v = v - v.mean(axis=1, keepdims=True)
            self._diff_templates.append(v / np.sqrt(np.sum(np.abs(v) ** 2, axis=1, keepdims=True)))
        self._diff_cache: dict[int, list[np.ndarray]] = {}
        self._timing_cache: dict[int, tuple] = {}
        self._thr_cache: dict[int, float] = {}
        self.head = FrameLayout(cfg, 1, 1)  # the part before the payload does not depend on B, K
        # slope of the early/late energy discriminator (+-0.5 samples) at zero timing error, per
        # sample: the output energy of a white symbol stream is sum_k rc(k + tau/sps)^2, rc = rrc * rrc
        d = 1e-3
        tt = np.arange(-4 * self.pulse.half, 4 * self.pulse.half + 1) / cfg.sps
        g0 = rrc(tt, cfg.rrc_rolloff)
        ks = np.arange(-cfg.rrc_span, cfg.rrc_span + 1)

        def energy(tau: float) -> float:
            return float(sum(np.sum(g0 * rrc(tt - k - tau / cfg.sps, cfg.rrc_rolloff)) ** 2 for k in ks))

        def disc(tau: float) -> float:
            a_, b_ = energy(tau + 0.5), energy(tau - 0.5)
            return (a_ - b_) / (a_ + b_)
        self._s_curve_slope = -(disc(d) - disc(-d)) / (2 * d)  # e = (late - early) = -disc

    # ------------------------------------------------------------------ detection
    def threshold(self, n_positions: int) -> float:
        """Detection threshold for a capture with ``n_positions`` possible starts (``N - Nw + 1``)."""
        if n_positions not in self._thr_cache:
            cfg = self.cfg
            n_tests = max(1.0, n_positions * len(self.bins) * self.nw / self.nfft)
            self._thr_cache[n_positions] = float(gammainccinv(cfg.n_rx * cfg.n_tx, cfg.p_fa / n_tests))
        return self._thr_cache[n_positions]

    def _diff_f(self, nf: int) -> list[np.ndarray]:
        if nf not in self._diff_cache:
            self._diff_cache[nf] = [
                np.conj(sfft.fft(v, nf, axis=1)).astype(np.complex64) for v in self._diff_templates
            ]
        return self._diff_cache[nf]

    def candidates(self, x: np.ndarray, n_cand: int = 4, radius: int = 6) -> np.ndarray:
        """Candidate frame starts from a differential correlator (CFO-invariant, one FFT per pair).

        ``y[n] = x[n+l] conj(x[n])`` (lags l = 1..4) removes any CFO up to a constant phase; it is
        correlated with the same product of each preamble template (mean removed), summed over lags
        and antenna pairs, and normalised by the window power squared.
        Returns sorted int positions: ``+-radius`` around the ``n_cand`` strongest separated peaks.
        """
        m = self._diff_metric(x)
        return self._pick_candidates(m, n_cand, radius)

    def _diff_metric(self, x: np.ndarray) -> np.ndarray:
        """The differential correlator of :meth:`candidates` at every start ``[N - Nw + 1]``."""
        n_rx, n = x.shape
        nw = self.nw
        d_total = n - nw + 1
        nf = 1 << int(np.ceil(np.log2(n + nw)))
        m = np.zeros(d_total)
        for lag, vf in zip(self._diff_lags, self._diff_f(nf)):
            y = (x[:, lag:] * np.conj(x[:, :-lag])).astype(np.complex64)
            c = sfft.ifft(sfft.fft(y, nf, axis=1)[:, None, :] * vf[None], axis=2)[:, :, :d_total]
            m += np.sum(c.real**2 + c.imag**2, axis=(0, 1))
        p = np.sum(np.abs(x) ** 2, axis=0)
        cs = np.concatenate([[0.0], np.cumsum(p)])
        s2 = np.maximum((cs[nw:] - cs[:-nw]) / (n_rx * nw), 1e-30)
        return m / s2**2

    def _pick_candidates(self, m: np.ndarray, n_cand: int, radius: int) -> np.ndarray:
        """Positions ``+-radius`` around the ``n_cand`` strongest peaks of ``m`` separated by ``sep``."""
        d_total = len(m)
        picks = []
        order = np.argsort(m)[::-1]
        sep = max(2 * radius + 1, self.nw // 4)
        for i in order:
            if all(abs(int(i) - q) >= sep for q in picks):
                picks.append(int(i))
                if len(picks) == n_cand:
                    break
        pos = set()
        for q in picks:
            pos.update(range(max(q - radius, 0), min(q + radius + 1, d_total)))
        return np.array(sorted(pos), int)

    def statistic(self, x: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Max over CFO of the detection statistic at ``positions`` and its CFO bin: ``([P], [P])``."""
        n_rx, n = x.shape
        nw = self.nw
        p = np.sum(np.abs(x) ** 2, axis=0)
        cs = np.concatenate([[0.0], np.cumsum(p)])
        s2 = np.maximum((cs[positions + nw] - cs[positions]) / (n_rx * nw), 1e-30)  # [P]
        seg = x[:, positions[:, None] + np.arange(nw)[None, :]]  # [n_rx, P, Nw]
        acc = np.zeros((len(positions), len(self.bins)))
        conj_w = np.conj(self.templates).astype(np.complex64)
        for t in range(self.cfg.n_tx):
            z = sfft.fft(seg * conj_w[t], n=self.nfft, axis=-1)[..., self.bins]
            acc += np.sum(z.real**2 + z.imag**2, axis=0) / self.w_energy[t]
        acc /= s2[:, None]
        arg = np.argmax(acc, axis=1)
        return acc[np.arange(len(positions)), arg], arg

    def detect(self, capture: np.ndarray) -> Detection:
        """Find the strongest preamble in ``capture`` (complex ``[n_rx, N]``); SyncError if none."""
        x = self._check_capture(capture)
        n = x.shape[1]
        if n < self.nw + 1:
            raise SyncError(
                f"burst truncated: the capture has {n} samples, shorter than the {self.nw}-sample preamble"
            )
        return self._detect_at(x, self.candidates(x))

    def _detect_at(self, x: np.ndarray, positions: np.ndarray) -> Detection:
        """:meth:`detect` given the candidate starts ``positions`` of ``x`` (checked ``[n_rx, N]``)."""
        n = x.shape[1]
        best, arg = self.statistic(x, positions)
        # the candidates are where the capture looks most like a preamble, so the union bound must
        # count every start the candidate search looked at, not only the tested ones
        thr = self.threshold(n - self.nw + 1)
        i = int(np.argmax(best))
        d = int(positions[i])
        metric = float(best[i])
        if not metric > thr:
            raise SyncError(
                f"no preamble above threshold: peak statistic {metric:.1f} < threshold {thr:.1f} "
                f"(p_fa={self.cfg.p_fa:g} per capture); check the link, the gains and the SNR"
            )
        # coarse CFO: parabola over neighbouring bins
        k = int(arg[i])
        f_c = self.freqs[k]
        if 0 < k < len(self.bins) - 1:
            win = x[:, d : d + self.nw]
            vals = []
            for kk in (k - 1, k, k + 1):
                rot = np.exp(-2j * np.pi * self.freqs[kk] * np.arange(self.nw))
                z = (win * rot) @ np.conj(self.templates).T  # [n_rx, n_tx]
                vals.append(np.sum(np.abs(z) ** 2))
            den = vals[0] - 2 * vals[1] + vals[2]
            if den < 0:
                f_c += 0.5 * (vals[0] - vals[2]) / den / self.nfft
        # fine CFO: phase between the halves of the correlation
        n_idx = np.arange(self.nw)
        win = x[:, d : d + self.nw] * np.exp(-2j * np.pi * f_c * n_idx)
        h = self.nw // 2
        z1 = win[:, :h] @ np.conj(self.templates[:, :h]).T
        z2 = win[:, h:] @ np.conj(self.templates[:, h:]).T
        f = f_c + np.angle(np.sum(z2 * np.conj(z1))) / (2 * np.pi * h)
        tau = self._fine_timing(x, d, f)
        return Detection(start=d, timing=d + tau, cfo=float(f), cfo_coarse=float(f_c), metric=metric, threshold=thr)

    def _fine_timing(self, x: np.ndarray, d: int, f: float) -> float:
        g = 4
        n_rx, n = x.shape
        nseg = self.nw + 2 * g
        nf = 1 << int(np.ceil(np.log2(nseg + 8)))
        seg = np.zeros((n_rx, nf), np.complex128)
        lo, hi = max(d - g, 0), min(d - g + nseg, n)
        idx = np.arange(lo, hi)
        seg[:, lo - (d - g) : hi - (d - g)] = x[:, lo:hi] * np.exp(-2j * np.pi * f * idx)
        if nf not in self._timing_cache:
            tpl = np.zeros((self.cfg.n_tx, nf), np.complex128)
            tpl[:, g : g + self.nw] = self.templates
            taus = np.arange(-12, 13) / 8.0
            e = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(nf), taus))  # [nf, T]
            self._timing_cache[nf] = (np.conj(sfft.fft(tpl, axis=1)), taus, e)
        tpl_f, taus, e = self._timing_cache[nf]
        xs = sfft.fft(seg, axis=1)[:, None, :] * tpl_f[None]  # [n_rx, n_tx, nf]
        c = xs.reshape(-1, nf) @ e  # [(r,t), T]
        m = np.sum(np.abs(c) ** 2, axis=0)
        i = int(np.argmax(m))
        tau = taus[i]
        if 0 < i < len(taus) - 1:
            den = m[i - 1] - 2 * m[i] + m[i + 1]
            if den < 0:
                tau += 0.5 * (m[i - 1] - m[i + 1]) / den / 8.0
        return float(tau)

    def reference_sample(self, timing: float) -> float:
        """Capture sample (float) where the CFO de-rotation has zero phase: the pilot-block centre."""
        head = self.head
        return timing + self.pulse.half + (head.pilot_start + head.n_pilots / 2) * self.cfg.sps

    def fft_backoff(self, timing: float) -> float:
        """OFDM: samples by which each FFT window starts before its symbol's nominal start, for a frame
        at the fractional ``timing``: ``ofdm_cp // 4`` (inside the cyclic prefix, so a late timing
        estimate does not reach into the next symbol) plus ``timing - round(timing)`` (the windows
        start at whole samples). Each per-subcarrier estimate is therefore ``H[k] exp(-2j pi k d0 / N)``
        with ``d0`` this value (see ``RxResult.fft_backoff``)."""
        return float(self.cfg.ofdm_cp // 4 + (timing - np.round(timing)))

    # ------------------------------------------------------------------ decoding
    def _check_capture(self, capture: np.ndarray) -> np.ndarray:
        x = np.asarray(capture)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[0] != self.cfg.n_rx:
            raise ValueError(f"capture: expected shape (n_rx={self.cfg.n_rx}, samples), got {x.shape}")
        return x.astype(np.complex64, copy=False)

    @staticmethod
    def _phasor(f: float, n_ref: float, n: int) -> np.ndarray:
        """complex64 ``exp(-2j pi f (k - n_ref))`` for ``k < n``: the CFO de-rotation of a capture."""
        return np.exp(-2j * np.pi * f * (np.arange(n) - n_ref)).astype(np.complex64)

    def _mf(self, x: np.ndarray, t0: float, first_symbol: int, n: int, what: str) -> np.ndarray:
        try:
            return self.pulse.matched(x, t0 + self.pulse.half + first_symbol * self.cfg.sps, n)
        except IndexError as e:
            raise SyncError(f"burst truncated: the {what} runs outside the capture ({e})") from e

    def receive(
        self,
        capture: np.ndarray,
        expect_seq: int | None = None,
        expect_shape: tuple[int, int] | None = None,
    ) -> RxResult:
        """Detect and decode one frame.

        Args:
            capture: complex ``[n_rx, N]`` samples containing the frame somewhere.
            expect_seq: the sequence number the frame must carry (stale/foreign frames raise).
            expect_shape: ``(B, K)`` the frame must carry.

        Returns:
            :class:`RxResult`. Raises :class:`hil.errors.SyncError` saying why when no valid frame is found.
        """
        x = self._check_capture(capture)
        return self._decode(x, self.detect(x), expect_seq, expect_shape)

    def _decode(self, x: np.ndarray, det: Detection, expect_seq: int | None, expect_shape) -> RxResult:
        """:meth:`receive` after detection: ``x`` the checked capture, ``det`` its preamble."""
        cfg = self.cfg
        t0 = det.timing
        head = self.head
        sps, a = cfg.sps, cfg.amplitude
        n_pil = head.n_pilots
        n_ref = self.reference_sample(t0)
        xc = x * self._phasor(det.cfo, n_ref, x.shape[1])

        # noise power in the quiet interval
        q0 = int(np.ceil(t0 + head.quiet_start * sps + 2 * self.pulse.half + 4))
        q1 = int(np.floor(t0 + head.payload_start * sps - 4))
        if q1 > x.shape[1]:
            raise SyncError(
                f"burst truncated: the quiet interval ends at sample {q1}, the capture has {x.shape[1]}"
            )
        noise_power_rx = np.mean(np.abs(xc[:, q0:q1]) ** 2, axis=1)  # [n_rx]
        # A noiseless capture (an ideal simulated wire) measures exactly 0; floor it at float32's
        # resolution so every ratio below stays finite (SNR then reads ~ +300 dB, not a crash).
        noise_power_rx = np.maximum(noise_power_rx, _NOISE_FLOOR)
        noise_power = float(np.mean(noise_power_rx))
        noise_sym = noise_power / sps

        # flat channel estimate from the single-carrier pilots
        yp = self._mf(xc, t0, head.pilot_start, n_pil, "pilot block")
        pil = a * self.seqs.pilots
        h_ls = yp @ np.conj(pil).T / (n_pil * a * a)  # [n_rx, n_tx]
        err_ls = noise_sym / (n_pil * a * a)
        err_rx = noise_power_rx / sps / (n_pil * a * a)  # [n_rx]
        h_lmmse = self._shrink(h_ls, err_rx)
        h_use = h_lmmse if cfg.estimator == "lmmse" else h_ls

        header, dcfo, p_hdr = self._decode_header(xc, t0, h_use, n_ref)
        rho_rx = (p_hdr - noise_power_rx / sps) / (cfg.n_tx * a * a)
        self._check_header(header, expect_seq, expect_shape)
        # refine the CFO with the header's span and redo the pilot estimate
        cfo = det.cfo + dcfo
        xc = xc * self._phasor(dcfo, n_ref, x.shape[1])
        yp = self._mf(xc, t0, head.pilot_start, n_pil, "pilot block")
        h_ls = yp @ np.conj(pil).T / (n_pil * a * a)
        h_lmmse = self._shrink(h_ls, err_rx, rho_rx)
        h_use = h_lmmse if cfg.estimator == "lmmse" else h_ls
        lay = FrameLayout(cfg, header.batch_size, header.channel_uses)
        end = int(np.ceil(t0)) + lay.n_samples
        if end > x.shape[1]:
            raise SyncError(
                f"burst truncated: the frame (B={header.batch_size}, K={header.channel_uses}) needs samples "
                f"up to {end}, the capture has {x.shape[1]}; capture more samples"
            )
        g = header.tx_scale
        seg = x[:, max(int(np.floor(t0)), 0) : end]
        rx_clipped = int(np.sum(np.maximum(np.abs(seg.real), np.abs(seg.imag)) >= 0.999))
        if rx_clipped:
            log.info("PHY RX: %d samples of the frame at ADC full scale; lower the receive gain", rx_clipped)
        if cfg.mode == "ofdm":
            out = self._ofdm_payload(xc, t0, lay, noise_power)
            payload, h_ls_o, h_lmmse_o, err_o, track, sub = out
            snr = float(np.mean(np.sum(np.maximum(np.abs(h_ls_o) ** 2 - err_o, 0), axis=2)))
            snr *= self.grid.pilot_amp**2 / noise_power
            h_ls, h_lmmse, err_ls, noise_v = h_ls_o, h_lmmse_o, err_o, noise_power
        else:
            payload, track = self._sc_payload(xc, t0, lay, h_use, noise_sym)
            sub = None
            snr = float(np.mean(np.sum(np.maximum(np.abs(h_ls) ** 2 - err_ls, 0), axis=1))) * a * a / noise_sym
            noise_v = noise_sym
        b, k = header.batch_size, header.channel_uses
        zero = g == 0.0  # a payload of zeros (its header's ZERO_PAYLOAD_CODE): returned exactly, noise 0
        payload = (np.zeros_like(payload) if zero else payload / g).reshape(cfg.n_rx, b, k).transpose(1, 0, 2)
        h_sel = h_lmmse if cfg.estimator == "lmmse" else h_ls
        return RxResult(
            payload=payload.astype(np.complex64),
            channel_estimate=h_sel.astype(np.complex64),
            channel_estimate_ls=h_ls.astype(np.complex64),
            channel_estimate_lmmse=h_lmmse.astype(np.complex64),
            noise_var=0.0 if zero else float(noise_v / g**2),
            noise_var_rx=(0.0 * noise_power_rx if zero else noise_power_rx * (noise_v / noise_power) / g**2).astype(
                np.float64),
            estimate_error_var=float(err_ls),
            snr_db=float(10 * np.log10(max(snr, 1e-12))),
            cfo_hz=float(cfo * cfg.sample_rate_hz),
            timing=float(t0),
            header=header,
            subcarrier=sub,
            noise_power=noise_power,
            detection_metric=det.metric,
            detection_threshold=det.threshold,
            phase_track=track,
            tx_scale=g,
            fft_backoff=self.fft_backoff(t0) if cfg.mode == "ofdm" else 0.0,
            rx_clipped=rx_clipped,
        )

    @staticmethod
    def _shrink(h_ls: np.ndarray, err_rx: np.ndarray, rho_rx: np.ndarray | None = None) -> np.ndarray:
        """LMMSE for a ``CN(0, rho_r)`` prior per receive antenna: ``rho_r / (rho_r + err_r) * h_ls[r]``.

        [Note: LMMSE prior] ``rho_r`` (channel power per entry of row r) is measured on the received
        header (hundreds of symbols: ``(mean|y_r|^2 - noise_r) / (n_tx a^2)``); before the header is
        decoded it is ``mean_t |H_ls[r, t]|^2 - err_r``. ``err_r`` is the LS error variance of row r.
        """
        if rho_rx is None:
            rho_rx = np.mean(np.abs(h_ls) ** 2, axis=1) - err_rx
        rho_rx = np.maximum(rho_rx, 1e-3 * err_rx)
        return h_ls * (rho_rx / (rho_rx + err_rx))[:, None]

    def _decode_header(
        self, xc: np.ndarray, t0: float, h: np.ndarray, n_ref: float
    ) -> tuple[Header, float, np.ndarray]:
        """Decode the header; returns it, the residual CFO (cycles/sample) it measured and the
        received power per symbol per antenna over the header (``[n_rx]``).

        The header is long (``100*hs`` symbols), so a small residual CFO turns its phase: the ramp is
        estimated from the squared per-bit MRC outputs (BPSK squared has no modulation), removed,
        bits decided, and after the CRC passes the ramp is refined with the known bits.
        """
        cfg, head = self.cfg, self.head
        hs = cfg.header_spread
        yh = self._mf(xc, t0, head.header_start, head.n_header, "header")  # [n_rx, bits*hs]
        p_rx = np.mean(np.abs(yh) ** 2, axis=1)
        yh = (yh * self.seqs.scrambler[None]).reshape(cfg.n_rx, HEADER_BITS, hs)
        z = yh @ self.seqs.walsh.T / (hs * cfg.amplitude)  # [n_rx, bits, n_tx]
        u = np.einsum("rt,rbt->b", np.conj(h), z)  # [bits], ~ |h|^2 (+-1) exp(j w tb)
        tb = t0 + self.pulse.half + (head.header_start + np.arange(HEADER_BITS) * hs + (hs - 1) / 2) * cfg.sps - n_ref
        v = u * u  # phase 2 w tb; bits are uniformly spaced, so an FFT over the bit index finds w
        nf = 8192
        spec = np.abs(sfft.fft(v, nf))
        k = int(np.argmax(spec))
        if 0 < k < nf - 1:
            den = spec[k - 1] - 2 * spec[k] + spec[k + 1]
            k = k + (0.5 * (spec[k - 1] - spec[k + 1]) / den if den < 0 else 0.0)
        nu = k / nf if k < nf / 2 else k / nf - 1.0  # cycles per bit of v = u^2
        w = 2 * np.pi * nu / (2 * hs * cfg.sps)  # rad/sample
        uc = u * np.exp(-1j * w * tb)
        bits = (uc.real < 0).astype(np.uint8)
        header = Header.from_bits(bits)
        if header is None:
            raise SyncError("header CRC failed: the frame is corrupted or the SNR is too low to decode it")
        r = uc * (1.0 - 2.0 * bits)  # modulation removed, phase ~ residual ramp
        wt = np.abs(r) ** 2
        ph = np.angle(r)
        # weighted least squares phase = a + b tb
        tm = np.sum(wt * tb) / np.sum(wt)
        pm = np.sum(wt * ph) / np.sum(wt)
        b = np.sum(wt * (tb - tm) * (ph - pm)) / max(np.sum(wt * (tb - tm) ** 2), 1e-30)
        return header, float((w + b) / (2 * np.pi)), p_rx

    def _check_header(self, header: Header, expect_seq: int | None, expect_shape) -> None:
        cfg = self.cfg
        if header.link_id != cfg.link_id or header.n_tx != cfg.n_tx or header.mode != cfg.mode:
            raise SyncError(
                f"foreign frame: header says link_id={header.link_id}, n_tx={header.n_tx}, mode={header.mode!r}; "
                f"this receiver expects link_id={cfg.link_id}, n_tx={cfg.n_tx}, mode={cfg.mode!r}"
            )
        if header.batch_size < 1 or header.channel_uses < 1:
            raise SyncError(f"invalid header: batch_size={header.batch_size}, channel_uses={header.channel_uses}")
        if expect_seq is not None and header.seq != (expect_seq & 0xFFFF):
            raise SyncError(
                f"stale or foreign sequence number: got seq={header.seq}, expected {expect_seq & 0xFFFF}"
            )
        if expect_shape is not None and (header.batch_size, header.channel_uses) != tuple(expect_shape):
            raise SyncError(
                f"unexpected frame shape: header says (B, K)=({header.batch_size}, {header.channel_uses}), "
                f"expected {tuple(expect_shape)}"
            )

    def _track_window(self, c: np.ndarray, noise_c: float) -> int:
        """Blocks to smooth the tracked phase over: fewer when each block's phase is already precise.

        A block's phase error variance is ``1 / (2 snr)`` with ``snr = |c|^2 / noise_c``; smoothing
        over w blocks divides it by w but lags phase noise, so w = ``track_smooth`` below 17 dB
        per block, 3 below 27 dB, 1 above.
        """
        snr = float(np.mean(np.abs(c) ** 2)) / max(noise_c, 1e-30)
        w = self.cfg.track_smooth if snr < 50 else 3 if snr < 500 else 1
        return min(w, self.cfg.track_smooth)

    def _sc_payload(self, xc: np.ndarray, t0: float, lay: FrameLayout, h: np.ndarray, noise_sym: float):
        cfg = self.cfg
        y = self._mf(xc, t0, lay.payload_start, lay.n_payload_symbols, "payload")  # [n_rx, n_pay]
        data_pos, blocks = lay.payload_positions()
        if len(blocks) >= 3:
            y = self._retime(xc, t0, lay, h, y, blocks)
        yd = y[:, data_pos]
        if len(blocks):
            expected = h @ (cfg.amplitude * self.seqs.track)  # [n_rx, n_tx]
            c = self._track_corr(y, blocks, expected)
            phases = smooth_phase(c, self._track_window(c, noise_sym * np.sum(np.abs(expected) ** 2)))
            centres = blocks + (cfg.n_tx - 1) / 2
            yd = yd * np.exp(-1j * np.interp(data_pos, centres, phases))[None]
        else:
            phases = np.zeros(0)
        return yd, phases

    @staticmethod
    def _track_corr(y: np.ndarray, blocks: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Correlation of each tracking block of ``y [n_rx, n_pay]`` with its expected value ``[n_rx, n_tx]``."""
        n_tx = expected.shape[1]
        return np.array([np.sum(np.conj(expected) * y[:, s : s + n_tx]) for s in blocks])

    def _early_late(self, xc: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Matched-filter outputs 0.5 samples before and after the symbol centres ``base``."""
        return self.pulse.matched_at(xc, base - 0.5), self.pulse.matched_at(xc, base + 0.5)

    def _retime(self, xc, t0, lay, h, y, blocks):
        """Sampling-clock drift: timing error per payload chunk from a non-data-aided early/late
        energy detector, a straight line through them (zero at the preamble), payload re-sampled on it.

        [Note: timing drift] Two boards' sample clocks differ by tens of ppm, so over a long burst the
        symbol instants slide away from the preamble's timing. Per chunk of ``track_interval``
        payload symbols the matched-filter output energy is measured 0.5 samples late and early;
        ``e = (E+ - E-) / (E+ + E-)`` is converted to samples through the pulse's own S-curve slope
        (known symbols are not needed: the energy of any symbol stream peaks at the right instant).
        The fitted drift is applied only when it is significant (|t| > 2) and moves the end of the
        burst by more than 0.02 samples.
        """
        cfg, sps, half = self.cfg, self.cfg.sps, self.pulse.half
        n_pay = lay.n_payload_symbols
        m = lay.payload_start + np.arange(n_pay)
        base = t0 + half + m * sps
        try:
            early, late = self._early_late(xc, base)
        except IndexError:
            return y
        chunk = max(cfg.track_interval, 16)
        n_ch = n_pay // chunk
        if n_ch < 3:
            return y
        pe = np.sum(np.abs(early[:, : n_ch * chunk]) ** 2, axis=0).reshape(n_ch, chunk).sum(axis=1)
        pl = np.sum(np.abs(late[:, : n_ch * chunk]) ** 2, axis=0).reshape(n_ch, chunk).sum(axis=1)
        tau = (pl - pe) / np.maximum(pl + pe, 1e-30) / self._s_curve_slope
        x = (m[: n_ch * chunk].reshape(n_ch, chunk).mean(axis=1)) * sps  # samples from the frame start
        w = np.ones(n_ch)
        sxx = float(np.sum(w * x * x))
        rate = float(np.sum(w * x * tau)) / sxx
        resid = tau - rate * x
        dof = max(len(x) - 1, 1)
        se = np.sqrt(float(np.sum(w * resid**2)) / dof / sxx)
        end = (lay.payload_start + lay.n_payload_symbols) * sps
        log.debug("timing drift %.3g samples/sample (se %.2g), %.3f samples at the end", rate, se, rate * end)
        if abs(rate) < 2 * se or abs(rate * end) < 0.02:
            return y
        m = lay.payload_start + np.arange(lay.n_payload_symbols)
        centres = base + rate * (m * sps)
        try:
            return self.pulse.matched_at(xc, centres)
        except IndexError:
            return y

    def _ofdm_payload(self, xc: np.ndarray, t0: float, lay: FrameLayout, noise_power: float):
        cfg, grid = self.cfg, self.grid
        ti = int(np.round(t0))
        cpb = cfg.ofdm_cp // 4
        n_sym = grid.n_pilot_syms + lay.n_ofdm_data_symbols
        starts = ti + lay.sc_samples + np.arange(n_sym) * grid.sym_len + cfg.ofdm_cp - cpb
        if starts[0] < 0:
            raise SyncError("burst truncated: the OFDM section starts before the capture")
        idx = starts[:, None] + np.arange(grid.n_fft)[None]
        yt = xc[:, idx]  # [n_rx, n_sym, N]
        yf = sfft.fft(yt, axis=-1, norm="ortho")[:, :, grid.bins].transpose(1, 0, 2)  # [n_sym, n_rx, U]
        ps = grid.n_pilot_syms
        pg = grid.pilot_grid(cfg, self.seqs)  # [S, n_tx, U]
        pos = grid.pilot_pos
        # LS on the comb: H[k] = sum_s y_s p_s^H / sum_s |p|^2
        num = np.einsum("sru,stu->urt", yf[:ps][:, :, pos], np.conj(pg[:, :, pos]))
        den = np.sum(np.abs(pg[:, 0, pos]) ** 2, axis=0)  # [P]
        h_comb = num / den[:, None, None]  # [P, n_rx, n_tx]
        err = noise_power / float(np.mean(den))
        u = cfg.ofdm_used
        allpos = np.arange(u)
        if len(pos) == u:
            h_ls = h_comb
        else:
            flat = h_comb.reshape(len(pos), -1)
            h_ls = np.stack(
                [np.interp(allpos, pos, flat[:, j].real) + 1j * np.interp(allpos, pos, flat[:, j].imag) for j in range(flat.shape[1])],
                axis=1,
            ).reshape(u, cfg.n_rx, cfg.n_tx)
        # LMMSE across subcarriers: exponential PDP prior, shifted by the FFT-window back-off
        d0 = self.fft_backoff(t0)
        kk = grid.used.astype(float)
        dk = kk[:, None] - kk[None, pos]
        dpp = kk[pos][:, None] - kk[pos][None, :]
        tau = cfg.ofdm_delay_spread_samples

        def corr(dd):
            return np.exp(-2j * np.pi * dd * d0 / grid.n_fft) / (1 + 2j * np.pi * dd * tau / grid.n_fft)

        rho = max(float(np.mean(np.abs(h_comb) ** 2)) - err, 1e-3 * err)
        w = corr(dk) @ np.linalg.inv(corr(dpp) + (err / rho) * np.eye(len(pos)))  # [U, P]
        h_lmmse = np.einsum("up,prt->urt", w, h_comb)
        h_use = h_lmmse if cfg.estimator == "lmmse" else h_ls
        yd = yf[ps:]  # [n_data_sym, n_rx, U]
        if len(grid.cpe_pos):
            cpe = grid.cpe_values(self.seqs)  # [n_tx, J]
            expected = np.einsum("jrt,tj->rj", h_use[grid.cpe_pos], cpe)  # [n_rx, J]
            c = np.einsum("rj,srj->s", np.conj(expected), yd[:, :, grid.cpe_pos])
            phases = smooth_phase(c, self._track_window(c, noise_power * np.sum(np.abs(expected) ** 2)))
            yd = yd * np.exp(-1j * phases)[:, None, None]
        else:
            phases = np.zeros(0)
        data = yd[:, :, grid.data_pos].transpose(1, 0, 2).reshape(cfg.n_rx, -1)[:, : lay.n_uses]
        sub = (np.arange(lay.n_uses) % grid.n_data).reshape(lay.batch_size, lay.channel_uses).astype(np.int32)
        dp = grid.data_pos
        return data, h_ls[dp], h_lmmse[dp], err, phases, sub
