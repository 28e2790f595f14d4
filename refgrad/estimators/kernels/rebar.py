r"""Fused row kernels of REBAR and RELAX (Bernoulli and Categorical).

Each kernel computes, row by row, what :class:`refgrad.estimators.rebar._Parts` and
:class:`refgrad.estimators.relax._Forward` compute stage by stage on ``(n, ·)``
arrays, with the same scalar and row helpers (the formulas exist once):

* the hard sample ``b`` (:func:`~refgrad.estimators._fused.bernoulli_bits`,
  :func:`~refgrad.estimators._fused.categorical_one_hot`) and its score (the
  distribution's own tables);
* the latent ``z = φ + noise(u)`` (``_logistic_noise_scalar`` / ``_gumbel_noise_scalar``)
  and its relaxation ``x = σ_τ(z)`` (``_sigmoid`` / ``_softmax_row``);
* the conditional ``z̃ ~ z | b`` from ``v`` (``_conditional_logistic_scalar`` /
  ``_conditional_gumbel_row``) and its derivative in φ **including** the dependence
  on φ through the conditioning (``_conditional_logistic_grad_scalar`` /
  ``_conditional_gumbel_vjp_row``);
* the relaxation's VJP (``_sigmoid_tau_vjp_scalar`` / ``_softmax_tau_vjp_row``).

Per row, with ``s = ∂_φ log q(b)``:

.. math::
    a = f(b)\, s, \qquad c = J_τ(z)ᵀ ∇f(x) − D^ᵀ J_τ(\tilde z)ᵀ ∇f(\tilde x) − f(\tilde x)\, s,
    \qquad \hat g_{\rm REBAR} = a + η ⊙ c,

``D = ∂z̃/∂φ``; RELAX adds ``c_r``, the same expression with ``f`` replaced by the
network ``r_ψ`` (:class:`~refgrad.estimators.relax.RelaxSurrogate`):
``ĝ_RELAX = (a + η c) + c_r``.  The per-distribution numbers (sampling thresholds,
normalised logits, score tables, the conditional Gumbel's log-normaliser and
softmax, η) are computed in the plan functions by the batched path's own calls, and
the row arithmetic follows the batched order of operations, so the kernels are
bit-identical to the batched path (tested in ``tests/estimators/test_fused.py`` to 1e-13).

The plan functions take the numbers the estimator modules compute once per call
(the latent's logits, η -- with ``eta="optimal"`` estimated on the shared pilot fields
by the batched path's own function -- and the network's weights).
"""
import math

import numpy as np

from ..._core.jit import jit, row_jit
from ..._core.special import _sigmoid
from ...random.conditional import (
    _conditional_gumbel_row,
    _conditional_gumbel_rows,
    _conditional_gumbel_vjp_row,
    _conditional_logistic_grad_scalar,
    _conditional_logistic_scalar,
)
from ...random.noise import _gumbel_noise_scalar, _logistic_noise_scalar
from ...relaxations.tempered import _sigmoid_tau_vjp_scalar, _softmax_row, _softmax_tau_vjp_row
from .._fused import FusedPlan, bernoulli_bits, categorical_one_hot, normalised_logits, objective_grad, objective_value

__all__ = ["FAMILIES", "rebar_plan", "relax_plan"]


# ---------------------------------------------------------------------------- the network r_ψ (one row)


@row_jit
def _mlp_value_row(x, w1, b1, w2, b2):
    """r(x) = w2ᵀ tanh(W1 x + b1) + b2 for one flattened relaxed point x (D,)."""
    acc = b2
    for h in range(w1.shape[0]):
        a = b1[h]
        for k in range(x.size):
            a += w1[h, k] * x[k]
        acc += w2[h] * math.tanh(a)
    return acc


@row_jit
def _mlp_grad_row(x, w1, b1, w2, out):
    """∂r/∂x = W1ᵀ (w2 ⊙ (1 − t²)), t = tanh(W1 x + b1), for one row x (D,), written into ``out``."""
    for k in range(x.size):
        out[k] = 0.0
    for h in range(w1.shape[0]):
        a = b1[h]
        for k in range(x.size):
            a += w1[h, k] * x[k]
        t = math.tanh(a)
        g = w2[h] * (1.0 - t * t)
        for k in range(x.size):
            out[k] += g * w1[h, k]


# ---------------------------------------------------------------------------- Bernoulli rows


@jit
def _bernoulli_forward(u, lg, thr, tau, b, z, x, zt, slope, xt):
    """b, z = ℓ + logistic(u), x = σ_τ(z), z̃ ~ z | b from v = u[d:], ∂z̃/∂ℓ and x̃ = σ_τ(z̃), for one row."""
    d = thr.size
    bernoulli_bits(u, 0, thr, b)
    for j in range(d):
        z[j] = lg[j] + _logistic_noise_scalar(u[j])
        x[j] = _sigmoid(z[j] / tau)
        bit = 1 if b[j] == 1.0 else 0
        zt[j] = _conditional_logistic_scalar(lg[j], bit, u[d + j])
        slope[j] = _conditional_logistic_grad_scalar(lg[j], bit, u[d + j])
        xt[j] = _sigmoid(zt[j] / tau)


