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
"""
import warnings
from collections.abc import Mapping

import numpy as np

from . import exact, stats
from ._checks import check_count, describe
from ._stats_common import as_real_array
from .estimators import estimate, get_spec
from .random import as_generator
from .stats import CalibrationWarning

__all__ = ["assert_unbiased", "assert_biased", "assert_variance_less", "HeavyTailWarning", "InconclusiveWarning",
           "CalibrationWarning", "DEFAULT_SEED", "rarest_outcome"]

#: Seed used when ``rng`` is not given: assertions are deterministic by default.
DEFAULT_SEED = 20261123


class HeavyTailWarning(UserWarning):
    """The sample's tails make the normal approximation of a test unreliable at this n."""


class InconclusiveWarning(UserWarning):
    """Part of the problem is invisible to the test: a coordinate without variation in the
    sample, or outcomes too rare to appear in n draws."""


def _draw(name_or_samples, dist, f, n, rng, options, what="name_or_samples"):
    """(samples, label, cost) from an estimator name or an array of estimates."""
    if isinstance(name_or_samples, str):
        if dist is None or f is None:
            raise ValueError(f"{what}: an estimator name needs dist and f")
        spec = get_spec(name_or_samples)
        n = 10000 if n is None else check_count(n, "n", minimum=2)
        samples = estimate(name_or_samples, dist, f, n, rng=rng, **options)
        return samples, f"{name_or_samples}{options if options else ''}", spec.cost_of(dist, **options)
    if options:
        raise ValueError(f"estimator options {sorted(options)} given, but {what} is an array of samples, not a name")
    samples = as_real_array(name_or_samples, what)
    if samples.ndim < 1 or samples.shape[0] < 2:
        raise ValueError(f"{what} must be an estimator name or an array (n, *param_shape) with n >= 2; "
                         f"got {describe(name_or_samples)}")
    return samples, "samples", 1


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
        If ``dist`` is not a discrete refgrad distribution (Bernoulli,
        GaussianThreshold, Categorical): a continuous one has no outcome probabilities.
    """
    if getattr(dist, "family", None) not in _DISCRETE or not hasattr(dist, "probs"):
        raise TypeError(f"dist must be a discrete refgrad distribution ({', '.join(_DISCRETE)}) with outcome "
                        f"probabilities; got {describe(dist)} of type {type(dist).__name__}")
    probs = np.asarray(dist.probs, dtype=float)
    if dist.family in ("bernoulli", "gaussian_threshold"):
        probs = np.concatenate([probs, 1.0 - probs])
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


def _test(samples, target, alpha, method, calibration, resamples, label):
    """stats.unbiasedness_test, its CalibrationWarnings re-issued with ``label`` at the caller of the assertion."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        result = stats.unbiasedness_test(samples, target, alpha=alpha, method=method, calibration=calibration,
                                         resamples=resamples)
    for w in caught:
        if issubclass(w.category, CalibrationWarning):
            warnings.warn(f"{label}: {w.message}", CalibrationWarning, stacklevel=3)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def assert_unbiased(name_or_samples, dist=None, f=None, *, n=None, target=None, alpha=1e-3, rng=DEFAULT_SEED,
                    method="both", calibration="auto", resamples=None, **options):
    r"""Assert ``E[ĝ] = ∇E_q[f]`` with a test of stated level ``alpha``.

    Runs :func:`refgrad.stats.unbiasedness_test` (Hotelling T² and Holm-corrected
    t-tests, bootstrap-calibrated by default where the normal approximation is in
    doubt) of the sample mean against ``target`` (default:
    :func:`refgrad.exact.gradient`).  An unbiased estimator fails with probability
    ≈ ``alpha``; with the default fixed ``rng`` the outcome is reproducible.  Where the
    level cannot be guaranteed a :class:`CalibrationWarning` says so, with the
    estimated size.

    Parameters
    ----------
    name_or_samples : str or array_like
        Estimator name, or estimates of shape ``(n, *param_shape)``.
    dist, f
        Needed with a name, or to compute the default target.
    n : int, optional
        Number of estimates drawn for a name (default 10000).
    target : array_like, optional
        The value ``E[ĝ]`` should equal.
    alpha : float
        Level of the test (default 1e-3).
    rng : None, int or Generator
        Randomness for a name (default :data:`DEFAULT_SEED`).
    method : {"both", "hotelling", "holm"}
        See :func:`refgrad.stats.unbiasedness_test`.
    calibration : {"auto", "bootstrap", "asymptotic"}
        See :func:`refgrad.stats.unbiasedness_test` (the bootstrap uses its fixed
        default seed).
    resamples : int, optional
        Bootstrap resamples (default: from ``alpha``).
    **options
        Estimator options.

    Returns
    -------
    refgrad.stats.UnbiasednessResult

    Raises
    ------
    AssertionError
        If the test rejects, with the per-coordinate table.
    """
    samples, label, _ = _draw(name_or_samples, dist, f, n, rng, options)
    tgt = _target(target, dist, f, samples)
    result = _test(samples, tgt, alpha, method, calibration, resamples, label)
    _warn_heavy(result, label)
    if isinstance(name_or_samples, str):
        _warn_rare(dist, samples.shape[0], label)
    if result.reject:
        raise AssertionError(f"{label} looks biased (p = {result.pvalue:.3g} < alpha = {alpha:g})\n{result}")
    return result


