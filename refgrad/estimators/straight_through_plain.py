r"""Plain straight-through: forward the hard sample, backward through the probabilities (no relaxation noise).

Source: Y. Bengio, N. Léonard & A. Courville (2013), "Estimating or Propagating
Gradients Through Stochastic Neurons for Conditional Computation", arXiv:1308.3432:
the straight-through (ST) estimator copies the gradient with respect to the sampled
output of a stochastic neuron back to its input, as if the sampling step were the
identity.  Two readings of "its input" are in use, and both are offered here
(option ``backward``):

* ``"probs"`` (default): back-propagate through the map from the parameters to the
  probabilities, i.e. differentiate ``b + p(φ) − stop_gradient(p(φ))``, whose value is
  the sample ``b`` and whose derivative is that of ``p``.  This is the form of
  ``distrax.straight_through_wrapper`` (its ``sample`` adds ``probs −
  stop_gradient(probs)`` to a one-hot sample of a ``Categorical`` subclass, with
  ``probs = softmax(logits)``) and of the ``"st"`` sampler of the ``redge`` package
  (one-hot Gumbel-max sample ``D``, returned as ``stop_gradient(D − softmax(ℓ)) +
  softmax(ℓ)``); for bits it is the "sigmoid-adjusted" straight-through.
* ``"identity"``: the gradient with respect to ``b`` is taken as the gradient with
  respect to the parameters themselves (the pre-sigmoid activation in Bengio et al.'s
  wording), ``ĝ = ∇f(b)``.

Neither form has a temperature or relaxation noise: the only randomness is the
discrete sample ``b = dist.from_uniforms(u)`` (the same uniforms as REINFORCE), in
contrast to :data:`straight_through <refgrad.ESTIMATORS>`, which back-propagates
through a Gumbel-softmax / Binary Concrete relaxation at temperature τ.

Formulas (``c = ∇f(b)``, the objective's gradient at the hard sample)
----------------------------------------------------------------------
``backward="probs"``, with ``p(φ)`` the probability map:

* Bernoulli, ``p = σ(ℓ)``: ``ĝ_i = c_i σ(ℓ_i) σ(−ℓ_i)``;
* GaussianThreshold, ``p = Φ(μ)`` (``b = 1[μ + ε ≥ 0]``): ``ĝ_i = c_i φ(μ_i)``, φ the
  standard normal density;
* Categorical, ``p = softmax(ℓ_i)`` per variable ``i``:

  .. math::  \hat g_i = J_{\mathrm{softmax}}(ℓ_i)^\top c_i = p_i ⊙ (c_i − ⟨p_i, c_i⟩),
             \qquad \hat g_{ik} = p_{ik} \textstyle\sum_j p_{ij}\,(c_{ik} − c_{ij}),

  evaluated as ``p_ik ((c_ik − c_ir) − Σ_j p_ij (c_ij − c_ir))`` with ``r`` the row's
  most probable category (no cancellation when ``p_{ir} ≈ 1``).  A bit is the
  ``K = 2`` case: on the categories ``(0, ℓ)`` with one-hot ``(1 − b, b)`` and ``c =
  (0, ∂f/∂b)``, the second coordinate is ``σ(ℓ)σ(−ℓ) ∂f/∂b``.

``backward="identity"``: ``ĝ = c`` for every family.

Infinite parameters: a bit with ``ℓ = ±∞`` (``μ = ±∞``) has slope 0 under ``"probs"``;
a categorical row is read through its probabilities (``−∞`` logits have ``p = 0``;
``+∞`` logits share the row's mass equally, the convention of
:class:`~refgrad.distributions.Categorical` and :func:`refgrad.exact.gradient`), so a
row with one ``+∞`` logit gets 0 and the estimator stays unbiased on multilinear f at
any logits.  ``"identity"`` copies ``c`` whatever the parameters.

Bias
----
Biased in general.  Because the Jacobian ``J`` of the probability map does not depend
on ``b``, ``E[ĝ] = Jᵀ E_q[∇f(b)]`` and ``Cov[ĝ] = Jᵀ Cov_q[∇f(b)] J`` (``"probs"``),
while the exact gradient is ``∂_i E[f] = p'(φ_i) E_{b_{−i}}[f(b_i = 1) − f(b_i = 0)]``
for a bit and ``p_{ik}(E[f | b_i = e_k] − E[f])`` for a categorical.

* **Unbiased for every f that is multilinear in the samples** -- linear f, and any
  :class:`~refgrad.objectives.Table` (multilinear interpolation of its values): then
  ``∂f/∂b_i(b) = f(b_i = 1, b_{−i}) − f(b_i = 0, b_{−i})`` (bits) and ``∂f/∂b_{ik}(b) =
  f(b_i = e_k, b_{−i})`` (one-hot rows) do not depend on ``b_i``, and taking the
  expectation gives the exact gradient term by term.  For linear f the estimate is
  moreover constant (variance 0).
* Biased for f with curvature along a coordinate: one bit with
  ``f = (b − t)²`` gives ``E[ĝ] = σ'(ℓ) 2(σ(ℓ) − t)`` against ``∇ = σ'(ℓ)(1 − 2t)``, a bias
  ``σ'(ℓ)(2σ(ℓ) − 1)`` whatever t (0 only at ℓ = 0).
* ``"identity"`` is biased even for linear f: ``E[ĝ] = E[∇f(b)]`` misses the factor
  ``p'(φ)`` (≤ 1/4 for a bit).

Measured with ``refgrad.exact.moments`` (enumeration; recomputed by
``tests/estimators/test_estimators_straight_through_plain.py::test_documented_numbers``): one
bit ``ℓ = 0.4``, ``f = (b − 0.45)²``: mean 0.07145 against the gradient 0.02403 (bias
0.04742 = σ'(0.4)(2σ(0.4) − 1), variance 0.05548); one categorical, logits
``(0.3, −0.5, 1.1)``, ``f = Σ_k w_k x_k³`` with ``w = (0.7, −1.3, 2.1)``: relative bias
``max|E[ĝ] − ∇| / max|∇|`` 0.767, against 0.353 for straight_through at τ = 1
(quadrature).

Options: ``backward`` (``"probs"`` or ``"identity"``; default ``"probs"``).  Cost: 1
(f's gradient at ``b``).  Noise: ``u`` of shape ``event_shape``, used only through
``b = dist.from_uniforms(u)``; the estimate is a function of ``b`` alone, so
``exact.moments`` enumerates the support (method ``"enumeration"``), and beyond the
enumeration limit a separable objective decomposes variable by variable (no cross
terms: ``L = 0``).
"""
import numpy as np

