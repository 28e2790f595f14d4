r"""RELAX: REBAR's control variate replaced by a learned surrogate, and its training.

Grathwohl, Choi, Wu, Roeder & Duvenaud (2018), "Backpropagation through the void:
optimizing control variates for black-box gradient estimation", ICLR 2018, §3.3
(eq. 8) and Algorithm 2 (discrete case).

Same noise, latent ``z``, hard sample ``b`` and conditional ``z̃`` as
:mod:`refgrad.estimators.rebar`; the control variate is

.. math::  c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z)),

``σ_τ`` the tempered sigmoid (bits) or softmax (categorical) and ``r_ψ`` a
one-hidden-layer network of the flattened relaxed point ``x = σ_τ(z)``,

.. math::  r_ψ(x) = w_2^\top \tanh(W_1 x + b_1) + b_2, \qquad ψ = (W_1, b_1, w_2, b_2).

Input choice: ``x = σ_τ(z)`` rather than ``z``: it is bounded (``[0, 1]`` or the
simplex), stays finite at infinite parameters (``z = ±∞``), and shares the
temperature with the ``η f`` part, so ``r ≡ 0`` recovers REBAR exactly.  The
constant ``b₂`` acts as a REINFORCE baseline (it contributes ``−b₂ ∂_φ log q(b)``).

Every derivative is hand-derived (written next to its kernel) and tested against
central finite differences.
"""
import math
import numbers

import numpy as np

from .._core.checks import InputTypeError, as_float_array, check_positive_scalar, check_sample_count, describe
from .._core.jit import jit
from ..random import as_generator, uniform
from ..relaxations import sigmoid_tau, sigmoid_tau_vjp, softmax_tau, softmax_tau_vjp
from ._base import EstimatorSpec, NoiseField, register
from ._latent import DISCRETE, latent_logits, relaxation, relaxation_vjp
from .kernels.rebar import _mlp_grad_row, _mlp_value_row
from .kernels.rebar import relax_plan as _relax_plan
from .rebar import (
    _bcast,
    _check_dist,
    _combine,
    _differentiable,
    _flat,
    _latent_pull,
    _latent_residual,
    _Parts,
    _rebar_breakpoints,
    _rebar_latent_mean,
    _rebar_latent_z,
    _rebar_latent_zt,
)

__all__ = ["RelaxSurrogate", "fit_relax"]


# ---------------------------------------------------------------------------- kernels: relaxation jets


@jit
def _sigmoid_tau_jets(z, tau, e):
    """(ẋ, ∂τx, ∂τẋ) for x = σ(z/τ) and ẋ = (∂x/∂z) e, elementwise on (n, d) arrays.

    With y = z/τ, σ' = σ(1−σ), σ'' = σ'(1−2σ) = −σ' tanh(y/2):
    ẋ = σ' e/τ, ∂τx = −σ' y/τ, ∂τẋ = −e (σ'' y + σ')/τ².  Saturated entries (σ' = 0, z = ±inf) give 0.
    """
    n, d = z.shape
    xdot = np.zeros((n, d))
    x_tau = np.zeros((n, d))
    xdot_tau = np.zeros((n, d))
    for i in range(n):
        for j in range(d):
            y = z[i, j] / tau
            q = math.exp(-abs(y))
            slope = q / ((1.0 + q) * (1.0 + q))
            if slope == 0.0:
                continue
            curv = -slope * math.tanh(0.5 * y)
            xdot[i, j] = slope * e[i, j] / tau
            x_tau[i, j] = -slope * y / tau
            xdot_tau[i, j] = -e[i, j] * (curv * y + slope) / (tau * tau)
    return xdot, x_tau, xdot_tau


@jit
def _softmax_tau_jets(z, tau, e):
    """(ẋ, ∂τx, ∂τẋ) for x = softmax(z/τ) per row of (n, d, K) arrays, ẋ = (∂x/∂z) e.

    With s = x, y = (z − max z)/τ, ȳ = ⟨s, y⟩, ē = ⟨s, e⟩:
    ẋ = s ⊙ (e − ē)/τ, ∂τx = −s ⊙ (y − ȳ)/τ,
    ∂τẋ = ∂τx ⊙ (e − ē)/τ − s ⟨∂τx, e⟩/τ − ẋ/τ.
    Rows with a +inf entry are locally constant (0); entries with s = 0 give 0.
    """
    n, d, K = z.shape
    xdot = np.zeros((n, d, K))
    x_tau = np.zeros((n, d, K))
    xdot_tau = np.zeros((n, d, K))
    s = np.empty(K)
    y = np.empty(K)
    for i in range(n):
        for j in range(d):
            m = -np.inf
            for k in range(K):
                if z[i, j, k] > m:
                    m = z[i, j, k]
            if m == np.inf or m == -np.inf:
                continue
            total = 0.0
            for k in range(K):
                if z[i, j, k] == -np.inf:
                    y[k] = 0.0
                    s[k] = 0.0
                else:
                    y[k] = (z[i, j, k] - m) / tau
                    s[k] = math.exp(y[k])
                total += s[k]
            y_bar = 0.0
            e_bar = 0.0
            for k in range(K):
                s[k] = s[k] / total
                if s[k] > 0.0:
                    y_bar += s[k] * y[k]
                    e_bar += s[k] * e[i, j, k]
            st_e = 0.0
            for k in range(K):
                if s[k] > 0.0:
                    xdot[i, j, k] = s[k] * (e[i, j, k] - e_bar) / tau
                    x_tau[i, j, k] = -s[k] * (y[k] - y_bar) / tau
                    st_e += x_tau[i, j, k] * e[i, j, k]
            for k in range(K):
                if s[k] > 0.0:
                    xdot_tau[i, j, k] = (x_tau[i, j, k] * (e[i, j, k] - e_bar) - s[k] * st_e - xdot[i, j, k]) / tau
    return xdot, x_tau, xdot_tau


