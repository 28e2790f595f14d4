"""IndeCateR: exact moments, the hand-derived ∂q_i(k)/∂φ against finite differences, a literal twin of
the formula, the Rao-Blackwell identity with REINFORCE, baseline invariance, cost, determinism,
Monte Carlo unbiasedness, mutation tests and option checks.

* Exact checks enumerate the m-sample tuples (``exact.moments``, method "enumeration") and compare
  the mean with ``exact.gradient`` to 1e-12.
* Monte Carlo checks use ``refgrad.testing.assert_unbiased`` / ``assert_biased`` at alpha = 1e-3 with
  the seed stated in each test.  Measured on this estimator (``test_monte_carlo_calibration``, marked
  slow, ~40 s: ``python -m pytest -q -m slow tests/estimators/test_estimators_indecater.py``; 400 replications of
  n = 4000 each, seeds 1000..1399): false alarms of ``assert_unbiased`` at alpha = 0.05 were 11/400
  (Bernoulli), 14/400 (Categorical), 9/400 (GaussianThreshold) -- at or below alpha (the combined test is
  conservative by construction), not significantly above it (one-sided binomial test at 0.01); power of
  ``assert_biased`` at alpha = 1e-3 against the two Bernoulli mutations 400/400 each.
"""
import warnings

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

import refgrad
import refgrad.estimators.indecater as indecater
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import _fused
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, SquaredDistance, Table

NAME = "indecater"


def make_dist(family, params):
    return {"bernoulli": Bernoulli, "categorical": Categorical, "gaussian_threshold": GaussianThreshold}[family](params)


def problems():
    rng = np.random.default_rng(7)
    return {
        "bernoulli": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "gaussian_threshold": (GaussianThreshold(np.array([0.3, -0.8])), Table(rng.normal(size=(2, 2)))),
        # infinite parameters: a certain bit, an impossible category
        "bernoulli_inf": (Bernoulli(np.array([np.inf, -0.7])), Table(rng.normal(size=(2, 2)))),
        "categorical_inf": (Categorical(np.array([[0.5, -np.inf, 0.1], [1.0, 0.0, -2.0]])),
                            Table(rng.normal(size=(3, 3)))),
        "categorical_k4": (Categorical(rng.normal(size=(2, 4))), Table(rng.normal(size=(4, 4)))),
    }


FAMILY_OF = {"bernoulli": "bernoulli", "categorical": "categorical", "gaussian_threshold": "gaussian_threshold",
             "bernoulli_inf": "bernoulli", "categorical_inf": "categorical", "categorical_k4": "categorical"}


# ---------------------------------------------------------------- independent twin of the formula


def probs_of(family, params):
    """``q_i(k)`` of shape (d, K) from SciPy, K = 2 for bits (index = the bit's value)."""
    if family == "categorical":
        return special.softmax(params, axis=-1)
    p1 = special.expit(params) if family == "bernoulli" else special.ndtr(params)
    return np.stack([1.0 - p1, p1], axis=-1)


def value_of(f, family, config, K):
    """f at one configuration given as category indices."""
    z = np.eye(K)[config] if family == "categorical" else np.asarray(config, dtype=float)
    return float(f.value(z[None])[0])


def indices_of(family, b):
    return np.argmax(b, axis=-1) if family == "categorical" else b.astype(int)


def twin(family, params, f, b):
    """Σ_k ∂q_i(k)/∂φ f(b with b_i := k) for one sample b, loops, ∂q by central differences of SciPy's q."""
    d = params.shape[0]
    K = params.shape[1] if family == "categorical" else 2
    finite = np.where(np.isfinite(params), params, 0.0)
    dq = central_fd(lambda x: probs_of(family, np.where(np.isfinite(params), x, params)), finite, h=1e-6)
    cur = indices_of(family, b)
    g = np.zeros(params.shape)
    for i in range(d):
        for k in range(K):
            config = cur.copy()
            config[i] = k
            g += dq[i, k] * value_of(f, family, config, K)
    return g


