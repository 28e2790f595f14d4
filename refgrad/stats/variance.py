"""The variance comparison of :mod:`refgrad.stats`.

:func:`variance_test` runs in stages, one private function each: the input checks; the
second moments of both samples, per coordinate and for the trace, in power-of-two units; the
delta-method standard error of the log variance ratio (independent or paired samples); the z
statistics and their normal p-values; and the result, with Holm's correction over the
coordinates and the notes.
"""
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy import special

from .._core.checks import describe
from ._common import (
    _ALTERNATIVES,
    SKEWNESS_LIMIT,
    _as_samples,
    _check_alpha,
    _check_choice,
    _constant_columns,
    _coordinate_table,
    _fmt,
    _frozen,
    _holm,
    _resolve_rtol,
    _unit,
)


@dataclass(frozen=True, eq=False)
class VarianceResult:
    """Result of :func:`variance_test`.

    ``pvalue``/``reject`` refer to the trace (total variance) test.  Per-coordinate
    arrays have the parameter shape; ``reject_coordinates`` are the coordinates where
    the alternative holds with family-wise error ≤ alpha (Holm);
    ``pvalue_all_coordinates`` is the intersection-union p-value (max of the raw
    per-coordinate p-values) for "the alternative holds in every coordinate".
    """

    alternative: str
    paired: bool
    alpha: float
    n_a: int
    n_b: int
    statistic: float
    pvalue: float
    reject: bool
    trace_a: float
    trace_b: float
    trace_ratio: float
    trace_skewness: float
    var_a: np.ndarray
    var_b: np.ndarray
    ratio: np.ndarray
    zstat: np.ndarray
    pvalues: np.ndarray
    adjusted_pvalues: np.ndarray
    reject_coordinates: np.ndarray
    pvalue_all_coordinates: float
    skewness: np.ndarray
    unreliable: bool
    notes: tuple

    def __str__(self):
        shape = self.var_a.shape
        p = int(np.prod(shape, dtype=np.int64))
        sign = {"less": "<", "greater": ">", "two-sided": "≠"}[self.alternative]
        kind = "paired (same noise)" if self.paired else "independent"
        verdict = "REJECTED" if self.reject else "not rejected"
        lines = [
            f"Variance test H1: Var(a) {sign} Var(b), {kind}, alpha={self.alpha:g}: n_a = {self.n_a}, "
            f"n_b = {self.n_b}, {p} coordinate(s)",
            f"  trace: {_fmt(self.trace_a)} vs {_fmt(self.trace_b)} (ratio {_fmt(self.trace_ratio)}), "
            f"z = {_fmt(self.statistic)}, p = {_fmt(self.pvalue)} -> H0 (equal total variance) {verdict}",
            f"  every coordinate {sign}: intersection-union p = {_fmt(self.pvalue_all_coordinates)}",
        ]
        columns = (self.var_a, self.var_b, self.ratio, self.zstat, self.pvalues, self.adjusted_pvalues)
        lines.append(_coordinate_table(["index", "var a", "var b", "ratio", "z", "p", "Holm p"], columns,
                                       self.pvalues))
        lines.extend(f"note: {note}" for note in self.notes)
        if self.unreliable:
            lines.append(
                "WARNING: the normal approximation of the log variance ratio is unreliable "
                f"(estimated skewness of the statistic above {SKEWNESS_LIMIT}); one-sided p-values may be off"
            )
        return "\n".join(lines)


def _pvalue(z, alternative):
    if alternative == "less":
        return special.ndtr(z)
    if alternative == "greater":
        return special.ndtr(-z)
    return np.minimum(1.0, 2.0 * special.ndtr(-np.abs(z)))


