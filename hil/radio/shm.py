"""Same-host data plane of the channel server: shared-memory slot rings with a datagram doorbell.

[Note: shared-memory data plane]
Over TCP every chunk is copied into a socket, through the kernel, out of it and into a new array
on each side, and each message passes two ZMQ I/O threads on its way. Between a client and a server
on one host the samples need not move at all: the server creates two POSIX shared-memory segments
(``/dev/shm``) for one link direction ``src -> dst``, an *input* ring and an *output* ring of
``slots`` slots of ``[antennas, slot_samples]`` complex64 each; the client writes into input slot
``j`` and rings the doorbell, a 32-byte datagram ``(j, n, capture, seq)`` on a Unix socket in Linux's
abstract namespace (see :class:`Doorbell`: the thread waiting on it wakes directly, with no I/O
thread between). Each segment starts with a 64-byte header (magic, slots, antennas, slot samples,
counters). The client may have ``slots`` requests in flight; it rewrites slot ``j`` only after it
has taken output ``j``.

A session serves the mode of its source node:

- stream mode (*chunks*): slot ``j`` holds ``n`` samples of the stream; the session's thread
  validates the slot as it would a TCP message (NaN/Inf, saturation), runs the link's channel model
  *from* the input slot *into* output slot ``j`` (no per-chunk allocation with the fused kernel, see
  ``hil.channel.fast``, which checks the slot while it copies it into its own buffer and filters that
  checked copy) and answers ``(j, n, 0, 0)``.
- burst mode (*bursts*, what :class:`hil.radio.zmq.ZmqRadio` uses): slot ``j`` holds one burst of
  ``n`` samples per antenna and ``capture`` is the capture length the receiver armed for (0: the
  default ``lead + jitter + n + trail``) and ``seq`` the burst's number (the ``tx_seq`` of its event). The server's loop takes it exactly as it takes a burst
  over TCP (the same checks, the same jitter draw, the same model call on the padded block, the same
  events and counters), writes the capture into output slot ``j`` and answers ``(j, m, 0)`` with its
  length ``m``, ``(j, m, 0, seq)``. A burst therefore gives the same capture, bit for bit, over either data plane.

A rejected request is answered with ``m = -1``. A session is negotiated on the control socket
(``{"cmd": "shm_open", "src", "dst", "slot_samples", "slots"}``) and offered only to a peer on
127.0.0.1 / ::1 (or over ipc/inproc) and on Linux: TCP stays the data plane of GNU Radio and of
remote peers, unchanged on the wire.

Security: names come from the network, so a client only *attaches* to a segment and only rings a
doorbell whose name :func:`validate_name` accepts (our prefix, a short run of ``[A-Za-z0-9_-]``, no
path separator), and never creates one at a name the server chose. An abstract socket has no file,
so a name cannot point anywhere in the file system.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import sys
import time
from multiprocessing import shared_memory

import numpy as np

from hil.errors import ConfigError

#: Prefix of every segment name the channel server creates.
SHM_PREFIX = "hil-chsrv-"
_NAME_RE = re.compile(r"^hil-chsrv-[A-Za-z0-9_-]{1,80}$")
HEADER_BYTES = 64
_MAGIC = 0x48494C53484D3031  # "HILSHM01"
#: Largest ring the server creates (bytes per segment).
MAX_RING_BYTES = 1 << 30
#: One doorbell datagram: (slot, samples, capture, sequence number). See [Note: shared-memory data plane].
DOORBELL = struct.Struct("<qqqq")
#: Whether this platform has the doorbell's abstract Unix sockets (the data plane needs them).
AVAILABLE = sys.platform.startswith("linux")


def validate_name(name: object) -> str:
    """``name`` if it is a segment name of ours (prefix, ``[A-Za-z0-9_-]``, no path separator), else ConfigError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or "/" in name or "\\" in name:
        raise ConfigError(f"shared-memory name {name!r:.100} from the server is not ours (expected "
                          f"{SHM_PREFIX}[A-Za-z0-9_-]+); refusing to open it")
    return name


