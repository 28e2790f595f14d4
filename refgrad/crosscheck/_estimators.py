r"""Cross-checks of gradient estimators: :func:`check_estimator`, :func:`check_same_estimates`.

:func:`check_estimator` tests per-sample estimates from another implementation
against refgrad's exact oracles: the mean (:func:`refgrad.stats.unbiasedness_test`
against :func:`refgrad.exact.gradient`, or against the exact mean of the named refgrad
estimator for a biased one) and, when the estimator is named, the variance of each
coordinate against :func:`refgrad.exact.moments` (``Moments.variance``, the diagonal of
``cov``).  The variance test is the large-sample z-test of a variance,

.. math::
    z_j = \frac{s_j^2 - σ_j^2}{\widehat{\mathrm{SE}}_j}, \qquad
    \widehat{\mathrm{SE}}_j^2 = \frac{1}{n}\Big(\hat m_{4,j} - \frac{n-3}{n-1} s_j^4\Big)

(the variance of the sample variance, e.g. Cramér 1946, *Mathematical Methods of
Statistics*, §27.4, with the sample fourth central moment :math:`\hat m_4`), two-sided
normal p-values, Holm across coordinates.  A coordinate whose exact variance is 0 is
decided exactly: its samples must all be equal up to 16 eps of their dtype (relative to
their magnitude).  The two parts run at α/2 each and are combined with
:func:`refgrad.crosscheck._verdict.combine`.

:func:`check_same_estimates` compares, row by row, estimates computed by another
implementation from the same uniforms with :func:`refgrad.estimate` on that noise.

Measured calibration
--------------------
``python -m pytest -q -m slow tests/test_crosscheck_estimators.py`` (1000 replications per
row; fixed seeds 0..999; α = 0.05; 99 % binomial interval of the rate: [0.033, 0.069])
and the default run (200 replications, interval [0.015, 0.095]); false-alarm rates of
:func:`check_estimator` on refgrad's own estimators, 1-bit Bernoulli ℓ = 0.3 (REBAR,
Gumbel-softmax) and 2-bit ℓ = (0.3, −1) (REINFORCE, DisARM), f = SquaredDistance::

    estimator       n      200 replications   1000 replications
    reinforce       1000   0.030              0.036
    disarm          1000   0.025              0.037
    rebar           1000   0.015              0.014   (conservative: below the interval)
    gumbel_softmax  1000   0.045              0.045   (unbiased=False, name given)

REBAR's rate is below α (the level holds, the power is lower); which part is
conservative there has not been isolated.  Breaking the variance standard error (×10) drives the DisARM rate below the interval
(the default-run test fails), so the rate is measured, not assumed.

Power (default run, fixed seeds): estimates + 0.02 (≈ 0.15 standard deviations), n =
2000: rejected; Gumbel-softmax (τ = 0.5) declared unbiased, n = 20000: rejected (bias
0.0074); estimates scaled by 1.3 about their mean, n = 2000: rejected by the variance part.

:func:`check_same_estimates` is deterministic: the tolerance of row i, coordinate j is
:math:`64\,(ε_f \max(\max_{i'} |\hat g_{i'j}|, \max_{j'} |\hat g_{ij'}|) + Δ_{ij})`, with ε_f the
epsilon of the foreign dtype (the scale is the larger of the coordinate's and the row's largest
magnitude: a coordinate that is tiny in every row, as the gradient of a nearly impossible
category, is computed from terms of the row's size, and a foreign implementation that orders
them differently leaves an error of a few ε_f times the row scale there) and Δ the largest change of refgrad's estimate when every uniform moves by ±ε_f·min(u, 1 − u)
(the rounding of the noise) or when the parameters move by ±ε_f(|ℓ| + 40), alternating in sign
along the last axis (the rounding of ℓ + G, the first operation on the noise; |G| < 40 for a
Gumbel from any float uniform; without it a float64 Gumbel-softmax written with
``jax.nn.softmax`` failed at τ = 0.01 and 10 by 270 and 120 ε of the gradient); for a foreign dtype coarser
than float64 a row also matches when it agrees with refgrad evaluated on the noise
rounded to that dtype (an estimate discontinuous in the noise flips there legitimately).
For the estimators with a temperature the tolerance is multiplied by 1/min(τ, 1): the terms
of the softmax_τ VJP are of size |∇f|/τ, and near a vertex the textbook form computes 1 − y_k
by subtraction (PyTorch's gumbel_softmax backward at τ = 0.01 is 9e-5 off, relatively, in a
coordinate of 2e-10, as the textbook float64 form is).  The factor 64
(:data:`SAME_TOLERANCE_FACTOR`) covers the cancellation of the usual
softmax VJP :math:`y ⊙ (g − ⟨y, g⟩)/τ`: at τ = 10, logits (50, −50, 0), the textbook float64
Gumbel-softmax (``tests/test_crosscheck_estimators.py``) and one written with ``jax.grad``
differ from refgrad by up to 24 and 28 ε times the row scale (ratios 0.37 and 0.43 of the
tolerance); a relative change of 1e-10 in one coordinate is still rejected.
"""
import numpy as np
from scipy import special

