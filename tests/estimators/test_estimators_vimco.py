"""vimco: exact moments (enumeration of the k-tuples) against exact.gradient of the multi-sample objective,
the estimate against a loop twin of the paper's formula with finite-difference scores, variance below
REINFORCE on L, cost, noise = rng, Monte Carlo unbiasedness, mutation tests and option checks; the same for
IWAEBound (weights log p(x, b) − log q_φ(b) that move with φ), with the exact bias of leaving out the
normalised-weight term (VIMCO on the frozen-log-q objective).

Monte Carlo checks use ``refgrad.testing.assert_unbiased`` at alpha = 1e-3 with the seed stated in the
test (n = 4000).
"""
import numpy as np
import pytest
from scipy import special

import refgrad
import refgrad.estimators.vimco as vimco
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.multisample import IWAEBound, LogMeanExp, MultiSampleObjective, gradient_parts
from refgrad.objectives import SquaredDistance, Table

NAME = "vimco"
BASELINES = ("geometric", "arithmetic", None)


def problems():
    rng = np.random.default_rng(5)
    return {
        "bernoulli_d2_k3": (Bernoulli(np.array([0.4, -1.2])), Table(3 * rng.normal(size=(2, 2))), 3),
        "bernoulli_d3_k2": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2))), 2),
        "categorical_d1_k4": (Categorical(np.array([[0.3, -0.5, 1.0]])), Table(2 * rng.normal(size=(3,))), 4),
        "categorical_d2_k2": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])),
                              Table(rng.normal(size=(3, 3))), 2),
        "bernoulli_inf_k3": (Bernoulli(np.array([np.inf, -0.7])), Table(rng.normal(size=(2, 2))), 3),
        "toy_k5": (Bernoulli(np.array([0.0])), SquaredDistance(0.45), 5),
    }


def test_registered_spec():
    spec = ESTIMATORS[NAME]
    assert spec.unbiased and spec.families == ("bernoulli", "categorical")
    assert spec.defaults == {"k": 2, "baseline": "geometric"}
    assert spec.given_samples is not None and spec.draws(k=4, baseline=None) == 4
    dist = Categorical(np.zeros((2, 3)))
    assert spec.cost_of(dist, k=4) == 4
    (field,) = spec.noise_layout(dist, k=4)
    assert field.name == "u" and field.shape == (4, 2, 3)


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("case", sorted(problems()))
def test_exact_mean_is_the_exact_gradient(case, baseline):
    dist, lw, k = problems()[case]
    f = LogMeanExp(lw, k)
    m = exact.moments(NAME, dist, f, k=k, baseline=baseline)
    assert m.method == "enumeration" and m.cost == k
    np.testing.assert_allclose(m.mean, exact.gradient(dist, f), rtol=0, atol=1e-12)


def twin(dist, lw_obj, b, baseline):
    """The paper's formula by loops, weights exponentiated directly; scores by central differences of log q."""
    k = b.shape[0]
    lw = lw_obj.value(b)
    w = np.exp(lw)
    L = np.log(np.mean(w))
    family = type(dist)
    out = np.zeros(dist.param_shape)
    for j in range(k):
        others = np.delete(w, j)
        if baseline == "geometric":
            stand_in = np.exp(np.mean(np.log(others)))
        elif baseline == "arithmetic":
            stand_in = np.mean(others)
        L_minus = 0.0 if baseline is None else np.log((others.sum() + stand_in) / k)
        s = central_fd(lambda x: family(x).log_prob(b[j:j + 1])[0], dist.params, h=1e-6)
        out += (L - L_minus) * s
    return out


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("case", ["bernoulli_d3_k2", "categorical_d1_k4", "categorical_d2_k2"])
def test_estimate_is_the_literal_formula_with_fd_scores(case, baseline):
    dist, lw, k = problems()[case]
    f = LogMeanExp(lw, k)
    noise = ESTIMATORS[NAME].draw_noise(dist, 6, rng=3, k=k)
    got = estimate(NAME, dist, f, noise=noise, k=k, baseline=baseline)
    event = tuple(dist.event_shape)
    b = dist.from_uniforms(noise["u"].reshape((-1,) + event)).reshape((6, k) + event)
    for i in range(6):
        np.testing.assert_allclose(got[i], twin(dist, lw, b[i], baseline), rtol=1e-7, atol=1e-8)


