r""":func:`check_estimator`: per-sample gradient estimates of another implementation against refgrad's oracles.

Two parts, each at α/2 (one part, at α, when no estimator is named), Bonferroni-combined by
:func:`refgrad.crosscheck._verdict.combine`.

**Rounding.**  A float32 (or float16) implementation that is right still differs from the float64
oracle by its rounding.  Every comparison therefore allows, in coordinate j, the rounding level
:math:`τ_j = r_f\,\mathrm{scale}_j` with :math:`\mathrm{scale}_j = \max(\max_i |x_{ij}|, \max_k |μ_k|)`
(the size of the numbers the coordinate is computed from), plus the oracle's own stated error
(``Moments.error``: the target is known to within it), plus :data:`OBJECTIVE_ULPS` :math:`ε_f\,E_q|f|`
(a gradient is computed from values of f, whose rounding stays in a coordinate much smaller than f:
a float32 all-action policy gradient at a category of probability 0.9995 was 1.7e-7 off in a
coordinate of 1.5e-5, about half an ulp of :math:`E_q|f| ≈ 2.9`; without this term the deterministic
comparison failed it), and :math:`r_f` the level
:func:`refgrad.stats.unbiasedness_test` uses for the samples' own dtype (1e-12 for float64, 1024 ulps
= 1.2e-4 for float32).  The dtype is read from the array as given, before any conversion: the
gradients with respect to one categorical's logits sum to zero, a float32 implementation's row sums
carry a rounding bias of 1e-10 to 3e-8, and a test at float64 rounding reads that bias, divided by the
tiny variance of that direction, as a departure (Hotelling p = 2e-8 for a correct float32 REINFORCE).
A float64 array every value of which is a float32 number (at least one with more than
:data:`GRID_BITS` significant bits) is a float32 computation handed over as float64 -- as
``crosscheck.torch.per_sample_gradients`` and ``crosscheck.jax.per_sample_gradients`` return it -- and is
judged at float32 rounding, with a note in the verdict (measured with ``python -m validation.crosscheck_battery``:
a float32 categorical REINFORCE from torch or JAX otherwise failed every replication at α = 1e-3).

**Mean part.**  With ``name`` and refgrad's exact moments :math:`(μ, Σ)` the mean is tested with the
exact covariance, not the sample's:

* per coordinate :math:`z_j = (|\bar x_j − μ_j| − τ_j)_+ / \sqrt{V_j/n}`, :math:`V_j =
  \max(Σ_{jj}, s_j^2)`, two-sided normal p-values, Holm across coordinates;
* jointly, over the coordinates that vary in the sample, :math:`χ^2 = δ^\top (Σ/n + \mathrm{diag}(ρ^2))^{-1} δ`
  with :math:`δ = \bar x − μ` and :math:`ρ_j =` :data:`CHI2_ULPS` :math:`ε_f\,\mathrm{scale}_j` (the rounding of a
  correct implementation in a direction where the exact variance is 0, such as the sum of one categorical's
  logit gradients: below 1 ulp in float32 as measured), referred to χ²(rank); the coordinates that do not vary
  are decided by the per-coordinate band above;
* combined as :math:`\min(1, 2\min(p_{χ^2}, p_{Holm}))` (the Holm p alone for one coordinate).

The exact variance matters where the sample's does not show it: when a coordinate's variance is
carried by events rarer than 1/n the sample variance and the t statistics built on it are orders of
magnitude too small (a correct Binary Concrete gradient at logit −50 was "off by 1e32 standard
errors"), while :math:`V_j ≥ Σ_{jj}` keeps the level: the rare events' share of the mean is then
about :math:`\sqrt{np}` standard errors.  A coordinate or direction in which every estimate is
equal is compared exactly with its target: :math:`V_j = 0` makes :math:`z_j` infinite as soon as
:math:`|δ_j| > τ_j` (p = 0, "wrong"), and 0 otherwise ("deterministic; equal to the exact value
within τ").  Without ``name`` (no exact covariance) the mean part is
:func:`refgrad.stats.unbiasedness_test` at the samples' rounding level, whose default decides
constant coordinates and directions the same way; a deterministic implementation is never passed
by leaving its coordinates out.

**Variance part** (with ``name``): per coordinate the z statistic of the sample variance against
the exact :math:`σ_j^2`, with the standard error :math:`\sqrt{(μ_{4,j} − \frac{n−3}{n−1}σ_j^4)/n}`
from the **exact** fourth central moment (:mod:`refgrad._moments.fourth`; the sample fourth moment,
with a note, where no exact one is computable), the deviation measured to the band
:math:`[σ_j^2, σ_j^2 + τ_j^2]` (rounding adds variance), Holm across coordinates.  Where the
variance is carried by events of probability :math:`p_j ≈ σ_j^4/μ_{4,j}` with
:math:`n p_j <` :data:`RARE_EVENTS`, the coordinate is **not testable at this n**: it is reported
as such and tested only by Markov's bound :math:`P(s_j^2 ≥ t) ≤ σ_j^2/t` (:math:`E s_j^2 = σ_j^2`),
which rejects a sample variance many times too large and nothing else.  A coordinate whose exact
variance is 0 must not vary beyond the rounding level ("certain failure").  When refgrad's exact
moments are refused (a noise dimension too large to integrate, REBAR on a 3-way categorical), the
variance part compares with ``exact.moments(method="monte_carlo")`` (:data:`MONTE_CARLO_SAMPLES`
estimates, seed 0) through the two-sample z statistic with the Monte Carlo interval's standard error,
and says so; a legal problem never raises.  With ``unbiased=False`` and refused exact moments the
mean target is the Monte Carlo mean, tested per coordinate with both standard errors.

Measured false-alarm rates at α = 0.05 on refgrad's own estimators (200 replications, seeds 0..199,
99 % binomial interval of a rate 0.05: [0.015, 0.095]): the default run of
``tests/crosscheck/test_crosscheck_estimators.py`` (REINFORCE and DisARM on 2 bits, Gumbel-softmax on one, all within
the interval) and, on problems with rare outcomes (``tests/crosscheck/test_crosscheck_verdicts.py``), REINFORCE at
logits (−7, 0.5), n = 2000: 0.015; DisARM at (−6, 1), n = 1000: 0.04; REINFORCE at −12, n = 1000 (the
rare outcome expected 0.006 times): 0.005; REINFORCE on a categorical row (6, 0, −2), n = 1000: 0.0 -- the
level holds and is conservative where rare events carry the variance.

The battery ``python -m validation.crosscheck_battery`` (table in ``docs/crosscheck.md``) measures 40
correct implementations (refgrad's own cast to float32; NumPy, torch, JAX and TensorFlow code;
deterministic ones; logits ±30, ±50, ±100, ±inf; τ from 0.01 to 10) over 1000 replications each: every
false-alarm rate is compatible with α at α = 1e-3 and 1e-2 (99 % Clopper-Pearson), pooled 28 of 40000 at
α = 1e-3 and 202 of 40000 at α = 1e-2; each of 9 planted bugs (a constant gradient 1e-3 off, 1.5× the
gradient, NaN samples, a missing score term, a wrong temperature, REBAR's z̃ from the unconditional law)
failed 200 of 200 replications.
"""
import math

