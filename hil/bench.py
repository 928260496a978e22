"""The bench: radio nodes with antennas, links with channel specs, and the channel server's settings.

One schema for the part of a topology file that describes radios, read by the channel server
(``hil sim serve``, :mod:`sim_fallback.topology`) and by placement (``hil place``, a placement file
may name a bench file with ``bench = "path"`` or carry the same keys inline). Each table maps onto a
frozen dataclass through :func:`hil._io.from_section` (see [Note: config dialect] in hil/_io.py).

Example (TOML)::

    [server]
    host = "127.0.0.1"          # bind address of every default endpoint
    seed = 1
    lead_samples = 200          # noise before each burst ...
    lead_jitter = 56            # ... plus a uniform random 0..lead_jitter more
    trail_samples = 200         # noise after each burst
    test_mode = false           # true: the metadata socket reveals the true channel state

    [[nodes]]
    name = "edge"
    antennas = 2

    [[nodes]]
    name = "server"
    antennas = 2

    [[links]]
    a = "edge"
    b = "server"
    channel = { fading = "rayleigh", snr_db = 10.0, cfo_hz = 1500.0 }   # keys of hil.channel

[Note: endpoints]
Each antenna of each node has one *tx* stream (node -> server) and one *rx* stream (server -> node).
By default the server binds both on ``tcp://{host}:*`` (an ephemeral port) and reports the bound
endpoints. Per node and direction, ``tx_bind``/``rx_bind`` fix the bind endpoints (one per antenna),
or ``tx_connect``/``rx_connect`` make the server *connect* to an endpoint bound by someone else (a GNU
Radio ``push_sink``/``pub_sink`` binds, so the server connects to it). See docs/zmq.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hil._io import config_error, from_section, load_mapping
from hil.errors import ConfigError

#: Node modes: a message is a whole burst (padded with noise), or a piece of a continuous stream.
MODES = ("burst", "stream")
#: Socket patterns of a node's streams: PUSH/PULL (lossless, back-pressure), PUB/SUB (lossy, fan-out) or
#: REQ/REP (srsRAN's ZMQ radio: a 1-byte request is answered with the next cf32 samples; stream mode only).
PATTERNS = ("pushpull", "pubsub", "reqrep")
#: Who binds a node's tx or rx streams: "" (bind, unless ``*_connect`` is given), "bind", "connect" (the
#: peer binds; without ``*_connect`` the server connects to the stream's ``port_base`` slot).
ROLES = ("", "bind", "connect")
#: Transports for default endpoints.
TRANSPORTS = ("tcp", "ipc")

_ENDPOINTS = {"scalar_ok": True}


@dataclass(frozen=True)
class NodeConfig:
    """One radio node.

    Attributes:
        name: unique node name.
        antennas: number of antennas (= tx streams = rx streams).
        mode: "burst" (each message is one burst, padded with lead/trail noise) or "stream"
            (messages are pieces of a continuous stream, no padding, channel state continues).
        pattern: "pushpull", "pubsub" or "reqrep" (srsRAN's ZMQ radio) for this node's streams.
        tx_bind, rx_bind: explicit bind endpoints, one per antenna (empty: ephemeral default).
        tx_connect, rx_connect: endpoints the server connects to instead of binding, one per antenna.
        tx_role, rx_role: "connect" with no ``*_connect`` endpoints: the server connects to the stream's
            ``port_base`` slot (the peer, e.g. a GNU Radio sink, binds there); "" or "bind": the default.
        host: the Ray node (its IP address) that runs this node's actor in ``hil run --bench`` on a joined
            cluster; "" (default): any host advertising ``resource``.
        resource: the custom Ray resource that pins this node's actor (default ``hil_node:<name>``; the
            host runs ``ray start ... --resources '{"hil_node:<name>": 1}'``).
    """

    name: str
    antennas: int = field(default=1, metadata={"ge": 1})
    mode: str = field(default="burst", metadata={"choices": MODES})
    pattern: str = field(default="pushpull", metadata={"choices": PATTERNS})
    tx_bind: tuple[str, ...] = field(default=(), metadata=_ENDPOINTS)
    rx_bind: tuple[str, ...] = field(default=(), metadata=_ENDPOINTS)
    tx_connect: tuple[str, ...] = field(default=(), metadata=_ENDPOINTS)
    rx_connect: tuple[str, ...] = field(default=(), metadata=_ENDPOINTS)
    tx_role: str = field(default="", metadata={"choices": ROLES})
    rx_role: str = field(default="", metadata={"choices": ROLES})
    host: str = ""
    resource: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in " /<>"):
            raise ValueError(f"name must be a non-empty string without spaces, '/', '<', '>' (got {self.name!r})")
        for key in ("tx_bind", "rx_bind", "tx_connect", "rx_connect"):
            eps = getattr(self, key)
            if eps and len(eps) != self.antennas:
                raise ValueError(f"{key} has {len(eps)} endpoint(s) but the node has {self.antennas} antenna(s); "
                                 "give one endpoint per antenna")
            for e in eps:
                if "://" not in e:
                    raise ValueError(f"{key}: {e!r} is not a ZMQ endpoint like tcp://127.0.0.1:5555")
        for side in ("tx", "rx"):
            if getattr(self, f"{side}_bind") and getattr(self, f"{side}_connect"):
                raise ValueError(f"give either {side}_bind or {side}_connect, not both")
            role = getattr(self, f"{side}_role")
            if role == "connect" and getattr(self, f"{side}_bind"):
                raise ValueError(f"{side}_role = \"connect\" contradicts {side}_bind")
            if role == "bind" and getattr(self, f"{side}_connect"):
                raise ValueError(f"{side}_role = \"bind\" contradicts {side}_connect")
        if self.pattern == "reqrep" and self.mode != "stream":
            raise ValueError("pattern = \"reqrep\" (srsRAN's ZMQ radio) carries a continuous sample stream; "
                             "set mode = \"stream\"")


@dataclass(frozen=True)
class LinkConfig:
    """A bidirectional link between nodes ``a`` and ``b``.

    Attributes:
        a, b: node names.
        channel: the channel spec dict given to ``hil.channel.build_reciprocal_link`` (reciprocal
            links: the reverse direction b->a uses the transposed channel) or ``build_channel``.
        reciprocal: True (default): one reciprocal link; False: ``channel`` is a->b and
            ``reverse_channel`` is b->a, drawn independently.
        reverse_channel: spec of b->a when ``reciprocal`` is False (default: same spec as ``channel``).
        lead_samples, lead_jitter, trail_samples: per-link override of the server's burst padding.
    """

    a: str
    b: str
    channel: Mapping[str, Any] = field(default_factory=dict)
    reciprocal: bool = True
    reverse_channel: Mapping[str, Any] | None = None
    lead_samples: int | None = field(default=None, metadata={"ge": 0})
    lead_jitter: int | None = field(default=None, metadata={"ge": 0})
    trail_samples: int | None = field(default=None, metadata={"ge": 0})

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError(f"a link needs two different nodes, got {self.a!r} twice")
        if self.reciprocal and self.reverse_channel is not None:
            raise ValueError("reverse_channel needs reciprocal = false (a reciprocal link transposes channel)")
        try:
            json.dumps(self.channel)
            json.dumps(self.reverse_channel)
        except (TypeError, ValueError) as e:
            raise ValueError(f"channel spec must be JSON-serialisable: {e}") from e

    @property
    def name(self) -> str:
        return f"{self.a}<->{self.b}"


@dataclass(frozen=True)
class ServerConfig:
    """Server-wide settings.

    Attributes:
        host: address of the default binds (127.0.0.1: local only).
        transport: "tcp" or "ipc" for default endpoints (ipc uses ``ipc_dir``).
        ipc_dir: directory of ipc socket files.
        control: bind endpoint of the JSON control socket (REP); default ephemeral.
        events: bind endpoint of the JSON event socket (PUB); default ephemeral.
        max_message_bytes: largest accepted sample message in bytes (8 bytes per cf32 sample).
        lead_samples: noise samples before each burst (burst mode).
        lead_jitter: extra random lead, uniform in 0..lead_jitter (so the start is not known).
        trail_samples: noise samples after each burst.
        sample_rate_hz: the nominal sample rate (given to channel specs that need it, reported to clients).
        seed: seed of the server's numpy Generator (channels and jitter).
        test_mode: expose the true channel state and burst start on the metadata sockets.
        hold_s: how long an output is held for a receiver that is not connected yet, then dropped.
        hwm: ZMQ high-water mark (messages) of the data sockets.
        io_threads: ZMQ I/O threads.
        pipeline: run each link direction's channel model on its own worker thread for large blocks.
        apply_threads: 1 (default): one thread per link direction; 2: split large blocks of a pure model over two.
        port_base: 0 (default): ephemeral ports; P: every default endpoint at ``tcp://{host}:P+k``, ``k`` the
            stream's slot in :func:`endpoint_slots` order (``hil sim serve --port-base P`` sets it).
        pace: stream-mode nodes are read no faster than ``sample_rate_hz`` (like a radio's clock).
    """

    host: str = "127.0.0.1"
    transport: str = field(default="tcp", metadata={"choices": TRANSPORTS})
    ipc_dir: str = "/tmp"
    control: str = ""
    events: str = ""
    max_message_bytes: int = field(default=1 << 27, metadata={"ge": 1})
    lead_samples: int = field(default=200, metadata={"ge": 0})
    lead_jitter: int = field(default=56, metadata={"ge": 0})
    trail_samples: int = field(default=200, metadata={"ge": 0})
    sample_rate_hz: float = field(default=1e6, metadata={"gt": 0.0})
    seed: int = field(default=0, metadata={"ge": 0})
    test_mode: bool = False
    hold_s: float = field(default=2.0, metadata={"gt": 0.0})
    hwm: int = field(default=64, metadata={"ge": 1})
    io_threads: int = field(default=1, metadata={"ge": 1})
    pipeline: bool = True
    apply_threads: int = field(default=1, metadata={"ge": 1, "le": 2})
    port_base: int = field(default=0, metadata={"ge": 0, "le": 65535})
    pace: bool = False

    def __post_init__(self) -> None:
        if self.port_base and self.transport != "tcp":
            raise ValueError("port_base numbers TCP ports; it needs transport = \"tcp\"")


NODE_KEYS = tuple(NodeConfig.__dataclass_fields__)
LINK_KEYS = tuple(LinkConfig.__dataclass_fields__)


@dataclass(frozen=True)
class Bench:
    """Server settings, nodes and links."""

    server: ServerConfig
    nodes: tuple[NodeConfig, ...]
    links: tuple[LinkConfig, ...]

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict that :func:`bench_from_dict` reads back."""
        d = asdict(self)
        d["nodes"], d["links"] = list(d["nodes"]), list(d["links"])
        for n in d["nodes"]:
            for k in ("tx_bind", "rx_bind", "tx_connect", "rx_connect"):
                n[k] = list(n[k])
        for ln in d["links"]:
            ln["channel"] = dict(ln["channel"])
            if ln["reverse_channel"] is not None:
                ln["reverse_channel"] = dict(ln["reverse_channel"])
        return d


def tables(d: Mapping[str, Any], key: str, what: str) -> list[Mapping[str, Any]]:
    """The list of tables ``d[key]`` (``[[key]]`` in TOML); ConfigError when it is anything else."""
    v = d.get(key, [])
    if not isinstance(v, (list, tuple)) or not all(isinstance(t, Mapping) for t in v):
        raise config_error(f"[[{key}]]", f"must be a list of tables ({what})", v)
    return list(v)


def bench_from_dict(d: Mapping[str, Any], *, extra_keys: tuple[str, ...] = ()) -> Bench:
    """Validate a bench dict (the parsed TOML/JSON) and return a :class:`Bench`.

    ``extra_keys``: top-level keys the caller reads itself (not checked here).

    Raises:
        ConfigError: a missing, unknown or out-of-range key, with the fix in the message.
    """
    if not isinstance(d, Mapping):
        raise config_error("topology", f"must be a table, not {type(d).__name__}", d)
    for k in d:
        if k not in ("server", "nodes", "links") + tuple(extra_keys):
            raise config_error(f"[{k}]", "unknown section", valid="server, nodes, links")
    server = from_section(ServerConfig, d.get("server", {}), "server")
    raw_nodes = tables(d, "nodes", "one per radio node")
    if not raw_nodes:
        raise ConfigError("topology needs at least one [[nodes]] entry with a name and antennas")
    nodes: list[NodeConfig] = []
    for i, n in enumerate(raw_nodes):
        node = from_section(NodeConfig, n, f"[[nodes]] #{i}")
        if any(m.name == node.name for m in nodes):
            raise config_error(f"[[nodes]] #{i}.name", "appears twice; node names must be unique", node.name)
        for side in ("tx", "rx"):
            if getattr(node, f"{side}_role") == "connect" and not getattr(node, f"{side}_connect") \
                    and not server.port_base:
                raise config_error(f"[[nodes]] #{i}.{side}_role", f"\"connect\" without {side}_connect needs "
                                   "[server] port_base (or hil sim serve --port-base P) to know where the peer binds",
                                   "connect")
        nodes.append(node)
    names = [n.name for n in nodes]
    links: list[LinkConfig] = []
    for i, ln in enumerate(tables(d, "links", "one per pair of nodes")):
        link = from_section(LinkConfig, ln, f"[[links]] #{i}")
        for key in ("a", "b"):
            if getattr(link, key) not in names:
                raise config_error(f"[[links]] #{i}.{key}", "unknown node", getattr(link, key), ", ".join(names))
        if any({m.a, m.b} == {link.a, link.b} for m in links):
            raise config_error(f"[[links]] #{i}", f"a second link between {link.a!r} and {link.b!r}; one link "
                               "per pair")
        links.append(link)
    bench = Bench(server=server, nodes=tuple(nodes), links=tuple(links))
    n_slots = len(endpoint_slots(bench))
    if server.port_base and server.port_base + n_slots - 1 > 65535:
        raise config_error("[server].port_base", f"with {n_slots} endpoints it passes port 65535; choose a lower "
                           "port_base", server.port_base)
    return bench


def endpoint_slots(bench: Bench) -> list[str]:
    """The endpoints' tags in ``port_base`` order: ``control``, ``events``, then per node (file order)
    per antenna ``{node}-tx{i}`` and ``{node}-rx{i}``. With ``port_base = P`` the k-th is ``tcp://host:P+k``
    (an endpoint fixed in the file keeps its own value and its slot stays unused)."""
    tags = ["control", "events"]
    for n in bench.nodes:
        for i in range(n.antennas):
            tags += [f"{n.name}-tx{i}", f"{n.name}-rx{i}"]
    return tags


def load_bench(source: str | Path | Mapping[str, Any]) -> Bench:
    """Read a bench from a ``.toml`` or ``.json`` file, or validate a dict; ConfigError naming the file."""
    if isinstance(source, Mapping):
        return bench_from_dict(source)
    path = Path(source)
    d = load_mapping(path, "topology")
    try:
        return bench_from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
