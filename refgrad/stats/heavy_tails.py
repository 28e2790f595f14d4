"""The heavy-tail diagnostic of :mod:`refgrad.stats`."""
import math
from dataclasses import dataclass

import numpy as np

from .._core.checks import check_count
from ._common import (
    _DEFAULT_RTOL,
    KURTOSIS_LIMIT,
    OUTLIER_SIGMAS,
    SHARE_LIMIT,
    SKEWNESS_LIMIT,
    _as_samples,
    _constant_columns,
    _coordinate_table,
    _frozen,
    _index_labels,
    _unit,
)

# --------------------------------------------------------------------------------------------
# heavy tails
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HeavyTailDiagnostic:
    """Result of :func:`heavy_tail_diagnostic` (per-coordinate arrays have the parameter shape)."""

    n: int
    n_eff: int
    skewness: np.ndarray
    excess_kurtosis: np.ndarray
    mean_skewness: np.ndarray
    mean_excess_kurtosis: np.ndarray
    max_share: np.ndarray
    share_limit: float
    flagged: np.ndarray
    unreliable: bool
    message: str

    def __str__(self):
        severity = np.maximum.reduce(
            [
                np.abs(self.mean_skewness.ravel()) / SKEWNESS_LIMIT,
                self.mean_excess_kurtosis.ravel() / KURTOSIS_LIMIT,
                self.max_share.ravel() / self.share_limit,
            ]
        )
        head = (
            f"Heavy-tail diagnostic: n = {self.n}, n_eff = {self.n_eff}; limits |γ|/√n_eff > {SKEWNESS_LIMIT}, "
            f"κ/n_eff > {KURTOSIS_LIMIT}, max share > {self.share_limit:.4g}\n"
        )
        headers = ["index", "skew γ", "ex.kurt κ", "γ/√n_eff", "κ/n_eff", "max share", "flagged"]
        columns = (self.skewness, self.excess_kurtosis, self.mean_skewness, self.mean_excess_kurtosis,
                   self.max_share, self.flagged)
        table = _coordinate_table(headers, columns, -severity)  # most severe first
        return head + table + "\n" + self.message


def heavy_tail_diagnostic(samples, n_eff=None):
    r"""Decide whether the normal approximation of the sample mean is unreliable.

    For each coordinate, with deviations :math:`d_i = x_i - \bar x` and central
    moments :math:`m_k = n^{-1} \sum_i d_i^k`, let :math:`γ = m_3 / m_2^{3/2}` (skewness),
    :math:`κ = m_4 / m_2^2 - 3` (excess kurtosis) and
    :math:`s = \max_i d_i^2 / \sum_i d_i^2` (the largest single share of the sum of
    squares).  A coordinate is flagged when any of these rules fires:

    1. :math:`|γ| / \sqrt{n_{eff}} > 0.1` -- the skewness of the mean of ``n_eff``
       samples; it drives the :math:`O(n^{-1/2})` Edgeworth term of a one-sided
       t-test (Hall 1992, *The Bootstrap and Edgeworth Expansion*, eq. 2.52);
    2. :math:`κ / n_{eff} > 0.1` -- the excess kurtosis of the mean, the
       :math:`O(n^{-1})` term (both rules are Berry-Esseen-type size conditions);
    3. :math:`s > \max(0.02,\; 25 / (n - 1))` -- one sample dominates the variance:
       either it carries more than 2 % of the sum of squares, or (at moderate n) it
       lies more than 5 sample standard deviations from the mean
       (:math:`s > 25/(n-1) ⟺ |d_i| > 5 s_x`).  Lindeberg's condition fails in
       practice; typical of infinite-variance or infinite-fourth-moment samples
       (Cauchy, Pareto with index ≤ 4, Gumbel-softmax at small τ) and of a rare
       outcome seen only a handful of times.

    Rules 1 and 2 fire only if, in addition, the sample moment is significantly nonzero,
    :math:`|γ| > 3\sqrt{6/n}` and :math:`κ > 3\sqrt{24/n}` (three of its standard errors
    under normality), so that the sampling noise of γ and κ at small n does not trigger
    them on normal data.

    Sample moments of heavy-tailed data are themselves unreliable (for Pareto with
    index 2.5 the sample kurtosis grows with n), which is why rule 3 looks at the
    largest observation directly.  Under normal samples the rules essentially never
    fire for n ≳ 100 (rule 1 needs |γ̂| > 0.1√n while γ̂ ≈ N(0, 6/n); rule 3 needs a
    5σ outlier or a 2 % share); for Bernoulli(θ) samples they fire when the expected
    number of rare outcomes ``n·min(θ, 1-θ)`` is below about 100 (rule 1) or 50 (rule 3),
    where the sample mean is indeed visibly discrete and skewed.  At very small n
    (≲ 30) the diagnostic has little power; it cannot prove normality.

    Parameters
    ----------
    samples : array_like, shape (n, *param_shape)
        Per-sample estimates, finite; ``n ≥ 2``.
    n_eff : int, optional
        The number of samples that will be averaged (default ``n``).  Rules 1 and 2
        use it, so a pilot sample can be diagnosed for a larger final run (``n_eff > n``
        is that use, and is allowed; the significance conditions stay those of the
        pilot's n); rule 3 always uses the sample at hand.  The ``message`` states
        both sizes when they differ.

    Returns
    -------
    HeavyTailDiagnostic
        Per-coordinate ``skewness``, ``excess_kurtosis``, ``mean_skewness``
        (γ/√n_eff), ``mean_excess_kurtosis`` (κ/n_eff), ``max_share``, ``flagged``;
        ``unreliable`` (any coordinate flagged) and a ``message``.  Coordinates that are
        constant up to rounding (spread ≤ 1e-12 × their largest magnitude) get zeros.
    """
    x, shape = _as_samples(samples, "samples")
    if n_eff is not None:
        n_eff = check_count(n_eff, "n_eff", minimum=1)
    return _heavy_tail(x, shape, n_eff)


