"""The numba kernels of the fast receiver against its numpy path and the reference, piece by piece.

Captures from fixed seeds through the simulated channel (deterministic). Tolerances: the candidate
picks are equal (the same greedy choice on the same metric); the differential metric and the
coherent statistic, float32 transforms summed in another order, within 1e-5 relative (the
statistic's CFO bins equal); the matched filters, float64 sums of the same products in another
order, within 1e-9 of their RMS. The numpy path (``HIL_PHY_NUMBA=0``) must still equal the
reference with test_phy_fast.py's tolerances.
"""

import numpy as np
import pytest

from hil.channel.config import build_channel
from hil.phy import FrameReceiver, FrameTransmitter, PhyConfig
from hil.phy import fast
from hil.phy.fast import FastReceiver
from hil.phy.waveform import Pulse
from hil.radio.loopback import LoopbackRadio

from .conftest import gauss_symbols
from .test_phy_fast import CASES, _same

needs_numba = pytest.mark.skipif(not fast.available(), reason="numba not installed (the numpy path runs)")


def _capture(cfg, seed, snr=15.0, sco=30.0, shape=(16, 48)):
    rng = np.random.default_rng(seed)
    spec = {"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, "fading": "rayleigh", "snr_db": snr, "cfo_hz": 4e4,
            "delay_samples": 0.9, "sco_ppm": sco}
    radio = LoopbackRadio(build_channel(spec, rng))
    burst, _ = FrameTransmitter(cfg).build(gauss_symbols(rng, shape[0], cfg.n_tx, shape[1]))
    return radio.transceive(burst).astype(np.complex64)


def _pair(monkeypatch, cfg):
    """(numba FastReceiver, numpy-path FastReceiver) of one config."""
    nb = FastReceiver(cfg)
    monkeypatch.setenv("HIL_PHY_NUMBA", "0")
    npy = FastReceiver(cfg)
    monkeypatch.delenv("HIL_PHY_NUMBA")
    assert nb._nb and not npy._nb
    return nb, npy


@pytest.mark.parametrize("mode,n,shape,snr,cfo,delay,sco", CASES[::3])
def test_numpy_path_equals_reference(monkeypatch, mode, n, shape, snr, cfo, delay, sco):
    monkeypatch.setenv("HIL_PHY_NUMBA", "0")
    cfg = PhyConfig(n_tx=n, n_rx=n, mode=mode)
    ref, npy = FrameReceiver(cfg), FastReceiver(cfg)
    assert not npy._nb
    rng = np.random.default_rng(77 + n)
    spec = {"n_tx": n, "n_rx": n, "fading": "rayleigh", "snr_db": snr, "cfo_hz": cfo, "delay_samples": delay}
    if sco:
        spec["sco_ppm"] = sco
    radio = LoopbackRadio(build_channel(spec, rng))
    burst, _ = FrameTransmitter(cfg).build(gauss_symbols(rng, shape[0], n, shape[1]))
    for _ in range(2):
        cap = radio.transceive(burst)
        _same(ref.receive(cap), npy.receive(cap))


@needs_numba
@pytest.mark.parametrize("kw", [
    {"n_tx": 2, "n_rx": 2, "mode": "flat"},
    {"n_tx": 1, "n_rx": 3, "mode": "single", "sps": 3},
    {"n_tx": 4, "n_rx": 2, "mode": "flat", "preamble_len": 200},
])
def test_detection_kernels_match_numpy(monkeypatch, kw):
    cfg = PhyConfig(**kw)
    nb, npy = _pair(monkeypatch, cfg)
    ref = FrameReceiver(cfg)
    for seed in range(3):
        x = _capture(cfg, seed, snr=5.0 * seed)
        xb = np.stack([x, x[:, ::-1].copy()])
        m_nb, m_np = nb._diff_metric_batch(xb), npy._diff_metric_batch(xb)
        assert m_nb.shape == m_np.shape
        assert np.max(np.abs(m_nb - m_np) / np.abs(m_np)) <= 1e-5
        for m in (m_nb[0], m_nb[1], np.zeros(50), np.arange(40.0)):
            assert np.array_equal(nb._pick_candidates(m, 4, 6), ref._pick_candidates(m, 4, 6))
        pos = nb._pick_candidates(m_nb[0], 4, 6)
        (b1, a1), (b2, a2) = nb.statistic(x, pos), npy.statistic(x, pos)
        assert np.array_equal(a1, a2)
        assert np.max(np.abs(b1 - b2) / b2) <= 1e-5


