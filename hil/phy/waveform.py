"""Building blocks of the frame: RRC pulse, known sequences, header bits with CRC-16.

[Note: pulse shaping and symbol timing]
Single-carrier parts are root-raised-cosine shaped at ``sps`` samples per symbol; the pulse ``g`` is
scaled so that ``sum(g**2) == sps``: a burst of unit-power symbols has unit power per sample, and
the matched filter ``(1/sps) * sum_n r[n] g(n - c)`` at the symbol centre ``c`` returns the symbol
with noise variance ``noise_var_per_sample / sps``. Sample 0 of a frame is the first sample of the
first pulse; symbol ``m`` is centred at ``L + m*sps`` with ``L = rrc_span*sps/2``. The receiver
evaluates the matched filter at a fractional centre, so a fractional channel delay needs no
resampling.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from hil.phy.config import MODES, PhyConfig

HEADER_MAGIC = 0b1010
_POLY_PHASES = 64
HEADER_BITS = 100  # 84 data bits + 16 CRC bits
SCALE_STEPS_PER_DB = 256.0
#: the header's TX scale code of a payload that is all zero (no finite scale normalises it): the receiver
#: returns exact zeros for it (see :meth:`Header.tx_scale`); codes of real scales are -32767..32767
ZERO_PAYLOAD_CODE = -32768


class FrameType(IntEnum):
    """What a frame carries (4 header bits)."""

    DATA = 1
    SOUNDING = 2
    GRADIENT = 3


def rrc(t: np.ndarray, beta: float) -> np.ndarray:
    """Root-raised-cosine impulse response at times ``t`` (in symbols), peak ``1 - beta + 4 beta/pi``."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty_like(t)
    at0 = np.abs(t) < 1e-9
    sing = np.abs(np.abs(t) - 1.0 / (4.0 * beta)) < 1e-9
    rest = ~(at0 | sing)
    out[at0] = 1.0 - beta + 4.0 * beta / np.pi
    out[sing] = (beta / np.sqrt(2.0)) * (
        (1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta))
    )
    tr = t[rest]
    out[rest] = (np.sin(np.pi * tr * (1 - beta)) + 4 * beta * tr * np.cos(np.pi * tr * (1 + beta))) / (
        np.pi * tr * (1 - (4 * beta * tr) ** 2)
    )
    return out


