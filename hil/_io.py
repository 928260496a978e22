"""File helpers shared by every part: atomic writes, JSON of numpy values, config files.

[Note: atomic writes]
Every result a run leaves behind (report.json, report.md, a checkpoint, a recording's metadata, the
resolved config) is written to a temporary name in the same folder, flushed and fsync'ed, renamed over
the final name, and the folder is fsync'ed, so a crash or Ctrl-C leaves either the old file or the
new one, never half of one.

[Note: config dialect]
Every config file of the package (training, BAIM, capture sweep, PHY, JMSNAS, placement and bench
topologies, Pluto profiles) is read by :func:`from_section`: one TOML/JSON table onto one frozen
dataclass. The dataclass is the schema: a field's annotation gives its type (``int``, ``float``,
``str``, ``bool``, ``tuple[X, ...]``, ``list[X]``, ``Literal[...]``, ``X | None``, ``dict``/``Mapping``,
``Any`` or a nested dataclass) and ``dataclasses.field(metadata={...})`` its range: ``ge``, ``gt``,
``le``, ``lt`` (numbers, or every item of a tuple/list), ``choices`` (a value or every item),
``min_items``, ``finite=False`` (allow NaN/Inf, rejected otherwise), ``scalar_ok=True`` (a single value
is taken as a one-item tuple). bool is not an
int (``true`` for an int field is an error) but an int is accepted for a float field. Every problem
is a :class:`ConfigError` ``"[section].key: what is wrong (got VALUE); valid: RANGE"``; unknown keys
list the valid ones. Checks that involve several fields stay in ``__post_init__``; a ValueError
raised there is re-raised as ConfigError prefixed with the section.
"""

from __future__ import annotations

import dataclasses as _dc
import functools
import json
import math
import os
import tomllib
import types as _types
import typing as _t
from collections.abc import Mapping as _Mapping
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
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} file {str(p)!r} is not UTF-8 text ({e}); is it the right file?") from e
    except FileNotFoundError as e:
        raise ConfigError(f"{what} file {str(p)!r} does not exist; check the path") from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} file {str(p)!r}: {e}") from e
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{what} file {str(p)!r} is not valid {kind}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {str(p)!r}: expected a table/object at the top level")
    return data


# ---------------------------------------------------------------- config sections -> frozen dataclasses

_NUMBER_KEYS = ("ge", "gt", "le", "lt")
_META_KEYS = set(_NUMBER_KEYS) | {"choices", "min_items", "finite", "scalar_ok"}
Mapping_t = _t.Mapping[str, Any]


