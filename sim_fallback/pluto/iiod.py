"""A TCP server that speaks libiio v0.24's network protocol (iiod's text commands).

[Note: the iiod text protocol]
Checked against libiio's ``iiod/parser.y``, ``iiod/ops.c`` and ``iiod-client.c`` (tag v0.24). Every
command is one line ending in ``\\r\\n``; every answer starts with a decimal integer line
(``"%i\\n"``), negative for an errno.

- ``VERSION``: ``"0.24.<7-char tag>\\n"``. We answer 0.24 so that every client, also a libiio 1.x one
  (which first tries ``BINARY`` and falls back to text when it gets an error), talks text to us.
- ``PRINT``: ``"<len>\\n"``, the context XML, ``"\\n"``. ``ZPRINT`` (zstd XML) answers ``-EINVAL``,
  which makes the client fall back to ``PRINT``.
- ``TIMEOUT <ms>``, ``SET <dev> BUFFERS_COUNT <n>``: ``"0\\n"``.
- ``READ <dev> [INPUT|OUTPUT <chn>|DEBUG|BUFFER] <attr>``: ``"<len>\\n<value>\\n"`` or ``"-errno\\n"``.
- ``WRITE <dev> [INPUT|OUTPUT <chn>|DEBUG|BUFFER] <attr> <len>``: the client sends ``len`` bytes
  right after the line; answer ``"<bytes written>\\n"`` or ``"-errno\\n"``.
- ``OPEN <dev> <samples> <hex mask> [CYCLIC]``: ``"0\\n"``. ``CLOSE <dev>``: ``"0\\n"``; ``-ENXIO`` if this
  connection has not opened the device, ``-ENODEV`` for an unknown device (``ops.c`` close_dev_helper).
- ``READBUF <dev> <bytes>``: per buffer refill ``"<len>\\n"`` (at most one buffer), the channel mask
  before the first only (``"%08x\\n"`` per 32-bit word, most significant word first), then the
  samples (enabled channels interleaved); repeated until the request is served, ``"0\\n"`` ends a
  request with a remainder shorter than one sample (``ops.c`` rw_buffer, send_data; the client's loop
  is ``iiod-client.c`` iiod_client_read_unlocked). Unopened: ``-EBADF``; unknown device: ``-ENODEV``.
- ``WRITEBUF <dev> <bytes>``: ``"0\\n"`` (ready), the client sends the bytes, then ``"<bytes>\\n"``;
  a payload over one buffer is pushed one buffer at a time (``ops.c`` receive_data).
- ``GETTRIG <dev>``: ``-ENOENT`` (no trigger on the AD9361 devices). ``SETTRIG``: ``-ENOENT``.
- ``EXIT``: the server closes the connection. Unknown commands: ``-EINVAL``.

pyadi-iio opens one extra connection per buffer (libiio's network backend does), so the server
handles several connections at once, one thread each.

[Note: hostile clients]
The server is on a socket anybody on the machine (or the bound network) can reach, so each command
is bounded before it costs anything, and no single command can end the server:

- A command that cannot be parsed (missing words, a number that is not one) answers ``-EINVAL``, as
  iiod's parser does; any other exception inside one command answers ``-EIO``, is counted
  (:attr:`IiodServer.errors`) and logged, and the connection keeps being served.
- Lines are at most :data:`MAX_LINE` bytes (a longer one is discarded up to its newline: ``-EINVAL``).
- ``WRITE``/``WRITEBUF``/``READBUF`` with a negative length (or, for the buffers, one over 2^32 - 1)
  answer ``-EINVAL`` and read nothing. A ``WRITE`` payload over :data:`MAX_ATTR_BYTES` is read and
  discarded in chunks (the stream stays in sync) and answers ``-EFBIG``.
- ``OPEN`` refuses buffers over :data:`MAX_BUFFER_BYTES` with ``-ENOMEM`` (the kernel's DMA
  allocation would fail too). ``READBUF`` answers at most the opened size per length line and
  produces and sends the samples in chunks of :data:`RX_CHUNK` samples, so a read costs O(chunk)
  memory whatever the count; a longer request is served buffer after buffer as iiod does, paced by
  the client reading, and the RX clock only advances for samples made. ``WRITEBUF`` is read one
  buffer at a time.
- A cyclic buffer is exclusive (``ops.c`` open_dev_helper, "Only one client allowed in cyclic
  mode"): a cyclic ``OPEN`` of a device another connection has open, or any ``OPEN`` of a device
  held cyclic, retries for :data:`OPEN_BUSY_RETRY_S` and answers ``-EBUSY``; ``CLOSE`` only closes
  the caller's own buffer (``-ENXIO`` otherwise) and the TX stops when the last holder closes, so
  nobody can silence another client's cyclic TX. Non-cyclic buffers are shared, as in iiod.
- At most ``max_connections`` clients at once (a further one is accepted and closed at once); a
  client silent for ``idle_timeout_s`` is disconnected; the accept loop backs off and keeps
  accepting on ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM``.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import numpy as np

from sim_fallback.pluto.model import PlutoModel

log = logging.getLogger(__name__)

VERSION_LINE = b"0.24.hilemu0\n"

#: longest command line (iiod's own lines are far shorter; an attribute name is < 256 bytes)
MAX_LINE = 4096
#: longest attribute value a WRITE stores (the FIR configuration, the longest real one, is < 8 KiB)
MAX_ATTR_BYTES = 65536
#: largest buffer an OPEN may ask for, in bytes (samples x enabled channels x 2)
MAX_BUFFER_BYTES = 16 * 1024 * 1024
#: samples produced and sent per step of a READBUF
RX_CHUNK = 65536
#: default cap on simultaneous connections and default idle timeout
MAX_CONNECTIONS = 64
IDLE_TIMEOUT_S = 300.0
#: how long a conflicting OPEN retries before -EBUSY (iiod: 500 x 100 us)
OPEN_BUSY_RETRY_S = 0.05
#: accept() errors that mean "out of resources for now": back off and retry
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class _Conn:
    """One client connection: a line/bytes reader over a socket and the buffers it opened."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.buffers: dict[str, dict] = {}
        self.buffers_count: dict[str, int] = {}  # SET <dev> BUFFERS_COUNT

    def line(self) -> bytes | None:
        """The next command line; ``b"\\x00"`` for a line over :data:`MAX_LINE` (discarded)."""
        data = self.rfile.readline(MAX_LINE)
        if not data:
            return None
        if len(data) == MAX_LINE and not data.endswith(b"\n"):
            while True:  # discard the rest of the oversize line, bounded memory
                more = self.rfile.readline(MAX_LINE)
                if not more or more.endswith(b"\n"):
                    return b"\x00"
        return data

    def exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) != n:
            raise ConnectionError("client closed the connection in the middle of a transfer")
        return data

    def discard(self, n: int) -> None:
        """Read and drop ``n`` bytes in chunks (keeps the command stream in sync)."""
        while n > 0:
            n -= len(self.exact(min(n, 1 << 16)))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def value(self, v: int) -> None:
        self.send(b"%d\n" % v)


