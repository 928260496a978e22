"""Hostile input to the channel server (its loop in a thread of this process, real sockets): every
message is answered or counted and the server keeps serving; pending bursts, captures and queued
outputs are bounded; huge finite samples saturate. Plus bounded fuzzing of the two parsers."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import RadioError
from hil.radio.zmq import ZmqRadio, control_request
from sim_fallback.channel_server import (MAX_JSON_DEPTH, REASONS, BadMessage, ChannelServer, PendingBursts,
                                         parse_header, parse_request)
from sim_fallback.topology import load_topology, two_node_config


@pytest.fixture
def serve():
    """``serve(config) -> (server, info)``: a channel server loop on a thread, stopped at teardown."""
    started = []

    def start(cfg):
        srv = ChannelServer(load_topology(cfg))
        info = srv.bind()
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        started.append((srv, th))
        return srv, info

    yield start
    for srv, th in started:
        srv.stop()
        th.join(timeout=2)


def raw_control(endpoint: str, frames: list[bytes], timeout_s: float = 5.0) -> dict:
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    try:
        s.connect(endpoint)
        s.send_multipart(frames)
        assert s.poll(int(timeout_s * 1000)), f"no reply to {frames!r:.80}"
        return json.loads(s.recv())
    finally:
        s.close(0)


def push(endpoint: str, frames: list) -> None:
    s = zmq.Context.instance().socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    s.connect(endpoint)
    s.send_multipart(frames)
    s.close()


def wait_for(pred, timeout_s: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while not (v := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)  # polling interval of a deadline loop
    return v


def good_burst(info: dict, seed: int = 0, n: int = 300) -> None:
    """A ZmqRadio burst edge -> server comes back bit exact (ideal wire): the server still serves."""
    x = np.exp(2j * np.pi * np.random.default_rng(seed).random((2, n))).astype(np.complex64) * np.float32(0.5)
    with ZmqRadio(info["control"], "edge", "server", timeout_s=5.0) as r:
        y = r.transceive(x)
        s = r.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s:s + n], x)


DEEP = b"[" * 100_000 + b"]" * 100_000  # RecursionError in json.loads without a depth bound


# ---------------------------------------------------------------------------------------------- control
@pytest.mark.parametrize("frames, reason", [
    ([b'{"cmd": "last", "node": [1]}'], "bad_request"),           # non-string node: TypeError before
    ([b'{"cmd": "state", "node": {"a": 1}}'], "bad_request"),
    ([b'{"cmd": "last", "src": 5}'], "bad_request"),
    ([b'{"cmd": "ping", "x": ' + DEEP[:60000] + b"}"], "bad_request"),  # deep nesting: RecursionError before
    ([b'{"cmd": "ping"}', b"second frame"], "bad_request"),       # two frames: EFSM on the reply before
    ([b"\xff\xfe not json"], "bad_request"),
])
def test_hostile_control_request_is_answered_counted_and_server_keeps_serving(serve, frames, reason):
    srv, info = serve(two_node_config(None, test_mode=True))
    reply = raw_control(info["control"], frames)
    assert reply["ok"] is False and isinstance(reply["error"], str) and reply["error"]
    st_ = control_request(zmq.Context.instance(), info["control"], {"cmd": "stats"}, 5.0)
    assert st_["rejected_by_reason"][reason] == 1
    good_burst(info)
    assert control_request(zmq.Context.instance(), info["control"], {"cmd": "ping"}, 5.0)["ok"]


def test_unexpected_failure_in_a_control_command_is_answered_and_counted(serve, monkeypatch):
    srv, info = serve(two_node_config(None, test_mode=True))
    monkeypatch.setattr(srv, "stats", lambda: 1 / 0)
    reply = raw_control(info["control"], [b'{"cmd": "stats"}'])
    assert reply["ok"] is False and "ZeroDivisionError" in reply["error"]
    assert srv.rejected_by_reason["internal_error"] == 1
    good_burst(info)


# ---------------------------------------------------------------------------------------------- data
def test_deeply_nested_data_header_is_rejected_and_server_keeps_serving(serve):
    srv, info = serve(two_node_config(None, test_mode=True))
    push(info["nodes"]["edge"]["tx"][0], [DEEP[:60000], np.zeros(4, np.complex64).tobytes()])
    wait_for(lambda: srv.rejected_by_reason["bad_header"] == 1, 5.0, "the header rejected")
    good_burst(info)


def test_header_parsed_once_per_burst_still_refuses_every_bad_header(serve, monkeypatch):
    """The header bytes a burst repeats on every antenna are parsed once; an empty header frame, a bad
    header after a good one, and a good header after a bad one are each answered as when parsed alone."""
    import sim_fallback.channel_server as cs

    calls = []
    real = cs.parse_header
    monkeypatch.setattr(cs, "parse_header", lambda raw: calls.append(raw) or real(raw))
    srv, info = serve(two_node_config(None, test_mode=True))
    tx = info["nodes"]["edge"]["tx"]
    z = np.zeros(4, np.complex64).tobytes()
    push(tx[0], [b"", z])  # an empty header frame: not JSON
    wait_for(lambda: srv.rejected_by_reason["bad_header"] == 1, 5.0, "the empty header rejected")
    good = json.dumps({"seq": 7, "dst": "server", "sender": "t"}).encode()
    for ant in (0, 1):
        push(tx[ant], [good, z])
    wait_for(lambda: srv.totals["bursts_in"] == 1, 5.0, "the good burst")
    assert calls.count(good) == 1  # the second antenna's identical bytes came from the cache
    push(tx[1], [b'{"seq": -1}', z])
    wait_for(lambda: srv.rejected_by_reason["bad_header"] == 2, 5.0, "the bad header after a good one")
    push(tx[0], [good, z])  # the same good bytes again: parsed or not, accepted as before
    wait_for(lambda: srv.totals["messages_in"] == 5, 5.0, "the last message")
    assert srv.rejected_by_reason["bad_header"] == 2
    good_burst(info)


@pytest.mark.parametrize("plane", ["tcp", "shm"])
def test_unexpected_failure_handling_a_data_message_is_counted_and_server_keeps_serving(serve, monkeypatch, plane):
    srv, info = serve(two_node_config(None, test_mode=True))
    real = srv._burst_block  # shared by the TCP and the shared-memory paths
    calls = []

    def fail_once(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom on purpose")
        return real(*a, **kw)

    monkeypatch.setattr(srv, "_burst_block", fail_once)
    with ZmqRadio(info["control"], "edge", "server", timeout_s=0.5, data_plane=plane) as r:
        with pytest.raises(RadioError):
            r.transceive(np.zeros((2, 10), np.complex64))
    assert srv.rejected_by_reason["internal_error"] == 1
    good_burst(info)


def test_65_small_messages_from_one_sender_do_not_stop_other_senders(serve):
    srv, info = serve(two_node_config(None, test_mode=True))
    ep0 = info["nodes"]["edge"]["tx"][0]
    s = zmq.Context.instance().socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    s.connect(ep0)
    for k in range(200):  # antenna 0 only: never complete
        s.send_multipart([json.dumps({"seq": k, "sender": "x"}).encode(), np.zeros(1, np.complex64).tobytes()])
    s.close()
    wait_for(lambda: srv.stats()["nodes"]["edge"]["messages_in"] >= 200, 5.0, "the flood received")
    assert srv.stats()["pending_bursts"] <= 64
    good_burst(info, 1)
    good_burst(info, 2)
    # a headerless (GNU Radio style) burst on both antennas still goes through
    x = np.exp(2j * np.pi * np.random.default_rng(3).random((2, 64))).astype(np.complex64) * np.float32(0.5)
    pull = [zmq.Context.instance().socket(zmq.PULL) for _ in range(2)]
    try:
        for p, ep in zip(pull, info["nodes"]["server"]["rx"]):
            p.setsockopt(zmq.LINGER, 0)
            p.connect(ep)
        for i in range(2):
            push(info["nodes"]["edge"]["tx"][i], [x[i].tobytes()])
        rows = []
        for p in pull:
            assert p.poll(5000), "no output for the headerless burst"
            rows.append(np.frombuffer(p.recv(), np.complex64))
        start = control_request(zmq.Context.instance(), info["control"],
                                {"cmd": "last", "node": "server"}, 5.0)["event"]["start"]
        np.testing.assert_array_equal(np.stack(rows)[:, start:start + 64], x)
    finally:
        for p in pull:
            p.close(0)


def test_incomplete_bursts_expire(serve, monkeypatch):
    monkeypatch.setattr("sim_fallback.channel_server.PENDING_TIMEOUT_S", 0.2)
    srv, info = serve(two_node_config(None, test_mode=True))
    push(info["nodes"]["edge"]["tx"][0], [json.dumps({"seq": 1, "sender": "y"}).encode(),
                                          np.zeros(8, np.complex64).tobytes()])
    wait_for(lambda: srv.stats()["pending_bursts"] == 1, 5.0, "one pending burst")
    wait_for(lambda: srv.stats()["pending_bursts"] == 0, 5.0, "the pending burst expired")
    assert srv.stats()["pending_expired"] == 1


def test_capture_length_per_burst_is_capped(serve):
    srv, info = serve(two_node_config(None, max_message_bytes=1 << 27))
    hdr = json.dumps({"seq": 1, "rx_samples": 1 << 24}).encode()  # 16 bytes in, 2 x 128 MB out before
    for i in range(2):
        push(info["nodes"]["edge"]["tx"][i], [hdr, np.zeros(2, np.complex64).tobytes()])
    wait_for(lambda: srv.rejected_by_reason["too_large"] == 1, 5.0, "the capture refused")
    assert srv.stats()["nodes"]["server"]["queued_out_bytes"] == 0
    with ZmqRadio(info["control"], "edge", "server") as r:  # the client refuses it before sending
        with pytest.raises(ValueError, match="captures at most"):
            r.transceive(np.zeros((2, 2), np.complex64), rx_samples=1 << 24)
        y = r.transceive(np.zeros((2, 2), np.complex64), rx_samples=r.capture_samples(2) + 1000)
        assert y.shape[1] == r.capture_samples(2) + 1000


def test_output_queue_of_a_receiver_that_does_not_read_is_bounded_in_bytes(serve, monkeypatch):
    monkeypatch.setattr("sim_fallback.channel_server.OUT_QUEUE_BYTES", 1 << 20)
    srv, info = serve(two_node_config(None, max_message_bytes=1 << 16, hold_s=30.0))
    lim = srv.limits
    assert lim["data_hwm"] == 16 and lim["queued_out_bytes_per_node"] >= 1 << 20
    pull = zmq.Context.instance().socket(zmq.PULL)  # connected, never reads
    pull.setsockopt(zmq.RCVHWM, 1)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(info["nodes"]["server"]["rx"][0])
    try:
        x = np.zeros(8000, np.complex64).tobytes()
        tx = [zmq.Context.instance().socket(zmq.PUSH) for _ in range(2)]
        for s, ep in zip(tx, info["nodes"]["edge"]["tx"]):
            s.setsockopt(zmq.LINGER, 0)
            s.connect(ep)
        for k in range(200):  # 200 x 2 x 66 kB of output
            for s in tx:
                s.send_multipart([json.dumps({"seq": k}).encode(), x])
        wait_for(lambda: srv.stats()["messages_in"] == 400, 10.0, "all messages received")
        wait_for(lambda: srv.stats()["bursts_in"] + srv.stats()["incomplete"] >= 200, 10.0, "all bursts handled")
        for s in tx:
            s.close(0)
        st_ = srv.stats()
        assert st_["nodes"]["server"]["queued_out_bytes"] <= lim["queued_out_bytes_per_node"]
        assert st_["dropped_queue_full"] > 0
    finally:
        pull.close(0)


def test_huge_finite_samples_saturate_instead_of_coming_out_inf(serve):
    spec = {"fading": "rayleigh", "snr_db": 20.0}
    srv, info = serve(two_node_config(spec, lead_samples=0, lead_jitter=0, trail_samples=0))
    x = np.full(256, 3e38 + 3e38j, np.complex64).tobytes()  # finite; a client would refuse it, a raw socket not
    pull = [zmq.Context.instance().socket(zmq.PULL) for _ in range(2)]
    try:
        for p, ep in zip(pull, info["nodes"]["server"]["rx"]):
            p.setsockopt(zmq.LINGER, 0)
            p.connect(ep)
        for i in range(2):
            push(info["nodes"]["edge"]["tx"][i], [b'{"seq": 1}', x])
        for p in pull:
            assert p.poll(5000), "no output"
            y = np.frombuffer(p.recv(), np.float32)
            assert y.size == 512 and np.isfinite(y).all()
    finally:
        for p in pull:
            p.close(0)
    assert srv.stats()["saturated"] == 2


def test_second_reader_of_a_stream_is_told_so(serve):
    srv, info = serve(two_node_config(None, test_mode=True))
    with ZmqRadio(info["control"], "edge", "server", timeout_s=0.5, data_plane="tcp") as a, \
            ZmqRadio(info["control"], "edge", "server", timeout_s=0.5, data_plane="tcp") as b:
        wait_for(lambda: srv.stats()["nodes"]["server"]["readers"] == [2, 2], 5.0, "two readers counted")
        with pytest.raises(RadioError, match="already has another reader"):
            for _ in range(4):  # outputs alternate between the readers: one of a's captures is lost
                a.transceive(np.zeros((2, 16), np.complex64))
        del b


# ---------------------------------------------------------------------------------------------- pure parts
def test_pending_bursts_evict_the_heaviest_sender_not_the_one_in_flight():
    p = PendingBursts(per_sender=4, per_sender_bytes=1000, total=6, total_bytes=10_000, timeout_s=1.0)
    for k in range(10):  # sender x floods antenna 0
        assert p.add(("n", "x", k), 2, 0, k, 8, 0.0)[0] is None
    assert len(p) == 4 and p.evicted == 6  # its own limit
    assert p.add(("n", "good", 1), 2, 0, "a0", 8, 0.0)[0] is None
    for k in range(3):  # rotating names fill the total
        p.add(("n", f"r{k}", 0), 2, 0, k, 8, 0.0)
    slots, _ = p.add(("n", "good", 1), 2, 1, "a1", 8, 0.0)
    assert slots == ["a0", "a1"]
    assert p.add(("n", "big", 0), 2, 0, 0, 2000, 0.0)[0] is None and p.count("n") <= 6
    left = len(p)
    assert p.expire(5.0) == left == p.expired and len(p) == 0 and p.nbytes == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"cmd": st.sampled_from(["ping", "last", "state", "x"])},
                                       optional={"node": st.none() | st.integers() | st.text(max_size=4)
                                                 | st.lists(st.integers(), max_size=2),
                                                 "src": st.integers() | st.text(max_size=4)}
                                       ).map(lambda v: json.dumps(v).encode())),
       st.integers(1, 3))
def test_fuzz_parse_request_returns_a_request_or_a_clean_error(raw, n_frames):
    try:
        req = parse_request([raw] * n_frames)
    except BadMessage as e:
        assert e.reason in REASONS and str(e)
        return
    assert n_frames == 1 and isinstance(req["cmd"], str)
    assert all(req.get(k) is None or isinstance(req[k], str) for k in ("node", "src"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.integers(1, 3 * MAX_JSON_DEPTH).map(lambda d: (b'{"a":' * d + b"1" + b"}" * d)),
                 st.fixed_dictionaries({}, optional={"seq": st.integers(-2, 2**70) | st.floats() | st.text(max_size=3),
                                                     "rx_samples": st.integers(-2, 2**40) | st.booleans(),
                                                     "sender": st.text(max_size=70) | st.integers(),
                                                     "dst": st.text(max_size=5) | st.lists(st.integers(), max_size=2)}
                                       ).map(lambda v: json.dumps(v).encode())))
def test_fuzz_parse_header_returns_a_header_or_a_clean_error(raw):
    try:
        h = parse_header(raw)
    except BadMessage as e:
        assert e.reason in REASONS and str(e)
        return
    assert isinstance(h, dict)
    for k in ("seq", "rx_samples"):
        assert k not in h or (type(h[k]) is int and h[k] >= 0)
    assert "sender" not in h or (isinstance(h["sender"], str) and len(h["sender"]) <= 64)
    assert h.get("dst") is None or isinstance(h["dst"], str)
