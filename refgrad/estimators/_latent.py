r"""The latent variable behind each discrete family's sample, its relaxation, and their derivatives.

The relaxation-based estimators (:mod:`refgrad.estimators.relaxed`) and REBAR / RELAX
(:mod:`refgrad.estimators.rebar`, :mod:`refgrad.estimators.relax`) share one latent
``z(φ, u)`` with ``dist.from_uniforms(u) == H(z)`` and ``∂z/∂φ = I``:

========================= ============================= ========================== ====================
family                    latent ``z(φ, u)``             ``b = H(z)``                relaxation
========================= ============================= ========================== ====================
Bernoulli (logits ℓ)      ``ℓ + log u − log(1 − u)``     ``1[z > 0]``                ``σ_τ(z)``
GaussianThreshold (μ)     ``μ + Φ⁻¹(u)``                 ``1[z ≥ 0]``                ``σ_τ(z)``
Categorical (logits ℓ)    ``ℓ + G(u)``, G Gumbel          ``onehot(argmax z)``        ``softmax_τ(z)``
========================= ============================= ========================== ====================

Each family owns its latent, relaxation and their derivatives (``_latent``, ``_relaxation``,
``_relaxation_vjp`` of :mod:`refgrad.distributions`); the functions here hand them over.  A categorical row
holding ``+inf`` logits is the limit of equal, growing logits (the
convention of :mod:`refgrad.random`): its latent uses the *effective* logits, 0 on the
``+inf`` entries and ``−inf`` elsewhere, so the relaxation and its derivatives are those of
the finite problem on the surviving categories -- a row with several ``+inf`` entries keeps
its finite, non-zero pathwise gradient, the limit of the estimates at large equal logits.
"""
import numpy as np
from scipy import special

from ..distributions import Categorical

__all__ = [
    "DISCRETE",
    "effective_logits",
    "latent_logits",
    "latent_dist",
    "latent",
    "relaxation",
    "relaxation_vjp",
    "conditional_slope",
    "conditional_gumbel_pull",
]

#: The families with a latent here.
DISCRETE = ("bernoulli", "categorical", "gaussian_threshold")


def _family(dist):
    """``dist`` if its family has a latent (Bernoulli, Categorical, GaussianThreshold), else ValueError."""
    if not hasattr(dist, "_latent"):
        raise ValueError(f"family {getattr(dist, 'family', None)!r} is not supported; supported families: "
                         f"{', '.join(DISCRETE)}")
    return dist


def effective_logits(logits):
    """Categorical logits with each row's ``+inf`` entries 0 and its other entries ``−inf`` (see the module)."""
    return Categorical._effective_logits(logits)


def latent_logits(dist):
    """The parameters the latent adds its noise to: a Categorical's effective logits, else ``dist.params``."""
    return dist._latent_logits() if hasattr(dist, "_latent_logits") else dist.params


def latent_dist(dist):
    """The distribution whose latent the moments integrate over (a Categorical with ``+inf`` logits: effective)."""
    return dist._latent_dist() if hasattr(dist, "_latent_dist") else dist


def latent(dist, u):
    """``z = φ + noise(u)`` with ``dist.from_uniforms(u) == H(z)``; shape of ``u``."""
    return _family(dist)._latent(u)


def relaxation(dist, z, tau):
    """``σ_τ(z)`` (bits) or ``softmax_τ(z)`` (categorical)."""
    return _family(dist)._relaxation(z, tau)


def relaxation_vjp(dist, z, tau, cotangent):
    """``J_τ(z)ᵀ c``, the VJP of the relaxation at the latent ``z`` (``J_τ`` is symmetric: also ``J_τ(z) c``)."""
    return _family(dist)._relaxation_vjp(z, tau, cotangent)


# ---------------------------------------------------------------------------- the conditional latent z̃ ~ z | b
#
# ∂z̃/∂φ written in terms of z̃ itself (the latent forms of refgrad.exact.moments; hand-derived):
#
# * a bit, b = 1 (z̃ > 0): z̃ = log(1 + v e^ℓ) − log(1 − v), so e^{z̃} − 1 = v (e^ℓ + e^{z̃}) and
#   ∂z̃/∂ℓ = v e^ℓ/(1 + v e^ℓ) = σ(ℓ)(1 − e^{−z̃});  b = 0 (z̃ < 0): ∂z̃/∂ℓ = σ(−ℓ)(1 − e^{z̃});
# * a categorical row with top z̃_b = T and d_k = z̃_k − T < 0: the untruncated Gumbel y_k of
#   refgrad.random.conditional_gumbel_vjp has σ(y_k − T) = e^{d_k}, so its VJP is
#   out_j = [j ≠ b] c_j (1 − e^{d_j}) + p_j Σ_k c_k e^{d_k}  (d_b = 0, p = softmax(ℓ)).


def conditional_slope(dist, b, zt):
    """``∂z̃/∂ℓ`` of the conditional logistic as a function of ``z̃`` and the bit ``b`` (see above)."""
    sign = np.where(b > 0.5, 1.0, -1.0)
    with np.errstate(invalid="ignore"):
        return special.expit(sign * dist.params[None]) * -np.expm1(-np.abs(zt))


def conditional_gumbel_pull(logits, index, zt, cotangent):
    """``(∂z̃/∂ℓ)ᵀ c`` of the conditional Gumbel as a function of ``z̃`` (any shift per row) and the argmax."""
    top = np.take_along_axis(zt, index[..., None], axis=-1)
    with np.errstate(invalid="ignore"):
        d = zt - top
    a = np.exp(d)
    p = special.softmax(logits, axis=-1)[None]
    p = np.where(np.isfinite(logits)[None], p, 0.0)
    inner = np.sum(np.where(a > 0.0, cotangent * a, 0.0), axis=-1, keepdims=True)
    own = np.zeros(zt.shape, dtype=bool)
    np.put_along_axis(own, index[..., None], True, axis=-1)
    return np.where(own, 0.0, -np.expm1(d) * cotangent) + p * inner
