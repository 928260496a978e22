"""ReplayChannel: a recorded channel (``hil capture``) played back as a channel model.

[Note: replay timing]
A recording holds one channel estimate per detected sounding frame, at sounding slots ``slot``
(``frame_interval_s`` apart; missed frames are filled by linear interpolation between their
neighbours). Slots count straight through every LO step and repeat of a recording, so a replay of one
LO step is renumbered (:func:`replay_slots`): the repeats of that step follow each other without a
gap and are never interpolated into each other; a recording of several LO steps needs ``lo_step``. Two clocks play it back:

- ``mode="frame"`` (default): every :meth:`generate` call is one slot, the channel is constant over
  the call. This matches burst-based training and a capture made of one burst per frame, so a
  capture of a replay sees the recorded sequence again (same rho, K and SNR).
- ``mode="time"``: the clock is in samples at ``sample_rate_hz``; the channel at sample ``n`` is the
  estimate at ``u = n / sample_rate_hz / frame_interval_s`` slots, linearly interpolated between
  the two neighbouring slots (per sample for a flat channel, per call for a frequency-selective one).

At the end of the recording the replay wraps to the start (``loop=True``) or raises ``ValueError``.
With ``noise="recorded"`` complex white Gaussian noise of the recorded per-slot noise power
(per receive antenna, full-scale units) is added, so the replay also reproduces the recorded SNR for
a transmitter at the sounder's power; ``noise="none"`` leaves noise to a later AWGN stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hil._sigmf import list_recordings, load_recording  # the reader sits below hil.channel
from hil.channel.base import ChannelModel


def _fill_slots(h: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Estimates on a regular slot grid from ``slot[0]`` to ``slot[-1]`` (linear interpolation in gaps)."""
    s = slot - slot[0]
    n = int(s[-1]) + 1
    if n == len(s):
        return h
    grid = np.arange(n)
    flat = h.reshape(h.shape[0], -1)
    out = np.empty((n, flat.shape[1]), np.complex64)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(grid, s, flat[:, j].real) + 1j * np.interp(grid, s, flat[:, j].imag)
    return out.reshape((n,) + h.shape[1:])


