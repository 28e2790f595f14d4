r"""Fused row kernels of the Gumbel-Rao estimator (Bernoulli, Categorical; both derivatives).

Each kernel computes, row by row, what ``_gumbel_rao`` of
:mod:`refgrad.estimators.relaxed` computes stage by stage: the hard sample ``b``
from ``u``, ``c = ∇f(b)``, the ``k`` conditional latents ``z̃_j ~ z | b`` from
``v_j`` and the average of the relaxation's vector-Jacobian products

.. math::  \hat g = \frac1k \sum_{j=1}^k J_τ(\tilde z_j)^\top c

(``derivative="identity"``) or the average of the total derivatives through the
conditional sampler (``derivative="total"``: bits multiply the slope by
``∂z̃/∂ℓ``; categoricals chain the softmax VJP into the conditional Gumbel's VJP).

Noise row: ``u`` (``event_shape``) then ``v`` (``(k, *event_shape)``), each in C order
(:func:`refgrad.estimators._fused.per_sample_fields`).  The per-distribution numbers
(thresholds σ(−ℓ), normalised logits, their logsumexp and softmax, the rows frozen
by a ``+inf`` logit) are computed by the same functions as the batched path, and
the per-row arithmetic follows its order of operations, so the two agree to
rounding (``tests/estimators/test_fused.py``).
"""
import math

import numpy as np

from ..._core.jit import jit, row_jit
from ...random.conditional import (
    _conditional_gumbel_row,
    _conditional_gumbel_rows,
    _conditional_gumbel_vjp_row,
    _conditional_logistic_grad_scalar,
    _conditional_logistic_scalar,
)
from ...relaxations.tempered import _sigmoid_slope_scalar, _softmax_tau_vjp_row
from .._fused import FusedPlan, bernoulli_bits, categorical_one_hot, objective_grad

__all__ = ["gumbel_rao_plan"]


# ---------------------------------------------------------------------------- scalar and row helpers


@row_jit
def softmax_vjp_identity_add(zr, tau, c, s, acc):
    """``acc += s ⊙ (c − ⟨s, c⟩)`` with ``s = softmax(zr/τ)`` (one term of the identity-derivative mean).

    A row with a +inf entry is locally constant and adds nothing; a row of all −inf sets NaN.
    The caller divides the sum over the k terms by ``k τ``.
    """
    K = zr.size
    m = -np.inf
    for q in range(K):
        if zr[q] > m:
            m = zr[q]
    if m == np.inf:
        return
    if m == -np.inf:
        for q in range(K):
            acc[q] = np.nan
        return
    total = 0.0
    for q in range(K):
        s[q] = math.exp((zr[q] - m) / tau)
        total += s[q]
    c_bar = 0.0
    for q in range(K):
        s[q] = s[q] / total
        c_bar += s[q] * c[q]
    for q in range(K):
        acc[q] += s[q] * (c[q] - c_bar)


# ---------------------------------------------------------------------------- kernels


@jit
def _gumbel_rao_bernoulli(U, out, start, stop, thr, logits, tau, k, total, kind, par):
    d = thr.size
    z = np.empty(d)
    c = np.empty(d)
    for i in range(start, stop):
        bernoulli_bits(U[i], 0, thr, z)
        objective_grad(kind, par, z, c)
        for a in range(d):
            bit = 1 if z[a] == 1.0 else 0
            acc = 0.0
            for j in range(k):
                x = U[i, d + j * d + a]
                zt = _conditional_logistic_scalar(logits[a], bit, x)
                dz = _conditional_logistic_grad_scalar(logits[a], bit, x) if total else 1.0
                slope = _sigmoid_slope_scalar(zt / tau)
                if slope != 0.0:
                    acc += slope * dz
            out[i, a] = c[a] * (acc / (k * tau))


@jit
def _gumbel_rao_categorical(U, out, start, stop, lg, lse, p, frozen, tau, k, total, kind, par):
    d, K = lg.shape
    size = d * K
    z = np.empty(size)
    c = np.empty(size)
    arg = np.empty(d, dtype=np.int64)
    zt = np.empty(K)
    s = np.empty(K)
    cot = np.empty(K)
    w = np.empty(K)
    acc = np.empty(K)
    for i in range(start, stop):
        categorical_one_hot(U[i], 0, lg, z, arg)
        objective_grad(kind, par, z, c)
        for a in range(d):
            base = a * K
            if frozen[a]:  # rows with +inf logits are deterministic: gradient 0, as for ST
                for q in range(K):
                    out[i, base + q] = 0.0
                continue
            ca = c[base:base + K]
            for q in range(K):
                acc[q] = 0.0
            for j in range(k):
                v = U[i, size + j * size + base:size + j * size + base + K]
                _conditional_gumbel_row(lg[a], lse[a], arg[a], v, zt)
                if total:
                    _softmax_tau_vjp_row(zt, tau, ca, s, cot)
                    _conditional_gumbel_vjp_row(lg[a], lse[a], p[a], arg[a], v, cot, w)
                    for q in range(K):
                        acc[q] += w[q]
                else:
                    softmax_vjp_identity_add(zt, tau, ca, s, acc)
            for q in range(K):
                out[i, base + q] = acc[q] / k if total else acc[q] / (k * tau)


# ---------------------------------------------------------------------------- plan


def gumbel_rao_plan(dist, obj, row, shared, tau, k, derivative):
    """Fused Gumbel-Rao for Bernoulli and Categorical (any ``tau``, ``k`` and ``derivative``)."""
    size = int(np.prod(dist.param_shape))
    kind, par = row
    total = derivative == "total"
    tau = float(tau)
    k = int(k)
    if dist.family == "bernoulli":
        p1, p0 = dist._p1_p0()
        thr = np.ascontiguousarray(p0)
        logits = np.ascontiguousarray(dist.params, dtype=np.float64)
        return FusedPlan(_gumbel_rao_bernoulli, (thr, logits, tau, k, total, kind, par), size + k * size, size)
    if dist.family == "categorical":
        lg, lse, p, frozen = _conditional_gumbel_rows(np.ascontiguousarray(dist.params, dtype=np.float64))
        args = (lg, lse, p, frozen, tau, k, total, kind, par)
        return FusedPlan(_gumbel_rao_categorical, args, size + k * size, size)
    return None
