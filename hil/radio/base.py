"""The Radio protocol that every backend implements.

[Note: sample convention]
Every array of samples that crosses a Radio is ``numpy.complex64`` shaped ``(antennas, samples)``,
also for one antenna, at full scale ``|x| <= 1.0``. Backends convert to and from their native format
(Pluto TX: int16 at a back-off, RX: 12-bit in 16). A backend never returns a list of arrays.

[Note: closing]
``close()`` always stops transmission and is idempotent. Every backend is a context manager whose
``__exit__`` calls ``close()``, also when the body raised.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from hil.errors import RadioError


@dataclass(frozen=True)
class RadioCaps:
    """What a radio can do.

    Attributes:
        n_tx: number of transmit antennas (streams).
        n_rx: number of receive antennas (streams).
        sample_rate_range_hz: (min, max) sample rate in Hz.
        lo_range_hz: (min, max) local-oscillator frequency in Hz.
        max_burst_samples: the longest burst ``transceive`` accepts, per antenna.
    """

    n_tx: int
    n_rx: int
    sample_rate_range_hz: tuple[float, float] = (0.0, float("inf"))
    lo_range_hz: tuple[float, float] = (0.0, float("inf"))
    max_burst_samples: int = 1 << 24


def as_samples(
    x: np.ndarray,
    n_antennas: int | None = None,
    name: str = "samples",
    check_full_scale: bool = True,
) -> np.ndarray:
    """Validate and return ``x`` as complex64 ``(antennas, samples)``.

    A 1-D array is taken as one antenna. Raises ValueError for a wrong antenna count, a non-finite
    value or, with ``check_full_scale`` (the default, for samples to transmit), a magnitude above
    full scale (``|x| > 1``, with 1e-6 tolerance for float rounding). Pass
    ``check_full_scale=False`` for received captures, which may exceed 1.0 in simulation (noise,
    fading gain).
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name}: expected shape (antennas, samples), got {x.shape}")
    if n_antennas is not None and x.shape[0] != n_antennas:
        raise ValueError(
            f"{name}: expected {n_antennas} antenna rows, got {x.shape[0]} (shape {x.shape}); "
            "samples are shaped (antennas, samples)"
        )
    x = x.astype(np.complex64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or Inf")
    if check_full_scale and x.size:
        v = x.view(np.float32) if x.flags.c_contiguous else np.ascontiguousarray(x).view(np.float32)
        # |I|, |Q| <= 1/sqrt(2) implies |x| <= 1: the exact magnitude only when that quick test fails
        if float(np.max(np.abs(v))) > 0.7071:
            peak = float(np.sqrt(np.max(x.real.astype(np.float64) ** 2 + x.imag.astype(np.float64) ** 2)))
            if peak > 1.0 + 1e-6:
                raise ValueError(
                    f"{name}: peak magnitude {peak:.6g} is above full scale 1.0; scale the samples "
                    f"down (e.g. by the PHY back-off) so that max |x| <= 1"
                )
    return x


class Radio(abc.ABC):
    """A radio node: sends and receives complex64 ``(antennas, samples)`` bursts.

    Subclasses: ``LoopbackRadio`` (in process), ``ZmqRadio`` (client of the channel server),
    ``PlutoRadio`` (pyadi-iio).
    """

    @property
    @abc.abstractmethod
    def caps(self) -> RadioCaps:
        """The capabilities of this radio."""

    def configure(self, profile: dict) -> None:  # noqa: B027 - optional for simulated radios
        """Apply a device profile (sample rate, LO, gains, ...). Raises ValueError for a bad value."""

    def tune(self, *, lo_hz: float, sample_rate_hz: float, tx_gain_db: float | None = None,
             rx_gain_db: float | None = None) -> bool:
        """Tune the RF front end: LO (TX and RX), sample rate and, when given, every enabled
        channel's TX and RX gain. Returns whether the settings were applied.

        [Note: tuning a simulated radio]
        A simulated radio (loopback, the ZMQ channel server) has no RF front end: it applies
        nothing and returns False, and the caller records the values as labels only. A hardware
        backend overrides this, validates the values against the board and reads them back.
        """
        return False

    @abc.abstractmethod
    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        """Send one burst and capture what arrives.

        Args:
            tx_burst: complex64 ``(n_tx, n)``, full scale 1.0.
            rx_samples: samples to capture per receive antenna; default: enough to hold the whole
                burst plus the backend's leading and trailing margin.

        Returns:
            complex64 ``(n_rx, m)``: the capture. The burst's start inside it is not given: the
            receiver must synchronise.
        """

    # -- the transmit and receive halves (see [Note: transmit and receive halves]) -------------
    def arm_receive(self, n: int, rx_samples: int | None = None) -> None:
        """Receive half: be ready to capture one burst of ``n`` samples per transmit antenna (``rx_samples``
        as in :meth:`transceive`). Call it before the transmitter sends; :meth:`receive` returns the capture.

        Raises ValueError for ``n < 1``."""
        if int(n) < 1:
            raise ValueError(f"arm_receive: a burst has at least 1 sample, got n={n}")
        self._armed = (int(n), None if rx_samples is None else int(rx_samples))
        self._captured = None

    def transmit(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> None:
        """Transmit half: send one burst (complex64 ``(n_tx, n)``, full scale 1.0); ``rx_samples`` is the capture
        length the receiver armed for (a backend whose transmitter tells the channel needs it).

        This default composes the halves in one process: it needs :meth:`arm_receive` on this same object
        first, runs :meth:`transceive` and keeps the capture for :meth:`receive`. A backend whose two
        halves can live in different processes (:class:`hil.radio.zmq.ZmqRadio`) overrides all three."""
        armed = getattr(self, "_armed", None)
        if armed is None:
            raise RadioError(f"{type(self).__name__}.transmit: call arm_receive(n) on the receiving half first "
                             "(this radio's halves run in one process), or use transceive()")
        self._armed = None
        rx = armed[1] if armed[1] is not None else rx_samples
        self._captured = self.transceive(tx_burst) if rx is None else self.transceive(tx_burst, rx)

    def receive(self) -> np.ndarray:
        """Receive half: the capture of the armed burst, complex64 ``(n_rx, m)`` as :meth:`transceive` returns it
        (the burst's start inside it is not given). Raises RadioError when nothing was armed and sent."""
        y = getattr(self, "_captured", None)
        if y is None:
            raise RadioError(f"{type(self).__name__}.receive: nothing captured; call arm_receive(n), then "
                             "transmit(burst), then receive()")
        self._captured = None
        return y

    def tx(self, samples: np.ndarray) -> None:
        """Stream samples out (non-burst). Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not stream; use transceive()")

    def rx(self, n_samples: int) -> np.ndarray:
        """Stream ``n_samples`` in, complex64 ``(n_rx, n_samples)``. Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not stream; use transceive()")

    def reverse(self) -> "Radio":
        """The radio of the reverse direction over the same channel (see [Note: wiring and reverse links])."""
        raise NotImplementedError(f"{type(self).__name__} has no reverse link")

    @abc.abstractmethod
    def close(self) -> None:
        """Stop transmitting and release resources. Idempotent."""

    def __enter__(self) -> "Radio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# [Note: wiring and reverse links]
# A Radio object is one *directed wiring*: ``transceive`` sends from this radio's transmitter and
# returns the capture at the receiver it is wired to (its own RX through a cable or a simulated
# loopback, or a peer node's RX through the channel server or a second board). ``reverse()`` returns
# the radio of the opposite direction over the same physical channel (transposed, the reciprocity
# link used to send gradients back), or raises NotImplementedError.
#
# [Note: transmit and receive halves]
# An over-the-air link may have its transmitter on one node and its receiver on another. The receive
# half ``arm_receive(n)`` is called first (on the receiving node), then the transmit half
# ``transmit(burst)`` (on the transmitting node), then ``receive()`` (receiving node) returns the capture.
# ``transceive(burst)`` is the three in one process, and every backend keeps its ``transceive``: the
# base class composes the halves from it (they must then be called on one object), and a backend whose
# halves work apart overrides them (ZmqRadio: a radio opened with ``halves="tx"`` only sends, one with
# ``halves="rx"`` only reads its node's streams). The reverse link is the same pair the other way:
# ``reverse()`` of a transmit half receives. ``hil run`` splits the PHY transport along them, one end
# per node ([Note: a link split between two nodes] in hil.ota.transport).