import numpy as np
from scipy import special
from scipy import stats as sps

from refgrad import exact, stats
from refgrad._core.checks import as_float_array, check_distribution, describe
from refgrad._moments.fourth import fourth_central_moments
from refgrad.estimators import ESTIMATORS, get_spec
from refgrad.objectives import evaluate
from refgrad.stats._common import _resolve_rtol
from refgrad.testing import rarest_outcome

from ._verdict import DEFAULT_ALPHA, Verdict, combine, part_alpha

__all__ = ["check_estimator", "estimator_reference", "EstimatorReference", "RARE_EVENTS", "MONTE_CARLO_SAMPLES",
           "GRID_BITS", "OBJECTIVE_ULPS"]

#: A variance carried by events of probability p is tested only when n p ≥ RARE_EVENTS (the count of
#: such events is then far enough from 0 for the normal approximation of the sample variance).
RARE_EVENTS = 10.0
#: Rounding allowed, in ulps of the foreign dtype times the coordinate's scale, in the χ² of the varying
#: coordinates (a float32 categorical gradient's row sums carry a bias below 1 ulp; a bias of a few ulps per
#: coordinate in a direction where the samples barely vary is rejected).
CHI2_ULPS = 4.0
#: Rounding allowed, in ulps of the computed dtype times E_q|f|, in every coordinate: a correct implementation
#: computes the gradient from values of f (the all-action form p_k (f_k − Σ_j p_j f_j), the enumeration
#: Σ_b q(b) f(b) ∂ log q(b)), and their rounding, of size ε E|f|, stays in a coordinate far smaller than f
#: (a float32 all-action gradient at p_k ≈ 1: 1.7e-7 off in a coordinate of 1.5e-5, about 0.5 ulp of E|f|).
OBJECTIVE_ULPS = 2.0
#: Estimates behind the Monte Carlo moments used where refgrad's exact moments are refused.
MONTE_CARLO_SAMPLES = 1 << 17


def _dtype_eps(x):
    raw = x if isinstance(x, np.ndarray) else np.asarray(x)
    return float(np.finfo(raw.dtype).eps) if raw.dtype.kind == "f" else float(np.finfo(np.float64).eps)


#: Significant bits a float64 value on the float32 grid must exceed, in at least one entry, for the samples to be
#: read as float32 computations (values with this few bits -- 0.5, 0.25, small integers -- are exact in either).
GRID_BITS = 12


