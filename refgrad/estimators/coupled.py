r"""Categorical DisARM-type estimators from the stick-breaking coupling.

Dong, Mnih & Tucker, "Coupled gradient estimators for discrete latent variables",
NeurIPS 2021.  Each of the ``d`` independent K-way variables (logits ``ℓ_i``,
``p_i = softmax(ℓ_i)``) is written as ``K − 1`` binary *stick* decisions,

.. math::  c_{ij} \sim \mathrm{Bernoulli}(σ(η_{ij})), \quad
           σ(η_{ij}) = \frac{p_{ij}}{T_{ij}}, \quad T_{ij} = \sum_{m ≥ j} p_{im}, \qquad
           b_i = \min\{j : c_{ij} = 1\} \; (K − 1 \text{ if none}),

so ``η_{ij} = ℓ_{ij} − \log\sum_{m>j} e^{ℓ_{im}}`` (categories indexed ``0 … K − 1``, sticks
``0 … K − 2``; the sticks are independent bits, of which ``b_i`` reads the first one that
is set).  One uniform ``u_{ij}`` per stick drives the antithetic pair of DisARM
(:mod:`refgrad.estimators.antithetic`), ``c¹_{ij} = 1[u_{ij} > 1 − σ(η_{ij})]``,
``c²_{ij} = 1[u_{ij} < σ(η_{ij})]``, each chain giving a category (``b¹_i``, ``b²_i``) with
the exact marginal ``p_i``.  Cost of every estimator here: **2** evaluations of f,
``f(b¹)`` and ``f(b²)``; ``Δ = f(b¹) − f(b²)``.  Noise: ``u`` of shape ``(d, K − 1)``, one
uniform per stick and nothing else.

``disarm_stick_breaking`` (paper: DisARM applied to the binary stick-breaking
reparametrisation).  DisARM on the ``d (K − 1)`` stick bits gives, for stick logit ``η_{ij}``,

.. math::  γ_{ij} = \tfrac12\,Δ\,(−1)^{c²_{ij}}\,1[c¹_{ij} ≠ c²_{ij}]\,σ(|η_{ij}|),

an unbiased estimate of ``∂E f/∂η_{ij}``; the chain rule ``∂η_{ij}/∂ℓ_{ik} = δ_{jk} −
1[k > j]\, p_{ik}/T_{i,j+1}`` maps it to the logits:

.. math::  \hat g_{ik} = γ_{ik}\,1[k < K − 1] \;−\; p_{ik} \sum_{j<k} γ_{ij} / T_{i,j+1}.

``disarm_stick_breaking_rb``: stick ``j`` of variable ``i`` affects f only if one of the
two chains *reaches* it (neither stopped at an earlier stick).  If neither does, ``Δ``
does not depend on ``u_{ij}`` and ``E[(−1)^{c²}1[c¹ ≠ c²]] = P(0, 1) − P(1, 0) = 0`` over
``u_{ij}`` (both are ``min(σ, 1 − σ)``), so conditioning on the other uniforms replaces
``γ_{ij}`` by ``γ_{ij}\,1[\text{stick } j \text{ reached by } b¹ \text{ or } b²]``.  A
conditional expectation: unbiased, and every coordinate's variance is at most the
plain form's (tested exactly).  Same noise and cost.

``disarm_stick_breaking_iw`` (paper: the importance-weighted estimator of a coupling).
For any coupling ``q_c(b_i, b̃_i)`` of ``p_i`` with itself, reweighting variable ``i``'s pair to
independence gives the unbiased

.. math::  \hat g_{ik} = \tfrac12\,Δ\,(1[b¹_i = k] − 1[b²_i = k])\,
           \frac{p_{i b¹_i}\, p_{i b²_i}}{q_c(b¹_i, b²_i)}

(``∇_{ℓ_i}\log p_i(b) = e_b − p_i``, so the ``p_i`` terms cancel).  For the stick-breaking
coupling and ``m = \min(b¹_i, b²_i) < M = \max(b¹_i, b²_i)``: both chains continue at sticks
``j < m`` (probability ``(1 − σ_j − σ_j)^+``), one stops at ``m`` (``min(σ_m, 1 − σ_m)``) and
the other alone stops at ``M`` (``p_M / T_{m+1}``), which simplifies with
``p_m = T_m σ_m``, ``T_{m+1} = T_m (1 − σ_m)`` and ``T_m = \prod_{j<m}(1 − σ_j)`` to

.. math::  \frac{p_m p_M}{q_c} = σ(|η_m|) \prod_{j<m} \frac{(1 − σ_j)^2}{1 − 2σ_j}.

**Support, and the order of the sticks** (a point the construction leaves open).  The
reweighting is unbiased only if ``q_c(a, b) > 0`` for every pair ``a ≠ b`` of possible
categories.  Both chains continue past stick ``j`` with probability ``(1 − 2σ_j)^+``, which is
0 when ``σ_j > ½``: then no pair with both categories above ``j`` ever occurs, and with the
given order the estimator is **biased** -- on ``ℓ = (1.5, 0.2, −0.4)``, ``f = Table((0, 1, 3))``
its exact mean is (−0.35663, 0.13476, 0.22187) against the gradient (−0.35663, 0.09445,
0.26218).  This form therefore breaks the sticks in **increasing order of probability**
(stable sort), where ``p_j ≤ p_{j+1} ≤ T_{j+1}``, i.e. ``σ_j ≤ ½``, with equality at ``j ≤ K − 3``
only when later categories have probability 0 -- then every pair of possible categories
has positive probability.  The order is a function of ``ℓ`` held fixed, not differentiated.
The estimate depends on the uniforms only through the two categories; neither this form
nor ``disarm_stick_breaking_rb`` dominates the other: on ``ℓ = (0, 1, −1)``,
``f = Table((0, 1, 3))`` their exact variances per logit are (0.09792, 0.16725, 0.16467) and
(0.08397, 0.17478, 0.19348).

**At equal cost** (all cost 2), summed exact variance × cost on ``ℓ = ((1.5, 0.2, −0.4, −1),
(0.3, −0.5, 1, 0))``, ``f = Table(z²)``, ``z`` a (4, 4) standard normal table (seed 11):
plain 1.96259, RB 1.55765, IW 1.46586, REINFORCE (cost 1) 1.38530, RLOO (m = 2) 1.71252
(tested): on this problem the RB and IW forms beat RLOO at equal cost, but not REINFORCE
without a baseline.

**K = 2** is DisARM: one stick, ``η = ℓ_0 − ℓ_1``, category 0 ↔ bit 1; on the same
uniforms ``ĝ_{·0} = −ĝ_{·1}`` = DisARM's estimate for ``Bernoulli(ℓ_0 − ℓ_1)`` (all three
forms; tested to 1e-14).

**Source check and ambiguity.**  The stick-breaking coupling depends on the order of the
categories, which the paper's construction leaves to the user; the plain and RB forms
use the given order (unbiased in every order), and their variances depend on it: on the problem above the total
exact variance of the plain form is 0.45223 in the order (0, 1, 2), 0.30613 in (1, 0, 2)
and 0.48017 in (2, 1, 0) (the RB form equals the plain one on these three: a stick is
skipped by both chains only where ``σ(η_0) > ½``).  The formulas above were derived here
from the construction and are checked against ``exact.gradient`` (exact moments by
piecewise integration over the ``d (K − 1)`` uniforms, to 1e-12); equation numbers are not
cited because only the paper's abstract could be consulted when this module was written.

Exact moments: every estimate is piecewise constant in each ``u_{ij}`` with jumps at
``σ(η_{ij})`` and ``1 − σ(η_{ij})`` (declared with their accurate complements), so
``exact.moments`` integrates exactly (method "piecewise", at most 10 noise dimensions:
``d (K − 1) ≤ 10``).  Beyond that, for a separable f (:mod:`refgrad._moments.separable`, method
"separable"): every form is ``Δ`` times a coefficient of variable ``i``'s own sticks, so
``L = 1``, ``F_i = f_i(b¹_i) − f_i(b²_i)`` and ``A_i`` = the estimate with ``Δ`` replaced by 1,
integrated piecewise over one variable's ``K − 1`` uniforms.
"""
import numpy as np

