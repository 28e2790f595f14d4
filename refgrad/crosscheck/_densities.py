r"""Cross-check of log-probabilities and log-densities: :func:`check_log_prob`.

A foreign implementation's values are compared, point by point, with refgrad's
float64 ones (:mod:`refgrad.distributions`, :mod:`refgrad.relaxations`) under a
tolerance derived from the dtypes of the values and of the points; a disagreement is
classified as a wrong value, a density w.r.t. another reference measure (a named
log-Jacobian), another normalising constant, or another convention at impossible
points.

Tolerance
---------
At point i, with ε_v the machine epsilon of the values' dtype and ε_x that of the
points' (0 for integer or boolean points),

.. math::
    \mathrm{tol}_i = c\,ε_v\,S_i + c\,(ε_x + δ_i)\,P_i, \qquad c = 16,

where :math:`S_i` is the condition scale of the formula (the sum of the magnitudes of
its terms, as in the accuracy bounds of :mod:`refgrad.relaxations`), :math:`P_i` the
sensitivity of the log-density to a relative perturbation of the point (to an
absolute one, scaled by :math:`|y_k|`, in log space) and :math:`δ_i` the
renormalisation applied to the point (below).  refgrad's own float64 error is at most
:math:`2ε_{64}S_i`; an implementation in another dtype and another order of the same
terms has a bound :math:`k\,ε_v S_i` with k a small count of roundings: c = 16 leaves a
factor of 4-8 above the largest ratio measured on refgrad's own formulas evaluated in
float32: a plain float32 ExpConcrete / Binary Concrete implementation (τ from 0.01 to 10,
logits of scale 1 to 50, 2000 points each) stays within 0.08 tolerances, i.e. an error of
at most 1.3 ε₃₂ S (``rtol`` replaces :math:`c\,ε_v`).

Renormalisation
---------------
Float32 points of the simplex do not sum to 1 to refgrad's 1e-9: each point is
promoted to float64 and renormalised (``x / Σx``, or ``y − logsumexp y``) when its
deviation is at most :data:`SIMPLEX_SLACK` · ε_x · (K + (max_k |ℓ_k| + 40)/τ), what the
rounding of the scores (ℓ + G)/τ and of the K coordinates in the points' dtype can explain
(:mod:`refgrad.crosscheck._rounding`: at τ = 0.01 the scores are in the thousands and
PyTorch's float64 samples are off by 1e-14); the count of renormalised points and the largest deviation are
reported in ``compared``.  Points further off are refused (``ValueError`` naming
``points``).

Boundary points
---------------
A relaxed point exactly on the boundary (x = 0 or 1, y = ±inf, a zero / -inf coordinate of a
simplex point: what float32 underflow and rounding produce, flush-to-zero included) is compared
with the density's limit there, finite or ±inf, and any other value (NaN included) is
``"wrong"``; points of infinite logits keep refgrad's -inf everywhere.  The limits:

* Binary Concrete, :math:`p(x) = τα x^{-τ-1}(1-x)^{-τ-1} / (α x^{-τ} + (1-x)^{-τ})^2`,
  :math:`α = e^ℓ`: as :math:`x \to 0` the first term of the denominator dominates, so
  :math:`p(x) \sim (τ/α)\,x^{τ-1}`; as :math:`x \to 1`, :math:`p(x) \sim τα\,(1-x)^{τ-1}`.
  log p at 0 and 1 is +inf for τ < 1, :math:`-ℓ` and :math:`ℓ` for τ = 1, −inf for τ > 1.  (A
  value of +inf at 0 and 1 -- TensorFlow Probability's -- is right for τ < 1 only.)
* logit space: the logistic density :math:`τσ(τy - ℓ)σ(ℓ - τy) \to 0` as :math:`y \to ±\infty`: −inf.
* Concrete, Lebesgue on :math:`x_1..x_{K-1}`, with m coordinates at 0: for m = 1 (coordinate z)
  :math:`\sum_k α_k x_k^{-τ} \sim α_z x_z^{-τ}` and :math:`p \sim C\,x_z^{τ(K-1)-1}`: +inf for
  τ(K−1) < 1, −inf for τ(K−1) > 1, and at τ(K−1) = 1 the finite
  :math:`\log((K-1)!) + (K-1)\log τ + (1-K)ℓ_z + \sum_{k \ne z}(ℓ_k - (τ+1)\log x_k)`.  For
  m ≥ 2, along :math:`x_z = ε^{a_z}` the density behaves like :math:`ε^{e}` with
  :math:`e \in [a_{\max}(Kτ - m(τ+1)),\, a_{\max}(τ(K-1) - 1))`: +inf when τ(K−1) ≤ 1, −inf when
  Kτ > m(τ+1); otherwise the limit depends on the direction of approach and the point is refused
  (``ValueError`` naming ``points``).
* ExpConcrete at −inf entries: w.r.t. the symmetric measure :math:`p \le C e^{τ(K-m) y_{\min}} \to 0`
  (−inf); w.r.t. Lebesgue on :math:`y_1..y_{K-1}`, log p = log p_Concrete + Σ_{k<K} y_k: −inf when
  :math:`y_K` is finite, the Concrete rule above when only :math:`y_K = -\infty`, −inf when
  :math:`y_K` and m − 1 others are −inf with τ(K − m) > 1, refused otherwise.

Each limit is tested against refgrad's density evaluated next to the boundary (1e-12 from it
for the binary law, 1e-8 and 1e-30 for simplex faces; ``tests/crosscheck/test_crosscheck_densities.py``).
The limit is discontinuous in τ at τ = 1 (binary) and τ(K−1) = 1: τ is taken as given, exactly.

Measured
--------
(``python -m pytest -q tests/crosscheck/test_crosscheck_densities.py``) refgrad's densities
evaluated at float64 points, with values and points rounded to float32, including
Concrete / ExpConcrete samples at τ = 0.1 and 0.01 (largest coordinate within 1e-8 of
1, coordinates down to float32 subnormals, whose one or two bits the tolerance
allows for): every point within tolerance, the largest error/tolerance ratio 0.01-0.02
(0 for float64 values at float64 points).  Off by log((K−1)!), by the
y_K Jacobian, by Σ log x_k, by log x + log(1−x): diagnosed "convention" or "measure"
with the right name in every test; NaN at −inf logits "convention", NaN at a finite
point "wrong"; (B, B) values for (B,) "shape".
"""
import math

