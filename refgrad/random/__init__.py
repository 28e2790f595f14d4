"""Random number handling (SPEC 7) and the noise transforms of refgrad.

Randomness enters refgrad in exactly one place: :func:`uniform` draws float64
uniforms strictly inside (0, 1) from a :class:`numpy.random.Generator` obtained
with :func:`as_generator`.  Everything else in this package is a deterministic
function of such uniforms, so every sampler can be checked against a NumPy twin
on the same uniforms and two implementations can be compared sample by sample.

The package has three modules, re-exported here:

* ``rng``: :func:`as_generator` and :func:`uniform`;
* ``noise``: the transforms :func:`gumbel`, :func:`exponential`, :func:`logistic`,
  :func:`normal` and the categorical samplers :func:`categorical_gumbel_max` and
  :func:`categorical_exponential_argmin`;
* ``conditional``: REBAR's conditional samplers of the latent noise given the
  outcome, :func:`conditional_gumbel`, :func:`conditional_logistic`,
  :func:`conditional_normal`, and their derivatives.

Two layers, as everywhere in refgrad: public functions check and convert their
inputs and call private ``_name`` kernels compiled with Numba.  The scalar special
functions the kernels use (log-sigmoid, softplus, the normal CDF in log space and
its inverse, the normal-tail helpers of the conditional normal) are hand-written
(Numba cannot call :mod:`scipy.special`) and checked against SciPy and mpmath.

Conventions for infinite parameters
-----------------------------------
* Categorical logits: ``-inf`` marks an impossible category; if a row has
  ``+inf`` entries, those categories share the mass equally (the limit of equal,
  growing logits) and the row is treated as ``0`` on its ``+inf`` entries and
  ``-inf`` elsewhere.  Noise derived from such a row is then locally constant in
  the logits (its gradient is 0).  A row of all ``-inf`` is rejected.
* Conditioning on an impossible outcome (``b`` a category with logit ``-inf``, a
  bit opposite to an infinite logit or mean) raises ``ValueError`` naming ``b``.
  The kernels themselves return the finite limits of the conditional samples in
  that case (never NaN), see their docstrings.
"""
from . import conditional, noise, rng
from .conditional import *  # noqa: F403  (the public names of each module, listed in its __all__)
from .noise import *  # noqa: F403
from .rng import *  # noqa: F403

__all__ = [*rng.__all__, *noise.__all__, *conditional.__all__]
