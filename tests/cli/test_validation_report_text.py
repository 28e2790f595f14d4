"""Texts the validation cases put into report cells: no empty values, bisection ends that print differently, and
bootstrap p-values whose floor 1/(B + 1) is stated next to them."""
import numpy as np
import pytest

from refgrad import stats as rstats
from validation.cases import _findings, toy


def test_bracket_ends_near_float32_max_print_differently():
    hi = float(np.finfo(np.float32).max) / 100  # ~3.402823466e+36, where 10 digits printed both ends alike
    lo = np.nextafter(hi, 0.0)
    for _ in range(3):
        lo = np.nextafter(lo, 0.0)
    assert f"{hi:.10g}" == f"{lo:.10g}"  # the old text: 'fails at 3.402823466e+36, passes at 3.402823466e+36'
    fail, ok = _findings.bracket(hi, lo)
    assert fail != ok and float(fail) > float(ok)  # which end is which stays visible
    assert _findings.bracket(1.0, 2.0) == ("1", "2")  # no needless digits
    assert _findings.bracket(1e-3, 1.0005e-3) == ("0.001", "0.001001")


def test_listing_never_leaves_an_empty_value():
    assert _findings.listing([]) == "none"
    assert _findings.listing(iter(["a: 1", "b: 2"])) == "a: 1, b: 2"


def test_log_prob_finding_text_has_no_empty_values():
    pytest.importorskip("torch")  # the case module needs nothing at import, but its callers do
    from validation.cases.crosscheck_torch import _log_prob_extra

    text = _log_prob_extra({("float32", 0.5): 0.0}, {("float32", 0.5): 0.0}, {})
    assert text == ("non-finite log_prob fraction: none; samples on the simplex boundary (rounded to 0 or 1, "
                    "left out of the density check): none")
    text = _log_prob_extra({("float32", 0.1): 0.25}, {}, {("float64", 0.1): "ValueError: x"})
    assert "fraction: float32 τ=0.1: 0.25;" in text and "check): none;" in text and "float64 τ=0.1: ValueError" in text
    for bad in (": ;", ":  ", ": ,"):
        assert bad not in text


def test_a_bootstrap_p_value_at_its_floor_is_labelled():
    """The toy case's Monte Carlo table (α = 1e-3, one coordinate): a clearly biased sample gets the bootstrap's
    smallest p-value 1/(B + 1) = 1/10001, and its calibration cell says so (seed 0, n = 2000; two distinct values,
    as the toy's one-bit estimators have, so calibration='auto' bootstraps)."""
    x = (np.random.default_rng(0).random((2000, 1)) < 0.6).astype(float)
    res = rstats.unbiasedness_test(x, np.full(1, 0.5), alpha=toy.ALPHA, method="holm")
    assert res.calibration == "bootstrap" and res.resamples == 10000
    assert res.pvalue == pytest.approx(1 / 10001, rel=1e-12)
    assert toy.calibration_text(res) == "bootstrap, B = 10000 (p ≥ 9.999e-05)"
    big = rstats.unbiasedness_test(x, np.full(1, 0.5), alpha=toy.ALPHA, method="holm", calibration="asymptotic")
    assert toy.calibration_text(big) == "normal theory (Student t)" and big.pvalue < 1e-15