def test_signals_are_stable_for_huge_log_weights():
    lw = np.array([[1000.0, 1001.0, -1000.0]])
    for baseline in BASELINES:
        assert np.all(np.isfinite(vimco.learning_signals(lw, baseline)))
    # geometric: the stand-in for sample 3 is exp(1000.5); L − L_{−3} = log(e^1000 + e^1001 + e^-1000) − log(...)
    want = special.logsumexp([1000.0, 1001.0, -1000.0]) - special.logsumexp([1000.0, 1001.0, 1000.5])
    assert np.isclose(vimco.learning_signals(lw, "geometric")[0, 2], want, rtol=1e-14)


def test_variance_below_reinforce_on_L():
    # exact variances per coordinate (printed with -s; numbers in the report).  VIMCO's total variance is below
    # REINFORCE on L on every problem here, but not every coordinate's: on categorical_d2_k2 (k = 2, log
    # weights of mean ~0, so L is already nearly centred) three of six coordinates are higher.  Shifting the
    # log weights by a constant leaves VIMCO's estimate unchanged and inflates REINFORCE's.
    for case in ("bernoulli_d2_k3", "categorical_d1_k4", "categorical_d2_k2", "toy_k5"):
        dist, lw, k = problems()[case]
        for shift in (0.0, 5.0):
            f = LogMeanExp(lambda z, lw=lw, shift=shift: lw.value(z) + shift, k)
            var = {b: exact.moments(NAME, dist, f, k=k, baseline=b).variance for b in BASELINES}
            print(case, shift, {b: np.round(v.ravel(), 6).tolist() for b, v in var.items()})
            for b in ("geometric", "arithmetic"):
                assert var[b].sum() < var[None].sum()
                if shift or case != "categorical_d2_k2":
                    assert np.all(var[b] < var[None]), (case, shift, b)
    dist, lw, k = problems()["categorical_d2_k2"]
    noise = ESTIMATORS[NAME].draw_noise(dist, 20, rng=4, k=k)
    shifted = LogMeanExp(lambda z: lw.value(z) + 5.0, k)
    np.testing.assert_allclose(estimate(NAME, dist, shifted, noise=noise, k=k),
                               estimate(NAME, dist, LogMeanExp(lw, k), noise=noise, k=k), rtol=1e-12, atol=1e-14)


def test_cost_counts_the_evaluations_of_the_log_weight():
    calls = []
    dist = Bernoulli(np.array([0.2, -0.4]))
    f = LogMeanExp(lambda z: calls.append(z.shape[0]) or z.sum(1), 3)
    estimate(NAME, dist, f, 5, rng=0, k=3)
    assert sum(calls) == 5 * ESTIMATORS[NAME].cost_of(dist, k=3)


def test_noise_equals_rng():
    dist, lw, k = problems()["categorical_d2_k2"]
    f = LogMeanExp(lw, k)
    noise = ESTIMATORS[NAME].draw_noise(dist, 50, rng=9, k=k)
    np.testing.assert_array_equal(estimate(NAME, dist, f, 50, rng=9, k=k), estimate(NAME, dist, f, noise=noise, k=k))


@pytest.mark.parametrize("case", ["bernoulli_d3_k2", "categorical_d2_k2"])
def test_unbiased_monte_carlo(case):
    dist, lw, k = problems()[case]
    testing.assert_unbiased(NAME, dist, LogMeanExp(lw, k), n=4000, alpha=1e-3, rng=21, k=k)


