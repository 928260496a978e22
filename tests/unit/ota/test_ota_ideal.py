"""The ideal transport is hil.channel: same channel sequence as the channel model and the channel
server for a seed, the configured SNR realised with the server's definition, exact checkpoints."""

import numpy as np
import pytest

from hil.channel import build_reciprocal_link, complex_normal, link_generator
from hil.ota import IdealTransport
from hil.train.config import OTAConfig
from hil.train.links import channel_spec, open_transport, server_topology

# 2x2 Rayleigh, Gauss-Markov rho 0.9 per 100-sample block, uncalibrated chain gains, 10 dB
SPEC = {"n_a": 2, "n_b": 2, "fading": "rayleigh", "rho": 0.9, "block_samples": 100, "snr_db": 10.0,
        "chain_gains": {"amplitude_db_std": 2.0, "phase_deg_max": 180.0}}


def _bursts(t: IdealTransport, n: int, rng) -> list[np.ndarray]:
    """True forward channels of ``n`` bursts, alternating forward and reverse (both advance it)."""
    hs = []
    for i in range(n):
        if i % 2 == 0:
            hs.append(t.true_channel())
            t.send(complex_normal(rng, (3, 2, 5), dtype=np.complex64))
        else:
            t.send_back(complex_normal(rng, (3, 2, 5), dtype=np.complex64))
    return hs


def test_ideal_gives_the_channel_models_sequence_for_a_seed():
    # Seed 5: the ideal transport's channel of burst i is block i of the hil.channel link built from
    # the same spec and link_generator(5), forward R_b H T_a and reverse R_a H^T T_b; exactly (float32).
    t = IdealTransport.from_spec(SPEC, link_generator(5))
    want = build_reciprocal_link(SPEC, link_generator(5))
    for i, h in enumerate(_bursts(t, 40, np.random.default_rng(0))):
        c = want.forward_channel.generate(100)
        assert c.mats.shape[0] == 1  # one block per burst
        np.testing.assert_array_equal(h, c.mats[0, 0])
        want.reverse_channel.generate(100)  # the reverse burst takes the next block
    other = IdealTransport.from_spec(SPEC, link_generator(6))
    assert not np.allclose(other.true_channel(), IdealTransport.from_spec(SPEC, link_generator(5)).true_channel())


def test_ideal_loopback_and_server_build_the_same_channel_from_a_seed():
    # hil train's three simulated transports, seed 3, rho 0.95 per burst, chain gains: the first 20
    # per-burst channels of ideal equal the channel server's link (built by ChannelServer itself from
    # the generated topology) and the loopback radio's link, block by block.
    from sim_fallback.channel_server import ChannelServer
    from sim_fallback.topology import load_topology

    cfg = OTAConfig(transport="ideal", rho=0.95, chain_gain_std_db=1.5, chain_phase=True, channel_seed=3)
    t, closer = open_transport(cfg, vectors_per_burst=16)
    spec = channel_spec(cfg, 16)
    block = spec["block_samples"]
    assert t.burst_samples == block
    srv = ChannelServer(load_topology(server_topology(cfg, 16)))
    try:
        server_fwd = srv.nodes["edge"].directions["server"].model.stages[0]
        loop = build_reciprocal_link({"n_tx": 2, "n_rx": 2, **spec}, link_generator(3))  # as open_transport
        rng = np.random.default_rng(1)
        for _ in range(20):
            h = t.true_channel()
            t.send(complex_normal(rng, (16, 2, 16), dtype=np.complex64))
            np.testing.assert_array_equal(h, server_fwd.generate(block).mats[0, 0])
            np.testing.assert_array_equal(h, loop.forward_channel.generate(block).mats[0, 0])
    finally:
        srv.close()
        closer.close()


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_configured_snr_is_realised_on_ideal(snr_db):
    # 2x2 Rayleigh, a new draw every burst (rho 0), 600 bursts of 32 x 2 x 8 unit-power symbols, seed 9.
    # The server's definition (SNR per receive antenna, average over the fading): N0 = sum of the
    # measured TX powers / SNR per burst (exact, 1e-5), and the realised average SNR
    # mean|H s|^2 / mean|y - H s|^2 over the bursts within 0.25 dB of the configured one.
    spec = {"n_a": 2, "n_b": 2, "fading": "rayleigh", "rho": 0.0, "block_samples": 1, "snr_db": snr_db}
    t = IdealTransport.from_spec(spec, link_generator(9))
    rng = np.random.default_rng(9)
    sig = noise = 0.0
    for _ in range(600):
        s = complex_normal(rng, (32, 2, 8), dtype=np.complex64)
        h = t.true_channel()
        rec = t.send(s)
        p_tx = np.mean(np.abs(s) ** 2, axis=(0, 2)).sum()
        assert rec.noise_var == pytest.approx(p_tx / 10 ** (snr_db / 10), rel=1e-5)
        hs = np.einsum("rt,btk->brk", h, s)
        sig += np.mean(np.abs(hs) ** 2)
        noise += np.mean(np.abs(rec.payload - hs) ** 2)
    assert abs(10 * np.log10(sig / noise) - snr_db) < 0.25


