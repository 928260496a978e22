"""The channel server loop in a thread of this process with injected channel models: the worker-thread
pipeline keeps order and pairs generate/apply, and a failing model does not stop the server."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import zmq

from hil.radio.zmq import ZmqRadio
from sim_fallback.channel_server import ChannelServer
from sim_fallback.topology import load_topology, two_node_config


class Numbering:
    """A test model: block k (k-th generate) comes out as the constant k; raises on block ``fail_at``."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n_in = self.n_out = n
        self.k = 0
        self.fail_at = fail_at
        self.busy = threading.Lock()

    def generate(self, n_samples: int) -> int:
        self.k += 1
        return self.k

    def apply(self, x: np.ndarray, k: int) -> np.ndarray:
        if not self.busy.acquire(blocking=False):
            raise AssertionError("apply ran on two threads at once")
        try:
            if k == self.fail_at:
                raise RuntimeError("model failure on purpose")
            return np.full(x.shape, k, np.complex64) + 0 * x
        finally:
            self.busy.release()

    def state(self) -> dict:
        return {"k": self.k}


def push_and_collect(push, pull, sizes: list[int]) -> np.ndarray:
    """Send zero blocks of ``sizes`` samples on ``push``; return everything ``pull`` gets back, in order."""
    for n in sizes:
        push.send(np.zeros(n, np.complex64).tobytes())
    got = []
    while sum(g.size for g in got) < sum(sizes):
        assert pull.poll(10000), "no output"
        got.append(np.frombuffer(pull.recv(), np.complex64))
    return np.concatenate(got)


def serve(cfg: dict, fail_at: int | None = None):
    models = {}

    def factory(link, n_a, n_b, rng, fs):
        models[link.name] = (Numbering(n_a, fail_at), Numbering(n_b))
        return models[link.name]

    srv = ChannelServer(load_topology(cfg), channel_factory=factory)
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    return srv, th, info


@pytest.mark.parametrize("pipeline", [True, False])
def test_stream_blocks_keep_their_order_through_the_worker(pipeline):
    srv, th, info = serve(two_node_config(None, a="tx", b="rx", n_a=1, n_b=1, mode="stream", pipeline=pipeline))
    ctx = zmq.Context.instance()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    try:
        push.connect(info["nodes"]["tx"]["tx"][0])
        pull.connect(info["nodes"]["rx"]["rx"][0])
        # large blocks go to the worker, small ones queue behind
        y = push_and_collect(push, pull, [40000, 3, 70000, 10, 5, 1 << 16, 7])
        # the server processes whatever has arrived: each output block is constant k, k increasing
        ks = np.unique(y.real)
        assert list(ks) == list(range(1, len(ks) + 1))
        assert np.all(np.diff(y.real) >= 0), "outputs out of order"
        assert (srv.stats()["links"]["tx->rx"]["bursts"] == len(ks))
    finally:
        push.close(0)
        pull.close(0)
        srv.stop()
        th.join(2)
    assert not th.is_alive()


def test_failing_model_is_logged_counted_and_the_server_keeps_serving(caplog):
    srv, th, info = serve(two_node_config(None, n_a=1, n_b=1, lead_jitter=0), fail_at=2)
    push = zmq.Context.instance().socket(zmq.PUSH)
    try:
        with ZmqRadio(info, "edge", "server", timeout_s=10.0) as r:
            assert np.all(r.transceive(np.zeros((1, 100), np.complex64)) == 1)
            push.connect(info["nodes"]["edge"]["tx"][0])
            push.send(np.zeros(100, np.complex64).tobytes())  # block 2: the model raises
            deadline = time.monotonic() + 10
            while srv.stats()["model_errors"] == 0:
                assert time.monotonic() < deadline, "the failure was not counted"
                time.sleep(0.01)  # polling interval of a deadline loop
            assert np.all(r.transceive(np.zeros((1, 100), np.complex64)) == 3)  # still serving
        assert srv.stats()["model_errors"] == 1
        assert "failed on a block" in caplog.text
    finally:
        push.close(0)
        srv.stop()
        th.join(2)


