"""The transmit and receive halves of the Radio contract: in one process they compose into transceive
(every backend, through the base class), and over the ZMQ channel server the transmitter can be another
process than the receiver and still give the same samples as transceive (same server seed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hil.channel import build_reciprocal_link
from hil.errors import RadioError
from hil.radio.loopback import LoopbackRadio
from hil.radio.tap import TapRadio
from hil.radio.zmq import ZmqRadio
from sim_fallback.topology import two_node_config

CHANNEL = {"fading": "rayleigh", "snr_db": 10.0}  # noise and fading: the capture depends on the server's RNG


def _burst(n: int = 300, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.9 * np.exp(2j * np.pi * rng.random((2, n)))).astype(np.complex64)  # constant envelope below full scale


def _loopback(seed: int) -> LoopbackRadio:
    link = build_reciprocal_link({**CHANNEL, "n_a": 2, "n_b": 2}, np.random.default_rng(seed))
    return LoopbackRadio(link.forward, link.reverse)


@pytest.mark.parametrize("wrap", [False, True], ids=["loopback", "tap"])
def test_halves_compose_into_transceive_in_one_process(wrap):
    x = _burst()
    a, b = _loopback(3), _loopback(3)
    if wrap:  # a radio that only implements transceive gets the halves from the base class
        a, b = TapRadio(a), TapRadio(b)
    want = [a.transceive(x), a.reverse().transceive(x) if not wrap else a.transceive(x)]
    got = []
    for r in (b, b.reverse() if not wrap else b):
        r.arm_receive(x.shape[1])
        r.transmit(x)
        got.append(r.receive())
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)


def test_halves_in_one_process_are_called_in_order():
    r = _loopback(0)
    with pytest.raises(RadioError, match="arm_receive"):
        r.transmit(_burst())
    with pytest.raises(RadioError, match="nothing captured"):
        r.receive()
    with pytest.raises(ValueError, match="at least 1 sample"):
        r.arm_receive(0)


_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from hil.radio.zmq import ZmqRadio
    info = json.loads(sys.stdin.readline())
    x = np.load(sys.stdin.readline().strip())
    with ZmqRadio(info, "edge", "server", halves="tx") as r:
        for line in sys.stdin:
            cmd = line.split()
            if cmd[0] == "send":                      # forward: this process is the transmitter
                r.transmit(x)
            elif cmd[0] == "arm":                     # reverse: the same pair the other way, we receive
                r.reverse().arm_receive(x.shape[1])
            elif cmd[0] == "recv":
                np.save(cmd[1], r.reverse().receive())
            print("ok", flush=True)
""")


def test_zmq_transmitter_and_receiver_in_two_processes_give_the_transceive_samples(tmp_path, channel_server):
    """Server seed 7 twice: transceive forward and reverse in one process, then the same bursts with the
    edge's transmit half in a child process and the server's receive half here (and the reverse link the
    other way); the captures are equal sample for sample (tolerance 0: one seeded channel, same bursts)."""
    x = _burst()
    info = channel_server(two_node_config(CHANNEL, seed=7))
    with ZmqRadio(info, "edge", "server") as r:
        want_fwd = r.transceive(x)
        want_rev = r.reverse().transceive(x)
    np.save(tmp_path / "x.npy", x)
    info = channel_server(two_node_config(CHANNEL, seed=7))
    import json

    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(json.dumps(info) + "\n" + str(tmp_path / "x.npy") + "\n")
        child.stdin.flush()

        def ask(cmd: str) -> None:
            child.stdin.write(cmd + "\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "ok", f"child failed on {cmd!r}"

        with ZmqRadio(info, "edge", "server", halves="rx") as rx:
            rx.arm_receive(x.shape[1])   # the driver arms the receiver before the transmitter sends
            ask("send")
            got_fwd = rx.receive()
            ask("arm")
            with pytest.raises(RadioError, match="receive half"):
                rx.transmit(x)
            rx.reverse().transmit(x)     # the reverse of a receive half transmits
            ask(f"recv {tmp_path / 'rev.npy'}")
            got_rev = np.load(tmp_path / "rev.npy")
        child.stdin.close()
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
    np.testing.assert_array_equal(got_fwd, want_fwd)
    np.testing.assert_array_equal(got_rev, want_rev)