def _mutate(monkeypatch, mutation):
    if mutation == "baseline_sees_own_sample":  # the stand-in includes w_j itself: the baseline depends on b^j
        monkeypatch.setattr(vimco, "leave_one_out", lambda lw, baseline: np.broadcast_to(
            LogMeanExp.from_log_weights(lw)[:, None] * 0.5, lw.shape))
    elif mutation == "wrong_normaliser":  # arithmetic L_{−j} with log k instead of log(k − 1): constant, no bias
        monkeypatch.setattr(vimco, "leave_one_out", lambda lw, baseline: special.logsumexp(
            np.where(np.eye(lw.shape[1], dtype=bool)[None], -np.inf, lw[:, None, :]), axis=-1) - np.log(lw.shape[1]))
    elif mutation == "signal_dropped_for_last_sample":
        orig = vimco.learning_signals
        monkeypatch.setattr(vimco, "learning_signals",
                            lambda lw, b: orig(lw, b) * (np.arange(lw.shape[1]) < lw.shape[1] - 1))


def test_mutations_are_caught(monkeypatch):
    dist, lw, k = problems()["bernoulli_d3_k2"]
    f = LogMeanExp(lw, k)
    g = exact.gradient(dist, f)
    for mutation in ("baseline_sees_own_sample", "signal_dropped_for_last_sample"):
        with monkeypatch.context() as mp:
            _mutate(mp, mutation)
            assert np.max(np.abs(exact.moments(NAME, dist, f, k=k).mean - g)) > 1e-3, mutation
            with pytest.raises(AssertionError):
                testing.assert_unbiased(NAME, dist, f, n=4000, alpha=1e-3, rng=21, k=k)
    with monkeypatch.context() as mp:  # a constant baseline shift keeps the mean: the twin test catches it
        _mutate(mp, "wrong_normaliser")
        with pytest.raises(AssertionError):
            test_estimate_is_the_literal_formula_with_fd_scores("bernoulli_d3_k2", "arithmetic")


def test_bad_options_and_objectives():
    dist, lw, _ = problems()["bernoulli_d2_k3"]
    f = LogMeanExp(lw, 2)
    with pytest.raises(ValueError, match="k must be an integer >= 2; got 1"):
        estimate(NAME, dist, f, 3, rng=0, k=1)
    with pytest.raises(TypeError, match="k must be an integer"):
        estimate(NAME, dist, f, 3, rng=0, k=2.0)
    with pytest.raises(ValueError, match="baseline must be 'geometric', 'arithmetic' or None; got 'harmonic'"):
        estimate(NAME, dist, f, 3, rng=0, baseline="harmonic")
    with pytest.raises(TypeError, match="baseline must be"):
        estimate(NAME, dist, f, 3, rng=0, baseline=1.0)
    with pytest.raises(ValueError, match=r"option k = 3 .* must equal the objective's number of samples k = 2"):
        estimate(NAME, dist, f, 3, rng=0, k=3)
    with pytest.raises(ValueError, match="needs f = refgrad.multisample.LogMeanExp.*single-sample objective"):
        estimate(NAME, dist, lw, 3, rng=0)
    generic = MultiSampleObjective(2, lambda b: b.sum(axis=(1, 2)))
    with pytest.raises(ValueError, match="generic multi-sample objective"):
        estimate(NAME, dist, generic, 3, rng=0)
    with pytest.raises(ValueError, match="does not support family 'gaussian_threshold'"):
        estimate(NAME, refgrad.GaussianThreshold(np.array([0.1])), f, 3, rng=0)
    with pytest.raises(ValueError, match="limit=100"):
        exact.moments(NAME, Categorical(np.zeros((2, 3))), LogMeanExp(Table(np.zeros((3, 3))), 3), k=3, limit=100)


# ------------------------------------------------------------------ IWAEBound: log w = log p(x, b) − log q_φ(b)


