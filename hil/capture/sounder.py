"""Channel sounders: send one sounding frame through a Radio, estimate the MIMO channel from the capture.

Two sounders share one result type (:class:`Sounding`):

- :class:`PilotSounder`, built in and self-contained (flat MIMO channel, one subcarrier): it needs
  nothing but a :class:`hil.radio.base.Radio`. See [Note: pilot sounding frame].
- :class:`PhySounder`: the project PHY (``hil.phy.PhyLink``) with a small payload; it gives what the
  PHY estimates (per subcarrier for OFDM) and its SNR/CFO/timing.

[Note: pilot sounding frame]
The pilot section is ``n_blocks`` blocks of ``L`` samples. Block ``b`` carries a Zadoff-Chu sequence
``p_b`` of its own root (so the timing metric has one clean peak), sent from every transmit antenna
``t`` at once with the orthogonal cover ``c[t, b mod n_slots]`` (rows of a Hadamard matrix,
``n_slots`` = the next power of two >= ``n_tx``), amplitude ``A`` per antenna. ``n_quiet`` silent
samples follow. All antennas transmit during the whole pilot section, so the signal power is constant
(a channel model or a meter that measures "active" power sees ``A^2`` per antenna). The receiver:

1. timing: the matched filter, non-coherently summed over blocks and receive antennas,
   ``M[k] = sum_{r,b} |sum_n y_r[k + b L + n] p_b*[n]|^2``, at its maximum ``k``; a frame is
   declared when ``M[k] / (L E[k]) >= threshold`` with ``E[k]`` the energy under the pilot window
   (1 without noise, ``snr / (1 + snr)`` at a per-sample SNR, about ``1/L`` for noise alone);
2. CFO: blocks ``n_slots`` apart carry the same cover, so with ``z_b`` the block correlations,
   ``f = angle(sum_b z_{b + n_slots} z_b*) fs / (2 pi n_slots L)``, unambiguous for
   ``|f| < fs / (2 n_slots L)`` (about 2 kHz for 2 antennas, L = 127, 1 MS/s; use the PHY sounder for
   larger offsets);
3. after de-rotation about the centre of the pilots, the LS estimate per pair
   ``H[r, t] = sum_b c[t, b] z_b[r] / (n_blocks L A)`` (error variance ``N0 / (n_blocks L A^2)``);
4. ``N0``, the noise power per sample, from the quiet interval (after a guard) pooled with the LS
   residual of the pilot section;
5. SNR per receive antenna for a transmitter sending ``A``-amplitude signals from all its antennas
   at once: ``mean_r sum_t |H[r, t]|^2 A^2 / N0`` (the pilot section is exactly such a signal).

[Note: OFDM estimates as a replayable channel]
``hil.phy``'s OFDM receiver starts each FFT window ``d0`` samples before the symbol's nominal start
(``RxResult.fft_backoff``, from ``FrameReceiver.fft_backoff``), so its per-subcarrier estimate is
``H[k] exp(-2j pi k d0 / N)``: the channel delayed by ``d0`` samples. Replayed as it is, a flat channel
would become a fractionally delayed pulse spread over several taps (and the IFFT's wrap puts part of
it at the end of the tap vector). :func:`ofdm_to_fft_grid` removes that known ramp (``d0`` is what
the receiver reports for each frame), and fills
the bins without an estimate (DC, phase pilots, guard band) by periodic linear interpolation, so the
filled spectrum has no jump at the guard band: a flat channel stays flat and replays as one tap.
The guard-band values are an extrapolation (no signal was there); an OFDM signal through the replay
does not see them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from hil.errors import SyncError
from hil.radio.base import Radio
from hil.radio.tap import TapRadio

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Sounding:
    """One sounding: the raw capture and, when a frame was found, what was estimated from it.

    Attributes:
        capture: complex64 ``(n_rx, m)``, the raw received burst.
        estimate: complex64 ``[n_sc, n_rx, n_tx]`` or ``None`` when no frame was detected.
        frame_start: sample index of the frame inside ``capture``.
        frame_len: frame length in samples.
        snr_db: SNR per receive antenna (see the sounder's definition), dB.
        cfo_hz: carrier frequency offset, Hz.
        noise_var: noise power per sample per receive antenna (full-scale units).
        estimate_var: error variance of each channel coefficient.
        error: why no frame was detected (``None`` when one was).
    """

    capture: np.ndarray
    estimate: np.ndarray | None
    frame_start: int = 0
    frame_len: int = 0
    snr_db: float = float("nan")
    cfo_hz: float = float("nan")
    noise_var: float = float("nan")
    estimate_var: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class PilotSounderConfig:
    """Parameters of the built-in pilot sounder (see [Note: pilot sounding frame]).

    Attributes:
        n_tx: transmit antennas.
        seq_len: Zadoff-Chu length ``L`` per block (a prime is best: 61, 127, ...).
        n_periods: pilot periods; ``n_blocks = n_periods * n_slots`` (>= 2 periods for the CFO).
        n_quiet: silent samples after the pilots (noise estimate).
        amplitude: pilot amplitude ``A`` per antenna (full scale 1.0 per antenna).
        threshold: detection threshold on the normalised matched-filter metric, in (0, 1): 0.2
            detects down to about -6 dB per-sample SNR; noise alone scores about ``1 / seq_len``.
        sample_rate_hz: sample rate, Hz (for the CFO in Hz).
    """

    n_tx: int = 1
    seq_len: int = 127
    n_periods: int = 8
    n_quiet: int = 128
    amplitude: float = 0.35
    threshold: float = 0.2
    sample_rate_hz: float = 1e6

    def __post_init__(self):
        if self.n_tx < 1:
            raise ValueError(f"n_tx must be >= 1, got {self.n_tx}")
        if self.seq_len < 16:
            raise ValueError(f"seq_len must be >= 16 (noise alone scores 1/seq_len), got {self.seq_len}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.n_periods < 2:
            raise ValueError(f"n_periods must be >= 2 (the CFO needs two), got {self.n_periods}")
        if self.n_quiet < 16:
            raise ValueError(f"n_quiet must be >= 16 (noise estimate), got {self.n_quiet}")
        if not 0 < self.amplitude <= 1:
            raise ValueError(f"amplitude must be in (0, 1] (full scale), got {self.amplitude}")
        if not self.sample_rate_hz > 0:
            raise ValueError(f"sample_rate_hz must be > 0, got {self.sample_rate_hz}")


def zadoff_chu(root: int, length: int) -> np.ndarray:
    """Unit-modulus Zadoff-Chu sequence, complex128 ``[length]``."""
    n = np.arange(length)
    cf = length % 2
    return np.exp(-1j * np.pi * root * n * (n + cf) / length)


class PilotSounder:
    """The built-in flat MIMO sounder (see [Note: pilot sounding frame])."""

    subcarrier_spacing_hz = None
    n_sc = 1

    def __init__(self, cfg: PilotSounderConfig):
        from scipy.linalg import hadamard

        self.cfg = cfg
        L = cfg.seq_len
        self.n_slots = 1 << max(0, (cfg.n_tx - 1).bit_length())
        self.n_blocks = cfg.n_periods * self.n_slots
        roots = [r for r in range(1, L) if np.gcd(r, L) == 1]
        if len(roots) < self.n_blocks:
            raise ValueError(f"seq_len {L} has {len(roots)} usable roots, need {self.n_blocks}; use a prime seq_len")
        step = max(1, len(roots) // self.n_blocks)
        self._seqs = np.stack([zadoff_chu(roots[b * step], L) for b in range(self.n_blocks)])  # [n_blocks, L]
        self._cover = hadamard(self.n_slots)[: cfg.n_tx].astype(np.float64)  # [n_tx, n_slots]
        self._codes = self._cover[:, np.arange(self.n_blocks) % self.n_slots]  # [n_tx, n_blocks]
        self.n_pilot = self.n_blocks * L
        self.frame_len = self.n_pilot + cfg.n_quiet
        frame = np.zeros((cfg.n_tx, self.frame_len), np.complex128)
        for b in range(self.n_blocks):
            frame[:, b * L : (b + 1) * L] = cfg.amplitude * self._codes[:, b : b + 1] * self._seqs[b][None]
        self._frame = frame.astype(np.complex64)

    @property
    def n_tx(self) -> int:
        return self.cfg.n_tx

    def params(self) -> dict:
        return {"kind": "pilot", **asdict(self.cfg), "frame_len": self.frame_len, "n_blocks": self.n_blocks,
                "n_slots": self.n_slots}

    def frame(self) -> np.ndarray:
        """The sounding frame, complex64 ``(n_tx, frame_len)``."""
        return self._frame.copy()

    def sound(self, radio: Radio) -> Sounding:
        """Send one frame through ``radio`` and estimate. A missed frame gives ``estimate=None``."""
        cap = np.asarray(radio.transceive(self._frame), dtype=np.complex64)
        try:
            return self.estimate(cap)
        except SyncError as e:
            log.debug("no frame: %s", e)
            return Sounding(capture=cap, estimate=None, frame_len=self.frame_len, error=str(e))

    def estimate(self, cap: np.ndarray) -> Sounding:
        """Find the frame in ``cap`` (complex64 ``(n_rx, m)``) and estimate. Raises SyncError if none."""
        cfg, L, nb = self.cfg, self.cfg.seq_len, self.n_blocks
        y = np.asarray(cap, dtype=np.complex64)
        if y.ndim != 2:
            raise ValueError(f"capture: expected (n_rx, samples), got {y.shape}")
        n_rx, m = y.shape
        if m < self.frame_len:
            raise SyncError(f"capture of {m} samples is shorter than the {self.frame_len}-sample sounding frame")
        n_k = m - self.frame_len + 1  # candidate starts
        import scipy.fft

        Pf = {}

        def pfft(nfft):
            if nfft not in Pf:
                Pf[nfft] = np.conj(scipy.fft.fft(self._seqs, nfft, axis=-1))  # [n_blocks, nfft]
            return Pf[nfft]

        if n_k <= 2 * self.n_pilot:
            # block b needs its correlation only at lags k + bL, k < n_k: correlate just that stretch
            seg_len = n_k + L - 1
            idx = (np.arange(nb) * L)[:, None] + np.arange(seg_len)[None, :]  # [n_blocks, seg_len]
            nfft = scipy.fft.next_fast_len(seg_len + L - 1)
            Ys = scipy.fft.fft(y[:, idx], nfft, axis=-1)  # [n_rx, n_blocks, nfft]
            c = scipy.fft.ifft(Ys * pfft(nfft)[None], axis=-1)[..., :n_k]  # [n_rx, n_blocks, n_k]
            metric = np.sum(c.real**2 + c.imag**2, axis=(0, 1))  # [n_k]
        else:  # a long capture: one FFT of the whole capture per block
            nfft = scipy.fft.next_fast_len(m + L)
            Y = scipy.fft.fft(y, nfft, axis=1)  # [n_rx, nfft]
            P = pfft(nfft)
            metric = np.zeros(n_k)
            for b in range(nb):
                c = scipy.fft.ifft(Y * P[b][None], axis=1)[:, b * L : b * L + n_k]
                metric += np.sum(c.real**2 + c.imag**2, axis=0)
        k = int(np.argmax(metric))
        # normalise by the energy under the pilot window: |sum y p*|^2 <= L sum |y|^2 (Cauchy-Schwarz)
        energy = float(np.sum(np.abs(y[:, k : k + self.n_pilot].astype(np.complex128)) ** 2))
        score = float(metric[k]) / (L * energy + 1e-30)
        if score < cfg.threshold:
            raise SyncError(
                f"no sounding frame: the best normalised matched-filter metric is {score:.3f}, below the "
                f"threshold {cfg.threshold} (noise alone gives about 1/L = {1 / L:.3f}); raise the TX "
                "power/gain or check the wiring"
            )
        seg = y[:, k : k + self.frame_len].astype(np.complex128)  # [n_rx, frame_len]
        blocks = seg[:, : self.n_pilot].reshape(n_rx, nb, L)
        z = np.einsum("rbn,bn->rb", blocks, np.conj(self._seqs))  # [n_rx, n_blocks]
        ns = self.n_slots
        cfo_hz = float(np.angle(np.sum(z[:, ns:] * np.conj(z[:, :-ns]))) * cfg.sample_rate_hz / (2 * np.pi * ns * L))
        centre = self.n_pilot / 2
        rot = np.exp(-2j * np.pi * cfo_hz / cfg.sample_rate_hz * (np.arange(self.frame_len) - centre))
        seg = seg * rot[None]
        blocks = seg[:, : self.n_pilot].reshape(n_rx, nb, L)
        z = np.einsum("rbn,bn->rb", blocks, np.conj(self._seqs))
        h = z @ self._codes.T / (nb * L * cfg.amplitude)  # [n_rx, n_tx]
        model = cfg.amplitude * np.einsum("rt,tb,bn->rbn", h, self._codes, self._seqs)
        resid = float(np.sum(np.abs(blocks - model) ** 2))
        guard = min(16, cfg.n_quiet // 4)
        quiet = seg[:, self.n_pilot + guard :]
        dof = quiet.size + n_rx * (self.n_pilot - cfg.n_tx)
        n0 = (float(np.sum(np.abs(quiet) ** 2)) + resid) / dof
        ep = nb * L * cfg.amplitude**2
        sig = float(np.mean(np.sum(np.abs(h) ** 2, axis=1))) * cfg.amplitude**2
        snr_db = float(10 * np.log10(max(sig, 1e-30) / max(n0, 1e-30)))
        return Sounding(
            capture=y,
            estimate=h[None].astype(np.complex64),
            frame_start=k,
            frame_len=self.frame_len,
            snr_db=snr_db,
            cfo_hz=cfo_hz,
            noise_var=n0,
            estimate_var=n0 / ep,
        )


def ofdm_to_fft_grid(
    est: np.ndarray, data_bins_signed: np.ndarray, n_fft: int, backoff_samples: float = 0.0,
) -> np.ndarray:
    """OFDM estimates on data subcarriers -> the channel on the full FFT grid, FFT order.

    See [Note: OFDM estimates as a replayable channel].

    Args:
        est: complex ``[n_data, n_rx, n_tx]`` on the subcarriers ``data_bins_signed`` (signed indices,
            e.g. -20..-1, 1..20 without the phase pilots), as the receiver estimated them.
        n_fft: FFT size.
        backoff_samples: how many samples before the detected frame timing the receiver's FFT window
            started (``RxResult.fft_backoff`` of ``hil.phy``); its phase
            ramp ``exp(-2j pi k d0 / n_fft)`` is removed, so the result is the channel referred to the
            frame timing (a flat channel at the detected timing becomes flat).

    Returns:
        complex64 ``[n_fft, n_rx, n_tx]``: linear interpolation (real and imaginary parts) over the
        signed subcarrier index, periodic with period ``n_fft``: between data subcarriers (DC and the
        phase pilots) and across the guard band from the highest to the lowest used subcarrier.
    """
    k = np.asarray(data_bins_signed)
    order = np.argsort(k)
    k, e = k[order], np.asarray(est)[order]
    if backoff_samples:
        ramp = np.exp(2j * np.pi * k * float(backoff_samples) / n_fft)
        e = e * ramp.reshape((-1,) + (1,) * (e.ndim - 1))
    grid_k = np.arange(-(n_fft // 2), n_fft - n_fft // 2)
    flat = e.reshape(len(k), -1)
    out = np.empty((n_fft, flat.shape[1]), np.complex64)
    for j in range(flat.shape[1]):
        out[:, j] = (np.interp(grid_k, k, flat[:, j].real, period=n_fft)
                     + 1j * np.interp(grid_k, k, flat[:, j].imag, period=n_fft))
    full = np.empty_like(out)
    full[grid_k % n_fft] = out
    return full.reshape((n_fft,) + e.shape[1:])


class PhySounder:
    """Sounding through the project PHY (``hil.phy.PhyLink``): one transceive of a small payload.

    The estimate is the PHY's ``channel_estimate``: flat ``[1, n_rx, n_tx]``, or for ``mode="ofdm"``
    the data subcarriers' estimates put on the full FFT grid in FFT order by
    :func:`ofdm_to_fft_grid` (``[ofdm_fft, n_rx, n_tx]``, subcarrier spacing ``fs / ofdm_fft``),
    referred to the frame timing (see [Note: OFDM estimates as a replayable channel]).
    SNR, CFO, timing, the noise power per sample and the estimate's error variance are the PHY's;
    the raw IQ is the capture of that transceive. The PHY searches CFO over +-``max_cfo_hz``
    (120 kHz by default), so this is the sounder for real boards.

    Args:
        radio: the radio to sound through (wrapped to keep the raw capture).
        rng: generator of the payload (required: one Generator passed in).
        channel_uses: payload symbols per antenna (small: the payload is not the point).
        **phy: ``hil.phy.PhyConfig`` fields (``n_tx``/``n_rx`` come from the radio).
    """

    def __init__(self, radio: Radio, rng: np.random.Generator, channel_uses: int = 8,
                 sample_rate_hz: float | None = None, **phy):
        from hil.phy import OfdmGrid, PhyConfig, PhyLink  # another part; imported only when used

        self._tap = TapRadio(radio)
        caps = radio.caps
        if sample_rate_hz is not None:
            phy.setdefault("sample_rate_hz", float(sample_rate_hz))
        self._cfg = PhyConfig(n_tx=caps.n_tx, n_rx=caps.n_rx, **phy)
        self._link = PhyLink(self._tap, self._cfg)
        self.channel_uses = int(channel_uses)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        self.rng = rng
        self.frame_len = self._link.burst_samples(1, self.channel_uses)
        if self._cfg.mode == "ofdm":
            g = OfdmGrid(self._cfg)
            self._data_signed = g.used[g.data_pos]
            self.n_sc = g.n_fft
            self.subcarrier_spacing_hz = self._cfg.sample_rate_hz / g.n_fft
        else:
            self._data_signed = None
            self.n_sc = 1
            self.subcarrier_spacing_hz = None

    @property
    def n_tx(self) -> int:
        return self._cfg.n_tx

    def params(self) -> dict:
        p = {"kind": "phy", "channel_uses": self.channel_uses, "frame_len": self.frame_len, "phy": asdict(self._cfg)}
        if self._cfg.mode == "ofdm":  # how the stored estimates relate to the receiver's (see the Note)
            p["ofdm_estimate"] = {"delay_reference": "frame timing (FFT back-off cp//4 + frac(timing) removed)",
                                  "guard_fill": "periodic linear interpolation"}
        return p

    def sound(self, radio: Radio | None = None) -> Sounding:
        """One PHY transceive; a lost frame (SyncError) gives ``estimate=None`` with the reason."""
        sym = (self.rng.standard_normal((1, self.n_tx, self.channel_uses))
               + 1j * self.rng.standard_normal((1, self.n_tx, self.channel_uses))) / np.sqrt(2)
        self._tap.last_capture = None
        try:
            res = self._link.transceive(sym.astype(np.complex64))
        except SyncError as e:
            cap = self._tap.last_capture
            if cap is None:
                raise
            return Sounding(capture=cap, estimate=None, frame_len=self.frame_len, error=str(e))
        h = np.asarray(res.channel_estimate)
        if h.ndim == 2:
            h = h[None]
        elif self._data_signed is not None:
            # the delay the receiver's FFT windows put on its estimates (hil.phy FrameReceiver.fft_backoff)
            h = ofdm_to_fft_grid(h, self._data_signed, self.n_sc, backoff_samples=res.fft_backoff)
        return Sounding(
            capture=self._tap.last_capture,
            estimate=h.astype(np.complex64),
            frame_start=int(np.floor(res.timing)),
            frame_len=self.frame_len,
            snr_db=float(res.snr_db),
            cfo_hz=float(res.cfo_hz),
            noise_var=float(res.noise_power),
            estimate_var=float(res.estimate_error_var),
        )
