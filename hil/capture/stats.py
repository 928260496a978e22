"""Channel statistics from per-frame channel estimates.

Input everywhere: ``h`` complex ``[F, n_sc, n_rx, n_tx]`` (F frames in time order, ``n_sc``
subcarriers, 1 for a flat sounder) and, where time matters, ``slot`` int ``[F]`` (consecutive
sounding slots are ``frame_interval_s`` apart; a missed frame leaves a gap that the estimators skip).

[Note: estimation-noise correction]
A channel estimate is ``h_hat = h + e`` with ``e ~ CN(0, s2)`` independent of ``h`` and across frames
(``s2`` = the sounder's ``estimate_var``: noise variance over pilot energy for LS). The moments are
corrected before use: ``E|h|^2 = E|h_hat|^2 - s2``, ``E|h|^4 = E|h_hat|^4 - 4 E|h|^2 s2 - 2 s2^2``, and
the lag-0 autocorrelation loses ``s2`` (lags >= 1 are unbiased). Without the correction a 20 dB
estimate SNR biases rho down by about 1 % and K down by 0.04 dB; at 10 dB ten times that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


class UndefinedStatistic(ValueError):
    """The statistic is not defined on this data (a static channel has no time correlation, a
    noise-only one no K): reported as n/a by :func:`channel_stats`. Input errors stay ValueError."""


def _as_h(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h)
    if h.ndim == 3:  # [F, n_rx, n_tx]
        h = h[:, None]
    if h.ndim != 4:
        raise ValueError(f"h: expected [frames, n_sc, n_rx, n_tx] (or [frames, n_rx, n_tx]), got shape {h.shape}")
    if h.shape[0] < 2:
        raise ValueError(f"h: need at least 2 frames for statistics, got {h.shape[0]}")
    return h.astype(np.complex128)


def _slots(slot: np.ndarray | None, n: int) -> np.ndarray:
    if slot is None:
        return np.arange(n, dtype=np.int64)
    s = np.asarray(slot, dtype=np.int64)
    if s.shape != (n,):
        raise ValueError(f"slot: expected shape ({n},), got {s.shape}")
    if np.any(np.diff(s) <= 0):
        raise ValueError("slot: must be strictly increasing (frames in time order)")
    return s


def _lag_pairs(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Index pairs ``(a, b)`` of frames exactly ``k`` slots apart (None: no such pair)."""
    if np.all(np.diff(s) == 1):
        if k >= len(s):
            return None
        return np.arange(len(s) - k), np.arange(k, len(s))
    j = np.searchsorted(s, s + k)
    ok = j < len(s)
    ok[ok] = s[j[ok]] == s[ok] + k
    if not ok.any():
        return None
    return np.flatnonzero(ok), j[ok]


def common_rotation(h: np.ndarray, slot: np.ndarray | None = None) -> float:
    """The common phase rotation per slot of the estimates, rad: the angle of the pooled lag-one product
    ``sum h(t+1) h*(t)`` over frames, subcarriers and antenna pairs.

    [Note: rotation before correlation]
    A carrier offset left between frames (each burst's CFO is corrected inside the frame, but the
    phase keeps running between frames) turns every estimate by ``2 pi cfo T`` per slot: the complex
    lag-k correlation is multiplied by ``exp(j 2 pi cfo k T)`` and its real part, the Gauss-Markov
    rho, collapses (1.5 kHz at 1 ms slots: 0.999 read as 0.87 or less). The channel models here have a
    real autocorrelation (symmetric Doppler spectrum, real Gauss-Markov rho), so the angle of the
    pooled lag-one product is the rotation alone, LOS or not; :func:`derotate` removes it before any
    complex correlation or mean. A per-frame common phase that is random (free-running oscillators)
    is not a rotation: use the envelope estimate then.
    """
    h = _as_h(h)
    s = _slots(slot, h.shape[0])
    pr = _lag_pairs(s, 1)
    if pr is None:
        return 0.0
    flat = h.reshape(h.shape[0], -1)
    w0 = float(np.angle(np.sum(flat[pr[1]] * np.conj(flat[pr[0]]))))
    # Refinement: the lag-one angle is precise enough for correlations at small lags, but a LOS part
    # (a spectral line) is turned by w (s - s0) over the whole recording, where an error of 1/F
    # smears its mean. Where the line carries > 2 % of the power, the rotation is the peak of the
    # pooled periodogram (zero-padded 8x) within 0.1 rad of the lag-one angle.
    span = int(s[-1] - s[0] + 1)
    series = np.zeros((span, flat.shape[1]), np.complex128)
    series[s - s[0]] = flat
    n_fft = 8 * span
    p = np.sum(np.abs(np.fft.fft(series, n=n_fft, axis=0)) ** 2, axis=1)
    w = 2 * np.pi * np.fft.fftfreq(n_fft)
    near = np.abs(np.angle(np.exp(1j * (w - w0)))) <= 0.1
    k = int(np.flatnonzero(near)[np.argmax(p[near])])
    line = p[k] / len(s) ** 2 / max(float(np.sum(np.abs(flat) ** 2)) / len(s), 1e-300)
    return float(w[k]) if line > 0.02 else w0


