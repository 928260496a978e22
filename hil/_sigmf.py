"""Channel recordings as SigMF: the ``hil:`` extension's keys and the one reader of recordings.

This module sits below every layer that reads recordings: ``hil.channel.replay`` plays them back,
``hil.capture`` writes, validates and reports them. It imports only numpy and :mod:`hil.errors`.

[Note: hil SigMF extension]
A channel recording is a SigMF recording (``NAME.sigmf-meta`` + ``NAME.sigmf-data``, ``cf32_le``,
``core:num_channels`` = receive antennas, samples interleaved across channels as SigMF requires)
plus one companion array file ``NAME.hil-channel.npy`` named in the global object under
:data:`CHANNEL_FILE`. The companion holds the channel estimate of every detected frame,
complex64 ``[frames, subcarriers, n_rx, n_tx]`` (``subcarriers`` = 1 for a flat sounder), in the
order of the frame annotations. Its sha512 is stored under :data:`CHANNEL_SHA512` next to SigMF's
own ``core:sha512`` of the dataset. The namespace is declared in ``core:extensions`` as optional, so
any SigMF tool reads the IQ and ignores the rest.

Global: ``hil:channel_file``, ``hil:channel_sha512``, ``hil:channel_shape``, ``hil:n_tx``, ``hil:n_rx``,
``hil:n_samples`` (samples per channel in the dataset), ``hil:sounder`` (the sounder's parameters),
``hil:subcarrier_spacing_hz``, ``hil:radio``.
Capture segment (one per LO step): ``core:frequency``, ``core:datetime``, ``hil:lo_step``,
``hil:tx_gain_db``, ``hil:rx_gain_db``, ``hil:rf_applied`` (whether the radio was tuned to them).
Annotation (one per detected frame): ``hil:frame`` (row in the companion array), ``hil:slot``
(sounding slot index, consecutive slots are one frame interval apart; a missed frame leaves a gap),
``hil:t_s`` (time of the frame since the start of the recording), ``hil:snr_db``, ``hil:cfo_hz``,
``hil:timing`` (sample index of the frame start inside its burst), ``hil:noise_var`` (noise power
per sample per receive antenna, full-scale units), ``hil:estimate_var`` (variance of the channel
estimate's error per coefficient).

[Note: recordings are untrusted input]
Recordings travel between labs, so the reader treats a ``.sigmf-meta`` like a network message: the
file is size-capped before it is parsed, every field is type- and range-checked before it is used,
and every file name in it (``hil:channel_file``, SigMF's ``core:dataset``) must resolve inside the
recording's folder (``../x.npy`` and ``/etc/passwd`` are refused, symbolic links included). The
checks are collected, one line per problem, by :func:`recording_problems` (``hil capture inspect``
lists them); :func:`load_recording` raises one :class:`~hil.errors.CaptureError` naming them. No
JSON shape or byte string reaches numpy or sigmf unchecked, so a hostile file gives a clean error,
never a traceback. The dataset's size is checked against ``core:datatype`` x channels x samples
because ``core:sha512`` covers only the data: an edited datatype would otherwise pass.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hil.errors import CaptureError

# ---------------------------------------------------------------------- keys (no magic strings)
NAMESPACE = "hil"
EXTENSION_VERSION = "0.1.0"

CHANNEL_SUFFIX = ".hil-channel.npy"

# global
CHANNEL_FILE = "hil:channel_file"
CHANNEL_SHA512 = "hil:channel_sha512"
CHANNEL_SHAPE = "hil:channel_shape"
N_TX = "hil:n_tx"
N_RX = "hil:n_rx"
N_SAMPLES = "hil:n_samples"
SOUNDER = "hil:sounder"
SUBCARRIER_SPACING_HZ = "hil:subcarrier_spacing_hz"
RADIO = "hil:radio"
COMPLETE = "hil:complete"
STOPPED = "hil:stopped"

# capture segment
LO_STEP = "hil:lo_step"
TX_GAIN_DB = "hil:tx_gain_db"
RX_GAIN_DB = "hil:rx_gain_db"
RF_APPLIED = "hil:rf_applied"  # True: LO/gains were set on the radio; False: labels only (simulated radio)

# per-antenna layout (single-channel copies tied by a collection, hil.capture.sigmf_io.write_per_antenna)
ANTENNA = "hil:antenna"  # global: the receive antenna (0-based) a copy holds; collection: the list of them
SOURCE = "hil:source"  # global and collection: the multi-channel recording the copies come from

# annotation
FRAME = "hil:frame"
SLOT = "hil:slot"
T_S = "hil:t_s"
SNR_DB = "hil:snr_db"
CFO_HZ = "hil:cfo_hz"
TIMING = "hil:timing"
NOISE_VAR = "hil:noise_var"
ESTIMATE_VAR = "hil:estimate_var"

# ---------------------------------------------------------------------- files
META_EXT = ".sigmf-meta"
DATA_EXT = ".sigmf-data"
PARTIAL = ".partial"
DATATYPE = "cf32_le"  # what hil writes and reads
SAMPLE_BYTES = 8  # one cf32 sample of one channel
MAX_META_BYTES = 256 << 20  # a 100k-frame recording's metadata is about 40 MB


def sha512_file(path: Path) -> str:
    """Hex sha512 of a file, read in 1 MiB chunks."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def meta_path_of(path: str | Path) -> Path:
    """The ``.sigmf-meta`` of ``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``."""
    s = str(path)
    for ext in (META_EXT, DATA_EXT):
        if s.endswith(ext):
            return Path(s[: -len(ext)] + META_EXT)
    return Path(s + META_EXT)


