r"""REBAR: REINFORCE with a reparameterised, conditionally marginalised relaxed control variate.

Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein (2017), "REBAR: Low-variance,
unbiased gradient estimates for discrete latent variable models", NeurIPS 2017,
§3 (eq. 6) and appendix (conditional noise).

Noise and latent variables (``φ`` = ``dist.params``; ``u``, ``v`` uniforms of shape
``event_shape``):

========================= ============================= ======================================== ==========
family                    latent ``z(φ, u)``             ``b = H(z)``                              relaxation
========================= ============================= ======================================== ==========
Bernoulli (logits ℓ)      ``ℓ + log u − log(1 − u)``     ``1[z > 0]``                              ``σ_τ(z)``
GaussianThreshold (μ)     ``μ + Φ⁻¹(u)``                 ``1[z ≥ 0]``                              ``σ_τ(z)``
Categorical (logits ℓ)    ``ℓ + G(u)``, G Gumbel          ``onehot(argmax z)``                      ``softmax_τ(z)``
========================= ============================= ======================================== ==========

``b`` is ``dist.from_uniforms(u)``; ``z̃(φ, b, v) ~ z | b`` is the conditional sample of
:mod:`refgrad.random` (``conditional_logistic`` / ``conditional_normal`` /
``conditional_gumbel``), differentiated in φ **including** its dependence on φ through
the conditioning (``conditional_*_grad`` / ``conditional_gumbel_vjp``).  ``∂z/∂φ = I``.
"""

import numpy as np
from scipy import special

from .._core.checks import (
    InputTypeError,
    as_float_array,
    check_count,
    check_positive_scalar,
    check_sample_count,
    describe,
    first_index,
)
from .._core.jit import jit
from .._core.special import _sigmoid
from ..random import (
    conditional_gumbel,
    conditional_gumbel_vjp,
    conditional_logistic,
    conditional_logistic_grad,
    conditional_normal,
    conditional_normal_grad,
)
from ..random.conditional import _conditional_gumbel_rows
from ._base import EstimatorSpec, NoiseField, differentiable_objective, register
from ._latent import (
    DISCRETE,
    conditional_gumbel_pull,
    conditional_slope,
    effective_logits,
    latent,
    latent_logits,
    relaxation,
    relaxation_vjp,
)
from .kernels import rebar as _kernels
from .score import sample_breakpoints

__all__ = ["rebar_terms", "optimal_eta"]


# ---------------------------------------------------------------------------- kernels


@jit
def _rebar_combine(a, c, eta):
    """a + eta * c for a, c (n, P) and eta (P,) -> (n, P)."""
    n, p = a.shape
    out = np.empty((n, p))
    for i in range(n):
        for j in range(p):
            out[i, j] = a[i, j] + eta[j] * c[i, j]
    return out


@jit
def _optimal_eta(a, c):
    """-Σ_i a_ij c_ij / Σ_i c_ij² per column of (m, P) arrays; 0 where Σ c² = 0 -> (P,)."""
    m, p = a.shape
    out = np.zeros(p)
    for j in range(p):
        num = 0.0
        den = 0.0
        for i in range(m):
            num += a[i, j] * c[i, j]
            den += c[i, j] * c[i, j]
        if den > 0.0:
            out[j] = -num / den
    return out