@jit
def _bernoulli_path(j, z, zt, slope, tau, cx, cxt):
    """``J_τ(z)ᵀ cx − D J_τ(z̃)ᵀ cxt`` at coordinate j (D = ∂z̃/∂ℓ, diagonal)."""
    pz = _sigmoid_tau_vjp_scalar(z[j], tau, cx[j])[0]
    pzt = slope[j] * _sigmoid_tau_vjp_scalar(zt[j], tau, cxt[j])[0]
    return pz - pzt


@jit
def _rebar_bernoulli(U, out, start, stop, lg, thr, s1, s0, tau, eta, plus_zero, kind, par):
    d = thr.size
    b, z, x, zt = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    slope, xt, gx, gxt = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    for i in range(start, stop):
        _bernoulli_forward(U[i], lg, thr, tau, b, z, x, zt, slope, xt)
        fb = objective_value(kind, par, b)
        objective_grad(kind, par, x, gx)
        fxt = objective_value(kind, par, xt)
        objective_grad(kind, par, xt, gxt)
        for j in range(d):
            s = s1[j] if b[j] == 1.0 else s0[j]
            c = _bernoulli_path(j, z, zt, slope, tau, gx, gxt) - fxt * s
            out[i, j] = fb * s + eta[j] * c
            if plus_zero:  # RELAX with r ≡ 0 adds c_r = +0.0
                out[i, j] = out[i, j] + 0.0


@jit
def _relax_bernoulli(U, out, start, stop, lg, thr, s1, s0, tau, eta, w1, b1, w2, b2, kind, par):
    d = thr.size
    b, z, x, zt = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    slope, xt, gx, gxt = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    rx, rxt = np.empty(d), np.empty(d)
    for i in range(start, stop):
        _bernoulli_forward(U[i], lg, thr, tau, b, z, x, zt, slope, xt)
        fb = objective_value(kind, par, b)
        objective_grad(kind, par, x, gx)
        fxt = objective_value(kind, par, xt)
        objective_grad(kind, par, xt, gxt)
        r_xt = _mlp_value_row(xt, w1, b1, w2, b2)
        _mlp_grad_row(x, w1, b1, w2, rx)
        _mlp_grad_row(xt, w1, b1, w2, rxt)
        for j in range(d):
            s = s1[j] if b[j] == 1.0 else s0[j]
            c = _bernoulli_path(j, z, zt, slope, tau, gx, gxt) - fxt * s
            c_r = _bernoulli_path(j, z, zt, slope, tau, rx, rxt) - r_xt * s
            out[i, j] = (fb * s + eta * c) + c_r


# ---------------------------------------------------------------------------- Categorical rows


@jit
def _categorical_forward(u, lg_s, lg, lse, tau, b, arg, z, x, zt, xt):
    """b (one-hot), z = ℓ + Gumbel(u), x = softmax_τ(z), z̃ ~ z | b from v = u[d·K:], x̃, for one row."""
    d, K = lg.shape
    categorical_one_hot(u, 0, lg_s, b, arg)
    off = d * K
    for j in range(d):
        lo = j * K
        for k in range(K):
            z[lo + k] = lg[j, k] + _gumbel_noise_scalar(u[lo + k])
        _softmax_row(z[lo:lo + K], tau, x[lo:lo + K])
        _conditional_gumbel_row(lg[j], lse[j], arg[j], u[off + lo:off + lo + K], zt[lo:lo + K])
        _softmax_row(zt[lo:lo + K], tau, xt[lo:lo + K])


@jit
def _categorical_path(u, lg, lse, p, frozen, arg, z, zt, tau, cx, cxt, s, q, pz, pzt):
    """``pz = J_τ(z)ᵀ cx`` and ``pzt = Dᵀ J_τ(z̃)ᵀ cxt`` (D = ∂z̃/∂ℓ, the conditional Gumbel's VJP), one row."""
    d, K = lg.shape
    off = d * K
    for j in range(d):
        lo = j * K
        _softmax_tau_vjp_row(z[lo:lo + K], tau, cx[lo:lo + K], s, pz[lo:lo + K])
        _softmax_tau_vjp_row(zt[lo:lo + K], tau, cxt[lo:lo + K], s, q[lo:lo + K])
        if frozen[j]:
            for k in range(K):
                pzt[lo + k] = 0.0
        else:
            _conditional_gumbel_vjp_row(lg[j], lse[j], p[j], arg[j], u[off + lo:off + lo + K], q[lo:lo + K],
                                        pzt[lo:lo + K])


