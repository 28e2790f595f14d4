"""Discrete distributions over which refgrad differentiates expectations.

Three families, each a product of ``d`` independent variables:

* :class:`Bernoulli` -- bits with logits ``ℓ`` (shape ``(d,)``), ``P(b_i = 1) = σ(ℓ_i)``;
* :class:`Categorical` -- K-way variables with logits ``ℓ`` (shape ``(d, K)``),
  ``P(b_i = k) = softmax(ℓ_i)_k``; samples are one-hot, shape ``(d, K)``;
* :class:`GaussianThreshold` -- bits ``b_i = 1[z_i ≥ 0]`` with ``z_i ~ N(μ_i, 1)``,
  so ``P(b_i = 1) = Φ(μ_i)`` (the latent-class parameterisation of
  the student project report "Project REBAR" (Andrzejczuk, Bielecki & Orłowski)).

Every class exposes the same surface: ``params``, ``param_shape``,
``event_shape``, ``probs``, ``sample``, ``from_uniforms``, ``log_prob``,
``score`` (``∂ log q(b) / ∂ params``, hand-derived), ``support_size`` and
``enumerate``.

:class:`Product` (:mod:`refgrad.distributions.product`) puts instances of the three side by side in one problem
(a bit, two categoricals of different K, ...), with flat parameters and flat points.

Infinite parameters are legal and mean a deterministic outcome
(``ℓ = +inf``: the bit is 1 with probability one).  Configurations with
probability zero have ``log_prob = -inf``; their score is the limit of the
finite-parameter formula: finite for Bernoulli and Categorical (``b − σ(ℓ)``,
``b − softmax(ℓ)``), ``±inf`` for GaussianThreshold (the Mills ratio diverges).
The exact oracles skip such configurations.
"""
from .families import ENUMERATION_LIMIT, Bernoulli, Categorical, GaussianThreshold, Normal
from .product import Product

__all__ = ["Bernoulli", "Categorical", "GaussianThreshold", "Product", "Normal", "ENUMERATION_LIMIT"]
