r"""Goodness-of-fit building blocks of the sampler cross-checks.

* :func:`holm` -- Holm's step-down adjustment of per-coordinate p-values;
* :func:`binomial_pvalues` -- exact two-sided binomial tests (Clopper-Pearson style
  "minimum likelihood" two-sided p-value of :func:`scipy.stats.binomtest`);
* :func:`g_test_monte_carlo` -- the likelihood-ratio statistic
  :math:`G = 2 \sum_k O_k \log(O_k / E_k)` with a sequential Monte Carlo p-value from
  multinomial draws under the exact pmf (Besag & Clifford 1991), valid at every
  sample size and with arbitrarily small expected counts;
* :func:`ks_interval` -- the Kolmogorov-Smirnov test of probability-integral-transformed
  samples that are only known to lie in intervals, with the bounds that favour the null;
* :func:`rounding_interval` -- the interval of reals a float sample stands for.

Sources
-------
J. Besag and P. Clifford (1991), "Sequential Monte Carlo p-values", Biometrika 78(2),
301-304: stop after ``h`` exceedances; ``p = h / L`` if the ``h``-th exceedance is draw
``L``, else ``(g + 1) / (R + 1)`` after all ``R`` draws with ``g < h`` exceedances; the
p-value is valid, ``P(p <= u) <= u``.
S. Holm (1979), "A simple sequentially rejective multiple test procedure",
Scand. J. Statist. 6, 65-70.
A. N. Kolmogorov (1933); the exact finite-n null law of the two-sided statistic is
:data:`scipy.stats.kstwo` (Simard & L'Ecuyer 2011).
"""
import math

import numpy as np
from scipy import special, stats

__all__ = ["holm", "binomial_pvalues", "g_test_monte_carlo", "ks_interval", "rounding_interval",
           "monte_carlo_budget", "EXCEEDANCES", "ROUNDING_ULPS"]

#: Exceedances after which the sequential Monte Carlo p-value stops (Besag & Clifford's h).
EXCEEDANCES = 50

#: Half-width, in units of the sample's own float spacing, of the interval a float sample
#: stands for (covers correct rounding, 0.5 ulp, and the few ulps of a float softmax).
ROUNDING_ULPS = 4