@jit
def _rebar_categorical(U, out, start, stop, lg_s, lg, lse, p, frozen, s1, s0, tau, eta, plus_zero, kind, par):
    d, K = lg.shape
    m = d * K
    b, z, x, zt, xt = np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    gx, gxt, q, pz, pzt = np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    s = np.empty(K)
    arg = np.empty(d, dtype=np.int64)
    for i in range(start, stop):
        _categorical_forward(U[i], lg_s, lg, lse, tau, b, arg, z, x, zt, xt)
        fb = objective_value(kind, par, b)
        objective_grad(kind, par, x, gx)
        fxt = objective_value(kind, par, xt)
        objective_grad(kind, par, xt, gxt)
        _categorical_path(U[i], lg, lse, p, frozen, arg, z, zt, tau, gx, gxt, s, q, pz, pzt)
        for e in range(m):
            sc = s1[e] if b[e] == 1.0 else s0[e]
            c = pz[e] - pzt[e] - fxt * sc
            out[i, e] = fb * sc + eta[e] * c
            if plus_zero:
                out[i, e] = out[i, e] + 0.0


@jit
def _relax_categorical(U, out, start, stop, lg_s, lg, lse, p, frozen, s1, s0, tau, eta, w1, b1, w2, b2, kind, par):
    d, K = lg.shape
    m = d * K
    b, z, x, zt, xt = np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    gx, gxt, q, pz, pzt = np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    rx, rxt, pr, prt = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    s = np.empty(K)
    arg = np.empty(d, dtype=np.int64)
    for i in range(start, stop):
        _categorical_forward(U[i], lg_s, lg, lse, tau, b, arg, z, x, zt, xt)
        fb = objective_value(kind, par, b)
        objective_grad(kind, par, x, gx)
        fxt = objective_value(kind, par, xt)
        objective_grad(kind, par, xt, gxt)
        r_xt = _mlp_value_row(xt, w1, b1, w2, b2)
        _mlp_grad_row(x, w1, b1, w2, rx)
        _mlp_grad_row(xt, w1, b1, w2, rxt)
        _categorical_path(U[i], lg, lse, p, frozen, arg, z, zt, tau, gx, gxt, s, q, pz, pzt)
        _categorical_path(U[i], lg, lse, p, frozen, arg, z, zt, tau, rx, rxt, s, q, pr, prt)
        for e in range(m):
            sc = s1[e] if b[e] == 1.0 else s0[e]
            c = pz[e] - pzt[e] - fxt * sc
            c_r = pr[e] - prt[e] - r_xt * sc
            out[i, e] = (fb * sc + eta * c) + c_r


# ---------------------------------------------------------------------------- plans


#: The families with fused REBAR and RELAX kernels.
FAMILIES = ("bernoulli", "categorical")


def _tables(dist, logits):
    """The per-distribution numbers of one family, by the batched path's own calls (a tuple of kernel args).

    ``logits``: the latent's logits, the batched path's (a categorical's with the convention of
    :mod:`refgrad.random` for rows holding ``+inf``).
    """
    if dist.family == "bernoulli":
        p1, p0 = dist._p1_p0()
        lg = np.ascontiguousarray(logits, dtype=np.float64)
        return (lg, np.ascontiguousarray(p0), np.ascontiguousarray(p0), np.ascontiguousarray(-p1))
    lg_s = normalised_logits(np.ascontiguousarray(dist.logits))  # the sampler's (Categorical.from_uniforms)
    lg, lse, p, frozen = _conditional_gumbel_rows(logits)  # the latent's and z̃'s
    s1 = np.ascontiguousarray(dist._complement).reshape(-1)
    s0 = np.ascontiguousarray(-dist._probs).reshape(-1)
    return (lg_s, lg, lse, p, frozen, s1, s0)


def rebar_plan(dist, row, logits, tau, eta, plus_zero=False):
    """Fused REBAR for Bernoulli and Categorical: latent logits ``logits``, η a float or a per-parameter array.

    ``plus_zero``: add RELAX's ``c_r = +0.0`` of the zero network to every entry.
    """
    if dist.family not in FAMILIES:
        return None
    shape = tuple(dist.param_shape)
    size = int(np.prod(shape))
    eta_flat = np.ascontiguousarray(np.broadcast_to(np.asarray(eta, dtype=np.float64), shape).reshape(-1))
    kernel = _rebar_bernoulli if dist.family == "bernoulli" else _rebar_categorical
    kind, par = row
    args = _tables(dist, logits) + (float(tau), eta_flat, plus_zero, kind, par)
    return FusedPlan(kernel, args, 2 * size, size)


def relax_plan(dist, row, logits, tau, eta, w1, b1, w2, b2):
    """Fused RELAX for Bernoulli and Categorical with the network ``r(x) = w2ᵀ tanh(W1 x + b1) + b2``."""
    if dist.family not in FAMILIES:
        return None
    size = int(np.prod(dist.param_shape))
    kind, par = row
    tau, eta, b2 = float(tau), float(eta), float(b2)
    if b2 == 0.0 and not (np.any(w1) or np.any(b1) or np.any(w2)):  # r ≡ 0: REBAR(η, τ), plus c_r = +0.0
        return rebar_plan(dist, row, logits, tau, eta, plus_zero=True)
    kernel = _relax_bernoulli if dist.family == "bernoulli" else _relax_categorical
    weights = tuple(np.ascontiguousarray(w, dtype=np.float64) for w in (w1, b1, w2))
    args = _tables(dist, logits) + (tau, eta) + weights + (b2, kind, par)
    return FusedPlan(kernel, args, 2 * size, size)
