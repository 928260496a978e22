"""A TCP server that speaks libiio v0.24's network protocol (iiod's text commands).

[Note: the iiod text protocol]
Checked against libiio's ``iiod/parser.y``, ``iiod/ops.c`` and ``src/iiod-client.c`` (v0.24). Every
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
- ``OPEN <dev> <samples> <hex mask> [CYCLIC]``: ``"0\\n"``. ``CLOSE <dev>``: ``"0\\n"``.
- ``READBUF <dev> <bytes>``: ``"<bytes>\\n"``, the channel mask (``"%08x\\n"`` per 32-bit word,
  most significant word first), then the samples (enabled channels interleaved).
- ``WRITEBUF <dev> <bytes>``: ``"0\\n"`` (ready), the client sends the bytes, then ``"<bytes>\\n"``.
- ``GETTRIG <dev>``: ``-ENOENT`` (no trigger on the AD9361 devices). ``SETTRIG``: ``-ENOENT``.
- ``EXIT``: the server closes the connection. Unknown commands: ``-EINVAL``.

pyadi-iio opens one extra connection per buffer (libiio's network backend does), so the server
handles any number of connections at once, one thread each.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading

import numpy as np

from sim_fallback.pluto.model import PlutoModel

log = logging.getLogger(__name__)

VERSION_LINE = b"0.24.hilemu0\n"


class _Conn:
    """One client connection: a line/bytes reader over a socket and the buffers it opened."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.buffers: dict[str, dict] = {}

    def line(self) -> bytes | None:
        data = self.rfile.readline(4096)
        return data if data else None

    def exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) != n:
            raise ConnectionError("client closed the connection in the middle of a transfer")
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def value(self, v: int) -> None:
        self.send(b"%d\n" % v)


class IiodServer:
    """Serve one virtual Pluto (a :class:`PlutoModel` plus its RF front end) on a TCP port.

    Args:
        node: the virtual Pluto (``sim_fallback.pluto.air.Node``): ``.model`` and the DMA methods.
        host: bind address (127.0.0.1 by default: nothing is exposed off the machine).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
    """

    def __init__(self, node, host: str = "127.0.0.1", port: int = 0):
        self.node = node
        self.model: PlutoModel = node.model
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self.connections_total = 0

    @property
    def uri(self) -> str:
        return f"ip:{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # ------------------------------------------------------------------ lifecycle
    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`."""
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                s, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
            c = _Conn(s)
            with self._lock:
                self._conns.add(c)
                self.connections_total += 1
                self._threads = [t for t in self._threads if t.is_alive()]
            t = threading.Thread(target=self._serve_conn, args=(c,), daemon=True, name=f"iiod-{self.port}")
            self._threads.append(t)
            t.start()

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
                try:
                    self._dispatch(c, cmd)
                except (ConnectionError, BrokenPipeError, OSError):
                    raise
                except Exception:  # a bug of ours must not take the server down: answer -EIO
                    log.exception("command %r failed", cmd)
                    c.value(-errno.EIO)
        except (ConnectionError, OSError) as e:
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

    def _dispatch(self, c: _Conn, cmd: str) -> None:
        w = cmd.split(" ")
        op = w[0].upper()
        if op == "VERSION":
            c.send(VERSION_LINE)
        elif op == "PRINT":
            xml = self.model.xml().encode()
            c.send(b"%d\n" % len(xml) + xml + b"\n")
        elif op in ("TIMEOUT", "SET"):
            c.value(0)
        elif op == "READ":
            self._read(c, w[1:])
        elif op == "WRITE":
            self._write(c, w[1:])
        elif op == "OPEN":
            self._open(c, w[1:])
        elif op == "CLOSE":
            c.value(self._close_buffer(c, self._dev_id(w[1]) if len(w) > 1 else ""))
        elif op == "READBUF":
            self._readbuf(c, w[1:])
        elif op == "WRITEBUF":
            self._writebuf(c, w[1:])
        elif op in ("GETTRIG", "SETTRIG"):
            c.value(-errno.ENOENT if len(w) > 1 and self.model.device(w[1]) else -errno.ENODEV)
        else:  # ZPRINT, BINARY, HELP, anything else: what iiod's parser answers to a bad command
            c.value(-errno.EINVAL)

    def _dev_id(self, name: str) -> str:
        d = self.model.device(name)
        return d.id if d else name

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
        n = int(rest[-1])
        data = c.exact(n)
        if len(rest) < 2:
            c.value(-errno.EINVAL)
            return
        c.value(self.model.write(args[0], kind, chn, rest[0], data.decode("utf-8", "replace")))

    # ------------------------------------------------------------------ buffers
    def _open(self, c: _Conn, args: list[str]) -> None:
        dev = self.model.device(args[0]) if args else None
        if dev is None or len(args) < 3:
            c.value(-errno.ENODEV if dev is None else -errno.EINVAL)
            return
        scan = self.model.scan_channels(dev.id)
        if not scan:
            c.value(-errno.EINVAL)  # not a buffer-capable device
            return
        mask = int(args[2], 16)
        enabled = [ch.scan[0] for ch in scan if mask >> ch.scan[0] & 1]
        if not enabled or int(args[1]) <= 0:
            c.value(-errno.EINVAL)
            return
        c.buffers[dev.id] = {"samples": int(args[1]), "mask": mask, "enabled": enabled,
                             "cyclic": len(args) > 3 and args[3] == "CYCLIC",
                             "output": scan[0].output, "pushed": False}
        c.value(0)

    def _close_buffer(self, c: _Conn, dev_id: str) -> int:
        b = c.buffers.pop(dev_id, None)
        if b is None:
            return -errno.EBADF
        if b["output"]:
            self.node.tx_stop()
        return 0

    def _readbuf(self, c: _Conn, args: list[str]) -> None:
        dev_id = self._dev_id(args[0])
        b = c.buffers.get(dev_id)
        if b is None or b["output"]:
            c.value(-errno.EBADF)
            return
        nbytes = int(args[1])
        ss = 2 * len(b["enabled"])
        n = nbytes // ss
        if n == 0:
            c.value(0)
            return
        words = self.node.rx_dma(b["enabled"], n)  # int16 (n, len(enabled))
        payload = np.ascontiguousarray(words, dtype="<i2").tobytes()
        c.send(b"%d\n" % len(payload) + b"%08x\n" % b["mask"] + payload)

    def _writebuf(self, c: _Conn, args: list[str]) -> None:
        dev_id = self._dev_id(args[0])
        b = c.buffers.get(dev_id)
        if b is None or not b["output"]:
            c.value(-errno.EBADF)
            return
        if b["cyclic"] and b["pushed"]:
            c.value(-errno.EBUSY)  # a cyclic buffer is pushed once
            return
        nbytes = int(args[1])
        c.value(0)
        data = c.exact(nbytes)
        ss = 2 * len(b["enabled"])
        words = np.frombuffer(data[: nbytes - nbytes % ss], dtype="<i2").reshape(-1, len(b["enabled"]))
        self.node.tx_dma(b["enabled"], words, cyclic=b["cyclic"])
        b["pushed"] = True
        c.value(nbytes)
