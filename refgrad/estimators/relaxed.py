r"""Relaxation-based (biased) pathwise estimators: Gumbel-Softmax, straight-through, Gumbel-Rao.

All three use the one block of uniforms ``u`` of shape ``dist.event_shape`` that
:meth:`dist.from_uniforms` turns into the discrete sample ``b`` -- the same noise as
REINFORCE, so the estimators can be compared with common random numbers.  The
latent variable behind ``b`` is

* Bernoulli: ``z = ℓ + L(u)``, ``L = log u − log(1 − u)`` logistic, ``b = 1[z > 0]``;
* GaussianThreshold: ``z = μ + Φ⁻¹(u)``, ``b = 1[z ≥ 0]``;
* Categorical: ``z = ℓ + G(u)``, ``G = −log(−log u)`` Gumbel, ``b = onehot(argmax z)``;

and its relaxation is ``x = σ_τ(z) = σ(z/τ)`` (bits) or ``x = softmax_τ(z) = softmax(z/τ)``
(categorical), with ``∂z/∂φ = I``.  Writing ``J_τ(z) = ∂x/∂z`` (diagonal
``σ_τ(z)(1 − σ_τ(z))/τ`` for bits; ``(diag(s) − s sᵀ)/τ`` per variable for the softmax
``s``):

* ``gumbel_softmax``: ``ĝ = J_τ(z)ᵀ ∇f(x)``, f at the relaxed sample; ``E[ĝ] = ∇_φ E[f(x)]``;
* ``straight_through``: ``ĝ = J_τ(z)ᵀ ∇f(b)``, f's gradient at the hard sample;
* ``gumbel_rao``: ``ĝ = (1/k) Σ_j J_τ(z̃_j)ᵀ ∇f(b)`` with ``z̃_j ~ z | b``; ``E[ĝ] = E[ĝ_ST]``,
  with less variance.

None is unbiased for ``∇_φ E_q[f(b)]``.  The per-sample Jacobian products use the
hand-derived VJPs of :mod:`refgrad.relaxations` and the k-sample averaging kernels
below; the conditional samples ``z̃`` come from :mod:`refgrad.random`.
"""
import functools

import numpy as np

from .._core.checks import check_positive_scalar, check_sample_count, describe
from .._core.jit import jit
from ..random import (
    conditional_gumbel,
    conditional_gumbel_vjp,
    conditional_logistic,
    conditional_logistic_grad,
    conditional_normal,
    conditional_normal_grad,
)
from ..relaxations import softmax_tau_vjp
from ..relaxations.tempered import _sigmoid_slope_scalar
from ._base import EstimatorSpec, NoiseField, differentiable_objective, own_noise, register, unit_cost
from ._latent import (
    DISCRETE,
    conditional_gumbel_pull,
    conditional_slope,
    latent,
    latent_dist,
    latent_logits,
    relaxation,
    relaxation_vjp,
)
from .kernels.gumbel_rao import gumbel_rao_plan, softmax_vjp_identity_add
from .kernels.relaxed import gumbel_softmax_plan, straight_through_plan
from .rebar import _rebar_latent_mean, _rebar_latent_z, _rebar_latent_zt
from .relax import _relax_latent_mean, _relax_latent_z, _relax_latent_zt
from .score import one_sample_fields, sample_breakpoints

__all__ = ["LATENT_FORMS"]

DERIVATIVES = ("identity", "total")


# ---------------------------------------------------------------------------- kernels


@jit
def _sigmoid_tau_vjp_mean(z, tau, cotangent, dz):
    """(1/k) Σ_j c σ(z_j/τ) σ(−z_j/τ) dz_j / τ for z, dz (n, k, d) and c (n, d) -> (n, d).

    Saturated entries (slope underflowing to 0, including z = ±inf) contribute 0.
    """
    n, k, d = z.shape
    out = np.empty((n, d))
    for i in range(n):
        for a in range(d):
            acc = 0.0
            for j in range(k):
                slope = _sigmoid_slope_scalar(z[i, j, a] / tau)
                if slope != 0.0:
                    acc += slope * dz[i, j, a]
            out[i, a] = cotangent[i, a] * (acc / (k * tau))
    return out


