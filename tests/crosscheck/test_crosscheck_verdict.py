"""Verdict: plain data, printable, JSON-ready; combine: Bonferroni at the composite level."""
import json
import pickle

import numpy as np
import pytest

from refgrad.crosscheck import Verdict
from refgrad.crosscheck._verdict import FLUSH_TO_ZERO, combine, part_alpha


def _part(name, passed, p, alpha, diagnosis=None, worst=()):
    return Verdict(name, passed, diagnosis or ("agrees" if passed else "wrong"), f"test {name}", 1.5, p, alpha, 10,
                   {"expected": np.array([0.1, np.inf]), "observed": np.float32(0.2)}, list(worst),
                   f"explanation of {name}")


def test_verdict_is_json_ready_printable_and_picklable():
    v = _part("a", False, 1e-9, 1e-3, worst=[{"index": (0, 1), "expected": 0.1, "observed": np.nan}])
    d = json.loads(json.dumps(v.to_dict()))
    assert d["passed"] is False and d["compared"]["expected"] == [0.1, "inf"] and d["worst"][0]["observed"] == "nan"
    text = str(v)
    for word in ("check", "FAIL", "wrong", "test a", "p-value", "1e-09", "alpha", "worst points", "explanation of a"):
        assert word in text
    assert pickle.loads(pickle.dumps(v)).to_dict() == v.to_dict()
    assert not v and bool(_part("b", True, 0.5, 1e-3))
    assert v.summary().startswith("FAIL (wrong) a: test a (p = 1e-09")


def test_verdict_refuses_inconsistent_fields():
    with pytest.raises(ValueError, match="diagnosis"):
        Verdict("x", False, "bad", "t", None, None, None, 1)
    with pytest.raises(ValueError, match="contradicts"):
        Verdict("x", True, "wrong", "t", None, None, None, 1)
    with pytest.raises(ValueError, match="contradicts"):
        Verdict("x", False, "agrees", "t", None, None, None, 1)
    with pytest.raises(ValueError, match="contradicts"):
        Verdict("x", False, FLUSH_TO_ZERO, "t", None, None, None, 1)


def test_flush_to_zero_is_a_passing_diagnosis_and_survives_combine():
    ok = Verdict("x", True, "agrees", "t", None, 0.5, 1e-3, 10)
    ftz = Verdict("x", True, FLUSH_TO_ZERO, "t", None, None, None, 10)
    bad = Verdict("x", False, "wrong", "t", None, 1e-9, 1e-3, 10)
    both = combine("x", [ok, ftz], 10, 1e-3)
    assert both.passed and both.diagnosis == FLUSH_TO_ZERO and "flush-to-zero" in both.explanation
    assert combine("x", [ok, ok], 10, 1e-3).diagnosis == "agrees"
    worse = combine("x", [ok, ftz, bad], 10, 1e-3)
    assert not worse.passed and worse.diagnosis == "wrong"


def test_combine_is_bonferroni_at_the_composite_level():
    alpha = 1e-3
    pa = part_alpha(alpha, 3)
    assert pa == pytest.approx(alpha / 3)
    parts = [_part("a", True, 0.2, pa), _part("b", True, 0.01, pa), _part("c", True, 0.9, pa)]
    v = combine("composite", parts, 10, alpha)
    assert v.passed and v.pvalue == pytest.approx(0.03) and v.alpha == alpha and len(v.parts) == 3
    deterministic = Verdict("d", False, "certain failure", "support", None, None, None, 10, worst=[{"row": 4}])
    v = combine("composite", parts[:2] + [_part("w", False, 1e-6, pa), deterministic], 10, alpha)
    assert not v.passed and v.diagnosis == "certain failure" and v.worst == [{"row": 4}]
    assert v.pvalue == pytest.approx(3e-6)  # only the statistical parts count in Bonferroni's factor
    only_deterministic = combine("c", [Verdict("d", True, "agrees", "t", None, None, None, 3)], 3, alpha)
    assert only_deterministic.pvalue is None and only_deterministic.alpha is None
    with pytest.raises(ValueError):
        combine("c", [], 1, alpha)


def test_summary_names_the_failing_parts_and_a_single_part_keeps_its_own_test():
    ok = Verdict("x", True, "agrees", "mean test", None, 0.5, 1e-3, 10)
    bad = Verdict("x", False, "wrong", "variance test", None, 1e-9, 1e-3, 10)
    line = combine("x", [ok, bad], 10, 1e-3).summary()
    assert "2 parts, Bonferroni-combined; failing: variance test (" in line, line
    one = combine("x", [bad], 10, 1e-3)
    assert one.test == "variance test" and "1 parts" not in one.summary() and "failing" not in one.summary()