def iwae_problems():
    rng = np.random.default_rng(29)
    return {
        "bernoulli_d2_k3": (Bernoulli(np.array([0.4, -1.2])), Table(3 * rng.normal(size=(2, 2))), 3),
        "bernoulli_d3_k2": (Bernoulli(np.array([0.9, -0.3, 1.7])), Table(rng.normal(size=(2, 2, 2))), 2),
        "categorical_d1_k4": (Categorical(np.array([[0.3, -0.5, 1.0]])), Table(2 * rng.normal(size=(3,))), 4),
        "categorical_d2_k2": (Categorical(np.array([[0.3, -0.5, 1.0], [1.0, 0.0, -0.5]])),
                              Table(rng.normal(size=(3, 3))), 2),
        "bernoulli_inf_k3": (Bernoulli(np.array([np.inf, -0.7])), Table(rng.normal(size=(2, 2))), 3),
    }


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("case", sorted(iwae_problems()))
def test_iwae_exact_mean_is_the_exact_gradient(case, baseline):
    # moments sum Σ q ĝ over the k-tuples; exact.gradient takes flip differences of the tables M − W: two
    # different computations, equal to < 1e-15 here
    dist, lj, k = iwae_problems()[case]
    f = IWAEBound(lj, k)
    m = exact.moments(NAME, dist, f, k=k, baseline=baseline)
    assert m.method == "enumeration" and m.cost == k
    np.testing.assert_allclose(m.mean, exact.gradient(dist, f), rtol=0, atol=1e-13)