import numpy as np
from scipy import special

from refgrad import relaxations
from refgrad._core.checks import InputTypeError, as_float_array, describe, first_index
from refgrad.distributions import Categorical
from refgrad.distributions.families import _log_sigmoid

from ._rounding import SIMPLEX_SLACK, simplex_allowance
from ._verdict import Verdict

__all__ = ["check_log_prob", "FAMILIES", "TOLERANCE_FACTOR", "SIMPLEX_SLACK"]

FAMILIES = ("bernoulli", "categorical", "binary_concrete", "logit_binary_concrete", "concrete", "exp_concrete")
#: c in tol = c ε S (see the module docstring).
TOLERANCE_FACTOR = 16.0
#: a simplex point may deviate by SIMPLEX_SLACK · eps · (K + (max|ℓ| + 40)/τ) and still be renormalised
#: (refgrad.crosscheck._rounding.simplex_allowance).
_SIMPLEX = ("concrete", "exp_concrete")
_CATEGORICAL = ("categorical", "concrete", "exp_concrete")


def _eps(dtype):
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else 0.0


def _input_dtype(x):
    raw = x if isinstance(x, np.ndarray) else np.asarray(x)
    return raw.dtype if raw.dtype.kind == "f" else np.dtype(np.float64)


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _check_choice(family, measure):
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}; got {describe(family)}")
    if family == "exp_concrete":
        measure = "symmetric" if measure is None else measure
        if measure not in ("symmetric", "lebesgue"):
            raise ValueError(f"measure must be 'symmetric' or 'lebesgue' for family 'exp_concrete'; got "
                             f"{describe(measure)}")
    elif measure is not None:
        raise ValueError(f"measure applies only to family 'exp_concrete'; got measure={describe(measure)} "
                         f"for family {family!r}")
    return measure


def _check_tau(tau, family):
    if family in ("bernoulli", "categorical"):
        if tau is not None:
            raise ValueError(f"tau applies only to the relaxed families; got tau={describe(tau)} for family {family!r}")
        return None
    if tau is None:
        raise ValueError(f"family {family!r} needs tau (a float > 0, or an array of them broadcast to the batch)")
    if isinstance(tau, (bool, np.bool_)):
        raise InputTypeError(f"tau must be a finite real number > 0 or an array of them; got {tau!r}")
    t = as_float_array(tau, "tau")
    bad = ~(np.isfinite(t) & (t > 0.0))
    if bad.any():
        where = first_index(bad)
        raise ValueError(f"tau must be finite and > 0; got {float(t[where])!r} at index {where}")
    return t


def _check_logits(logits, family):
    ell = as_float_array(logits, "logits")
    if np.isnan(ell).any():
        where = first_index(np.isnan(ell))
        raise ValueError(f"logits must not contain NaN (allowed: finite values or +/-inf); NaN at index {where}")
    if family in _CATEGORICAL:
        if ell.ndim < 1 or ell.shape[-1] < 2:
            raise ValueError(f"logits must have shape (..., K) with K >= 2 for family {family!r}; got {ell.shape}")
        dead = np.all(ell == -np.inf, axis=-1)
        if dead.any():
            where = first_index(dead)
            raise ValueError(f"logits must have at least one entry > -inf on the last axis; all -inf at {where}")
    return ell


def _categorical_points(points, K):
    """Indices (...) from integer points, or from one-hot points (..., K)."""
    raw = np.asarray(points)
    if raw.dtype.kind in "iu":
        bad = (raw < 0) | (raw >= K)
        if bad.any():
            where = first_index(bad)
            raise ValueError(f"points must be category indices in [0, {K - 1}]; got {int(raw[where])} at index {where}")
        return raw.astype(np.intp)
    pts = as_float_array(points, "points", allow_bool=True)
    if pts.ndim < 1 or pts.shape[-1] != K:
        raise ValueError(f"points must be integer indices or one-hot rows with last axis K = {K}; got shape "
                         f"{pts.shape}, dtype {raw.dtype}")
    if (((pts != 0.0) & (pts != 1.0)).any()) or (pts.sum(axis=-1) != 1.0).any():
        bad = ((pts != 0.0) & (pts != 1.0)).any(axis=-1) | (pts.sum(axis=-1) != 1.0)
        where = first_index(bad)
        raise ValueError(f"points must be one-hot along the last axis (one 1, zeros elsewhere); row {where} is "
                         f"{pts[where].tolist()}")
    return np.argmax(pts, axis=-1).astype(np.intp)


