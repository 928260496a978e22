"""ZmqRadio: a Radio that is a client of the ZMQ MIMO channel server (sim_fallback).

[Note: ZmqRadio wiring]
A ZmqRadio is one directed wiring ``tx_node -> rx_node`` of a running channel server (see
[Note: wiring and reverse links] in hil.radio.base). It asks the server's control socket for the
endpoints, connects one PUSH socket to each antenna stream of ``tx_node`` and one PULL socket to
each antenna stream of ``rx_node``. ``transceive`` sends one message per TX antenna, each a
two-frame message ``[JSON header, cf32 samples]`` with the header ``{"seq": k, "dst": rx_node}``, and
receives one message per RX antenna: the burst through the channel, with the link's noise margins
(lead + random jitter + trail), as complex64 ``(n_rx, m)``. ``reverse()`` is the ZmqRadio of
``rx_node -> tx_node`` over the same (transposed) channel.

Only one client may read a node's rx streams (PUSH deals messages round-robin between readers);
after a timeout the radio asks the server how many readers the stream has and, if another client
is reading it, says so instead of a bare timeout. After a timeout the radio drops its data sockets and reconnects, so nothing stale is read later;
ZMQ reconnects by itself after a server restart on the same endpoints.

[Note: the same-host data plane]
A burst of a radio with both halves in one process (``halves="both"``) on the server's host goes
through shared memory instead of the TCP streams (``data_plane="auto"``, the default; see [Note:
shared-memory data plane] in hil.radio.shm): the first burst opens a session for the wiring (two
slots, each as long as the longest capture so far), ``transmit`` copies the burst into a slot and
rings the doorbell, ``receive`` waits for the doorbell's answer and copies the capture out of the
slot. The server takes the burst as it takes one over TCP, so the capture is the same, bit for
bit. A server that refuses (another host, not Linux, too many sessions) leaves the radio on TCP
(logged once); ``data_plane="tcp"`` always uses TCP and ``"shm"`` raises instead of falling back.

[Note: busy wait]
Waiting for a capture through shared memory, the radio polls the doorbell without sleeping for up
to ``busy_wait_s`` (default :data:`BUSY_WAIT_S`) before it blocks, so the answer is taken without a
wake-up (`benchmarks/burst_round_trip.py` on a 2-core VM: 1.06 ms against 1.24 ms back to back,
1.35 against 1.49 ms after a 5 ms pause, docs/performance.md). The TCP streams do not busy-wait:
there the polling competes with ZMQ's I/O thread for the cores and the round trip got slower
(3.29 against 2.10 ms in the same run). ``busy_wait_s=0`` sleeps at once.

[Note: endpoints a client binds]
Where the server connects (``tx_role``/``rx_role`` "connect"), the client binds the endpoint the
server names. Binding an ``ipc://`` path unlinks an existing file of that name first (libzmq), and
binding a ``tcp://`` address on another interface opens a port to the network; so endpoints that
came over the network (the control socket's ``info`` reply) are bound only if they are ``tcp://``
on a loopback address. An ``info`` dict the caller passes itself (the server's ready line or
``--endpoints-file``) is the caller's choice and is bound as given.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from typing import Any, Sequence

import numpy as np
import zmq

from hil.errors import RadioError, RadioTimeout
from hil.radio.base import Radio, RadioCaps, as_samples

log = logging.getLogger(__name__)

#: Which halves of a wiring a ZmqRadio opens (see [Note: transmit and receive halves] in hil.radio.base).
HALVES = ("both", "tx", "rx")
#: Data planes of a burst (see [Note: the same-host data plane]).
DATA_PLANES = ("auto", "tcp", "shm")
#: Default busy wait for a capture, seconds (see [Note: busy wait]).
BUSY_WAIT_S = 0.005
#: Smallest shared-memory slot a radio asks for (samples per antenna).
_SHM_MIN_SLOT = 1 << 14


def control_request(ctx: zmq.Context, endpoint: str, req: dict, timeout_s: float, retries: int = 1) -> dict:
    """One JSON request/reply on the server's control socket (lazy-pirate: a fresh REQ per try).

    Raises:
        RadioTimeout: no reply within ``timeout_s`` (per try), naming the endpoint.
        RadioError: the server replied ``ok: false``.
    """
    payload = json.dumps(req).encode()
    for attempt in range(retries + 1):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        try:
            s.connect(endpoint)
            s.send(payload)
            if s.poll(int(timeout_s * 1000), zmq.POLLIN):
                reply = json.loads(s.recv())
                break
        finally:
            s.close(0)
    else:
        raise RadioTimeout(
            f"channel server control {endpoint} did not answer {req.get('cmd')!r} within {timeout_s:.1f} s "
            f"({retries + 1} tries); is it running (hil sim serve --config FILE)?"
        )
    if not reply.get("ok", False):
        raise RadioError(f"channel server {endpoint} refused {req!r}: {reply.get('error')}")
    return reply


def is_loopback_tcp(endpoint: str) -> bool:
    """Whether ``endpoint`` is ``tcp://HOST:PORT`` with HOST a loopback address (or ``localhost``)."""
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_endpoints(info: dict, source: str) -> None:
    """Refuse an ``info`` from the network that would make a client bind a non-loopback or ipc endpoint.

    See [Note: endpoints a client binds]. Raises RadioError naming the node, the endpoint and ``source``.
    """
    for name, node in info["nodes"].items():
        for role, key in (("tx_role", "tx"), ("rx_role", "rx")):
            if node.get(role, "bind") != "connect":
                continue
            for ep in node[key]:
                if not is_loopback_tcp(ep):
                    raise RadioError(
                        f"channel server {source} asks clients to bind {ep!r} (node {name!r} {key}); a client "
                        "binds only tcp:// loopback endpoints named over the network. Pass the server's info "
                        "(its ready line or --endpoints-file JSON) to ZmqRadio to bind other endpoints")


