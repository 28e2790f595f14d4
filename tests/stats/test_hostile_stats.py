"""Hostile input to refgrad.stats, refgrad.testing, the sampler checks and Verdict: refused up front with a
ValueError naming the argument, never an unbounded run, a silently ignored option or invalid JSON.

Seeds are fixed; the statistical calls here are there to show what runs and what is refused, their levels
are the functions' defaults (stated where a decision is asserted).
"""
import json
import math
import time
import warnings

import numpy as np
import pytest

from refgrad import Bernoulli, objectives, stats, testing
from refgrad._core.checks import WORK_LIMIT, check_distribution, check_seed
from refgrad.crosscheck import Verdict, check_categorical_sampler, check_relaxed_sampler

RNG_SEED = 20261207


def _normal(n=200, p=3, seed=RNG_SEED):
    return np.random.default_rng(seed).normal(size=(n, p))


def _quick(fn, *args, **kwargs):
    """Call ``fn`` and assert it answered within 5 s (a refusal must come before the work)."""
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------------------------
# work budget
# ----------------------------------------------------------------------------------------------


def test_bootstrap_beyond_the_work_budget_is_refused_before_it_starts():
    x = _normal()
    with pytest.raises(ValueError, match=r"(?s)resamples=1000000000000.*elementary operations.*max_work=") as err:
        _quick(stats.unbiasedness_test, x, np.zeros(3), calibration="bootstrap", resamples=10**12)
    assert "WORK_LIMIT" in str(err.value)
    with pytest.raises(ValueError, match="max_work"):
        _quick(testing.assert_unbiased, x, target=np.zeros(3), calibration="bootstrap", resamples=10**12)


def test_work_budget_can_be_raised_or_lowered_deliberately():
    x = _normal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.CalibrationWarning)
        ref = stats.unbiasedness_test(x, np.zeros(3), calibration="bootstrap", resamples=2999)
        same = stats.unbiasedness_test(x, np.zeros(3), calibration="bootstrap", resamples=2999, max_work=math.inf)
        assert ref.calibration == same.calibration == "bootstrap" and same.pvalue == ref.pvalue
        with pytest.raises(ValueError, match="max_work"):
            stats.unbiasedness_test(x, np.zeros(3), calibration="bootstrap", resamples=2999, max_work=1e4)
        # "auto" within a small budget falls back to the F / t references instead of refusing
        auto = stats.unbiasedness_test(x, np.zeros(3), max_work=1e4)
        assert auto.calibration == "asymptotic" and any("more than max_work = 1e+04" in t for t in auto.notes)
        assert stats.unbiasedness_test(x, np.zeros(3)).calibration == "bootstrap"
    for bad in (0, -1.0, math.nan, "1e9", True):
        with pytest.raises(ValueError, match="max_work"):
            stats.unbiasedness_test(x, np.zeros(3), max_work=bad)
    assert WORK_LIMIT == 10**11


def _off_null_indices(n=400, seed=RNG_SEED):
    """Category indices from (0.6, 0.2, 0.2): far off the uniform law they are checked against."""
    return np.random.default_rng(seed).choice(3, size=n, p=[0.6, 0.2, 0.2])


def test_categorical_sampler_resamples_beyond_the_budget_is_refused():
    idx = _off_null_indices()
    with pytest.raises(ValueError, match=r"(?s)Monte Carlo G test.*elementary operations.*max_work="):
        _quick(check_categorical_sampler, idx, np.zeros(3), resamples=10**15)
    with pytest.raises(ValueError, match="max_work"):
        _quick(check_categorical_sampler, idx, np.zeros(3), resamples=10**7, max_work=1e6)
    # the default budget runs, and rejects this sample at the default alpha = 1e-3
    assert not check_categorical_sampler(idx, np.zeros(3)).passed
    assert not check_categorical_sampler(idx, np.zeros(3), resamples=20000, max_work=math.inf).passed


def test_relaxed_sampler_resamples_beyond_the_budget_is_refused():
    rng = np.random.default_rng(RNG_SEED)
    g = -np.log(-np.log(rng.random((300, 3))))
    x = np.exp(g - np.log(np.sum(np.exp(g), axis=1, keepdims=True)))  # Concrete at tau = 1, logits 0
    with pytest.raises(ValueError, match="max_work"):
        _quick(check_relaxed_sampler, x, np.zeros(3), 1.0, resamples=10**15)