@jit
def _conditional_gumbel_jvp(logits, b, v, e):
    """Per-sample Jacobian-vector product (∂z̃/∂ℓ) e of the conditional Gumbel -> (n, d, K).

    With T = lse(ℓ) + G(v_b), y_k = ℓ_k + G(v_k), a_k = σ(y_k − T), p = softmax(ℓ):
    (∂z̃/∂ℓ e)_k = [k ≠ b] σ(T − y_k) e_k + t_k ⟨p, e⟩, t_b = 1, t_k = a_k (k ≠ b).
    The transpose of random._conditional_gumbel_vjp; zero on rows with +inf logits.
    """
    n, d, K = v.shape
    lg, lse, p, frozen = _conditional_gumbel_rows(logits)
    out = np.zeros((n, d, K))
    for i in range(n):
        for j in range(d):
            if frozen[j]:
                continue
            bb = b[i, j]
            top = lse[j] - np.log(-np.log(v[i, j, bb]))
            pe = 0.0
            for k in range(K):
                if p[j, k] > 0.0:
                    pe += p[j, k] * e[i, j, k]
            for k in range(K):
                if k == bb:
                    out[i, j, k] = pe
                else:
                    y = lg[j, k] - np.log(-np.log(v[i, j, k]))
                    out[i, j, k] = _sigmoid(top - y) * e[i, j, k] + _sigmoid(y - top) * pe
    return out


# ---------------------------------------------------------------------------- shared pieces


class _Conditional:
    """``z̃ ~ z | b`` from ``v`` and its derivative ``D = ∂z̃/∂φ`` (pull: ``Dᵀ c``; push: ``D e``)."""

    def __init__(self, dist, b, v):
        self.family = dist.family
        self.v = v
        if dist.family == "categorical":
            self.logits = effective_logits(dist.params)
            self.index = np.ascontiguousarray(b.argmax(axis=-1).astype(np.int64))
            self.z = conditional_gumbel(self.logits, self.index, v)
            self.slope = None
        else:
            bits = np.ascontiguousarray(b.astype(np.int64))
            if dist.family == "bernoulli":
                self.z = conditional_logistic(dist.params, bits, v)
                self.slope = conditional_logistic_grad(dist.params, bits, v)
            else:
                self.z = conditional_normal(dist.params, bits, v)
                self.slope = conditional_normal_grad(dist.params, bits, v)

    def pull(self, cotangent):
        """``(∂z̃/∂φ)ᵀ c`` per sample, shape ``(n, *param_shape)``."""
        if self.slope is None:
            return conditional_gumbel_vjp(self.logits, self.index, self.v, np.ascontiguousarray(cotangent))
        return self.slope * cotangent

    def push(self, e):
        """``(∂z̃/∂φ) e`` per sample, shape ``(n, *event_shape)``."""
        if self.slope is None:
            return _conditional_gumbel_jvp(self.logits, self.index, self.v, np.ascontiguousarray(e, dtype=np.float64))
        return self.slope * e


def _differentiable(f, estimator):
    """``as_objective(f)``, refusing objectives without gradient or not defined at relaxed points."""
    return differentiable_objective(f, estimator, relaxed=True)


def _bcast(values, ndim):
    return values.reshape(values.shape + (1,) * ndim)


class _Parts:
    """Every intermediate of one REBAR evaluation (used by rebar, relax and fit_relax).

    ``b`` hard sample, ``s`` score, ``fb = f(b)``, ``z`` latent, ``x = σ_τ(z)``,
    ``grad_fx = ∇f(x)``, ``path_z = ∂_φ f(σ_τ(z))``, ``cond`` the conditional (``cond.z = z̃``),
    ``xt = σ_τ(z̃)``, ``fxt = f(xt)``, ``grad_fxt = ∇f(xt)``,
    ``path_zt = ∂_φ f(σ_τ(z̃(φ, b, v)))``; ``a = f(b) s``, ``c = path_z − path_zt − f(xt) s``.
    """

    def __init__(self, dist, obj, u, v, tau):
        nd = len(dist.param_shape)
        self.dist, self.obj, self.tau = dist, obj, tau
        self.b = dist.from_uniforms(u)
        self.s = dist.score(self.b)
        self.fb = obj.value(self.b)
        self.z = latent(dist, u)
        self.x = relaxation(dist, self.z, tau)
        self.grad_fx = obj.grad(self.x)
        self.path_z = relaxation_vjp(dist, self.z, tau, self.grad_fx)
        self.cond = _Conditional(dist, self.b, v)
        self.xt = relaxation(dist, self.cond.z, tau)
        self.fxt = obj.value(self.xt)
        self.grad_fxt = obj.grad(self.xt)
        self.path_zt = self.cond.pull(relaxation_vjp(dist, self.cond.z, tau, self.grad_fxt))
        self.a = _bcast(self.fb, nd) * self.s
        self.c = self.path_z - self.path_zt - _bcast(self.fxt, nd) * self.s


