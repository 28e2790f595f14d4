"""Scale invariance of the tests and diagnostics of refgrad.stats.

Multiplying the samples (and the target) by a positive double c changes no decision and no p-value
beyond rounding: means, t statistics, Hotelling's T², variance ratios, skewness and kurtosis are all
invariant.  Before, squares of the samples overflowed from c ~ 1e155 and underflowed below c ~ 1e-155
(``unbiasedness_test(x * 1e200)`` gave p = 1, ``x * 1e-300`` raised LinAlgError, ``variance_test``
gave p = 0.5, the heavy-tail flag disappeared at 1e-300).  Every sample here is seeded; the
reference is the same call at c = 1.
"""
import math
import warnings

import numpy as np
import pytest

from refgrad import stats

SCALES = [1e-300, 1e-150, 1e-8, 1.0, 1e8, 1e150, 1e200, 1e300]
#: p-values agree to this relative tolerance (the samples at c != 1 differ from c * x by one rounding)
P_RTOL = 1e-7


def _quiet(fn, *args, **kwargs):
    """``fn`` without its CalibrationWarnings; an overflow or underflow warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", stats.CalibrationWarning)
        return fn(*args, **kwargs)


def _biased_sample(seed=20261207, n=200):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * np.array([1.0, 2.0, 0.5]) + np.array([0.25, 0.0, 0.0])
    x[:, 2] += 0.5 * x[:, 0]  # correlated coordinates: Hotelling differs from Holm
    return x


def _close(a, b, what):
    assert math.isclose(a, b, rel_tol=P_RTOL, abs_tol=1e-300), f"{what}: {a!r} at this scale, {b!r} at scale 1"


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("calibration", ["asymptotic", "bootstrap"])
@pytest.mark.parametrize("method", ["both", "hotelling", "holm"])
def test_unbiasedness_pvalue_is_scale_invariant(scale, calibration, method):
    x = _biased_sample()
    target = np.zeros(3)
    ref = _quiet(stats.unbiasedness_test, x, target, method=method, calibration=calibration)
    got = _quiet(stats.unbiasedness_test, x * scale, target * scale, method=method, calibration=calibration)
    assert ref.pvalue < 0.01  # the reference rejects: the bias 0.25 is visible at n = 200
    assert got.reject == ref.reject
    if calibration == "bootstrap":  # a count of resampled statistics: equal unless a tie moved by rounding
        assert abs(got.pvalue - ref.pvalue) <= 1.0 / (ref.resamples + 1) + 1e-15
    else:
        _close(got.pvalue, ref.pvalue, "pvalue")
    _close(got.statistic, ref.statistic, "statistic")
    np.testing.assert_allclose(got.tstat, ref.tstat, rtol=P_RTOL)
    assert got.rank == ref.rank
    # the reported moments are in the units of the samples
    np.testing.assert_allclose(got.mean / scale, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(got.stderr / scale, ref.stderr, rtol=1e-12)
    assert got.heavy_tail.unreliable == ref.heavy_tail.unreliable


@pytest.mark.parametrize("scale", SCALES)
def test_unbiasedness_null_sample_is_scale_invariant(scale):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(150, 2))
    ref = _quiet(stats.unbiasedness_test, x, np.zeros(2), calibration="asymptotic")
    got = _quiet(stats.unbiasedness_test, x * scale, np.zeros(2), calibration="asymptotic")
    assert not ref.reject
    _close(got.pvalue, ref.pvalue, "pvalue")


@pytest.mark.parametrize("spread", [(1e300, 1e-300), (1e-300, 1e300), (1e200, 1.0), (1.0, 1e-200), (1e-150, 1e-300)])
def test_columns_at_opposite_ends_of_the_range(spread):
    """One coordinate near 1e300 and one near 1e-300 in the same call: each is tested in its own units
    (t statistics and T² are invariant to a separate scale per coordinate)."""
    x = _biased_sample()[:, :2]
    spread = np.array(spread)
    ref = _quiet(stats.unbiasedness_test, x, np.zeros(2), calibration="asymptotic")
    got = _quiet(stats.unbiasedness_test, x * spread, np.zeros(2), calibration="asymptotic")
    _close(got.pvalue, ref.pvalue, "pvalue")
    np.testing.assert_allclose(got.pvalues, ref.pvalues, rtol=P_RTOL)


@pytest.mark.parametrize("scale", SCALES)
def test_degenerate_directions_keep_their_exact_decision(scale):
    """A sum-to-zero score (every sample on the hyperplane Σ g = 0) is decided exactly: a target off the
    hyperplane is rejected with p = 0, one on it is tested on the hyperplane, at every scale."""
    rng = np.random.default_rng(11)
    g = rng.normal(size=(300, 3))
    g -= g.mean(axis=1, keepdims=True)
    on = np.array([0.0, 0.0, 0.0])
    off = np.array([0.01, 0.0, 0.0])
    ref_on = _quiet(stats.unbiasedness_test, g, on, calibration="asymptotic")
    got_on = _quiet(stats.unbiasedness_test, g * scale, on * scale, calibration="asymptotic")
    assert got_on.rank == ref_on.rank == 2
    _close(got_on.pvalue, ref_on.pvalue, "pvalue on the hyperplane")
    got_off = _quiet(stats.unbiasedness_test, g * scale, off * scale, calibration="asymptotic")
    assert got_off.pvalue == 0.0 and got_off.reject
    # a constant coordinate equal to its target (up to rounding) contributes nothing; one that differs rejects
    c = np.column_stack([rng.normal(size=300), np.full(300, 3.0)])
    same = _quiet(stats.unbiasedness_test, c * scale, np.array([0.0, 3.0]) * scale, calibration="asymptotic")
    ref_same = _quiet(stats.unbiasedness_test, c, np.array([0.0, 3.0]), calibration="asymptotic")
    _close(same.pvalue, ref_same.pvalue, "constant coordinate equal to its target")
    assert bool(same.constant[1])
    differ = _quiet(stats.unbiasedness_test, c * scale, np.array([0.0, 3.001]) * scale, calibration="asymptotic")
    assert differ.pvalue == 0.0


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_variance_test_is_scale_invariant(scale, paired, alternative):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 2)) * np.array([1.0, 0.5])
    b = a + rng.normal(size=(400, 2)) * 0.8 if paired else rng.normal(size=(400, 2)) * 1.3
    ref = stats.variance_test(a, b, alternative=alternative, paired=paired)
    got = stats.variance_test(a * scale, b * scale, alternative=alternative, paired=paired)
    if alternative != "greater":
        assert ref.reject
    assert got.reject == ref.reject
    _close(got.pvalue, ref.pvalue, "trace pvalue")
    _close(got.statistic, ref.statistic, "trace statistic")
    np.testing.assert_allclose(got.pvalues, ref.pvalues, rtol=P_RTOL, atol=1e-300)
    np.testing.assert_allclose(got.ratio, ref.ratio, rtol=1e-12)
    _close(got.trace_ratio, ref.trace_ratio, "trace ratio")
    _close(got.trace_skewness, ref.trace_skewness, "trace skewness")
    if 1e-150 <= scale <= 1e150:  # the variances themselves are representable
        np.testing.assert_allclose(got.var_a / scale**2, ref.var_a, rtol=1e-12)


@pytest.mark.parametrize("scale", SCALES)
def test_variance_test_constant_coordinates(scale):
    rng = np.random.default_rng(5)
    a = np.column_stack([rng.normal(size=100), np.full(100, 2.0)])
    b = np.column_stack([rng.normal(size=100), np.full(100, 2.0)])
    ref = stats.variance_test(a, b, alternative="two-sided")
    got = stats.variance_test(a * scale, b * scale, alternative="two-sided")
    assert got.pvalues[1] == ref.pvalues[1] == 1.0
    _close(got.pvalue, ref.pvalue, "trace pvalue")


@pytest.mark.parametrize("scale", SCALES)
def test_heavy_tail_diagnostic_is_scale_invariant(scale):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 2))
    x[17, 0] = 40.0  # one sample carries most of the sum of squares of coordinate 0
    ref = stats.heavy_tail_diagnostic(x)
    got = stats.heavy_tail_diagnostic(x * scale)
    assert ref.unreliable and bool(ref.flagged[0]) and not bool(ref.flagged[1])
    np.testing.assert_array_equal(got.flagged, ref.flagged)
    for name in ("skewness", "excess_kurtosis", "max_share"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("scale", [1e-150, 1e-8, 1.0, 1e8, 1e150])
def test_required_samples_is_scale_invariant(scale):
    """Variance scales as c², the effect as c: the sample size is unchanged wherever both are representable."""
    ref = stats.required_samples(4.0, 0.1)
    assert stats.required_samples(4.0 * scale * scale, 0.1 * scale) == ref


@pytest.mark.parametrize("scale", SCALES + [1.7e308 / 8])
def test_assert_unbiased_with_a_tolerance_is_scale_invariant(scale):
    """The band null of testing.assert_unbiased (atol) at any scale, up to samples near the largest double
    (whose plain sum overflows).  Bias 0.25 in coordinate 0, atol 0.05: rejected at alpha = 1e-3."""
    from refgrad import testing

    x = _biased_sample()[:, :2] + np.array([4.0, 0.0])  # positive coordinate 0: its plain sum overflows near 1e308
    target = np.array([4.0, 0.0])
    ref = _quiet(testing.assert_biased, x, target=target, atol=0.05)
    got = _quiet(testing.assert_biased, x * scale, target=target * scale, atol=0.05 * scale)
    _close(got.pvalue, ref.pvalue, "pvalue")
    assert got.reject and ref.reject
