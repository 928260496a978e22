"""GNU Radio interoperability: a real GNU Radio flowgraph (run by /usr/bin/python3) is both ends.

    GR file_source -> zeromq.push_sink (GR binds)  ==>  channel server (tx_connect: the server connects),
    ideal wire  ==>  server rx stream (server binds)  ==>  GR zeromq.pull_source -> head -> file_sink

The samples GNU Radio writes must equal the samples it read, bit for bit: our cf32 wire format is
GNU Radio's, in both directions and in both socket roles.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

pytestmark = [pytest.mark.sim, pytest.mark.gnuradio]

GR_PY = "/usr/bin/python3"

FLOWGRAPH = r"""
import json, sys, time
from gnuradio import gr, blocks, zeromq
src_path, out_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
push = zeromq.push_sink(gr.sizeof_gr_complex, 1, "tcp://127.0.0.1:*", 100, False, -1)
print(json.dumps({"push_endpoint": push.last_endpoint()}), flush=True)
server_rx = json.loads(sys.stdin.readline())["server_rx"]
tb = gr.top_block()
tb.connect(blocks.file_source(gr.sizeof_gr_complex, src_path, False), push)
pull = zeromq.pull_source(gr.sizeof_gr_complex, 1, server_rx, 100, False, -1)
sink = blocks.file_sink(gr.sizeof_gr_complex, out_path)
tb.connect(pull, blocks.head(gr.sizeof_gr_complex, n), sink)
tb.start()
# a zeromq source never finishes by itself: stop once the sink has all n samples (deadline 60 s)
deadline = time.monotonic() + 60
while sink.nitems_read(0) < n and time.monotonic() < deadline:
    time.sleep(0.02)
tb.stop()
tb.wait()
print(json.dumps({"done": True, "received": sink.nitems_read(0)}), flush=True)
"""


def _gnuradio_importable() -> bool:
    try:
        return subprocess.run([GR_PY, "-c", "import gnuradio.zeromq, gnuradio.blocks"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _gnuradio_importable(), reason="/usr/bin/python3 cannot import gnuradio")
def test_gnuradio_flowgraph_sends_through_the_server_and_receives(channel_server, tmp_path):
    n = 50_000
    rng = np.random.default_rng(13)
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.3).astype(np.complex64)
    src, out = tmp_path / "in.cf32", tmp_path / "out.cf32"
    x.tofile(src)
    gr = subprocess.Popen([GR_PY, "-c", FLOWGRAPH, str(src), str(out), str(n)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        push_ep = json.loads(gr.stdout.readline())["push_endpoint"]
        assert push_ep.startswith("tcp://127.0.0.1:")
        cfg = {
            "server": {"hold_s": 30.0},
            "nodes": [{"name": "gr_tx", "antennas": 1, "mode": "stream", "tx_connect": [push_ep]},
                      {"name": "gr_rx", "antennas": 1, "mode": "stream"}],
            "links": [{"a": "gr_tx", "b": "gr_rx", "channel": {"fading": "none"}}],
        }
        srv = channel_server(cfg)
        gr.stdin.write(json.dumps({"server_rx": srv.nodes["gr_rx"]["rx"][0]}) + "\n")
        gr.stdin.flush()
        rc = gr.wait(timeout=60)
        err = gr.stderr.read()
        assert rc == 0, err
        y = np.fromfile(out, np.complex64)
        assert y.size == n
        np.testing.assert_array_equal(y, x)
        from hil.radio.zmq import control_request
        import zmq

        st = control_request(zmq.Context.instance(), srv.control, {"cmd": "stats"}, 5.0)
        assert st["nodes"]["gr_tx"]["samples_in"] == n and st["rejected"] == 0
    finally:
        if gr.poll() is None:
            gr.kill()
            gr.wait()