@jit
def _softmax_tau_vjp_mean(z, tau, cotangent):
    """(1/k) Σ_j J_softmax_τ(z_j)ᵀ c for z (n, k, d, K) and c (n, d, K) -> (n, d, K).

    Per row, with s = softmax(z_j/τ): s ⊙ (c − ⟨s, c⟩)/τ.  Rows with a +inf entry are
    locally constant and contribute 0; a row of all −inf gives NaN.
    """
    n, k, d, K = z.shape
    out = np.zeros((n, d, K))
    s = np.empty(K)
    for i in range(n):
        for a in range(d):
            for j in range(k):
                softmax_vjp_identity_add(z[i, j, a], tau, cotangent[i, a], s, out[i, a])
            for q in range(K):
                out[i, a, q] = out[i, a, q] / (k * tau)
    return out


# ---------------------------------------------------------------------------- shared pieces


def _grad_f(f, z, estimator, relaxed=False):
    """``∇f(z)``, refusing objectives without a gradient (or, at relaxed points, ``relaxed_ok=False``)."""
    return differentiable_objective(f, estimator, relaxed=relaxed).grad(z)


def _u_layout(dist, **_):
    text = "uniforms: latent z = params + noise(u), b = dist.from_uniforms(u)"
    return (NoiseField("u", tuple(dist.event_shape), text),)


def _tau_options(dist, opts):
    opts["tau"] = check_positive_scalar(opts["tau"], "tau")
    return opts


_TAU_TEXT = "``tau`` (finite float > 0, default 1.0): the temperature τ."

# ---------------------------------------------------------------------------- gumbel_softmax

_gumbel_softmax_doc = rf"""Gumbel-Softmax / Concrete estimator (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017).

The pathwise gradient of the **relaxed** objective, f evaluated at the relaxed sample:

.. math::  \hat g = \frac{{∂}}{{∂φ}} f\big(σ_τ(z(φ, u))\big) = J_τ(z)^\top ∇f(x),\qquad
           x = σ_τ(z) \text{{ (bits) or }} \mathrm{{softmax}}_τ(z) \text{{ (categorical)}},

with ``z = ℓ + L(u)`` (Bernoulli; the Binary Concrete of Maddison et al. 2017),
``z = μ + Φ⁻¹(u)`` (GaussianThreshold) or ``z = ℓ + G(u)`` (Categorical; the
Gumbel-Softmax sample of Jang et al. 2017, eq. 2) and ``∂z/∂φ = I``.
``E[ĝ] = ∇_φ E[f(x)]``, the gradient of the relaxed objective, **not** of
``E_q[f(b)]``: biased for every τ > 0 (even for linear f, since ``E[σ_τ(z)] ≠ σ(ℓ)``);
the bias vanishes as τ → 0 while the variance grows like 1/τ.  Needs f defined
and differentiable at relaxed points.  Options: {_TAU_TEXT}  Cost: 1 (f's gradient at
one point).  Noise: ``u`` of shape ``event_shape``; the estimate is continuous in
``u`` (no break points).
"""


def _gumbel_softmax(dist, f, noise, tau):
    z = latent(dist, noise["u"])
    x = relaxation(dist, z, tau)
    return relaxation_vjp(dist, z, tau, _grad_f(f, x, "gumbel_softmax", relaxed=True))


def _gumbel_softmax_fused(dist, obj, row, shared, tau):
    """The fused plan (:mod:`refgrad.estimators.kernels.relaxed`) on the latent's logits, or None."""
    return gumbel_softmax_plan(dist, obj, row, latent_logits(dist), tau)


register(
    EstimatorSpec(
        **one_sample_fields("uniforms: latent z = params + noise(u), b = dist.from_uniforms(u)", piecewise=False),
        name="gumbel_softmax",
        doc=_gumbel_softmax_doc,
        families=DISCRETE,
        unbiased=False,
        compute=_gumbel_softmax,
        fused=_gumbel_softmax_fused,
        defaults={"tau": 1.0},
        check_options=_tau_options,  # continuous in u, but a layer of width ~τ at the sample threshold: split there
        summary="∂/∂φ f(σ_τ(z)) or f(softmax_τ(z)), z = φ + noise(u): f at the relaxed sample; "
        "Maddison et al. 2017, Jang et al. 2017",
    )
)