def derotate(h: np.ndarray, slot: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``h`` with the common rotation of :func:`common_rotation` removed (frame at slot ``s`` turned by
    ``-w s``), and ``w`` in rad per slot."""
    hh = _as_h(h)
    s = _slots(slot, hh.shape[0])
    w = common_rotation(hh, s)
    return hh * np.exp(-1j * w * (s - s[0]))[:, None, None, None], w


def autocorrelation(
    h: np.ndarray, slot: np.ndarray | None = None, max_lag: int = 50, estimate_var: float = 0.0,
    remove_mean: bool = True, track_rotation: bool = True,
) -> np.ndarray:
    """Normalised time autocorrelation of the channel, ``R[k] = E[h(t+k) h*(t)] / E|h|^2``.

    Pooled over subcarriers and antenna pairs; lags are in slots, a pair of frames counts only when
    both were detected. With ``remove_mean`` the per-coefficient mean (the LOS part) is removed first,
    so ``R`` is the autocorrelation of the scattered part. ``estimate_var`` corrects lag 0
    (see [Note: estimation-noise correction]). With ``track_rotation`` (default) a common rotation
    per slot (a carrier offset between frames) is removed first ([Note: rotation before correlation]).

    Returns:
        complex128 ``[max_lag + 1]``; ``R[0] = 1``; NaN where no pair of frames has that lag.
    """
    h = _as_h(h)
    s = _slots(slot, h.shape[0])
    if track_rotation:
        h, _ = derotate(h, s)
    if remove_mean:
        h = h - h.mean(axis=0, keepdims=True)
    flat = h.reshape(h.shape[0], -1)  # [F, coeffs]
    total = float(np.mean(np.abs(flat) ** 2))
    p0 = total - float(estimate_var)
    if p0 <= 0.05 * total:  # < 5 % of the variation is channel: a static channel seen through noise
        raise UndefinedStatistic(
            f"the channel's variation ({p0:.3g}) is not above the estimation noise ({float(estimate_var):.3g}): "
            "a static channel has no time correlation to estimate"
        )
    r = np.full(max_lag + 1, np.nan + 0j)
    r[0] = 1.0
    for k in range(1, max_lag + 1):
        pr = _lag_pairs(s, k)
        if pr is None:
            continue
        a, b = pr
        r[k] = np.mean(flat[b] * np.conj(flat[a])) / p0
    return r


def gauss_markov_rho(
    h: np.ndarray, slot: np.ndarray | None = None, estimate_var: float = 0.0, max_lag: int = 1,
) -> float:
    """Fit the first-order Gauss-Markov coefficient ``rho`` of ``h[t+1] = rho h[t] + sqrt(1-rho^2) w``.

    ``max_lag == 1``: ``rho = Re R[1]`` (the lag-one correlation of the scattered part, corrected for
    estimation noise), the maximum-likelihood estimate for a Gauss-Markov process. ``max_lag > 1``:
    least squares of ``log Re R[k] = k log rho`` over lags 1..max_lag where ``Re R[k] > 0.05``.
    Standard error of the lag-one estimate: about ``sqrt((1 - rho^2) / N)`` for N independent
    coefficient sequences' pairs.
    """
    r = autocorrelation(h, slot, max_lag=max_lag, estimate_var=estimate_var).real
    if max_lag == 1:
        return float(np.clip(r[1], -1.0, 1.0))
    k = np.arange(1, max_lag + 1)
    ok = np.isfinite(r[1:]) & (r[1:] > 0.05)
    if not ok.any():
        return float("nan")
    slope = np.sum(k[ok] * np.log(r[1:][ok])) / np.sum(k[ok] ** 2)
    return float(np.exp(slope))


def gauss_markov_rho_envelope(
    h: np.ndarray, slot: np.ndarray | None = None, estimate_var: float = 0.0, k_lin: float | None = None,
) -> float:
    """Gauss-Markov ``rho`` from the power envelope ``|h|^2`` only: blind to a per-frame common phase.

    Two free-running oscillators (an uncorrected CFO between bursts) give every frame's estimate an
    arbitrary common phase, which destroys :func:`gauss_markov_rho` but not ``|h|^2``. For a Rician
    Gauss-Markov channel (LOS part fixed, scattered part ``rho``-correlated, real ``rho``) the lag-one
    correlation coefficient of ``|h|^2`` is ``R = (rho^2 + 2 K rho) / (1 + 2 K)``, so
    ``rho = -K + sqrt(K^2 + R (1 + 2 K))`` with ``K`` from :func:`rician_k_moments` (itself
    phase-blind) unless given. Estimation noise is removed from the lag-0 variance
    (``+ 2 E|h|^2 s2 + s2^2``). Noisier than the complex estimate (about twice the standard error).
    """
    h = _as_h(h)
    s = _slots(slot, h.shape[0])
    p = np.abs(h.reshape(h.shape[0], -1)) ** 2  # [F, coeffs]
    s2 = float(estimate_var)
    m2 = p.mean(axis=0)
    var = p.var(axis=0) - 2 * (m2 - s2) * s2 - s2**2
    if np.any(var <= 0.05 * p.var(axis=0)):
        raise UndefinedStatistic("the channel's power does not vary above the estimation noise; rho is undefined")
    d = p - m2
    if np.all(np.diff(s) == 1):
        a, b = np.arange(len(s) - 1), np.arange(1, len(s))
    else:
        j = np.searchsorted(s, s + 1)
        ok = j < len(s)
        ok[ok] = s[j[ok]] == s[ok] + 1
        if not ok.any():
            raise UndefinedStatistic("no two frames one slot apart")
        a, b = np.flatnonzero(ok), j[ok]
    r = float(np.mean(np.mean(d[b] * d[a], axis=0) / var))
    k = rician_k_moments(h, s2) if k_lin is None else float(k_lin)
    if not np.isfinite(k):
        raise UndefinedStatistic("a constant channel (K = inf) has no envelope correlation")
    return float(np.clip(-k + math.sqrt(max(k * k + r * (1 + 2 * k), 0.0)), -1.0, 1.0))


def coherence_time_s(
    h: np.ndarray, slot: np.ndarray | None, frame_interval_s: float, threshold: float = 0.5,
    estimate_var: float = 0.0, max_lag: int = 200,
) -> float:
    """Coherence time: the lag where ``|R|`` of the scattered part first drops below ``threshold``.

    Linear interpolation between lags; ``inf`` when it stays above within ``max_lag`` slots (or the
    recording), in seconds (lag in slots x ``frame_interval_s``).
    """
    if not frame_interval_s > 0:
        raise ValueError(f"frame_interval_s must be > 0, got {frame_interval_s}")
    n = _as_h(h).shape[0]
    r = np.abs(autocorrelation(h, slot, max_lag=min(max_lag, n - 1), estimate_var=estimate_var))
    for k in range(1, len(r)):
        if np.isfinite(r[k]) and r[k] < threshold:
            prev = r[k - 1] if np.isfinite(r[k - 1]) else 1.0
            frac = (prev - threshold) / (prev - r[k]) if prev != r[k] else 0.0
            return float((k - 1 + frac) * frame_interval_s)
    return float("inf")


def rician_k_moments(h: np.ndarray, estimate_var: float = 0.0) -> float:
    """Rician K factor (linear) by the moment method, pooled over subcarriers and antenna pairs.

    For each coefficient, with ``m2 = E|h|^2`` and ``m4 = E|h|^4`` (corrected for estimation noise):
    ``K = sqrt(2 m2^2 - m4) / (m2 - sqrt(2 m2^2 - m4))`` (Greenstein et al., 1999). Each coefficient's
    envelope is normalised by its own ``m2`` before pooling, so unequal path gains do not bias K.
    Returns 0 for Rayleigh (``m4 >= 2 m2^2``) and ``inf`` for a constant channel.
    """
    h = _as_h(h)
    p = np.abs(h.reshape(h.shape[0], -1)) ** 2  # [F, coeffs]
    s2 = float(estimate_var)
    m2 = p.mean(axis=0) - s2
    m4 = (p**2).mean(axis=0) - 4 * m2 * s2 - 2 * s2**2
    if np.any(m2 <= 0):
        raise UndefinedStatistic("channel power is not above the estimation noise; cannot estimate K")
    g4 = float(np.mean(m4 / m2**2))  # normalised fourth moment, pooled
    d = 2.0 - g4
    if d <= 0:
        return 0.0
    root = math.sqrt(d)
    if root >= 1.0:
        return float("inf")
    return root / (1.0 - root)


def rician_k_mean(h: np.ndarray, estimate_var: float = 0.0, slot: np.ndarray | None = None,
                  track_rotation: bool = True) -> float:
    """Rician K (linear) from the mean: ``|E h|^2 / (E|h|^2 - |E h|^2)``, pooled over coefficients.

    More accurate than the moment method when the LOS phase is stable over the recording; a steady
    rotation (carrier offset between frames) is removed first with ``track_rotation``
    ([Note: rotation before correlation]); a random per-frame phase still smears the mean.
    """
    h = _as_h(h)
    if track_rotation:
        h, _ = derotate(h, slot)
    f = h.reshape(h.shape[0], -1)
    m2 = np.mean(np.abs(f) ** 2, axis=0) - float(estimate_var)
    los = np.abs(f.mean(axis=0)) ** 2
    scat = m2 - los
    if np.any(m2 <= 0):
        raise UndefinedStatistic("channel power is not above the estimation noise; cannot estimate K")
    if np.all(scat <= 0):
        return float("inf")
    return float(np.mean(los / m2) / max(np.mean(scat / m2), 1e-300))


def power_delay_profile(h: np.ndarray) -> np.ndarray:
    """Power-delay profile from frequency-domain estimates: ``mean |IFFT_sc(h)|^2``.

    Args:
        h: complex ``[F, n_sc, n_rx, n_tx]`` with the ``n_sc`` subcarriers in FFT order, equally spaced.

    Returns:
        float64 ``[n_sc]``: power per delay tap (tap spacing ``1 / (n_sc * subcarrier_spacing_hz)``),
        averaged over frames and antenna pairs, normalised to sum 1.
    """
    h = _as_h(h)
    taps = np.fft.ifft(h, axis=1)  # [F, n_sc(delay), n_rx, n_tx]
    pdp = np.mean(np.abs(taps) ** 2, axis=(0, 2, 3))
    return pdp / pdp.sum()


def rms_delay_spread_s(pdp: np.ndarray, tap_spacing_s: float, threshold_db: float | None = 25.0) -> float:
    """RMS delay spread of a power-delay profile, seconds.

    ``sqrt(sum P tau^2 / sum P - (sum P tau / sum P)^2)`` with ``tau = tap * tap_spacing_s``; taps past
    the middle are taken as negative delays (cyclic IFFT wrap of a slightly early timing). Taps more
    than ``threshold_db`` below the strongest are left out (the usual dynamic-range limit: otherwise the
    estimation-noise floor spread over all taps dominates); ``None`` keeps every tap.
    """
    p = np.asarray(pdp, dtype=np.float64)
    n = len(p)
    tap = np.arange(n)
    tap = np.where(tap > n // 2, tap - n, tap) if n > 2 else tap
    if threshold_db is not None:
        p = np.where(p >= p.max() * 10 ** (-threshold_db / 10), p, 0.0)
    tau = tap * float(tap_spacing_s)
    w = p / p.sum()
    mu = np.sum(w * tau)
    return float(math.sqrt(max(np.sum(w * tau**2) - mu**2, 0.0)))


@dataclass(frozen=True)
class SnrSummary:
    """Distribution of per-frame SNR estimates, dB."""

    mean_db: float  # 10 log10 of the mean linear SNR
    median_db: float
    std_db: float
    p05_db: float
    p95_db: float
    n: int


def snr_summary(snr_db: np.ndarray) -> SnrSummary:
    """Summarise per-frame SNRs (NaNs ignored)."""
    s = np.asarray(snr_db, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        nan = float("nan")
        return SnrSummary(nan, nan, nan, nan, nan, 0)
    return SnrSummary(
        mean_db=float(10 * np.log10(np.mean(10 ** (s / 10)))),
        median_db=float(np.median(s)),
        std_db=float(np.std(s)),
        p05_db=float(np.percentile(s, 5)),
        p95_db=float(np.percentile(s, 95)),
        n=int(s.size),
    )


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of one recording (or a replay of it)."""

    n_frames: int
    frame_interval_s: float
    gauss_markov_rho: float
    gauss_markov_rho_envelope: float  # from |h|^2 only: use it when frames carry a random common phase
    coherence_time_s: float
    rician_k_db: float  # moment method
    rician_k_mean_db: float  # from the mean (needs a stable LOS phase)
    snr: SnrSummary
    cfo_hz_mean: float
    cfo_hz_std: float
    rms_delay_spread_s: float | None  # None for a flat (one-subcarrier) sounder
    mean_gain_db: float  # 10 log10 mean |h|^2
    #: 95 % intervals ``[lo, hi]`` per statistic (None: fewer than 2 independent blocks); see
    #: [Note: intervals from independent samples]
    ci95: dict = field(default_factory=dict)
    decorrelation_slots: float = 1.0  # slots between independent samples of the fading
    n_independent: float = 0.0  # independent samples per antenna pair over the recording
    warnings: tuple[str, ...] = ()  # statistics the recording is too short for

    def to_dict(self) -> dict:
        return asdict(self)


def _db(x: float) -> float:
    if x == 0:
        return float("-inf")
    return float(10 * math.log10(x)) if np.isfinite(x) else float("inf")


#: independent samples per antenna pair below which a statistic is flagged as too short
MIN_INDEPENDENT = 10


def decorrelation_slots(rho: float) -> float:
    """Slots between effectively independent samples of a Gauss-Markov fading process of per-slot
    correlation ``rho``: ``(1 + rho^2) / (1 - rho^2)``, the variance inflation of a second-order
    statistic (power, K, correlation) of an AR(1) sequence (Bartlett). 1 for ``rho <= 0`` or NaN."""
    if not np.isfinite(rho) or rho <= 0:
        return 1.0
    r2 = min(float(rho), 0.99999) ** 2
    return (1 + r2) / (1 - r2)


def _block_bootstrap(stat, h: np.ndarray, s: np.ndarray, extra: np.ndarray | None, block: int,
                     n_boot: int, rng: np.random.Generator) -> list[list[float] | None] | None:
    """Percentile 95 % intervals of ``stat(h, slot, extra) -> list[float]`` over a moving-block
    bootstrap: blocks of ``block`` slots, resampled with replacement and laid out with a one-slot gap
    between blocks (so no lag pair spans two blocks). None with fewer than 2 blocks."""
    ids = (s - s[0]) // block
    blocks = [np.flatnonzero(ids == b) for b in np.unique(ids)]
    if len(blocks) < 2:
        return None
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(blocks), len(blocks))
        idx = np.concatenate([blocks[b] for b in pick])
        slots = np.concatenate([(s[blocks[b]] - s[blocks[b][0]]) + k * (block + 1) for k, b in enumerate(pick)])
        draws.append(stat(h[idx], slots, None if extra is None else extra[idx]))
    d = np.asarray(draws, np.float64)  # [n_boot, n_stats]
    out: list[list[float] | None] = []
    for j in range(d.shape[1]):
        col = d[:, j]
        col = col[~np.isnan(col)]
        # order statistics, no interpolation: a K of 0 (-inf dB) in some resamples stays -inf
        out.append(None if col.size < n_boot // 2 else [float(np.percentile(col, 2.5, method="lower")),
                                                        float(np.percentile(col, 97.5, method="higher"))])
    return out


