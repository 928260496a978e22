"""Compute nodes and the links between them, with the cost of moving an activation.

[Note: link cost model]
A digital link moves ``nbytes`` in ``latency_s + nbytes / bytes_per_s`` seconds.

An over-the-air (OTA) link does not move bytes: it carries the activation vector itself as analog
symbols, the precoder/channel/combiner acting as one linear layer (W = sum_k C_k^H H P_k over K
channel uses; Yang et al., "Over-the-air split ML in wireless MIMO networks", arXiv 2210.04742).
A flat MIMO link with ``n_tx`` transmit antennas sends ``n_tx`` complex symbols,
i.e. ``2 * n_tx`` real values, per channel use, so a vector of ``d`` real values needs
``K = ceil(d / (2 * n_tx))`` channel uses. At ``sample_rate_hz`` channel uses per second (one
complex sample per antenna per channel use) and a framing overhead ``overhead`` (preamble, pilots,
guard, as a fraction of the payload samples) the transfer takes::

    t = latency_s + K * (1 + overhead) / sample_rate_hz,   d = nbytes / bytes_per_value

``bytes_per_value`` (default 4, float32) converts the profile's ``out_bytes`` back to a count of
values. Its equivalent byte rate, used only for display, is 2*n_tx*sample_rate_hz*bytes_per_value/(1+overhead).

A digital link whose rate is not given but whose SNR is measured gets the Shannon rate with an
SNR gap Γ (``gap_db``, default 3 dB, the distance of a practical coded modulation from capacity;
uncoded QAM at a symbol error rate of 1e-6 is about 9 dB away)::

    bytes_per_s = n_streams * bandwidth_hz * log2(1 + 10**((snr_db - gap_db) / 10)) / 8

Links are undirected. Nodes without a direct link reach each other through the route of least cost
(Floyd-Warshall over the link costs, for each activation size).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hil._io import config_error, from_section, load_mapping
from hil.bench import LINK_KEYS, NODE_KEYS, LinkConfig, NodeConfig, ServerConfig, tables
from hil.errors import ConfigError, PlacementError

log = logging.getLogger(__name__)

DEFAULT_GAP_DB = 3.0


def shannon_bytes_per_s(snr_db: float, bandwidth_hz: float, gap_db: float = DEFAULT_GAP_DB,
                        n_streams: int = 1) -> float:
    """Achievable rate in bytes/s of a link at ``snr_db`` with an SNR gap ``gap_db`` (see the module note)."""
    if bandwidth_hz <= 0:
        raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz!r}")
    if n_streams < 1:
        raise ValueError(f"n_streams must be >= 1, got {n_streams!r}")
    return n_streams * bandwidth_hz * math.log2(1.0 + 10.0 ** ((snr_db - gap_db) / 10.0)) / 8.0


@dataclass(frozen=True)
class Node:
    """A compute node.

    Attributes:
        name: unique name.
        flops_per_s: sustained compute speed (FLOP/s).
        mem_bytes: memory available for parameters and activations (bytes); ``inf`` = unlimited.
        source: True for the node that holds the model input (exactly one per topology).
        compute_w: power drawn while computing (W), for the energy objective.
        use_measured: use the profile's measured ``latency_s`` on this node (it is the profiling host).
    """

    name: str
    flops_per_s: float
    mem_bytes: float = math.inf
    source: bool = False
    compute_w: float = 1.0
    use_measured: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("node name must be a non-empty string")
        if not self.flops_per_s > 0:
            raise ValueError(f"node {self.name!r}: flops_per_s must be > 0, got {self.flops_per_s!r}")
        if not self.mem_bytes >= 0:
            raise ValueError(f"node {self.name!r}: mem_bytes must be >= 0, got {self.mem_bytes!r}")


@dataclass(frozen=True)
class Link:
    """An undirected link between nodes ``a`` and ``b`` (see [Note: link cost model]).

    Attributes:
        a, b: node names.
        bytes_per_s: rate of a digital link (ignored when ``ota``).
        latency_s: fixed latency per transfer (s).
        ota: True for an over-the-air analog link whose cost comes from the PHY.
        n_tx: transmit antennas of an OTA link (real values per channel use = 2 * n_tx).
        sample_rate_hz: channel uses per second of an OTA link.
        overhead: framing overhead of an OTA link, fraction of payload samples.
        bytes_per_value: bytes of one activation value in the profile (float32 = 4).
        tx_w: transmit power (W) drawn while the link sends, for the energy objective.
    """

    a: str
    b: str
    bytes_per_s: float = math.inf
    latency_s: float = 0.0
    ota: bool = False
    n_tx: int = 1
    sample_rate_hz: float = 1e6
    overhead: float = 0.0
    bytes_per_value: float = 4.0
    tx_w: float = 1.0

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError(f"link joins node {self.a!r} to itself; give two different nodes")
        if self.latency_s < 0:
            raise ValueError(f"link {self.a}-{self.b}: latency_s must be >= 0, got {self.latency_s!r}")
        if self.ota:
            if int(self.n_tx) < 1:
                raise ValueError(f"OTA link {self.a}-{self.b}: n_tx must be >= 1, got {self.n_tx!r}")
            if not self.sample_rate_hz > 0:
                raise ValueError(f"OTA link {self.a}-{self.b}: sample_rate_hz must be > 0")
            if self.overhead < 0:
                raise ValueError(f"OTA link {self.a}-{self.b}: overhead must be >= 0")
        elif not self.bytes_per_s > 0:
            raise ValueError(f"link {self.a}-{self.b}: bytes_per_s must be > 0, got {self.bytes_per_s!r}")

    @staticmethod
    def uses_for_values(values: int, n_tx: int) -> int:
        """``K = ceil(values / (2 n_tx))``: channel uses for ``values`` real values on ``n_tx`` antennas."""
        return -(-int(values) // (2 * int(n_tx)))

    def channel_uses(self, nbytes: float) -> int:
        """Channel uses an OTA link needs for an activation of ``nbytes`` bytes."""
        return self.uses_for_values(math.ceil(nbytes / self.bytes_per_value), self.n_tx)

    def transfer_s(self, nbytes: float) -> float:
        """Seconds to move an activation of ``nbytes`` bytes over this link (0 for 0 bytes)."""
        if nbytes <= 0:
            return 0.0
        if self.ota:
            return self.latency_s + self.channel_uses(nbytes) * (1.0 + self.overhead) / self.sample_rate_hz
        return self.latency_s + nbytes / self.bytes_per_s

    @property
    def effective_bytes_per_s(self) -> float:
        if self.ota:
            return 2 * int(self.n_tx) * self.sample_rate_hz * self.bytes_per_value / (1.0 + self.overhead)
        return self.bytes_per_s


@dataclass(frozen=True)
class Topology:
    """Nodes and links; exactly one node is the source (holds the model input)."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "links", tuple(self.links))
        names = [n.name for n in self.nodes]
        if not names:
            raise ConfigError("topology has no nodes; add at least one entry to 'nodes'")
        if len(set(names)) != len(names):
            raise ConfigError(f"node names must be unique, got {names}")
        sources = [n.name for n in self.nodes if n.source]
        if len(sources) != 1:
            raise ConfigError(
                f"exactly one node must have source = true (it holds the model input); found {sources or 'none'}"
            )
        for link in self.links:
            for end in (link.a, link.b):
                if end not in names:
                    raise ConfigError(f"link {link.a}-{link.b} names node {end!r}, which is not in 'nodes' {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def source_index(self) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.source)

    @property
    def fastest_index(self) -> int:
        return int(np.argmax([n.flops_per_s for n in self.nodes]))

    def index(self, name: str) -> int:
        """Position of node ``name``; PlacementError naming the valid nodes when there is none."""
        try:
            return self.names.index(name)
        except ValueError as e:
            raise PlacementError(f"no node named {name!r} in the topology; nodes are {list(self.names)}") from e

    def best_link(self, a: str, b: str, nbytes: float, energy: bool = False) -> Link | None:
        """The direct link between ``a`` and ``b`` that the cost model uses for ``nbytes`` (None if none).

        With parallel links the one of least time (``energy=False``) or transmit energy wins; ties go
        to the first listed, as in :meth:`route_costs`.
        """
        best, key = None, math.inf
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                t = link.transfer_s(nbytes)
                k = t * link.tx_w if energy else t
                if k < key or best is None:
                    best, key = link, k
        return best

    def route_costs(self, nbytes: float, energy: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Least-cost routes for an activation of ``nbytes`` between every pair of nodes.

        Returns ``(cost, time_s, energy_j)``, each ``(N, N)`` float64: the route minimises ``cost``,
        which is the time (``energy=False``) or the transmit energy (``energy=True``); ``time_s``
        and ``energy_j`` are measured along that route. Diagonal 0; ``inf`` where unreachable.
        """
        return self.routes(nbytes, energy)[:3]

    def routes(self, nbytes: float, energy: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`route_costs` plus the next hops: ``nxt[p, q]`` (int64) is the node after ``p`` on the
        route from ``p`` to ``q`` (``q`` itself for a direct link, ``p`` on the diagonal, -1 when
        unreachable); :meth:`path` follows it."""
        n = len(self.nodes)
        time = np.full((n, n), np.inf)
        ener = np.full((n, n), np.inf)
        nxt = np.full((n, n), -1, dtype=np.int64)
        np.fill_diagonal(time, 0.0)
        np.fill_diagonal(ener, 0.0)
        np.fill_diagonal(nxt, np.arange(n))
        idx = {name: i for i, name in enumerate(self.names)}
        for link in self.links:
            t = link.transfer_s(nbytes)
            e = t * link.tx_w
            i, j = idx[link.a], idx[link.b]
            for p, q in ((i, j), (j, i)):
                better = (e < ener[p, q]) if energy else (t < time[p, q])
                if better:
                    time[p, q], ener[p, q], nxt[p, q] = t, e, q
        cost = ener.copy() if energy else time.copy()
        for k in range(n):  # Floyd-Warshall, carrying the secondary metric and the next hop along
            via = cost[:, k : k + 1] + cost[k : k + 1, :]
            upd = via < cost
            if upd.any():
                cost = np.where(upd, via, cost)
                time = np.where(upd, time[:, k : k + 1] + time[k : k + 1, :], time)
                ener = np.where(upd, ener[:, k : k + 1] + ener[k : k + 1, :], ener)
                nxt = np.where(upd, nxt[:, k : k + 1], nxt)
        return cost, time, ener, nxt

    @staticmethod
    def path(nxt: np.ndarray, src: int, dst: int) -> tuple[int, ...]:
        """Node indices from ``src`` to ``dst`` (both included) along the next hops of :meth:`routes`."""
        out = [int(src)]
        while out[-1] != dst:
            step = int(nxt[out[-1], dst])
            if step < 0 or len(out) > len(nxt):
                raise PlacementError(f"no route from node #{src} to node #{dst}; add a link")
            out.append(step)
        return tuple(out)

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> Any:
            return None if math.isinf(x) else x

        return {
            "nodes": [
                {"name": n.name, "flops_per_s": n.flops_per_s, "mem_bytes": num(n.mem_bytes), "source": n.source,
                 "compute_w": n.compute_w, "use_measured": n.use_measured}
                for n in self.nodes
            ],
            "links": [
                {"a": l.a, "b": l.b, "bytes_per_s": num(l.bytes_per_s), "latency_s": l.latency_s, "ota": l.ota,
                 "n_tx": l.n_tx, "sample_rate_hz": l.sample_rate_hz, "overhead": l.overhead,
                 "bytes_per_value": l.bytes_per_value, "tx_w": l.tx_w}
                for l in self.links
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Topology":
        """Build from the JSON/TOML mapping; unknown keys are a ConfigError ``[[nodes]] #i.key: ...``.

        Node keys: ``name`` (or ``id``); ``flops_per_s`` (or ``gflops``/``tflops``); ``mem_bytes``
        (or ``mem_gb``, missing/null = unlimited); ``source``; ``compute_w``; ``use_measured``.
        Link keys: ends ``a``/``b`` (or ``tx``/``rx``, ``src``/``dst``, ``from``/``to``);
        ``bytes_per_s`` (or ``mbit_per_s``), or ``snr_db`` with ``bandwidth_hz`` (or
        ``sample_rate_hz``), ``gap_db``, ``n_streams`` for a Shannon rate; ``latency_s``; ``ota``;
        ``n_tx`` (or ``antennas``); ``sample_rate_hz``; ``overhead``; ``bytes_per_value``; ``tx_w``.
        The keys of the channel server's bench file (``antennas``, ``channel``, ``[server]``, ...;
        :mod:`hil.bench`) are allowed too and checked as the channel server checks them.
        """
        if not isinstance(data, Mapping) or "nodes" not in data:
            raise ConfigError("a topology has a 'nodes' list (and usually a 'links' list)")
        for key in data:
            if key not in ("nodes", "links", "server"):
                raise config_error(f"[{key}]", "unknown section", valid="nodes, links, server, bench")
        from_section(ServerConfig, data.get("server", {}), "server")
        nodes = [_node_from(raw, i) for i, raw in enumerate(tables(data, "nodes", "one per compute node"))]
        if nodes and not any(n.source for n in nodes):
            log.warning("no node has source = true; taking the first node %r as the source", nodes[0].name)
            nodes[0] = Node(**{**nodes[0].__dict__, "source": True})
        links = [_link_from(raw, i) for i, raw in enumerate(tables(data, "links", "one per pair of nodes"))]
        return cls(tuple(nodes), tuple(links))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Topology":
        """Read a topology from JSON (``.json``) or from the bench TOML (``.toml``).

        [Note: bench topology files]
        The channel server's topology TOML (``[[nodes]]`` with ``antennas``, ``[[links]]`` with a
        ``channel`` table, ``[server] sample_rate_hz``) describes radios, not compute. A placement
        file may name it with ``bench = "path"`` (relative to the placement file) and add only what
        placement needs: nodes are merged by ``name`` and links by their two ends, the placement
        file's keys winning. A bench link with a ``channel`` table and no rate is a radio link, so it
        is taken as over the air (``ota = true``) with ``n_tx`` = the antennas of its ``a`` node and
        ``sample_rate_hz`` = ``[server] sample_rate_hz``, unless the file says otherwise
        (``ota = false`` with the channel's ``snr_db`` and a ``bandwidth_hz`` gives a Shannon rate).
        """
        data = _read_mapping(Path(path))
        return cls.from_dict(data)


def _read_mapping(p: Path, depth: int = 0) -> dict[str, Any]:
    data = load_mapping(p, "topology")
    if "topology" in data:
        data = data["topology"]
        if not isinstance(data, Mapping):
            raise config_error("[topology]", "must be a table", data)
    data = dict(data)
    bench = data.pop("bench", None)
    for key in ("nodes", "links"):
        tables(data, key, "a list of tables")
    if not isinstance(data.get("server", {}), Mapping):
        raise config_error("[server]", "must be a table", data["server"])
    if bench is None:
        return _bench_defaults(data)
    if not isinstance(bench, str):
        raise config_error(f"{p}: bench", "must be a string (the path of the channel server's topology)", bench)
    if depth > 3:
        raise ConfigError(f"{p}: 'bench' files nest too deep; point 'bench' at the channel server's file")
    bp = Path(bench).expanduser()
    base = _read_mapping(bp if bp.is_absolute() else p.parent / bp, depth + 1)
    nodes = {str(_first(n, "name", "id")): dict(n) for n in base.get("nodes", [])}
    for n in data.get("nodes", []):
        name = str(_first(n, "name", "id"))
        nodes[name] = {**nodes.get(name, {}), **n}
    links: dict[frozenset, dict[str, Any]] = {}
    for raw in list(base.get("links", [])) + list(data.get("links", [])):
        ends = _ends(raw)
        key = frozenset(ends) if ends else frozenset((len(links),))
        links[key] = {**links.get(key, {}), **raw}
    extra = {k: v for k, v in data.items() if k not in ("nodes", "links", "server")}
    return _bench_defaults({**extra, "nodes": list(nodes.values()), "links": list(links.values()),
                            "server": {**base.get("server", {}), **data.get("server", {})}})


def node_tables(path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``[[nodes]]`` tables of a topology file by node name, merged with its ``bench`` file as
    :meth:`Topology.load` merges them (for the keys placement does not read: ``host``, ``resource``, ...)."""
    return {str(_first(n, "name", "id")): dict(n) for n in _read_mapping(Path(path)).get("nodes", [])}


def _bench_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Radio links of a bench file become OTA links (see [Note: bench topology files])."""
    rate_hz = data.get("server", {}).get("sample_rate_hz")
    antennas = {str(_first(n, "name", "id")): n.get("antennas") for n in data.get("nodes", [])}
    links = []
    for raw in data.get("links", []):
        raw = dict(raw)
        has_rate = any(k in raw for k in ("bytes_per_s", "mbit_per_s", "snr_db"))
        if "channel" in raw and "ota" not in raw and not has_rate:
            raw["ota"] = True
        if raw.get("ota") is True:
            ends = _ends(raw)
            a = antennas.get(ends[0]) if ends else None
            if "n_tx" not in raw and "antennas" not in raw and isinstance(a, int) and not isinstance(a, bool):
                raw["n_tx"] = a
            if "sample_rate_hz" not in raw and isinstance(rate_hz, (int, float)) and not isinstance(rate_hz, bool):
                raw["sample_rate_hz"] = float(rate_hz)
        elif "snr_db" not in raw and isinstance(raw.get("channel"), Mapping) and "snr_db" in raw["channel"] \
                and "bandwidth_hz" in raw and not has_rate:
            raw["snr_db"] = raw["channel"]["snr_db"]
        links.append(raw)
    return {**data, "links": links}


_END_KEYS = (("a", "b"), ("tx", "rx"), ("src", "dst"), ("from", "to"))


def _ends(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    for ka, kb in _END_KEYS:
        if ka in raw and kb in raw:
            return str(raw[ka]), str(raw[kb])
    return None


def _first(raw: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in raw and raw[k] is not None:
            return raw[k]
    return default


_POS = {"gt": 0.0}
_NONNEG = {"ge": 0.0}


@dataclass(frozen=True)
class _NodeKeys:
    """The keys of a placement ``[[nodes]]`` table (aliases: ``id``, ``gflops``/``tflops``, ``mem_gb``);
    the bench keys (``antennas``, ``mode``, ...) are read by :class:`hil.bench.NodeConfig`."""

    name: str | None = None
    id: str | None = None
    flops_per_s: float | None = field(default=None, metadata=_POS)
    gflops: float | None = field(default=None, metadata=_POS)
    tflops: float | None = field(default=None, metadata=_POS)
    mem_bytes: float | None = field(default=None, metadata={"ge": 0.0, "finite": False})
    mem_gb: float | None = field(default=None, metadata=_NONNEG)
    source: bool = False
    compute_w: float = field(default=1.0, metadata=_NONNEG)
    use_measured: bool = False


@dataclass(frozen=True)
class _LinkKeys:
    """The keys of a placement ``[[links]]`` table besides its ends (see :meth:`Topology.from_dict`);
    the bench keys (``channel``, ``reciprocal``, ...) are read by :class:`hil.bench.LinkConfig`."""

    bytes_per_s: float | None = field(default=None, metadata={"gt": 0.0, "finite": False})
    mbit_per_s: float | None = field(default=None, metadata=_POS)
    snr_db: float | None = None
    bandwidth_hz: float | None = field(default=None, metadata=_POS)
    gap_db: float = DEFAULT_GAP_DB
    n_streams: int = field(default=1, metadata={"ge": 1})
    latency_s: float = field(default=0.0, metadata=_NONNEG)
    ota: bool = False
    n_tx: int | None = field(default=None, metadata={"ge": 1})
    antennas: int | tuple[str, ...] | None = field(default=None, metadata={"ge": 1})
    sample_rate_hz: float = field(default=1e6, metadata=_POS)
    overhead: float = field(default=0.0, metadata=_NONNEG)
    bytes_per_value: float = field(default=4.0, metadata=_POS)
    tx_w: float = field(default=1.0, metadata=_NONNEG)


def _split(raw: Mapping[str, Any], bench_keys: tuple[str, ...]) -> tuple[dict, dict]:
    """``raw`` as (placement keys, bench keys)."""
    own = {k: v for k, v in raw.items() if k not in bench_keys}
    return own, {k: v for k, v in raw.items() if k in bench_keys}


def _node_from(raw: Mapping[str, Any], i: int) -> Node:
    where = f"[[nodes]] #{i}"
    own, radio = _split(raw, tuple(k for k in NODE_KEYS if k != "name"))
    k = from_section(_NodeKeys, own, where)
    name = k.name if k.name is not None else k.id
    if name is None:
        raise config_error(f"{where}.name", "missing; give the node a name")
    if radio:
        from_section(NodeConfig, {"name": name, **radio}, where)  # the bench keys, as the channel server reads them
    flops = _first(own, "flops_per_s")
    if flops is None and k.gflops is not None:
        flops = k.gflops * 1e9
    if flops is None and k.tflops is not None:
        flops = k.tflops * 1e12
    if flops is None:
        raise ConfigError(f"node {name!r} has no compute speed; give 'flops_per_s' (or 'gflops')")
    mem = k.mem_bytes
    if mem is None and k.mem_gb is not None:
        mem = k.mem_gb * 1e9
    try:
        return Node(name=name, flops_per_s=float(flops), mem_bytes=math.inf if mem is None else float(mem),
                    source=k.source, compute_w=k.compute_w, use_measured=k.use_measured)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e


def _link_from(raw: Mapping[str, Any], i: int) -> Link:
    where = f"[[links]] #{i}"
    ends = _ends(raw)
    if ends is None:
        raise config_error(where, "has no ends; give 'a' and 'b' (or 'tx'/'rx')", dict(raw))
    end_keys = next((ka, kb) for ka, kb in _END_KEYS if ka in raw and kb in raw)
    for key in end_keys:
        if not isinstance(raw[key], str):
            raise config_error(f"{where}.{key}", "must be a string (a node name)", raw[key])
    other_ends = [x for pair in _END_KEYS if pair != end_keys for x in pair if x in raw]
    if other_ends:
        raise config_error(f"{where}.{other_ends[0]}", f"give the ends once, as {end_keys[0]}/{end_keys[1]}",
                           raw[other_ends[0]])
    own, radio = _split({k: v for k, v in raw.items() if k not in end_keys},
                        tuple(k for k in LINK_KEYS if k not in ("a", "b")))
    k = from_section(_LinkKeys, own, where)
    if radio:
        from_section(LinkConfig, {"a": ends[0], "b": ends[1], **radio}, where)
    rate = k.bytes_per_s
    if rate is None and k.mbit_per_s is not None:
        rate = k.mbit_per_s * 1e6 / 8
    if rate is None and k.snr_db is not None:
        bw = k.bandwidth_hz if k.bandwidth_hz is not None else own.get("sample_rate_hz")
        if bw is None:
            raise ConfigError(f"link {ends[0]}-{ends[1]} has snr_db but no 'bandwidth_hz' for the Shannon rate")
        rate = shannon_bytes_per_s(k.snr_db, float(bw), k.gap_db, k.n_streams)
    if rate is None and not k.ota:
        raise ConfigError(
            f"link {ends[0]}-{ends[1]} has no rate; give 'bytes_per_s', 'mbit_per_s', or 'snr_db' + 'bandwidth_hz'"
        )
    n_tx = k.n_tx if k.n_tx is not None else k.antennas if k.antennas is not None else 1
    if isinstance(n_tx, tuple):
        n_tx = len(n_tx)
    try:
        return Link(a=ends[0], b=ends[1], bytes_per_s=math.inf if rate is None else float(rate),
                    latency_s=k.latency_s, ota=k.ota, n_tx=int(n_tx), sample_rate_hz=k.sample_rate_hz,
                    overhead=k.overhead, bytes_per_value=k.bytes_per_value, tx_w=k.tx_w)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e
