"""Exact moments of reinmax and gapped_straight_through at extreme logits, against mpmath.

Both estimates are functions of the sample alone, so ``exact.moments`` enumerates the sample values.  The mean
``Σ_b P(b) ĝ(b)`` is a sum of the outcomes' terms; the variance was formed as ``E[ĝ²] − E[ĝ]²``, which cancels
when the variance is carried by a rare outcome and the common one's estimate is not 0 (reinmax at ℓ = −50,
τ = 10 gave a variance of 0 for 1.24e-22); the enumeration now sums centred squares in a second pass there
(``refgrad._moments.engine.CANCELLATION_RATIO``).

References, written here from the estimators' definitions (module docstrings of
:mod:`refgrad.estimators.reinmax` and :mod:`refgrad.estimators.gapped_straight_through`) in mpmath at 60 digits,
each probability and its complement from the logits (``1 − π_i = Σ_{j≠i} π_j``, ``−log σ(−a) = log1p(e^a)``), so
no term cancels:

* reinmax: ``ĝ = 2(diag π1 − π1π1ᵀ) g − ½(diag π0 − π0π0ᵀ) g``, ``π0 = softmax θ``, ``π1 = (D + softmax(θ/τ))/2``;
  for a bit the two-category form with ``g = ∂f/∂b``;
* gapped straight-through: ``z_i = max θ``, ``z_j = min(θ_j, max θ − κ)``, ``ĝ = s ⊙ (c − ⟨s, c⟩)/τ``,
  ``s = softmax(z/τ)``, ``κ = 1`` or ``−log(1 − π_i)/π_i`` (``gap="p"``; ``log1p(−π_i)`` for ``π_i ≤ 1/2``), and
  ``s ⊙ (c − ⟨s, c⟩)`` as ``s_k Σ_j s_j (c_k − c_j)`` (at 60 digits the plain form lost the 1e-304 terms); for a bit
  ``Δ = (2b − 1) max((2b − 1)ℓ, κ)`` and ``ĝ = σ'(Δ/τ)/τ · ∂f/∂b``.

Tolerance: relative ``1e-10`` on mean and variance per coordinate.  A reference below the smallest normal double
(2.2e-308) cannot be held to a relative tolerance: there the result must be within 1e-320 of it (at ℓ = ±700,
τ = 0.01 the variance of gapped straight-through is 2e-388, and the oracle gives 0, its value rounded to float64).
Worst relative error over the grid (``python -m pytest -q -p no:xdist tests/moments/test_extremes_enumerated.py -s -k
worst`` after the others): printed by ``test_worst_errors_table``.
"""
import math

import mpmath
import numpy as np
import pytest

from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import SquaredDistance

RTOL = 1e-10
T = 0.2
INF = np.inf
LOGITS = (0.0, 8.0, -8.0, 30.0, -30.0, 50.0, -50.0, 100.0, -100.0, 700.0, -700.0, INF, -INF)
TAUS = (0.01, 0.1, 0.5, 1.0, 10.0)
ROWS = ([30.0, 0.0, -30.0], [50.0, 0.0, -50.0], [0.0, -INF, 8.0], [100.0, 0.0, -100.0], [700.0, 1.0, -700.0],
        [INF, 0.0, 3.0], [INF, INF, 0.0])
TARGET = (0.2, 0.5, 0.3)
CASES = [("reinmax", {}), ("gapped_straight_through", {"gap": 1.0}), ("gapped_straight_through", {"gap": "p"})]
WORST = {}


def _mp_softmax(row):
    """Softmax of a row of mpf (−inf allowed; a row with +inf: uniform over its +inf entries)."""
    if any(x == mpmath.inf for x in row):
        top = [x == mpmath.inf for x in row]
        return [mpmath.mpf(1) / sum(top) if t else mpmath.mpf(0) for t in top]
    m = max(row)
    e = [mpmath.exp(x - m) if x != -mpmath.inf else mpmath.mpf(0) for x in row]
    s = sum(e)
    return [x / s for x in e]


def _vjp(p, g):
    """``(diag p − p pᵀ) g`` as ``p_k Σ_j p_j (g_k − g_j)``."""
    return [pk * sum(pj * (gk - gj) for pj, gj in zip(p, g)) for pk, gk in zip(p, g)]


def _row_estimate(name, theta, i, tau, gap):
    """The estimate for a categorical row ``theta`` (mpf) with sample ``i``, ``f = SquaredDistance(TARGET)``."""
    K = len(theta)
    D = [mpmath.mpf(int(k == i)) for k in range(K)]
    g = [2 * (D[k] - mpmath.mpf(TARGET[k])) for k in range(K)]
    p0 = _mp_softmax(theta)
    if name == "reinmax":
        pt = _mp_softmax([x / tau for x in theta])
        p1 = [(d + q) / 2 for d, q in zip(D, pt)]
        a, b = _vjp(p1, g), _vjp(p0, g)
        return [2 * x - y / 2 for x, y in zip(a, b)]
    if any(x == mpmath.inf for x in theta):
        return [mpmath.mpf(0)] * K  # locally constant
    top = max(theta)
    if gap == "p":  # −log(1 − π_i)/π_i, 1 − π_i from the other probabilities
        rest = sum(p0[k] for k in range(K) if k != i)
        kappa = (-mpmath.log1p(-p0[i]) if p0[i] <= 0.5 else -mpmath.log(rest)) / p0[i]
    else:
        kappa = mpmath.mpf(gap)
    z = [top if k == i else min(theta[k], top - kappa) for k in range(K)]
    return [x / tau for x in _vjp(_mp_softmax([x / tau for x in z]), g)]


