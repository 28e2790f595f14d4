"""Pathwise (reparameterisation) estimator for the continuous Normal family (refgrad.distributions.Normal)."""
from ..objectives import evaluate_grad
from ._base import EstimatorSpec, NoiseField, own_noise, register, unit_cost

__all__ = []


def _pathwise(dist, f, noise):
    z = dist.from_uniforms(noise["u"])
    return evaluate_grad(f, z) * dist.scale[None]


register(
    EstimatorSpec(
        separable=own_noise,
        name="pathwise",
        families=("normal",),
        unbiased=True,
        compute=_pathwise,
        layout=lambda dist, **_: (NoiseField("u", tuple(dist.event_shape), "ε = Φ⁻¹(u), z = aθ + c + ε"),),
        cost=unit_cost,
        breakpoints=lambda dist, **_: {"u": None},
        summary="∇f(z) ∂z/∂θ with z = aθ + c + Φ⁻¹(u); Kingma & Welling 2014; Xu 2018 (lecture slides), 'example (2)'",
        doc=r"""Pathwise / reparameterisation estimator for :class:`refgrad.distributions.Normal`
(Kingma & Welling 2014, "Auto-Encoding Variational Bayes", §2.4).

.. math::  z = aθ + c + ε,\; ε = Φ^{-1}(u), \qquad \hat g = a\, ∇f(z).

For the example (2) of the lecture slides "Re-parameterization and Gumbel-max Trick" (Richard Yi Da Xu,
University of Technology Sydney, 2018), f(z) = z², ``ĝ = 2a(aθ + c + ε)`` with mean ``2a(aθ + c)``
and variance ``4a²`` per coordinate, against the score-function estimator
``z² a (z − aθ − c)`` of the same mean.  Unbiased.  Cost: 1 (gradient of f).
""",
    )
)