def _flat(arr):
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1))


def _combine(a, c, eta):
    """``a + η ⊙ c`` with η a float or an array of shape param_shape."""
    eta_flat = np.ascontiguousarray(np.broadcast_to(np.asarray(eta, dtype=np.float64), a.shape[1:]).reshape(-1))
    return _rebar_combine(_flat(a), _flat(c), eta_flat).reshape(a.shape)


def _check_noise_block(arr, name, dist, n=None):
    arr = as_float_array(arr, name)
    want = tuple(dist.event_shape)
    if arr.ndim != len(want) + 1 or arr.shape[1:] != want or (n is not None and arr.shape[0] != n):
        shape_text = "(" + ("n" if n is None else str(n)) + ", " + ", ".join(map(str, want)) + ")"
        raise ValueError(f"{name} must have shape {shape_text}; got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one sample; got shape {arr.shape}")
    bad = ~((arr > 0.0) & (arr < 1.0))  # NaN too
    if bad.any():
        where = first_index(bad)
        raise ValueError(
            f"{name} must contain uniforms strictly inside (0, 1) (no 0, 1 or NaN); got {float(arr[where])!r} "
            f"at index {where}"
        )
    return arr


def _check_dist(dist):
    family = getattr(dist, "family", None)
    if family not in DISCRETE:
        raise ValueError(
            f"dist must be a Bernoulli, Categorical or GaussianThreshold distribution; got {describe(dist)}"
        )


# ---------------------------------------------------------------------------- public helpers


def rebar_terms(dist, f, noise_u, noise_v, tau):
    r"""The two parts of the REBAR estimate, ``ĝ = a + η ⊙ c``, at given noise.

    .. math::
        a = f(b)\, ∂_φ \log q(b), \qquad
        c = ∂_φ f(σ_τ(z)) − ∂_φ f(σ_τ(\tilde z)) − f(σ_τ(\tilde z))\, ∂_φ \log q(b),

    with ``z = z(φ, u)``, ``b = H(z)`` and ``z̃ = z̃(φ, b, v)`` (module docstring); ``∂_φ`` is
    the total derivative at fixed ``u, v`` (for ``z̃`` it includes the dependence on φ
    through the conditioning).  ``E[c] = 0`` (Tucker et al. 2017, §3: the relaxed
    objective's gradient decomposes as ``∂_φ E[f(σ_τ(z))] = E[∂_φ f(σ_τ(z̃))] +
    E[f(σ_τ(z̃)) ∂_φ \log q(b)]``), so ``E[ĝ] = E[a] = ∇_φ E_q[f(b)]`` for every η, τ.

    Parameters
    ----------
    dist : Bernoulli, Categorical or GaussianThreshold
    f : Objective
        Needs a gradient at relaxed points.
    noise_u, noise_v : array_like, shape (n, *event_shape)
        Uniforms strictly inside (0, 1): ``u`` gives ``z`` and ``b``, ``v`` gives ``z̃``.
    tau : float
        Temperature, finite and > 0.

    Returns
    -------
    a, c : ndarray, each of shape ``(n, *dist.param_shape)``
    """
    _check_dist(dist)
    tau = check_positive_scalar(tau, "tau")
    u = _check_noise_block(noise_u, "noise_u", dist)
    v = _check_noise_block(noise_v, "noise_v", dist, n=u.shape[0])
    parts = _Parts(dist, _differentiable(f, "rebar"), u, v, tau)
    return parts.a, parts.c


