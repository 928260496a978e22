"""The header CRC: CRC-16/CCITT-FALSE through binascii.crc_hqx, with the bit-serial wire format unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.phy.config import MODES
from hil.phy.waveform import HEADER_BITS, Header, crc16


def _bitwise_crc16(bits) -> int:
    """The bit-serial definition (poly 0x1021, init 0xFFFF, MSB first): the reference for the wire format."""
    reg = 0xFFFF
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return reg


def _bits_of(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("data, crc", [(b"123456789", 0x29B1),  # the CRC-16/CCITT-FALSE check value
                                       (b"", 0xFFFF), (b"A", 0xB915)])
def test_known_vectors(data, crc):
    assert crc16(_bits_of(data)) == crc == _bitwise_crc16(_bits_of(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=0, max_size=130))
def test_any_bit_length_matches_the_bit_serial_definition(bits):
    assert crc16(np.array(bits, np.uint8)) == _bitwise_crc16(bits)


def test_header_bits_are_unchanged_on_the_wire():
    """A header built before the CRC moved to binascii: same 100 bits, CRC 0x74f8 over its 84 data bits."""
    h = Header(frame_type=1, seq=0x1234, batch_size=32, channel_uses=4, n_tx=2, mode=MODES[0], link_id=7,
               scale_code=-512)
    pinned = ("1010000100010000011100010010001101000000000000100000000000000000"
              "010011111110000000000111010011111000")
    bits = h.to_bits()
    assert bits.shape == (HEADER_BITS,)
    assert "".join(map(str, bits)) == pinned
    assert crc16(bits[:-16]) == 0x74F8
    assert Header.from_bits(bits) == h
    flipped = bits.copy()
    flipped[40] ^= 1
    assert Header.from_bits(flipped) is None
