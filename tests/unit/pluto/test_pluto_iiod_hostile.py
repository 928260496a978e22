"""The iiod server against hostile input, in process: fuzzed commands on a fake connection, and the
limits (negative lengths, READBUF/WRITEBUF over one buffer, exclusive cyclic buffers, connection cap, idle timeout, EMFILE) over
real loopback sockets to an in-process server."""

from __future__ import annotations

import errno
import io
import socket
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim_fallback.pluto import iiod
from sim_fallback.pluto.air import Air, AirConfig
from sim_fallback.pluto.iiod import IiodServer, _Conn
from sim_fallback.pluto.model import PlutoModel


class _FakeConn(_Conn):
    """A connection whose client bytes come from ``payload`` and whose answers are collected."""

    def __init__(self, payload: bytes = b""):
        self.rfile = io.BytesIO(payload)
        self.buffers, self.buffers_count = {}, {}
        self.out = bytearray()

    def send(self, data: bytes) -> None:
        self.out += data


@pytest.fixture(scope="module")
def server():
    s = IiodServer(Air([PlutoModel()], AirConfig(seed=0)).nodes[0], max_connections=4, idle_timeout_s=0.5)
    s.start()
    yield s
    s.shutdown()


def _first_int(out: bytes) -> int:
    line, _, _ = bytes(out).partition(b"\n")
    return int(line)


def _readbuf_answer(out: bytes) -> tuple[list[int], bytes, bytes]:
    """Split a successful READBUF answer into (its length lines, the mask line, the data)."""
    out, lengths, mask, data = bytes(out), [], b"", b""
    while out:
        line, _, out = out.partition(b"\n")
        n = int(line)
        if n == 0:
            assert not out, "nothing may follow the terminating 0"
            break
        lengths.append(n)
        if len(lengths) == 1:
            mask, _, out = out.partition(b"\n")
        data, out = data + out[:n], out[n:]
    return lengths, mask, data


_OPS = ["VERSION", "PRINT", "ZPRINT", "TIMEOUT", "SET", "READ", "WRITE", "OPEN", "CLOSE", "READBUF", "WRITEBUF",
        "GETTRIG", "SETTRIG", "EXIT", "BINARY", "HELP", "x"]
_WORDS = st.one_of(st.sampled_from(["iio:device0", "iio:device2", "iio:device3", "ad9361-phy", "cf-ad9361-lpc",
                                    "cf-ad9361-dds-core-lpc", "INPUT", "OUTPUT", "DEBUG", "BUFFER", "voltage0",
                                    "altvoltage0", "frequency", "loopback", "direct_reg_access", "CYCLIC",
                                    "BUFFERS_COUNT", "00000003", "ffffffff", ""]),
                   st.integers(-2**63, 2**63).map(str), st.text(max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(_OPS), words=st.lists(_WORDS, max_size=6), payload=st.binary(max_size=64))
def test_fuzz_any_command_answers_cleanly(server, op, words, payload):
    """Any one command line: an answer that starts like iiod's (an integer, or the VERSION line),
    never an exception inside the server (``server.errors`` stays 0), never more than MAX_LINE read."""
    cmd = " ".join([op] + words)
    c = _FakeConn(payload)
    before = server.errors
    try:
        server._guarded(c, cmd)
    except ConnectionError:
        return  # a WRITE/WRITEBUF whose payload is shorter than it said: the connection ends
    assert server.errors == before, f"{cmd!r} raised inside the server"
    if op == "VERSION":
        assert bytes(c.out) == iiod.VERSION_LINE
    else:
        _first_int(c.out)  # parses
    for dev_id in list(c.buffers):
        server._close_buffer(c, dev_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["OPEN", "READBUF", "WRITEBUF", "CLOSE"]),
                                st.sampled_from(["iio:device2", "iio:device3"]),
                                st.integers(-5, 5000), st.sampled_from(["1", "3", "f", "0", "10"]),
                                st.booleans()), max_size=8))
def test_fuzz_buffer_commands_never_exceed_the_opened_size(server, steps):
    c = _FakeConn(bytes(64 * 1024))
    opened: dict[str, tuple[int, int]] = {}  # device -> (bytes of its buffer, bytes of one sample)
    try:
        for op, dev, n, mask, cyclic in steps:
            c.out.clear()
            if op == "OPEN":
                server._guarded(c, f"OPEN {dev} {n} {mask}" + (" CYCLIC" if cyclic else ""))
                if _first_int(c.out) == 0:
                    ss = 2 * bin(int(mask, 16)).count("1")
                    opened[dev] = (n * ss, ss)
            elif op == "READBUF":
                server._guarded(c, f"READBUF {dev} {n}")
                got = _first_int(c.out)
                if got > 0:
                    lengths, mask_line, data = _readbuf_answer(c.out)
                    size, ss = opened[dev]
                    assert max(lengths) <= size and len(mask_line) == 8  # one buffer per length line
                    assert len(data) == sum(lengths) and 0 <= n - sum(lengths) < ss  # all but a partial sample
            elif op == "WRITEBUF":
                server._guarded(c, f"WRITEBUF {dev} {n}")
            else:
                server._guarded(c, f"CLOSE {dev}")
                opened.pop(dev, None)
            assert server.errors == 0
    finally:
        for dev_id in list(c.buffers):
            server._close_buffer(c, dev_id)


