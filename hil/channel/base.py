"""The channel-model contract: a generate/apply pair.

[Note: generate/apply]
A channel model is stateful in time: ``generate(n_samples)`` draws the coefficients for the next
``n_samples`` samples and advances the model's clock (so memory channels evolve across calls), and
``apply(x, coeffs)`` applies them to ``x``. ``model(x)`` does both. The protocol is: generate, then
apply once, to the next ``n_samples`` of the stream, calls in stream order. ``apply`` never writes
into ``coeffs`` (the caller's objects stay valid; a stage that derives a value from the input, such
as the signal power an SNR refers to, keeps it local or in a copy), and its only state is the
stage's memory of past *input*: the input history of stages with memory (FIR lags of TDL and
reciprocal links, interpolators of fractional delay and sampling clock offset), and for AWGN the
power of the latest non-silent input (for silent calls) and the latest ``N0`` (for ``state()``).
Applying the same coefficients twice, or out of order, therefore mixes the histories of the two
inputs; memoryless stages (flat fading, CFO, phase noise, IQ imbalance, ...) are pure functions of
``(x, coeffs)``.
Randomness comes from one ``numpy.random.Generator`` passed in at construction (seeded, never global).
Samples are complex64 ``(antennas, samples)``.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import numpy as np


class ChannelModel(abc.ABC):
    """A channel or impairment from ``n_in`` to ``n_out`` antennas."""

    #: antennas at the input (transmitter side)
    n_in: int
    #: antennas at the output (receiver side)
    n_out: int

    @abc.abstractmethod
    def generate(self, n_samples: int) -> Any:
        """Draw the coefficients for the next ``n_samples`` samples and advance the clock."""

    @abc.abstractmethod
    def apply(self, x: np.ndarray, coeffs: Any) -> np.ndarray:
        """Apply coefficients from :meth:`generate` to ``x``: complex64 ``[n_in, n] -> [n_out, n]``."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.complex64)
        if x.ndim != 2 or x.shape[0] != self.n_in:
            raise ValueError(
                f"{type(self).__name__}: expected input shaped ({self.n_in}, samples), got {x.shape}"
            )
        return self.apply(x, self.generate(x.shape[1]))

    def state(self) -> dict:
        """The true channel state, JSON-serialisable, for tests and metadata. Default: empty."""
        return {}


class Cascade(ChannelModel):
    """Models applied one after the other; each stage's ``n_in`` must equal the previous ``n_out``."""

    def __init__(self, stages: Sequence[ChannelModel]):
        if not stages:
            raise ValueError("Cascade needs at least one stage")
        for a, b in zip(stages, stages[1:]):
            if a.n_out != b.n_in:
                raise ValueError(
                    f"Cascade: {type(a).__name__} outputs {a.n_out} antennas but "
                    f"{type(b).__name__} expects {b.n_in}"
                )
        self.stages = list(stages)
        self.n_in = stages[0].n_in
        self.n_out = stages[-1].n_out

    def generate(self, n_samples: int) -> list:
        return [s.generate(n_samples) for s in self.stages]

    def apply(self, x: np.ndarray, coeffs: list) -> np.ndarray:
        for s, c in zip(self.stages, coeffs):
            x = s.apply(x, c)
        return x

    def state(self) -> dict:
        return {"stages": [{"model": type(s).__name__, **s.state()} for s in self.stages]}
