"""as_samples validation and LoopbackRadio: shapes, margins, rx_samples, reverse link, closing."""

import numpy as np
import pytest

from hil.channel import AWGN, FixedMatrix
from hil.channel.reciprocity import ReciprocalLink
from hil.errors import RadioError
from hil.radio.base import as_samples
from hil.radio.loopback import LoopbackRadio


# -- as_samples ----------------------------------------------------------------------------------
def test_as_samples_shapes_and_dtype():
    x = as_samples(np.array([0.5, 0.5j]))
    assert x.shape == (1, 2) and x.dtype == np.complex64
    y = as_samples(np.zeros((2, 5), np.complex128), 2)
    assert y.shape == (2, 5) and y.dtype == np.complex64
    with pytest.raises(ValueError, match="expected 3 antenna rows"):
        as_samples(np.zeros((2, 5)), 3)
    with pytest.raises(ValueError, match="shape"):
        as_samples(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        as_samples(np.array([[0.1, np.nan]]))


def test_as_samples_full_scale():
    # |x| <= 1 passes (also exactly 1 on the diagonal, where |I| = |Q| = 0.7071); above: ValueError
    # naming the peak and the fix; a received capture may skip the check
    ok = np.array([[1.0, -1.0j, np.exp(0.25j * np.pi), 0.0]], np.complex64)
    got = as_samples(ok)
    assert got.shape == (1, 4) and got.dtype == np.complex64
    np.testing.assert_array_equal(got, ok)  # passed through unchanged, not rescaled or clipped
    big = np.array([[0.1, 0.8 + 0.8j]], np.complex64)  # |x| = 1.131
    with pytest.raises(ValueError, match=r"peak magnitude 1\.13.*scale the samples down"):
        as_samples(big, name="tx_burst")
    with pytest.raises(ValueError, match="tx_burst"):
        as_samples(big, name="tx_burst")
    assert as_samples(big, check_full_scale=False).shape == (1, 2)
    strided = np.zeros((2, 8), np.complex64)[:, ::2]
    strided[1, 3] = 1.5
    with pytest.raises(ValueError, match="peak magnitude 1.5"):
        as_samples(strided)


# -- LoopbackRadio ---------------------------------------------------------------------------------
def burst(n, n_ant=1, amp=0.5):
    return np.full((n_ant, n), amp, np.complex64)


def test_loopback_shapes_and_margins():
    h = np.array([[1.0, 0.0], [0.0, 0.5], [0.25, 0.0]])
    r = LoopbackRadio(FixedMatrix(h), lead_samples=10, trail_samples=7)
    assert (r.caps.n_tx, r.caps.n_rx) == (2, 3)
    y = r.transceive(burst(100, 2))
    assert y.shape == (3, 117) and y.dtype == np.complex64
    assert np.all(y[:, :10] == 0) and np.all(y[:, 110:] == 0)
    assert np.allclose(y[:, 10:110], (h @ np.full(2, 0.5))[:, None])
    assert r.bursts == 1
    with pytest.raises(ValueError, match="antenna rows"):
        r.transceive(burst(100, 3))
    with pytest.raises(ValueError, match="full scale"):
        r.transceive(burst(100, 2, amp=1.5))


def test_loopback_rx_samples_exact():
    r = LoopbackRadio(FixedMatrix(np.eye(1)), lead_samples=10, trail_samples=7)
    assert r.transceive(burst(100), rx_samples=500).shape == (1, 500)  # more silence after
    y = r.transceive(burst(100), rx_samples=112)  # trailing margin cut to 2
    assert y.shape == (1, 112) and np.allclose(y[0, 10:110], 0.5)
    assert r.transceive(burst(100), rx_samples=110).shape == (1, 110)
    with pytest.raises(ValueError, match=r"rx_samples=109 .*110"):
        r.transceive(burst(100), rx_samples=109)


def test_loopback_noise_fills_margins():
    r = LoopbackRadio(AWGN(1, np.random.default_rng(30), noise_power=1e-4), lead_samples=64)
    y = r.transceive(burst(200))
    assert np.mean(np.abs(y[0, :64]) ** 2) == pytest.approx(1e-4, rel=0.5)  # 64 samples: loose


def test_loopback_reverse_link_transposed_and_shared_state():
    # the reverse radio sends over the reverse channel (H^T), keeps the margins, counts its own
    # bursts; reverse().reverse() is the forward radio
    h = np.array([[1.0, 0.5j]])  # A: 2 antennas -> B: 1 antenna
    link = ReciprocalLink(FixedMatrix(h))
    fwd = LoopbackRadio(link.forward, link.reverse, lead_samples=4, trail_samples=4)
    rev = fwd.reverse()
    assert rev is fwd.reverse() and rev.reverse() is fwd
    assert (rev.caps.n_tx, rev.caps.n_rx) == (1, 2)
    y = rev.transceive(burst(20, 1))
    assert y.shape == (2, 28)
    assert np.allclose(y[:, 4:24], (h.T @ np.array([0.5]))[:, None])
    fwd.transceive(burst(20, 2))
    fwd.transceive(burst(20, 2))
    assert (fwd.bursts, rev.bursts) == (2, 1)
    with pytest.raises(NotImplementedError, match="reverse_channel"):
        LoopbackRadio(FixedMatrix(h)).reverse()


@pytest.mark.parametrize("close_forward", [True, False])
def test_loopback_close_closes_both_directions(close_forward):
    link = ReciprocalLink(FixedMatrix(np.eye(2)))
    fwd = LoopbackRadio(link.forward, link.reverse)
    rev = fwd.reverse()
    (fwd if close_forward else rev).close()
    for r in (fwd, rev):
        assert r.closed
        with pytest.raises(RadioError, match="closed"):
            r.transceive(burst(10, 2))
    fwd.close()  # idempotent
    rev.close()
    # a reverse radio made after closing is closed too
    fwd2 = LoopbackRadio(link.forward, link.reverse)
    fwd2.close()
    assert fwd2.reverse().closed


def test_loopback_context_manager_closes_on_exception():
    link = ReciprocalLink(FixedMatrix(np.eye(1)))
    with pytest.raises(RuntimeError, match="boom"):
        with LoopbackRadio(link.forward, link.reverse) as r:
            rev = r.reverse()
            r.transceive(burst(10))
            raise RuntimeError("boom")
    assert r.closed and rev.closed
    with pytest.raises(RadioError):
        r.transceive(burst(10))


def test_tap_radio_keeps_the_capture_and_closes_inner_only_when_it_owns_it():
    import numpy as np

    from hil.channel.fading import FixedMatrix
    from hil.radio.loopback import LoopbackRadio
    from hil.radio.tap import TapRadio

    inner = LoopbackRadio(FixedMatrix(np.eye(1, dtype=np.complex64)), lead_samples=3, trail_samples=2)
    tap = TapRadio(inner, close_inner=False)
    x = np.full((1, 5), 0.5, np.complex64)
    y = tap.transceive(x)
    assert tap.last_capture.shape == (1, 10) and np.array_equal(tap.last_capture, y)
    tap.close()
    assert not inner.closed
    TapRadio(inner).close()
    assert inner.closed