def variance_test(a, b, alternative="less", paired=False, alpha=0.01, *, rtol=None):
    r"""Compare the variances of two estimators, per coordinate and for the trace.

    ``H0: Var(a) = Var(b)`` against ``H1: Var(a) < Var(b)`` (``alternative="less"``),
    ``>`` (``"greater"``) or ``≠`` (``"two-sided"``), for each coordinate and for the
    total variance :math:`\operatorname{tr} Σ = \sum_j \operatorname{Var}(x_j)`.

    The statistic is the log ratio of sample variances with a standard error built
    from fourth moments (delta method), which does not assume normality:

    .. math::

        z = \frac{\log s_a^2 - \log s_b^2}{\widehat{\mathrm{se}}}, \qquad
        e_i = \frac{(x_i - \bar x)^2}{m_2} \ (\text{per sample}),

    with :math:`m_2 = n^{-1}\sum_i (x_i-\bar x)^2`, and, from the exact
    :math:`\operatorname{Var}(s^2) = μ_4/n - σ^4 (n-3)/(n(n-1))` and
    :math:`\operatorname{Cov}(s_a^2, s_b^2) = (μ_{22} - σ_a^2σ_b^2)/n + 2σ_{ab}^2/(n(n-1))`
    (e.g. Cramér 1946, §27.4; O'Neill 2014, Amer. Statist. 68, 282-296),

    * independent samples: :math:`\widehat{\mathrm{se}}^2 = \sum_{x∈\{a,b\}}
      [\widehat{\operatorname{Var}}(e^x) + 2/(n_x - 1)] / n_x`;
    * paired samples (``a[i]`` and ``b[i]`` computed from the same noise, n_a = n_b):
      :math:`\widehat{\mathrm{se}}^2 = [\widehat{\operatorname{Var}}(e^a - e^b) +
      4(1 - \hat ρ^2)/(n - 1)] / n` -- the heteroscedasticity-robust version of the
      Pitman-Morgan test (which tests ``Cov(a+b, a-b) = Var(a) - Var(b) = 0`` but
      assumes bivariate normality).

    For the trace, :math:`e_i = \sum_j (x_{ij} - \bar x_j)^2 / \sum_j m_{2,j}` and the
    :math:`O(1/n)` term uses the diagonal :math:`\sum_j s_j^4` in place of
    :math:`\|Σ\|_F^2`.  The p-values are from N(0, 1); coordinates are corrected with
    Holm's step-down procedure (:func:`holm_adjust`).  Coordinates constant (up to
    ``rtol``) in both samples are exactly equal (p = 1, excluded from the Holm family);
    constant in one only, the statistic is ±inf.

    The classical F-test (ratio ~ F(n_a-1, n_b-1)) is *not* used: it assumes normality
    and its size is badly wrong for the skewed, heavy-tailed distributions of gradient
    estimates (several times α for exponential samples, ``docs/stats-calibration.md``).

    Accuracy: this is an asymptotic test.  Its two-sided error is :math:`O(1/n)`; a
    one-sided test also has an :math:`O(n^{-1/2})` error proportional to the skewness
    of the statistic, which nearly cancels when a and b have similar shapes and is
    reported (``skewness``; ``unreliable`` when above 0.1, roughly an error of 0.01 at
    α = 0.05).  At small n the fourth moment is underestimated and a one-sided test of
    skewed samples rejects too often; the one-sided sizes measured on exponential,
    Bernoulli and normal samples are in ``docs/stats-calibration.md``.

    Parameters
    ----------
    a, b : array_like, shapes (n_a, *param_shape) and (n_b, *param_shape)
        Per-sample estimates of the two estimators, finite, n ≥ 3.  Compare at equal
        cost: if b costs twice as many evaluations of f per estimate, average pairs of
        b first (or scale the variances).
    alternative : {"less", "greater", "two-sided"}
    paired : bool, default False
        False: a and b are independent.  True: row i of a and of b share their noise
        (common random numbers), which the independent test would mis-handle.  The
        default is False because it is the safe reading of two unrelated arrays;
        pass ``paired=True`` explicitly for common-noise samples (much more powerful).
    alpha : float in (0, 1)
    rtol : float in [0, 1) or None, keyword-only
        Relative rounding level for "constant" coordinates; default None: 1e-12 for
        float64 input, ``ROUNDING_ULPS · eps`` (1.2e-4) for float32 (see
        :func:`refgrad.stats.unbiasedness_test`).

    Returns
    -------
    VarianceResult
        ``statistic``/``pvalue``/``reject`` of the trace test; per coordinate ``var_a``,
        ``var_b``, ``ratio``, ``zstat``, ``pvalues``, ``adjusted_pvalues`` (Holm),
        ``reject_coordinates``; ``pvalue_all_coordinates``; ``skewness`` and
        ``unreliable``; ``notes``.
    """
    alternative, paired, alpha, rtol, xa, xb, shape = _checked_inputs(a, b, alternative, paired, alpha, rtol)
    m = _moments(xa, xb, rtol)
    se2, skew_num = _paired_se2(m) if paired else _independent_se2(m)
    t = _log_ratio_tests(m, se2, skew_num, alternative)
    return _result(m, t, alternative, paired, alpha, shape)