def _show(v: Any, limit: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _type_name(tp: Any) -> str:
    origin = _t.get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is _t.Literal:
        return "one of " + ", ".join(map(repr, _t.get_args(tp)))
    if origin in (_t.Union, _types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in _t.get_args(tp))
    if origin in (tuple, list):
        return f"a list ({_type_name(_t.get_args(tp)[0])} each)" if _t.get_args(tp) else "a list"
    if _dc.is_dataclass(tp):
        return "a table"
    if tp in (dict, _Mapping) or origin in (dict, _Mapping):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _range_text(meta: Mapping_t) -> str:
    parts = []
    for key, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in meta:
            parts.append(f"{op} {meta[key]!r}")
    if "choices" in meta:
        parts.append("one of " + ", ".join(map(repr, meta["choices"])))
    return " and ".join(parts)



class _Bad(Exception):
    """Internal: what is wrong with one value (turned into a ConfigError naming the key)."""

    def __init__(self, what: str, valid: str = "") -> None:
        super().__init__(what)
        self.what, self.valid = what, valid


def _convert(tp: Any, v: Any, meta: Mapping_t, where: str) -> Any:
    """``v`` checked against the annotation ``tp`` and the range ``meta``; raises _Bad or ConfigError."""
    origin = _t.get_origin(tp)
    if tp is Any:
        return v
    if origin in (_t.Union, _types.UnionType):
        args = _t.get_args(tp)
        if v is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        errors = []
        for a in others:
            try:
                return _convert(a, v, meta, where)
            except _Bad as e:
                errors.append(e)
        if len(others) == 1:
            raise errors[0]
        raise _Bad(f"must be {_type_name(tp)}", _range_text(meta))
    if origin is _t.Literal:
        choices = _t.get_args(tp)
        if isinstance(v, bool) or v not in choices or type(v) not in {type(c) for c in choices}:
            raise _Bad("not an allowed value", ", ".join(map(repr, choices)))
        return v
    if _dc.is_dataclass(tp):
        if not isinstance(v, _Mapping):
            raise _Bad("must be a table", "keys " + ", ".join(f.name for f in _dc.fields(tp)))
        return from_section(tp, v, where)
    if tp in (dict, _Mapping) or origin in (dict, _Mapping):
        if not isinstance(v, _Mapping):
            raise _Bad("must be a table")
        return dict(v)
    if origin in (tuple, list) or tp in (tuple, list):
        args = _t.get_args(tp)
        item_tp = args[0] if args else Any
        if meta.get("scalar_ok") and not isinstance(v, (list, tuple)):
            v = [v]
        if not isinstance(v, (list, tuple)):
            raise _Bad(f"must be {_type_name(tp)}")
        if len(v) < meta.get("min_items", 0):
            raise _Bad(f"needs at least {meta['min_items']} item(s)", _type_name(tp))
        out = []
        for i, x in enumerate(v):
            try:
                out.append(_convert(item_tp, x, meta, f"{where}[{i}]"))
            except _Bad as e:
                raise config_error(f"{where}[{i}]", e.what, x, e.valid) from None
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if tp is bool:
        if not isinstance(v, bool):
            raise _Bad("must be true or false")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad("must be an integer", _range_text(meta))
        _check_range(v, meta)
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Bad("must be a number", _range_text(meta))
        v = float(v)
        if not math.isfinite(v) and meta.get("finite", True):
            raise _Bad("must be finite (not NaN or Inf)", _range_text(meta))
        if not math.isnan(v):
            _check_range(v, meta)
        return v
    if tp is str:
        if not isinstance(v, str):
            raise _Bad("must be a string", _range_text(meta))
        if "choices" in meta and v not in meta["choices"]:
            raise _Bad("not an allowed value", _range_text(meta))
        return v
    raise TypeError(f"from_section: field type {tp!r} at {where} is not supported")  # a schema bug


def _check_range(v: float, meta: Mapping_t) -> None:
    ok = (("ge" not in meta or v >= meta["ge"]) and ("gt" not in meta or v > meta["gt"])
          and ("le" not in meta or v <= meta["le"]) and ("lt" not in meta or v < meta["lt"])
          and ("choices" not in meta or v in meta["choices"]))
    if not ok:
        raise _Bad("out of range", _range_text(meta))


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    """``typing.get_type_hints(cls)``, once per class (it re-evaluates string annotations on every call)."""
    return _t.get_type_hints(cls)


def config_error(where: str, what: str, value: Any = _dc.MISSING, valid: str = "") -> ConfigError:
    """The one error format of the config dialect: ``[where].key: what (got VALUE); valid: RANGE``."""
    msg = f"{where}: {what}"
    if value is not _dc.MISSING:
        msg += f" (got {_show(value)})"
    if valid:
        msg += f"; valid: {valid}"
    return ConfigError(msg)


def from_section(cls: type, data: Any, section: str, *, ignore: _t.Iterable[str] = ()) -> Any:
    """Build the frozen dataclass ``cls`` from one config table (see [Note: config dialect]).

    Args:
        cls: the dataclass (its annotations and field metadata are the schema).
        data: the parsed table (a dict); keys are field names; missing keys take the field default.
        section: the name shown in errors, e.g. ``"train"`` (shown as ``[train]``) or ``"[[nodes]] #0"``
            (shown as is when it already starts with ``[``).
        ignore: keys that are allowed but not fields (read by the caller).

    Raises:
        ConfigError: ``[section].key: what is wrong (got VALUE); valid: RANGE``, also for unknown keys,
            a missing required key, and for a ValueError raised by ``cls.__post_init__``.
    """
    where = section if section.startswith("[") else f"[{section}]"
    if not isinstance(data, _Mapping):
        raise config_error(where, f"must be a table, not {type(data).__name__}", data)
    fields = {f.name: f for f in _dc.fields(cls) if f.init}
    hints = _hints(cls)
    valid_keys = ", ".join(list(fields) + [k for k in ignore if k not in fields])
    for k in data:
        if k not in fields and k not in ignore:
            raise config_error(f"{where}.{k}", "unknown key", valid=valid_keys)
    vals: dict[str, Any] = {}
    for name, f in fields.items():
        if set(f.metadata) - _META_KEYS:
            raise TypeError(f"{cls.__name__}.{name}: unknown metadata {sorted(set(f.metadata) - _META_KEYS)}")
        if name not in data:
            if f.default is _dc.MISSING and f.default_factory is _dc.MISSING:
                raise config_error(f"{where}.{name}", f"missing; give {_type_name(hints[name])}")
            continue
        try:
            vals[name] = _convert(hints[name], data[name], f.metadata, f"{where}.{name}")
        except _Bad as e:
            raise config_error(f"{where}.{name}", e.what, data[name], e.valid) from None
    try:
        return cls(**vals)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith("[") else f"{where}: {msg}") from e
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from e


def check_fields(obj: Any, section: str) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation and metadata, as
    :func:`from_section` does for a file (for dataclasses built in code; call it in ``__post_init__``)."""
    where = section if section.startswith("[") else f"[{section}]"
    hints = _hints(type(obj))
    for f in _dc.fields(obj):
        v = getattr(obj, f.name)
        if _dc.is_dataclass(v):
            continue  # checked by its own __post_init__
        try:
            meta = {k: m for k, m in f.metadata.items() if k != "scalar_ok"}  # in code, give the tuple
            _convert(hints[f.name], v, meta, f"{where}.{f.name}")
        except _Bad as e:
            raise config_error(f"{where}.{f.name}", e.what, v, e.valid) from None
