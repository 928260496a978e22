"""The channel server with real hil.channel models (one server process for the module, test mode on):
noise in the margins, reciprocity through the server, and the probe (SNR, delay, CFO, H)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.radio.zmq import ZmqRadio
from hil.capture.probe import run_probe

pytestmark = pytest.mark.sim

N0 = 0.01
SNR_DB = 10.0
CFO_HZ = 1500.0
TOPOLOGY = {
    "server": {"test_mode": True, "seed": 5, "sample_rate_hz": 1e6},
    "nodes": [
        {"name": "edge", "antennas": 2}, {"name": "server", "antennas": 3},
        {"name": "a1", "antennas": 1}, {"name": "b1", "antennas": 1},
        {"name": "ptx", "antennas": 2}, {"name": "prx", "antennas": 2},
    ],
    "links": [
        # static 2x3 Rayleigh without noise: the capture is exactly H x
        {"a": "edge", "b": "server", "channel": {"fading": "rayleigh"}},
        # an AWGN wire with fixed noise power and fixed margins
        {"a": "a1", "b": "b1", "channel": {"fading": "none", "noise_power": N0},
         "lead_samples": 400, "lead_jitter": 0, "trail_samples": 400},
        # what the probe sounds: static 2x2 Rayleigh, SNR per receive antenna (rx reference), CFO
        {"a": "ptx", "b": "prx", "channel": {"fading": "rayleigh", "snr_db": SNR_DB, "snr_reference": "rx",
                                             "cfo_hz": CFO_HZ}},
    ],
}


@pytest.fixture(scope="module")
def srv(channel_server_module):
    return channel_server_module(TOPOLOGY)


def qpsk(rng: np.random.Generator, n_ant: int, n: int, amp: float = 0.5) -> np.ndarray:
    b = rng.integers(0, 2, size=(n_ant, n, 2))
    return (amp / np.sqrt(2) * ((1 - 2 * b[..., 0]) + 1j * (1 - 2 * b[..., 1]))).astype(np.complex64)


def true_h(ev: dict) -> np.ndarray:
    """The lag-0 channel matrix [n_rx, n_tx] from a test-mode burst record."""
    st = ev["state"]
    while "h_real" not in st:  # a Chain: the fading stage is the first one
        st = st["stages"][0]
    h = np.array(st["h_real"]) + 1j * np.array(st["h_imag"])
    return h[0] if h.ndim == 3 else h


def test_noise_fills_the_margins_so_sync_is_real(srv):
    with ZmqRadio(srv.control, "a1", "b1") as radio:
        x = qpsk(np.random.default_rng(2), 1, 2000)
        y = radio.transceive(x)
        assert y.shape == (1, 2800)
        s = radio.last_burst()["start"]
        assert s == 400
        margins = np.concatenate([y[0, :s], y[0, s + 2000:]])
        # 800 complex Gaussian samples: relative std of the power estimate 1/sqrt(800) = 3.5%; tolerance 20%
        assert abs(np.mean(np.abs(margins) ** 2) / N0 - 1) < 0.2
        err = y[0, s:s + 2000] - x[0]
        assert abs(np.mean(np.abs(err) ** 2) / N0 - 1) < 0.2


def test_reverse_link_is_the_transposed_channel(srv):
    rng = np.random.default_rng(3)
    with ZmqRadio(srv.control, "edge", "server") as fwd:
        assert (fwd.caps.n_tx, fwd.caps.n_rx) == (2, 3)
        x = qpsk(rng, 2, 500)
        y = fwd.transceive(x)
        ev = fwd.last_burst()
        h = true_h(ev)
        assert h.shape == (3, 2)
        s = ev["start"]
        np.testing.assert_allclose(y[:, s:s + 500], h @ x, atol=1e-5)
        rev = fwd.reverse()
        assert rev is fwd.reverse() and rev.reverse() is fwd
        assert (rev.tx_node, rev.rx_node, rev.caps.n_tx, rev.caps.n_rx) == ("server", "edge", 3, 2)
        x2 = qpsk(rng, 3, 500)
        y2 = rev.transceive(x2)
        ev2 = rev.last_burst()
        np.testing.assert_allclose(true_h(ev2), h.T, atol=1e-6)
        s2 = ev2["start"]
        np.testing.assert_allclose(y2[:, s2:s2 + 500], h.T @ x2, atol=1e-5)


def test_probe_measures_delay_cfo_snr_and_channel(srv, tmp_path):
    rep = run_probe(endpoint=srv.control, tx_node="ptx", rx_node="prx", bursts=4, seed=1, out=str(tmp_path))
    assert (rep["tx"], rep["rx"]) == ("ptx", "prx")
    # the server's info reply carries the link's channel spec: configured beside measured
    assert (rep["configured_snr_db"], rep["configured_cfo_hz"], rep["channel"]["snr_reference"]) == (SNR_DB, CFO_HZ, "rx")
    assert f"configured {SNR_DB:g} dB" in (tmp_path / "report.md").read_text()
    for b in rep["bursts"]:
        assert b["start_sample"] == b["true_start_sample"]
        assert abs(b["cfo_hz"] - CFO_HZ) < 20.0  # a preamble and 2048 pilot symbols at 10 dB: std of a few Hz
    snr = np.array([b["snr_db"] for b in rep["bursts"]])  # [bursts, n_rx]
    # The PHY's noise estimate uses ~4000 quiet-interval samples: relative std ~1/sqrt(4000) = 1.6 %
    # (0.07 dB) per burst and antenna; the mean over 4 bursts x 2 antennas must be within 0.2 dB (server seed 5).
    assert abs(snr.mean() - SNR_DB) < 0.2, snr
    assert np.all(np.abs(snr - SNR_DB) < 0.5), snr
    # the channel matrix equals the true one up to the CFO phase at the burst start
    with ZmqRadio(srv.control, "ptx", "prx") as radio:
        h_true = true_h(radio.last_burst())
    ch = rep["bursts"][-1]["channel"]
    h = np.array(ch["re"]) + 1j * np.array(ch["im"])
    ph = np.vdot(h_true, h) / abs(np.vdot(h_true, h))
    np.testing.assert_allclose(h / ph, h_true, atol=0.05 * np.abs(h_true).max())
    for f in ("report.json", "report.md", "probe.png", "server_info.json"):
        assert (tmp_path / f).stat().st_size > 0


def test_cli_probe_prints_json(srv, tmp_path):
    from hil.cli import app

    res = CliRunner().invoke(app, ["sim", "probe", "--endpoint", srv.control, "--tx", "ptx", "--rx", "prx",
                                   "--bursts", "1", "--json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["bursts"][0]["start_sample"] == rep["bursts"][0]["true_start_sample"]
    assert len(rep["bursts"][0]["snr_db"]) == 2
    assert (tmp_path / "report.md").exists()
