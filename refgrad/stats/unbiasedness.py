r"""The unbiasedness test of :mod:`refgrad.stats` and the sample size it needs.

:func:`unbiasedness_test` runs in stages, one private function each: the input checks; the
per-coordinate moments, t statistics and Student-t / Holm p-values; Hotelling's T² on the
non-degenerate subspace; the choice of reference distribution (F / t or the bootstrap-t of
:mod:`refgrad.stats.calibration`) with its level warnings; and the decision that combines the
parts.  :func:`required_samples` sizes a run of it.
"""
import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy import special, stats

from .._core.checks import WORK_LIMIT, check_count, check_finite, check_max_work, check_work, first_index
from ..random import as_generator
from ._common import (
    _EPS,
    _METHODS,
    _as_samples,
    _check_alpha,
    _check_choice,
    _constant_columns,
    _coordinate_table,
    _fmt,
    _frozen,
    _holm,
    _index_labels,
    _resolve_rtol,
    _unit,
    as_real_array,
)
from .calibration import (
    AUTO_BUDGET,
    BOOTSTRAP_SEED,
    BOOTSTRAP_SIZE_LIMIT,
    BOOTSTRAP_WORK_UNIT,
    CALIBRATIONS,
    LEVEL_CHECKED_N,
    MAX_BOOTSTRAP_RANK,
    MAX_BUDGET,
    MIN_BOOTSTRAP_N,
    RESOLUTION,
    SIZE_TOLERANCE,
    CalibrationWarning,
    bootstrap_t,
    bootstrap_work,
    default_resamples,
    distinct_rows,
    estimated_size,
)
from .heavy_tails import HeavyTailDiagnostic, _heavy_tail

__all__ = ["COMBINED_PVALUE_EXPLANATION", "COMBINATIONS", "UnbiasednessResult", "unbiasedness_test",
           "required_samples"]


#: How the default (``method="both"``) p-value of :func:`unbiasedness_test` is formed, in plain words.
COMBINED_PVALUE_EXPLANATION = (
    "The p-value combines two tests of the same hypothesis: Hotelling's T² on all coordinates at once and "
    "per-coordinate t-tests with Holm's correction; it is twice the smaller of their p-values, capped at 1 "
    "(Bonferroni), so that rejecting when either test rejects keeps the stated level. With a single "
    "coordinate the two tests are the same t-test, so its p-value is used as it is, without doubling."
)

#: The values of :attr:`UnbiasednessResult.combination`: which test(s) the p-value comes from.
COMBINATIONS = {
    "single": "single t-test (one coordinate): Hotelling T² = t², so its p-value is used without doubling",
    "both": "Bonferroni of Hotelling T² and {step} t-tests: p = min(1, 2 x the smaller of the two p-values)",
    "hotelling": "Hotelling T² alone (method='hotelling')",
    "holm": "{step} t-tests alone",
    "exact": "decided exactly (no coordinate varies in the sample)",
}


