"""Flush-to-zero relaxed samples: a convention, not "wrong"; wrong samplers with zeros still fail.

TensorFlow and JAX on CPU flush every float32 result below FLT_MIN = np.finfo(np.float32).tiny
(1.18e-38) to exactly 0 and hold no subnormal values: measured here for TensorFlow (sigmoid of
float32 scores in [-110, -60]: the largest score giving 0 is -87.33675, where the exact sigmoid
is 1.1753e-38 < FLT_MIN; no subnormal output) and emulated deterministically with NumPy float32
arithmetic followed by ``x[x < tiny] = 0``.  Every statistical test below states its seed; the
verdicts run at the default α = 1e-3 unless stated.
"""
import numpy as np
import pytest
from scipy import stats

from refgrad.crosscheck import DIAGNOSES, check_bernoulli_sampler, check_categorical_sampler, check_relaxed_sampler
from refgrad.crosscheck._verdict import FLUSH_TO_ZERO

TINY = float(np.finfo(np.float32).tiny)


def _uniform32(seed, shape):
    """float32 uniforms in [tiny, 1), as TF's and JAX's samplers draw them."""
    u = np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
    return np.maximum(u, np.float32(TINY))


def _binary32(ell, tau, n, seed, underflow="flush"):
    """σ((ℓ + L)/τ) from float32 scores.

    ``underflow``: "flush" -- float32 1/(1 + exp(-z)), then results below FLT_MIN set to 0 (FTZ);
    "naive" -- float32 1/(1 + exp(-z)) as is (0 below 1/FLT_MAX = 2.9e-39, subnormals above, as
    NumPy's, SciPy's and PyTorch's float32 sigmoids); "gradual" -- σ in float64 rounded to float32
    (subnormals kept, 0 below half the smallest subnormal).
    """
    ell = np.atleast_1d(np.asarray(ell, dtype=np.float32))
    u = _uniform32(seed, (n, ell.size))
    z = (ell + (np.log(u) - np.log1p(-u))) / np.float32(tau)
    with np.errstate(over="ignore"):
        if underflow == "gradual":
            return (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)
        x = (np.float32(1) / (np.float32(1) + np.exp(-z))).astype(np.float32)
    return np.where(x < TINY, np.float32(0), x) if underflow == "flush" else x


def _concrete32(ell, tau, n, seed, flush=True):
    """softmax((ℓ + G)/τ) in float32 arithmetic; ``flush``: results below FLT_MIN set to 0 (FTZ)."""
    ell = np.asarray(ell, dtype=np.float32)
    u = _uniform32(seed, (n, ell.size))
    s = (ell - np.log(-np.log(u))) / np.float32(tau)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    x = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return np.where(x < TINY, np.float32(0), x) if flush else x


def test_diagnosis_is_declared():
    assert FLUSH_TO_ZERO == "convention: flush-to-zero below FLT_MIN" and FLUSH_TO_ZERO in DIAGNOSES


@pytest.mark.parametrize("ell, tau", [(-2.0, 0.03), (0.0, 0.01), (1.0, 0.02)])
def test_binary_flush_to_zero_is_a_convention(ell, tau):
    x = _binary32(ell, tau, 5000, 1)
    assert (x == 0).sum() > 200 and not ((x > 0) & (x < TINY)).any()
    v = check_relaxed_sampler(x, ell, tau, family="binary_concrete")
    # the law holds on the censored reading: a passing verdict that names the convention
    assert v.diagnosis == FLUSH_TO_ZERO and v.passed, v
    assert all(p.passed for p in v.parts) and v.parts[-1].diagnosis == FLUSH_TO_ZERO
    assert "up to the flush-to-zero convention" in v.explanation
    assert "FLT_MIN" in v.explanation and v.compared["p-value with zeros below the smallest subnormal"] < 1e-3
    # the same draws with gradual underflow (subnormals kept) agree outright
    g = check_relaxed_sampler(_binary32(ell, tau, 5000, 1, "gradual"), ell, tau, family="binary_concrete")
    assert g.passed, g