# ---------------------------------------------------------------------------- kernels: the network r_ψ


@jit
def _mlp_value(x, w1, b1, w2, b2):
    """r(x) = w2ᵀ tanh(W1 x + b1) + b2 per row of x (n, D) -> (n,)."""
    n = x.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = _mlp_value_row(x[i], w1, b1, w2, b2)
    return out


@jit
def _mlp_grad(x, w1, b1, w2):
    """∂r/∂x = W1ᵀ (w2 ⊙ (1 − t²)), t = tanh(W1 x + b1), per row -> (n, D)."""
    n, D = x.shape
    out = np.zeros((n, D))
    for i in range(n):
        _mlp_grad_row(x[i], w1, b1, w2, out[i])
    return out


@jit
def _mlp_hessian_bilinear(x, p, q, w1, b1, w2):
    """pᵀ ∇²r(x) q = Σ_h w2_h (−2 t_h (1 − t_h²)) (W1 p)_h (W1 q)_h per row -> (n,)."""
    n, D = x.shape
    H = w1.shape[0]
    out = np.zeros(n)
    for i in range(n):
        acc = 0.0
        for h in range(H):
            a = b1[h]
            wp = 0.0
            wq = 0.0
            for k in range(D):
                a += w1[h, k] * x[i, k]
                wp += w1[h, k] * p[i, k]
                wq += w1[h, k] * q[i, k]
            t = math.tanh(a)
            acc += w2[h] * (-2.0 * t * (1.0 - t * t)) * wp * wq
        out[i] = acc
    return out


@jit
def _mlp_param_vjp(x, xdot, alpha, beta, w1, b1, w2):
    """Σ_i [α_i ∂ψ r(x_i) + β_i ∂ψ (∇r(x_i) · ẋ_i)] for ψ = (W1, b1, w2, b2).

    With t = tanh(W1 x + b1), g = 1 − t², q = W1 ẋ (per row):
    ∂/∂w2_h: α t_h + β g_h q_h;   ∂/∂b2: α;
    ∂/∂b1_h: w2_h g_h (α − 2 β t_h q_h);
    ∂/∂W1_hk: w2_h g_h [(α − 2 β t_h q_h) x_k + β ẋ_k].
    """
    n, D = x.shape
    H = w1.shape[0]
    g_w1 = np.zeros((H, D))
    g_b1 = np.zeros(H)
    g_w2 = np.zeros(H)
    g_b2 = 0.0
    for i in range(n):
        g_b2 += alpha[i]
        for h in range(H):
            a = b1[h]
            qh = 0.0
            for k in range(D):
                a += w1[h, k] * x[i, k]
                qh += w1[h, k] * xdot[i, k]
            t = math.tanh(a)
            g = 1.0 - t * t
            g_w2[h] += alpha[i] * t + beta[i] * g * qh
            coef = alpha[i] - 2.0 * beta[i] * t * qh
            g_b1[h] += w2[h] * g * coef
            for k in range(D):
                g_w1[h, k] += w2[h] * g * (coef * x[i, k] + beta[i] * xdot[i, k])
    return g_w1, g_b1, g_w2, g_b2


# ---------------------------------------------------------------------------- the surrogate


def _check_event_shape(event_shape):
    try:
        items = tuple(event_shape)
        ok = all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in items)
        shape = tuple(int(s) for s in items) if ok else ()
        ok = ok and len(shape) in (1, 2) and all(s >= 1 for s in shape)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"event_shape must be (d,) (bits) or (d, K) (categorical) with positive entries; "
                         f"got {describe(event_shape)}")
    if len(shape) == 2 and shape[1] < 2:
        raise ValueError(f"event_shape (d, K) needs K >= 2; got {shape}")
    return shape


def _finite_float(value, name):
    if not isinstance(value, (numbers.Real, np.ndarray)) or isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be a finite float; got {describe(value)} of type {type(value).__name__}")
    arr = as_float_array(value, name)
    if arr.ndim != 0 or not np.isfinite(arr):
        raise ValueError(f"{name} must be a finite float (a scalar); got {describe(value)}")
    return float(arr)