def test_interleaved_bursts_of_two_senders_stay_apart():
    cfg = {"server": {"lead_samples": 0, "lead_jitter": 0, "trail_samples": 0},
           "nodes": [{"name": "edge", "antennas": 2}, {"name": "server", "antennas": 2}],
           "links": [{"a": "edge", "b": "server", "channel": {"fading": "none"}}]}
    srv = ChannelServer(load_topology(cfg))
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    ctx = zmq.Context.instance()
    socks = []
    try:
        def push(ep):
            s = ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.LINGER, 1000)
            s.connect(ep)
            socks.append(s)
            return s

        tx = info["nodes"]["edge"]["tx"]
        a0, a1, b0, b1 = push(tx[0]), push(tx[1]), push(tx[0]), push(tx[1])
        pulls = []
        for ep in info["nodes"]["server"]["rx"]:
            p = ctx.socket(zmq.PULL)
            p.connect(ep)
            socks.append(p)
            pulls.append(p)
        ha = json.dumps({"seq": 5, "sender": "A"}).encode()
        hb = json.dumps({"seq": 5, "sender": "B"}).encode()  # the same seq from another client
        va, vb = np.full(8, 0.1, np.complex64), np.full(8, 0.2, np.complex64)
        a0.send_multipart([ha, va.tobytes()])
        b0.send_multipart([hb, vb.tobytes()])
        b1.send_multipart([hb, (vb * 2).tobytes()])
        a1.send_multipart([ha, (va * 2).tobytes()])
        got = set()
        for _ in range(2):
            rows = []
            for p in pulls:
                assert p.poll(5000)
                rows.append(np.frombuffer(p.recv(), np.complex64))
            assert np.all(rows[1] == 2 * rows[0]), "antennas of different bursts were mixed"
            got.add(round(float(rows[0][0].real), 3))
        assert got == {0.1, 0.2}
        assert srv.stats()["incomplete"] == 0
    finally:
        for s in socks:
            s.close(0)
        srv.stop()
        th.join(2)


class Clock:
    """A pure test model: sample t of the output is t (the model clock), on every antenna."""

    def __init__(self, n: int):
        self.n_in = self.n_out = n
        self.t = 0

    def generate(self, n_samples: int) -> int:
        t0, self.t = self.t, self.t + n_samples
        return t0

    def apply(self, x: np.ndarray, t0: int) -> np.ndarray:
        return np.broadcast_to((t0 + np.arange(x.shape[1])).astype(np.complex64), x.shape).copy()

    def state(self) -> dict:
        return {"t": self.t}


class Memory(Clock):
    """Not pure: apply remembers the last input sample (like a FIR history)."""

    last = 0.0

    def apply(self, x: np.ndarray, t0: int) -> np.ndarray:
        y = x + self.last
        self.last = complex(x[0, -1])
        return y


def test_apply_is_pure_tells_memoryless_models_from_ones_with_history():
    from sim_fallback.channel_server import apply_is_pure

    assert apply_is_pure(Clock(2))
    assert not apply_is_pure(Memory(1))


def test_split_apply_over_two_threads_keeps_every_sample_in_place():
    cfg = two_node_config(None, a="tx", b="rx", n_a=1, n_b=1, mode="stream", apply_threads=2)
    srv = ChannelServer(load_topology(cfg), channel_factory=lambda link, na, nb, rng, fs: (Clock(na), Clock(nb)))
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    ctx = zmq.Context.instance()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    try:
        push.connect(info["nodes"]["tx"]["tx"][0])
        pull.connect(info["nodes"]["rx"]["rx"][0])
        sizes = [1 << 17, 1000, (1 << 16) + 3, 1 << 18]
        y = push_and_collect(push, pull, sizes)
        np.testing.assert_array_equal(y.real, np.arange(sum(sizes), dtype=np.float32))
        d = srv.nodes["tx"].directions["rx"]
        assert d.splitter is not None, "a pure model must be split"
    finally:
        push.close(0)
        pull.close(0)
        srv.stop()
        th.join(2)