@pytest.mark.parametrize("ell, tau", [([0.5, -1.0, 1.2], 0.05), ([0.0, -2.0], 0.03), ([0.5, -1.0, 1.2, 0.0], 0.03)])
def test_concrete_flush_to_zero_is_a_convention(ell, tau):
    x = _concrete32(ell, tau, 4000, 2)
    v = check_relaxed_sampler(x, ell, tau)
    assert v.diagnosis == FLUSH_TO_ZERO and v.passed, v
    assert check_relaxed_sampler(_concrete32(ell, tau, 4000, 2, flush=False), ell, tau).passed


def test_zeros_below_flt_min_beside_subnormals_are_the_same_convention():
    # float32 1/(1 + exp(-z)): exp(-z) overflows for z < -88.72, so 0 below 2.9e-39 and subnormals above
    x = _binary32(-2.0, 0.03, 5000, 1, "naive")
    assert ((x > 0) & (x < TINY)).sum() > 10
    v = check_relaxed_sampler(x, -2.0, 0.03, family="binary_concrete")
    assert v.diagnosis == FLUSH_TO_ZERO and v.passed and "subnormal value(s)" in v.explanation, v


def test_zeros_where_the_law_has_no_mass_are_wrong():
    # τ = 1: P(x < FLT_MIN) = σ(-87.3) ≈ 1e-38; three zeros are impossible at any n we can draw
    x = _binary32(0.0, 1.0, 3000, 3)
    x[[5, 50, 500], 0] = 0.0
    v = check_relaxed_sampler(x, 0.0, 1.0, family="binary_concrete")
    assert v.diagnosis == "wrong" and v.pvalue < 1e-30, v
    assert "flush" in v.explanation
    xc = _concrete32([0.5, -1.0, 1.2], 1.0, 3000, 4)
    xc[7, 1] = 0.0
    xc[7] /= xc[7].sum()
    vc = check_relaxed_sampler(xc, [0.5, -1.0, 1.2], 1.0)
    assert vc.diagnosis == "wrong" and vc.worst[0] == {**vc.worst[0], "coordinate": 0, "category": 1}, vc


@pytest.mark.parametrize("family", ["binary_concrete", "concrete"])
def test_too_many_zeros_are_wrong(family):
    # a sampler flushing below 1e-33 instead of FLT_MIN: P(zero) 0.43 instead of 0.35 at ℓ = -2, τ = 0.03
    if family == "binary_concrete":
        x = _binary32(-2.0, 0.03, 5000, 5, "gradual")
        x = np.where(x < 1e-33, np.float32(0), x)
        v = check_relaxed_sampler(x, -2.0, 0.03, family=family)
    else:
        x = _concrete32([0.0, -2.0], 0.03, 5000, 5, flush=False)
        x = np.where(x < 1e-33, np.float32(0), x)
        v = check_relaxed_sampler(x, [0.0, -2.0], 0.03)
    assert v.diagnosis == "wrong", v
    assert any(p.test.startswith("count of exact zeros") and not p.passed for p in v.parts), v


def test_flush_to_zero_with_a_wrong_temperature_is_wrong():
    x = _binary32(-2.0, 0.03 * 1.3, 5000, 6)
    v = check_relaxed_sampler(x, -2.0, 0.03, family="binary_concrete")
    assert v.diagnosis == "wrong", v
    xc = _concrete32([0.5, -1.0, 1.2], 0.05 * 1.3, 4000, 7)
    assert check_relaxed_sampler(xc, [0.5, -1.0, 1.2], 0.05).diagnosis == "wrong"


def test_ones_from_rounding_are_ordinary():
    # 1 - tiny rounds to 1.0: a 1.0 stands for [1 - 4 spacing(1), 1] (ROUNDING_ULPS), no convention
    x = _binary32(3.0, 0.1, 5000, 8)
    assert (x == 1).mean() > 0.7 and not (x == 0).any()
    v = check_relaxed_sampler(x, 3.0, 0.1, family="binary_concrete")
    assert v.passed and v.diagnosis == "agrees", v


