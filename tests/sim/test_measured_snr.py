"""Configured vs measured SNR on every simulated transport: one definition (docs/channels.md).

The receiver's per-burst SNR (Es/N0 per symbol after its matched filter, minus
``Transport.symbol_gain_db``), averaged in linear power over independent channel draws, must equal
the configured ``snr_db`` (per sample per receive antenna, averaged over the fading) within 0.5 dB.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hil.train.config import OTAConfig
from hil.train.links import burst_samples, open_transport

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("transport,bursts", [("ideal", 400), ("loopback", 800), ("zmq", 800)])
@pytest.mark.parametrize("snr_db", [10.0, 20.0])  # at 0 dB a deep fade loses the frame header (a survivor bias)
def test_measured_snr_equals_configured_on_average_over_draws(transport, bursts, snr_db):
    # Independent 2x2 Rayleigh draws: every burst on ideal (rho = 0); through the PHY every 8 bursts
    # (block fading of 8 burst lengths: a draw that changed inside a frame would fail its header),
    # so 100 draws either way. The linear mean over N draws of sum_j |h_rj|^2 / N0 has a relative
    # std of about 0.5 / sqrt(N) (0.05 here, 0.2 dB), so 0.5 dB is about 2.5 standard deviations;
    # seeded (channel_seed 7, payload seed 0).
    cfg = OTAConfig(transport=transport, n_tx=2, n_rx=2, channel_uses=8, snr_db=snr_db, rho=0.0, channel_seed=7)
    if transport != "ideal":
        block = 8 * burst_samples(cfg, 16)
        cfg = OTAConfig(transport=transport, n_tx=2, n_rx=2, channel_uses=8, snr_db=snr_db, channel_seed=7,
                        channel=json.dumps({"fading": "rayleigh", "time": "block", "block_samples": block,
                                            "snr_db": snr_db}))
    t, closer = open_transport(cfg, vectors_per_burst=16)
    try:
        rng = np.random.default_rng(0)
        lin = []
        for _ in range(bursts):
            s = ((rng.standard_normal((16, 2, 8)) + 1j * rng.standard_normal((16, 2, 8))) / np.sqrt(2)).astype(np.complex64)
            rec = t.send(s)
            lin.append(10 ** ((rec.snr_db - t.symbol_gain_db) / 10))
        measured = 10 * np.log10(np.mean(lin))
        spread = 10 * np.log10(np.max(lin) / np.min(lin))
    finally:
        closer.close()
    assert abs(measured - snr_db) < 0.5, (transport, snr_db, measured)
    assert spread > 3.0  # the draws did vary: an average over the fading, not one draw
    if transport != "ideal":
        assert t.symbol_gain_db == pytest.approx(10 * np.log10(2))  # the PHY's sps = 2