def _checked_inputs(a, b, alternative, paired, alpha, rtol):
    """Check the arguments of :func:`variance_test` in the order they are listed.

    Returns ``(alternative, paired, alpha, rtol, xa, xb, shape)``, with ``xa``, ``xb`` the (n, p)
    float64 samples and ``shape`` the parameter shape.
    """
    alternative = _check_choice(alternative, "alternative", _ALTERNATIVES)
    if not isinstance(paired, (bool, np.bool_)):
        raise TypeError(f"paired must be True or False; got {describe(paired)} of type {type(paired).__name__}")
    paired = bool(paired)
    alpha = _check_alpha(alpha)
    rtol = _resolve_rtol(rtol, a, b)
    xa, shape = _as_samples(a, "a", minimum=3)
    xb, shape_b = _as_samples(b, "b", minimum=3)
    if shape_b != shape:
        raise ValueError(f"b must have parameter shape {shape} like a, i.e. shape (n_b, *{shape}); got {shape_b}")
    if paired and xa.shape[0] != xb.shape[0]:
        raise ValueError(f"paired=True needs as many rows in a as in b (row i shares its noise); got {xa.shape[0]} "
                         f"and {xb.shape[0]}")
    return alternative, paired, alpha, rtol, xa, xb, shape


def _moments(xa, xb, rtol):
    """Second moments of both samples, per coordinate and for the trace (an extra last column).

    Each coordinate of both samples is divided by a power of two near its largest magnitude (exact, see
    :func:`_unit`), so that squares and fourth powers neither overflow nor underflow at any scale; the
    trace is in the units of the largest coordinate, each coordinate weighted by ``(unit_j / unit_max)²
    ≤ 1``.  Returns a namespace with ``p``, ``unit``, ``weight`` and one namespace per sample, ``a`` and
    ``b`` (see :func:`_sample_moments`).
    """
    scale = np.maximum(np.abs(xa).max(axis=0), np.abs(xb).max(axis=0))
    unit = _unit(scale)
    weight = (unit / unit.max()) ** 2
    scale = scale / unit
    return SimpleNamespace(p=xa.shape[1], unit=unit, weight=weight, a=_sample_moments(xa / unit, scale, rtol, weight),
                           b=_sample_moments(xb / unit, scale, rtol, weight))


def _sample_moments(x, scale, rtol, weight):
    r"""One sample's deviations and second moments, in the units of :func:`_moments`.

    ``dev`` (n, p): deviations from the mean, 0 in columns constant up to ``rtol * scale``; ``sq`` (n, p + 1):
    squared deviations and, last, their weighted sum over the coordinates (the trace); ``const``, ``m2``
    (divisor n), ``var`` (divisor n - 1) over the p + 1 columns; ``e = sq / m2`` (the per-sample terms
    :math:`e_i` of :func:`variance_test`, 1 in place of m2 where constant); ``frac``: 1 per coordinate and,
    for the trace, :math:`\sum_j s_j^4 / (\sum_j s_j^2)^2`, the diagonal stand-in for
    :math:`\|Σ\|_F^2 / (\operatorname{tr} Σ)^2` (1 when the trace is 0, where it is irrelevant).
    """
    n, p = x.shape
    const = _constant_columns(x, scale, rtol)
    dev = x - x.mean(axis=0)
    dev[:, const] = 0.0
    sq = dev * dev
    sq = np.concatenate([sq, (sq * weight).sum(axis=1, keepdims=True)], axis=1)
    const = np.append(const, const.all())
    m2 = sq.mean(axis=0)
    var = m2 * n / (n - 1)
    e = sq / np.where(const, 1.0, m2)
    frac = np.append(np.ones(p), np.sum((var[:p] * weight) ** 2) / var[p] ** 2 if var[p] > 0 else 1.0)
    return SimpleNamespace(n=n, dev=dev, sq=sq, const=const, m2=m2, var=var, e=e, frac=frac)


def _independent_se2(m):
    """Squared standard error of the log variance ratio of independent samples, and the numerator of its skewness."""
    a, b = m.a, m.b
    se2 = (np.var(a.e, axis=0, ddof=1) + 2.0 * a.frac / (a.n - 1)) / a.n + \
        (np.var(b.e, axis=0, ddof=1) + 2.0 * b.frac / (b.n - 1)) / b.n
    third_a = np.mean((a.e - a.e.mean(axis=0)) ** 3, axis=0)
    third_b = np.mean((b.e - b.e.mean(axis=0)) ** 3, axis=0)
    return np.maximum(se2, 0.0), third_a / a.n**2 - third_b / b.n**2