from refgrad import exact, stats
from refgrad._checks import as_float_array, describe
from refgrad.estimators import ESTIMATORS, estimate

from ._verdict import DEFAULT_ALPHA, Verdict, combine, part_alpha

__all__ = ["check_estimator", "check_same_estimates", "SAME_TOLERANCE_FACTOR"]

#: c in the tolerance of :func:`check_same_estimates`.
SAME_TOLERANCE_FACTOR = 64.0


def _dtype_eps(x):
    raw = x if isinstance(x, np.ndarray) else np.asarray(x)
    return float(np.finfo(raw.dtype).eps) if raw.dtype.kind == "f" else float(np.finfo(np.float64).eps)


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


# ---------------------------------------------------------------------------
# check_estimator
# ---------------------------------------------------------------------------


def _mean_part(x, target, alpha, exact_grad, unbiased):
    r = stats.unbiasedness_test(x, target, alpha=alpha)
    shape = target.shape
    t = np.where(np.isfinite(r.tstat), r.tstat, np.sign(r.tstat) * 1e300).ravel()
    j = int(np.argmax(np.abs(t))) if t.size else 0
    what = "the exact gradient" if unbiased else "the exact mean of refgrad's estimator"
    words = (f"mean off by {abs(float(r.tstat.flat[j])):.3g} standard errors in coordinate {_label(shape, j)}: "
             f"exact {float(target.flat[j]):.6g}, observed {float(r.mean.flat[j]):.6g}")
    bias = r.mean - exact_grad
    text = (f"Mean against {what} ({r.method} test, calibration {r.calibration}, p = {r.pvalue:.3g} at α = "
            f"{alpha:g}): " + ("rejected, " if r.reject else "not rejected; largest deviation: ") + words +
            f". Bias estimate (mean − exact gradient) up to {float(np.max(np.abs(bias))):.3g}.")
    if r.inconclusive:
        text += " Some coordinates were constant and could not be tested (see refgrad.stats notes)."
    worst = [{"coordinate": _label(shape, int(k)), "expected": float(target.flat[k]), "observed":
              float(r.mean.flat[k]), "std. errors": float(r.tstat.flat[k]), "p": float(r.adjusted_pvalues.flat[k])}
             for k in np.argsort(-np.abs(t), kind="stable")[:5]]
    return Verdict(check="check_estimator: mean", passed=not r.reject, diagnosis="wrong" if r.reject else "agrees",
                   test="unbiasedness_test (Hotelling T² and Holm, bootstrap-calibrated)",
                   statistic=float(r.statistic), pvalue=float(r.pvalue), alpha=alpha, n=x.shape[0],
                   compared={"target": target, "mean": r.mean, "bias estimate": bias, "std. error": r.stderr},
                   worst=worst, explanation=text)


def _variance_z(x, sigma2):
    """(s², z, p) per flattened coordinate; exact variance 0 decided exactly."""
    n = x.shape[0]
    s2 = x.var(axis=0, ddof=1)
    dev = x - x.mean(axis=0)
    m4 = np.mean(dev ** 4, axis=0)
    se = np.sqrt(np.maximum(m4 - (n - 3) / (n - 1) * s2 ** 2, 0.0) / n)
    scale = np.max(np.abs(x), axis=0)
    zero = sigma2 <= (1e-12 * np.maximum(scale, 1e-300)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (s2 - sigma2) / se, np.where(s2 == sigma2, 0.0, np.inf))
    p = 2.0 * special.ndtr(-np.abs(z))
    return s2, z, p, zero


