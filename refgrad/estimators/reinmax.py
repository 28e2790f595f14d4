r"""ReinMax: straight-through with second-order accuracy (Liu, Dong, Liu, Yu & Gao, NeurIPS 2023).

Source: L. Liu, C. Dong, X. Liu, B. Yu and J. Gao, "Bridging Discrete and
Backpropagation: Straight-Through and Beyond", NeurIPS 2023 (arXiv:2304.08612),
its ReinMax algorithm (Algorithm 2 there; only the abstract and introduction could be consulted when
this module was written, so the steps below were checked against the authors' reference code, not
the paper's page).  The closed form below is also the backward pass that the authors'
reference implementation (``ReinMaxCore.backward`` of the ``reinmax`` package)
computes directly; the tests check it against PyTorch autograd of the steps below.

Algorithm 2, for one categorical variable with logits ``θ`` (shape ``(K,)``)::

    π0 ← softmax(θ)
    D  ← one-hot sample of Cat(π0)
    π1 ← (D + softmax(θ/τ)) / 2
    π1 ← softmax(stop_gradient(ln π1 − θ) + θ)
    π2 ← 2 π1 − π0 / 2
    return π2 − stop_gradient(π2) + D

The forward value is ``D``; backpropagating ``∇f(D)`` through ``π2`` gives the
estimate ``ĝ = J(θ)ᵀ ∇f(D)`` with ``J = ∂π2/∂θ`` at fixed ``D``.

**Derivation (the key step).**  In step 4 the constant ``c = ln π1 − θ`` is held
fixed, so ``π1(θ') = softmax(c + θ')``; at ``θ' = θ`` its value is
``softmax(ln π1) = π1`` (``π1`` sums to 1) and its Jacobian is that of a softmax
whose output is ``π1``: ``diag(π1) − π1 π1ᵀ``.  The temperature enters only the
*value* of ``π1``, never the derivative (no ``1/τ`` factor, unlike straight-through
Gumbel-softmax).  Hence, per variable, with ``g = ∇f(D)``,

.. math::

    J = 2\,(\mathrm{diag}\,π_1 − π_1π_1^\top) − \tfrac12(\mathrm{diag}\,π_0 − π_0π_0^\top),
    \qquad
    \hat g_k = 2\,π_{1k}\big(g_k − ⟨π_1, g⟩\big) − \tfrac12\,π_{0k}\big(g_k − ⟨π_0, g⟩\big),

``J`` symmetric with ``J 1 = 0`` (so adding a constant to ``g`` changes nothing; the
reference implementation's final mean subtraction is a no-op in exact arithmetic).
``π_k (g_k − ⟨π, g⟩)`` is evaluated as ``π_k Σ_j π_j (g_k − g_j)`` (no cancellation
when ``π_k ≈ 1``); ``softmax(θ/τ)`` comes from :class:`refgrad.distributions.Categorical`
(``±inf`` logits allowed).  Variables of ``Categorical(d, K)`` are independent: the
formula applies row by row, with ``g`` the row of ``∇f(D)``.

**Why second order** (the paper's analysis: straight-through as forward Euler,
ReinMax as Heun's method).  The exact gradient is
``∂_k E[f] = π_k Σ_j π_j (f(e_k) − f(e_j))``.  Straight-through replaces
``f(e_k) − f(e_j)`` by the forward-Euler value ``∇f(e_j)ᵀ(e_k − e_j)`` (first order);
ReinMax's mean at ``τ = 1`` equals the trapezoid (Heun) value
``½(∇f(e_k) + ∇f(e_j))ᵀ(e_k − e_j)``, exact when ``f`` is quadratic along the simplex
edges.  Exactly (enumeration; tests/estimators/test_estimators_reinmax.py): at ``τ = 1`` the bias is 0
to rounding for the quadratic objectives (:class:`~refgrad.objectives.SquaredDistance`, a
general ``xᵀAx + bᵀx``) and the multilinear :class:`~refgrad.objectives.Table` objectives
tested, as the trapezoid argument predicts for every such ``f`` -- so ReinMax at ``τ = 1`` is
*unbiased* on them -- and nonzero for cubic ``f`` and for ``τ ≠ 1``.  The paper's claim holds
at ``τ = 1`` only: ``τ`` moves the Heun midpoint ``(D + π0)/2`` to ``(D + softmax(θ/τ))/2``
and brings back a bias linear in ``τ − 1``.  Beyond quadratics the advantage is not uniform:
for the cubic ``f = Σ_k w_k x_k³`` ReinMax's mean at ``τ = 1`` is exactly 1.5 × the gradient
(the trapezoid rule), a larger bias than straight-through's at ``τ ≥ 1``.  The exact relative
biases of ReinMax and straight-through against ``τ`` on these objectives are tabulated in
docs/estimators-measured.md.

**Bernoulli** is the ``K = 2`` case over the bit: a bit with logit ``ℓ`` is the
categorical over ``(b = 0, b = 1)`` with logits ``(0, ℓ)``, one-hot ``D = (1 − b, b)``
and ``f`` read through the second coordinate, ``g = (0, ∂f/∂b)``; the derivative
with respect to ``ℓ`` is the second coordinate of the categorical ``ĝ``.  With
``J = c [[1, −1], [−1, 1]]`` for ``K = 2``,

.. math::  \hat g_i = \Big[2\,p_{1i}(1 − p_{1i}) − \tfrac12\,σ(ℓ_i)σ(−ℓ_i)\Big]\,
           \frac{∂f}{∂b_i}(b), \qquad p_{1i} = \frac{b_i + σ(ℓ_i/τ)}2,

``1 − p_1 = (1 − b + σ(−ℓ/τ))/2`` computed without cancellation (tested equal to
the categorical formula on ``Categorical([[0, ℓ]])``).

Biased in general.  Options: ``tau`` (finite float > 0, default 1.0, the paper's
setting for the second-order claim; the reference implementation refuses
``τ < 1``, refgrad allows any ``τ > 0``).  Cost: 1 (``∇f`` at the sample ``D``).
Noise: ``u`` of shape ``event_shape`` with ``D = dist.from_uniforms(u)``; the
estimate is a function of ``D`` only, so ``exact.moments`` enumerates the support.
"""
from scipy import special

