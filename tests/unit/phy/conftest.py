"""Helpers for the PHY tests: a tiny in-test channel and a frame builder."""

from __future__ import annotations

import numpy as np
import pytest

from hil.channel.base import ChannelModel


class TinyChannel(ChannelModel):
    """y = H x[n - d] exp(2j pi f n) + noise; integer delay d. Fast, exact, for unit tests."""

    def __init__(self, h: np.ndarray, rng: np.random.Generator, noise_power: float = 0.0,
                 cfo: float = 0.0, delay: int = 0):
        self.h = np.asarray(h, np.complex64)
        self.n_out, self.n_in = self.h.shape
        self.rng, self.noise_power, self.cfo, self.delay = rng, noise_power, cfo, delay

    def generate(self, n_samples: int):
        w = (self.rng.standard_normal((self.n_out, n_samples)) + 1j * self.rng.standard_normal((self.n_out, n_samples)))
        return (w * np.sqrt(self.noise_power / 2)).astype(np.complex64)

    def apply(self, x, coeffs):
        n = x.shape[1]
        xd = np.zeros_like(x)
        xd[:, self.delay:] = x[:, : n - self.delay]
        y = self.h @ xd * np.exp(2j * np.pi * self.cfo * np.arange(n))[None]
        return (y + coeffs).astype(np.complex64)


def rayleigh(rng: np.random.Generator, n_rx: int, n_tx: int) -> np.ndarray:
    return ((rng.standard_normal((n_rx, n_tx)) + 1j * rng.standard_normal((n_rx, n_tx))) / np.sqrt(2)).astype(np.complex64)


def gauss_symbols(rng: np.random.Generator, b: int, n_tx: int, k: int) -> np.ndarray:
    return ((rng.standard_normal((b, n_tx, k)) + 1j * rng.standard_normal((b, n_tx, k))) / np.sqrt(2)).astype(np.complex64)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