def _relaxed_points(points, family, ell=None, tau=None):
    """float64 points, renormalised on the simplex; returns (points, deviation or None, allowed)."""
    eps_x = _eps(_input_dtype(points))
    pts = as_float_array(points, "points")
    if family in ("binary_concrete",):
        bad = ~((pts >= 0.0) & (pts <= 1.0))
        if bad.any():
            raise ValueError(f"points must lie in [0, 1] for family 'binary_concrete' (0 and 1 are boundary points, "
                             f"checked against the density's limit); got {float(pts[first_index(bad)])!r} at index "
                             f"{first_index(bad)} (use 'logit_binary_concrete' for points in logit space)")
        return pts, None, 0.0
    if family == "logit_binary_concrete":
        if np.isnan(pts).any():
            where = first_index(np.isnan(pts))
            raise ValueError(f"points must not be NaN for family {family!r} (±inf are boundary points); NaN at index "
                             f"{where}")
        return pts, None, 0.0
    if pts.ndim < 1 or pts.shape[-1] < 2:
        raise ValueError(f"points must have shape (..., K) with K >= 2 for family {family!r}; got {pts.shape}")
    K = pts.shape[-1]
    allowed = simplex_allowance(eps_x, K, ell, tau)
    if family == "concrete":
        bad = ~((pts >= 0.0) & (pts < np.inf))
        if bad.any():
            raise ValueError(f"points must lie in the closed simplex (every entry >= 0, zeros on its faces) for "
                             f"family 'concrete'; got {float(pts[first_index(bad)])!r} at index {first_index(bad)}")
        empty = ~(pts > 0.0).any(axis=-1)
        if empty.any():
            raise ValueError(f"points must have an entry > 0 on the last axis for family 'concrete'; all zero at "
                             f"{first_index(empty)}")
        total = pts.sum(axis=-1, keepdims=True)
        dev = np.abs(total[..., 0] - 1.0)
        fixed = pts / total
    else:
        bad = np.isnan(pts) | np.isposinf(pts)
        if bad.any():
            where = first_index(bad)
            raise ValueError(f"points must be finite or -inf (a face of the simplex) for family 'exp_concrete'; got "
                             f"{float(pts[where])!r} at {where}")
        empty = np.isneginf(pts).all(axis=-1)
        if empty.any():
            raise ValueError(f"points must have an entry > -inf on the last axis for family 'exp_concrete'; all -inf "
                             f"at {first_index(empty)}")
        lse = special.logsumexp(pts, axis=-1, keepdims=True)
        dev = np.abs(lse[..., 0])
        fixed = pts - lse
    if (dev > allowed).any():
        where = first_index(dev > allowed)
        raise ValueError(f"points must lie on the simplex up to the rounding of their dtype ({_input_dtype(points)}: "
                         f"deviation <= {allowed:.3g} = {SIMPLEX_SLACK:g} eps (K + (max|logit| + 40)/min tau)); "
                         f"point {where} deviates by "
                         f"{float(dev[where]):.3g} (largest deviation {float(dev.max()):.3g})")
    return fixed, dev, allowed


# ---------------------------------------------------------------------------
# references: (log p, condition scale S, sensitivity P, {name: log-Jacobian})
# ---------------------------------------------------------------------------


def _by_tau(fn, pts, ell, tau):
    """fn(points, logits, scalar tau) on the groups of equal tau (flat leading axis)."""
    out = np.empty(pts.shape[0])
    for t in np.unique(tau):
        rows = tau == t
        out[rows] = fn(pts[rows], ell[rows], float(t))
    return out


def _finite(a):
    return np.where(np.isfinite(a), a, 0.0)


def _ref_bernoulli(b, ell, tau, measure):
    ref = np.where(b == 1.0, _log_sigmoid(ell), _log_sigmoid(-ell))
    return ref, np.abs(_finite(ell)) + np.abs(_finite(ref)) + 1.0, np.zeros_like(ref), {}


def _ref_categorical(idx, ell, tau, measure):
    table = Categorical(ell).log_probs
    ref = table[np.arange(ell.shape[0]), idx]
    chosen = _finite(ell[np.arange(ell.shape[0]), idx])
    top = _finite(np.max(ell, axis=-1))
    S = np.abs(chosen) + np.abs(top) + np.abs(_finite(ref)) + math.log(ell.shape[-1]) + 1.0
    return ref, S, np.zeros_like(ref), {}


def _ref_binary(x, ell, tau, measure):
    ref = _by_tau(relaxations.binary_concrete_log_density, x, ell, tau)
    lx, l1x = np.log(x), np.log1p(-x)
    fl = _finite(ell)
    t = fl - tau * (lx - l1x)
    S = np.abs(np.log(tau)) + np.abs(lx) + np.abs(l1x) + np.abs(fl) + tau * np.abs(lx - l1x) + 2.0
    G = np.abs(-1.0 + x / (1.0 - x) - tau * np.tanh(-t / 2.0) / (1.0 - x))  # |x ∂/∂x|; 1 - 2σ(t) = tanh(-t/2)
    jac = lx + l1x
    cands = {"density of the logit y = logit(x) (the LogitRelaxedBernoulli density; + log x + log(1-x))": jac,
             "density of ℓ + L = τ·logit(x) (+ log x + log(1-x) - log τ)": jac - np.log(tau)}
    return ref, S, G, cands