def exact_moments_mean(dist, f, **options):
    return exact.moments(NAME, dist, f, method="enumeration", **options).mean


# ---------------------------------------------------------------- tests


def test_registered_spec():
    spec = ESTIMATORS[NAME]
    assert spec.unbiased and set(spec.families) == {"bernoulli", "categorical", "gaussian_threshold"}
    assert spec.defaults == {"m": 1} and spec.given_samples is not None
    assert spec.shape_in_noise == "piecewise_constant"
    assert "De Smet" in spec.doc and "1 + d (K − 1)" in spec.doc
    cat = Categorical(np.zeros((3, 5)))
    assert spec.cost_of(cat) == 1 + 3 * 4 and spec.cost_of(cat, m=3) == 3 * 13
    assert spec.cost_of(Bernoulli(np.zeros(4)), m=2) == 2 * 5
    assert spec.noise_layout(cat, m=2)[0].shape == (2, 3, 5)


@pytest.mark.parametrize("case", sorted(FAMILY_OF))
@pytest.mark.parametrize("m", [1, 2])
def test_exact_mean_is_the_exact_gradient(case, m):
    dist, f = problems()[case]
    mean = exact_moments_mean(dist, f, m=m)
    np.testing.assert_allclose(mean, exact.gradient(dist, f), rtol=0, atol=1e-12)