def _require_finite(arr, name):
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite; got {float(arr[where])!r} at index {where}")
    return arr


def _param_array(value, name, shape):
    arr = as_float_array(value, name, copy=True)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {arr.shape}")
    _require_finite(arr, name)
    arr.setflags(write=False)
    return arr


class RelaxSurrogate:
    r"""RELAX's control variate ``c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z))``.

    ``r_ψ(x) = w₂ᵀ tanh(W₁ x + b₁) + b₂`` of the flattened relaxed point ``x``
    (``D = prod(event_shape)`` inputs, ``hidden`` units).  Immutable: training
    returns new instances (:meth:`replace`).

    Parameters
    ----------
    event_shape : tuple
        ``(d,)`` for Bernoulli / GaussianThreshold bits (relaxation ``σ_τ``), ``(d, K)``
        for a Categorical (relaxation ``softmax_τ`` per variable).
    hidden : int
        Hidden units, ≥ 1 (default 8).
    eta : float
        Finite coefficient of ``f(σ_τ(·))`` (default 1.0).
    tau : float
        Temperature, finite and > 0 (default 0.5).
    rng : None, int or numpy.random.Generator
        Initialisation (SPEC 7): ``W₁ ~ N(0, 4/D)``, ``b₁ ~ N(0, 1/4)``,
        ``w₂ ~ N(0, scale²/hidden)``, ``b₂ = 0``.
    scale : float
        Finite, ≥ 0, scale of ``w₂``; ``scale=0`` gives ``r ≡ 0`` with a non-degenerate
        hidden layer (the default start of :func:`fit_relax`: REBAR exactly, but
        trainable).

    Attributes
    ----------
    event_shape, hidden, eta, tau, w1 (hidden, D), b1 (hidden,), w2 (hidden,), b2 (float)
    """

    def __init__(self, event_shape, hidden=8, eta=1.0, tau=0.5, rng=None, scale=1.0):
        shape = _check_event_shape(event_shape)
        hidden = check_sample_count(hidden, 8 * (int(np.prod(shape)) + 2), "hidden")  # W1 row, b1, w2
        scale = _finite_float(scale, "scale")
        if scale < 0:
            raise ValueError(f"scale must be a finite float >= 0; got {scale!r}")
        gen = as_generator(rng)
        D = int(np.prod(shape))
        w1 = gen.normal(size=(hidden, D)) * (2.0 / math.sqrt(D))
        b1 = gen.normal(size=hidden) * 0.5
        w2 = gen.normal(size=hidden) * (scale / math.sqrt(hidden))
        self._set(shape, w1, b1, w2, 0.0, eta, tau)

    def _set(self, shape, w1, b1, w2, b2, eta, tau):
        D = int(np.prod(shape))
        self.event_shape = shape
        w1 = as_float_array(w1, "w1", ndim=2)
        hidden = w1.shape[0]
        if hidden < 1:
            raise ValueError("w1 must have at least one row (hidden unit)")
        self.w1 = _param_array(w1, "w1", (hidden, D))
        self.b1 = _param_array(b1, "b1", (hidden,))
        self.w2 = _param_array(w2, "w2", (hidden,))
        self.b2 = _finite_float(b2, "b2")
        self.eta = _finite_float(eta, "eta")
        self.tau = check_positive_scalar(tau, "tau")
        self.hidden = hidden

    @classmethod
    def from_params(cls, event_shape, w1, b1, w2, b2=0.0, eta=1.0, tau=0.5):
        """A surrogate with the given parameters (checked: shapes ``(H, D)``, ``(H,)``, ``(H,)``, finite)."""
        obj = cls.__new__(cls)
        obj._set(_check_event_shape(event_shape), w1, b1, w2, b2, eta, tau)
        return obj

    @classmethod
    def zero(cls, event_shape, hidden=8, eta=1.0, tau=0.5):
        """``r ≡ 0`` with all network weights 0: RELAX with it equals REBAR(η, τ) exactly."""
        shape = _check_event_shape(event_shape)
        hidden = check_sample_count(hidden, 8 * (int(np.prod(shape)) + 2), "hidden")
        D = int(np.prod(shape))
        return cls.from_params(shape, np.zeros((hidden, D)), np.zeros(hidden), np.zeros(hidden), 0.0, eta, tau)

    def replace(self, **changes):
        """A copy with some of ``w1, b1, w2, b2, eta, tau`` replaced."""
        unknown = sorted(set(changes) - {"w1", "b1", "w2", "b2", "eta", "tau"})
        if unknown:
            raise ValueError(f"replace() got unknown parameter(s) {unknown}; allowed: w1, b1, w2, b2, eta, tau")
        params = dict(w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2, eta=self.eta, tau=self.tau)
        params.update(changes)
        return type(self).from_params(self.event_shape, **params)

    @property
    def params(self):
        """The network parameters ψ as a dict ``{"w1", "b1", "w2", "b2"}``."""
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def __repr__(self):
        return (f"RelaxSurrogate(event_shape={self.event_shape}, hidden={self.hidden}, "
                f"eta={self.eta:.4g}, tau={self.tau:.4g})")

    # -- evaluation -------------------------------------------------------------------
    @property
    def _categorical(self):
        return len(self.event_shape) == 2

    def _inputs(self, x, name="x"):
        arr = as_float_array(x, name)
        if arr.ndim != len(self.event_shape) + 1 or arr.shape[1:] != self.event_shape:
            raise ValueError(f"{name} must have shape (n, {', '.join(map(str, self.event_shape))}); got {arr.shape}")
        _require_finite(arr, name)
        return _flat(arr)

    def value(self, x):
        """``r_ψ(x)`` for relaxed points ``x`` of shape ``(n, *event_shape)``; returns ``(n,)``."""
        return _mlp_value(self._inputs(x), self.w1, self.b1, self.w2, self.b2)

    def grad_x(self, x):
        """``∂r_ψ/∂x``, shape of ``x``."""
        X = self._inputs(x)
        return _mlp_grad(X, self.w1, self.b1, self.w2).reshape(np.shape(x))

    def hessian_bilinear(self, x, p, q):
        """``pᵀ ∇²r_ψ(x) q`` per row, ``(n,)``; ``p``, ``q`` of the shape of ``x``."""
        X = self._inputs(x)
        P = self._inputs(p, "p")
        Q = self._inputs(q, "q")
        if P.shape != X.shape or Q.shape != X.shape:
            raise ValueError(f"p and q must have the shape of x, {np.shape(x)}; got {np.shape(p)} and {np.shape(q)}")
        return _mlp_hessian_bilinear(X, P, Q, self.w1, self.b1, self.w2)

    def _relaxed(self, z):
        return softmax_tau(z, self.tau) if self._categorical else sigmoid_tau(z, self.tau)

    def _latent(self, z):
        arr = as_float_array(z, "z")
        if arr.ndim != len(self.event_shape) + 1 or arr.shape[1:] != self.event_shape:
            raise ValueError(f"z must have shape (n, {', '.join(map(str, self.event_shape))}); got {arr.shape}")
        return arr

    def control(self, f, z):
        """``c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z))`` at latent points ``z`` (n, *event_shape); ``(n,)``."""
        obj = _differentiable(f, "relax")
        x = self._relaxed(self._latent(z))
        return self.eta * obj.value(x) + self.value(x)

    def control_grad(self, f, z):
        """``∂c_ψ/∂z = J_τ(z)ᵀ (η ∇f(x) + ∇r_ψ(x))``, ``x = σ_τ(z)``; shape of ``z``."""
        obj = _differentiable(f, "relax")
        z = self._latent(z)
        x = self._relaxed(z)
        cot = self.eta * obj.grad(x) + self.grad_x(x)
        vjp = softmax_tau_vjp if self._categorical else sigmoid_tau_vjp
        return vjp(z, self.tau, cot)[0]


