r"""Small-sample calibration of :func:`refgrad.stats.unbiasedness_test`.

Two tools, both vectorised NumPy:

* a studentised (bootstrap-t) resampling of Hotelling's T² and of the per-coordinate
  t statistics, centred at the sample mean, whose resample moments are one matrix
  product of resampling counts with the per-sample features;
* an Edgeworth estimate of the size of the normal-theory (F / Student t) test from
  the sample skewness and kurtosis, used to decide when that test can be trusted and
  to state its size when it cannot.
"""
import math

import numpy as np
from scipy import special, stats

from .._core.checks import MULTINOMIAL_COST

__all__ = [
    "CalibrationWarning",
    "BOOTSTRAP_SEED",
    "CALIBRATIONS",
    "MIN_RESAMPLES",
    "RESOLUTION",
    "MAX_RESAMPLES",
    "MIN_BOOTSTRAP_N",
    "LEVEL_CHECKED_N",
    "AUTO_BUDGET",
    "MAX_BUDGET",
    "SIZE_TOLERANCE",
    "BOOTSTRAP_SIZE_LIMIT",
    "MAX_BOOTSTRAP_RANK",
]

#: Seed of the bootstrap resampling stream when ``rng`` is not given: p-values are reproducible.
BOOTSTRAP_SEED = 20261207
#: Calibrations of :func:`refgrad.stats.unbiasedness_test`.
CALIBRATIONS = ("auto", "bootstrap", "asymptotic")
#: Fewest resamples drawn by default.
MIN_RESAMPLES = 1999
#: Default resamples: at least this many bootstrap statistics beyond the critical value of each part.
RESOLUTION = 10
#: Most resamples drawn by default (a smaller level gets a CalibrationWarning).
MAX_RESAMPLES = 199_999
#: Fewest samples for which the bootstrap calibration is used.
MIN_BOOTSTRAP_N = 20
#: Fewest samples at which the bootstrap calibration was checked to hold the level (a warning below, where
#: skewed discrete estimates exceeded it: docs/stats-calibration.md).
LEVEL_CHECKED_N = 100
#: ``calibration="auto"`` bootstraps whenever (distinct rows) x (resamples) is at most this.
AUTO_BUDGET = 1e6
#: ... and, beyond it, when the normal-theory size is off, up to this cost (seconds: docs/stats-calibration.md).
MAX_BUDGET = 2e8
#: The normal-theory test is trusted when its estimated size is at most (1 + SIZE_TOLERANCE) α.
SIZE_TOLERANCE = 0.25
#: Above this estimated normal-theory size (in units of α) the bootstrap is not trusted either: warn.
BOOTSTRAP_SIZE_LIMIT = 20.0
#: Largest rank for which Hotelling's T² is bootstrapped (features grow as r²/2).
MAX_BOOTSTRAP_RANK = 30

_CHUNK_ENTRIES = 2_000_000  # resample counts held at once (16 MB)

#: How :func:`bootstrap_work` counts, for the refusal's message.
BOOTSTRAP_WORK_UNIT = ("resamples x distinct rows x (2 x coordinates + rank (rank + 3) / 2 features), plus the draw of "
                       "each resampled row, a multinomial cell counting refgrad.limits.MULTINOMIAL_COST")


def bootstrap_work(n, k, compressed, m, rank, resamples):
    """Elementary operations of :func:`bootstrap_t`, counted as ``max_work`` of :func:`refgrad.stats.unbiasedness_test`.

    Each resample forms ``c @ features`` over the k rows resampled (``2 m + r (r + 3) / 2``
    features: ``u``, ``u²``, the whitened coordinates and their products), after drawing its
    multiplicities: n uniform indices, or one multinomial over the k distinct rows of a
    discrete sample (``compressed``), at a fixed number of operations a cell.
    """
    features = 2 * m + rank * (rank + 3) // 2
    draw = k * MULTINOMIAL_COST if compressed else n
    return float(resamples) * (float(k) * features + draw)


class CalibrationWarning(UserWarning):
    """The stated level of a test cannot be guaranteed (estimated or bounded size in the message)."""


def default_resamples(alpha_part):
    """Resamples B such that ``alpha_part (B + 1) >= RESOLUTION`` (within [MIN_RESAMPLES, MAX_RESAMPLES])."""
    need = int(math.ceil(RESOLUTION / alpha_part))
    return int(min(MAX_RESAMPLES, max(MIN_RESAMPLES, need)))


