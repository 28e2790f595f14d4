"""Tests of refgrad.crosscheck's sampler checks: refgrad's own samplers pass, wrong ones fail.

The calibration tests measure the false-alarm rate at α = 0.05 on refgrad's own samplers
(200 replications in the default run, 5000 under ``-m slow``) and assert it lies below the
upper end of the 99 % binomial interval of a 0.05 rate; the rates are printed with ``-s``.
"""
import numpy as np
import pytest
from scipy import stats

import refgrad.relaxations as rel
from refgrad.crosscheck import check_bernoulli_sampler, check_categorical_sampler, check_relaxed_sampler
from refgrad.distributions import Bernoulli, Categorical
from refgrad.random import uniform

GUMBEL_SD = np.pi / np.sqrt(6.0)


def _concrete(logits, tau, rng, n, space="probability"):
    """refgrad's Concrete samples; ``tau`` may be an array over the batch axis (one call per coordinate)."""
    logits = np.atleast_2d(logits)
    u = uniform(rng, (n,) + logits.shape)
    sampler = rel.concrete_sample if space == "probability" else rel.exp_concrete_sample
    taus = np.broadcast_to(tau, (logits.shape[0],))
    return np.stack([sampler(logits[j], taus[j], u[:, j]) for j in range(logits.shape[0])], axis=1)


def _binary(logits, tau, rng, n, space="probability"):
    logits = np.atleast_1d(np.asarray(logits, dtype=float))
    u = uniform(rng, (n, logits.size))
    taus = np.broadcast_to(tau, logits.shape)
    if space == "probability":
        return np.stack([rel.binary_concrete_sample(logits[j], taus[j], u[:, j]) for j in range(logits.size)], axis=1)
    with np.errstate(invalid="ignore"):
        return (logits + np.log(u) - np.log1p(-u)) / taus


# ---------------------------------------------------------------------------
# Bernoulli
# ---------------------------------------------------------------------------


def test_bernoulli_own_sampler_passes_with_infinite_logits():
    logits = np.array([0.3, -2.0, np.inf, -np.inf, 8.0])
    b = Bernoulli(logits).sample(4000, 11)
    v = check_bernoulli_sampler(b, logits)
    assert v.passed, v
    assert v.compared["expected P(1)"][2] == 1.0 and len(v.worst) == 3
    assert check_bernoulli_sampler(b[:, 0].astype(bool), 0.3).passed
    assert check_bernoulli_sampler(b[:, :2].astype(np.int32), logits[:2]).passed


def test_bernoulli_shifted_logits_fail():
    logits = np.array([0.0, 1.0])
    b = Bernoulli(logits + 0.2).sample(20000, 12)
    v = check_bernoulli_sampler(b, logits)
    assert not v.passed and v.diagnosis == "wrong" and v.pvalue < 1e-3
    assert v.worst[0]["pvalue"] <= v.worst[1]["pvalue"]


def test_bernoulli_contrary_deterministic_sample_is_certain_failure():
    logits = np.array([0.5, np.inf, -np.inf])
    b = Bernoulli(logits).sample(500, 13)
    b[17, 1] = 0.0
    b[40, 2] = 1.0
    v = check_bernoulli_sampler(b, logits)
    assert v.diagnosis == "certain failure" and v.pvalue == 0.0
    assert {(w["index"], w["coordinate"]) for w in v.worst} == {(17, 1), (40, 2)}


