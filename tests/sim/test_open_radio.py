"""hil.radio.open starts the channel server / virtual Pluto it needs and stops them on every exit path."""

from __future__ import annotations

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.radio.open import RadioSpec, open_radio
from sim_fallback.topology import two_node_config

pytestmark = pytest.mark.sim


def test_zmq_server_started_for_one_node_is_stopped_also_when_the_body_raises():
    topo = two_node_config({"fading": "none"}, n_a=1, n_b=1)
    with pytest.raises(RuntimeError, match="body"):
        with open_radio(RadioSpec("zmq", server_config=topo, tx_node="server")) as o:
            (srv,) = o.started
            assert srv.alive
            assert (o.radio.tx_node, o.radio.rx_node) == ("server", "edge")  # that node's radio, to its peer
            y = o.radio.transceive(np.full((1, 32), 0.5, np.complex64))
            assert y.shape[0] == 1 and np.max(np.abs(y)) == pytest.approx(0.5, rel=1e-6)  # ideal wire
            raise RuntimeError("body")
    assert not srv.alive and o.radio._closed


def test_a_bad_topology_is_a_config_error_from_the_server():
    topo = two_node_config({"fading": "martian"})
    with pytest.raises(ConfigError, match="channel server topology: .*martian"):
        with open_radio(RadioSpec("zmq", server_config=topo)):
            pass


def test_virtual_pluto_is_started_opened_and_stopped():
    with open_radio(RadioSpec("pluto", virtual=True, profile="pluto_1r1t")) as o:
        (vp,) = o.started
        assert vp.alive and o.info["uri"] == vp.uri and vp.uri.startswith("ip:127.0.0.1:")
        assert (o.radio.caps.n_tx, o.radio.caps.n_rx) == (1, 1)
        assert o.radio.tune(lo_hz=2.4e9, sample_rate_hz=1e6) is True
        assert o.radio.profile.rx_lo_hz == 2_400_000_000
    assert not vp.alive
