"""refgrad.testing assertions, the variance orderings (exact and statistical), and the battery of
hypothesis-drawn problems every unbiased estimator must pass.

Statistical assertions use refgrad.testing's defaults (α = 1e-3, seed 20261123) unless stated.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refgrad
from objective_kinds import objective_for
from refgrad import exact, stats, testing
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.objectives import SquaredDistance, Table

TOY = SquaredDistance(np.array([0.45]))
UNBIASED = sorted(name for name, spec in refgrad.ESTIMATORS.items() if spec.unbiased and name != "pathwise")


# ------------------------------------------------------------------ the assertions themselves


def test_assert_unbiased_passes_and_fails_with_a_table():
    dist = Bernoulli(np.array([0.3, -1.0]))
    f = Table(np.array([[1.0, -0.5], [0.2, 2.0]]))
    res = testing.assert_unbiased("reinforce", dist, f)
    assert not res.reject
    with pytest.raises(AssertionError) as info:
        testing.assert_unbiased("gumbel_softmax", dist, f, tau=0.5)
    text = str(info.value)
    for word in ("target", "mean", "std.err", "Holm p", "looks biased"):
        assert word in text
    testing.assert_biased("gumbel_softmax", dist, f, tau=0.5)
    with pytest.raises(AssertionError, match="no bias detected"):
        testing.assert_biased("reinforce", dist, f)


def test_assert_unbiased_on_samples_and_target():
    rng = np.random.default_rng(5)
    samples = rng.normal(1.0, 2.0, size=(4000, 3))
    testing.assert_unbiased(samples, target=np.ones(3))
    with pytest.raises(AssertionError):
        testing.assert_unbiased(samples, target=np.full(3, 1.3))
    with pytest.raises(ValueError, match="target"):
        testing.assert_unbiased(samples, target=np.ones(2))
    with pytest.raises(ValueError, match="options"):
        testing.assert_unbiased(samples, target=np.ones(3), tau=1.0)
    with pytest.raises(ValueError, match="dist and f"):
        testing.assert_unbiased("reinforce")


@pytest.mark.filterwarnings("ignore:disarm. INCONCLUSIVE:refgrad.testing.InconclusiveWarning")
def test_rare_outcomes_are_reported():
    dist = Bernoulli(np.array([9.0, 0.0]))
    f = Table(np.array([[0.0, 1.0], [2.0, -1.0]]))
    with pytest.warns(testing.InconclusiveWarning, match="rarest outcome"):
        testing.assert_unbiased("disarm", dist, f, n=4000)
    assert testing.rarest_outcome(dist) == pytest.approx(1 / (1 + np.exp(9.0)))


@pytest.mark.filterwarnings("ignore::refgrad.testing.HeavyTailWarning")
@pytest.mark.filterwarnings("ignore:reinforce. the rarest outcome:refgrad.testing.InconclusiveWarning")
def test_calibration_warnings_reach_the_caller_with_the_label():
    # n = 30 draws of a skewed estimator: below the n at which the bootstrap calibration was checked
    dist = Bernoulli(np.array([-1.5, 0.3, 2.0]))
    f = SquaredDistance(0.45)
    with pytest.warns(testing.CalibrationWarning, match=r"^reinforce: n = 30 samples are too few") as info:
        testing.assert_unbiased("reinforce", dist, f, n=30)
    assert all(w.filename == __file__ for w in info if issubclass(w.category, testing.CalibrationWarning))
    # the normal-theory test on the same kind of sample: its estimated size is stated
    with pytest.warns(testing.CalibrationWarning, match=r"level is not guaranteed: estimated size"):
        testing.assert_unbiased("reinforce", dist, f, n=100, calibration="asymptotic")
    res = testing.assert_unbiased("reinforce", dist, f, n=400)
    assert res.calibration == "bootstrap" and res.resamples == 20000
    assert testing.CalibrationWarning is stats.CalibrationWarning


def test_unclear_inputs_get_clear_errors():
    dist = Bernoulli(np.array([0.3, -1.0]))
    f = Table(np.array([[1.0, -0.5], [0.2, 2.0]]))
    with pytest.raises(TypeError, match="dist must be a discrete refgrad distribution.*Normal"):
        testing.rarest_outcome(Normal(np.array([0.5])))
    with pytest.raises(TypeError, match="dist must be a discrete"):
        testing.rarest_outcome("bernoulli")
    for bad in ("tau", ["tau"], 0.5):
        with pytest.raises(TypeError, match=r"options_a must be a dict of estimator options.*got"):
            testing.assert_variance_less("disarm", "arm", dist, f, options_a=bad)
    with pytest.raises(TypeError, match="options_b must map option names"):
        testing.assert_variance_less("disarm", "arm", dist, f, options_b={1: 2})
    with pytest.raises(TypeError, match="equal_cost"):
        testing.assert_variance_less("disarm", "arm", dist, f, equal_cost="yes")
    rng = np.random.default_rng(6)
    with pytest.raises(TypeError, match="name_or_samples"):
        testing.assert_unbiased(rng.standard_normal((100, 2)) + 0j, target=np.zeros(2))
    with pytest.raises(TypeError, match="target"):
        testing.assert_unbiased(rng.standard_normal((100, 2)), target=["0", "0"])


def test_heavy_tails_are_reported_not_silently_judged():
    # Gumbel-Softmax at τ = 0.02 on one bit: a rare, huge pathwise derivative dominates the sample.
    dist = Bernoulli(np.array([0.2]))
    with pytest.warns(testing.HeavyTailWarning):
        try:
            testing.assert_biased("gumbel_softmax", dist, TOY, n=2000, tau=0.02)
        except AssertionError:
            pass
    # and a light-tailed estimator raises no such warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", testing.HeavyTailWarning)
        testing.assert_unbiased("disarm", dist, TOY)


# ------------------------------------------------------------------ variance orderings at equal cost


def test_disarm_below_arm_exactly_and_statistically():
    dist = Bernoulli(np.array([0.8, -0.3]))
    f = Table(np.array([[0.0, 1.5], [-1.0, 0.7]]))
    arm, disarm = exact.moments("arm", dist, f), exact.moments("disarm", dist, f)
    assert np.all(disarm.variance_per_cost < arm.variance_per_cost)  # same cost (2): a theorem
    testing.assert_variance_less("disarm", "arm", dist, f, coordinates="all")


def test_optimal_baseline_below_no_baseline_exactly_and_statistically():
    dist = Bernoulli(np.array([0.8, -0.3]))
    f = Table(np.array([[3.0, 4.5], [2.0, 3.7]]))
    none = exact.moments("reinforce", dist, f)
    best = exact.moments("reinforce", dist, f, baseline="optimal")
    assert np.all(best.variance < none.variance)
    testing.assert_variance_less("reinforce", "reinforce", dist, f, options_a={"baseline": "optimal"},
                                 coordinates="all")


def test_rebar_optimal_eta_never_worse_than_reinforce_per_estimate_but_not_per_cost():
    # η = 0 is REINFORCE, so the exact optimum η* can only lower the per-estimate variance (a theorem).
    # At equal cost (REBAR evaluates f three times) the ordering is NOT a theorem: on the toy at
    # τ = 0.5 REBAR(η*) loses to REINFORCE per evaluation of f; with τ = 100 it wins.
    dist = Bernoulli(np.array([0.4]))
    rf = exact.moments("reinforce", dist, TOY)
    for tau, wins_per_cost in ((0.5, False), (100.0, True)):
        rb = exact.moments("rebar", dist, TOY, tau=tau, eta="optimal")
        assert np.all(rb.variance <= rf.variance + 1e-15)
        assert bool(np.all(rb.variance_per_cost < rf.variance_per_cost)) == wins_per_cost, (tau, rb, rf)
    testing.assert_variance_less("rebar", "reinforce", dist, TOY, n=20000, options_a={"tau": 100.0, "eta": 70.0})


def test_rebar_with_a_poor_eta_has_more_variance_than_reinforce():
    # The belief "REBAR reduces variance" fails with a poor η: exact ratio above 1 even per estimate.
    dist = Bernoulli(np.array([0.4]))
    rf = exact.moments("reinforce", dist, TOY)
    for eta in (5.0, -3.0, 1.0):
        rb = exact.moments("rebar", dist, TOY, tau=0.5, eta=eta)
        assert rb.variance[0] > rf.variance[0], eta
    testing.assert_variance_less("reinforce", "rebar", dist, TOY, equal_cost=False, options_b={"tau": 0.5, "eta": 5.0})


def test_rloo_against_reinforce_average_exactly():
    # rloo(m) vs the average of m REINFORCE estimates (equal cost m): RLOO wins when E[f] is far
    # from 0, loses when E[f] ≈ 0 (its leave-one-out baseline then only adds noise).  Exact numbers.
    dist = Bernoulli(np.array([0.8, -0.3]))
    base = np.array([[0.2, -1.1], [0.9, 0.1]])
    for shift, rloo_wins in ((4.0, True), (-exact.expectation(dist, Table(base)), False)):
        f = Table(base + shift)
        r = exact.moments("reinforce", dist, f).variance / 3  # average of m = 3 estimates
        loo = exact.moments("rloo", dist, f, m=3).variance
        assert bool(np.all(loo < r)) == rloo_wins, (shift, loo, r)


# ------------------------------------------------------------------ the battery


def _problem(data, family):
    d = data.draw(st.integers(1, 4 if family != "categorical" else 2), label="d")
    big = st.floats(-12.0, 12.0, allow_nan=False)
    if family == "categorical":
        K = data.draw(st.integers(2, 4 if d == 1 else 3), label="K")
        logits = np.array(data.draw(st.lists(st.lists(big, min_size=K, max_size=K), min_size=d, max_size=d)))
        dist = Categorical(logits)
    else:
        K = 2
        logits = np.array(data.draw(st.lists(big, min_size=d, max_size=d)))
        dist = Bernoulli(logits) if family == "bernoulli" else GaussianThreshold(logits / 4)
    seed = data.draw(st.integers(0, 2**16), label="table seed")
    return dist, Table(np.random.default_rng(seed).normal(size=(K,) * d))


@pytest.mark.parametrize("name", UNBIASED)
@settings(max_examples=4, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_battery_unbiased_estimators(name, data):
    spec = refgrad.ESTIMATORS[name]
    family = data.draw(st.sampled_from(spec.families), label="family")
    dist, f = _problem(data, family)
    options = {"m": 3} if name == "rloo" else {"eta": "optimal"} if name == "rebar" else {}
    f = objective_for(name, f, options)  # a multi-sample estimator (vimco) gets LogMeanExp(f, k)
    # Monte Carlo: refgrad.testing defaults (α = 1e-3, seed 20261123), with n large enough that the
    # rarest marginal outcome is expected >= 30 times (n = 30 / p_min, at least 4000).  A sample
    # that never sees a rare outcome cannot test its contribution (the sample variance then
    # understates the truth and the test can reject an unbiased estimator); problems needing more
    # than 400000 draws are left to the exact oracle below.
    n = max(4000, int(np.ceil(30 / testing.rarest_outcome(dist))))
    if n <= 400000:
        with warnings.catch_warnings():
            # the verdict is asserted; the diagnostics (heavy tails, a level the bootstrap budget cannot
            # guarantee at alpha = 1e-3) are what the warnings test above checks
            warnings.simplefilter("ignore", testing.HeavyTailWarning)
            warnings.simplefilter("ignore", testing.CalibrationWarning)
            testing.assert_unbiased(name, dist, f, n=n, **options)
    # exact mean = exact gradient wherever the oracle applies
    try:
        m = exact.moments(name, dist, f, **options)
    except ValueError as exc:
        # refusals that name their limit: too many configurations, or (ARSM) a logit spread beyond the accuracy
        # of its cell integration
        assert "dimension" in str(exc) or "limit" in str(exc) or "refused rather than inexact" in str(exc), exc
        return
    np.testing.assert_allclose(m.mean, exact.gradient(dist, f), atol=1e-9)


# ------------------------------------------------------------------ foreign samples, options, tolerance

TWO = Bernoulli(np.array([0.3, -1.0]))
TWO_F = Table(np.array([[1.0, -0.5], [0.2, 2.0]]))


def _foreign_rloo(n, seed):
    """Another implementation's RLOO over two samples (two evaluations of f per row), written from scratch."""
    rng = np.random.default_rng(seed)
    theta = 1.0 / (1.0 + np.exp(-TWO.logits))
    b = (rng.random((n, 2, 2)) < theta).astype(float)  # (row, sample j, bit)
    fb = TWO_F.value(b.reshape(-1, 2)).reshape(n, 2)
    score = b - theta
    return 0.5 * ((fb[:, 0] - fb[:, 1])[:, None] * score[:, 0] + (fb[:, 1] - fb[:, 0])[:, None] * score[:, 1])


