"""One radio opener: from a :class:`RadioSpec`, start what must run, open the radio, close it all on exit.

    with open_radio(RadioSpec("zmq", server_config="sim_fallback/configs/edge_server.toml")) as opened:
        opened.radio.transceive(x)        # edge -> server (the default wiring, below)
    with open_radio(RadioSpec("pluto", virtual=True, profile="pluto_1r1t")) as opened:
        ...                               # a virtual Pluto process was started and is stopped again

Train (``hil.train.links``), capture (``hil capture``) and the probe (``hil sim probe``) open their
radios here. Everything started or opened is pushed on one :class:`contextlib.ExitStack`, so it is
closed in reverse order on every exit path: a normal exit, an error while opening (the radio of a
server that was just started), an error in the body, Ctrl-C.

[Note: default wiring]
A Radio is one directed wiring (see [Note: wiring and reverse links] in ``hil/radio/base.py``). On a
channel server the wiring is chosen by :func:`default_wiring` from the server's ``info``:

- no node given: the first link of the topology, ``a -> b`` (the two-node topologies of training and
  ``edge_server.toml`` give ``edge -> server``);
- ``tx_node`` given (one node's radio, e.g. a node process opening its own): to the peer of that
  node's first link;
- ``rx_node`` given alone: from the peer of that node's first link.

``reverse()`` of the opened radio is the opposite direction over the same link.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping


from hil.errors import CaptureError, ConfigError
from hil.radio.base import Radio

log = logging.getLogger(__name__)

KINDS = ("loopback", "zmq", "pluto")


@dataclass(frozen=True)
class RadioSpec:
    """What radio to open (see :func:`open_radio`).

    Attributes:
        kind: ``"loopback"`` (in process), ``"zmq"`` (a client of the channel server) or ``"pluto"``
            (pyadi-iio: a real board or the virtual Pluto).
        channel: loopback: the ``hil.channel`` spec of the link, with ``n_tx`` and ``n_rx``
            (``build_reciprocal_link``; the radio has the reverse link).
        seed: loopback: seed of the channel's generator.
        sample_rate_hz: loopback: the nominal sample rate the radio reports.
        endpoint: zmq: the control endpoint of a running server (``tcp://127.0.0.1:PORT``).
        server_config: zmq: a topology (dict, or a .toml/.json path) to start a server on; it is
            stopped on exit. Exactly one of ``endpoint`` and ``server_config``.
        tx_node, rx_node: zmq: the wiring (see [Note: default wiring]); ``tx_node`` alone opens that
            node's radio.
        uri: pluto: the libiio URI of the (transmitting) board.
        rx_uri: pluto: a second board that receives (default: the board's own RX, cabled).
        profile: pluto: a profile name in ``firmware_configs/`` or a TOML path; None: the profile that
            matches the board (read before anything is applied).
        virtual: pluto: start ``hil emu pluto`` (mode from the profile; two boards with ``rx_uri``
            unset and ``boards=2``) and open it instead of ``uri``.
        virtual_boards: pluto, virtual: 1 (TX cabled to its own RX) or 2 (board 0 -> board 1).
        virtual_channel: pluto, virtual: the virtual Pluto's channel file (``--channel``).
        timeout_s: zmq: per-burst and control timeout.
        wait_s: zmq: how long a receive half waits for an armed burst (default ``timeout_s``).
        halves: zmq: ``"both"``, or ``"tx"``/``"rx"``: only that half of the wiring, for a node whose peer
            opens the other (see [Note: transmit and receive halves] in hil.radio.base).
    """

    kind: str
    channel: Mapping[str, Any] | None = None
    seed: int = 0
    sample_rate_hz: float = 1e6
    endpoint: str | None = None
    server_config: Mapping[str, Any] | str | Path | None = None
    tx_node: str | None = None
    rx_node: str | None = None
    uri: str | None = None
    rx_uri: str | None = None
    profile: str | Path | None = None
    virtual: bool = False
    virtual_boards: int = 1
    virtual_channel: str | Path | None = None
    timeout_s: float = 5.0
    halves: str = "both"
    wait_s: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"radio kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "zmq" and self.endpoint is not None and self.server_config is not None:
            raise ValueError("zmq: give endpoint= (a running server) or server_config= (start one), not both")
        if self.kind == "zmq" and self.endpoint is None and self.server_config is None:
            raise ValueError("zmq: give endpoint= (the control endpoint of a running server, printed by "
                             "`hil sim serve`) or server_config= (a topology to start a server on)")
        if self.kind == "pluto" and not self.uri and not self.virtual:
            raise ConfigError("pluto: give uri= (e.g. 'ip:192.168.2.1') or virtual=True (start `hil emu pluto`)")
        if self.halves != "both" and self.kind != "zmq":
            raise ValueError(f"halves={self.halves!r}: only a zmq radio opens one half of a link; {self.kind} "
                             "opens both")
        if self.kind == "loopback" and self.channel is None:
            raise ValueError("loopback: give channel= (a hil.channel spec with n_tx and n_rx)")


@dataclass
class OpenedRadio:
    """What :func:`open_radio` opened.

    Attributes:
        radio: the radio (closed on exit).
        info: what to record about it (backend, URI, nodes, link), e.g. SigMF ``hil:radio``.
        hw: a one-line description (SigMF ``core:hw``).
        server: the channel server's ``info`` (zmq), else None.
        started: the processes started for this radio (stopped on exit).
    """

    radio: Radio
    info: dict
    hw: str
    server: dict | None = None
    started: list = field(default_factory=list)


def default_wiring(info: Mapping[str, Any], tx_node: str | None = None, rx_node: str | None = None) -> tuple[str, str]:
    """The ``(tx, rx)`` nodes of a channel server's ``info`` (see [Note: default wiring]).

    Raises ValueError naming the nodes the server has when a node is unknown or has no link.
    """
    nodes = info.get("nodes", {})
    links = list(info.get("links", {}).values())
    for n, opt in ((tx_node, "tx_node"), (rx_node, "rx_node")):
        if n is not None and n not in nodes:
            raise ValueError(f"{opt} {n!r} is not a node of the channel server; it has {sorted(nodes)}")
    if tx_node is not None and rx_node is not None:
        return tx_node, rx_node
    if not links:
        raise ValueError(f"the channel server has no links (nodes {sorted(nodes)}); nothing to open")
    if tx_node is None and rx_node is None:
        return links[0]["src"], links[0]["dst"]
    if tx_node is not None:
        dst = next((lk["dst"] for lk in links if lk["src"] == tx_node), None)
        if dst is None:
            raise ValueError(f"node {tx_node!r} has no link to transmit on; give rx_node")
        return tx_node, dst
    src = next((lk["src"] for lk in links if lk["dst"] == rx_node), None)
    if src is None:
        raise ValueError(f"node {rx_node!r} has no link to receive on; give tx_node")
    return src, rx_node


@contextlib.contextmanager
def open_radio(spec: RadioSpec) -> Iterator[OpenedRadio]:
    """Open the radio of ``spec``, starting the channel server or virtual Pluto it needs.

    Yields an :class:`OpenedRadio`; on exit (also on an error while opening or in the body) the radio
    is closed, then every process started for it is stopped.

    Raises:
        ConfigError: a bad channel spec, topology or profile; ValueError: an unknown node;
        RadioError/RadioTimeout: a process or the radio did not come up.
    """
    with contextlib.ExitStack() as stack:
        opened = _OPENERS[spec.kind](spec, stack)
        yield opened


def _open_loopback(spec: RadioSpec, stack: contextlib.ExitStack) -> OpenedRadio:
    from hil.channel import build_reciprocal_link, link_generator
    from hil.radio.loopback import LoopbackRadio

    ch = dict(spec.channel or {})
    try:
        pair = build_reciprocal_link(ch, link_generator(spec.seed))
    except (ValueError, TypeError, CaptureError) as e:  # CaptureError: replay:DIR is not a recording
        raise ConfigError(f"loopback channel spec {ch!r}: {e}") from e
    radio = stack.enter_context(LoopbackRadio(pair.forward, pair.reverse, sample_rate_hz=spec.sample_rate_hz))
    return OpenedRadio(radio, {"backend": "loopback", "channel": ch}, "hil loopback radio (in process)")


def _open_zmq(spec: RadioSpec, stack: contextlib.ExitStack) -> OpenedRadio:
    from hil.radio import launch
    from hil.radio.zmq import ZmqRadio, control_request

    started = []
    if spec.server_config is not None:
        srv = stack.enter_context(launch.start_server(spec.server_config, log_level="WARNING"))
        started.append(srv)
        info = srv.info
    else:
        import zmq

        info = control_request(zmq.Context.instance(), spec.endpoint, {"cmd": "info"}, spec.timeout_s)
    tx, rx = default_wiring(info, spec.tx_node, spec.rx_node)
    radio = stack.enter_context(ZmqRadio(info, tx, rx, timeout_s=spec.timeout_s, halves=spec.halves,
                                                wait_s=spec.wait_s))
    link = info["links"].get(f"{tx}->{rx}", {})
    uri = info["control"]
    return OpenedRadio(radio, {"backend": "zmq", "uri": uri, "tx_node": tx, "rx_node": rx, "link": link,
                               "halves": spec.halves},
                       f"hil ZMQ channel server {uri}, {tx} -> {rx} ({link.get('model', 'channel')})",
                       server=info, started=started)


def _open_pluto(spec: RadioSpec, stack: contextlib.ExitStack) -> OpenedRadio:
    from hil.radio import launch, pluto

    uri, rx_uri, started = spec.uri, spec.rx_uri, []
    if spec.virtual:
        mode = pluto.PlutoRadio._as_profile(spec.profile or "pluto_1r1t").mode
        vp = stack.enter_context(launch.start_virtual_pluto(mode, spec.virtual_boards, spec.virtual_channel))
        started.append(vp)
        uri = vp.uris[0]
        rx_uri = vp.uris[1] if spec.virtual_boards == 2 else None
    radio = stack.enter_context(pluto.PlutoRadio(uri, spec.profile, rx_uri))
    prof = radio.profile
    return OpenedRadio(radio, {"backend": "pluto", "uri": uri, "rx_uri": rx_uri or uri, "profile": str(spec.profile or (radio.board.profile() if radio.board else ""))},
                       f"{prof.board_class} {prof.mode} at {uri}" + (f" -> {rx_uri}" if rx_uri else ""),
                       started=started)


_OPENERS = {"loopback": _open_loopback, "zmq": _open_zmq, "pluto": _open_pluto}
