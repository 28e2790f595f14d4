"""The verdict battery (validation/crosscheck_battery.py) at fixed seeds, for CI.

One ``--quick`` run (3 replications per case, the seeds fixed by each case's key) end to end: every
correct implementation passes at α = 1e-3 on all 3 replications, every planted bug fails on all 3 at
both levels, and the Markdown table lists every case with the regenerating command.  The error rates
themselves (1000 replications per correct case) are in docs/crosscheck.md.
"""
import numpy as np
import pytest

from validation import crosscheck_battery as cb


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery") / "crosscheck.md"
    results = cb.run(reps=3, quick=True, out=str(out), command="python -m validation.crosscheck_battery --quick",
                     log=None)
    return results, out.read_text(encoding="utf-8")


def test_quick_run_covers_every_available_case(quick):
    results, text = quick
    keys = [r["case"].key for r in results]
    assert keys == [c.key for c in cb.CASES if cb._available(c.framework)]
    assert {"null", "bug"} == {r["case"].kind for r in results}
    assert {"refgrad", "NumPy"} <= {r["case"].framework for r in results}
    for k in keys:
        assert f"| {k} (" in text
    assert "python -m validation.crosscheck_battery --quick" in text


@pytest.mark.parametrize("key", [c.key for c in cb.CASES if c.kind == "null"])
def test_correct_implementation_passes(quick, key):
    results, _ = quick
    r = {r["case"].key: r for r in results}.get(key)
    if r is None:
        pytest.skip(f"{key}: its framework is not installed")
    assert r["fails"][0] == 0, (key, r["fails"])  # alpha = 1e-3, 3 replications at the case's fixed seeds


@pytest.mark.parametrize("key", [c.key for c in cb.CASES if c.kind == "bug"])
def test_planted_bug_fails(quick, key):
    results, _ = quick
    r = {r["case"].key: r for r in results}.get(key)
    if r is None:
        pytest.skip(f"{key}: its framework is not installed")
    assert r["fails"] == [3, 3], (key, r["fails"])  # alpha = 1e-3 and 1e-2


def test_every_planted_bug_kind_is_there():
    keys = " ".join(c.key for c in cb.CASES if c.kind == "bug")
    for part in ("const-1e-3", "1.5x", "nan", "step", "normaliser", "tau", "rebar-unconditional"):
        assert part in keys


def test_bug_draws_differ_from_the_correct_ones():
    # the planted bugs are real departures from the correct code on the same noise (not a relabelled copy)
    same = cb.np_concrete([0.3, -1.0], [0.45, 0.2], np.float64, 0.5)(11, 50)
    assert not np.allclose(cb.np_concrete([0.3, -1.0], [0.45, 0.2], np.float64, 0.5, tau_used=0.7)(11, 50), same)
    assert np.allclose(cb.np_concrete([0.3, -1.0], [0.45, 0.2], np.float64, 0.5, scale=1.5)(11, 50), 1.5 * same)
    right = cb.np_rebar([0.3, -1.0, 2.0], [0.45, 0.2, 0.7], np.float64, 0.5)(11, 50)
    assert not np.allclose(cb.np_rebar([0.3, -1.0, 2.0], [0.45, 0.2, 0.7], np.float64, 0.5, conditional=False)(11, 50),
                           right)


def test_clopper_pearson_interval():
    # k = 0: upper end 1 - (0.005)^(1/n); the 99 % interval of 1 in 1000 holds 1e-3
    lo, hi = cb.clopper_pearson(0, 1000)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.005 ** (1 / 1000), rel=1e-9)
    lo, hi = cb.clopper_pearson(1, 1000)
    assert lo < 1e-3 < hi


def test_ok_rule():
    case = next(c for c in cb.CASES if c.kind == "null")
    bug = next(c for c in cb.CASES if c.kind == "bug")
    assert cb._ok({"case": case, "reps": 1000, "fails": [2, 9]})  # compatible with <= 1e-3 and <= 1e-2
    assert not cb._ok({"case": case, "reps": 1000, "fails": [9, 9]})  # 9 in 1000: lower end 3.2e-3 > 1e-3
    assert cb._ok({"case": bug, "reps": 200, "fails": [198, 199]})
    assert not cb._ok({"case": bug, "reps": 200, "fails": [197, 200]})


def test_bad_reps_is_refused():
    with pytest.raises(SystemExit):
        cb.main(["--reps", "0"])
