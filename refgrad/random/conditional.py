"""REBAR's conditional samplers: the latent noise given the discrete outcome it produced.

For each family whose sample is a deterministic function of a continuous latent
``z`` (categorical: Gumbel-max; Bernoulli: logistic threshold; Gaussian threshold:
normal threshold), a sampler of ``z~ ~ z | b`` from fresh uniforms ``v``, and its
derivative in the parameters: :func:`conditional_gumbel` and
:func:`conditional_gumbel_vjp`, :func:`conditional_logistic` and
:func:`conditional_logistic_grad`, :func:`conditional_normal` and
:func:`conditional_normal_grad`.

Conditioning on an impossible outcome (``b`` a category with logit ``-inf``, a bit
opposite to an infinite logit or mean) raises ``ValueError`` naming ``b``; the
kernels themselves return the finite limits of the conditional samples in that
case (never NaN), see their docstrings.
"""
import math

import numpy as np

from .._core.checks import InputTypeError, as_float_array, check_finite, check_shape, describe, first_index
from .._core.jit import jit, row_jit
from .._core.special import _ULP, _excess_integral, _sigmoid, _softplus, _truncated_normal_distance
from .noise import _check_logits, _check_rows_alive, _normalised_rows
from .rng import _check_uniform

__all__ = [
    "conditional_gumbel",
    "conditional_gumbel_vjp",
    "conditional_logistic",
    "conditional_logistic_grad",
    "conditional_normal",
    "conditional_normal_grad",
]

# Largest negative double: the value a sample conditioned on "z < 0" is clamped to.
_NEG_TINY = -5e-324
_EXP_709 = math.exp(709.0)


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


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
        where = first_index(~ok)
        raise ValueError(
            f"{name} must hold integers in {{0, ..., {upper - 1}}}; got {raw[where].item()!r} at index {where}"
        )
    return np.ascontiguousarray(raw, dtype=np.int64)


def _impossible(name, where, what):
    raise ValueError(f"{name} at index {where} is an impossible outcome: {what}")


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
    lg, lse = _normalised_rows(logits)
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
    lg, lse = _normalised_rows(logits)
    frozen = np.zeros(d, dtype=np.bool_)
    p = np.empty((d, K))
    for j in range(d):
        for k in range(K):
            if logits[j, k] == math.inf:
                frozen[j] = True
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
        where = first_index(bad)
        _impossible("b", where, f"category {int(bb[where])} has probability 0 under logits row {where[1]}")
    return lg, bb, vv


def conditional_gumbel(logits, b, v):
    r"""Gumbel-perturbed logits conditioned on their argmax (REBAR's :math:`\tilde z`).

    For :math:`z_k = \ell_k + G_k` with independent standard Gumbels, the
    maximum :math:`\max_k z_k` is Gumbel with location
    :math:`\operatorname{logsumexp}(\ell)` and independent of the argmax; given
    the argmax :math:`b` and the maximum :math:`T`, the other coordinates are
    independent Gumbels of location :math:`\ell_k` truncated to
    :math:`(-\infty, T)`.  Inverting these CDFs with fresh uniforms ``v``:

    .. math::
        \tilde z_b &= \operatorname{logsumexp}(\ell) - \log(-\log v_b), \\
        \tilde z_k &= -\operatorname{logaddexp}\bigl(-\tilde z_b,\;
                       -(\ell_k - \log(-\log v_k))\bigr), \quad k \ne b,

    (the truncated CDF is :math:`\exp(-e^{\ell_k - x} + e^{\ell_k - T})`).
    Valid for unnormalised logits: the top value is **not**
    :math:`\ell_b + G`, which is biased (Tucker et al., 2017, "REBAR", appendix;
    Maddison et al., 2014).  ``argmax_k z~ == b`` always holds (a coordinate that
    rounds up to the top is moved one ulp below it).

    Accuracy: with :math:`T = \tilde z_b` and :math:`y_k = \ell_k - \log(-\log v_k)`,
    the absolute error of :math:`\tilde z_k` is at most
    :math:`4\epsilon\,(|T| + |\ell_k| + |\log(-\log v_k)| + 1)` (checked against
    mpmath at logits up to ±1000 and :math:`v` from 1e-300 to :math:`1 - 2^{-53}`).
    That is a relative error of a few ulp except next to a zero crossing of
    :math:`\tilde z_k` (say :math:`\ell_k = 0`, :math:`v_k \approx 1/e`), where only the
    absolute bound holds: the Gumbel noise :math:`-\log(-\log v)` and the sums
    :math:`\ell + G` are themselves rounded doubles.

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
    r"""Per-sample vector-Jacobian product of :func:`conditional_gumbel` w.r.t. the logits.

    Returns :math:`\partial_{\ell} \sum_{i,k} c_{sik} \tilde z_{sik}` for each
    sample :math:`s`.  With :math:`T = \tilde z_b`,
    :math:`y_k = \ell_k + G(v_k)`, :math:`a_k = \sigma(y_k - T)` and
    :math:`p = \operatorname{softmax}(\ell)`:

    .. math::
        \frac{\partial \tilde z_k}{\partial T} = a_k, \quad
        \frac{\partial \tilde z_k}{\partial \ell_k} = 1 - a_k, \quad
        \frac{\partial T}{\partial \ell_j} = p_j, \qquad
        \text{out}_j = [j \ne b]\, c_j (1 - a_j) + p_j \Bigl(c_b + \sum_{k \ne b} c_k a_k\Bigr).

    (hand-derived; tested against central finite differences).  Rows whose
    logits contain ``+inf`` give 0 (the samples are locally constant there).
    Each Jacobian entry (unit cotangent) has relative error at most
    :math:`4\epsilon\,(1 + |T| + |y_k|)` against mpmath (the slopes
    :math:`a_k = \sigma(y_k - T)` inherit the rounding of :math:`T` and :math:`y_k`):
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



