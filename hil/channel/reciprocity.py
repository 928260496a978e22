"""Reciprocal TDD links: the reverse link uses the transpose of the forward channel.

[Note: reciprocal link]
One fading model (``FlatFading`` or ``TDL``, ``n_a`` TX -> ``n_b`` RX) is shared by both directions.
Each ``generate(n)`` of either direction draws the next ``n`` samples of the *same* process (time
runs on during both slots of a TDD exchange, as over the air), so with a static channel the reverse
link is exactly the transpose of the forward one, and with a time-varying channel it is the
transpose of the channel *at the time of the reverse transmission*. With complex TX/RX chain
gains per antenna (an uncalibrated TDD pair)::

    H_AB = diag(r_B) H diag(t_A)        (forward, A -> B)
    H_BA = diag(r_A) H^T diag(t_B)      (reverse, B -> A)

(for a TDL, per lag). Each direction keeps its own input history. Impairment stages per direction
(noise, CFO, ...) can follow as ``forward_post`` / ``reverse_post``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hil.channel.awgn import Chain
from hil.channel.base import ChannelModel
from hil.channel.fading import FirCoeffs, FirStage


def _gain(v, n: int, name: str) -> np.ndarray | None:
    if v is None:
        return None
    g = np.asarray(v, dtype=np.complex128).reshape(-1)
    if g.size == 1:
        g = np.full(n, g[0])
    if g.size != n:
        raise ValueError(f"{name} needs {n} complex gains (one per antenna), got {g.size}")
    return g.astype(np.complex64)


class _Direction(FirStage):
    def __init__(self, link: "ReciprocalLink", reverse: bool):
        self.link = link
        self.reverse = reverse
        self.n_in, self.n_out = (link.n_b, link.n_a) if reverse else (link.n_a, link.n_b)
        self._hist: np.ndarray | None = None
        self._last: FirCoeffs | None = None

    def mean_power_gain(self) -> np.ndarray:
        l = self.link
        rx, tx = (l.r_a, l.t_b) if self.reverse else (l.r_b, l.t_a)
        g = np.ones((self.n_out, self.n_in))
        if rx is not None:
            g = g * (np.abs(rx) ** 2)[:, None]
        if tx is not None:
            g = g * (np.abs(tx) ** 2)[None, :]
        return g

    def generate(self, n_samples: int) -> FirCoeffs:
        c = self.link.effective(self.link.model.generate(n_samples), self.reverse)
        self._last = c
        return c

    def state(self) -> dict:
        """The effective channel of this direction for the latest segment (``h`` [lag, n_out, n_in])."""
        if self._last is None:
            return {"direction": "reverse" if self.reverse else "forward"}
        m = self._last.mats[-1]
        return {
            "direction": "reverse" if self.reverse else "forward",
            "lags": list(self._last.lags),
            "h_real": m.real.tolist(),
            "h_imag": m.imag.tolist(),
        }


class ReciprocalLink:
    """A TDD link between node A (``n_a`` antennas) and node B (``n_b``) sharing one channel.

    Args:
        model: the shared fading model, ``n_in = n_a``, ``n_out = n_b`` (FlatFading or TDL: any
            model whose ``generate`` returns :class:`FirCoeffs`).
        t_a, r_a: TX and RX chain gains of node A (complex, one per antenna, or None for 1).
        t_b, r_b: same for node B.
        forward_post, reverse_post: stages applied after the channel in each direction
            (e.g. AWGN, CFO), each ``n_b -> n_b`` resp. ``n_a -> n_a``.

    Attributes:
        forward: the A -> B ChannelModel; reverse: the B -> A ChannelModel (see
        [Note: reciprocal link]). ``LoopbackRadio(link.forward, link.reverse)`` works.
    """

    def __init__(
        self,
        model: ChannelModel,
        t_a=None,
        r_a=None,
        t_b=None,
        r_b=None,
        forward_post: Sequence[ChannelModel] = (),
        reverse_post: Sequence[ChannelModel] = (),
    ):
        self.model = model
        self.n_a, self.n_b = model.n_in, model.n_out
        self.t_a = _gain(t_a, self.n_a, "t_a")
        self.r_a = _gain(r_a, self.n_a, "r_a")
        self.t_b = _gain(t_b, self.n_b, "t_b")
        self.r_b = _gain(r_b, self.n_b, "r_b")
        self.forward_channel = _Direction(self, reverse=False)
        self.reverse_channel = _Direction(self, reverse=True)
        self.forward: ChannelModel = (
            Chain([self.forward_channel, *forward_post]) if forward_post else self.forward_channel
        )
        self.reverse: ChannelModel = (
            Chain([self.reverse_channel, *reverse_post]) if reverse_post else self.reverse_channel
        )

    def effective(self, coeffs: FirCoeffs, reverse: bool = False) -> FirCoeffs:
        """The coefficients of one direction from the shared model's: ``diag(r_B) H diag(t_A)``
        (forward) or ``diag(r_A) H^T diag(t_B)`` (``reverse``), per segment and lag."""
        if reverse:
            return coeffs.transposed().scaled(self.r_a, self.t_b)
        return coeffs.scaled(self.r_b, self.t_a)

    def state(self) -> dict:
        """The shared channel's state plus the chain gains."""

        def c(v):
            return None if v is None else {"real": v.real.tolist(), "imag": v.imag.tolist()}

        return {
            "channel": {"model": type(self.model).__name__, **self.model.state()},
            "t_a": c(self.t_a), "r_a": c(self.r_a), "t_b": c(self.t_b), "r_b": c(self.r_b),
        }