# --------------------------------------------------------------------------------------------
# unbiasedness
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UnbiasednessResult:
    """Result of :func:`unbiasedness_test`.

    ``pvalue``/``reject`` are the decision of the chosen ``method``, and ``combination``
    says in one line how ``pvalue`` was formed from the parts (one of
    :data:`COMBINATIONS`: with ``method="both"`` the Bonferroni combination, or the
    single t-test when only one coordinate is tested); the Hotelling and
    Holm parts are always both reported (``hotelling_pvalue`` is ``None`` when
    Hotelling's test is not available, n ≤ number of non-constant coordinates).
    ``rank`` is the numerical rank used by Hotelling (0 when it was not computed).
    Per-coordinate arrays have the parameter shape.

    ``calibration`` is the reference distribution used: ``"bootstrap"`` (``resamples``
    bootstrap-t resamples), ``"asymptotic"`` (F and Student t) or ``"exact"`` (nothing
    random left to test: every coordinate constant, or a degenerate discrepancy decided
    exactly).  ``normal_hotelling_pvalue`` / ``normal_holm_pvalue`` are the F / t
    p-values whichever calibration decided; ``estimated_size`` is the Edgeworth estimate
    of the normal-theory decision's size at ``alpha`` (None when not computed), and
    ``level_warning`` the text of the :class:`CalibrationWarning` issued, if any.
    """

    method: str
    alpha: float
    n: int
    statistic: float
    pvalue: float
    reject: bool
    hotelling_statistic: float
    hotelling_f: float
    hotelling_df: object
    hotelling_pvalue: object
    rank: int
    holm_pvalue: float
    target: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    tstat: np.ndarray
    pvalues: np.ndarray
    adjusted_pvalues: np.ndarray
    constant: np.ndarray
    heavy_tail: HeavyTailDiagnostic
    notes: tuple
    inconclusive: bool = False
    calibration: str = "asymptotic"
    resamples: int = 0
    normal_hotelling_pvalue: object = None
    normal_holm_pvalue: float = None
    estimated_size: object = None
    level_warning: object = None
    combination: str = ""

    def __str__(self):
        shape = self.mean.shape
        p = int(np.prod(shape, dtype=np.int64))
        verdict = "REJECTED" if self.reject else "not rejected"
        lines = [
            f"Unbiasedness test (method={self.method!r}, alpha={self.alpha:g}): n = {self.n}, "
            f"{p} coordinate(s), shape {shape}",
        ]
        if self.hotelling_pvalue is None:
            lines.append("  Hotelling T²: not available (see notes)")
        elif self.hotelling_df is None:
            lines.append(
                f"  Hotelling T² = {_fmt(self.hotelling_statistic)} (rank {self.rank}), p = "
                f"{_fmt(self.hotelling_pvalue)}: decided exactly (zero-variance coordinates/directions, see notes)"
            )
        else:
            d1, d2 = self.hotelling_df
            lines.append(
                f"  Hotelling T² = {_fmt(self.hotelling_statistic)} (rank {self.rank}), "
                f"F = {_fmt(self.hotelling_f)} ~ F({d1}, {d2}), p = {_fmt(self.hotelling_pvalue)}"
            )
        step = "Westfall-Young step-down max-T" if self.calibration == "bootstrap" else "Holm"
        lines.append(f"  {step}: smallest adjusted p = {_fmt(self.holm_pvalue)}")
        lines.append(
            f"  p-value = {_fmt(self.pvalue)} -> H0 (E[estimate] = target) {verdict} at alpha = {self.alpha:g}"
        )
        if self.combination:
            lines.append(f"  combination: {self.combination}")
        columns = (self.target, self.mean, self.stderr, self.tstat, self.pvalues, self.adjusted_pvalues)
        lines.append(_coordinate_table(["index", "target", "mean", "std.err", "t", "p", "Holm p"], columns,
                                       self.pvalues))
        lines.extend(f"note: {note}" for note in self.notes)
        if self.level_warning:
            lines.append("WARNING (level): " + self.level_warning)
        if self.heavy_tail.unreliable:
            lines.append("WARNING: " + self.heavy_tail.message)
        return "\n".join(lines)


