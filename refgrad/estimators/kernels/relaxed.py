r"""Fused row kernels of Gumbel-Softmax and straight-through (Bernoulli and Categorical).

One row of uniforms ``u`` gives the latent

* Bernoulli: ``z_j = ℓ_j + L(u_j)``, ``L(u) = log u − log(1 − u)``;
* Categorical: ``z_{jk} = ℓ_{jk} + G(u_{jk})``, ``G(u) = −log(−log u)``;

and the estimate ``ĝ = J_τ(z)ᵀ c`` with the relaxation's Jacobian
``J_τ(z) = ∂σ_τ(z)/∂z`` (bits) or ``∂ softmax_τ(z)/∂z`` (per variable), where

* ``gumbel_softmax``: ``c = ∇f(x)`` at the relaxed sample ``x = σ_τ(z)`` or
  ``softmax_τ(z)`` (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017);
* ``straight_through``: ``c = ∇f(b)`` at the hard sample ``b = dist.from_uniforms(u)``
  (Bengio, Léonard & Courville 2013; Jang, Gu & Poole 2017, §2.2).

Every stage calls the scalar / row helper that the batched path of
:mod:`refgrad.estimators.relaxed` runs elementwise: the noise transforms
``_logistic_noise_scalar`` / ``_gumbel_noise_scalar`` (the same arithmetic as
:func:`refgrad.random.logistic` / :func:`refgrad.random.gumbel` on uniforms in
[0, 1]), :func:`refgrad.random._sigmoid` and ``_softmax_row`` for the relaxation,
``_sigmoid_tau_vjp_scalar`` / ``_softmax_tau_vjp_row`` of :mod:`refgrad.relaxations`
for the VJP, and the sampling helpers of :mod:`refgrad.estimators._fused` for ``b``.
The latent is ``ℓ + noise`` by a plain addition, as the batched path's array
addition.  So the fused estimates are bit-identical to the batched ones (tested in
``tests/estimators/test_fused.py`` to 1e-13 and in ``tests/estimators/test_fused_antithetic_relaxed.py``
bit for bit).
"""
import numpy as np
from scipy import special

from ..._core.jit import jit, row_jit
from ..._core.special import _sigmoid
from ...random.noise import _gumbel_noise_scalar, _logistic_noise_scalar
from ...relaxations.tempered import _sigmoid_tau_vjp_scalar, _softmax_row, _softmax_tau_vjp_row
from .._fused import FusedPlan, bernoulli_bits, categorical_one_hot, normalised_logits, objective_grad

__all__ = ["gumbel_softmax_plan", "straight_through_plan"]


# ----------------------------------------------------------------------------- row helpers


@jit
def _logistic_latent(logits, u, z):
    """``z_j = ℓ_j + L(u_j)`` for one row (the Bernoulli latent behind ``1[z > 0]``)."""
    for j in range(logits.size):
        z[j] = logits[j] + _logistic_noise_scalar(u[j])


@jit
def _gumbel_latent(logits, u, z):
    """``z_{jk} = ℓ_{jk} + G(u_{jk})`` for one row, flat ``d·K`` in C order (the Gumbel-max latent)."""
    d, K = logits.shape
    for j in range(d):
        for k in range(K):
            z[j * K + k] = logits[j, k] + _gumbel_noise_scalar(u[j * K + k])


@row_jit
def _sigmoid_vjp_row(z, tau, c, out):
    """``out_j = c_j σ_τ'(z_j)`` (0 where saturated): the VJP of the tempered sigmoid for one row."""
    for j in range(z.size):
        out[j] = _sigmoid_tau_vjp_scalar(z[j], tau, c[j])[0]


@row_jit
def _softmax_vjp_rows(z, tau, c, K, s, out):
    """The VJP of the tempered softmax of each variable of one flat row (``s``: scratch (K,))."""
    for j in range(z.size // K):
        a = j * K
        _softmax_tau_vjp_row(z[a:a + K], tau, c[a:a + K], s, out[a:a + K])


# ----------------------------------------------------------------------------- gumbel_softmax


@jit
def _gumbel_softmax_bernoulli(U, out, start, stop, logits, tau, kind, par):
    d = logits.size
    z = np.empty(d)
    x = np.empty(d)
    g = np.empty(d)
    for i in range(start, stop):
        _logistic_latent(logits, U[i], z)
        for j in range(d):
            x[j] = _sigmoid(z[j] / tau)
        objective_grad(kind, par, x, g)
        _sigmoid_vjp_row(z, tau, g, out[i])


@jit
def _gumbel_softmax_categorical(U, out, start, stop, logits, tau, kind, par):
    d, K = logits.shape
    z = np.empty(d * K)
    x = np.empty(d * K)
    g = np.empty(d * K)
    s = np.empty(K)
    for i in range(start, stop):
        _gumbel_latent(logits, U[i], z)
        for j in range(d):
            _softmax_row(z[j * K:(j + 1) * K], tau, x[j * K:(j + 1) * K])
        objective_grad(kind, par, x, g)
        _softmax_vjp_rows(z, tau, g, K, s, out[i])


def gumbel_softmax_plan(dist, obj, row, logits, tau):
    """Fused Gumbel-Softmax for Bernoulli and Categorical on the latent's ``logits`` (None otherwise)."""
    if not obj.relaxed_ok:
        return None  # the batched path refuses it with its message
    kind, par = row
    logits = np.ascontiguousarray(logits, dtype=np.float64)
    size = int(np.prod(dist.param_shape))
    if dist.family == "bernoulli":
        return FusedPlan(_gumbel_softmax_bernoulli, (logits, float(tau), kind, par), size, size)
    if dist.family == "categorical":
        return FusedPlan(_gumbel_softmax_categorical, (logits, float(tau), kind, par), size, size)
    return None


# ----------------------------------------------------------------------------- straight_through


@jit
def _straight_through_bernoulli(U, out, start, stop, logits, thr, tau, kind, par):
    d = logits.size
    b = np.empty(d)
    z = np.empty(d)
    g = np.empty(d)
    for i in range(start, stop):
        bernoulli_bits(U[i], 0, thr, b)
        objective_grad(kind, par, b, g)
        _logistic_latent(logits, U[i], z)
        _sigmoid_vjp_row(z, tau, g, out[i])


@jit
def _straight_through_categorical(U, out, start, stop, logits, lg, tau, kind, par):
    d, K = logits.shape
    b = np.empty(d * K)
    arg = np.empty(d, dtype=np.int64)
    z = np.empty(d * K)
    g = np.empty(d * K)
    s = np.empty(K)
    for i in range(start, stop):
        categorical_one_hot(U[i], 0, lg, b, arg)
        objective_grad(kind, par, b, g)
        _gumbel_latent(logits, U[i], z)
        _softmax_vjp_rows(z, tau, g, K, s, out[i])


def straight_through_plan(dist, row, logits, tau):
    """Fused straight-through for Bernoulli and Categorical on the latent's ``logits`` (None otherwise)."""
    kind, par = row
    logits = np.ascontiguousarray(logits, dtype=np.float64)
    size = int(np.prod(dist.param_shape))
    if dist.family == "bernoulli":
        thr = np.ascontiguousarray(special.expit(-dist.logits))  # as Bernoulli.from_uniforms
        return FusedPlan(_straight_through_bernoulli, (logits, thr, float(tau), kind, par), size, size)
    if dist.family == "categorical":
        lg = normalised_logits(np.ascontiguousarray(dist.params, dtype=np.float64))  # as categorical_gumbel_max
        return FusedPlan(_straight_through_categorical, (logits, lg, float(tau), kind, par), size, size)
    return None