class Doorbell:
    """A datagram socket in Linux's abstract namespace: the doorbell of a shared-memory session.

    ``Doorbell(name)`` binds ``name`` (one of ours, see :func:`validate_name`); ``peer``: the name
    :meth:`ring` sends to (the client's is the server's doorbell; the server answers each datagram's
    sender). Datagrams are :data:`DOORBELL` quadruples; anything else is returned as ``None`` by
    :meth:`wait` so the caller can count it.
    """

    def __init__(self, name: str, peer: str | None = None):
        if not AVAILABLE:
            raise ConfigError("the shared-memory data plane needs Linux (abstract Unix sockets); use TCP")
        self.name = validate_name(name)
        self.peer = None if peer is None else "\0" + validate_name(peer)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind("\0" + self.name)
        except OSError:
            self.sock.close()
            raise

    @classmethod
    def client(cls, server: str) -> "Doorbell":
        """A client's doorbell (a fresh name of its own) that rings the server's doorbell ``server``."""
        return cls(f"{SHM_PREFIX}{secrets.token_hex(8)}-c", peer=validate_name(server))

    def fileno(self) -> int:
        return self.sock.fileno()

    def ring(self, j: int, n: int, capture: int = 0, seq: int = 0, to: object = None) -> None:
        """Send ``(j, n, capture, seq)`` to the peer (or to ``to``, the address of a received datagram)."""
        self.sock.sendto(DOORBELL.pack(j, n, capture, seq), self.peer if to is None else to)

    def take(self) -> tuple[tuple[int, int, int, int] | None, object, int] | None:
        """One waiting datagram without blocking: ``(quadruple or None, sender, size)``; None when none waits."""
        try:
            data, addr = self.sock.recvfrom(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        return (DOORBELL.unpack(data) if len(data) == DOORBELL.size else None), addr, len(data)

    def wait(self, timeout_s: float, busy_s: float = 0.0) -> tuple[int, int, int, int] | None:
        """The next quadruple, waiting at most ``timeout_s`` (None: nothing came; a malformed datagram is skipped).

        The first ``busy_s`` seconds poll without sleeping (see [Note: busy wait] in hil.radio.zmq)."""
        end = time.monotonic() + timeout_s
        spin_end = time.monotonic() + min(busy_s, timeout_s)
        while True:
            got = self.take()
            if got is not None:
                if got[0] is not None:
                    return got[0]
                continue
            now = time.monotonic()
            if now >= end:
                return None
            if now < spin_end:
                continue
            self.sock.settimeout(end - now)
            try:
                data = self.sock.recv(64)
            except (TimeoutError, socket.timeout):
                return None
            finally:
                self.sock.setblocking(True)
            if len(data) == DOORBELL.size:
                return DOORBELL.unpack(data)

    def close(self) -> None:
        self.sock.close()


class ShmRing:
    """``slots`` slots of complex64 ``[antennas, slot_samples]`` in one shared-memory segment."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self.shm, self.owner = shm, owner
        magic, slots, ants, n = struct.unpack_from("<QQQQ", shm.buf, 0)
        if magic != _MAGIC:
            raise ConfigError(f"shared-memory segment {shm.name!r} is not a hil channel-server ring")
        need = HEADER_BYTES + slots * ants * n * 8
        if shm.size < need:
            raise ConfigError(f"shared-memory segment {shm.name!r} is {shm.size} bytes, its header says {need}")
        self.slots, self.antennas, self.slot_samples = int(slots), int(ants), int(n)
        self.data = np.ndarray((self.slots, self.antennas, self.slot_samples), np.complex64, shm.buf, HEADER_BYTES)
        self.counters = np.ndarray((2,), np.uint64, shm.buf, 32)

    def packed(self, j: int, n: int) -> np.ndarray:
        """Slot ``j`` as a C-contiguous ``[antennas, n]`` view (a chunk of ``n <= slot_samples`` samples)."""
        if not (0 <= j < self.slots and 0 <= n <= self.slot_samples):
            raise ValueError(f"slot {j} of {self.slots}, {n} samples of at most {self.slot_samples}")
        return self.data[j].reshape(-1)[: self.antennas * n].reshape(self.antennas, n)

    @classmethod
    def create(cls, name: str, slots: int, antennas: int, slot_samples: int) -> "ShmRing":
        size = HEADER_BYTES + slots * antennas * slot_samples * 8
        if size > MAX_RING_BYTES:
            raise ValueError(f"a ring of {slots} x {antennas} x {slot_samples} samples is {size} bytes "
                             f"> {MAX_RING_BYTES}; use fewer slots or smaller chunks")
        shm = shared_memory.SharedMemory(name=validate_name(name), create=True, size=size)
        _CREATED.add(shm.name)
        struct.pack_into("<QQQQQQ", shm.buf, 0, _MAGIC, slots, antennas, slot_samples, 0, 0)
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> "ShmRing":
        """Open an existing segment of ours (never creates one)."""
        try:
            shm = shared_memory.SharedMemory(name=validate_name(name), create=False)
        except FileNotFoundError as e:
            raise ConfigError(f"shared-memory segment {name!r} does not exist (is the server on this host?)") from e
        try:
            if shm.name not in _CREATED:  # a server in this same process keeps its own registration
                _untrack(shm)
            return cls(shm, owner=False)
        except Exception:
            shm.close()
            raise

    def close(self) -> None:
        self.data = self.counters = None  # drop the views before closing the mapping
        try:
            self.shm.close()
        except BufferError:  # a caller still holds a view: the mapping goes with the process
            return
        if self.owner:
            _CREATED.discard(self.shm.name)
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


#: Names of the segments this process created (and unlinks itself).
_CREATED: set[str] = set()


def _untrack(shm: shared_memory.SharedMemory) -> None:
    """An attached segment is the server's: keep Python's resource tracker from unlinking it at exit."""
    try:
        from multiprocessing import resource_tracker

        resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001 - documented workaround
    except Exception:  # noqa: BLE001 - best effort (Python 3.13 has track=False instead)
        pass


class ShmClient:
    """The client end of a shared-memory session with a channel server (see [Note: shared-memory data plane]).

    Args:
        ctx: a ZMQ context (for the control requests).
        control: the server's control endpoint.
        src, dst: the link direction (``src``'s transmit stream through the channel to ``dst``).
        slot_samples: samples per antenna of a slot: the largest chunk, or the largest capture of a burst.
        slots: requests in flight.

    Raises:
        ConfigError: the server refused (its reason), or what it answered is not ours.
        RadioError / RadioTimeout: the control request failed.
    """

    def __init__(self, ctx, control: str, src: str, dst: str, slot_samples: int = 1 << 18, slots: int = 4,
                 timeout_s: float = 10.0):
        from hil.radio.zmq import control_request

        rep = control_request(ctx, control, {"cmd": "shm_open", "src": src, "dst": dst,
                                             "slot_samples": int(slot_samples), "slots": int(slots)}, timeout_s)
        if not rep.get("ok"):
            raise ConfigError(f"channel server at {control} refused shared memory: {rep.get('error')}")
        self.session = rep["session"]
        self.mode = rep.get("mode", "chunk")
        self._ctx, self._control = ctx, control
        self.inp = self.out = self.bell = None
        try:
            self.inp = ShmRing.attach(rep["input"])
            self.out = ShmRing.attach(rep["output"])
            self.bell = Doorbell.client(rep["doorbell"])
        except BaseException:
            self.close()
            raise
        self.slots, self.slot_samples = self.inp.slots, self.inp.slot_samples
        self.timeout_s = float(timeout_s)

    def input_slot(self, j: int, n: int | None = None) -> np.ndarray:
        """The writable view of input slot ``j`` for ``n`` samples (default the slot's):
        ``[n_in, n]``, packed (C-contiguous) at the start of the slot, as the server reads it."""
        return self.inp.packed(j, self.slot_samples if n is None else n)

    def submit(self, j: int, n: int, capture: int = 0, seq: int = 0) -> None:
        """Hand the first ``n`` samples of input slot ``j`` to the server (a burst session: ``capture``
        is the capture length armed for, 0 for the default, and ``seq`` the burst's number)."""
        self.bell.ring(j, n, capture, seq)

    def result(self, timeout_s: float | None = None, busy_s: float = 0.0) -> tuple[int, np.ndarray | None]:
        """The next finished request in order: ``(j, view [n_out, m])``, view None if the server rejected it.

        Raises:
            TimeoutError: nothing came within ``timeout_s`` (default: the session's).
        """
        t = self.timeout_s if timeout_s is None else timeout_s
        got = self.bell.wait(t, busy_s)
        if got is None:
            raise TimeoutError(f"no output from the channel server within {t:.1f} s")
        j, m = got[:2]
        return j, (None if m < 0 else self.out.packed(j, m))

    def close(self) -> None:
        from hil.radio.zmq import control_request

        try:
            control_request(self._ctx, self._control, {"cmd": "shm_close", "session": self.session}, 1.0, retries=0)
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        for r in (self.bell, self.inp, self.out):
            if r is not None:
                r.close()
        self.bell = self.inp = self.out = None