# ---------------------------------------------------------------------------- estimator


class _Forward:
    """One RELAX evaluation: REBAR parts at the surrogate's τ plus the network's control-variate term."""

    def __init__(self, dist, obj, sur, u, v):
        self.dist, self.obj, self.sur = dist, obj, sur
        parts = _Parts(dist, obj, u, v, sur.tau)
        self.parts = parts
        nd = len(dist.param_shape)
        X = _flat(parts.x)
        Xt = _flat(parts.xt)
        self.r_xt = _mlp_value(Xt, sur.w1, sur.b1, sur.w2, sur.b2)
        self.grad_r_x = _mlp_grad(X, sur.w1, sur.b1, sur.w2).reshape(parts.x.shape)
        self.grad_r_xt = _mlp_grad(Xt, sur.w1, sur.b1, sur.w2).reshape(parts.xt.shape)
        # ∂_φ r(σ_τ(z)) and ∂_φ r(σ_τ(z̃(φ, b, v)))
        self.path_r = relaxation_vjp(dist, parts.z, sur.tau, self.grad_r_x)
        self.path_rt = parts.cond.pull(relaxation_vjp(dist, parts.cond.z, sur.tau, self.grad_r_xt))
        # ĝ = a + η c + c_r with c_r = ∂_φ r(σ_τ(z)) − ∂_φ r(σ_τ(z̃)) − r(σ_τ(z̃)) ∂_φ log q(b)
        self.c_r = self.path_r - self.path_rt - _bcast(self.r_xt, nd) * parts.s
        self.estimate = _combine(parts.a, parts.c, sur.eta) + self.c_r


def _jets(dist, z, tau, e):
    z = np.ascontiguousarray(z, dtype=np.float64)
    e = np.ascontiguousarray(e, dtype=np.float64)
    if dist.family == "categorical":
        return _softmax_tau_jets(z, tau, e)
    return _sigmoid_tau_jets(z, tau, e)


def _event_dot(p, q):
    return (p * q).reshape(p.shape[0], -1).sum(axis=1)