@pytest.mark.parametrize("samples, logits, match", [
    (np.array([0.0, 0.5, 1.0]), 0.0, "samples"),
    (np.array([0, 2, 1]), 0.0, "samples"),
    (np.array([[0, 1], [1, 0]]), np.zeros(3), "logits"),
    (np.array(["0", "1"]), 0.0, "samples"),
    (np.array([0.0, np.nan]), 0.0, "samples"),
    (np.array([0, 1]), np.nan, "logits"),
])
def test_bernoulli_input_errors(samples, logits, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_bernoulli_sampler(samples, logits)


# ---------------------------------------------------------------------------
# categorical
# ---------------------------------------------------------------------------

RARE_LOGITS = np.array([[np.log(0.002), np.log(0.3), np.log(0.698), -np.inf], [0.0, 0.0, 0.0, 0.0]])


def test_categorical_own_sampler_passes_one_hot_and_indices():
    c = Categorical(RARE_LOGITS).sample(3000, 21)
    v = check_categorical_sampler(c, RARE_LOGITS)
    assert v.passed, v
    idx = np.argmax(c, axis=-1)
    assert check_categorical_sampler(idx, RARE_LOGITS).pvalue == v.pvalue
    assert check_categorical_sampler(idx[:, 1], RARE_LOGITS[1]).passed
    assert check_categorical_sampler(c[:, 1].astype(bool), RARE_LOGITS[1]).passed


def test_categorical_plus_inf_logits_share_mass():
    logits = np.array([[np.inf, np.inf, 0.0, -np.inf], [0.0, 1.0, 2.0, 3.0]])
    v = check_categorical_sampler(Categorical(logits).sample(2000, 22), logits)
    assert v.passed, v
    np.testing.assert_allclose(v.compared["expected counts"][0], [1000, 1000, 0, 0])


def _without_rare_cell(c):
    """Samples moved from cell 0 (probability 0.002) of coordinate 0 to cell 1: a sampler that never draws it."""
    hits = c[:, 0, 0] == 1
    c[hits, 0, 0], c[hits, 0, 1] = 0.0, 1.0
    return c


def test_categorical_never_producing_rare_cell_fails():
    c = Categorical(RARE_LOGITS).sample(20000, 23)
    assert (c[:, 0, 0] == 1).sum() > 20
    v = check_categorical_sampler(_without_rare_cell(c), RARE_LOGITS)
    assert v.diagnosis == "wrong" and v.pvalue < 1e-3
    assert (v.worst[0]["coordinate"], v.worst[0]["cell"], v.worst[0]["observed"]) == (0, 0, 0)


def test_categorical_hit_on_minus_inf_cell_is_certain_failure():
    c = Categorical(RARE_LOGITS).sample(1000, 24)
    c[[3, 7], 0] = [0.0, 0.0, 0.0, 1.0]
    v = check_categorical_sampler(c, RARE_LOGITS)
    assert v.diagnosis == "certain failure" and v.pvalue == 0.0
    assert v.worst[0] == {"coordinate": 0, "cell": 3, "expected": 0.0, "observed": 2, "first index": 3, "pvalue": 0.0}


def test_categorical_shifted_logits_fail():
    logits = np.array([0.0, 0.5, -1.0])
    idx = np.argmax(Categorical((logits + [0.2, 0, 0])[None]).sample(20000, 25)[:, 0], axis=-1)
    assert not check_categorical_sampler(idx, logits).passed


@pytest.mark.parametrize("samples, logits, match", [
    (np.array([0, 1, 3]), np.zeros(3), "samples"),
    (np.array([0.0, 1.5]), np.zeros(3), "samples"),
    (np.array([[1, 1, 0], [0, 1, 0]]), np.zeros(3), "one-hot"),
    (np.array([[0, 1]]), np.zeros((3, 3)), "samples"),
    (np.array([True, False]), np.zeros(3), "samples"),
    (np.array([0, 1]), np.full(3, -np.inf), "logits"),
    (np.array([0, 1]), np.zeros(1), "logits"),
])
def test_categorical_input_errors(samples, logits, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_categorical_sampler(samples, logits)


def test_categorical_resamples_too_small_for_alpha_is_refused():
    with pytest.raises(ValueError, match="resamples"):
        check_categorical_sampler(np.array([0, 1, 2]), np.zeros(3), resamples=99)


# ---------------------------------------------------------------------------
# relaxed
# ---------------------------------------------------------------------------

CONCRETE_LOGITS = np.array([[0.5, -1.0, 0.0, 1.2], [0.0, 0.0, -np.inf, 2.0]])


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("space", ["probability", "log"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relaxed_own_concrete_sampler_passes(tau, space, dtype):
    x = _concrete(CONCRETE_LOGITS, tau, 31, 3000, space).astype(dtype)
    v = check_relaxed_sampler(x, CONCRETE_LOGITS, tau, space=space)
    assert v.passed, v


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("space", ["probability", "log"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relaxed_own_concrete_sampler_passes_with_marginal_cdfs(tau, space, dtype):
    logits = np.array([[0.5, -1.0, 1.2], [0.0, -np.inf, 2.0]])
    x = _concrete(logits, tau, 45, 2000, space).astype(dtype)
    v = check_relaxed_sampler(x, logits, tau, space=space)
    assert v.passed, v
    assert v.parts[3].test.startswith("marginal CDFs")
    # a fifth part counts the exact zeros, present only when the tested entries hold zeros
    zeros = (x[:, np.isfinite(logits)] == 0).any() and space == "probability"
    assert len(v.parts) == 4 + bool(zeros), [p.test for p in v.parts]


def test_relaxed_marginal_part_alone_detects_wrong_temperature():
    logits = np.array([0.5, -1.0, 1.2])
    x = _concrete(logits, 0.6, 46, 3000)[:, 0]
    v = check_relaxed_sampler(x, logits, 0.5)
    assert not v.parts[3].passed and v.parts[3].pvalue < 1e-6
    assert "skipped" in check_relaxed_sampler(x, logits, 0.5, marginals=False).explanation


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("space", ["probability", "logit"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relaxed_own_binary_sampler_passes(tau, space, dtype):
    logits = np.array([0.3, -2.0, np.inf, -np.inf])
    x = _binary(logits, tau, 32, 3000, space).astype(dtype)
    v = check_relaxed_sampler(x, logits, tau, family="binary_concrete", space=space)
    assert v.passed, v


def test_relaxed_batched_tau():
    tau = np.array([0.2, 2.0])
    x = _concrete(CONCRETE_LOGITS, tau, 33, 4000)
    assert check_relaxed_sampler(x, CONCRETE_LOGITS, tau).passed
    assert not check_relaxed_sampler(x, CONCRETE_LOGITS, tau[::-1]).passed
    xb = _binary([0.4, -0.3], tau, 34, 4000)
    assert check_relaxed_sampler(xb, [0.4, -0.3], tau, family="binary_concrete").passed
    assert not check_relaxed_sampler(xb, [0.4, -0.3], tau[::-1], family="binary_concrete").passed


@pytest.mark.parametrize("space", ["probability", "log"])
def test_relaxed_wrong_temperature_fails(space):
    x = _concrete(CONCRETE_LOGITS, 0.5 * 1.2, 35, 5000, space)
    v = check_relaxed_sampler(x, CONCRETE_LOGITS, 0.5, space=space)
    assert v.diagnosis == "wrong", v


def test_relaxed_binary_wrong_temperature_fails():
    x = _binary([0.4, -0.3], 0.5 * 1.2, 36, 5000)
    assert check_relaxed_sampler(x, [0.4, -0.3], 0.5, family="binary_concrete").diagnosis == "wrong"


def _normal_noise_concrete(logits, tau, rng, n):
    """softmax((ℓ + N)/τ) with N Normal of the Gumbel's mean and variance: a wrong law."""
    noise = np.random.default_rng(rng).normal(np.euler_gamma, GUMBEL_SD, (n,) + logits.shape)
    z = (logits + noise) / tau
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _normal_noise_binary(logits, tau, rng, n):
    """σ((ℓ + N)/τ) with N Normal of the Logistic's variance π²/3: a wrong law."""
    noise = np.random.default_rng(rng).normal(0.0, np.pi / np.sqrt(3), (n, len(logits)))
    return 1.0 / (1.0 + np.exp(-(np.asarray(logits) + noise) / tau))


def test_relaxed_normal_noise_fails():
    logits = np.array([0.5, -1.0, 0.0, 1.2])
    x = _normal_noise_concrete(logits, 0.5, 37, 10000)
    v = check_relaxed_sampler(x, logits, 0.5)
    assert v.diagnosis == "wrong", v
    xb = _normal_noise_binary([0.4, -0.3], 0.5, 38, 10000)
    assert check_relaxed_sampler(xb, [0.4, -0.3], 0.5, family="binary_concrete").diagnosis == "wrong"


def test_relaxed_support_failures_are_certain():
    x = _concrete(CONCRETE_LOGITS, 0.5, 39, 500)
    bad = x.copy()
    bad[5, 1, 2] = 1e-3  # mass on the -inf logit
    bad[5, 1] /= bad[5, 1].sum()
    v = check_relaxed_sampler(bad, CONCRETE_LOGITS, 0.5)
    assert v.diagnosis == "certain failure" and v.worst[0]["index"] == (5, 1, 2)
    bad = x.copy()
    bad[9, 0, 0] = np.nan
    v = check_relaxed_sampler(bad, CONCRETE_LOGITS, 0.5)
    assert v.diagnosis == "certain failure" and "NaN" in v.parts[0].explanation
    bad = x.copy()
    bad[2, 0] *= 1.001  # off the simplex
    assert check_relaxed_sampler(bad, CONCRETE_LOGITS, 0.5).diagnosis == "certain failure"
    xb = _binary([0.4, np.inf], 0.5, 40, 500)
    xb[3, 1] = 0.999
    assert check_relaxed_sampler(xb, [0.4, np.inf], 0.5, family="binary_concrete").worst[0]["index"] == (3, 1)


def test_relaxed_float32_rounding_passes_but_spurious_zeros_fail():
    x = _concrete(CONCRETE_LOGITS[0], 0.01, 41, 3000)[:, 0].astype(np.float32)
    assert (x == 0).mean() > 0.5
    assert check_relaxed_sampler(x, CONCRETE_LOGITS[0], 0.01).passed
    x = _concrete(CONCRETE_LOGITS[0], 1.0, 42, 3000)[:, 0]
    x = np.where(x < 0.05, 0.0, x)  # zeros where the law puts non-negligible mass
    x /= x.sum(axis=-1, keepdims=True)
    assert check_relaxed_sampler(x.astype(np.float32), CONCRETE_LOGITS[0], 1.0).diagnosis == "wrong"


def test_relaxed_plus_inf_logits():
    logits = np.array([[np.inf, 0.0, -1.0], [np.inf, np.inf, 0.0], [0.0, 1.0, -1.0]])
    x = _concrete(logits, 0.3, 43, 2000)
    v = check_relaxed_sampler(x, logits, 0.3)
    assert v.passed, v
    assert "2 coordinate(s)" in v.explanation


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "gumbel"}, "family"),
    ({"space": "logit"}, "space"),
    ({"tau": -1.0}, "tau"),
    ({"tau": [0.5, 0.5, 0.5]}, "tau"),
    ({"logits": np.zeros(3)}, "logits"),
    ({"alpha": 1.5}, "alpha"),
])
def test_relaxed_input_errors(kwargs, match):
    args = {"samples": _concrete(CONCRETE_LOGITS, 0.5, 44, 10), "logits": CONCRETE_LOGITS, "tau": 0.5}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        check_relaxed_sampler(args.pop("samples"), args.pop("logits"), args.pop("tau"), **args)


# ---------------------------------------------------------------------------
# calibration: false-alarm rates at alpha = 0.05
# ---------------------------------------------------------------------------

CASES = {
    "bernoulli": lambda seed: check_bernoulli_sampler(
        Bernoulli([0.3, -1.5, 2.0]).sample(400, seed), [0.3, -1.5, 2.0], alpha=0.05),
    "categorical": lambda seed: check_categorical_sampler(
        Categorical(np.log([[0.002, 0.1, 0.3, 0.298, 0.3], [0.2] * 5])).sample(300, seed),
        np.log([[0.002, 0.1, 0.3, 0.298, 0.3], [0.2] * 5]), alpha=0.05),
    "concrete": lambda seed: check_relaxed_sampler(
        _concrete([0.3, -0.5, 0.0, 1.0], 0.5, seed, 300)[:, 0], [0.3, -0.5, 0.0, 1.0], 0.5, alpha=0.05),
    "concrete K=3 with marginals": lambda seed: check_relaxed_sampler(
        _concrete([0.3, -0.5, 1.0], 0.2, seed, 300)[:, 0].astype(np.float32), [0.3, -0.5, 1.0], 0.2, alpha=0.05),
    "binary_concrete": lambda seed: check_relaxed_sampler(
        _binary([0.3, -1.0], 0.3, seed, 300), [0.3, -1.0], 0.3, family="binary_concrete", alpha=0.05),
}


def _false_alarm_rate(case, reps, first_seed):
    return np.mean([not CASES[case](first_seed + r) for r in range(reps)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_false_alarm_rate(case):
    reps = 200
    rate = _false_alarm_rate(case, reps, 1000)
    upper = stats.binom.ppf(0.995, reps, 0.05) / reps
    print(f"{case}: false-alarm rate {rate:.3f} in {reps} replications at alpha = 0.05 (99% upper {upper:.3f})")
    assert rate <= upper


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_false_alarm_rate_slow(case):
    reps = 5000
    rate = _false_alarm_rate(case, reps, 10_000)
    low, upper = stats.binom.ppf([0.005, 0.995], reps, 0.05) / reps
    print(f"{case}: false-alarm rate {rate:.3f} in {reps} replications at alpha = 0.05 (99% interval "
          f"[{low:.3f}, {upper:.3f}])")
    assert rate <= upper


POWER = {
    "bernoulli logits +0.2, n=5000": lambda s: check_bernoulli_sampler(Bernoulli([0.2, 1.2]).sample(5000, s),
                                                                       [0.0, 1.0]),
    "concrete tau x1.2, n=2000": lambda s: check_relaxed_sampler(
        _concrete([0.3, -0.5, 0.0, 1.0], 0.6, s, 2000)[:, 0], [0.3, -0.5, 0.0, 1.0], 0.5),
    "concrete normal noise, n=5000": lambda s: check_relaxed_sampler(
        _normal_noise_concrete(np.array([0.3, -0.5, 0.0, 1.0]), 0.5, s, 5000), [0.3, -0.5, 0.0, 1.0], 0.5),
    "categorical never the p=0.002 cell, n=10000": lambda s: check_categorical_sampler(
        _without_rare_cell(Categorical(RARE_LOGITS).sample(10000, s)), RARE_LOGITS),
    "binary normal noise, n=5000": lambda s: check_relaxed_sampler(
        _normal_noise_binary([0.4, -0.3], 0.5, s, 5000), [0.4, -0.3], 0.5, family="binary_concrete"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(POWER))
def test_power_slow(case):
    reps = 200
    power = np.mean([not POWER[case](7000 + r) for r in range(reps)])
    print(f"{case}: power {power:.2f} at alpha = 1e-3 in {reps} replications")
    assert power > 0.5


@pytest.mark.parametrize("space", ["log", "probability"])
def test_float32_samples_computed_from_rounded_scores_pass(space):
    # y = s − logsumexp(s) with s = (ℓ + G)/τ in float32, as PyTorch's ExpRelaxedCategorical (and,
    # through exp, RelaxedOneHotCategorical) computes its samples: at τ = 0.1 the largest entry of y
    # is off by ~1e-6, the whole distance of x_max from 1; the marginal CDF part failed with
    # p = 1e-249 on these legitimate samples before the rounding of the scores was allowed for.
    ell = np.array([[1.0, 0.0, -0.5], [2.0, -1.0, 0.5]])
    tau = 0.1
    u = np.random.default_rng(21).uniform(size=(2000, 2, 3)).astype(np.float32)
    s = (ell.astype(np.float32) - np.log(-np.log(u))) / np.float32(tau)
    m = s.max(axis=-1, keepdims=True)
    y = s - (m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True)))
    pts = y if space == "log" else np.exp(y)
    v = check_relaxed_sampler(pts, ell, tau, space=space, alpha=1e-3)  # α = 1e-3, uniforms from seed 21
    assert v.passed, v
    wrong = check_relaxed_sampler(pts, ell + np.array([0.0, 0.3, 0.0]), tau, space=space, alpha=1e-3)
    assert not wrong.passed