def unbiasedness_test(samples, target, alpha=0.01, method="both", *, rtol=None, degenerate="exact",
                      calibration="auto", resamples=None, rng=BOOTSTRAP_SEED, max_work=None):
    r"""Test ``E[ĝ] = target`` from n independent estimates ĝ_1..ĝ_n.

    The parameter shape is flattened to p coordinates; :math:`\bar x` is the sample
    mean, :math:`S` the sample covariance (divisor n - 1), :math:`δ = \bar x - μ_0`.

    **Hotelling's T²** (Hotelling 1931; e.g. Anderson, *An Introduction to
    Multivariate Statistical Analysis*, 3rd ed., §5.2):

    .. math::

        T^2 = n\, δ^\top S^{+} δ, \qquad
        F = \frac{n - r}{r (n - 1)}\, T^2 \sim F(r,\, n - r) \text{ under } H_0,

    exact for normal samples and asymptotically valid otherwise.  A singular S is
    handled on its non-degenerate subspace: coordinates constant up to rounding are
    set aside; the others are standardised to unit variance and S⁺ is the
    pseudo-inverse of their correlation matrix, with ``r`` its numerical rank
    (singular values of the standardised data attributable to rounding at relative
    level ``rtol`` are discarded).  A constant coordinate equal to its target (up to
    ``rtol``) contributes nothing; one that differs, or a mean that leaves the
    hyperplane on which all the samples lie (e.g. a target whose entries do not sum to
    0 for estimates that all do) is a *degenerate* discrepancy.  With the default
    ``degenerate="exact"`` it makes T² infinite and p = 0: a coordinate or direction in which
    every estimate is the same is compared exactly with its target, within the rounding level
    ``rtol`` of the samples' dtype, and a deterministic estimate (an enumerated ELBO, an
    all-action policy gradient, a sum-to-zero score) that differs is rejected -- it is never
    passed by leaving it out.  ``degenerate="inconclusive"`` leaves such coordinates and
    directions out of the decision and reports them as untestable (``inconclusive=True`` and
    a note): use it only for a random estimator whose sample can be constant by chance
    because a rare discrete outcome did not occur (e.g. ARM at a logit of 9, whose
    antithetic pair differs with probability 2·10⁻⁴); then the sample carries no evidence
    either way.  Where the exact variance is known, :func:`refgrad.crosscheck.check_estimator`
    tells the two cases apart.
    Hotelling needs n > m (m = number of non-constant coordinates); otherwise only the
    Holm part is used, with a note.

    **Per-coordinate t-tests with Holm's correction**: :math:`t_j = δ_j / (s_j/\sqrt n)`,
    two-sided p from Student's t with n - 1 degrees of freedom, then
    :func:`holm_adjust` over the coordinates that are not constant-and-equal (those
    are decided exactly: p = 1 if equal, p = 0 and t = ±inf if not).

    **Decision**: ``method="hotelling"`` uses the Hotelling p; ``"holm"`` the smallest
    Holm-adjusted p; ``"both"`` (default) the Bonferroni combination
    :math:`\min(1, 2 \min(p_{T^2}, p_{Holm}))`, so that the stated ``alpha`` bounds the
    false-alarm rate of "reject if either test rejects" (Hotelling is more powerful
    against correlated/diffuse biases, Holm against a bias in one coordinate).
    When only one coordinate is tested (p = 1, or every other coordinate constant)
    the two parts are the same test -- :math:`T^2 = t^2` and
    :math:`F(1, n-1) = t_{n-1}^2` -- and the doubling would only halve the power, so
    that t-test's p-value is the decision (``combination`` says which was used;
    :data:`COMBINED_PVALUE_EXPLANATION` is the plain-words version).
    ``reject = pvalue < alpha``.

    **Calibration.**  The F and t reference distributions above are exact for normal
    estimates only.  Gradient estimates are often skewed (REINFORCE, DisARM, REBAR on
    rare outcomes), and then the two-sided tests reject too often by
    :math:`O(γ^2/n)`, several times α at n ≤ 100 on such estimates (the measured rates
    are in ``docs/stats-calibration.md``).  The size of the normal-theory decision is *estimated* from the Edgeworth
    expansion of the studentised mean (Hall 1992, *The Bootstrap and Edgeworth
    Expansion*, §2.6), with the sample skewness γ and excess kurtosis κ of each
    coordinate,

    .. math::

        P(|T| > x) - α \approx \frac{2 φ(x)\, x}{n}
        \Big[\frac{γ^2 (x^4 + 2x^2 - 3)}{18} - \frac{κ (x^2 - 3)}{12}\Big]

    at the critical value x (Holm: each coordinate at level α/m, summed; Hotelling:
    see :func:`refgrad.stats.calibration.estimated_size`), and reported as
    ``estimated_size``.  ``calibration`` chooses the reference distribution:

    * ``"bootstrap"``: a studentised bootstrap (bootstrap-t; Hall 1992, §3.10;
      Davison & Hinkley 1997, *Bootstrap Methods and their Application*, §4.4) of T²
      and of the t statistics: B = ``resamples`` resamples of n rows drawn with
      replacement (from ``rng``), each statistic recomputed with the resample's own
      covariance and centred at the sample mean (the mean of the resampling
      distribution), :math:`p = (1 + \#\{T^{*} ≥ T\}) / (B + 1)`.  Holm's step-down
      is then Westfall & Young's step-down max-T on the joint bootstrap distribution
      of the |t*| (1993, *Resampling-Based Multiple Testing*, Algorithm 2.8).  For a
      two-sided test the bootstrap-t's size error is :math:`O(n^{-2})` against
      :math:`O(n^{-1})` for the F / t references.  On samples with rare outcomes
      (an outcome of probability ~0.1 at n ≤ 100) it is conservative: the level
      holds, the power is lower.  (A null-restricted variant, resampling with
      exponentially tilted weights whose mean is the target, exceeded the level on
      such samples, so it is not used.)  Resample moments are one product of
      the resampling counts with per-sample features, and a sample with few
      distinct rows (a discrete estimator) is resampled through multinomial counts
      of its distinct rows, at a cost that grows with the distinct rows, not with n
      (timings in ``docs/stats-calibration.md``).  scipy.stats.bootstrap (the oracle in the
      tests) computes confidence intervals, not bootstrap-t p-values, and has no
      distinct-row shortcut, hence the implementation here.
    * ``"asymptotic"``: the F and t references (the only behaviour before
      ``calibration`` existed).
    * ``"auto"`` (default): the bootstrap when it is cheap (distinct rows × B ≤
      :data:`AUTO_BUDGET`), else the normal-theory test when its estimated size is
      at most ``(1 +`` :data:`SIZE_TOLERANCE` ``) α``, else the bootstrap up to
      :data:`MAX_BUDGET`; below :data:`MIN_BOOTSTRAP_N` samples the normal-theory
      test.

    The default B puts at least :data:`RESOLUTION` resampled statistics beyond the
    critical value of each part (B = 20000 at α = 0.001 with ``method="both"``, 2000
    at α = 0.01, 1999 at α = 0.05; at most :data:`MAX_RESAMPLES`); with the default
    ``rng`` the p-values are a deterministic function of the samples.  The measured
    false-alarm rates of the default test are tabulated in ``docs/stats-calibration.md``.

    A :class:`CalibrationWarning`, with the estimated size in its message, is issued
    (and ``level_warning`` set) when the level cannot be guaranteed: the
    normal-theory test is used while its estimated size exceeds
    ``(1 + SIZE_TOLERANCE) α`` (with n ≥ :data:`MIN_BOOTSTRAP_N`); fewer than
    :data:`MIN_BOOTSTRAP_N` samples (unless ``calibration="asymptotic"``); the
    bootstrap with fewer than :data:`LEVEL_CHECKED_N` samples (where skewed discrete
    estimates were measured to exceed the level, ``docs/stats-calibration.md``); a
    normal-theory size
    estimated above :data:`BOOTSTRAP_SIZE_LIMIT` × α (heavy tails, beyond what the
    bootstrap was checked on); or too few resamples for α (``level (B + 1) <``
    :data:`RESOLUTION` for a part: the size stays ≤ α, the power drops; at most 1
    the test cannot reject).

    Parameters
    ----------
    samples : array_like, shape (n, *param_shape)
        Independent per-sample estimates, real and finite, n ≥ 2.
    target : array_like, shape param_shape
        The exact expectation (e.g. ``refgrad.exact.gradient``), real and finite.
    alpha : float in (0, 1)
        Level of the test.
    method : {"both", "hotelling", "holm"}
    rtol : float in [0, 1) or None, keyword-only
        Relative rounding level for "equal"/"constant" (see the module docstring).
        Default None: from the dtype the samples and target arrive in -- 1e-12 for
        float64 (or integers, lists), ``ROUNDING_ULPS · eps`` = 1.2e-4 for float32.
    degenerate : {"exact", "inconclusive"}, keyword-only
        How to treat a constant coordinate (or a direction in which every sample is
        constant) whose mean differs from the target by more than the rounding level:
        decided exactly as a rejection (default), or left out and reported.
    calibration : {"auto", "bootstrap", "asymptotic"}, keyword-only
        Reference distribution of the statistics (see above).
    resamples : int, optional, keyword-only
        Bootstrap resamples B (default: from α, see above).
    rng : None, int or numpy.random.Generator, keyword-only
        Randomness of the bootstrap (default :data:`BOOTSTRAP_SEED`: the p-values are
        a deterministic function of the samples).
    max_work : float or None, keyword-only
        Budget of the bootstrap in elementary operations (one feature of one resampled row:
        resamples x distinct rows x (2 m + r (r + 3) / 2 features, m coordinates, r the
        bootstrapped rank of T²), plus the draws of the rows); default None:
        10¹¹, refgrad's budget for one call.  ``calibration="bootstrap"``
        beyond it is refused with a ``ValueError`` before any resampling (e.g.
        ``resamples=10**12``); ``"auto"`` uses the F / t references instead.  Pass a larger
        number (or ``float("inf")``) to run a larger bootstrap deliberately.

    Returns
    -------
    UnbiasednessResult
        ``statistic`` (T², or max |t| for ``method="holm"``), ``pvalue``, ``reject``, the
        Hotelling and Holm parts, the per-coordinate table (``target``, ``mean``,
        ``stderr``, ``tstat``, ``pvalues``, ``adjusted_pvalues``), ``heavy_tail``
        (:func:`heavy_tail_diagnostic` of the samples), ``calibration`` (the one used),
        ``resamples``, the normal-theory p-values, ``estimated_size``,
        ``level_warning`` and ``notes``.

    Notes
    -----
    Neither calibration helps when the variance is infinite or one sample dominates
    it; the heavy-tail diagnostic flags that, and ``str(result)`` says so.
    """
    x, shape = _as_samples(samples, "samples")
    n, p = x.shape
    mu0 = as_real_array(target, "target")
    if mu0.shape != shape:
        raise ValueError(f"target must have shape {shape} (the parameter shape of samples); got {mu0.shape}")
    check_finite(mu0, "target")
    mu0 = mu0.reshape(p)
    alpha = _check_alpha(alpha)
    method = _check_choice(method, "method", _METHODS)
    rtol = _resolve_rtol(rtol, samples, target)
    degenerate = _check_choice(degenerate, "degenerate", ("inconclusive", "exact"))
    calibration = _check_choice(calibration, "calibration", CALIBRATIONS)
    if resamples is not None:
        resamples = check_count(resamples, "resamples", minimum=1)
    gen = as_generator(rng)
    max_work = check_max_work(max_work)
    exact_degenerate = degenerate == "exact"
    notes = []

    # each coordinate in units of a power of two near its largest magnitude (exact, see _unit): moments of
    # samples near 1e200 or 1e-200 neither overflow nor underflow, and every statistic is scale invariant
    magnitude = np.abs(x).max(axis=0)
    unit = _unit(np.maximum(magnitude, np.abs(mu0)))
    with np.errstate(over="ignore"):
        # the rounding scale of each coordinate: its largest sample magnitude or the largest target entry
        scale = np.minimum(np.maximum(magnitude, np.abs(mu0).max()) / unit, np.finfo(np.float64).max)
    c = _coordinate_tests(x / unit, mu0 / unit, scale, rtol, exact_degenerate, shape, notes)
    h = _hotelling_part(c, n, exact_degenerate, notes)
    normal_hot, normal_holm = h.hot_p, float(c.adjusted.min())
    single = _single_test(method, c, h, exact_degenerate)
    cal = _calibrate(x, c, h, alpha, method, calibration, resamples, gen, exact_degenerate, notes, single, max_work)
    holm_p = float(c.adjusted.min())
    hot_p = h.hot_p
    inconclusive = not exact_degenerate and bool(c.off.any() or h.violated)
    with np.errstate(over="ignore"):
        mean, stderr = c.mean * unit, c.se * unit  # back in the units of the samples

    pvalue, statistic, combination = _decision(method, c, h, hot_p, holm_p, single, cal.used, notes)
    for text in cal.warnings:
        warnings.warn(text, CalibrationWarning, stacklevel=2)

    return UnbiasednessResult(
        method=method,
        alpha=alpha,
        n=n,
        statistic=float(statistic),
        pvalue=float(pvalue),
        reject=bool(pvalue < alpha),
        hotelling_statistic=float(h.t2),
        hotelling_f=float(h.f_stat),
        hotelling_df=h.df,
        hotelling_pvalue=None if hot_p is None else float(hot_p),
        rank=h.rank,
        holm_pvalue=holm_p,
        target=_frozen(mu0, shape),
        mean=_frozen(mean, shape),
        stderr=_frozen(stderr, shape),
        tstat=_frozen(c.tstat, shape),
        pvalues=_frozen(c.pvals, shape),
        adjusted_pvalues=_frozen(c.adjusted, shape),
        constant=_frozen(c.constant, shape),
        heavy_tail=_heavy_tail(x, shape),
        notes=tuple(notes),
        inconclusive=inconclusive,
        calibration=cal.used,
        resamples=cal.resamples,
        normal_hotelling_pvalue=None if normal_hot is None else float(normal_hot),
        normal_holm_pvalue=normal_holm,
        estimated_size=cal.estimated_size,
        level_warning=" | ".join(cal.warnings) if cal.warnings else None,
        combination=combination,
    )