def _bit_estimate(name, ell, b, tau, gap):
    """The estimate for one bit with logit ``ell`` (finite mpf) and sample ``b``, ``f = SquaredDistance(T)``."""
    g = 2 * (b - mpmath.mpf(T))
    a = ell if b else -ell  # the sampled value's logit-difference: P(b) = σ(a)
    if name == "reinmax":
        p1 = (b + 1 / (1 + mpmath.exp(-ell / tau))) / 2
        q1 = ((1 - b) + 1 / (1 + mpmath.exp(ell / tau))) / 2
        e = mpmath.exp(-abs(ell))
        return (2 * p1 * q1 - e / (1 + e) ** 2 / 2) * g
    kappa = mpmath.mpf(gap) if gap != "p" else mpmath.log1p(mpmath.exp(a)) * (1 + mpmath.exp(-a))
    s = 1 if b else -1
    delta = s * max(s * ell, kappa)
    e = mpmath.exp(-abs(delta / tau))
    return e / (1 + e) ** 2 / tau * g


def bit_reference(name, ell, tau, gap):
    if not math.isfinite(ell):
        return [mpmath.mpf(0)], [mpmath.mpf(0)]
    with mpmath.workdps(60):
        ell, tau = mpmath.mpf(ell), mpmath.mpf(tau)
        rows = [(1 / (1 + mpmath.exp(-ell if b else ell)), _bit_estimate(name, ell, b, tau, gap)) for b in (0, 1)]
        mean = sum(p * v for p, v in rows)
        return [mean], [sum(p * (v - mean) ** 2 for p, v in rows)]


def row_reference(name, row, tau, gap):
    with mpmath.workdps(60):
        theta = [mpmath.mpf(x) for x in row]
        tau = mpmath.mpf(tau)
        probs = _mp_softmax(theta)
        rows = [(probs[i], _row_estimate(name, theta, i, tau, gap)) for i in range(len(row)) if probs[i] > 0]
        K = len(row)
        mean = [sum(p * v[k] for p, v in rows) for k in range(K)]
        var = [sum(p * (v[k] - mean[k]) ** 2 for p, v in rows) for k in range(K)]
        return mean, var


def _close(got, ref):
    """Relative error, or 0/inf for a reference below the normal range (then within 1e-320)."""
    ref = mpmath.mpf(ref)
    if abs(ref) < np.finfo(float).tiny:
        return 0.0 if abs(mpmath.mpf(float(got)) - ref) <= 1e-320 else np.inf
    return float(abs(mpmath.mpf(float(got)) - ref) / abs(ref))


def _check(key, m, ref_mean, ref_var, where):
    mean, var = m.mean.ravel(), m.variance.ravel()
    errs = [(_close(a, b), "mean", j) for j, (a, b) in enumerate(zip(mean, ref_mean))]
    errs += [(_close(a, b), "variance", j) for j, (a, b) in enumerate(zip(var, ref_var))]
    worst = max(errs)
    WORST[key] = max(WORST.get(key, 0.0), worst[0])
    assert worst[0] <= RTOL, (f"{where}: {worst[1]} coordinate {worst[2]} relative error {worst[0]:.2e}; got "
                              f"{mean!r}, {var!r}; reference {[mpmath.nstr(x, 12) for x in ref_mean]}, "
                              f"{[mpmath.nstr(x, 12) for x in ref_var]}")


@pytest.mark.parametrize("name, kw", CASES, ids=["reinmax", "gst-1", "gst-p"])
@pytest.mark.parametrize("ell", LOGITS)
@pytest.mark.parametrize("tau", TAUS)
def test_bernoulli_moments(name, kw, ell, tau):
    m = exact.moments(name, Bernoulli([ell]), SquaredDistance(T), tau=tau, **kw)
    _check((name, str(kw), "bernoulli"), m, *bit_reference(name, ell, tau, kw.get("gap")),
           f"{name} {kw} Bernoulli({ell}) tau={tau}")


@pytest.mark.parametrize("name, kw", CASES, ids=["reinmax", "gst-1", "gst-p"])
@pytest.mark.parametrize("row", ROWS, ids=[str(r) for r in ROWS])
@pytest.mark.parametrize("tau", TAUS)
def test_categorical_moments(name, kw, row, tau):
    m = exact.moments(name, Categorical([row]), SquaredDistance(np.array([TARGET])), tau=tau, **kw)
    _check((name, str(kw), "categorical"), m, *row_reference(name, row, tau, kw.get("gap")),
           f"{name} {kw} Categorical({row}) tau={tau}")


def test_worst_errors_table():
    """Prints the worst relative errors of the cases run in this session (for the module docstring)."""
    for key, value in sorted(WORST.items()):
        print(key, f"{value:.1e}")
