"""PhyLink: one call sends a batch of symbol vectors through a Radio and returns what arrived."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from hil.errors import RadioError, SyncError
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
    advances after every call, also a failed one. ``transceive_many`` sends a stream of
    independent batches double-buffered (see [Note: double buffering]).

    :attr:`seconds` accumulates the wall time of each phase over all calls: ``build`` (the
    transmitter), ``radio`` (the radio or channel server, until the capture is back) and
    ``receive`` (the receiver).

    [Note: double buffering]
    A radio's halves (``arm_receive``, ``transmit``, ``receive``) let the next burst be on its way
    while this process decodes the previous capture: ``transceive_many`` builds and transmits burst
    ``i + 1`` right after capture ``i`` is back and before decoding it, so the channel server (another
    process) or the air works on burst ``i + 1`` during the decode of burst ``i``. The bursts, their
    order, their sequence numbers and every decoded number are those of calling ``transceive`` on
    each batch in turn (tests/unit/phy/test_phy_fast.py checks it); only independent batches can be
    pipelined: a training step's reverse (gradient) frame needs the forward frame's result, so it
    cannot fly before the forward frame is decoded. Radios whose halves run in one process
    (loopback) transmit synchronously: the same results, without the overlap.
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
        self._armed: tuple[int, tuple[int, int]] | None = None  # (sequence number, (B, K)) of the armed frame
        self.last_tx: TxInfo | None = None
        #: wall time per phase, summed over all calls: "build", "radio", "receive" (seconds)
        self.seconds = {"build": 0.0, "radio": 0.0, "receive": 0.0}

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
        seq, burst, info = self._build(s, frame_type)
        t = time.perf_counter()
        cap = self.radio.transceive(burst)
        self.seconds["radio"] += time.perf_counter() - t
        return self._decode(cap, seq, (s.shape[0], s.shape[2]), info)

    def transceive_many(self, batches, frame_type: int = FrameType.DATA) -> list[RxResult | SyncError]:
        """Send independent batches (each complex ``[B, n_tx, K]``), one burst each, double-buffered.

        Returns, per batch in order, its :class:`RxResult` or the :class:`SyncError` that lost it; the
        results equal those of ``transceive`` called on each batch in turn (see [Note: double buffering]).

        Raises:
            ValueError: a batch has a bad shape or values (checked before anything is sent).
        """
        ss = [self._check(b) for b in batches]
        for s in ss:
            if not np.all(np.isfinite(s)):
                raise ValueError("symbols contain NaN or Inf")
        out: list[RxResult | SyncError] = []
        if not ss:
            return out

        def launch(s):
            seq, burst, info = self._build(s, frame_type)
            t = time.perf_counter()
            self.radio.arm_receive(burst.shape[1])
            self.radio.transmit(burst)
            self.seconds["radio"] += time.perf_counter() - t
            return seq, info

        pending = launch(ss[0])
        for i, s in enumerate(ss):
            t = time.perf_counter()
            cap = self.radio.receive()
            self.seconds["radio"] += time.perf_counter() - t
            seq, info = pending
            if i + 1 < len(ss):
                pending = launch(ss[i + 1])  # on its way while capture i decodes
            try:
                out.append(self._decode(cap, seq, (s.shape[0], s.shape[2]), info))
            except SyncError as e:
                out.append(e)
        return out

    # -- the halves (see [Note: transmit and receive halves] in hil.radio.base) --------------------------
    # The transmitting node's PhyLink calls transmit(), the receiving node's arm() before it and receive()
    # after; each end counts the sequence numbers itself, one per burst, so the two stay in step (also over
    # a lost frame). transceive() is the three in one process.
    def transmit(self, symbols: np.ndarray, frame_type: int = FrameType.DATA) -> TxInfo:
        """Transmit half: frame ``symbols`` (complex ``[B, n_tx, K]``) and send the burst (``radio.transmit``)."""
        s = self._check(symbols)
        _, burst, info = self._build(s, frame_type)
        t = time.perf_counter()
        self.radio.transmit(burst)
        self.seconds["radio"] += time.perf_counter() - t
        return info

    def arm(self, batch_size: int, channel_uses: int) -> None:
        """Receive half: expect the next frame, ``batch_size`` vectors of ``channel_uses`` symbols
        (``radio.arm_receive`` of its burst length); call before the transmitter sends. Arming again before
        that frame arrives re-arms for the same frame (its sequence number), with the new shape."""
        shape = (int(batch_size), int(channel_uses))
        self.radio.arm_receive(self.burst_samples(*shape))
        if self._armed is not None:
            self._armed = (self._armed[0], shape)
            return
        self._armed = (self.seq, shape)
        self.seq = (self.seq + 1) & 0xFFFF

    def receive(self) -> RxResult:
        """Receive half: the capture of the armed burst (``radio.receive``), decoded (``tx_clipped`` -1: the
        transmitter's count stays on its node). Raises SyncError as :meth:`transceive`, RadioError when not armed."""
        armed, self._armed = self._armed, None
        if armed is None:
            raise RadioError("PhyLink.receive: call arm(batch_size, channel_uses) before the transmitter sends")
        t = time.perf_counter()
        cap = self.radio.receive()
        self.seconds["radio"] += time.perf_counter() - t
        return self._decode(cap, *armed)

    def _check(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols)
        if s.ndim != 3 or s.shape[1] != self.cfg.n_tx:
            raise ValueError(f"symbols: expected shape [B, n_tx={self.cfg.n_tx}, K], got {s.shape}")
        return s

    def _build(self, s: np.ndarray, frame_type: int) -> tuple[int, np.ndarray, TxInfo]:
        """The burst of the next sequence number (which advances, also if the send fails)."""
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        t = time.perf_counter()
        burst, info = self.transmitter.build(s, seq=seq, frame_type=frame_type)
        self.seconds["build"] += time.perf_counter() - t
        self.last_tx = info
        return seq, burst, info

    def _decode(self, cap: np.ndarray, seq: int, shape: tuple[int, int], info: TxInfo | None = None) -> RxResult:
        """The capture decoded as frame ``seq`` of ``shape`` = (B, K); with the transmitter's ``info`` (same
        process) its clipped-sample count goes into the result."""
        t = time.perf_counter()
        try:
            res = self.receiver.receive(cap, expect_seq=seq, expect_shape=shape)
        except SyncError:
            log.debug("PHY: frame seq=%d lost", seq)
            raise
        finally:
            self.seconds["receive"] += time.perf_counter() - t
        return res if info is None else dataclasses.replace(res, tx_clipped=info.clipped_samples)