# ----------------------------------------------------------------------------------------------
# seeds
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0.5, True, "7", -3, 2.0, [1, 2], object()])
def test_sampler_checks_refuse_bad_seeds(seed):
    idx = np.random.default_rng(1).integers(0, 3, size=200)
    with pytest.raises(ValueError, match=r"seed must be None, a non-negative int"):
        check_categorical_sampler(idx, np.zeros(3), seed=seed)
    x = np.full((50, 2), 0.5)
    with pytest.raises(ValueError, match=r"seed must be None, a non-negative int"):
        check_relaxed_sampler(x, np.zeros(2), 1.0, seed=seed)


def test_sampler_checks_accept_the_seeds_refgrad_random_accepts():
    idx = np.random.default_rng(1).integers(0, 3, size=200)
    ref = check_categorical_sampler(idx, np.zeros(3), seed=5)
    assert check_categorical_sampler(idx, np.zeros(3), seed=np.int64(5)).pvalue == ref.pvalue
    assert "seed 5" in ref.test
    for seed in (None, np.random.default_rng(3), np.random.SeedSequence(4)):
        v = check_categorical_sampler(idx, np.zeros(3), seed=seed)
        used = int(v.test.split("seed ")[1].split(")")[0])  # the verdict names the seed it used
        assert check_categorical_sampler(idx, np.zeros(3), seed=used).pvalue == v.pvalue
    assert check_seed(np.random.SeedSequence(4)) == check_seed(np.random.SeedSequence(4)) >= 0


# ----------------------------------------------------------------------------------------------
# options that would be ignored
# ----------------------------------------------------------------------------------------------


def test_assertions_refuse_n_with_an_array_of_samples():
    x = _normal(p=2)
    with pytest.raises(ValueError, match=r"n = 50 is the number of estimates to draw"):
        testing.assert_unbiased(x, target=np.zeros(2), n=50)
    with pytest.raises(ValueError, match=r"n = 50 is the number of estimates to draw"):
        testing.assert_biased(x, target=np.ones(2), n=50)
    with pytest.raises(ValueError, match=r"n = 50 is the number of estimates to draw"):
        testing.assert_variance_less(x, x * 2, n=50, equal_cost=False)
    testing.assert_unbiased(x, target=np.zeros(2))  # without n it runs (alpha = 1e-3, null sample)


@pytest.mark.parametrize("dist", ["bernoulli", None, np.zeros(2), 3.0])
def test_distribution_of_the_wrong_type_is_a_value_error_naming_dist(dist):
    with pytest.raises(ValueError, match=r"dist must be a (discrete )?refgrad distribution"):
        check_distribution(dist)
    f = objectives.SquaredDistance(np.zeros(2))
    with pytest.raises(ValueError, match=r"dist must be a (discrete )?refgrad distribution"):
        testing.rarest_outcome(dist)
    if dist is not None:
        with pytest.raises(ValueError, match=r"dist must be a refgrad distribution"):
            testing.assert_unbiased("reinforce", dist, f, n=100)
        with pytest.raises(ValueError, match=r"dist must be a refgrad distribution"):
            testing.assert_variance_less("reinforce", "reinforce", dist, f, n=100)
    assert check_distribution(Bernoulli(np.zeros(2))) is not None


# ----------------------------------------------------------------------------------------------
# Verdict
# ----------------------------------------------------------------------------------------------


def _verdict(**changes):
    fields = dict(check="check_x", passed=True, diagnosis="agrees", test="a test", statistic=1.5, pvalue=0.3,
                  alpha=1e-3, n=10, compared={"a": np.arange(3.0)}, worst=[{"index": 1, "error": 0.1}],
                  explanation="text")
    fields.update(changes)
    return Verdict(**fields)