def resolve_inside(folder: Path, name: Any, key: str, meta_path: Path) -> Path:
    """``folder / name`` for a file name read from ``meta_path``'s ``key``, if it stays inside ``folder``.

    Raises CaptureError for a non-string, an absolute path, ``..`` or a symbolic link leading out.
    """
    if not isinstance(name, str) or not name:
        raise CaptureError(f"{meta_path.name}: {key} must be a file name (a string), got {name!r}")
    root = folder.resolve()
    try:
        p = (root / name).resolve()
    except (OSError, ValueError) as e:  # a NUL byte, a symlink loop, a name too long
        raise CaptureError(f"{meta_path.name}: {key} = {name[:80]!r} is not a usable file name ({e})") from e
    if Path(name).is_absolute() or root not in p.parents:
        raise CaptureError(
            f"{meta_path.name}: {key} = {name[:200]!r} points outside the recording's folder {folder}; "
            "a recording names only files next to its .sigmf-meta"
        )
    return p


def _read_meta(meta_path: Path) -> dict | str:
    """The metadata object of a ``.sigmf-meta`` (size-capped, JSON, an object at the top), or what is wrong."""
    try:
        size = meta_path.stat().st_size
        if size > MAX_META_BYTES:
            return f"the metadata is {size} bytes, more than the {MAX_META_BYTES} a recording's metadata may be"
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        what = "nested too deeply" if isinstance(e, RecursionError) else f"{type(e).__name__}: {e}"
        return f"cannot read the metadata ({what}); is this a complete recording?"
    if not isinstance(meta, dict):
        return (f"the metadata is a JSON {_json_type(meta)}, expected an object with 'global', 'captures' and "
                "'annotations'; not a SigMF recording")
    return meta


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A JSON number that fits a float64 (NaN and infinity included: Python's json reads them)."""
    return isinstance(v, float) or (_is_int(v) and abs(v) <= 1 << 1000)


def _is_idx(v: Any) -> bool:
    """A JSON integer usable as a non-negative int64 index."""
    return _is_int(v) and 0 <= v < 1 << 62


# ---------------------------------------------------------------------- the recording


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
    """A channel recording loaded back (every field checked, see [Note: recordings are untrusted input]).

    Attributes:
        meta_path: the ``.sigmf-meta`` file.
        name: base name.
        sample_rate_hz: IQ sample rate, Hz.
        n_rx, n_tx: antennas.
        estimates: complex64 ``[F, n_sc, n_rx, n_tx]``, one channel estimate per detected frame.
        frames: per-frame values (:class:`FrameTable`).
        metadata: the whole SigMF metadata dict.
        data_path: the dataset file.
    """

    meta_path: Path
    name: str
    sample_rate_hz: float
    n_rx: int
    n_tx: int
    estimates: np.ndarray
    frames: FrameTable
    metadata: dict = field(repr=False)
    data_path: Path | None = None

    @property
    def n_frames(self) -> int:
        return int(self.estimates.shape[0])

    @property
    def global_info(self) -> dict:
        return self.metadata["global"]

    @property
    def captures(self) -> list[dict]:
        return self.metadata["captures"]

    @property
    def capture_starts(self) -> np.ndarray:
        """int64 ``[segments]``: ``core:sample_start`` of every capture segment."""
        return np.array([c["core:sample_start"] for c in self.captures], np.int64)

    @property
    def capture_lo_steps(self) -> np.ndarray:
        """int64 ``[segments]``: ``hil:lo_step`` of every capture segment (0 when absent)."""
        return np.array([c.get(LO_STEP, 0) for c in self.captures], np.int64)

    @property
    def frame_interval_s(self) -> float | None:
        """The sounder's frame interval, s (``None`` when not recorded)."""
        v = self.global_info.get(SOUNDER, {}).get("frame_interval_s")
        return float(v) if v else None

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
        return sorted(q for q in p.glob(f"*{META_EXT}") if not q.name.startswith(".") and q.is_file())
    raise CaptureError(f"{p} is neither a capture directory nor a {META_EXT} file; pass the --out DIR of a capture")


class _Problems(list):
    """Problems of one recording, one line each."""

    def need(self, ok: bool, msg: str) -> bool:
        if not ok:
            self.append(msg)
        return ok


def _check_global(g: dict, meta_path: Path, p: _Problems) -> dict:
    """Typed global fields (``None`` where a field is unusable; each problem recorded in ``p``)."""
    out: dict[str, Any] = {}
    dt = g.get("core:datatype")
    p.need(dt == DATATYPE, f"core:datatype is {dt!r}; hil recordings are {DATATYPE!r} (was the metadata edited?)")
    nch = g.get("core:num_channels", 1)
    out["n_rx"] = nch if p.need(_is_int(nch) and nch >= 1, f"core:num_channels must be an integer >= 1, got {nch!r}") else None
    if out["n_rx"] is not None and N_RX in g:
        p.need(g[N_RX] == nch, f"{N_RX} = {g[N_RX]!r} differs from core:num_channels = {nch}")
    fs = g.get("core:sample_rate")
    out["fs"] = float(fs) if p.need(_is_num(fs) and math.isfinite(fs) and fs > 0,
                                    f"core:sample_rate must be a number > 0, got {fs!r}") else None
    ntx = g.get(N_TX)
    out["n_tx"] = ntx if p.need(_is_int(ntx) and ntx >= 1, f"{N_TX} must be an integer >= 1, got {ntx!r}") else None
    ns = g.get(N_SAMPLES)
    out["n_samples"] = ns if ns is None or p.need(_is_int(ns) and ns >= 0, f"{N_SAMPLES} must be an integer >= 0, got {ns!r}") else None
    shape = g.get(CHANNEL_SHAPE)
    out["shape"] = tuple(shape) if p.need(
        isinstance(shape, list) and len(shape) == 4 and all(_is_int(v) and v >= 0 for v in shape),
        f"{CHANNEL_SHAPE} must be 4 integers >= 0 [frames, subcarriers, n_rx, n_tx], got {shape!r}") else None
    snd = g.get(SOUNDER, {})
    if p.need(isinstance(snd, dict), f"{SOUNDER} must be an object, got a JSON {_json_type(snd)}"):
        fi = snd.get("frame_interval_s")
        p.need(fi is None or (_is_num(fi) and math.isfinite(fi) and fi >= 0),
               f"{SOUNDER}.frame_interval_s must be a number >= 0 or null, got {fi!r}")
    p.need(isinstance(g.get(CHANNEL_SHA512), str), f"{CHANNEL_SHA512} must be a hex string, got {g.get(CHANNEL_SHA512)!r}")
    p.need(not g.get("core:metadata_only"), "core:metadata_only is set: a hil recording needs its dataset")
    p.need(not g.get("core:trailing_bytes"), "core:trailing_bytes is set: hil datasets have no trailing bytes")
    return out


def _check_files(g: dict, meta_path: Path, p: _Problems) -> tuple[Path | None, Path | None]:
    """The dataset and companion paths (inside the folder, existing), or None each with a problem."""
    folder = meta_path.parent
    data = Path(str(meta_path)[: -len(META_EXT)] + DATA_EXT)
    if "core:dataset" in g:
        try:
            data = resolve_inside(folder, g["core:dataset"], "core:dataset", meta_path)
        except CaptureError as e:
            p.append(str(e).partition(": ")[2])
            data = None
    if data is not None and not p.need(_is_file(data), f"the dataset {data.name} is missing"):
        data = None
    npy = None
    if p.need(CHANNEL_FILE in g, f"no {CHANNEL_FILE}: not a hil channel recording"):
        try:
            npy = resolve_inside(folder, g[CHANNEL_FILE], CHANNEL_FILE, meta_path)
        except CaptureError as e:
            p.append(str(e).partition(": ")[2])
        if npy is not None and not p.need(_is_file(npy), f"{CHANNEL_FILE} names {npy.name}, which is missing"):
            npy = None
    return data, npy


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system
        return False


def _check_list(meta: dict, key: str, p: _Problems) -> list[dict]:
    v = meta.get(key, [])
    if not p.need(isinstance(v, list), f"'{key}' must be an array, got a JSON {_json_type(v)}"):
        return []
    bad = [i for i, x in enumerate(v) if not isinstance(x, dict)]
    if not p.need(not bad, f"'{key}'[{bad[0] if bad else 0}] must be an object"):
        return []
    return v


def _check_captures(caps: list[dict], p: _Problems) -> bool:
    ok = True
    prev = -1
    for i, c in enumerate(caps):
        s = c.get("core:sample_start")
        if not p.need(_is_idx(s) and s >= prev,
                      f"captures[{i}].core:sample_start must be an integer >= 0, in order; got {s!r}"):
            ok = False
            break
        prev = s
        f, lo = c.get("core:frequency"), c.get(LO_STEP, 0)
        ok &= p.need(f is None or _is_num(f), f"captures[{i}].core:frequency must be a number, got {f!r}")
        ok &= p.need(_is_idx(lo), f"captures[{i}].{LO_STEP} must be an integer >= 0, got {lo!r}")
    return ok


_INT_COLS = ("core:sample_start", SLOT, TIMING)
_NUM_COLS = (T_S, SNR_DB, CFO_HZ, NOISE_VAR, ESTIMATE_VAR)


def _check_frames(anns: list[dict], p: _Problems) -> list[dict] | None:
    """The frame annotations in ``hil:frame`` order, or None when they cannot be used."""
    frames = [a for a in anns if FRAME in a]
    idx = [a[FRAME] for a in frames]
    if not p.need(all(_is_int(i) for i in idx), f"every {FRAME} must be an integer, got {sorted(set(map(repr, idx)))[:5]}"):
        return None
    dup = sorted(i for i, n in Counter(idx).items() if n > 1)
    if not p.need(not dup, f"duplicate frame indices {FRAME} {dup[:10]}"):
        return None
    if not p.need(sorted(idx) == list(range(len(idx))),
                  f"{FRAME} must number the frames 0..{len(idx) - 1}, got {sorted(idx)[:10]}"):
        return None
    frames = sorted(frames, key=lambda a: a[FRAME])
    ok = True
    for a in frames:
        for k in _INT_COLS:
            v = a.get(k, 0)
            ok &= p.need(_is_int(v) and (k == TIMING or v >= 0) and abs(v) < 1 << 62,
                         f"frame {a[FRAME]}: {k} must be an integer{' >= 0' if k != TIMING else ''}, got {v!r}")
        for k in _NUM_COLS:
            v = a.get(k)
            ok &= p.need(v is None or _is_num(v), f"frame {a[FRAME]}: {k} must be a number or null, got {v!r}")
        if not ok:
            return None
    slots = [a.get(SLOT, 0) for a in frames]
    if not p.need(all(b > a for a, b in zip(slots, slots[1:])),
                  f"{SLOT} must increase with {FRAME} (frames in recording order)"):
        return None
    return frames


def _load_npy(npy: Path, p: _Problems) -> np.ndarray | None:
    """An .npy array without pickles, its header checked against the file size before anything is allocated."""
    fmt = np.lib.format
    try:
        with open(npy, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _fortran, dtype = read(f)
            need = math.prod(shape) * dtype.itemsize
            have = npy.stat().st_size - f.tell()
            if dtype.hasobject or need != have:
                p.append(f"{npy.name}: its header says {dtype} {list(shape)} ({need} bytes), the file holds {have}"
                         if not dtype.hasobject else f"{npy.name} holds Python objects; expected complex64 numbers")
                return None
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError) as e:
        p.append(f"{npy.name} is not a readable .npy array ({type(e).__name__}: {e})")
        return None


def _check_estimates(npy: Path, g: dict, want: dict, verify: bool, p: _Problems) -> np.ndarray | None:
    if verify and isinstance(g.get(CHANNEL_SHA512), str) and sha512_file(npy) != g[CHANNEL_SHA512]:
        p.append(f"{npy.name} does not match {CHANNEL_SHA512}: the file is corrupted")
        return None
    est = _load_npy(npy, p)
    if est is None:
        return None
    if not p.need(np.iscomplexobj(est) and est.ndim == 4,
                  f"{npy.name} holds {est.dtype} {list(est.shape)}; expected complex [frames, subcarriers, n_rx, n_tx]"):
        return None
    if want["shape"] is not None:
        p.need(est.shape == want["shape"], f"{npy.name} has shape {list(est.shape)}, metadata says {list(want['shape'])}")
    if want["n_rx"] is not None:
        p.need(est.shape[2] == want["n_rx"],
               f"core:num_channels = {want['n_rx']} does not match the estimates' {est.shape[2]} receive antennas")
    if want["n_tx"] is not None:
        p.need(est.shape[3] == want["n_tx"], f"{N_TX} = {want['n_tx']} does not match the estimates' {est.shape[3]}")
    bad = ~np.isfinite(est).reshape(est.shape[0], int(np.prod(est.shape[1:]))).all(axis=1)
    p.need(not bad.any(), f"{int(bad.sum())} channel estimates hold NaN or Inf (frames {np.flatnonzero(bad)[:10].tolist()})")
    return est


def _check_data_size(data: Path, g: dict, n_rx: int, caps: list[dict], frames: list[dict] | None, p: _Problems) -> None:
    """The dataset's size against ``core:datatype`` x channels x samples (see the Note above)."""
    size = data.stat().st_size
    per = SAMPLE_BYTES * n_rx
    ns = g.get(N_SAMPLES)
    if _is_int(ns):
        p.need(size == ns * per, f"{data.name} is {size} bytes; {DATATYPE} x {n_rx} channels x {ns} samples "
                                  f"= {ns * per}: the dataset or the metadata was changed")
        n = ns
    else:
        n, rem = divmod(size, per)
        p.need(rem == 0, f"{data.name} is {size} bytes, not a whole number of {DATATYPE} samples x {n_rx} channels")
    ends = [c["core:sample_start"] for c in caps] + [
        a.get("core:sample_start", 0) + a.get("core:sample_count", 0) for a in (frames or [])
        if _is_int(a.get("core:sample_count", 0))]
    if ends:
        p.need(max(ends) <= n, f"the metadata reaches sample {max(ends)} but {data.name} holds {n} samples per channel")


def _inspect(path: str | Path, verify: bool, check_data: bool) -> tuple[Recording | None, list[str]]:
    meta_path = meta_path_of(path)
    p = _Problems()
    meta = _read_meta(meta_path)
    if isinstance(meta, str):
        return None, [meta]
    g = meta.get("global")
    if not p.need(isinstance(g, dict), f"'global' must be an object, got a JSON {_json_type(g)}"):
        return None, p
    want = _check_global(g, meta_path, p)
    data, npy = _check_files(g, meta_path, p)
    caps = _check_list(meta, "captures", p)
    caps_ok = _check_captures(caps, p)
    anns = _check_list(meta, "annotations", p)
    frames = _check_frames(anns, p)
    est = _check_estimates(npy, g, want, verify, p) if npy is not None else None
    if check_data and data is not None and want["n_rx"] is not None and caps_ok:
        _check_data_size(data, g, want["n_rx"], caps, frames, p)
    if est is not None and frames is not None:
        p.need(len(frames) == est.shape[0], f"{len(frames)} frame annotations but {est.shape[0]} estimates")
    if p:
        return None, p
    cap_starts = np.array([c["core:sample_start"] for c in caps], np.int64)

    def col(key, dtype, default=np.nan):
        return np.array([default if a.get(key) is None else a[key] for a in frames], dtype=dtype)

    starts = col("core:sample_start", np.int64, 0)
    ci = np.clip(np.searchsorted(cap_starts, starts, side="right") - 1, 0, max(len(caps) - 1, 0))
    table = FrameTable(
        slot=col(SLOT, np.int64, 0),
        t_s=col(T_S, np.float64),
        snr_db=col(SNR_DB, np.float64),
        cfo_hz=col(CFO_HZ, np.float64),
        timing=col(TIMING, np.int64, 0),
        noise_var=col(NOISE_VAR, np.float64),
        estimate_var=col(ESTIMATE_VAR, np.float64, 0.0),
        lo_hz=np.array([caps[i].get("core:frequency", np.nan) for i in ci], np.float64) if caps
        else np.full(len(frames), np.nan),
        lo_step=np.array([caps[i].get(LO_STEP, 0) for i in ci], np.int64) if caps else np.zeros(len(frames), np.int64),
        sample_start=starts,
    )
    rec = Recording(
        meta_path=meta_path, name=meta_path.name[: -len(META_EXT)], sample_rate_hz=want["fs"], n_rx=want["n_rx"],
        n_tx=want["n_tx"], estimates=est.astype(np.complex64, copy=False), frames=table, metadata=meta,
        data_path=data,
    )
    return rec, []


def recording_problems(path: str | Path) -> list[str]:
    """Every problem of one recording, one line each (empty: it can be loaded and replayed).

    Checks the metadata's shape and types, that every file it names is inside the folder and exists,
    the companion's checksum, shape and finiteness, unique frame indices, and the dataset's size
    against datatype x channels x samples. The dataset's own checksum is sigmf's (see
    ``hil.capture.sigmf_io.validate_recording``).
    """
    return _inspect(path, verify=True, check_data=True)[1]


def load_recording(path: str | Path, verify: bool = True) -> Recording:
    """Load one recording (``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``).

    With ``verify`` the companion's checksum is checked against the metadata and the dataset's size
    against its datatype (the dataset's own checksum is checked by ``validate_recording``).

    Raises:
        CaptureError: naming every problem found (see [Note: recordings are untrusted input]).
    """
    rec, problems = _inspect(path, verify=verify, check_data=verify)
    if problems:
        raise CaptureError(f"{meta_path_of(path)}: " + "; ".join(problems)
                           + " (`hil capture inspect DIR` lists every problem)")
    assert rec is not None
    return rec


def load_recordings(directory: str | Path, verify: bool = True) -> list[Recording]:
    """Every complete recording in ``directory`` (see :func:`list_recordings`)."""
    paths = list_recordings(directory)
    if not paths:
        raise CaptureError(f"no {META_EXT} recording in {directory}; run `hil capture` first")
    return [load_recording(p, verify=verify) for p in paths]
