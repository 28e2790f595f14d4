"""Antithetic estimators for Bernoulli variables: ARM and DisARM.

Both draw one uniform vector ``u`` and evaluate f at the antithetic pair

    b¹ = 1[u > σ(−ℓ)],   b² = 1[u < σ(ℓ)]      (i.e. b¹ = 1[u > 1 − θ], b² = 1[u < θ]),

each marginally ~ Bernoulli(θ), θ = σ(ℓ).  Cost: 2 evaluations of f.
"""
import numpy as np
from scipy import special

from .._jit import jit
from ..objectives import evaluate
from ..random import _sigmoid
from ._base import EstimatorSpec, NoiseField, register

__all__ = []


@jit
def _antithetic_pair(logits, u):
    """Antithetic bits (b1, b2) for logits (d,) and uniforms (n, d)."""
    n, d = u.shape
    b1 = np.empty((n, d))
    b2 = np.empty((n, d))
    for j in range(d):
        lo = _sigmoid(-logits[j])
        hi = _sigmoid(logits[j])
        for i in range(n):
            b1[i, j] = 1.0 if u[i, j] > lo else 0.0
            b2[i, j] = 1.0 if u[i, j] < hi else 0.0
    return b1, b2


@jit
def _arm_combine(fdiff, u):
    """ARM: (f(b1) − f(b2)) (u − 1/2), shape (n, d)."""
    n, d = u.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = fdiff[i] * (u[i, j] - 0.5)
    return out


@jit
def _disarm_combine(fdiff, b1, b2, logits):
    """DisARM: ½ (f(b1) − f(b2)) (−1)^{b2} 1[b1 ≠ b2] σ(|ℓ|), shape (n, d)."""
    n, d = b1.shape
    out = np.empty((n, d))
    for j in range(d):
        sig_abs = _sigmoid(abs(logits[j]))
        for i in range(n):
            if b1[i, j] == b2[i, j]:
                out[i, j] = 0.0
            else:
                sign = -1.0 if b2[i, j] == 1.0 else 1.0
                out[i, j] = 0.5 * fdiff[i] * sign * sig_abs
    return out


def _pairs_and_diff(dist, f, u):
    b1, b2 = _antithetic_pair(dist.logits, u)
    fdiff = evaluate(f, b1) - evaluate(f, b2)
    return b1, b2, fdiff


def _arm(dist, f, noise):
    u = noise["u"]
    _, _, fdiff = _pairs_and_diff(dist, f, u)
    return _arm_combine(fdiff, u)


def _disarm(dist, f, noise):
    u = noise["u"]
    b1, b2, fdiff = _pairs_and_diff(dist, f, u)
    return _disarm_combine(fdiff, b1, b2, dist.logits)


def _layout(dist, **_):
    return (NoiseField("u", tuple(dist.event_shape), "one uniform per bit, shared by the antithetic pair"),)


def _breakpoints(dist, **_):
    lo = special.expit(-dist.logits)
    hi = special.expit(dist.logits)
    pts = np.stack([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1)
    return {"u": np.where((pts > 0.0) & (pts < 1.0), pts, np.nan)}


register(
    EstimatorSpec(
        name="arm",
        families=("bernoulli",),
        unbiased=True,
        compute=_arm,
        shape_in_noise="piecewise_linear",
        layout=_layout,
        cost=lambda dist, **o: 2,
        breakpoints=_breakpoints,
        summary="(f(b¹) − f(b²)) (u − ½); Yin & Zhou 2019 (ARM), Theorem 1",
        doc=r"""ARM: Augment-REINFORCE-Merge (Yin & Zhou 2019, ICLR, Theorem 1 with logits).

.. math::  \hat g_i = \big(f(b^1) − f(b^2)\big)\,(u_i − \tfrac12), \qquad
           b^1 = 1[u > σ(−ℓ)],\; b^2 = 1[u < σ(ℓ)],\; u \sim U(0,1)^d .

Unbiased for ∂/∂ℓ of E[f(b)], b ~ Bernoulli(σ(ℓ)).  Bernoulli only.  Cost: 2.
Noise: ``u`` of shape ``(d,)``; the estimate is piecewise affine in each ``u_i``
with jumps at ``σ(−ℓ_i)`` and ``σ(ℓ_i)``.
""",
    )
)

register(
    EstimatorSpec(
        name="disarm",
        families=("bernoulli",),
        unbiased=True,
        compute=_disarm,
        shape_in_noise="piecewise_constant",
        layout=_layout,
        cost=lambda dist, **o: 2,
        breakpoints=_breakpoints,
        summary="½ (f(b¹) − f(b²)) (−1)^{b²} 1[b¹ ≠ b²] σ(|ℓ|); Dong, Mnih & Tucker 2020 (DisARM), eq. 5",
        doc=r"""DisARM (Dong, Mnih & Tucker 2020, NeurIPS): ARM Rao-Blackwellised over the
antithetic uniforms given the pair (b¹, b²).

.. math::  \hat g_i = \tfrac12 \big(f(b^1) − f(b^2)\big)\,(−1)^{b^2_i}\,
           1[b^1_i ≠ b^2_i]\; σ(|ℓ_i|)

with the same antithetic pair as ARM.  Unbiased; its variance never exceeds ARM's
(conditional expectation).  Bernoulli only.  Cost: 2.  Noise: ``u`` of shape ``(d,)``;
piecewise constant in each ``u_i`` with jumps at ``σ(−ℓ_i)`` and ``σ(ℓ_i)``.
""",
    )
)