@pytest.mark.parametrize("changes, name", [
    (dict(passed="no"), "passed"), (dict(passed=1), "passed"), (dict(passed=None), "passed"),
    (dict(pvalue=math.nan), "pvalue"), (dict(pvalue=2.0), "pvalue"), (dict(pvalue=-0.1), "pvalue"),
    (dict(pvalue="0.5"), "pvalue"), (dict(pvalue=0.5 + 0j), "pvalue"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.0), "alpha"), (dict(alpha=math.nan), "alpha"),
    (dict(alpha=True), "alpha"),
    (dict(n=-1), "n"), (dict(n=2.5), "n"), (dict(n=10.0), "n"), (dict(n="10"), "n"), (dict(n=True), "n"),
    (dict(statistic=1j), "statistic"), (dict(statistic="big"), "statistic"),
    (dict(compared={"a": 1 + 2j}), "compared"), (dict(compared={"a": np.array([1 + 0j])}), "compared"),
    (dict(compared={"a": object()}), "compared"), (dict(compared=[1, 2]), "compared"),
    (dict(worst=[{"error": 2j}]), "worst"), (dict(worst={"a": 1}), "worst"),
    (dict(check=3), "check"), (dict(test=None), "test"), (dict(diagnosis=["agrees"]), "diagnosis"),
    (dict(parts=("x",)), "parts"),
])
def test_verdict_refuses_what_breaks_its_promises(changes, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        _verdict(**changes)


def test_verdict_to_dict_is_always_valid_json():
    v = _verdict(statistic=math.inf, compared={"x": np.array([1.0, math.nan, -math.inf]), "k": np.int64(3),
                                               "flag": np.bool_(True), "name": "s", "none": None},
                 worst=[{"index": (1, 2), "value": np.float32(0.5)}])
    composite = _verdict(parts=(v, _verdict(passed=False, diagnosis="wrong", pvalue=0.0, statistic=math.nan)),
                         passed=False, diagnosis="wrong")
    text = json.dumps(composite.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["parts"][0]["statistic"] == "inf" and back["parts"][1]["statistic"] == "nan"
    assert back["parts"][0]["compared"]["x"] == [1.0, "nan", "-inf"]
    for ok in (dict(pvalue=None, alpha=None), dict(pvalue=0.0), dict(pvalue=1.0), dict(n=0), dict(n=np.int64(5))):
        json.dumps(_verdict(**ok).to_dict(), allow_nan=False)


def test_heavy_tail_n_eff_beyond_n_is_the_documented_pilot_use_and_is_said():
    """n_eff > n diagnoses a pilot sample for a larger final run (documented): allowed, and the message says
    which sizes each rule used.  Bernoulli(0.05) samples, skewness 4.1: a mean of 100 is flagged, of 10^6 not
    (no single sample dominates at n = 2000, so rule 3 is quiet)."""
    x = (np.random.default_rng(127).random((2000, 1)) < 0.05).astype(float)
    pilot_small = stats.heavy_tail_diagnostic(x, n_eff=100)
    pilot_large = stats.heavy_tail_diagnostic(x, n_eff=10**6)
    assert pilot_small.unreliable and not pilot_large.unreliable
    assert "n_eff = 1000000 samples from these n = 2000" in pilot_large.message
    assert "n_eff" not in stats.heavy_tail_diagnostic(x).message


def test_categorical_sampler_default_budget_shrinks_to_the_work_budget_or_refuses():
    """resamples=None: the automatic R = max(9999, 20 d / alpha) = 60000 draws (d = 3 coordinates of 3 cells,
    alpha = 1e-3) is lowered to max_work / (9 cells x 100) while R >= 2 d / alpha = 6000, refused below."""
    rng = np.random.default_rng(RNG_SEED)
    idx = rng.choice(3, size=(300, 3), p=[0.6, 0.2, 0.2])  # off the uniform law: every coordinate runs its R draws
    full = check_categorical_sampler(idx, np.zeros((3, 3)))
    assert "up to 60000 multinomial draws" in full.test and not full.passed
    small = check_categorical_sampler(idx, np.zeros((3, 3)), max_work=2e7)
    assert "up to 22222 multinomial draws" in small.test and not small.passed
    with pytest.raises(ValueError, match="max_work"):
        check_categorical_sampler(idx, np.zeros((3, 3)), max_work=1e6)
