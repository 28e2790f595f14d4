"""The result object of every cross-check: :class:`Verdict`.

A verdict is plain data (numbers, strings, lists and dicts of them, small NumPy
arrays), so it prints as a table, converts to a JSON-ready dict with
:meth:`Verdict.to_dict`, and pickles.
"""
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Verdict", "DEFAULT_ALPHA", "DIAGNOSES", "FLUSH_TO_ZERO", "PASSING", "combine", "part_alpha"]

#: Default significance level of every statistical cross-check: strict, because a
#: conformance run makes dozens of checks and a false alarm accuses another project.
DEFAULT_ALPHA = 1e-3

#: What a verdict can say about the checked implementation.
#:
#: * ``"agrees"`` -- no discrepancy beyond the stated tolerance or level;
#: * ``"wrong"`` -- a discrepancy that no documented convention explains;
#: * ``"certain failure"`` -- an event of probability zero was observed (a sample in a
#:   zero-probability cell, a value outside the support): wrong with certainty, p = 0;
#: * ``"measure"`` -- the values are those of a density w.r.t. another reference
#:   measure (they differ by the log-Jacobian of a named change of variables);
#: * ``"convention"`` -- a documented difference of convention (NaN instead of -inf at
#:   an impossible point, another normalisation, another parametrisation), named in
#:   the explanation;
#: * ``"shape"`` -- the values have the wrong shape;
#: * ``"convention: flush-to-zero below FLT_MIN"`` -- relaxed samples whose values below the
#:   smallest normal float of their dtype (FLT_MIN = 1.18e-38 in float32) are exactly 0 and
#:   which hold no subnormal value, as TensorFlow and JAX produce on CPU: the law is rejected
#:   when a 0 is read as a value below the smallest subnormal, and not rejected when it is read
#:   as the censored event "value < FLT_MIN" (:mod:`refgrad.crosscheck._samplers`).  A passing
#:   diagnosis: such samples follow the law, written in a float format without subnormals.
FLUSH_TO_ZERO = "convention: flush-to-zero below FLT_MIN"
DIAGNOSES = ("agrees", "wrong", "certain failure", "measure", "convention", "shape", FLUSH_TO_ZERO)
#: The diagnoses of a passing verdict: agreement, and agreement up to the flush-to-zero convention
#: (the law holds; only the representation of values below FLT_MIN differs).  Every other
#: diagnosis fails, the other conventions included: they change the values themselves.
PASSING = ("agrees", FLUSH_TO_ZERO)


def _plain(x):
    """JSON-ready copy: arrays to lists, non-finite floats to strings, NumPy scalars to Python."""
    if isinstance(x, Verdict):
        return x.to_dict()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else repr(v)
    if isinstance(x, (complex, np.complexfloating)):
        raise TypeError(f"a complex number {x!r} has no JSON form (pass its real part, or abs, explicitly)")
    if x is None or isinstance(x, (str, int)):
        return x
    raise TypeError(f"{x!r} of type {type(x).__name__} has no JSON form")


def _describe(value):
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" of type {type(value).__name__}"