from .._core.jit import jit
from ..objectives import evaluate
from ._base import EstimatorSpec, NoiseField, register
from .antithetic import _complement
from .kernels.antithetic import antithetic_bits, disarm_term

__all__ = ["stick_parameters", "stick_pairs"]

#: Estimator forms, in the order of their names.
PLAIN, RAO_BLACKWELL, IMPORTANCE = 0, 1, 2


def stick_order(dist, form):
    """Per variable, the categories in stick order, shape (d, K): as given, or by increasing probability (IW)."""
    d, K = dist.d, dist.K
    if form != IMPORTANCE:
        return np.broadcast_to(np.arange(K), (d, K)).copy()
    return np.argsort(np.asarray(dist.probs), axis=1, kind="stable")


def stick_parameters(dist, order=None):
    r"""``(hi, lo, inv_tail, p)`` of a Categorical: ``hi = σ(η)``, ``lo = 1 − σ(η)``, ``1/T_{j+1}``.

    With ``order`` (d, K) the categories are taken in that order (``p`` is returned permuted).

    ``hi_{ij} = p_{ij}/T_{ij}`` and ``lo_{ij} = T_{i,j+1}/T_{ij}`` (both accurate: ``T`` is a
    suffix sum of positive terms), shape ``(d, K − 1)``; ``inv_tail_{ij} = 1/T_{i,j+1}`` (0
    where ``T_{i,j+1} = 0``).  A stick with ``T_{ij} = 0`` is never reached; it gets
    ``hi = 1, lo = 0``.
    """
    p = np.array(dist.probs, dtype=float)
    if order is not None:
        p = np.take_along_axis(p, order, axis=1)
    tails = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # T_j = Σ_{m ≥ j} p_m
    T, T_next = tails[:, :-1], tails[:, 1:]
    alive = T > 0.0
    safe = np.where(alive, T, 1.0)
    hi = np.where(alive, p[:, :-1] / safe, 1.0)
    lo = np.where(alive, T_next / safe, 0.0)
    inv_tail = np.where(T_next > 0.0, 1.0 / np.where(T_next > 0.0, T_next, 1.0), 0.0)
    return hi, lo, inv_tail, p