def assert_biased(name_or_samples, dist=None, f=None, *, n=None, target=None, alpha=1e-3, rng=DEFAULT_SEED,
                  method="both", calibration="auto", resamples=None, **options):
    r"""Assert that the estimates' mean differs from ``target`` (default: the exact gradient).

    The complement of :func:`assert_unbiased` at the same level: passes when the
    unbiasedness test rejects.  Choose ``n`` from the exact bias and variance
    (:func:`refgrad.stats.required_samples` with the bias from
    :func:`refgrad.exact.moments`) so that a real bias is detected with high power.
    ``calibration`` and ``resamples`` are those of :func:`assert_unbiased`.

    Raises
    ------
    AssertionError
        If no bias is detected, with the per-coordinate table.
    """
    samples, label, _ = _draw(name_or_samples, dist, f, n, rng, options)
    tgt = _target(target, dist, f, samples)
    result = _test(samples, tgt, alpha, method, calibration, resamples, label)
    _warn_heavy(result, label)
    if not result.reject:
        raise AssertionError(f"{label}: no bias detected (p = {result.pvalue:.3g} >= alpha = {alpha:g}, "
                             f"n = {result.n}); increase n or check the problem has a bias\n{result}")
    return result


def assert_variance_less(a, b, dist=None, f=None, *, n=None, alpha=1e-3, rng=DEFAULT_SEED, equal_cost=True,
                         coordinates="trace", options_a=None, options_b=None):
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
    options_a, options_b : dict, optional
        Estimator options.
    equal_cost : bool
        Compare variance × cost (default) or raw variance.

    Returns
    -------
    refgrad.stats.VarianceResult
    """
    if coordinates not in ("trace", "all"):
        raise ValueError(f"coordinates must be 'trace' or 'all'; got {describe(coordinates)}")
    if not isinstance(equal_cost, (bool, np.bool_)):
        raise TypeError(f"equal_cost must be True or False; got {describe(equal_cost)} of type "
                        f"{type(equal_cost).__name__}")
    options = {}
    for name, value in (("options_a", options_a), ("options_b", options_b)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a dict of estimator options (e.g. {{'tau': 0.5}}) or None; got "
                            f"{describe(value)} of type {type(value).__name__}")
        if value is not None and not all(isinstance(k, str) for k in value):
            bad = next(k for k in value if not isinstance(k, str))
            raise TypeError(f"{name} must map option names (strings) to values; got the key {describe(bad)}")
        options[name] = dict(value or {})
    gen = as_generator(rng)
    rng_a, rng_b = gen.spawn(2)
    sa, label_a, cost_a = _draw(a, dist, f, n, rng_a, options["options_a"], "a")
    sb, label_b, cost_b = _draw(b, dist, f, n, rng_b, options["options_b"], "b")
    if sa.shape[1:] != sb.shape[1:]:
        raise ValueError(f"a and b must have the same parameter shape; got {sa.shape[1:]} and {sb.shape[1:]}")
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
        raise AssertionError(
            f"Var({label_a}) < Var({label_b}) {what} not shown ({coordinates}: p = {pvalue:.3g} >= alpha = {alpha:g}; "
            f"costs {cost_a} and {cost_b})\n{result}"
        )
    return result
