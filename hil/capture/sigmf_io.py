"""Channel recordings as SigMF: an atomic writer, a reader and a validator.

See [Note: hil SigMF extension] in :mod:`hil.capture.keys` for the layout.

[Note: atomic recordings]
A recording is written under temporary names (``.NAME.*.partial*`` in the same directory) and only
renamed into place by :meth:`RecordingWriter.close`: first the dataset (streamed to its temporary
file while recording), then the channel-estimate array, the ``.sigmf-meta`` last, each fsync'ed
before its rename and the folder after it (the last two through ``hil._io.atomic_write``). A recording therefore exists
exactly when its ``.sigmf-meta`` exists, and then its dataset and companion are complete and match
the checksums inside it. An interrupted writer leaves only ``*.partial*`` files, which
:func:`remove_partials` deletes and every reader ignores.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil._io import atomic_write_bytes, atomic_write_json, fsync_dir, json_safe
from hil.capture import keys as K
from hil.errors import CaptureError

log = logging.getLogger(__name__)

META_EXT = ".sigmf-meta"
DATA_EXT = ".sigmf-data"
PARTIAL = ".partial"


def utc_now_iso() -> str:
    """The current UTC time as SigMF wants it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha512_file(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RecordingWriter:
    """Writes one channel recording atomically (see [Note: atomic recordings]).

    Usage: ``begin_capture`` once per LO step, then ``add_burst`` for every sounding burst (with its
    frame's estimate, or ``None`` when no frame was detected in it), then ``close``. ``abort``
    (also called by ``__exit__`` on an exception) removes the partial files.

    Args:
        out_dir: directory of the recording (created if missing).
        name: base name, e.g. ``"rec000"``; files are ``NAME.sigmf-meta``, ``NAME.sigmf-data``,
            ``NAME.hil-channel.npy``.
        sample_rate_hz: sample rate of the IQ, Hz.
        n_rx: receive antennas = ``core:num_channels``.
        n_tx: transmit antennas of the sounder.
        hw: ``core:hw`` text (radio and antennas).
        description: ``core:description`` text.
        sounder: the sounder's parameters (JSON-serialisable), stored under ``hil:sounder``.
        extra_global: more ``hil:`` global fields (keys must start with ``hil:``).
    """

    def __init__(
        self,
        out_dir: str | Path,
        name: str,
        *,
        sample_rate_hz: float,
        n_rx: int,
        n_tx: int,
        hw: str = "",
        description: str = "",
        sounder: dict | None = None,
        extra_global: dict | None = None,
    ):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"recording name {name!r} must be a plain file name (no '/', no leading '.')")
        if not sample_rate_hz > 0:
            raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
        if n_rx < 1 or n_tx < 1:
            raise ValueError(f"n_rx and n_tx must be >= 1, got {n_rx}, {n_tx}")
        for k in extra_global or {}:
            if not k.startswith(K.NAMESPACE + ":"):
                raise ValueError(f"extra_global key {k!r} must be in the 'hil:' namespace")
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.meta_path = self.dir / f"{name}{META_EXT}"
        if self.meta_path.exists():
            raise CaptureError(f"recording {self.meta_path} already exists; choose another --out directory")
        self.sample_rate_hz = float(sample_rate_hz)
        self.n_rx, self.n_tx = int(n_rx), int(n_tx)
        self._global = {
            "core:datatype": "cf32_le",
            "core:version": "1.2.0",
            "core:sample_rate": self.sample_rate_hz,
            "core:num_channels": self.n_rx,
            "core:recorder": "hil capture",
            "core:hw": hw or "unknown",
            "core:description": description or "channel sounding recording",
            "core:extensions": [{"name": K.NAMESPACE, "version": K.EXTENSION_VERSION, "optional": True}],
            K.N_TX: self.n_tx,
            K.N_RX: self.n_rx,
            K.SOUNDER: json_safe(sounder or {}),
            **json_safe(extra_global or {}),
        }
        self._captures: list[dict] = []
        self._annotations: list[dict] = []
        self._estimates: list[np.ndarray] = []
        self._n_samples = 0
        self._hash = hashlib.sha512()
        self._data_tmp = self.dir / f".{name}{DATA_EXT}{PARTIAL}"
        self._data_f = open(self._data_tmp, "wb")
        self._closed = False

    # ------------------------------------------------------------------ writing
    @property
    def n_frames(self) -> int:
        return len(self._estimates)

    @property
    def n_samples(self) -> int:
        return self._n_samples

    def begin_capture(
        self, *, lo_hz: float, lo_step: int, tx_gain_db: float | None = None,
        rx_gain_db: float | None = None, datetime: str | None = None, rf_applied: bool | None = None,
    ) -> None:
        """Start a capture segment (one LO step) at the current end of the dataset."""
        self._check_open()
        seg = {
            "core:sample_start": self._n_samples,
            "core:frequency": float(lo_hz),
            "core:datetime": datetime or utc_now_iso(),
            K.LO_STEP: int(lo_step),
        }
        if tx_gain_db is not None:
            seg[K.TX_GAIN_DB] = float(tx_gain_db)
        if rx_gain_db is not None:
            seg[K.RX_GAIN_DB] = float(rx_gain_db)
        if rf_applied is not None:
            seg[K.RF_APPLIED] = bool(rf_applied)
        if self._captures and self._captures[-1]["core:sample_start"] == self._n_samples:
            self._captures[-1] = seg  # the previous segment got no samples: replace it
        else:
            self._captures.append(seg)

    def add_burst(
        self,
        samples: np.ndarray,
        estimate: np.ndarray | None = None,
        *,
        frame_start: int = 0,
        frame_len: int | None = None,
        slot: int = 0,
        t_s: float = 0.0,
        snr_db: float = float("nan"),
        cfo_hz: float = float("nan"),
        noise_var: float = float("nan"),
        estimate_var: float = 0.0,
        label: str = "sounding frame",
    ) -> None:
        """Append one received burst and, when a frame was detected in it, its annotation and estimate.

        Args:
            samples: complex64 ``(n_rx, m)``, the raw capture of the burst.
            estimate: complex ``[n_sc, n_rx, n_tx]`` (or ``[n_rx, n_tx]`` for one subcarrier), or
                ``None`` when no frame was detected (the IQ is kept, no annotation is made).
            frame_start: sample index of the frame start inside ``samples``.
            frame_len: frame length in samples (annotation's ``core:sample_count``); default: to the end.
            slot, t_s, snr_db, cfo_hz, noise_var, estimate_var: see :mod:`hil.capture.keys`.
        """
        self._check_open()
        if not self._captures:
            raise CaptureError("add_burst before begin_capture: call begin_capture(lo_hz=..., lo_step=...) first")
        x = np.asarray(samples)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] != self.n_rx:
            raise ValueError(f"samples: expected shape ({self.n_rx}, m), got {x.shape}")
        x = x.astype(np.complex64, copy=False)
        buf = np.ascontiguousarray(x.T).tobytes()  # interleaved across channels: s0c0 s0c1 ... s1c0 ...
        self._data_f.write(buf)
        self._hash.update(buf)
        start = self._n_samples
        self._n_samples += x.shape[1]
        if estimate is None:
            return
        h = np.asarray(estimate, dtype=np.complex64)
        if h.ndim == 2:
            h = h[None]
        if h.ndim != 3 or h.shape[1:] != (self.n_rx, self.n_tx):
            raise ValueError(f"estimate: expected [n_sc, {self.n_rx}, {self.n_tx}], got {h.shape}")
        if self._estimates and h.shape != self._estimates[0].shape:
            raise ValueError(f"estimate shape {h.shape} differs from earlier frames' {self._estimates[0].shape}")
        fs = int(np.clip(frame_start, 0, max(x.shape[1] - 1, 0)))
        n = x.shape[1] - fs if frame_len is None else int(min(frame_len, x.shape[1] - fs))
        self._annotations.append(
            json_safe(
                {
                    "core:sample_start": start + fs,
                    "core:sample_count": max(n, 0),
                    "core:label": label,
                    K.FRAME: len(self._estimates),
                    K.SLOT: int(slot),
                    K.T_S: float(t_s),
                    K.SNR_DB: float(snr_db),
                    K.CFO_HZ: float(cfo_hz),
                    K.TIMING: int(frame_start),
                    K.NOISE_VAR: float(noise_var),
                    K.ESTIMATE_VAR: float(estimate_var),
                }
            )
        )
        self._estimates.append(h)

    # ------------------------------------------------------------------ finishing
    def close(self, stopped: dict | None = None) -> Path | None:
        """Finish the recording atomically and return its ``.sigmf-meta`` path.

        Returns ``None`` (and leaves nothing behind) when no sample was written.
        ``stopped`` (e.g. ``{"reason": "SIGINT", "lo_step": 1, "slot": 40}``) is stored under
        ``hil:stopped`` when the recording was cut short.
        """
        self._check_open()
        self._data_f.flush()
        os.fsync(self._data_f.fileno())
        self._data_f.close()
        self._closed = True
        if self._n_samples == 0:
            self._data_tmp.unlink(missing_ok=True)
            return None
        captures = [c for i, c in enumerate(self._captures)
                    if i == len(self._captures) - 1 or self._captures[i + 1]["core:sample_start"] > c["core:sample_start"]]
        if captures and captures[-1]["core:sample_start"] >= self._n_samples and len(captures) > 1:
            captures = captures[:-1]  # trailing empty segment
        n_sc = self._estimates[0].shape[0] if self._estimates else 1
        est = (np.stack(self._estimates) if self._estimates
               else np.zeros((0, n_sc, self.n_rx, self.n_tx), np.complex64))
        npy_name = f"{self.name}{K.CHANNEL_SUFFIX}"
        buf = io.BytesIO()
        np.save(buf, est, allow_pickle=False)
        npy_bytes = buf.getvalue()
        meta = {
            "global": {
                **self._global,
                "core:sha512": self._hash.hexdigest(),
                K.CHANNEL_FILE: npy_name,
                K.CHANNEL_SHA512: hashlib.sha512(npy_bytes).hexdigest(),
                K.CHANNEL_SHAPE: list(est.shape),
                K.COMPLETE: stopped is None,
            },
            "captures": captures,
            "annotations": self._annotations,
        }
        if stopped is not None:
            meta["global"][K.STOPPED] = json_safe(stopped)
        meta = json_safe(meta)  # strict JSON as sigmf expects (NaN/Inf -> null)
        _validate_meta_dict(meta)
        # order of [Note: atomic recordings]: the dataset, then the companion, the metadata last;
        # each one fsync'ed, renamed and its folder fsync'ed (hil._io.atomic_write)
        os.replace(self._data_tmp, self.dir / f"{self.name}{DATA_EXT}")  # data fsync'ed above
        fsync_dir(self.dir)
        atomic_write_bytes(self.dir / npy_name, npy_bytes)
        atomic_write_json(self.meta_path, meta)
        log.info("wrote %s: %d samples, %d frames", self.meta_path, self._n_samples, len(self._estimates))
        return self.meta_path

    def abort(self) -> None:
        """Drop the recording: remove its partial files. Idempotent."""
        if not self._closed:
            self._data_f.close()
            self._closed = True
        for p in self.dir.glob(f".{self.name}*{PARTIAL}*"):
            p.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._closed:
            raise CaptureError(f"recording {self.name} is already closed")

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._closed:
            if exc_type is not None:
                self.abort()
            else:
                self.close()