# ---------------------------------------------------------------------------- straight_through

_straight_through_doc = rf"""Straight-through (Gumbel-Softmax) estimator: hard forward, relaxed backward.

.. math::  \hat g = J_τ(z)^\top ∇f(b), \qquad b = \texttt{{dist.from\_uniforms}}(u),

i.e. the gradient of f taken at the **hard** sample ``b`` and chained through the
Jacobian of the relaxed sample: for bits ``ĝ_i = ∂f/∂b_i(b) · σ_τ(z_i)(1 − σ_τ(z_i))/τ``
(Bengio, Léonard & Courville 2013, with the Binary Concrete relaxation);
for a categorical, per variable ``ĝ = s ⊙ (∇f(b) − ⟨s, ∇f(b)⟩)/τ`` with
``s = softmax_τ(ℓ + G)`` (straight-through Gumbel-Softmax, Jang, Gu & Poole 2017, §2.2).
Biased for every τ.  As τ → 0 with one bit, ``E[ĝ] → σ'(ℓ)(f'(0) + f'(1))/2``:
unbiased in the limit only when f is at most quadratic in each bit (a
multilinear :class:`~refgrad.objectives.Table`, the squared distance), not in
general.  For a categorical variable the limit is the trapezoid rule along each
edge of the simplex from the sampled vertex, weighted by the two vertices'
probabilities: again unbiased in the limit only when f is at most quadratic
along edges (for ``f = Σ_k w_k x_k³``, ``E[ĝ] → 1.5 ×`` the gradient; measured
exactly in the validation case ``temperature``).  The variance grows like 1/τ.
Options: {_TAU_TEXT}  Cost: 1 (f's gradient at ``b``).  Noise: ``u`` of shape ``event_shape``; the
estimate jumps where ``b`` does.
"""


def _straight_through(dist, f, noise, tau):
    u = noise["u"]
    b = dist.from_uniforms(u)
    z = latent(dist, u)
    return relaxation_vjp(dist, z, tau, _grad_f(f, b, "straight_through"))


def _straight_through_fused(dist, obj, row, shared, tau):
    """The fused plan (:mod:`refgrad.estimators.kernels.relaxed`) on the latent's logits, or None."""
    return straight_through_plan(dist, row, latent_logits(dist), tau)


register(
    EstimatorSpec(
        **one_sample_fields("uniforms: latent z = params + noise(u), b = dist.from_uniforms(u)", piecewise=False),
        name="straight_through",
        doc=_straight_through_doc,
        families=DISCRETE,
        unbiased=False,
        compute=_straight_through,
        fused=_straight_through_fused,
        defaults={"tau": 1.0},
        check_options=_tau_options,
        summary="J_τ(z)ᵀ ∇f(b): gradient at the hard sample through the relaxed Jacobian; "
        "Bengio et al. 2013, Jang et al. 2017 §2.2 (ST Gumbel-Softmax)",
    )
)


# ---------------------------------------------------------------------------- gumbel_rao