def _param_vjp(fwd, w, train):
    r"""``∂/∂θ Σ_n ⟨w_n, ĝ_n⟩`` for θ in ψ = (w1, b1, w2, b2), η and log τ, at fixed noise.

    With ``h = η f + r_ψ``, ``x = σ_τ(z)``, ``ẋ = J_τ(z) w``, ``ẋ̃ = J_τ(z̃) D w``
    (``D = ∂z̃/∂φ``) and ``α = −⟨w, ∂_φ log q(b)⟩``::

        Σ⟨w, ĝ⟩ = Σ [⟨w, a⟩ + ∇h(x)·ẋ − ∇h(x̃)·ẋ̃ + α h(x̃)]

    so ``∂/∂η = Σ⟨w, c⟩``, ``∂/∂ψ = Σ [α ∂ψ r(x̃) + ∂ψ(∇r(x)·ẋ) − ∂ψ(∇r(x̃)·ẋ̃)]`` and
    ``∂/∂τ = Σ [∇²h(x)[∂τx, ẋ] + ∇h(x)·∂τẋ − (same at x̃) + α ∇h(x̃)·∂τx̃]``.
    """
    dist, obj, sur, parts = fwd.dist, fwd.obj, fwd.sur, fwd.parts
    grads = {}
    alpha = -_event_dot(w, parts.s)
    if "eta" in train:
        grads["eta"] = float(np.sum(w * parts.c))
    if not ({"psi", "tau"} & set(train)):
        return grads
    tau = sur.tau
    wt = parts.cond.push(w)
    xdot, x_tau, xdot_tau = _jets(dist, parts.z, tau, w)
    xtdot, xt_tau, xtdot_tau = _jets(dist, parts.cond.z, tau, wt)
    X, Xt = _flat(parts.x), _flat(parts.xt)
    n = X.shape[0]
    if "psi" in train:
        g_w1, g_b1, g_w2, g_b2 = _mlp_param_vjp(
            np.concatenate([X, Xt]),
            np.concatenate([_flat(xdot), _flat(xtdot)]),
            np.concatenate([np.zeros(n), alpha]),
            np.concatenate([np.ones(n), -np.ones(n)]),
            sur.w1,
            sur.b1,
            sur.w2,
        )
        grads.update(w1=g_w1, b1=g_b1, w2=g_w2, b2=float(g_b2))
    if "tau" in train:
        eta = sur.eta

        def second(x, grad_f, grad_r, xd, xtau, xdtau):
            curvature = eta * _event_dot(obj.hvp(x, xtau), xd)
            curvature = curvature + _mlp_hessian_bilinear(_flat(x), _flat(xtau), _flat(xd), sur.w1, sur.b1, sur.w2)
            return curvature + _event_dot(eta * grad_f + grad_r, xdtau)

        d_tau = np.sum(
            second(parts.x, parts.grad_fx, fwd.grad_r_x, xdot, x_tau, xdot_tau)
            - second(parts.xt, parts.grad_fxt, fwd.grad_r_xt, xtdot, xt_tau, xtdot_tau)
            + alpha * _event_dot(eta * parts.grad_fxt + fwd.grad_r_xt, xt_tau)
        )
        grads["log_tau"] = float(tau * d_tau)
    return grads


def _second_moment_grad(dist, obj, sur, u, v, train):
    """(per-sample ĝ, batch mean of Σ_j ĝ_j², its gradient dict) at fixed noise."""
    fwd = _Forward(dist, obj, sur, u, v)
    g = fwd.estimate
    n = g.shape[0]
    loss = float(np.sum(g * g) / n)
    return g, loss, _param_vjp(fwd, 2.0 * g / n, train)


_relax_doc = r"""RELAX (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, ICLR, §3.3 eq. 8, Algorithm 2).

.. math::
    \hat g = \big[f(b) − c_ψ(\tilde z)\big]\, ∂_φ \log q(b) + ∂_φ c_ψ(z) − ∂_φ c_ψ(\tilde z),
    \qquad c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z)),

with the noise, ``z``, ``b = H(z)`` and ``z̃ ~ z | b`` of ``rebar`` (``∂_φ`` through ``z``
and through ``z̃`` including the conditioning) and ``r_ψ`` the one-hidden-layer network
of :class:`~refgrad.estimators.relax.RelaxSurrogate`.  Since ``c_ψ`` is linear in
``(η f, r_ψ)``, ``ĝ = a + η c + c_r`` with REBAR's ``(a, c)`` and the analogous term
``c_r`` of ``r_ψ``, so ``r ≡ 0`` gives REBAR(η, τ) exactly.  Unbiased for every ψ, η, τ
(``E[c] = E[c_r] = 0``, the REBAR identity applied to any differentiable surrogate).
Train the surrogate with :func:`~refgrad.estimators.relax.fit_relax`.

Options
    ``surrogate`` (a :class:`RelaxSurrogate` of the distribution's event shape;
    default ``None``: the zero surrogate with η = 1, τ = 0.5, i.e. REBAR's defaults).

Cost: 3 (f at ``b``; f and ∇f at ``σ_τ(z)`` and ``σ_τ(z̃)``; the network is not counted).
Noise: ``u`` and ``v`` of shape ``event_shape``; jumps in ``u`` where ``b`` does.
"""