def _single_test(method, c, h, exact_degenerate):
    """True when ``method="both"`` tests one coordinate only: T² = t² and both parts are one t-test."""
    if method != "both" or not h.available or int(c.live.sum()) != 1:
        return False
    return not (exact_degenerate and (c.off.any() or math.isinf(h.t2)))


def _decision(method, c, h, hot_p, holm_p, single, used, notes):
    """(pvalue, statistic, combination) of the chosen ``method``; see :data:`COMBINATIONS`."""
    step = "Westfall-Young step-down max-T" if used == "bootstrap" else "Holm"
    if int(c.live.sum()) == 0:
        return holm_p, float(np.max(np.abs(c.tstat))), COMBINATIONS["exact"]
    if single:
        return holm_p, h.t2, COMBINATIONS["single"]
    if method == "hotelling" and h.available:
        return hot_p, h.t2, COMBINATIONS["hotelling"]
    if method == "both" and h.available:
        return min(1.0, 2.0 * min(hot_p, holm_p)), h.t2, COMBINATIONS["both"].format(step=step)
    if method != "holm":
        notes.append(f"method={method!r} fell back to Holm's per-coordinate tests (Hotelling not available)")
    return holm_p, float(np.max(np.abs(c.tstat))), COMBINATIONS["holm"].format(step=step)


