"""Random number handling (SPEC 7) and the noise transforms of refgrad.

Randomness enters refgrad in exactly one place: :func:`uniform` draws float64
uniforms strictly inside (0, 1) from a :class:`numpy.random.Generator` obtained
with :func:`as_generator`.  Everything else in this module is a deterministic
function of such uniforms, so every sampler can be checked against a NumPy twin
on the same uniforms and two implementations can be compared sample by sample.

Two layers, as everywhere in refgrad: public functions check and convert their
inputs and call private ``_name`` kernels compiled with :func:`refgrad._core.jit.jit`.
The scalar helpers ``_log_sigmoid``, ``_softplus``, ``_log_ndtr``, ``_ndtri`` and
``_ndtri_exp`` and the normal-tail helpers of the conditional normal
(``_hazard_excess`` = λ(x) − x, ``_log_mills`` = log(Q/φ), ``_excess_integral``,
``_ndtr_negative``, ``_truncated_normal_distance``) live in :mod:`refgrad._core.special`
(hand-written: Numba cannot call :mod:`scipy.special`) and are re-exported here,
where other kernels import them from; the tests check them against SciPy and mpmath.

Conventions for infinite parameters
-----------------------------------
* Categorical logits: ``-inf`` marks an impossible category; if a row has
  ``+inf`` entries, those categories share the mass equally (the limit of equal,
  growing logits) and the row is treated as ``0`` on its ``+inf`` entries and
  ``-inf`` elsewhere.  Noise derived from such a row is then locally constant in
  the logits (its gradient is 0).  A row of all ``-inf`` is rejected.
* Conditioning on an impossible outcome (``b`` a category with logit ``-inf``, a
  bit opposite to an infinite logit or mean) raises ``ValueError`` naming ``b``.
  The kernels themselves return the finite limits of the conditional samples in
  that case (never NaN), see their docstrings.
"""
import math
import numbers

import numpy as np

from .._core.checks import MAX_ARRAY_BYTES, InputTypeError, as_float_array, check_finite, check_no_nan, check_shape, describe, outside_unit_index
from .._core.jit import jit, row_jit
from .._core.special import (  # noqa: F401  (re-exported: other kernels and the tests import them from here)
    _excess_integral,
    _hazard_excess,
    _log_mills,
    _log_ndtr,
    _log_sigmoid,
    _ndtr_negative,
    _ndtri,
    _ndtri_exp,
    _sigmoid,
    _softplus,
    _truncated_normal_distance,
    _ULP,
)

__all__ = [
    "as_generator",
    "uniform",
    "gumbel",
    "exponential",
    "logistic",
    "normal",
    "categorical_gumbel_max",
    "categorical_exponential_argmin",
    "conditional_gumbel",
    "conditional_gumbel_vjp",
    "conditional_logistic",
    "conditional_logistic_grad",
    "conditional_normal",
    "conditional_normal_grad",
]

# Largest negative double: the value a sample conditioned on "z < 0" is clamped to.
_NEG_TINY = -5e-324


# ---------------------------------------------------------------------------
# RNG handling (SPEC 7)
# ---------------------------------------------------------------------------


