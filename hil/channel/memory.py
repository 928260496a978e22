"""Time behaviour of fading coefficients: static, block, Gauss-Markov, continuous Doppler.

[Note: segment grid]
Every fading process in this package is piecewise constant on a *global* grid of segments of
``S`` samples (segment ``k`` covers model-clock samples ``[k S, (k + 1) S)``). The grid is tied to
the model clock, not to call boundaries, so the same seed gives the same channel however the
stream is cut into calls. ``S`` is:

- static: one segment forever (``S = None``);
- block fading and Gauss-Markov: ``S = block_samples`` (the block length);
- continuous Doppler (Jakes / sum of sinusoids): a hold length chosen so the Doppler phase moves at
  most ``0.03`` rad per segment (``S = 2^floor(log2(0.03 f_s / (2 pi f_d)))``, 1..4096 samples), so
  the hold error power is below ``0.03^2 / 12`` (about -41 dB) of the channel power. The
  sum of sinusoids is evaluated on a coarser grid (phase step <= 0.2 rad, linear-interpolation error
  about -46 dB) and interpolated linearly onto the segment grid. This keeps the per-sample work
  to one small matrix product per segment (see ``benchmarks/channel_models.py``).

The process values are unit-variance circularly-symmetric complex Gaussian matrices ``G`` (every
entry ``CN(0, 1)``, independent across entries); fading models shape them (Kronecker correlation,
Rician LOS).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.signal
import scipy.special

KINDS = ("static", "block", "gauss_markov", "doppler")

#: max Doppler phase advance per held segment (rad), see [Note: segment grid]
DOPPLER_HOLD_RAD = 0.03
#: max Doppler phase advance per coarse evaluation step (rad)
DOPPLER_COARSE_RAD = 0.2


@dataclasses.dataclass(frozen=True)
class TimeBehaviour:
    """How fading coefficients evolve in time.

    Args:
        kind: ``"static"`` (one draw per seed), ``"block"`` (independent draw every
            ``block_samples``), ``"gauss_markov"`` (``h[k+1] = rho h[k] + sqrt(1 - rho^2) w[k]`` per
            block of ``block_samples``) or ``"doppler"`` (Clarke/Jakes sum of sinusoids, continuous
            within a burst, autocorrelation ``J0(2 pi f_d tau)``).
        block_samples: block length in samples (block, gauss_markov).
        rho: Gauss-Markov correlation between consecutive blocks, ``-1 <= rho <= 1``.
        doppler_hz: maximum Doppler frequency (doppler).
        sample_rate_hz: sample rate (doppler).
        n_sinusoids: sinusoids per coefficient in the sum of sinusoids (doppler).
        hold_samples: override of the hold length ``S`` (doppler); default from [Note: segment grid].
            ``doppler_hz = 0`` is static (one draw, ``S = None``) whatever ``hold_samples``.
    """

    kind: str = "static"
    block_samples: int | None = None
    rho: float | None = None
    doppler_hz: float | None = None
    sample_rate_hz: float | None = None
    n_sinusoids: int = 32
    hold_samples: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"time behaviour kind {self.kind!r} is unknown; use one of {KINDS}")
        if self.kind in ("block", "gauss_markov"):
            if self.block_samples is None or int(self.block_samples) < 1:
                raise ValueError(
                    f"{self.kind} fading needs block_samples >= 1, got {self.block_samples!r}"
                )
        if self.kind == "gauss_markov":
            if self.rho is None or not -1.0 <= float(self.rho) <= 1.0:
                raise ValueError(f"gauss_markov needs -1 <= rho <= 1, got {self.rho!r}")
        if self.kind == "doppler":
            if self.doppler_hz is None or float(self.doppler_hz) < 0:
                raise ValueError(f"doppler fading needs doppler_hz >= 0, got {self.doppler_hz!r}")
            if self.sample_rate_hz is None or float(self.sample_rate_hz) <= 0:
                raise ValueError(
                    f"doppler fading needs sample_rate_hz > 0, got {self.sample_rate_hz!r}"
                )
            if int(self.n_sinusoids) < 4:
                raise ValueError(f"n_sinusoids must be >= 4, got {self.n_sinusoids}")
        if self.hold_samples is not None and int(self.hold_samples) < 1:
            raise ValueError(f"hold_samples must be >= 1, got {self.hold_samples}")

    @classmethod
    def gauss_markov_from_doppler(
        cls, doppler_hz: float, sample_rate_hz: float, block_samples: int
    ) -> "TimeBehaviour":
        """Gauss-Markov per block with ``rho = J0(2 pi f_d T_block)``, ``T_block = block_samples / f_s``."""
        rho = rho_from_doppler(doppler_hz, block_samples / float(sample_rate_hz))
        return cls(kind="gauss_markov", block_samples=int(block_samples), rho=rho)

    @property
    def segment_samples(self) -> int | None:
        """The segment length ``S`` of [Note: segment grid]; None for one segment forever."""
        if self.kind == "static":
            return None
        if self.kind in ("block", "gauss_markov"):
            return int(self.block_samples)
        if float(self.doppler_hz) == 0.0:
            return None  # no Doppler: static, whatever the hold length
        if self.hold_samples is not None:
            return int(self.hold_samples)
        w = 2 * math.pi * float(self.doppler_hz) / float(self.sample_rate_hz)  # rad / sample
        s = DOPPLER_HOLD_RAD / w
        return int(2 ** min(12, max(0, math.floor(math.log2(max(s, 1.0))))))


def rho_from_doppler(doppler_hz: float, interval_s: float) -> float:
    """Clarke/Jakes correlation ``J0(2 pi f_d T)`` over ``interval_s`` (negative when
    ``2 pi f_d T`` is past J0's first zero, 2.405: then blocks are anti-correlated)."""
    return float(scipy.special.j0(2 * math.pi * doppler_hz * interval_s))


class GaussianProcess:
    """Unit-variance complex Gaussian matrices of ``shape`` evolving on the segment grid.

    ``segments(t0, n)`` returns the values of every segment that overlaps model-clock samples
    ``[t0, t0 + n)``; calls must be contiguous (``t0`` = previous ``t0 + n``), which the fading
    models guarantee.
    """

    def __init__(self, shape: tuple[int, ...], behaviour: TimeBehaviour, rng: np.random.Generator):
        self.shape = tuple(int(s) for s in shape)
        self.behaviour = behaviour
        # a child stream of its own: the draws of one process do not depend on how calls to
        # other processes sharing the parent generator are interleaved (stream-cut invariance)
        self.rng = rng.spawn(1)[0]
        rng = self.rng
        self.S = behaviour.segment_samples
        self._k = -1  # last segment drawn
        self._g: np.ndarray | None = None  # complex128 value of segment self._k
        if behaviour.kind == "doppler" and self.S is not None:
            m = int(behaviour.n_sinusoids)
            e = int(np.prod(self.shape))
            theta = rng.uniform(-np.pi, np.pi, size=(e, 1))
            alpha = (2 * np.pi * np.arange(m)[None, :] - np.pi + theta) / m  # [e, m]
            self._omega = (
                2 * np.pi * float(behaviour.doppler_hz) / float(behaviour.sample_rate_hz)
            ) * np.cos(alpha)  # rad/sample, [e, m]
            self._phase = rng.uniform(-np.pi, np.pi, size=(e, m))
            w = 2 * np.pi * float(behaviour.doppler_hz) / float(behaviour.sample_rate_hz)
            self._coarse = max(self.S, int(self.S * max(1, math.floor(DOPPLER_COARSE_RAD / w / self.S))))

    def _cn(self, *lead: int) -> np.ndarray:
        z = self.rng.standard_normal((*lead, *self.shape, 2))
        return (z[..., 0] + 1j * z[..., 1]) * np.sqrt(0.5)

    def _sos(self, t: np.ndarray) -> np.ndarray:
        """Sum of sinusoids at sample times ``t`` (float64 [k]) -> complex128 [k, *shape]."""
        e, m = self._omega.shape
        g = np.empty((len(t), e), dtype=np.complex128)
        step = max(1, 2**16 // (e * m))  # bound the [k, e, m] temporary
        for a in range(0, len(t), step):
            arg = self._omega[None] * t[a : a + step, None, None] + self._phase[None]  # [k, e, m]
            g[a : a + step] = np.exp(1j * arg).sum(axis=2) / np.sqrt(m)
        return g.reshape(len(t), *self.shape)

    def _sos_grid(self, t_first: float, dt: float, k: int) -> np.ndarray:
        """Sum of sinusoids at ``t_first + dt * i``, ``i < k``, by phasor recursion (rebased every
        256 steps to bound rounding) -> complex128 [k, e]."""
        e, m = self._omega.shape
        out = np.empty((k, e), dtype=np.complex128)
        stepper = np.exp(1j * self._omega * dt)  # [e, m]
        R = 256
        powers = np.cumprod(np.broadcast_to(stepper, (R, e, m)), axis=0) / stepper  # step^0..R-1
        for a in range(0, k, R):
            base = np.exp(1j * (self._omega * (t_first + dt * a) + self._phase))  # [e, m]
            r = min(R, k - a)
            out[a : a + r] = np.einsum("iem,em->ie", powers[:r], base) / np.sqrt(m)
        return out

    def segments(self, t0: int, n: int) -> tuple[int | None, np.ndarray]:
        """Values for the segments overlapping ``[t0, t0 + n)``.

        Returns:
            ``(S, values)``: the segment length (None = one segment forever) and complex64
            ``[n_segments, *shape]``; ``values[0]`` is the segment containing ``t0``.
        """
        kind = self.behaviour.kind
        if self.S is None:
            if self._g is None:
                self._g = self._cn()
            return None, self._g[None].astype(np.complex64)
        S = self.S
        k0, k1 = t0 // S, (t0 + max(n, 1) - 1) // S
        if kind == "doppler":
            tc = (np.arange(k0, k1 + 1, dtype=np.float64) + 0.5) * S
            if self._coarse <= S:  # (the coarse grid is global: values do not depend on call cuts)
                vals = self._sos(tc)
            else:
                c = self._coarse
                g0 = math.floor(tc[0] / c) * c
                kg = int(math.floor((tc[-1] - g0) / c)) + 2
                grid = g0 + c * np.arange(kg, dtype=np.float64)
                coarse = self._sos_grid(float(g0), float(c), kg)
                vals = np.empty((len(tc), coarse.shape[1]), dtype=np.complex128)
                for j in range(coarse.shape[1]):
                    vals[:, j] = np.interp(tc, grid, coarse[:, j].real) + 1j * np.interp(
                        tc, grid, coarse[:, j].imag
                    )
                vals = vals.reshape(len(tc), *self.shape)
            self._k, self._g = k1, vals[-1]
            return S, vals.astype(np.complex64)
        # block / gauss_markov: reuse the current segment, draw the new ones
        if k0 < self._k:
            raise RuntimeError("GaussianProcess.segments calls must be contiguous in time")
        n_new = k1 - self._k
        parts = []
        if k0 == self._k:
            parts.append(self._g[None])
        if n_new > 0:
            w = self._cn(n_new)
            if kind == "gauss_markov" and self._g is not None:
                rho = float(self.behaviour.rho)
                c = math.sqrt(max(0.0, 1.0 - rho * rho))
                new = scipy.signal.lfilter([c], [1.0, -rho], w, axis=0, zi=(rho * self._g)[None])[0]
            elif kind == "gauss_markov":
                rho = float(self.behaviour.rho)
                c = math.sqrt(max(0.0, 1.0 - rho * rho))
                first = w[:1]  # stationary start
                rest = scipy.signal.lfilter([c], [1.0, -rho], w[1:], axis=0, zi=rho * first)[0]
                new = np.concatenate([first, rest], axis=0)
            else:
                new = w
            parts.append(new)
            self._g = new[-1]
            self._k = k1
        vals = np.concatenate(parts, axis=0)
        return S, vals.astype(np.complex64)

    def current(self) -> np.ndarray | None:
        """The value of the latest segment drawn (complex128 ``shape``), or None before any draw."""
        return self._g