def _coordinate_tests(x, mu0, scale, rtol, exact_degenerate, shape, notes):
    """Per-coordinate means, deviations, t statistics and Student-t / Holm p-values.

    ``x`` and ``mu0`` are in the units of :func:`_unit` (entries at most 2 in magnitude); ``scale`` is
    each coordinate's rounding scale (its largest sample magnitude or the largest target entry) in the
    same units.
    """
    n, p = x.shape
    tol = rtol * scale
    constant = _constant_columns(x, scale, rtol)
    mean = x.mean(axis=0)
    mean[constant] = x[0, constant]
    dev = x - mean
    dev[:, constant] = 0.0
    sd = np.sqrt(np.einsum("ij,ij->j", dev, dev) / (n - 1))
    se = sd / math.sqrt(n)
    diff = mean - mu0
    tstat = np.zeros(p)
    pvals = np.ones(p)
    live = ~constant
    tstat[live] = diff[live] / se[live]
    pvals[live] = 2.0 * stats.t.sf(np.abs(tstat[live]), n - 1)
    off = constant & (np.abs(diff) > tol)
    tstat[off] = np.copysign(np.inf, diff[off])
    pvals[off] = 0.0 if exact_degenerate else 1.0
    family = live | off if exact_degenerate else live
    adjusted = np.ones(p)
    adjusted[family] = _holm(pvals[family])
    if constant.any():
        labels = _index_labels(shape)
        notes.append(f"{int(constant.sum())} coordinate(s) have zero sample variance")
        if off.any():
            where = ", ".join(labels[i] for i in np.flatnonzero(off)[:5])
            if exact_degenerate:
                notes.append(
                    f"zero-variance coordinate(s) {where} differ from the target: infinite statistic, p = 0 "
                    "(degenerate='exact': valid if the zero variance is structural)"
                )
            else:
                notes.append(
                    f"INCONCLUSIVE: zero-variance coordinate(s) {where} differ from the target but the sample shows "
                    "no variation there (a rare outcome may be missing): left out of the test "
                    "(degenerate='inconclusive'); "
                    "increase n, or use the default degenerate='exact' if the zero variance is structural"
                )
    return SimpleNamespace(mean=mean, dev=dev, sd=sd, se=se, diff=diff, tol=tol, constant=constant, live=live,
                           off=off, tstat=tstat, pvals=pvals, adjusted=adjusted)


