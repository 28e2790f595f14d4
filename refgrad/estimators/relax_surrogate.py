r"""RELAX's surrogate network ``r_ψ`` and the optimiser that trains it.

The control variate of :mod:`refgrad.estimators.relax` is ``c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z))``
with ``r_ψ`` a one-hidden-layer network of the flattened relaxed point ``x = σ_τ(z)``,

.. math::  r_ψ(x) = w_2^\top \tanh(W_1 x + b_1) + b_2, \qquad ψ = (W_1, b_1, w_2, b_2).

Input choice: ``x = σ_τ(z)`` rather than ``z``: it is bounded (``[0, 1]`` or the
simplex), stays finite at infinite parameters (``z = ±∞``), and shares the
temperature with the ``η f`` part, so ``r ≡ 0`` recovers REBAR exactly.  The
constant ``b₂`` acts as a REINFORCE baseline (it contributes ``−b₂ ∂_φ log q(b)``).

Here: the network's value, input gradient, Hessian bilinear form and parameter VJP
(hand-derived, each written next to its kernel; the row forms are shared with the
fused kernels of :mod:`refgrad.estimators.kernels.rebar`), the immutable
:class:`RelaxSurrogate`, and :class:`Adam` with the checks of a diverged training.
"""
import math
import numbers

import numpy as np

from .._core.checks import (
    InputTypeError,
    as_float_array,
    check_positive_scalar,
    check_sample_count,
    describe,
    first_index,
)
from .._core.jit import jit
from ..random import as_generator
from ..relaxations import sigmoid_tau, sigmoid_tau_vjp, softmax_tau, softmax_tau_vjp
from ._base import differentiable_objective
from .kernels.rebar import _mlp_grad_row, _mlp_value_row

__all__ = ["RelaxSurrogate", "Adam"]


def _differentiable(f, estimator):
    """``as_objective(f)``, refusing objectives without gradient or not defined at relaxed points."""
    return differentiable_objective(f, estimator, relaxed=True)


def _flat(arr):
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1))


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
        where = first_index(bad)
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
        hidden layer (the default start of :func:`~refgrad.estimators.fit_relax`: REBAR exactly, but
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


# ---------------------------------------------------------------------------- the optimiser


class Adam:
    r"""Adam (Kingma & Ba 2015) on a dict of float64 parameters.

    Per parameter, with the gradient ``g`` at step ``t = 1, 2, …``:

    .. math::  m ← β_1 m + (1 − β_1) g, \quad v ← β_2 v + (1 − β_2) g^2, \quad
               θ ← θ − \mathrm{lr}\, \frac{m / (1 − β_1^t)}{\sqrt{v / (1 − β_2^t)} + ε}.

    Parameters
    ----------
    theta : dict of str to array_like
        Starting values (copied as float64).
    lr : float
        Step size.
    beta1, beta2, eps : float
        The moments' decay rates and the denominator's guard (Kingma & Ba's defaults).
    """

    def __init__(self, theta, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.theta = {k: np.array(v, dtype=np.float64) for k, v in theta.items()}
        self.m1 = {k: np.zeros_like(v) for k, v in self.theta.items()}
        self.m2 = {k: np.zeros_like(v) for k, v in self.theta.items()}
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0

    def step(self, grads):
        """One step from the gradients ``grads`` (a dict with the keys of ``theta``); returns the new ``theta``."""
        beta1, beta2 = self.beta1, self.beta2
        self.t += 1
        t = self.t
        for k in self.theta:
            g = np.asarray(grads[k], dtype=np.float64)
            self.m1[k] = beta1 * self.m1[k] + (1.0 - beta1) * g
            self.m2[k] = beta2 * self.m2[k] + (1.0 - beta2) * g * g
            m_hat = self.m1[k] / (1.0 - beta1**t)
            v_hat = self.m2[k] / (1.0 - beta2**t)
            self.theta[k] = self.theta[k] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return self.theta


# ---------------------------------------------------------------------------- training: what is trained, divergence


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


def _trainable(sur, train):
    """The trained quantities of ``sur`` as float64 arrays: ψ = (w1, b1, w2, b2), η and log τ, as ``train`` says."""
    names = []
    if "psi" in train:
        names += ["w1", "b1", "w2", "b2"]
    if "eta" in train:
        names.append("eta")
    if "tau" in train:
        names.append("log_tau")
    vals = dict(w1=sur.w1, b1=sur.b1, w2=sur.w2, b2=sur.b2, eta=sur.eta, log_tau=math.log(sur.tau))
    return {k: np.array(vals[k], dtype=np.float64) for k in names}


def _updated(sur, theta):
    """``sur`` with the trained quantities ``theta`` (from :func:`_trainable`, stepped) put back."""
    changes = {k: (float(v) if np.ndim(v) == 0 else v) for k, v in theta.items() if k != "log_tau"}
    if "log_tau" in theta:
        changes["tau"] = math.exp(float(theta["log_tau"]))
    return sur.replace(**changes)


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
                bad = first_index(~np.isfinite(arr))
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