@jit
def stick_pairs(u, uc, hi, lo):
    """Stick bits ``c¹, c²`` (n, d, K − 1), categories ``k¹, k²`` (n, d) and ``reach`` (n, d, K − 1).

    ``reach[i, v, j] = 1`` when at least one chain has not stopped before stick ``j``.
    """
    n, d, m = u.shape
    c1 = np.empty((n, d, m))
    c2 = np.empty((n, d, m))
    reach = np.empty((n, d, m))
    k1 = np.empty((n, d), np.int64)
    k2 = np.empty((n, d), np.int64)
    for i in range(n):
        for v in range(d):
            a1 = m
            a2 = m
            for j in range(m):
                b1, b2 = antithetic_bits(u[i, v, j], uc[i, v, j], lo[v, j], hi[v, j])
                c1[i, v, j] = b1
                c2[i, v, j] = b2
                reach[i, v, j] = 1.0 if (a1 == m or a2 == m) else 0.0
                if a1 == m and b1 == 1.0:
                    a1 = j
                if a2 == m and b2 == 1.0:
                    a2 = j
            k1[i, v] = a1
            k2[i, v] = a2
    return c1, c2, reach, k1, k2


@jit
def _stick_combine(fdiff, c1, c2, reach, hi, lo, inv_tail, p, rb):
    """Plain (rb = False) or reach-masked (rb = True) stick DisARM, chain-ruled to the logits."""
    n, d, m = c1.shape
    out = np.empty((n, d, m + 1))
    for i in range(n):
        for v in range(d):
            acc = 0.0  # Σ_{j<k} γ_j / T_{j+1}
            for k in range(m + 1):
                gamma = 0.0
                if k < m and (reach[i, v, k] == 1.0 or not rb):
                    gamma = disarm_term(fdiff[i], c1[i, v, k], c2[i, v, k], max(hi[v, k], lo[v, k]))
                out[i, v, k] = gamma - p[v, k] * acc
                if k < m:
                    acc += gamma * inv_tail[v, k]
    return out


@jit
def _importance_combine(fdiff, k1, k2, hi, lo, order):
    """½ Δ (e_{k¹} − e_{k²}) σ(|η_m|) Π_{j<m} lo_j² / (lo_j − hi_j), m = min(k¹, k²) (stick order)."""
    n, d = k1.shape
    K = hi.shape[1] + 1
    out = np.zeros((n, d, K))
    for i in range(n):
        for v in range(d):
            a, b = k1[i, v], k2[i, v]
            if a == b:
                continue
            m = min(a, b)
            w = max(hi[v, m], lo[v, m])
            for j in range(m):
                w *= lo[v, j] * (lo[v, j] / (lo[v, j] - hi[v, j]))
            half = 0.5 * fdiff[i] * w
            out[i, v, order[v, a]] = half
            out[i, v, order[v, b]] = -half
    return out