_gumbel_rao_doc = rf"""Gumbel-Rao: Rao-Blackwellised straight-through Gumbel-Softmax (Paulus, Maddison & Krause 2021).

Forward the hard sample ``b = dist.from_uniforms(u)``; backward average the
straight-through Jacobian over ``k`` samples of the latent conditioned on ``b``:

.. math::  \hat g = \frac1k \sum_{{j=1}}^k J_τ(\tilde z_j)^\top ∇f(b), \qquad
           \tilde z_j \sim z \mid b \text{{ (independent, from the uniforms }} v_j).

``z̃`` is :func:`refgrad.random.conditional_gumbel` (Categorical: the top value is
Gumbel(logsumexp ℓ), the others Gumbels truncated below it),
:func:`~refgrad.random.conditional_logistic` (Bernoulli, REBAR's conditional noise) or
:func:`~refgrad.random.conditional_normal` (GaussianThreshold, a truncated normal).

**Which derivative** (option ``derivative``).  The straight-through estimate is
``ST(u) = J_τ(z)ᵀ ∇f(b)`` with ``z = φ + noise(u)`` and ``∂z/∂φ = I``.  Given ``b``,
``z`` has the law of ``z̃``, so ``E[ST | b] = E_v[J_τ(z̃)|_{{∂z̃/∂φ = I}}]ᵀ ∇f(b)``: the
Rao-Blackwellisation keeps ST's expectation and cannot increase any coordinate's
variance **only** if ``z̃`` is differentiated as ``φ + G̃`` with the noise ``G̃ = z̃ − φ``
held fixed.

* ``"identity"`` (default): ``∂z̃/∂φ = I`` as above.  ``E[ĝ] = E[ST]`` and
  ``Var(ĝ_i) = Var(ST_i) − (1 − 1/k) E[Var(ST_i | b)] ≤ Var(ST_i)``; ``k = 1`` has the
  same law as ST.  This is also the choice of the PyTorch reimplementation by
  N. Shepperd (github.com/nshepperd/gumbel-rao-pytorch), which computes the
  conditional noise without gradient and argues that only this keeps ST's mean.
* ``"total"``: the total derivative ``d/dφ σ_τ(z̃(φ, b, v))`` including ``z̃``'s
  dependence on φ through the conditioning (the logsumexp of the top coordinate and
  the truncation points; :func:`~refgrad.random.conditional_gumbel_vjp` and the
  ``*_grad`` functions) -- the reading of the paper's text, which differentiates
  ``softmax_τ(θ + G_k)`` through both θ and the conditional Gumbel.  Its expectation is
  **not** ``E[ST]`` (the tests measure the difference: exactly for one bit, by paired
  Monte Carlo otherwise); offered for cross-checking implementations that follow
  the text.

Families: Categorical (the paper's setting), Bernoulli and GaussianThreshold (the
same construction with the conditional logistic / normal).  Biased like ST.
Options: {_TAU_TEXT}  ``k`` (integer ≥ 1, default 10): conditional samples;
``derivative`` (``"identity"`` or ``"total"``).  Cost: 1 (f's gradient at ``b``; the
conditional samples need no evaluation of f).  Noise: ``u`` of shape
``event_shape`` (gives ``b``, jumps where ``b`` does) and ``v`` of shape
``(k, *event_shape)`` (the conditional samples, continuous).
"""


def _gumbel_rao(dist, f, noise, tau, k, derivative):
    u, v = noise["u"], noise["v"]
    n = u.shape[0]
    b = dist.from_uniforms(u)
    c = _grad_f(f, b, "gumbel_rao")
    params = dist.params
    total = derivative == "total"
    if dist.family == "categorical":
        _, d, K = b.shape
        idx = np.repeat(b.argmax(axis=-1).astype(np.int64), k, axis=0)  # (n k, d), sample-major
        v_flat = np.ascontiguousarray(v.reshape(n * k, d, K))
        z = conditional_gumbel(params, idx, v_flat)
        if total:
            c_rep = np.repeat(c, k, axis=0)
            cot = softmax_tau_vjp(z, tau, c_rep)[0]
            out = conditional_gumbel_vjp(params, idx, v_flat, cot).reshape(n, k, d, K).mean(axis=1)
        else:
            out = _softmax_tau_vjp_mean(np.ascontiguousarray(z.reshape(n, k, d, K)), tau, np.ascontiguousarray(c))
        # rows with +inf logits are deterministic: their gradient is 0, as for ST
        out[:, np.isposinf(params).any(axis=1), :] = 0.0
        return out
    d = b.shape[1]
    bits = np.repeat(b.astype(np.int64), k, axis=0)
    v_flat = np.ascontiguousarray(v.reshape(n * k, d))
    if dist.family == "bernoulli":
        z = conditional_logistic(params, bits, v_flat)
        dz = conditional_logistic_grad(params, bits, v_flat) if total else None
    else:
        z = conditional_normal(params, bits, v_flat)
        dz = conditional_normal_grad(params, bits, v_flat) if total else None
    if dz is None:
        dz = np.ones((n * k, d))
    return _sigmoid_tau_vjp_mean(
        np.ascontiguousarray(z.reshape(n, k, d)),
        tau,
        np.ascontiguousarray(c),
        np.ascontiguousarray(dz.reshape(n, k, d)),
    )