def test_foreign_samples_need_their_cost_per_row():
    # before: each row of an array counted as one evaluation of f, so this RLOO (two evaluations per row)
    # "had" half the per-evaluation variance of refgrad's identical RLOO, with p = 0
    foreign = _foreign_rloo(20000, 3)
    testing.assert_unbiased(foreign, TWO, TWO_F)
    with pytest.raises(ValueError, match=r"cost: a is an array of samples.*cost=\(cost_a, cost_b\)"):
        testing.assert_variance_less(foreign, "rloo", TWO, TWO_F, options_b={"m": 2})
    with pytest.raises(AssertionError, match=r"not shown.*costs 2 and 2") as info:
        testing.assert_variance_less(foreign, "rloo", TWO, TWO_F, cost=(2, None), options_b={"m": 2})
    assert isinstance(info.value.result, stats.VarianceResult) and info.value.result.pvalue > 0.01
    with pytest.raises(ValueError, match=r"cost\[1\] = 3 disagrees with estimator 'rloo', which costs 2"):
        testing.assert_variance_less(foreign, "rloo", TWO, TWO_F, cost=(2, 3))
    with pytest.raises(ValueError, match=r"cost\[0\].*must be a finite real number > 0; got -1"):
        testing.assert_variance_less(foreign, "rloo", TWO, TWO_F, cost=(-1, None))
    with pytest.raises(TypeError, match="cost must be a pair"):
        testing.assert_variance_less(foreign, "rloo", TWO, TWO_F, cost=2)
    # per row, without a cost: a comparison of the estimates themselves
    testing.assert_variance_less(foreign * 0.5, foreign[::-1], equal_cost=False)