def channel_stats(
    h: np.ndarray,
    slot: np.ndarray | None = None,
    *,
    frame_interval_s: float,
    snr_db: np.ndarray | None = None,
    cfo_hz: np.ndarray | None = None,
    estimate_var: float | np.ndarray = 0.0,
    subcarrier_spacing_hz: float | None = None,
    n_boot: int = 100,
    seed: int = 0,
) -> ChannelStats:
    """All statistics of a recording's estimates. See the single estimators for the definitions.

    [Note: intervals from independent samples]
    Consecutive estimates of a slowly fading channel are not independent: a recording of F frames at
    Gauss-Markov ``rho`` per slot holds about ``span / L`` independent fades per antenna pair, with
    ``L`` = :func:`decorrelation_slots` (``rho`` = 0.999: L = 1000 slots, so 2000 frames are 2 fades
    per pair, and a K or mean gain from them can be off by several dB). Every statistic gets a 95 %
    interval from a moving-block bootstrap with blocks of ``ceil(L)`` slots (``n_boot`` resamples,
    seeded ``seed``), so its width follows the independent samples, not the frame count; with fewer
    than 2 blocks there is none. A statistic whose recording spans fewer than
    :data:`MIN_INDEPENDENT` independent samples per pair (the coherence time: fewer than 10 coherence
    times) is named in ``warnings``. The complex statistics remove a steady rotation first
    ([Note: rotation before correlation]).

    A statistic that is undefined for the recording (rho of a static channel, whose scattered part is
    below the estimation noise) is NaN (coherence time: inf) rather than an error.

    Args:
        h: complex ``[F, n_sc, n_rx, n_tx]``.
        slot: int ``[F]`` sounding slot of each frame (default ``0..F-1``).
        frame_interval_s: time between consecutive slots, s.
        snr_db, cfo_hz: per-frame estimates ``[F]`` (optional).
        estimate_var: estimate error variance per coefficient (scalar or per frame; the mean is used).
        subcarrier_spacing_hz: needed for the delay spread when ``n_sc > 1``.
    """
    hh = _as_h(h)
    s2 = float(np.nanmean(np.asarray(estimate_var, dtype=np.float64)))
    s2 = 0.0 if not np.isfinite(s2) else s2
    ds = None
    if hh.shape[1] > 1 and subcarrier_spacing_hz:
        pdp = power_delay_profile(hh)
        ds = rms_delay_spread_s(pdp, 1.0 / (hh.shape[1] * subcarrier_spacing_hz))
    cfo = np.asarray(cfo_hz if cfo_hz is not None else [np.nan], dtype=np.float64)
    cfo = cfo[np.isfinite(cfo)]
    def safe(f, *a, fallback=float("nan"), **kw):
        # a static channel has no scattered part to correlate, a noise-only one no power: not errors
        # of the recording, so the statistic is reported as undefined instead of failing the report
        # (UndefinedStatistic only: a malformed input, e.g. slots out of order, still raises)
        try:
            return f(*a, **kw)
        except UndefinedStatistic:
            return fallback

    names = ("gauss_markov_rho", "gauss_markov_rho_envelope", "coherence_time_s", "rician_k_db",
             "rician_k_mean_db", "mean_gain_db", "snr_mean_db")

    def core(hx: np.ndarray, sx: np.ndarray | None, snr_x: np.ndarray | None) -> list[float]:
        snr_lin = None if snr_x is None else np.asarray(snr_x, np.float64)
        snr_lin = None if snr_lin is None else snr_lin[np.isfinite(snr_lin)]
        return [
            safe(gauss_markov_rho, hx, sx, estimate_var=s2),
            safe(gauss_markov_rho_envelope, hx, sx, estimate_var=s2),
            safe(coherence_time_s, hx, sx, frame_interval_s, estimate_var=s2, fallback=float("inf")),
            _db(safe(rician_k_moments, hx, s2)),
            _db(safe(rician_k_mean, hx, s2, sx)),
            _db(max(float(np.mean(np.abs(hx) ** 2) - s2), 0.0)),
            float("nan") if snr_lin is None or snr_lin.size == 0 else float(10 * np.log10(np.mean(10 ** (snr_lin / 10)))),
        ]

    sl = _slots(slot, hh.shape[0])
    snr_arr = None if snr_db is None else np.asarray(snr_db, np.float64)
    if snr_arr is not None and snr_arr.shape != (hh.shape[0],):
        raise ValueError(f"snr_db: expected shape ({hh.shape[0]},), got {snr_arr.shape}")
    point = core(hh, sl, snr_arr)
    rho = point[0] if np.isfinite(point[0]) else point[1]
    dec = decorrelation_slots(rho)
    span = float(sl[-1] - sl[0] + 1)
    n_ind = min(float(hh.shape[0]), span / dec)
    boot = _block_bootstrap(core, hh, sl,
                            snr_arr, max(1, math.ceil(dec)), n_boot, np.random.default_rng(seed))
    ci = {n: (None if boot is None else boot[i]) for i, n in enumerate(names)}
    warn = []
    if n_ind < MIN_INDEPENDENT:
        warn.append(f"the recording spans about {n_ind:.1f} independent fades per antenna pair ({span:.0f} slots "
                    f"at rho {rho:.4g}: one every {dec:.0f} slots); Rician K, the mean gain, the SNR mean and rho "
                    f"need at least {MIN_INDEPENDENT}: record {MIN_INDEPENDENT * dec * frame_interval_s:.3g} s or more")
    tc = point[2]
    if not np.isfinite(tc) or span * frame_interval_s < MIN_INDEPENDENT * tc:
        warn.append("coherence time: the recording is shorter than "
                    f"{MIN_INDEPENDENT} coherence times ({'R stays above 0.5' if not np.isfinite(tc) else f'{tc:.3g} s each'})")
    return ChannelStats(
        n_frames=int(hh.shape[0]),
        frame_interval_s=float(frame_interval_s),
        gauss_markov_rho=point[0],
        gauss_markov_rho_envelope=point[1],
        coherence_time_s=point[2],
        rician_k_db=point[3],
        rician_k_mean_db=point[4],
        snr=snr_summary(snr_db if snr_db is not None else np.array([np.nan])),
        cfo_hz_mean=float(cfo.mean()) if cfo.size else float("nan"),
        cfo_hz_std=float(cfo.std()) if cfo.size else float("nan"),
        rms_delay_spread_s=ds,
        mean_gain_db=point[5],
        ci95=ci,
        decorrelation_slots=float(dec),
        n_independent=float(n_ind),
        warnings=tuple(warn),
    )


def recording_stats(rec, frame_interval_s: float | None = None) -> ChannelStats:
    """:func:`channel_stats` of a :class:`hil.capture.sigmf_io.Recording`.

    ``frame_interval_s`` defaults to the sounder's ``frame_interval_s`` stored in the metadata, else
    the median time between consecutive slots.
    """
    fr = rec.frames
    if frame_interval_s is None:
        frame_interval_s = rec.global_info.get("hil:sounder", {}).get("frame_interval_s")
    if not frame_interval_s:
        ds = np.diff(fr.slot)
        dt = np.diff(fr.t_s)
        ok = (ds > 0) & np.isfinite(dt)
        frame_interval_s = float(np.median(dt[ok] / ds[ok])) if ok.any() else 1.0
    return channel_stats(
        rec.estimates,
        fr.slot,
        frame_interval_s=frame_interval_s,
        snr_db=fr.snr_db,
        cfo_hz=fr.cfo_hz,
        estimate_var=fr.estimate_var,
        subcarrier_spacing_hz=rec.global_info.get("hil:subcarrier_spacing_hz"),
    )
