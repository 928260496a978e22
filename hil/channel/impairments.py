"""Radio impairments: CFO, sampling clock offset, fractional delay, phase noise, IQ imbalance,
DC offset, ADC quantization and clipping. Each maps ``n_ant`` antennas to ``n_ant`` antennas and
applies the same impairment to every antenna (one shared LO / clock, as on a Pluto).

[Note: interpolation and call boundaries]
Fractional delay and sampling clock offset interpolate with a 16-tap Kaiser-windowed sinc
(beta = 8, half length W = 8, 4096 fractional phases; about -60 dB error for signals within
+-0.35 f_s, see tests). They keep the last input samples across calls (so a stream cut into calls
gives the same output as one call). An interpolator also needs up to ``W - 1`` samples *after* an
output sample; samples after the end of the current call are taken as zero. That is exact for a
burst followed by >= 8 silent samples (burst mode, LoopbackRadio), and for ``delay_samples >= 7``
in any case; in streaming with smaller delays the last few samples of each call carry an
interpolation error.
"""

from __future__ import annotations

import math

import numpy as np

from hil.channel.base import ChannelModel

_W = 8  # sinc half length
_PHASES = 4096
_KAISER_BETA = 8.0
_ROT_BLOCK = 1 << 15  # rotator table length (256 kB, stays in cache)


def _check_ant(n_ant: int) -> int:
    if int(n_ant) < 1:
        raise ValueError(f"n_ant must be >= 1, got {n_ant}")
    return int(n_ant)


def _check_rate(sample_rate_hz: float) -> float:
    if not float(sample_rate_hz) > 0:
        raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
    return float(sample_rate_hz)


class _Identity(ChannelModel):
    def __init__(self, n_ant: int):
        self.n_in = self.n_out = _check_ant(n_ant)

    def mean_power_gain(self) -> np.ndarray:
        return np.eye(self.n_in)


class _Memoryless(_Identity):
    """A sample-by-sample impairment without coefficients: ``generate`` returns None (and advances
    nothing), any sample range of a call shares the same (absent) coefficients."""

    def generate(self, n_samples: int) -> None:
        return None

    def slice_coeffs(self, coeffs, a: int, b: int):
        return coeffs