@needs_numba
def test_matched_filter_kernels_match_numpy(monkeypatch):
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    nb, npy = _pair(monkeypatch, cfg)
    x = _capture(cfg, 4)
    rng = np.random.default_rng(11)
    for first, n, taps in ((3, 700, rng.standard_normal(34)), (0, 5, rng.standard_normal(7)),
                           (10, 1, rng.standard_normal(1)), (1, 300, nb.pulse._poly[17])):
        y1, y2 = nb._poly_mf(x, first, n, taps), npy._poly_mf(x, first, n, taps)
        assert y1.dtype == y2.dtype == np.complex128
        assert np.max(np.abs(y1 - y2)) <= 1e-9 * np.sqrt(np.mean(np.abs(y2) ** 2))
    with pytest.raises(IndexError):
        nb._poly_mf(x, x.shape[1] - 10, 10, taps)
    centres = 40.0 + np.cumsum(rng.uniform(1.5, 2.5, 900))
    y1, y2 = nb.pulse.matched_at(x, centres), Pulse(cfg).matched_at(x, centres)
    assert np.max(np.abs(y1 - y2)) <= 1e-9 * np.sqrt(np.mean(np.abs(y2) ** 2))
    with pytest.raises(IndexError):
        nb.pulse.matched_at(x, np.array([3.0]))


def test_phasor_matches_reference():
    """The CFO de-rotation (two tables, one outer product) against the reference's complex128
    exponential: phase within 1e-7 rad, magnitude within 2e-7 of 1, the same length."""
    for f, n_ref, n in ((0.05, 700.3, 6403), (-0.118, 12.7, 9001), (1e-5, 3000.5, 64), (0.0, 3.0, 1), (0.3, -5.5, 130)):
        ref = np.exp(-2j * np.pi * f * (np.arange(n) - n_ref))
        got = FastReceiver._phasor(f, n_ref, n)
        assert got.dtype == np.complex64 and got.shape == (n,)
        assert np.max(np.abs(np.angle(got / ref))) <= 1e-7
        assert np.max(np.abs(np.abs(got) - 1)) <= 2e-7


def test_copies_decode_the_same():
    """A deep copy and a pickled copy (without the per-thread scratch arrays) decode bit-equal."""
    import copy
    import dataclasses
    import pickle

    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    rx = FastReceiver(cfg)
    cap = _capture(cfg, 2, sco=0.0)
    a = rx.receive(cap)
    for other in (copy.deepcopy(rx), pickle.loads(pickle.dumps(rx))):
        b = other.receive(cap)
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name


@needs_numba
def test_early_late_matches_numpy(monkeypatch):
    """The early/late pair of the drift detector (the one-row polyphase path and its fallback for
    instants of unequal spacing or fractional part) against the numpy path, within 1e-9 of the RMS."""
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    nb, npy = _pair(monkeypatch, cfg)
    x = _capture(cfg, 6)
    m = np.arange(150, 1700)
    for base in (40.3 + 33 + m * 2.0, 40.0 + 33 + m * 2.0, 40.3 + 33 + m * 2.0 + 1e-4 * m, 40.7 + m * 2.0 + (m > 1000)):
        for a, b in zip(nb._early_late(x, base), npy._early_late(x, base)):
            assert np.max(np.abs(a - b)) <= 1e-9 * np.sqrt(np.mean(np.abs(b) ** 2))
    with pytest.raises(IndexError):
        nb._early_late(x, np.array([5.0, 7.0, 9.0]))
