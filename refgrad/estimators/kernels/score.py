"""Fused row kernels of the score-function estimators (REINFORCE, RLOO, MuProp).

Each kernel computes, row by row, what the batched functions of
:mod:`refgrad.estimators.score` compute stage by stage, from the same
precomputed per-distribution numbers (thresholds, score values, normalised
logits), so that the two agree to rounding (tested in ``tests/estimators/test_fused.py``).
"""
import numpy as np

from ..._core.jit import jit, row_jit
from .._fused import FusedPlan, bernoulli_bits, categorical_one_hot, normalised_logits, objective_value

#: Block length below which :func:`pairwise_sum` adds left to right, and its unroll width (NumPy's).
_PW_SMALL = 8
#: Largest block :func:`pairwise_sum` adds with eight interleaved partial sums before splitting (NumPy's).
_PW_BLOCK = 128


@row_jit
def _pairwise_block(a, lo, n):
    """NumPy's pairwise sum of ``a[lo:lo + n]`` for ``n ≤ 128`` (one leaf of :func:`pairwise_sum`)."""
    if n < _PW_SMALL:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    top = n - n % 8
    while i < top:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@row_jit
def pairwise_sum(a, lo, n):
    r"""``a[lo] + ... + a[lo + n − 1]`` in the order of ``np.add.reduce`` along a contiguous axis.

    NumPy sums a contiguous float64 axis pairwise (Higham 2002, §4.2, "pairwise
    summation"): fewer than 8 terms left to right from 0; up to 128 terms in eight
    interleaved partial sums ``r_0..r_7`` combined as
    ``((r_0 + r_1) + (r_2 + r_3)) + ((r_4 + r_5) + (r_6 + r_7))`` plus the remainder left
    to right; a longer run is the sum of its first ``n₂ = ⌊n/2⌋ − (⌊n/2⌋ mod 8)`` terms
    and the rest, each summed the same way.  The same order here makes the row
    kernels' sums equal the batched path's bit for bit.  The split is walked with an
    explicit stack: a recursive function cannot be loaded back from Numba's cache.
    Runs of at most 128 terms (every row of the benchmarks) are summed inline; the
    split of longer runs is a separate, not inlined function (it allocates its stack).
    """
    if n <= _PW_BLOCK:
        return _pairwise_block(a, lo, n)
    return _pairwise_long(a, lo, n)


@jit
def _pairwise_long(a, lo, n):
    """:func:`pairwise_sum` of a run longer than 128 terms: the split walked with an explicit stack."""
    los = np.empty(64, dtype=np.int64)  # depth ≤ log2(n / 128) + 1 < 64
    ns = np.empty(64, dtype=np.int64)
    phase = np.zeros(64, dtype=np.int64)  # 0: not started, 1: left half pending, 2: right half pending
    left = np.empty(64)
    sp = 0
    los[0] = lo
    ns[0] = n
    ret = 0.0
    have = False  # ret holds the value of the frame just popped
    while True:
        if have:
            if sp < 0:
                return ret
            if phase[sp] == 1:
                left[sp] = ret
                phase[sp] = 2
                half = ns[sp] // 2
                half -= half % 8
                sp += 1
                los[sp] = los[sp - 1] + half
                ns[sp] = ns[sp - 1] - half
                phase[sp] = 0
                have = False
            else:
                ret = left[sp] + ret
                sp -= 1
            continue
        if ns[sp] <= _PW_BLOCK:
            ret = _pairwise_block(a, los[sp], ns[sp])
            sp -= 1
            have = True
            continue
        half = ns[sp] // 2
        half -= half % 8
        phase[sp] = 1
        sp += 1
        los[sp] = los[sp - 1]
        ns[sp] = half
        phase[sp] = 0

__all__ = ["FAMILIES", "reinforce_plan", "rloo_plan", "muprop_plan"]


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


#: The families with fused score-function kernels.
FAMILIES = ("bernoulli", "categorical")


def reinforce_plan(dist, row, baseline):
    """Fused REINFORCE for Bernoulli and Categorical, with the flat per-parameter baselines ``baseline``."""
    size = int(np.prod(dist.param_shape))
    kind, par = row
    if dist.family == "bernoulli":
        thr, s1, s0 = _bernoulli_tables(dist)
        return FusedPlan(_reinforce_bernoulli, (thr, s1, s0, baseline, kind, par), dist.d, size)
    if dist.family == "categorical":
        lg, s1, s0 = _categorical_tables(dist)
        return FusedPlan(_reinforce_categorical, (lg, s1, s0, baseline, kind, par), size, size)
    return None


# ---------------------------------------------------------------------------- rloo