def test_checkpoint_continues_exactly():
    # Seed 2, the SPEC link with noise: 7 bursts, state_dict, 5 more; a fresh transport loaded with the
    # state gives bit-identical payloads, estimates and channels for those 5.
    rng = np.random.default_rng(0)
    xs = [complex_normal(rng, (4, 2, 6), dtype=np.complex64) for _ in range(12)]
    a = IdealTransport.from_spec(SPEC, link_generator(2))
    for x in xs[:7]:
        a.send(x)
    state = a.state_dict()
    b = IdealTransport.from_spec(SPEC, link_generator(2))
    b.load_state_dict(state)
    assert b.frames == 7
    for i, x in enumerate(xs[7:]):
        np.testing.assert_array_equal(a.true_channel(), b.true_channel())
        ra, rb = (a.send(x), b.send(x)) if i % 2 else (a.send_back(x), b.send_back(x))
        np.testing.assert_array_equal(ra.payload, rb.payload)
        np.testing.assert_array_equal(ra.channel_estimate, rb.channel_estimate)
    with pytest.raises(ValueError, match="channel shape"):
        IdealTransport.from_spec({**SPEC, "n_b": 3}, link_generator(2)).load_state_dict(state)


def test_what_needs_a_phy_is_refused():
    with pytest.raises(ValueError, match="flat channels only"):
        IdealTransport.from_spec({"n_a": 1, "n_b": 1, "tdl": "TDL-A", "delay_spread_s": 1e-7}, link_generator(0))
    with pytest.raises(ValueError, match="no PHY to undo CarrierFrequencyOffset"):
        IdealTransport.from_spec({"n_a": 1, "n_b": 1, "fading": "rayleigh", "cfo_hz": 100.0}, link_generator(0))
    with pytest.raises(ValueError, match="needs burst_samples"):
        IdealTransport.from_spec({"fading": "rayleigh", "doppler_hz": 10.0}, link_generator(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        IdealTransport(2, 2, None, 0)


def test_reverse_bursts_can_reuse_the_forward_channel():
    # reverse_advances = False (benchmarks' best-case TDD ordering): the noiseless echo crosses exactly
    # the transposed channel of the forward burst (1e-6), and only forward bursts advance the channel.
    spec = {"n_a": 2, "n_b": 3, "fading": "rayleigh", "rho": 0.5, "block_samples": 1}
    t = IdealTransport.from_spec(spec, link_generator(4))
    want = build_reciprocal_link(spec, link_generator(4))
    t.reverse_advances = False
    x = complex_normal(np.random.default_rng(0), (2, 3, 4), dtype=np.complex64)
    for _ in range(3):
        h = want.forward_channel.generate(1).mats[0, 0]
        np.testing.assert_array_equal(t.true_channel(), h)
        t.send(np.zeros((1, 2, 4), np.complex64))
        rec = t.send_back(x)
        np.testing.assert_allclose(rec.payload, np.einsum("tr,brk->btk", h.T, x), rtol=1e-6, atol=1e-6)
