"""The same-host shared-memory data plane (hil.radio.shm): same numbers as the reference model, guards
kept, offered to local peers only, and names/endpoints from the server validated by the client."""

from __future__ import annotations

import copy
import os
import signal
import threading

import numpy as np
import pytest
import zmq

from hil.errors import ConfigError, RadioError, RadioTimeout
from hil.radio.zmq import ZmqRadio
from hil.radio.shm import Doorbell, ShmClient, ShmRing, validate_name
from sim_fallback.channel_server import ChannelServer
from sim_fallback.topology import load_topology, two_node_config

SPEC = {"fading": "rayleigh", "rho": 0.999, "block_samples": 1024, "snr_db": 10.0, "cfo_hz": 1000.0}


@pytest.fixture()
def server():
    srv = ChannelServer(load_topology(two_node_config(SPEC, a="a", b="b", n_a=2, n_b=2, mode="stream",
                                                      reciprocal=False, sample_rate_hz=1e6)))
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv, info
    srv.stop()
    th.join(3)


def test_shm_output_equals_the_reference_model(server):
    """Chunks through shared memory give what the numpy stage-by-stage reference gives on a copy of
    the link's model (same draws): within 1e-5 of the RMS (float32 rounding of the fused kernel)."""
    srv, info = server
    d = srv.nodes["a"].directions["b"]
    ref = copy.deepcopy(d.model)
    ref._fused = None  # the numpy reference path
    ctx = zmq.Context()
    c = ShmClient(ctx, info["control"], "a", "b", slot_samples=8192, slots=2)
    try:
        rng = np.random.default_rng(5)
        for n in (8192, 5000, 1, 8192):
            x = (0.3 * (rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n)))).astype(np.complex64)
            c.input_slot(0, n)[...] = x
            c.submit(0, n)
            j, y = c.result()
            want = ref(x)
            assert j == 0 and y.shape == (2, n)
            assert np.max(np.abs(y - want)) <= 1e-5 * np.sqrt(np.mean(np.abs(want) ** 2))
        st = srv.stats()
        assert st["links"]["a->b"]["bursts"] == 4 and st["nodes"]["b"]["samples_out"] == 8192 + 5000 + 1 + 8192
    finally:
        c.close()
        ctx.destroy(0)
    assert srv._shm == {}  # shm_close ended the session


def test_shm_guards_reject_nonfinite_and_saturate(server):
    srv, info = server
    ctx = zmq.Context()
    c = ShmClient(ctx, info["control"], "a", "b", slot_samples=1024, slots=2)
    try:
        x = np.zeros((2, 1024), np.complex64)
        x[1, 7] = np.nan
        c.input_slot(1, 1024)[...] = x
        c.submit(1, 1024)
        assert c.result() == (1, None)
        assert srv.stats()["rejected_by_reason"]["non_finite"] == 1
        x[1, 7] = 3e38
        c.input_slot(0, 1024)[...] = x
        c.submit(0, 1024)
        j, y = c.result()
        assert j == 0 and np.isfinite(y).all() and srv.stats()["saturated"] == 1
        c.submit(5, 10)  # a slot that does not exist
        assert c.result() == (5, None)
        c.submit(0, 4096)  # more samples than a slot holds
        assert c.result() == (0, None)
        assert srv.stats()["rejected_by_reason"]["too_large"] == 2
    finally:
        c.close()
        ctx.destroy(0)


