"""Robustness sweep over the public API: hostile input is refused by name, legal input gives the truth.

The table of cases is ``tests/sweep_cases.py`` (public function, argument, input
class, how the input is built, which argument the error must name or which
reference a legal input must equal); the machinery is
``tests/sweep_framework.py``.  For every case the canonical value runs first,
then hypothesis draws further values within the input class: 3 per case in the
default run, 200 in the ``slow`` variant (``pytest -m slow tests/project/test_sweep.py``).

Property, for each value: EITHER a ``ValueError`` / ``TypeError`` whose message
contains the argument's name as a word, OR a finite result equal to the
reference.  Other exceptions, NaN / inf results, warnings, accepted bad input,
allocations beyond the cap of ``sweep_framework.MEMORY_HEADROOM`` and crashes
(isolated cases run in a subprocess) fail.

Cases in ``sweep_cases.KNOWN_FAILURES`` are ``xfail(strict=True)``: fixing one
makes its test fail as an unexpected pass until the entry is removed.
``python tests/make_robustness.py`` regenerates ``docs/robustness.md`` from the
same table.
"""
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import sweep_cases
import sweep_framework as sf

FAST_EXAMPLES = 3
SLOW_EXAMPLES = 200


def _params(marks=()):
    out = []
    for case in sweep_cases.CASES:
        case_marks = list(marks)
        if case.xfail:
            case_marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
        out.append(pytest.param(case, id=case.id, marks=case_marks))
    return out


def _check(case, value):
    outcome = sf.run_case(case, value)
    assert outcome.ok, f"{case.id} with {sf._describe(value)}: {outcome.detail}"


def _sweep(case, examples, phases):
    if case.isolate:  # the canonical value only, in a subprocess
        outcome = sf.run_isolated(case.id)
        assert outcome.ok, f"{case.id}: {outcome.detail}"
        return
    _check(case, case.example)

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(case.values)
    def drawn(value):
        _check(case, value)

    drawn()


@pytest.mark.parametrize("case", _params())
def test_sweep(case):
    _sweep(case, FAST_EXAMPLES, [Phase.generate])


@pytest.mark.slow
@pytest.mark.parametrize("case", _params())
def test_sweep_slow(case):
    _sweep(case, SLOW_EXAMPLES, [Phase.generate, Phase.shrink])


def test_table_is_declarative():
    """Every case names a known input class, a function and an argument; ids are unique."""
    ids = [case.id for case in sweep_cases.CASES]
    assert len(ids) == len(set(ids))
    for case in sweep_cases.CASES:
        assert case.cls in sf.CLASSES and case.func and case.arg
    assert set(sweep_cases.KNOWN_FAILURES) <= set(ids), "KNOWN_FAILURES names cases that do not exist"


def test_sweep_harness_detects_failures():
    """The harness is not vacuous: silent wrong answers, unnamed errors and warnings all fail."""
    import warnings

    import numpy as np
    from hypothesis import strategies as st

    def warn(_):
        warnings.warn("only a warning", RuntimeWarning, stacklevel=1)
        return 1.0

    def bad_message(_):
        raise ValueError("something is wrong")

    def named(_):
        raise TypeError("x must be real")

    accepts = sf.Case("f", "x", "nan", st.just(1.0), 1.0, lambda v: np.nan, expect=("x",))
    wrong = sf.Case("f", "x", "legal", st.just(1.0), 1.0, lambda v: v + 1e-9, reference=lambda v: v)
    nonfinite = sf.Case("f", "x", "legal", st.just(1.0), 1.0, lambda v: np.inf, reference=lambda v: np.inf)
    for case, _fn in ((accepts, None), (wrong, None), (nonfinite, None)):
        assert not sf.run_case(case, 1.0).ok
    for fn in (warn, bad_message):
        assert not sf.run_case(sf.Case("f", "x", "nan", st.just(1.0), 1.0, fn, expect=("x",)), 1.0).ok
    assert sf.run_case(sf.Case("f", "x", "nan", st.just(1.0), 1.0, named, expect=("x",)), 1.0).ok
    assert not sf.names_argument("n of f must be finite", ("x",))
    assert not sf.names_argument("the offset must be finite", ("f",))
    assert sf.names_argument("noise['u'] must be finite", ("noise",))
    huge = sf.Case("f", "n", "count-huge", st.just(0), 0, lambda v: np.ones(10**12), expect=("n",))
    assert "MemoryError" in sf.run_case(huge, 0).detail
