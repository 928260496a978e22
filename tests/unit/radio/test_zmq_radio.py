"""ZmqRadio against a channel server running in a thread of this process (real sockets, ideal wire):
argument checking, caps, reverse(), timeouts and close()."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import zmq

from hil.errors import RadioError, RadioTimeout
from hil.radio.base import Radio
from hil.radio.zmq import ZmqRadio, control_request
from sim_fallback.channel_server import ChannelServer
from sim_fallback.topology import load_topology, two_node_config


@pytest.fixture
def server():
    cfg = two_node_config(None, n_a=2, n_b=2, test_mode=True, max_message_bytes=8 * 4096)
    cfg["nodes"].append({"name": "lonely", "antennas": 1})
    srv = ChannelServer(load_topology(cfg))
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield info
    srv.stop()
    th.join(timeout=2)
    assert not th.is_alive()


def test_is_a_radio_with_caps_from_the_server(server):
    with ZmqRadio(server["control"], "edge", "server") as r:
        assert isinstance(r, Radio)
        c = r.caps
        assert (c.n_tx, c.n_rx) == (2, 2)
        assert c.max_burst_samples == 4096
        assert c.sample_rate_range_hz == (1e6, 1e6)
        assert r.capture_samples(100) == 200 + 56 + 100 + 200


def test_transceive_accepts_info_dict_and_one_antenna_rows(server):
    # the info dict skips the control round trip; a (n,) burst is refused for a 2-antenna node
    with ZmqRadio(server, "edge", "server") as r:
        x = (np.arange(2 * 50).reshape(2, 50) / 100).astype(np.complex64)
        y = r.transceive(x)
        s = r.last_burst()["start"]
        np.testing.assert_array_equal(y[:, s:s + 50], x)
        with pytest.raises(ValueError, match="expected 2 antenna rows"):
            r.transceive(np.zeros(50, np.complex64))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 10), np.complex64), "expected 2 antenna rows"),
    (np.full((2, 10), np.nan, np.complex64), "NaN or Inf"),
    (np.zeros((2, 0), np.complex64), "empty"),
    (np.zeros((2, 5000), np.complex64), "max_message_bytes"),
])
def test_bad_bursts_are_refused_before_sending(server, bad, match):
    with ZmqRadio(server["control"], "edge", "server") as r:
        with pytest.raises(ValueError, match=match):
            r.transceive(bad)
        assert r.stats()["messages_in"] == 0


def test_unknown_or_unlinked_nodes(server):
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        ZmqRadio(server["control"], "ghost", "server")
    with pytest.raises(ValueError, match="no link 'edge' -> 'lonely'"):
        ZmqRadio(server["control"], "edge", "lonely")


def test_reverse_is_cached_and_closed_with_the_forward_radio(server):
    fwd = ZmqRadio(server["control"], "edge", "server")
    rev = fwd.reverse()
    assert rev is fwd.reverse() and rev.reverse() is fwd
    assert (rev.tx_node, rev.rx_node) == ("server", "edge")
    x = np.full((2, 20), 0.25, np.complex64)
    y = rev.transceive(x)
    assert y.shape == (2, 200 + 56 + 20 + 200)
    fwd.close()
    fwd.close()  # idempotent
    with pytest.raises(RadioError, match="closed"):
        rev.transceive(x)
    with pytest.raises(RadioError, match="closed"):
        fwd.reverse()


def test_stream_calls_refused_in_burst_mode(server):
    with ZmqRadio(server["control"], "edge", "server") as r:
        with pytest.raises(RadioError, match="burst mode"):
            r.tx(np.zeros((2, 4), np.complex64))


def test_control_timeout_names_the_endpoint():
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)  # a server that never answers
    rep.bind("tcp://127.0.0.1:*")
    ep = rep.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with pytest.raises(RadioTimeout, match=ep):
            control_request(ctx, ep, {"cmd": "info"}, 0.2)
        with pytest.raises(RadioTimeout, match=ep):
            ZmqRadio(ep, "edge", "server", timeout_s=0.2)
    finally:
        rep.close(0)


def test_capture_timeout_names_the_rx_endpoint(server):
    # a fake info whose rx endpoint is a socket that never sends anything
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.bind("tcp://127.0.0.1:*")
    dead = push.getsockopt_string(zmq.LAST_ENDPOINT)
    info = {**server, "nodes": {k: dict(v) for k, v in server["nodes"].items()}}
    info["nodes"]["server"]["rx"] = [dead, dead]
    try:
        with ZmqRadio(info, "edge", "server", timeout_s=0.3) as r:
            with pytest.raises(RadioTimeout, match=f"antenna 0 at {dead}"):
                r.transceive(np.zeros((2, 8), np.complex64))
    finally:
        push.close(0)


def test_bad_timeout_argument():
    with pytest.raises(ValueError, match="timeout_s"):
        ZmqRadio("tcp://127.0.0.1:1", "a", "b", timeout_s=0)


# ---------------------------------------------------------------------------------------------- hostile servers
def _fake_server(info: dict):
    """A REP socket that answers every request with ``info`` (a server that lies); returns (endpoint, stop)."""
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind("tcp://127.0.0.1:*")
    ep = rep.getsockopt_string(zmq.LAST_ENDPOINT)
    done = threading.Event()

    def run():
        while not done.is_set():
            if rep.poll(50):
                rep.recv()
                rep.send_string(json.dumps({"ok": True, **info, "control": ep}))
        rep.close(0)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return ep, lambda: (done.set(), th.join(2))


@pytest.mark.parametrize("endpoint", ["ipc://{victim}", "tcp://0.0.0.0:0", "tcp://*:0", "inproc://x"])
def test_an_info_reply_from_the_network_cannot_make_the_client_bind_it(tmp_path, endpoint):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    ep = endpoint.format(victim=victim)
    node = {"antennas": 1, "mode": "burst", "pattern": "pushpull", "tx": ["tcp://127.0.0.1:1"], "rx": [ep],
            "tx_role": "bind", "rx_role": "connect", "peers": ["a"]}
    info = {"nodes": {"a": dict(node, peers=["b"]), "b": node}, "sample_rate_hz": 1e6, "max_message_bytes": 64,
            "links": {"a->b": {"lead_samples": 0, "lead_jitter": 0, "trail_samples": 0}}}
    control, stop = _fake_server(info)
    try:
        with pytest.raises(RadioError, match="binds only tcp:// loopback"):
            ZmqRadio(control, "a", "b", timeout_s=2.0)
    finally:
        stop()
    assert victim.read_text() == "keep me"


def test_loopback_tcp_endpoints():
    from hil.radio.zmq import is_loopback_tcp

    assert is_loopback_tcp("tcp://127.0.0.1:5555") and is_loopback_tcp("tcp://[::1]:1")
    assert is_loopback_tcp("tcp://localhost:7") and is_loopback_tcp("tcp://127.3.2.1:7")
    for ep in ("tcp://0.0.0.0:1", "tcp://*:1", "tcp://10.0.0.1:1", "ipc:///tmp/x", "tcp://eth0:1", "", None):
        assert not is_loopback_tcp(ep)