def _relax(dist, f, noise, surrogate):
    obj = _differentiable(f, "relax")
    return _Forward(dist, obj, surrogate, noise["u"], noise["v"]).estimate


def _relax_features(dist, f, noise=None, b=None, surrogate=None):
    """Separable form for a constant network (``w₂ = 0``): as REBAR's, ``F = (f_j(b_j), f_j(σ_τ(z̃_j)))``,
    ``A = (s_j, −η s_j)``; the constant ``r_ψ = b₂`` is a baseline, counted once in the one-variable estimate."""
    parts = _Parts(dist, _differentiable(f, "relax"), noise["u"], noise["v"], surrogate.tau)
    return np.stack([parts.fb, parts.fxt], axis=1), np.stack([parts.s, -surrogate.eta * parts.s], axis=1)


def _relax_separable(dist, surrogate):
    if np.any(surrogate.w2 != 0.0):
        return None  # r_ψ(σ_τ(z)) couples the variables

    def options(j):
        shape = (1,) + tuple(surrogate.event_shape[1:])
        one = RelaxSurrogate.from_params(shape, np.zeros((surrogate.hidden, int(np.prod(shape)))), surrogate.b1,
                                         surrogate.w2, surrogate.b2, eta=surrogate.eta, tau=surrogate.tau)
        return {"surrogate": one}

    return options, _relax_features


def _check_surrogate(dist, surrogate, name="surrogate"):
    if surrogate is None:
        return RelaxSurrogate.zero(tuple(dist.event_shape))
    if not isinstance(surrogate, RelaxSurrogate):
        raise ValueError(f"{name} must be a RelaxSurrogate or None; got {describe(surrogate)} "
                         f"of type {type(surrogate).__name__}")
    if tuple(surrogate.event_shape) != tuple(dist.event_shape):
        raise ValueError(f"{name} has event shape {surrogate.event_shape}, but the distribution's event shape is "
                         f"{tuple(dist.event_shape)}")
    return surrogate


def _relax_options(dist, opts):
    opts["surrogate"] = _check_surrogate(dist, opts["surrogate"])
    return opts


def _relax_fused(dist, obj, row, shared, surrogate):
    """The fused RELAX plan (:mod:`refgrad.estimators.kernels.rebar`), or None."""
    sur = RelaxSurrogate.zero(tuple(dist.event_shape)) if surrogate is None else surrogate
    return _relax_plan(dist, row, latent_logits(dist), sur.tau, sur.eta, sur.w1, sur.b1, sur.w2, sur.b2)


register(
    EstimatorSpec(
        name="relax",
        doc=_relax_doc,
        families=DISCRETE,
        unbiased=True,
        compute=_relax,
        layout=lambda dist, **_: (
            NoiseField("u", tuple(dist.event_shape), "uniforms: latent z = φ + noise(u), b = dist.from_uniforms(u)"),
            NoiseField("v", tuple(dist.event_shape), "uniforms of the conditional latent z̃ ~ z | b"),
        ),
        cost=lambda dist, **o: 3,
        defaults={"surrogate": None},
        check_options=_relax_options,
        breakpoints=lambda dist, **_: _rebar_breakpoints(dist, eta=1.0),
        fused=_relax_fused,
        separable=_relax_separable,
        summary="[f(b) − c_ψ(z̃)] ∂log q(b) + ∂c_ψ(z) − ∂c_ψ(z̃), c_ψ = η f(σ_τ(·)) + r_ψ(σ_τ(·)); "
        "Grathwohl et al. 2018, eq. 8",
    )
)


# ---------------------------------------------------------------------------- latent form (exact moments only)
#
# As REBAR's (refgrad.estimators.rebar, "latent form"): given b the estimate is a term of (z, b) plus a term of
# (z̃, b), z and z̃ independent with the law of z | b; ĝ = a + η c + c_r splits as
#   [f(b) s + η ∂_φ f(σ_τ(z)) + ∂_φ r(σ_τ(z))] − [η (∂_φ f(σ_τ(z̃)) + f(σ_τ(z̃)) s) + ∂_φ r(σ_τ(z̃)) + r(σ_τ(z̃)) s].


def _network_path(dist, sur, z):
    """``∂_φ r_ψ(σ_τ(z))`` at fixed latent derivative ``∂z/∂φ = I``, and ``σ_τ(z)``."""
    x = relaxation(dist, z, sur.tau)
    X = _flat(x)
    grad = _mlp_grad(X, sur.w1, sur.b1, sur.w2).reshape(x.shape)
    return relaxation_vjp(dist, z, sur.tau, grad), X