def _ref_logit_binary(y, ell, tau, measure):
    fl = _finite(ell)
    t = fl - tau * y
    a = np.abs(t)
    ref = np.where(np.isfinite(ell), np.log(tau) - a - 2.0 * np.log1p(np.exp(-a)), -np.inf)
    S = np.abs(np.log(tau)) + np.abs(fl) + tau * np.abs(y) + a + 2.0
    G = tau * np.abs(np.tanh(-t / 2.0))  # |∂/∂y|
    cands = {"density of x = σ(y) on (0, 1) (the RelaxedBernoulli density; - log σ(y) - log σ(-y))":
             -(_log_sigmoid(y) + _log_sigmoid(-y)),
             "density of τ·y = ℓ + L (Logistic(ℓ, 1); - log τ)": -np.log(tau)}
    return ref, S, G, cands


def _simplex_terms(log_x, ell, tau):
    """a = ℓ - τ log x, softmax weights w of a, and the common part of the condition scale."""
    fl = _finite(ell)
    tau = tau[:, None]
    a = fl - tau * log_x
    w = special.softmax(a, axis=-1)
    K = log_x.shape[-1]
    S = (math.lgamma(K) + (K - 1) * np.abs(np.log(tau[:, 0])) + np.sum(np.abs(fl) + tau * np.abs(log_x), axis=-1)
         + K * np.max(np.abs(a), axis=-1) + K * math.log(K) + 1.0)
    return w, S


def _ref_concrete(x, ell, tau, measure):
    ref = _by_tau(relaxations.concrete_log_density, x, ell, tau)
    lx = np.log(x)
    w, S = _simplex_terms(lx, ell, tau)
    K = x.shape[-1]
    S = S + np.sum(np.abs(lx), axis=-1)
    G = np.abs(-tau[:, None] - 1.0 + K * tau[:, None] * w)  # |∂/∂ log x_k|
    cands = {"ExpConcrete density of y = log x, symmetric measure (+ Σ_k log x_k)": lx.sum(axis=-1),
             "ExpConcrete density of y = log x, Lebesgue on y_1..y_{K-1} (+ Σ_{k<K} log x_k)":
             lx[..., :-1].sum(axis=-1)}
    return ref, S, G, cands


def _ref_exp_concrete(y, ell, tau, measure):
    ref = _by_tau(lambda p, lg, t: relaxations.exp_concrete_log_density(p, lg, t, measure=measure), y, ell, tau)
    w, S = _simplex_terms(y, ell, tau)
    K = y.shape[-1]
    grad = -tau[:, None] + K * tau[:, None] * w
    if measure == "lebesgue":
        grad[:, -1] -= 1.0
        S = S + np.abs(y[:, -1])
    G = np.abs(grad)  # |∂/∂y_k|
    if measure == "symmetric":
        cands = {"ExpConcrete density w.r.t. Lebesgue on y_1..y_{K-1} instead of the symmetric measure (- y_K)":
                 -y[:, -1],
                 "Concrete density of x = exp(y) w.r.t. Lebesgue on x_1..x_{K-1} (- Σ_k y_k)": -y.sum(axis=-1)}
    else:
        cands = {"ExpConcrete density w.r.t. the symmetric measure instead of Lebesgue (+ y_K)": y[:, -1],
                 "Concrete density of x = exp(y) w.r.t. Lebesgue on x_1..x_{K-1} (- Σ_{k<K} y_k)":
                 -y[:, :-1].sum(axis=-1)}
    return ref, S, G, cands


_REFERENCES = {"bernoulli": _ref_bernoulli, "categorical": _ref_categorical, "binary_concrete": _ref_binary,
               "logit_binary_concrete": _ref_logit_binary, "concrete": _ref_concrete,
               "exp_concrete": _ref_exp_concrete}


# ---------------------------------------------------------------------------
# boundary points: the density's limit (see the module docstring for the derivation)
# ---------------------------------------------------------------------------


def _sign_limit(c):
    """+inf where the density behaves like (distance)^c with c < 0, -inf where c > 0, NaN where c = 0."""
    return np.where(c < 0, np.inf, np.where(c > 0, -np.inf, np.nan))


def _face_value(log_x, ell, tau, z):
    """Finite limit of the Concrete log-density at a point with the single zero coordinate ``z``, τ(K-1) = 1.

    log((K-1)!) + (K-1) log τ + (1-K) ℓ_z + Σ_{k≠z} (ℓ_k - (τ+1) log x_k), and its condition scale.
    """
    K = ell.shape[-1]
    rows = np.arange(ell.shape[0])
    other = np.ones(ell.shape, dtype=bool)
    other[rows, z] = False
    lx = np.where(other, log_x, 0.0)
    terms = np.where(other, ell - (tau[:, None] + 1.0) * lx, 0.0)
    value = math.lgamma(K) + (K - 1) * np.log(tau) + (1 - K) * ell[rows, z] + terms.sum(axis=-1)
    scale = (math.lgamma(K) + (K - 1) * np.abs(np.log(tau)) + K * np.abs(ell[rows, z])
             + np.sum(np.where(other, np.abs(ell) + (tau[:, None] + 1.0) * np.abs(lx), 0.0), axis=-1) + 1.0)
    return value, scale


