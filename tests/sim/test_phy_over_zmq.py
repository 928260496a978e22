"""The PHY over the real ZMQ channel server process with all impairments on."""

from __future__ import annotations

import numpy as np
import pytest

from hil.phy import PhyConfig, PhyLink
from hil.radio.zmq import ZmqRadio
from sim_fallback.topology import two_node_config

pytestmark = pytest.mark.sim


def _true_h(record: dict) -> np.ndarray:
    """The true [n_rx, n_tx] channel matrix of a burst, from the server's test-mode record."""
    st = record["state"]
    while "h_real" not in st:  # a chain: the fading stage is the first one
        st = st["stages"][0]
    h = np.array(st["h_real"]) + 1j * np.array(st["h_imag"])
    return h[0] if h.ndim == 3 else h  # lags [0] only for flat fading


def test_phy_link_over_channel_server(channel_server):
    """2x2 Rayleigh, 20 dB, CFO 80 kHz, fractional delay, phase noise, lead jitter (server seed 0,
    symbols seed 11, 8 bursts).

    Every frame is found and decoded; the CFO estimate is within 100 Hz; the payload matches
    H_est @ symbols with an error, summed over the bursts, within -2.5..+1.5 dB of noise + LS
    estimate error (per burst -4..+3 dB: one burst's estimate error is only 8 real numbers).

    The LS estimate is also compared with the true channel the server reports in test mode. The CFO
    (random start phase, clock running through the lead) and the phase noise rotate every entry of
    H by one common phase the receiver folds into its estimate, so the comparison is up to that one
    phase, fitted per burst: ``phi = angle(<H, H_est>)``. What is left must be the LS error:
    the NMSE summed over the 8 bursts (64 real degrees of freedom, relative spread ~18 %) within
    -2.0..+1.5 dB of theory ``estimate_error_var / mean|H|^2`` times 7/8 (the phase fit absorbs one
    of the 8 real dimensions per burst); measured -0.9 dB (payload ratio +0.3 dB). The fitted gain
    ``|<H, H_est>| / ||H||^2`` must be 1 within 5 % (measured 0.99..1.02): no common scale error.
    """
    channel = {"fading": "rayleigh", "snr_db": 20.0, "snr_reference": "rx", "cfo_hz": 8e4,
               "delay_samples": 2.3, "phase_noise": {"psd_dbc_hz": -87.0, "psd_offset_hz": 1e4}}
    srv = channel_server(two_node_config(channel, test_mode=True, lead_samples=100, lead_jitter=40,
                                         trail_samples=60))
    rng = np.random.default_rng(11)
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    err_sum = theory_sum = pay_err = pay_pred = 0.0
    with ZmqRadio(srv.control, "edge", "server") as radio:
        link = PhyLink(radio, cfg)
        for _ in range(8):
            s = ((rng.standard_normal((4, 2, 32)) + 1j * rng.standard_normal((4, 2, 32))) / np.sqrt(2)).astype(np.complex64)
            res = link.transceive(s)
            assert abs(res.cfo_hz - 8e4) < 100
            assert 100 + 2.3 - 0.5 <= res.timing <= 140 + 2.3 + 0.5
            expect = np.einsum("rt,btk->brk", res.channel_estimate, s)
            err = float(np.mean(np.abs(res.payload - expect) ** 2))
            pred = res.noise_var + 2 * res.estimate_error_var * float(np.mean(np.abs(s) ** 2))
            # per burst the estimate error is one draw of 8 real numbers shared by all symbols: loose
            assert -4.0 < 10 * np.log10(err / pred) < 3.0
            pay_err += err
            pay_pred += pred

            h = _true_h(radio.last_burst())
            h_ls = res.channel_estimate_ls.astype(np.complex128)
            c = np.vdot(h, h_ls)  # sum conj(H) * H_est
            power = float(np.sum(np.abs(h) ** 2))
            assert abs(abs(c) / power - 1) < 0.05, abs(c) / power
            err_sum += float(np.sum(np.abs(h_ls * np.exp(-1j * np.angle(c)) - h) ** 2)) / power
            theory_sum += 7 / 8 * res.estimate_error_var / (power / h.size)
    assert -2.5 < 10 * np.log10(pay_err / pay_pred) < 1.5
    ratio_db = 10 * np.log10(err_sum / theory_sum)
    assert -2.0 < ratio_db < 1.5, ratio_db


def test_pipelined_stream_over_channel_server(channel_server):
    """Double buffering over the real server process: ``transceive_many`` puts burst i+1 in flight
    before decoding burst i, and decodes the same numbers as ``transceive`` in turn on a second
    server started from the same config (2x2 Rayleigh 20 dB, CFO 50 kHz, seed of the config, 6 bursts)."""
    channel = {"fading": "rayleigh", "snr_db": 20.0, "cfo_hz": 5e4, "delay_samples": 1.3}
    rng = np.random.default_rng(5)
    batches = [((rng.standard_normal((8, 2, 32)) + 1j * rng.standard_normal((8, 2, 32))) / np.sqrt(2))
               .astype(np.complex64) for _ in range(6)]
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    runs = []
    for pipelined in (False, True):
        srv = channel_server(two_node_config(channel, lead_samples=100, trail_samples=60))
        with ZmqRadio(srv.control, "edge", "server") as radio:
            link = PhyLink(radio, cfg)
            runs.append(link.transceive_many(batches) if pipelined else [link.transceive(b) for b in batches])
        srv.stop()
    for a, b in zip(*runs):
        assert np.array_equal(a.payload, b.payload) and np.array_equal(a.channel_estimate, b.channel_estimate)
        assert a.header == b.header and a.timing == b.timing and abs(a.cfo_hz - 5e4) < 200
