r"""Cross-checks of gradient estimators: :func:`check_same_estimates` and :func:`check_estimator`.

:func:`check_estimator` is defined in :mod:`refgrad.crosscheck._check_estimator` and re-exported here.

:func:`check_same_estimates` compares, row by row, estimates computed by another
implementation from the same uniforms with :func:`refgrad.estimate` on that noise.

:func:`check_same_estimates` is deterministic: the tolerance of row i, coordinate j is
:math:`64\,(ε_f \max(\max_{i'} |\hat g_{i'j}|, \max_{j'} |\hat g_{ij'}|) + Δ_{ij})`, with ε_f the
epsilon of the foreign dtype (the scale is the larger of the coordinate's and the row's largest
magnitude: a coordinate that is tiny in every row, as the gradient of a nearly impossible
category, is computed from terms of the row's size, and a foreign implementation that orders
them differently leaves an error of a few ε_f times the row scale there) and Δ the largest change
of refgrad's estimate when every uniform moves by ±ε_f·min(u, 1 − u) (the rounding of the noise)
or when the parameters move by ±ε_f(|ℓ| + 40), alternating in sign along the last axis (the
rounding of ℓ + G, the first operation on the noise; |G| < 40 for a Gumbel from any float uniform;
without it a float64 Gumbel-softmax written with ``jax.nn.softmax`` failed at τ = 0.01 and 10 by
270 and 120 ε of the gradient); for a foreign dtype coarser than float64 a row also matches when
it agrees with refgrad evaluated on the noise rounded to that dtype (an estimate discontinuous in
the noise flips there legitimately).
For the estimators with a temperature the tolerance is multiplied by 1/min(τ, 1): the terms
of the softmax_τ VJP are of size |∇f|/τ, and near a vertex the textbook form computes 1 − y_k
by subtraction (PyTorch's gumbel_softmax backward at τ = 0.01 is 9e-5 off, relatively, in a
coordinate of 2e-10, as the textbook float64 form is).  The factor 64
(:data:`SAME_TOLERANCE_FACTOR`) covers the cancellation of the usual
softmax VJP :math:`y ⊙ (g − ⟨y, g⟩)/τ`: at τ = 10, logits (50, −50, 0), the textbook float64
Gumbel-softmax (``tests/crosscheck/test_crosscheck_estimators.py``) and one written with ``jax.grad``
differ from refgrad by up to 24 and 28 ε times the row scale (ratios 0.37 and 0.43 of the
tolerance); a relative change of 1e-10 in one coordinate is still rejected.
"""
import math

import numpy as np

from refgrad._core.checks import as_float_array, describe
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import ESTIMATORS, estimate

from ._check_estimator import _computed_dtype, check_estimator  # noqa: F401  (check_estimator re-exported)
from ._verdict import Verdict

__all__ = ["check_estimator", "check_same_estimates", "SAME_TOLERANCE_FACTOR"]

#: c in the tolerance of :func:`check_same_estimates`.
SAME_TOLERANCE_FACTOR = 64.0


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
    if rtol is not None:
        if isinstance(rtol, (bool, np.bool_)) or not isinstance(rtol, (int, float, np.integer, np.floating)):
            raise ValueError(f"rtol must be None or a finite number > 0; got {describe(rtol)}")
        if not (math.isfinite(float(rtol)) and float(rtol) > 0):
            raise ValueError(f"rtol must be None or a finite number > 0; got {float(rtol)!r}")
    y = as_float_array(foreign, "foreign")
    computed = _computed_dtype(foreign, y)  # float32 results handed over as float64 are judged as float32
    eps = float(np.finfo(computed).eps)
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
        rounded = estimate(name, dist, f, noise=_rounded(noise, computed), **options)
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
            f"{SAME_TOLERANCE_FACTOR:g}·(eps·max(coordinate scale, row scale) + change under noise moved by eps), "
            f"eps = {eps:.3g}"
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
