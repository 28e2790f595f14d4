r"""Gapped straight-through (GST): straight-through with a deterministic, gapped perturbation.

Source: T.-H. Fan, T.-C. Chi, A. I. Rudnicky & P. J. Ramadge (2022), "Training
Discrete Deep Generative Models via Gapped Straight-Through Estimator", ICML 2022
(PMLR 162, 6059-6073), the estimators "GST-1.0" and "GST-p".  The construction below
follows the paper's definition of the gapped perturbation as implemented by the
authors' reference code (function ``gst_mover`` of their MNIST-VAE / ListOps
repository), which is where the two gap choices and the detached perturbation are
spelled out.

Categorical (one variable, logits θ ∈ R^K, sample D = onehot(i), i ~ softmax θ)
-------------------------------------------------------------------------------
Replace the Gumbel noise of straight-through Gumbel-Softmax by a **deterministic**
perturbation ``m(θ, D)`` that makes the sampled category the argmax of ``z = θ + m``
by at least the gap κ, moving each logit as little as possible:

.. math::  z_i = \max_k θ_k, \qquad z_j = \min\big(θ_j,\; \max_k θ_k − κ\big)\ (j ≠ i),

i.e. ``m = (max θ − θ_i) D − relu(θ − max θ + κ) ⊙ (1 − D)``.  Forward the hard sample
D; backward through ``s = softmax(z/τ)`` with ``m`` **held constant** (detached in
the paper's code: the perturbation carries no gradient), so ``∂z/∂θ = I`` and

.. math::  \hat g = J_{\mathrm{softmax}_τ}(z)^\top ∇f(D) = s ⊙ (c − ⟨s, c⟩)/τ,
           \qquad c = ∇f(D).

**Key step of the derivation.**  At fixed D the map ``θ ↦ s(θ)`` is
``softmax((θ + m̄)/τ)`` with ``m̄ = m(θ₀, D)`` frozen, so ``∂s_k/∂θ_l =
s_k(δ_kl − s_l)/τ``; contracting with ``c`` gives ``Σ_k c_k s_k(δ_kl − s_l)/τ =
s_l(c_l − ⟨s, c⟩)/τ``.  Because ``z_i − z_j ≥ κ`` for every ``j ≠ i``,
``s_i ≥ 1/(1 + (K − 1) e^{−κ/τ})``: the relaxed sample is never far from D (the
paper's "consistency" property), and the estimate is a function of D alone (no
continuous noise), so its exact moments come by enumerating D.  The authors' code
also subtracts ``mean(z)`` before the softmax, which changes neither ``s`` nor the
gradient (``J_softmax 1 = 0``); it is omitted.

Gap κ (option ``gap``): a float ≥ 0 (default 1.0, "GST-1.0") or ``"p"`` ("GST-p"),
``κ = −log(1 − π_D)/π_D`` with ``π_D = p_i`` the probability of the sampled category
-- the expected gap ``E[z_i − max_{j≠i} z_j | D]`` of the Gumbel-max latent (the
difference of the two maxima is logistic with location ``log(π/(1−π))`` conditioned
positive: ``∫_0^∞ σ(μ − t) dt / σ(μ) = −log(1−π)/π``).  κ is computed from the
probabilities without cancellation (``−log1p(−π)`` for π ≤ 1/2, ``−log Σ_{j≠i} p_j``
above); it tends to 1 as π → 0 and to +∞ as π → 1 (then ``s = D`` and ĝ = 0; the
authors' code instead multiplies π by ``1 − 1e-5``, a numerical guard that caps κ
near ``11.5``: at ``π = 1 − 1e-9`` its gap is 11.5 where the formula gives 2.1e1).

Bernoulli (the construction on the two categories (0, ℓ))
----------------------------------------------------------
A bit with logit ℓ is the categorical with logits ``(0, ℓ)`` and ``x = s_1 =
σ((z_1 − z_0)/τ)``.  The construction above gives ``Δ = z_1 − z_0 = max(ℓ, κ)`` for
``b = 1`` and ``min(ℓ, −κ)`` for ``b = 0``, i.e. ``Δ = (2b − 1) max((2b − 1)ℓ, κ)``, and
with ``∂Δ/∂ℓ = 1`` (m detached)

.. math::  \hat g_i = ∂f/∂b_i(b)\; σ(Δ_i/τ)\,σ(−Δ_i/τ)/τ,

the Bernoulli straight-through estimate with the logistic latent ``ℓ + L(u)``
replaced by Δ.  ``gap="p"`` uses ``π = σ((2b − 1)ℓ)``.

Properties
----------
Biased for every option value (already for linear f: one bit, ℓ = 0, f = b, τ = 1,
κ = 1 gives ``E[ĝ] = σ(1)σ(−1) = 0.1966`` against ``∇ = 0.25``).  Cost: 1 (f's gradient
at the hard sample).  Noise: ``u`` of shape ``event_shape``, used only through
``b = dist.from_uniforms(u)`` (the same uniforms as REINFORCE and straight-through);
the estimate is piecewise constant in ``u``.  Families: Bernoulli, Categorical
(GaussianThreshold has no categorical form and is not offered).
Options: ``tau`` (finite float > 0, default 1.0): the temperature τ;
``gap`` (finite float ≥ 0, or ``"p"``; default 1.0): the gap κ.

Against straight-through (exact moments of both, :func:`refgrad.exact.moments`): on a
linear :class:`~refgrad.objectives.Table` over one categorical GST has less bias and a
fraction of the variance; on a cubic ``f = Σ_k w_k x_k³`` over the same variable it has
more bias and more variance; on one bit with ``(x − 0.45)²`` GST with ``gap=1`` has twice
the gradient as its mean, ``gap="p"`` less bias and variance than straight-through (the
numbers: docs/estimators-measured.md).  With ``|ℓ| < κ`` a bit's Δ is ``±κ`` whatever ℓ:
the estimate then depends on ℓ only through the sample.
"""
import numbers

