r"""Exact expectation and gradient of multi-sample objectives by enumerating sample tuples.

The derivation is in :mod:`refgrad.multisample`.
"""
import numpy as np

from .._core.checks import InputTypeError, check_count, describe
from ..distributions import ENUMERATION_LIMIT
from ..objectives import Table
from ..objectives.multisample import IWAEBound, LogMeanExp, MultiSampleObjective
from .stream import gradient as _single_gradient

__all__ = ["expectation", "gradient", "gradient_parts", "conditional_tables"]

_CHUNK = 65536

def _check_inputs(dist, f, limit):
    if not isinstance(f, MultiSampleObjective):
        raise InputTypeError(f"f must be a MultiSampleObjective (e.g. LogMeanExp(log_weight, k)); got {describe(f)}")
    if not all(hasattr(dist, a) for a in ("support_size", "enumerate", "score", "param_shape", "event_shape")):
        raise ValueError(f"dist must be a refgrad distribution (Bernoulli or Categorical); got {describe(dist)}")
    if isinstance(f, IWAEBound):
        f._check_dist(dist)
    limit = check_count(limit, "limit")
    size = dist.support_size
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"dist must have a finite support to enumerate; got {describe(dist)}")
    if size > limit or size**f.k > limit:
        raise ValueError(
            f"the exact oracle of multi-sample objective {f.name!r} enumerates support**k = {size}**{f.k} = "
            f"{size ** f.k} sample tuples, beyond limit={limit}; pass a larger limit= (e.g. limit={size ** f.k}) or "
            "a smaller problem"
        )
    return limit


def conditional_tables(dist, f, limit=ENUMERATION_LIMIT):
    r"""``(probs, M)``: the support's probabilities ``(S,)`` and ``M[j, a] = E[L | b^j = config a]`` ``(k, S)``.

    ``M[j, a]`` sums ``Π_{i≠j} q(b^i) L(b^{1:k})`` over the tuples with ``b^j`` the ``a``-th
    configuration (``dist.enumerate`` order); 0 where ``q(a) = 0``.  Enumerates ``S^k`` tuples,
    refused beyond ``limit`` (``ValueError`` naming it).  For an :class:`IWAEBound` ``L`` is
    ``F_φ`` with ``q_φ = dist``.
    """
    probs, M, _ = _tables(dist, f, limit, weights=False)
    return probs, M


def _tables(dist, f, limit, weights):
    r"""``(probs, M, W)``: :func:`conditional_tables`, and the normalised weights' table ``W`` with ``weights``.

    ``W[a] = E[\bar w_1 | b^1 = config a]`` ``(S,)`` from the same enumeration for an :class:`IWAEBound`
    (else ``None``).
    """
    limit = _check_inputs(dist, f, limit)
    configs, probs = dist.enumerate(limit=limit)
    keep = np.flatnonzero(probs > 0.0)
    live, p = configs[keep], probs[keep]
    s, k = len(p), f.k
    prepared = f._prepare(live, dist)
    M = np.zeros((k, s))
    W = np.zeros(s) if weights else None
    powers = s ** np.arange(k - 1, -1, -1)
    for start in range(0, s**k, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, s**k))
        digits = (idx[:, None] // powers[None, :]) % s
        vals = f._tuple_values(prepared, digits)
        pd = p[digits]
        for j in range(k):
            others = np.prod(np.delete(pd, j, axis=1), axis=1)
            M[j] += np.bincount(digits[:, j], weights=others * vals, minlength=s)
            if weights and j == 0:
                wbar = IWAEBound.normalised_weights(prepared[digits])[:, 0]
                W += np.bincount(digits[:, 0], weights=others * wbar, minlength=s)
    full = np.zeros((k, probs.shape[0]))
    full[:, keep] = M
    if weights:
        W_full = np.zeros(probs.shape[0])
        W_full[keep] = W
        W = W_full
    return probs, full, W


def expectation(dist, f, limit=ENUMERATION_LIMIT):
    r"""Exact ``E[L(b^1, …, b^k)]`` over ``k`` i.i.d. samples of ``dist``, by enumerating ``S^k`` tuples.

    Parameters
    ----------
    dist : Bernoulli or Categorical (any refgrad distribution with a finite support)
    f : MultiSampleObjective
    limit : int
        Largest number of tuples ``S^k`` enumerated (default ``2**22``); beyond it ``ValueError``.

    Returns
    -------
    float
    """
    probs, M = conditional_tables(dist, f, limit)
    return float(np.dot(probs, M[0]))


def gradient(dist, f, limit=ENUMERATION_LIMIT):
    r"""Exact ``∇_φ E[L(b^1, …, b^k)]``, shape ``dist.param_shape``.

    ``Σ_j`` exact gradient of the single-sample table ``M_j(b) = E[L | b^j = b]`` (module
    docstring), each by :func:`refgrad.exact.gradient` (expected flip differences).  For an
    :class:`IWAEBound`, ``k`` times the exact gradient of the table ``M − W``, which includes the
    weights' dependence on ``φ`` (derivation in :class:`IWAEBound`; the two terms apart:
    :func:`gradient_parts`).
    """
    if isinstance(f, IWAEBound):
        score_part, weight_part = gradient_parts(dist, f, limit)
        return score_part + weight_part
    probs, M = conditional_tables(dist, f, limit)
    d = int(dist.param_shape[0])
    radix = int(dist.param_shape[1]) if len(dist.param_shape) == 2 else 2
    if isinstance(f, LogMeanExp):  # symmetric in its samples: M_1 = ... = M_k
        return f.k * _single_gradient(dist, Table(M[0].reshape((radix,) * d)))
    return sum(_single_gradient(dist, Table(row.reshape((radix,) * d))) for row in M)


def gradient_parts(dist, f, limit=ENUMERATION_LIMIT):
    r"""The two terms of the exact gradient of an :class:`IWAEBound` ``f`` under ``q_φ = dist``.

    Returns
    -------
    score_part : ndarray
        ``E[Σ_j F_φ(b^{1:k}) s(b^j)] = k ∇_φ Σ_b q_φ(b) M(b)`` with ``M`` fixed: the gradient of
        ``f.frozen(dist)``, i.e. of the bound with ``log q`` treated as a fixed log weight.
    weight_part : ndarray
        ``E[Σ_j ar w_j ∇_φ \log w_φ(b^j)] = −E[Σ_j ar w_j s(b^j)] = −k ∇_φ Σ_b q_φ(b) W(b)`` with
        ``W`` fixed: the term the frozen treatment leaves out (0 at ``k = 1``).

    Their sum is :func:`gradient` (``_single_gradient(dist, f)``); both by expected flip differences.
    """
    if not isinstance(f, IWAEBound):
        raise InputTypeError(f"f must be an IWAEBound(log_joint, k); got {describe(f)}")
    probs, M, W = _tables(dist, f, limit, weights=True)
    d = int(dist.param_shape[0])
    radix = int(dist.param_shape[1]) if len(dist.param_shape) == 2 else 2
    shape = (radix,) * d
    score_part = f.k * _single_gradient(dist, Table(M[0].reshape(shape)))
    weight_part = -f.k * _single_gradient(dist, Table(W.reshape(shape)))
    return score_part, weight_part