# --------------------------------------------------------------------------------------------
# Edgeworth size estimate of the normal-theory tests
# --------------------------------------------------------------------------------------------


#: γ̂² below this many times its normal-theory mean 6/n counts as no skewness (χ²₁ 99 % point).
_SKEW_NOISE = 6.635


def standardised_moments(u):
    """Skewness γ, excess kurtosis κ and a conservative γ² of the columns of ``u`` (centred, unit sample sd).

    The conservative γ² is the one the size estimate uses.

    Under normality n γ̂²/6 is about χ²₁, so sample skewness alone makes a normal sample look
    skewed; ``gamma2 = max(γ̂² - 6.635 · 6/n, 0)`` discounts what noise explains 99 % of the time
    (the estimated size of a normal sample is then α, but a truly skewed one is slightly
    underestimated: γ² = 4 reads 3.6 at n = 100).
    """
    n = u.shape[0]
    u2 = u * u
    m2 = u2.mean(axis=0)
    m2 = np.where(m2 > 0, m2, 1.0)
    gamma = (u2 * u).mean(axis=0) / m2**1.5
    kappa = (u2 * u2).mean(axis=0) / m2**2 - 3.0
    gamma2 = np.maximum(gamma * gamma - _SKEW_NOISE * 6.0 / n, 0.0)
    return gamma, kappa, gamma2


def t_test_excess(gamma2, kappa, n, level):
    r"""Size minus ``level`` of the two-sided Student-t test at ``level``, to order 1/n.

    From the Edgeworth expansion of the studentised mean (Hall 1992, *The Bootstrap
    and Edgeworth Expansion*, §2.6, polynomial q₂), with x the critical value,

    .. math::

        P(|T| > x) - \mathrm{level} = \frac{2 φ(x)\, x}{n}
        \Big[\frac{γ^2 (x^4 + 2x^2 - 3)}{18} - \frac{κ (x^2 - 3)}{12}\Big] + O(n^{-2});

    the normal-theory part of q₂ is what Student's t already accounts for.
    """
    x = float(special.ndtri(1.0 - level / 2.0))
    phi = math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    bracket = gamma2 * (x**4 + 2 * x**2 - 3) / 18.0 - kappa * (x**2 - 3) / 12.0
    return 2.0 * phi * x * bracket / n


def hotelling_excess(gamma2, kappa, n, level, rank):
    r"""Heuristic size minus ``level`` of Hotelling's test of rank r, to order 1/n.

    Each whitened coordinate k in turn is taken as the only non-normal one, the
    others contributing an independent :math:`χ^2_{r-1}` = ρ²: with c the
    :math:`χ^2_r` critical value, its excess is
    :math:`E_ρ[Δ_k(\sqrt{c - ρ^2});\, ρ^2 < c]`, Δ_k the two-sided t-test excess of
    :func:`t_test_excess` at critical value x, and the excesses add (first order).
    Cross-cumulants between whitened coordinates are ignored.
    """
    c = float(stats.chi2.isf(level, rank))
    if rank == 1:
        x = np.array([math.sqrt(c)])
        weight = np.array([1.0])
    else:  # Gauss-Legendre in ρ on [0, √c], weighted by the χ_{r-1} density
        nodes, w = np.polynomial.legendre.leggauss(48)
        rho = 0.5 * math.sqrt(c) * (nodes + 1.0)
        weight = 0.5 * math.sqrt(c) * w * stats.chi.pdf(rho, rank - 1)
        x = np.sqrt(np.maximum(c - rho * rho, 0.0))
    phi = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    a = weight * 2.0 * phi * x * (x**4 + 2 * x**2 - 3) / 18.0 / n
    b = weight * 2.0 * phi * x * (x**2 - 3) / 12.0 / n
    return float(np.sum(gamma2) * a.sum() - np.sum(kappa) * b.sum())


