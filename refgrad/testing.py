"""numpy.testing-style assertions for gradient estimators, built on :mod:`refgrad.stats`.

Each assertion states its α, draws its samples from a fixed seed (so a passing
assertion passes on every run), and on failure raises ``AssertionError`` with a
table of coordinate, exact value, estimate, standard error, t and p.  When the
heavy-tail diagnostic says the normal approximation behind the test is unreliable,
a :class:`HeavyTailWarning` is issued, when a coordinate cannot be tested (the
sample shows no variation there, e.g. a rare outcome never occurred) an
:class:`InconclusiveWarning`, and when the stated level cannot be guaranteed (see
``calibration`` in :func:`refgrad.stats.unbiasedness_test`) a
:class:`CalibrationWarning` with the estimated size: the verdict is reported, never
silently trusted.

The first argument is either an estimator name (samples are then drawn with
:func:`refgrad.estimate`) or an array of estimates of shape ``(n, *param_shape)``.
Estimator options are keyword arguments of every assertion (``tau=0.5``, ``m=4``);
:func:`assert_variance_less` passes them to both estimators and takes per-estimator
ones in ``options_a`` / ``options_b``.  Samples from elsewhere carry no cost: compared
per evaluation of f, they need ``cost=(cost_a, cost_b)``, the evaluations of f one
row cost.  A failed assertion carries its result as ``err.result``, and its message
gives the p-value with its Hotelling and Holm parts and how they were combined.

Measured calibration of the tolerance of :func:`assert_unbiased` (``atol``/``rtol``,
a shifted null, Holm across coordinates): Gumbel-Softmax at τ = 0.5 on one bit,
``SquaredDistance(0.45)``, logit 0.3 (exact bias 0.00744, per-estimate sd 0.118, from
:func:`refgrad.exact.moments`), α = 0.05, 4000 replications each (seeds 7, 8, 9):

==============================================  ======  =================================
case                                            rate    expected (99.8 % binomial bounds)
==============================================  ======  =================================
edge of the band, atol = |bias|, n = 1000       0.0238  α/2 = 0.025 (0.0178 -- 0.033)
inside the band, atol = 2 |bias|, n = 1000      0.0     ≈ 0
beyond it, atol = |bias|/4, n = 4000 (power)    0.853   0.85 (at least 0.832)
==============================================  ======  =================================

Measured by ``python -m pytest -q -m slow tests/testing/test_testing.py -k tolerance_calibration``
(17 CPU seconds); the default run repeats it with 200 replications.
"""
import dataclasses
import numbers
import warnings
from collections.abc import Mapping

import numpy as np

from . import exact, stats
from ._core.checks import InputTypeError, check_count, check_distribution, check_positive_scalar, describe
from .estimators import estimate, get_spec
from .random import as_generator
from .stats import CalibrationWarning
from .stats._common import _unit, as_real_array

__all__ = ["assert_unbiased", "assert_biased", "assert_variance_less", "HeavyTailWarning", "InconclusiveWarning",
           "CalibrationWarning", "DEFAULT_SEED", "rarest_outcome"]

#: Seed used when ``rng`` is not given: assertions are deterministic by default.
DEFAULT_SEED = 20261123


class HeavyTailWarning(UserWarning):
    """The sample's tails make the normal approximation of a test unreliable at this n."""


class InconclusiveWarning(UserWarning):
    """Part of the problem is invisible to the test.

    A coordinate without variation in the sample, or outcomes too rare to appear in n draws.
    """


def _draw(name_or_samples, dist, f, n, rng, options, what="name_or_samples"):
    """(samples, label, cost) from an estimator name or an array of estimates.

    The cost of an array of samples is unknown (``None``): only the caller can say how
    many evaluations of f one row cost.  A floating array keeps its dtype (float32
    samples are judged with float32 rounding levels by :mod:`refgrad.stats`).
    """
    if isinstance(name_or_samples, str):
        if dist is None or f is None:
            raise ValueError(f"{what}: an estimator name needs dist and f")
        spec = get_spec(name_or_samples)
        n = 10000 if n is None else check_count(n, "n", minimum=2)
        samples = estimate(name_or_samples, dist, f, n, rng=rng, **options)
        return samples, f"{name_or_samples}{options if options else ''}", spec.cost_of(dist, **options)
    if options:
        raise ValueError(f"estimator options {sorted(options)} given, but {what} is an array of samples, not a name "
                         "(options are passed to the estimator when it is named)")
    samples = as_real_array(name_or_samples, what)
    if samples.ndim < 1 or samples.shape[0] < 2:
        raise ValueError(f"{what} must be an estimator name or an array (n, *param_shape) with n >= 2; "
                         f"got {describe(name_or_samples)}")
    raw = np.asarray(name_or_samples)
    if raw.dtype.kind == "f" and raw.dtype != np.float64:
        samples = raw
    return samples, "samples", None


