"""TapRadio: a Radio that passes everything to another and keeps the last capture.

Used where a higher layer (``hil.phy.PhyLink``) does the transceive but the caller also wants the
raw IQ: the capture sounder records it as SigMF, the probe plots it.
"""

from __future__ import annotations

import numpy as np

from hil.radio.base import Radio, RadioCaps


class TapRadio(Radio):
    """Wraps ``inner``; :attr:`last_capture` is the complex64 ``[n_rx, m]`` of the last transceive.

    Args:
        inner: the radio that does the work.
        close_inner: whether :meth:`close` closes ``inner`` (False when the caller owns it).
    """

    def __init__(self, inner: Radio, close_inner: bool = True):
        self.inner = inner
        self.close_inner = bool(close_inner)
        self.last_capture: np.ndarray | None = None

    @property
    def caps(self) -> RadioCaps:
        return self.inner.caps

    def configure(self, profile: dict) -> None:
        self.inner.configure(profile)

    def tune(self, **settings) -> bool:
        return self.inner.tune(**settings)

    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        y = self.inner.transceive(tx_burst) if rx_samples is None else self.inner.transceive(tx_burst, rx_samples)
        self.last_capture = np.asarray(y, dtype=np.complex64)
        return y

    def close(self) -> None:
        if self.close_inner:
            self.inner.close()