def _gumbel_rao_options(dist, opts):
    opts = _tau_options(dist, opts)
    opts["k"] = check_sample_count(opts["k"], 8 * int(np.prod(dist.event_shape)), "k")  # one sample's v must fit
    der = opts["derivative"]
    if not isinstance(der, str) or der not in DERIVATIVES:
        raise ValueError(f"derivative must be one of {list(DERIVATIVES)}; got {describe(der)}")
    return opts


register(
    EstimatorSpec(
        separable=own_noise,
        name="gumbel_rao",
        doc=_gumbel_rao_doc,
        conditional_draws=("k", "v"),
        families=DISCRETE,
        unbiased=False,
        compute=_gumbel_rao,
        layout=lambda dist, k, **_: (
            _u_layout(dist)[0],
            NoiseField("v", (k,) + tuple(dist.event_shape), "uniforms of the k conditional latents z̃_j ~ z | b"),
        ),
        cost=unit_cost,
        defaults={"tau": 1.0, "k": 10, "derivative": "identity"},
        check_options=_gumbel_rao_options,
        fused=gumbel_rao_plan,
        breakpoints=lambda dist, **_: {"u": sample_breakpoints(dist), "v": None},
        summary="(1/k) Σ_j J_τ(z̃_j)ᵀ ∇f(b), z̃_j ~ z | b: straight-through averaged over the conditional "
        "latent (same mean, less variance); Paulus, Maddison & Krause 2021",
    )
)


# ---------------------------------------------------------------------------- latent forms (exact moments only)


def _gumbel_softmax_latent(dist, f, z, b, tau):
    """Gumbel-Softmax as a function of the latent ``z`` (``b`` unused): ``J_τ(z)ᵀ ∇f(σ_τ(z))``."""
    return relaxation_vjp(dist, z, tau, _grad_f(f, relaxation(dist, z, tau), "gumbel_softmax", relaxed=True))


def _straight_through_latent(dist, f, z, b, tau, **_):
    """Straight-through as a function of the latent ``z`` and its sample ``b``: ``J_τ(z)ᵀ ∇f(b)``."""
    return relaxation_vjp(dist, z, tau, _grad_f(f, b, "straight_through"))


#: The estimate as a function of the latent ``z`` (``(n, *event)``; a categorical row may be
#: shifted by a constant, to which the softmax is invariant) and of the sample ``b`` it gives,
#: ``fn(dist, f, z, b, **options)``, with the option that averages conditional draws given ``b``
#: (None for one draw).  Only :func:`refgrad.exact.moments` uses these: it integrates them over
#: the law of the latent in the variables where the mass lies (see :mod:`refgrad._moments.latent`),
#: which the uniforms ``u`` cannot resolve at extreme logits.  ``estimate`` never calls them;
#: ``tests/moments/test_extremes_moments.py`` checks that they agree with ``compute`` where ``u`` can.
#: gumbel_rao enters with ``derivative="identity"`` only: given ``b`` its draws are i.i.d. with
#: the conditional law of straight-through's latent, so its moments follow from straight-through's
#: conditional moments and ``k``.
LATENT_FORMS = {
    "gumbel_softmax": (_gumbel_softmax_latent, None),
    "straight_through": (_straight_through_latent, None),
    "gumbel_rao": (_straight_through_latent, "k"),
}


def _gumbel_rao_total_latent(dist, f, zt, b, tau, **_):
    """One conditional draw of gumbel_rao with ``derivative="total"`` as a function of ``z̃`` and ``b``.

    ``(∂z̃/∂φ)ᵀ J_τ(z̃)ᵀ ∇f(b)``, with ``∂z̃/∂φ`` written in terms of ``z̃`` (see
    :mod:`refgrad.estimators.rebar`, latent form); rows with ``+inf`` logits give 0, as in ``compute``.
    """
    c = _grad_f(f, b, "gumbel_rao")
    with np.errstate(invalid="ignore"):
        inner = relaxation_vjp(dist, zt, tau, c)
        if dist.family == "categorical":
            out = conditional_gumbel_pull(dist.params, b.argmax(axis=-1), zt, inner)
            out[:, np.isposinf(dist.params).any(axis=1), :] = 0.0
            return out
        return conditional_slope(dist, b, zt) * inner


