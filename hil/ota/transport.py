"""Transports: what carries precoded symbols from the transmitter to the receiver and back.

[Note: transports]
A transport moves a batch of complex symbols ``[B, n_tx, K]`` (B activation vectors, K channel uses)
over the forward link and returns what the receiver sees, ``[B, n_rx, K]``, *not equalised*
(``~= H @ symbols[b] + noise``), together with the receiver's own pilot estimate of ``H``. It also
moves a batch ``[B, n_rx, K]`` back over the reverse link (the transposed channel, for reciprocity).

- :class:`PhyTransport`: the real thing. Each call is one :class:`hil.phy.PhyLink` frame, i.e. one
  ``Radio.transceive`` of one burst through any Radio (loopback, ZMQ channel server, Pluto). The
  receiver synchronises, corrects CFO and estimates the channel from pilots; it is never handed ``H``.
- :class:`IdealTransport`: in process, no PHY: a flat MIMO channel with AWGN, Gauss-Markov memory,
  optional unequal TX/RX chain gains, and a simulated pilot estimate. It is the only transport that
  can run the ``exact`` gradient mode, because it exposes the true channel to autograd.

Power convention: a transport sends what it is given. :class:`hil.ota.link.OTALink` scales every
burst to unit average power per symbol before sending and undoes the scale after receiving, so the
SNR configured on the channel is the SNR of the activations (forward) and of the gradients (reverse).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np

from hil.errors import LinkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reception:
    """What a receiver got from one burst.

    Attributes:
        payload: complex64 ``[B, n_out, K]``: received symbols, not equalised.
        channel_estimate: complex64 ``[n_out, n_in]``: the receiver's pilot estimate of the channel
            of this burst (flat), or None when the transport has none.
        noise_var: estimated noise variance per receive antenna, in the units of ``payload``.
        snr_db: estimated SNR per receive antenna, dB.
    """

    payload: np.ndarray
    channel_estimate: np.ndarray | None
    noise_var: float
    snr_db: float


class Transport(abc.ABC):
    """Forward and reverse links between a transmitter with ``n_tx`` and a receiver with ``n_rx`` antennas."""

    #: "ideal", "loopback", "zmq" or "pluto"
    name: str = "transport"
    n_tx: int
    n_rx: int

    def __init__(self) -> None:
        #: number of bursts sent, forward and reverse together
        self.frames = 0

    @abc.abstractmethod
    def send(self, symbols: np.ndarray) -> Reception:
        """Forward link. ``symbols`` complex64 ``[B, n_tx, K]`` -> payload ``[B, n_rx, K]``."""

    @abc.abstractmethod
    def send_back(self, symbols: np.ndarray) -> Reception:
        """Reverse link (transposed channel). ``symbols`` complex64 ``[B, n_rx, K]`` -> ``[B, n_tx, K]``."""

    def true_channel(self) -> np.ndarray | None:
        """The true forward channel ``[n_rx, n_tx]`` when simulated in process, else None."""
        return None

    def close(self) -> None:
        """Release the radios. Idempotent."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_symbols(symbols: np.ndarray, n_ant: int, name: str) -> np.ndarray:
    x = np.asarray(symbols)
    if not np.iscomplexobj(x) and not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name}: expected complex symbols, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[1] != n_ant:
        raise ValueError(f"{name}: expected symbols shaped [B, {n_ant}, K], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: symbols contain NaN or Inf (diverged training? lower the learning rate)")
    return x.astype(np.complex64, copy=False)


def _gains(n: int, std_db: float, phase: bool, rng: np.random.Generator) -> np.ndarray:
    """Random complex chain gains: amplitude log-normal with ``std_db``, phase uniform if ``phase``."""
    if std_db == 0.0 and not phase:
        return np.ones(n, np.complex64)
    amp = 10.0 ** (rng.normal(0.0, std_db, n) / 20.0)
    ph = rng.uniform(-np.pi, np.pi, n) if phase else np.zeros(n)
    return (amp * np.exp(1j * ph)).astype(np.complex64)