def test_exact_mean_on_the_toy_and_a_larger_categorical():
    toy = Bernoulli(np.array([0.0]))
    np.testing.assert_allclose(exact_moments_mean(toy, SquaredDistance(np.array([0.499]))),
                               exact.gradient(toy, SquaredDistance(np.array([0.499]))), rtol=0, atol=1e-12)
    rng = np.random.default_rng(3)
    dist, f = Categorical(rng.normal(size=(3, 5))), Table(rng.normal(size=(5, 5, 5)))
    np.testing.assert_allclose(exact_moments_mean(dist, f), exact.gradient(dist, f), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dist", [Bernoulli(np.array([0.3])), Categorical(np.array([[0.2, -1.0, 0.5, 0.0]]))])
def test_one_variable_is_summed_exactly(dist):
    # d = 1: nothing is left to sample, every estimate is the exact gradient (variance 0)
    f = Table(np.random.default_rng(4).normal(size=(dist.K if dist.family == "categorical" else 2,)))
    mom = exact.moments(NAME, dist, f, method="enumeration")
    np.testing.assert_allclose(mom.cov, 0.0, atol=1e-15)
    np.testing.assert_allclose(estimate(NAME, dist, f, n=5, rng=0), np.broadcast_to(exact.gradient(dist, f), (5,)
                               + dist.param_shape), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", sorted(FAMILY_OF))
def test_estimate_is_the_literal_formula_with_fd_derivatives(case):
    # ∂q_i(k)/∂φ (softmax, σ, Φ) from central differences of SciPy's q; f at b with b_i := k by loops
    dist, f = problems()[case]
    family = FAMILY_OF[case]
    noise = ESTIMATORS[NAME].draw_noise(dist, 6, rng=5)
    g = estimate(NAME, dist, f, noise=noise)
    b = dist.from_uniforms(noise["u"][:, 0])
    for row in range(6):
        np.testing.assert_allclose(g[row], twin(family, dist.params, f, b[row]), rtol=1e-7, atol=1e-8)


def test_average_over_m_samples_is_the_mean_of_single_sample_estimates():
    dist, f = problems()["categorical"]
    noise = ESTIMATORS[NAME].draw_noise(dist, 4, rng=9, m=3)
    g3 = estimate(NAME, dist, f, noise=noise, m=3)
    singles = [estimate(NAME, dist, f, noise={"u": noise["u"][:, j:j + 1]}) for j in range(3)]
    np.testing.assert_allclose(g3, np.mean(singles, axis=0), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "gaussian_threshold", "categorical_inf"])
def test_rao_blackwell_identity_with_reinforce(case):
    # ĝ_i(b) = Σ_k q_i(k) REINFORCE_i(b with b_i := k): REINFORCE's block i averaged over b_i given b_{≠i}
    dist, f = problems()[case]
    family = FAMILY_OF[case]
    configs, _ = dist.enumerate()
    g = ESTIMATORS[NAME].given_samples(dist, f, configs[:, None], m=1)
    q = probs_of(family, dist.params)
    cur = indices_of(family, configs)
    K = q.shape[1]
    for row in range(configs.shape[0]):
        for i in range(dist.d):
            expected = np.zeros(dist.param_shape)
            for k in range(K):
                config = cur[row].copy()
                config[i] = k
                z = np.eye(K)[config] if family == "categorical" else config.astype(float)
                r = ESTIMATORS["reinforce"].given_samples(dist, f, z[None, None], baseline=None)[0]
                expected[i] += q[i, k] * r[i]
            np.testing.assert_allclose(g[row, i], expected[i], rtol=1e-12, atol=1e-14)
    # hence per-coordinate variance at most REINFORCE's, exactly
    ours = np.diag(exact.moments(NAME, dist, f).cov)
    theirs = np.diag(exact.moments("reinforce", dist, f).cov)
    assert np.all(ours <= theirs + 1e-14)


@pytest.mark.parametrize("case", ["bernoulli", "categorical"])
def test_no_baseline_can_act(case):
    # Σ_k ∂q_i(k) = 0: adding a constant to f leaves every estimate unchanged (to rounding)
    dist, f = problems()[case]
    shifted = Table(f.values + 3.7)
    noise = ESTIMATORS[NAME].draw_noise(dist, 50, rng=2)
    np.testing.assert_allclose(estimate(NAME, dist, shifted, noise=noise), estimate(NAME, dist, f, noise=noise),
                               rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", ["bernoulli", "categorical_k4"])
@pytest.mark.parametrize("m", [1, 2])
def test_cost_counts_the_evaluations_of_f(case, m):
    dist, f = problems()[case]
    rows = []

    def counted(z):
        rows.append(z.shape[0])
        return f.value(z)

    n = 7
    estimate(NAME, dist, FunctionObjective(counted), n=n, rng=0, m=m)
    assert sum(rows) == n * ESTIMATORS[NAME].cost_of(dist, m=m)


def test_noise_equals_rng_and_blocking_does_not_change_the_result(monkeypatch):
    dist, f = problems()["categorical_k4"]
    spec = ESTIMATORS[NAME]
    by_rng = estimate(NAME, dist, f, n=40, rng=123, m=2)
    by_noise = estimate(NAME, dist, f, noise=spec.draw_noise(dist, 40, rng=123, m=2), m=2)
    np.testing.assert_array_equal(by_rng, by_noise)
    monkeypatch.setattr(indecater, "_BLOCK_FLOATS", 5)  # one configuration per block
    np.testing.assert_array_equal(estimate(NAME, dist, f, n=40, rng=123, m=2), by_rng)


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "gaussian_threshold"])
def test_unbiased_monte_carlo(case):
    # alpha = 1e-3, seed 31, n = 4000
    dist, f = problems()[case]
    testing.assert_unbiased(NAME, dist, f, n=4000, alpha=1e-3, rng=31)


# ---------------------------------------------------------------- mutation tests


