"""Shared pieces of the cross-check cases: findings rows, control checks, the smallest failing input.

A *finding* is a fact about another framework at its installed version (a row of the
findings table, recorded with ``ctx.finding``); it never fails refgrad's run.  A
*control* is a ``ctx.check`` that a verdict function of :mod:`refgrad.crosscheck` passes
on refgrad's own sampler / density / estimator on the same settings and fails on a
deliberately wrong one: a broken verdict function fails the case.
"""
import math

import numpy as np

__all__ = ["verdict_text", "key_numbers", "add_finding", "control", "smallest_failing", "call_foreign", "bracket",
           "listing"]


def verdict_text(verdict):
    """``"agrees"`` or ``"FAIL (diagnosis)"`` for a Verdict; a string is returned as is."""
    if isinstance(verdict, str):
        return verdict
    return "agrees" if verdict.passed else f"FAIL ({verdict.diagnosis})"


def _num(v):
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        return "0" if v == 0 else f"{v:.3g}"
    return str(v)


def key_numbers(verdict=None, **numbers):
    """``"p = 0.31, n = 20000, ..."``: the p-value (or statistic) and n of ``verdict``, then ``numbers``."""
    parts = []
    if verdict is not None:
        if verdict.pvalue is not None:
            parts.append(f"p = {_num(verdict.pvalue)} (α = {_num(verdict.alpha)})")
        elif verdict.statistic is not None:
            parts.append(f"statistic = {_num(verdict.statistic)}")
        parts.append(f"n = {verdict.n}")
    parts += [f"{k.replace('_', ' ')} = {_num(v)}" for k, v in numbers.items()]
    return ", ".join(parts)


def add_finding(ctx, framework, version, function, checked, verdict, numbers="", smallest="-", **extra):
    """Record one row of the findings table; a Verdict's full dict goes to results.json with it."""
    row = dict(framework=framework, version=version, function=function, checked=checked,
               verdict=verdict_text(verdict), key_numbers=numbers or (key_numbers(verdict) if not isinstance(
                   verdict, str) else ""), smallest_failing_input=smallest)
    if not isinstance(verdict, str):
        row["verdict_detail"] = verdict.to_dict()
    row.update(extra)
    ctx.finding(**row)
    return row


def control(ctx, what, good, bad):
    """``ctx.check`` that the verdict ``good()`` passes and ``bad()`` fails (each a zero-argument call).

    An exception in either (a verdict function that raises on legal input) fails the check.
    """
    try:
        vg = good()
        vb = bad()
    except Exception as exc:  # noqa: BLE001 - a control that raises is a failed control
        return ctx.check(f"control: {what}", False, f"the verdict function raised {type(exc).__name__}: {exc}")
    ok = bool(vg.passed) and not bool(vb.passed)
    detail = (f"refgrad's own: {verdict_text(vg)} ({key_numbers(vg)}); deliberately wrong: {verdict_text(vb)} "
              f"({key_numbers(vb)})")
    return ctx.check(f"control: {what}", ok, detail)


def smallest_failing(fails, lo, hi, log=True, steps=40):
    """The boundary of failure between ``lo`` (passes) and ``hi`` (fails) by bisection, or None.

    ``fails(x) -> bool``.  Returns ``(x_fail, x_pass, evaluations)`` with ``x_fail`` the failing
    end of the final bracket (within a factor ``(hi/lo)^(2^-steps)`` of the boundary when
    ``log``), or None when ``lo`` already fails or ``hi`` does not.  Failure is assumed
    monotone in x between the ends (both ends are verified; the result is re-verified).
    """
    evals = 2
    if fails(lo) or not fails(hi):
        return None
    a, b = float(lo), float(hi)
    for _ in range(steps):
        m = math.exp(0.5 * (math.log(a) + math.log(b))) if log and a > 0 else 0.5 * (a + b)
        if m in (a, b):
            break
        evals += 1
        if fails(m):
            b = m
        else:
            a = m
    return b, a, evals


def bracket(failing, passing, digits=4):
    """The two ends of a bisection bracket as text, with the fewest significant digits that tell them apart.

    At least ``digits``: 10 fixed digits printed the two ends of a bracket near FLT_MAX both as
    3.402823435e+36.  Two different doubles always differ at 17 digits.
    """
    for p in range(digits, 18):
        a, b = f"{failing:.{p}g}", f"{passing:.{p}g}"
        if a != b:
            return a, b
    return repr(float(failing)), repr(float(passing))


def listing(items, empty="none"):
    """``", ".join(items)``, or ``empty`` when there is nothing to list (a table cell never ends in ': ')."""
    items = list(items)
    return ", ".join(items) if items else empty


def call_foreign(fn, *args, **kwargs):
    """``(value, None)`` or ``(None, "ErrorType: message")``: another framework's call, never raising."""
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - an exception of the other framework is a finding
        msg = " ".join(str(exc).split())
        return None, f"{type(exc).__name__}: {msg[:160]}"