class IiodServer:
    """Serve one virtual Pluto (a :class:`PlutoModel` plus its RF front end) on a TCP port.

    Args:
        node: the virtual Pluto (``sim_fallback.pluto.air.AirBoard``): ``.model`` and the DMA methods.
        host: bind address (127.0.0.1 by default: nothing is exposed off the machine).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        max_connections: simultaneous clients (one thread each); see [Note: hostile clients].
        idle_timeout_s: a client that sends nothing (or reads nothing) for this long is disconnected.
    """

    def __init__(self, node, host: str = "127.0.0.1", port: int = 0, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S):
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        self.node = node
        self.model: PlutoModel = node.model
        self.max_connections = max_connections
        self.idle_timeout_s = float(idle_timeout_s)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._holders: dict[str, dict[_Conn, bool]] = {}  # device id -> {connection: its buffer is cyclic}
        self.connections_total = 0
        self.connections_refused = 0  # over max_connections
        self.accept_errors = 0  # EMFILE and friends
        self.errors = 0  # commands that raised (answered -EIO)

    @property
    def uri(self) -> str:
        return f"ip:{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # ------------------------------------------------------------------ lifecycle
    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` (survives running out of file descriptors)."""
        self._sock.settimeout(0.2)
        backoff = 0.0
        while not self._stop.is_set():
            try:
                s, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self._stop.is_set():
                    break
                if e.errno in _ACCEPT_RETRY:
                    self.accept_errors += 1
                    backoff = min(1.0, backoff * 2 or 0.01)
                    log.warning("accept failed (%s); retrying in %.2f s", e, backoff)
                    self._stop.wait(backoff)
                    continue
                log.error("accept failed: %s; the listening socket is gone", e)
                break
            backoff = 0.0
            with self._lock:
                full = len(self._conns) >= self.max_connections
                if full:
                    self.connections_refused += 1
            if full:
                log.warning("refusing a connection: %d clients already (max_connections)", self.max_connections)
                s.close()
                continue
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(self.idle_timeout_s)
                c = _Conn(s)
                t = threading.Thread(target=self._serve_conn, args=(c,), daemon=True, name=f"iiod-{self.port}")
                with self._lock:  # the thread's own clean-up waits for this lock: add before it can discard
                    self._conns.add(c)
                    try:
                        t.start()
                    except RuntimeError:
                        self._conns.discard(c)
                        raise
                    self.connections_total += 1
            except (OSError, RuntimeError) as e:  # no fd for makefile, "can't start new thread"
                log.warning("dropping a connection: %s", e)
                s.close()

    def start(self) -> "IiodServer":
        """Serve in a background thread; returns self."""
        threading.Thread(target=self.serve_forever, daemon=True, name=f"iiod-accept-{self.port}").start()
        return self

    def shutdown(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ------------------------------------------------------------------ one connection
    def _serve_conn(self, c: _Conn) -> None:
        try:
            while not self._stop.is_set():
                raw = c.line()
                if raw is None:
                    break
                cmd = raw.decode("ascii", "replace").strip()
                if not cmd:
                    continue
                if cmd == "EXIT":
                    break
                self._guarded(c, cmd)
        except (ConnectionError, OSError) as e:  # socket.timeout is an OSError: the idle timeout
            log.debug("connection closed: %s", e)
        finally:
            for dev_id in list(c.buffers):
                self._close_buffer(c, dev_id)
            with self._lock:
                self._conns.discard(c)
            try:
                c.rfile.close()
                c.sock.close()
            except OSError:
                pass

    def _guarded(self, c: _Conn, cmd: str) -> None:
        """Run one command; a parse error answers -EINVAL, any other exception -EIO (and is counted)."""
        try:
            self._dispatch(c, cmd)
        except (ConnectionError, OSError):
            raise
        except (ValueError, IndexError) as e:  # int("x"), a missing word: iiod's parser says EINVAL
            log.debug("bad command %r: %s", cmd[:200], e)
            c.value(-errno.EINVAL)
        except Exception:  # a bug of ours must not take the server down
            self.errors += 1
            log.exception("command %r failed", cmd[:200])
            c.value(-errno.EIO)

    def _dispatch(self, c: _Conn, cmd: str) -> None:
        w = cmd.split(" ")
        op = w[0].upper()
        if op == "VERSION":
            c.send(VERSION_LINE)
        elif op == "PRINT":
            xml = self.model.xml().encode()
            c.send(b"%d\n" % len(xml) + xml + b"\n")
        elif op == "TIMEOUT":
            int(w[1])
            c.value(0)
        elif op == "SET":
            if len(w) != 4 or w[2] != "BUFFERS_COUNT" or not 1 <= int(w[3]) <= 64:
                raise ValueError("SET <dev> BUFFERS_COUNT <n>")
            dev = self.model.device(w[1])
            if dev is not None:
                c.buffers_count[dev.id] = int(w[3])
            c.value(0 if dev else -errno.ENODEV)
        elif op == "READ":
            self._read(c, w[1:])
        elif op == "WRITE":
            self._write(c, w[1:])
        elif op == "OPEN":
            self._open(c, w[1:])
        elif op == "CLOSE":
            if len(w) != 2:
                raise ValueError("CLOSE <dev>")
            c.value(self._close(c, w[1]))
        elif op == "READBUF":
            self._readbuf(c, w[1:])
        elif op == "WRITEBUF":
            self._writebuf(c, w[1:])
        elif op in ("GETTRIG", "SETTRIG"):
            c.value(-errno.ENOENT if self.model.device(w[1]) else -errno.ENODEV)
        else:  # ZPRINT, BINARY, HELP, anything else: what iiod's parser answers to a bad command
            c.value(-errno.EINVAL)

    @staticmethod
    def _target(args: list[str]) -> tuple[str, tuple[str, bool] | None, list[str]]:
        """Parse ``[INPUT|OUTPUT <chn>|DEBUG|BUFFER]`` after the device; returns (kind, chn, rest)."""
        if args and args[0] in ("INPUT", "OUTPUT"):
            return "dev", (args[1], args[0] == "OUTPUT"), args[2:]
        if args and args[0] in ("DEBUG", "BUFFER"):
            return args[0].lower(), None, args[1:]
        return "dev", None, args

    def _read(self, c: _Conn, args: list[str]) -> None:
        kind, chn, rest = self._target(args[1:])
        if not rest or not rest[0]:
            c.value(-errno.EINVAL)  # read-all ("READ dev " with no attribute) is not emulated
            return
        r = self.model.read(args[0], kind, chn, rest[0])
        if isinstance(r, int):
            c.value(r)
        else:
            data = r.encode()
            c.send(b"%d\n" % len(data) + data + b"\n")

    def _write(self, c: _Conn, args: list[str]) -> None:
        kind, chn, rest = self._target(args[1:])
        n = int(rest[-1])  # ValueError/IndexError: -EINVAL, nothing read
        if n < 0:
            raise ValueError(f"negative length {n}")
        if n > MAX_ATTR_BYTES:
            c.discard(n)
            c.value(-errno.EFBIG)
            return
        data = c.exact(n)
        if len(rest) < 2:
            c.value(-errno.EINVAL)
            return
        c.value(self.model.write(args[0], kind, chn, rest[0], data.decode("utf-8", "replace")))

    # ------------------------------------------------------------------ buffers
    def _open(self, c: _Conn, args: list[str]) -> None:
        dev = self.model.device(args[0])
        if dev is None:
            c.value(-errno.ENODEV)
            return
        samples, mask = int(args[1]), int(args[2], 16)
        cyclic = len(args) > 3 and args[3] == "CYCLIC"
        if len(args) > 4 or (len(args) == 4 and not cyclic):
            raise ValueError("OPEN <dev> <samples> <mask> [CYCLIC]")
        scan = self.model.scan_channels(dev.id)
        if not scan:
            c.value(-errno.EINVAL)  # not a buffer-capable device
            return
        enabled = [ch.scan[0] for ch in scan if mask >> ch.scan[0] & 1]
        if not enabled or samples <= 0 or mask >> len(scan):
            c.value(-errno.EINVAL)
            return
        if samples * 2 * len(enabled) > MAX_BUFFER_BYTES:
            c.value(-errno.ENOMEM)
            return
        output = scan[0].output
        if dev.id in c.buffers:
            c.value(-errno.EBUSY)  # one buffer per device and connection (libiio opens one connection each)
            return
        # iiod/ops.c open_dev_helper (v0.24): "Only one client allowed in cyclic mode": a cyclic OPEN of a
        # device another client has open, or any OPEN of a device held cyclic, retries for up to 50 ms
        # (500 x 100 us, for a close racing on another connection) and then answers -EBUSY. Non-cyclic
        # buffers of one device are shared by all the clients that open them.
        deadline = time.monotonic() + OPEN_BUSY_RETRY_S
        while True:
            with self._lock:
                holders = self._holders.setdefault(dev.id, {})
                others = [cy for cc, cy in holders.items() if cc is not c]
                if not others or not (cyclic or any(others)):
                    holders[c] = cyclic
                    break
            if time.monotonic() >= deadline:
                c.value(-errno.EBUSY)
                return
            time.sleep(1e-4)
        if not output:
            self.node.rx_open(samples, c.buffers_count.get(dev.id, 4))
        c.buffers[dev.id] = {"samples": samples, "mask": mask, "enabled": enabled, "cyclic": cyclic,
                             "output": output, "pushed": False}
        c.value(0)

    def _close(self, c: _Conn, name: str) -> int:
        """``CLOSE``: as iiod/ops.c close_dev_helper, -ENODEV for an unknown device and -ENXIO for a
        device this connection has not opened (another client's buffer stays open)."""
        dev = self.model.device(name)
        if dev is None:
            return -errno.ENODEV
        if dev.id not in c.buffers:
            return -errno.ENXIO
        self._close_buffer(c, dev.id)
        return 0

    def _close_buffer(self, c: _Conn, dev_id: str) -> None:
        b = c.buffers.pop(dev_id, None)
        if b is None:
            return
        with self._lock:
            holders = self._holders.get(dev_id, {})
            holders.pop(c, None)
            last = not holders
        if b["output"] and last:  # the kernel buffer goes when its last client leaves
            self.node.tx_stop()

    def _buffer_of(self, c: _Conn, args: list[str], output: bool) -> tuple[dict | None, int, int]:
        """``READBUF``/``WRITEBUF`` arguments: (this connection's buffer or None, bytes, errno to answer).

        [Note: READBUF/WRITEBUF lengths]
        iiod/parser.y reads the length with ``atol`` into an ``unsigned int``; a negative length or one
        over 2^32 - 1 is refused here with -EINVAL (nothing read) rather than wrapped around."""
        if len(args) != 2:
            raise ValueError("READBUF|WRITEBUF <dev> <bytes>")
        nbytes = int(args[1])
        if not 0 <= nbytes <= 0xFFFFFFFF:
            raise ValueError(f"length {nbytes} outside 0..2^32-1")
        dev = self.model.device(args[0])
        if dev is None:
            return None, nbytes, -errno.ENODEV
        b = c.buffers.get(dev.id)
        if b is None or b["output"] != output:
            return None, nbytes, -errno.EBADF  # iiod/ops.c rw_buffer: no buffer opened by this client
        return b, nbytes, 0

    def _readbuf(self, c: _Conn, args: list[str]) -> None:
        """As iiod/ops.c rw_buffer + send_data (v0.24): the request is served one buffer (refill) at a
        time, each as ``"<len>\n"`` and its bytes, the mask line before the first only; a remainder
        shorter than one sample ends the answer with ``"0\n"``, as does a request shorter than one
        sample. Samples are produced in chunks of :data:`RX_CHUNK`: memory is O(chunk) whatever the
        length, and the work is paced by the client reading (a client that stops reading is dropped
        after ``idle_timeout_s``)."""
        b, nbytes, err = self._buffer_of(c, args, output=False)
        if b is None:
            c.value(err)
            return
        ss = 2 * len(b["enabled"])
        per = b["samples"] * ss
        left, first = nbytes, True
        while left >= ss:
            length = min(per, left)  # iiod sends min(buffer, remaining) bytes, even a partial sample
            c.send(b"%d\n" % length + (b"%08x\n" % b["mask"] if first else b""))
            first = False
            n, sent = -(-length // ss), 0
            while sent < length:
                words = self.node.rx_dma(b["enabled"], min(n - sent // ss, RX_CHUNK))
                data = np.ascontiguousarray(words, dtype="<i2").tobytes()[: length - sent]
                c.send(data)
                sent += len(data)
            left -= length
        if left or first:
            c.value(0)

    def _writebuf(self, c: _Conn, args: list[str]) -> None:
        """As iiod/ops.c rw_buffer + receive_data (v0.24): ``"0\n"`` (ready), then the payload is taken
        one buffer at a time, each piece pushed (whole samples), and the answer is the byte count.
        A cyclic buffer takes one push: a second one (also the second piece of an oversize write)
        answers -EBUSY, as local.c refuses to enqueue a cyclic block twice. Deviations, to keep the
        command stream in sync: the payload is always read to its end (iiod leaves a tail shorter
        than a sample, or the rest after a failed push, in the stream and parses it as commands)."""
        b, nbytes, err = self._buffer_of(c, args, output=True)
        if b is None:
            c.value(err)
            return
        ss = 2 * len(b["enabled"])
        if nbytes < ss:
            c.value(0)  # iiod: rw_buffer returns 0 at once and reads nothing
            return
        per = b["samples"] * ss
        c.value(0)
        left, busy = nbytes, False
        while left >= ss:
            data = c.exact(min(per, left))
            left -= len(data)
            if b["cyclic"] and b["pushed"]:
                busy = True
                break
            k = len(data) // ss
            words = np.frombuffer(data[: k * ss], dtype="<i2").reshape(k, len(b["enabled"]))
            self.node.tx_dma(b["enabled"], words, cyclic=b["cyclic"])
            b["pushed"] = True
        c.discard(left)
        c.value(-errno.EBUSY if busy else nbytes - left)
