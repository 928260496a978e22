"""The PHY over the real ZMQ channel server process with all impairments on (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest

from hil.phy import PhyConfig, PhyLink
from hil.radio.zmq import ZmqRadio
from sim_fallback.topology import two_node_config

pytestmark = pytest.mark.sim


def test_phy_link_over_channel_server(channel_server):
    """2x2 Rayleigh, 20 dB, CFO 80 kHz, fractional delay, phase noise, lead jitter (server seed).

    Every frame is found and decoded; the CFO estimate is within 100 Hz; the payload matches
    H_est @ symbols with an error within -2.5..+1.5 dB of noise + LS estimate error.
    """
    channel = {"fading": "rayleigh", "snr_db": 20.0, "snr_reference": "rx", "cfo_hz": 8e4,
               "delay_samples": 2.3, "phase_noise": {"psd_dbc_hz": -87.0, "psd_offset_hz": 1e4}}
    srv = channel_server(two_node_config(channel, lead_samples=100, lead_jitter=40, trail_samples=60))
    rng = np.random.default_rng(11)
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    with ZmqRadio(srv.control, "edge", "server") as radio:
        link = PhyLink(radio, cfg)
        for _ in range(3):
            s = ((rng.standard_normal((4, 2, 32)) + 1j * rng.standard_normal((4, 2, 32))) / np.sqrt(2)).astype(np.complex64)
            res = link.transceive(s)
            assert abs(res.cfo_hz - 8e4) < 100
            assert 100 + 2.3 - 0.5 <= res.timing <= 140 + 2.3 + 0.5
            expect = np.einsum("rt,btk->brk", res.channel_estimate, s)
            err = float(np.mean(np.abs(res.payload - expect) ** 2))
            pred = res.noise_var + 2 * res.estimate_error_var * float(np.mean(np.abs(s) ** 2))
            assert -2.5 < 10 * np.log10(err / pred) < 1.5