def _computed_dtype(samples, x):
    """The dtype whose rounding the samples carry: their own, or float32 for float64 values on the float32 grid.

    ``crosscheck.torch.per_sample_gradients`` and ``crosscheck.jax.per_sample_gradients`` return float64 arrays
    whatever the dtype of the computation; a float32 computation handed over that way has every value exactly
    representable in float32, which a float64 computation has only for short dyadic values.  Such samples (every
    finite value a float32 number within float32's normal range or 0, at least one with more than
    :data:`GRID_BITS` significant bits) are judged at float32 rounding: at float64 rounding a correct float32
    categorical REINFORCE from torch or JAX failed at α = 1e-3 on every replication (the sum-to-zero
    direction, χ² p = 0, every coordinate within 1.4 standard errors).
    """
    raw = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
    if raw.dtype != np.float64:
        return raw.dtype if raw.dtype.kind == "f" else np.dtype(np.float64)
    v = x[np.isfinite(x)]
    v = v[v != 0]
    if v.size == 0:
        return np.dtype(np.float64)
    f32 = np.finfo(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        on_grid = np.all(v.astype(np.float32).astype(np.float64) == v) and np.abs(v).min() >= f32.tiny
    if not on_grid:
        return np.dtype(np.float64)
    mant = np.ldexp(np.frexp(v)[0], GRID_BITS)
    return np.dtype(np.float32) if np.any(mant != np.round(mant)) else np.dtype(np.float64)


def _label(shape, flat):
    idx = np.unravel_index(flat, shape)
    return "(" + ", ".join(str(int(i)) for i in idx) + ")"


def _check_samples(samples, dist, name="samples", min_rows=2):
    x = as_float_array(samples, name)
    shape = tuple(dist.param_shape)
    if x.ndim != 1 + len(shape) or x.shape[1:] != shape:
        raise ValueError(f"{name} must have shape (n, {', '.join(map(str, shape))}) = (n, *dist.param_shape) "
                         f"for dist={describe(dist)}; got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} rows (estimates); got {x.shape[0]}")
    return x


def _check_alpha(alpha):
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.floating)) \
            or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1); got {describe(alpha)}")
    return float(alpha)


def _rounding(x, target, rtol):
    """τ_j = rtol · max(max_i |x_ij|, max_k |target_k|) per flattened coordinate."""
    top = float(np.max(np.abs(target))) if target.size else 0.0
    return rtol * np.maximum(np.abs(x).max(axis=0), top)


def _deterministic_text(flat, tau):
    """A sentence for the coordinates in which every estimate is equal (empty if none)."""
    spread = flat.max(axis=0) - flat.min(axis=0)
    const = spread <= tau
    if not const.any():
        return const, ""
    if const.all():
        return const, (" Every estimate is the same vector (a deterministic implementation): it is compared exactly "
                       f"with the target, within the rounding level (up to {float(np.max(tau)):.3g}).")
    return const, (f" {int(const.sum())} of {const.size} coordinates are the same in every estimate: compared exactly "
                   f"with the target within the rounding level.")


# ------------------------------------------------------------------------------------------- mean


def _mean_known(x, target, cov, tau, ulps, alpha, exact_grad, what, shape):
    """The mean against ``target`` with the exact covariance ``cov`` (see the module docstring)."""
    n, p = x.shape
    mean = x.mean(axis=0)
    delta = mean - target
    s2 = x.var(axis=0, ddof=1)
    sig = np.maximum(np.diag(cov), 0.0)
    v = np.maximum(sig, s2)
    excess = np.maximum(np.abs(delta) - tau, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v > 0, excess / np.sqrt(v / n), np.where(excess > 0, np.inf, 0.0))
    z = np.copysign(z, delta)
    pz = 2.0 * special.ndtr(-np.abs(z))
    holm = stats.holm_adjust(pz)
    p_holm = float(np.min(holm))
    varying = (x.max(axis=0) - x.min(axis=0)) > tau
    if varying.any():
        sub = np.ix_(varying, varying)
        chi2, p_chi = _chi2(x[:, varying], delta[varying], cov[sub], ulps[varying])
    else:
        chi2, p_chi = 0.0, 1.0
    if p == 1:
        pvalue, rule = p_holm, "the z-test of the one coordinate"
    else:
        pvalue, rule = min(1.0, 2.0 * min(p_chi, p_holm)), "min(1, 2 min(p_χ², p_Holm))"
    reject = pvalue < alpha
    j = int(np.argmax(np.abs(np.where(np.isfinite(z), z, np.sign(z) * 1e300))))
    words = (f"mean off by {abs(float(z[j])):.3g} standard errors (beyond the rounding level {float(tau[j]):.3g}) in "
             f"coordinate {_label(shape, j)}: exact {float(target[j]):.6g}, observed {float(mean[j]):.6g}")
    const, det = _deterministic_text(x, tau)
    random_const = const & (sig > 0)  # constant here, random by the oracle: not an exact comparison
    if random_const.any():
        det = (" Every estimate is the same vector," if const.all() else "") + (
               f" {int(random_const.sum())} of {const.size} coordinates are the same in every estimate although the "
               f"estimator's exact variance there is positive (coordinate {_label(shape, int(np.argmax(random_const)))}"
               f": {float(sig[np.argmax(random_const)]):.3g}): their mean is tested with the exact variance, and "
               f"the missing spread is the variance part's to judge.")
        if (const & (sig == 0)).any():
            det += (f" {int((const & (sig == 0)).sum())} coordinate(s) of exact variance 0 are compared exactly with "
                    f"the target within the rounding level.")
    text = (f"Mean against {what} with refgrad's exact covariance (χ² p = {p_chi:.3g}, Holm p = {p_holm:.3g}, "
            f"combined as {rule} = {pvalue:.3g} at α = {alpha:g}): "
            + ("rejected, " if reject else "not rejected; largest deviation: ") + words + "." + det)
    if det and not reject and not random_const.any():
        text += (" The constant coordinates are deterministic; equal to the exact value within "
                 f"{float(np.max(tau)):.3g}.")
    bias = mean - exact_grad
    text += f" Bias estimate (mean − exact gradient) up to {float(np.max(np.abs(bias))):.3g}."
    order = np.argsort(-np.abs(np.where(np.isfinite(z), z, np.sign(z) * 1e300)), kind="stable")[:5]
    worst = [{"coordinate": _label(shape, int(k)), "exact mean": float(target[k]), "sample mean": float(mean[k]),
              "std. errors": float(z[k]), "p": float(holm[k])} for k in order]
    return Verdict(check="check_estimator: mean", passed=not reject, diagnosis="wrong" if reject else "agrees",
                   test="mean against the exact covariance: χ² and per-coordinate z with Holm, rounding allowed",
                   statistic=chi2, pvalue=float(pvalue), alpha=alpha, n=n,
                   compared={"target": target.reshape(shape), "mean": mean.reshape(shape),
                             "bias estimate": bias.reshape(shape), "rounding level": tau.reshape(shape),
                             "deterministic coordinates": int(const.sum())},
                   worst=worst, explanation=text)