def optimal_eta(a, c):
    r"""Sample version of the variance-optimal REBAR coefficient, per coordinate.

    For ``ĝ_j = a_j + η_j c_j`` with ``E[c_j] = 0``,
    ``Var(ĝ_j) = Var(a_j) + 2 η_j E[a_j c_j] + η_j² E[c_j²]``, minimised at

    .. math::  η_j^\star = −\frac{E[a_j c_j]}{E[c_j^2]},
               \qquad \min_η \mathrm{Var}(ĝ_j) = \mathrm{Var}(a_j) − \frac{E[a_j c_j]^2}{E[c_j^2]}.

    Returned here with the expectations replaced by means over the rows of ``a`` and
    ``c`` (e.g. from :func:`rebar_terms`); 0 where ``Σ c_j² = 0``.  (For one scalar η
    shared by all coordinates the total variance is minimised by
    ``−Σ_j E[a_j c_j] / Σ_j E[c_j²]`` instead.)

    Parameters
    ----------
    a, c : array_like, shape (m, *param_shape)
        Finite.

    Returns
    -------
    ndarray, shape ``param_shape``
    """
    a = as_float_array(a, "a")
    c = as_float_array(c, "c")
    if a.ndim < 2 or a.shape != c.shape or a.shape[0] < 1:
        raise ValueError(f"a and c must have the same shape (m, *param_shape) with m >= 1; got {a.shape} and {c.shape}")
    for name, arr in (("a", a), ("c", c)):
        bad = ~np.isfinite(arr)
        if bad.any():
            where = first_index(bad)
            raise ValueError(f"{name} must be finite; got {float(arr[where])!r} at index {where}")
    return _optimal_eta(_flat(a), _flat(c)).reshape(a.shape[1:])


# ---------------------------------------------------------------------------- estimator

_rebar_doc = r"""REBAR (Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, NeurIPS, §3, eq. 6).

.. math::
    \hat g = \big[f(b) − η f(σ_τ(\tilde z))\big]\, ∂_φ \log q(b)
             + η\,\big[∂_φ f(σ_τ(z)) − ∂_φ f(σ_τ(\tilde z))\big] = a + η ⊙ c,

with ``z = z(φ, u)`` (``ℓ + logistic(u)``, ``μ + Φ⁻¹(u)`` or ``ℓ + Gumbel(u)``),
``b = H(z) = dist.from_uniforms(u)``, ``z̃ = z̃(φ, b, v) ~ z | b`` and
``σ_τ = sigmoid_tau`` (bits) or ``softmax_tau`` (categorical).  ``∂_φ`` is taken at
fixed ``(u, v)`` through ``z`` (``∂z/∂φ = I``) and through ``z̃`` **including** its
dependence on φ through the conditioning (``v' = v(1−θ)`` or ``(1−θ) + vθ`` for a
Bernoulli; the truncation point ``Φ(∓μ)``; the ``logsumexp(ℓ)`` of the top Gumbel):
with ``∂z̃/∂φ = I`` instead the estimator is biased.  ``E[c] = 0``, so ĝ is unbiased
for every η and τ; see :func:`refgrad.estimators.rebar.rebar_terms`.

Options
    ``tau`` (finite float > 0, default 0.5): temperature.
    ``eta`` (default 1.0): a finite float, a finite array of shape ``param_shape``
    (one coefficient per parameter), or ``"optimal"``: the per-coordinate
    variance-optimal ``η* = −E[a c]/E[c²]`` (see
    :func:`~refgrad.estimators.rebar.optimal_eta`) estimated on an independent pilot
    batch, so the estimate stays unbiased (η̂ is independent of the main noise).
    ``pilot`` (integer ≥ 2, default 256): pilot batch size, used with ``"optimal"``.

Cost: 3 (f at ``b``; f and ∇f at ``σ_τ(z)`` and at ``σ_τ(z̃)``); with ``"optimal"``
the pilot adds ``3 · pilot`` evaluations per call, shared by its ``n`` estimates.

Infinite parameters: a bit with ``ℓ = ±∞`` (``μ = ±∞``) is deterministic and gets 0; a
categorical row with ``+∞`` logits is the finite problem on its ``+∞`` categories
(logits 0 there, ``−∞`` elsewhere), as in :mod:`refgrad.random` -- 0 if there is one
such category, the (non-zero) gradient of that finite problem if there are several.

Noise: ``u`` and ``v`` of shape ``event_shape`` (per sample); with ``"optimal"`` also
``pilot_u`` and ``pilot_v`` of shape ``(pilot, *event_shape)``, shared by the ``n``
estimates of one call.  The estimate jumps in ``u`` where ``b`` does and is continuous
in ``v``.
"""


