"""Frechet distance: closed form checked against scipy.linalg.sqrtm and basic properties."""

import numpy as np
import scipy.linalg

from hil.baim.metrics import frechet_distance


def _rand_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_matches_sqrtm_formula_and_is_symmetric():
    rng = np.random.default_rng(1)
    d = 6
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    c1, c2 = _rand_cov(rng, d), _rand_cov(rng, d)
    ref = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    assert abs(frechet_distance(m1, c1, m2, c2) - ref) < 1e-8 * max(1.0, ref)
    assert abs(frechet_distance(m1, c1, m2, c2) - frechet_distance(m2, c2, m1, c1)) < 1e-9


def test_zero_for_identical_and_mean_shift_only_for_equal_covariances():
    rng = np.random.default_rng(2)
    c = _rand_cov(rng, 5)
    m = rng.standard_normal(5)
    assert abs(frechet_distance(m, c, m, c)) < 1e-9
    assert abs(frechet_distance(m, c, m + 1.0, c) - 5.0) < 1e-8
    # singular covariance (a dead feature) stays finite
    c0 = c.copy()
    c0[0, :] = c0[:, 0] = 0.0
    assert np.isfinite(frechet_distance(m, c0, m, c))