def _chi2(x, delta, cov, rho):
    """(χ², p) of δ against the exact covariance Σ/n, with the rounding ρ in the directions where Σ vanishes.

    Σ is eigen-decomposed on the correlation scale (entries may span 1e-300..1).  In its range, χ² adds
    (uᵀD⁻¹δ)² / (w/n); in each null direction v (a sum-to-zero direction, a coordinate of exact variance 0),
    where only rounding can move a correct implementation, (vᵀδ)² / (Σ_j v_j² ρ_j² + Var(x v)/n) -- the
    sample's own variation in that direction (rounding noise) and the rounding level ρ.
    """
    n, p = x.shape
    d = np.sqrt(np.maximum(np.diag(cov), 0.0))
    live = d > 0
    dirs, var = [], []
    if live.any():
        r = cov[np.ix_(live, live)] / np.outer(d[live], d[live])
        w, u = np.linalg.eigh(0.5 * (r + r.T))
        null = w <= int(live.sum()) * 64 * np.finfo(float).eps * max(float(np.max(w)), 1.0)
        for k in range(len(w)):
            v = np.zeros(p)
            v[live] = u[:, k] / d[live]
            dirs.append(v)
            var.append(None if null[k] else w[k] / n)
    for j in np.flatnonzero(~live):
        v = np.zeros(p)
        v[j] = 1.0
        dirs.append(v)
        var.append(None)
    chi2 = 0.0
    for v, s2 in zip(dirs, var):
        if s2 is None:
            s2 = float(np.sum(v * v * rho * rho) + np.var(x @ v, ddof=1) / n)
        proj = float(v @ delta)
        if s2 > 0:
            chi2 += proj * proj / s2
        elif proj != 0:
            return math.inf, 0.0
    return chi2, float(sps.chi2.sf(chi2, len(dirs))) if dirs else 1.0


def _mean_sampled(x, target, rtol, alpha, exact_grad, what, shape, degenerate="exact"):
    """The mean against ``target`` by :func:`refgrad.stats.unbiasedness_test` (no exact covariance)."""
    r = stats.unbiasedness_test(x, target, alpha=alpha, rtol=rtol, degenerate=degenerate)
    flat_t = np.where(np.isfinite(r.tstat), r.tstat, np.sign(r.tstat) * 1e300).ravel()
    j = int(np.argmax(np.abs(flat_t))) if flat_t.size else 0
    mean = r.mean.ravel()
    words = (f"mean off by {abs(float(r.tstat.flat[j])):.3g} standard errors in coordinate {_label(shape, j)}: "
             f"exact {float(target[j]):.6g}, observed {float(mean[j]):.6g}")
    bias = mean - exact_grad
    tau = _rounding(x, target, rtol)
    const, det = _deterministic_text(x, tau)
    text = (f"Mean against {what} ({r.method} test, calibration {r.calibration}, p = {r.pvalue:.3g} at α = "
            f"{alpha:g}): " + ("rejected, " if r.reject else "not rejected; largest deviation: ") + words + "." + det)
    if r.inconclusive:
        text += (" Not testable at n = " + str(x.shape[0]) + ": the named estimator is random, its exact moments are "
                 "refused, and an outcome of the problem is expected fewer than 5 times in n draws, so a coordinate "
                 "that does not vary may owe it to that outcome's absence; such coordinates count neither for nor "
                 "against.")
    elif det and not r.reject:
        text += (" The constant coordinates are deterministic; equal to the exact value within "
                 f"{float(np.max(tau)):.3g}.")
    text += f" Bias estimate (mean − exact gradient) up to {float(np.max(np.abs(bias))):.3g}."
    worst = [{"coordinate": _label(shape, int(k)), "exact mean": float(target[k]), "sample mean": float(mean[k]),
              "std. errors": float(r.tstat.flat[k]), "p": float(r.adjusted_pvalues.flat[k])}
             for k in np.argsort(-np.abs(flat_t), kind="stable")[:5]]
    return Verdict(check="check_estimator: mean", passed=not r.reject, diagnosis="wrong" if r.reject else "agrees",
                   test=f"unbiasedness_test (Hotelling T² and Holm, calibration {r.calibration}; constant coordinates "
                        "exact)",
                   statistic=float(r.statistic), pvalue=float(r.pvalue), alpha=alpha, n=x.shape[0],
                   compared={"target": target.reshape(shape), "mean": mean.reshape(shape),
                             "bias estimate": bias.reshape(shape), "std. error": r.stderr.reshape(shape),
                             "rounding level": tau.reshape(shape),
                             "deterministic coordinates": int(const.sum())},
                   worst=worst, explanation=text)