def _pilot_eta(dist, obj, noise, tau):
    """The optimal η estimated on the pilot fields ``noise["pilot_u"]``, ``noise["pilot_v"]``; ``param_shape``."""
    pilot_parts = _Parts(dist, obj, noise["pilot_u"], noise["pilot_v"], tau)
    return _optimal_eta(_flat(pilot_parts.a), _flat(pilot_parts.c)).reshape(tuple(dist.param_shape))


def _rebar(dist, f, noise, tau, eta, pilot):
    obj = _differentiable(f, "rebar")
    parts = _Parts(dist, obj, noise["u"], noise["v"], tau)
    if isinstance(eta, str):  # "optimal"
        eta = _pilot_eta(dist, obj, noise, tau)
    return _combine(parts.a, parts.c, eta)


def _rebar_control_variate(dist, f, noise, tau, **_):
    """(a, c) with ĝ = a + η ⊙ c (per-sample noise fields only)."""
    parts = _Parts(dist, _differentiable(f, "rebar"), noise["u"], noise["v"], tau)
    return parts.a, parts.c


def _rebar_features(dist, f, noise=None, b=None, tau=0.5, eta=1.0, pilot=256):
    """Separable form (:mod:`refgrad._moments.separable`).

    ``F = (f_j(b_j), f_j(σ_τ(z̃_j)))``, ``A = (s_j, −η_j s_j)``; the pathwise terms of a separable f involve
    variable j's own term only.
    """
    parts = _Parts(dist, _differentiable(f, "rebar"), noise["u"], noise["v"], tau)
    eta_arr = np.broadcast_to(np.asarray(eta, dtype=np.float64), parts.s.shape[1:])
    F = np.stack([parts.fb, parts.fxt], axis=1)
    A = np.stack([parts.s, -eta_arr[None] * parts.s], axis=1)
    return F, A


def _rebar_separable(dist, tau, eta, pilot):
    if _is_optimal(eta):
        return None  # the pilot's η couples the variables

    def options(j):
        e = eta if np.ndim(eta) == 0 else np.asarray(eta)[j:j + 1]
        return {"tau": tau, "eta": e, "pilot": pilot}

    return options, _rebar_features


