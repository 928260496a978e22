"""Channel sounding through the project PHY: one ``hil.phy`` frame per burst, and what its receiver estimated.

There is one sounder, :class:`PhySounder`; capture sweeps (``hil capture``) and the channel probe
(``hil sim probe``) both use it. It has no synchroniser or estimator of its own: detection and timing,
CFO, the channel estimate and the noise power are ``hil.phy.FrameReceiver``'s (docs/phy.md). What is
sounding-specific stays here: the frame's settings (:data:`SOUNDER_PHY`: long pilots, a long quiet
interval, least squares), the per-sample SNR a recording stores (see [Note: sounding numbers]), the
mapping of a sweep's ``[sounder]`` table (:func:`sounder_settings`), and the conversion of OFDM
estimates to a replayable grid (:func:`ofdm_to_fft_grid`).

[Note: sounding numbers]
Each burst is one ``PhyLink.transceive`` of ``channel_uses`` random payload symbols (the payload is
not the point). From the receiver's ``RxResult``:

- ``frame_start = round(timing)`` (the frame starts the burst, so this is the burst's first sample in
  the capture); ``timing`` keeps the fraction.
- ``estimate``: ``channel_estimate`` (least squares by default: unbiased; phase referred to the centre
  of the pilot block), ``[1, n_rx, n_tx]`` flat, or for ``mode = "ofdm"`` on the full FFT grid (see
  [Note: OFDM estimates as a replayable channel]).
- ``noise_var_rx[r]``: noise power per sample at receive antenna ``r`` (full scale 1.0):
  ``noise_power * noise_var_rx[r] / noise_var`` (the PHY's per-antenna split); ``noise_var`` is their mean.
- ``estimate_var``: ``estimate_error_var``, the LS error variance of one coefficient; ``e_r`` is its
  share at antenna ``r`` (split like the noise).
- ``signal_power_rx[r] = P mean_k sum_t max(|H_k[r, t]|^2 - e_r, 0)`` with ``P`` the frame's average
  power per transmit antenna and sample (``PhyConfig.avg_power``, ``amplitude**2``) and ``k`` over the
  estimated subcarriers (one for flat): the received power per sample of a transmitter sending at ``P``
  from all its antennas at once, with the estimation error's bias removed.
- ``snr_db_rx[r] = signal_power_rx[r] / noise_var_rx[r]``: SNR *per sample* at antenna ``r`` (the
  channel server's ``snr_reference = "rx"``); ``snr_db = mean_r signal / mean_r noise``, the SNR per
  receive antenna that a recording stores. The PHY's own ``RxResult.snr_db`` is per symbol after the
  matched filter, ``10 log10(sps)`` dB higher for single carrier; it is kept as ``phy_snr_db``.

The sounder transmits at amplitude :data:`SOUNDER_AMPLITUDE` per antenna by default (a back-off of
9.1 dB), so "SNR" in a recording is the SNR of a transmitter at that amplitude on all its antennas.

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
import math
from dataclasses import dataclass, fields

import numpy as np

from hil.channel.random import complex_normal
from hil.errors import ConfigError, SyncError
from hil.radio.base import Radio
from hil.radio.tap import TapRadio

log = logging.getLogger(__name__)

#: default RMS amplitude of the sounding frame per transmit antenna (full scale 1.0)
SOUNDER_AMPLITUDE = 0.35

#: ``hil.phy.PhyConfig`` fields of a sounding frame unless overridden (``n_tx``/``n_rx`` come from the
#: radio, ``max_cfo_hz`` defaults to min(120 kHz, 0.12 fs)). 512 pilot symbols per transmit antenna at
#: 2 samples per symbol give each channel coefficient 1024 n_tx pilot samples of energy.
SOUNDER_PHY = {
    "mode": "flat",
    "estimator": "ls",
    "pilot_len": 512,
    "quiet_len": 256,
    "backoff_db": -20.0 * math.log10(SOUNDER_AMPLITUDE),
}

#: ``[sounder]`` keys of the earlier Zadoff-Chu pilot sounder and what replaces each
REMOVED_SOUNDER_KEYS = {
    "seq_len": "pilot_len (pilot symbols per transmit antenna; a coefficient gets sps * n_tx * pilot_len "
               "pilot samples, as it got n_periods * n_slots * seq_len before)",
    "n_periods": "pilot_len (pilot symbols per transmit antenna; a coefficient gets sps * n_tx * pilot_len "
                 "pilot samples, as it got n_periods * n_slots * seq_len before)",
    "n_quiet": "quiet_len (silent symbols of sps samples each)",
    "threshold": "p_fa (false-alarm probability per capture of noise only)",
}


def _phy_keys() -> set[str]:
    from hil.phy import PhyConfig

    return {f.name for f in fields(PhyConfig)} - {"n_tx", "n_rx", "sample_rate_hz"}


def sounder_settings(table: dict) -> dict:
    """A sweep's ``[sounder]`` table -> keyword arguments of :class:`PhySounder`.

    Keys: ``hil.phy.PhyConfig`` fields (``mode``, ``pilot_len``, ``quiet_len``, ``max_cfo_hz``, ...),
    ``channel_uses``, ``amplitude`` (RMS per transmit antenna, full scale 1.0; becomes ``backoff_db``)
    and ``kind = "phy"`` (optional, the only kind).

    Raises:
        ConfigError: ``[sounder].KEY: what is wrong``, for a key of the removed pilot sounder (naming
            its replacement), an unknown key, or a bad ``kind``/``amplitude``.
    """
    d = dict(table)
    kind = d.pop("kind", "phy")
    if kind != "phy":
        hint = (" (the Zadoff-Chu pilot sounder was replaced by hil.phy frames: remove the key; see "
                "docs/capture.md)") if kind == "pilot" else ""
        raise ConfigError(f"[sounder].kind = {kind!r}: the only sounder is 'phy'{hint}")
    for k in sorted(set(d) & set(REMOVED_SOUNDER_KEYS)):
        raise ConfigError(f"[sounder].{k}: removed (the sounder sends hil.phy frames); use {REMOVED_SOUNDER_KEYS[k]}")
    valid = _phy_keys() | {"channel_uses", "amplitude"}
    unknown = set(d) - valid
    if unknown:
        raise ConfigError(f"[sounder]: unknown keys {sorted(unknown)}; valid: {sorted(valid | {'kind'})}")
    if "amplitude" in d:
        if "backoff_db" in d:
            raise ConfigError("[sounder]: give amplitude or backoff_db, not both (amplitude = 10^(-backoff_db/20))")
        a = d.pop("amplitude")
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1:
            raise ConfigError(f"[sounder].amplitude = {a!r}: must be a number in (0, 1] (RMS per antenna, full scale 1.0)")
        d["backoff_db"] = -20.0 * math.log10(a)
    return d


@dataclass(frozen=True, eq=False)
class Sounding:
    """One sounding: the raw capture and, when a frame was found, what was estimated from it.

    See [Note: sounding numbers] for each value's definition.

    Attributes:
        capture: complex64 ``(n_rx, m)``, the raw received burst.
        estimate: complex64 ``[n_sc, n_rx, n_tx]`` or ``None`` when no frame was detected.
        frame_start: sample index of the frame inside ``capture`` (rounded ``timing``).
        frame_len: frame length in samples.
        snr_db: SNR per sample per receive antenna (mean signal over mean noise), dB.
        cfo_hz: carrier frequency offset, Hz.
        noise_var: noise power per sample per receive antenna (full-scale units, mean over antennas).
        estimate_var: error variance of each channel coefficient.
        error: why no frame was detected (``None`` when one was).
        timing: the PHY's fractional frame timing, samples.
        snr_db_rx: float ``[n_rx]`` SNR per sample per receive antenna, dB.
        noise_var_rx: float ``[n_rx]`` noise power per sample per receive antenna.
        signal_power_rx: float ``[n_rx]`` received signal power per sample per receive antenna.
        phy_snr_db: the PHY's ``RxResult.snr_db`` (per symbol, mean over receive antennas).
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
    timing: float = float("nan")
    snr_db_rx: np.ndarray | None = None
    noise_var_rx: np.ndarray | None = None
    signal_power_rx: np.ndarray | None = None
    phy_snr_db: float = float("nan")


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
    """Sounding through the project PHY (``hil.phy.PhyLink``): one transceive of a small payload per burst.

    The estimate is the PHY's ``channel_estimate``: flat ``[1, n_rx, n_tx]``, or for ``mode="ofdm"``
    the data subcarriers' estimates put on the full FFT grid in FFT order by
    :func:`ofdm_to_fft_grid` (``[ofdm_fft, n_rx, n_tx]``, subcarrier spacing ``fs / ofdm_fft``),
    referred to the frame timing (see [Note: OFDM estimates as a replayable channel]). Timing, CFO,
    noise power and the estimate's error variance are the PHY's; the SNR is per sample (see
    [Note: sounding numbers]); the raw IQ is the capture of that transceive. The PHY searches CFO over
    +-``max_cfo_hz`` (min(120 kHz, 0.12 fs) by default), so this sounder also works between two boards.

    Args:
        radio: the radio to sound through (the caller owns it; it is wrapped to keep the raw capture).
        rng: generator of the payload (required: one Generator passed in).
        channel_uses: payload symbols per antenna (small: the payload is not the point).
        sample_rate_hz: the link's sample rate (CFO in Hz, CFO search range).
        **phy: ``hil.phy.PhyConfig`` fields overriding :data:`SOUNDER_PHY` (``n_tx``/``n_rx`` come
            from the radio).
    """

    def __init__(self, radio: Radio, rng: np.random.Generator, channel_uses: int = 8,
                 sample_rate_hz: float = 1e6, **phy):
        from hil.phy import OfdmGrid, PhyConfig, PhyLink  # another part; imported only when used

        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        self.rng = rng
        self._tap = TapRadio(radio, close_inner=False)
        caps = radio.caps
        fs = float(sample_rate_hz)
        kw = {**SOUNDER_PHY, "max_cfo_hz": min(120e3, 0.12 * fs), **phy}
        self.cfg = PhyConfig(n_tx=caps.n_tx, n_rx=caps.n_rx, sample_rate_hz=fs, **kw)
        self._link = PhyLink(self._tap, self.cfg)
        self.channel_uses = int(channel_uses)
        if self.channel_uses < 1:
            raise ValueError(f"channel_uses must be >= 1, got {channel_uses}")
        self.frame_len = self._link.burst_samples(1, self.channel_uses)
        if self.cfg.mode == "ofdm":
            g = OfdmGrid(self.cfg)
            self._data_signed = g.used[g.data_pos]
            self.n_sc = g.n_fft
            self.subcarrier_spacing_hz = fs / g.n_fft
        else:
            self._data_signed = None
            self.n_sc = 1
            self.subcarrier_spacing_hz = None

    @property
    def n_tx(self) -> int:
        return self.cfg.n_tx

    def params(self) -> dict:
        """What a recording stores about the sounder (``hil:sounder``)."""
        p = {"kind": "phy", "channel_uses": self.channel_uses, "frame_len": self.frame_len,
             "amplitude": self.cfg.amplitude, "snr": "per sample per receive antenna, transmitter at amplitude",
             "phy": self.cfg.to_dict()}
        if self.cfg.mode == "ofdm":  # how the stored estimates relate to the receiver's (see the Note)
            p["ofdm_estimate"] = {"delay_reference": "frame timing (FFT back-off cp//4 + frac(timing) removed)",
                                  "guard_fill": "periodic linear interpolation"}
        return p

    def sound(self) -> Sounding:
        """One PHY transceive; a lost frame (SyncError) gives ``estimate=None`` with the reason."""
        sym = complex_normal(self.rng, (1, self.n_tx, self.channel_uses), dtype=np.complex64)
        self._tap.last_capture = None
        try:
            res = self._link.transceive(sym)
        except SyncError as e:
            cap = self._tap.last_capture
            if cap is None:
                raise
            log.debug("no frame: %s", e)
            return Sounding(capture=cap, estimate=None, frame_len=self.frame_len, error=str(e))
        return self._sounding(self._tap.last_capture, res)

    def estimate(self, capture: np.ndarray) -> Sounding:
        """Find a sounding frame in ``capture`` (complex ``(n_rx, m)``) and estimate; SyncError if none."""
        y = np.asarray(capture, dtype=np.complex64)
        if y.ndim != 2:
            raise ValueError(f"capture: expected (n_rx, samples), got shape {y.shape}")
        return self._sounding(y, self._link.receiver.receive(y))

    def _sounding(self, capture: np.ndarray, res) -> Sounding:
        """``RxResult`` -> :class:`Sounding` (see [Note: sounding numbers])."""
        split = np.asarray(res.noise_var_rx, np.float64) / max(float(res.noise_var), 1e-300)  # per-antenna share
        noise = float(res.noise_power) * split  # [n_rx]
        err = float(res.estimate_error_var) * split  # [n_rx]
        h_ls = np.asarray(res.channel_estimate_ls, np.complex128)
        if h_ls.ndim == 2:
            h_ls = h_ls[None]  # [n_sc, n_rx, n_tx]
        sig = self.cfg.avg_power * np.mean(
            np.sum(np.maximum(np.abs(h_ls) ** 2 - err[None, :, None], 0.0), axis=2), axis=0)  # [n_rx]
        tiny = 1e-30
        h = np.asarray(res.channel_estimate)
        if h.ndim == 2:
            h = h[None]
        elif self._data_signed is not None:
            # the delay the receiver's FFT windows put on its estimates (hil.phy FrameReceiver.fft_backoff)
            h = ofdm_to_fft_grid(h, self._data_signed, self.n_sc, backoff_samples=res.fft_backoff)
        return Sounding(
            capture=capture,
            estimate=h.astype(np.complex64),
            frame_start=int(round(float(res.timing))),
            frame_len=self.frame_len,
            snr_db=float(10 * np.log10(max(float(np.mean(sig)), tiny) / max(float(np.mean(noise)), tiny))),
            cfo_hz=float(res.cfo_hz),
            noise_var=float(res.noise_power),
            estimate_var=float(res.estimate_error_var),
            timing=float(res.timing),
            snr_db_rx=10 * np.log10(np.maximum(sig, tiny) / np.maximum(noise, tiny)),
            noise_var_rx=noise,
            signal_power_rx=sig,
            phy_snr_db=float(res.snr_db),
        )