def iwae_twin(dist, log_joint, b, baseline, score=None):
    """The paper's estimator by loops for one k-tuple b: Σ_j (L − L_{−j}) ∇ log q(b^j) + Σ_j w̃_j ∇_φ log w_φ(b^j),
    weights exponentiated directly (w = p(x, b) / q(b)); the derivatives by central differences in φ (log q and
    log w re-evaluated at φ ± h), or ∇ log q by ``score`` when given."""
    k = b.shape[0]
    family = type(dist)

    def log_w(x, j):
        return log_joint.value(b[j:j + 1])[0] - family(x).log_prob(b[j:j + 1])[0]

    w = np.exp(log_joint.value(b)) / np.exp(dist.log_prob(b))
    L = np.log(np.mean(w))
    out = np.zeros(dist.param_shape)
    for j in range(k):
        others = np.delete(w, j)
        if baseline == "geometric":
            stand_in = np.exp(np.mean(np.log(others)))
        elif baseline == "arithmetic":
            stand_in = np.mean(others)
        L_minus = 0.0 if baseline is None else np.log((others.sum() + stand_in) / k)
        if score is None:
            s = central_fd(lambda x: family(x).log_prob(b[j:j + 1])[0], dist.params, h=1e-6)
            dlogw = central_fd(lambda x: log_w(x, j), dist.params, h=1e-6)
        else:
            s = score(b[j:j + 1])[0]
            dlogw = -s
        out += (L - L_minus) * s + w[j] / w.sum() * dlogw
    return out


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("case", ["bernoulli_d3_k2", "categorical_d1_k4", "categorical_d2_k2"])
def test_iwae_estimate_is_the_papers_formula_with_fd_derivatives(case, baseline):
    dist, lj, k = iwae_problems()[case]
    f = IWAEBound(lj, k)
    noise = ESTIMATORS[NAME].draw_noise(dist, 6, rng=3, k=k)
    got = estimate(NAME, dist, f, noise=noise, k=k, baseline=baseline)
    event = tuple(dist.event_shape)
    b = dist.from_uniforms(noise["u"].reshape((-1,) + event)).reshape((6, k) + event)
    for i in range(6):
        np.testing.assert_allclose(got[i], iwae_twin(dist, lj, b[i], baseline), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("case", ["bernoulli_d2_k3", "categorical_d2_k2", "bernoulli_inf_k3"])
def test_iwae_exact_covariance_against_loops(case, baseline):
    # E[ĝ ĝᵀ] − E[ĝ]E[ĝ]ᵀ by itertools over the k-tuples with the twin (analytic scores, so to rounding)
    import itertools

    dist, lj, k = iwae_problems()[case]
    f = IWAEBound(lj, k)
    configs, probs = dist.enumerate()
    live = np.flatnonzero(probs > 0)
    first, second = 0.0, 0.0
    for tup in itertools.product(live, repeat=k):
        p = np.prod(probs[list(tup)])
        g = iwae_twin(dist, lj, configs[list(tup)], baseline, score=dist.score).ravel()
        first = first + p * g
        second = second + p * np.outer(g, g)
    m = exact.moments(NAME, dist, f, k=k, baseline=baseline)
    np.testing.assert_allclose(m.mean.ravel(), first, rtol=0, atol=1e-13)
    np.testing.assert_allclose(m.cov, second - np.outer(first, first), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["bernoulli_d3_k2", "categorical_d2_k2"])
def test_iwae_unbiased_monte_carlo(case):
    # alpha = 1e-3, seed 21, n = 4000
    dist, lj, k = iwae_problems()[case]
    testing.assert_unbiased(NAME, dist, IWAEBound(lj, k), n=4000, alpha=1e-3, rng=21, k=k)


@pytest.mark.parametrize("case", ["bernoulli_d2_k3", "categorical_d1_k4", "categorical_d2_k2"])
def test_frozen_log_q_vimco_is_biased_for_iwae(case):
    # VIMCO on f.frozen(dist) (log q treated as a fixed log weight: no normalised-weight term) has mean the
    # score part only; its exact bias is the weight part of the gradient, printed with -s:
    #   python -m pytest -q -p no:xdist -s tests/estimators/test_estimators_vimco.py -k frozen
    dist, lj, k = iwae_problems()[case]
    f = IWAEBound(lj, k)
    truth = exact.gradient(dist, f)
    _, weight_part = gradient_parts(dist, f)
    for baseline in BASELINES:
        bias = exact.moments(NAME, dist, f.frozen(dist), k=k, baseline=baseline).mean - truth
        np.testing.assert_allclose(bias, -weight_part, rtol=0, atol=1e-13)
    print(case, "exact bias of VIMCO with log q frozen:", np.round(bias.ravel(), 6).tolist())
    assert np.max(np.abs(bias)) > 0.05
    # and Monte Carlo sees it (alpha = 1e-3, seed 21, n = 4000) where the full estimator passes
    with pytest.raises(AssertionError):
        testing.assert_unbiased(NAME, dist, f.frozen(dist), target=truth, n=4000, alpha=1e-3, rng=21, k=k)
    testing.assert_unbiased(NAME, dist, f, n=4000, alpha=1e-3, rng=21, k=k)


def test_iwae_mutations_are_caught(monkeypatch):
    dist, lj, k = iwae_problems()["bernoulli_d3_k2"]
    f = IWAEBound(lj, k)
    g = exact.gradient(dist, f)
    mutations = {
        "weight_term_dropped": lambda lw, b: vimco.learning_signals(lw, b),
        "weight_term_sign": lambda lw, b: vimco.learning_signals(lw, b) + IWAEBound.normalised_weights(lw),
        "unnormalised_weights": lambda lw, b: vimco.learning_signals(lw, b) - np.exp(lw),
    }
    for mutation, fn in mutations.items():
        with monkeypatch.context() as mp:
            mp.setattr(vimco, "iwae_signals", fn)
            assert np.max(np.abs(exact.moments(NAME, dist, f, k=k).mean - g)) > 1e-2, mutation
            with pytest.raises(AssertionError):
                testing.assert_unbiased(NAME, dist, f, n=4000, alpha=1e-3, rng=21, k=k)


def test_iwae_bad_inputs():
    dist, lj, _ = iwae_problems()["bernoulli_d3_k2"]
    f = IWAEBound(lj, 2)
    with pytest.raises(ValueError, match=r"option k = 3 .* must equal the objective's number of samples k = 2"):
        estimate(NAME, dist, f, 3, rng=0, k=3)
    with pytest.raises(ValueError, match="does not support family 'gaussian_threshold'"):
        estimate(NAME, refgrad.GaussianThreshold(np.array([0.1, 0.2, 0.3])), f, 3, rng=0)
    nan = IWAEBound(lambda z: np.where(z[:, 0] > 0, np.nan, 0.0), 2)
    with pytest.raises(ValueError, match="log_joint of 'IWAEBound.*nan"):
        exact.moments(NAME, dist, nan, k=2)
    wrong = IWAEBound(lambda z: np.zeros((z.shape[0], 2)), 2)
    with pytest.raises(ValueError, match="log_joint of 'IWAEBound.*shape"):
        estimate(NAME, dist, wrong, 3, rng=0)
