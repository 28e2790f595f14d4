"""The shared input checks of refgrad._core.checks: the float64 converter, counts, scalars, describe."""
import fractions
import warnings

import numpy as np
import pytest

from refgrad import Bernoulli, Categorical
from refgrad._core.checks import (
    MAX_ARRAY_BYTES,
    InputTypeError,
    as_float_array,
    check_count,
    check_positive_scalar,
    check_sample_count,
    describe,
)

# ---------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "x, expected",
    [
        (1, np.array(1.0)),
        (2.5, np.array(2.5)),
        (np.float32(1.5), np.array(1.5)),
        (np.int8(-3), np.array(-3.0)),
        (np.uint64(7), np.array(7.0)),
        (np.arange(3), np.array([0.0, 1.0, 2.0])),
        (np.arange(3, dtype=np.float32), np.array([0.0, 1.0, 2.0])),
        (np.array(2.0), np.array(2.0)),
        ([1, 2.5], np.array([1.0, 2.5])),
        ([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]])),
        ((1.0, -np.inf), np.array([1.0, -np.inf])),
        (2**100, np.array(2.0**100)),
        (np.array([1, 2.5], dtype=object), np.array([1.0, 2.5])),
        (fractions.Fraction(1, 4), np.array(0.25)),
        ([], np.zeros(0)),
        (np.zeros((0, 2)), np.zeros((0, 2))),
    ],
)
def test_real_input_is_converted_to_float64(x, expected):
    arr = as_float_array(x, "x")
    assert arr.dtype == np.float64
    assert arr.shape == expected.shape
    np.testing.assert_array_equal(arr, expected)
    assert arr.flags.c_contiguous


def test_copy_and_ndim():
    src = np.array([1.0, 2.0])
    assert as_float_array(src, "x") is src
    out = as_float_array(src, "x", copy=True)
    assert out is not src and np.array_equal(out, src)
    with pytest.raises(ValueError, match=r"x must have 2 dimension\(s\); got shape \(2,\)"):
        as_float_array(src, "x", ndim=2)
    assert as_float_array(np.ones((3, 2))[:, 0], "x").flags.c_contiguous


def test_bool_allowed_only_when_asked():
    np.testing.assert_array_equal(as_float_array([True, False], "b", allow_bool=True), [1.0, 0.0])
    np.testing.assert_array_equal(as_float_array(np.array([[1, 0]], dtype=bool), "b", allow_bool=True), [[1.0, 0.0]])
    assert as_float_array(True, "b", allow_bool=True) == 1.0


# ---------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    "x, match",
    [
        (1 + 2j, r"x must hold real \(float64\) numbers; got \(1\+2j\).*complex"),
        (np.complex128(1.0), r"complex"),  # zero imaginary part: still refused, never truncated
        ([1.0, 1j], r"complex"),
        (np.array([0.5, 0.25], dtype=np.complex64), r"complex"),
        ("1.5", r"x must be a real \(float64\) number.*string '1.5'"),
        (b"1", r"string b'1'"),
        (["1.5", "2"], r"not strings; got \['1.5', '2'\]"),
        (np.array(["a"]), r"not strings"),
        (True, r"not a bool; got True"),
        (np.bool_(False), r"not a bool"),
        ([True, False], r"not booleans; got \[True, False\] \(dtype bool\)"),
        (np.array([True]), r"not booleans; got array \[ True\]"),
        ([0.5, True], r"not booleans; got a bool at index \(1,\)"),
        ([[0.5, 1.0], [2.0, np.True_]], r"bool at index \(1, 1\)"),
        (None, r"got None of type NoneType"),
        ({"a": 1}, r"got \{'a': 1\} of type dict"),
        ([1.0, None], r"got None of type NoneType at index \(1,\)"),
        (np.array([1.0, "a"], dtype=object), r"got 'a' of type str at index \(1,\)"),
        (np.datetime64("2020"), r"datetime64"),
        (np.array([1], dtype="m8[s]"), r"timedelta64"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(x, match):
    with pytest.raises(TypeError, match=match):
        as_float_array(x, "x")


def test_input_type_error_is_also_a_value_error():
    # ``except ValueError`` written for the earlier single error type still catches it
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, ValueError)
    with pytest.raises(ValueError):
        as_float_array("abc", "x")


def test_no_complex_warning_and_no_truncation():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's ComplexWarning would be an error here
        with pytest.raises(TypeError, match="complex"):
            as_float_array(np.array([1.0 + 1e-300j]), "u")


def test_ragged_input_is_a_value_error_and_describe_survives_it():
    with pytest.raises(ValueError, match=r"x must be a rectangular array.*ragged list \[\[0, 1\], \[2\]\]"):
        as_float_array([[0, 1], [2]], "x")
    # the case of the issue: the error helper itself used to raise while reporting it
    with pytest.raises(ValueError, match="logits"):
        Categorical([[0.0, 1.0], [2.0]])


def test_unrepresentable_integer():
    with pytest.raises(ValueError, match=r"x must be representable as float64.*at index \(0,\)"):
        as_float_array([10**400], "x")


@pytest.mark.parametrize(
    "logits",
    [[1 + 0j], ["1.5"], "1.5", [True], True, [0.3, False], [None]],
)
def test_distribution_parameters_reject_non_real(logits):
    with pytest.raises(TypeError, match="logits"):
        Bernoulli(logits)


# ---------------------------------------------------------------------------- describe


class _BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "value",
    [[[0, 1], [2]], _BadRepr(), np.zeros((0, 3)), np.arange(100.0), [1] * 1000, "x" * 500, None, object(), 1 + 2j],
)
def test_describe_never_raises_and_is_short(value):
    text = describe(value)
    assert isinstance(text, str) and 0 < len(text) <= 90


