"""Synchronisation: any offset, truncation, corruption, noise only, stale and foreign frames."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import SyncError
from hil.phy import FrameReceiver, FrameTransmitter, PhyConfig, PhyLink
from hil.radio.loopback import LoopbackRadio

from .conftest import TinyChannel, gauss_symbols, rayleigh

CFG = PhyConfig(n_tx=2, n_rx=2, mode="flat")
TX = FrameTransmitter(CFG)
RX = FrameReceiver(CFG)
SYMS = gauss_symbols(np.random.default_rng(7), 2, 2, 24)
BURST, INFO = TX.build(SYMS, seq=99)
H = rayleigh(np.random.default_rng(8), 2, 2)
NOISE = 10 ** (-25 / 10) * CFG.avg_power * 2  # about 22 dB per receive antenna


def _embed(burst: np.ndarray, offset: int, total: int, rng, cfo: float = 0.0) -> np.ndarray:
    x = np.zeros((2, total), np.complex64)
    n = min(burst.shape[1], total - offset)
    x[:, offset : offset + n] = burst[:, :n]
    y = H @ x * np.exp(2j * np.pi * cfo * np.arange(total))
    w = rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape)
    return (y + w * np.sqrt(NOISE / 2)).astype(np.complex64)


def _payload_error(res) -> float:
    expect = np.einsum("rt,btk->brk", res.channel_estimate, SYMS)
    return float(np.mean(np.abs(res.payload - expect) ** 2) / np.mean(np.abs(expect) ** 2))


@settings(max_examples=15, deadline=None)
@given(offset=st.integers(0, 3000), extra=st.integers(0, 500), cfo=st.floats(-0.1, 0.1), seed=st.integers(0, 2**16))
def test_frame_found_at_any_offset(offset, extra, cfo, seed):
    rng = np.random.default_rng(seed)
    cap = _embed(BURST, offset, offset + BURST.shape[1] + extra, rng, cfo)
    res = RX.receive(cap, expect_seq=99, expect_shape=(2, 24))
    assert abs(res.timing - offset) < 0.25
    assert abs(res.cfo_hz / CFG.sample_rate_hz - cfo) < 2e-4
    assert _payload_error(res) < 10 ** (-12 / 10)  # ~22 dB SNR: relative error well below -12 dB


@settings(max_examples=15, deadline=None)
@given(cut=st.floats(0.0, 0.999), offset=st.integers(0, 200), seed=st.integers(0, 2**16))
def test_truncated_frame_raises(cut, offset, seed):
    """A capture that ends anywhere before the frame's end raises SyncError, never a result."""
    rng = np.random.default_rng(seed)
    keep = int(cut * BURST.shape[1])
    cap = _embed(BURST[:, :keep], offset, offset + keep, rng) if keep > 0 else _embed(BURST[:, :1], 0, 1, rng)
    with pytest.raises(SyncError):
        RX.receive(cap)


@settings(max_examples=15, deadline=None)
@given(start=st.floats(0.0, 0.95), frac=st.floats(0.3, 1.0), seed=st.integers(0, 2**16))
def test_corrupted_header_raises(start, frac, seed):
    """Replacing a stretch of the header with strong noise makes the receiver refuse the frame."""
    rng = np.random.default_rng(seed)
    lay = TX.pulse
    h0 = (RX.head.header_start) * CFG.sps + lay.half
    n_hdr = RX.head.n_header * CFG.sps
    a = h0 + int(start * n_hdr)
    b = min(a + int(frac * 0.3 * n_hdr) + 64, h0 + n_hdr)
    bad = BURST.copy()
    bad[:, a:b] = (rng.standard_normal((2, b - a)) + 1j * rng.standard_normal((2, b - a))) * 0.3
    # flip the header chips' signs too, so a lucky noise stretch cannot leave the bits intact
    bad[:, a:b] *= -1
    cap = _embed(bad, 100, BURST.shape[1] + 300, rng)
    try:
        res = RX.receive(cap)
    except SyncError as e:
        assert "CRC" in str(e) or "preamble" in str(e) or "foreign" in str(e) or "truncated" in str(e)
        return
    # never garbage: if a frame came back, it is the frame that was sent
    assert res.header == INFO.header and _payload_error(res) < 0.1


def test_noise_only_raises_no_preamble(rng):
    for p in (1e-6, 1e-2, 1.0):
        x = ((rng.standard_normal((2, 5000)) + 1j * rng.standard_normal((2, 5000))) * np.sqrt(p / 2)).astype(np.complex64)
        with pytest.raises(SyncError, match="no preamble above threshold"):
            RX.receive(x)


def test_false_alarm_rate_on_noise(rng):
    """200 noise-only captures (seed 1234): p_fa = 1e-5 per capture, so any hit is a 0.2% event."""
    hits = 0
    n = BURST.shape[1] + 128
    for _ in range(200):
        x = ((rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))) / np.sqrt(2)).astype(np.complex64)
        pos = RX.candidates(x)
        stat, _ = RX.statistic(x, pos)
        hits += bool(stat.max() > RX.threshold(n - RX.nw + 1))
    assert hits == 0


def test_stale_foreign_and_wrong_shape_frames_raise(rng):
    cap = _embed(BURST, 50, BURST.shape[1] + 200, rng)
    with pytest.raises(SyncError, match="stale or foreign sequence number"):
        RX.receive(cap, expect_seq=98)
    with pytest.raises(SyncError, match="unexpected frame shape"):
        RX.receive(cap, expect_shape=(3, 24))
    other = FrameReceiver(PhyConfig(n_tx=2, n_rx=2, mode="flat", link_id=5))
    with pytest.raises(SyncError, match="foreign frame"):
        other.receive(cap)


def test_link_sequence_numbers_advance_and_reject_stale(rng):
    ch = TinyChannel(H, rng, noise_power=NOISE, cfo=0.05, delay=3)
    radio = LoopbackRadio(ch)
    link = PhyLink(radio, CFG)
    r0 = link.transceive(SYMS)
    r1 = link.transceive(SYMS)
    assert (r0.header.seq, r1.header.seq) == (0, 1)

    class Replay(LoopbackRadio):
        """Returns the previous capture: a stale frame."""

        last = None

        def transceive(self, tx_burst, rx_samples=None):
            cap, self.last = self.last, super().transceive(tx_burst, rx_samples)
            return cap if cap is not None else self.last

    link2 = PhyLink(Replay(TinyChannel(H, rng, noise_power=NOISE)), CFG)
    link2.transceive(SYMS)
    with pytest.raises(SyncError, match="stale"):
        link2.transceive(SYMS)


def test_link_rejects_mismatched_radio(rng):
    with pytest.raises(ValueError, match="n_tx=1, n_rx=2"):
        PhyLink(LoopbackRadio(TinyChannel(np.ones((2, 1)), rng)), CFG)
