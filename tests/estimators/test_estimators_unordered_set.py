"""unordered_set: set probabilities against brute-force orderings (and mpmath at 50 digits), Gumbel-top-k
set frequencies, exact moments against exact.gradient (with and without the built-in baseline), k = 1 as
REINFORCE, the biased literal baseline at k = 1, the baseline's variance reduction, the joint score
against finite differences, noise = rng, Monte Carlo unbiasedness, mutation tests and option checks.

Statistical checks, each with a fixed seed:

* Gumbel-top-k set frequencies: chi-square goodness of fit of 5000 sets (k = 2 of 4 categories) to the
  exact p(S), alpha = 0.01, seed 11.  Measured (400 seeds, ``spec.draw_noise(dist, 5000, rng=seed)``,
  seeds 0..399): false-alarm rate 3/400 = 0.0075 (95 % binomial interval [0.0015, 0.022], containing
  0.01); power 400/400 against a deliberately wrong sampler (keys log p + 0.8 G, a tempered Gumbel).
* Monte Carlo unbiasedness: ``refgrad.testing.assert_unbiased`` at alpha = 1e-3 (its calibration is
  measured in refgrad.testing), n = 20000, seeds stated in the tests; the mutations are detected by it.
"""
import itertools
import math
import warnings

import mpmath
import numpy as np
import pytest
from scipy import stats

import refgrad
import refgrad.estimators.unordered_set as us
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, Table

NAME = "unordered_set"
SPEC = ESTIMATORS[NAME]


def problems():
    rng = np.random.default_rng(5)
    return {
        "bernoulli_d1": (Bernoulli(np.array([0.7])), Table(rng.normal(size=(2,)))),
        "bernoulli_d3": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical_2x3": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])),
                            Table(rng.normal(size=(3, 3)))),
        "categorical_1x5": (Categorical(np.array([[0.2, -1.0, 0.5, 0.0, 0.5]])), Table(rng.normal(size=(5,)))),
        "categorical_inf": (Categorical(np.array([[0.5, -np.inf, 0.1], [1.0, 0.0, -2.0]])),
                            Table(rng.normal(size=(3, 3)))),
        "bernoulli_inf": (Bernoulli(np.array([np.inf, -0.7, 0.2])), Table(rng.normal(size=(2, 2, 2)))),
    }


# ---------------------------------------------------------------- set probabilities


def mp_probs(logits):
    """softmax of one row of logits in mpmath (50 digits)."""
    mpmath.mp.dps = 50
    e = [mpmath.exp(mpmath.mpf(x)) for x in logits]
    z = mpmath.fsum(e)
    return [x / z for x in e]


def brute_force(p, S, removed=()):
    """p^{D∖removed}(S∖removed) by the sum over orderings, denominators 1 − Σ of what was drawn (mpmath p)."""
    rest = [s for s in S if s not in removed]
    total = mpmath.mpf(0)
    for order in itertools.permutations(rest):
        gone = mpmath.fsum(p[r] for r in removed)
        term = mpmath.mpf(1)
        for s in order:
            term *= p[s] / (1 - gone)
            gone += p[s]
        total += term
    return total


@pytest.mark.parametrize("logits, k", [([[0.3, -0.5, 1.0, 0.2, -2.0]], 3), ([[0.0, 1.0, -1.0, 2.0]], 4),
                                       ([[30.0, 0.0, 1.0, -5.0, 2.0]], 3), ([[0.1, 0.4, -0.3, 0.9, 0.0, 1.3]], 5)])
def test_subset_probabilities_match_brute_force_orderings(logits, k):
    dist = Categorical(np.array(logits))
    joint = us.joint_support(dist)
    p = joint.probs
    sets = np.array(list(itertools.combinations(range(p.size), k)))
    P = us.subset_probabilities(p[sets], joint.outside_mass(sets))
    p = mp_probs(logits[0])
    for row, S in zip(P, sets.tolist()):
        checks = [(0, ())] + [(1 << i, (S[i],)) for i in range(k)]
        checks += [((1 << i) | (1 << j), (S[i], S[j])) for i in range(k) for j in range(i + 1, k)]
        for mask, removed in checks:
            want = float(brute_force(p, S, removed))
            assert row[mask] == pytest.approx(want, rel=1e-13, abs=0.0), (S, removed)
    assert math.isclose(P[:, 0].sum(), 1.0, rel_tol=1e-13)


def test_outside_mass_keeps_relative_accuracy_when_the_set_holds_almost_all_mass():
    dist = Categorical(np.array([[40.0, 38.0, 0.0, -3.0]]))
    joint = us.joint_support(dist)
    mpmath.mp.dps = 50
    lg = [mpmath.mpf(x) for x in (40.0, 38.0, 0.0, -3.0)]
    z = mpmath.fsum(mpmath.exp(x) for x in lg)
    want = float((mpmath.exp(lg[2]) + mpmath.exp(lg[3])) / z)  # ≈ 4.6e-18: 1 − p0 − p1 would give 0
    got = joint.outside_mass(np.array([[0, 1]]))[0]
    assert got == pytest.approx(want, rel=1e-14)