class IdealTransport(Transport):
    """An in-process flat MIMO channel with AWGN, memory and TX/RX chain gains; no PHY.

    The forward channel seen by the receiver is ``R_b H T_a`` and the reverse ``R_a H^T T_b`` where
    ``T``/``R`` are diagonal TX/RX chain gains of nodes a (transmitter) and b (receiver): with unequal
    gains the two are *not* transposes of each other (uncalibrated reciprocity).

    The channel ``H`` (i.i.d. CN(0, 1) entries, or ``channel`` given) evolves once per burst as
    ``H <- rho H + sqrt(1 - rho^2) W`` (first-order Gauss-Markov; rho = 1 is static).

    Args:
        n_tx: transmit antennas of node a.
        n_rx: receive antennas of node b.
        snr_db: SNR per receive antenna relative to the measured received signal power; None: no noise.
        rho: Gauss-Markov correlation per burst, in [0, 1].
        rng: the one numpy Generator.
        channel: a fixed initial channel ``[n_rx, n_tx]`` (e.g. identity); default random.
        chain_gain_std_db: spread of the TX/RX chain amplitudes (0: equal gains, calibrated).
        chain_phase: draw random TX/RX chain phases (uncalibrated hardware has them).
        pilot_symbols: pilot symbols per transmit antenna behind the simulated LS estimate.
    """

    name = "ideal"

    def __init__(
        self,
        n_tx: int,
        n_rx: int,
        snr_db: float | None,
        rng: np.random.Generator,
        rho: float = 1.0,
        channel: np.ndarray | None = None,
        chain_gain_std_db: float = 0.0,
        chain_phase: bool = False,
        pilot_symbols: int = 16,
    ):
        super().__init__()
        if n_tx < 1 or n_rx < 1:
            raise ValueError(f"n_tx and n_rx must be >= 1, got {n_tx}, {n_rx}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {rho}")
        if pilot_symbols < 1:
            raise ValueError(f"pilot_symbols must be >= 1, got {pilot_symbols}")
        self.n_tx, self.n_rx = int(n_tx), int(n_rx)
        self.snr_db = snr_db
        self.rho = float(rho)
        self.rng = rng
        self.pilot_symbols = int(pilot_symbols)
        if channel is None:
            channel = (rng.standard_normal((n_rx, n_tx)) + 1j * rng.standard_normal((n_rx, n_tx))) / np.sqrt(2)
        channel = np.asarray(channel, np.complex64)
        if channel.shape != (n_rx, n_tx):
            raise ValueError(f"channel: expected shape ({n_rx}, {n_tx}), got {channel.shape}")
        self.H = channel
        self.tx_gain_a = _gains(n_tx, chain_gain_std_db, chain_phase, rng)
        self.rx_gain_b = _gains(n_rx, chain_gain_std_db, chain_phase, rng)
        self.tx_gain_b = _gains(n_rx, chain_gain_std_db, chain_phase, rng)
        self.rx_gain_a = _gains(n_tx, chain_gain_std_db, chain_phase, rng)

    def _advance(self) -> None:
        if self.rho < 1.0:
            w = (self.rng.standard_normal(self.H.shape) + 1j * self.rng.standard_normal(self.H.shape)) / np.sqrt(2)
            self.H = (self.rho * self.H + np.sqrt(1.0 - self.rho**2) * w).astype(np.complex64)

    def state_dict(self) -> dict:
        """The channel's state for a checkpoint (plain values and tensors; loads with weights_only)."""
        import torch

        return {"rng": self.rng.bit_generator.state, "H": torch.from_numpy(self.H.copy()), "frames": int(self.frames)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` of a transport built with the same arguments."""
        h = np.asarray(state["H"].numpy() if hasattr(state["H"], "numpy") else state["H"], np.complex64)
        if h.shape != self.H.shape:
            raise ValueError(f"IdealTransport.load_state_dict: channel shape {h.shape}, this link has {self.H.shape}")
        self.rng.bit_generator.state = state["rng"]
        self.H = h.copy()
        self.frames = int(state["frames"])

    def forward_matrix(self) -> np.ndarray:
        """The effective forward channel ``R_b H T_a``, ``[n_rx, n_tx]``."""
        return (self.rx_gain_b[:, None] * self.H * self.tx_gain_a[None, :]).astype(np.complex64)

    def reverse_matrix(self) -> np.ndarray:
        """The effective reverse channel ``R_a H^T T_b``, ``[n_tx, n_rx]``."""
        return (self.rx_gain_a[:, None] * self.H.T * self.tx_gain_b[None, :]).astype(np.complex64)

    def true_channel(self) -> np.ndarray:
        return self.forward_matrix()

    def _through(self, g: np.ndarray, x: np.ndarray) -> Reception:
        y = np.einsum("rt,btk->brk", g, x)
        if self.snr_db is None:
            noise_var = 0.0
        else:
            p = float(np.mean(np.abs(y) ** 2))
            noise_var = p / 10.0 ** (self.snr_db / 10.0)
            shape = y.shape
            y = y + np.sqrt(noise_var / 2) * (self.rng.standard_normal(shape) + 1j * self.rng.standard_normal(shape))
        # LS estimate from `pilot_symbols` orthogonal unit-power pilots per antenna: error variance
        # noise_var / pilot_symbols per entry.
        est_err = np.sqrt(noise_var / self.pilot_symbols / 2) * (
            self.rng.standard_normal(g.shape) + 1j * self.rng.standard_normal(g.shape)
        )
        snr = float("inf") if noise_var == 0 else 10 * np.log10(max(np.mean(np.abs(y) ** 2) / noise_var - 1, 1e-12))
        self.frames += 1
        self._advance()
        return Reception(y.astype(np.complex64), (g + est_err).astype(np.complex64), float(noise_var), snr)

    def send(self, symbols: np.ndarray) -> Reception:
        return self._through(self.forward_matrix(), _check_symbols(symbols, self.n_tx, "IdealTransport.send"))

    def send_back(self, symbols: np.ndarray) -> Reception:
        return self._through(self.reverse_matrix(), _check_symbols(symbols, self.n_rx, "IdealTransport.send_back"))


class PhyTransport(Transport):
    """Symbols over a Radio through the PHY: one :class:`hil.phy.PhyLink` frame per call.

    Args:
        radio: the forward radio (node a's TX wired to node b's RX). Its ``reverse()`` radio carries
            :meth:`send_back`; when it has none, only the ``estimated`` gradient mode is possible.
        name: the transport's name in reports ("loopback", "zmq", "pluto").
        phy_options: extra :class:`hil.phy.PhyConfig` fields (sample_rate_hz, mode, ...).
        retries: frames re-sent after a SyncError before the error propagates.
        track_phase: remove the common phase that changes from burst to burst (see
            [Note: common phase between bursts]).
        phase_smoothing: weight of a new burst in the tracked phase reference, in (0, 1].

    [Note: common phase between bursts]
    Two oscillators that differ by a CFO drift in phase between bursts; the PHY corrects the CFO
    *within* a burst, but each burst's payload and pilot estimate carry a different common phase
    ``e^{j theta}``. A layer ``W = Re(C^H H P)`` is not invariant to that phase, so the receiver
    removes it: ``theta = angle(sum(conj(H_ref) * H_hat))`` against a reference estimate that it
    smooths over bursts (``H_ref <- (1 - a) H_ref + a H_hat e^{-j theta}``), and de-rotates payload
    and estimate by ``theta``. This uses one scalar per burst from the pilots, never ``H`` itself
    for the gradient. Each direction keeps its own reference; the constant phase between the two
    references is part of what :func:`hil.ota.link.calibrate_reciprocity` measures and removes.
    """

    def __init__(
        self,
        radio,
        name: str = "loopback",
        phy_options: dict | None = None,
        retries: int = 2,
        track_phase: bool = True,
        phase_smoothing: float = 0.2,
    ):
        super().__init__()
        if not 0.0 < phase_smoothing <= 1.0:
            raise ValueError(f"phase_smoothing must be in (0, 1], got {phase_smoothing}")
        self.track_phase = bool(track_phase)
        self.phase_smoothing = float(phase_smoothing)
        self._ref: dict[str, np.ndarray] = {}
        from hil.phy import PhyConfig, PhyLink  # the PHY is only needed for this transport

        self.name = name
        self.radio = radio
        caps = radio.caps
        self.n_tx, self.n_rx = int(caps.n_tx), int(caps.n_rx)
        opts = dict(phy_options or {})
        opts.setdefault("mode", "flat")
        self._fwd = PhyLink(radio, PhyConfig(n_tx=self.n_tx, n_rx=self.n_rx, **opts))
        self._rev = None
        try:
            rev_radio = radio.reverse()
        except NotImplementedError:
            rev_radio = None
        self._rev_radio = rev_radio
        if rev_radio is not None:
            try:
                self._rev = PhyLink(rev_radio, PhyConfig(n_tx=self.n_rx, n_rx=self.n_tx, **opts))
            except BaseException:
                # the caller closes the radio it handed in; the reverse radio was opened here
                if rev_radio is not radio:
                    try:
                        rev_radio.close()
                    except Exception:  # noqa: BLE001 - the original error matters more
                        log.exception("closing the reverse radio after a failed PhyLink")
                raise
        self.retries = int(retries)

    def _derotate(self, key: str, payload: np.ndarray, est: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.track_phase or est is None:
            return payload, est
        ref = self._ref.get(key)
        if ref is None:
            self._ref[key] = est.copy()
            return payload, est
        rot = np.exp(-1j * np.angle(np.sum(np.conj(ref) * est))).astype(np.complex64)
        est = est * rot
        a = self.phase_smoothing
        self._ref[key] = ((1 - a) * ref + a * est).astype(np.complex64)
        return payload * rot, est

    def _go(self, link, symbols: np.ndarray) -> Reception:
        from hil.errors import SyncError

        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                res = link.transceive(symbols)
            except SyncError as e:  # a lost frame is re-sent, as a real ARQ would
                last = e
                self.frames += 1
                log.warning("frame lost (%s), re-sending (attempt %d)", e, attempt + 1)
                continue
            self.frames += 1
            est = None if res.channel_estimate is None else np.asarray(res.channel_estimate, np.complex64)
            payload, est = self._derotate("forward" if link is self._fwd else "reverse",
                                          np.asarray(res.payload, np.complex64), est)
            return Reception(payload, est, float(res.noise_var), float(res.snr_db))
        raise LinkError(f"{self.name}: {self.retries + 1} frames in a row were lost; last error: {last}") from last

    def send(self, symbols: np.ndarray) -> Reception:
        return self._go(self._fwd, _check_symbols(symbols, self.n_tx, f"{self.name}.send"))

    def send_back(self, symbols: np.ndarray) -> Reception:
        if self._rev is None:
            raise LinkError(
                f"{self.name}: the radio has no reverse link; use gradient_mode='estimated' or a radio "
                "whose reverse() works (LoopbackRadio with reverse_channel=, ZmqRadio)"
            )
        return self._go(self._rev, _check_symbols(symbols, self.n_rx, f"{self.name}.send_back"))

    def close(self) -> None:
        try:
            if self._rev_radio is not None and self._rev_radio is not self.radio:
                self._rev_radio.close()
        finally:
            self.radio.close()