def replay_slots(slot: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Slots to replay a selection of frames by: gaps only where frames were missed.

    ``slot`` int ``[F]`` are the recorded sounding slots (counted straight through every LO step and
    repeat of the recording), ``segment`` int ``[F]`` the index of each frame's capture segment (one
    per LO step and repeat, in recording order). Within a run of frames from the same or adjacent
    segments the slot differences are kept, so a missed frame stays a gap to interpolate over. Where
    the selection skips a segment (another LO step was recorded in between, or a whole segment was
    lost) the next run starts one slot after the previous one: the replay jumps there instead of
    interpolating between channels that were not measured in one continuous stretch.

    Returns:
        int64 ``[F]``, strictly increasing, starting at 0.
    """
    s = np.asarray(slot, np.int64)
    g = np.asarray(segment, np.int64)
    if s.shape != g.shape or s.ndim != 1 or len(s) < 1:
        raise ValueError(f"slot and segment: expected two equal 1-D arrays, got {s.shape} and {g.shape}")
    step = np.diff(s)
    if np.any(step <= 0) or np.any(np.diff(g) < 0):
        raise ValueError("slot and segment must increase (frames in recording order)")
    step = np.where(np.diff(g) > 1, 1, step)  # a skipped segment: no gap
    return np.concatenate([[0], np.cumsum(step)]).astype(np.int64)


class ReplayChannel(ChannelModel):
    """Plays per-frame channel estimates back (see [Note: replay timing]).

    Args:
        estimates: complex ``[F, n_sc, n_rx, n_tx]`` (or ``[F, n_rx, n_tx]``): channel per frame; with
            ``n_sc > 1`` the subcarriers in FFT order, turned into ``n_sc`` delay taps by an IFFT.
        rng: the generator for the added noise.
        slot: int ``[F]``, increasing sounding slot of each frame (default ``0..F-1``).
        frame_interval_s: time between slots, s (needed for ``mode="time"``).
        sample_rate_hz: sample rate of the signal passed through, Hz (needed for ``mode="time"``).
        mode: ``"frame"`` or ``"time"``.
        noise_var: per-frame noise power ``[F]`` or a scalar, used when ``noise="recorded"``.
        noise: ``"recorded"`` (add noise of ``noise_var``) or ``"none"``.
        loop: wrap to the first slot after the last (else ``ValueError`` past the end).
        normalize: scale so that the mean ``|h|^2`` over frames, subcarriers and pairs is 1 (the noise
            is scaled with it, keeping the SNR).
        start_slot: slot index to start from.
    """

    def __init__(
        self,
        estimates: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        slot: np.ndarray | None = None,
        frame_interval_s: float | None = None,
        sample_rate_hz: float | None = None,
        mode: str = "frame",
        noise_var: float | np.ndarray | None = None,
        noise: str = "none",
        loop: bool = True,
        normalize: bool = False,
        start_slot: int = 0,
    ):
        h = np.asarray(estimates)
        if h.ndim == 3:
            h = h[:, None]
        if h.ndim != 4 or h.shape[0] < 1:
            raise ValueError(f"estimates: expected [frames, n_sc, n_rx, n_tx] with frames >= 1, got {np.shape(estimates)}")
        if not np.all(np.isfinite(h)):
            raise ValueError("estimates contain NaN or Inf")
        if mode not in ("frame", "time"):
            raise ValueError(f"mode must be 'frame' or 'time', got {mode!r}")
        if noise not in ("recorded", "none"):
            raise ValueError(f"noise must be 'recorded' or 'none', got {noise!r}")
        if mode == "time" and not (frame_interval_s and frame_interval_s > 0 and sample_rate_hz and sample_rate_hz > 0):
            raise ValueError(
                f"mode='time' needs frame_interval_s > 0 and sample_rate_hz > 0, got {frame_interval_s}, {sample_rate_hz}"
            )
        f = h.shape[0]
        s = np.arange(f, dtype=np.int64) if slot is None else np.asarray(slot, dtype=np.int64)
        if s.shape != (f,) or np.any(np.diff(s) <= 0):
            raise ValueError(f"slot: expected {f} strictly increasing integers, got shape {s.shape}")
        nv = np.zeros(f) if noise_var is None else np.broadcast_to(np.asarray(noise_var, np.float64), (f,)).copy()
        nv = np.where(np.isfinite(nv), nv, np.nanmedian(nv) if np.isfinite(nv).any() else 0.0)
        if noise == "recorded" and noise_var is None:
            raise ValueError("noise='recorded' needs noise_var (the recording's per-frame noise power)")
        if noise == "recorded" and rng is None:
            raise ValueError("noise='recorded' needs rng (a numpy Generator)")
        self._h = _fill_slots(h.astype(np.complex64), s)  # [S, n_sc, n_rx, n_tx]
        self._noise_var = np.interp(np.arange(self._h.shape[0]), s - s[0], nv)  # [S]
        if normalize:
            g = float(np.mean(np.abs(self._h) ** 2))
            if g <= 0:
                raise ValueError("normalize=True on an all-zero channel")
            self._h = (self._h / np.sqrt(g)).astype(np.complex64)
            self._noise_var = self._noise_var / g
        self.n_slots = self._h.shape[0]
        self.n_sc = self._h.shape[1]
        self.n_out, self.n_in = self._h.shape[2], self._h.shape[3]
        self.mode = mode
        self.noise = noise
        self.loop = bool(loop)
        self.rng = rng
        self.frame_interval_s = frame_interval_s
        self.sample_rate_hz = sample_rate_hz
        if not 0 <= start_slot < self.n_slots:
            raise ValueError(f"start_slot must be in [0, {self.n_slots}), got {start_slot}")
        self._slot = int(start_slot)  # frame mode: next slot
        self._clock = int(round(start_slot * (frame_interval_s or 0) * (sample_rate_hz or 0)))  # time mode: samples
        self._last_slot_pos = float(start_slot)
        if self.n_sc > 1:
            self._taps = np.fft.ifft(self._h, axis=1).astype(np.complex64)  # [S, taps, n_rx, n_tx]

    # ------------------------------------------------------------------ construction from a recording
    @classmethod
    def from_recording(
        cls,
        path: str | Path,
        rng: np.random.Generator | None = None,
        *,
        recording: str | int = 0,
        mode: str = "frame",
        noise: str = "recorded",
        loop: bool = True,
        normalize: bool = False,
        sample_rate_hz: float | None = None,
        lo_step: int | None = None,
    ) -> "ReplayChannel":
        """Replay a recording made by ``hil capture``.

        Args:
            path: the capture directory (``--out DIR``) or one ``.sigmf-meta`` file.
            recording: which recording of the directory: index in sorted order or base name.
            lo_step: only the frames of this LO step; required when the recording has more than one
                (different frequencies are not one channel process). Its repeats are played back to
                back, without interpolation across the boundaries (see :func:`replay_slots`).
            sample_rate_hz: sample rate for ``mode="time"`` (default: the recording's).
            Others: see the class.
        """
        paths = list_recordings(path)
        if not paths:
            raise ValueError(f"no recording in {path}; run `hil capture --out {path}` first")
        if isinstance(recording, str) and not recording.isdigit():
            match = [p for p in paths if p.name.startswith(recording + ".")]
            if not match:
                raise ValueError(f"no recording named {recording!r} in {path}; have {[p.name for p in paths]}")
            p = match[0]
        else:
            i = int(recording)
            if not 0 <= i < len(paths):
                raise ValueError(f"recording index {i} out of range: {path} holds {len(paths)} recordings")
            p = paths[i]
        rec = load_recording(p)  # every field checked: a malformed recording raises CaptureError
        fr = rec.frames
        steps = sorted(set(rec.capture_lo_steps.tolist()) | set(fr.lo_step.tolist()))
        if lo_step is None and len(steps) > 1:
            raise ValueError(
                f"{p.name} holds {len(steps)} LO steps {steps} (different carrier frequencies, not one channel "
                f"process); choose one: lo_step=K (ReplayChannel.from_recording(..., lo_step={steps[0]}), "
                f"replay spec key lo_step = {steps[0]}, or 'replay:{path}?lo_step={steps[0]}')"
            )
        sel = np.ones(rec.n_frames, bool) if lo_step is None else fr.lo_step == lo_step
        if sel.sum() < 1:
            raise ValueError(f"{p.name}: no detected frame (lo_step={lo_step}; steps recorded: {steps}); nothing to replay")
        segment = np.searchsorted(rec.capture_starts, fr.sample_start[sel], side="right") - 1
        fi = rec.frame_interval_s
        return cls(
            rec.estimates[sel],
            rng,
            slot=replay_slots(fr.slot[sel], segment),
            frame_interval_s=fi,
            sample_rate_hz=sample_rate_hz or rec.sample_rate_hz,
            mode=mode,
            noise_var=fr.noise_var[sel],
            noise=noise,
            loop=loop,
            normalize=normalize,
        )

    # ------------------------------------------------------------------ generate / apply
    def _wrap(self, pos: np.ndarray) -> np.ndarray:
        if self.loop:
            return np.mod(pos, self.n_slots)
        if np.any(pos > self.n_slots - 1):
            raise ValueError(
                f"replay ran past the end of the recording ({self.n_slots} slots); use loop=True or a longer capture"
            )
        return pos

    def _at(self, pos: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Linear interpolation of ``table`` [S, ...] at fractional slot positions ``pos`` [n]."""
        pos = self._wrap(pos)
        i0 = np.floor(pos).astype(np.int64)
        a = (pos - i0).astype(np.float32)
        i1 = (i0 + 1) % self.n_slots if self.loop else np.minimum(i0 + 1, self.n_slots - 1)
        shape = (-1,) + (1,) * (table.ndim - 1)
        return (1 - a).reshape(shape) * table[i0] + a.reshape(shape) * table[i1]

    def generate(self, n_samples: int) -> dict[str, Any]:
        """Coefficients for the next ``n_samples`` samples.

        Returns:
            dict: ``h`` complex64 ``[n_sc, n_rx, n_tx]`` (frame mode, or frequency-selective time mode)
            or ``[n, n_rx, n_tx]`` per sample (flat time mode, key ``h_t``); ``noise`` complex64
            ``[n_rx, n]`` or ``None``; ``slot`` the (fractional) slot position played.
        """
        n = int(n_samples)
        if n < 0:
            raise ValueError(f"n_samples must be >= 0, got {n}")
        out: dict[str, Any] = {}
        if self.mode == "frame":
            pos = float(self._wrap(np.array([self._slot], float))[0])
            out["h"] = self._h[int(pos)]
            out["taps"] = self._taps[int(pos)] if self.n_sc > 1 else None
            nv = float(self._noise_var[int(pos)])
            self._slot = int(pos) + 1
            self._last_slot_pos = pos
        else:
            per_slot = self.frame_interval_s * self.sample_rate_hz  # samples per slot
            if self.n_sc == 1:
                pos = (self._clock + np.arange(n)) / per_slot
                out["h_t"] = self._at(pos, self._h[:, 0]).astype(np.complex64)  # [n, n_rx, n_tx]
                mid = float(self._wrap(np.array([(self._clock + n / 2) / per_slot]))[0])
            else:
                mid = float(self._wrap(np.array([(self._clock + n / 2) / per_slot]))[0])
                out["h"] = self._at(np.array([mid]), self._h)[0]
                out["taps"] = self._at(np.array([mid]), self._taps)[0]
            nv = float(np.interp(mid, np.arange(self.n_slots), self._noise_var))
            self._clock += n
            self._last_slot_pos = mid
        out["slot"] = self._last_slot_pos
        if self.noise == "recorded" and nv > 0 and n > 0:
            w = self.rng.standard_normal((2, self.n_out, n), dtype=np.float32)
            out["noise"] = ((w[0] + 1j * w[1]) * np.float32(np.sqrt(nv / 2))).astype(np.complex64)
        else:
            out["noise"] = None
        return out

    def apply(self, x: np.ndarray, coeffs: dict[str, Any]) -> np.ndarray:
        """``[n_in, n] -> [n_out, n]``: the replayed channel (and the recorded noise, if drawn)."""
        x = np.asarray(x, dtype=np.complex64)
        if x.ndim != 2 or x.shape[0] != self.n_in:
            raise ValueError(f"ReplayChannel: expected input shaped ({self.n_in}, samples), got {x.shape}")
        n = x.shape[1]
        if "h_t" in coeffs:
            ht = coeffs["h_t"]
            if ht.shape[0] != n:
                raise ValueError(f"coefficients are for {ht.shape[0]} samples, input has {n}")
            y = np.einsum("nrt,tn->rn", ht, x)
        elif coeffs.get("taps") is not None:
            taps = coeffs["taps"]  # [L, n_rx, n_tx]
            y = np.zeros((self.n_out, n), np.complex64)
            for r in range(self.n_out):
                for t in range(self.n_in):
                    y[r] += np.convolve(x[t], taps[:, r, t])[:n]
        else:
            y = coeffs["h"][0] @ x
        y = y.astype(np.complex64, copy=False)
        if coeffs.get("noise") is not None:
            if coeffs["noise"].shape[1] != n:
                raise ValueError(f"noise was drawn for {coeffs['noise'].shape[1]} samples, input has {n}")
            y = y + coeffs["noise"]
        return y

    def state(self) -> dict:
        """The slot being played and the channel there (for tests and metadata)."""
        i = int(np.floor(self._last_slot_pos)) % self.n_slots
        h = self._h[i]
        return {
            "slot": self._last_slot_pos,
            "n_slots": self.n_slots,
            "mode": self.mode,
            "h_real": h.real.tolist(),
            "h_imag": h.imag.tolist(),
            "noise_var": float(self._noise_var[i]),
        }

    def reverse(self) -> "ReplayChannel":
        """The reciprocal link: the same recording transposed (``n_rx`` and ``n_tx`` swapped), own clock."""
        r = object.__new__(ReplayChannel)
        r.__dict__.update(self.__dict__)
        r._h = np.ascontiguousarray(np.swapaxes(self._h, 2, 3))
        if self.n_sc > 1:
            r._taps = np.ascontiguousarray(np.swapaxes(self._taps, 2, 3))
        r.n_in, r.n_out = self.n_out, self.n_in
        return r


REPLAY_KEYS = ("replay", "n_tx", "n_rx", "mode", "noise", "normalize", "loop", "recording", "lo_step",
               "sample_rate_hz", "snr_db")


def parse_replay_spec(spec: str | dict) -> dict:
    """A replay spec as a dict.

    Accepts ``"replay:DIR"`` with optional query options (``"replay:DIR?mode=time&noise=none"``) or
    a dict with the key ``replay`` (the directory) and the options of :data:`REPLAY_KEYS`.
    """
    if isinstance(spec, str):
        from urllib.parse import parse_qsl

        if not spec.startswith("replay:"):
            raise ValueError(f"a replay channel spec starts with 'replay:' (replay:DIR), got {spec!r}")
        rest = spec[len("replay:"):]
        path, _, query = rest.partition("?")
        if not path:
            raise ValueError("replay:DIR needs the capture directory (hil capture --out DIR)")
        d: dict = {"replay": path}
        for k, v in parse_qsl(query, keep_blank_values=True):
            d[k] = v
        spec = d
    if not isinstance(spec, dict) or "replay" not in spec:
        raise TypeError(f"a replay spec is 'replay:DIR' or a dict with key 'replay', got {spec!r}")
    bad = [k for k in spec if k not in REPLAY_KEYS]
    if bad:
        raise ValueError(f"replay spec: unknown key(s) {bad}; valid keys: {', '.join(REPLAY_KEYS)}")
    out = dict(spec)
    for k in ("normalize", "loop"):
        if k in out and isinstance(out[k], str):
            if out[k].lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"replay spec: {k} must be true/false, got {out[k]!r}")
            out[k] = out[k].lower() in ("1", "true", "yes")
    for k in ("n_tx", "n_rx", "lo_step"):
        if k in out and out[k] is not None:
            out[k] = int(out[k])
    for k in ("sample_rate_hz", "snr_db"):
        if k in out and out[k] is not None:
            out[k] = float(out[k])
    return out