def test_gumbel_top_k_set_frequencies_match_p_of_S():
    dist = Categorical(np.array([[0.5, -0.3, 1.0, -1.5]]))
    joint = us.joint_support(dist)
    sets = np.array(list(itertools.combinations(range(4), 2)))
    _, p_S = us.set_estimates(dist, lambda b: np.zeros(len(b)), joint, sets, "none")
    top = us.top_k_sets(joint, SPEC.draw_noise(dist, 5000, rng=11, k=2)["u"], 2)
    codes = top[:, 0] * 4 + top[:, 1]
    observed = np.array([np.sum(codes == a * 4 + b) for a, b in sets])
    assert stats.chisquare(observed, 5000 * p_S).pvalue > 0.01


# ---------------------------------------------------------------- exact moments


@pytest.mark.parametrize("case", sorted(problems()))
@pytest.mark.parametrize("baseline", ["builtin", "none"])
def test_exact_mean_equals_gradient(case, baseline):
    dist, f = problems()[case]
    grad = exact.gradient(dist, f)
    possible = int(np.count_nonzero(dist.enumerate()[1] > 0))
    for k in sorted({1, 2, min(3, possible), possible}):
        m = exact.moments(NAME, dist, f, k=k, baseline=baseline)
        assert m.method == "enumeration"
        np.testing.assert_allclose(m.mean, grad, rtol=0, atol=1e-12, err_msg=f"k={k}")
        if k == possible:  # the whole support: the exact gradient, variance 0
            assert np.max(np.abs(m.cov)) < 1e-14  # E[g²] − E[g]² in rounding


@pytest.mark.parametrize("case", ["bernoulli_d3", "categorical_2x3"])
@pytest.mark.parametrize("baseline", ["builtin", "none"])
def test_k1_is_reinforce(case, baseline):
    dist, f = problems()[case]
    mine = exact.moments(NAME, dist, f, k=1, baseline=baseline)
    ref = exact.moments("reinforce", dist, f)
    np.testing.assert_allclose(mine.mean, ref.mean, rtol=0, atol=1e-13)
    np.testing.assert_allclose(mine.cov, ref.cov, rtol=0, atol=1e-13)
    # sample by sample: the set is the Gumbel-argmax of the joint log-probabilities, the estimate f(s) ∇log p(s)
    noise = SPEC.draw_noise(dist, 50, rng=3, k=1)
    joint = us.joint_support(dist)
    s = np.argmax(joint.logp[None] + refgrad.random.gumbel(noise["u"]), axis=1)
    b = joint.configs[s]
    want = f(b).reshape((-1,) + (1,) * len(dist.param_shape)) * dist.score(b)
    np.testing.assert_allclose(estimate(NAME, dist, f, noise=noise, k=1, baseline=baseline), want,
                               rtol=1e-14, atol=1e-15)


def test_literal_baseline_at_k1_would_be_biased():
    """The formula read literally at k = 1 gives B_s = p(s) f(s): mean θ(1 − θ)² = 0.125, not 0.25."""
    dist = Bernoulli(np.array([0.0]))
    configs, probs = dist.enumerate()
    fb = configs[:, 0]
    literal = sum(probs[i] * (1 - probs[i]) * fb[i] * dist.score(configs[i:i + 1])[0, 0] for i in range(2))
    assert literal == pytest.approx(0.125, abs=1e-15)
    assert exact.gradient(dist, lambda b: b[:, 0])[0] == pytest.approx(0.25, abs=1e-15)
    m = exact.moments(NAME, dist, lambda b: b[:, 0], k=1, baseline="builtin")
    assert m.mean[0] == pytest.approx(0.25, abs=1e-15)


def test_builtin_baseline_reduces_variance_on_an_offset_objective():
    """f = 5 + Table: a large common offset, which the built-in baseline removes (numbers in the module doc)."""
    rng = np.random.default_rng(2)
    dist = Categorical(np.array([[0.3, -0.5, 1.0], [0.4, 0.0, -1.0], [1.0, 0.2, -0.3]]))
    f = Table(5.0 + rng.normal(size=(3, 3, 3)))
    for k in (2, 4):
        with_bl = np.trace(exact.moments(NAME, dist, f, k=k, baseline="builtin").cov.reshape(9, 9))
        without = np.trace(exact.moments(NAME, dist, f, k=k, baseline="none").cov.reshape(9, 9))
        assert with_bl < 0.2 * without, (k, with_bl, without)


# ---------------------------------------------------------------- pieces, noise, Monte Carlo


@pytest.mark.parametrize("case", ["bernoulli_d3", "categorical_2x3"])
def test_joint_score_against_finite_differences(case):
    dist, _ = problems()[case]
    configs, _ = dist.enumerate()
    make = type(dist)
    fd = central_fd(lambda x: make(x).log_prob(configs), dist.params)
    np.testing.assert_allclose(dist.score(configs), np.moveaxis(fd, 0, 0), rtol=0, atol=1e-8)


