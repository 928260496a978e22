"""LoopbackRadio: an in-process radio that applies a channel model. No sockets; for unit tests."""

from __future__ import annotations

import numpy as np

from hil.channel.base import ChannelModel
from hil.errors import RadioError
from hil.radio.base import Radio, RadioCaps, as_samples


class LoopbackRadio(Radio):
    """TX -> ``channel`` -> RX in process.

    The burst is padded with ``lead_samples`` zeros before and ``trail_samples`` after, then the whole
    padded stream goes through the channel (so noise fills the margins and the receiver must find
    the burst). With ``reverse_channel`` given, :meth:`reverse` returns the radio of the reverse
    link (for reciprocity): same margins and sample rate, its own burst counter (``bursts`` counts
    the bursts sent in each direction separately). The two directions are one link: closing either
    closes both, and ``reverse().reverse()`` is this radio.

    Args:
        channel: the forward channel, ``n_in`` = transmit antennas, ``n_out`` = receive antennas.
        reverse_channel: the reverse channel (usually the transposed forward channel), optional.
        lead_samples: silent samples before the burst in each capture.
        trail_samples: silent samples after the burst in each capture.
        sample_rate_hz: the (nominal) sample rate reported in :attr:`caps`.
    """

    def __init__(
        self,
        channel: ChannelModel,
        reverse_channel: ChannelModel | None = None,
        lead_samples: int = 64,
        trail_samples: int = 64,
        sample_rate_hz: float = 1e6,
    ):
        if lead_samples < 0 or trail_samples < 0:
            raise ValueError(f"lead/trail samples must be >= 0, got {lead_samples}, {trail_samples}")
        self.channel = channel
        self.reverse_channel = reverse_channel
        self.lead_samples = int(lead_samples)
        self.trail_samples = int(trail_samples)
        self.sample_rate_hz = float(sample_rate_hz)
        self.bursts = 0
        self._closed = False
        self._reverse: LoopbackRadio | None = None

    @property
    def caps(self) -> RadioCaps:
        return RadioCaps(
            n_tx=self.channel.n_in,
            n_rx=self.channel.n_out,
            sample_rate_range_hz=(self.sample_rate_hz, self.sample_rate_hz),
        )

    @property
    def closed(self) -> bool:
        """True after :meth:`close` of this radio or of its reverse."""
        return self._closed

    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        """Send ``tx_burst`` (complex64 ``(n_tx, n)``, ``|x| <= 1``) through the channel.

        Returns complex64 ``(n_rx, m)`` with ``m = lead_samples + n + trail_samples``, or exactly
        ``m = rx_samples`` when given (the burst starts at ``lead_samples``; a longer capture has
        more silence after it, a shorter one cuts the trailing margin). Raises ValueError when
        ``rx_samples < lead_samples + n`` (the burst would not fit) and RadioError when closed.
        """
        if self._closed:
            raise RadioError("LoopbackRadio is closed; create a new one")
        x = as_samples(tx_burst, self.channel.n_in, "tx_burst")
        n = x.shape[1] + self.lead_samples + self.trail_samples
        if rx_samples is not None:
            need = self.lead_samples + x.shape[1]
            if int(rx_samples) < need:
                raise ValueError(
                    f"rx_samples={int(rx_samples)} cannot hold the burst: it needs at least "
                    f"{need} samples (lead {self.lead_samples} + burst {x.shape[1]}); pass "
                    f"rx_samples >= {need} or None (lead + burst + trail = {n})"
                )
            n = int(rx_samples)
        padded = np.zeros((x.shape[0], n), np.complex64)
        padded[:, self.lead_samples : self.lead_samples + x.shape[1]] = x
        self.bursts += 1
        return np.asarray(self.channel(padded), dtype=np.complex64)

    def reverse(self) -> "LoopbackRadio":
        if self._reverse is not None:
            return self._reverse
        if self.reverse_channel is None:
            raise NotImplementedError(
                "this LoopbackRadio has no reverse link: pass reverse_channel= to enable reciprocity"
            )
        self._reverse = LoopbackRadio(
            self.reverse_channel, self.channel, self.lead_samples, self.trail_samples,
            self.sample_rate_hz,
        )
        self._reverse._reverse = self
        self._reverse._closed = self._closed
        return self._reverse

    def close(self) -> None:
        """Close this radio and its reverse (one link). Idempotent."""
        self._closed = True
        if self._reverse is not None:
            self._reverse._closed = True