def _variance_part(x, sigma2, alpha, eps):
    shape = sigma2.shape
    flat = x.reshape(x.shape[0], -1)
    s2, z, p, zero = _variance_z(flat, sigma2.ravel())
    spread = flat.max(axis=0) - flat.min(axis=0)
    scale = np.max(np.abs(flat), axis=0)
    equal = spread <= SAME_TOLERANCE_FACTOR * eps * scale
    p = np.where(zero, np.where(equal, 1.0, 0.0), p)
    z = np.where(zero, np.where(equal, 0.0, np.inf), z)
    adj = stats.holm_adjust(p)
    reject = bool(np.min(adj) < alpha)
    j = int(np.argmin(adj))
    certain = bool((zero & ~equal).any())
    words = (f"variance off by {abs(float(z[j])):.3g} standard errors in coordinate {_label(shape, j)}: exact "
             f"{float(sigma2.flat[j]):.6g}, observed {float(s2[j]):.6g}")
    text = (f"Variance per coordinate against exact.moments (z-test with the fourth-moment standard error, Holm, "
            f"smallest adjusted p = {float(adj[j]):.3g} at α = {alpha:g}): "
            + ("rejected, " if reject else "not rejected; largest deviation: ") + words + ".")
    if certain:
        text += " A coordinate with exact variance 0 varies: impossible for a correct implementation."
    worst = [{"coordinate": _label(shape, int(k)), "expected": float(sigma2.flat[k]), "observed": float(s2[k]),
              "std. errors": float(z[k]), "p": float(adj[k])} for k in np.argsort(adj, kind="stable")[:5]]
    diagnosis = "certain failure" if certain else ("wrong" if reject else "agrees")
    return Verdict(check="check_estimator: variance", passed=diagnosis == "agrees", diagnosis=diagnosis,
                   test="variance z-test per coordinate (fourth-moment SE), Holm", statistic=float(np.max(np.abs(z))),
                   pvalue=float(np.min(adj)), alpha=alpha, n=x.shape[0],
                   compared={"exact variance": sigma2, "sample variance": s2.reshape(shape)}, worst=worst,
                   explanation=text)


def check_estimator(samples, dist, f, unbiased=True, *, name=None, alpha=DEFAULT_ALPHA, **options):
    r"""Test per-sample gradient estimates of another implementation against refgrad's exact moments.

    Parameters
    ----------
    samples : array_like, shape (n, *dist.param_shape)
        Independent single-sample estimates of :math:`∇ E_{q}[f]` (float32 or float64).
    dist, f
        The refgrad distribution and objective the foreign estimator was run on.
    unbiased : bool
        True: the mean is tested against :func:`refgrad.exact.gradient`.  False: ``name``
        is required and the target is ``exact.moments(name, dist, f, **options).mean``
        (the measured bias against refgrad's exact bias).
    name : str, optional
        The refgrad estimator the foreign one implements; enables the variance part.
    alpha : float
        Level of the composite test (each of the m parts at α/m, Bonferroni).
    **options
        Options of estimator ``name`` (e.g. ``tau``).

    Returns
    -------
    Verdict
        Composite of the mean part (and the variance part when ``name`` is given).
    """
    alpha = _check_alpha(alpha)
    x = _check_samples(samples, dist, min_rows=4)
    eps = _dtype_eps(samples)
    if not unbiased and name is None:
        raise ValueError("name must be given when unbiased=False: the target is then the exact mean of refgrad's "
                         "estimator name (one of " + ", ".join(ESTIMATORS) + ")")
    if name is not None and name not in ESTIMATORS:
        raise ValueError(f"name must be one of {', '.join(ESTIMATORS)}; got {describe(name)}")
    bad = ~np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        return Verdict(check="check_estimator", passed=False, diagnosis="wrong", test="finite estimates",
                       statistic=None, pvalue=None, alpha=None, n=x.shape[0],
                       compared={"non-finite rows": int(bad.sum())},
                       worst=[{"row": int(i), "estimate": x[i].ravel().tolist()} for i in rows[:10]],
                       explanation=f"{int(bad.sum())} of {x.shape[0]} estimates contain NaN or inf (first at row "
                                   f"{int(rows[0])}); a gradient estimate of a finite objective is finite.")
    grad = exact.gradient(dist, f)
    mom = exact.moments(name, dist, f, **options) if name is not None else None
    target = grad if unbiased else mom.mean
    pa = part_alpha(alpha, 2 if mom is not None else 1)
    parts = [_mean_part(x, target, pa, grad, unbiased)]
    compared = {"exact gradient": grad}
    if mom is not None:
        parts.append(_variance_part(x, mom.variance, pa, eps))
        compared.update({"exact mean of " + name: mom.mean, "exact variance": mom.variance})
    prefix = (f"{x.shape[0]} estimates of shape {tuple(dist.param_shape)}" + (f" (estimator {name!r})" if name else "")
              + ": " + " ".join(p.explanation for p in parts))
    return combine("check_estimator", parts, x.shape[0], alpha, explanation_prefix=prefix, compared=compared)