def test_variance_less_takes_estimator_options_like_assert_unbiased():
    # before: assert_variance_less(..., m=4) was a TypeError (only options_a/options_b were accepted)
    assert np.all(exact.moments("rloo", TWO, TWO_F, m=4).variance < exact.moments("rloo", TWO, TWO_F, m=2).variance)
    testing.assert_variance_less("rloo", "rloo", TWO, TWO_F, m=4, options_b={"m": 2}, equal_cost=False)
    testing.assert_unbiased("rloo", TWO, TWO_F, m=4)
    with pytest.raises(ValueError, match=r"options \['m'\] are given to both.*b = 'reinforce'.*options_a"):
        testing.assert_variance_less("rloo", "reinforce", TWO, TWO_F, m=4)
    with pytest.raises(ValueError, match=r"options \['m'\] given, but b is an array"):
        testing.assert_variance_less("rloo", _foreign_rloo(100, 1), TWO, TWO_F, m=4, cost=(None, 2))


def test_assert_unbiased_attaches_its_result_and_explains_the_pvalue():
    # before: the result was lost when the assertion rejected, and the message showed one p without its parts
    with pytest.raises(AssertionError) as info:
        testing.assert_unbiased("gumbel_softmax", TWO, TWO_F, tau=0.5)
    result = info.value.result
    assert isinstance(result, stats.UnbiasednessResult) and result.reject
    text = str(info.value)
    assert f"Hotelling T² p = {result.hotelling_pvalue:.3g}" in text and f"p = {result.holm_pvalue:.3g}" in text
    assert "min(1, 2" in text  # the combination rule
    with pytest.raises(AssertionError) as info:
        testing.assert_biased("reinforce", TWO, TWO_F)
    assert not info.value.result.reject


