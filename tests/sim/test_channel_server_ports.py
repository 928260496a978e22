"""Port numbering (``port_base``), peer roles, pacing and the headerless-burst warning of the channel server."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import zmq

from hil.errors import ConfigError
from sim_fallback.__main__ import endpoint_table
from sim_fallback.channel_server import _PACE_SLACK_S, ChannelServer
from sim_fallback.topology import default_config_path, endpoint_slots, load_topology, two_node_config
from tests.sim.conftest import find_port_base


def _cfg(**node_over):
    c = two_node_config(None, n_a=2, n_b=1, mode="stream")
    c["nodes"][0].update(node_over)
    return c


@pytest.mark.parametrize("change, match", [
    (lambda c: c["nodes"][0].update(tx_role="connect"), "needs \\[server\\] port_base"),
    (lambda c: c["nodes"][0].update(tx_role="sideways"), "tx_role: not an allowed value"),
    (lambda c: c["nodes"][0].update(rx_role="connect", rx_bind=["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]),
     "contradicts rx_bind"),
    (lambda c: c["nodes"][0].update(pattern="reqrep", mode="burst"), 'set mode = "stream"'),
    (lambda c: c["server"].update(port_base=5550, transport="ipc"), 'needs transport = "tcp"'),
    (lambda c: c["server"].update(port_base=65530), "passes port 65535"),
    (lambda c: c["server"].update(pace="yes"), "pace: must be true or false"),
])
def test_bad_port_role_and_pattern_settings_name_the_fix(change, match):
    c = _cfg()
    change(c)
    with pytest.raises(ConfigError, match=match):
        load_topology(c)


def test_port_base_puts_every_endpoint_in_the_documented_order():
    t = load_topology(two_node_config(None, n_a=2, n_b=1, mode="stream"))
    assert endpoint_slots(t) == ["control", "events", "edge-tx0", "edge-rx0", "edge-tx1", "edge-rx1",
                                 "server-tx0", "server-rx0"]
    p = find_port_base(8)
    c = two_node_config({"fading": "rayleigh"}, n_a=2, n_b=1, mode="stream", port_base=p)
    c["nodes"][1]["rx_bind"] = [f"tcp://127.0.0.1:{find_port_base(1)}"]  # a fixed endpoint keeps its value
    srv = ChannelServer(load_topology(c))
    try:
        info = srv.bind()
        assert info["control"] == f"tcp://127.0.0.1:{p}" and info["events"] == f"tcp://127.0.0.1:{p + 1}"
        assert info["nodes"]["edge"]["tx"] == [f"tcp://127.0.0.1:{p + 2}", f"tcp://127.0.0.1:{p + 4}"]
        assert info["nodes"]["edge"]["rx"] == [f"tcp://127.0.0.1:{p + 3}", f"tcp://127.0.0.1:{p + 5}"]
        assert info["nodes"]["server"]["tx"] == [f"tcp://127.0.0.1:{p + 6}"]
        assert info["nodes"]["server"]["rx"] == c["nodes"][1]["rx_bind"]
        table = endpoint_table(info).splitlines()
        assert table[0].split()[:3] == ["port", "stream", "endpoint"]
        assert [r.split()[0] for r in table[1:]] == [str(p + k) for k in range(7)] + [c["nodes"][1]["rx_bind"][0][-5:]]
        assert "PULL bind" in table[3] and "PUSH bind" in table[4]
    finally:
        srv.close()


def test_tx_role_connect_makes_the_server_connect_to_its_slot():
    """A GNU Radio push_sink binds; with tx_role = "connect" the server connects to the slot port."""
    p = find_port_base(6)
    ctx = zmq.Context.instance()
    sink = ctx.socket(zmq.PUSH)  # stands in for GNU Radio's zeromq.push_sink (it binds)
    sink.setsockopt(zmq.LINGER, 0)
    sink.bind(f"tcp://127.0.0.1:{p + 2}")
    c = two_node_config(None, n_a=1, n_b=1, mode="stream", port_base=p)
    c["nodes"][0]["tx_role"] = "connect"
    srv = ChannelServer(load_topology(c))
    rx = ctx.socket(zmq.PULL)
    rx.setsockopt(zmq.LINGER, 0)
    rx.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        info = srv.bind()
        assert info["nodes"]["edge"]["tx_role"] == "connect" and info["nodes"]["edge"]["tx"] == [f"tcp://127.0.0.1:{p + 2}"]
        import threading

        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        rx.connect(info["nodes"]["server"]["rx"][0])
        x = (np.arange(1000) * (1 + 1j) / 1000).astype(np.complex64)
        sink.send(x.tobytes())
        got = np.frombuffer(rx.recv(), np.complex64)
        np.testing.assert_array_equal(got, x)
    finally:
        srv.stop()
        th.join(timeout=3)
        srv.close()
        sink.close(0)
        rx.close(0)


def _run(srv):
    import threading

    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    return th


def test_headerless_messages_on_a_burst_node_warn_once_and_are_counted(caplog):
    srv = ChannelServer(load_topology(two_node_config(None, n_a=1, n_b=1, mode="burst")))
    info = srv.bind()
    ctx = zmq.Context.instance()
    tx, rx = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for s in (tx, rx):
        s.setsockopt(zmq.LINGER, 0)
    rx.setsockopt(zmq.RCVTIMEO, 5000)
    caplog.set_level(logging.WARNING, logger="sim_fallback.channel_server")
    th = _run(srv)
    try:
        tx.connect(info["nodes"]["edge"]["tx"][0])
        rx.connect(info["nodes"]["server"]["rx"][0])
        for _ in range(3):
            tx.send(np.ones(100, np.complex64).tobytes())
            rx.recv()  # each message became one padded burst
        st = srv.stats()
        assert st["nodes"]["edge"]["headerless_burst"] == 3 and st["headerless_burst"] == 3
        warnings = [r for r in caplog.records if "without a header" in r.getMessage()]
        assert len(warnings) == 1 and 'mode = "stream"' in warnings[0].getMessage()
    finally:
        srv.stop()
        th.join(timeout=3)
        tx.close(0)
        rx.close(0)


def test_pace_reads_a_stream_at_the_sample_rate():
    """1x1 wire at 200 kS/s, paced: 100 000 samples (0.5 s of signal) cannot pass in much less than 0.5 s.

    Deterministic lower bound (the pacing clock), loose upper bound (a loaded 2-core machine): the first
    10 000-sample message passes at once and an idle stream starts with _PACE_SLACK_S of credit, so at
    least 0.45 s - 0.05 s - 2 ms; at most 5 s.
    """
    fs, n, msg = 200e3, 100_000, 10_000
    srv = ChannelServer(load_topology(two_node_config(None, n_a=1, n_b=1, mode="stream",
                                                      sample_rate_hz=fs, pace=True)))
    info = srv.bind()
    ctx = zmq.Context.instance()
    tx, rx = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for s in (tx, rx):
        s.setsockopt(zmq.LINGER, 0)
    rx.setsockopt(zmq.RCVTIMEO, 5000)
    th = _run(srv)
    try:
        tx.connect(info["nodes"]["edge"]["tx"][0])
        rx.connect(info["nodes"]["server"]["rx"][0])
        x = (np.exp(0.01j * np.arange(n))).astype(np.complex64)
        t0 = time.monotonic()
        for k in range(0, n, msg):
            tx.send(x[k:k + msg].tobytes())
        got = []
        while sum(g.size for g in got) < n:
            got.append(np.frombuffer(rx.recv(), np.complex64))
        dt = time.monotonic() - t0
        np.testing.assert_array_equal(np.concatenate(got), x)
        assert (n - msg) / fs - _PACE_SLACK_S - 0.002 <= dt < 5.0, dt
    finally:
        srv.stop()
        th.join(timeout=3)
        tx.close(0)
        rx.close(0)


def test_shipped_gnuradio_topology_builds_at_a_port_base():
    raw = load_topology(default_config_path("gnuradio_2x2")).to_dict()
    assert raw["server"]["pace"] and raw["server"]["port_base"] == 5550
    raw["server"]["port_base"] = find_port_base(10)
    srv = ChannelServer(load_topology(raw))
    try:
        info = srv.bind()
        p = raw["server"]["port_base"]
        assert info["nodes"]["gr_tx"]["tx"] == [f"tcp://127.0.0.1:{p + 2}", f"tcp://127.0.0.1:{p + 4}"]
        assert info["nodes"]["gr_rx"]["rx"] == [f"tcp://127.0.0.1:{p + 7}", f"tcp://127.0.0.1:{p + 9}"]
    finally:
        srv.close()