# ---------------------------------------------------------------------------
# check_same_estimates
# ---------------------------------------------------------------------------


def _nudged(noise, delta):
    """Every uniform moved by delta · min(u, 1 − u) (kept strictly inside (0, 1))."""
    out = {}
    for key, u in noise.items():
        u = np.asarray(u, dtype=np.float64)
        out[key] = np.clip(u + delta * np.minimum(u, 1.0 - u), np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0))
    return out


def _moved_parameters(dist, eps):
    """``dist`` with its parameters moved by the rounding of ℓ + G: ±eps (|ℓ| + 40), alternating signs.

    The first operation an implementation does on the noise is to add it to the parameters
    (ℓ + G, ℓ + L, μ + ε), rounded to the size of the sum: a shift of up to eps (|ℓ| + |G|) of each
    entry, |G| < 40 for Gumbel noise from any float uniform; signs alternate along the last axis
    because the roundings of different entries differ.  Only for Bernoulli, Categorical and
    GaussianThreshold (rebuilt from their parameter array); infinite parameters stay as they are.
    """
    from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold

    if not isinstance(dist, (Bernoulli, Categorical, GaussianThreshold)):
        return []
    p = np.asarray(dist.params, dtype=np.float64)
    signs = np.where(np.arange(p.shape[-1]) % 2 == 0, 1.0, -1.0) if p.ndim else 1.0
    with np.errstate(invalid="ignore"):
        step = np.where(np.isfinite(p), eps * (np.abs(p) + 40.0), 0.0) * signs
    return [type(dist)(p + step), type(dist)(p - step)]


def _rounded(noise, dtype):
    lo, hi = np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0)
    return {k: np.clip(np.asarray(u, dtype=np.float64).astype(dtype).astype(np.float64), lo, hi)
            for k, u in noise.items()}


def _same_tolerance(ref, others, eps, rtol):
    """Tolerance per entry: c (eps · max(coordinate scale, row scale) + change under nudged noise).

    The row scale (the largest magnitude in that row of refgrad's estimates) is there because a
    coordinate that is tiny in every row (a nearly impossible category) is computed from terms of
    the row's size: an implementation that orders them differently legitimately leaves an absolute
    error of a few eps times the row scale in it.
    """
    c = SAME_TOLERANCE_FACTOR
    axes = tuple(range(1, ref.ndim))
    column = np.max(np.abs(ref), axis=0, keepdims=True)
    row = np.max(np.abs(ref), axis=axes, keepdims=True) if axes else np.abs(ref)
    scale = np.maximum(column, row)
    base = (c * eps if rtol is None else float(rtol)) * np.maximum(scale, np.finfo(np.float64).tiny)
    sens = np.max([np.abs(o - ref) for o in others], axis=0) if others else 0.0
    return base + c * sens


def _temperature_factor(options):
    """1 / min(τ, 1) for the estimators with a temperature, else 1.

    A relaxed estimator's gradient goes through the VJP of softmax_τ, whose terms are of size
    |∇f| / τ; the textbook form y ⊙ (g − ⟨y, g⟩)/τ computes 1 − y_k by subtraction near a vertex,
    so a coordinate far below the terms carries an absolute error of a fraction of eps |∇f| / τ
    (PyTorch's gumbel_softmax backward at τ = 0.01: 9e-5 relative in a coordinate of 2e-10).
    """
    tau = options.get("tau")
    if tau is None or isinstance(tau, str):
        return 1.0
    tau = float(np.min(np.asarray(tau, dtype=np.float64)))
    return 1.0 / min(tau, 1.0) if tau > 0 else 1.0


def _row_noise(noise, i):
    return {k: (np.asarray(u)[i].tolist() if np.ndim(u) and np.shape(u)[0] > i else "shared") for k, u in noise.items()}


