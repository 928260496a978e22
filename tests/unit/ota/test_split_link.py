"""An over-the-air link split between two nodes (each end its own ZMQ radio half and PhyTransport, both in
this process here) gives, burst for burst, what the one-process OTALink gives over the same seeded channel
server: the forward reception, the reciprocity echo and the calibration pilots' estimates."""

from __future__ import annotations

import numpy as np
import pytest

from hil.errors import RadioError
from hil.ota.link import OTALink, calibration_pilots
from hil.ota.transport import PhyTransport
from hil.radio.zmq import ZmqRadio
from sim_fallback.topology import two_node_config

CHANNEL = {"fading": "rayleigh", "snr_db": 15.0, "cfo_hz": 300.0}  # noise, fading and a CFO: the PHY has work
B, K = 16, 4


def _symbols(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, n, K)) + 1j * rng.standard_normal((B, n, K))).astype(np.complex64)


def _exchange(fwd, back, pilot, rounds: int = 3) -> list[np.ndarray]:
    """Pilot bursts each way, then ``rounds`` training bursts forward with their reciprocity echo; every array
    the receiving ends got, in order."""
    out = []
    rng = np.random.default_rng(0)
    a, b = calibration_pilots(rng, 2, 2)
    out += [pilot(a, False), pilot(b, True)]
    for r in range(rounds):
        out += list(fwd(_symbols(10 + r, 2)))
        out.append(back(_symbols(20 + r, 2)))
    return out


def test_split_link_gives_the_one_process_link_burst_for_burst(channel_server):
    """Two servers of seed 7; tolerance 0: the same bursts through the same seeded channel, decoded by the same
    PHY code on either end."""
    info = channel_server(two_node_config(CHANNEL, seed=7))
    with ZmqRadio(info, "edge", "server") as radio:
        t = PhyTransport(radio, "zmq")
        link = OTALink(t, "reciprocity")

        def fwd(s):
            rec = link.transmit(s)
            return rec.payload, rec.channel_estimate

        want = _exchange(fwd, link.echo_gradient,
                         lambda p, back: (t.send_back(p) if back else t.send(p)).channel_estimate)
        want_frames = t.frames
    info = channel_server(two_node_config(CHANNEL, seed=7))
    with ZmqRadio(info, "edge", "server", halves="tx") as ra, ZmqRadio(info, "edge", "server", halves="rx") as rb:
        ta, tb = PhyTransport(ra, "zmq"), PhyTransport(rb, "zmq")   # node a (precoder), node b (combiner)
        la, lb = OTALink(ta, "reciprocity"), OTALink(tb, "reciprocity")

        def fwd(s):
            tb.arm(2 * B, K)                      # armed for another size (as after a burst of that size)
            tb.arm(B, K)                          # re-armed before the transmitter sends: the same frame expected
            ta.arm(B, K, back=True)               # and the transmitter before the echo comes back
            la.send_forward(s)                    # the frame carries the scale: nothing else crosses
            rec = lb.receive_forward()
            return rec.payload, rec.channel_estimate

        def back(g):
            lb.send_echo(g)
            return la.receive_echo()

        def pilot(p, is_back):
            rx, tx = (ta, tb) if is_back else (tb, ta)
            rx.arm(1, p.shape[2], back=is_back)
            tx.transmit(p, back=is_back)
            return rx.receive(back=is_back).channel_estimate

        got = _exchange(fwd, back, pilot)
        assert ta.frames + tb.frames == want_frames == 2 + 3 * 2
        with pytest.raises(RadioError, match="transmit half"):
            ta.arm(B, K)                          # node a receives only the reverse link
        with pytest.raises(RadioError, match="call arm"):
            tb.receive()
    assert len(got) == len(want)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def test_a_zero_echo_is_a_burst_that_decodes_to_exact_zeros(channel_server):
    """The transmitting end waits for the echo whatever the gradient: a zero gradient is sent as a frame whose
    header says its payload is zero, and comes back as exact zeros (not the noise of an empty payload)."""
    info = channel_server(two_node_config(CHANNEL, seed=3))
    with ZmqRadio(info, "edge", "server", halves="tx") as ra, ZmqRadio(info, "edge", "server", halves="rx") as rb:
        ta, tb = PhyTransport(ra, "zmq"), PhyTransport(rb, "zmq")
        la, lb = OTALink(ta, "reciprocity"), OTALink(tb, "reciprocity")
        for g in (np.zeros((B, 2, K), np.complex64), _symbols(5, 2)):
            ta.arm(B, K, back=True)
            lb.send_echo(g)
            got = la.receive_echo()
            assert got.shape == (B, 2, K)
            assert (not np.any(got)) == (not np.any(g))
        assert ta.frames == 2