def _mean_monte_carlo(x, est, alpha, exact_grad, name, shape):
    """The mean against a Monte Carlo mean: per-coordinate two-sample z with both standard errors, Holm."""
    n = x.shape[0]
    mean = x.mean(axis=0)
    target = est.mean.ravel()
    se_mc = np.asarray(est.mean_halfwidth, dtype=float).ravel() / _z_of(est.confidence)
    se = np.sqrt(x.var(axis=0, ddof=1) / n + se_mc ** 2)
    delta = mean - target
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, delta / se, np.where(delta != 0, np.inf, 0.0))
    holm = stats.holm_adjust(2.0 * special.ndtr(-np.abs(z)))
    pvalue = float(np.min(holm))
    reject = pvalue < alpha
    j = int(np.argmin(holm))
    text = (f"Mean against the Monte Carlo mean of refgrad's {name!r} ({est.samples} estimates, seed 0; its exact "
            f"moments are refused here) by per-coordinate z-tests with both standard errors, Holm p = {pvalue:.3g} at "
            f"α = {alpha:g}: " + ("rejected" if reject else "not rejected") + f"; largest in coordinate "
            f"{_label(shape, j)}: Monte Carlo {float(target[j]):.6g}, observed {float(mean[j]):.6g}.")
    worst = [{"coordinate": _label(shape, int(k)), "exact mean": float(target[k]), "sample mean": float(mean[k]),
              "std. errors": float(z[k]), "p": float(holm[k])} for k in np.argsort(holm, kind="stable")[:5]]
    return Verdict(check="check_estimator: mean", passed=not reject, diagnosis="wrong" if reject else "agrees",
                   test="mean against a Monte Carlo mean (two-sample z per coordinate, Holm)",
                   statistic=float(np.max(np.abs(z))), pvalue=pvalue, alpha=alpha, n=n,
                   compared={"Monte Carlo mean": est.mean, "mean": mean.reshape(shape),
                             "bias estimate": (mean - exact_grad).reshape(shape)}, worst=worst, explanation=text)


def _z_of(confidence):
    return float(special.ndtri(1.0 - (1.0 - float(confidence)) / 2.0))


# --------------------------------------------------------------------------------------- variance


