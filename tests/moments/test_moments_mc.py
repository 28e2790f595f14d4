"""exact.moments(..., method="monte_carlo"): estimated moments with batch-means confidence intervals."""
import numpy as np
import pytest
from scipy import stats

import refgrad
from refgrad import exact
from refgrad._moments import monte_carlo as _moments_mc
from refgrad.objectives import FunctionObjective, SquaredDistance

#: α of the coverage tests (two-sided binomial acceptance region).
ALPHA = 1e-3


def _problem():
    return refgrad.Bernoulli([0.3, -0.5, 1.0]), SquaredDistance([0.45, 0.1, 0.8])


def _coverage(name, what, confidence=0.9, seeds=range(40), **options):
    dist, f = _problem()
    ex = exact.moments(name, dist, f, **options)
    target = ex.mean if what == "mean" else ex.variance
    hits = 0
    for seed in seeds:
        mc = exact.moments(name, dist, f, method="monte_carlo", samples=30 * 1024, rng=seed,
                           confidence=confidence, **options)
        lo, hi = mc.mean_interval if what == "mean" else mc.variance_interval
        hits += int(np.sum((lo <= target) & (target <= hi)))
    return hits, len(seeds) * target.size


@pytest.mark.parametrize("what", ["mean", "variance"])
@pytest.mark.parametrize("name", ["reinforce", "arm"])
def test_interval_coverage(name, what):
    """120 per-coordinate 90 % intervals (40 seeds × 3 coordinates) cover the exact value about 108 times.

    Acceptance: the central binomial(120, 0.9) region at α = 1e-3 (a half-width without
    the √B, or the batch-means variance taken as the estimate's variance, fails it).
    """
    hits, trials = _coverage(name, what)
    lo, hi = stats.binom.ppf([ALPHA / 2, 1 - ALPHA / 2], trials, 0.9)
    assert lo <= hits <= hi, f"{hits} of {trials} intervals cover; accepted [{lo:.0f}, {hi:.0f}]"


def test_agrees_with_quadrature_for_continuous_noise():
    dist = refgrad.Bernoulli([0.4])
    f = SquaredDistance(0.45)
    ex = exact.moments("rebar", dist, f)
    mc = exact.moments("rebar", dist, f, method="monte_carlo", samples=1 << 18, rng=3, confidence=0.999)
    assert mc.exact is False and mc.method == "monte_carlo"
    for (lo, hi), target in ((mc.mean_interval, ex.mean), (mc.variance_interval, ex.variance)):
        assert np.all((lo <= target) & (target <= hi)), (lo, hi, target)


def test_beyond_integration_at_d100():
    """REBAR on 100 bits: the exact methods refuse (for an objective not declared separable); the estimate
    brackets the known gradient."""
    theta_logits = np.linspace(-2.0, 2.0, 100)
    dist = refgrad.Bernoulli(theta_logits)
    t = np.linspace(0.1, 0.9, 100)
    f = SquaredDistance(t)
    with pytest.raises(ValueError):
        exact.moments("rebar", dist, FunctionObjective(f.value, f.grad))
    p = 1.0 / (1.0 + np.exp(-theta_logits))
    gradient = p * (1.0 - p) * (1.0 - 2.0 * t)  # ∂/∂ℓ_i of θ_i (1 − t_i)² + (1 − θ_i) t_i²
    mc = exact.moments("rebar", dist, f, method="monte_carlo", samples=40 * 1024, rng=1,
                       confidence=1 - 1e-3 / 100)  # Bonferroni over the 100 coordinates
    lo, hi = mc.mean_interval
    assert np.all((lo <= gradient) & (gradient <= hi))
    assert mc.cov.shape == (100, 100) and np.allclose(mc.cov, mc.cov.T)
    assert "not exact" in str(mc)


def test_bit_identical_for_chunk_sizes_and_objective_path():
    dist, f = _problem()
    spec = refgrad.ESTIMATORS["reinforce"]
    opts = spec.options(dist)
    a = _moments_mc.monte_carlo_moments(spec, dist, f, opts, samples=40_000, rng=2)
    b = _moments_mc.monte_carlo_moments(spec, dist, f, opts, samples=40_000, rng=2, chunk_rows=3000)
    c = _moments_mc.monte_carlo_moments(spec, dist, FunctionObjective(f.value, f.grad), opts, samples=40_000, rng=2)
    for other in (b, c):
        for key in ("mean", "cov", "mean_halfwidth", "variance_halfwidth"):
            np.testing.assert_array_equal(getattr(other, key), getattr(a, key), err_msg=key)
    m = refgrad.estimate_moments("reinforce", dist, f, 40_000, rng=2)
    np.testing.assert_array_equal(a.mean, m.mean)
    np.testing.assert_allclose(a.variance, m.variance, rtol=1e-12)


def test_covariance_matches_numpy():
    dist, f = _problem()
    est = refgrad.estimate("reinforce", dist, f, 40_000, rng=5)
    mc = exact.moments("reinforce", dist, f, method="monte_carlo", samples=40_000, rng=5)
    np.testing.assert_allclose(mc.cov, np.cov(est.T), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(mc.mean, est.mean(axis=0), rtol=1e-12)


def test_bad_arguments():
    dist, f = _problem()
    with pytest.raises(ValueError, match="samples must be >= 30720"):
        exact.moments("reinforce", dist, f, method="monte_carlo", samples=1000)
    with pytest.raises(ValueError, match="confidence must be in"):
        exact.moments("reinforce", dist, f, method="monte_carlo", confidence=1.0)
    with pytest.raises(TypeError, match="confidence"):
        exact.moments("reinforce", dist, f, method="monte_carlo", confidence="high")
    with pytest.raises(ValueError, match="only to method='monte_carlo'"):
        exact.moments("reinforce", dist, f, samples=10**5)
    with pytest.raises(ValueError, match="only to method='monte_carlo'"):
        exact.moments("reinforce", dist, f, confidence=0.9)