@jit
def _mul_exp(x, ell):
    """x e^ell for 0 < x <= 1 (inf where it overflows).

    exp(ell) is split as exp(709) exp(ell - 709) for 709 <= ell < 1418, so that a tiny x times a huge e^ell
    keeps its relative accuracy.
    """
    if ell < 709.0:
        return x * math.exp(ell)
    if ell < 1418.0:
        return (x * _EXP_709) * math.exp(ell - 709.0)
    return math.inf


@jit
def _log1p_mul_exp(x, ell):
    """log(1 + x e^ell) for 0 < x <= 1: log1p of the product while it is finite (no rounding of log x)."""
    t = _mul_exp(x, ell)
    if t < math.inf:
        return math.log1p(t)
    return _softplus(math.log(x) + ell)  # x e^ell > 1.8e308: log x + ell > 709, relatively accurate


@jit
def _sigmoid_mul_exp(x, ell):
    """x e^ell / (1 + x e^ell) for 0 < x <= 1, from the product while it is finite."""
    t = _mul_exp(x, ell)
    if t < math.inf:
        return t / (1.0 + t)
    return _sigmoid(math.log(x) + ell)


@jit
def _conditional_logistic_scalar(ell, b, x):
    """One coordinate of :func:`conditional_logistic`: z~ for logit ell, bit b (0/1) and uniform x."""
    if b == 1:
        return _log1p_mul_exp(x, ell) - math.log1p(-x)
    return math.log(x) - _log1p_mul_exp(1.0 - x, -ell)


@jit
def _conditional_logistic_grad_scalar(ell, b, x):
    """One coordinate of :func:`conditional_logistic_grad`: dz~/dell for logit ell, bit b (0/1) and uniform x."""
    if b == 1:
        return _sigmoid_mul_exp(x, ell)
    return _sigmoid_mul_exp(1.0 - x, -ell)


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

@row_jit
def _conditional_binary_scalar(param, b, x, normal, grad):
    """z~ (``grad`` False) or dz~/dparam (``grad`` True) of one coordinate: logistic, or normal if ``normal``."""
    if normal:
        z, slope = _conditional_normal_scalar(param, b, x)
        return slope if grad else z
    if grad:
        return _conditional_logistic_grad_scalar(param, b, x)
    return _conditional_logistic_scalar(param, b, x)


@jit
def _conditional_binary(params, b, v, normal, grad):
    """``_conditional_binary_scalar`` for params (d,), b int64 (n, d), v (n, d) -> (n, d).

    Logistic (``normal`` False): b = 0: z~ = log v - log(1 + (1 - v) e^-l);  b = 1: z~ = log(1 + v e^l) - log(1 - v);
    dz~/dl = v e^l / (1 + v e^l) if b = 1, (1 - v) e^-l / (1 + (1 - v) e^-l) if b = 0.  Inconsistent infinite
    cases return the limits log v (b=0, l=+inf) and -log(1-v) (b=1, l=-inf).
    Normal: see ``_conditional_normal_scalar``.
    """
    n, d = v.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _conditional_binary_scalar(params[j], b[i, j], v[i, j], normal, grad)
    return out


