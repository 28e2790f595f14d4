r"""RELAX: REBAR's control variate replaced by a learned surrogate, and its training.

Grathwohl, Choi, Wu, Roeder & Duvenaud (2018), "Backpropagation through the void:
optimizing control variates for black-box gradient estimation", ICLR 2018, §3.3
(eq. 8) and Algorithm 2 (discrete case).

Same noise, latent ``z``, hard sample ``b`` and conditional ``z̃`` as
:mod:`refgrad.estimators.rebar`; the control variate is

.. math::  c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z)),

``σ_τ`` the tempered sigmoid (bits) or softmax (categorical) and ``r_ψ`` a
one-hidden-layer network of the flattened relaxed point ``x = σ_τ(z)``,

.. math::  r_ψ(x) = w_2^\top \tanh(W_1 x + b_1) + b_2, \qquad ψ = (W_1, b_1, w_2, b_2)

(:class:`~refgrad.estimators.RelaxSurrogate`; the network and the Adam optimiser of
:func:`fit_relax` live in :mod:`refgrad.estimators.relax_surrogate`).  ``r ≡ 0``
recovers REBAR exactly.

Every derivative is hand-derived (written next to its kernel) and tested against
central finite differences.
"""
import math

import numpy as np

from .._core.checks import check_positive_scalar, check_sample_count, describe
from .._core.jit import jit
from ..random import as_generator, uniform
from ._base import EstimatorSpec, NoiseField, register
from ._latent import DISCRETE, latent_logits, relaxation, relaxation_vjp
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
from .relax_surrogate import (
    Adam,
    RelaxSurrogate,
    _check_not_diverged,
    _check_train,
    _mlp_grad,
    _mlp_hessian_bilinear,
    _mlp_param_vjp,
    _mlp_value,
    _trainable,
    _updated,
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
    """Separable form for a constant network (``w₂ = 0``).

    As REBAR's, ``F = (f_j(b_j), f_j(σ_τ(z̃_j)))``, ``A = (s_j, −η s_j)``; the constant ``r_ψ = b₂`` is a
    baseline, counted once in the one-variable estimate.
    """
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
    """The integrand of RELAX's ``E[ĝ | b]`` at one latent.

    REBAR's plus ``(I − ∂z̃/∂φ)ᵀ ∂_z r_ψ(σ_τ(z)) − r_ψ(σ_τ(z)) s``.
    """
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

    Optimiser: :class:`~refgrad.estimators.relax_surrogate.Adam` (β₁ = 0.9, β₂ = 0.999,
    ε = 1e-8) with step ``lr``, one fresh batch of ``batch`` noise draws per step.

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
    adam = Adam(_trainable(sur, train), lr)
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
        theta = adam.step(grads)
        _check_not_diverged(step, steps, lr, theta=theta)
        sur = _updated(sur, theta)
    return sur, history