def estimated_size(u, w, parts, m):
    """Estimated size of the normal-theory decision (a Bonferroni bound over its parts).

    ``u`` (n, m): standardised data; ``w`` (n, r) whitened data or None; ``parts``
    maps "hotelling" / "holm" to the level each part is tested at.  Holm's part:
    each coordinate's t-test at level α/m (Bonferroni's bound on Holm), summed;
    Hotelling's part: the larger of :func:`hotelling_excess` of the whitened
    coordinates and the largest t-test excess at the same level over the original and
    whitened coordinates (on skewed discrete estimates the latter follows the
    measured size of T² more closely; ``docs/stats-calibration.md`` sets the two side
    by side).
    """
    n = u.shape[0]
    size = 0.0
    for part, level in parts.items():
        if part == "holm":
            _, kappa, gamma2 = standardised_moments(u)
            excess = t_test_excess(gamma2, kappa, n, level / m)
            size += float(np.sum(np.maximum(level / m + excess, 0.0)))
        elif w is not None and w.shape[1] > 0:
            _, kappa, gamma2 = standardised_moments(w)
            _, kappa_u, gamma2_u = standardised_moments(u)
            worst = max(float(np.max(t_test_excess(gamma2, kappa, n, level))),
                        float(np.max(t_test_excess(gamma2_u, kappa_u, n, level))))
            size += max(level + max(hotelling_excess(gamma2, kappa, n, level, w.shape[1]), worst), 0.0)
        else:
            size += level
    return size


# --------------------------------------------------------------------------------------------
# the bootstrap-t
# --------------------------------------------------------------------------------------------


def _compress(u):
    """Distinct rows of ``u`` and their counts when that saves work, else (u, None)."""
    n = u.shape[0]
    rows, counts = np.unique(u, axis=0, return_counts=True)
    if rows.shape[0] <= n // 2:
        return rows, counts
    return u, None


def distinct_rows(u):
    """Return ``(k, (rows, counts))``: the k rows the resampling works on.

    These are the distinct rows of a discrete sample, with their counts; else ``u`` itself and None.
    """
    rows, counts = _compress(u)
    return rows.shape[0], (rows, counts)