def _check_conditional_binary(param, b, v, pname):
    p = _check_logits(param, pname, 1)
    (d,) = p.shape
    vv = _check_uniform(v, "v", ndim=2)
    check_shape(vv, "v", (None, d))
    bb = _check_index(b, "b", vv.shape, 2)
    bad = (np.isposinf(p)[None, :] & (bb == 0)) | (np.isneginf(p)[None, :] & (bb == 1))
    if bad.any():
        where = first_index(bad)
        _impossible("b", where, f"b = {int(bb[where])} has probability 0 when {pname}[{where[1]}] = {p[where[1]]}")
    return p, bb, vv


def conditional_logistic(logits, b, v):
    r"""REBAR's conditional logistic noise :math:`\tilde z \sim z \mid b` for Bernoulli bits.

    With :math:`z = \ell + \log u - \log(1-u)`, :math:`b = 1[z > 0]` and
    :math:`\theta = \sigma(\ell)`, the conditional given :math:`b` is
    reparametrised by fresh uniforms :math:`v` (Tucker et al., 2017, "REBAR",
    appendix):

    .. math::
        v' = \begin{cases} v (1-\theta) & b = 0 \\ (1-\theta) + v\theta & b = 1 \end{cases},
        \qquad \tilde z = \ell + \log\frac{v'}{1 - v'} .

    Simplified exactly (:math:`\sigma(-\ell)/\sigma(\ell) = e^{-\ell}`) and
    evaluated in log space:

    .. math::
        \tilde z = \begin{cases}
            \log v - \log\bigl(1 + (1-v) e^{-\ell}\bigr) & b = 0 \\
            \log(1 + v e^{\ell}) - \log(1-v) & b = 1
        \end{cases}

    (``log1p`` of the product :math:`v e^{\ell}` while it is finite, formed as
    :math:`(v e^{709}) e^{\ell - 709}` for :math:`709 \le \ell < 1418` so that a
    tiny ``v`` keeps its relative accuracy; else ``softplus(log v + l)``, where
    :math:`\log v + \ell > 709`).  Both terms have the same sign, so there is no
    cancellation: relative error at most 2e-16 against mpmath (720 digits) for
    :math:`|\ell| \le 710` and :math:`v` from 5e-324 to :math:`1 - 2^{-53}`, for
    :math:`\tilde z` and for :func:`conditional_logistic_grad`.  ``z~ < 0`` iff ``b = 0``.

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
    return _conditional_binary(p, bb, vv, False, False)


def conditional_logistic_grad(logits, b, v):
    r"""Elementwise :math:`\partial \tilde z / \partial \ell` of :func:`conditional_logistic`.

    Includes the dependence of :math:`v'` on :math:`\theta = \sigma(\ell)`
    (dropping it, i.e. returning 1, is a classic source of bias in REBAR):

    .. math::
        \frac{\partial \tilde z}{\partial \ell} = \begin{cases}
            \dfrac{\sigma(-\ell)(1-v)}{1 - v\sigma(-\ell)}
              = \dfrac{(1-v)e^{-\ell}}{1 + (1-v)e^{-\ell}} & b = 0 \\[1ex]
            \dfrac{v\sigma(\ell)}{\sigma(-\ell) + v\sigma(\ell)}
              = \dfrac{v e^{\ell}}{1 + v e^{\ell}} & b = 1
        \end{cases}

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
    return _conditional_binary(p, bb, vv, False, True)