def _relax_latent_z(dist, f, z, b, surrogate, **_):
    """RELAX's term of ``z`` given ``b`` (less the constant ``f(b) s``): REBAR's plus ``∂_φ r_ψ(σ_τ(z))``."""
    path_r, _ = _network_path(dist, surrogate, z)
    return _rebar_latent_z(dist, f, z, b, surrogate.tau, surrogate.eta) + path_r


def _relax_latent_mean(dist, f, z, b, surrogate, **_):
    """The integrand of RELAX's ``E[ĝ | b]`` at one latent: REBAR's plus
    ``(I − ∂z̃/∂φ)ᵀ ∂_z r_ψ(σ_τ(z)) − r_ψ(σ_τ(z)) s``."""
    sur = surrogate
    x = relaxation(dist, z, sur.tau)
    X = _flat(x)
    grad = _mlp_grad(X, sur.w1, sur.b1, sur.w2).reshape(x.shape)
    resid = _latent_residual(dist, b, z, relaxation_vjp(dist, z, sur.tau, grad))
    r_x = _mlp_value(X, sur.w1, sur.b1, sur.w2, sur.b2)
    return (_rebar_latent_mean(dist, f, z, b, sur.tau, sur.eta)
            + resid - _bcast(r_x, len(dist.param_shape)) * dist.score(b))


def _relax_latent_zt(dist, f, zt, b, surrogate, **_):
    """RELAX's term of ``(z̃, b)``: REBAR's plus ``−[∂_φ r_ψ(σ_τ(z̃)) + r_ψ(σ_τ(z̃)) s]``."""
    sur = surrogate
    xt = relaxation(dist, zt, sur.tau)
    Xt = _flat(xt)
    grad = _mlp_grad(Xt, sur.w1, sur.b1, sur.w2).reshape(xt.shape)
    path_rt = _latent_pull(dist, b, zt, relaxation_vjp(dist, zt, sur.tau, grad))
    r_xt = _mlp_value(Xt, sur.w1, sur.b1, sur.w2, sur.b2)
    s = dist.score(b)
    return (_rebar_latent_zt(dist, f, zt, b, sur.tau, sur.eta)
            - (path_rt + _bcast(r_xt, len(dist.param_shape)) * s))


# ---------------------------------------------------------------------------- training

_TRAIN = ("psi", "eta", "tau")


def _check_train(train):
    if isinstance(train, str):
        train = (train,)
    try:
        items = tuple(train)
    except TypeError:
        items = None
    if items is None or not all(isinstance(t, str) and t in _TRAIN for t in items):
        raise ValueError(f"train must be a collection of names from {list(_TRAIN)}; got {describe(train)}")
    return tuple(t for t in _TRAIN if t in items)


