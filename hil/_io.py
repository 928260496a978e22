"""File helpers shared by every part: atomic writes, JSON of numpy values, config files.

[Note: atomic writes]
Every result a run leaves behind (report.json, report.md, a checkpoint, a recording's metadata, the
resolved config) is written to a temporary name in the same folder, flushed and fsync'ed, renamed over
the final name, and the folder is fsync'ed, so a crash or Ctrl-C leaves either the old file or the
new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, Callable, IO

import numpy as np

from hil.errors import ConfigError


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically (see [Note: atomic writes]); ``write(f)`` fills a binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(v: Any) -> Any:
    """``v`` with numpy scalars/arrays turned into plain Python, and NaN/Inf into None (strict JSON)."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, complex):
        return {"re": json_safe(v.real), "im": json_safe(v.imag)}
    if isinstance(v, Path):
        return str(v)
    return v


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as strict, indented JSON (via :func:`json_safe`) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def load_mapping(path: str | Path, what: str = "config") -> dict:
    """Read a TOML or JSON file (by suffix; TOML otherwise) into a dict.

    Raises ConfigError naming the file and the problem (missing, unreadable, not valid TOML/JSON,
    not a table at the top level).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError as e:
        raise ConfigError(f"{what} file {str(p)!r} does not exist; check the path") from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} file {str(p)!r}: {e}") from e
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{what} file {str(p)!r} is not valid {kind}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {str(p)!r}: expected a table/object at the top level")
    return data