def _simplex_limit(m, tau, K, value, scale, where):
    """Limit at a point with ``m`` zero coordinates (exponent rules below), refusing the path-dependent ones.

    m = 1: the density behaves like x_z^(τ(K-1) - 1) (finite ``value`` at τ(K-1) = 1); m >= 2: +inf when
    τ(K-1) <= 1, -inf when Kτ > m(τ + 1), otherwise no limit (it depends on the direction of approach).
    """
    c = tau * (K - 1) - 1.0
    one = np.where(c == 0.0, value, _sign_limit(c))
    many = np.where(c <= 0.0, np.inf, np.where(K * tau > m * (tau + 1.0), -np.inf, np.nan))
    limit = np.where(m == 1, one, many)
    none = where & (m >= 2) & np.isnan(many)
    if none.any():
        i = int(np.argmax(none))
        raise ValueError(f"points must not lie where the density has no limit: flat point {i} has {int(m[i])} zero "
                         f"coordinates with tau (K-1) = {tau[i] * (K - 1):.6g} > 1 and K tau = {K * tau[i]:.6g} <= "
                         f"m (tau + 1) = {m[i] * (tau[i] + 1):.6g}, where the limit depends on the direction of "
                         f"approach")
    return limit, np.where((m == 1) & (c == 0.0), scale, 1.0)


def _boundary(family, pts, ell, tau, measure, eps_x, dev):
    """(edge, strict, limit, S, P, points to evaluate) for the flat points ``pts``.

    ``edge``: boundary points (x = 0 or 1, y = ±inf, a zero / -inf coordinate); ``strict``: those with
    finite logits, whose value must be the density's limit ``limit`` (condition scale ``S``, point
    sensitivity ``P``); boundary points of infinite logits keep refgrad's -inf.  The returned points
    have every boundary point replaced by an interior placeholder, so the references evaluate.
    """
    n = pts.shape[0]
    none = np.zeros(n, dtype=bool)
    if family in ("bernoulli", "categorical"):
        return none, none, np.zeros(n), np.zeros(n), np.zeros(n), pts
    if family == "binary_concrete":
        edge = (pts == 0.0) | (pts == 1.0)
        strict = edge & np.isfinite(ell)
        fl = _finite(ell)
        limit = np.where(tau == 1.0, np.where(pts == 0.0, -fl, fl), _sign_limit(tau - 1.0))
        return edge, strict, limit, np.abs(fl) + 1.0, np.zeros(n), np.where(edge, 0.5, pts)
    if family == "logit_binary_concrete":
        edge = np.isinf(pts)
        return edge, edge & np.isfinite(ell), np.full(n, -np.inf), np.ones(n), np.zeros(n), np.where(edge, 0.0, pts)
    K = pts.shape[-1]
    zero = (pts == 0.0) if family == "concrete" else np.isneginf(pts)
    m = zero.sum(axis=-1)
    edge = m > 0
    strict = edge & np.isfinite(ell).all(axis=-1)
    safe = np.where(edge[:, None], 1.0 / K if family == "concrete" else -math.log(K), pts)
    limit, S, P = np.full(n, -np.inf), np.ones(n), np.zeros(n)
    if not strict.any():
        return edge, strict, limit, S, P, safe
    with np.errstate(divide="ignore"):
        log_x = np.log(pts) if family == "concrete" else pts
    z = np.argmax(zero, axis=-1)
    value, scale = _face_value(log_x, _finite(ell), tau, z)
    free = ((tau + 1.0) * (K - 1) * (eps_x + dev))  # the nonzero coordinates' rounding, where the limit is finite
    if family == "concrete":
        limit, S = _simplex_limit(m, tau, K, value, scale, strict)
        P = np.where(np.isfinite(limit), free, 0.0)
    elif measure == "lebesgue":
        last = zero[:, -1]
        lead = np.where(zero[:, :-1], 0.0, pts[:, :-1]).sum(axis=-1)
        c = tau * (K - m) - 1.0
        with np.errstate(invalid="ignore"):
            limit, S = _simplex_limit(np.where(last, m, 1), tau, K, value + lead, scale + np.abs(lead),
                                      strict & last & (m == 1))
            # y_K = -inf with m >= 2: -inf when τ(K - m) > 1, otherwise no limit
            bad = strict & last & (m >= 2) & ~(c > 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"points must not lie where the density has no limit: flat point {i} has y_K = -inf "
                                 f"and {int(m[i])} -inf coordinates with tau (K - m) = {tau[i] * (K - m[i]):.6g} <= 1 "
                                 f"(Lebesgue measure on y_1..y_(K-1)), where the limit depends on the direction of "
                                 f"approach")
        limit = np.where(last, np.where(m >= 2, -np.inf, limit), -np.inf)
        S = np.where(last & (m == 1), S, 1.0)
        P = np.where(np.isfinite(limit), free, 0.0)
    return edge, strict, np.where(strict, limit, -np.inf), S, P, safe


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------


def _match_measure(err, tol, cands, eps_v, rows):
    """Name of the log-Jacobian J with |err - J| within tolerance at every finite row, or None."""
    for name, jac in cands.items():
        jac = np.broadcast_to(jac, err.shape)
        slack = tol + TOLERANCE_FACTOR * max(eps_v, _eps(np.float64)) * np.abs(jac)
        if rows.any() and np.all(np.abs(err[rows] - jac[rows]) <= slack[rows]):
            return name
    return None


def _known_constants(c, key, family, K):
    """Names of the constants that ``c`` equals (within 1e-6 relative), for one parameter group."""
    known = {}
    if family in _CATEGORICAL and family != "categorical":
        known["log((K-1)!)"] = math.lgamma(K)
        known["(K-1) log τ"] = (K - 1) * math.log(key[-1])
        known["log K"] = math.log(K)
    if family in ("binary_concrete", "logit_binary_concrete", "concrete", "exp_concrete"):
        known["log τ"] = math.log(key[-1])
    if family == "categorical":
        known["logsumexp(logits)"] = float(special.logsumexp(key))
    if family == "bernoulli":
        known["log 2"] = math.log(2.0)
    return [f"{sign}{name}" for name, v in known.items() for sign, s in (("+", 1.0), ("-", -1.0))
            if abs(c - s * v) <= 1e-6 * max(1.0, abs(v))]


