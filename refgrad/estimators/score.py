"""Score-function (REINFORCE) estimators and their baselines.

All three are unbiased for every family with a ``score``; their noise is the one
block of uniforms ``u`` that produces the discrete sample(s) ``b``.  All three also take a
:class:`refgrad.distributions.Product` of heterogeneous blocks (flat points and parameters, its score the
blocks' scores side by side; MuProp's ``z̄`` and ``∂z̄/∂φ`` block by block).
"""
import numbers

import numpy as np

from .._core.checks import InputTypeError, check_count, check_sample_count, describe
from .._oracle.enumeration import expect, expectation
from ..objectives import evaluate
from ._base import EstimatorSpec, NoiseField, differentiable_objective, own_noise, register, unit_cost
from .kernels import score as _kernels

__all__ = ["optimal_baseline", "sample_breakpoints"]

DISCRETE = ("bernoulli", "categorical", "gaussian_threshold")

_reinforce_doc = r"""REINFORCE / score-function estimator (Williams 1992; Glynn 1990).

.. math::  \hat g = (f(b) − c)\, ∂_φ \log q_φ(b), \qquad b \sim q_φ,

Also applies to the continuous :class:`refgrad.distributions.Normal` (the example of
the lecture slides "Re-parameterization and Gumbel-max Trick", R. Y. D. Xu, 2018),
with ``b`` the continuous sample ``z``.  With ``baseline`` ``c``: ``None`` (c = 0), a finite float, or
``"optimal"`` -- the per-coordinate variance-minimising constant ``E[f s_j²]/E[s_j²]``, computed exactly
by enumeration (a reference lower bound for constant baselines; see
:func:`optimal_baseline`).  Unbiased for any constant ``c`` since ``E[s] = 0``.
Cost: 1 evaluation of f.  Noise: ``u`` of shape ``event_shape``.
"""

_rloo_doc = r"""Leave-one-out baseline over ``m`` samples (Kool, van Hoof & Welling 2019).

.. math::  \hat g = \frac1m \sum_{j=1}^m \Big(f(b_j) − \frac{1}{m−1}\sum_{i≠j} f(b_i)\Big) ∂_φ \log q(b_j)

Unbiased (the baseline of sample j is independent of b_j).  Cost: m evaluations.
Noise: ``u`` of shape ``(m, *event_shape)``.  Option ``m`` (integer ≥ 2, default 2).
"""

_muprop_doc = r"""MuProp (Gu, Levine, Sutskever & Mnih 2016).

With ``z̄ = E_q[b]`` and the first-order Taylor baseline
``h(b) = f(z̄) + ∇f(z̄)ᵀ(b − z̄)`` (coefficients held fixed),

.. math::  \hat g = (f(b) − h(b))\, ∂_φ \log q(b) + ∇f(z̄)ᵀ\, ∂_φ z̄ .

``∂_φ z̄`` is ``θ(1−θ)`` (Bernoulli), ``φ(μ)`` (GaussianThreshold),
``diag(p) − ppᵀ`` per variable (Categorical).  Requires f to accept relaxed inputs
(an objective declared ``relaxed_ok=False`` is refused, as by ``gumbel_softmax``,
``rebar`` and ``relax``) and to have a gradient.  Unbiased.  Cost: 2 (f at b; f and ∇f at z̄).
"""


# ---------------------------------------------------------------------------- shared pieces


def sample_breakpoints(dist):
    """Where ``b = dist.from_uniforms(u)`` jumps, per coordinate of ``u``.

    Bernoulli: ``u_i = σ(−ℓ_i)``; GaussianThreshold: ``u_i = Φ(−μ_i)``; Categorical:
    the Gumbel-max regions are not axis-aligned, reported as ``"argmax"``; a Product: its blocks' points
    side by side, or ``"argmax"`` when it has a categorical block.
    Points at 0 or 1 (infinite parameters) are dropped (replaced by NaN).
    """
    own = getattr(dist, "_sample_breakpoints", None)
    return own() if own is not None else None


