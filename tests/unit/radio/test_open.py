"""hil.radio.open: the default wiring, closing on every exit path, and the import layering."""

from __future__ import annotations


import numpy as np
import pytest

from hil.errors import ConfigError
from hil.radio.open import RadioSpec, default_wiring, open_radio

# the server's info as `hil sim serve` prints it, reduced to what the wiring reads
INFO = {
    "nodes": {"edge": {}, "relay": {}, "server": {}, "lonely": {}},
    "links": {"edge->server": {"src": "edge", "dst": "server"}, "server->edge": {"src": "server", "dst": "edge"},
              "relay->server": {"src": "relay", "dst": "server"}},
}


def test_default_wiring_is_the_first_link_or_the_given_nodes_first_link():
    assert default_wiring(INFO) == ("edge", "server")
    assert default_wiring(INFO, tx_node="relay") == ("relay", "server")  # one node's radio
    assert default_wiring(INFO, tx_node="server") == ("server", "edge")
    assert default_wiring(INFO, rx_node="edge") == ("server", "edge")
    assert default_wiring(INFO, "relay", "edge") == ("relay", "edge")  # both given: taken as is
    with pytest.raises(ValueError, match=r"tx_node 'nobody' is not a node .*'edge'"):
        default_wiring(INFO, tx_node="nobody")
    with pytest.raises(ValueError, match="'lonely' has no link to transmit on"):
        default_wiring(INFO, tx_node="lonely")
    with pytest.raises(ValueError, match="no links"):
        default_wiring({"nodes": {"a": {}}, "links": {}})


def test_specs_are_checked():
    with pytest.raises(ValueError, match="radio kind"):
        RadioSpec("carrier-pigeon")
    with pytest.raises(ValueError, match="not both"):
        RadioSpec("zmq", endpoint="tcp://127.0.0.1:1", server_config={})
    with pytest.raises(ValueError, match="endpoint="):
        RadioSpec("zmq")
    with pytest.raises(ConfigError, match="uri="):
        RadioSpec("pluto")


def test_loopback_is_closed_on_a_normal_exit_and_when_the_body_raises():
    spec = RadioSpec("loopback", channel={"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "snr_db": 20.0}, seed=1)
    with open_radio(spec) as o:
        y = o.radio.transceive(np.full((2, 16), 0.5, np.complex64))
        assert y.shape == (2, 64 + 16 + 64) and o.info["backend"] == "loopback"
        assert o.radio.reverse().caps.n_tx == 2
    assert o.radio.closed
    with pytest.raises(RuntimeError, match="body"), open_radio(spec) as o2:
        raise RuntimeError("body")
    assert o2.radio.closed
    with pytest.raises(ConfigError, match="loopback channel spec"):
        with open_radio(RadioSpec("loopback", channel={"n_tx": 2, "n_rx": 2, "fading": "martian"})):
            pass