def _bias_gumbel_softmax():
    dist, f = Bernoulli(np.array([0.3])), SquaredDistance(np.array([0.45]))
    target = exact.gradient(dist, f)
    return dist, f, target, exact.moments("gumbel_softmax", dist, f, tau=0.5).mean - target


def test_assert_unbiased_with_a_tolerance():
    # before: rtol fell into the estimator options ("estimator options ['rtol'] given") and there was no atol
    dist, f, target, bias = _bias_gumbel_softmax()  # exact bias 0.00744, per-estimate sd 0.118
    with pytest.raises(AssertionError, match="looks biased"):
        testing.assert_unbiased("gumbel_softmax", dist, f, n=40000, tau=0.5)
    res = testing.assert_unbiased("gumbel_softmax", dist, f, n=40000, tau=0.5, atol=1.2 * abs(bias[0]))
    assert "tolerance atol" in res.notes[-1] and res.target[0] == target[0] and res.method == "holm"
    testing.assert_unbiased("gumbel_softmax", dist, f, n=40000, tau=0.5, rtol=1.2 * abs(bias[0] / target[0]))
    with pytest.raises(AssertionError, match="looks biased beyond the tolerance") as info:
        testing.assert_unbiased("gumbel_softmax", dist, f, n=40000, tau=0.5, atol=0.3 * abs(bias[0]))
    assert info.value.result.reject
    # no tolerance: the ordinary test, p-value for p-value
    samples = refgrad.estimate("gumbel_softmax", TWO, TWO_F, 3000, rng=4, tau=0.5)
    plain = stats.unbiasedness_test(samples, exact.gradient(TWO, TWO_F), alpha=1e-3)
    assert testing.assert_biased(samples, TWO, TWO_F, atol=0.0).pvalue == plain.pvalue
    with pytest.raises(ValueError, match=r"method must be 'holm' \(or None\) when a tolerance is given"):
        testing.assert_unbiased(samples, TWO, TWO_F, atol=0.1, method="both")
    for bad, err in ((-0.1, ValueError), (np.inf, ValueError), ("0.1", TypeError), (True, TypeError)):
        with pytest.raises(err, match=r"rtol must be a finite real number >= 0"):
            testing.assert_unbiased(samples, TWO, TWO_F, rtol=bad)


