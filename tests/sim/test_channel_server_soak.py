"""Soak: a real channel-server process gets N hostile messages of every kind (control and data), a
receiver that connects and never reads, then still serves a ZmqRadio and a GNU-Radio-style headerless
raw-cf32 client correctly, and its resident memory stays under its documented bound."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from hil.radio.zmq import ZmqRadio, control_request
from sim_fallback.topology import two_node_config

pytestmark = pytest.mark.sim

N = 40  # hostile messages of each kind
SLACK = 48 << 20  # allocator and interpreter slack on top of the server's buffered_bytes_bound


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sock(kind: int, ep: str, **opts) -> zmq.Socket:
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    for k, v in opts.items():
        s.setsockopt(getattr(zmq, k), v)
    s.connect(ep)
    return s


def control_raw(ep: str, frames: list[bytes]) -> dict:
    s = sock(zmq.REQ, ep)
    try:
        s.send_multipart(frames)
        assert s.poll(5000), f"control socket did not answer {frames[0][:40]!r}"
        return json.loads(s.recv())
    finally:
        s.close(0)


def test_soak_hostile_stream_then_good_clients_and_bounded_memory(channel_server):
    srv = channel_server(two_node_config(None, test_mode=True, max_message_bytes=1 << 16, hold_s=1.0))
    ctx = zmq.Context.instance()
    limits = srv.info["limits"]
    pid = srv.proc.pid
    rng = np.random.default_rng(20)
    with ZmqRadio(srv.control, "edge", "server") as r:  # warm up (imports, first allocations)
        r.transceive(np.full((2, 1000), 0.5, np.complex64))
    base = vm_rss(pid)
    t0 = time.monotonic()

    deep = b"[" * 60000 + b"]" * 5000
    control_kinds = [[b'{"cmd": "last", "node": [1]}'], [b'{"cmd": "state", "node": {"x": []}}'],
                     [b'{"cmd": "ping", "x": ' + deep[:30000] + b"}"], [b'{"cmd": "ping"}', b"two"],
                     [b"\xff not json"], [b"x" * 70000], [b'{"cmd": "nope"}'], [b"[1, 2]"]]
    for _ in range(N // 4):
        for frames in control_kinds:
            assert control_raw(srv.control, frames)["ok"] is False

    tx = [sock(zmq.PUSH, ep, SNDTIMEO=5000) for ep in srv.nodes["edge"]["tx"]]
    idle = sock(zmq.PULL, srv.nodes["server"]["rx"][0], RCVHWM=1)  # connects, never reads
    big = np.full(4096, 3e38 + 3e38j, np.complex64).tobytes()
    ok = np.full(4096, 0.1, np.complex64).tobytes()
    data_kinds = [
        [deep[:40000], ok],                                     # nested header
        [b'{"seq": "one"}', ok], [b"\x00\x01", ok],            # bad headers
        [b"\x00" * 12], [b""], [b"\x00" * ((1 << 16) + 8)],    # length, empty, too large
        [np.array([np.nan, 1], np.complex64).tobytes()],       # NaN
        [b'{"dst": "nobody"}', ok], [b'{"dst": [1]}', ok],     # unknown node
        [b'{"seq": 1, "rx_samples": 8000}', np.zeros(2, np.complex64).tobytes()],  # capture too long
        [b"{}", b"{}", ok],                                     # three frames
    ]
    for k in range(N):
        for frames in data_kinds:
            tx[0].send_multipart(frames)
        tx[0].send_multipart([json.dumps({"seq": k, "sender": "x"}).encode(), ok[:8]])  # never complete
        tx[0].send(ok)  # headerless, antenna 0 only
        for s in tx:  # huge finite samples, a complete burst: to the receiver that does not read
            s.send_multipart([json.dumps({"seq": k, "sender": "big"}).encode(), big])
    for s in tx:
        s.close(linger=10000)  # deliver everything queued

    def stats():
        return control_request(ctx, srv.control, {"cmd": "stats"}, 5.0)

    deadline = time.monotonic() + 20
    while stats()["messages_in"] < N * (len(data_kinds) + 4) + 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval of a deadline loop
    st = stats()
    assert st["messages_in"] >= N * (len(data_kinds) + 4) + 2, (st, srv.log_text()[-3000:])
    peak = vm_rss(pid)
    idle.close(0)
    assert st["saturated"] >= N and st["pending_bursts"] <= limits["pending_bursts_per_sender"] * 2 + 1
    assert st["rejected_by_reason"]["bad_request"] >= 2 * N and st["rejected_by_reason"]["bad_header"] >= 3 * N

    # the good clients: a ZmqRadio, then a headerless (GNU Radio style) raw cf32 client
    time.sleep(limits["pending_timeout_s"] + 0.2)  # let the flood's incomplete bursts expire
    x = (np.exp(2j * np.pi * rng.random((2, 500))) * 0.5).astype(np.complex64)
    with ZmqRadio(srv.control, "edge", "server", timeout_s=5.0) as r:
        y = r.transceive(x)
        s0 = r.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s0:s0 + 500], x)
    pull = [sock(zmq.PULL, ep) for ep in srv.nodes["server"]["rx"]]
    push = [sock(zmq.PUSH, ep) for ep in srv.nodes["edge"]["tx"]]
    try:
        for _ in range(100):  # wait until both PULLs are counted and the old readers are gone
            if stats()["nodes"]["server"]["readers"] == [1, 1]:
                break
            time.sleep(0.02)
        for i, p in enumerate(push):
            p.send(x[i].tobytes())
        rows = []
        for p in pull:
            assert p.poll(5000), "the headerless client got no output"
            rows.append(np.frombuffer(p.recv(), np.complex64))
        ev = control_request(ctx, srv.control, {"cmd": "last", "node": "server"}, 5.0)["event"]
        np.testing.assert_array_equal(np.stack(rows)[:, ev["start"]:ev["start"] + 500], x)
    finally:
        for s in pull + push:
            s.close(0)
    end = vm_rss(pid)
    bound = limits["buffered_bytes_bound"] + SLACK
    assert peak - base <= bound and end - base <= bound, (base, peak, end, bound)
    assert srv.alive
    assert time.monotonic() - t0 < 60
