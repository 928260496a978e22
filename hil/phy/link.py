"""PhyLink: one call sends a batch of symbol vectors through a Radio and returns what arrived."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from hil.errors import RadioError, SyncError
from hil.phy.config import PhyConfig
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

    ``transceive(symbols)`` builds one burst (header sequence number ``self.seq``), calls
    ``radio.transceive`` once, decodes the capture and checks that the frame carries this
    sequence number and shape (a stale or foreign frame raises SyncError). The sequence number
    advances after every call, also a failed one.
    """

    def __init__(self, radio: Radio, cfg: PhyConfig):
        caps = radio.caps
        if caps.n_tx != cfg.n_tx or caps.n_rx != cfg.n_rx:
            raise ValueError(
                f"PhyLink: radio has n_tx={caps.n_tx}, n_rx={caps.n_rx} but PhyConfig has "
                f"n_tx={cfg.n_tx}, n_rx={cfg.n_rx}; make them agree"
            )
        self.radio = radio
        self.cfg = cfg
        self.transmitter = FrameTransmitter(cfg)
        self.receiver = FrameReceiver(cfg)
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
        s = self._check(symbols)
        seq, burst, info = self._frame(s, frame_type)
        cap = self.radio.transceive(burst)
        return dataclasses.replace(self._decode(cap, seq, (s.shape[0], s.shape[2])), tx_clipped=info.clipped_samples)

    # -- the halves (see [Note: transmit and receive halves] in hil.radio.base) --------------------------
    # The transmitting node's PhyLink calls transmit(), the receiving node's arm() before it and receive()
    # after; each end counts the sequence numbers itself, one per burst, so the two stay in step (also over
    # a lost frame). transceive() is the three in one process.
    def transmit(self, symbols: np.ndarray, frame_type: int = FrameType.DATA) -> TxInfo:
        """Transmit half: frame ``symbols`` (complex ``[B, n_tx, K]``) and send the burst (``radio.transmit``)."""
        s = self._check(symbols)
        _, burst, info = self._frame(s, frame_type)
        self.radio.transmit(burst)
        return info

    def arm(self, batch_size: int, channel_uses: int) -> None:
        """Receive half: expect the next frame, ``batch_size`` vectors of ``channel_uses`` symbols
        (``radio.arm_receive`` of its burst length); call before the transmitter sends."""
        shape = (int(batch_size), int(channel_uses))
        self.radio.arm_receive(self.burst_samples(*shape))
        self._armed = (self.seq, shape)
        self.seq = (self.seq + 1) & 0xFFFF

    def receive(self) -> RxResult:
        """Receive half: the capture of the armed burst (``radio.receive``), decoded (``tx_clipped`` -1: the
        transmitter's count stays on its node). Raises SyncError as :meth:`transceive`, RadioError when not armed."""
        armed, self._armed = getattr(self, "_armed", None), None
        if armed is None:
            raise RadioError("PhyLink.receive: call arm(batch_size, channel_uses) before the transmitter sends")
        return self._decode(self.radio.receive(), *armed)

    def _check(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols)
        if s.ndim != 3 or s.shape[1] != self.cfg.n_tx:
            raise ValueError(f"symbols: expected shape [B, n_tx={self.cfg.n_tx}, K], got {s.shape}")
        return s

    def _frame(self, s: np.ndarray, frame_type: int) -> tuple[int, np.ndarray, TxInfo]:
        """The burst of the next sequence number (which advances, also if the send fails)."""
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        burst, info = self.transmitter.build(s, seq=seq, frame_type=frame_type)
        self.last_tx = info
        return seq, burst, info

    def _decode(self, cap: np.ndarray, seq: int, shape: tuple[int, int]) -> RxResult:
        try:
            return self.receiver.receive(cap, expect_seq=seq, expect_shape=shape)
        except SyncError:
            log.debug("PHY: frame seq=%d lost", seq)
            raise
