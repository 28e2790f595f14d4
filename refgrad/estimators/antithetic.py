"""Antithetic estimators for Bernoulli variables: ARM and DisARM.

Both draw one uniform vector ``u`` and evaluate f at the antithetic pair

    b¹ = 1[u > σ(−ℓ)],   b² = 1[u < σ(ℓ)]      (i.e. b¹ = 1[u > 1 − θ], b² = 1[u < θ]),

each marginally ~ Bernoulli(θ), θ = σ(ℓ).  Cost: 2 evaluations of f.

Complementary form.  ``σ(ℓ)`` rounds to 1 for ``ℓ ≳ 37`` (and ``1 − σ(ℓ)`` loses
its relative accuracy well before), while ``σ(−ℓ)`` keeps it.  The thresholds are
therefore compared on the accurate side of ``u``: for ``u ≤ ½``,
``b¹ = 1[u > σ(−ℓ)]`` and ``b² = 1[u < σ(ℓ)]``; for ``u > ½``, with ``ū = 1 − u``
(exact there), ``b¹ = 1[ū < σ(ℓ)]`` and ``b² = 1[ū > σ(−ℓ)]``; ARM's factor is
``u − ½`` or ``½ − ū`` in the same way.  Sampled uniforms are multiples of
``2**-53`` (:func:`refgrad.random.uniform`), for which this changes no estimate;
the exact-moments oracle hands the kernels nodes next to 1 through their accurate
complements (``noise["u_complement"]``, see :mod:`refgrad._moments.engine`), which is
how it integrates the pieces ``(σ(ℓ), 1)`` of width ``σ(−ℓ)`` exactly even where
no double lies inside them.
"""
import numpy as np
from scipy import special

from .._core.jit import jit
from .._core.special import _sigmoid
from ..objectives import evaluate
from ._base import EstimatorSpec, NoiseField, register
from .kernels.antithetic import antithetic_bits, arm_centred, arm_plan, disarm_plan, disarm_term

__all__ = []


@jit
def _antithetic_pair_kernel(logits, u, uc):
    """Antithetic bits (b1, b2) for logits (d,), uniforms u (n, d) and their complements uc = 1 − u."""
    n, d = u.shape
    b1 = np.empty((n, d))
    b2 = np.empty((n, d))
    for j in range(d):
        lo = _sigmoid(-logits[j])
        hi = _sigmoid(logits[j])
        for i in range(n):
            b1[i, j], b2[i, j] = antithetic_bits(u[i, j], uc[i, j], lo, hi)
    return b1, b2


def _antithetic_pair(logits, u, uc=None):
    """Antithetic bits (b1, b2) for logits (d,) and uniforms (n, d); ``uc = 1 − u`` if not given."""
    return _antithetic_pair_kernel(logits, u, 1.0 - u if uc is None else uc)


@jit
def _arm_combine_kernel(fdiff, u, uc):
    """ARM: (f(b1) − f(b2)) (u − 1/2), shape (n, d); u − 1/2 taken as 1/2 − uc above 1/2."""
    n, d = u.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = fdiff[i] * arm_centred(u[i, j], uc[i, j])
    return out


def _arm_combine(fdiff, u, uc=None):
    """ARM: (f(b1) − f(b2)) (u − 1/2), shape (n, d); ``uc = 1 − u`` if not given."""
    return _arm_combine_kernel(fdiff, u, 1.0 - u if uc is None else uc)


@jit
def _disarm_combine(fdiff, b1, b2, logits):
    """DisARM: ½ (f(b1) − f(b2)) (−1)^{b2} 1[b1 ≠ b2] σ(|ℓ|), shape (n, d)."""
    n, d = b1.shape
    out = np.empty((n, d))
    for j in range(d):
        sig_abs = _sigmoid(abs(logits[j]))
        for i in range(n):
            out[i, j] = disarm_term(fdiff[i], b1[i, j], b2[i, j], sig_abs)
    return out


def _complement(noise):
    """``1 − u``: from the oracle's accurate ``u_complement`` when present, else computed (exact for u ≥ ½)."""
    uc = noise.get("u_complement")
    return 1.0 - noise["u"] if uc is None else uc


def _pairs_and_diff(dist, f, u, uc):
    b1, b2 = _antithetic_pair_kernel(dist.logits, u, uc)
    with np.errstate(over="ignore", invalid="ignore"):  # inf here is refused by the callers, with a clear message
        fdiff = evaluate(f, b1) - evaluate(f, b2)
    return b1, b2, fdiff


def _arm(dist, f, noise):
    u, uc = noise["u"], _complement(noise)
    _, _, fdiff = _pairs_and_diff(dist, f, u, uc)
    return _arm_combine_kernel(fdiff, u, uc)


def _disarm(dist, f, noise):
    u, uc = noise["u"], _complement(noise)
    b1, b2, fdiff = _pairs_and_diff(dist, f, u, uc)
    return _disarm_combine(fdiff, b1, b2, dist.logits)


def _arm_features(dist, f, noise=None, b=None):
    """Separable form (:mod:`refgrad._moments.separable`): ``F = f_j(b¹_j) − f_j(b²_j)``, ``A = u_j − ½``."""
    u, uc = noise["u"], _complement(noise)
    _, _, fdiff = _pairs_and_diff(dist, f, u, uc)
    return fdiff[:, None], _arm_combine_kernel(np.ones(u.shape[0]), u, uc)[:, None]


def _disarm_features(dist, f, noise=None, b=None):
    """Separable form: ``F = f_j(b¹_j) − f_j(b²_j)``, ``A = ½ (−1)^{b²_j} 1[b¹_j ≠ b²_j] σ(|ℓ_j|)``."""
    u, uc = noise["u"], _complement(noise)
    b1, b2, fdiff = _pairs_and_diff(dist, f, u, uc)
    return fdiff[:, None], _disarm_combine(np.ones(u.shape[0]), b1, b2, dist.logits)[:, None]


def _layout(dist, **_):
    return (NoiseField("u", tuple(dist.event_shape), "one uniform per bit, shared by the antithetic pair"),)


def _breakpoints(dist, **_):
    """Jumps at σ(−ℓ) and σ(ℓ), with their exact complements σ(ℓ) and σ(−ℓ) (one of each pair is next to 1)."""
    lo = special.expit(-dist.logits)
    hi = special.expit(dist.logits)
    small, large = np.minimum(lo, hi), np.maximum(lo, hi)
    pts = np.stack([small, large], axis=1)
    comps = np.stack([large, small], axis=1)
    inside = (pts > 0.0) & (comps > 0.0)
    return {"u": np.where(inside, pts, np.nan), "u_complement": np.where(inside, comps, np.nan)}


register(
    EstimatorSpec(
        name="arm",
        families=("bernoulli",),
        unbiased=True,
        compute=_arm,
        fused=arm_plan,
        separable=lambda dist, **o: ((lambda j: dict(o)), _arm_features),
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
        fused=disarm_plan,
        separable=lambda dist, **o: ((lambda j: dict(o)), _disarm_features),
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