def _paired_se2(m):
    """Squared standard error of the log variance ratio of paired samples, and the numerator of its skewness.

    Row i of a and of b share their noise (n_a = n_b).
    """
    a, b, p, n = m.a, m.b, m.p, m.a.n
    cross = np.einsum("ij,ij->j", a.dev, b.dev) / (n - 1)
    either = (a.const | b.const)[:p]
    rho2 = np.where(either, 0.0, cross**2 / np.where(either, 1.0, a.var[:p] * b.var[:p]))
    trace_den = a.var[p] * b.var[p]
    rho2 = np.append(rho2, np.sum((cross * m.weight) ** 2) / trace_den if trace_den > 0 else 0.0)
    e = a.e - b.e
    var_e = np.einsum("ij,ij->j", e - e.mean(axis=0), e - e.mean(axis=0)) / (n - 1)
    se2 = (var_e + 2.0 * (a.frac + b.frac - 2.0 * rho2) / (n - 1)) / n
    return np.maximum(se2, 0.0), np.mean((e - e.mean(axis=0)) ** 3, axis=0) / n**2


def _log_ratio_tests(m, se2, skew_num, alternative):
    """z statistics, skewness, p-values and variance ratios of the p coordinates and the trace.

    Columns constant in both samples, or whose ratio is exactly 1 with no spread, are ``equal`` (p = 1);
    constant in one sample only, z is ±inf.
    """
    const_a, const_b, var_a, var_b = m.a.const, m.b.const, m.a.var, m.b.var
    both = ~(const_a | const_b)
    z = np.zeros(m.p + 1)
    skew = np.zeros(m.p + 1)
    ok = both & (se2 > 0)
    log_ratio = np.log(np.where(ok, var_a, 1.0)) - np.log(np.where(ok, var_b, 1.0))
    z[ok] = log_ratio[ok] / np.sqrt(se2[ok])
    skew[ok] = skew_num[ok] / se2[ok] ** 1.5
    degenerate_same = both & (se2 <= 0) & (log_ratio == 0)
    degenerate = both & (se2 <= 0) & (log_ratio != 0)
    z[degenerate] = np.copysign(np.inf, log_ratio[degenerate])
    z[const_a & ~const_b] = -np.inf
    z[~const_a & const_b] = np.inf
    pvals = _pvalue(z, alternative)
    equal = (const_a & const_b) | degenerate_same
    pvals[equal] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(equal & (var_b == 0), 1.0, var_a / var_b)
    return SimpleNamespace(z=z, skew=skew, pvals=pvals, equal=equal, ratio=ratio)


def _result(m, t, alternative, paired, alpha, shape):
    """The :class:`VarianceResult`: variances back in the units of the samples, Holm over the coordinates, notes."""
    p = m.p
    # variances back in the units of the samples (inf where they are not representable, e.g. samples
    # near 1e200; the ratios, statistics and p-values do not depend on that)
    with np.errstate(over="ignore"):
        full = np.append(m.unit, m.unit.max())
        var_a = m.a.var * full * full
        var_b = m.b.var * full * full
    coord_p = t.pvals[:p]
    family = ~t.equal[:p]
    adjusted = np.ones(p)
    adjusted[family] = _holm(coord_p[family])
    notes = []
    if (m.a.const | m.b.const).any():
        notes.append(
            "coordinates with zero variance in a or b are decided exactly (ratio 0 or inf: p = 0 or 1; "
            "zero in both: equal, p = 1)"
        )
    unreliable = bool(np.any(np.abs(t.skew) > SKEWNESS_LIMIT))
    if unreliable:
        notes.append(
            f"estimated skewness of the statistic up to {_fmt(np.max(np.abs(t.skew)))}: increase n for "
            "reliable one-sided p-values"
        )
    return VarianceResult(
        alternative=alternative,
        paired=paired,
        alpha=alpha,
        n_a=m.a.n,
        n_b=m.b.n,
        statistic=float(t.z[p]),
        pvalue=float(t.pvals[p]),
        reject=bool(t.pvals[p] < alpha),
        trace_a=float(var_a[p]),
        trace_b=float(var_b[p]),
        trace_ratio=float(t.ratio[p]),
        trace_skewness=float(t.skew[p]),
        var_a=_frozen(var_a[:p], shape),
        var_b=_frozen(var_b[:p], shape),
        ratio=_frozen(t.ratio[:p], shape),
        zstat=_frozen(t.z[:p], shape),
        pvalues=_frozen(coord_p, shape),
        adjusted_pvalues=_frozen(adjusted, shape),
        reject_coordinates=_frozen(adjusted < alpha, shape),
        pvalue_all_coordinates=float(coord_p.max()),
        skewness=_frozen(t.skew[:p], shape),
        unreliable=unreliable,
        notes=tuple(notes),
    )