def _match_constant(err, tol, keys, rows, family, K):
    """(constants per group, names) if err is constant within tolerance on each parameter group, else None."""
    if not rows.any():
        return None
    uniq, inverse = np.unique(keys[rows], axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    e, t = err[rows], tol[rows]
    if np.bincount(inverse).max() < 2:
        return None  # one point per parameter group: a constant is indistinguishable from anything
    consts, names = [], []
    for g in range(uniq.shape[0]):
        mine = inverse == g
        c = float(np.median(e[mine]))
        if np.any(np.abs(e[mine] - c) > 2.0 * t[mine]):
            return None
        consts.append(c)
        names.append(", ".join(_known_constants(c, uniq[g], family, K)) or "no known constant")
    return consts, names


def _classify(v, ref, tol, cands, keys, eps_v, family, K, strict=None):
    """(diagnosis, sentence, extra compared) of the per-point comparison.

    ``strict``: boundary points of finite logits, where ``ref`` is the density's limit (finite or
    ±inf) and the value must be that limit (exactly when infinite, within ``tol`` when finite);
    anything else there is wrong.  The other rules apply to the other points.
    """
    strict = np.zeros(v.shape, dtype=bool) if strict is None else strict
    with np.errstate(invalid="ignore"):
        at_limit = (v == ref) | (np.isfinite(v) & np.isfinite(ref) & (np.abs(v - ref) <= tol))
    off_limit = strict & ~at_limit
    both = np.isfinite(v) & np.isfinite(ref) & ~strict
    err = np.where(both, v - ref, 0.0)
    impossible = (ref == -np.inf) & ~strict
    conv = impossible & ~(v == -np.inf) & ~np.isfinite(v)
    finite_at_impossible = impossible & np.isfinite(v)
    nonfinite_at_possible = np.isfinite(ref) & ~np.isfinite(v) & ~strict
    beyond = both & (np.abs(err) > tol)
    extra = {"beyond tolerance": int(beyond.sum()), "NaN or +inf at impossible points": int(conv.sum()),
             "non-finite at possible points": int(nonfinite_at_possible.sum()),
             "finite at impossible points": int(finite_at_impossible.sum()),
             "boundary points": int(strict.sum()), "off the limit at boundary points": int(off_limit.sum())}
    conv_text = (f" At {int(conv.sum())} impossible point(s) (refgrad: -inf, e.g. an infinite logit or a "
                 "zero-probability category) the values are NaN or +inf instead of -inf, a convention."
                 if conv.any() else "")
    if off_limit.any():
        i = int(np.argmax(off_limit))
        kinds = sorted({("+inf" if r > 0 else "-inf") if np.isinf(r) else "finite" for r in ref[off_limit]})
        text = (f"{int(off_limit.sum())} of the {int(strict.sum())} boundary point(s) (x exactly 0 or 1, y = ±inf, "
                f"a face of the simplex), where the density has a limit ({', '.join(kinds)} here), get another value: "
                f"the first, flat point {i}, has limit {ref[i]!r} and value {v[i]!r}. The limit follows from the "
                "density's behaviour near the boundary (e.g. the Binary Concrete density is ~ (τ/e^ℓ) x^(τ-1) as "
                "x -> 0: +inf for τ < 1, e^-ℓ at τ = 1, 0 for τ > 1): wrong values." + conv_text)
        return "wrong", text, extra
    if nonfinite_at_possible.any() or finite_at_impossible.any():
        text = (f"{int(nonfinite_at_possible.sum())} value(s) are NaN or infinite where refgrad's log-density is "
                f"finite, and {int(finite_at_impossible.sum())} are finite at impossible points (refgrad: -inf): "
                "wrong values." + conv_text)
        return "wrong", text, extra
    if beyond.any():
        name = _match_measure(err, tol, cands, eps_v, both)
        if name is not None:
            extra["measure"] = name
            return "measure", (f"At every finite point the values differ from refgrad's by a log-Jacobian: they are "
                               f"the {name}, a density w.r.t. another reference measure." + conv_text), extra
        const = _match_constant(err, tol, keys, both, family, K)
        if const is not None:
            consts, names = const
            extra["constant"] = consts[0] if len(consts) == 1 else np.array(consts[:6])
            extra["constant is"] = names[0] if len(names) == 1 else "; ".join(names[:6])
            return "convention", (f"The difference is constant across the points of each parameter group "
                                  f"({len(consts)} group(s); first: {consts[0]:.10g}, {names[0]}): another "
                                  "normalising constant." + conv_text), extra
        return "wrong", (f"{int(beyond.sum())} of {int(both.sum())} finite value(s) differ from refgrad's beyond "
                         "tolerance, by no known log-Jacobian and no constant: wrong values." + conv_text), extra
    if conv.any():
        return "convention", conv_text.strip(), extra
    return "agrees", "", extra


def _worst(v, ref, tol, pts, shape, count=10):
    both = np.isfinite(v) & np.isfinite(ref)
    with np.errstate(invalid="ignore"):
        err = np.where(both, np.abs(v - ref), np.where(v == ref, 0.0, np.inf))
        score = np.where(err == 0.0, 0.0, err / np.maximum(tol, 1e-300))
    order = np.argsort(-score, kind="stable")[:count]
    out = []
    for i in order:
        if score[i] <= 1.0 and out:
            break
        point = pts[i]
        out.append({"index": tuple(int(j) for j in np.unravel_index(i, shape)) if shape else (),
                    "point": point.tolist() if np.ndim(point) else float(point), "expected": float(ref[i]),
                    "observed": float(v[i]), "error": float(err[i]), "tolerance": float(tol[i])})
    return out


# ---------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------


def _bernoulli_points(points):
    b = as_float_array(points, "points", allow_bool=True)
    bad = (b != 0.0) & (b != 1.0)
    if bad.any():
        raise ValueError(f"points must be bits (0 or 1) for family 'bernoulli'; got {float(b[first_index(bad)])!r} at "
                         f"index {first_index(bad)}")
    return b


def _points(points, family, K, ell=None, tau=None):
    """(points, batch shape, deviation or None, allowed deviation)."""
    if family == "bernoulli":
        b = _bernoulli_points(points)
        return b, b.shape, None, 0.0
    if family == "categorical":
        idx = _categorical_points(points, K)
        return idx, idx.shape, None, 0.0
    pts, dev, allowed = _relaxed_points(points, family, ell, tau)
    if family in _SIMPLEX:
        if pts.shape[-1] != K:
            raise ValueError(f"points must have the same last axis (categories) as logits: got points.shape="
                             f"{pts.shape}, logits K = {K}")
        return pts, pts.shape[:-1], dev, allowed
    return pts, pts.shape, None, 0.0


def _batch_shape(batch, ell, tau, family):
    shapes = [("points", batch), ("logits", ell.shape[:-1] if family in _CATEGORICAL else ell.shape)]
    if tau is not None:
        shapes.append(("tau", tau.shape))
    try:
        return tuple(np.broadcast_shapes(*(s for _, s in shapes)))
    except ValueError:
        text = ", ".join(f"{n} {s}" for n, s in shapes)
        raise ValueError(f"the batch shapes of points, logits and tau do not broadcast (NumPy rules): {text}") from None


def _rounding(pts, family, dtype, dev):
    """Perturbation of each coordinate that the points' dtype and the renormalisation allow.

    Relative for points in (0, 1) or on the simplex: ``eps + (smallest subnormal) / x`` (a subnormal
    float32 carries one or two bits), plus the renormalisation ``dev``; absolute for log-points:
    ``eps (|y| + 1) + dev``.  Zero for the discrete families.
    """
    if family in ("bernoulli", "categorical"):
        return np.zeros(pts.shape[0])
    dtype = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).smallest_subnormal)
    d = dev[:, None] if pts.ndim == 2 else dev
    if family in ("logit_binary_concrete", "exp_concrete"):
        return eps * (np.abs(pts) + 1.0) + d
    return eps + tiny / pts + d


