"""The objective a generic harness gives each registered estimator.

Most estimators take a single-sample objective ``f(b)``; an estimator whose spec declares
``objective_kind = "multi_sample"`` (``vimco``) takes a :class:`refgrad.multisample.LogMeanExp`
of ``k`` samples, with ``k`` its own option ``k``.  The harnesses (golden streams, the robustness
sweep, the edge-case tables, the validation cases) build every estimator's objective here, from the
same single-sample ``f``: for a multi-sample estimator ``f`` becomes the log weight,
``L(b^{1:k}) = log (1/k) Σ_i exp f(b^i)``.  The estimand is then ``exact.gradient(dist, objective)``
in both cases.
"""
import refgrad
from refgrad.multisample import LogMeanExp

SINGLE_SAMPLE = "single_sample"
MULTI_SAMPLE = "multi_sample"


def objective_kind(name):
    """``"single_sample"`` or ``"multi_sample"``: the kind of objective estimator ``name`` takes."""
    return getattr(refgrad.ESTIMATORS[name], "objective_kind", SINGLE_SAMPLE)


def objective_for(name, f, options=None):
    """The objective estimator ``name`` with ``options`` is given for the single-sample objective ``f``.

    ``f`` itself for a single-sample estimator; ``LogMeanExp(f, k)`` for a multi-sample one, ``k``
    the estimator's option ``k`` (its default when ``options`` does not set it).
    """
    kind = objective_kind(name)
    if kind == SINGLE_SAMPLE:
        return f
    if kind == MULTI_SAMPLE:
        k = dict(refgrad.ESTIMATORS[name].defaults, **(options or {}))["k"]
        return LogMeanExp(f, k)
    raise AssertionError(f"estimator {name!r} declares an unknown objective_kind {kind!r}")
