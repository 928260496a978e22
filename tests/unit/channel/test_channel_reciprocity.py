"""Reciprocal TDD link: reverse = transpose of the shared channel, with chain gains."""

import numpy as np
import pytest

from hil.channel import FlatFading, ReciprocalLink, TimeBehaviour, build_reciprocal_link
from hil.radio.loopback import LoopbackRadio


def eye_response(model, n_in):
    """The channel matrix seen by unit pulses on each input antenna (static channel)."""
    return model(np.eye(n_in, dtype=np.complex64))


def test_reverse_is_transpose_static():
    link = ReciprocalLink(FlatFading(2, 3, np.random.default_rng(30)))
    h_ab = eye_response(link.forward, 2)  # [3, 2]
    h_ba = eye_response(link.reverse, 3)  # [2, 3]
    assert h_ab.shape == (3, 2) and h_ba.shape == (2, 3)
    assert np.array_equal(h_ba, h_ab.T)


def test_chain_gains_formula():
    rng = np.random.default_rng(31)
    t_a, r_a = np.array([1.0, 0.5j]), np.array([0.8, 1.2 - 0.3j])
    t_b, r_b = np.array([1.1, 0.9j, -1.0]), np.array([0.7j, 1.0, 1.3])
    link = ReciprocalLink(FlatFading(2, 3, rng), t_a=t_a, r_a=r_a, t_b=t_b, r_b=r_b)
    h_ab = eye_response(link.forward, 2)
    h_ba = eye_response(link.reverse, 3)
    h = link.model.state()
    H = np.asarray(h["h_real"]) + 1j * np.asarray(h["h_imag"])
    assert np.allclose(h_ab, np.diag(r_b) @ H @ np.diag(t_a), atol=1e-6)
    assert np.allclose(h_ba, np.diag(r_a) @ H.T @ np.diag(t_b), atol=1e-6)
    assert not np.allclose(h_ba, h_ab.T)  # uncalibrated: not reciprocal at baseband


def test_time_varying_shared_clock():
    # Gauss-Markov blocks of 10 samples: the reverse slot sees the transpose of the channel at its
    # own time (the clock runs on through both directions)
    f = FlatFading(2, 2, np.random.default_rng(32),
                   time=TimeBehaviour("gauss_markov", block_samples=10, rho=0.5))
    link = ReciprocalLink(f)
    c_f = link.forward.generate(10)
    c_r = link.reverse.generate(10)
    assert c_f.t0 == 0 and c_r.t0 == 10
    H_at_10 = f.state()
    H = np.asarray(H_at_10["h_real"]) + 1j * np.asarray(H_at_10["h_imag"])
    assert np.allclose(c_r.mats[-1, 0], H.T)
    assert not np.allclose(c_f.mats[-1, 0], H)


def test_build_reciprocal_link_with_loopback_radio():
    link = build_reciprocal_link({"n_a": 2, "n_b": 1, "fading": "rayleigh", "snr_db": 30.0, "cfo_hz": 100.0,
                                  "sample_rate_hz": 1e6, "chain_gains": {"amplitude_db_std": 1.0}},
                                 np.random.default_rng(33))
    radio = LoopbackRadio(link.forward, link.reverse, lead_samples=8, trail_samples=8)
    y = radio.transceive(np.ones((2, 100), np.complex64) * 0.3)
    assert y.shape == (1, 116)
    z = radio.reverse().transceive(np.ones((1, 50), np.complex64) * 0.3)
    assert z.shape == (2, 66)
    cfo_f = link.forward.stages[1].cfo_hz
    cfo_r = link.reverse.stages[1].cfo_hz
    assert cfo_f == -cfo_r == 100.0
    st = link.state()
    assert st["t_a"] is not None and len(st["t_a"]["real"]) == 2


def test_gain_length_checked():
    with pytest.raises(ValueError, match="t_a needs 2"):
        ReciprocalLink(FlatFading(2, 2, np.random.default_rng(0)), t_a=[1, 1, 1])


def test_reciprocal_wire_without_fading():
    # fading "none" (the default, as in build_channel): identity channel with chain gains
    link = build_reciprocal_link({"n_a": 2, "n_b": 2, "t_a": [1.0, 2.0], "r_b": [1.0, 1.0j]},
                                 np.random.default_rng(34))
    assert np.allclose(eye_response(link.forward, 2), np.diag([1.0, 1.0j]) @ np.diag([1.0, 2.0]))
    assert np.allclose(eye_response(link.reverse, 2), np.eye(2))
    with pytest.raises(ValueError, match="no fading"):
        build_reciprocal_link({"n_a": 2, "n_b": 1}, np.random.default_rng(0))