def optimal_baseline(dist, f):
    r"""The variance-minimising constant baseline per parameter coordinate, exactly.

    For ``g_j = (f(b) − c_j) s_j(b)`` with ``s = ∂ log q(b)/∂φ`` and ``E[s_j] = 0``,

    .. math::  \mathrm{Var}(g_j) = E[(f − c_j)^2 s_j^2] − (∂_j L)^2
               \;\Rightarrow\; c_j^\star = \frac{E[f(b)\, s_j(b)^2]}{E[s_j(b)^2]},

    computed by enumeration (Weaver & Tao 2001; the lecture slides "Discrete Latent Variables" (Art Sobolev,
    Samsung AI Center) state the same ratio in covariance form).  Coordinates with ``E[s_j²] = 0``
    (deterministic variables) get ``c_j = 0``.  Returns an array of shape ``dist.param_shape``.
    """
    nd = len(dist.param_shape)
    num = expect(dist, lambda b: evaluate(f, b).reshape((-1,) + (1,) * nd) * dist.score(b) ** 2)
    den = expect(dist, lambda b: dist.score(b) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _bcast(values, ndim):
    """Reshape per-sample values (n,) to broadcast against (n, *param_shape)."""
    return values.reshape(values.shape + (1,) * ndim)


def _u_layout(dist, **_):
    return (NoiseField("u", tuple(dist.event_shape), "uniforms giving b = dist.from_uniforms(u)"),)


def _u_breakpoints(dist, **_):
    return {"u": sample_breakpoints(dist)}


def one_sample_fields(noise=None, piecewise=True):
    """The :class:`EstimatorSpec` fields of an estimator driven by one sample ``b = dist.from_uniforms(u)``.

    Its noise is one block ``u`` of the event's shape (``noise`` describes it, default "uniforms giving b"), its
    variables use their own noise only (separable without cross terms), it costs one evaluation, and it jumps
    where ``b`` does (:func:`sample_breakpoints`); ``piecewise``: constant between those jumps.
    """
    layout = _u_layout if noise is None else (lambda dist, **_: (NoiseField("u", tuple(dist.event_shape), noise),))
    fields = dict(separable=own_noise, layout=layout, cost=unit_cost, breakpoints=_u_breakpoints)
    if piecewise:
        fields["shape_in_noise"] = "piecewise_constant"
    return fields


# ---------------------------------------------------------------------------- reinforce


def _reinforce(dist, f, noise, baseline):
    return _reinforce_given(dist, f, dist.from_uniforms(noise["u"])[:, None], baseline)


def _reinforce_given(dist, f, b, baseline):
    b = b[:, 0]
    fb = evaluate(f, b)
    s = dist.score(b)
    nd = len(dist.param_shape)
    if baseline is None:
        return _bcast(fb, nd) * s
    if isinstance(baseline, str):  # "optimal"
        c = optimal_baseline(dist, f)
        return (_bcast(fb, nd) - c[None]) * s
    return _bcast(fb - baseline, nd) * s


def _same_options(dist, **opts):
    """Separable declaration of an estimator whose options apply to every variable unchanged."""
    return lambda j: dict(opts)


def _reinforce_features(dist, f, noise=None, b=None, baseline=None):
    """Separable form (see :mod:`refgrad._moments.separable`).

    ``F = f_j(b_j)`` (centred for the optimal baseline, whose value on the full problem is variable j's own
    optimum plus ``Σ_{r≠j} E f_r``), ``A = ∂ log q(b_j)``.
    """
    b = dist.from_uniforms(noise["u"]) if b is None else b[:, 0]
    fb = evaluate(f, b)
    if isinstance(baseline, str):  # "optimal"
        fb = fb - expectation(dist, f)
    s = dist.score(b)
    return fb[:, None], s[:, None]


def _reinforce_separable(dist, **opts):
    return _same_options(dist, **opts), _reinforce_features


def _rloo_features(dist, f, noise=None, b=None, m=2):
    """Separable form: ``F = (f_j(b_j^1), …, f_j(b_j^m))``; ``A_l = (s_l − Σ_{i≠l} s_i / (m − 1)) / m``."""
    if b is None:
        u = noise["u"]
        n = u.shape[0]
        event = tuple(dist.event_shape)
        b = dist.from_uniforms(u.reshape((n * m,) + event)).reshape((n, m) + event)
    n = b.shape[0]
    fb = evaluate(f, b.reshape((n * m,) + tuple(dist.event_shape))).reshape(n, m)
    s = dist.score(b.reshape((n * m,) + tuple(dist.event_shape))).reshape((n, m) + tuple(dist.param_shape))
    total = s.sum(axis=1, keepdims=True)
    return fb, (s - (total - s) / (m - 1)) / m


def _rloo_separable(dist, **opts):
    return _same_options(dist, **opts), _rloo_features


def _reinforce_options(dist, opts):
    b = opts["baseline"]
    if isinstance(b, str) and b == "optimal" and dist.family == "normal":
        raise ValueError("baseline='optimal' needs an enumerable (discrete) family; the Normal family allows None "
                         "or a float")
    if b is None or (isinstance(b, str) and b == "optimal"):
        return opts
    allowed = "None, a finite float, or 'optimal'"
    if isinstance(b, str):
        raise ValueError(f"baseline must be {allowed}; got {b!r}")
    if not isinstance(b, numbers.Real) or isinstance(b, (bool, np.bool_)):
        raise InputTypeError(f"baseline must be {allowed}; got {describe(b)} of type {type(b).__name__}")
    if not np.isfinite(b):
        raise ValueError(f"baseline must be {allowed}; got {float(b)!r}")
    opts["baseline"] = float(b)
    return opts


def _reinforce_fused(dist, obj, row, shared, baseline):
    """The fused REINFORCE plan (:mod:`refgrad.estimators.kernels.score`), or None."""
    if dist.family not in _kernels.FAMILIES:  # before the optimal baseline: the batched path computes it
        return None
    size = int(np.prod(dist.param_shape))
    if baseline is None:
        c = np.zeros(size)
    elif isinstance(baseline, str):  # "optimal", computed once, exactly, as the batched path does
        c = np.ascontiguousarray(optimal_baseline(dist, obj), dtype=np.float64).reshape(-1)
    else:
        c = np.full(size, float(baseline))
    return _kernels.reinforce_plan(dist, row, c)


register(
    EstimatorSpec(
        name="reinforce",
        doc=_reinforce_doc,
        families=DISCRETE + ("normal",),
        product=True,
        unbiased=True,
        compute=_reinforce,
        given_samples=_reinforce_given,
        shape_in_noise="piecewise_constant",
        layout=_u_layout,
        cost=unit_cost,
        defaults={"baseline": None},
        check_options=_reinforce_options,
        breakpoints=_u_breakpoints,
        fused=_reinforce_fused,
        separable=_reinforce_separable,
        summary="(f(b) - c) ∂log q(b)/∂φ; Williams 1992, eq. 9; c = None, a constant, or the exact optimum",
    )
)


# ---------------------------------------------------------------------------- rloo


def _rloo(dist, f, noise, m):
    u = noise["u"]  # (n, m, *event)
    n = u.shape[0]
    event = tuple(dist.event_shape)
    return _rloo_given(dist, f, dist.from_uniforms(u.reshape((n * m,) + event)).reshape((n, m) + event), m)


def _rloo_given(dist, f, b, m):
    n = b.shape[0]
    b = b.reshape((n * m,) + tuple(dist.event_shape))
    fb = evaluate(f, b).reshape(n, m)
    s = dist.score(b).reshape((n, m) + tuple(dist.param_shape))
    loo_mean = (fb.sum(axis=1, keepdims=True) - fb) / (m - 1)
    weights = (fb - loo_mean) / m
    return np.einsum("nm,nm...->n...", weights, s)


def _rloo_options(dist, opts):
    m = check_count(opts["m"], "m", minimum=2)
    opts["m"] = check_sample_count(m, 8 * int(np.prod(dist.event_shape)), "m")  # one sample's noise must fit
    return opts


register(
    EstimatorSpec(
        name="rloo",
        doc=_rloo_doc,
        families=DISCRETE,
        product=True,
        unbiased=True,
        compute=_rloo,
        given_samples=_rloo_given,
        draws=lambda m, **_: m,
        shape_in_noise="piecewise_constant",
        layout=lambda dist, m, **_: (
            NoiseField("u", (m,) + tuple(dist.event_shape), "m independent uniforms blocks, one per sample b_j"),
        ),
        cost=lambda dist, m, **_: m,
        defaults={"m": 2},
        check_options=_rloo_options,
        fused=_kernels.rloo_plan,
        separable=_rloo_separable,
        breakpoints=lambda dist, m, **_: {
            "u": (lambda bp: bp if isinstance(bp, str) else np.broadcast_to(bp, (m,) + bp.shape).copy())(
                sample_breakpoints(dist)
            )
        },
        summary="(1/m) Σ_j (f(b_j) − mean_{i≠j} f(b_i)) ∂log q(b_j); Kool et al. 2019",
    )
)


# ---------------------------------------------------------------------------- muprop


def _mean_and_vjp(dist):
    """The mean z̄ = E[b] (event shape) and a function mapping ∂h/∂z̄ to ∂E_q[linear h]/∂φ."""
    if not hasattr(dist, "_mean_and_vjp"):
        raise ValueError(f"muprop does not support family {dist.family!r}")
    return dist._mean_and_vjp()


def _centred(dist, b):
    """``b − E[b]`` in non-cancelling form: for bits ``P(b_i = 0)`` at ``b_i = 1`` and ``−P(b_i = 1)`` at 0."""
    return dist._centred(b)


def _muprop(dist, f, noise):
    return _muprop_given(dist, f, dist.from_uniforms(noise["u"])[:, None])


def _muprop_given(dist, f, b):
    # f is evaluated at the relaxed point z̄ = E[b]: refuse objectives declared relaxed_ok=False
    obj = differentiable_objective(f, "muprop", relaxed=True)
    b = b[:, 0]
    zbar, vjp = _mean_and_vjp(dist)
    zbar_batch = zbar[None]
    f0 = obj.value(zbar_batch)[0]
    g0 = obj.grad(zbar_batch)[0]
    fb = obj.value(b)
    axes = tuple(range(1, b.ndim))
    baseline = f0 + np.sum(_centred(dist, b) * g0[None], axis=axes)
    s = dist.score(b)
    nd = len(dist.param_shape)
    return _bcast(fb - baseline, nd) * s + vjp(g0)[None]


def _muprop_features(dist, f, noise=None, b=None):
    """Separable form of MuProp.

    ``F = f_j(b_j) − f_j(z̄_j) − (b_j − z̄_j)·∇f_j(z̄_j)`` (variable j's share of ``f(b) − baseline``),
    ``A = ∂ log q(b_j)``.
    """
    obj = differentiable_objective(f, "muprop", relaxed=True)
    b = dist.from_uniforms(noise["u"]) if b is None else b[:, 0]
    zbar, _ = _mean_and_vjp(dist)
    f0 = obj.value(zbar[None])[0]
    g0 = obj.grad(zbar[None])[0]
    axes = tuple(range(1, b.ndim))
    F = obj.value(b) - (f0 + np.sum(_centred(dist, b) * g0[None], axis=axes))
    return F[:, None], dist.score(b)[:, None]


def _muprop_separable(dist, **opts):
    return _same_options(dist, **opts), _muprop_features


def _muprop_fused(dist, obj, row, shared):
    """The fused MuProp plan: f, ∇f and the vjp at z̄ = E[b] once per call, as the batched path computes them."""
    if dist.family not in _kernels.FAMILIES:
        return None
    obj = differentiable_objective(obj, "muprop", relaxed=True)
    zbar, vjp = _mean_and_vjp(dist)
    zbar_batch = zbar[None]
    f0 = float(obj.value(zbar_batch)[0])
    g0 = obj.grad(zbar_batch)[0]
    flat = lambda a: np.ascontiguousarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
    return _kernels.muprop_plan(dist, row, f0, flat(g0), flat(vjp(g0)))


register(
    EstimatorSpec(
        name="muprop",
        doc=_muprop_doc,
        families=DISCRETE,
        product=True,
        unbiased=True,
        compute=_muprop,
        given_samples=_muprop_given,
        shape_in_noise="piecewise_constant",
        layout=_u_layout,
        cost=lambda dist, **o: 2,
        defaults={},
        breakpoints=_u_breakpoints,
        fused=_muprop_fused,
        separable=_muprop_separable,
        summary="REINFORCE with the first-order Taylor baseline of f around z̄ = E[b], plus its exact gradient; "
        "Gu et al. 2016, eq. 6",
    )
)