# ----------------------------------------------------------------------------------------------
class CarrierFrequencyOffset(_Identity):
    """``y[n] = x[n] exp(j (phi_0 + 2 pi f_cfo n / f_s))``, phase continuous across calls.

    Args:
        n_ant: antennas.
        cfo_hz: frequency offset in Hz.
        sample_rate_hz: sample rate in Hz.
        phase_rad: initial phase.
    """

    def __init__(self, n_ant: int, cfo_hz: float, sample_rate_hz: float, phase_rad: float = 0.0):
        super().__init__(n_ant)
        self.cfo_hz = float(cfo_hz)
        self.sample_rate_hz = _check_rate(sample_rate_hz)
        self.phase = float(phase_rad) % (2 * math.pi)
        self.clock = 0
        self._w = 2 * math.pi * self.cfo_hz / self.sample_rate_hz  # rad / sample
        self._table = np.exp(1j * self._w * np.arange(_ROT_BLOCK)).astype(np.complex64)

    def generate(self, n_samples: int) -> float:
        phi0 = self.phase
        self.phase = (phi0 + self._w * int(n_samples)) % (2 * math.pi)
        self.clock += int(n_samples)
        return phi0

    def rotator(self, phi0: float, n: int) -> np.ndarray:
        """complex64 ``[n]``: ``exp(j (phi0 + w k))`` for ``k = 0 .. n-1``."""
        out = np.empty(n, dtype=np.complex64)
        for a in range(0, n, _ROT_BLOCK):
            b = min(n, a + _ROT_BLOCK)
            np.multiply(self._table[: b - a], np.complex64(np.exp(1j * (phi0 + self._w * a))),
                        out=out[a:b])
        return out

    def apply(self, x: np.ndarray, coeffs: float) -> np.ndarray:
        if self.cfo_hz == 0.0 and coeffs == 0.0:
            return x
        return self._rotate(x, coeffs, np.empty(x.shape, dtype=np.complex64))

    power_preserving = True

    def slice_coeffs(self, coeffs: float, a: int, b: int) -> float:
        return (coeffs + self._w * a) % (2 * math.pi)

    def apply_inplace(self, x: np.ndarray, coeffs: float) -> np.ndarray:
        """As :meth:`apply`, overwriting ``x``: per block of 2^15 samples, the cached rotator
        table times the block's start phasor (computed in float64), in cache."""
        if self.cfo_hz == 0.0 and coeffs == 0.0:
            return x
        return self._rotate(x, coeffs, x)

    def _rotate(self, x: np.ndarray, phi0: float, out: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        tmp = np.empty(min(n, _ROT_BLOCK), dtype=np.complex64)
        for a in range(0, n, _ROT_BLOCK):
            b = min(n, a + _ROT_BLOCK)
            t = tmp[: b - a]
            np.multiply(self._table[: b - a], np.complex64(np.exp(1j * (phi0 + self._w * a))), out=t)
            np.multiply(x[:, a:b], t, out=out[:, a:b])
        return out

    def state(self) -> dict:
        return {"cfo_hz": self.cfo_hz, "phase_rad": self.phase, "clock_samples": self.clock}


class PhaseNoise(_Identity):
    """Wiener (random-walk) phase noise of one LO shared by all antennas.

    ``phi[n] = phi[n-1] + sqrt(2 pi beta / f_s) w[n]``, ``w ~ N(0, 1)``: a free-running oscillator
    with a Lorentzian spectrum of 3-dB (full) linewidth ``beta`` Hz. Its phase-noise PSD far from
    the carrier is ``L(f) = beta / (2 pi f^2)`` (dBc/Hz), so a PSD level ``L0`` dBc/Hz at offset
    ``f0`` gives ``beta = 2 pi f0^2 10^(L0 / 10)``.

    Args:
        n_ant: antennas.
        sample_rate_hz: sample rate.
        linewidth_hz: ``beta``; or
        psd_dbc_hz, psd_offset_hz: the PSD level and its offset.
        rng: the numpy Generator.
    """

    def __init__(
        self,
        n_ant: int,
        sample_rate_hz: float,
        rng: np.random.Generator,
        linewidth_hz: float | None = None,
        psd_dbc_hz: float | None = None,
        psd_offset_hz: float | None = None,
    ):
        super().__init__(n_ant)
        self.sample_rate_hz = _check_rate(sample_rate_hz)
        if linewidth_hz is None:
            if psd_dbc_hz is None or psd_offset_hz is None:
                raise ValueError(
                    "PhaseNoise needs linewidth_hz, or psd_dbc_hz together with psd_offset_hz"
                )
            linewidth_hz = 2 * math.pi * float(psd_offset_hz) ** 2 * 10 ** (float(psd_dbc_hz) / 10)
        if float(linewidth_hz) < 0:
            raise ValueError(f"linewidth_hz must be >= 0, got {linewidth_hz}")
        self.linewidth_hz = float(linewidth_hz)
        self.rng = rng.spawn(1)[0]  # own child stream
        self.step_std = math.sqrt(2 * math.pi * self.linewidth_hz / self.sample_rate_hz)
        self.phase = 0.0

    def generate(self, n_samples: int) -> np.ndarray:
        """The phase per sample, float64 ``[n]`` (rad)."""
        w = self.rng.standard_normal(int(n_samples), dtype=np.float32)
        ph = np.cumsum(w, dtype=np.float64)
        ph *= self.step_std
        ph += self.phase
        if len(ph):
            self.phase = float(ph[-1] % (2 * math.pi))
            ph -= float(ph[-1]) - self.phase  # keep the numbers small, same phases mod 2 pi
        return ph

    power_preserving = True

    def slice_coeffs(self, coeffs: np.ndarray, a: int, b: int) -> np.ndarray:
        return coeffs[a:b]

    def apply(self, x: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        rot = np.exp(1j * coeffs.astype(np.float32))
        return np.multiply(x, rot[None, :].astype(np.complex64, copy=False))

    def state(self) -> dict:
        return {"linewidth_hz": self.linewidth_hz, "phase_rad": self.phase}


# ----------------------------------------------------------------------------------------------
def kaiser_sinc(t: np.ndarray, half_length: int = _W, beta: float = _KAISER_BETA) -> np.ndarray:
    """Kaiser-windowed sinc ``sinc(t) I0(beta sqrt(1 - (t/W)^2)) / I0(beta)`` for ``|t| < W``, 0
    outside (float64, same shape as ``t``; ``t`` in samples). The one interpolation kernel of this
    package: the fractional-delay/SCO table here and the TDL lag weights (``hil.channel.tdl``)."""
    t = np.asarray(t, dtype=np.float64)
    inside = np.abs(t) < half_length
    win = np.i0(beta * np.sqrt(np.clip(1 - (t / half_length) ** 2, 0, None))) / np.i0(beta)
    return np.where(inside, np.sinc(t) * win, 0.0)


def _sinc_table() -> np.ndarray:
    """float32 ``[_PHASES + 1, 2W]``: taps for fractional position f = q / _PHASES at offsets
    ``k = -W+1 .. W`` (``y = sum_k x[i + k] tab[q, k + W - 1]`` interpolates ``x(i + f)``)."""
    f = np.arange(_PHASES + 1)[:, None] / _PHASES
    k = np.arange(-_W + 1, _W + 1)[None, :]
    h = kaiser_sinc(k - f)
    h /= h.sum(axis=1, keepdims=True)
    return h.astype(np.float32)


_TABLE: np.ndarray | None = None


def _table() -> np.ndarray:
    global _TABLE
    if _TABLE is None:
        _TABLE = _sinc_table()
    return _TABLE


def interpolate(xe: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Windowed-sinc interpolation of ``xe`` (complex64 ``[a, m]``) at positions ``pos`` (float64
    ``[n]``, in ``[W - 1, m - W]``). Returns complex64 ``[a, n]``."""
    tab = _table()
    i = np.floor(pos).astype(np.int64)
    q = np.rint((pos - i) * _PHASES).astype(np.int64)
    out = np.zeros((xe.shape[0], len(pos)), dtype=np.complex64)
    const = len(pos) > 0 and bool(np.all(q == q[0])) and (len(pos) == 1 or bool(np.all(np.diff(i) == 1)))
    if const:
        # constant fraction: an ordinary FIR
        taps = tab[q[0]]
        i0 = int(i[0])
        n = len(pos)
        for kk in range(2 * _W):
            s = i0 + kk - _W + 1
            out += xe[:, s : s + n] * taps[kk]
        return out
    for kk in range(2 * _W):
        out += xe[:, i + kk - _W + 1] * tab[q, kk][None, :]
    return out


class _Interpolator(_Identity):
    """A stage that reads its input at fractional positions, keeping ``self._hist`` (complex64
    ``[n_ant, h]``, the last ``h`` input samples) across calls: apply updates it (see
    [Note: generate/apply] in ``hil.channel.base``)."""

    _hist: np.ndarray

    def _delayed(self, x: np.ndarray, delay) -> np.ndarray:
        """``y[n] = x(n - delay[n])`` (``delay`` a float or float64 ``[n]``, ``0 <= delay`` and
        ``delay <= h - W + 1``), interpolated over the history, this call and ``W`` zeros after it."""
        n = x.shape[1]
        h = self._hist.shape[1]
        xe = np.concatenate([self._hist, x, np.zeros((self.n_in, _W), np.complex64)], axis=1)
        y = interpolate(xe, h + np.arange(n) - delay)
        self._hist = xe[:, n : n + h].copy()
        return y


class FractionalDelay(_Interpolator):
    """Delay by ``delay_samples`` (>= 0, any real) with a windowed-sinc interpolator.

    See [Note: interpolation and call boundaries]. ``y[n] = x(n - delay_samples)``.
    """

    def __init__(self, n_ant: int, delay_samples: float):
        super().__init__(n_ant)
        if not float(delay_samples) >= 0:
            raise ValueError(f"delay_samples must be >= 0, got {delay_samples}")
        self.delay_samples = float(delay_samples)
        self._hist_len = int(math.floor(self.delay_samples)) + _W
        self._hist = np.zeros((self.n_in, self._hist_len), dtype=np.complex64)

    def generate(self, n_samples: int) -> int:
        return int(n_samples)

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        return self._delayed(x, self.delay_samples)

    def state(self) -> dict:
        return {"delay_samples": self.delay_samples}


class SamplingClockOffset(_Interpolator):
    """Sampling clock offset: the receiver's clock runs ``ppm`` parts per million fast.

    With ``e = ppm 1e-6``, the receiver samples at times ``m T / (1 + e)``: output sample ``m``
    (model clock) is the input signal at time ``m / (1 + e)`` (input samples), i.e. at a delay
    ``d(m) = m e / (1 + e)`` samples, which grows without bound for ``ppm > 0`` (a tone of frequency
    ``f`` comes out at ``f / (1 + e)``: the signal is stretched in time). To keep one output sample
    per input sample (the shape contract), the delay is taken modulo one sample:
    ``y[m] = x(m - frac(d(m)))``. When it wraps, the output jumps one input sample ahead for
    ``ppm > 0`` (the fast receiver's extra sample is dropped) and repeats one sample's worth for
    ``ppm < 0``, as a receiver with a constant sample count does. Interpolation per
    [Note: interpolation and call boundaries].
    """

    def __init__(self, n_ant: int, ppm: float):
        super().__init__(n_ant)
        self.ppm = float(ppm)
        if abs(self.ppm) >= 1e5:
            raise ValueError(f"ppm must be below 1e5 in magnitude, got {ppm}")
        self.clock = 0
        self._hist = np.zeros((self.n_in, _W + 1), dtype=np.complex64)

    def delay(self, t: np.ndarray) -> np.ndarray:
        """The fractional delay in samples, in [0, 1), at model-clock samples ``t``."""
        e = self.ppm * 1e-6
        return np.mod(np.asarray(t, dtype=np.float64) * (e / (1 + e)), 1.0)

    def generate(self, n_samples: int) -> np.ndarray:
        t = self.clock + np.arange(int(n_samples), dtype=np.float64)
        self.clock += int(n_samples)
        return self.delay(t)

    def apply(self, x: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        return self._delayed(x, coeffs)

    def state(self) -> dict:
        return {"ppm": self.ppm, "clock_samples": self.clock}


# ----------------------------------------------------------------------------------------------
class IQImbalance(_Memoryless):
    """Receiver IQ imbalance ``y = mu x + nu conj(x)``.

    With amplitude imbalance ``g = 10^(amplitude_db / 20)`` and phase imbalance ``phi``:
    ``mu = (1 + g e^{-j phi}) / 2``, ``nu = (1 - g e^{j phi}) / 2`` (the Q branch is scaled by ``g``
    and skewed by ``phi``). Image rejection ratio ``IRR = |mu|^2 / |nu|^2``.
    """

    def __init__(self, n_ant: int, amplitude_db: float = 0.0, phase_deg: float = 0.0):
        super().__init__(n_ant)
        self.amplitude_db = float(amplitude_db)
        self.phase_deg = float(phase_deg)
        g = 10 ** (self.amplitude_db / 20)
        phi = math.radians(self.phase_deg)
        self.mu = np.complex64((1 + g * np.exp(-1j * phi)) / 2)
        self.nu = np.complex64((1 - g * np.exp(1j * phi)) / 2)

    @property
    def image_rejection_db(self) -> float:
        """Theoretical IRR in dB (inf without imbalance)."""
        nu = abs(complex(self.nu))
        return math.inf if nu == 0 else 20 * math.log10(abs(complex(self.mu)) / nu)

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        y = x * self.mu
        y += np.conj(x) * self.nu
        return y

    def state(self) -> dict:
        return {"amplitude_db": self.amplitude_db, "phase_deg": self.phase_deg}


class DCOffset(_Memoryless):
    """``y = x + dc``; ``dc`` complex, one value for all antennas or one per antenna."""

    def __init__(self, n_ant: int, dc):
        super().__init__(n_ant)
        dc = np.asarray(dc, dtype=np.complex64).reshape(-1)
        if dc.size not in (1, self.n_in):
            raise ValueError(f"dc must be one value or {self.n_in} values, got {dc.size}")
        self.dc = np.broadcast_to(dc, (self.n_in,)).copy()

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        return x + self.dc[:, None]

    def state(self) -> dict:
        return {"dc_real": self.dc.real.tolist(), "dc_imag": self.dc.imag.tolist()}


class Quantizer(_Memoryless):
    """ADC: clip I and Q to ``[-full_scale, full_scale]`` and quantize each to ``bits`` bits.

    Mid-rise uniform quantizer with step ``D = 2 full_scale / 2^bits`` and levels
    ``(k + 1/2) D``, ``k = -2^(bits-1) .. 2^(bits-1) - 1``. For a full-scale sine on each of I and Q
    the SQNR is ``6.02 bits + 1.76`` dB.
    """

    def __init__(self, n_ant: int, bits: int, full_scale: float = 1.0):
        super().__init__(n_ant)
        if not 1 <= int(bits) <= 24:
            raise ValueError(f"bits must be in 1..24, got {bits}")
        if not float(full_scale) > 0:
            raise ValueError(f"full_scale must be > 0, got {full_scale}")
        self.bits = int(bits)
        self.full_scale = float(full_scale)
        self.step = 2 * self.full_scale / 2**self.bits

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        v = np.ascontiguousarray(x, dtype=np.complex64).view(np.float32)
        d = np.float32(self.step)
        q = np.floor(v / d)
        lim = np.float32(2 ** (self.bits - 1))
        np.clip(q, -lim, lim - 1, out=q)
        q += np.float32(0.5)
        q *= d
        return q.view(np.complex64)

    def state(self) -> dict:
        return {"bits": self.bits, "full_scale": self.full_scale}


class Clipper(_Memoryless):
    """Clipping at ``level``: ``mode="iq"`` clips I and Q separately (an ADC/DAC), ``"envelope"``
    limits ``|x|`` keeping the phase (a PA)."""

    def __init__(self, n_ant: int, level: float = 1.0, mode: str = "iq"):
        super().__init__(n_ant)
        if not float(level) > 0:
            raise ValueError(f"clip level must be > 0, got {level}")
        if mode not in ("iq", "envelope"):
            raise ValueError(f"clip mode must be 'iq' or 'envelope', got {mode!r}")
        self.level = float(level)
        self.mode = mode

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        lv = np.float32(self.level)
        if self.mode == "iq":
            v = np.ascontiguousarray(x, dtype=np.complex64).view(np.float32)
            return np.clip(v, -lv, lv).view(np.complex64)
        a = np.abs(x)
        scale = np.minimum(np.float32(1), lv / np.maximum(a, np.float32(1e-30)))
        return (x * scale).astype(np.complex64, copy=False)

    def state(self) -> dict:
        return {"level": self.level, "mode": self.mode}


__all__ = [
    "CarrierFrequencyOffset",
    "Clipper",
    "Passthrough",
    "DCOffset",
    "FractionalDelay",
    "IQImbalance",
    "PhaseNoise",
    "Quantizer",
    "SamplingClockOffset",
    "interpolate",
    "kaiser_sinc",
]


class Passthrough(_Memoryless):
    """``y = x`` (the ideal channel between equal antenna counts)."""

    power_preserving = True

    def apply(self, x: np.ndarray, coeffs) -> np.ndarray:
        return x