def as_generator(rng):
    """Turn ``rng`` into a :class:`numpy.random.Generator` (SPEC 7).

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        ``None`` gives a freshly seeded generator (``np.random.default_rng()``);
        a non-negative integer (Python or NumPy, not ``bool``) seeds
        ``np.random.default_rng(rng)``; a ``Generator`` is returned unchanged.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        For any other type: ``RandomState``, floats, booleans, strings, ...
        (a :class:`refgrad._core.checks.InputTypeError`, also a ``ValueError``).
    ValueError
        For a negative integer seed.

    References
    ----------
    Scientific Python SPEC 7, "Seeding pseudo-random number generation".
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if int(rng) >= 0:
            return np.random.default_rng(int(rng))
        raise ValueError(
            f"rng must be None, a non-negative integer seed or a numpy.random.Generator; got the seed {int(rng)}"
        )
    raise InputTypeError(
        "rng must be None, a non-negative integer seed or a numpy.random.Generator; "
        f"got {describe(rng)} of type {type(rng).__name__}"
    )


def _as_shape(shape):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in dims):
        raise InputTypeError(f"shape must be a non-negative integer or a tuple of them; got {describe(shape)} "
                             f"of type {type(shape).__name__}")
    negative = [i for i, s in enumerate(dims) if int(s) < 0]
    if negative:
        raise ValueError(f"shape must hold non-negative integers; got {int(dims[negative[0]])} at index "
                         f"{negative[0]} of {tuple(int(s) for s in dims)}")
    return tuple(int(s) for s in dims)


def uniform(rng, shape):
    """Float64 uniforms strictly inside (0, 1).

    Each value is the midpoint of one of :math:`2^{52}` equal cells of [0, 1]:

    .. math::  u = \\frac{2k + 1}{2^{53}}, \\qquad k \\sim \\mathcal{U}\\{0, \\dots, 2^{52} - 1\\}.

    Every such value is exactly representable, the smallest is
    :math:`2^{-53}` and the largest :math:`1 - 2^{-53}` (so neither 0 nor 1 can
    occur, unlike ``Generator.random``), and the set of values is symmetric
    (:math:`u` and :math:`1 - u` are equally likely and both exact).  The
    distance to the continuous uniform law is :math:`2^{-53}` in Kolmogorov
    distance.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        Passed through :func:`as_generator`.
    shape : int or tuple of int

    Returns
    -------
    ndarray of float64, shape ``shape``
    """
    gen = as_generator(rng)
    dims = _as_shape(shape)
    size = 1
    for s in dims:
        size *= s
    if size * 16 > MAX_ARRAY_BYTES:  # the int64 cells and the float64 result
        raise ValueError(
            f"shape={dims} asks for {size:.3g} uniforms ({size * 16 / 2**30:.3g} GiB while drawn), more than the "
            f"{MAX_ARRAY_BYTES / 2**30:.3g} GiB budget of one call (refgrad._core.checks.MAX_ARRAY_BYTES); draw in "
            "several calls"
        )
    return _cells_to_uniform(gen.integers(0, 1 << 52, size=dims, dtype=np.int64))


def _cells_to_uniform(k):
    """(2k + 1) / 2**53 for integers 0 <= k < 2**52, exactly (2k + 1 < 2**53 fits in a double)."""
    return (2.0 * np.asarray(k, dtype=np.int64).astype(np.float64) + 1.0) * 2.0**-53


# ---------------------------------------------------------------------------
# Input checks local to this module
# ---------------------------------------------------------------------------


def _check_uniform(x, name, ndim=None):
    """float64 C-contiguous array with every value strictly inside (0, 1)."""
    arr = as_float_array(x, name, ndim=ndim)
    where = outside_unit_index(arr)  # catches NaN too
    if where is not None:
        value = float(arr[where]) if arr.ndim else float(arr)
        raise ValueError(
            f"{name} must hold uniforms strictly inside (0, 1) (no NaN); got {value!r} at index {where}"
        )
    return arr


def _check_logits(x, name, ndim):
    arr = as_float_array(x, name, ndim=ndim)
    check_no_nan(arr, name)
    return arr


def _check_rows_alive(logits, name):
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one category (K >= 1); got shape {logits.shape}")
    dead = np.all(np.isneginf(logits), axis=-1)
    if dead.any():
        row = int(np.argmax(dead))
        raise ValueError(
            f"{name} row {row} is all -inf: every category impossible (allowed: at least one logit > -inf per row)"
        )


def _check_index(b, name, shape, upper):
    """Integer-valued array with entries in {0, ..., upper - 1}, returned as int64."""
    try:
        raw = np.asarray(b)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(f"{name} must be an array of integers; got {describe(b)}") from exc
    if raw.dtype == np.bool_:
        raw = raw.astype(np.int64)
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise InputTypeError(
            f"{name} must be an array of integers in {{0, ..., {upper - 1}}}; got {describe(b)} (dtype {raw.dtype})"
        )
    check_shape(raw, name, shape)
    if np.issubdtype(raw.dtype, np.floating):
        ok = np.isfinite(raw) & (raw == np.round(raw))
    else:
        ok = np.ones(raw.shape, dtype=bool)
    ok &= (raw >= 0) & (raw <= upper - 1)
    if not ok.all():
        where = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(
            f"{name} must hold integers in {{0, ..., {upper - 1}}}; got {raw[where].item()!r} at index {where}"
        )
    return np.ascontiguousarray(raw, dtype=np.int64)


def _impossible(name, where, what):
    raise ValueError(f"{name} at index {where} is an impossible outcome: {what}")


# ---------------------------------------------------------------------------
# Unconditional noise
# ---------------------------------------------------------------------------


@jit
def _gumbel(u):
    """-log(-log u), elementwise, any shape."""
    flat = u.reshape(u.size)
    out = np.empty(u.size)
    for i in range(u.size):
        out[i] = -math.log(-math.log(flat[i]))
    return out.reshape(u.shape)


@jit
def _exponential(u):
    """-log u, elementwise, any shape."""
    flat = u.reshape(u.size)
    out = np.empty(u.size)
    for i in range(u.size):
        out[i] = -math.log(flat[i])
    return out.reshape(u.shape)


@jit
def _logistic(u):
    """log u - log(1 - u), elementwise, any shape."""
    flat = u.reshape(u.size)
    out = np.empty(u.size)
    for i in range(u.size):
        out[i] = math.log(flat[i]) - math.log1p(-flat[i])
    return out.reshape(u.shape)


@jit
def _normal(u):
    """Phi^-1(u), elementwise, any shape."""
    flat = u.reshape(u.size)
    out = np.empty(u.size)
    for i in range(u.size):
        out[i] = _ndtri(flat[i])
    return out.reshape(u.shape)


def _elementwise(kernel, u):
    """Check ``u``, run an elementwise kernel on it flattened, restore the shape (0-d gives a scalar)."""
    arr = _check_uniform(u, "u")
    shape = np.shape(u)  # as_float_array makes 0-d inputs 1-d (np.ascontiguousarray)
    out = kernel(arr.reshape(-1)).reshape(shape)
    return out[()] if out.ndim == 0 else out


def gumbel(u):
    """Standard Gumbel noise from uniforms, :math:`G = -\\log(-\\log u)`.

    Parameters
    ----------
    u : array_like
        Uniforms strictly inside (0, 1), any shape.

    Returns
    -------
    ndarray of float64, same shape; finite for every ``u`` in the open interval
    (e.g. -6.54 at ``u = 1e-300``, 36.7 at ``u = 1 - 2**-53``).

    Notes
    -----
    Inverse-CDF transform of the Gumbel law :math:`F(g) = \\exp(-e^{-g})`
    (Gumbel, 1954; Maddison et al., 2014, "A* sampling").  Satisfies
    ``gumbel(u) == -log(exponential(u))``.
    """
    return _elementwise(_gumbel, u)


def exponential(u):
    """Standard exponential noise from uniforms, :math:`E = -\\log u`.

    Uses :math:`-\\log u` (not :math:`-\\log(1-u)`) so that
    :math:`G = -\\log E` is exactly :func:`gumbel` of the same uniforms and the
    exponential-race and Gumbel-max samplers coincide sample by sample.

    Parameters
    ----------
    u : array_like
        Uniforms strictly inside (0, 1), any shape.

    Returns
    -------
    ndarray of float64, same shape, in (0, inf).
    """
    return _elementwise(_exponential, u)


def logistic(u):
    """Standard logistic noise from uniforms, :math:`L = \\log u - \\log(1-u)`.

    :math:`1 - u` is taken through ``log1p(-u)`` so that values near 1 stay
    accurate.  In law :math:`L = G_1 - G_2` for independent Gumbels (Maddison et
    al., 2017, "The Concrete distribution", section 3).

    Parameters
    ----------
    u : array_like
        Uniforms strictly inside (0, 1), any shape.

    Returns
    -------
    ndarray of float64, same shape.
    """
    return _elementwise(_logistic, u)


def normal(u):
    """Standard normal noise from uniforms, :math:`Z = \\Phi^{-1}(u)`.

    The quantile is refgrad's own ``_ndtri`` (a Halley-refined inverse, relative
    accuracy about 1e-15 against ``scipy.special.ndtri``).

    Parameters
    ----------
    u : array_like
        Uniforms strictly inside (0, 1), any shape.

    Returns
    -------
    ndarray of float64, same shape.
    """
    return _elementwise(_normal, u)


# ---------------------------------------------------------------------------
# Categorical sampling
# ---------------------------------------------------------------------------


@jit
def _normalised_row(row, out):
    """Copy ``row`` into ``out``, or 0 on +inf entries and -inf elsewhere if it has any +inf.

    Returns logsumexp(out) (-inf for a row of all -inf).
    """
    m = -math.inf
    for k in range(row.size):
        if row[k] > m:
            m = row[k]
    if m == math.inf:
        count = 0
        for k in range(row.size):
            if row[k] == math.inf:
                out[k] = 0.0
                count += 1
            else:
                out[k] = -math.inf
        return math.log(count)
    for k in range(row.size):
        out[k] = row[k]
    if m == -math.inf:
        return -math.inf
    s = 0.0
    for k in range(row.size):
        s += math.exp(row[k] - m)
    return m + math.log(s)


@row_jit
def gumbel_argmax(lg, u, j, K, base):
    """argmax_k (lg[j, k] − log(−log u[base + k])) over the categories of nonzero probability (first on ties).

    The row step of :func:`categorical_gumbel_max`, shared with the fused estimator kernels.
    """
    best = -math.inf
    arg = -1
    for k in range(K):
        if lg[j, k] == -math.inf:
            continue
        val = lg[j, k] + (-math.log(-math.log(u[base + k])))
        if arg < 0 or val > best:
            best = val
            arg = k
    return arg


@jit
def _categorical_gumbel_max(logits, u):
    """argmax_k (l_k + G_k) for logits (d, K), u (n, d, K) -> int64 (n, d)."""
    n, d, K = u.shape
    lg = np.empty((d, K))
    for j in range(d):
        _normalised_row(logits[j], lg[j])
    out = np.empty((n, d), dtype=np.int64)
    for i in range(n):
        for j in range(d):
            out[i, j] = gumbel_argmax(lg, u[i, j], j, K, 0)
    return out


@jit
def _categorical_exponential_argmin(logits, u):
    """argmin_k (log E_k - l_k), E_k = -log u_k, for logits (d, K), u (n, d, K) -> int64 (n, d)."""
    n, d, K = u.shape
    lg = np.empty((d, K))
    for j in range(d):
        _normalised_row(logits[j], lg[j])
    out = np.empty((n, d), dtype=np.int64)
    for i in range(n):
        for j in range(d):
            best = math.inf
            arg = -1
            for k in range(K):
                if lg[j, k] == -math.inf:
                    continue
                val = math.log(-math.log(u[i, j, k])) - lg[j, k]
                if arg < 0 or val < best:
                    best = val
                    arg = k
            out[i, j] = arg
    return out


def _check_categorical(logits, u, u_name="u"):
    lg = _check_logits(logits, "logits", 2)
    _check_rows_alive(lg, "logits")
    uu = _check_uniform(u, u_name, ndim=3)
    check_shape(uu, u_name, (None,) + lg.shape)
    return lg, uu


def categorical_gumbel_max(logits, u):
    """Categorical samples by the Gumbel-max trick.

    .. math::  b_{s,i} = \\operatorname{argmax}_k \\; (\\ell_{ik} + G_{sik}),
               \\qquad G_{sik} = -\\log(-\\log u_{sik}),

    so that :math:`P(b_{s,i} = k) = \\operatorname{softmax}(\\ell_i)_k`
    (Gumbel, 1954; Maddison et al., 2014; Jang et al., 2017, eq. 1).

    Parameters
    ----------
    logits : array_like, shape (d, K)
        Unnormalised log-probabilities; ``-inf`` marks an impossible category, a
        row with ``+inf`` entries is uniform over them, NaN and all-``-inf`` rows
        are rejected.
    u : array_like, shape (n, d, K)
        Uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of int64, shape (n, d)
        Ties (probability zero) go to the smallest index; impossible categories
        are never chosen.
    """
    lg, uu = _check_categorical(logits, u)
    return _categorical_gumbel_max(lg, uu)


def categorical_exponential_argmin(logits, u):
    """Categorical samples by the exponential race.

    .. math::  b_{s,i} = \\operatorname{argmin}_k \\; E_{sik} / \\pi_{ik}
               = \\operatorname{argmin}_k \\; (\\log E_{sik} - \\ell_{ik}),
               \\qquad E_{sik} = -\\log u_{sik},

    computed in log space.  Because :math:`\\log E = -G` for the
    :func:`gumbel` noise of the same uniforms, the result equals
    :func:`categorical_gumbel_max` sample by sample (including ties and infinite
    logits).

    Parameters
    ----------
    logits : array_like, shape (d, K)
        As in :func:`categorical_gumbel_max`.
    u : array_like, shape (n, d, K)
        Uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of int64, shape (n, d)
    """
    lg, uu = _check_categorical(logits, u)
    return _categorical_exponential_argmin(lg, uu)


# ---------------------------------------------------------------------------
# Conditional Gumbel (categorical REBAR / RELAX)
# ---------------------------------------------------------------------------


@jit
def _conditional_gumbel_row(lg, lse, b, v, out):
    """One row: top T = lse + G(v_b); others -logaddexp(-T, -(l_k + G(v_k))), kept below T."""
    top = lse + (-math.log(-math.log(v[b])))
    out[b] = top
    for k in range(lg.size):
        if k == b:
            continue
        y = lg[k] + (-math.log(-math.log(v[k])))
        # -logaddexp(-top, -y) = min(top, y) - log1p(exp(-|top - y|))
        if y == -math.inf:
            z = -math.inf
        elif y < top:
            z = y - math.log1p(math.exp(y - top))
        else:
            z = top - math.log1p(math.exp(top - y))
        if z >= top:
            z = np.nextafter(top, -math.inf)
        out[k] = z
    return top


@jit
def _conditional_gumbel(logits, b, v):
    """z~ given argmax b for logits (d, K), b int64 (n, d), v (n, d, K) -> (n, d, K)."""
    n, d, K = v.shape
    lg = np.empty((d, K))
    lse = np.empty(d)
    for j in range(d):
        lse[j] = _normalised_row(logits[j], lg[j])
    out = np.empty((n, d, K))
    for i in range(n):
        for j in range(d):
            _conditional_gumbel_row(lg[j], lse[j], b[i, j], v[i, j], out[i, j])
    return out


@jit
def _conditional_gumbel_rows(logits):
    """Per row of logits (d, K): (normalised logits (d, K), logsumexp (d,), softmax (d, K), frozen (d,)).

    Rows with a +inf logit are normalised as in ``_normalised_row`` and marked frozen.

    Shared by the derivative kernels of the conditional Gumbel (this VJP and the JVP used by REBAR).
    """
    d, K = logits.shape
    lg = np.empty((d, K))
    lse = np.empty(d)
    frozen = np.zeros(d, dtype=np.bool_)
    p = np.empty((d, K))
    for j in range(d):
        for k in range(K):
            if logits[j, k] == math.inf:
                frozen[j] = True
        lse[j] = _normalised_row(logits[j], lg[j])
        for k in range(K):
            p[j, k] = math.exp(lg[j, k] - lse[j])
    return lg, lse, p, frozen


@jit
def _conditional_gumbel_vjp(logits, b, v, cotangent):
    """Per-sample d/dl of sum(cotangent * z~) -> (n, d, K); zero on rows with +inf logits.

    With T = lse(l) + G_b, y_k = l_k + G_k, z_k = -logaddexp(-T, -y_k), a_k = sigma(y_k - T):
    dz_k/dT = a_k, dz_k/dl_k = 1 - a_k, dT/dl_j = softmax(l)_j, so
    out_j = [j != b] c_j (1 - a_j) + p_j (c_b + sum_{k != b} c_k a_k).
    """
    n, d, K = v.shape
    lg, lse, p, frozen = _conditional_gumbel_rows(logits)
    out = np.zeros((n, d, K))
    for i in range(n):
        for j in range(d):
            if frozen[j]:
                continue
            _conditional_gumbel_vjp_row(lg[j], lse[j], p[j], b[i, j], v[i, j], cotangent[i, j], out[i, j])
    return out


@row_jit
def _conditional_gumbel_vjp_row(lg, lse, p, bb, v, cotangent, out):
    """One (not frozen) row of ``_conditional_gumbel_vjp`` into ``out`` (K,), from ``_conditional_gumbel_rows``."""
    top = lse + (-math.log(-math.log(v[bb])))
    acc = cotangent[bb]
    out[bb] = 0.0
    for k in range(lg.size):
        if k == bb:
            continue
        y = lg[k] + (-math.log(-math.log(v[k])))
        c = cotangent[k]
        acc += c * _sigmoid(y - top)
        out[k] = c * _sigmoid(top - y)
    for k in range(lg.size):
        out[k] += p[k] * acc


def _check_conditional_categorical(logits, b, v):
    lg = _check_logits(logits, "logits", 2)
    _check_rows_alive(lg, "logits")
    d, K = lg.shape
    vv = _check_uniform(v, "v", ndim=3)
    check_shape(vv, "v", (None, d, K))
    bb = _check_index(b, "b", (vv.shape[0], d), K)
    # Impossible conditioning: the chosen category has probability zero.
    rowmax = lg.max(axis=1) if K else np.zeros(d)
    chosen = np.take_along_axis(np.broadcast_to(lg, (bb.shape[0], d, K)), bb[:, :, None], axis=2)[:, :, 0]
    bad = np.isneginf(chosen) | (np.isposinf(rowmax)[None, :] & ~np.isposinf(chosen))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        _impossible("b", where, f"category {int(bb[where])} has probability 0 under logits row {where[1]}")
    return lg, bb, vv


def conditional_gumbel(logits, b, v):
    """Gumbel-perturbed logits conditioned on their argmax (REBAR's :math:`\\tilde z`).

    For :math:`z_k = \\ell_k + G_k` with independent standard Gumbels, the
    maximum :math:`\\max_k z_k` is Gumbel with location
    :math:`\\operatorname{logsumexp}(\\ell)` and independent of the argmax; given
    the argmax :math:`b` and the maximum :math:`T`, the other coordinates are
    independent Gumbels of location :math:`\\ell_k` truncated to
    :math:`(-\\infty, T)`.  Inverting these CDFs with fresh uniforms ``v``:

    .. math::
        \\tilde z_b &= \\operatorname{logsumexp}(\\ell) - \\log(-\\log v_b), \\\\
        \\tilde z_k &= -\\operatorname{logaddexp}\\bigl(-\\tilde z_b,\\;
                       -(\\ell_k - \\log(-\\log v_k))\\bigr), \\quad k \\ne b,

    (the truncated CDF is :math:`\\exp(-e^{\\ell_k - x} + e^{\\ell_k - T})`).
    Valid for unnormalised logits: the top value is **not**
    :math:`\\ell_b + G`, which is biased (Tucker et al., 2017, "REBAR", appendix;
    Maddison et al., 2014).  ``argmax_k z~ == b`` always holds (a coordinate that
    rounds up to the top is moved one ulp below it).

    Accuracy: with :math:`T = \\tilde z_b` and :math:`y_k = \\ell_k - \\log(-\\log v_k)`,
    the absolute error of :math:`\\tilde z_k` is at most
    :math:`4\\epsilon\\,(|T| + |\\ell_k| + |\\log(-\\log v_k)| + 1)` (checked against
    mpmath at logits up to ±1000 and :math:`v` from 1e-300 to :math:`1 - 2^{-53}`).
    That is a relative error of a few ulp except next to a zero crossing of
    :math:`\\tilde z_k` (say :math:`\\ell_k = 0`, :math:`v_k \\approx 1/e`), where only the
    absolute bound holds: the Gumbel noise :math:`-\\log(-\\log v)` and the sums
    :math:`\\ell + G` are themselves rounded doubles.

    Parameters
    ----------
    logits : array_like, shape (d, K)
        See :func:`categorical_gumbel_max` for ``+inf`` / ``-inf``.
    b : array_like of int, shape (n, d)
        Observed categories in ``{0, ..., K-1}``; a category of probability zero
        raises ``ValueError``.
    v : array_like, shape (n, d, K)
        Fresh uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of float64, shape (n, d, K)
        Impossible categories get ``-inf``.
    """
    lg, bb, vv = _check_conditional_categorical(logits, b, v)
    return _conditional_gumbel(lg, bb, vv)


def conditional_gumbel_vjp(logits, b, v, cotangent):
    """Per-sample vector-Jacobian product of :func:`conditional_gumbel` w.r.t. the logits.

    Returns :math:`\\partial_{\\ell} \\sum_{i,k} c_{sik} \\tilde z_{sik}` for each
    sample :math:`s`.  With :math:`T = \\tilde z_b`,
    :math:`y_k = \\ell_k + G(v_k)`, :math:`a_k = \\sigma(y_k - T)` and
    :math:`p = \\operatorname{softmax}(\\ell)`:

    .. math::
        \\frac{\\partial \\tilde z_k}{\\partial T} = a_k, \\quad
        \\frac{\\partial \\tilde z_k}{\\partial \\ell_k} = 1 - a_k, \\quad
        \\frac{\\partial T}{\\partial \\ell_j} = p_j, \\qquad
        \\text{out}_j = [j \\ne b]\\, c_j (1 - a_j) + p_j \\Bigl(c_b + \\sum_{k \\ne b} c_k a_k\\Bigr).

    (hand-derived; tested against central finite differences).  Rows whose
    logits contain ``+inf`` give 0 (the samples are locally constant there).
    Each Jacobian entry (unit cotangent) has relative error at most
    :math:`4\\epsilon\\,(1 + |T| + |y_k|)` against mpmath (the slopes
    :math:`a_k = \\sigma(y_k - T)` inherit the rounding of :math:`T` and :math:`y_k`):
    below 1.2e-13 at logits ±700 and ±1000.

    Parameters
    ----------
    logits, b, v
        As in :func:`conditional_gumbel`.
    cotangent : array_like, shape (n, d, K)
        Finite weights :math:`c`.

    Returns
    -------
    ndarray of float64, shape (n, d, K)
    """
    lg, bb, vv = _check_conditional_categorical(logits, b, v)
    ct = as_float_array(cotangent, "cotangent", ndim=3)
    check_shape(ct, "cotangent", vv.shape)
    check_finite(ct, "cotangent")
    return _conditional_gumbel_vjp(lg, bb, vv, ct)


# ---------------------------------------------------------------------------
# Conditional logistic (binary REBAR / RELAX)
# ---------------------------------------------------------------------------


_EXP_709 = math.exp(709.0)


@jit
def _mul_exp(x, l):
    """x e^l for 0 < x <= 1 (inf where it overflows), with exp(l) split as exp(709) exp(l - 709)
    for 709 <= l < 1418, so a tiny x times a huge e^l keeps its relative accuracy."""
    if l < 709.0:
        return x * math.exp(l)
    if l < 1418.0:
        return (x * _EXP_709) * math.exp(l - 709.0)
    return math.inf


@jit
def _log1p_mul_exp(x, l):
    """log(1 + x e^l) for 0 < x <= 1: log1p of the product while it is finite (no rounding of log x)."""
    t = _mul_exp(x, l)
    if t < math.inf:
        return math.log1p(t)
    return _softplus(math.log(x) + l)  # x e^l > 1.8e308: log x + l > 709, relatively accurate


@jit
def _sigmoid_mul_exp(x, l):
    """x e^l / (1 + x e^l) for 0 < x <= 1, from the product while it is finite."""
    t = _mul_exp(x, l)
    if t < math.inf:
        return t / (1.0 + t)
    return _sigmoid(math.log(x) + l)


@jit
def _conditional_logistic_scalar(l, b, x):
    """One coordinate of ``_conditional_logistic``: z~ for logit l, bit b (0/1) and uniform x."""
    if b == 1:
        return _log1p_mul_exp(x, l) - math.log1p(-x)
    return math.log(x) - _log1p_mul_exp(1.0 - x, -l)


@jit
def _conditional_logistic_grad_scalar(l, b, x):
    """One coordinate of ``_conditional_logistic_grad``: dz~/dl for logit l, bit b (0/1) and uniform x."""
    if b == 1:
        return _sigmoid_mul_exp(x, l)
    return _sigmoid_mul_exp(1.0 - x, -l)


@jit
def _conditional_logistic(logits, b, v):
    """z~ = l + logit(v') for logits (d,), b int64 (n, d), v (n, d) -> (n, d).

    b = 0: z~ = log v - log(1 + (1 - v) e^-l);  b = 1: z~ = log(1 + v e^l) - log(1 - v).
    Inconsistent infinite cases return the limits log v (b=0, l=+inf) and -log(1-v) (b=1, l=-inf).
    """
    n, d = v.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _conditional_logistic_scalar(logits[j], b[i, j], v[i, j])
    return out


@jit
def _conditional_logistic_grad(logits, b, v):
    """dz~/dl: v e^l / (1 + v e^l) if b = 1, (1 - v) e^-l / (1 + (1 - v) e^-l) if b = 0 -> (n, d)."""
    n, d = v.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _conditional_logistic_grad_scalar(logits[j], b[i, j], v[i, j])
    return out


def _check_conditional_binary(param, b, v, pname):
    p = _check_logits(param, pname, 1)
    (d,) = p.shape
    vv = _check_uniform(v, "v", ndim=2)
    check_shape(vv, "v", (None, d))
    bb = _check_index(b, "b", vv.shape, 2)
    bad = (np.isposinf(p)[None, :] & (bb == 0)) | (np.isneginf(p)[None, :] & (bb == 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        _impossible("b", where, f"b = {int(bb[where])} has probability 0 when {pname}[{where[1]}] = {p[where[1]]}")
    return p, bb, vv


def conditional_logistic(logits, b, v):
    """REBAR's conditional logistic noise :math:`\\tilde z \\sim z \\mid b` for Bernoulli bits.

    With :math:`z = \\ell + \\log u - \\log(1-u)`, :math:`b = 1[z > 0]` and
    :math:`\\theta = \\sigma(\\ell)`, the conditional given :math:`b` is
    reparametrised by fresh uniforms :math:`v` (Tucker et al., 2017, "REBAR",
    appendix):

    .. math::
        v' = \\begin{cases} v (1-\\theta) & b = 0 \\\\ (1-\\theta) + v\\theta & b = 1 \\end{cases},
        \\qquad \\tilde z = \\ell + \\log\\frac{v'}{1 - v'} .

    Simplified exactly (:math:`\\sigma(-\\ell)/\\sigma(\\ell) = e^{-\\ell}`) and
    evaluated in log space:

    .. math::
        \\tilde z = \\begin{cases}
            \\log v - \\log\\bigl(1 + (1-v) e^{-\\ell}\\bigr) & b = 0 \\\\
            \\log(1 + v e^{\\ell}) - \\log(1-v) & b = 1
        \\end{cases}

    (``log1p`` of the product :math:`v e^{\\ell}` while it is finite, formed as
    :math:`(v e^{709}) e^{\\ell - 709}` for :math:`709 \\le \\ell < 1418` so that a
    tiny ``v`` keeps its relative accuracy; else ``softplus(log v + l)``, where
    :math:`\\log v + \\ell > 709`).  Both terms have the same sign, so there is no
    cancellation: relative error at most 2e-16 against mpmath (720 digits) for
    :math:`|\\ell| \\le 710` and :math:`v` from 5e-324 to :math:`1 - 2^{-53}`, for
    :math:`\\tilde z` and for :func:`conditional_logistic_grad`.  ``z~ < 0`` iff ``b = 0``.

    Parameters
    ----------
    logits : array_like, shape (d,)
        ``+inf`` / ``-inf`` allowed (then ``b`` must be 1 / 0 and ``z~ = +inf`` / ``-inf``).
    b : array_like, shape (n, d)
        Bits in {0, 1} (int, float or bool).
    v : array_like, shape (n, d)
        Fresh uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of float64, shape (n, d)
    """
    p, bb, vv = _check_conditional_binary(logits, b, v, "logits")
    return _conditional_logistic(p, bb, vv)


def conditional_logistic_grad(logits, b, v):
    """Elementwise :math:`\\partial \\tilde z / \\partial \\ell` of :func:`conditional_logistic`.

    Includes the dependence of :math:`v'` on :math:`\\theta = \\sigma(\\ell)`
    (dropping it, i.e. returning 1, is a classic source of bias in REBAR):

    .. math::
        \\frac{\\partial \\tilde z}{\\partial \\ell} = \\begin{cases}
            \\dfrac{\\sigma(-\\ell)(1-v)}{1 - v\\sigma(-\\ell)}
              = \\dfrac{(1-v)e^{-\\ell}}{1 + (1-v)e^{-\\ell}} & b = 0 \\\\[1ex]
            \\dfrac{v\\sigma(\\ell)}{\\sigma(-\\ell) + v\\sigma(\\ell)}
              = \\dfrac{v e^{\\ell}}{1 + v e^{\\ell}} & b = 1
        \\end{cases}

    (hand-derived from the simplified form; tested against central finite
    differences).  Values lie in [0, 1]; 1 at the deterministic infinite logits.

    Parameters
    ----------
    logits, b, v
        As in :func:`conditional_logistic`.

    Returns
    -------
    ndarray of float64, shape (n, d)
    """
    p, bb, vv = _check_conditional_binary(logits, b, v, "logits")
    return _conditional_logistic_grad(p, bb, vv)


# ---------------------------------------------------------------------------
# Conditional normal (Gaussian-threshold family)
# ---------------------------------------------------------------------------


@jit
def _conditional_normal_scalar(mu, b, v):
    """(z~, dz~/dmu) for one coordinate; see conditional_normal / conditional_normal_grad.

    Canonical form: the distance y = |z~| beyond the threshold, standardised threshold a
    (a = -mu for b = 1, a = mu for b = 0) and cumulative hazard e = -log P(|z~| > y), which is
    -log1p(-v) for b = 1 and -log v for b = 0 (both exact in v).
    """
    if b == 1:
        if mu == math.inf:
            return math.inf, 1.0
        if mu == -math.inf:  # impossible; limit z~ -> 0+, slope -> 0
            return 0.0, 0.0
        a = -mu
        e = -math.log1p(-v)
    else:
        if mu == -math.inf:
            return -math.inf, 1.0
        if mu == math.inf:  # impossible; limit z~ -> 0-, slope -> 0
            return _NEG_TINY, 0.0
        a = mu
        e = -math.log(v)
    y = _truncated_normal_distance(a, e)
    # dz~/dmu = 1 - R(a + y)/R(a) = -expm1(-G(a, y)), G = int_a^(a+y) (lambda(x) - x) dx >= 0;
    # G = e - y (a + y/2) (Mills form of H) where that difference does not cancel, else the integral
    quad = y * (a + 0.5 * y)
    g_fast = e - quad
    if g_fast > 0.0 and (e + abs(quad) + 5.0 * y * abs(a + y)) * _ULP <= 2.0**-44 * g_fast:
        grad = -math.expm1(-g_fast)
    else:
        grad = -math.expm1(-_excess_integral(a, y))
    if b == 1:
        z = y if y > 0.0 else 0.0
    else:
        z = -y if y > 0.0 else _NEG_TINY
    return z, min(max(grad, 0.0), 1.0)


@jit
def _conditional_normal(mu, b, v):
    """z~ ~ N(mu, 1) | sign for mu (d,), b int64 (n, d), v (n, d) -> (n, d)."""
    n, d = v.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _conditional_normal_scalar(mu[j], b[i, j], v[i, j])[0]
    return out


@jit
def _conditional_normal_grad(mu, b, v):
    """dz~/dmu for mu (d,), b int64 (n, d), v (n, d) -> (n, d)."""
    n, d = v.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _conditional_normal_scalar(mu[j], b[i, j], v[i, j])[1]
    return out


def conditional_normal(mu, b, v):
    """Latent normal of the Gaussian-threshold family conditioned on its bit.

    The family is :math:`z \\sim N(\\mu, 1)`, :math:`b = 1[z \\ge 0]`, so
    :math:`P(b = 1) = \\Phi(\\mu)`.  Given :math:`b`, :math:`z` is a truncated
    normal; inverting its CDF with fresh uniforms :math:`v` (monotone increasing
    in :math:`v`):

    .. math::
        \\tilde z = \\begin{cases}
          \\mu + \\Phi^{-1}\\bigl(v\\,\\Phi(-\\mu)\\bigr) & b = 0 \\quad (\\tilde z < 0)\\\\
          \\mu + \\Phi^{-1}\\bigl(\\Phi(-\\mu) + v\\,\\Phi(\\mu)\\bigr)
              = \\mu - \\Phi^{-1}\\bigl((1-v)\\,\\Phi(\\mu)\\bigr) & b = 1 \\quad (\\tilde z \\ge 0)
        \\end{cases}

    (The student project report "Project REBAR" (Andrzejczuk, Bielecki & Orłowski) swaps
    :math:`\\Phi(\\theta)` and :math:`\\Phi(-\\theta)` in this formula; its version is wrong:
    see the validation case ``rebar_report_mixture``.)

    **Computed from the distance to the threshold**, not as ``mu ∓ w`` (which
    cancels next to 0: at ``mu = 5, b = 1, v = 1e-300`` it gave 8.9e-16 for
    6.7262e-295).  With :math:`y = |\\tilde z|`, the standardised threshold
    :math:`a = -\\mu` (b = 1) or :math:`\\mu` (b = 0) and the cumulative hazard
    :math:`e = -\\log P(|\\tilde z| > y \\mid b)`, which is ``-log1p(-v)`` (b = 1)
    or ``-log(v)`` (b = 0), exact in ``v``, :math:`y` solves

    .. math::
        H_a(y) = \\log Q(a) - \\log Q(a + y) = \\int_a^{a+y} \\lambda = e,
        \\qquad Q = 1 - \\Phi,\\; \\lambda = \\varphi / Q .

    The direct inverse :math:`a + y = Q^{-1}(Q(a) e^{-e})` is kept where its
    rounding bound :math:`(|a| + 8|a + y| + |\\log Q(a+y)|/\\lambda(a+y))\\,
    \\epsilon / y` is below :math:`2^{-46}`; elsewhere :math:`y` is refined by
    Newton's method on :math:`\\log(H_a(y)/e)`, with :math:`H_a` written without
    cancellation through the Mills ratio :math:`R = Q/\\varphi`:
    :math:`H_a(y) = y(a + y/2) + G(a, y)` for :math:`a \\ge 0`, and through
    :math:`\\Phi(a + y) = \\Phi(a) e^{D}`, :math:`D = y(|a| - y/2) + G(|a| - y, y)`,
    for :math:`a < 0`, where :math:`G(c, w) = \\int_c^{c+w} (\\lambda(x) - x)\\,dx
    = \\log R(c) - \\log R(c + w) \\ge 0` (Gauss–Legendre on short intervals,
    continued fraction for :math:`\\lambda(x) - x` at :math:`x \\ge 3`).

    Accuracy (against mpmath, :math:`|\\mu|` up to 1e5 and :math:`v` from
    5e-324 to :math:`1 - 2^{-53}`): relative error below 3e-14, except for
    b = 1 with :math:`\\Phi(-\\mu)` subnormal (:math:`37.5 < \\mu < 38.6`) and ``v``
    below about 1e-300, where the log-space form carries :math:`(\\mu^2/2 + 745)`
    ulp: at most 1.1e-13 measured, bound 2e-13.  Rounding
    is clamped so that ``1[z~ >= 0] == b`` always.

    Parameters
    ----------
    mu : array_like, shape (d,)
        Means; ``±inf`` allowed (then ``b`` must be 1 / 0 and ``z~ = ±inf``).
    b : array_like, shape (n, d)
        Bits in {0, 1}.
    v : array_like, shape (n, d)
        Fresh uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of float64, shape (n, d)
    """
    m, bb, vv = _check_conditional_binary(mu, b, v, "mu")
    return _conditional_normal(m, bb, vv)


def conditional_normal_grad(mu, b, v):
    """Elementwise :math:`\\partial \\tilde z / \\partial \\mu` of :func:`conditional_normal`.

    Differentiating :math:`\\Phi(w) = v\\Phi(-\\mu)` (b = 0, :math:`\\tilde z = \\mu + w`)
    or :math:`\\Phi(w) = (1-v)\\Phi(\\mu)` (b = 1, :math:`\\tilde z = \\mu - w`) and
    using :math:`\\varphi(w)/\\varphi(\\mu) = e^{(\\mu^2 - w^2)/2}`:

    .. math::
        \\frac{\\partial \\tilde z}{\\partial \\mu}
        = 1 - r\\, e^{\\tilde z^2/2 - \\mu \\tilde z}
        = -\\operatorname{expm1}\\bigl(\\log r + \\tilde z(\\tilde z/2 - \\mu)\\bigr),
        \\qquad r = \\begin{cases} v & b = 0 \\\\ 1 - v & b = 1 \\end{cases}

    (hand-derived; tested against central finite differences).  With
    :math:`r e^{\\tilde z^2/2 - \\mu \\tilde z} = R(a + y)/R(a)` (notation of
    :func:`conditional_normal`) this is

    .. math::
        \\frac{\\partial \\tilde z}{\\partial \\mu} = 1 - \\frac{R(a + y)}{R(a)}
        = -\\operatorname{expm1}\\bigl(-G(a, y)\\bigr),

    computed from :math:`G = e - y(a + y/2)` where that difference does not
    cancel and from the integral :math:`G(a, y)` otherwise, so it keeps its
    relative accuracy next to the threshold (where it is about :math:`y\\,(\\lambda(a) - a)`).
    It lies in [0, 1] and is 1 at the deterministic infinite means.  Relative
    error as for :func:`conditional_normal` (below 3e-14; at most 1.1e-13 in the
    subnormal corner described there).

    Parameters
    ----------
    mu, b, v
        As in :func:`conditional_normal`.

    Returns
    -------
    ndarray of float64, shape (n, d)
    """
    m, bb, vv = _check_conditional_binary(mu, b, v, "mu")
    return _conditional_normal_grad(m, bb, vv)