def _count_chunks(n, counts, resamples, gen):
    """Resampling multiplicities, (b, k) float arrays in chunks, for the k rows of the data.

    Each resample draws n of the n sample rows with replacement: multinomial counts
    of the distinct rows of a discrete sample (``counts`` given), else n uniform
    indices per resample counted with ``bincount``.
    """
    k = n if counts is None else counts.size
    per = max(1, _CHUNK_ENTRIES // max(k, 1))
    done = 0
    while done < resamples:
        b = min(per, resamples - done)
        if counts is not None:
            c = gen.multinomial(n, counts / n, size=b)
        else:
            idx = gen.integers(0, n, size=(b, n))
            idx += (np.arange(b) * n)[:, None]
            c = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        yield c.astype(np.float64)
        done += b


def bootstrap_t(u, tstat, whiten, compressed, resamples, gen):
    r"""Bootstrap-t p-values of Hotelling's T² and of the per-coordinate t statistics.

    ``u`` (n, m): centred data of the non-constant coordinates divided by their
    sample sd; ``tstat`` (m,): observed t statistics; ``whiten`` (m, r) or None:
    ``u @ whiten`` has identity sample covariance and ``‖tstat @ whiten‖²`` is the
    observed T² (None: Hotelling not bootstrapped); ``compressed``: ``(rows,
    counts)`` of a discrete sample (:func:`distinct_rows`), or None.  Each resample
    draws n rows of ``u`` with replacement (multiplicities c, Σ c = n) and recomputes,
    centred at the sample mean (the mean of the resampling distribution, so that the
    resampled statistics follow the null),

    .. math::

        t^*_j = \frac{\sqrt n\, \bar u^*_j}{s^*_j}, \qquad
        T^{*2} = n\, \bar w^{*\top} (S^*_w)^{-1} \bar w^*,

    from the resample moments ``c @ [w, w_a w_b, u, u²] / n``.  A resample whose
    covariance is singular in a direction where its mean is nonzero has an infinite
    statistic (conservative).  p-values are ``(1 + #{T* ≥ T}) / (B + 1)``.

    Returns ``(p_hotelling or None, p_marginal (m,), p_stepdown (m,))`` where
    ``p_stepdown`` are the Westfall-Young step-down max-T adjusted p-values
    (:func:`stepdown_maxt`).
    """
    t2_obs, t2, t_abs = bootstrap_distribution(u, tstat, whiten, compressed, resamples, gen)
    thresh = np.abs(tstat) * (1.0 - 1e-9)
    p_marg = (1.0 + np.sum(t_abs >= thresh, axis=0)) / (resamples + 1.0)
    p_adj = stepdown_maxt(t_abs, np.abs(tstat))
    p_hot = None if t2 is None else float((1.0 + np.sum(t2 >= t2_obs * (1.0 - 1e-9))) / (resamples + 1.0))
    return p_hot, p_marg, p_adj


def stepdown_maxt(t_abs, observed):
    r"""Westfall-Young step-down max-T adjusted p-values from bootstrap |t*| (B, m) and observed |t| (m,).

    With the coordinates ordered by decreasing observed |t|, ``(1)`` first,
    :math:`\tilde p_{(k)} = \max_{i ≤ k} (1 + \#\{b : \max_{j ≥ i} |t^*_{b,(j)}| ≥ |t_{(i)}|\}) / (B + 1)`.
    """
    resamples, m = t_abs.shape
    order = np.argsort(-observed, kind="stable")
    runmax = np.maximum.accumulate(t_abs[:, order[::-1]], axis=1)[:, ::-1]
    p_step = (1.0 + np.sum(runmax >= observed[order] * (1.0 - 1e-9), axis=0)) / (resamples + 1.0)
    p_adj = np.empty(m)
    p_adj[order] = np.maximum.accumulate(p_step)
    return p_adj


def bootstrap_distribution(u, tstat, whiten, compressed, resamples, gen):
    """The resampled statistics behind :func:`bootstrap_t`: ``(T²_obs or None, T*² (B,) or None, |t*| (B, m))``."""
    n, m = u.shape
    rows, counts = compressed if compressed is not None else (u, None)
    feats = [rows, rows * rows]
    r, t2_obs = 0, None
    if whiten is not None:
        r = whiten.shape[1]
        w = rows @ whiten
        iu = np.triu_indices(r)
        feats = [w, w[:, iu[0]] * w[:, iu[1]]] + feats
        zeta = tstat @ whiten
        t2_obs = float(zeta @ zeta)
    feats = np.concatenate(feats, axis=1)
    nq = r * (r + 1) // 2
    t2_all, t_all = [], []
    for c in _count_chunks(n, counts, resamples, gen):
        s = c @ feats / n
        if whiten is not None:
            t2_all.append(_resample_t2(s[:, :r], s[:, r:r + nq], iu, n))
        mu = s[:, r + nq:r + nq + m]
        second = s[:, r + nq + m:]
        t_all.append(_resample_t(mu, (second - mu * mu) * (n / (n - 1.0)), second, n))
    t2 = np.concatenate(t2_all) if whiten is not None else None
    return t2_obs, t2, np.concatenate(t_all)


def _resample_t(shift, var, second, n):
    """|t*| of each resample and coordinate.

    A resample without spread (up to rounding) has |t*| = inf unless its mean is the sample mean.
    """
    flat = var <= 1e-12 * second
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(shift) / np.sqrt(np.where(flat, 1.0, var) / n)
    t[flat] = np.where(np.abs(shift[flat]) > 1e-9, np.inf, 0.0)
    return t


def _resample_t2(mean, second, iu, n):
    """T*² of each resample from its first and second moments (whitened coordinates)."""
    b, r = mean.shape
    cov = np.empty((b, r, r))
    cov[:, iu[0], iu[1]] = second
    cov[:, iu[1], iu[0]] = second
    cov -= mean[:, :, None] * mean[:, None, :]
    cov *= n / (n - 1.0)
    shift = mean
    # the whitened data have unit sample variance: resamples whose variances are all well away from 0
    # (the usual case) by a batched solve, the others by eigenvalues
    good = np.min(np.einsum("bii->bi", cov), axis=1) > 1e-6
    t2 = np.empty(b)
    if good.any():
        try:
            sol = np.linalg.solve(cov[good], shift[good][:, :, None])[:, :, 0]
            t2[good] = n * np.einsum("bi,bi->b", shift[good], sol)
        except np.linalg.LinAlgError:
            good[:] = False
    bad = ~good | ~np.isfinite(t2) | (t2 < 0)
    if bad.any():
        lam, vec = np.linalg.eigh(cov[bad])
        proj = np.einsum("bkl,bk->bl", vec, shift[bad])
        top = np.maximum(lam[:, -1:], 1e-300)
        ok = lam > 1e-10 * top
        t2b = n * np.sum(np.where(ok, proj * proj / np.where(ok, lam, 1.0), 0.0), axis=1)
        t2b[np.any(~ok & (np.abs(proj) > 1e-9 * np.sqrt(top)), axis=1)] = np.inf
        t2[bad] = t2b
    return t2

