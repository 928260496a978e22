"""The channel server as a real process on ephemeral ports: bursts, channel, metadata, bad input,
restart, signals, patterns. Every wait polls with a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np
import pytest
import zmq

from hil.errors import RadioError, RadioTimeout
from hil.radio.zmq import ZmqRadio, control_request
from sim_fallback.topology import two_node_config

pytestmark = pytest.mark.sim


def qpsk(rng: np.random.Generator, n_ant: int, n: int, amp: float = 0.5) -> np.ndarray:
    b = rng.integers(0, 2, size=(n_ant, n, 2))
    return (amp / np.sqrt(2) * ((1 - 2 * b[..., 0]) + 1j * (1 - 2 * b[..., 1]))).astype(np.complex64)


def wait_for(pred, timeout_s: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)  # polling interval of a deadline loop, not a synchronisation sleep


def stats(srv) -> dict:
    return control_request(zmq.Context.instance(), srv.control, {"cmd": "stats"}, 5.0)


# ---------------------------------------------------------------------------------------------- bursts
def test_burst_arrives_at_reported_start_inside_silent_margins(channel_server):
    srv = channel_server(two_node_config(None, test_mode=True, lead_samples=100, lead_jitter=40,
                                         trail_samples=60))
    rng = np.random.default_rng(1)
    with ZmqRadio(srv.control, "edge", "server") as radio:
        starts = set()
        for _ in range(4):
            x = qpsk(rng, 2, 1000)
            y = radio.transceive(x)
            assert y.dtype == np.complex64 and y.shape == (2, 100 + 40 + 1000 + 60)
            s = radio.last_burst()["start"]
            assert 100 <= s <= 140
            starts.add(s)
            np.testing.assert_array_equal(y[:, s:s + 1000], x)  # ideal wire: bit exact
            assert not y[:, :s].any() and not y[:, s + 1000:].any()
        assert len(starts) > 1, "the lead jitter must move the burst (seed 0 of the server)"
        # longer capture on request
        y = radio.transceive(qpsk(rng, 2, 100), rx_samples=5000)
        assert y.shape == (2, 5000)


def test_metadata_sequence_numbers_counters_and_hidden_state(channel_server):
    srv = channel_server(two_node_config(None))  # test_mode off
    rng = np.random.default_rng(4)
    with ZmqRadio(srv.control, "edge", "server") as radio:
        seqs = []
        for k in range(3):
            radio.transceive(qpsk(rng, 2, 300))
            ev = radio.last_burst()
            seqs.append(ev["seq"])
            assert ev["tx_seq"] == k + 1 and ev["tx_samples"] == 300
            assert "start" not in ev and "state" not in ev  # the truth stays hidden
        assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
        st = radio.stats()
        assert st["nodes"]["edge"]["samples_in"] == 3 * 2 * 300  # per antenna stream
        assert st["nodes"]["edge"]["bursts_in"] == 3
        assert st["nodes"]["server"]["bursts_out"] == 3
        assert st["rejected"] == 0
        with pytest.raises(RadioError, match="test_mode"):
            radio.request("state")


def test_events_socket_publishes_json_per_burst(channel_server):
    srv = channel_server(two_node_config(None))
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(srv.events)
    try:
        with ZmqRadio(srv.control, "edge", "server") as radio:
            rng = np.random.default_rng(5)

            def got_event():  # SUB joins asynchronously: send bursts until one event arrives
                radio.transceive(qpsk(rng, 2, 64))
                return sub.poll(200)

            wait_for(got_event, 10.0, "an event on the PUB socket")
            ev = json.loads(sub.recv())
            assert ev["type"] == "burst" and ev["src"] == "edge" and ev["dst"] == "server"
    finally:
        sub.close()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_input_server(channel_server_module):
    return channel_server_module(two_node_config(None, max_message_bytes=1 << 16))


def _push(endpoint: str, frames: list) -> None:
    s = zmq.Context.instance().socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    s.connect(endpoint)
    s.send_multipart(frames)
    s.close()  # linger delivers it


def _check_rejected_and_still_serving(srv, reason: str, send) -> None:
    before = stats(srv)
    send()
    wait_for(lambda: stats(srv)["rejected_by_reason"][reason] > before["rejected_by_reason"][reason], 5.0,
             f"a rejection counted as {reason}")
    after = stats(srv)
    assert after["rejected"] > before["rejected"]
    wait_for(lambda: reason in srv.log_text(), 5.0, f"the reason {reason} in the server log")
    with ZmqRadio(srv.control, "edge", "server") as radio:  # the server keeps serving
        x = qpsk(np.random.default_rng(6), 2, 200)
        assert radio.transceive(x).shape[1] >= 200
    assert srv.alive


def test_rejects_length_not_multiple_of_8(bad_input_server):
    srv = bad_input_server
    _check_rejected_and_still_serving(srv, "length_not_multiple_of_8",
                                      lambda: _push(srv.nodes["edge"]["tx"][0], [b"\x00" * 12]))


def test_rejects_nan_and_inf(bad_input_server):
    srv = bad_input_server
    before = stats(srv)["rejected_by_reason"]["non_finite"]

    def send():
        _push(srv.nodes["edge"]["tx"][0], [np.array([0.1, np.nan], np.complex64).tobytes()])
        _push(srv.nodes["edge"]["tx"][1], [np.array([np.inf, 0.2], np.complex64).tobytes()])

    _check_rejected_and_still_serving(srv, "non_finite", send)
    wait_for(lambda: stats(srv)["rejected_by_reason"]["non_finite"] == before + 2, 5.0, "both counted")


def test_rejects_message_larger_than_configured_max(bad_input_server):
    srv = bad_input_server
    big = np.zeros((1 << 16) // 8 + 1, np.complex64).tobytes()  # one sample over max_message_bytes
    _check_rejected_and_still_serving(srv, "too_large", lambda: _push(srv.nodes["edge"]["tx"][0], [big]))
    with ZmqRadio(srv.control, "edge", "server") as radio:  # the client refuses it before sending
        with pytest.raises(ValueError, match="max_message_bytes"):
            radio.transceive(np.zeros((2, (1 << 16) // 8), np.complex64))


def test_rejects_unknown_node(bad_input_server):
    srv = bad_input_server
    hdr = json.dumps({"seq": 1, "dst": "nobody"}).encode()
    samples = np.zeros(16, np.complex64).tobytes()
    _check_rejected_and_still_serving(srv, "unknown_node",
                                      lambda: _push(srv.nodes["edge"]["tx"][0], [hdr, samples]))
    # on the control socket too: an error reply, counted
    n = stats(srv)["rejected_by_reason"]["unknown_node"]
    with pytest.raises(RadioError, match="unknown node 'nobody'"):
        control_request(zmq.Context.instance(), srv.control, {"cmd": "last", "node": "nobody"}, 5.0)
    assert stats(srv)["rejected_by_reason"]["unknown_node"] == n + 1
    with pytest.raises(ValueError, match="unknown node 'nobody'"):
        ZmqRadio(srv.control, "edge", "nobody")


# ---------------------------------------------------------------------------------------------- lifecycle
def test_client_reconnects_after_server_restart(channel_server):
    srv = channel_server(two_node_config(None, test_mode=True))
    rng = np.random.default_rng(7)
    with ZmqRadio(srv.control, "edge", "server", timeout_s=10.0) as radio:
        x = qpsk(rng, 2, 400)
        radio.transceive(x)
        pid = srv.proc.pid
        srv2 = channel_server.restart(srv)  # SIGTERM, then a new process on the same endpoints
        assert srv2.proc.pid != pid and srv2.control == srv.control
        y = radio.transceive(x)  # the same sockets, reconnected by ZMQ
        s = radio.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s:s + 400], x)
        assert stats(srv2)["bursts_in"] == 1  # the new process served it


@pytest.mark.parametrize("how", ["SIGTERM python -m sim_fallback", "SIGINT hil sim serve"])
def test_signal_stops_cleanly_within_a_second(channel_server, how):
    signum = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
    cmd = None if "sim_fallback" in how else [sys.executable, "-m", "hil.cli", "sim", "serve"]
    srv = channel_server(two_node_config(None), command=cmd)
    with ZmqRadio(srv.control, "edge", "server") as radio:  # a connected client does not hold it up
        radio.transceive(qpsk(np.random.default_rng(8), 2, 100))
        t0 = time.monotonic()
        srv.send_signal(signum)
        srv.proc.wait(timeout=5)
        dt = time.monotonic() - t0
    assert dt < 1.0, f"took {dt:.2f} s to stop"
    assert srv.proc.returncode == 0
    assert "channel server stopped" in srv.log_text()


def test_binds_localhost_ephemeral_ports_and_reports_them(channel_server):
    a = channel_server(two_node_config(None))
    b = channel_server(two_node_config(None))
    eps = []
    for srv in (a, b):
        e = [srv.control, srv.events] + [ep for n in srv.nodes.values() for ep in n["tx"] + n["rx"]]
        assert all(x.startswith("tcp://127.0.0.1:") for x in e), e
        assert len(set(e)) == len(e) == 2 + 2 * 2 * 2
        eps += e
    assert len(set(eps)) == len(eps), "two servers must not share a port"


@pytest.mark.parametrize("plane", ["tcp", "auto"])
def test_radio_timeout_names_the_endpoint_and_close_is_idempotent(channel_server, plane):
    srv = channel_server(two_node_config(None))
    radio = ZmqRadio(srv.control, "edge", "server", timeout_s=0.5, data_plane=plane)
    srv.stop()
    with pytest.raises(RadioTimeout) as ei:
        radio.transceive(qpsk(np.random.default_rng(9), 2, 100))
    if plane == "tcp":  # the data stream that did not deliver
        assert radio.rx_endpoints[0] in str(ei.value) or radio.tx_endpoints[0] in str(ei.value)
    else:  # the first burst on this host asks the control socket for shared memory: that one did not answer
        assert f"control {srv.control} did not answer 'shm_open'" in str(ei.value)
    with pytest.raises(RadioTimeout, match=srv.control):
        radio.stats()
    radio.close()
    radio.close()
    with pytest.raises(RadioError, match="closed"):
        radio.transceive(np.zeros((2, 10), np.complex64))


# ---------------------------------------------------------------------------------------------- modes
def test_stream_mode_passes_chunks_continuously(channel_server):
    srv = channel_server(two_node_config(None, a="tx", b="rx", n_a=2, n_b=2, mode="stream"))
    rng = np.random.default_rng(10)
    chunks = [qpsk(rng, 2, n) for n in (100, 1, 2500, 37)]
    with ZmqRadio(srv.control, "tx", "rx") as radio:
        for c in chunks:
            radio.tx(c)
        y = radio.rx(sum(c.shape[1] for c in chunks))
    np.testing.assert_array_equal(y, np.concatenate(chunks, axis=1))


def test_pubsub_pattern(channel_server):
    cfg = two_node_config(None, test_mode=True)
    for n in cfg["nodes"]:
        n["pattern"] = "pubsub"
    srv = channel_server(cfg)
    rng = np.random.default_rng(11)
    with ZmqRadio(srv.control, "edge", "server", timeout_s=0.3) as radio:
        x = qpsk(rng, 2, 300)

        def try_once():  # PUB/SUB drops until the subscription is in place: retry with a deadline
            try:
                return [radio.transceive(x)]
            except RadioTimeout:
                return None

        (y,) = wait_for(try_once, 10.0, "a burst over PUB/SUB")
        s = radio.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s:s + 300], x)


def test_server_connects_to_a_bound_sender(channel_server):
    """A GNU Radio push_sink binds; the server's tx_connect makes it connect to such a sender."""
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.bind("tcp://127.0.0.1:*")
    ep = push.getsockopt_string(zmq.LAST_ENDPOINT)
    cfg = two_node_config(None, a="tx", b="rx", n_a=1, n_b=1, mode="stream")
    cfg["nodes"][0]["tx_connect"] = [ep]
    srv = channel_server(cfg)
    assert srv.nodes["tx"]["tx"] == [ep] and srv.nodes["tx"]["tx_role"] == "connect"
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(srv.nodes["rx"]["rx"][0])
    try:
        x = qpsk(np.random.default_rng(12), 1, 4096)[0]
        push.send(x.tobytes())
        got = []
        while sum(g.size for g in got) < x.size:
            assert pull.poll(5000), "no samples from the server"
            got.append(np.frombuffer(pull.recv(), np.complex64))
        np.testing.assert_array_equal(np.concatenate(got), x)
    finally:
        push.close()
        pull.close()


def test_ipc_transport_and_endpoints_file(channel_server, tmp_path):
    f = tmp_path / "endpoints.json"
    srv = channel_server(two_node_config(None, transport="ipc", ipc_dir=str(tmp_path), test_mode=True),
                         command=[sys.executable, "-m", "sim_fallback", "--endpoints-file", str(f)])
    written = json.loads(f.read_text())  # written before the ready line
    assert written["control"] == srv.control and written["nodes"] == srv.nodes
    assert all(ep.startswith("ipc://") for n in srv.nodes.values() for ep in n["tx"] + n["rx"])
    with ZmqRadio(srv.control, "edge", "server") as radio:
        x = qpsk(np.random.default_rng(14), 2, 256)
        y = radio.transceive(x)
        s = radio.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s:s + 256], x)