def _variance_part(x, sigma2, m4, m4_how, tau, alpha, shape, reference="exact.moments", se_ref=None):
    """Per-coordinate variance against ``sigma2`` (see the module docstring)."""
    n, p = x.shape
    s2 = x.var(axis=0, ddof=1)
    dev = x - x.mean(axis=0)
    sample_m4 = np.mean(dev ** 4, axis=0)
    m4_used = sample_m4 if m4 is None else m4
    hi = sigma2 + tau ** 2
    gap = s2 - np.clip(s2, sigma2, hi)
    se2 = np.maximum(m4_used - (n - 3) / (n - 1) * sigma2 ** 2, 0.0) / n
    if m4 is None:  # the sample's fourth moment describes the sample's variance, whichever is larger
        se2 = np.maximum(se2, np.maximum(sample_m4 - (n - 3) / (n - 1) * s2 ** 2, 0.0) / n)
    if se_ref is not None:
        se2 = se2 + se_ref ** 2
    zero = sigma2 <= tau ** 2 * 1e-6
    spread = x.max(axis=0) - x.min(axis=0)
    varies = zero & (spread > tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se2 > 0, gap / np.sqrt(se2), np.where(gap != 0, np.copysign(np.inf, gap), 0.0))
        p_event = np.where((m4 is not None) & (m4_used > 0), sigma2 ** 2 / np.where(m4_used > 0, m4_used, 1.0), 1.0)
    rare = ~zero & (n * p_event < RARE_EVENTS) & (m4 is not None)
    pz = 2.0 * special.ndtr(-np.abs(z))
    with np.errstate(divide="ignore", invalid="ignore"):
        markov = np.where(s2 > hi, np.minimum(1.0, hi / s2), 1.0)
    pv = np.where(rare, markov, pz)
    pv = np.where(zero, np.where(varies, 0.0, 1.0), pv)
    z = np.where(zero, np.where(varies, np.inf, 0.0), z)
    adj = stats.holm_adjust(pv)
    reject = bool(np.min(adj) < alpha)
    j = int(np.argmin(adj))
    words = (f"variance off by {abs(float(z[j])):.3g} standard errors in coordinate {_label(shape, j)}: "
             f"{'exact' if se_ref is None else 'Monte Carlo'} {float(sigma2[j]):.6g}, observed {float(s2[j]):.6g}")
    text = (f"Variance per coordinate against {reference} (z-test, standard error from the {m4_how} fourth moment, "
            f"Holm, smallest adjusted p = {float(adj[j]):.3g} at α = {alpha:g}): "
            + ("rejected, " if reject else "not rejected; largest deviation: ") + words + ".")
    if rare.any():
        where = ", ".join(f"{_label(shape, int(k))} (p ≈ {float(p_event[k]):.2g})" for k in np.flatnonzero(rare)[:4])
        text += (f" Not testable at n = {n}: the variance of {int(rare.sum())} coordinate(s) is carried by events of "
                 f"probability below {RARE_EVENTS:g}/n -- {where}; they count neither for nor against (only Markov's "
                 f"bound, which rejects a sample variance 1/α times too large).")
    if varies.any():
        text += " A coordinate with exact variance 0 varies beyond rounding: impossible for a correct implementation."
    worst = [{"coordinate": _label(shape, int(k)), "exact variance": float(sigma2[k]), "sample variance": float(s2[k]),
              "std. errors": float(z[k]), "p": float(adj[k]), "testable": "no (rare events)" if rare[k] else "yes"}
             for k in np.argsort(adj, kind="stable")[:5]]
    certain = bool(varies.any())
    diagnosis = "certain failure" if certain else ("wrong" if reject else "agrees")
    compared = {"exact variance" if se_ref is None else "Monte Carlo variance": sigma2.reshape(shape),
                "sample variance": s2.reshape(shape), "not testable (rare events)": int(rare.sum())}
    return Verdict(check="check_estimator: variance", passed=diagnosis == "agrees", diagnosis=diagnosis,
                   test=f"variance z-test per coordinate ({m4_how} fourth moment), Holm",
                   statistic=float(np.max(np.abs(z))), pvalue=float(np.min(adj)), alpha=alpha, n=n,
                   compared=compared, worst=worst, explanation=text)


def _rare_outcome(dist, n):
    """True when some outcome of a discrete ``dist`` is expected fewer than 5 times in n draws."""
    try:
        return n * rarest_outcome(dist) < 5
    except TypeError:  # a continuous distribution has no outcome probabilities
        return False


def _moments_or_reason(name, dist, f, options):
    """(exact Moments, None) or (None, the oracle's refusal in words)."""
    try:
        return exact.moments(name, dist, f, **options), None
    except ValueError as err:
        return None, str(err)


def _monte_carlo(name, dist, f, options):
    return exact.moments(name, dist, f, method="monte_carlo", samples=MONTE_CARLO_SAMPLES, rng=0, **options)


class EstimatorReference:
    """What :func:`check_estimator` computes from the problem alone, computed once (see :func:`estimator_reference`).

    Attributes: ``dist``, ``f``, ``name``, ``options`` (as given), ``gradient`` (the exact gradient),
    ``moments`` (refgrad's exact moments of ``name``, or None), ``refused`` (the oracle's refusal in words, or
    None), ``monte_carlo`` (the Monte Carlo moments used where the exact ones are refused, or None),
    ``fourth`` (the exact fourth central moments, or None), ``fourth_how`` (how, or why not) and
    ``objective_scale`` (:math:`E_q|f|`, the size of the values the gradient is computed from).
    """

    __slots__ = ("dist", "f", "name", "options", "gradient", "moments", "refused", "monte_carlo", "fourth",
                 "fourth_how", "objective_scale")

    def __init__(self, dist, f, name, options, gradient, moments, refused, monte_carlo, fourth, fourth_how,
                 objective_scale=0.0):
        self.dist, self.f, self.name, self.options = dist, f, name, dict(options)
        self.objective_scale = float(objective_scale)
        self.gradient, self.moments, self.refused, self.monte_carlo = gradient, moments, refused, monte_carlo
        self.fourth, self.fourth_how = fourth, fourth_how

    def __repr__(self):
        what = "exact moments" if self.moments is not None else ("Monte Carlo moments" if self.monte_carlo is not None
                                                                 else "gradient only")
        return (f"EstimatorReference(dist={describe(self.dist)}, name={self.name!r}, options={self.options!r}, "
                f"{what})")