def _heavy_tail(x, shape, n_eff=None):
    n = x.shape[0]
    n_eff = n if n_eff is None else n_eff
    magnitude = np.abs(x).max(axis=0)
    unit = _unit(magnitude)
    x = x / unit  # exact: every coordinate's largest magnitude in [1, 2), so its moments cannot overflow or underflow
    magnitude = magnitude / unit
    constant = _constant_columns(x, magnitude, _DEFAULT_RTOL)
    dev = x - x.mean(axis=0)
    dev[:, constant] = 0.0
    sq = dev * dev
    m2 = sq.mean(axis=0)
    safe = np.where(constant, 1.0, m2)
    gamma = np.where(constant, 0.0, (sq * dev).mean(axis=0) / safe**1.5)
    kappa = np.where(constant, 0.0, (sq * sq).mean(axis=0) / safe**2 - 3.0)
    share = np.where(constant, 0.0, sq.max(axis=0) / (safe * n))
    share_limit = max(SHARE_LIMIT, OUTLIER_SIGMAS**2 / (n - 1)) if n > 1 else math.inf
    mean_skew = gamma / math.sqrt(n_eff)
    mean_kurt = kappa / n_eff
    # rules 1 and 2 also need the sample moment to be 3 normal-theory standard errors away from 0
    rule1 = (np.abs(mean_skew) > SKEWNESS_LIMIT) & (np.abs(gamma) > 3.0 * math.sqrt(6.0 / n))
    rule2 = (mean_kurt > KURTOSIS_LIMIT) & (kappa > 3.0 * math.sqrt(24.0 / n))
    rule3 = share > share_limit
    flagged = rule1 | rule2 | rule3
    unreliable = bool(flagged.any())
    labels = _index_labels(shape)
    if unreliable:
        parts = []
        for rule, text in (
            (rule1, f"|skewness|/√n_eff > {SKEWNESS_LIMIT}"),
            (rule2, f"excess kurtosis/n_eff > {KURTOSIS_LIMIT}"),
            (rule3, f"one sample carries > {share_limit:.3g} of the sum of squares"),
        ):
            if rule.any():
                where = [labels[i] for i in np.flatnonzero(rule)[:5]]
                more = "" if rule.sum() <= 5 else f" and {int(rule.sum()) - 5} more"
                parts.append(f"{text} at coordinate(s) {', '.join(where)}{more}")
        message = (
            "the normal approximation of the sample mean is unreliable at this n (heavy tails or too few samples: "
            + "; ".join(parts)
            + "); p-values may be far off -- increase n or use a lower-variance estimator"
        )
    else:
        message = "no sign of heavy tails at this n (skewness, kurtosis and largest-share rules all quiet)"
    if n_eff != n:  # a pilot sample judged for a mean of another size: say so, rules 1 and 2 depend on it
        message += (f" [rules 1 and 2 judged for a mean of n_eff = {n_eff} samples from these n = {n}; rule 3 "
                    f"for the n = {n} at hand]")
    return HeavyTailDiagnostic(
        n=n,
        n_eff=n_eff,
        skewness=_frozen(gamma, shape),
        excess_kurtosis=_frozen(kappa, shape),
        mean_skewness=_frozen(mean_skew, shape),
        mean_excess_kurtosis=_frozen(mean_kurt, shape),
        max_share=_frozen(share, shape),
        share_limit=float(share_limit),
        flagged=_frozen(flagged, shape),
        unreliable=unreliable,
        message=message,
    )