def check_same_estimates(foreign, name, dist, f, noise, *, rtol=None, **options):
    r"""Compare, row by row, another implementation's estimates with refgrad's on the same uniforms.

    Parameters
    ----------
    foreign : array_like, shape (n, *dist.param_shape)
        The foreign estimates (float32 or float64: its dtype sets ε_f); NaN rows are reported.
    name : str
        The refgrad estimator (``refgrad.ESTIMATORS``).
    dist, f
        Distribution and objective.
    noise : dict
        The uniforms the foreign implementation was fed, laid out as
        ``refgrad.ESTIMATORS[name].noise_layout(dist, **options)``.
    rtol : float, optional
        Replaces c·ε_f in the tolerance (see the module docstring).
    **options
        Estimator options.

    Returns
    -------
    Verdict
        Deterministic (``pvalue`` None): ``"agrees"``, ``"wrong"`` or ``"shape"``; the worst rows
        with their noise, expected and observed estimates.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"name must be one of {', '.join(ESTIMATORS)}; got {describe(name)}")
    eps = _dtype_eps(foreign)
    y = as_float_array(foreign, "foreign")
    ref = estimate(name, dist, f, noise=noise, **options)
    check, test = "check_same_estimates", f"row-by-row comparison with refgrad.estimate({name!r}) on the same noise"
    if y.shape != ref.shape:
        return Verdict(check=check, passed=False, diagnosis="shape", test=test, statistic=None, pvalue=None,
                       alpha=None, n=ref.shape[0],
                       compared={"expected shape": str(ref.shape), "actual shape": str(y.shape)},
                       explanation=f"foreign has shape {y.shape}; refgrad's estimates on this noise have shape "
                                   f"{ref.shape} = (n, *dist.param_shape).")
    n = ref.shape[0]
    others = [estimate(name, dist, f, noise=_nudged(noise, s * eps), **options) for s in (-1.0, 1.0)]
    others += [estimate(name, moved, f, noise=noise, **options) for moved in _moved_parameters(dist, eps)]
    tol = _same_tolerance(ref, others, eps, rtol) * _temperature_factor(options)
    rounded = None
    if eps > np.finfo(np.float64).eps:
        rounded = estimate(name, dist, f, noise=_rounded(noise, np.asarray(foreign).dtype), **options)
    axes = tuple(range(1, ref.ndim))
    with np.errstate(invalid="ignore"):
        err = np.abs(y - ref)
        ok = err <= tol
        if rounded is not None:
            ok |= np.abs(y - rounded) <= tol
        nan_rows = np.isnan(y).any(axis=axes) if axes else np.isnan(y)
        bad_rows = ~ok.all(axis=axes) if axes else ~ok
        ratio = np.where(np.isfinite(err), err / tol, np.inf)
    row_ratio = ratio.max(axis=axes) if axes else ratio
    if rounded is not None:
        with np.errstate(invalid="ignore"):
            r2 = np.where(np.isfinite(y), np.abs(y - rounded) / tol, np.inf)
        row_ratio = np.minimum(row_ratio, r2.max(axis=axes) if axes else r2)
    order = np.argsort(-row_ratio, kind="stable")[:10]
    worst = [{"row": int(i), "noise": _row_noise(noise, i), "expected": ref[i].ravel().tolist(),
              "observed": y[i].ravel().tolist(), "error": float(np.nanmax(err[i])) if np.isfinite(err[i]).any()
              else float("nan"), "tolerance": float(np.max(tol[i]))} for i in order if bad_rows[i]]
    finite_err = err[np.isfinite(err)]
    compared = {"foreign dtype eps": eps, "largest error": float(finite_err.max()) if finite_err.size else 0.0,
                "largest error / tolerance": float(np.max(row_ratio)), "rows beyond tolerance": int(bad_rows.sum()),
                "fraction beyond tolerance": float(bad_rows.mean()), "NaN rows": int(nan_rows.sum())}
    if rounded is not None:
        compared["rows matching only the rounded noise"] = int((~(err <= tol).all(axis=axes) & ~bad_rows).sum()
                                                               if axes else (~(err <= tol) & ~bad_rows).sum())
    failed = bool(bad_rows.any())
    text = (f"{n} estimates of {name!r} compared with refgrad's on the same uniforms; tolerance "
            f"{SAME_TOLERANCE_FACTOR:g}·(eps·max(coordinate scale, row scale) + change under noise moved by eps), eps = {eps:.3g}"
            + (", also accepting refgrad on the noise rounded to the foreign dtype" if rounded is not None else "")
            + f". Largest error {compared['largest error']:.3g}. ")
    if failed:
        text += (f"{int(bad_rows.sum())} row(s) ({100 * bad_rows.mean():.3g} %) differ beyond tolerance"
                 + (f", {int(nan_rows.sum())} of them NaN" if nan_rows.any() else "") +
                 f"; worst: row {worst[0]['row']}. The implementation computes another function of the noise.")
    else:
        text += "Every row agrees within tolerance."
    return Verdict(check=check, passed=not failed, diagnosis="wrong" if failed else "agrees", test=test,
                   statistic=float(np.max(row_ratio)), pvalue=None, alpha=None, n=n, compared=compared,
                   worst=worst, explanation=text)