def build_replay(spec: str | dict, rng: np.random.Generator) -> ChannelModel:
    """The channel of a replay spec (see :func:`parse_replay_spec`): a :class:`ReplayChannel`.

    ``n_tx``/``n_rx``, when given, must match the recording, or its transpose (then the recording is
    played transposed: a recording of A -> B used for B -> A, the reciprocal direction). With
    ``snr_db`` the recorded noise is replaced by AWGN at that SNR (measured at the receiver, see
    [Note: SNR reference] in hil.channel.awgn).
    """
    s = parse_replay_spec(spec)
    noise = s.get("noise", "none" if s.get("snr_db") is not None else "recorded")
    ch = ReplayChannel.from_recording(
        s["replay"], rng, recording=s.get("recording", 0), mode=s.get("mode", "frame"), noise=noise,
        loop=s.get("loop", True), normalize=s.get("normalize", False), sample_rate_hz=s.get("sample_rate_hz"),
        lo_step=s.get("lo_step"),
    )
    want = (s.get("n_tx", ch.n_in), s.get("n_rx", ch.n_out))
    if want != (ch.n_in, ch.n_out):
        if want == (ch.n_out, ch.n_in):
            ch = ch.reverse()
        else:
            raise ValueError(
                f"replay {s['replay']}: the recording is {ch.n_in} tx -> {ch.n_out} rx antennas, the link needs "
                f"{want[0]} -> {want[1]}; record with matching antennas"
            )
    if s.get("snr_db") is not None:
        from hil.channel.awgn import AWGN, Chain

        return Chain([ch, AWGN(ch.n_out, rng, snr_db=s["snr_db"], reference="rx")])
    return ch