def estimator_reference(dist, f, *, name=None, **options):
    r"""The problem's side of :func:`check_estimator`, computed once for many calls on the same problem.

    :func:`check_estimator` computes, on every call, the exact gradient and (with ``name``) refgrad's exact
    moments of ``name``, their exact fourth central moments, or the Monte Carlo moments that replace refused
    exact ones.  These depend on ``(dist, f, name, options)`` only; for the exact moments of a relaxed
    estimator they cost 0.2 to 0.8 s (a quadrature), against a few milliseconds for the tests themselves.
    Pass the returned object as ``check_estimator(..., reference=ref)`` to reuse them: the verdict is
    the same as without it, bit for bit.

    Parameters
    ----------
    dist, f, name, **options
        As for :func:`check_estimator`.

    Returns
    -------
    EstimatorReference
    """
    if name is not None and name not in ESTIMATORS:
        raise ValueError(f"name must be one of {', '.join(ESTIMATORS)}; got {describe(name)}")
    grad = exact.gradient(dist, f)
    scale = _objective_scale(dist, f)
    mom, refused = (None, None) if name is None else _moments_or_reason(name, dist, f, options)
    mc = None if name is None or mom is not None else _monte_carlo(name, dist, f, options)
    m4, how = None, None
    if mom is not None:
        m4, how = fourth_central_moments(get_spec(name), dist, f, mom.options, mom)
    return EstimatorReference(dist, f, name, options, grad, mom, refused, mc, m4, how, scale)