def _flat(arr, shape, trailing=()):
    return np.array(np.broadcast_to(arr, tuple(shape) + tuple(trailing)), order="C").reshape((-1,) + tuple(trailing))


def check_log_prob(values, points, logits, tau=None, family="categorical", measure=None, *, rtol=None):
    r"""Compare a foreign implementation's log-probabilities / log-densities with refgrad's float64 ones.

    Families and their references (elementwise over the broadcast batch shape of
    ``points``, ``logits`` and ``tau``):

    * ``"bernoulli"``: bits 0/1, :math:`\log σ(±ℓ)` (``values`` per bit, not summed);
    * ``"categorical"``: integer indices (...) or one-hot rows (..., K), logits (..., K):
      :math:`ℓ_b - \mathrm{logsumexp}\,ℓ`;
    * ``"binary_concrete"``: x in [0, 1], :func:`refgrad.relaxations.binary_concrete_log_density`;
    * ``"logit_binary_concrete"``: :math:`y = (ℓ + L)/τ` on ℝ (L standard logistic), w.r.t. Lebesgue:
      :math:`\log p(y) = \log τ + \log σ(ℓ - τy) + \log σ(τy - ℓ)` (the logistic density
      :math:`σ(z)σ(-z)` at :math:`z = τy - ℓ`, times :math:`dz/dy = τ`);
    * ``"concrete"``: points of the simplex (..., K),
      :func:`refgrad.relaxations.concrete_log_density` (Lebesgue on the first K−1 coordinates);
    * ``"exp_concrete"``: log-points :math:`y = \log x`,
      :func:`refgrad.relaxations.exp_concrete_log_density` with ``measure`` ``"symmetric"``
      (default, as PyTorch's and TFP's ``ExpRelaxedCategorical``) or ``"lebesgue"``.

    Tolerance and renormalisation: see the module docstring (c = 16; simplex points
    within what the rounding of their dtype explains are renormalised in float64 and counted).

    Boundary points (x = 0 or 1, y = ±inf, zeros / −inf entries of simplex points) are compared
    with the density's limit there (module docstring): +inf for the Binary Concrete at τ < 1,
    :math:`\mp ℓ` at τ = 1, −inf at τ > 1; an infinite limit must be matched exactly, a finite one
    within the tolerance; anything else is ``"wrong"``.  Simplex points where the limit depends on
    the direction of approach are refused.

    Diagnosis: ``"shape"`` (values not of the broadcast batch shape); ``"wrong"`` (NaN or
    inf where refgrad is finite, finite where refgrad is −inf, or a discrepancy no rule
    below explains); ``"measure"`` (the discrepancy equals, within tolerance at every
    finite point, a named log-Jacobian: the other ExpConcrete measure, Concrete vs
    ExpConcrete, (0, 1) vs logit space); ``"convention"`` (the discrepancy is constant on
    each group of points with equal parameters -- another normalising constant, reported
    and named when it is log((K−1)!), (K−1) log τ, log τ, log K or logsumexp ℓ -- or the
    only failures are NaN / +inf at impossible points, where refgrad gives −inf).

    Parameters
    ----------
    values : array_like
        The foreign log-probabilities; float32 or float64 (its dtype sets ε_v).  NaN allowed.
    points : array_like
        Where they were evaluated, in the foreign dtype (sets ε_x); boundary points allowed.
    logits : array_like
        ±inf allowed (refgrad's conventions); no NaN.
    tau : float or array_like, optional
        Temperature(s) > 0 for the relaxed families (broadcast to the batch shape); None otherwise.
    family : str
        One of :data:`FAMILIES`.
    measure : {"symmetric", "lebesgue"}, optional
        Only for ``"exp_concrete"``.
    rtol : float, optional
        Replaces c·ε_v in the tolerance.

    Returns
    -------
    Verdict
        Deterministic (``pvalue`` None); ``statistic`` is the largest error / tolerance.
    """
    measure = _check_choice(family, measure)
    tau_arr = _check_tau(tau, family)
    ell = _check_logits(logits, family)
    if rtol is not None and not (isinstance(rtol, (int, float, np.floating)) and np.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be a finite number > 0 or None; got {describe(rtol)}")
    eps_v, eps_x = _eps(_input_dtype(values)), _eps(np.asarray(points).dtype)
    vals = as_float_array(values, "values")
    K = ell.shape[-1] if family in _CATEGORICAL else 1
    pts, batch, dev, allowed = _points(points, family, K, ell, tau_arr)
    shape = _batch_shape(batch, ell, tau_arr, family)
    n = int(np.prod(shape, dtype=np.int64))
    check = "check_log_prob"
    test = f"pointwise comparison with refgrad's float64 {family} log-density, dtype-derived tolerance"
    if vals.shape != shape:
        return Verdict(check=check, passed=False, diagnosis="shape", test=test, statistic=None, pvalue=None,
                       alpha=None, n=n, compared={"expected shape": str(shape), "actual shape": str(vals.shape)},
                       explanation=f"values have shape {vals.shape}, but points, logits and tau broadcast to the "
                                   f"batch shape {shape}: one value per point is expected (a {vals.shape} result "
                                   "for batched parameters usually means the batch was broadcast twice).")
    if n == 0:
        raise ValueError(f"points, logits and tau broadcast to the empty batch shape {shape}: nothing to compare")
    trailing = (K,) if family in _SIMPLEX else ()
    pts_f = _flat(pts, shape, trailing)
    ell_f = _flat(ell, shape, (K,) if family in _CATEGORICAL else ())
    tau_f = _flat(tau_arr, shape) if tau_arr is not None else None
    dev_f = _flat(dev, shape) if dev is not None else np.zeros(n)
    v = vals.reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        edge, strict, limit, S_edge, P_edge, pts_eval = _boundary(family, pts_f, ell_f, tau_f, measure, eps_x, dev_f)
        ref, S, G, cands = _REFERENCES[family](pts_eval, ell_f, tau_f, measure)
    P = np.sum(G * _rounding(pts_eval, family, np.asarray(points).dtype, dev_f), axis=-1) if G.ndim == 2 else \
        G * _rounding(pts_eval, family, np.asarray(points).dtype, dev_f)
    ref, S, P = np.where(strict, limit, ref), np.where(strict, S_edge, S), np.where(strict, P_edge, P)
    cv = TOLERANCE_FACTOR * eps_v if rtol is None else float(rtol)
    tol = cv * S + TOLERANCE_FACTOR * P
    keys = ell_f.reshape(n, -1) if tau_f is None else np.column_stack([ell_f.reshape(n, -1), tau_f])
    with np.errstate(invalid="ignore"):  # inf - inf at impossible points is masked out
        diagnosis, text, extra = _classify(v, ref, tol, cands, keys, eps_v, family, K, strict)
        worst = _worst(v, ref, tol, pts_f, shape)
    stat = worst[0]["error"] / max(worst[0]["tolerance"], 1e-300) if worst else 0.0
    compared = {"values dtype eps": eps_v, "points dtype eps": eps_x, "tolerance factor c": cv / max(eps_v, 1e-300)
                if rtol is None else None, "largest error": float(worst[0]["error"]) if worst else 0.0,
                "largest error / tolerance": stat}
    compared.update(extra)
    if dev is not None:
        compared.update({"renormalised points": int((dev > 0).sum()), "largest simplex deviation": float(dev.max()),
                         "allowed deviation": allowed})
    renorm = (f" {int((dev > 0).sum())} point(s) were renormalised onto the simplex in float64 (largest deviation "
              f"{float(dev.max()):.3g}, allowed {allowed:.3g})." if dev is not None and (dev > 0).any() else "")
    head = (f"{n} value(s) of the {family} log-density" + (f" ({measure} measure)" if measure else "") +
            f" compared with refgrad's float64 ones; tolerance {TOLERANCE_FACTOR:g}·eps·S + "
            f"{TOLERANCE_FACTOR:g}·(eps_points + renormalisation)·P, largest error {compared['largest error']:.3g} "
            f"({stat:.3g} tolerances).")
    body = text or "All values agree within tolerance."
    return Verdict(check=check, passed=diagnosis == "agrees", diagnosis=diagnosis, test=test, statistic=float(stat),
                   pvalue=None, alpha=None, n=n, compared=compared,
                   worst=worst if diagnosis != "agrees" else worst[:3], explanation=f"{head}{renorm} {body}")
