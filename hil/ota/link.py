"""OTALink: the autograd bridge between a transmitter and a receiver over a real (or simulated) channel.

[Note: the over-the-air boundary]
As at a pipeline stage boundary (torch.distributed.pipelining), the forward pass sends the
transmitter's tensor away and the receiver gets a *new* tensor with no autograd history; the backward
pass delivers the receiver's gradient ``g_y = dL/dy`` (PyTorch's convention for complex tensors:
``dL/dRe y + j dL/dIm y``) back to the transmitter as ``g_s = dL/ds``. For ``y = H s + n`` the exact
answer is ``g_s = H^H g_y``. The transmitter does not know ``H``; the modes differ in how ``g_s`` is got:

- ``reciprocity`` (arXiv 2210.04742): the receiver transmits ``conj(g_y)`` over the reverse link, whose
  channel is ``H^T``; the transmitter receives ``r = H^T conj(g_y) + n'`` and takes
  ``conj(r) = H^H g_y + conj(n')``. A second real transmission, no channel knowledge anywhere.
  The receiver's ``g_y`` is the output gradient "precoded by the combiner" (``g_y,k = C_k g_z``).
  With unequal TX/RX chain gains the reverse channel is ``R_a H^T T_b``, not ``(R_b H T_a)^T``; a
  :class:`ReciprocityCalibration` (see [Note: reciprocity calibration]) restores it.
- ``estimated``: ``g_s = H_hat^H g_y`` with ``H_hat`` the pilot estimate from the same burst
  (physics-aware training; one transmission per step).
- ``exact``: autograd through the in-process channel (``IdealTransport`` only): the upper bound.

Every burst, forward and reverse, is scaled to unit average symbol power before it is sent and the
scale is undone after receiving ("backward-pass scaling"). Over a PHY the frame does it: the
transmitter scales the payload to its transmit power and writes the scale into the frame's header
(a payload of zeros says so there), the receiver undoes it (``Transport.carries_scale``); so the
receiving end of a split link needs nothing from the transmitting end but the burst. On the
``ideal`` transport the link scales the symbols itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from hil.errors import LinkError
from hil.ota.transport import Reception, Transport

log = logging.getLogger(__name__)

GRADIENT_MODES = ("reciprocity", "estimated", "exact")


@dataclass(frozen=True)
class ReciprocityCalibration:
    """Diagonal TX/RX calibration weights that make the reverse link the transpose of the forward one.

    [Note: reciprocity calibration]
    With chain gains, ``F = R_b H T_a`` (forward, ``[n_rx, n_tx]``) and ``Rv = R_a H^T T_b``
    (reverse). Then ``F = diag(cb) Rv^T diag(ca)`` with ``cb = R_b / T_b`` and ``ca = T_a / R_a``:
    ``F[i, j] / Rv[j, i] = cb[i] ca[j]`` is a rank-one matrix, known from one pilot estimate in each
    direction (exchanged once, like the relative calibration of TDD massive-MIMO arrays). Only the
    products matter, so the split of the common scale between ``cb`` and ``ca`` is irrelevant.
    The receiver (node b) multiplies what it sends back by ``cb``; the transmitter (node a) multiplies
    the echo by ``ca``: ``diag(ca) Rv diag(cb) = F^T``.

    Attributes:
        cb: complex64 ``[n_rx]``: node b's transmit weights for the reverse link.
        ca: complex64 ``[n_tx]``: node a's receive weights for the reverse link.
        residual: relative misfit of the rank-one model (0 for noiseless estimates).
    """

    cb: np.ndarray
    ca: np.ndarray
    residual: float

    @staticmethod
    def identity(n_tx: int, n_rx: int) -> "ReciprocityCalibration":
        return ReciprocityCalibration(np.ones(n_rx, np.complex64), np.ones(n_tx, np.complex64), 0.0)

    @staticmethod
    def from_estimates(forward: np.ndarray, reverse: np.ndarray) -> "ReciprocityCalibration":
        """Fit from channel estimates, ``forward [n_rx, n_tx]`` and ``reverse [n_tx, n_rx]``.

        Several estimates may be stacked on a leading axis; they are averaged in the ratio domain
        weighted by power (least squares of ``F - M * Rv^T``).
        """
        f = np.asarray(forward, np.complex128)
        r = np.asarray(reverse, np.complex128)
        if f.ndim == 2:
            f, r = f[None], r[None]
        if f.ndim != 3 or r.shape != (f.shape[0], f.shape[2], f.shape[1]):
            raise ValueError(
                f"from_estimates: expected forward [.., n_rx, n_tx] and reverse [.., n_tx, n_rx], "
                f"got {np.shape(forward)} and {np.shape(reverse)}"
            )
        rt = np.transpose(r, (0, 2, 1))  # [S, n_rx, n_tx]
        m = np.sum(f * np.conj(rt), axis=0) / np.maximum(np.sum(np.abs(rt) ** 2, axis=0), 1e-30)
        u, s, vh = np.linalg.svd(m)
        cb = u[:, 0] * np.sqrt(s[0])
        ca = vh[0, :] * np.sqrt(s[0])
        fit = np.outer(cb, ca)
        residual = float(np.linalg.norm(m - fit) / max(np.linalg.norm(m), 1e-30))
        return ReciprocityCalibration(cb.astype(np.complex64), ca.astype(np.complex64), residual)


#: channel uses of each reciprocity calibration pilot (:func:`calibrate_reciprocity`)
PILOT_LEN = 64


def calibration_pilots(rng: np.random.Generator, n_tx: int, n_rx: int,
                       pilot_len: int = PILOT_LEN) -> tuple[np.ndarray, np.ndarray]:
    """The payloads of one calibration burst pair: random-phase pilots ``[1, n_tx, L]`` (forward) and
    ``[1, n_rx, L]`` (reverse), drawn from ``rng`` in that order."""
    a = np.exp(2j * np.pi * rng.random((1, n_tx, pilot_len))).astype(np.complex64)
    b = np.exp(2j * np.pi * rng.random((1, n_rx, pilot_len))).astype(np.complex64)
    return a, b


def calibrate_reciprocity(
    transport: Transport, rng: np.random.Generator, n_bursts: int = 4, pilot_len: int = PILOT_LEN
) -> ReciprocityCalibration:
    """Measure the forward and reverse channels with a few pilot bursts and fit the calibration.

    Each burst is sent once in each direction; the pilot estimates the PHY returns (the receiver's
    own, never the true channel) go into :meth:`ReciprocityCalibration.from_estimates`. Costs
    ``2 * n_bursts`` frames. ``rng`` (the run's one Generator) draws the random-phase pilot payloads.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if n_bursts < 1:
        raise ValueError(f"n_bursts must be >= 1, got {n_bursts}")
    fw, rv = [], []
    for _ in range(n_bursts):
        a, b = calibration_pilots(rng, transport.n_tx, transport.n_rx, pilot_len)
        ef = transport.send(a).channel_estimate
        er = transport.send_back(b).channel_estimate
        if ef is None or er is None:
            raise LinkError(f"{transport.name}: no channel estimate, cannot calibrate reciprocity")
        fw.append(ef)
        rv.append(er)
    cal = ReciprocityCalibration.from_estimates(np.stack(fw), np.stack(rv))
    log.info("reciprocity calibration: residual %.3g, |cb|=%s |ca|=%s", cal.residual, np.abs(cal.cb), np.abs(cal.ca))
    return cal


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.abs(x) ** 2)))


