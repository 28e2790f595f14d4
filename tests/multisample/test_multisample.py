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


# ------------------------------------------------------------------ IWAEBound: weights that depend on φ


def iwae_problems():
    rng = np.random.default_rng(23)
    return {
        "bernoulli_d2_k3": (Bernoulli(np.array([0.4, -1.2])), Table(3 * rng.normal(size=(2, 2))), 3),
        "bernoulli_d3_k2": (Bernoulli(np.array([0.9, -0.3, 1.7])), Table(rng.normal(size=(2, 2, 2))), 2),
        "categorical_d1_k3": (Categorical(np.array([[0.3, -0.5, 1.0]])), Table(2 * rng.normal(size=(3,))), 3),
        "categorical_d2_k2": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])),
                              Table(rng.normal(size=(3, 3))), 2),
        "bernoulli_d2_k1": (Bernoulli(np.array([-0.6, 1.1])), Table(2 * rng.normal(size=(2, 2))), 1),
    }


def _mp_bound(dist, log_joint, k, logits):
    """The IWAE bound written out in mpmath from the logits (its own σ / softmax, no refgrad probabilities):
    Σ over k-tuples of Π q(b^i) · log (1/k) Σ_i exp(log p(x, b^i) − log q(b^i))."""
    import mpmath as mp

    configs, _ = dist.enumerate()
    lj = [mp.mpf(float(v)) for v in log_joint.value(configs)]
    if isinstance(dist, Bernoulli):
        q = [mp.fprod(mp.mpf(1) / (1 + mp.exp(-x if bit else x)) for x, bit in zip(logits, row))
             for row in configs.astype(int)]
    else:
        K = dist.param_shape[1]
        rows = [logits[i * K:(i + 1) * K] for i in range(dist.param_shape[0])]
        q = [mp.fprod(mp.exp(r[c]) / mp.fsum(mp.exp(x) for x in r) for r, c in zip(rows, row))
             for row in configs.argmax(-1)]
    total = mp.mpf(0)
    for tup in itertools.product(range(len(q)), repeat=k):
        total += mp.fprod(q[i] for i in tup) * mp.log(mp.fsum(mp.exp(lj[i]) / q[i] for i in tup) / k)
    return total


@pytest.mark.parametrize("case", sorted(iwae_problems()))
def test_iwae_bound_and_gradient_against_mpmath(case):
    # an independent truth: the bound in mpmath at 30 digits and mpmath.diff of it in every logit (no
    # derivation of the gradient involved); the oracle (tables M − W, expected flip differences) agrees to 1e-14
    import mpmath as mp

    dist, lj, k = iwae_problems()[case]
    f = ms.IWAEBound(lj, k)
    with mp.workdps(30):
        x0 = [mp.mpf(float(v)) for v in dist.params.ravel()]
        value = _mp_bound(dist, lj, k, x0)
        grad = []
        for c in range(len(x0)):
            def along(t, c=c):
                return _mp_bound(dist, lj, k, x0[:c] + [t] + x0[c + 1:])
            grad.append(float(mp.diff(along, x0[c])))
    assert abs(exact.expectation(dist, f) - float(value)) < 1e-14
    np.testing.assert_allclose(exact.gradient(dist, f).ravel(), grad, rtol=0, atol=1e-14)


def brute_iwae(dist, log_joint, k):
    """(E[F], E[Σ_j F s(b^j)], −E[Σ_j w̄_j s(b^j)]) by itertools over k-tuples, weights exponentiated directly."""
    configs, probs = dist.enumerate()
    live = probs > 0
    lw = np.full(len(probs), np.nan)
    lw[live] = log_joint.value(configs[live]) - dist.log_prob(configs[live])
    scores = dist.score(configs)
    value, score_part, weight_part = 0.0, np.zeros(dist.param_shape), np.zeros(dist.param_shape)
    for tup in itertools.product(np.flatnonzero(live), repeat=k):
        p = np.prod([probs[i] for i in tup])
        w = np.array([np.exp(lw[i]) for i in tup])
        F = np.log(w.mean())
        value += p * F
        score_part += p * F * sum(scores[i] for i in tup)
        weight_part -= p * sum(wj / w.sum() * scores[i] for wj, i in zip(w, tup))
    return value, score_part, weight_part


