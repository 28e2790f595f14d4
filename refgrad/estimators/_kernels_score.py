"""Fused row kernels of the score-function estimators (REINFORCE, RLOO, MuProp).

Each kernel computes, row by row, what the batched functions of
:mod:`refgrad.estimators.score` compute stage by stage, from the same
precomputed per-distribution numbers (thresholds, score values, normalised
logits), so that the two agree to rounding (tested in ``tests/test_fused.py``).
"""
import numpy as np

from .._jit import jit
from ._fused import FusedPlan, bernoulli_bits, categorical_one_hot, normalised_logits, objective_value

__all__ = ["reinforce_plan"]


def _bernoulli_tables(dist):
    """``σ(−ℓ)`` (the sampling threshold) and the score's values at b = 1 and b = 0: ``σ(−ℓ)`` and ``−σ(ℓ)``."""
    p1, p0 = dist._p1_p0()
    return np.ascontiguousarray(p0), np.ascontiguousarray(p0), np.ascontiguousarray(-p1)


def _categorical_tables(dist):
    """Normalised logits and the score's values at the chosen category and elsewhere, flat ``(d·K,)``."""
    lg = normalised_logits(np.ascontiguousarray(dist.logits))
    return lg, np.ascontiguousarray(dist._complement).reshape(-1), np.ascontiguousarray(-dist._probs).reshape(-1)


# ---------------------------------------------------------------------------- reinforce


@jit
def _reinforce_bernoulli(U, out, start, stop, thr, s1, s0, c, kind, par):
    d = thr.size
    z = np.empty(d)
    for i in range(start, stop):
        bernoulli_bits(U[i], 0, thr, z)
        fb = objective_value(kind, par, z)
        for j in range(d):
            out[i, j] = (fb - c[j]) * (s1[j] if z[j] == 1.0 else s0[j])


@jit
def _reinforce_categorical(U, out, start, stop, lg, s1, s0, c, kind, par):
    d, K = lg.shape
    z = np.empty(d * K)
    arg = np.empty(d, dtype=np.int64)
    for i in range(start, stop):
        categorical_one_hot(U[i], 0, lg, z, arg)
        fb = objective_value(kind, par, z)
        for e in range(d * K):
            out[i, e] = (fb - c[e]) * (s1[e] if z[e] == 1.0 else s0[e])


def reinforce_plan(dist, obj, row, shared, baseline):
    """Fused REINFORCE for Bernoulli and Categorical (any baseline option)."""
    size = int(np.prod(dist.param_shape))
    if baseline is None:
        c = np.zeros(size)
    elif isinstance(baseline, str):  # "optimal", computed once, exactly, as the batched path does
        from .score import optimal_baseline

        c = np.ascontiguousarray(optimal_baseline(dist, obj), dtype=np.float64).reshape(-1)
    else:
        c = np.full(size, float(baseline))
    kind, par = row
    if dist.family == "bernoulli":
        thr, s1, s0 = _bernoulli_tables(dist)
        return FusedPlan(_reinforce_bernoulli, (thr, s1, s0, c, kind, par), dist.d, size)
    if dist.family == "categorical":
        lg, s1, s0 = _categorical_tables(dist)
        return FusedPlan(_reinforce_categorical, (lg, s1, s0, c, kind, par), size, size)
    return None
