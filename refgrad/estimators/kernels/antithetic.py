r"""Fused row kernels of the antithetic estimators (ARM, DisARM), Bernoulli only.

One row of ``d`` uniforms ``u`` gives the antithetic pair

    b¹ = 1[u > σ(−ℓ)],   b² = 1[u < σ(ℓ)],

compared on the accurate side of ``u`` (``ū = 1 − u`` for ``u > ½``; see
:mod:`refgrad.estimators.antithetic`), the two values ``f(b¹)``, ``f(b²)`` and

* ARM (Yin & Zhou 2019, Theorem 1): ``ĝ_j = (f(b¹) − f(b²)) (u_j − ½)``;
* DisARM (Dong, Mnih & Tucker 2020, eq. 5):
  ``ĝ_j = ½ (f(b¹) − f(b²)) (−1)^{b²_j} 1[b¹_j ≠ b²_j] σ(|ℓ_j|)``.

The scalar helpers below are the only copy of these per-entry formulas: the batched
kernels of :mod:`refgrad.estimators.antithetic` call them too, and the thresholds
``σ(∓ℓ)``, ``σ(|ℓ|)`` are computed by the same :func:`refgrad.random._sigmoid`, so
the fused estimates are bit-identical to the batched ones (tested in
``tests/estimators/test_fused.py``).  The complement ``ū`` is ``1 − u`` computed in float64, as
the batched path computes it when no ``u_complement`` is given (only the
exact-moments oracle passes one, and it calls the batched function directly).
"""
import numpy as np

from ..._core.jit import jit
from ..._core.special import _sigmoid
from .._fused import FusedPlan, objective_value

__all__ = ["arm_plan", "disarm_plan"]


# ----------------------------------------------------------------------------- scalar helpers


@jit
def antithetic_bits(x, xc, lo, hi):
    """``(b¹, b²)`` for one uniform ``x``, its complement ``xc = 1 − x``, ``lo = σ(−ℓ)`` and ``hi = σ(ℓ)``.

    ``b¹ = 1[x > lo]``, ``b² = 1[x < hi]`` for ``x ≤ ½``; ``b¹ = 1[xc < hi]``,
    ``b² = 1[xc > lo]`` above ½ (the same events, compared where ``xc`` is exact).
    """
    if x <= 0.5:
        return (1.0 if x > lo else 0.0), (1.0 if x < hi else 0.0)
    return (1.0 if xc < hi else 0.0), (1.0 if xc > lo else 0.0)


@jit
def arm_centred(x, xc):
    """ARM's factor ``x − ½``, taken as ``½ − xc`` above ½."""
    return x - 0.5 if x <= 0.5 else 0.5 - xc


@jit
def disarm_term(fdiff, b1, b2, sig_abs):
    """DisARM's entry ``½ fdiff (−1)^{b²} 1[b¹ ≠ b²] σ(|ℓ|)``."""
    if b1 == b2:
        return 0.0
    sign = -1.0 if b2 == 1.0 else 1.0
    return 0.5 * fdiff * sign * sig_abs


@jit
def antithetic_tables(logits):
    """``σ(−ℓ)``, ``σ(ℓ)`` and ``σ(|ℓ|)`` of logits (d,), by :func:`refgrad.random._sigmoid`."""
    d = logits.size
    lo = np.empty(d)
    hi = np.empty(d)
    sig_abs = np.empty(d)
    for j in range(d):
        lo[j] = _sigmoid(-logits[j])
        hi[j] = _sigmoid(logits[j])
        sig_abs[j] = _sigmoid(abs(logits[j]))
    return lo, hi, sig_abs


# ----------------------------------------------------------------------------- row kernels


@jit
def _pair_row(u, lo, hi, z1, z2):
    """The antithetic pair of one row ``u`` into ``z1``, ``z2``."""
    for j in range(lo.size):
        z1[j], z2[j] = antithetic_bits(u[j], 1.0 - u[j], lo[j], hi[j])


@jit
def _arm_bernoulli(U, out, start, stop, lo, hi, kind, par):
    d = lo.size
    z1 = np.empty(d)
    z2 = np.empty(d)
    for i in range(start, stop):
        u = U[i]
        _pair_row(u, lo, hi, z1, z2)
        fdiff = objective_value(kind, par, z1) - objective_value(kind, par, z2)
        for j in range(d):
            out[i, j] = fdiff * arm_centred(u[j], 1.0 - u[j])


@jit
def _disarm_bernoulli(U, out, start, stop, lo, hi, sig_abs, kind, par):
    d = lo.size
    z1 = np.empty(d)
    z2 = np.empty(d)
    for i in range(start, stop):
        u = U[i]
        _pair_row(u, lo, hi, z1, z2)
        fdiff = objective_value(kind, par, z1) - objective_value(kind, par, z2)
        for j in range(d):
            out[i, j] = disarm_term(fdiff, z1[j], z2[j], sig_abs[j])


# ----------------------------------------------------------------------------- plans


def arm_plan(dist, obj, row, shared):
    """Fused ARM for Bernoulli (None for other families: the batched path)."""
    if dist.family != "bernoulli":
        return None
    lo, hi, _ = antithetic_tables(np.ascontiguousarray(dist.logits, dtype=np.float64))
    kind, par = row
    return FusedPlan(_arm_bernoulli, (lo, hi, kind, par), dist.d, dist.d)


def disarm_plan(dist, obj, row, shared):
    """Fused DisARM for Bernoulli (None for other families: the batched path)."""
    if dist.family != "bernoulli":
        return None
    lo, hi, sig_abs = antithetic_tables(np.ascontiguousarray(dist.logits, dtype=np.float64))
    kind, par = row
    return FusedPlan(_disarm_bernoulli, (lo, hi, sig_abs, kind, par), dist.d, dist.d)