def test_describe_shows_short_arrays():
    assert describe(np.array([1.0, 2.0])) == "array [1., 2.] of shape (2,), dtype float64"
    assert describe(np.zeros((50, 2))) == "array of shape (50, 2), dtype float64"
    assert describe(_BadRepr()) == "<_BadRepr object>"


# ---------------------------------------------------------------------------- counts and scalars


@pytest.mark.parametrize("value", [2.5, 2.0, "3", True, None, np.float64(4.0), 1j])
def test_count_rejects_non_integers_with_type_error(value):
    with pytest.raises(TypeError, match="n must be an integer >= 1; got"):
        check_count(value, "n")


def test_count_range():
    assert check_count(np.int32(3), "n") == 3
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        check_count(0, "n")
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 5\]; got 6"):
        check_count(6, "k", minimum=2, maximum=5)


@pytest.mark.parametrize("value", ["1.0", True, None, 1j, np.array(1 + 0j), np.array(True), [0.5]])
def test_positive_scalar_rejects_wrong_types(value):
    with pytest.raises((TypeError, ValueError), match="tau"):
        check_positive_scalar(value, "tau")
    if not isinstance(value, list):
        with pytest.raises(TypeError):
            check_positive_scalar(value, "tau")


@pytest.mark.parametrize("value", [0.0, -1.0, np.inf, np.nan, -np.inf])
def test_positive_scalar_range(value):
    with pytest.raises(ValueError, match=r"tau must be a finite real number > 0; got"):
        check_positive_scalar(value, "tau")
    assert check_positive_scalar(np.float32(0.5), "tau") == 0.5


def test_sample_count_budget():
    assert check_sample_count(1000, 8) == 1000
    limit = MAX_ARRAY_BYTES // 8
    assert check_sample_count(limit, 8) == limit
    with pytest.raises(ValueError, match=r"n=1000000000000 would need 7.28 TiB \(8 bytes per sample\).*n <= "):
        check_sample_count(10**12, 8)
    with pytest.raises(ValueError, match=r"m=3 would need 48 bytes"):
        check_sample_count(3, 16, name="m", budget=40)
    with pytest.raises(TypeError, match="n must be an integer"):
        check_sample_count(1.5, 8)


# ----------------------------------------------------------------------------------------------
# work budget, seeds, distributions
# ----------------------------------------------------------------------------------------------


def test_check_work_refuses_beyond_the_budget_with_cost_and_way_out():
    from refgrad._core.checks import WORK_LIMIT, check_max_work, check_work

    assert check_work(WORK_LIMIT, "w", "units") == WORK_LIMIT  # at the budget: runs
    with pytest.raises(ValueError, match=r"(?s)the thing would take about 1e\+12 elementary operations \(units\).*"
                                         r"max_work = 1e\+11.*fewer please.*max_work=1e\+12 or more"):
        check_work(1e12, "the thing", "units", advice="fewer please")
    assert check_work(1e300, "w", "units", max_work=float("inf")) == float("inf")
    with pytest.raises(ValueError, match="budget_name = 10"):
        check_work(11, "w", "units", max_work=10, name="budget_name")
    assert check_max_work(None) == WORK_LIMIT and check_max_work(np.int64(5)) == 5.0
    for bad in (0, 0.5, -1, float("nan"), "1", True, [1]):
        with pytest.raises(ValueError, match="max_work must be"):
            check_max_work(bad)


def test_check_seed_accepts_what_as_generator_accepts():
    from refgrad._core.checks import check_seed

    assert check_seed(7) == 7 and check_seed(np.uint8(7)) == 7 and check_seed(0) == 0
    assert 0 <= check_seed(None) < 2**63
    assert check_seed(np.random.default_rng(1)) == check_seed(np.random.default_rng(1))
    for bad in (0.5, True, np.bool_(False), "7", -3, np.int64(-1), 1.0, object()):
        with pytest.raises(ValueError, match=r"seed must be None, a non-negative int"):
            check_seed(bad)


def test_the_public_limits_are_the_enforced_ones():
    """refgrad.limits re-exports the very constants the checks read (not copies that could drift)."""
    import refgrad
    from refgrad._core import checks
    from refgrad._moments import base, cost

    limits = refgrad.limits
    assert set(limits.__all__) == {n for n in dir(limits) if n.isupper()}
    assert limits.WORK_LIMIT is checks.WORK_LIMIT and limits.MAX_ARRAY_BYTES is checks.MAX_ARRAY_BYTES
    assert limits.MAX_QUADRATURE_DIM is base.MAX_QUADRATURE_DIM
    assert limits.UNTIMED_EVALUATIONS is cost.UNTIMED_EVALUATIONS
    assert limits.ENUMERATION_LIMIT == refgrad.distributions.ENUMERATION_LIMIT == 2**22
    assert issubclass(refgrad.InputTypeError, TypeError) and issubclass(refgrad.InputTypeError, ValueError)
    with pytest.raises(ValueError, match=r"refgrad\.limits\.WORK_LIMIT"):
        checks.check_work(2e11, "a call", "operations", None)