def _patch(monkeypatch, mutation):
    """Break one term of the estimator (module-level functions, so given_samples and compute both see it)."""
    if mutation == "drop_conditional_mean":  # categorical block p_ik F_ik: the subtracted Σ_j p_ij F_ij dropped
        monkeypatch.setattr(indecater, "_block_gradient", lambda dist, F: dist.probs[None] * F)
    elif mutation == "shift_neighbours":  # variable i set to (k + 1) mod K instead of k
        original = indecater.neighbour_values
        monkeypatch.setattr(indecater, "neighbour_values", lambda dist, f, b: np.roll(original(dist, f, b), 1, axis=-1))
    else:  # "probability_for_derivative": q_i(1) in place of ∂q_i(1)/∂ℓ_i = σ(ℓ)σ(−ℓ) for bits
        monkeypatch.setattr(indecater, "_block_gradient",
                            lambda dist, F: dist.probs[None] * (F[:, :, 1] - F[:, :, 0]))


@pytest.mark.parametrize("case, mutation", [("categorical", "drop_conditional_mean"),
                                            ("categorical", "shift_neighbours"),
                                            ("bernoulli", "shift_neighbours"),
                                            ("bernoulli", "probability_for_derivative")])
def test_broken_formula_fails_the_exact_check(monkeypatch, case, mutation):
    _patch(monkeypatch, mutation)
    with _fused.fused_kernels(False), pytest.raises(AssertionError):  # the mutations are of the batched path
        test_exact_mean_is_the_exact_gradient(case, 1)


@pytest.mark.parametrize("mutation", ["shift_neighbours", "probability_for_derivative"])
def test_broken_formula_is_detected_by_monte_carlo(monkeypatch, mutation):
    # alpha = 1e-3, seed 31, n = 4000 (the Bernoulli problem: its estimates span every direction, so the
    # categorical problem's structurally constant directions do not make the test inconclusive)
    _patch(monkeypatch, mutation)
    dist, f = problems()["bernoulli"]
    with _fused.fused_kernels(False):
        testing.assert_biased(NAME, dist, f, n=4000, alpha=1e-3, rng=31)


def _rejections(assertion, dist, f, reps, alpha):
    count = 0
    for seed in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                getattr(testing, assertion)(NAME, dist, f, n=4000, alpha=alpha, rng=1000 + seed)
            except AssertionError:
                continue
        count += 1
    return reps - count if assertion == "assert_unbiased" else count


@pytest.mark.slow
def test_monte_carlo_calibration(monkeypatch):
    # 400 replications, seeds 1000..1399, n = 4000; numbers in the module docstring
    reps = 400
    for case in ("bernoulli", "categorical", "gaussian_threshold"):
        alarms = _rejections("assert_unbiased", *problems()[case], reps, 0.05)
        assert sps.binomtest(alarms, reps, 0.05, alternative="greater").pvalue > 0.01, (case, alarms)
    for mutation in ("shift_neighbours", "probability_for_derivative"):
        with monkeypatch.context() as mp, _fused.fused_kernels(False):
            _patch(mp, mutation)
            detected = _rejections("assert_biased", *problems()["bernoulli"], reps, 1e-3)
        assert sps.binomtest(detected, reps, 0.99, alternative="less").pvalue > 0.01, (mutation, detected)


# ---------------------------------------------------------------- options


def test_bad_options():
    dist, f = problems()["categorical"]
    with pytest.raises(ValueError, match=r"m must be an integer >= 1; got 0"):
        estimate(NAME, dist, f, n=2, rng=0, m=0)
    with pytest.raises(TypeError, match=r"m must be an integer >= 1; got 1.5"):
        estimate(NAME, dist, f, n=2, rng=0, m=1.5)
    with pytest.raises(TypeError, match=r"m must be an integer"):
        estimate(NAME, dist, f, n=2, rng=0, m=True)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['baseline'\]; allowed options: m"):
        estimate(NAME, dist, f, n=2, rng=0, baseline=0.5)
    with pytest.raises(ValueError, match=r"does not support family 'normal'"):
        estimate(NAME, refgrad.Normal(np.zeros(2)), f, n=2, rng=0)
    with pytest.raises(ValueError, match=r"m"):
        estimate(NAME, dist, f, n=2, rng=0, m=2**62)