class ZmqRadio(Radio):
    """Client of the channel server: the directed wiring ``tx_node -> rx_node`` (see [Note: ZmqRadio wiring]).

    Args:
        control: the server's control endpoint (``tcp://127.0.0.1:PORT``), or the server's ``info``
            dict (what the server prints when ready), which skips the control round trip.
        tx_node: the node whose antennas transmit.
        rx_node: the node whose antennas receive (a linked peer of ``tx_node``).
        timeout_s: how long ``transceive``/``rx`` wait for the capture, and the control timeout.
        wait_s: how long :meth:`receive` waits for the capture of an armed burst (default ``timeout_s``): on a
            receive half whose transmitter is another process, that process's own work before it sends too.
        context: a ZMQ context to share (default: a new one, terminated by ``close``).
        halves: ``"both"`` (default), ``"tx"`` (only :meth:`transmit`: the receiver is another process) or
            ``"rx"`` (only :meth:`arm_receive`/:meth:`receive`); see [Note: transmit and receive halves] in
            hil.radio.base. A transmit-only radio never reads ``rx_node``'s streams, so it does not take
            captures from the process that receives them.
        data_plane: ``"auto"`` (default: shared memory on the server's host, else TCP), ``"tcp"`` or ``"shm"``
            (see [Note: the same-host data plane]).
        busy_wait_s: how long a wait for a capture through shared memory polls before it sleeps (see
            [Note: busy wait]).

    Raises:
        ValueError: unknown node names or nodes that are not linked.
        RadioTimeout: the control socket does not answer.
    """

    def __init__(self, control: str | dict, tx_node: str, rx_node: str, *, timeout_s: float = 5.0,
                 context: zmq.Context | None = None, halves: str = "both", wait_s: float | None = None,
                 data_plane: str = "auto", busy_wait_s: float = BUSY_WAIT_S):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if wait_s is not None and wait_s <= 0:
            raise ValueError(f"wait_s must be > 0, got {wait_s}")
        if halves not in HALVES:
            raise ValueError(f"halves must be one of {HALVES}, got {halves!r}")
        if data_plane not in DATA_PLANES:
            raise ValueError(f"data_plane must be one of {DATA_PLANES}, got {data_plane!r}")
        if not busy_wait_s >= 0:
            raise ValueError(f"busy_wait_s must be >= 0, got {busy_wait_s}")
        self.halves = halves
        self.data_plane = data_plane
        self.busy_wait_s = float(busy_wait_s)
        self._shm = None  # the ShmClient of the same-host data plane, once opened
        self._shm_off = True  # bursts go over TCP (set in the body: see _shm_plausible)
        self._shm_inflight: list[tuple[int, int]] = []  # (slot, capture length) of bursts sent, in order
        self._expect: int | None = None
        self.timeout_s = float(timeout_s)
        self.wait_s = self.timeout_s if wait_s is None else float(wait_s)
        self._own_ctx = context is None
        self.ctx = context or zmq.Context()
        self._closed = False
        self._reverse: ZmqRadio | None = None
        self._tx: list[zmq.Socket] = []
        self._rx: list[zmq.Socket] = []
        try:
            if isinstance(control, dict):
                info = control
            else:
                info = control_request(self.ctx, control, {"cmd": "info"}, self.timeout_s)
                check_bind_endpoints(info, control)
            self.info = info
            self.control = info["control"]
            nodes = info["nodes"]
            for n in (tx_node, rx_node):
                if n not in nodes:
                    raise ValueError(f"unknown node {n!r}; the server has nodes {sorted(nodes)}")
            if rx_node not in nodes[tx_node]["peers"]:
                raise ValueError(f"no link {tx_node!r} -> {rx_node!r}; {tx_node!r} is linked to "
                                 f"{nodes[tx_node]['peers']}")
            self.tx_node, self.rx_node = tx_node, rx_node
            self.tx_endpoints: list[str] = list(nodes[tx_node]["tx"])
            self.rx_endpoints: list[str] = list(nodes[rx_node]["rx"])
            self.tx_role = nodes[tx_node].get("tx_role", "bind")
            self.rx_role = nodes[rx_node].get("rx_role", "bind")
            self.pattern_tx = nodes[tx_node].get("pattern", "pushpull")
            self.pattern_rx = nodes[rx_node].get("pattern", "pushpull")
            self.stream_mode = nodes[tx_node].get("mode") == "stream"
            link = info["links"][f"{tx_node}->{rx_node}"]
            self.lead_samples = int(link["lead_samples"])
            self.lead_jitter = int(link["lead_jitter"])
            self.trail_samples = int(link["trail_samples"])
            self.sample_rate_hz = float(info["sample_rate_hz"])
            self.max_message_bytes = int(info["max_message_bytes"])
            self._seq = 0
            self._sender = os.urandom(6).hex()  # tells our bursts apart from other clients' of the same node
            if self._shm_plausible():
                self._shm_off = False  # the rx streams are connected only if the bursts go over TCP after all
            else:
                self._shm_off = True
                self._open_data()
            if self.tx_role == "bind" and halves != "rx":  # we connect: open now (a PUB must join before it sends);
                self._open_tx()          # where we would bind (the server connects), on the first send
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ sockets
    def _open_data(self) -> None:
        """(Re)create the rx sockets (tx sockets: :meth:`_open_tx`, at construction or on the first send).

        The server binds by default, so we connect; where the server connects (tx_role/rx_role
        "connect"), we bind the endpoint it connects to (unless someone else, e.g. GNU Radio, has)."""
        if self.halves == "tx":
            return
        for ep in self.rx_endpoints:
            s = self.ctx.socket(zmq.SUB if self.pattern_rx == "pubsub" else zmq.PULL)
            s.setsockopt(zmq.LINGER, 0)
            if self.pattern_rx == "pubsub":
                s.setsockopt(zmq.SUBSCRIBE, b"")
            (s.bind if self.rx_role == "connect" else s.connect)(ep)
            self._rx.append(s)

    def _open_tx(self) -> None:
        if self.halves == "rx":
            raise RadioError(f"{self!r} is a receive half (halves=\"rx\"): it does not transmit")
        for ep in self.tx_endpoints:
            s = self.ctx.socket(zmq.PUB if self.pattern_tx == "pubsub" else zmq.PUSH)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDTIMEO, int(self.timeout_s * 1000))
            (s.bind if self.tx_role == "connect" else s.connect)(ep)
            self._tx.append(s)

    def _close_data(self) -> None:
        for s in self._tx + self._rx:
            s.close(0)
        self._tx, self._rx = [], []

    def _reset(self) -> None:
        """Drop queued and half-received data after a failure; ZMQ reconnects the fresh sockets.

        Only PUSH/PULL sockets are renewed: PUB/SUB never queue stale data (and a fresh SUB would
        miss messages until it has joined again)."""
        if self.pattern_tx != "pubsub":
            for s in self._tx:
                s.close(0)
            self._tx = []
        if self.pattern_rx != "pubsub":
            for s in self._rx:
                s.close(0)
            self._rx = []
            self._open_data()

    def _check_open(self) -> None:
        if self._closed:
            raise RadioError(f"ZmqRadio {self.tx_node}->{self.rx_node} is closed; create a new one")

    # ------------------------------------------------------------------ Radio
    @property
    def caps(self) -> RadioCaps:
        n = self.info["nodes"]
        return RadioCaps(
            n_tx=n[self.tx_node]["antennas"],
            n_rx=n[self.rx_node]["antennas"],
            sample_rate_range_hz=(self.sample_rate_hz, self.sample_rate_hz),
            max_burst_samples=self.max_message_bytes // 8,
        )

    def capture_samples(self, n: int, rx_samples: int | None = None) -> int:
        """Length of the capture ``transceive`` returns for an ``n``-sample burst."""
        m = self.lead_samples + self.lead_jitter + n + self.trail_samples
        return max(m, int(rx_samples or 0))

    def _send(self, x: np.ndarray, header: dict | None) -> None:
        hdr = json.dumps(header).encode() if header is not None else None
        if not self._tx:
            self._open_tx()
        for i, s in enumerate(self._tx):
            row = x[i]
            try:
                if hdr is None:
                    s.send(row, copy=row.nbytes < 65536)
                else:
                    s.send_multipart([hdr, row], copy=row.nbytes < 65536)
            except zmq.Again as e:
                self._reset()
                raise RadioTimeout(
                    f"could not send to node {self.tx_node!r} antenna {i} at {self.tx_endpoints[i]} within "
                    f"{self.timeout_s:.1f} s (server not reading?)"
                ) from e

    def _recv_row(self, i: int, deadline: float, expect: int | None, window: float | None = None) -> np.ndarray:
        s = self._rx[i]
        window = self.timeout_s if window is None else window
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not s.poll(max(1, int(left * 1000)), zmq.POLLIN):
                readers = self._readers(i)
                self._reset()
                if readers > 1:
                    raise RadioError(
                        f"no samples from node {self.rx_node!r} antenna {i} at {self.rx_endpoints[i]} within "
                        f"{window:.1f} s: the stream already has another reader ({readers} clients "
                        "connected; the server deals the output between them). Close the other client (another "
                        "ZmqRadio, a GNU Radio flowgraph) or give each client its own node")
                raise RadioTimeout(
                    f"no samples from node {self.rx_node!r} antenna {i} at {self.rx_endpoints[i]} within "
                    f"{window:.1f} s; is the channel server running and {self.tx_node!r} -> "
                    f"{self.rx_node!r} linked?"
                )
            frame = s.recv(copy=False)
            if len(frame.buffer) % 8:
                raise RadioError(f"node {self.rx_node!r} antenna {i}: {len(frame.buffer)} bytes is not cf32")
            row = np.frombuffer(frame.buffer, np.complex64)
            if expect is None or row.size == expect:
                return row
            log.warning("discarding a stale %d-sample message on %s (expected %d)", row.size,
                        self.rx_endpoints[i], expect)

    def _readers(self, i: int) -> int:
        """Clients connected to ``rx_node``'s antenna ``i`` stream, by the server's count (0 if unknown)."""
        if self.pattern_rx == "pubsub":
            return 0  # every subscriber gets every message: more readers are fine
        try:
            st = control_request(self.ctx, self.control, {"cmd": "stats"}, min(1.0, self.timeout_s), retries=0)
            return int(st["nodes"][self.rx_node]["readers"][i])
        except (RadioError, KeyError, IndexError, TypeError, ValueError):
            return 0

    def _drain(self) -> int:
        n = 0
        for s in self._rx:
            while True:
                try:
                    s.recv(zmq.NOBLOCK, copy=False)
                    n += 1
                except zmq.Again:
                    break
        if n:
            log.warning("discarded %d stale message(s) on %s's rx streams", n, self.rx_node)
        return n

    def _check_burst(self, n: int, rx_samples: int | None) -> int:
        """The capture length of an ``n``-sample burst (ValueError when the server would refuse it)."""
        if self.stream_mode:
            raise RadioError(f"node {self.tx_node!r} is in stream mode; use tx()/rx() or set mode = \"burst\"")
        if n <= 0:
            raise ValueError("tx_burst is empty; send at least one sample")
        m = self.capture_samples(n, rx_samples)
        extra = self.info.get("limits", {}).get("max_extra_rx_samples")
        if extra is not None and m > self.capture_samples(n) + int(extra):
            raise ValueError(f"rx_samples={m} for a {n}-sample burst: the server captures at most "
                             f"{self.capture_samples(n) + int(extra)} (lead + jitter + n + trail + {int(extra)})")
        if max(n, m) * 8 > self.max_message_bytes:
            raise ValueError(f"burst of {n} samples ({m} captured) exceeds the server's max_message_bytes "
                             f"{self.max_message_bytes} ({self.max_message_bytes // 8} samples); split it")
        return m

    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        """Send one burst from ``tx_node`` and return ``rx_node``'s capture (:meth:`arm_receive`,
        :meth:`transmit`, :meth:`receive` in one call).

        Args:
            tx_burst: complex64 ``(n_tx, n)`` (1-D for one antenna), full scale 1.0.
            rx_samples: capture length per receive antenna; default (and minimum) ``lead + jitter +
                n + trail`` of the link (see :meth:`capture_samples`).

        Returns:
            complex64 ``(n_rx, m)``. The burst starts somewhere in ``lead .. lead + jitter``: synchronise.

        Raises:
            ValueError: wrong antenna count, NaN/Inf, empty, or larger than the server accepts.
            RadioTimeout: the server did not deliver the capture within ``timeout_s`` (names the endpoint).
        """
        self._check_open()
        x = as_samples(tx_burst, self.caps.n_tx, "tx_burst")
        self._check_burst(x.shape[1], rx_samples)
        self.arm_receive(x.shape[1], rx_samples)
        self.transmit(x, rx_samples)
        return self.receive()

    def arm_receive(self, n: int, rx_samples: int | None = None) -> None:
        """Receive half: drop anything stale on ``rx_node``'s streams and expect the capture of an ``n``-sample
        burst (``lead + jitter + n + trail``, or ``rx_samples``) for :meth:`receive`."""
        self._check_open()
        if self.halves == "tx":
            raise RadioError(f"{self!r} is a transmit half (halves=\"tx\"): open the receiving node's radio "
                             "with halves=\"rx\" to capture")
        self._expect = self._check_burst(int(n), rx_samples)
        if self._shm is None:
            self._drain()

    def transmit(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> None:
        """Transmit half: send one burst from ``tx_node`` to ``rx_node`` (``rx_samples``: the capture length the
        receiver armed for, when not the default). Returns once the samples are queued for the server."""
        self._check_open()
        x = np.ascontiguousarray(as_samples(tx_burst, self.caps.n_tx, "tx_burst"))
        m = self._check_burst(x.shape[1], rx_samples)
        if self._shm_ready(m) and self._shm_transmit(x, m, rx_samples):
            return
        self._seq += 1
        header: dict[str, Any] = {"seq": self._seq, "dst": self.rx_node, "sender": self._sender}
        if rx_samples is not None:
            header["rx_samples"] = int(rx_samples)
        self._send(x, header)

    def receive(self) -> np.ndarray:
        """Receive half: the capture of the armed burst, complex64 ``(n_rx, m)``, within ``wait_s``.

        Raises:
            RadioError: :meth:`arm_receive` was not called first.
            RadioTimeout: nothing arrived in time (names the endpoint).
        """
        self._check_open()
        if self._expect is None:
            raise RadioError(f"{self!r}: call arm_receive(n) before receive()")
        m, self._expect = self._expect, None
        if self._shm_inflight:
            return self._shm_receive(m)
        deadline = time.monotonic() + self.wait_s
        return np.stack([self._recv_row(i, deadline, m, self.wait_s) for i in range(len(self._rx))])

    # ------------------------------------------------------------------ the same-host data plane
    def _shm_plausible(self) -> bool:
        """Whether bursts may go through shared memory: not ruled out by the options, the node's mode or
        the server's address (the server may still refuse; see [Note: the same-host data plane])."""
        from hil.radio import shm

        local = is_loopback_tcp(self.control) or self.control.startswith(("ipc://", "inproc://"))
        return (self.data_plane != "tcp" and self.halves == "both" and not self.stream_mode
                and (self.data_plane == "shm" or (local and shm.AVAILABLE)))

    def _shm_ready(self, m: int) -> bool:
        """Whether a burst with an ``m``-sample capture goes through shared memory (opening or growing
        the session when needed); see [Note: the same-host data plane]."""
        if self._shm_off:
            return False
        c = self._shm
        if c is not None and m <= c.slot_samples:
            return True
        if self._shm_inflight:
            raise RadioError(f"{self!r}: receive the {len(self._shm_inflight)} burst(s) in flight before "
                             f"sending one with a longer capture ({m} samples)")
        from hil.errors import ConfigError
        from hil.radio import shm

        local = is_loopback_tcp(self.control) or self.control.startswith(("ipc://", "inproc://"))
        why = None if local and shm.AVAILABLE else "the server is not on this host" if shm.AVAILABLE else \
            "shared memory needs Linux"
        if why is None:
            self._shm_close()
            try:
                self._shm = shm.ShmClient(self.ctx, self.control, self.tx_node, self.rx_node,
                                          slot_samples=max(_SHM_MIN_SLOT, 1 << (m - 1).bit_length()), slots=2,
                                          timeout_s=self.timeout_s)
                self._shm_next = 0
                return True
            except RadioTimeout:
                raise  # the server does not answer: TCP would not fare better
            except (ConfigError, RadioError, OSError) as e:
                why = str(e)
        if self.data_plane == "shm":
            raise RadioError(f"{self!r}: data_plane='shm' but {why}; use data_plane='auto' or 'tcp'")
        log.info("%r: bursts go over TCP (%s)", self, why)
        self._shm_off = True
        if not self._rx:
            self._open_data()
        return False

    def _shm_transmit(self, x: np.ndarray, m: int, rx_samples: int | None) -> bool:
        """Send through the session; False: the server's session is gone and a new one was refused
        (the burst goes over TCP)."""
        c = self._shm
        if len(self._shm_inflight) == c.slots:
            raise RadioError(f"{self!r}: {c.slots} bursts are in flight; receive one before sending another")
        if not self._shm_inflight:
            self._shm_next = 0
        j = (self._shm_next + len(self._shm_inflight)) % c.slots
        np.copyto(c.input_slot(j, x.shape[1]), x)
        self._seq += 1
        try:
            c.submit(j, x.shape[1], int(rx_samples or 0), self._seq)
        except OSError:
            # the server's doorbell is gone (the server restarted): a new session, once; TCP reconnects
            # by itself the same way
            if self._shm_inflight:
                self._shm_close()
                raise RadioError(f"{self!r}: the channel server's shared-memory session ended with "
                                 "bursts in flight; send them again") from None
            self._shm_close()
            return self._shm_ready(m) and self._shm_transmit(x, m, rx_samples)
        self._shm_inflight.append((j, m))
        return True

    def _shm_receive(self, m: int) -> np.ndarray:
        j_sent, m_sent = self._shm_inflight.pop(0)
        self._shm_next = (j_sent + 1) % self._shm.slots
        where = f"{self.tx_node!r} -> {self.rx_node!r}"
        try:
            j, y = self._shm.result(self.wait_s, self.busy_wait_s)
        except TimeoutError:
            self._shm_close()  # a late answer must not pass for the next burst's
            raise RadioTimeout(f"no capture {where} from the channel server at {self.control} within "
                               f"{self.wait_s:.1f} s (shared memory); is the channel server running?") from None
        if y is None:
            raise RadioError(f"the channel server at {self.control} rejected the burst {where} (see its log, or "
                             "stats()['rejected_by_reason'])")
        if j != j_sent or y.shape[1] != m_sent:
            self._shm_close()
            raise RadioError(f"shared-memory answer {where} for slot {j} of {y.shape[1]} samples, expected slot "
                             f"{j_sent} of {m_sent}; the session was reset")
        if m != m_sent:
            raise RadioError(f"armed for a {m}-sample capture {where} but the burst sent has {m_sent}; arm with "
                             "the burst's length")
        return y.copy()

    def _shm_close(self) -> None:
        c, self._shm = self._shm, None
        self._shm_inflight.clear()
        if c is not None:
            c.close()

    def tx(self, samples: np.ndarray) -> None:
        """Stream mode: send a chunk of ``(n_tx, n)`` samples (the server applies the channel continuously)."""
        self._check_open()
        if not self.stream_mode:
            raise RadioError(f"node {self.tx_node!r} is in burst mode; use transceive() or set mode = \"stream\"")
        x = np.ascontiguousarray(as_samples(samples, self.caps.n_tx, "samples"))
        self._send(x, None)

    def rx(self, n_samples: int) -> np.ndarray:
        """Stream mode: receive exactly ``n_samples`` per antenna, complex64 ``(n_rx, n_samples)``.

        Samples beyond ``n_samples`` in the last message are kept for the next call.
        """
        self._check_open()
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        if not hasattr(self, "_rx_left"):
            self._rx_left = [np.zeros(0, np.complex64) for _ in self._rx]
        deadline = time.monotonic() + self.timeout_s
        out = np.empty((len(self._rx), n_samples), np.complex64)
        for i in range(len(self._rx)):
            have, left = 0, self._rx_left[i]
            while True:
                k = min(left.size, n_samples - have)
                out[i, have:have + k] = left[:k]
                have += k
                left = left[k:]
                if have == n_samples:
                    break
                left = self._recv_row(i, deadline, None)
            self._rx_left[i] = left
        return out

    def reverse(self) -> "ZmqRadio":
        """The ZmqRadio ``rx_node -> tx_node`` over the same link (the transposed channel), cached."""
        self._check_open()
        if self._reverse is None or self._reverse._closed:
            self._reverse = ZmqRadio(self.info, self.rx_node, self.tx_node, timeout_s=self.timeout_s,
                                     context=self.ctx, halves={"tx": "rx", "rx": "tx"}.get(self.halves, "both"),
                                     wait_s=self.wait_s, data_plane=self.data_plane, busy_wait_s=self.busy_wait_s)
            self._reverse._reverse = self
        return self._reverse

    # ------------------------------------------------------------------ metadata
    def request(self, cmd: str, **kw: Any) -> dict:
        """A control request (``ping``, ``info``, ``stats``, ``last``, ``state``); returns the reply dict."""
        self._check_open()
        return control_request(self.ctx, self.control, {"cmd": cmd, **kw}, self.timeout_s)

    def stats(self) -> dict:
        """The server's counters (samples, bursts, rejected by reason, dropped, sequence numbers)."""
        return self.request("stats")

    def last_burst(self) -> dict | None:
        """The server's record of the last burst delivered on this wiring (with the true burst start and
        channel state when the server runs in test mode)."""
        return self.request("last", node=self.rx_node, src=self.tx_node)["event"]

    def close(self) -> None:
        """Close the data sockets (and the reverse radio's). Idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._shm_close()
        self._close_data()
        rev, self._reverse = self._reverse, None
        if rev is not None:
            rev._reverse = None
            rev.close()
        if self._own_ctx:
            self.ctx.term()

    def __repr__(self) -> str:
        return f"ZmqRadio({getattr(self, 'control', '?')!r}, {getattr(self, 'tx_node', '?')!r} -> " \
               f"{getattr(self, 'rx_node', '?')!r})"


def open_link(control: str | dict, tx_node: str, rx_node: str, **kw: Any) -> ZmqRadio:
    """``ZmqRadio(control, tx_node, rx_node, **kw)``; its ``reverse()`` is the other direction."""
    return ZmqRadio(control, tx_node, rx_node, **kw)


__all__: Sequence[str] = ["ZmqRadio", "check_bind_endpoints", "control_request", "is_loopback_tcp", "open_link"]