def _to_air(transport: Transport, s: np.ndarray) -> tuple[np.ndarray, float]:
    """What goes to ``transport`` for symbols ``s`` and the scale that undoes it on reception: ``s`` itself
    and 1.0 when the transport carries the scale (a PHY frame), else ``s`` at unit average power."""
    if transport.carries_scale:
        return np.asarray(s, np.complex64), 1.0
    return _unit_power(s)


def _unit_power(s: np.ndarray) -> tuple[np.ndarray, float]:
    """``s`` scaled to unit average power, and the scale (1.0 for zero symbols)."""
    scale = _rms(s)
    if scale == 0.0:
        scale = 1.0
    return (s / scale).astype(np.complex64), scale


class OTALink:
    """The channel between a precoder and a combiner, as one differentiable operation.

    ``link(s)`` with ``s`` complex64 ``[B, n_tx, K]`` (requires grad) returns ``y`` complex64
    ``[B, n_rx, K] ~= H s + n``; its backward computes ``dL/ds`` by ``gradient_mode`` (see
    [Note: the over-the-air boundary]).

    Args:
        transport: what carries the symbols (:class:`IdealTransport`, :class:`PhyTransport`).
        gradient_mode: "reciprocity", "estimated" or "exact".
        calibration: reciprocity calibration; None means uncalibrated (identity weights).
        hold_channel: the receiver maps every burst onto a fixed reference channel with its own pilot
            estimate (see [Note: holding the channel]); for channels that drift during training.

    [Note: holding the channel]
    The layer's weight ``W = Re(sum_k C_k^H H P_k)`` follows the channel: on a drifting channel a
    trained (P, C) becomes a different layer (a common phase of pi gives exactly ``-W``), faster than
    training can follow once the learning rate has decayed. With ``hold_channel`` the receiver, which
    estimates ``H_hat`` from the pilots of every burst anyway, applies
    ``M = H_ref (H_hat^H H_hat + lam I)^-1 H_hat^H`` (regularised by the burst's noise variance) to the
    received symbols, ``H_ref`` being its first estimate: the layer sees ``M H ~= H_ref``, a static
    channel. In backward the receiver passes ``M^H g_y'`` (the gradient through its own map) to the
    gradient mode, so a reciprocity echo gives ``H^H M^H g_y' ~= H_ref^H g_y'``: the transmitter still
    never sees a channel. ``M`` is a per-burst ``n_rx x n_rx`` matrix at the receiver; it costs noise
    enhancement in deep fades and needs ``n_rx >= n_tx`` to hold every direction.

    What :meth:`transmit` returns is in the frame of reference of the payload the layer sees: with
    ``hold_channel`` the payload is ``M y``, the channel estimate ``M H_hat``, the noise variance
    ``noise_var * trace(M M^H) / n_rx`` and the SNR the one of the mapped payload.
    :attr:`last` keeps the transport's reception before the map (``y``, ``H_hat``).

    Attributes:
        last: the transport's :class:`Reception` of the last forward burst, before any hold map
            (the PHY's channel estimate and SNR).
        last_echo: the :class:`Reception` of the last reverse burst.
    """

    def __init__(
        self,
        transport: Transport,
        gradient_mode: str = "reciprocity",
        calibration: ReciprocityCalibration | None = None,
        hold_channel: bool = False,
    ):
        if gradient_mode not in GRADIENT_MODES:
            raise ValueError(f"gradient_mode must be one of {GRADIENT_MODES}, got {gradient_mode!r}")
        if gradient_mode == "exact" and transport.true_channel() is None:
            raise ValueError(
                f"gradient_mode='exact' needs a channel simulated in process (IdealTransport); "
                f"transport {transport.name!r} does not expose it: use 'reciprocity' or 'estimated'"
            )
        self.transport = transport
        self.gradient_mode = gradient_mode
        self.calibration = calibration
        self.last: Reception | None = None
        self.last_echo: Reception | None = None
        self.hold_channel = bool(hold_channel)
        #: the receiver's reference channel ``[n_rx, n_tx]`` when ``hold_channel`` (its first pilot estimate)
        self.reference: np.ndarray | None = None
        self._map: np.ndarray | None = None  # the receiver's M of the last forward burst

    @property
    def n_tx(self) -> int:
        return self.transport.n_tx

    @property
    def n_rx(self) -> int:
        return self.transport.n_rx

    # -- forward ---------------------------------------------------------------------------------
    def transmit(self, s: np.ndarray) -> Reception:
        """Send ``s [B, n_tx, K]`` at unit average power; return the reception rescaled to ``s``'s units."""
        x, scale = _to_air(self.transport, s)
        return self._received(self.transport.send(x), scale)

    def transmit_many(self, batches) -> list[Reception]:
        """:meth:`transmit` of independent batches through ``transport.send_many`` (double-buffered
        over a PHY, see [Note: double buffering] in hil/phy/link.py); the same receptions, in order."""
        sent = [_to_air(self.transport, s) for s in batches]
        recs = self.transport.send_many([x for x, _ in sent])
        return [self._received(rec, scale) for rec, (_, scale) in zip(recs, sent)]

    # the two ends of the forward burst on different nodes (see [Note: a link split between two nodes] in hil.ota.transport)
    def send_forward(self, s: np.ndarray) -> None:
        """Transmitting node: send ``s [B, n_tx, K]`` (the transport's transmit half; the frame carries its scale,
        so the receiving node needs nothing from this one but the burst)."""
        self._check_split()
        self.transport.transmit(np.asarray(s, np.complex64))

    def receive_forward(self) -> Reception:
        """Receiving node: the armed forward burst (the transport's receive half), as :meth:`transmit` returns it."""
        self._check_split()
        return self._received(self.transport.receive(), 1.0)

    def _check_split(self) -> None:
        if not self.transport.carries_scale:
            raise LinkError(f"{self.transport.name}: a link split between two nodes needs frames that carry their "
                            "scale (a PHY with power_norm 'average' or 'peak')")

    def _received(self, rec: Reception, scale: float) -> Reception:
        """The receiver's side of :meth:`transmit`: hold map, units of the sent symbols."""
        self.last = rec
        payload = rec.payload
        self._map = None
        if self.hold_channel:
            self._map = self._hold_map(rec)
            payload = np.einsum("ro,bok->brk", self._map, payload)
        est, noise_var, snr_db = rec.channel_estimate, rec.noise_var, rec.snr_db
        if self._map is not None:  # everything in the frame of reference of the mapped payload M y
            m = self._map.astype(np.complex128)
            est = (m @ np.asarray(est, np.complex128)).astype(np.complex64)
            noise_var = float(noise_var) * float(np.real(np.trace(m @ m.conj().T))) / m.shape[0]
            p_sig = float(np.mean(np.abs(est) ** 2)) * est.shape[1]  # unit-power symbols per tx antenna
            snr_db = float("inf") if noise_var <= 0 else float(10 * np.log10(max(p_sig / noise_var, 1e-12)))
        return Reception(
            (payload * scale).astype(np.complex64),
            est,
            noise_var * scale**2,
            snr_db,
        )

    def _hold_map(self, rec: Reception) -> np.ndarray:
        """The receiver's ``M = H_ref (H_hat^H H_hat + lam I)^-1 H_hat^H`` (see [Note: holding the channel])."""
        est = rec.channel_estimate
        if est is None:
            raise LinkError(f"{self.transport.name}: hold_channel needs the receiver's pilot estimate; the burst has none")
        est = np.asarray(est, np.complex128)
        if self.reference is None:
            self.reference = est.astype(np.complex64)
            log.info("hold_channel: reference channel taken from this burst's pilots, |H_ref| = %.3g", np.linalg.norm(est))
        lam = max(float(rec.noise_var), 1e-6 * float(np.mean(np.abs(est) ** 2)))
        gram = est.conj().T @ est + lam * np.eye(est.shape[1])
        m = self.reference.astype(np.complex128) @ np.linalg.solve(gram, est.conj().T)
        return m.astype(np.complex64)

    # -- backward ------------------------------------------------------------------------------
    def echo_gradient(self, g_y: np.ndarray) -> np.ndarray:
        """Reciprocity: send ``conj(g_y)`` back over the reverse link; return ``~= H^H g_y`` ``[B, n_tx, K]``."""
        out = self._echo_out(g_y)
        if out is None:
            return np.zeros((g_y.shape[0], self.n_tx, g_y.shape[2]), np.complex64)
        x, scale = out
        return self._echo_in(self.transport.send_back(x), scale)

    # the two ends of the echo on different nodes (see [Note: a link split between two nodes] in hil.ota.transport)
    def send_echo(self, g_y: np.ndarray) -> None:
        """Receiving node: send ``conj(g_y)`` over the reverse link (the transport's transmit half). A zero
        ``g_y`` is sent too (a frame whose header says its payload is zero): the transmitting node waits for
        the burst and learns everything from it."""
        self._check_split()
        out = self._echo_out(g_y)
        self.transport.transmit(np.zeros(g_y.shape, np.complex64) if out is None else out[0], back=True)

    def receive_echo(self) -> np.ndarray:
        """Transmitting node: ``~= H^H g_y`` ``[B, n_tx, K]`` from the armed echo."""
        self._check_split()
        return self._echo_in(self.transport.receive(back=True), 1.0)

    def _echo_out(self, g_y: np.ndarray) -> tuple[np.ndarray, float] | None:
        """What the receiver sends back for ``g_y`` (calibrated; at unit power unless the transport carries
        the scale) and the scale that undoes it; None for zero."""
        scale = _rms(g_y)
        if scale == 0.0:
            return None
        cal = self.calibration
        if self.transport.carries_scale:
            x = np.conj(g_y) if cal is None else cal.cb[None, :, None] * np.conj(g_y)
            return x.astype(np.complex64), 1.0
        x = np.conj(g_y) / scale
        if cal is not None:
            x = cal.cb[None, :, None] * x
            # keep unit power after the calibration weights so the SNR stays that of the gradient
            p = _rms(x)
            x = x / p
            scale = scale * p
        return x.astype(np.complex64), scale

    def _echo_in(self, rec: Reception, scale: float) -> np.ndarray:
        self.last_echo = rec
        r = rec.payload
        if self.calibration is not None:
            r = self.calibration.ca[None, :, None] * r
        return (np.conj(r) * scale).astype(np.complex64)

    def receiver_gradient(self, g_y: np.ndarray, estimate: np.ndarray | None, m: np.ndarray | None) -> np.ndarray:
        """The receiver's part of the backward pass for ``g_y = dL/dy'`` of the payload the layer saw: through
        its own hold map ``m`` (``dL/dy = M^H dL/dy'``), then ``estimated``: ``dL/ds = H_hat^H dL/dy`` (returned);
        ``reciprocity``: ``dL/dy`` itself (what :meth:`echo_gradient` or :meth:`send_echo` sends back)."""
        g = np.asarray(g_y).astype(np.complex64)
        if m is not None:  # the receiver's own map y' = M y: dL/dy = M^H dL/dy'
            g = np.einsum("ro,brk->bok", np.conj(m), g).astype(np.complex64)
        if self.gradient_mode == "reciprocity":
            return g
        if estimate is None:
            raise LinkError(f"{self.transport.name}: no channel estimate in the burst; use gradient_mode='reciprocity'")
        return np.einsum("rt,brk->btk", np.conj(estimate), g).astype(np.complex64)

    def check_symbols(self, s: torch.Tensor) -> None:
        """ValueError unless ``s`` is complex ``[B, n_tx, K]``."""
        if not torch.is_complex(s) or s.dim() != 3 or s.shape[1] != self.n_tx:
            raise ValueError(f"OTALink: expected complex symbols [B, {self.n_tx}, K], got {tuple(s.shape)} {s.dtype}")

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        self.check_symbols(s)
        if self.gradient_mode == "exact":
            return _exact(self, s)
        return _OverTheAir.apply(s, self)