def fit_relax(dist, f, surrogate=None, steps=500, batch=64, lr=1e-2, rng=None, train=("psi", "eta", "tau")):
    r"""Fit RELAX's surrogate by minimising the single-sample second moment ``E[Σ_j ĝ_j²]``.

    Since ``E[ĝ] = ∇_φ E_q[f(b)]`` does not depend on ``θ = (ψ, η, τ)``,

    .. math::  ∇_θ \sum_j \mathrm{Var}(\hat g_j) = ∇_θ E\Big[\sum_j \hat g_j^2\Big]
               = E\Big[2 \sum_j \hat g_j\, ∂_θ \hat g_j\Big],

    (Grathwohl et al. 2018, §3.3 / Algorithm 2; Tucker et al. 2017, §3.2 for η, τ; the
    lecture slides "Discrete Latent Variables", Art Sobolev, Samsung AI Center: "one
    sample is enough"), and ``2 ĝ ∂_θ ĝ`` at fixed noise is an unbiased
    estimate of it.  ``∂_θ ĝ`` is derived by hand: through ``c_ψ(z̃)`` in the score
    term and through the pathwise terms ``∂_φ c_ψ(z)``, ``∂_φ c_ψ(z̃)``, which needs the
    mixed derivatives ``∂²r/∂x∂ψ``, the relaxation's ``∂²σ_τ/∂z∂τ`` and, for τ, the
    Hessian-vector product of f (:meth:`refgrad.objectives.Objective.hvp`).
    τ is optimised as ``log τ`` (stays positive).

    Optimiser: Adam (Kingma & Ba 2015; β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with step
    ``lr``, one fresh batch of ``batch`` noise draws per step.

    Parameters
    ----------
    dist : Bernoulli, Categorical or GaussianThreshold
    f : Objective
        Needs a gradient; with ``"tau"`` in ``train`` also a Hessian-vector product.
    surrogate : RelaxSurrogate, optional
        Starting point; default ``RelaxSurrogate(dist.event_shape, rng=rng, scale=0)``
        (``r ≡ 0`` with random hidden weights, η = 1, τ = 0.5: REBAR's defaults).
    steps, batch : int
        Number of Adam steps (≥ 1) and batch size (≥ 1).
    lr : float
        Adam step size, finite and > 0.
    rng : None, int or numpy.random.Generator
        SPEC 7 randomness for the noise (and the default initialisation).
    train : collection of str
        Which of ``"psi"``, ``"eta"``, ``"tau"`` to optimise.

    Returns
    -------
    surrogate : RelaxSurrogate
        The fitted surrogate (the input is not modified).
    history : dict
        ``"second_moment"``: per step, the batch mean of ``Σ_j ĝ_j²`` (before the step);
        ``"eta"``, ``"tau"``: the values used at each step.

    Raises
    ------
    ValueError
        Bad arguments (naming them), or a diverged training: a non-finite second
        moment, gradient or parameter, or ``log τ`` beyond what float64 can
        exponentiate -- the message names the step and ``lr`` (use a smaller one).
    """
    _check_dist(dist)
    obj = _differentiable(f, "relax")
    steps = check_sample_count(steps, 3 * 8, "steps")  # the history holds 3 floats per step
    batch = check_sample_count(batch, 2 * 8 * int(np.prod(dist.event_shape)), "batch")
    lr = check_positive_scalar(lr, "lr")
    train = _check_train(train)
    if "tau" in train and not getattr(obj, "has_hvp", False):
        raise ValueError(
            f"training tau needs the Hessian-vector product of f, but objective {obj.name!r} has none; "
            "pass train=('psi', 'eta') or an objective with hvp (FunctionObjective(..., hvp_fn=...))"
        )
    gen = as_generator(rng)
    if surrogate is None:
        sur = RelaxSurrogate(tuple(dist.event_shape), rng=gen, scale=0.0)
    else:
        sur = _check_surrogate(dist, surrogate)
    event = tuple(dist.event_shape)

    names = []
    if "psi" in train:
        names += ["w1", "b1", "w2", "b2"]
    if "eta" in train:
        names.append("eta")
    if "tau" in train:
        names.append("log_tau")

    def current(s):
        vals = dict(w1=s.w1, b1=s.b1, w2=s.w2, b2=s.b2, eta=s.eta, log_tau=math.log(s.tau))
        return {k: np.array(vals[k], dtype=np.float64) for k in names}

    theta = current(sur)
    m1 = {k: np.zeros_like(theta[k]) for k in names}
    m2 = {k: np.zeros_like(theta[k]) for k in names}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    history = {"second_moment": np.empty(steps), "eta": np.empty(steps), "tau": np.empty(steps)}
    for step in range(steps):
        u = uniform(gen, (batch,) + event)
        v = uniform(gen, (batch,) + event)
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, as an error
            _, loss, grads = _second_moment_grad(dist, obj, sur, u, v, train)
        history["second_moment"][step] = loss
        history["eta"][step] = sur.eta
        history["tau"][step] = sur.tau
        _check_not_diverged(step, steps, lr, loss=loss, grads=grads)
        t = step + 1
        for k in names:
            g = np.asarray(grads[k], dtype=np.float64)
            m1[k] = beta1 * m1[k] + (1.0 - beta1) * g
            m2[k] = beta2 * m2[k] + (1.0 - beta2) * g * g
            m_hat = m1[k] / (1.0 - beta1**t)
            v_hat = m2[k] / (1.0 - beta2**t)
            theta[k] = theta[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
        _check_not_diverged(step, steps, lr, theta=theta)
        changes = {k: (float(theta[k]) if np.ndim(theta[k]) == 0 else theta[k]) for k in names if k != "log_tau"}
        if "log_tau" in theta:
            changes["tau"] = math.exp(float(theta["log_tau"]))
        sur = sur.replace(**changes)
    return sur, history


#: log τ outside this range gives τ = 0 or τ = inf in float64 (exp underflows/overflows).
_LOG_TAU_RANGE = (math.log(np.finfo(np.float64).tiny), math.log(np.finfo(np.float64).max))


def _check_not_diverged(step, steps, lr, loss=None, grads=None, theta=None):
    """Raise ``ValueError`` if the Adam iteration left float64 (non-finite loss, gradient, parameter, τ)."""
    problem = None
    if loss is not None and not math.isfinite(loss):
        problem = (f"the batch second moment of the estimates is {loss!r} (from the first step on, this means "
                   "the objective is too large for float64 arithmetic: rescale it)")
    for label, values in (("gradient", grads), ("parameter", theta)):
        for key, value in (values or {}).items():
            arr = np.asarray(value, dtype=np.float64)
            if problem is None and not np.isfinite(arr).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
                problem = f"the {label} of {key} is {float(arr[bad] if arr.ndim else arr)!r} at index {bad}"
    if problem is None and theta is not None and "log_tau" in theta:
        log_tau = float(theta["log_tau"])
        lo, hi = _LOG_TAU_RANGE
        if not lo <= log_tau <= hi:
            problem = (f"log tau reached {log_tau:.4g}, outside [{lo:.1f}, {hi:.1f}] "
                       "(tau = exp(log tau) is not a positive float64)")
    if problem is not None:
        raise ValueError(
            f"fit_relax diverged at step {step + 1} of {steps}: {problem}; the step size lr={lr!r} is too large "
            f"for this problem -- use a smaller lr (the default is 0.01) or fewer trained quantities (train=)"
        )
