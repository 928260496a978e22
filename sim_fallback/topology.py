"""The channel server's topology: nodes with antennas, links with channel specs, server settings.

A topology is read from TOML (the user's file) or JSON (what tests and the launcher write), or given as
a dict. Everything here is a frozen dataclass; :func:`load_topology` is the only entry point.

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
    channel = { model = "rayleigh", snr_db = 10.0, cfo_hz = 1500.0 }   # passed to hil.channel

[Note: endpoints]
Each antenna of each node has one *tx* stream (node -> server) and one *rx* stream (server -> node).
By default the server binds both on ``tcp://{host}:*`` (an ephemeral port) and reports the bound
endpoints. Per node and direction, ``tx_bind``/``rx_bind`` fix the bind endpoints (one per antenna),
or ``tx_connect``/``rx_connect`` make the server *connect* to an endpoint bound by someone else (a GNU
Radio ``push_sink``/``pub_sink`` binds, so the server connects to it). See docs/zmq.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from hil._io import load_mapping
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
    """

    name: str
    antennas: int
    mode: str = "burst"
    pattern: str = "pushpull"
    tx_bind: tuple[str, ...] = ()
    rx_bind: tuple[str, ...] = ()
    tx_connect: tuple[str, ...] = ()
    rx_connect: tuple[str, ...] = ()
    tx_role: str = ""
    rx_role: str = ""


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
    lead_samples: int | None = None
    lead_jitter: int | None = None
    trail_samples: int | None = None

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
    transport: str = "tcp"
    ipc_dir: str = "/tmp"
    control: str = ""
    events: str = ""
    max_message_bytes: int = 1 << 27
    lead_samples: int = 200
    lead_jitter: int = 56
    trail_samples: int = 200
    sample_rate_hz: float = 1e6
    seed: int = 0
    test_mode: bool = False
    hold_s: float = 2.0
    hwm: int = 64
    io_threads: int = 1
    pipeline: bool = True
    apply_threads: int = 1
    port_base: int = 0
    pace: bool = False


@dataclass(frozen=True)
class Topology:
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
        """A JSON-serialisable dict that :func:`topology_from_dict` reads back."""
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


def _check_keys(section: str, d: Mapping, allowed: set[str]) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(
            f"{section}: unknown key(s) {sorted(unknown)}; allowed keys are {sorted(allowed)}"
        )


def _int(section: str, key: str, v: Any, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{section}.{key} must be an integer >= {minimum}, got {v!r}")
    return v


def _endpoints(section: str, key: str, v: Any, antennas: int) -> tuple[str, ...]:
    if v in (None, "", []):
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(e, str) for e in v):
        raise ConfigError(f"{section}.{key} must be a list of endpoint strings, got {v!r}")
    if len(v) != antennas:
        raise ConfigError(
            f"{section}.{key} has {len(v)} endpoint(s) but the node has {antennas} antenna(s); "
            "give one endpoint per antenna"
        )
    for e in v:
        if "://" not in e:
            raise ConfigError(f"{section}.{key}: {e!r} is not a ZMQ endpoint like tcp://127.0.0.1:5555")
    return tuple(v)