def _tolerance_rejections(factor, reps, n, alpha, seed):
    """Rejections of assert_unbiased(atol = factor |exact bias|) in ``reps`` replications of Gumbel-Softmax."""
    dist, f, target, bias = _bias_gumbel_softmax()
    gen, count = np.random.default_rng(seed), 0
    for _ in range(reps):
        samples = refgrad.estimate("gumbel_softmax", dist, f, n, rng=gen, tau=0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                testing.assert_unbiased(samples, target=target, atol=factor * abs(bias[0]), alpha=alpha)
            except AssertionError:
                count += 1
    return count


def _tolerance_calibration(reps):
    """Measured size at the edge of the band and power beyond it (module docstring of refgrad.testing)."""
    from scipy.stats import binom

    alpha = 0.05
    edge = _tolerance_rejections(1.0, reps, 1000, alpha, seed=7)  # true |bias| = atol: rate ≈ alpha/2
    inside = _tolerance_rejections(2.0, reps, 1000, alpha, seed=8)  # well inside the band: rate ≈ 0
    lo, hi = binom.ppf(0.001, reps, alpha / 2), binom.ppf(0.999, reps, alpha / 2)
    assert lo <= edge <= hi, (edge, lo, hi)
    assert inside <= hi
    # power: atol = |bias| / 4 at n = 4000, the excess is 3.0 standard errors (two-sided t at 0.05: power 0.85)
    power = _tolerance_rejections(0.25, reps, 4000, alpha, seed=9)
    assert power >= binom.ppf(0.001, reps, 0.85), power
    return edge / reps, inside / reps, power / reps


def test_tolerance_calibration_quick():
    # α = 0.05, 200 replications, seeds 7, 8, 9; bounds: 99.8 % binomial intervals
    _tolerance_calibration(200)


@pytest.mark.slow
def test_tolerance_calibration_full():
    # the numbers in refgrad.testing's module docstring: 4000 replications
    _tolerance_calibration(4000)


def test_float32_samples_reach_the_test_as_float32():
    # before: the assertion converted samples to float64 first, so the float32 rounding of a sum-to-zero
    # categorical score read as a departure from its hyperplane (a spurious InconclusiveWarning)
    dist, f = Categorical(np.array([[0.0, 1.0, 2.0]])), SquaredDistance(np.array([[0.2, 0.3, 0.5]]))
    samples = refgrad.estimate("reinforce", dist, f, 4000, rng=1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not testing.assert_unbiased(samples, dist, f).reject