def _target(target, dist, f, samples):
    if target is None:
        if dist is None or f is None:
            raise ValueError("target must be given when dist and f are not")
        target = exact.gradient(dist, f)
    target = as_real_array(target, "target")
    if target.shape != samples.shape[1:]:
        raise ValueError(f"target must have shape {samples.shape[1:]} (the parameter shape); got {target.shape}")
    return target


def rarest_outcome(dist):
    """The smallest nonzero marginal probability of one variable's outcome under ``dist``.

    A sample of n draws sees an outcome of probability p about n p times; when that is
    small, the outcome's contribution to an estimator's mean and variance is invisible
    to any Monte Carlo test, whatever its p-value says.

    Raises
    ------
    TypeError
        (an :class:`refgrad.InputTypeError`, also a ``ValueError``) If ``dist`` is not a
        discrete refgrad distribution (Bernoulli,
        GaussianThreshold, Categorical): a continuous one has no outcome probabilities.
    """
    if getattr(dist, "family", None) not in _DISCRETE or not hasattr(dist, "probs"):
        raise InputTypeError(f"dist must be a discrete refgrad distribution ({', '.join(_DISCRETE)}) with outcome "
                        f"probabilities; got {describe(dist)} of type {type(dist).__name__}")
    probs = dist._outcome_probabilities()  # complements from the parameters, not 1 - p
    probs = probs[probs > 0]
    return float(probs.min()) if probs.size else 1.0


_DISCRETE = ("bernoulli", "gaussian_threshold", "categorical")


def _warn_rare(dist, n, label):
    if getattr(dist, "family", None) not in _DISCRETE or not hasattr(dist, "probs"):
        return
    p = rarest_outcome(dist)
    if n * p < 5:
        warnings.warn(
            f"{label}: the rarest outcome (probability {p:.3g}) is expected {n * p:.3g} times in n = {n} draws; "
            f"its contribution is invisible to the test (use n >= {int(np.ceil(5 / p))} or the exact oracle)",
            InconclusiveWarning, stacklevel=3)


def _warn_heavy(result, label):
    diag = result.heavy_tail
    if diag.unreliable:
        warnings.warn(f"{label}: {diag.message}", HeavyTailWarning, stacklevel=3)
    if result.inconclusive:
        notes = "; ".join(n for n in result.notes if n.startswith("INCONCLUSIVE"))
        warnings.warn(f"{label}: {notes}", InconclusiveWarning, stacklevel=3)