def topology_from_dict(d: Mapping[str, Any]) -> Topology:
    """Validate a topology dict (the parsed TOML/JSON) and return a :class:`Topology`.

    Raises:
        ConfigError: a missing, unknown or out-of-range key, with the fix in the message.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"topology must be a table/dict, got {type(d).__name__}")
    _check_keys("topology", d, {"server", "nodes", "links"})
    s = dict(d.get("server", {}))
    allowed = set(ServerConfig.__dataclass_fields__)
    _check_keys("[server]", s, allowed)
    for k in ("max_message_bytes", "lead_samples", "lead_jitter", "trail_samples", "seed", "hwm", "io_threads",
              "apply_threads"):
        if k in s:
            _int("[server]", k, s[k], 1 if k in ("max_message_bytes", "io_threads", "hwm", "apply_threads") else 0)
    if "port_base" in s:
        _int("[server]", "port_base", s["port_base"], 0)
        if s["port_base"] and s.get("transport", "tcp") != "tcp":
            raise ConfigError("[server].port_base numbers TCP ports; it needs transport = \"tcp\"")
    if s.get("apply_threads", 1) > 2:
        raise ConfigError(f"[server].apply_threads must be 1 or 2, got {s['apply_threads']}")
    if s.get("transport", "tcp") not in TRANSPORTS:
        raise ConfigError(f"[server].transport must be one of {TRANSPORTS}, got {s['transport']!r}")
    for k in ("sample_rate_hz", "hold_s"):
        if k in s:
            v = s[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"[server].{k} must be a positive number, got {v!r}")
            s[k] = float(v)
    for k in ("test_mode", "pipeline", "pace"):
        if k in s and not isinstance(s[k], bool):
            raise ConfigError(f"[server].{k} must be true or false, got {s[k]!r}")
    server = ServerConfig(**s)

    raw_nodes = d.get("nodes", [])
    if not isinstance(raw_nodes, (list, tuple)) or not raw_nodes:
        raise ConfigError("topology needs at least one [[nodes]] entry with a name and antennas")
    nodes = []
    names: set[str] = set()
    for i, n in enumerate(raw_nodes):
        sec = f"[[nodes]] #{i}"
        if not isinstance(n, Mapping):
            raise ConfigError(f"{sec} must be a table, got {n!r}")
        _check_keys(sec, n, set(NodeConfig.__dataclass_fields__))
        name = n.get("name")
        if not isinstance(name, str) or not name or any(c in name for c in " /<>"):
            raise ConfigError(f"{sec}.name must be a non-empty string without spaces, '/', '<', '>': {name!r}")
        if name in names:
            raise ConfigError(f"node name {name!r} appears twice; node names must be unique")
        names.add(name)
        sec = f"node {name!r}"
        ant = _int(sec, "antennas", n.get("antennas", 1), 1)
        mode = n.get("mode", "burst")
        if mode not in MODES:
            raise ConfigError(f"{sec}.mode must be one of {MODES}, got {mode!r}")
        pattern = n.get("pattern", "pushpull")
        if pattern not in PATTERNS:
            raise ConfigError(f"{sec}.pattern must be one of {PATTERNS}, got {pattern!r}")
        eps = {k: _endpoints(sec, k, n.get(k), ant) for k in ("tx_bind", "rx_bind", "tx_connect", "rx_connect")}
        if pattern == "reqrep" and mode != "stream":
            raise ConfigError(f"{sec}: pattern = \"reqrep\" (srsRAN's ZMQ radio) carries a continuous sample "
                              "stream; set mode = \"stream\"")
        roles = {}
        for side in ("tx", "rx"):
            if eps[f"{side}_bind"] and eps[f"{side}_connect"]:
                raise ConfigError(f"{sec}: give either {side}_bind or {side}_connect, not both")
            role = roles[f"{side}_role"] = n.get(f"{side}_role", "")
            if role not in ROLES:
                raise ConfigError(f"{sec}.{side}_role must be \"bind\" or \"connect\", got {role!r}")
            if role == "connect" and eps[f"{side}_bind"]:
                raise ConfigError(f"{sec}: {side}_role = \"connect\" contradicts {side}_bind")
            if role == "bind" and eps[f"{side}_connect"]:
                raise ConfigError(f"{sec}: {side}_role = \"bind\" contradicts {side}_connect")
            if role == "connect" and not eps[f"{side}_connect"] and not server.port_base:
                raise ConfigError(f"{sec}: {side}_role = \"connect\" without {side}_connect needs [server] "
                                  "port_base (or hil sim serve --port-base P) to know where the peer binds")
        nodes.append(NodeConfig(name=name, antennas=ant, mode=mode, pattern=pattern, **eps, **roles))

    links = []
    seen: set[frozenset] = set()
    raw_links = d.get("links", [])
    if not isinstance(raw_links, (list, tuple)):
        raise ConfigError(f"links must be a list of [[links]] tables, got {type(raw_links).__name__}")
    for i, ln in enumerate(raw_links):
        sec = f"[[links]] #{i}"
        if not isinstance(ln, Mapping):
            raise ConfigError(f"{sec} must be a table, got {ln!r}")
        _check_keys(sec, ln, set(LinkConfig.__dataclass_fields__))
        a, b = ln.get("a"), ln.get("b")
        for end in (a, b):
            if end not in names:
                raise ConfigError(f"{sec}: unknown node {end!r}; known nodes are {sorted(names)}")
        if a == b:
            raise ConfigError(f"{sec}: a link needs two different nodes, got {a!r} twice")
        key = frozenset((a, b))
        if key in seen:
            raise ConfigError(f"{sec}: a second link between {a!r} and {b!r}; one link per pair")
        seen.add(key)
        ch = ln.get("channel", {})
        if not isinstance(ch, Mapping):
            raise ConfigError(f"{sec}.channel must be a table (the channel spec), got {ch!r}")
        rev = ln.get("reverse_channel")
        if rev is not None and not isinstance(rev, Mapping):
            raise ConfigError(f"{sec}.reverse_channel must be a table, got {rev!r}")
        reciprocal = ln.get("reciprocal", True)
        if not isinstance(reciprocal, bool):
            raise ConfigError(f"{sec}.reciprocal must be true or false, got {reciprocal!r}")
        if reciprocal and rev is not None:
            raise ConfigError(f"{sec}: reverse_channel needs reciprocal = false (a reciprocal link transposes channel)")
        pads = {}
        for k in ("lead_samples", "lead_jitter", "trail_samples"):
            if ln.get(k) is not None:
                pads[k] = _int(sec, k, ln[k], 0)
        try:
            json.dumps(ch)
            json.dumps(rev)
        except TypeError as e:
            raise ConfigError(f"{sec}: channel spec must be JSON-serialisable: {e}") from e
        links.append(
            LinkConfig(a=a, b=b, channel=dict(ch), reciprocal=reciprocal,
                       reverse_channel=None if rev is None else dict(rev), **pads)
        )
    topo = Topology(server=server, nodes=tuple(nodes), links=tuple(links))
    if server.port_base and server.port_base + len(endpoint_slots(topo)) - 1 > 65535:
        raise ConfigError(f"[server].port_base {server.port_base} + {len(endpoint_slots(topo))} endpoints passes "
                          "port 65535; choose a lower port_base")
    return topo


def endpoint_slots(topology: Topology) -> list[str]:
    """The endpoints' tags in ``port_base`` order: ``control``, ``events``, then per node (topology order)
    per antenna ``{node}-tx{i}`` and ``{node}-rx{i}``. With ``port_base = P`` the k-th is ``tcp://host:P+k``
    (an endpoint fixed in the file keeps its own value and its slot stays unused)."""
    tags = ["control", "events"]
    for n in topology.nodes:
        for i in range(n.antennas):
            tags += [f"{n.name}-tx{i}", f"{n.name}-rx{i}"]
    return tags


def load_topology(source: str | Path | Mapping[str, Any]) -> Topology:
    """Read a topology from a ``.toml`` or ``.json`` file, or validate a dict.

    Raises:
        ConfigError: unreadable file, syntax error or invalid content.
    """
    if isinstance(source, Mapping):
        return topology_from_dict(source)
    path = Path(source)
    d = load_mapping(path, "topology")
    try:
        return topology_from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


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