def _hotelling_part(c, n, exact_degenerate, notes):
    """Hotelling's T² on the non-degenerate subspace, with its F p-value and whitening basis."""
    live = c.live
    m = int(live.sum())
    h = SimpleNamespace(t2=0.0, f_stat=0.0, rank=0, df=None, hot_p=1.0, available=True, violated=False, whiten=None,
                        decided=False)
    if m > 0 and n <= m:
        if not (c.off.any() and exact_degenerate):
            h.available, h.hot_p = False, None
            notes.append(
                f"Hotelling T² needs n > {m} (the number of non-constant coordinates); got n = {n}, "
                "so only the per-coordinate Holm tests are used"
            )
    elif m > 0:
        h.t2, h.rank, h.violated, h.whiten = _hotelling(c.dev[:, live], c.diff[live], c.sd[live], c.tol[live], n)
        if h.violated and exact_degenerate:
            h.t2 = math.inf
            notes.append(
                "the mean differs from the target in a direction in which every sample is constant "
                "(e.g. a target whose entries do not sum to zero for sum-to-zero estimates): infinite statistic"
            )
        elif h.violated:
            notes.append(
                "INCONCLUSIVE: the mean differs from the target in a direction in which every sample is constant; "
                "that direction is left out of Hotelling's test (degenerate='inconclusive'; the default "
                "degenerate='exact' rejects, right when the degeneracy is structural, e.g. a sum-to-zero score)"
            )
        if h.rank < m:
            notes.append(f"sample covariance of the {m} non-constant coordinates has rank {h.rank}; "
                         "pseudo-inverse used")
        if h.rank > 0 and not math.isinf(h.t2):
            h.df = (h.rank, n - h.rank)
            h.f_stat = (n - h.rank) / (h.rank * (n - 1)) * h.t2
            h.hot_p = float(stats.f.sf(h.f_stat, h.rank, n - h.rank))
    if exact_degenerate and (c.off.any() or math.isinf(h.t2)):
        h.t2, h.f_stat, h.df, h.hot_p, h.decided = math.inf, math.inf, None, 0.0, True
    return h


