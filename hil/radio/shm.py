"""Same-host data plane of the channel server: shared-memory slot rings with a ZMQ doorbell.

[Note: shared-memory data plane]
Over TCP every chunk is copied into a socket, through the kernel, out of it and into a new array
on each side. Between a client and a server on one host the samples need not move at all: the
server creates two POSIX shared-memory segments (``/dev/shm``) for one link direction ``src ->
dst``, an *input* ring and an *output* ring of ``slots`` slots of ``[antennas, slot_samples]``
complex64 each; the client writes a chunk into input slot ``j`` and rings the doorbell (a 16-byte
message ``(j, n)`` on a ZMQ PAIR socket over 127.0.0.1); the server validates the slot as it would
a TCP message (NaN/Inf, saturation), runs the link's channel model *from* the input slot *into*
output slot ``j`` (no per-chunk allocation with the fused kernel, see ``hil.channel.fast``, which
checks the slot while it copies it into its own buffer and filters that checked copy) and
answers on the doorbell with ``(j, n)`` or ``(j, -1)`` when the chunk was rejected. The client may
have ``slots`` chunks in flight; it rewrites slot ``j`` only after it has taken output ``j``.
Each segment starts with a 64-byte header (magic, slots, antennas, slot samples, counters).

It is negotiated on the control socket (``{"cmd": "shm_open", "src", "dst", "slot_samples",
"slots"}``) and offered only to a peer on 127.0.0.1 / ::1 (or over ipc/inproc): TCP stays the data
plane of GNU Radio and of remote peers, unchanged on the wire.

Security: names come from the network, so a client only *attaches* to a segment whose name
:func:`validate_name` accepts (our prefix, a short run of ``[A-Za-z0-9_-]``, no path separator)
and never creates one at a name the server chose; it connects the doorbell only to a
``tcp://127.0.0.1:PORT`` (or ``[::1]``) endpoint, never to an ipc path received from the network.
"""

from __future__ import annotations

import re
import struct
from multiprocessing import shared_memory

import numpy as np

from hil.errors import ConfigError

#: Prefix of every segment name the channel server creates.
SHM_PREFIX = "hil-chsrv-"
_NAME_RE = re.compile(r"^hil-chsrv-[A-Za-z0-9_-]{1,80}$")
_DOORBELL_RE = re.compile(r"^tcp://(127\.0\.0\.1|\[::1\]):[0-9]{1,5}$")
HEADER_BYTES = 64
_MAGIC = 0x48494C53484D3031  # "HILSHM01"
#: Largest ring the server creates (bytes per segment).
MAX_RING_BYTES = 1 << 30
DOORBELL = struct.Struct("<qq")


def validate_name(name: object) -> str:
    """``name`` if it is a segment name of ours (prefix, ``[A-Za-z0-9_-]``, no path separator), else ConfigError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or "/" in name or "\\" in name:
        raise ConfigError(f"shared-memory name {name!r:.100} from the server is not ours (expected "
                          f"{SHM_PREFIX}[A-Za-z0-9_-]+); refusing to open it")
    return name


def validate_doorbell(endpoint: object) -> str:
    """``endpoint`` if it is ``tcp://127.0.0.1:PORT`` or ``tcp://[::1]:PORT``, else ConfigError."""
    if not isinstance(endpoint, str) or not _DOORBELL_RE.match(endpoint):
        raise ConfigError(f"shared-memory doorbell endpoint {endpoint!r:.100} is not a loopback TCP "
                          "endpoint; refusing to connect")
    return endpoint


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
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


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
        ctx: a ZMQ context.
        control: the server's control endpoint.
        src, dst: the link direction (``src``'s transmit stream through the channel to ``dst``).
        slot_samples: samples per antenna per chunk (at most).
        slots: chunks in flight.
    """

    def __init__(self, ctx, control: str, src: str, dst: str, slot_samples: int = 1 << 18, slots: int = 4,
                 timeout_s: float = 10.0):
        import zmq

        from hil.radio.zmq import control_request

        rep = control_request(ctx, control, {"cmd": "shm_open", "src": src, "dst": dst,
                                             "slot_samples": int(slot_samples), "slots": int(slots)}, timeout_s)
        if not rep.get("ok"):
            raise ConfigError(f"channel server at {control} refused shared memory: {rep.get('error')}")
        self.session = rep["session"]
        self.inp = ShmRing.attach(rep["input"])
        try:
            self.out = ShmRing.attach(rep["output"])
        except Exception:
            self.inp.close()
            raise
        self.sock = ctx.socket(zmq.PAIR)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(validate_doorbell(rep["doorbell"]))
        self.slots, self.slot_samples = self.inp.slots, self.inp.slot_samples
        self.timeout_ms = int(timeout_s * 1000)
        self._ctx, self._control = ctx, control

    def input_slot(self, j: int, n: int | None = None) -> np.ndarray:
        """The writable view of input slot ``j`` for a chunk of ``n`` samples (default the slot's):
        ``[n_in, n]``, packed (C-contiguous) at the start of the slot, as the server reads it."""
        return self.inp.packed(j, self.slot_samples if n is None else n)

    def submit(self, j: int, n: int) -> None:
        """Hand the first ``n`` samples of input slot ``j`` to the server."""
        self.sock.send(DOORBELL.pack(j, n), copy=True)

    def result(self) -> tuple[int, np.ndarray | None]:
        """The next finished chunk in order: ``(j, view [n_out, n])``, view None if the server rejected it."""
        if not self.sock.poll(self.timeout_ms):
            raise TimeoutError(f"no output from the channel server within {self.timeout_ms / 1000} s")
        j, n = DOORBELL.unpack(self.sock.recv())
        return j, (None if n < 0 else self.out.packed(j, n))

    def close(self) -> None:
        from hil.radio.zmq import control_request

        try:
            control_request(self._ctx, self._control, {"cmd": "shm_close", "session": self.session}, 2.0)
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        self.sock.close(0)
        self.inp.close()
        self.out.close()