def test_shm_refused_chunk_is_answered_as_before_and_leaves_the_model_untouched(server, caplog):
    """A NaN/Inf anywhere (here the last sample of the last antenna) refuses the chunk with the same
    reason, counter and message as the TCP path; the link draws nothing for it, so the next chunk's
    output is bit for bit what a twin of the model that never saw the refused chunk gives."""
    srv, info = server
    twin = copy.deepcopy(srv.nodes["a"].directions["b"].model)
    ctx = zmq.Context()
    c = ShmClient(ctx, info["control"], "a", "b", slot_samples=4096, slots=2)
    try:
        rng = np.random.default_rng(8)
        x = (0.3 * (rng.standard_normal((2, 4096)) + 1j * rng.standard_normal((2, 4096)))).astype(np.complex64)
        for k, v in enumerate((complex(0.0, np.inf), complex(np.nan, 0.0), complex(-np.inf, 1.0))):
            bad = x.copy()
            bad[1, -1] = v
            c.input_slot(k % 2, 4096)[...] = bad
            c.submit(k % 2, 4096)
            assert c.result() == (k % 2, None)
        st = srv.stats()
        assert st["rejected_by_reason"]["non_finite"] == 3 and st["nodes"]["a"]["rejected"] == 3
        assert "rejected (non_finite): shm a->b slot 0: 1 NaN/Inf value(s)" in caplog.text
        c.input_slot(1, 4096)[...] = x
        c.submit(1, 4096)
        j, y = c.result()
        want = twin.apply(x, twin.generate(4096))
        assert j == 1 and np.array_equal(y.view(np.uint32), want.view(np.uint32))
        assert srv.stats()["links"]["a->b"]["bursts"] == 1
    finally:
        c.close()
        ctx.destroy(0)


def test_shm_guards_on_the_numpy_reference_path(monkeypatch):
    """Without the fused kernel (HIL_CHANNEL_FAST=0) the slot is screened by a pass of its own: the
    same refusals and saturation."""
    monkeypatch.setenv("HIL_CHANNEL_FAST", "0")
    srv = ChannelServer(load_topology(two_node_config(SPEC, a="a", b="b", n_a=2, n_b=2, mode="stream",
                                                      reciprocal=False, sample_rate_hz=1e6)))
    assert srv.nodes["a"].directions["b"].model.load_input(np.zeros((2, 4), np.complex64)) is None
    info = srv.bind()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    ctx = zmq.Context()
    c = ShmClient(ctx, info["control"], "a", "b", slot_samples=1024, slots=2)
    try:
        x = np.zeros((2, 1024), np.complex64)
        x[1, -1] = complex(0.0, -np.inf)
        c.input_slot(0, 1024)[...] = x
        c.submit(0, 1024)
        assert c.result() == (0, None) and srv.stats()["rejected_by_reason"]["non_finite"] == 1
        x[1, -1] = 2e30
        c.input_slot(1, 1024)[...] = x
        c.submit(1, 1024)
        j, y = c.result()
        assert j == 1 and np.isfinite(y).all() and srv.stats()["saturated"] == 1
    finally:
        c.close()
        ctx.destroy(0)
        srv.stop()
        th.join(3)


def test_shm_refused_to_remote_peers_and_bad_requests(server):
    srv, _ = server
    req = {"cmd": "shm_open", "src": "a", "dst": "b", "slot_samples": 1024, "slots": 2}
    rep = srv._shm_request(req, "192.0.2.7")
    assert not rep["ok"] and "this host only" in rep["error"]
    assert not srv._shm_request(dict(req, dst="zz"), "127.0.0.1")["ok"]
    assert not srv._shm_request(dict(req, slots=0), "127.0.0.1")["ok"]
    assert not srv._shm_request(dict(req, slot_samples=1 << 40), "127.0.0.1")["ok"]
    assert srv._shm == {}


@pytest.mark.parametrize("name", ["../hil-chsrv-x", "/dev/shm/hil-chsrv-x", "hil-chsrv-a/b", "other-x",
                                  "hil-chsrv-", "hil-chsrv-a b", 7, None])
def test_client_refuses_names_that_are_not_ours(name):
    with pytest.raises(ConfigError, match="not ours"):
        validate_name(name)
    with pytest.raises(ConfigError):
        ShmRing.attach(name)


def test_client_never_attaches_a_missing_segment():
    with pytest.raises(ConfigError, match="does not exist"):
        ShmRing.attach("hil-chsrv-does-not-exist-0")


@pytest.mark.parametrize("name", ["../x", "hil-chsrv-a/b", "other-db", "", None])
def test_client_rings_only_a_doorbell_of_ours(name):
    """The doorbell's name comes from the server: an abstract socket of our prefix, nothing else."""
    with pytest.raises(ConfigError, match="not ours"):
        Doorbell.client(name)