def test_negative_and_oversize_lengths_read_nothing(server):
    c = _FakeConn(b"VERSION\r\n")
    server._guarded(c, "WRITE iio:device0 DEBUG loopback -1")
    assert _first_int(c.out) == -errno.EINVAL and c.rfile.tell() == 0  # nothing read to EOF
    c = _FakeConn(bytes(iiod.MAX_ATTR_BYTES + 10))
    server._guarded(c, f"WRITE iio:device0 DEBUG loopback {iiod.MAX_ATTR_BYTES + 10}")
    assert _first_int(c.out) == -errno.EFBIG and c.rfile.tell() == iiod.MAX_ATTR_BYTES + 10  # drained, in sync
    c = _FakeConn()
    server._guarded(c, "OPEN iio:device2 1024 3 CYCLIC")
    c.out.clear()
    server._guarded(c, "WRITEBUF iio:device2 -1")
    assert _first_int(c.out) == -errno.EINVAL and c.rfile.tell() == 0
    c.out.clear()
    server._guarded(c, "READBUF iio:device2 %d" % (1 << 32))  # over iiod's unsigned int
    assert bytes(c.out) == b"%d\n" % -errno.EINVAL
    server._close_buffer(c, "iio:device2")


def test_writebuf_over_the_buffer_is_pushed_one_buffer_at_a_time(server):
    """iiod/ops.c receive_data: a payload over one buffer is taken buffer by buffer; a cyclic buffer
    takes one push (local.c: a second enqueue of a cyclic block is -EBUSY), the rest is read and
    dropped so the command stream stays in sync."""
    c = _FakeConn(bytes(4100) + b"VERSION\r\n")
    server._guarded(c, "OPEN iio:device2 1024 3 CYCLIC")
    c.out.clear()
    server._guarded(c, "WRITEBUF iio:device2 4100")  # over the 1024 x 4 bytes opened
    assert bytes(c.out) == b"0\n%d\n" % -errno.EBUSY and c.line() == b"VERSION\r\n"
    server._close_buffer(c, "iio:device2")
    pushes = []
    orig = server.node.tx_dma
    server.node.tx_dma = lambda enabled, words, cyclic: pushes.append((words.shape, cyclic))
    try:
        c = _FakeConn(bytes(4 * 2048 + 6))
        server._guarded(c, "OPEN iio:device2 1024 3")
        c.out.clear()
        server._guarded(c, "WRITEBUF iio:device2 %d" % (4 * 2048 + 6))
        # two whole buffers, then the 6-byte tail (>= one sample) as a third piece of one sample
        assert bytes(c.out) == b"0\n%d\n" % (4 * 2048 + 6)
        assert pushes == [((1024, 2), False), ((1024, 2), False), ((1, 2), False)]
        c.out.clear()
        server._guarded(c, "WRITEBUF iio:device2 3")  # shorter than a sample: iiod reads nothing
        assert bytes(c.out) == b"0\n"
        server._close_buffer(c, "iio:device2")
    finally:
        server.node.tx_dma = orig


