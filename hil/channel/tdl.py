"""Frequency-selective MIMO tapped delay lines, including the 3GPP TR 38.901 TDL profiles.

Each path ``l`` (delay ``tau_l``, mean power ``p_l``, powers normalised to sum 1) is an independent
flat MIMO fading process with the same time behaviour and Kronecker correlation
(:class:`hil.channel.fading.FlatFading` with its own draws). Paths at fractional sample delays
are spread onto integer lags with a Kaiser-windowed sinc (beta = 8, half length 8), truncated to
causal lags and renormalised to unit energy per path; lags carrying less than 1e-5 of the power are
dropped. The lag matrices are ``M_n(k) = sum_l sqrt(p_l) w_l[n] H_l(k)`` and the output is
``y[t] = sum_n M_n(k(t)) x[t - n]`` with input history carried across calls (apply keeps the history
of the lags: call ``generate``/``apply`` in order, once each).

The 3GPP profiles (TDL-A..E, normalised delays scaled by ``delay_spread_s``; TS 38.101-4 fixed
profiles A10, A30, B100, C60, C300, D10, D30 with absolute delays) are data of this package,
``hil/channel/tdl_profiles.json``: Sionna's tables (TR 38.901 v16.1 and v19.2, v19.2 by default),
copied by ``scripts/gen_tdl_profiles.py`` and checked against Sionna's ``TDL`` by the tests when
Sionna is installed; Sionna itself is optional (``pip install hil-ota[sionna]``). For the LOS
profiles (D, E) the first path is Rician with the profile's K-factor (its specular part plus the
first NLOS path at delay 0), as in Sionna.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import math

import numpy as np

from hil.channel.fading import FirCoeffs, FirStage, FlatFading
from hil.channel.impairments import kaiser_sinc
from hil.channel.memory import TimeBehaviour

log = logging.getLogger(__name__)

SCALABLE_PROFILES = ("TDL-A", "TDL-B", "TDL-C", "TDL-D", "TDL-E")
FIXED_PROFILES = ("TDL-A10", "TDL-A30", "TDL-B100", "TDL-C60", "TDL-C300", "TDL-D10", "TDL-D30")
_W = 8
_BETA = 8.0
_DROP = 1e-5


SPEC_VERSIONS = ("16.1", "19.2")
_TABLES: dict | None = None


def _tables() -> dict:
    """The 3GPP TDL tables shipped with this package (``tdl_profiles.json``, generated from Sionna
    by ``scripts/gen_tdl_profiles.py``)."""
    global _TABLES
    if _TABLES is None:
        _TABLES = json.loads(importlib.resources.files("hil.channel").joinpath("tdl_profiles.json")
                             .read_text(encoding="utf-8"))
    return _TABLES


def load_tdl_profile(name: str, delay_spread_s: float | None = None, spec_version: str = "19.2") -> dict:
    """A 3GPP TDL profile from the shipped tables (Sionna's, see the module docstring).

    Args:
        name: ``"TDL-A"`` .. ``"TDL-E"`` (scalable) or a fixed profile such as ``"TDL-A30"``.
        delay_spread_s: RMS delay spread for the scalable profiles (required for them).
        spec_version: TR 38.901 version of the scalable tables, ``"19.2"`` or ``"16.1"``.

    Returns:
        ``{"delays_s": [...], "powers": [...] (linear, sum 1 with the LOS part),
        "k_factor_db": float | None}``; for LOS profiles the first path is the Rician path whose
        power includes the specular part.
    """
    key = name.upper()
    if key in SCALABLE_PROFILES:
        if delay_spread_s is None or not float(delay_spread_s) > 0:
            raise ValueError(f"profile {name} needs delay_spread_s > 0 (e.g. 100e-9)")
        if spec_version not in SPEC_VERSIONS:
            raise ValueError(f"spec_version must be one of {SPEC_VERSIONS}, got {spec_version!r}")
        params = _tables()["scalable"][spec_version][key]
        scale = float(delay_spread_s)
    elif key in FIXED_PROFILES:
        params = _tables()["fixed"][key]
        scale = 1e-9  # tabulated in ns
    else:
        raise ValueError(
            f"unknown TDL profile {name!r}; use one of {SCALABLE_PROFILES + FIXED_PROFILES}"
        )
    delays = np.asarray(params["delays"], dtype=np.float64)
    powers = 10 ** (np.asarray(params["powers"], dtype=np.float64) / 10)
    k_db = None
    if bool(params["los"]):
        los, powers, delays = powers[0], powers[1:].copy(), delays[1:]
        k_db = 10 * math.log10(los / powers[0])
        powers[0] += los
    powers = powers / powers.sum()
    if params.get("scale_delays", True) is False or key in FIXED_PROFILES:
        delays_s = delays * 1e-9
    else:
        delays_s = delays * scale
    order = np.argsort(delays_s, kind="stable")
    first = int(np.argmax(order == 0))  # keep the Rician path identifiable after sorting
    return {
        "delays_s": delays_s[order].tolist(),
        "powers": powers[order].tolist(),
        "k_factor_db": k_db,
        "los_index": first if k_db is not None else None,
    }


def lag_weights(delays_samples: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """Spread fractional delays onto integer lags.

    Returns:
        ``(lags, W)``: the used integer lags (ascending) and float64 ``W [n_paths, n_lags]`` with
        unit energy per path.
    """
    d = np.asarray(delays_samples, dtype=np.float64)
    if np.any(d < 0):
        raise ValueError(f"path delays must be >= 0, got {d.min()}")
    max_lag = int(math.floor(d.max())) + _W
    n = np.arange(max_lag + 1)[None, :]
    t = n - d[:, None]
    w = kaiser_sinc(t, _W, _BETA)
    integer = np.isclose(d, np.round(d), atol=1e-9)
    w[integer] = (n == np.round(d[integer])[:, None]).astype(np.float64)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    keep = (w**2).max(axis=0) >= _DROP
    lags = tuple(int(v) for v in np.flatnonzero(keep))
    w = w[:, keep]
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    return lags, w


class TDL(FirStage):
    """MIMO tapped delay line.

    Args:
        n_tx, n_rx: antennas.
        rng: the numpy Generator.
        delays_s: path delays in seconds (>= 0); or
        profile: a 3GPP profile name (see :func:`load_tdl_profile`), with ``delay_spread_s``.
        powers_db: path powers in dB (with ``delays_s``); normalised to sum 1.
        sample_rate_hz: sample rate.
        time: time behaviour of every path.
        corr_tx, corr_rx: Kronecker correlation (as :class:`FlatFading`).
        k_factor_db: Rician K-factor of the first path (profiles D/E set it).
    """

    def __init__(
        self,
        n_tx: int,
        n_rx: int,
        rng: np.random.Generator,
        sample_rate_hz: float,
        delays_s=None,
        powers_db=None,
        profile: str | None = None,
        delay_spread_s: float | None = None,
        time: TimeBehaviour | None = None,
        corr_tx=None,
        corr_rx=None,
        k_factor_db: float | None = None,
    ):
        if not float(sample_rate_hz) > 0:
            raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
        self.sample_rate_hz = float(sample_rate_hz)
        los_index = 0
        if profile is not None:
            if delays_s is not None or powers_db is not None:
                raise ValueError("give either profile or delays_s/powers_db, not both")
            p = load_tdl_profile(profile, delay_spread_s)
            delays = np.asarray(p["delays_s"])
            powers = np.asarray(p["powers"])
            if k_factor_db is None:
                k_factor_db = p["k_factor_db"]
            los_index = p["los_index"] or 0
        else:
            if delays_s is None or powers_db is None:
                raise ValueError("TDL needs profile= or both delays_s= and powers_db=")
            delays = np.asarray(delays_s, dtype=np.float64).reshape(-1)
            powers = 10 ** (np.asarray(powers_db, dtype=np.float64).reshape(-1) / 10)
            if delays.shape != powers.shape or delays.size == 0:
                raise ValueError(
                    f"delays_s and powers_db must have the same nonzero length, got "
                    f"{delays.size} and {powers.size}"
                )
            powers = powers / powers.sum()
        self.profile = profile
        self.delays_s = delays
        self.powers = powers
        self.n_in, self.n_out = int(n_tx), int(n_rx)
        self.lags, self._w = lag_weights(delays * self.sample_rate_hz)
        self.paths = [
            FlatFading(
                n_tx, n_rx, rng, k_factor_db=(k_factor_db if l == los_index else None),
                corr_tx=corr_tx, corr_rx=corr_rx, time=time,
            )
            for l in range(len(delays))
        ]
        self._mix_t = np.ascontiguousarray((np.sqrt(powers)[:, None] * self._w).T, dtype=np.float32)  # [lags, paths]
        self.clock = 0
        self._hist: np.ndarray | None = None
        self._last: np.ndarray | None = None

    def mean_power_gain(self) -> np.ndarray:
        return np.ones((self.n_out, self.n_in))

    def generate(self, n_samples: int) -> FirCoeffs:
        t0 = self.clock
        drawn = [p.matrices(n_samples) for p in self.paths]
        S = drawn[0][0]
        H = np.stack([h for _, h in drawn])  # complex64 [paths, seg, n_rx, n_tx]
        P, K = H.shape[:2]
        # M[l] = sum_p mix[p, l] H_p with a real mix: one float32 GEMM over the interleaved (re, im)
        # values of every segment and antenna pair (an einsum here cost ~6 ns per sample of a 2x2 TDL-A)
        m = self._mix_t @ H.reshape(P, -1).view(np.float32)  # [lags, seg * n_rx * n_tx * 2]
        mats = np.ascontiguousarray(m.view(np.complex64).reshape(len(self.lags), K, self.n_out, self.n_in)
                                    .transpose(1, 0, 2, 3))
        self.clock += int(n_samples)
        self._last = mats[-1]
        return FirCoeffs(t0=t0, S=S, mats=mats, lags=self.lags)

    def state(self) -> dict:
        m = self._last if self._last is not None else np.zeros(
            (len(self.lags), self.n_out, self.n_in), np.complex64
        )
        return {
            "clock_samples": int(self.clock),
            "lags": list(self.lags),
            "taps_real": m.real.tolist(),
            "taps_imag": m.imag.tolist(),
        }