class Pulse:
    """The RRC pulse of a config: TX taps and fractional matched-filter taps."""

    def __init__(self, cfg: PhyConfig):
        self.sps = cfg.sps
        self.beta = cfg.rrc_rolloff
        self.half = cfg.rrc_span * cfg.sps // 2  # L
        k = np.arange(-self.half, self.half + 1)
        g = rrc(k / self.sps, self.beta)
        self.scale = float(np.sqrt(self.sps / np.sum(g**2)))
        self.taps = (g * self.scale).astype(np.float64)  # length 2L+1
        kk = np.arange(-self.half, self.half + 2)
        mus = np.arange(_POLY_PHASES + 1) / _POLY_PHASES
        self._poly = rrc((kk[None, :] - mus[:, None]) / self.sps, self.beta) * self.scale / self.sps

    def shape(self, symbols: np.ndarray) -> np.ndarray:
        """Pulse-shape symbol streams ``[n, M]`` -> samples ``[n, (M-1)*sps + 2L + 1]`` (complex128)."""
        n, m = symbols.shape
        up = np.zeros((n, (m - 1) * self.sps + 1), np.complex128)
        up[:, :: self.sps] = symbols
        return np.stack([np.convolve(row, self.taps) for row in up])

    def n_samples(self, n_symbols: int) -> int:
        """Samples of a shaped stream of ``n_symbols`` symbols."""
        return (n_symbols - 1) * self.sps + 2 * self.half + 1

    def matched(self, x: np.ndarray, centres0: float, n_symbols: int) -> np.ndarray:
        """Matched-filter outputs at fractional centres ``centres0 + m*sps``, m < n_symbols.

        Args:
            x: complex ``[n_rx, N]`` samples (already CFO-corrected).
            centres0: sample position (float) of the first symbol centre.
            n_symbols: symbols to return.

        Returns:
            complex128 ``[n_rx, n_symbols]``. Raises IndexError when a window leaves ``x``.
        """
        base = int(np.floor(centres0))
        mu = centres0 - base
        k = np.arange(-self.half, self.half + 2)
        h = rrc((k - mu) / self.sps, self.beta) * self.scale / self.sps  # [2L+2]
        start = base - self.half
        stop = base + (n_symbols - 1) * self.sps + self.half + 2
        if start < 0 or stop > x.shape[1]:
            raise IndexError(f"matched filter window [{start}, {stop}) outside capture of {x.shape[1]}")
        seg = x[:, start:stop]
        hr = h[::-1]
        return np.stack([np.convolve(row, hr, mode="valid")[:: self.sps][:n_symbols] for row in seg])


    def matched_at(self, x: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """Matched-filter outputs at arbitrary fractional sample positions ``centres [M]``.

        The fractional part of each centre is rounded to 1/64 sample (polyphase table; the timing
        error this adds, at most 1/128 sample, is far below the estimators' precision).
        Returns complex ``[n_rx, M]``; raises IndexError when a window leaves ``x``.
        """
        centres = np.asarray(centres, np.float64)
        base = np.floor(centres).astype(int)
        mu = centres - base
        k = np.arange(-self.half, self.half + 2)
        if base.min() - self.half < 0 or base.max() + self.half + 2 > x.shape[1]:
            raise IndexError(f"matched filter windows outside capture of {x.shape[1]}")
        taps = self._poly[np.rint(mu * _POLY_PHASES).astype(int)]  # [M, 2L+2], mu on a 1/64 grid
        win = x[:, base[:, None] + k[None, :]]  # [n_rx, M, 2L+2]
        return np.einsum("rmk,mk->rm", win, taps)


class Sequences:
    """The known sequences of a config (identical at both ends: drawn from ``cfg.seed``)."""

    def __init__(self, cfg: PhyConfig):
        rng = np.random.default_rng(cfg.seed)
        qpsk = np.exp(1j * np.pi / 4 * (2 * np.arange(4) + 1))
        self.preamble = qpsk[rng.integers(0, 4, (cfg.n_tx, cfg.preamble_len))]  # [n_tx, Np]
        n_pil = cfg.n_tx * cfg.pilot_len
        base = qpsk[rng.integers(0, 4, n_pil)]
        cover = np.exp(-2j * np.pi * np.outer(np.arange(cfg.n_tx), np.arange(n_pil)) / cfg.n_tx)
        self.pilots = base[None, :] * cover  # [n_tx, n_pil], P P^H = n_pil I
        # phase-tracking block: n_tx symbols, DFT cover (orthogonal across antennas)
        tb = qpsk[rng.integers(0, 4, cfg.n_tx)]
        self.track = tb[None, :] * cover[:, : cfg.n_tx]  # [n_tx, n_tx]
        # header: Walsh code per antenna x a common +-1 scrambler
        hs = cfg.header_spread
        had = np.array([[1.0]])
        while had.shape[0] < hs:
            had = np.block([[had, had], [had, -had]])
        self.walsh = had[: cfg.n_tx]  # [n_tx, hs]
        self.scrambler = rng.choice([-1.0, 1.0], HEADER_BITS * hs)
        # OFDM
        self.ofdm_q = qpsk[rng.integers(0, 4, cfg.ofdm_used)]
        self.ofdm_cpe = qpsk[rng.integers(0, 4, (cfg.n_tx, max(cfg.ofdm_cpe_pilots, 1)))]

    def header_chips(self, bits: np.ndarray) -> np.ndarray:
        """BPSK-spread header: bits (0/1) ``[HEADER_BITS]`` -> chips ``[n_tx, HEADER_BITS*hs]`` (+-1)."""
        b = 1.0 - 2.0 * np.asarray(bits, np.float64)  # 0 -> +1
        chips = b[None, :, None] * self.walsh[:, None, :]  # [n_tx, bits, hs]
        return chips.reshape(self.walsh.shape[0], -1) * self.scrambler[None, :]


def _crc16_init_after_zeros(pad: int) -> int:
    """The CRC-16/CCITT register value that ``pad`` zero bits take to 0xFFFF (the zero-bit step, undone)."""
    reg = 0xFFFF
    for _ in range(pad):
        reg = (((reg ^ 0x1021) >> 1) | 0x8000) if reg & 1 else reg >> 1
    return reg


_CRC16_INIT = tuple(_crc16_init_after_zeros(p) for p in range(8))


def crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) of a bit array (MSB first).

    [Note: CRC of a bit string]
    ``binascii.crc_hqx`` is this CRC over whole bytes. A bit string whose length is not a multiple of
    8 (the header's 84 data bits) is front-padded with zero bits to whole bytes, and the register
    starts at the value those zero bits take to 0xFFFF, so the result is the CRC of the bits alone:
    the same value as the bit-serial definition (tests/unit/phy/test_phy_crc.py checks both).
    """
    b = np.asarray(bits, np.uint8)
    pad = -b.size % 8
    data = np.packbits(np.concatenate([np.zeros(pad, np.uint8), b])).tobytes()
    return binascii.crc_hqx(data, _CRC16_INIT[pad])


def _to_bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _from_bits(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


@dataclass(frozen=True)
class Header:
    """The frame header (BPSK, CRC-16).

    Attributes:
        frame_type: :class:`FrameType` value.
        seq: 16-bit sequence number.
        batch_size: B, vectors in the burst.
        channel_uses: K, channel uses per vector.
        n_tx: transmit antennas.
        mode: payload mode.
        link_id: 8-bit link identity.
        scale_code: the payload TX scale, ``20*log10(scale) * 256`` as int16; :data:`ZERO_PAYLOAD_CODE`
            for a payload of zeros.
    """

    frame_type: int
    seq: int
    batch_size: int
    channel_uses: int
    n_tx: int
    mode: str
    link_id: int
    scale_code: int

    @property
    def tx_scale(self) -> float:
        """Linear amplitude scale applied to the payload symbols at the transmitter (0.0 for a payload of zeros)."""
        if self.scale_code == ZERO_PAYLOAD_CODE:
            return 0.0
        return float(10.0 ** (self.scale_code / SCALE_STEPS_PER_DB / 20.0))

    def to_bits(self) -> np.ndarray:
        """The 100 header bits, CRC last."""
        for name, v, hi in (
            ("frame_type", self.frame_type, 15),
            ("seq", self.seq, 0xFFFF),
            ("batch_size", self.batch_size, 0xFFFF),
            ("channel_uses", self.channel_uses, 0xFFFF),
            ("link_id", self.link_id, 0xFF),
        ):
            if not 0 <= v <= hi:
                raise ValueError(f"Header.{name}={v} out of range 0..{hi}")
        if not 1 <= self.n_tx <= 4:
            raise ValueError(f"Header.n_tx={self.n_tx} out of range 1..4")
        if not -32768 <= self.scale_code <= 32767:
            raise ValueError(f"Header.scale_code={self.scale_code} out of int16 range")
        bits = (
            _to_bits(HEADER_MAGIC, 4)
            + _to_bits(self.frame_type, 4)
            + _to_bits(MODES.index(self.mode), 2)
            + _to_bits(self.n_tx - 1, 2)
            + _to_bits(self.link_id, 8)
            + _to_bits(self.seq, 16)
            + _to_bits(self.batch_size, 16)
            + _to_bits(self.channel_uses, 16)
            + _to_bits(self.scale_code & 0xFFFF, 16)
        )
        bits += _to_bits(crc16(np.array(bits)), 16)
        return np.array(bits, np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Header | None":
        """Parse 100 bits; None when the CRC or the magic number does not match."""
        bits = np.asarray(bits, np.uint8)
        if bits.shape != (HEADER_BITS,):
            raise ValueError(f"header: expected {HEADER_BITS} bits, got {bits.shape}")
        if crc16(bits[:-16]) != _from_bits(bits[-16:]):
            return None
        if _from_bits(bits[0:4]) != HEADER_MAGIC:
            return None
        mode_idx = _from_bits(bits[8:10])
        if mode_idx >= len(MODES):
            return None
        sc = _from_bits(bits[68:84])
        return cls(
            frame_type=_from_bits(bits[4:8]),
            mode=MODES[mode_idx],
            n_tx=_from_bits(bits[10:12]) + 1,
            link_id=_from_bits(bits[12:20]),
            seq=_from_bits(bits[20:36]),
            batch_size=_from_bits(bits[36:52]),
            channel_uses=_from_bits(bits[52:68]),
            scale_code=sc - 0x10000 if sc >= 0x8000 else sc,
        )


def scale_code_for(scale: float) -> int:
    """Quantise a linear TX scale to the header's int16 code (ValueError when out of range)."""
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"TX scale must be finite and > 0, got {scale}")
    code = int(np.round(20.0 * np.log10(scale) * SCALE_STEPS_PER_DB))
    if not ZERO_PAYLOAD_CODE < code <= 32767:
        raise ValueError(
            f"TX scale {scale:g} is outside +-128 dB; rescale the symbols (their power is {1/scale**2:g}x the target)"
        )
    return code