def conditional_normal(mu, b, v):
    r"""Latent normal of the Gaussian-threshold family conditioned on its bit.

    The family is :math:`z \sim N(\mu, 1)`, :math:`b = 1[z \ge 0]`, so
    :math:`P(b = 1) = \Phi(\mu)`.  Given :math:`b`, :math:`z` is a truncated
    normal; inverting its CDF with fresh uniforms :math:`v` (monotone increasing
    in :math:`v`):

    .. math::
        \tilde z = \begin{cases}
          \mu + \Phi^{-1}\bigl(v\,\Phi(-\mu)\bigr) & b = 0 \quad (\tilde z < 0)\\
          \mu + \Phi^{-1}\bigl(\Phi(-\mu) + v\,\Phi(\mu)\bigr)
              = \mu - \Phi^{-1}\bigl((1-v)\,\Phi(\mu)\bigr) & b = 1 \quad (\tilde z \ge 0)
        \end{cases}

    (The student project report "Project REBAR" (Andrzejczuk, Bielecki & Orłowski) swaps
    :math:`\Phi(\theta)` and :math:`\Phi(-\theta)` in this formula; its version is wrong:
    see the validation case ``rebar_report_mixture``.)

    **Computed from the distance to the threshold**, not as ``mu ∓ w`` (which
    cancels next to 0: at ``mu = 5, b = 1, v = 1e-300`` it gives 8.9e-16 for
    6.7262e-295).  With :math:`y = |\tilde z|`, the standardised threshold
    :math:`a = -\mu` (b = 1) or :math:`\mu` (b = 0) and the cumulative hazard
    :math:`e = -\log P(|\tilde z| > y \mid b)`, which is ``-log1p(-v)`` (b = 1)
    or ``-log(v)`` (b = 0), exact in ``v``, :math:`y` solves

    .. math::
        H_a(y) = \log Q(a) - \log Q(a + y) = \int_a^{a+y} \lambda = e,
        \qquad Q = 1 - \Phi,\; \lambda = \varphi / Q .

    The direct inverse :math:`a + y = Q^{-1}(Q(a) e^{-e})` is kept where its
    rounding bound :math:`(|a| + 8|a + y| + |\log Q(a+y)|/\lambda(a+y))\,
    \epsilon / y` is below :math:`2^{-46}`; elsewhere :math:`y` is refined by
    Newton's method on :math:`\log(H_a(y)/e)`, with :math:`H_a` written without
    cancellation through the Mills ratio :math:`R = Q/\varphi`:
    :math:`H_a(y) = y(a + y/2) + G(a, y)` for :math:`a \ge 0`, and through
    :math:`\Phi(a + y) = \Phi(a) e^{D}`, :math:`D = y(|a| - y/2) + G(|a| - y, y)`,
    for :math:`a < 0`, where :math:`G(c, w) = \int_c^{c+w} (\lambda(x) - x)\,dx
    = \log R(c) - \log R(c + w) \ge 0` (Gauss–Legendre on short intervals,
    continued fraction for :math:`\lambda(x) - x` at :math:`x \ge 3`).

    Accuracy (against mpmath, :math:`|\mu|` up to 1e5 and :math:`v` from
    5e-324 to :math:`1 - 2^{-53}`): relative error below 3e-14, except for
    b = 1 with :math:`\Phi(-\mu)` subnormal (:math:`37.5 < \mu < 38.6`) and ``v``
    below about 1e-300, where the log-space form carries :math:`(\mu^2/2 + 745)`
    ulp: at most 1.1e-13 measured, bound 2e-13.  Rounding
    is clamped so that ``1[z~ >= 0] == b`` always.

    Parameters
    ----------
    mu : array_like, shape (d,)
        Means; ``±inf`` allowed (then ``b`` must be 1 / 0 and ``z~ = ±inf``).
    b, v
        As in :func:`conditional_logistic`.

    Returns
    -------
    ndarray of float64, shape (n, d)
    """
    m, bb, vv = _check_conditional_binary(mu, b, v, "mu")
    return _conditional_binary(m, bb, vv, True, False)


def conditional_normal_grad(mu, b, v):
    r"""Elementwise :math:`\partial \tilde z / \partial \mu` of :func:`conditional_normal`.

    Differentiating :math:`\Phi(w) = v\Phi(-\mu)` (b = 0, :math:`\tilde z = \mu + w`)
    or :math:`\Phi(w) = (1-v)\Phi(\mu)` (b = 1, :math:`\tilde z = \mu - w`) and
    using :math:`\varphi(w)/\varphi(\mu) = e^{(\mu^2 - w^2)/2}`:

    .. math::
        \frac{\partial \tilde z}{\partial \mu}
        = 1 - r\, e^{\tilde z^2/2 - \mu \tilde z}
        = -\operatorname{expm1}\bigl(\log r + \tilde z(\tilde z/2 - \mu)\bigr),
        \qquad r = \begin{cases} v & b = 0 \\ 1 - v & b = 1 \end{cases}

    (hand-derived; tested against central finite differences).  With
    :math:`r e^{\tilde z^2/2 - \mu \tilde z} = R(a + y)/R(a)` (notation of
    :func:`conditional_normal`) this is

    .. math::
        \frac{\partial \tilde z}{\partial \mu} = 1 - \frac{R(a + y)}{R(a)}
        = -\operatorname{expm1}\bigl(-G(a, y)\bigr),

    computed from :math:`G = e - y(a + y/2)` where that difference does not
    cancel and from the integral :math:`G(a, y)` otherwise, so it keeps its
    relative accuracy next to the threshold (where it is about :math:`y\,(\lambda(a) - a)`).
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
    return _conditional_binary(m, bb, vv, True, True)
