"""srsRAN-style REQ/REP sample sockets (``pattern = "reqrep"``), against clients that follow srsRAN 4G's ZMQ
RF driver (lib/src/phy/rf/rf_zmq_imp_tx.c, rf_zmq_imp_rx.c) exactly:

- srsRAN's transmitter binds a REP socket (``tx_port``), waits for a request, reads (and ignores) one
  byte of it and answers with the samples of its next transmit call, raw cf32;
- srsRAN's receiver connects a REQ socket (``rx_port``), sends one byte 0xFF and receives up to
  3 072 000 cf32 samples per answer, then asks again.

Here the "UE" transmits 1920-sample subframes (1.92 MHz, 1 ms) on two antennas into the channel
server (which connects a REQ to each tx REP) and the "eNB" receives on two antennas through the
server's REP sockets; over an ideal wire the eNB must receive the UE's samples bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from hil.radio.zmq import control_request

pytestmark = pytest.mark.sim

SUBFRAME = 1920
ZMQ_MAX_BUFFER_SIZE = 3072000 * 8  # bytes, rf_zmq_imp_trx.h


class SrsranTx(threading.Thread):
    """rf_zmq_tx: a REP bound on tx_port; each request is answered with the next subframe."""

    def __init__(self, ctx: zmq.Context, x: np.ndarray):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.x, self.sent, self.requests, self.bad_requests, self.stop = x, 0, 0, [], False

    def run(self) -> None:
        try:
            while not self.stop:
                try:
                    req = self.sock.recv()
                except zmq.Again:
                    continue
                self.requests += 1
                if req != b"\xff":  # srsRAN's REQ sends exactly this; its REP reads one byte
                    self.bad_requests.append(req)
                chunk = self.x[self.sent:self.sent + SUBFRAME]
                if chunk.size == 0:  # srsRAN keeps transmitting (zeros when idle)
                    chunk = np.zeros(SUBFRAME, np.complex64)
                self.sock.send(chunk.tobytes())
                self.sent += chunk.size
        finally:
            self.sock.close(0)


class SrsranRx(threading.Thread):
    """rf_zmq_rx: a REQ connected to rx_port; send 0xFF, receive, write to the ring buffer, repeat."""

    def __init__(self, ctx: zmq.Context, endpoint: str, n: int):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 10000)  # trx_timeout_ms, generous for a loaded machine
        self.sock.connect(endpoint)
        self.n, self.got, self.error = n, [], None

    def run(self) -> None:
        try:
            while sum(g.size for g in self.got) < self.n:
                self.sock.send(b"\xff")
                msg = self.sock.recv()
                assert len(msg) <= ZMQ_MAX_BUFFER_SIZE and len(msg) % 8 == 0
                self.got.append(np.frombuffer(msg, np.complex64))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.sock.close(0)


def test_srsran_req_rep_clients_exchange_exact_samples(channel_server):
    n_ant, n = 2, 40 * SUBFRAME
    rng = np.random.default_rng(5)
    xs = [((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.3).astype(np.complex64) for _ in range(n_ant)]
    ctx = zmq.Context.instance()
    ue_tx = [SrsranTx(ctx, x) for x in xs]
    cfg = {
        "server": {"hold_s": 30.0},
        "nodes": [{"name": "ue", "antennas": n_ant, "mode": "stream", "pattern": "reqrep",
                   "tx_connect": [t.endpoint for t in ue_tx]},
                  {"name": "enb", "antennas": n_ant, "mode": "stream", "pattern": "reqrep"}],
        "links": [{"a": "ue", "b": "enb", "channel": {"fading": "none"}}],
    }
    srv = channel_server(cfg)
    assert srv.nodes["ue"]["tx_role"] == "connect" and srv.nodes["enb"]["rx_role"] == "bind"
    enb_rx = [SrsranRx(ctx, ep, n) for ep in srv.nodes["enb"]["rx"]]
    for t in enb_rx + ue_tx:
        t.start()
    try:
        for r in enb_rx:
            r.join(timeout=60)
            assert not r.is_alive(), "the srsRAN-style receiver did not get its samples within 60 s"
            assert r.error is None, r.error
    finally:
        for t in ue_tx:
            t.stop = True
        for t in ue_tx:
            t.join(timeout=5)
    for r, x in zip(enb_rx, xs):
        y = np.concatenate(r.got)
        np.testing.assert_array_equal(y[:n], x)  # lossless, in order, every antenna its own stream
    assert all(t.bad_requests == [] and t.requests >= n // SUBFRAME for t in ue_tx)
    st = control_request(ctx, srv.control, {"cmd": "stats"}, 5.0)
    assert st["rejected"] == 0
    assert st["nodes"]["ue"]["requests_out"] >= n_ant * (n // SUBFRAME)
    assert st["nodes"]["enb"]["requests_in"] >= sum(len(r.got) for r in enb_rx)