from .._core.checks import check_positive_scalar
from ..distributions import Categorical
from ._base import EstimatorSpec, differentiable_objective, register
from .score import one_sample_fields

__all__ = ["reinmax_bits", "reinmax_categorical"]

FAMILIES = ("bernoulli", "categorical")


def _softmax_vjp(p, g):
    """``(diag p − p pᵀ) g`` along the last axis, as ``p_k Σ_j p_j (g_k − g_j)`` (no cancellation)."""
    return p * ((g[..., :, None] - g[..., None, :]) * p[..., None, :]).sum(axis=-1)


def reinmax_categorical(logits, tau, D, g):
    r"""ReinMax for categoricals: ``2(diag π1 − π1π1ᵀ) g − ½(diag π0 − π0π0ᵀ) g`` per variable.

    Parameters
    ----------
    logits : ndarray, shape (d, K)
    tau : float > 0
    D : ndarray, shape (n, d, K)
        One-hot samples.
    g : ndarray, shape (n, d, K)
        ``∇f(D)``.

    Returns
    -------
    ndarray, shape (n, d, K)
    """
    p0 = Categorical(logits).probs[None]
    p1 = 0.5 * (D + Categorical(logits / tau).probs[None])
    return 2.0 * _softmax_vjp(p1, g) - 0.5 * _softmax_vjp(p0, g)


def reinmax_bits(logits, tau, b, g):
    r"""ReinMax for bits: ``[2 p1(1 − p1) − ½ σ(ℓ)σ(−ℓ)] ∂f/∂b`` with ``p1 = (b + σ(ℓ/τ))/2``.

    Parameters
    ----------
    logits : ndarray, shape (d,)
    tau : float > 0
    b : ndarray, shape (n, d)
        Bits.
    g : ndarray, shape (n, d)
        ``∂f/∂b`` at ``b``.
    """
    p1 = 0.5 * (b + special.expit(logits / tau)[None])
    q1 = 0.5 * ((1.0 - b) + special.expit(-logits / tau)[None])  # 1 − p1, no cancellation
    slope0 = special.expit(logits) * special.expit(-logits)
    return (2.0 * p1 * q1 - 0.5 * slope0[None]) * g


def _reinmax_given(dist, f, b, tau):
    b = b[:, 0]
    g = differentiable_objective(f, "reinmax").grad(b)
    if dist.family == "categorical":
        return reinmax_categorical(dist.params, tau, b, g)
    return reinmax_bits(dist.params, tau, b, g)


def _reinmax(dist, f, noise, tau):
    return _reinmax_given(dist, f, dist.from_uniforms(noise["u"])[:, None], tau)


def _options(dist, opts):
    opts["tau"] = check_positive_scalar(opts["tau"], "tau")
    return opts


register(
    EstimatorSpec(
        **one_sample_fields("uniforms giving the sample D = dist.from_uniforms(u)"),
        name="reinmax",
        doc=__doc__,
        families=FAMILIES,
        unbiased=False,
        compute=_reinmax,
        given_samples=_reinmax_given,
        defaults={"tau": 1.0},
        check_options=_options,
        summary="[2(diag π1 − π1π1ᵀ) − ½(diag π0 − π0π0ᵀ)] ∇f(D), π1 = (D + softmax(θ/τ))/2: "
        "straight-through with Heun's second-order correction; Liu et al. 2023 (ReinMax)",
    )
)
