"""The p-value of unbiasedness_test where its two parts coincide, and the rounding tolerance of float32 samples.

* d = 1: Hotelling's T² is the square of the t statistic, so the default combined
  decision must be that t-test itself (no Bonferroni doubling).  The p-value equals
  scipy.stats.ttest_1samp's, and the null rejection rate at α = 0.05 over 2000
  replications of n = 30 (seed 20240513) lies in the 99 % binomial interval of 0.05,
  [76, 126] rejections (the doubled p-value rejects at 0.025).
* d > 1 keeps the Bonferroni combination min(1, 2 min(p_T², p_Holm)).
* float32 samples of a sum-to-zero categorical score are on their hyperplane only up to
  float32 rounding: they must not be reported inconclusive, while a target really off
  the hyperplane still is (and is rejected with degenerate="exact").
"""
import warnings

import numpy as np
import pytest
from scipy import stats as sps

import refgrad
from refgrad import exact, objectives, stats
from refgrad.distributions import Categorical
from refgrad.stats._common import ROUNDING_ULPS, _resolve_rtol

ALPHA = 0.05
SEED = 20240510


def _asymptotic(x, target, **kw):
    return stats.unbiasedness_test(x, target, calibration="asymptotic", **kw)


@pytest.mark.parametrize("shift", [0.0, 0.5, 2.0])
def test_one_coordinate_pvalue_is_the_student_t_pvalue(shift):
    rng = np.random.default_rng(SEED)
    n = 200
    x = rng.normal(shift / np.sqrt(n), 1.0, size=n)
    res = _asymptotic(x[:, None], np.zeros(1))
    expected = sps.ttest_1samp(x, 0.0).pvalue
    assert res.pvalue == pytest.approx(expected, rel=1e-12, abs=0)
    assert res.hotelling_pvalue == pytest.approx(expected, rel=1e-10)
    assert res.holm_pvalue == pytest.approx(expected, rel=1e-12)
    assert res.combination == stats.COMBINATIONS["single"]


def test_a_mean_half_a_standard_error_off_does_not_print_one():
    rng = np.random.default_rng(SEED + 1)
    x = rng.normal(0.0, 1.0, size=400)
    x = x - x.mean() + 0.5 * x.std(ddof=1) / np.sqrt(x.size)  # exactly t = 0.5
    res = _asymptotic(x[:, None], np.zeros(1))
    assert res.pvalue == pytest.approx(2 * sps.t.sf(0.5, x.size - 1), rel=1e-10)
    assert res.pvalue < 0.7  # the doubled value was 1


def test_one_live_coordinate_among_constant_ones_is_a_single_test():
    rng = np.random.default_rng(SEED + 2)
    x = np.column_stack([rng.normal(0.1, 1.0, size=150), np.full(150, 2.0), np.zeros(150)])
    res = _asymptotic(x, np.array([0.0, 2.0, 0.0]))
    assert res.pvalue == pytest.approx(sps.ttest_1samp(x[:, 0], 0.0).pvalue, rel=1e-12)
    assert res.combination == stats.COMBINATIONS["single"]


def test_one_coordinate_rejection_rate_is_alpha_not_half_of_it():
    # 2000 null replications of n = 30 normal samples, fixed seed; the 99 % binomial interval of
    # Bin(2000, 0.05) is [76, 126] rejections; the doubled p-value rejects at rate 0.025 (about 50).
    rng = np.random.default_rng(SEED + 3)
    reps, n = 2000, 30
    data = rng.normal(size=(reps, n, 1))
    with warnings.catch_warnings():  # a few replications' Edgeworth size estimate exceeds 1.25 α: expected here
        warnings.simplefilter("ignore", stats.CalibrationWarning)
        hits = sum(_asymptotic(data[r], np.zeros(1), alpha=ALPHA).reject for r in range(reps))
    lo, hi = sps.binom.ppf([0.005, 0.995], reps, ALPHA)
    assert lo <= hits <= hi, (hits, lo, hi)
    # the same replications, decided by the exact t-test
    direct = sum(sps.ttest_1samp(data[r, :, 0], 0.0).pvalue < ALPHA for r in range(reps))
    assert hits == direct


def test_several_coordinates_keep_the_bonferroni_combination():
    rng = np.random.default_rng(SEED + 4)
    x = rng.normal(0.05, 1.0, size=(300, 3))
    res = _asymptotic(x, np.zeros(3))
    assert res.pvalue == pytest.approx(min(1.0, 2.0 * min(res.hotelling_pvalue, res.holm_pvalue)), rel=1e-14)
    assert res.combination.startswith("Bonferroni of Hotelling T² and Holm t-tests")
    # the other methods are not combined
    assert _asymptotic(x, np.zeros(3), method="hotelling").pvalue == pytest.approx(res.hotelling_pvalue)
    assert _asymptotic(x, np.zeros(3), method="holm").pvalue == pytest.approx(res.holm_pvalue)


