"""The detection-rate interval of hil bench phy: Clopper-Pearson through scipy.stats.binomtest."""

from __future__ import annotations

import pytest

from hil.phy.bench import clopper_pearson


def test_closed_forms_at_the_edges():
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    n = 10
    assert clopper_pearson(0, n) == pytest.approx((0.0, 1 - 0.025 ** (1 / n)), abs=1e-12)
    assert clopper_pearson(n, n) == pytest.approx((0.025 ** (1 / n), 1.0), abs=1e-12)


def test_a_tabulated_interval():
    # 7 of 20 at 95 %: (0.1539, 0.5922), the textbook exact interval
    lo, hi = clopper_pearson(7, 20)
    assert lo == pytest.approx(0.15391, abs=5e-5) and hi == pytest.approx(0.59219, abs=5e-5)


def test_symmetry_and_width():
    for k in range(0, 41, 5):
        lo, hi = clopper_pearson(k, 40)
        lo2, hi2 = clopper_pearson(40 - k, 40)
        assert lo == pytest.approx(1 - hi2, abs=1e-12) and hi == pytest.approx(1 - lo2, abs=1e-12)
        assert lo <= k / 40 <= hi
    assert clopper_pearson(20, 40, conf=0.99)[0] < clopper_pearson(20, 40, conf=0.95)[0]


def test_no_trials_is_the_whole_interval():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