# -- bursts (ZmqRadio's same-host data plane) ---------------------------------------------------------
BURST_SPEC = {"fading": "rayleigh", "rho": 0.99, "block_samples": 2048, "snr_db": 15.0, "cfo_hz": 500.0}


def _burst_servers(channel_server, k: int = 2, **server):
    """``k`` channel-server processes on the same burst-mode topology and seed."""
    cfg = two_node_config(BURST_SPEC, a="a", b="b", n_a=2, n_b=2, mode="burst", sample_rate_hz=1e6,
                          seed=11, test_mode=True, **server)
    return [channel_server(cfg) for _ in range(k)]


def _bursts(seed: int = 3):
    rng = np.random.default_rng(seed)
    return [(0.5 * np.exp(2j * np.pi * rng.random((2, n)))).astype(np.complex64) for n in (1000, 37, 4000, 1000)]


def test_burst_over_shared_memory_equals_tcp_bit_for_bit(channel_server):
    """The same bursts, both directions, to two servers of the same seed: over TCP to one and through
    shared memory to the other, every capture is the same bit for bit (same jitter draws, same channel
    draws, same padding); also with a longer capture (rx_samples) and after the session grows."""
    tcp_srv, shm_srv = _burst_servers(channel_server)
    tcp = ZmqRadio(tcp_srv.control, "a", "b", data_plane="tcp")
    shm = ZmqRadio(shm_srv.control, "a", "b", data_plane="shm")
    try:
        big = (0.3 * np.ones((2, 20000))).astype(np.complex64)  # grows the 16384-sample slots
        for i, x in enumerate([*_bursts(), big, *_bursts(4)]):
            for r_tcp, r_shm in ((tcp, shm), (tcp.reverse(), shm.reverse())):
                kw = {"rx_samples": r_tcp.capture_samples(x.shape[1]) + 100} if i == 2 else {}
                y_tcp, y_shm = r_tcp.transceive(x, **kw), r_shm.transceive(x, **kw)
                assert y_shm.shape == y_tcp.shape == (2, r_tcp.capture_samples(x.shape[1], kw.get("rx_samples")))
                assert np.array_equal(y_shm.view(np.uint32), y_tcp.view(np.uint32)), f"burst {i}"
        assert shm._shm is not None and shm.reverse()._shm is not None and tcp._shm is None
        assert shm.last_burst()["start"] == tcp.last_burst()["start"]
        st_t, st_s = tcp.stats(), shm.stats()
        for k in ("bursts_in", "bursts_out", "samples_out"):
            assert st_s[k] == st_t[k], k
    finally:
        tcp.close()
        shm.close()


def test_rejected_burst_over_shared_memory_draws_nothing(channel_server):
    """A NaN/Inf burst in a slot (written past the radio's own check) is refused (the radio says so;
    counted as non_finite), draws no jitter and no channel, and the next capture equals that of a twin
    server that never saw it; a huge burst is saturated as over TCP; a failure inside the server's
    burst handling is counted as internal_error and the server carries on."""
    srv, twin = _burst_servers(channel_server)
    r = ZmqRadio(srv.control, "a", "b", data_plane="shm")
    t = ZmqRadio(twin.control, "a", "b", data_plane="shm")
    try:
        x = _bursts()[0]
        assert np.array_equal(r.transceive(x).view(np.uint32), t.transceive(x).view(np.uint32))
        for v, reason in ((np.nan, "non_finite"), (3e38, None)):
            bad = x.copy()
            bad[1, 5] = v
            r.arm_receive(1000)
            r._shm.input_slot(0, 1000)[...] = bad  # what a client without the radio's checks could send
            r._seq += 1
            r._shm.submit(0, 1000, 0, r._seq)
            r._shm_inflight.append((0, r.capture_samples(1000)))
            if reason:
                with pytest.raises(RadioError, match="rejected the burst"):
                    r.receive()
                assert r.stats()["rejected_by_reason"][reason] == 1
                assert np.array_equal(r.transceive(x).view(np.uint32), t.transceive(x).view(np.uint32))
            else:
                assert np.isfinite(r.receive()).all() and r.stats()["saturated"] == 1
    finally:
        r.close()
        t.close()