import numpy as np
from scipy import special

from .._core.checks import InputTypeError, check_positive_scalar, describe
from ..relaxations import sigmoid_tau_vjp, softmax_tau_vjp
from ._base import EstimatorSpec, differentiable_objective, register
from .score import one_sample_fields

__all__ = ["gapped_logits"]

NAME = "gapped_straight_through"
FAMILIES = ("bernoulli", "categorical")


def _expected_gap(pi, q):
    """``−log(1 − π)/π`` from ``π`` and ``q = 1 − π`` (each accurate): 1 at π = 0, +inf at q = 0."""
    pi = np.asarray(pi, dtype=float)
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        small = -np.log1p(-np.minimum(pi, 0.5)) / pi
        large = -np.log(q) / pi
        out = np.where(pi <= 0.5, small, large)
    return np.where(pi > 0.0, out, 1.0)


def _gap_array(dist, b, gap):
    """κ per variable, shape ``(n, d)``, for the samples ``b``."""
    n, d = b.shape[0], b.shape[1]
    if not isinstance(gap, str):
        return np.full((n, d), float(gap))
    if dist.family == "bernoulli":
        a = np.where(b == 1.0, dist.params[None], -dist.params[None])
        return _expected_gap(special.expit(a), special.expit(-a))
    p = dist.probs[None]  # (1, d, K)
    return _expected_gap((b * p).sum(axis=-1), ((1.0 - b) * p).sum(axis=-1))


def gapped_logits(dist, b, gap=1.0):
    r"""The perturbed logits ``z = θ + m(θ, b)`` of the gapped straight-through estimator.

    Parameters
    ----------
    dist : Bernoulli or Categorical
    b : ndarray, shape ``(n, *event_shape)``
        Discrete samples (bits, or one-hot rows).
    gap : float ≥ 0 or ``"p"``
        The gap κ (see the module docstring).

    Returns
    -------
    ndarray
        Categorical: ``(n, d, K)`` with ``z_i = max θ`` at the sampled category and
        ``min(θ_j, max θ − κ)`` elsewhere.  Bernoulli: ``(n, d)``, the difference
        ``Δ = z_1 − z_0 = (2b − 1) max((2b − 1)ℓ, κ)`` on the categories ``(0, ℓ)``.
    """
    kappa = _gap_array(dist, b, gap)
    theta = dist.params[None]
    if dist.family == "bernoulli":
        sign = np.where(b == 1.0, 1.0, -1.0)
        return sign * np.maximum(sign * theta, kappa)
    top = theta.max(axis=-1, keepdims=True)  # (1, d, 1)
    with np.errstate(invalid="ignore"):
        # rows with a +inf logit are locally constant (zero gradient); keep them NaN-free
        ceiling = np.where(np.isposinf(top), top, top - kappa[..., None])
    return np.where(b == 1.0, top, np.minimum(theta, ceiling))


def _given(dist, f, b, tau, gap):
    b = b[:, 0]
    c = differentiable_objective(f, NAME).grad(b)
    z = gapped_logits(dist, b, gap)
    if dist.family == "categorical":
        return softmax_tau_vjp(z, tau, c)[0]
    return sigmoid_tau_vjp(z, tau, c)[0]


def _compute(dist, f, noise, tau, gap):
    return _given(dist, f, dist.from_uniforms(noise["u"])[:, None], tau, gap)


def _options(dist, opts):
    opts["tau"] = check_positive_scalar(opts["tau"], "tau")
    gap = opts["gap"]
    allowed = "a finite float >= 0 or the string 'p'"
    if isinstance(gap, str):
        if gap != "p":
            raise ValueError(f"gap must be {allowed}; got {gap!r}")
        return opts
    if not isinstance(gap, numbers.Real) or isinstance(gap, (bool, np.bool_)):
        raise InputTypeError(f"gap must be {allowed}; got {describe(gap)} of type {type(gap).__name__}")
    if not (np.isfinite(gap) and gap >= 0.0):
        raise ValueError(f"gap must be {allowed}; got {float(gap)!r}")
    opts["gap"] = float(gap)
    return opts


register(
    EstimatorSpec(
        **one_sample_fields(),
        name=NAME,
        doc=__doc__,
        families=FAMILIES,
        unbiased=False,
        compute=_compute,
        given_samples=_given,
        defaults={"tau": 1.0, "gap": 1.0},
        check_options=_options,
        summary="J_softmax_τ(z)ᵀ ∇f(D) with z = θ + m(θ, D) deterministic, the sample the argmax by a gap κ "
        "(m detached); Fan, Chi, Rudnicky & Ramadge, ICML 2022 (GST-1.0, GST-p)",
    )
)
