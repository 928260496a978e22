"""The channel server's topology: nodes with antennas, links with channel specs, server settings.

The schema and its parser live in :mod:`hil.bench` (shared with placement, which reads the same
files); this module keeps the channel server's names for them and the shipped examples
(``sim_fallback/configs/``). Everything is a frozen dataclass; :func:`load_topology` is the entry point.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from hil.bench import (  # noqa: F401  (re-exported: the channel server's names)
    MODES,
    PATTERNS,
    ROLES,
    TRANSPORTS,
    Bench,
    LinkConfig,
    NodeConfig,
    ServerConfig,
    bench_from_dict as topology_from_dict,
    endpoint_slots,
    load_bench as load_topology,
)
from hil.errors import ConfigError


def default_config_path(name: str = "edge_server") -> Path:
    """Path of a topology shipped in sim_fallback/configs/ (``name`` without ``.toml``)."""
    shipped = resources.files("sim_fallback") / "configs"
    p = shipped / f"{name}.toml"
    if not p.is_file():
        avail = sorted(q.name[: -len(".toml")] for q in shipped.iterdir() if q.name.endswith(".toml"))
        raise ConfigError(f"no shipped topology {name!r}; available: {avail}")
    return Path(str(p))


def two_node_config(channel: Mapping[str, Any] | None = None, *, a: str = "edge", b: str = "server",
                    n_a: int = 2, n_b: int = 2, mode: str = "burst", reciprocal: bool = True,
                    **server: Any) -> dict:
    """A topology dict with two nodes and one link (for tests, benchmarks and scripts).

    Args:
        channel: the link's channel spec (hil.channel keys); None: an ideal wire (``fading = "none"``).
        a, b: node names; n_a, n_b: their antennas; mode: "burst" or "stream" for both nodes.
        reciprocal: the link's ``reciprocal`` flag.
        **server: ``[server]`` settings (e.g. ``test_mode=True``, ``lead_samples=0``).
    """
    return {
        "server": dict(server),
        "nodes": [{"name": a, "antennas": n_a, "mode": mode}, {"name": b, "antennas": n_b, "mode": mode}],
        "links": [{"a": a, "b": b, "channel": dict(channel) if channel is not None else {"fading": "none"},
                   "reciprocal": reciprocal}],
    }
