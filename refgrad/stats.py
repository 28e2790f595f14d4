r"""Hypothesis tests for Monte Carlo gradient estimates.

Everything here consumes arrays of per-sample estimates of shape
``(n, *param_shape)`` (one row per independent estimate) and exact targets or
moments as NumPy arrays, so it works for refgrad's estimators and for estimates
produced by any other framework.  Only NumPy and SciPy are used; there are no
Numba kernels in this module.

* :func:`unbiasedness_test` -- is ``E[ĝ]`` equal to the exact gradient?  Hotelling's
  T² and per-coordinate t-tests with Holm's step-down correction.
* :func:`variance_test` -- is ``Var(a) < Var(b)`` (or ``>``, ``≠``), per coordinate and
  for the trace, for independent or paired (same-noise) samples, without assuming
  normality.
* :func:`required_samples` -- the sample size that detects a given bias with a given
  power.
* :func:`heavy_tail_diagnostic` -- flags samples for which the normal approximation
  of the sample mean is not to be trusted (e.g. Gumbel-softmax at small τ).
* :func:`holm_adjust` -- Holm's step-down adjusted p-values.

Every result is a frozen dataclass whose ``str()`` prints a readable table.

Numerical zero
--------------
Gradient coordinates that are structurally deterministic (a zero-variance
coordinate, a direction in which every estimate lies on a hyperplane, as
``Σ_k ĝ_k = 0`` for the score of a softmax) are detected up to rounding: two values
are "equal" when they differ by at most ``rtol · scale`` with ``rtol = 1e-12`` by
default and ``scale`` the largest magnitude among the samples of that coordinate and
the whole target.  Such coordinates and directions are decided exactly (see
:func:`unbiasedness_test`).  This is correct only when the degeneracy is structural;
a discrete estimator whose rare outcomes simply did not occur in the sample looks
the same, so use a sample size that makes every outcome likely to appear (the
heavy-tail diagnostic flags the case where a rare outcome appeared once or twice).
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ._checks import as_float_array, check_count, check_finite, describe
from ._stats_common import (
    _DEFAULT_RTOL,
    _EPS,
    _METHODS,
    KURTOSIS_LIMIT,
    OUTLIER_SIGMAS,
    SHARE_LIMIT,
    SKEWNESS_LIMIT,
    _as_samples,
    _check_alpha,
    _check_choice,
    _check_rtol,
    _constant_columns,
    _fmt,
    _frozen,
    _holm,
    _index_labels,
    _table,
    holm_adjust,
)
from ._stats_heavy import HeavyTailDiagnostic, _heavy_tail, heavy_tail_diagnostic
from ._stats_variance import VarianceResult, variance_test

__all__ = [
    "unbiasedness_test",
    "variance_test",
    "required_samples",
    "heavy_tail_diagnostic",
    "holm_adjust",
    "UnbiasednessResult",
    "VarianceResult",
    "HeavyTailDiagnostic",
    "SKEWNESS_LIMIT",
    "KURTOSIS_LIMIT",
    "SHARE_LIMIT",
    "OUTLIER_SIGMAS",
]



# --------------------------------------------------------------------------------------------
# unbiasedness
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UnbiasednessResult:
    """Result of :func:`unbiasedness_test`.

    ``pvalue``/``reject`` are the decision of the chosen ``method``; the Hotelling and
    Holm parts are always both reported (``hotelling_pvalue`` is ``None`` when
    Hotelling's test is not available, n ≤ number of non-constant coordinates).
    ``rank`` is the numerical rank used by Hotelling (0 when it was not computed).
    Per-coordinate arrays have the parameter shape.
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
        lines.append(f"  Holm: smallest adjusted p = {_fmt(self.holm_pvalue)}")
        lines.append(
            f"  p-value = {_fmt(self.pvalue)} -> H0 (E[estimate] = target) {verdict} at alpha = {self.alpha:g}"
        )
        labels = _index_labels(shape)
        rows = [
            [
                labels[i],
                _fmt(self.target.flat[i]),
                _fmt(self.mean.flat[i]),
                _fmt(self.stderr.flat[i]),
                _fmt(self.tstat.flat[i]),
                _fmt(self.pvalues.flat[i]),
                _fmt(self.adjusted_pvalues.flat[i]),
            ]
            for i in range(p)
        ]
        order = np.argsort(self.pvalues.ravel(), kind="stable")
        lines.append(_table(["index", "target", "mean", "std.err", "t", "p", "Holm p"], rows, order))
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.heavy_tail.unreliable:
            lines.append("WARNING: " + self.heavy_tail.message)
        return "\n".join(lines)


def unbiasedness_test(samples, target, alpha=0.01, method="both", *, rtol=_DEFAULT_RTOL, degenerate="inconclusive"):
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
    0 for estimates that all do) is a *degenerate* discrepancy.  With
    ``degenerate="exact"`` it makes T² infinite and p = 0 -- right when the degeneracy
    is structural (a deterministic coordinate, a sum-to-zero score).  With the default
    ``degenerate="inconclusive"`` such coordinates and directions are left out of the
    decision and reported as untestable (``inconclusive=True`` and a note): a sample
    can be constant by chance when a rare discrete outcome did not occur (e.g. ARM at
    a logit of 9, whose antithetic pair differs with probability 2·10⁻⁴), and then the
    sample carries no evidence either way.
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
    ``reject = pvalue < alpha``.

    Parameters
    ----------
    samples : array_like, shape (n, *param_shape)
        Independent per-sample estimates, finite, n ≥ 2.
    target : array_like, shape param_shape
        The exact expectation (e.g. ``refgrad.exact.gradient``), finite.
    alpha : float in (0, 1)
        Level of the test.
    method : {"both", "hotelling", "holm"}
    rtol : float, keyword-only
        Relative rounding level for "equal"/"constant" (see the module docstring).
    degenerate : {"inconclusive", "exact"}, keyword-only
        How to treat a constant coordinate (or a direction in which every sample is
        constant) whose mean differs from the target: left out and reported
        (default), or decided exactly as a rejection.

    Returns
    -------
    UnbiasednessResult
        ``statistic`` (T², or max |t| for ``method="holm"``), ``pvalue``, ``reject``, the
        Hotelling and Holm parts, the per-coordinate table (``target``, ``mean``,
        ``stderr``, ``tstat``, ``pvalues``, ``adjusted_pvalues``), ``heavy_tail``
        (:func:`heavy_tail_diagnostic` of the samples) and ``notes``.

    Notes
    -----
    Both tests rely on the normal approximation of the mean.  When the heavy-tail
    diagnostic fires, ``str(result)`` says so; p-values may then be badly off.
    """
    x, shape = _as_samples(samples, "samples")
    n, p = x.shape
    mu0 = as_float_array(target, "target")
    if mu0.shape != shape:
        raise ValueError(f"target must have shape {shape} (the parameter shape of samples); got {mu0.shape}")
    check_finite(mu0, "target")
    mu0 = mu0.reshape(p)
    alpha = _check_alpha(alpha)
    method = _check_choice(method, "method", _METHODS)
    rtol = _check_rtol(rtol)
    degenerate = _check_choice(degenerate, "degenerate", ("inconclusive", "exact"))
    exact_degenerate = degenerate == "exact"
    notes = []

    # numerical scale of each coordinate: its largest sample magnitude or the largest target entry
    scale = np.maximum(np.abs(x).max(axis=0), np.abs(mu0).max())
    tol = rtol * scale
    constant = _constant_columns(x, scale, rtol)
    mean = x.mean(axis=0)
    mean[constant] = x[0, constant]
    dev = x - mean
    dev[:, constant] = 0.0
    var = np.einsum("ij,ij->j", dev, dev) / (n - 1)
    sd = np.sqrt(var)
    se = sd / math.sqrt(n)
    diff = mean - mu0

    # per-coordinate t-tests
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
    holm_p = float(adjusted.min())
    if constant.any():
        labels = _index_labels(shape)
        k = int(constant.sum())
        notes.append(f"{k} coordinate(s) have zero sample variance")
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
                    "no variation there (a rare outcome may be missing): left out of the test; increase n, or pass "
                    "degenerate='exact' if the zero variance is structural"
                )

    # Hotelling's T² on the non-degenerate subspace
    m = int(live.sum())
    violated = False
    t2, f_stat, rank, df, hot_p = 0.0, 0.0, 0, None, 1.0
    hotelling_available = True
    if m > 0 and n <= m:
        if not (off.any() and exact_degenerate):
            hotelling_available = False
            hot_p = None
            notes.append(
                f"Hotelling T² needs n > {m} (the number of non-constant coordinates); got n = {n}, "
                "so only the per-coordinate Holm tests are used"
            )
    elif m > 0:
        t2, rank, violated = _hotelling(dev[:, live], diff[live], sd[live], tol[live], n)
        if violated and exact_degenerate:
            t2 = math.inf
            notes.append(
                "the mean differs from the target in a direction in which every sample is constant "
                "(e.g. a target whose entries do not sum to zero for sum-to-zero estimates): infinite statistic"
            )
        elif violated:
            notes.append(
                "INCONCLUSIVE: the mean differs from the target in a direction in which every sample is constant; "
                "that direction is left out of Hotelling's test (pass degenerate='exact' if the degeneracy is "
                "structural, e.g. a target whose entries must sum to zero)"
            )
        if rank < m:
            notes.append(f"sample covariance of the {m} non-constant coordinates has rank {rank}; pseudo-inverse used")
        if rank > 0 and not math.isinf(t2):
            df = (rank, n - rank)
            f_stat = (n - rank) / (rank * (n - 1)) * t2
            hot_p = float(stats.f.sf(f_stat, rank, n - rank))
    if exact_degenerate and (off.any() or math.isinf(t2)):
        t2, f_stat, df, hot_p = math.inf, math.inf, None, 0.0
    inconclusive = not exact_degenerate and bool(off.any() or violated)

    if method == "hotelling" and hotelling_available:
        pvalue, statistic = hot_p, t2
    elif method == "both" and hotelling_available:
        pvalue, statistic = min(1.0, 2.0 * min(hot_p, holm_p)), t2
    else:
        pvalue = holm_p
        statistic = float(np.max(np.abs(tstat)))
        if method != "holm":
            notes.append(f"method={method!r} fell back to Holm's per-coordinate tests (Hotelling not available)")

    heavy = _heavy_tail(x, shape)
    return UnbiasednessResult(
        method=method,
        alpha=alpha,
        n=n,
        statistic=float(statistic),
        pvalue=float(pvalue),
        reject=bool(pvalue < alpha),
        hotelling_statistic=float(t2),
        hotelling_f=float(f_stat),
        hotelling_df=df,
        hotelling_pvalue=None if hot_p is None else float(hot_p),
        rank=rank,
        holm_pvalue=holm_p,
        target=_frozen(mu0, shape),
        mean=_frozen(mean, shape),
        stderr=_frozen(se, shape),
        tstat=_frozen(tstat, shape),
        pvalues=_frozen(pvals, shape),
        adjusted_pvalues=_frozen(adjusted, shape),
        constant=_frozen(constant, shape),
        heavy_tail=heavy,
        notes=tuple(notes),
        inconclusive=inconclusive,
    )


def _hotelling(dev, diff, sd, tol, n):
    """T² = n δᵀ S⁺ δ on standardised coordinates; returns (T², rank, violated_null_direction)."""
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
    return t2, rank, violated


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
    ``unbiasedness_test(method="holm")``; for ``method="both"`` pass ``alpha / 2``.
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
    var = as_float_array(variance, "variance")
    eff = as_float_array(effect, "effect")
    if np.isnan(var).any() or np.isinf(var).any() or (var < 0).any():
        raise ValueError(f"variance must be finite and >= 0; got {describe(variance)} with min {float(np.min(var))!r}")
    if np.isnan(eff).any() or np.isinf(eff).any() or (eff == 0).any():
        raise ValueError(f"effect must be finite and nonzero (the bias to detect); got {describe(effect)}")
    try:
        var, eff = np.broadcast_arrays(var, eff)
    except ValueError as exc:
        raise ValueError(f"variance {var.shape} and effect {eff.shape} must broadcast together") from exc
    p = var.size if p is None else check_count(p, "p", minimum=1)
    z = special.ndtri(1.0 - alpha / (2.0 * p)) + special.ndtri(power)
    need = float(np.max(z * z * var / (eff * eff)))
    if not math.isfinite(need):
        raise ValueError("variance / effect**2 overflows; the required sample size is not representable")
    return max(2, int(math.ceil(need * (1.0 - 4.0 * _EPS))))