def _one_hot(k, K):
    return np.eye(K)[k]


def _coupled_parts(dist, f, u, uc, form):
    """``Δ = f(b¹) − f(b²)`` (n,) and ``combine(Δ) -> (n, d, K)``, the form's estimate as a function of Δ."""
    order = stick_order(dist, form)
    hi, lo, inv_tail, p = stick_parameters(dist, order)
    c1, c2, reach, k1, k2 = stick_pairs(u, uc, hi, lo)
    K = dist.K
    rows = np.arange(dist.d)[None, :]
    with np.errstate(over="ignore", invalid="ignore"):  # inf here is refused by check_result
        fdiff = evaluate(f, _one_hot(order[rows, k1], K)) - evaluate(f, _one_hot(order[rows, k2], K))

    def combine(delta):
        if form == IMPORTANCE:
            return _importance_combine(delta, k1, k2, hi, lo, order)
        return _stick_combine(delta, c1, c2, reach, hi, lo, inv_tail, p, form == RAO_BLACKWELL)

    return fdiff, combine


def coupled_estimates(dist, f, u, uc, form):
    """Estimates ``(n, d, K)`` of the given ``form`` (PLAIN, RAO_BLACKWELL, IMPORTANCE) from uniforms ``u``."""
    fdiff, combine = _coupled_parts(dist, f, u, uc, form)
    return combine(fdiff)


def _features(form):
    """Separable form (:mod:`refgrad._moments.separable`).

    ``L = 1``, ``F = f_j(b¹_j) − f_j(b²_j)``, ``A`` = the estimate at Δ = 1.

    Every form is ``Δ`` times a coefficient that depends on variable ``j``'s own sticks only
    (its pair of categories, its reach mask, its stick order), and for a separable f
    ``Δ = Σ_r (f_r(b¹_r) − f_r(b²_r))``.
    """
    def features(dist, f, noise=None, b=None):
        u = noise["u"]
        fdiff, combine = _coupled_parts(dist, f, u, _complement(noise), form)
        return fdiff[:, None], combine(np.ones(u.shape[0]))[:, None]

    return features


def _separable(form):
    features = _features(form)
    return lambda dist, **o: ((lambda j: dict(o)), features)


def _layout(dist, **_):
    return (NoiseField("u", (dist.d, dist.K - 1), "one uniform per stick, shared by the antithetic pair"),)


def _breakpoints(dist, form):
    """Jumps at σ(η) and 1 − σ(η) of every stick (in the form's stick order), with their exact complements."""
    hi, lo, _, _ = stick_parameters(dist, stick_order(dist, form))
    small, large = np.minimum(lo, hi), np.maximum(lo, hi)
    pts = np.stack([small, large], axis=-1)
    comps = np.stack([large, small], axis=-1)
    inside = (pts > 0.0) & (comps > 0.0)
    return {"u": np.where(inside, pts, np.nan), "u_complement": np.where(inside, comps, np.nan)}


def _compute(form):
    def compute(dist, f, noise):
        return coupled_estimates(dist, f, noise["u"], _complement(noise), form)

    return compute


_SUMMARIES = {
    "disarm_stick_breaking": "DisARM on the K − 1 stick-breaking bits, chain-ruled to the logits; "
    "Dong, Mnih & Tucker 2021 (DisARM-SB)",
    "disarm_stick_breaking_rb": "DisARM on the stick-breaking bits, sticks neither chain reaches dropped "
    "(Rao-Blackwellised); Dong, Mnih & Tucker 2021",
    "disarm_stick_breaking_iw": "½ Δ (e_{b¹} − e_{b²}) p(b¹)p(b²)/q_c(b¹, b²) with the stick-breaking coupling "
    "q_c (importance-weighted); Dong, Mnih & Tucker 2021",
}

for _form, _name in enumerate(_SUMMARIES):
    register(
        EstimatorSpec(
            name=_name,
            doc=__doc__,
            families=("categorical",),
            unbiased=True,
            compute=_compute(_form),
            shape_in_noise="piecewise_constant",
            layout=_layout,
            cost=lambda dist, **o: 2,
            breakpoints=lambda dist, _form=_form, **_: _breakpoints(dist, _form),
            separable=_separable(_form),
            summary=_SUMMARIES[_name],
        )
    )
