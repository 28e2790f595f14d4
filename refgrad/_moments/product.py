r"""Exact moments of score-function estimators on a :class:`~refgrad.distributions.Product`, by enumeration."""
import numpy as np

from .._core.checks import check_count, describe, first_index
from ..distributions import ENUMERATION_LIMIT
from .base import Moments
from .engine import _live_support

__all__ = ["moments"]


def moments(spec, dist, f, opts, method="auto", level=None, limit=ENUMERATION_LIMIT):
    r"""Exact moments of a score-function estimator on a :class:`Product`, by enumeration.

    The estimate depends on its noise only through ``k = spec.draws(**opts)`` i.i.d. points, so

    .. math::  E[ĝ] = \sum_{x_1..x_k} q(x_1)⋯q(x_k)\, g(x_1..x_k), \qquad
               E[ĝĝᵀ] = \sum q(x_1)⋯q(x_k)\, g gᵀ

    over the ``support**k`` tuples of positive probability (refused beyond ``limit``).  The reported
    ``error`` is ``64 eps max|E[ĝĝᵀ]|`` (rounding only), as for the single families.
    """
    if not isinstance(method, str) or method not in ("auto", "enumeration"):
        raise ValueError(f"method must be 'auto', 'enumeration' or 'monte_carlo' for a Product distribution (its "
                         f"exact moments are enumerated); got {describe(method)}")
    if level is not None:
        raise ValueError(f"level applies to quadrature only; a Product's exact moments are enumerated (level=None); "
                         f"got level={describe(level)}")
    if spec.given_samples is None:  # pragma: no cover - every estimator that accepts a Product has it
        raise ValueError(f"estimator {spec.name!r} has no exact moments on a Product distribution")
    limit = check_count(limit, "limit")
    configs, probs, k = _live_support(spec, dist, opts, limit)
    s = len(probs)
    total = s**k
    P = dist.param_shape[0]
    s1 = np.zeros(P)
    s2 = np.zeros((P, P))
    chunk = 65536
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, total, chunk):
            idx = np.arange(start, min(start + chunk, total))
            digits = (idx[:, None] // (s ** np.arange(k - 1, -1, -1))[None, :]) % s
            w = np.prod(probs[digits], axis=1)
            g = np.asarray(spec.given_samples(dist, f, np.ascontiguousarray(configs[digits]), **opts), dtype=float)
            g = g.reshape(g.shape[0], -1)
            if not np.isfinite(g).all():
                row, col = first_index(~np.isfinite(g))
                raise ValueError(
                    f"estimator {spec.name!r} returned a non-finite estimate ({float(g[row, col])!r}, coordinate "
                    f"{col}) on {dist!r}: the objective's values overflow in the estimator's arithmetic; rescale "
                    "the objective f")
            s1 += np.einsum("n,np->p", w, g)
            s2 += np.einsum("np,nq->pq", g * w[:, None], g)
    cov = s2 - np.outer(s1, s1)
    cov = 0.5 * (cov + cov.T)
    if not (np.isfinite(s1).all() and np.isfinite(cov).all()):
        raise ValueError(f"the exact moments of {spec.name!r} on {dist!r} overflowed (sums beyond the float64 "
                         "range); rescale the objective f")
    error = 64 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(s2))))
    return Moments(spec.name, opts, s1, cov, "enumeration", error, int(spec.cost(dist, **opts)), total)