from .._core.checks import describe
from ._base import EstimatorSpec, differentiable_objective, register
from .score import one_sample_fields

__all__ = ["plain_straight_through_bits", "plain_straight_through_categorical"]

NAME = "straight_through_plain"
FAMILIES = ("bernoulli", "categorical", "gaussian_threshold")
BACKWARDS = ("probs", "identity")


def plain_straight_through_bits(slope, c):
    r"""``ĝ_i = p'(φ_i) c_i``: the bit's cotangent ``c`` times the slope of its probability.

    Parameters
    ----------
    slope : ndarray, shape (d,)
        ``∂P(b_i = 1)/∂φ_i``: ``σ(ℓ)σ(−ℓ)`` (Bernoulli) or ``φ(μ)`` (GaussianThreshold).
    c : ndarray, shape (n, d)
        ``∂f/∂b`` at the samples.

    Returns
    -------
    ndarray, shape (n, d)
    """
    return slope[None] * c


def plain_straight_through_categorical(probs, c):
    r"""``J_softmax(ℓ_i)ᵀ c_i = p_i ⊙ (c_i − ⟨p_i, c_i⟩)`` per variable, without cancellation.

    With ``r`` the most probable category of the row, the centred cotangent is computed
    as ``c_k − ⟨p, c⟩ = (c_k − c_r) − Σ_j p_j (c_j − c_r)``: when ``p_r ≈ 1`` the sum
    has only small weights, so ``ĝ_r = −p_r Σ_{j≠r} p_j (c_j − c_r)`` keeps its relative
    accuracy (the plain ``c_r − ⟨p, c⟩`` would cancel to rounding noise), at ``O(n d K)``
    time and memory.

    Parameters
    ----------
    probs : ndarray, shape (d, K)
        ``softmax(ℓ_i)`` per row (:attr:`refgrad.distributions.Categorical.probs`).
    c : ndarray, shape (n, d, K)
        ``∇f`` at the one-hot samples.

    Returns
    -------
    ndarray, shape (n, d, K)
    """
    p = probs[None]
    r = np.argmax(probs, axis=-1)  # (d,)
    dc = c - np.take_along_axis(c, np.broadcast_to(r[None, :, None], c.shape[:-1] + (1,)), axis=-1)
    return p * (dc - (p * dc).sum(axis=-1, keepdims=True))


def _given(dist, f, b, backward):
    b = b[:, 0]
    c = np.asarray(differentiable_objective(f, NAME).grad(b), dtype=np.float64)
    if backward == "identity":
        return np.array(c, dtype=np.float64, copy=True)
    return _probs_backward(dist, c)


def _probs_backward(dist, c):
    """``Jᵀ c`` of the probability map; a Product block by block on its flat layout."""
    if dist.family == "product":
        n = c.shape[0]
        return np.concatenate([_probs_backward(block, cb).reshape(n, -1)
                               for block, cb in zip(dist.blocks, dist.unflatten(c))], axis=1)
    if dist.family == "categorical":
        return plain_straight_through_categorical(dist.probs, c)
    return plain_straight_through_bits(dist._dp1(), c)


def _compute(dist, f, noise, backward):
    return _given(dist, f, dist.from_uniforms(noise["u"])[:, None], backward)


def _options(dist, opts):
    backward = opts["backward"]
    if not isinstance(backward, str) or backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {list(BACKWARDS)}; got {describe(backward)}")
    return opts


register(
    EstimatorSpec(
        **one_sample_fields(),
        name=NAME,
        doc=__doc__,
        families=FAMILIES,
        product=True,
        unbiased=False,
        compute=_compute,
        given_samples=_given,
        defaults={"backward": "probs"},
        check_options=_options,
        summary="Jᵀ ∇f(b), J = ∂p/∂φ of the probabilities (σ'(ℓ), φ(μ), J_softmax(ℓ)): the hard sample forward, "
        "b + p − stop_gradient(p) backward, no relaxation; Bengio, Léonard & Courville 2013 (as in distrax, redge)",
    )
)
