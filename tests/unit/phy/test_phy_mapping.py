"""Analog mapping: exact round trips (hypothesis), header bits and CRC."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hil.errors import ConfigError

from hil.phy import FrameLayout, PhyConfig, real_to_symbols, symbols_to_real
from hil.phy.frame import FrameTransmitter
from hil.phy.waveform import HEADER_BITS, Header

floats32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(n_tx=st.integers(1, 4), b=st.integers(1, 3), length=st.integers(0, 70), data=st.data())
def test_real_symbols_round_trip_exact(n_tx, b, length, data):
    v = data.draw(arrays(np.float32, (b, length), elements=floats32))
    s = real_to_symbols(v, n_tx)
    k = -(-length // (2 * n_tx))
    assert s.shape == (b, n_tx, k) and s.dtype == np.complex64
    back = symbols_to_real(s, length)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, v)  # exact, bit for bit


@settings(max_examples=40, deadline=None)
@given(n_tx=st.integers(1, 3), length=st.integers(0, 40), data=st.data())
def test_wider_input_is_rounded_to_float32(n_tx, length, data):
    """The documented contract for non-float32 input: it comes back as ``v.astype(float32)``."""
    v = data.draw(arrays(np.float64, (2, length),
                         elements=st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False)))
    back = symbols_to_real(real_to_symbols(v, n_tx), length)
    np.testing.assert_array_equal(back, v.astype(np.float32))


def test_mapping_pairs_i_and_q():
    v = np.arange(8, dtype=np.float32)[None]
    s = real_to_symbols(v, 2)
    np.testing.assert_array_equal(s[0], [[0 + 1j, 2 + 3j], [4 + 5j, 6 + 7j]])


def test_mapping_rejects_bad_input():
    with pytest.raises(TypeError, match="real array"):
        real_to_symbols(np.ones((2, 4), complex), 1)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        real_to_symbols(np.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="length"):
        symbols_to_real(np.ones((1, 1, 2), np.complex64), 5)


@settings(max_examples=30, deadline=None)
@given(n_tx=st.integers(1, 4), b=st.integers(1, 4), k=st.integers(1, 40), mode=st.sampled_from(["flat", "ofdm"]))
def test_payload_grid_round_trip_through_frame(n_tx, b, k, mode):
    """The framer's payload placement, read back at the known positions, gives the symbols exactly."""
    cfg = PhyConfig(n_tx=n_tx, n_rx=1, mode=mode, power_norm="fixed")
    lay = FrameLayout(cfg, b, k)
    s = np.random.default_rng(b * 100 + k).standard_normal((b, n_tx, k)).astype(np.complex64)
    tx = FrameTransmitter(cfg)
    streams = s.transpose(1, 0, 2).reshape(n_tx, -1)
    if mode == "flat":
        data_pos, blocks = lay.payload_positions()
        assert len(set(data_pos)) == lay.n_uses
        assert not set(data_pos) & {int(x) + j for x in blocks for j in range(n_tx)}
        assert max(data_pos.max(), blocks.max() + n_tx - 1) == lay.n_payload_symbols - 1
        grid = np.zeros((n_tx, lay.n_payload_symbols), np.complex64)
        grid[:, data_pos] = streams
        back = grid[:, data_pos].reshape(n_tx, b, k).transpose(1, 0, 2)
    else:
        g = tx.grid
        n_sym = lay.n_ofdm_data_symbols
        d = np.zeros((n_tx, n_sym * g.n_data), np.complex64)
        d[:, : lay.n_uses] = streams
        back = d[:, : lay.n_uses].reshape(n_tx, b, k).transpose(1, 0, 2)
    np.testing.assert_array_equal(back, s)


@settings(max_examples=40, deadline=None)
@given(seq=st.integers(0, 0xFFFF), b=st.integers(1, 0xFFFF), k=st.integers(1, 0xFFFF),
       n_tx=st.integers(1, 4), code=st.integers(-32768, 32767), flips=st.sets(st.integers(0, HEADER_BITS - 1), min_size=1, max_size=3))
def test_header_round_trip_and_crc_catches_flips(seq, b, k, n_tx, code, flips):
    h = Header(frame_type=1, seq=seq, batch_size=b, channel_uses=k, n_tx=n_tx, mode="flat", link_id=7, scale_code=code)
    bits = h.to_bits()
    assert len(bits) == HEADER_BITS
    assert Header.from_bits(bits) == h
    bad = bits.copy()
    bad[list(flips)] ^= 1
    assert Header.from_bits(bad) is None  # CRC-16 detects every 1..3-bit error


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_tx=2.*single"):
        PhyConfig(n_tx=2, mode="single")
    with pytest.raises(ValueError, match="mode"):
        PhyConfig(mode="qam")
    with pytest.raises(ValueError, match="max_cfo_hz"):
        PhyConfig(max_cfo_hz=4e5)
    with pytest.raises(ConfigError, match=r"^\[phy\]\.bogus: unknown key; valid: n_tx, n_rx"):
        PhyConfig.from_dict({"n_tx": 1, "bogus": 3})
    with pytest.raises(ConfigError, match=r"^\[phy\]\.n_rx: must be an integer \(got '2'\)"):
        PhyConfig.from_dict({"n_rx": "2"})
    with pytest.raises(ConfigError, match=r"^\[phy\]\.n_tx: out of range \(got 5\); valid: >= 1 and <= 4"):
        PhyConfig.from_dict({"n_tx": 5})
    with pytest.raises(ConfigError, match=r"^\[phy\]\.n_tx: out of range \(got 5\)"):
        PhyConfig(n_tx=5)  # built in code: the same check and message
    with pytest.raises(ConfigError, match=r"^\[phy\]: PhyConfig\.rrc_span=15: must be an even number"):
        PhyConfig.from_dict({"rrc_span": 15})  # a check beyond one field's range stays in __post_init__
    assert PhyConfig.from_dict(PhyConfig(n_tx=2).to_dict()) == PhyConfig(n_tx=2)
