"""ARSM: exact moments by cell enumeration against exact.gradient and Monte Carlo, ARM on bits,
noise= equals rng=, Monte Carlo unbiasedness, mutation tests and option checks.

* Exact checks: ``exact.moments("arsm", ...)`` (method "enumeration" through ``outcomes``) against
  ``exact.gradient`` to 1e-12 on K = 3, K = 4, a 2 x 3 product and two bits, all with non-linear
  ``Table`` objectives; on bits the exact covariance equals ARM's (piecewise quadrature, an
  independent oracle) to 1e-13.
* Variance against Monte Carlo: per coordinate, z = (s² − σ²) / SE(s²) with the sample fourth
  central moment, two-sided, alpha = 1e-3 Bonferroni over the coordinates, seed 3; n = 2·10^5 by
  default (~1 s), n = 10^6 in the slow test (``python -m pytest -q -m slow tests/estimators/test_estimators_arsm.py``).
* ``assert_unbiased`` at alpha = 1e-3, seed 11 (n = 20000).  Its false-alarm rate on refgrad's own
  estimators is calibrated in refgrad.testing / tests/estimators/test_estimators_indecater.py; not re-measured here.
"""
import numpy as np
import pytest
from scipy import stats as sps

import refgrad.estimators.arsm as arsm
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.objectives import Table

NAME = "arsm"


def problems():
    rng = np.random.default_rng(7)
    return {
        "K3": (Categorical(np.array([[0.0, 1.0, -0.5]])), Table(np.array([1.0, 3.0, -2.0]))),
        "K4": (Categorical(np.array([[0.3, -1.0, 0.5, 2.0]])), Table(np.array([1.0, -3.0, 2.0, 0.5]))),
        "2x3": (Categorical(rng.normal(size=(2, 3))), Table(rng.normal(size=(3, 3)))),
        "bits": (Bernoulli(np.array([0.4, -1.2])), Table(rng.normal(size=(2, 2)))),
    }


@pytest.mark.parametrize("key", ["K3", "K4", "2x3", "bits"])
def test_exact_mean_is_gradient(key):
    dist, f = problems()[key]
    m = exact.moments(NAME, dist, f)
    assert m.method == "enumeration"
    np.testing.assert_allclose(m.mean, exact.gradient(dist, f), rtol=0, atol=1e-12)


def test_exact_mean_against_finite_differences_of_expectation():
    # the parametrisation (logits φ, softmax) checked without exact.gradient
    dist, f = problems()["K3"]
    m = exact.moments(NAME, dist, f).mean
    h = 1e-6
    fd = np.zeros_like(m)
    for c in range(3):
        e = np.zeros((1, 3))
        e[0, c] = h
        fd[0, c] = (exact.expectation(Categorical(dist.logits + e), f)
                    - exact.expectation(Categorical(dist.logits - e), f)) / (2 * h)
    np.testing.assert_allclose(m, fd, atol=1e-8)


def test_bits_are_arm():
    dist, f = problems()["bits"]
    noise = ESTIMATORS[NAME].draw_noise(dist, 200, rng=5)
    np.testing.assert_allclose(estimate(NAME, dist, f, noise=noise), estimate("arm", dist, f, noise=noise),
                               rtol=0, atol=1e-15)
    ma, mb = exact.moments(NAME, dist, f), exact.moments("arm", dist, f)
    np.testing.assert_allclose(ma.cov, mb.cov, rtol=0, atol=1e-13)


def _variance_check(n):
    dist, f = problems()["2x3"]
    m = exact.moments(NAME, dist, f)
    g = estimate(NAME, dist, f, n=n, rng=3).reshape(n, -1)
    dev = g - g.mean(axis=0)
    s2 = (dev**2).mean(axis=0)
    se = np.sqrt(((dev**2 - s2) ** 2).mean(axis=0) / n)
    z = (s2 - np.diag(m.cov)) / se
    crit = sps.norm.ppf(1 - 1e-3 / (2 * z.size))
    assert np.all(np.abs(z) < crit), z
    # the covariance sums to zero along each variable's categories (Σ_c ĝ_kc = 0)
    assert np.abs(m.cov.reshape(2, 3, 6).sum(axis=1)).max() < 1e-13


def test_variance_against_monte_carlo():
    _variance_check(200_000)