def holm(pvalues):
    """Holm-adjusted p-values (same order as ``pvalues``); the smallest equals min(1, m · min p)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def binomial_pvalues(successes, n, probs):
    """Exact two-sided binomial p-values, one per coordinate (``probs`` strictly inside (0, 1))."""
    return np.array([stats.binomtest(int(k), int(n), float(p)).pvalue for k, p in zip(successes, probs)])


def monte_carlo_budget(resamples, level):
    """The largest number of Monte Carlo draws: ``resamples`` or, if None, enough to reach ``level``.

    With ``R`` draws the smallest attainable p-value is ``1 / (R + 1)``; a test run at a
    level below it could never reject.  ``None`` gives ``max(9999, ceil(20 / level))``
    (the smallest p-value is then at most ``level / 20``); an explicit ``resamples`` whose
    smallest p-value exceeds ``level`` is refused.
    """
    if resamples is None:
        return int(max(9999, math.ceil(20.0 / level)))
    if isinstance(resamples, (bool, np.bool_)) or not isinstance(resamples, (int, np.integer)):
        raise TypeError(f"resamples must be None or an int >= 1; got {resamples!r} of type {type(resamples).__name__}")
    if resamples < 1:
        raise ValueError(f"resamples must be None or an int >= 1; got {resamples}")
    if 1.0 / (resamples + 1) > level:
        raise ValueError(
            f"resamples = {resamples} gives p-values >= 1/(resamples + 1) = {1.0 / (resamples + 1):.3g}, above the "
            f"per-test level {level:.3g}: the test could never reject (allowed: resamples >= {math.ceil(1 / level)}, "
            f"or None for an automatic budget)")
    return int(resamples)


def _g_statistics(counts, log_expected):
    """G = 2 Σ_k O_k log(O_k / E_k) for each row of ``counts`` (cells with O_k = 0 contribute 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    return 2.0 * np.sum(special.xlogy(counts, counts) - counts * log_expected, axis=-1)


def g_test_monte_carlo(counts, probs, max_draws, rng):
    """Likelihood-ratio G statistic and its sequential Monte Carlo p-value.

    Parameters
    ----------
    counts : ndarray of int, shape (K,)
        Observed counts in the cells of positive probability.
    probs : ndarray, shape (K,)
        Their exact probabilities (positive, summing to 1 up to rounding).
    max_draws : int
        Largest number of multinomial draws ``R``.
    rng : numpy.random.Generator

    Returns
    -------
    (G, pvalue, draws) : float, float, int
        ``p = h / L`` when the ``h = EXCEEDANCES``-th draw with ``G* >= G`` is draw ``L``,
        otherwise ``(1 + #{G* >= G}) / (1 + R)``.  Ties count as exceedances (up to a
        relative 1e-10, so floating-point noise never makes the test anti-conservative).
    """
    n = int(np.sum(counts))
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum()
    log_expected = np.log(n * probs)
    g_obs = float(_g_statistics(counts, log_expected))
    threshold = g_obs - 1e-10 * max(1.0, abs(g_obs))
    exceed, drawn, batch = 0, 0, 256
    cap = max(256, 4_000_000 // max(probs.size, 1))
    while drawn < max_draws:
        size = min(batch, max_draws - drawn, cap)
        g_star = _g_statistics(rng.multinomial(n, probs, size=size), log_expected)
        hits = np.cumsum(g_star >= threshold)
        if exceed + hits[-1] >= EXCEEDANCES:
            last = int(np.searchsorted(hits, EXCEEDANCES - exceed)) + 1
            return g_obs, EXCEEDANCES / (drawn + last), drawn + last
        exceed += int(hits[-1])
        drawn += size
        batch *= 2
    return g_obs, (exceed + 1.0) / (max_draws + 1.0), max_draws


def ks_interval(u_low, u_high):
    """Two-sided KS test of uniformity when sample ``j`` is only known to lie in ``[u_low_j, u_high_j]``.

    ``D+ = sup_t (F_n(t) - t)`` is computed with every sample at its upper end and
    ``D- = sup_t (t - F_n(t))`` with every sample at its lower end, so the statistic is
    at most the one of the exact (unrounded) values: the p-value from the exact
    Kolmogorov law :data:`scipy.stats.kstwo` is conservative (the test keeps its level),
    while a wrong law still moves the intervals and fails.  Returns ``(D, p)``.
    """
    high = np.sort(np.asarray(u_high, dtype=np.float64))
    low = np.sort(np.asarray(u_low, dtype=np.float64))
    n = high.size
    ranks = np.arange(1, n + 1) / n
    d_plus = float(np.max(ranks - high))
    d_minus = float(np.max(low - (ranks - 1.0 / n)))
    d = max(d_plus, d_minus, 0.0)
    return d, float(stats.kstwo.sf(d, n)) if d > 0 else 1.0


def rounding_interval(x, dtype):
    """Bounds ``(low, high)`` (float64) of the reals that the samples ``x`` (of float ``dtype``) stand for.

    ``x ± ROUNDING_ULPS · spacing(x)`` in ``dtype`` (so 0 stands for ``[0, 4 · smallest
    subnormal]``); ``±inf`` stands for ``[±max finite, ±inf]``.  Integer and float64 input
    uses float64 spacing.
    """
    dt = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    xd = np.asarray(x, dtype=dt)
    with np.errstate(over="ignore", invalid="ignore"):
        step = ROUNDING_ULPS * np.abs(np.spacing(xd).astype(np.float64))
        xf = xd.astype(np.float64)
        big = float(np.finfo(dt).max)
        low = np.where(np.isposinf(xf), big, np.where(np.isneginf(xf), -np.inf, xf - step))
        high = np.where(np.isneginf(xf), -big, np.where(np.isposinf(xf), np.inf, xf + step))
    return low, high
