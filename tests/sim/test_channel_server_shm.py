"""The same-host shared-memory data plane (hil.radio.shm): same numbers as the reference model, guards
kept, offered to local peers only, and names/endpoints from the server validated by the client."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import zmq

from hil.errors import ConfigError
from hil.radio.shm import ShmClient, ShmRing, validate_doorbell, validate_name
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


@pytest.mark.parametrize("ep", ["ipc:///tmp/x", "tcp://10.0.0.1:5555", "tcp://127.0.0.1", "tcp://example.com:1"])
def test_client_connects_the_doorbell_to_loopback_tcp_only(ep):
    with pytest.raises(ConfigError, match="loopback"):
        validate_doorbell(ep)
    assert validate_doorbell("tcp://127.0.0.1:40000") == "tcp://127.0.0.1:40000"
