"""Channel recordings as SigMF: the atomic writer and the validator (the reader is :mod:`hil._sigmf`).

See [Note: hil SigMF extension] in :mod:`hil._sigmf` for the layout.

[Note: atomic recordings]
A recording is written under temporary names (``.NAME.*.partial*`` in the same directory) and only
renamed into place by :meth:`RecordingWriter.close`: first the dataset (streamed to its temporary
file while recording), then the channel-estimate array, the ``.sigmf-meta`` last, each fsync'ed
before its rename and the folder after it (the last two through ``hil._io.atomic_write``). A recording therefore exists
exactly when its ``.sigmf-meta`` exists, and then its dataset and companion are complete and match
the checksums inside it. An interrupted writer removes its ``*.partial*`` files (also when a second
Ctrl-C lands in the cleanup, see [Note: cleanup survives a second Ctrl-C]); files a killed process
leaves are deleted by :func:`remove_partials` and ignored by every reader.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np

from hil import _sigmf as K
from hil._io import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir, json_safe
from hil._sigmf import (  # the one reader of recordings lives below hil.channel, which replays them
    DATA_EXT,
    META_EXT,
    PARTIAL,
    FrameTable,
    Recording,
    list_recordings,
    load_recording,
    load_recordings,
    meta_path_of,
    recording_problems,
)
from hil.errors import CaptureError

log = logging.getLogger(__name__)

__all__ = [
    "DATA_EXT", "META_EXT", "PARTIAL", "FrameTable", "Recording", "RecordingWriter", "list_recordings",
    "load_recording", "load_recordings", "remove_partials", "validate_recording", "write_per_antenna",
]

#: Keys of a frame annotation that describe the whole MIMO frame and stay valid on one antenna's
#: copy (``hil:frame`` is dropped: it indexes the companion array, which only the multi-channel
#: recording has).
_PER_ANTENNA_ANN_KEYS = ("core:sample_start", "core:sample_count", "core:freq_lower_edge", "core:freq_upper_edge",
                         "core:label", K.SLOT, K.T_S, K.SNR_DB, K.CFO_HZ, K.TIMING, K.NOISE_VAR, K.ESTIMATE_VAR)



def utc_now_iso() -> str:
    """The current UTC time as SigMF wants it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        # [Note: annotation frequency edges] the edges are the recorded band, LO +- sample rate / 2:
        # the sounding frame lies inside it, and viewers (inspectrum, sigmf's) draw an annotation
        # without edges with zero height
        lo = self._captures[-1].get("core:frequency")
        edges = {} if lo is None else {"core:freq_lower_edge": float(lo) - self.sample_rate_hz / 2,
                                       "core:freq_upper_edge": float(lo) + self.sample_rate_hz / 2}
        self._annotations.append(
            json_safe(
                {
                    "core:sample_start": start + fs,
                    "core:sample_count": max(n, 0),
                    **edges,
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
        try:
            return self._finish(stopped)
        except BaseException:  # a second Ctrl-C while finishing, a full disk, an invalid metadata
            self._drop()
            raise

    def _finish(self, stopped: dict | None) -> Path | None:
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
                K.N_SAMPLES: self._n_samples,
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
        self._drop()

    def _drop(self) -> None:
        """Remove what an unfinished recording left: its ``*.partial*`` files and, unless its metadata
        was written (then the recording is complete), the dataset and companion already renamed into
        place. Runs with SIGINT/SIGTERM deferred (see [Note: cleanup survives a second Ctrl-C])."""
        with signals_deferred():
            if not self._data_f.closed:
                self._data_f.close()
            self._closed = True
            for p in self.dir.glob(f".{self.name}*{PARTIAL}*"):
                p.unlink(missing_ok=True)
            if not self.meta_path.exists():
                for p in (self.dir / f"{self.name}{DATA_EXT}", self.dir / f"{self.name}{K.CHANNEL_SUFFIX}"):
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


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back while the block runs; they are handled when it ends.

    [Note: cleanup survives a second Ctrl-C]
    ``hil capture`` turns the first Ctrl-C into a stop flag and a second one into KeyboardInterrupt,
    which Python raises between any two bytecodes, also inside an ``except``/``finally`` that is
    removing a 48 MB ``.partial`` file. The writer's cleanup therefore swaps the Python handlers of
    both signals for one that only records them, and calls the previous handler for each recorded
    signal once the files are gone (the default action where there was no Python handler). A kernel
    mask (``pthread_sigmask``) would not do: it blocks the signal in the main thread only, so the
    kernel hands a process-directed signal to another thread (BLAS, I/O), whose C handler then
    trips Python's handler in the main thread at an arbitrary later point. Only in the main thread
    (handlers cannot be installed elsewhere). A partial file a ``kill -9`` leaves is removed by the
    next ``run_capture`` in that folder (:func:`remove_partials`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    prev = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in prev:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, h in prev.items():
            signal.signal(s, h)
        for signum in caught:
            h = prev[signum]
            if callable(h):
                h(signum, None)
            elif h == signal.SIG_DFL:
                signal.raise_signal(signum)


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


def validate_recording(path: str | Path) -> list[str]:
    """Every problem of one recording, one line each; empty when it is valid.

    First hil's own checks (:func:`hil._sigmf.recording_problems`: the metadata's shape and types,
    every file it names inside the folder and present, the dataset's size against datatype x channels
    x samples, the companion's checksum, shape and finite values, unique frame indices). Only a
    recording that passes them goes to what ``sigmf_validate`` runs (``sigmffile.fromfile`` with the
    dataset checksum, then ``SigMFFile.validate`` against the SigMF JSON schema), with an undeclared
    extension namespace treated as an error.
    """
    import warnings

    from sigmf import sigmffile

    meta_path = meta_path_of(path)
    problems = recording_problems(meta_path)
    if problems:
        return problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            sf = sigmffile.fromfile(str(meta_path), skip_checksum=False)
            sf.validate()
    # [Note: sigmf on untrusted metadata] sigmf-python is a third-party parser handed a file from
    # elsewhere; whatever it raises on it (schema errors, its own SigMFError, and TypeError/KeyError on
    # shapes its schema code does not expect) is a problem of the recording, reported as one line.
    except Exception as e:  # noqa: BLE001
        msg = " ".join(str(e).split())
        problems.append(f"sigmf: {type(e).__name__}: {msg[:300]}")
    return problems


def write_per_antenna(meta_path: str | Path, out_dir: str | Path) -> Path:
    """Write one single-channel recording per receive antenna of a finished recording, tied by a
    SigMF Collection; return the ``.sigmf-collection`` path.

    [Note: per-antenna layout]
    SigMF stores a multi-antenna recording interleaved (``core:num_channels`` > 1), which tools
    that read one stream (inspectrum, many GNU Radio blocks) show as one stream at twice the rate
    with annotations at twice their index. ``hil capture --layout per-antenna`` therefore also
    writes, in ``out_dir``, ``NAME-rxK.sigmf-meta/-data`` (one antenna each, ``hil:antenna`` = K,
    ``hil:source`` = NAME) and ``NAME.sigmf-collection`` whose ``core:streams`` lists them with the
    sha512 of each metadata file (sigmf-python's ``SigMFCollection`` computes them). The capture
    segments and the frame annotations are copied (they are per frame, not per antenna); the
    channel-estimate companion stays with the multi-channel recording, which ``hil capture
    inspect`` and ``replay:`` read. Files are written atomically, the collection last.
    """
    import warnings

    from sigmf import SigMFCollection

    src = meta_path_of(meta_path)
    rec = load_recording(src)  # checked: sizes, checksums, every field
    meta = rec.metadata
    g = meta["global"]
    n_ch = int(g.get("core:num_channels", 1))
    name = src.name[: -len(META_EXT)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = rec.samples()  # complex64 (n_rx, n)
    names = []
    keep_global = {k: v for k, v in g.items() if k.startswith("core:") and k not in ("core:sha512", "core:num_channels",
                                                                                     "core:dataset")}
    for k in range(n_ch):
        stem = f"{name}-rx{k}"
        data = np.ascontiguousarray(x[k]).astype(np.complex64).tobytes()
        one = {
            "global": {**keep_global, "core:num_channels": 1, "core:sha512": hashlib.sha512(data).hexdigest(),
                       "core:description": f"{g.get('core:description', name)}; receive antenna {k} of {n_ch}",
                       K.N_TX: g.get(K.N_TX), K.N_RX: g.get(K.N_RX), K.ANTENNA: k, K.SOURCE: name,
                       K.N_SAMPLES: int(x.shape[1]), K.COMPLETE: g.get(K.COMPLETE, True)},
            "captures": meta.get("captures", []),
            "annotations": [{a: ann[a] for a in _PER_ANTENNA_ANN_KEYS if a in ann}
                            for ann in meta.get("annotations", [])],
        }
        one = json_safe(one)
        _validate_meta_dict(one)
        atomic_write_bytes(out / f"{stem}{DATA_EXT}", data)
        atomic_write_json(out / f"{stem}{META_EXT}", one)
        names.append(f"{stem}{META_EXT}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        coll = SigMFCollection(metafiles=names, base_path=out, metadata={"collection": {
            "core:description": f"{name}: one recording per receive antenna ({n_ch})",
            "core:extensions": g.get("core:extensions", []),
            K.ANTENNA: list(range(n_ch)), K.SOURCE: name}})
    path = out / f"{name}.sigmf-collection"
    atomic_write_text(path, coll.dumps(pretty=True) + "\n")
    return path