def watch_echo_cosine(link: OTALink, transport, sink) -> bool:
    """Call ``sink(cos)`` after every reciprocity echo with the cosine similarity between the echoed
    gradient and the exact ``H^H g`` (``H`` the true channel of the forward burst, ``g`` what the
    receiver sent back). Only where the true channel is known (``transport.true_channel()`` not None,
    the in-process ``ideal`` transport) and in ``reciprocity`` mode; returns whether it watches.
    Wraps ``transport.send`` and ``link.echo_gradient`` of these objects.
    """
    if link.gradient_mode != "reciprocity" or transport.true_channel() is None:
        return False
    echo, send = link.echo_gradient, transport.send
    h_fwd: dict = {}

    def send_logged(x):
        h_fwd["h"] = transport.true_channel().copy()
        return send(x)

    def echo_logged(g):
        r = echo(g)
        ex = np.einsum("rt,brk->btk", np.conj(h_fwd["h"]), g)
        sink(float(np.vdot(ex.ravel(), r.ravel()).real / (np.linalg.norm(ex) * np.linalg.norm(r) + 1e-30)))
        return r

    transport.send, link.echo_gradient = send_logged, echo_logged
    return True


def _exact(link: OTALink, s: torch.Tensor) -> torch.Tensor:
    """Autograd through the in-process channel: the received signal is ``H s + (y - H s)`` with the
    noise part constant, so autograd sees exactly ``dy/ds = H`` of this burst."""
    h = torch.from_numpy(link.transport.true_channel())  # channel of this burst, before it advances
    rec = link.transmit(s.detach().cpu().numpy())
    y = torch.from_numpy(rec.payload)
    if link._map is not None:
        h = torch.from_numpy(link._map) @ h
    hs = torch.einsum("rt,btk->brk", h, s)
    return hs + (y - hs.detach())


class _OverTheAir(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, link: OTALink) -> torch.Tensor:  # type: ignore[override]
        rec = link.transmit(s.detach().cpu().numpy())
        ctx.link = link
        ctx.estimate = link.last.channel_estimate  # the PHY's own estimate of H (before the hold map M)
        ctx.map = link._map
        return torch.from_numpy(rec.payload)

    @staticmethod
    def backward(ctx, g_y: torch.Tensor):  # type: ignore[override]
        link: OTALink = ctx.link
        g = link.receiver_gradient(g_y.detach().cpu().numpy(), ctx.estimate, ctx.map)
        if link.gradient_mode == "reciprocity":
            g = link.echo_gradient(g)
        return torch.from_numpy(g), None
