"""Summary statistics shared by the reports: a mean with its Student-t 95 % interval."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats


def mean_ci95(values: Iterable[float]) -> dict:
    """Mean, sample standard deviation and the two-sided 95 % Student-t interval of the mean.

    Returns ``{"n", "mean", "std", "ci95": [lo, hi]}``; with fewer than two values ``std`` and
    ``ci95`` are None (no interval can be estimated from one run). The interval is scipy's
    ``ttest_1samp(...).confidence_interval(0.95)``: it treats the values as independent draws
    (e.g. one per seed), and ``[mean, mean]`` when they are all equal.
    """
    x = np.asarray([float(v) for v in values], np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"mean_ci95 needs at least one value, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"mean_ci95 needs finite values, got {x.tolist()}")
    mean = float(x.mean())
    if x.size < 2:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    if std == 0.0:
        return {"n": int(x.size), "mean": mean, "std": 0.0, "ci95": [mean, mean]}
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    lo, hi = float(ci.low), float(ci.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # pragma: no cover - guarded by std > 0
        raise ValueError(f"no interval for {x.tolist()}")
    return {"n": int(x.size), "mean": mean, "std": std, "ci95": [lo, hi]}


def mean_db(values_db: Iterable[float]) -> float:
    """The mean of dB values taken in linear power units (10 log10 of the mean of 10^(v/10))."""
    v = np.asarray([float(x) for x in values_db], np.float64)
    if v.size == 0:
        raise ValueError("mean_db needs at least one value")
    return float(10 * np.log10(np.mean(10.0 ** (v / 10.0))))


__all__ = ["mean_ci95", "mean_db"]
