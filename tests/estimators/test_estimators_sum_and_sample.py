"""sum_and_sample: exact moments (piecewise oracle) against exact.gradient and an independent twin,
the Rao-Blackwell variance bound against REINFORCE, the literal formula with finite-difference scores,
cost, noise = rng, Monte Carlo unbiasedness, mutation tests and option checks.

Monte Carlo checks use ``refgrad.testing.assert_unbiased`` / ``assert_biased`` at alpha = 1e-3 with the
seed stated in each test (n = 4000).
"""
import itertools

import numpy as np
import pytest
from scipy import special

import refgrad
import refgrad.estimators.sum_and_sample as sas
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import ENUMERATION_LIMIT, Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import _fused
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, SquaredDistance, Table

NAME = "sum_and_sample"


def problems():
    rng = np.random.default_rng(7)
    return {
        "bernoulli": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "categorical_d1": (Categorical(np.array([[0.2, -1.0, 0.5, 0.0, 0.5]])), Table(rng.normal(size=(5,)))),
        "gaussian_threshold": (GaussianThreshold(np.array([0.3, -0.8])), Table(rng.normal(size=(2, 2)))),
        "bernoulli_inf": (Bernoulli(np.array([np.inf, -0.7, 0.2])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical_inf": (Categorical(np.array([[0.5, -np.inf, 0.1], [1.0, 0.0, -2.0]])),
                            Table(rng.normal(size=(3, 3)))),
    }


# ---------------------------------------------------------------- independent twin


def log_q_of(case, params, config):
    """log q(config) from SciPy, config as per-variable indices."""
    if case.startswith("categorical"):
        return float(sum(special.log_softmax(params[i])[c] for i, c in enumerate(config)))
    p1 = special.expit(params) if case.startswith("bernoulli") else special.ndtr(params)
    with np.errstate(divide="ignore"):
        return float(sum(np.log(p1[i] if c else 1.0 - p1[i]) for i, c in enumerate(config)))


def twin_terms(case, dist, f, k):
    """(top terms sum, [(weight, term)] over the rest) by loops; scores by central differences of log q."""
    params = dist.params
    K = params.shape[1] if case.startswith("categorical") else 2
    configs = list(itertools.product(range(K), repeat=params.shape[0]))  # enumeration order
    q = np.array([np.exp(log_q_of(case, params, c)) for c in configs])
    order = sorted(range(len(q)), key=lambda i: (-q[i], i))
    top, rest = order[:k], sorted(order[k:])
    finite = np.where(np.isfinite(params), params, 0.0)

    def term(i):
        c = configs[i]
        z = np.eye(K)[list(c)] if K > 2 or case.startswith("categorical") else np.array(c, dtype=float)
        if q[i] == 0.0:
            return np.zeros(params.shape)
        s = central_fd(lambda x: log_q_of(case, np.where(np.isfinite(params), x, params), c), finite, h=1e-6)
        s = np.where(np.isfinite(params), s, 0.0)
        return float(f.value(z[None])[0]) * s

    summed = sum((q[i] * term(i) for i in top), np.zeros(params.shape))
    mass = q[rest].sum()
    return summed, [(q[i] / mass, mass * term(i)) for i in rest if q[i] > 0.0], configs, top, rest, q


def twin_moments(case, dist, f, k):
    summed, rest, *_ = twin_terms(case, dist, f, k)
    if not rest:
        return summed, np.zeros((summed.size, summed.size))
    w = np.array([r[0] for r in rest])
    g = np.array([(summed + r[1]).ravel() for r in rest])
    mean = w @ g
    return mean.reshape(summed.shape), (g - mean).T @ ((g - mean) * w[:, None])


# ---------------------------------------------------------------- tests


def test_registered_spec():
    spec = ESTIMATORS[NAME]
    assert spec.unbiased and set(spec.families) == {"bernoulli", "categorical", "gaussian_threshold"}
    assert spec.defaults == {"k": 1} and spec.shape_in_noise == "piecewise_constant"
    assert "Liu, Regier" in spec.doc and "JOINT".lower() in spec.doc.lower()
    cat = Categorical(np.zeros((2, 3)))
    assert spec.cost_of(cat) == 2 and spec.cost_of(cat, k=4) == 5 and spec.cost_of(cat, k=9) == 9
    assert spec.noise_layout(cat, k=2)[0].shape == (1,)


@pytest.mark.parametrize("case", sorted(problems()))
@pytest.mark.parametrize("k", [0, 1, 3])
def test_exact_mean_is_the_exact_gradient(case, k):
    dist, f = problems()[case]
    mom = exact.moments(NAME, dist, f, k=k)
    assert mom.method == "piecewise"
    np.testing.assert_allclose(mom.mean, exact.gradient(dist, f), rtol=0, atol=1e-12)


def test_exact_mean_on_the_toy_and_a_larger_categorical():
    toy = Bernoulli(np.array([0.0]))
    f = SquaredDistance(np.array([0.499]))
    np.testing.assert_allclose(exact.moments(NAME, toy, f).mean, exact.gradient(toy, f), rtol=0, atol=1e-12)
    rng = np.random.default_rng(3)
    dist, f = Categorical(rng.normal(size=(3, 5))), Table(rng.normal(size=(5, 5, 5)))
    for k in (2, 40):
        np.testing.assert_allclose(exact.moments(NAME, dist, f, k=k).mean, exact.gradient(dist, f), rtol=0,
                                   atol=1e-12)


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "gaussian_threshold", "categorical_inf"])
@pytest.mark.parametrize("k", [1, 3])
def test_exact_moments_match_the_twin(case, k):
    dist, f = problems()[case]
    mom = exact.moments(NAME, dist, f, k=k)
    mean, cov = twin_moments(case, dist, f, k)
    np.testing.assert_allclose(mom.mean, mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mom.cov, cov, rtol=0, atol=1e-8)


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "categorical_d1", "gaussian_threshold"])
def test_variance_at_most_reinforce_and_k0_is_reinforce(case):
    dist, f = problems()[case]
    ref = exact.moments("reinforce", dist, f).cov
    np.testing.assert_allclose(exact.moments(NAME, dist, f, k=0).cov, ref, rtol=0, atol=1e-13)
    for k in (1, 2, 3):
        cov = exact.moments(NAME, dist, f, k=k).cov
        assert np.all(np.diag(cov) <= np.diag(ref) + 1e-14)
        assert np.linalg.eigvalsh(ref - cov).min() > -1e-13  # Cov(ĝ) ⪯ Cov(REINFORCE)
        assert np.trace(cov) < np.trace(ref)
    full = exact.moments(NAME, dist, f, k=dist.support_size).cov
    np.testing.assert_allclose(full, 0.0, atol=1e-15)


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "gaussian_threshold", "bernoulli_inf"])
def test_estimate_is_the_literal_formula_with_fd_scores(case):
    dist, f = problems()[case]
    noise = ESTIMATORS[NAME].draw_noise(dist, 6, rng=5, k=2)
    g = estimate(NAME, dist, f, noise=noise, k=2)
    summed, _, configs, top, rest, q = twin_terms(case, dist, f, 2)
    mass = q[rest].sum()
    cum = np.cumsum(q[rest]) / mass
    for row, u in enumerate(noise["u"][:, 0]):
        i = rest[int(np.searchsorted(cum, u, side="right"))]
        _, terms, *_ = twin_terms(case, dist, f, 2)
        by_index = {r: t for r, t in zip([r for r in rest if q[r] > 0], [t for _, t in terms])}
        np.testing.assert_allclose(g[row], summed + by_index[i], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("k", [0, 2])
def test_cost_counts_the_evaluations_of_f(k):
    dist, f = problems()["categorical"]
    rows = []

    def counted(z):
        rows.append(z.shape[0])
        return f.value(z)

    estimate(NAME, dist, FunctionObjective(counted), n=1, rng=0, k=k)
    assert sum(rows) == ESTIMATORS[NAME].cost_of(dist, k=k)
    rows.clear()
    estimate(NAME, dist, FunctionObjective(counted), n=7, rng=0, k=k)
    assert sum(rows) == k + 7  # the k summed evaluations are shared by the batch


def test_noise_equals_rng():
    dist, f = problems()["categorical"]
    spec = ESTIMATORS[NAME]
    np.testing.assert_array_equal(estimate(NAME, dist, f, n=40, rng=123, k=2),
                                  estimate(NAME, dist, f, noise=spec.draw_noise(dist, 40, rng=123, k=2), k=2))


@pytest.mark.parametrize("case", ["bernoulli", "categorical", "gaussian_threshold"])
def test_unbiased_monte_carlo(case):
    # alpha = 1e-3, seed 31, n = 4000
    dist, f = problems()[case]
    testing.assert_unbiased(NAME, dist, f, n=4000, alpha=1e-3, rng=31, k=2)


# ---------------------------------------------------------------- mutation tests


def _patch(monkeypatch, mutation):
    if mutation == "unweighted_sample":  # q(C) weight of the sampled term dropped
        original = sas.sampled_part
        monkeypatch.setattr(sas, "sampled_part", lambda dist, f, configs, rest, mass, j:
                            original(dist, f, configs, rest, 1.0, j))
    else:  # "drop_summed": the exactly summed top-k term left out
        monkeypatch.setattr(sas, "summed_part", lambda dist, f, configs, probs, top: np.zeros(dist.param_shape))


@pytest.mark.parametrize("case", ["bernoulli", "categorical"])
@pytest.mark.parametrize("mutation", ["unweighted_sample", "drop_summed"])
def test_broken_formula_fails_the_exact_check(monkeypatch, case, mutation):
    _patch(monkeypatch, mutation)
    with _fused.fused_kernels(False), pytest.raises(AssertionError):  # the mutations are of the batched path
        test_exact_mean_is_the_exact_gradient(case, 1)


@pytest.mark.parametrize("mutation", ["unweighted_sample", "drop_summed"])
def test_broken_formula_is_detected_by_monte_carlo(monkeypatch, mutation):
    # alpha = 1e-3, seed 31, n = 4000
    _patch(monkeypatch, mutation)
    dist, f = problems()["bernoulli"]
    with _fused.fused_kernels(False):
        testing.assert_biased(NAME, dist, f, n=4000, alpha=1e-3, rng=31, k=2)


# ---------------------------------------------------------------- options


def test_bad_options():
    dist, f = problems()["categorical"]
    with pytest.raises(ValueError, match=r"k must be an integer >= 0; got -1"):
        estimate(NAME, dist, f, n=2, rng=0, k=-1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 9\]; got 10"):
        estimate(NAME, dist, f, n=2, rng=0, k=10)
    with pytest.raises(TypeError, match=r"k must be an integer >= 0; got 1.5"):
        estimate(NAME, dist, f, n=2, rng=0, k=1.5)
    with pytest.raises(TypeError, match=r"k must be an integer"):
        estimate(NAME, dist, f, n=2, rng=0, k=True)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['baseline'\]; allowed options: k"):
        estimate(NAME, dist, f, n=2, rng=0, baseline=0.5)
    with pytest.raises(ValueError, match=r"does not support family 'normal'"):
        estimate(NAME, refgrad.Normal(np.zeros(2)), f, n=2, rng=0)


def test_support_beyond_the_enumeration_limit_is_refused():
    d = int(np.log2(ENUMERATION_LIMIT)) + 1
    dist = Bernoulli(np.zeros(d))
    with pytest.raises(ValueError, match=rf"d = {d} has {2**d} configurations, beyond ENUMERATION_LIMIT = "
                       rf"{ENUMERATION_LIMIT}"):
        estimate(NAME, dist, SquaredDistance(np.zeros(d)), n=2, rng=0)
