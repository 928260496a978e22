"""hil.phy: frames for analog over-the-air activations.

Preamble detection (coherent, CFO-searching, CFAR threshold), coarse+fine CFO, timing, orthogonal
MIMO pilots with LS/LMMSE estimation, a BPSK header with CRC-16, a quiet interval for the noise
power, and the payload (single carrier, flat MIMO, or OFDM) with phase tracking. See docs/phy.md.

    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    link = PhyLink(radio, cfg)
    res = link.transceive(symbols)      # complex64 [B, n_tx, K] -> RxResult, payload [B, n_rx, K]
"""

from hil.phy.config import PhyConfig
from hil.phy.fast import FastReceiver
from hil.phy.frame import FrameLayout, FrameTransmitter, OfdmGrid, TxInfo
from hil.phy.link import PhyLink
from hil.phy.mapping import channel_uses_for, real_to_symbols, symbols_to_real
from hil.phy.receiver import Detection, FrameReceiver, RxResult
from hil.phy.waveform import FrameType, Header

__all__ = [
    "Detection",
    "FastReceiver",
    "FrameLayout",
    "FrameReceiver",
    "FrameTransmitter",
    "FrameType",
    "Header",
    "OfdmGrid",
    "PhyConfig",
    "PhyLink",
    "RxResult",
    "TxInfo",
    "channel_uses_for",
    "real_to_symbols",
    "symbols_to_real",
]