def test_shared_memory_falls_back_to_tcp_and_closes_its_sessions(channel_server):
    """"auto" uses shared memory where the server offers it and TCP where it refuses (here: its sessions
    are all taken), with the same captures; "shm" says why it cannot; closing a radio ends its sessions."""
    from sim_fallback.channel_server import _MAX_SHM_SESSIONS

    srv, twin = _burst_servers(channel_server)
    x = _bursts()[2]
    held = [ZmqRadio(srv.control, "a", "b") for _ in range(_MAX_SHM_SESSIONS)]
    try:
        for r in held:
            r.transceive(x)
        assert all(r._shm is not None for r in held)
        auto = ZmqRadio(srv.control, "a", "b")
        ref = ZmqRadio(twin.control, "a", "b", data_plane="tcp")
        try:
            for _ in range(_MAX_SHM_SESSIONS):  # the twin's state catches up with the held radios' bursts
                ref.transceive(x)
            assert np.array_equal(auto.transceive(x), ref.transceive(x))
            assert auto._shm is None and auto._shm_off
            strict = ZmqRadio(srv.control, "a", "b", data_plane="shm")
            with pytest.raises(RadioError, match="data_plane='shm' but .*sessions are open"):
                strict.transceive(x)
            strict.close()
        finally:
            auto.close()
            ref.close()
    finally:
        for r in held:
            r.close()
    probe = ZmqRadio(srv.control, "a", "b", data_plane="shm")  # every session was closed: room again
    try:
        probe.transceive(x)
    finally:
        probe.close()


def test_shared_memory_timeout_resets_the_session(channel_server):
    """A server that hangs (SIGSTOP): RadioTimeout within wait_s naming the wiring, and the session is
    dropped so no late answer is taken for a later burst; once it runs again the radio opens a new
    session. A server that is gone: RadioTimeout from the control socket."""
    (srv,) = _burst_servers(channel_server, k=1)
    r = ZmqRadio(srv.control, "a", "b", data_plane="shm", timeout_s=1.0, busy_wait_s=0.0)
    try:
        x = _bursts()[0]
        r.transceive(x)
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(RadioTimeout, match="no capture 'a' -> 'b'.*within 1.0 s"):
                r.transceive(x)
            assert r._shm is None and not r._shm_inflight
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert r.transceive(x).shape == (2, r.capture_samples(1000)) and r._shm is not None
        srv.stop(timeout_s=3.0)
        with pytest.raises(RadioTimeout, match="did not answer 'shm_open'"):
            r.transceive(x)
    finally:
        r.close()


def test_malformed_doorbell_is_counted_and_the_server_carries_on(channel_server):
    (srv,) = _burst_servers(channel_server, k=1)
    r = ZmqRadio(srv.control, "a", "b", data_plane="shm")
    try:
        x = _bursts()[0]
        r.transceive(x)
        r._shm.bell.sock.sendto(b"short", r._shm.bell.peer)
        r._shm.bell.ring(7, 10)  # a slot that does not exist: answered -1
        assert r._shm.result(2.0) == (7, None)
        assert r.transceive(x).shape == (2, r.capture_samples(1000))
        rej = r.stats()["rejected_by_reason"]
        assert rej["bad_header"] == 1 and rej["too_large"] == 1
    finally:
        r.close()


def test_doorbell_wait_times_out_and_skips_malformed_datagrams():
    a = Doorbell("hil-chsrv-test-a")
    b = Doorbell.client("hil-chsrv-test-a")
    try:
        assert a.wait(0.05) is None
        assert a.wait(0.05, busy_s=0.02) is None
        b.sock.sendto(b"xx", b.peer)
        b.ring(1, 2, 3)
        assert a.wait(1.0) == (1, 2, 3, 0)
    finally:
        a.close()
        b.close()