def _objective_scale(dist, f):
    """:math:`E_q|f(b)|` by enumeration (0 where the objective's values cannot be enumerated)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            val = float(exact.expectation(dist, lambda z: np.abs(evaluate(f, z))))
    except (ValueError, TypeError):
        return 0.0
    return val if np.isfinite(val) else 0.0


def _same_options(a, b):
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return False
        elif not np.array_equal(np.asarray(x), np.asarray(y)):
            return False
    return True


def _check_reference(reference, dist, f, name, options):
    if not isinstance(reference, EstimatorReference):
        raise ValueError(f"reference must be an EstimatorReference from estimator_reference(); got "
                         f"{describe(reference)}")
    if reference.dist is not dist or reference.f is not f or reference.name != name \
            or not _same_options(reference.options, options):
        raise ValueError("reference must be estimator_reference(dist, f, name=name, **options) for the same dist and "
                         f"f objects, name and options as this call; it was made for name={reference.name!r}, "
                         f"options={reference.options!r} (this call: name={name!r}, options={options!r}), "
                         f"same dist: {reference.dist is dist}, same f: {reference.f is f}")
    return reference


def _nonfinite_verdict(x):
    """A failing Verdict naming the rows of ``x`` (n, ...) that hold NaN or inf, or None when every row is finite."""
    n = x.shape[0]
    bad = ~np.isfinite(x).reshape(n, -1).all(axis=1)
    if not bad.any():
        return None
    rows = np.flatnonzero(bad)
    return Verdict(check="check_estimator", passed=False, diagnosis="wrong", test="finite estimates",
                   statistic=None, pvalue=None, alpha=None, n=n,
                   compared={"non-finite rows": int(bad.sum())},
                   worst=[{"row": int(i), "estimate": x[i].ravel().tolist()} for i in rows[:10]],
                   explanation=f"{int(bad.sum())} of {n} estimates contain NaN or inf (first at row "
                               f"{int(rows[0])}); a gradient estimate of a finite objective is finite.")


def check_estimator(samples, dist, f, unbiased=True, *, name=None, alpha=DEFAULT_ALPHA, reference=None, **options):
    r"""Test per-sample gradient estimates of another implementation against refgrad's exact moments.

    The tests, their rounding levels and the rare-event rule are in :mod:`refgrad.crosscheck._check_estimator`.

    Parameters
    ----------
    samples : array_like, shape (n, *dist.param_shape)
        Independent single-sample estimates of :math:`∇ E_{q}[f]` (float32 or float64, as computed: the
        dtype sets the rounding level; float64 values that are all float32 numbers, as the torch and JAX
        per-sample-gradient helpers return a float32 computation, are judged at float32 rounding).
        Deterministic estimates (every row the same: an enumerated ELBO, an all-action policy gradient)
        are compared exactly with the target within that rounding level.
    dist, f
        The refgrad distribution and objective the foreign estimator was run on.
    unbiased : bool
        True: the mean is tested against :func:`refgrad.exact.gradient`.  False: ``name``
        is required and the target is the exact mean of refgrad's estimator ``name`` (its Monte Carlo mean,
        with its interval, where exact moments are refused).
    name : str, optional
        The refgrad estimator the foreign one implements; enables the variance part and the exact
        covariance in the mean part.
    alpha : float
        Level of the composite test (each of the m parts at α/m, Bonferroni).
    reference : EstimatorReference, optional
        :func:`estimator_reference` ``(dist, f, name=name, **options)`` computed beforehand for these very
        ``dist`` and ``f`` objects, name and options (ValueError otherwise): the exact gradient and moments are
        then not recomputed, for many checks of one problem (the verdict is unchanged).
    **options
        Options of estimator ``name`` (e.g. ``tau``).

    Returns
    -------
    Verdict
        Composite of the mean part (and the variance part when ``name`` is given).
    """
    alpha = _check_alpha(alpha)
    check_distribution(dist)
    if not isinstance(unbiased, (bool, np.bool_)):
        raise ValueError(f"unbiased must be True or False; got {describe(unbiased)}")
    if options and name is None:
        raise ValueError(f"estimator options ({', '.join(sorted(options))}) apply to a named estimator only: pass "
                         f"name= (one of {', '.join(ESTIMATORS)}) or drop them")
    x = _check_samples(samples, dist, min_rows=4)
    computed = _computed_dtype(samples, x)
    rtol = _resolve_rtol(None, np.empty(0, dtype=computed))
    if not unbiased and name is None:
        raise ValueError("name must be given when unbiased=False: the target is then the exact mean of refgrad's "
                         "estimator name (one of " + ", ".join(ESTIMATORS) + ")")
    if name is not None and name not in ESTIMATORS:
        raise ValueError(f"name must be one of {', '.join(ESTIMATORS)}; got {describe(name)}")
    if reference is not None:
        _check_reference(reference, dist, f, name, options)
    n = x.shape[0]
    nonfinite = _nonfinite_verdict(x)
    if nonfinite is not None:
        return nonfinite
    if reference is None:
        reference = estimator_reference(dist, f, name=name, **options)
    shape = tuple(dist.param_shape)
    flat = x.reshape(n, -1)
    grad = reference.gradient
    mom, refused, mc = reference.moments, reference.refused, reference.monte_carlo
    f_round = OBJECTIVE_ULPS * float(np.finfo(computed).eps) * reference.objective_scale
    pa = part_alpha(alpha, 2 if name is not None else 1)
    what = "the exact gradient" if unbiased else f"the exact mean of refgrad's {name!r}"
    compared = {"exact gradient": grad}
    if not unbiased and mom is None:
        target = mc.mean.ravel()
        mean_part = _mean_monte_carlo(flat, mc, pa, grad.ravel(), name, shape)
    else:
        target = (grad if unbiased else mom.mean).ravel()
        oracle_error = 0.0 if mom is None else float(mom.error)  # the target is known to within this
        tau = _rounding(flat, target, rtol) + oracle_error + f_round
        if mom is not None:
            ulps = CHI2_ULPS * float(np.finfo(computed).eps) * (tau - oracle_error - f_round) / rtol + oracle_error \
                + f_round
            mean_part = _mean_known(flat, target, np.asarray(mom.cov, dtype=float), tau, ulps, pa, grad.ravel(), what,
                                    shape)
        else:
            # a named (random) estimator without exact moments: a constant coordinate on a problem with an
            # outcome too rare for n is that outcome's absence, not evidence (as testing.assert_unbiased does)
            rare = name is not None and _rare_outcome(dist, n)
            # unbiasedness_test takes a relative level only: f_round relative to the smallest scale it uses
            top = float(np.max(np.abs(target))) if target.size else 0.0
            rtol_mean = min(rtol + (f_round / top if top > 0 else 0.0), 0.5)
            mean_part = _mean_sampled(flat, target, rtol_mean, pa, grad.ravel(), what, shape,
                                      "inconclusive" if rare else "exact")
    parts = [mean_part]
    note = ""
    if mom is not None:
        m4, how = reference.fourth, reference.fourth_how
        m4_how = "exact" if m4 is not None else "sample"
        if m4 is None:
            note = f" ({how}: the variance part uses the sample fourth moment)"
        tau = _rounding(flat, mom.mean.ravel(), rtol) + np.sqrt(float(mom.error)) + f_round
        parts.append(_variance_part(flat, np.asarray(mom.variance, dtype=float).ravel(),
                                    None if m4 is None else m4.ravel(), m4_how, tau, pa, shape))
        compared.update({"exact mean of " + name: mom.mean, "exact variance": mom.variance})
    elif mc is not None:
        tau = _rounding(flat, mc.mean.ravel(), rtol) + f_round
        se_ref = np.asarray(mc.variance_halfwidth, dtype=float).ravel() / _z_of(mc.confidence)
        parts.append(_variance_part(flat, np.asarray(mc.variance, dtype=float).ravel(), None, "sample", tau, pa,
                                    shape, reference=f"a Monte Carlo variance ({mc.samples} estimates, seed 0)",
                                    se_ref=se_ref))
        note = (f" refgrad's exact moments of {name!r} are refused here ({refused.split(';')[0]}); the variance is "
                "compared with Monte Carlo moments instead, their interval included.")
        compared.update({"Monte Carlo mean of " + name: mc.mean, "Monte Carlo variance": mc.variance})
    if computed != (samples.dtype if isinstance(samples, np.ndarray) else np.asarray(samples).dtype):
        note += (" Every value is a float32 number (a float32 computation handed over as float64, as the torch and "
                 "JAX per-sample-gradient helpers return it): judged at float32 rounding.")
    prefix = (f"{n} estimates of shape {shape}" + (f" (estimator {name!r})" if name else "") + note + ": "
              + " ".join(p.explanation for p in parts))
    return combine("check_estimator", parts, n, alpha, explanation_prefix=prefix, compared=compared)