def test_readbuf_is_served_one_buffer_per_length_line(server):
    c = _FakeConn()
    server._guarded(c, "OPEN iio:device3 %d 3" % (iiod.MAX_BUFFER_BYTES // 4 + 1))
    assert _first_int(c.out) == -errno.ENOMEM
    c.out.clear()
    server._guarded(c, "OPEN iio:device3 256 3")
    clock = server.node.rx_clock
    c.out.clear()
    server._guarded(c, "READBUF iio:device3 %d" % (1 << 62))
    assert bytes(c.out) == b"%d\n" % -errno.EINVAL and server.node.rx_clock == clock  # nothing made
    c.out.clear()
    server._guarded(c, "READBUF iio:device3 %d" % (3 * 1024 + 2))  # iiod: buffer after buffer, then "0"
    lengths, mask_line, data = _readbuf_answer(c.out)
    assert lengths == [1024, 1024, 1024] and mask_line == b"00000003" and len(data) == 3072
    assert len(c.out) == 3 * 5 + 9 + 3072 + 2 and c.out.endswith(b"0\n")  # the terminating "0"
    assert server.node.rx_clock == clock + 3 * 256
    c.out.clear()
    server._guarded(c, "READBUF iio:device3 1030")  # a partial last sample is sent as iiod does
    assert _readbuf_answer(c.out)[0] == [1024, 6] and server.node.rx_clock == clock + 3 * 256 + 258
    c.out.clear()
    server._guarded(c, "READBUF iio:device3 3")  # shorter than a sample
    assert bytes(c.out) == b"0\n"
    c.out.clear()
    server._guarded(c, "READBUF iio:device3 64")
    assert _first_int(c.out) == 64  # RX still serves
    server._close_buffer(c, "iio:device3")


def test_oversize_line_is_refused_and_the_stream_stays_in_sync():
    c = _FakeConn(b"A" * (3 * iiod.MAX_LINE) + b"\r\nVERSION\r\n")
    assert c.line() == b"\x00"
    assert c.line() == b"VERSION\r\n"


def _cmd(f, s, line: bytes) -> bytes:
    s.sendall(line)
    return f.readline()


def test_tx_buffer_is_exclusive(server):
    with socket.create_connection((server.host, server.port), timeout=5) as a, \
            socket.create_connection((server.host, server.port), timeout=5) as b:
        fa, fb = a.makefile("rb"), b.makefile("rb")
        assert _cmd(fa, a, b"OPEN iio:device2 64 3 CYCLIC\r\n") == b"0\n"
        a.sendall(b"WRITEBUF iio:device2 256\r\n")
        assert fa.readline() == b"0\n"
        a.sendall(np.full(128, 8192, "<i2").tobytes())
        assert fa.readline() == b"256\n"
        # iiod/ops.c open_dev_helper: "Only one client allowed in cyclic mode", after a 50 ms retry
        t0 = time.monotonic()
        assert _cmd(fb, b, b"OPEN iio:device2 64 3 CYCLIC\r\n") == b"%d\n" % -errno.EBUSY
        assert time.monotonic() - t0 >= iiod.OPEN_BUSY_RETRY_S
        assert _cmd(fb, b, b"OPEN iio:device2 64 3\r\n") == b"%d\n" % -errno.EBUSY  # held cyclic
        assert _cmd(fb, b, b"CLOSE iio:device2\r\n") == b"%d\n" % -errno.ENXIO  # close_dev_helper
        assert _cmd(fb, b, b"CLOSE no-such-device\r\n") == b"%d\n" % -errno.ENODEV
        assert server.node._cyclic is not None  # a's cyclic TX still on air
        assert _cmd(fa, a, b"CLOSE iio:device2\r\n") == b"0\n"
        assert _cmd(fb, b, b"OPEN iio:device2 64 3\r\n") == b"0\n"  # free again
        assert _cmd(fa, a, b"OPEN iio:device2 64 3\r\n") == b"0\n"  # non-cyclic buffers are shared
        assert _cmd(fa, a, b"OPEN iio:device3 64 3 CYCLIC\r\n") == b"0\n"
        assert _cmd(fb, b, b"OPEN iio:device3 64 3\r\n") == b"%d\n" % -errno.EBUSY  # also for RX
        assert _cmd(fa, a, b"CLOSE iio:device3\r\n") == b"0\n"
        a.sendall(b"WRITEBUF iio:device2 256\r\n")
        assert fa.readline() == b"0\n"
        a.sendall(np.full(128, 8192, "<i2").tobytes())
        assert fa.readline() == b"256\n"
        assert _cmd(fa, a, b"CLOSE iio:device2\r\n") == b"0\n"
        assert server.node._streaming  # b still holds the TX: not stopped
        assert _cmd(fb, b, b"CLOSE iio:device2\r\n") == b"0\n"
        assert not server.node._streaming  # the last holder left: the TX stopped


def _wait(cond, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_connection_cap_and_idle_timeout(server):
    assert _wait(lambda: server.open_connections == 0)
    socks = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(4)]
    try:
        assert _wait(lambda: server.open_connections == 4)
        extra = socket.create_connection((server.host, server.port), timeout=5)
        assert extra.recv(1) == b""  # accepted and closed at once: over max_connections = 4
        extra.close()
        assert server.connections_refused >= 1
        # the four say nothing: after idle_timeout_s = 0.5 s they are dropped
        assert _wait(lambda: server.open_connections == 0, 5.0)
        assert socks[0].recv(1) == b""
    finally:
        for s in socks:
            s.close()
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        assert _cmd(s.makefile("rb"), s, b"VERSION\r\n") == iiod.VERSION_LINE  # still serving


def test_accept_loop_survives_emfile():
    node = Air([PlutoModel()], AirConfig(seed=0)).nodes[0]
    srv = IiodServer(node)

    class Flaky:  # the listening socket of a process out of file descriptors, three times
        def __init__(self, sock):
            self.sock, self.calls = sock, 0

        def accept(self):
            self.calls += 1
            if self.calls <= 3:
                raise OSError(errno.EMFILE, "Too many open files")
            return self.sock.accept()

        def __getattr__(self, name):
            return getattr(self.sock, name)

    srv._sock = Flaky(srv._sock)
    srv.start()
    try:
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            assert _cmd(s.makefile("rb"), s, b"VERSION\r\n") == iiod.VERSION_LINE
        assert srv.accept_errors == 3
    finally:
        srv.shutdown()


def test_a_failing_command_answers_eio_and_the_connection_keeps_serving(server, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.model, "read", boom)
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        f = s.makefile("rb")
        assert _cmd(f, s, b"READ iio:device0 DEBUG loopback\r\n") == b"%d\n" % -errno.EIO
        assert _cmd(f, s, b"VERSION\r\n") == iiod.VERSION_LINE
    assert server.errors >= 1
    server.errors = 0