def test_noise_equals_rng_and_cost():
    dist, f = problems()["categorical_2x3"]
    for opts in ({}, {"k": 3, "baseline": "none"}):
        a = estimate(NAME, dist, f, n=64, rng=9, **opts)
        b = estimate(NAME, dist, f, noise=SPEC.draw_noise(dist, 64, rng=9, **opts), **opts)
        np.testing.assert_array_equal(a, b)
    calls = []
    counted = FunctionObjective(lambda b: (calls.append(len(b)), f(b))[1])
    estimate(NAME, dist, counted, n=10, rng=0, k=3)
    assert sum(calls) == 10 * 3 == 10 * SPEC.cost_of(dist, k=3)


@pytest.mark.parametrize("case, k, seed", [("bernoulli_d3", 3, 21), ("categorical_2x3", 2, 22)])
def test_monte_carlo_unbiased(case, k, seed):
    dist, f = problems()[case]
    testing.assert_unbiased(NAME, dist, f, n=20000, alpha=1e-3, rng=seed, k=k)


# ---------------------------------------------------------------- mutations


def _drop_self_term(p_set, f_set, outside, baseline):
    """The baseline without its s' = s term p(s) f(s): biased."""
    w, p_S = ORIGINAL_WEIGHTS(p_set, f_set, outside, baseline)
    P = us.subset_probabilities(p_set, outside)
    single = np.stack([P[:, 1 << i] for i in range(p_set.shape[1])], axis=1)
    return w + (p_set * single / p_S[:, None]) * p_set * f_set, p_S


def _ratio_without_leave_one_out(p_set, f_set, outside, baseline):
    """R(S, s) replaced by 1 / p(S) (the leave-one-out probability dropped)."""
    w, p_S = ORIGINAL_WEIGHTS(p_set, f_set, outside, "none")
    return p_set * f_set / p_S[:, None], p_S


ORIGINAL_WEIGHTS = us._weights


@pytest.mark.parametrize("mutation, baseline", [(_drop_self_term, "builtin"), (_ratio_without_leave_one_out, "none")])
def test_broken_formula_fails_the_exact_and_monte_carlo_checks(monkeypatch, mutation, baseline):
    dist, f = problems()["categorical_2x3"]
    f = Table(2.0 + f.values) if hasattr(f, "values") else f
    monkeypatch.setattr(us, "_weights", mutation)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(exact.moments(NAME, dist, f, k=2, baseline=baseline).mean,
                                   exact.gradient(dist, f), rtol=0, atol=1e-12)
    with warnings.catch_warnings(), pytest.raises(AssertionError):
        warnings.simplefilter("ignore", testing.HeavyTailWarning)  # 1/p(S) makes the broken one heavy-tailed
        testing.assert_unbiased(NAME, dist, f, n=20000, alpha=1e-3, rng=22, k=2, baseline=baseline)


# ---------------------------------------------------------------- options and limits


@pytest.mark.parametrize("opts, words", [
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": 10}, "k must be"),
    ({"baseline": "optimal"}, "baseline must be one of"),
    ({"k": 2.0}, "k must be an integer"),
    ({"baseline": None}, "baseline must be one of"),
])
def test_bad_options(opts, words):
    dist, f = problems()["categorical_2x3"]
    wrong_type = isinstance(opts.get("k"), float) or opts.get("baseline", "") is None
    with pytest.raises(TypeError if wrong_type else ValueError, match=words):
        estimate(NAME, dist, f, n=2, rng=0, **opts)


def test_k_beyond_possible_outcomes_and_support_limit_are_refused():
    dist, f = problems()["categorical_inf"]  # 6 of the 9 outcomes are possible
    with pytest.raises(ValueError, match="k must be"):
        estimate(NAME, dist, f, n=2, rng=0, k=7)
    estimate(NAME, dist, f, n=2, rng=0, k=6)
    with pytest.raises(ValueError, match="MAX_SUPPORT = 65536"):
        estimate(NAME, Bernoulli(np.zeros(17)), lambda b: b.sum(axis=1), n=2, rng=0)
    with pytest.raises(ValueError, match="k must be"):
        estimate(NAME, Bernoulli(np.zeros(5)), lambda b: b.sum(axis=1), n=2, rng=0, k=us.MAX_K + 1)


def test_outcome_enumeration_refuses_beyond_limit():
    dist, f = problems()["categorical_2x3"]
    with pytest.raises(ValueError, match="limit=50"):
        exact.moments(NAME, dist, f, k=3, limit=50)  # C(9, 3) = 84 sets


def test_default_k_is_two_or_the_number_of_possible_outcomes():
    dist, f = problems()["categorical_2x3"]
    assert SPEC.options(dist)["k"] == 2 and SPEC.cost_of(dist) == 2
    certain = Bernoulli(np.array([np.inf, -np.inf]))  # one possible outcome
    assert SPEC.options(certain)["k"] == 1
    np.testing.assert_array_equal(estimate(NAME, certain, lambda b: b.sum(axis=1), n=3, rng=0), 0.0)