@row_jit
def _rloo_combine(out, i, fb, w, z, s1, s0, m, E):
    """RLOO's combination for row ``i`` from the ``m`` values ``fb`` and samples ``z`` (``m·E``)."""
    total = pairwise_sum(fb, 0, m)  # fb.sum(axis=1)
    for j in range(m):
        loo = (total - fb[j]) / (m - 1)
        w[j] = (fb[j] - loo) / m
    for p in range(E):
        out[i, p] = 0.0
    for j in range(m):  # the einsum over samples, in sample order
        for p in range(E):
            e = j * E + p
            out[i, p] += w[j] * (s1[p] if z[e] == 1.0 else s0[p])


@jit
def _rloo_bernoulli(U, out, start, stop, thr, s1, s0, m, kind, par):
    d = thr.size
    z = np.empty(m * d)
    fb = np.empty(m)
    w = np.empty(m)
    for i in range(start, stop):
        for j in range(m):
            zj = z[j * d:(j + 1) * d]
            bernoulli_bits(U[i], j * d, thr, zj)
            fb[j] = objective_value(kind, par, zj)
        _rloo_combine(out, i, fb, w, z, s1, s0, m, d)


@jit
def _rloo_categorical(U, out, start, stop, lg, s1, s0, m, kind, par):
    d, K = lg.shape
    E = d * K
    z = np.empty(m * E)
    arg = np.empty(d, dtype=np.int64)
    fb = np.empty(m)
    w = np.empty(m)
    for i in range(start, stop):
        for j in range(m):
            zj = z[j * E:(j + 1) * E]
            categorical_one_hot(U[i], j * E, lg, zj, arg)
            fb[j] = objective_value(kind, par, zj)
        _rloo_combine(out, i, fb, w, z, s1, s0, m, E)


def rloo_plan(dist, obj, row, shared, m):
    """Fused RLOO for Bernoulli and Categorical (any ``m``): the ``m`` samples of a row are its ``m`` event blocks."""
    size = int(np.prod(dist.param_shape))
    kind, par = row
    m = int(m)
    if dist.family == "bernoulli":
        thr, s1, s0 = _bernoulli_tables(dist)
        return FusedPlan(_rloo_bernoulli, (thr, s1, s0, m, kind, par), m * dist.d, size)
    if dist.family == "categorical":
        lg, s1, s0 = _categorical_tables(dist)
        return FusedPlan(_rloo_categorical, (lg, s1, s0, m, kind, par), m * size, size)
    return None


# ---------------------------------------------------------------------------- muprop


@row_jit
def _muprop_combine(out, i, z, fb, tmp, s1, s0, f0, g0, vj):
    """``(f(b) − f0 − Σ centred(b)·g0) s + vjp(g0)`` for row ``i`` (centred(b) is the score here)."""
    P = z.size
    for e in range(P):
        tmp[e] = (s1[e] if z[e] == 1.0 else s0[e]) * g0[e]
    diff = fb - (f0 + pairwise_sum(tmp, 0, P))
    for e in range(P):
        out[i, e] = diff * (s1[e] if z[e] == 1.0 else s0[e]) + vj[e]


@jit
def _muprop_bernoulli(U, out, start, stop, thr, s1, s0, f0, g0, vj, kind, par):
    d = thr.size
    z = np.empty(d)
    tmp = np.empty(d)
    for i in range(start, stop):
        bernoulli_bits(U[i], 0, thr, z)
        _muprop_combine(out, i, z, objective_value(kind, par, z), tmp, s1, s0, f0, g0, vj)


@jit
def _muprop_categorical(U, out, start, stop, lg, s1, s0, f0, g0, vj, kind, par):
    d, K = lg.shape
    z = np.empty(d * K)
    tmp = np.empty(d * K)
    arg = np.empty(d, dtype=np.int64)
    for i in range(start, stop):
        categorical_one_hot(U[i], 0, lg, z, arg)
        _muprop_combine(out, i, z, objective_value(kind, par, z), tmp, s1, s0, f0, g0, vj)


def muprop_plan(dist, row, f0, g0, vj):
    """Fused MuProp for Bernoulli and Categorical from ``f(z̄)``, ``∇f(z̄)`` and ``vjp(∇f(z̄))`` (flat) at z̄ = E[b]."""
    if dist.family not in FAMILIES:
        return None
    size = int(np.prod(dist.param_shape))
    kind, par = row
    if dist.family == "bernoulli":
        thr, s1, s0 = _bernoulli_tables(dist)
        return FusedPlan(_muprop_bernoulli, (thr, s1, s0, f0, g0, vj, kind, par), dist.d, size)
    lg, s1, s0 = _categorical_tables(dist)
    return FusedPlan(_muprop_categorical, (lg, s1, s0, f0, g0, vj, kind, par), size, size)
