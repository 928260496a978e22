"""The shipped GNU Radio example (examples/gnuradio/) against ``hil sim serve --port-base P``.

The example runs under /usr/bin/python3 (GNU Radio 3.10); the server is the ``hil`` command itself on
the shipped topology sim_fallback/configs/gnuradio_2x2.toml, moved to a free port range. The example's
headless mode fits the two known tones per receive antenna; the residual is the server's noise, so
the measured SNR must be the configured one. Tolerance 0.5 dB: the estimate's own spread over 65 536
samples is about 0.02 dB (the noise power estimate's relative std is 1/sqrt(N)); the rest is margin.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil._io import load_mapping
from tests.sim.conftest import find_port_base
from tests.sim.test_gnuradio_interop import GR_PY, _gnuradio_importable

pytestmark = [pytest.mark.sim, pytest.mark.gnuradio]

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "sim_fallback" / "configs" / "gnuradio_2x2.toml"
EXAMPLE = ROOT / "examples" / "gnuradio" / "tone_2x2.py"
GRC = ROOT / "examples" / "gnuradio" / "tone_2x2.grc"

needs_gr = pytest.mark.skipif(not _gnuradio_importable(), reason="/usr/bin/python3 cannot import gnuradio")


def _ready_line(proc: subprocess.Popen, timeout_s: float) -> dict:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline, buf = time.monotonic() + timeout_s, b""
    try:
        while b"\n" not in buf and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(0.2):
                buf += os.read(proc.stdout.fileno(), 65536)
    finally:
        sel.close()
    assert b"\n" in buf, f"hil sim serve not ready: {proc.stderr.read() if proc.poll() is not None else ''}"
    return json.loads(buf.split(b"\n", 1)[0])


@needs_gr
def test_shipped_example_measures_the_configured_snr_through_hil_sim_serve(tmp_path):
    snr_db = load_mapping(TOPOLOGY, "topology")["links"][0]["channel"]["snr_db"]
    p = find_port_base(10)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    err = open(tmp_path / "server.log", "wb")
    srv = subprocess.Popen([sys.executable, "-m", "hil.cli", "sim", "serve", "--config", str(TOPOLOGY),
                            "--port-base", str(p)], stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env)
    try:
        info = _ready_line(srv, 60)
        assert info["control"] == f"tcp://127.0.0.1:{p}" and info["pace"] is True
        assert info["nodes"]["gr_tx"]["tx"] == [f"tcp://127.0.0.1:{p + 2}", f"tcp://127.0.0.1:{p + 4}"]
        assert info["nodes"]["gr_rx"]["rx"] == [f"tcp://127.0.0.1:{p + 7}", f"tcp://127.0.0.1:{p + 9}"]
        gr = subprocess.run([GR_PY, str(EXAMPLE), "--headless", "--json", "--port-base", str(p)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert gr.returncode == 0, gr.stderr
        out = json.loads(gr.stdout.strip().splitlines()[-1])
        assert [r["antenna"] for r in out["rx"]] == [0, 1]
        for r in out["rx"]:
            assert abs(r["snr_db"] - snr_db) <= 0.5, out
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        srv.stdout.close()
        err.close()
    table = (tmp_path / "server.log").read_text()
    assert f"{p + 2}  gr_tx tx0 (stream)" in table and "PUSH binds (GNU Radio push_sink)" in table


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc (GNU Radio Companion compiler) not installed")
def test_grc_example_compiles_with_grcc(tmp_path):
    r = subprocess.run(["grcc", "-o", str(tmp_path), str(GRC)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    py = (tmp_path / "tone_2x2.py").read_text()
    assert 'zeromq.push_sink(gr.sizeof_gr_complex, 1, "tcp://%s:%d" % (host, port_base + 2)' in py
    assert 'zeromq.pull_source(gr.sizeof_gr_complex, 1, "tcp://%s:%d" % (host, port_base + 9)' in py
    assert "qtgui.freq_sink_c(" in py
