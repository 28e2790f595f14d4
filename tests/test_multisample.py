"""refgrad.multisample: exact expectation and gradient of multi-sample objectives against brute-force loops
and central finite differences, the dispatch from refgrad.exact, k = 1 against the single-sample oracle,
and input checks (including the single-sample estimators' refusal of a multi-sample objective)."""
import itertools

import numpy as np
import pytest
from scipy import special

import refgrad
from estimator_checks import central_fd
from refgrad import exact
from refgrad import multisample as ms
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import SquaredDistance, Table


def problems():
    rng = np.random.default_rng(11)
    return {
        "bernoulli_k3": (Bernoulli(np.array([0.4, -1.2])), Table(3 * rng.normal(size=(2, 2))), 3),
        "bernoulli_d3_k2": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2))), 2),
        "categorical_k3": (Categorical(np.array([[0.3, -0.5, 1.0]])), Table(2 * rng.normal(size=(3,))), 3),
        "categorical_d2_k2": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])),
                              Table(rng.normal(size=(3, 3))), 2),
        "bernoulli_inf": (Bernoulli(np.array([np.inf, -0.7])), Table(rng.normal(size=(2, 2))), 3),
    }


def brute(dist, log_weight, k):
    """(E[L], E[L Σ_j s(b^j)]) by itertools over k-tuples; probabilities and scores from dist (independent
    of refgrad.multisample's tables and of exact.gradient)."""
    configs, probs = dist.enumerate()
    lw = log_weight.value(configs)
    scores = dist.score(configs)
    value, grad = 0.0, np.zeros(dist.param_shape)
    for tup in itertools.product(range(len(probs)), repeat=k):
        w = np.prod([probs[i] for i in tup])
        if w == 0.0:
            continue
        L = np.log(np.mean([np.exp(lw[i]) for i in tup]))
        value += w * L
        grad += w * L * sum(scores[i] for i in tup)
    return value, grad


@pytest.mark.parametrize("case", sorted(problems()))
def test_expectation_and_gradient_against_brute_force(case):
    dist, lw, k = problems()[case]
    f = ms.LogMeanExp(lw, k)
    value, grad = brute(dist, lw, k)
    assert abs(exact.expectation(dist, f) - value) < 1e-12
    np.testing.assert_allclose(exact.gradient(dist, f), grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["bernoulli_k3", "categorical_k3", "categorical_d2_k2"])
def test_gradient_is_the_derivative_of_the_expectation(case):
    dist, lw, k = problems()[case]
    f = ms.LogMeanExp(lw, k)
    family = type(dist)
    fd = central_fd(lambda x: ms.expectation(family(x), f), dist.params, h=1e-5)
    np.testing.assert_allclose(ms.gradient(dist, f), fd, rtol=1e-7, atol=1e-9)


def test_generic_asymmetric_objective():
    # L(b1, b2) = f1(b1) * f2(b2) + b1·b2: not symmetric; the exact gradient sums one table per sample
    dist = Bernoulli(np.array([0.7, -0.3]))
    f = ms.MultiSampleObjective(2, lambda b: (b[:, 0] ** 2).sum(1) * (1 + b[:, 1, 0]) + b[:, 0, 1] * b[:, 1, 1],
                                name="asym")
    fd = central_fd(lambda x: ms.expectation(Bernoulli(x), f), dist.params, h=1e-5)
    np.testing.assert_allclose(exact.gradient(dist, f), fd, rtol=1e-7, atol=1e-9)
    # the symmetric shortcut (k × the first table) would be wrong here: tables differ
    _, M = ms.conditional_tables(dist, f)
    assert np.max(np.abs(M[0] - M[1])) > 0.1


def test_one_sample_is_the_single_sample_oracle():
    dist, lw, _ = problems()["categorical_d2_k2"]
    f = ms.LogMeanExp(lw, 1)
    assert abs(exact.expectation(dist, f) - exact.expectation(dist, lw)) < 1e-13
    np.testing.assert_allclose(exact.gradient(dist, f), exact.gradient(dist, lw), rtol=0, atol=1e-13)


def test_value_is_stable_for_huge_log_weights():
    f = ms.LogMeanExp(SquaredDistance(0.0), 2)
    b = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    f_big = ms.LogMeanExp(lambda z: 1e3 * z.sum(1), 2)
    assert np.isclose(f_big.value(b)[0], 2e3 - np.log(2), rtol=1e-15)
    assert np.isclose(f.value(b)[0], special.logsumexp([0.0, 2.0]) - np.log(2))


def test_limit_and_input_checks():
    dist, lw, _ = problems()["categorical_d2_k2"]
    with pytest.raises(ValueError, match="limit=80"):
        exact.expectation(dist, ms.LogMeanExp(lw, 2), limit=80)  # 9**2 = 81 tuples
    assert np.isfinite(exact.expectation(dist, ms.LogMeanExp(lw, 2), limit=81))
    with pytest.raises(TypeError, match="k must be an integer"):
        ms.LogMeanExp(lw, 2.0)
    with pytest.raises(ValueError, match="k must be an integer >= 1; got 0"):
        ms.LogMeanExp(lw, 0)
    with pytest.raises(TypeError, match="log_weight"):
        ms.LogMeanExp(3.0, 2)
    with pytest.raises(TypeError, match="log_weight"):
        ms.LogMeanExp(ms.LogMeanExp(lw, 2), 2)
    with pytest.raises(TypeError, match="fn must be callable"):
        ms.MultiSampleObjective(2, None)
    with pytest.raises(ValueError, match=r"b must have shape \(n, k=2"):
        ms.LogMeanExp(lw, 2).value(np.zeros((4, 3, 2, 3)))
    bad = ms.MultiSampleObjective(2, lambda b: np.full(b.shape[0], np.nan), name="nan")
    with pytest.raises(ValueError, match="'nan' returned nan"):
        exact.expectation(dist, bad)
    with pytest.raises(TypeError, match="MultiSampleObjective"):
        ms.expectation(dist, lw)


def test_single_sample_estimators_refuse_a_multi_sample_objective():
    dist, lw, _ = problems()["bernoulli_k3"]
    f = ms.LogMeanExp(lw, 2)
    for name in ("reinforce", "rloo", "arm"):
        with pytest.raises(ValueError, match="multi-sample objective, k=2, for estimator 'vimco'"):
            refgrad.estimate(name, dist, f, 3, rng=0)
