"""Fakes for the capture unit tests: small in-process channels with known truth (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

from hil.channel.base import ChannelModel


class GaussMarkovRician(ChannelModel):
    """Flat Rician channel whose scattered part follows h[k+1] = rho h[k] + sqrt(1-rho^2) w per
    ``generate`` call (one call = one burst), plus complex AWGN of power ``n0``, plus an optional CFO."""

    def __init__(self, n_tx, n_rx, rng, rho=0.9, k_db=5.0, n0=1e-3, cfo_hz=0.0, fs=1e6, gain=1.0):
        self.n_in, self.n_out = n_tx, n_rx
        self.rng, self.rho, self.n0, self.cfo_hz, self.fs = rng, rho, n0, cfo_hz, fs
        k = 10 ** (k_db / 10) if k_db is not None else 0.0
        self.los = np.sqrt(k / (k + 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (n_rx, n_tx)))
        self.scat = np.sqrt(1 / (k + 1))
        self.gain = gain
        self.g = self._cn()
        self.t = 0
        self.history = []  # true H per call

    def _cn(self):
        return (self.rng.standard_normal((self.n_out, self.n_in))
                + 1j * self.rng.standard_normal((self.n_out, self.n_in))) / np.sqrt(2)

    def generate(self, n):
        h = self.gain * (self.los + self.scat * self.g)
        self.history.append(h)
        self.g = self.rho * self.g + np.sqrt(1 - self.rho**2) * self._cn()
        w = (self.rng.standard_normal((self.n_out, n)) + 1j * self.rng.standard_normal((self.n_out, n))) * np.sqrt(self.n0 / 2)
        ph = np.exp(2j * np.pi * self.cfo_hz * (self.t + np.arange(n)) / self.fs)
        self.t += n
        return h, w, ph

    def apply(self, x, c):
        h, w, ph = c
        return ((h @ x) * ph + w).astype(np.complex64)


class NoiseOnly(ChannelModel):
    """No signal at all: the receiver sees only noise."""

    def __init__(self, n_tx, n_rx, rng, n0=1e-2):
        self.n_in, self.n_out, self.rng, self.n0 = n_tx, n_rx, rng, n0

    def generate(self, n):
        return (self.rng.standard_normal((self.n_out, n)) + 1j * self.rng.standard_normal((self.n_out, n))) * np.sqrt(self.n0 / 2)

    def apply(self, x, c):
        return c.astype(np.complex64)


def gm_rician_estimates(rng, frames, n_sc, n_rx, n_tx, rho, k_lin):
    """Synthetic channel estimates ``[F, n_sc, n_rx, n_tx]`` from a Gauss-Markov Rician process."""
    los = np.sqrt(k_lin / (k_lin + 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi, (1, n_sc, n_rx, n_tx)))
    s = np.sqrt(1 / (k_lin + 1))

    def w():
        return (rng.standard_normal((n_sc, n_rx, n_tx)) + 1j * rng.standard_normal((n_sc, n_rx, n_tx))) / np.sqrt(2)

    h = np.empty((frames, n_sc, n_rx, n_tx), complex)
    x = w()
    for t in range(frames):
        h[t] = x
        x = rho * x + np.sqrt(1 - rho**2) * w()
    return los + s * h


@pytest.fixture
def gm_channel():
    return GaussMarkovRician


@pytest.fixture
def noise_channel():
    return NoiseOnly


@pytest.fixture
def gm_estimates():
    return gm_rician_estimates