@pytest.mark.parametrize("case", sorted(iwae_problems()) + ["bernoulli_inf"])
def test_iwae_gradient_parts_against_brute_force(case):
    if case == "bernoulli_inf":  # a deterministic bit: its impossible configurations are never evaluated
        dist, lj, k = Bernoulli(np.array([np.inf, -0.7])), Table(np.array([[0.3, -1.0], [1.5, 0.2]])), 3
    else:
        dist, lj, k = iwae_problems()[case]
    f = ms.IWAEBound(lj, k)
    value, score_part, weight_part = brute_iwae(dist, lj, k)
    got_score, got_weight = ms.gradient_parts(dist, f)
    assert abs(exact.expectation(dist, f) - value) < 1e-12
    np.testing.assert_allclose(got_score, score_part, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_weight, weight_part, rtol=0, atol=1e-12)
    np.testing.assert_allclose(exact.gradient(dist, f), score_part + weight_part, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", sorted(iwae_problems()))
def test_iwae_gradient_is_the_derivative_of_the_bound(case):
    # central differences of the exact bound, which re-evaluates log q at φ ± h (the weights move with φ)
    dist, lj, k = iwae_problems()[case]
    f = ms.IWAEBound(lj, k)
    family = type(dist)
    fd = central_fd(lambda x: exact.expectation(family(x), f), dist.params, h=1e-5)
    np.testing.assert_allclose(exact.gradient(dist, f), fd, rtol=1e-7, atol=1e-9)


def test_iwae_at_k1_is_the_elbo_gradient():
    # k = 1: ELBO = E[log p] + H(q); for bits ∂H/∂ℓ_i = −ℓ_i σ(ℓ_i) σ(−ℓ_i) (closed form, no enumeration)
    dist, lj, _ = iwae_problems()["bernoulli_d2_k1"]
    ell = dist.params
    sig = special.expit(ell)
    want = exact.gradient(dist, lj) - ell * sig * (1 - sig)
    np.testing.assert_allclose(exact.gradient(dist, ms.IWAEBound(lj, 1)), want, rtol=0, atol=1e-14)
    assert np.all(np.abs(ms.gradient_parts(dist, ms.IWAEBound(lj, 1))[1]) < 1e-15)  # no weight term at k = 1


@pytest.mark.parametrize("case", ["bernoulli_d2_k3", "categorical_d1_k3", "categorical_d2_k2", "bernoulli_d2_k1"])
def test_frozen_log_q_is_biased_for_k_above_one(case):
    # Treating log q as a fixed log weight (LogMeanExp of log p − log q_{φ0}) gives the same bound but drops
    # −E[Σ_j w̄_j s(b^j)] from the gradient.  Exact bias, printed with -s (numbers in the commit message):
    #   python -m pytest -q -p no:xdist -s tests/multisample/test_multisample.py -k frozen
    dist, lj, k = iwae_problems()[case]
    f = ms.IWAEBound(lj, k)
    frozen = f.frozen(dist)
    assert isinstance(frozen, ms.LogMeanExp)
    assert abs(exact.expectation(dist, frozen) - exact.expectation(dist, f)) < 1e-13
    bias = exact.gradient(dist, frozen) - exact.gradient(dist, f)
    _, _, weight_part = brute_iwae(dist, lj, k)
    np.testing.assert_allclose(bias, -weight_part, rtol=0, atol=1e-12)
    print(case, "bias of the frozen treatment:", np.round(bias.ravel(), 6).tolist(),
          "relative", float(np.linalg.norm(bias) / np.linalg.norm(exact.gradient(dist, f))))
    if k == 1:
        assert np.max(np.abs(bias)) < 1e-15
    else:
        assert np.max(np.abs(bias)) > 1e-2
    # the frozen objective keeps its logits: it is not the bound at other logits
    other = type(dist)(dist.params + np.linspace(0.2, 0.9, dist.params.size).reshape(dist.param_shape))
    assert abs(exact.expectation(other, frozen) - exact.expectation(other, f)) > 1e-3


def test_iwae_values_are_stable_and_need_the_distribution():
    dist = Bernoulli(np.array([0.3, -0.2]))
    f = ms.IWAEBound(lambda z: 1e3 * z.sum(1), 2)
    b = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    want = special.logsumexp(f.log_weights(b, dist)[0]) - np.log(2)
    lq = dist.log_prob(np.array([[1.0, 1.0]]))[0]
    assert np.isclose(f.value(b, dist)[0], 2e3 - lq + np.log1p(np.exp(lq - dist.log_prob(b[0, :1])[0] - 2e3))
                      - np.log(2), rtol=1e-15)
    assert np.isclose(f.value(b, dist)[0], want, rtol=1e-15)
    assert np.isfinite(exact.expectation(dist, f))
    with pytest.raises(ValueError, match="depends on the distribution's logits: call value"):
        f.value(b)


def test_iwae_input_checks():
    dist, lj, _ = iwae_problems()["categorical_d2_k2"]
    with pytest.raises(ValueError, match="k must be an integer >= 1; got 0"):
        ms.IWAEBound(lj, 0)
    with pytest.raises(ValueError, match="k must be an integer"):
        ms.IWAEBound(lj, 2.0)
    with pytest.raises(ValueError, match="log_joint must be"):
        ms.IWAEBound(3.0, 2)
    with pytest.raises(ValueError, match="log_joint must be"):
        ms.IWAEBound(ms.LogMeanExp(lj, 2), 2)
    nan = ms.IWAEBound(lambda z: np.full(z.shape[0], np.nan), 2)
    with pytest.raises(ValueError, match="log_joint of 'IWAEBound.*non-finite value nan"):
        exact.expectation(dist, nan)
    with pytest.raises(ValueError, match="log_joint of 'IWAEBound.*non-finite value nan"):
        exact.gradient(dist, nan)
    short = ms.IWAEBound(lambda z: np.zeros(2), 2)
    with pytest.raises(ValueError, match=r"log_joint of 'IWAEBound.*shape \(2,\)"):
        exact.gradient(dist, short)
    for other in (refgrad.GaussianThreshold(np.array([0.1, 0.2])), refgrad.Normal(np.array([0.1]))):
        with pytest.raises(ValueError, match="dist must be a Bernoulli or Categorical"):
            exact.gradient(other, ms.IWAEBound(lambda z: z.sum(1), 2))
        with pytest.raises(ValueError, match="dist must be a Bernoulli or Categorical"):
            ms.IWAEBound(lambda z: z.sum(1), 2).frozen(other)
    with pytest.raises(ValueError, match="limit=80"):
        exact.gradient(dist, ms.IWAEBound(lj, 2), limit=80)
    with pytest.raises(TypeError, match="IWAEBound"):
        ms.gradient_parts(dist, ms.LogMeanExp(lj, 2))