def _test(samples, target, alpha, method, calibration, resamples, label, degenerate="exact", max_work=None):
    """stats.unbiasedness_test, its CalibrationWarnings re-issued with ``label`` at the caller of the assertion."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        result = stats.unbiasedness_test(samples, target, alpha=alpha, method=method, calibration=calibration,
                                         resamples=resamples, degenerate=degenerate, max_work=max_work)
    for w in caught:
        if issubclass(w.category, CalibrationWarning):
            warnings.warn(f"{label}: {w.message}", CalibrationWarning, stacklevel=4)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _check_tolerance(value, name):
    """A finite real number >= 0 (``atol``, ``rtol`` of :func:`assert_unbiased`)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number >= 0 (the tolerance on |mean - target|); got "
                        f"{describe(value)} of type {type(value).__name__}")
    v = float(value)
    if not (np.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite real number >= 0 (the tolerance on |mean - target|); got {v!r}")
    return v


def _pvalue_text(result):
    """``p = P`` with its parts: the Hotelling and Holm p-values and how they were combined."""
    parts = []
    if result.hotelling_pvalue is not None:
        parts.append(f"Hotelling T² p = {result.hotelling_pvalue:.3g}")
    step = "max-T step-down" if result.calibration == "bootstrap" else "Holm"
    parts.append(f"{step} p = {result.holm_pvalue:.3g}")
    rule = getattr(result, "combination", "") or {
        "both": "combined as min(1, 2 min(p_T², p_Holm)) (Bonferroni)",
        "hotelling": "Hotelling T² alone", "holm": "per-coordinate tests alone"}[result.method]
    return f"p = {result.pvalue:.3g} ({', '.join(parts)}; {rule})"


def _degenerate(degenerate, name_or_samples, dist, n):
    """The ``degenerate`` rule of the test: as given, else "exact", with one exception.

    For an estimator name on a problem whose rarest outcome is expected fewer than 5 times in n draws,
    a constant coordinate is the missing outcome's doing ("inconclusive", with the InconclusiveWarning
    that says so).
    """
    if degenerate is not None:
        if degenerate not in ("exact", "inconclusive"):
            raise ValueError(f"degenerate must be None, 'exact' or 'inconclusive'; got {describe(degenerate)}")
        return degenerate
    if isinstance(name_or_samples, str) and getattr(dist, "family", None) in _DISCRETE and hasattr(dist, "probs"):
        if n * rarest_outcome(dist) < 5:
            return "inconclusive"
    return "exact"


def _refuse_n(name_or_samples, n, what="name_or_samples"):
    """``n`` counts the estimates drawn for an estimator name; with an array of samples it would be ignored."""
    if n is not None and not isinstance(name_or_samples, str):
        raise ValueError(f"n = {describe(n)} is the number of estimates to draw for an estimator name, but {what} is "
                         "an array of samples (its rows are the estimates): leave n out, or pass samples[:n]")


def _unbiasedness(name_or_samples, dist, f, n, target, atol, rtol, alpha, rng, method, calibration, resamples,
                  options, degenerate=None, max_work=None):
    """(result, label) of the test behind assert_unbiased / assert_biased, tolerance applied."""
    _refuse_n(name_or_samples, n)
    if dist is not None:
        check_distribution(dist)
    atol, rtol = _check_tolerance(atol, "atol"), _check_tolerance(rtol, "rtol")
    tolerant = atol > 0.0 or rtol > 0.0
    if method is None:
        method = "holm" if tolerant else "both"
    elif tolerant and method != "holm":
        raise ValueError(f"method must be 'holm' (or None) when a tolerance is given (atol = {atol:g}, rtol = "
                         f"{rtol:g}): the tolerance is tested coordinate by coordinate; got {describe(method)}")
    samples, label, _ = _draw(name_or_samples, dist, f, n, rng, options)
    degenerate = _degenerate(degenerate, name_or_samples, dist, samples.shape[0])
    tgt = _target(target, dist, f, samples)
    if not tolerant:
        return _test(samples, tgt, alpha, method, calibration, resamples, label, degenerate, max_work), label
    tol = atol + rtol * np.abs(tgt)
    x = np.asarray(samples, dtype=np.float64)
    unit = _unit(np.abs(x).max(axis=0))  # a power of two per coordinate: the sum of n samples near 1e308 stays finite
    mean = (x / unit).mean(axis=0) * unit
    # the point of the band [target - tol, target + tol] nearest to the sample mean
    nearest = tgt + np.clip(mean - tgt, -tol, tol)
    result = _test(samples, nearest, alpha, method, calibration, resamples, label, degenerate, max_work)
    note = (f"tolerance atol = {atol:g}, rtol = {rtol:g}: H0 is |E[estimate] - target| <= atol + rtol |target| in "
            "every coordinate; t and p measure the excess of |mean - target| over the tolerance")
    shown = np.array(tgt, dtype=np.float64)  # the table shows the target itself, not the band's nearest point
    shown.setflags(write=False)
    return dataclasses.replace(result, target=shown, notes=tuple(result.notes) + (note,)), label


def assert_unbiased(name_or_samples, dist=None, f=None, *, n=None, target=None, atol=0.0, rtol=0.0, alpha=1e-3,
                  rng=DEFAULT_SEED, method=None, calibration="auto", resamples=None, degenerate=None, max_work=None,
                  **options):
    r"""Assert ``E[ĝ] = ∇E_q[f]`` (or within a tolerance of it) with a test of stated level ``alpha``.

    Runs :func:`refgrad.stats.unbiasedness_test` (Hotelling T² and Holm-corrected
    t-tests, bootstrap-calibrated by default where the normal approximation is in
    doubt) of the sample mean against ``target`` (default:
    :func:`refgrad.exact.gradient`).  An unbiased estimator fails with probability
    ≈ ``alpha``; with the default fixed ``rng`` the outcome is reproducible.  Where the
    level cannot be guaranteed a :class:`CalibrationWarning` says so, with the
    estimated size.

    **Tolerance.**  With ``atol`` or ``rtol`` > 0 the null hypothesis is the band

    .. math::  H_0:\ |E[ĝ_j] − t_j| \le τ_j = \mathrm{atol} + \mathrm{rtol}\,|t_j| \quad \text{for every } j,

    a shifted null: each coordinate is tested against the point of its band nearest to
    the sample mean, :math:`t_j + \mathrm{clip}(\bar x_j − t_j, −τ_j, τ_j)`, so its t
    statistic is the excess :math:`(|\bar x_j − t_j| − τ_j)_+ / (s_j/\sqrt n)` and the
    assertion fails only on evidence that some coordinate's bias exceeds its tolerance.
    The per-coordinate tests are combined by Holm (``method="holm"``; Hotelling's T² is
    not valid for a band null).  The level holds on the whole band: at its edge the
    size of coordinate j is ≈ ``alpha``/2 (one tail of the two-sided test) and inside
    it is smaller; with ``atol = rtol = 0`` the test is the ordinary one.  Measured
    false-alarm rate and power: see the module docstring.

    Parameters
    ----------
    name_or_samples : str or array_like
        Estimator name, or estimates of shape ``(n, *param_shape)`` (float32 kept as is).
    dist, f
        Needed with a name, or to compute the default target.
    n : int, optional
        Number of estimates drawn for a name (default 10000); refused with an array of
        samples (whose rows are the estimates: it would be ignored).
    target : array_like, optional
        The value ``E[ĝ]`` should equal.
    atol, rtol : float >= 0
        Tolerance on ``|E[ĝ] − target|``, per coordinate ``atol + rtol |target|``
        (default 0: exact unbiasedness).
    alpha : float
        Level of the test (default 1e-3).
    rng : None, int or Generator
        Randomness for a name (default :data:`DEFAULT_SEED`).
    method : {None, "both", "hotelling", "holm"}
        See :func:`refgrad.stats.unbiasedness_test`; None: ``"both"``, or ``"holm"``
        with a tolerance (the only method allowed then).
    calibration : {"auto", "bootstrap", "asymptotic"}
        See :func:`refgrad.stats.unbiasedness_test` (the bootstrap uses its fixed
        default seed).
    resamples : int, optional
        Bootstrap resamples (default: from ``alpha``).
    max_work : float, optional
        Budget of the bootstrap calibration in elementary operations (see
        :func:`refgrad.stats.unbiasedness_test`; default :data:`refgrad.limits.WORK_LIMIT`).
    degenerate : {None, "exact", "inconclusive"}
        A coordinate (or direction) in which every estimate is the same: compared exactly with
        the target within the samples' rounding level (``"exact"``: a deterministic estimate that
        differs fails, one that agrees passes), or left out and reported (``"inconclusive"``).
        None (default): ``"exact"``, except for an estimator name on a problem whose rarest
        outcome is expected fewer than 5 times in n draws (then a constant coordinate is that
        outcome's absence, and an :class:`InconclusiveWarning` says so).
    **options
        Estimator options, passed to :func:`refgrad.estimate` with a name (e.g.
        ``tau=0.5``); refused with an array of samples.  :func:`assert_variance_less`
        takes them the same way.

    Returns
    -------
    refgrad.stats.UnbiasednessResult

    Raises
    ------
    AssertionError
        If the test rejects, with the p-value, its Hotelling and Holm parts and how
        they were combined, and the per-coordinate table; the result is attached as
        ``err.result``.
    """
    result, label = _unbiasedness(name_or_samples, dist, f, n, target, atol, rtol, alpha, rng, method, calibration,
                                  resamples, options, degenerate, max_work)
    _warn_heavy(result, label)
    if isinstance(name_or_samples, str):
        _warn_rare(dist, result.n, label)
    if result.reject:
        within = " beyond the tolerance" if atol or rtol else ""
        err = AssertionError(f"{label} looks biased{within} ({_pvalue_text(result)} < alpha = {alpha:g})\n{result}")
        err.result = result
        raise err
    return result


def assert_biased(name_or_samples, dist=None, f=None, *, n=None, target=None, atol=0.0, rtol=0.0, alpha=1e-3,
                  rng=DEFAULT_SEED, method=None, calibration="auto", resamples=None, degenerate=None, max_work=None,
                  **options):
    r"""Assert that the estimates' mean differs from ``target`` (default: the exact gradient).

    The complement of :func:`assert_unbiased` at the same level: passes when the
    unbiasedness test rejects (with a tolerance: when some coordinate's bias is shown
    to exceed ``atol + rtol |target|``).  Choose ``n`` from the exact bias and variance
    (:func:`refgrad.stats.required_samples` with the bias from
    :func:`refgrad.exact.moments`) so that a real bias is detected with high power.
    The other arguments, estimator options included, are those of
    :func:`assert_unbiased`.

    Raises
    ------
    AssertionError
        If no bias is detected, with the per-coordinate table; the result is attached
        as ``err.result``.
    """
    result, label = _unbiasedness(name_or_samples, dist, f, n, target, atol, rtol, alpha, rng, method, calibration,
                                  resamples, options, degenerate, max_work)
    _warn_heavy(result, label)
    if not result.reject:
        err = AssertionError(f"{label}: no bias detected ({_pvalue_text(result)} >= alpha = {alpha:g}, "
                             f"n = {result.n}); increase n or check the problem has a bias\n{result}")
        err.result = result
        raise err
    return result


def _check_options(a, b, options_a, options_b, shared):
    """{"options_a": dict, "options_b": dict}: each the shared ``**options`` updated by its own dict."""
    for what, other, arg in (("a", "b", a), ("b", "a", b)):
        known = get_spec(arg).defaults if shared and isinstance(arg, str) else shared
        unknown = sorted(set(shared) - set(known))
        if unknown:
            raise ValueError(f"estimator options {unknown} are given to both estimators, but {what} = {arg!r} has "
                             f"no such option (its options: {', '.join(sorted(known)) or 'none'}); pass an option "
                             f"meant for {other} only in options_{other}")
    out = {}
    for name, value in (("options_a", options_a), ("options_b", options_b)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a dict of estimator options (e.g. {{'tau': 0.5}}) or None; got "
                            f"{describe(value)} of type {type(value).__name__}")
        if value is not None and not all(isinstance(k, str) for k in value):
            bad = next(k for k in value if not isinstance(k, str))
            raise TypeError(f"{name} must map option names (strings) to values; got the key {describe(bad)}")
        out[name] = {**shared, **(value or {})}
    return out


def _check_cost(cost, a, b, cost_a, cost_b, equal_cost):
    """The evaluations of f per row of a and of b: declared for names, given by ``cost`` for arrays."""
    if cost is None:
        given = (None, None)
    elif isinstance(cost, (tuple, list)) and len(cost) == 2:
        given = tuple(cost)
    else:
        raise TypeError(f"cost must be a pair (cost_a, cost_b) of evaluations of f per row (None for a named "
                        f"estimator, whose cost is known); got {describe(cost)}")
    out = []
    for what, arg, declared, value in (("a", a, cost_a, given[0]), ("b", b, cost_b, given[1])):
        if value is not None:
            value = check_positive_scalar(value,
                                          f"cost[{0 if what == 'a' else 1}] (evaluations of f per row of {what})")
            if declared is not None and value != declared:
                raise ValueError(f"cost[{0 if what == 'a' else 1}] = {value:g} disagrees with estimator {arg!r}, "
                                 f"which costs {declared} evaluation(s) of f per estimate; leave it None")
        value = declared if value is None else value
        if value is None and equal_cost:
            raise ValueError(
                f"cost: {what} is an array of samples, so its cost per row is unknown; give cost=(cost_a, cost_b), "
                "the evaluations of f each row of a and b cost (None for a named estimator), e.g. cost=(2, 1) for "
                "an RLOO with two samples against REINFORCE, or equal_cost=False to compare per row")
        out.append(value)
    return out


def assert_variance_less(a, b, dist=None, f=None, *, n=None, alpha=1e-3, rng=DEFAULT_SEED, equal_cost=True,
                         coordinates="trace", cost=None, options_a=None, options_b=None, **options):
    r"""Assert ``Var(a) < Var(b)``, by default at equal cost in evaluations of f.

    With estimator names, independent estimates of each are drawn (two streams
    spawned from ``rng``).  With ``equal_cost`` each estimator's samples are scaled
    by ``sqrt(cost)``, so the comparison is of variance per evaluation of f -- the
    variance of an average of estimates at a fixed budget.  The one-sided test is
    :func:`refgrad.stats.variance_test` (``paired=False``).

    Parameters
    ----------
    a, b : str or array_like
        Estimator names or independent sample arrays ``(n, *param_shape)``.
    coordinates : {"trace", "all"}
        ``"trace"``: total variance; ``"all"``: the alternative in every coordinate
        (intersection-union test).
    cost : (cost_a, cost_b), optional
        Evaluations of f per row, **required for an array of samples** when
        ``equal_cost`` (refgrad cannot know what one row of someone else's estimator
        cost: an RLOO over two samples costs 2); ``None`` for a named estimator, whose
        declared cost is used (a number given for it must agree).
    options_a, options_b : dict, optional
        Options of estimator ``a`` / ``b`` only.
    **options
        Estimator options given to both named estimators, as :func:`assert_unbiased`
        takes them (e.g. ``tau=0.5``, or ``m=4`` for ``"rloo"`` against itself);
        ``options_a`` / ``options_b`` override them per estimator.
    equal_cost : bool
        Compare variance × cost (default) or raw variance (per row).

    Returns
    -------
    refgrad.stats.VarianceResult

    Raises
    ------
    AssertionError
        If the ordering is not shown at level ``alpha``; the result is attached as
        ``err.result``.
    ValueError
        An array of samples without its ``cost`` (with ``equal_cost``), a cost that
        disagrees with a named estimator's, different parameter shapes.
    """
    if coordinates not in ("trace", "all"):
        raise ValueError(f"coordinates must be 'trace' or 'all'; got {describe(coordinates)}")
    if not isinstance(equal_cost, (bool, np.bool_)):
        raise TypeError(f"equal_cost must be True or False; got {describe(equal_cost)} of type "
                        f"{type(equal_cost).__name__}")
    opts = _check_options(a, b, options_a, options_b, options)
    gen = as_generator(rng)
    rng_a, rng_b = gen.spawn(2)
    if n is not None and not isinstance(a, str) and not isinstance(b, str):
        _refuse_n(a, n, "a (and b)")
    if dist is not None:
        check_distribution(dist)
    sa, label_a, cost_a = _draw(a, dist, f, n, rng_a, opts["options_a"], "a")
    sb, label_b, cost_b = _draw(b, dist, f, n, rng_b, opts["options_b"], "b")
    if sa.shape[1:] != sb.shape[1:]:
        raise ValueError(f"a and b must have the same parameter shape; got {sa.shape[1:]} and {sb.shape[1:]}")
    cost_a, cost_b = _check_cost(cost, a, b, cost_a, cost_b, equal_cost)
    if equal_cost:
        sa = sa * np.sqrt(cost_a)
        sb = sb * np.sqrt(cost_b)
    result = stats.variance_test(sa, sb, alternative="less", paired=False, alpha=alpha)
    pvalue = result.pvalue if coordinates == "trace" else result.pvalue_all_coordinates
    what = "per evaluation of f" if equal_cost else "per estimate"
    if result.unreliable:
        warnings.warn(f"variance test {label_a} vs {label_b}: the skewness of the statistic makes its normal "
                      "approximation unreliable at this n", HeavyTailWarning, stacklevel=2)
    if not pvalue < alpha:
        costs = f"costs {cost_a:g} and {cost_b:g}" if equal_cost else "compared per row"
        err = AssertionError(
            f"Var({label_a}) < Var({label_b}) {what} not shown ({coordinates}: p = {pvalue:.3g} >= alpha = "
            f"{alpha:g}; {costs})\n{result}"
        )
        err.result = result
        raise err
    return result