def _calibrate(x, c, h, alpha, method, calibration, resamples, gen, exact_degenerate, notes, single=False,
               max_work=float(WORK_LIMIT)):
    """Choose the reference distribution; with the bootstrap, overwrite the p-values in ``c`` and ``h``."""
    live = c.live
    m = int(live.sum())
    out = SimpleNamespace(used="exact", resamples=0, estimated_size=None, warnings=[])
    if m == 0 or (exact_degenerate and h.decided):
        return out  # nothing random left to calibrate: decided exactly
    if exact_degenerate and h.hot_p == 0.0:  # the F p-value underflowed: no calibration changes the decision
        out.used = "asymptotic"
        notes.append("calibration: the F reference's Hotelling p-value is below the smallest double (T² = "
                     f"{h.t2:.3g}); no calibration changes a rejection that strong, so none is run")
        return out
    n = x.shape[0]
    parts = _parts("holm" if single else method, alpha, h.available)
    u = c.dev[:, live] / c.sd[live]
    whiten = h.whiten if h.available and h.rank > 0 else None
    if whiten is not None and whiten.shape[1] > MAX_BOOTSTRAP_RANK:
        whiten = None
        notes.append(f"Hotelling's T² (rank {h.rank} > {MAX_BOOTSTRAP_RANK}) keeps its F reference (bootstrap cost)")
    out.estimated_size = size = estimated_size(u, None if h.whiten is None else u @ h.whiten, parts, m)
    b = default_resamples(min(parts.values())) if resamples is None else resamples
    used, k, compressed, work = "asymptotic", n, None, 0.0
    if calibration == "bootstrap" or (calibration == "auto" and n >= MIN_BOOTSTRAP_N):
        k, compressed = distinct_rows(u)
        work = bootstrap_work(n, k, compressed[1] is not None, m, 0 if whiten is None else whiten.shape[1], b)
        if calibration == "bootstrap":
            check_work(work, f"the bootstrap calibration (resamples={b} of {k} distinct rows, {m} coordinates)",
                       BOOTSTRAP_WORK_UNIT, max_work,
                       advice="pass fewer resamples= (the default puts 10 resampled statistics beyond the critical "
                              "value) or calibration='asymptotic'")
            used = "bootstrap"
        else:
            over = size > (1.0 + SIZE_TOLERANCE) * alpha
            if work <= max_work and (k * b <= AUTO_BUDGET or (over and k * b <= MAX_BUDGET)):
                used = "bootstrap"
    shown = f"estimated size {size:.3g} of the normal-theory test at alpha = {alpha:g}"
    out.warnings = _level_warnings(used, calibration, n, alpha, size, shown, k, b, parts, work, max_work)
    if used == "asymptotic":
        out.used = "asymptotic"
        why = (f"; the bootstrap would take about {work:.3g} elementary operations, more than max_work = "
               f"{max_work:.3g}" if calibration == "auto" and work > max_work else "")
        notes.append(f"calibration: F / t references ({shown}{why})")
        return out
    out.used, out.resamples = "bootstrap", b
    p_hot, p_marg, p_step = bootstrap_t(u, c.tstat[live], whiten, compressed, b, gen)
    c.pvals[live] = p_marg
    c.adjusted[live] = p_step
    if whiten is not None:
        h.hot_p = p_hot
    notes.append(f"calibration: bootstrap-t with {b} resamples ({shown}; bootstrap p-values and Westfall-Young "
                 f"step-down max-T in place of Holm)")
    return out


def _level_warnings(used, calibration, n, alpha, size, shown, k, b, parts, work=0.0, max_work=float("inf")):
    """The texts of the CalibrationWarnings: where the level of the chosen test cannot be guaranteed."""
    out = []
    if used == "asymptotic":
        if n < MIN_BOOTSTRAP_N and calibration != "asymptotic":
            out.append(f"n = {n} samples are too few to calibrate the test (the bootstrap needs n >= "
                       f"{MIN_BOOTSTRAP_N}): the F / t references are exact only for normal estimates ({shown}, "
                       "rough at this n)")
        elif n >= MIN_BOOTSTRAP_N and size > (1.0 + SIZE_TOLERANCE) * alpha:
            if calibration == "asymptotic":
                how = "pass calibration='bootstrap'"
            elif work > max_work:
                how = (f"the bootstrap would take about {work:.3g} elementary operations, more than max_work = "
                       f"{max_work:.3g}; pass calibration='bootstrap' with a larger max_work= to force it")
            else:
                how = (f"the bootstrap would cost {k} x {b} resampled rows (> MAX_BUDGET = {MAX_BUDGET:g}); pass "
                       "calibration='bootstrap' to force it")
            out.append(f"the level is not guaranteed: {shown} (Edgeworth expansion with the sample skewness and "
                       "kurtosis, "
                       f"over {1 + SIZE_TOLERANCE:g} x alpha); {how}")
        return out
    if n < LEVEL_CHECKED_N:
        out.append(f"n = {n} samples are too few for the bootstrap calibration to guarantee the level (held from "
                   f"n = {LEVEL_CHECKED_N} on in the calibration tests; measured on skewed estimates of 3 bits: "
                   f"2.4 x alpha at n = 50, alpha = 0.001, and per-coordinate false alarms at 5 x alpha at n = 20); "
                   f"{shown}, rough at this n")
    if size > BOOTSTRAP_SIZE_LIMIT * alpha:
        out.append(f"{shown} is above {BOOTSTRAP_SIZE_LIMIT:g} x alpha, beyond the skewness at which the "
                   "bootstrap-t was checked to hold the level: increase n")
    for part, level in parts.items():
        if level * (b + 1) < RESOLUTION:
            what = "the test cannot reject" if level * (b + 1) <= 1 else "the level holds but the power is reduced"
            out.append(f"too few resamples for alpha = {alpha:g}: {b} resamples put {level * (b + 1):.3g} < "
                       f"{RESOLUTION} resampled statistics beyond the critical value of the {part} part at level "
                       f"{level:.3g}; {what} (resamples >= {math.ceil(RESOLUTION / level) - 1})")
            break
    return out


def _parts(method, alpha, hotelling_available):
    """The level at which each part of the decision is tested."""
    if not hotelling_available or method == "holm":
        return {"holm": alpha}
    if method == "hotelling":
        return {"hotelling": alpha}
    return {"hotelling": alpha / 2.0, "holm": alpha / 2.0}