def _validate_meta_dict(meta: dict) -> None:
    """Check a metadata dict against sigmf's schema (raises CaptureError naming the problem)."""
    import warnings

    import jsonschema
    from sigmf import validate as sigmf_validate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # undeclared extension -> error
            sigmf_validate.validate(meta)
    except (jsonschema.exceptions.ValidationError, DeprecationWarning) as e:
        raise CaptureError(f"SigMF metadata is invalid: {e}") from e


def remove_partials(directory: str | Path) -> list[Path]:
    """Delete the ``*.partial`` files an interrupted writer left in ``directory``; return them."""
    # the writer's own ``.NAME.sigmf-data.partial`` and hil._io.atomic_write's ``.NAME.partialPID``
    gone = sorted(Path(directory).glob(f".*{PARTIAL}*"))
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Per-frame values of a recording, one entry per detected frame (arrays of length F)."""

    slot: np.ndarray  # int64 [F]
    t_s: np.ndarray  # float64 [F], s since the start of the recording
    snr_db: np.ndarray  # float64 [F]
    cfo_hz: np.ndarray  # float64 [F]
    timing: np.ndarray  # int64 [F]
    noise_var: np.ndarray  # float64 [F], per sample per rx antenna
    estimate_var: np.ndarray  # float64 [F], per channel coefficient
    lo_hz: np.ndarray  # float64 [F], LO of the capture segment holding the frame
    lo_step: np.ndarray  # int64 [F]
    sample_start: np.ndarray  # int64 [F], in the dataset


@dataclass(frozen=True, eq=False)
class Recording:
    """A channel recording loaded back.

    Attributes:
        meta_path: the ``.sigmf-meta`` file.
        name: base name.
        sample_rate_hz: IQ sample rate, Hz.
        n_rx, n_tx: antennas.
        estimates: complex64 ``[F, n_sc, n_rx, n_tx]``, one channel estimate per detected frame.
        frames: per-frame values (:class:`FrameTable`).
        metadata: the whole SigMF metadata dict.
    """

    meta_path: Path
    name: str
    sample_rate_hz: float
    n_rx: int
    n_tx: int
    estimates: np.ndarray
    frames: FrameTable
    metadata: dict = field(repr=False)

    @property
    def n_frames(self) -> int:
        return int(self.estimates.shape[0])

    @property
    def global_info(self) -> dict:
        return self.metadata["global"]

    @property
    def captures(self) -> list[dict]:
        return self.metadata["captures"]

    def samples(self, start: int = 0, count: int = -1) -> np.ndarray:
        """Raw IQ, complex64 ``(n_rx, count)`` (read through sigmf)."""
        from sigmf import sigmffile

        sf = sigmffile.fromfile(str(self.meta_path), skip_checksum=True)
        x = np.asarray(sf.read_samples(start_index=start, count=count))
        x = x.reshape(-1, self.n_rx) if x.ndim == 1 else x
        return np.ascontiguousarray(x.T).astype(np.complex64)


def list_recordings(directory: str | Path) -> list[Path]:
    """The ``.sigmf-meta`` files of complete recordings in ``directory`` (or the file itself), sorted."""
    p = Path(directory)
    if p.is_file() and p.name.endswith(META_EXT):
        return [p]
    if p.is_dir():
        return sorted(q for q in p.glob(f"*{META_EXT}") if not q.name.startswith("."))
    raise CaptureError(f"{p} is neither a capture directory nor a {META_EXT} file; pass the --out DIR of a capture")


def _base(path: Path) -> Path:
    s = str(path)
    for ext in (META_EXT, DATA_EXT):
        if s.endswith(ext):
            return Path(s[: -len(ext)])
    return path


def load_recording(path: str | Path, verify: bool = True) -> Recording:
    """Load one recording (``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``).

    With ``verify`` the companion's checksum and shape are checked against the metadata (the dataset's
    own checksum is checked by :func:`validate_recording`). Raises CaptureError when something is missing
    or does not match.
    """
    base = _base(Path(path))
    meta_path = Path(str(base) + META_EXT)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CaptureError(f"cannot read {meta_path}: {e}; is this a complete recording?") from e
    g = meta.get("global", {})
    if K.CHANNEL_FILE not in g:
        raise CaptureError(f"{meta_path} has no {K.CHANNEL_FILE}: not a hil channel recording")
    npy = meta_path.parent / g[K.CHANNEL_FILE]
    if not npy.exists():
        raise CaptureError(f"{meta_path} names {npy.name}, which is missing")
    if verify and _sha512_file(npy) != g.get(K.CHANNEL_SHA512):
        raise CaptureError(f"{npy} does not match {K.CHANNEL_SHA512} in {meta_path.name}: the file is corrupted")
    est = np.load(npy, allow_pickle=False)
    if list(est.shape) != list(g.get(K.CHANNEL_SHAPE, [])):
        raise CaptureError(f"{npy.name} has shape {est.shape}, metadata says {g.get(K.CHANNEL_SHAPE)}")
    anns = [a for a in meta.get("annotations", []) if K.FRAME in a]
    anns.sort(key=lambda a: a[K.FRAME])
    if len(anns) != est.shape[0]:
        raise CaptureError(f"{meta_path.name}: {len(anns)} frame annotations but {est.shape[0]} estimates")
    caps = meta.get("captures", [])
    cap_starts = np.array([c["core:sample_start"] for c in caps], dtype=np.int64)

    def col(key, dtype, default=np.nan):
        return np.array([default if a.get(key) is None else a.get(key) for a in anns], dtype=dtype)

    starts = col("core:sample_start", np.int64, 0)
    ci = np.clip(np.searchsorted(cap_starts, starts, side="right") - 1, 0, max(len(caps) - 1, 0))
    frames = FrameTable(
        slot=col(K.SLOT, np.int64, 0),
        t_s=col(K.T_S, np.float64),
        snr_db=col(K.SNR_DB, np.float64),
        cfo_hz=col(K.CFO_HZ, np.float64),
        timing=col(K.TIMING, np.int64, 0),
        noise_var=col(K.NOISE_VAR, np.float64),
        estimate_var=col(K.ESTIMATE_VAR, np.float64, 0.0),
        lo_hz=np.array([caps[i].get("core:frequency", np.nan) for i in ci], np.float64) if caps else np.full(len(anns), np.nan),
        lo_step=np.array([caps[i].get(K.LO_STEP, 0) for i in ci], np.int64) if caps else np.zeros(len(anns), np.int64),
        sample_start=starts,
    )
    return Recording(
        meta_path=meta_path,
        name=base.name,
        sample_rate_hz=float(g.get("core:sample_rate", 0.0)),
        n_rx=int(g.get("core:num_channels", 1)),
        n_tx=int(g.get(K.N_TX, est.shape[-1] if est.ndim == 4 else 1)),
        estimates=est.astype(np.complex64, copy=False),
        frames=frames,
        metadata=meta,
    )


def load_recordings(directory: str | Path, verify: bool = True) -> list[Recording]:
    """Every complete recording in ``directory`` (see :func:`list_recordings`)."""
    paths = list_recordings(directory)
    if not paths:
        raise CaptureError(f"no {META_EXT} recording in {directory}; run `hil capture` first")
    return [load_recording(p, verify=verify) for p in paths]


def validate_recording(path: str | Path) -> list[str]:
    """Validate one recording with sigmf's own reader and validator, then the ``hil:`` companion.

    Runs what ``sigmf_validate`` runs (``sigmffile.fromfile`` with the dataset checksum, then
    ``SigMFFile.validate`` against the SigMF JSON schema), treats an undeclared extension namespace as
    an error, and checks the companion array (checksum, shape, one estimate per frame annotation).

    Returns:
        A list of problems; empty when the recording is valid.
    """
    import warnings

    import jsonschema
    from sigmf import error as sigmf_error
    from sigmf import sigmffile

    meta_path = Path(str(_base(Path(path))) + META_EXT)
    problems: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.filterwarnings("ignore", message="Data source does not contain an integer number")
            sf = sigmffile.fromfile(str(meta_path), skip_checksum=False)
            sf.validate()
        if sf.num_channels < 1:
            problems.append("core:num_channels < 1")
    except (jsonschema.exceptions.ValidationError, sigmf_error.SigMFError, json.JSONDecodeError,
            OSError, ValueError, DeprecationWarning) as e:  # ValueError: a truncated dataset
        problems.append(f"sigmf: {type(e).__name__}: {e}")
        return problems
    try:
        load_recording(meta_path, verify=True)
    except CaptureError as e:
        problems.append(str(e))
    return problems
