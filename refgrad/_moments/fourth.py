r"""Exact fourth central moments of an estimator, per coordinate: :math:`μ_{4,j} = E[(ĝ_j − E ĝ_j)^4]`.

Used by :func:`refgrad.crosscheck.check_estimator` for the standard error of a sample variance,

.. math::  \operatorname{Var}(s_j^2) = \frac{1}{n}\Big(μ_{4,j} − \frac{n−3}{n−1} σ_j^4\Big)

(Cramér 1946, §27.4), in place of the sample fourth moment, which misses the events that carry a
rare-event variance and so makes a correct sample look many standard errors off; and for the
probability that carries the variance, :math:`p_j ≈ σ_j^4 / μ_{4,j}` (exact for a two-point law with a
rare point: kurtosis 1/p), which says when a variance cannot be tested at n.

The same oracles as :func:`refgrad.exact.moments` integrate :math:`(ĝ − μ)^{∘2}` (a vector of p
squares), whose second moment's diagonal is :math:`μ_4`: enumeration of the discrete noise (or of the
estimator's own outcomes), the latent-space quadrature of :func:`refgrad.exact.moments` for the relaxed
estimators that have one (accurate at every logit), otherwise tanh-sinh quadrature between the declared break
points (also for piecewise-linear estimates, whose fourth powers the two-point piecewise rule does not integrate
exactly).
Estimators integrated conditionally on repeated draws (``EstimatorSpec.conditional_draws``), with
``eta="optimal"``, or by the separable or Monte Carlo methods get ``None``: the caller then falls back
to the sample fourth moment and says so.
"""
import numpy as np

from ..distributions import ENUMERATION_LIMIT
from .base import DEFAULT_MAX_SECONDS
from .engine import _enumeration, _moments_by_integration
from .latent import LATENT_LEVEL, _latent_dim, _latent_form, latent_fourth_moments
from .plan import _default_level

__all__ = ["fourth_central_moments"]


def fourth_central_moments(spec, dist, f, opts, moments, max_seconds=DEFAULT_MAX_SECONDS):
    """``(μ4, how)``: the exact fourth central moment per coordinate (shape ``param_shape``), or ``(None, why)``.

    ``moments`` is the :class:`refgrad.base.Moments` of the same call (its mean centres the powers and its
    method chooses the oracle).  Never raises for a legal problem: a refusal of the oracle is returned as the
    reason.
    """
    method = getattr(moments, "method", None)
    if method not in ("enumeration", "piecewise", "quadrature"):
        return None, f"no exact fourth moment by the {method!r} method"
    if spec.control_variate is not None and isinstance(opts.get("eta"), str):
        return None, "no exact fourth moment with eta='optimal'"
    shape = tuple(dist.param_shape)
    mu = np.asarray(moments.mean, dtype=np.float64).reshape(1, -1)

    def centred_squares(g):
        d = np.asarray(g, dtype=np.float64).reshape(len(g), -1) - mu
        return d * d

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if method == "enumeration":
                if spec.outcomes is not None:
                    total = 0.0
                    m4 = np.zeros(mu.size)
                    for w, g in spec.outcomes(dist, f, ENUMERATION_LIMIT, **opts):
                        w = np.asarray(w, dtype=np.float64)
                        sq = centred_squares(g)
                        m4 += np.einsum("n,np->p", w, np.where(w[:, None] > 0, sq * sq, 0.0))
                        total += float(np.sum(w))
                else:
                    mean_sq, cov_sq, _, _ = _enumeration(
                        spec, dist, f, opts, ENUMERATION_LIMIT,
                        fn=lambda b: centred_squares(spec.given_samples(dist, f, b, **opts)))
                    m4 = np.diag(cov_sq) + mean_sq.ravel() ** 2
                how = "exact (enumeration)"
            elif method == "quadrature" and _latent_form(spec, dist, opts) is not None:
                form = _latent_form(spec, dist, opts)
                level = LATENT_LEVEL.get(_latent_dim(form[1]), 3)
                m4 = latent_fourth_moments(spec, dist, f, form, mu, level)
                if m4 is None:
                    return None, "no exact fourth moment for an average of conditional draws"
                how = "exact (quadrature over the latent)"
            else:
                if spec.conditional_draws is not None:
                    return None, "no exact fourth moment for an average of conditional draws"
                acc, _ = _moments_by_integration(
                    spec, dist, f, opts, lambda noise: centred_squares(spec.compute(dist, f, noise, **opts)),
                    "quadrature", _default_level(spec, dist, opts), max_seconds,
                    _default_level(spec, dist, opts))
                m4 = np.diag(acc.s2).copy()
                how = "exact (tanh-sinh quadrature)"
    except ValueError as err:  # the oracle's refusal (dimension, time budget): the caller falls back
        return None, f"exact fourth moment refused: {err}"
    if not np.all(np.isfinite(m4)):
        return None, "exact fourth moment overflowed"
    sigma4 = np.maximum(np.diag(np.asarray(moments.cov, dtype=np.float64)), 0.0) ** 2
    if np.any(m4 < sigma4 * (1.0 - 1e-6)):  # Jensen: E[d⁴] >= (E[d²])²; below it the integration is inaccurate
        j = int(np.argmax(sigma4 - m4))
        return None, (f"the integrated fourth moment {float(m4[j]):.3g} of coordinate {j} is below the squared "
                      f"variance {float(sigma4[j]):.3g} (impossible: the integration is inaccurate here)")
    return np.maximum(m4, 0.0).reshape(shape), how