def test_discrete_samplers_unaffected_by_flush_to_zero():
    # a probability below FLT_MIN flushed to 0 is a cell a correct sampler hits 0 times at any feasible n
    logits = np.array([0.0, 0.5, -100.0])
    p = np.exp(logits.astype(np.float32) - np.float32(0.5))
    p = np.where(p < TINY, np.float32(0), p)
    cdf = np.cumsum(p / p.sum())
    idx = np.searchsorted(cdf, _uniform32(9, 2000), side="right")
    assert (idx == 2).sum() == 0
    assert check_categorical_sampler(idx, logits).passed
    with np.errstate(over="ignore"):
        prob1 = np.float32(1) / (np.float32(1) + np.exp(np.float32(100)))  # σ(-100) = 3.7e-44: 0 in float32
    bits = _uniform32(10, 2000) < np.where(prob1 < TINY, np.float32(0), prob1)
    assert check_bernoulli_sampler(bits, -100.0).passed


def _flushed_verdicts(family, seeds):
    """Diagnoses of correct flushed samples at α = 0.05 (ℓ = -2 / (0, -2), τ = 0.03, n = 300)."""
    out = []
    for seed in seeds:
        if family == "binary_concrete":
            v = check_relaxed_sampler(_binary32(-2.0, 0.03, 300, seed), -2.0, 0.03, family=family, alpha=0.05)
        else:
            v = check_relaxed_sampler(_concrete32([0.0, -2.0], 0.03, 300, seed), [0.0, -2.0], 0.03, alpha=0.05,
                                      resamples=999)
        out.append(v.diagnosis)
    return out


@pytest.mark.parametrize("family", ["binary_concrete", "concrete"])
def test_flush_reading_false_alarm_rate(family):
    # 200 replications (seeds 100..299): the rate of "wrong" stays below the upper end of the 99 %
    # binomial interval of 0.05 at 200 replications (0.09)
    wrong = _flushed_verdicts(family, range(100, 300)).count("wrong")
    print(f"{family}: wrong in {wrong} of 200 at α = 0.05")
    assert wrong / 200 <= stats.binom.ppf(0.995, 200, 0.05) / 200


@pytest.mark.slow
@pytest.mark.parametrize("family", ["binary_concrete", "concrete"])
def test_flush_reading_false_alarm_rate_slow(family):
    # the numbers in refgrad.crosscheck._samplers' docstring: 1000 replications, seeds 1000..1999
    got = _flushed_verdicts(family, range(1000, 2000))
    wrong, flushed = got.count("wrong"), got.count(FLUSH_TO_ZERO)
    print(f"{family}: wrong {wrong}, flush-to-zero convention {flushed}, agrees {got.count('agrees')} of 1000")
    assert wrong / 1000 <= stats.binom.ppf(0.995, 1000, 0.05) / 1000


def test_tensorflow_samples():
    tf = pytest.importorskip("tensorflow")
    u = tf.random.stateless_uniform((5000, 1), seed=[3, 1], minval=TINY, maxval=1.0, dtype=tf.float32)
    x = tf.math.sigmoid((-2.0 + tf.math.log(u) - tf.math.log1p(-u)) / 0.03).numpy()
    assert x.dtype == np.float32 and (x == 0).any()
    if ((x > 0) & (x < TINY)).any():
        pytest.skip("this TensorFlow build keeps subnormals on this CPU")
    v = check_relaxed_sampler(x, -2.0, 0.03, family="binary_concrete")
    assert v.diagnosis == FLUSH_TO_ZERO, v
    g = tf.random.stateless_uniform((4000, 3), seed=[5, 2], minval=TINY, maxval=1.0, dtype=tf.float32)
    xc = tf.nn.softmax((tf.constant([0.5, -1.0, 1.2]) - tf.math.log(-tf.math.log(g))) / 0.05, axis=-1).numpy()
    assert check_relaxed_sampler(xc, [0.5, -1.0, 1.2], 0.05).diagnosis == FLUSH_TO_ZERO
