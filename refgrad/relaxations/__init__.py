"""Continuous relaxations of Bernoulli and categorical variables.

The tempered sigmoid ``sigmoid_tau`` and tempered softmax ``softmax_tau`` with
their hand-derived vector-Jacobian products, the Binary Concrete, Concrete and
ExpConcrete samplers (driven by uniforms handed in by the caller), their
log-densities, all computed in log space, and the exact marginal CDFs of the
Binary Concrete and Concrete laws.

The package has three modules, re-exported here:

* ``tempered``: :func:`sigmoid_tau`, :func:`softmax_tau` and their VJPs
  :func:`sigmoid_tau_vjp`, :func:`softmax_tau_vjp`;
* ``concrete``: the samplers :func:`binary_concrete_sample`, :func:`concrete_sample`,
  :func:`exp_concrete_sample` and the log-densities :func:`binary_concrete_log_density`,
  :func:`concrete_log_density`, :func:`exp_concrete_log_density`;
* ``cdf``: :func:`binary_concrete_cdf` and :func:`concrete_marginal_cdf`.

Sources
-------
C. J. Maddison, A. Mnih and Y. W. Teh (2017), "The Concrete Distribution: A
Continuous Relaxation of Discrete Random Variables", ICLR 2017 (Definition 1
for the Concrete density, the binary special case, and the appendix on the
ExpConcrete distribution used for numerically stable log-densities).
E. Jang, S. Gu and B. Poole (2017), "Categorical Reparameterization with
Gumbel-Softmax", ICLR 2017 (the same distribution, called Gumbel-Softmax).

Kernels
-------
The private ``_name`` kernels take C-contiguous float64 arrays:

* ``_sigmoid_tau``, ``_sigmoid_tau_vjp``: ``x`` of shape ``(n, d)``;
* ``_softmax_tau``, ``_softmax_tau_vjp``: ``x`` of shape ``(n, d, K)``, the
  softmax taken over the last axis;
* samplers and log-densities: the point / uniforms of shape ``(n, d)``
  (binary) or ``(n, d, K)`` (categorical) and ``logits`` of the same shape or
  with a first axis of length 1 (shared by all ``n`` rows).

``tau`` is a Python float > 0.  Kernels do not check their input; the public
functions do.
"""
from . import concrete, tempered
from .cdf import (
    MAX_CATEGORIES,  # noqa: F401  (a public constant, outside __all__ as before)
    binary_concrete_cdf,
    concrete_marginal_cdf,
)
from .concrete import *  # noqa: F403  (the public names of each module, listed in its __all__)
from .tempered import *  # noqa: F403

__all__ = [*tempered.__all__, *concrete.__all__, "binary_concrete_cdf", "concrete_marginal_cdf"]