def test_str_prints_both_components_and_the_combination():
    rng = np.random.default_rng(SEED + 5)
    for d, key in ((1, "single"), (2, "both")):
        res = _asymptotic(rng.normal(size=(80, d)), np.zeros(d))
        text = str(res)
        assert "Hotelling T²" in text and "Holm: smallest adjusted p" in text
        assert f"combination: {stats.COMBINATIONS[key].format(step='Holm')}" in text
    assert "Bonferroni" in stats.COMBINED_PVALUE_EXPLANATION
    assert "single coordinate" in stats.COMBINED_PVALUE_EXPLANATION


def test_bootstrap_single_coordinate_is_not_doubled():
    rng = np.random.default_rng(SEED + 6)
    x = rng.normal(0.1, 1.0, size=(200, 1))
    res = stats.unbiasedness_test(x, np.zeros(1), alpha=ALPHA)
    assert res.calibration == "bootstrap"
    assert res.pvalue == res.holm_pvalue
    assert res.pvalue == pytest.approx(res.hotelling_pvalue, abs=1.5 / (res.resamples + 1))


# --------------------------------------------------------------------------------------------
# float32 samples
# --------------------------------------------------------------------------------------------


def _categorical_reinforce(n=4000, seed=SEED):
    dist = Categorical(np.array([[0.3, -1.0, 0.5], [1.2, 0.0, -0.4]]))
    f = objectives.SquaredDistance(np.full((2, 3), 0.3))
    return refgrad.estimate("reinforce", dist, f, n=n, rng=seed), exact.gradient(dist, f)


def _float32_score_estimates(n=3000, seed=SEED):
    """REINFORCE on one 4-way categorical computed in float32 throughout (as torch would)."""
    rng = np.random.default_rng(seed)
    logits = np.array([0.4, -0.7, 1.1, 0.0], dtype=np.float32)
    prob = np.exp(logits - logits.max()).astype(np.float32)
    prob /= prob.sum(dtype=np.float32)
    values = np.array([1.3, -0.2, 0.7, 2.1], dtype=np.float32)
    k = rng.choice(4, size=n, p=prob.astype(np.float64) / prob.sum(dtype=np.float64))
    onehot = np.eye(4, dtype=np.float32)[k]
    g = values[k][:, None] * (onehot - prob[None, :])
    p64 = prob.astype(np.float64) / prob.astype(np.float64).sum()
    target = p64 * (values.astype(np.float64) - p64 @ values.astype(np.float64))
    return g.astype(np.float32), target


@pytest.mark.parametrize("maker", [lambda: tuple(a.astype(np.float32) for a in _categorical_reinforce()),
                                   _float32_score_estimates], ids=["cast", "float32-arithmetic"])
def test_float32_categorical_samples_are_not_inconclusive(maker):
    g, target = maker()
    assert g.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = stats.unbiasedness_test(g, target, alpha=0.01)
    assert not res.inconclusive, res.notes
    assert not any("INCONCLUSIVE" in note for note in res.notes)
    # the same samples with the float64 tolerance are the false alarm being fixed
    assert stats.unbiasedness_test(g, target, alpha=0.01, rtol=1e-12, degenerate="inconclusive").inconclusive
    # with the default degenerate="exact" the float64 tolerance rejects the correct float32 sample
    assert stats.unbiasedness_test(g, target, alpha=0.01, rtol=1e-12).reject
    assert not res.reject


def test_float32_real_degeneracy_is_still_caught():
    g, target = _float32_score_estimates()
    off = target + 1e-3 * np.abs(g).max()  # leaves the sum-to-zero hyperplane by 8 x the float32 rtol
    res = stats.unbiasedness_test(g, off, alpha=0.01, degenerate="inconclusive")
    assert res.inconclusive
    assert stats.unbiasedness_test(g, off, alpha=0.01).pvalue == 0.0


def test_rtol_default_follows_the_dtype():
    x64 = np.zeros((3, 2))
    assert _resolve_rtol(None, x64, np.zeros(2)) == 1e-12
    assert _resolve_rtol(None, x64.astype(np.float32), np.zeros(2)) == ROUNDING_ULPS * np.finfo(np.float32).eps
    assert _resolve_rtol(None, [[1, 2], [3, 4]], [0, 0]) == 1e-12
    assert _resolve_rtol(None, x64.astype(np.float16), np.zeros(2)) == 0.01
    assert _resolve_rtol(3e-5, x64.astype(np.float32), np.zeros(2)) == 3e-5
    with pytest.raises(ValueError, match="rtol"):
        stats.unbiasedness_test(x64 + np.arange(3)[:, None], np.zeros(2), rtol=1.5)