def _hotelling(dev, diff, sd, tol, n):
    """T² = n δᵀ S⁺ δ on standardised coordinates.

    Returns (T², rank, violated_null_direction, whiten) where ``whiten`` (m, rank) maps the
    standardised deviations to coordinates with identity sample covariance.
    """
    m = dev.shape[1]
    y = dev / (sd * math.sqrt(n - 1))  # columns of unit norm: yᵀy is the correlation matrix
    # the singular values/vectors of y are those of its triangular QR factor (cheaper, no n x m U)
    _, sing, vt = np.linalg.svd(np.linalg.qr(y, mode="r") if n > 2 * m else y, full_matrices=False)
    z = diff / (sd / math.sqrt(n))  # per-coordinate t statistics
    proj = vt @ z
    # rounding of size tol_j in coordinate j moves the data along direction v_k by at most c_k
    c = np.abs(vt) @ (tol / sd)
    floor = max(n, m) * _EPS * (sing[0] if sing.size else 0.0)
    null = sing <= np.maximum(c, floor)
    rank = int((~null).sum())
    violated = bool(np.any(np.abs(proj[null]) > math.sqrt(n) * np.maximum(c[null], _EPS)))
    keep = ~null
    t2 = float(np.sum((proj[keep] / sing[keep]) ** 2))
    whiten = vt[keep].T / sing[keep]
    return t2, rank, violated, whiten


# --------------------------------------------------------------------------------------------
# sample size
# --------------------------------------------------------------------------------------------


def required_samples(variance, effect, alpha=0.01, power=0.99, p=None):
    r"""Sample size for detecting a bias of size ``effect`` with probability ``power``.

    For a two-sided z-test at level α/p on each of p coordinates (Bonferroni), a mean
    shift δ in a coordinate whose single-sample variance is σ² is detected with
    probability ``power`` (ignoring the far tail) when

    .. math::

        n = \left\lceil \frac{(z_{1-α/(2p)} + z_{\mathrm{power}})^2\, σ^2}{δ^2} \right\rceil

    (e.g. Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, §3.1).
    With arrays, ``variance`` and ``effect`` are broadcast and the largest n over the
    coordinates is returned, i.e. every coordinate's bias of that size is detected.
    Holm's procedure is at least as powerful as Bonferroni, so this n also serves
    ``unbiasedness_test(method="holm")``; for ``method="both"`` pass ``alpha / 2`` when
    more than one coordinate is tested (with one coordinate ``"both"`` is the single
    t-test at ``alpha``).
    The t-test actually used differs from the z-test by O(1/n), negligible for
    n ≳ 50.

    Parameters
    ----------
    variance : float or array_like
        Per-sample variance(s) of the estimator (e.g. the diagonal of
        ``refgrad.exact.moments(...)``'s covariance), finite, ≥ 0.
    effect : float or array_like
        The bias to detect (nonzero, finite); its sign is irrelevant.
    alpha : float in (0, 1)
    power : float in (0, 1)
    p : int, optional
        Number of coordinates tested (the Bonferroni factor).  Default: the number of
        elements of the broadcast ``variance``/``effect`` (1 for scalars).

    Returns
    -------
    int
        The sample size, at least 2.
    """
    alpha = _check_alpha(alpha)
    power = _check_alpha(power, "power")
    var = as_real_array(variance, "variance")
    eff = as_real_array(effect, "effect")
    for arr, name, what in ((var, "variance", "a per-sample variance"), (eff, "effect", "a bias to detect")):
        if arr.size == 0:
            raise ValueError(f"{name} must hold at least one value ({what}); got an empty array of shape {arr.shape}")
    bad = ~np.isfinite(var) | (var < 0)
    if bad.any():
        where = first_index(bad)
        raise ValueError(f"variance must be finite and >= 0; got {float(var[where])!r} at index {where}")
    bad = ~np.isfinite(eff) | (eff == 0)
    if bad.any():
        where = first_index(bad)
        raise ValueError(f"effect must be finite and nonzero (the bias to detect); got {float(eff[where])!r} "
                         f"at index {where}")
    try:
        var, eff = np.broadcast_arrays(var, eff)
    except ValueError as exc:
        raise ValueError(f"variance (shape {var.shape}) and effect (shape {eff.shape}) must broadcast "
                         "together") from exc
    p = var.size if p is None else check_count(p, "p", minimum=1)
    z = special.ndtri(1.0 - alpha / (2.0 * p)) + special.ndtri(power)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = z * z * var / (eff * eff)
    if not np.isfinite(ratio).all():
        where = first_index(~np.isfinite(ratio))
        raise ValueError(f"variance / effect**2 overflows at index {where} (variance {float(var[where])!r}, effect "
                         f"{float(eff[where])!r}); the required sample size is not representable")
    need = float(np.max(ratio))
    return max(2, int(math.ceil(need * (1.0 - 4.0 * _EPS))))