@pytest.mark.slow
def test_variance_against_monte_carlo_1e6():
    _variance_check(1_000_000)


def test_estimates_sum_to_zero_per_variable():
    dist, f = problems()["2x3"]
    g = estimate(NAME, dist, f, n=100, rng=1)
    assert np.abs(g.sum(axis=-1)).max() < 1e-13


def test_noise_equals_rng():
    for key in ("2x3", "bits"):
        dist, f = problems()[key]
        noise = ESTIMATORS[NAME].draw_noise(dist, 50, rng=9)
        np.testing.assert_array_equal(estimate(NAME, dist, f, n=50, rng=9), estimate(NAME, dist, f, noise=noise))


def test_cost():
    assert ESTIMATORS[NAME].cost_of(Categorical(np.zeros((3, 4)))) == 7
    assert ESTIMATORS[NAME].cost_of(Bernoulli(np.zeros(5))) == 2


def test_monte_carlo_unbiased():
    for key in ("K4", "2x3"):
        dist, f = problems()[key]
        testing.assert_unbiased(NAME, dist, f, n=20000, alpha=1e-3, rng=11)


def test_cells_tile_the_simplex():
    cells = arsm.simplex_cells(np.array([0.3, -1.0, 0.5, 2.0]))
    from scipy.spatial import ConvexHull
    assert abs(sum(ConvexHull(v).volume for v in cells) - 1 / 6) < 1e-13


def test_log_pi_accurate_at_extreme_uniforms():
    dist = Categorical(np.array([[0.0, 0.0, 0.0]]))
    f = Table(np.array([0.0, 1.0, 0.0]))
    u = np.array([[[1 - 2.0**-53, 0.5, 2.0**-53]]])
    g = estimate(NAME, dist, f, noise={"u": u})
    assert np.all(np.isfinite(g))


def test_mutation_sign_of_augmentation(monkeypatch):
    dist, f = problems()["K3"]
    orig = arsm._logits
    monkeypatch.setattr(arsm, "_logits", lambda d: -orig(d))
    assert np.abs(exact.moments(NAME, dist, f).mean - exact.gradient(dist, f)).max() > 0.1
    with pytest.raises(AssertionError):
        test_exact_mean_is_gradient("K3")
    with pytest.raises(AssertionError):
        test_bits_are_arm()


def test_mutation_no_swap(monkeypatch):
    dist, f = problems()["2x3"]
    orig = arsm._swaps
    monkeypatch.setattr(arsm, "_swaps", lambda C: (orig(C)[0], np.zeros((C, C), dtype=np.int64)))
    with pytest.raises(AssertionError):
        test_exact_mean_is_gradient("2x3")


def test_bad_inputs():
    f = Table(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="finite logits"):
        estimate(NAME, Categorical(np.array([[0.0, -np.inf, 1.0]])), f, n=2, rng=0)
    with pytest.raises(ValueError, match="unknown option"):
        estimate(NAME, Categorical(np.zeros((1, 3))), f, n=2, rng=0, m=2)
    dist, f4 = problems()["K4"]
    with pytest.raises(ValueError, match="limit"):
        exact.moments(NAME, dist, f4, method="enumeration", limit=10)  # "auto" turns to the separable method


def test_mutation_centroid_rule_breaks_variance(monkeypatch):
    # β = α = 1/(n+1): every rule point at the simplex centroid (exact for degree 1 only)
    import math
    import types
    monkeypatch.setattr(arsm, "math", types.SimpleNamespace(sqrt=lambda x: 0.0, factorial=math.factorial))
    arsm._cell_points_cached.cache_clear()  # the rule points are cached by the logits
    try:
        with pytest.raises(AssertionError):
            _variance_check(200_000)
    finally:
        arsm._cell_points_cached.cache_clear()  # no mutated points left for later tests


def test_exact_moments_refused_beyond_max_exact_k_before_building_cells(monkeypatch):
    from refgrad.objectives import SquaredDistance

    def never(*_):  # building K = 5 cells takes minutes: the refusal must come first
        raise AssertionError("cells were built")

    monkeypatch.setattr(arsm, "simplex_cells", never)
    dist = Categorical(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"K <= 4 categories per variable.*got K = 5"):
        exact.moments("arsm", dist, SquaredDistance(0.3), method="enumeration")