def is_replay_spec(spec) -> bool:
    """True for ``"replay:..."`` strings and dicts with a ``replay`` key."""
    return (isinstance(spec, str) and spec.startswith("replay:")) or (isinstance(spec, dict) and "replay" in spec)


class ReplayLink:
    """A reciprocal pair from one recording: ``forward`` plays it, ``reverse`` plays it transposed.

    What ``build_reciprocal_link`` returns for a replay spec (the channel server uses ``forward`` and
    ``reverse``). Each direction has its own clock (one slot per burst in frame mode).
    """

    def __init__(self, forward: ReplayChannel | ChannelModel, reverse: ChannelModel):
        self.forward = forward
        self.reverse = reverse


def build_replay_link(spec: str | dict, rng: np.random.Generator) -> ReplayLink:
    """A :class:`ReplayLink` from a replay spec (``n_a``/``n_b`` accepted as ``n_tx``/``n_rx``)."""
    s = parse_replay_spec(spec) if isinstance(spec, str) else dict(spec)
    for k, alias in (("n_a", "n_tx"), ("n_b", "n_rx")):
        if k in s:
            s[alias] = s.pop(k)
    fwd = build_replay(s, rng)
    inner = fwd.stages[0] if hasattr(fwd, "stages") else fwd
    rev: ChannelModel = inner.reverse()
    if hasattr(fwd, "stages"):  # snr_db: AWGN at the far end too
        from hil.channel.awgn import AWGN, Chain

        rev = Chain([rev, AWGN(rev.n_out, rng, snr_db=s["snr_db"], reference="rx")])
    return ReplayLink(fwd, rev)