#: Largest spread of the finite logits in a categorical row at which REBAR's and RELAX's latent form is used:
#: within it the mean agrees with exact.gradient to about 1e-10 relative, beyond it the conditional mean of the
#: common sample's term cancels and the error grows (measured: docs/estimators-measured.md).  Beyond it the
#: uniforms' quadrature refuses
#: (refgrad._moments.plan.UNIFORM_QUADRATURE_LOGIT_LIMIT, 20).  The variance is not checked against mpmath here.
CATEGORICAL_SPREAD_LIMIT = 40.0


def _row_spread(dist):
    p = np.asarray(dist.params, dtype=float)
    with np.errstate(invalid="ignore"):
        hi = np.max(np.where(np.isfinite(p), p, -np.inf), axis=-1)
        lo = np.min(np.where(np.isfinite(p), p, np.inf), axis=-1)
        spread = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    return float(np.max(spread)) if spread.size else 0.0


def latent_form(name, dist, opts):
    """How :func:`refgrad.exact.moments` integrates estimator ``name`` over its latent, or None.

    Returns ``(parts, latent_dist, mean_fn)``: ``parts`` a tuple of ``(fn, kappa)``, ``fn(dist, f, z, b)`` a
    term of the estimate that depends on the noise through one latent ``z`` with the law of ``z | b`` (the
    terms are conditionally independent given ``b``, so their conditional covariances add; a term constant
    given ``b`` may be left out of them), ``kappa`` the factor of its conditional covariance (``1/k`` for an
    average of ``k`` i.i.d. conditional draws); ``latent_dist`` the distribution whose latent is integrated
    over (REBAR's effective logits for rows with ``+inf``); ``mean_fn(dist, f, z, b)`` (or None: the sum of
    the parts) the integrand of ``E[ĝ | b]`` at one latent ``z ~ z | b``, written without the cancellation
    of terms that are equal in law (REBAR's ``E[c] = 0`` cancels to ``e^{−|ℓ|}`` of its terms' size).  None for
    families without a latent here (GaussianThreshold) and options the latent form does not cover (REBAR's
    ``eta="optimal"``, whose pilot batch is shared by the estimates).
    """
    if dist.family not in ("bernoulli", "categorical"):
        return None
    if name in LATENT_FORMS:
        fn, draws = LATENT_FORMS[name]
        if name == "gumbel_rao" and opts.get("derivative") != "identity":
            return ((functools.partial(_gumbel_rao_total_latent, tau=opts["tau"]), 1.0 / int(opts["k"])),), dist, None
        if draws is None:  # the latent of a row with +inf logits: the effective logits, as compute's
            return ((functools.partial(fn, **opts), 1.0),), latent_dist(dist), None
        return ((functools.partial(fn, **opts), 1.0 / int(opts[draws])),), dist, None
    if name in ("rebar", "relax") and dist.family == "categorical" and _row_spread(dist) > CATEGORICAL_SPREAD_LIMIT:
        return None  # accuracy not shown beyond (see CATEGORICAL_SPREAD_LIMIT): the uniforms' path refuses
    if name == "rebar":
        if isinstance(opts.get("eta"), str):
            return None
        kw = {"tau": opts["tau"], "eta": opts["eta"]}
        return ((functools.partial(_rebar_latent_z, **kw), 1.0),
                (functools.partial(_rebar_latent_zt, **kw), 1.0)), latent_dist(dist), \
            functools.partial(_rebar_latent_mean, **kw)
    if name == "relax":
        kw = {"surrogate": opts["surrogate"]}
        return ((functools.partial(_relax_latent_z, **kw), 1.0),
                (functools.partial(_relax_latent_zt, **kw), 1.0)), latent_dist(dist), \
            functools.partial(_relax_latent_mean, **kw)
    return None