def _check_eta(dist, eta):
    shape = tuple(dist.param_shape)
    allowed = f"a finite float, a finite array of shape {shape} or 'optimal'"
    if isinstance(eta, str):
        if eta == "optimal":
            return eta
        raise ValueError(f"eta must be {allowed}; got {eta!r}")
    if eta is None or isinstance(eta, (bool, np.bool_)):
        raise InputTypeError(f"eta must be {allowed}; got {describe(eta)}")
    arr = as_float_array(eta, "eta", copy=True)  # TypeError for complex, strings in a list, bools
    if arr.ndim != 0 and arr.shape != shape:
        raise ValueError(f"eta must be a scalar or have the parameter shape {shape}; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = first_index(bad)
        at = f" at index {where}" if arr.ndim else ""
        raise ValueError(f"eta must be {allowed}; got {float(arr[where]) if arr.ndim else float(arr)!r}{at}")
    if arr.ndim == 0:
        return float(arr)
    arr.setflags(write=False)
    return arr


def _rebar_options(dist, opts):
    opts["tau"] = check_positive_scalar(opts["tau"], "tau")
    opts["eta"] = _check_eta(dist, opts["eta"])
    pilot = check_count(opts["pilot"], "pilot", minimum=2)
    opts["pilot"] = check_sample_count(pilot, 2 * 8 * int(np.prod(dist.event_shape)), "pilot")  # pilot_u, pilot_v
    return opts


def _is_optimal(eta):
    return isinstance(eta, str)


def _rebar_layout(dist, eta, pilot, **_):
    event = tuple(dist.event_shape)
    fields = (
        NoiseField("u", event, "uniforms: latent z = φ + noise(u), b = dist.from_uniforms(u)"),
        NoiseField("v", event, "uniforms of the conditional latent z̃ ~ z | b"),
    )
    if _is_optimal(eta):
        fields += (
            NoiseField("pilot_u", (pilot,) + event, "pilot batch (u) for the estimate of the optimal η",
                       per_sample=False),
            NoiseField("pilot_v", (pilot,) + event, "pilot batch (v) for the estimate of the optimal η",
                       per_sample=False),
        )
    return fields


def _rebar_breakpoints(dist, eta, **_):
    out = {"u": sample_breakpoints(dist), "v": None}
    if _is_optimal(eta):
        out.update(pilot_u=None, pilot_v=None)
    return out


def _rebar_fused(dist, obj, row, shared, tau, eta, pilot):
    """The fused REBAR plan (:mod:`refgrad.estimators.kernels.rebar`), or None."""
    if dist.family not in _kernels.FAMILIES:
        return None
    if isinstance(eta, str):  # "optimal": the batched path's own estimate on the shared pilot batch
        if "pilot_u" not in shared or "pilot_v" not in shared:
            return None
        eta = _pilot_eta(dist, obj, shared, tau)
    return _kernels.rebar_plan(dist, row, latent_logits(dist), tau, eta)


register(
    EstimatorSpec(
        name="rebar",
        doc=_rebar_doc,
        families=DISCRETE,
        unbiased=True,
        compute=_rebar,
        layout=_rebar_layout,
        cost=lambda dist, **o: 3,
        defaults={"tau": 0.5, "eta": 1.0, "pilot": 256},
        check_options=_rebar_options,
        breakpoints=_rebar_breakpoints,
        control_variate=_rebar_control_variate,
        fused=_rebar_fused,
        separable=_rebar_separable,
        summary="[f(b) − η f(σ_τ(z̃))] ∂log q(b) + η [∂f(σ_τ(z)) − ∂f(σ_τ(z̃))], z̃ ~ z | b reparameterised; "
        "Tucker et al. 2017, eq. 6; η a float, per-parameter array or pilot-estimated optimum",
    )
)


# ---------------------------------------------------------------------------- latent form (exact moments only)
#
# Given the sample b, the latent z (from u) and the conditional latent z̃ (from v) are independent, each with
# the law of z | b, and REBAR's estimate splits into a term of (z, b) and a term of (z̃, b):
#
#     ĝ = [f(b) s + η ⊙ ∂_φ f(σ_τ(z))] − η ⊙ [∂_φ f(σ_τ(z̃)) + f(σ_τ(z̃)) s],    s = ∂_φ log q(b).
#
# refgrad.exact.moments integrates each term over the law of z | b in the variables where its mass lies
# (refgrad._moments.latent); these functions give the terms as functions of the latent.  ∂z̃/∂φ, which compute()
# takes from the uniforms v, is written in terms of z̃ itself (refgrad.estimators._latent: conditional_slope,
# conditional_gumbel_pull; tests/moments/test_extremes_rebar.py::test_latent_terms_agree_with_compute checks the
# terms against compute() on the same noise).


def _latent_pull(dist, b, zt, cotangent):
    """``(∂z̃/∂φ)ᵀ c`` from the conditional latent ``z̃`` (Bernoulli or Categorical; effective logits)."""
    if dist.family == "categorical":
        return conditional_gumbel_pull(effective_logits(dist.params), b.argmax(axis=-1), zt, cotangent)
    return conditional_slope(dist, b, zt) * cotangent


def _latent_residual(dist, b, z, cotangent):
    """``c − (∂z̃/∂φ)ᵀ c`` at ``z̃ = z``, without cancellation: the integrand of ``E[c | b]``.

    A bit: ``(1 − ∂z̃/∂ℓ) c`` with ``1 − ∂z̃/∂ℓ = σ(−ℓ) + σ(ℓ) e^{−z}`` (b = 1) or ``σ(ℓ) + σ(−ℓ) e^{z}``
    (b = 0).  A categorical row: with ``a_k = e^{d_k}`` (``a_b = 1``), ``c − Dᵀc = (I − p 1ᵀ)(a ⊙ c)``, its
    diagonal ``1 − p_j`` formed as the sum of the other probabilities.
    """
    if dist.family == "categorical":
        logits = effective_logits(dist.params)
        index = b.argmax(axis=-1)
        top = np.take_along_axis(z, index[..., None], axis=-1)
        with np.errstate(invalid="ignore"):
            a = np.exp(z - top)
        ac = np.where(a > 0.0, a * cotangent, 0.0)
        p = np.where(np.isfinite(logits), special.softmax(logits, axis=-1), 0.0)[None]
        total = np.sum(ac, axis=-1, keepdims=True)
        rest = np.zeros_like(p)
        for j in range(p.shape[-1]):  # 1 − p_j = Σ_{k≠j} p_k: accurate when p_j ≈ 1
            rest[..., j] = np.sum(np.delete(p, j, axis=-1), axis=-1)
        return rest * ac - p * (total - ac)
    sign = np.where(b > 0.5, 1.0, -1.0)
    ell = dist.params[None] * sign
    with np.errstate(invalid="ignore", over="ignore"):
        return (special.expit(-ell) + special.expit(ell) * np.exp(-np.abs(z))) * cotangent


def _rebar_latent_mean(dist, f, z, b, tau, eta, **_):
    """The integrand of REBAR's conditional mean ``E[ĝ | b]`` at one latent ``z ~ z | b``.

    ``f(b) s + η ⊙ [(I − ∂z̃/∂φ)ᵀ ∂_z f(σ_τ(z)) − f(σ_τ(z)) s]`` (z and z̃ have one law given b).
    """
    obj = _differentiable(f, "rebar")
    nd = len(dist.param_shape)
    s = dist.score(b)
    x = relaxation(dist, z, tau)
    resid = _latent_residual(dist, b, z, relaxation_vjp(dist, z, tau, obj.grad(x)))
    return _bcast(obj.value(b), nd) * s + np.asarray(eta, dtype=np.float64) * (resid - _bcast(obj.value(x), nd) * s)


def _rebar_latent_z(dist, f, z, b, tau, eta, **_):
    """REBAR's term of ``z`` given ``b``, less the constant ``f(b) s``: ``η ⊙ ∂_φ f(σ_τ(z))``."""
    obj = _differentiable(f, "rebar")
    return np.asarray(eta, dtype=np.float64) * relaxation_vjp(dist, z, tau, obj.grad(relaxation(dist, z, tau)))


def _rebar_latent_zt(dist, f, zt, b, tau, eta, **_):
    """REBAR's term of ``(z̃, b)``: ``−η ⊙ [∂_φ f(σ_τ(z̃)) + f(σ_τ(z̃)) s]``."""
    obj = _differentiable(f, "rebar")
    nd = len(dist.param_shape)
    s = dist.score(b)
    xt = relaxation(dist, zt, tau)
    path = _latent_pull(dist, b, zt, relaxation_vjp(dist, zt, tau, obj.grad(xt)))
    return -np.asarray(eta, dtype=np.float64) * (path + _bcast(obj.value(xt), nd) * s)