def _check_real(value, name, accepted, ok, allow_nan=False):
    """None, or a real number (not bool, not complex, not NaN unless allowed) for which ``ok`` holds."""
    if value is None:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {accepted}; got {_describe(value)}")
    v = float(value)
    if (math.isnan(v) and not allow_nan) or not (math.isnan(v) or ok(v)):
        raise ValueError(f"{name} must be {accepted}; got {v!r}")


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return "0" if v == 0.0 else f"{v:.4g}"
    if isinstance(value, np.ndarray):
        if value.size > 6:
            return f"array{value.shape}"
        return "[" + ", ".join(_fmt(v) for v in value.ravel()) + "]"
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return f"list of {len(value)}"
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True, eq=False)  # compared holds arrays: compare verdicts with to_dict()
class Verdict:
    """The outcome of one cross-check.

    Attributes
    ----------
    check : str
        The function that made it, e.g. ``"check_categorical_sampler"``.
    passed : bool
        False when the checked implementation disagrees with refgrad's oracle
        (``diagnosis`` not in :data:`PASSING`, i.e. neither ``"agrees"`` nor the
        flush-to-zero convention).  ``bool(verdict)`` is ``passed``.
    diagnosis : str
        One of :data:`DIAGNOSES`.
    test : str
        The test or comparison made, in words (e.g. "exact binomial test per
        coordinate, Holm-adjusted").
    statistic : float or None
        The test statistic (or the largest normalised error of a deterministic
        comparison).
    pvalue : float or None
        The p-value of a statistical test; None for deterministic comparisons.
    alpha : float or None
        The level the p-value is compared with; None for deterministic comparisons.
    n : int
        Number of samples (or points, or rows) checked.
    compared : dict
        The numbers compared (expected and observed frequencies, moments,
        tolerances...), small arrays or scalars.
    worst : list of dict
        The points that disagree most, worst first (index, expected, observed, error...).
    explanation : str
        One paragraph: what was checked, what was found, and what it means.
    parts : tuple of Verdict
        Sub-verdicts of a composite check; the composite fails when one part does.

    The constructor checks these promises and raises a ``ValueError`` naming the field
    otherwise: ``passed`` a bool agreeing with ``diagnosis``; ``pvalue`` None or in
    [0, 1] (not NaN); ``alpha`` None or in (0, 1); ``n`` an integer >= 0; ``statistic``
    None or a real number; ``compared`` and ``worst`` made only of real numbers, strings,
    bools, None and lists, tuples, dicts or arrays of them, so that
    ``json.dumps(v.to_dict(), allow_nan=False)`` always works (a complex entry is refused:
    pass its real part or modulus explicitly).
    """

    check: str
    passed: bool
    diagnosis: str
    test: str
    statistic: Optional[float]
    pvalue: Optional[float]
    alpha: Optional[float]
    n: int
    compared: dict = field(default_factory=dict)
    worst: list = field(default_factory=list)
    explanation: str = ""
    parts: tuple = ()

    def __post_init__(self):
        for name in ("check", "test", "explanation"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a str; got {_describe(getattr(self, name))}")
        if not isinstance(self.diagnosis, str) or self.diagnosis not in DIAGNOSES:
            raise ValueError(f"diagnosis must be one of {DIAGNOSES}; got {_describe(self.diagnosis)}")
        if not isinstance(self.passed, (bool, np.bool_)):
            raise ValueError(f"passed must be True or False (a bool); got {_describe(self.passed)}")
        if bool(self.passed) != (self.diagnosis in PASSING):
            raise ValueError(f"passed={self.passed!r} contradicts diagnosis={self.diagnosis!r}")
        _check_real(self.statistic, "statistic", "None or a real number (inf and nan allowed)", lambda v: True,
                    allow_nan=True)
        _check_real(self.pvalue, "pvalue", "None or a real number in [0, 1]", lambda v: 0.0 <= v <= 1.0)
        _check_real(self.alpha, "alpha", "None or a real number in the open interval (0, 1)", lambda v: 0.0 < v < 1.0)
        if isinstance(self.n, (bool, np.bool_)) or not isinstance(self.n, numbers.Integral) or int(self.n) < 0:
            raise ValueError(f"n must be an integer >= 0 (the number of samples, points or rows checked); got "
                             f"{_describe(self.n)}")
        if not isinstance(self.compared, dict):
            raise ValueError(f"compared must be a dict; got {_describe(self.compared)}")
        if not isinstance(self.worst, list) or not all(isinstance(w, dict) for w in self.worst):
            raise ValueError(f"worst must be a list of dicts; got {_describe(self.worst)}")
        if not isinstance(self.parts, tuple) or not all(isinstance(p, Verdict) for p in self.parts):
            raise ValueError(f"parts must be a tuple of Verdicts; got {_describe(self.parts)}")
        for name in ("compared", "worst"):  # the promise of to_dict: always valid JSON
            try:
                json.dumps(_plain(getattr(self, name)), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must hold only numbers (real), strings, bools, None and lists, dicts or "
                                 f"arrays of them, so that to_dict() is valid JSON; {exc}") from None

    def __bool__(self):
        return bool(self.passed)

    def to_dict(self):
        """A JSON-ready dict (``json.dumps(v.to_dict())`` works; inf/nan become strings)."""
        return {
            "check": self.check,
            "passed": bool(self.passed),
            "diagnosis": self.diagnosis,
            "test": self.test,
            "statistic": _plain(self.statistic),
            "pvalue": _plain(self.pvalue),
            "alpha": _plain(self.alpha),
            "n": int(self.n),
            "compared": _plain(self.compared),
            "worst": _plain(self.worst),
            "explanation": self.explanation,
            "parts": [p.to_dict() for p in self.parts],
        }

    def summary(self):
        """One line: ``PASS``/``FAIL (diagnosis)``, the check, the test, and p (or the statistic), α and n.

        For a failing composite the test is followed by the tests of its failing parts.
        """
        verdict = "PASS" if self.passed else f"FAIL ({self.diagnosis})"
        if self.pvalue is not None:
            numbers = f"p = {_fmt(self.pvalue)}, α = {_fmt(self.alpha)}"
        elif self.statistic is not None:
            numbers = f"statistic = {_fmt(self.statistic)}"
        else:
            numbers = "deterministic"
        failing = [p.test for p in self.parts if not p.passed]
        which = f"; failing: {'; '.join(failing)}" if failing and len(self.parts) > 1 else ""
        return f"{verdict} {self.check}: {self.test}{which} ({numbers}, n = {self.n})"

    def summary_row(self):
        """(check, verdict, test, statistic, p-value, α, n) as strings, for tables of many verdicts."""
        verdict = "PASS" if self.passed else f"FAIL ({self.diagnosis})"
        return [self.check, verdict, self.test, _fmt(self.statistic), _fmt(self.pvalue), _fmt(self.alpha),
                str(self.n)]

    def table(self):
        """The verdict as a plain-text table (what ``str()`` prints)."""
        rows = [
            ("check", self.check),
            ("verdict", "PASS" if self.passed else "FAIL"),
            ("diagnosis", self.diagnosis),
            ("test", self.test),
            ("statistic", _fmt(self.statistic)),
            ("p-value", _fmt(self.pvalue)),
            ("alpha", _fmt(self.alpha)),
            ("n", str(self.n)),
        ]
        rows += [(f"  {k}", _fmt(v)) for k, v in self.compared.items()]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        if self.worst:
            keys = list(dict.fromkeys(k for w in self.worst for k in w))
            cells = [keys] + [[_fmt(w.get(k)) for k in keys] for w in self.worst[:10]]
            widths = [max(len(r[i]) for r in cells) for i in range(len(keys))]
            lines.append("worst points:")
            lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
            if len(self.worst) > 10:
                lines.append(f"  ... {len(self.worst) - 10} more")
        if self.parts:
            lines.append("parts:")
            for p in self.parts:
                lines.append("  " + "  ".join(p.summary_row()))
        if self.explanation:
            lines.append("")
            lines.append(self.explanation)
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def combine(check, parts, n, alpha, explanation_prefix="", test=None, compared=None):
    """A composite verdict from ``parts``, Bonferroni-combined at level ``alpha``.

    The caller runs each of the ``m`` statistical parts at level ``alpha / m``
    (:func:`part_alpha`), so the composite false-alarm rate is at most ``alpha``.  The
    composite p-value is ``min(1, m · min_j p_j)``; the composite fails when any part
    fails (deterministic parts included), with the diagnosis of the most serious failing
    part (``"certain failure"`` first) and that part's worst points.
    """
    parts = tuple(parts)
    if not parts:
        raise ValueError("combine needs at least one part")
    stat = [p for p in parts if p.pvalue is not None]
    pvalue = min(1.0, len(stat) * min(p.pvalue for p in stat)) if stat else None
    failing = [p for p in parts if not p.passed]
    order = {d: i for i, d in enumerate(("certain failure", "shape", "wrong", "measure", "convention",
                                         FLUSH_TO_ZERO))}
    failing.sort(key=lambda p: order.get(p.diagnosis, 9))
    diagnosis = failing[0].diagnosis if failing else (
        FLUSH_TO_ZERO if any(p.diagnosis == FLUSH_TO_ZERO for p in parts) else "agrees")
    worst = list(failing[0].worst) if failing else []
    if failing:
        body = f"{len(failing)} of {len(parts)} parts fail: " + "; ".join(
            f"{p.test} ({p.diagnosis})" for p in failing) + "."
    else:
        body = f"all {len(parts)} parts pass" + (" (up to the flush-to-zero convention)."
                                                  if diagnosis == FLUSH_TO_ZERO else ".")
    text = (explanation_prefix + " " if explanation_prefix else "") + body
    if stat:
        text += (f" Each of the {len(stat)} statistical parts is tested at α/{len(stat)} (Bonferroni), so the "
                 f"composite p-value is min(1, {len(stat)} · min p) and the composite level is α = {alpha:g}.")
    return Verdict(check=check, passed=not failing, diagnosis=diagnosis,
                   test=test or (f"{len(parts)} parts, Bonferroni-combined" if len(parts) > 1 else parts[0].test),
                   statistic=None, pvalue=pvalue,
                   alpha=float(alpha) if stat else None, n=int(n), compared=dict(compared or {}), worst=worst,
                   explanation=text, parts=parts)


def part_alpha(alpha, m):
    """The level of each of ``m`` parts of a composite check at level ``alpha`` (Bonferroni)."""
    return float(alpha) / max(int(m), 1)
