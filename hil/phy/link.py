"""PhyLink: one call sends a batch of symbol vectors through a Radio and returns what arrived."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from hil.errors import SyncError
from hil.phy.config import PhyConfig
from hil.phy.fast import FastReceiver
from hil.phy.frame import FrameLayout, FrameTransmitter, TxInfo
from hil.phy.receiver import FrameReceiver, RxResult
from hil.phy.waveform import FrameType
from hil.radio.base import Radio

log = logging.getLogger(__name__)


class PhyLink:
    """Framer + radio + receiver.

    Args:
        radio: any :class:`hil.radio.base.Radio` whose ``caps`` match ``cfg.n_tx`` / ``cfg.n_rx``.
        cfg: the :class:`PhyConfig` of both ends.
        fast: decode with :class:`hil.phy.fast.FastReceiver` (the default; same results as the
            reference :class:`FrameReceiver` within float rounding, see [Note: fast receiver]);
            False uses the reference.

    ``transceive(symbols)`` builds one burst (header sequence number ``self.seq``), calls
    ``radio.transceive`` once, decodes the capture and checks that the frame carries this
    sequence number and shape (a stale or foreign frame raises SyncError). The sequence number
    advances after every call, also a failed one.
    """

    def __init__(self, radio: Radio, cfg: PhyConfig, fast: bool = True):
        caps = radio.caps
        if caps.n_tx != cfg.n_tx or caps.n_rx != cfg.n_rx:
            raise ValueError(
                f"PhyLink: radio has n_tx={caps.n_tx}, n_rx={caps.n_rx} but PhyConfig has "
                f"n_tx={cfg.n_tx}, n_rx={cfg.n_rx}; make them agree"
            )
        self.radio = radio
        self.cfg = cfg
        self.transmitter = FrameTransmitter(cfg)
        self.receiver = FastReceiver(cfg) if fast else FrameReceiver(cfg)
        self.seq = 0
        self.last_tx: TxInfo | None = None

    def burst_samples(self, batch_size: int, channel_uses: int) -> int:
        """Samples per antenna of the burst for B vectors of K channel uses."""
        return FrameLayout(self.cfg, batch_size, channel_uses).n_samples

    def transceive(self, symbols: np.ndarray, frame_type: int = FrameType.DATA) -> RxResult:
        """Send ``symbols`` (complex ``[B, n_tx, K]``) in one burst; return the decoded :class:`RxResult`.

        Raises:
            ValueError: bad symbols shape or values.
            SyncError: no frame found, header CRC failed, burst truncated, stale/foreign frame.
        """
        s = np.asarray(symbols)
        if s.ndim != 3 or s.shape[1] != self.cfg.n_tx:
            raise ValueError(f"symbols: expected shape [B, n_tx={self.cfg.n_tx}, K], got {s.shape}")
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        burst, info = self.transmitter.build(s, seq=seq, frame_type=frame_type)
        self.last_tx = info
        cap = self.radio.transceive(burst)
        try:
            res = self.receiver.receive(cap, expect_seq=seq, expect_shape=(s.shape[0], s.shape[2]))
        except SyncError:
            log.debug("PHY: frame seq=%d lost", seq)
            raise
        return dataclasses.replace(res, tx_clipped=info.clipped_samples)
