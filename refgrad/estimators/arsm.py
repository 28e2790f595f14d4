r"""ARSM: the augment-REINFORCE-swap-merge estimator for categorical variables.

Yin, Yue & Zhou, "ARSM: Augment-REINFORCE-Swap-Merge Estimator for Gradient
Backpropagation Through Categorical Variables", ICML 2019.  Derived here step by step
for one C-way variable with logits ``φ`` (``q(z = i) = softmax(φ)_i``):

* **Augment.**  With ``E_i ~ Exp(1)`` i.i.d., ``S = Σ_i E_i`` and ``π = E / S ~ Dir(1_C)``
  (independent of ``S ~ Gamma(C)``), ``z = argmin_i (\ln π_i − φ_i)`` has
  ``P(z = i) = softmax(φ)_i`` (``E_i e^{−φ_i} ~ Exp(e^{φ_i})``, the smallest of
  independent exponentials).
* **REINFORCE + Rao-Blackwellise** (AR).  The score of ``ε_i = E_i e^{−φ_i}`` w.r.t. ``φ_c``
  is ``1 − E_c``; ``E[E_c | π] = C π_c``, so ``∂_{φ_c} E f(z) = E[f(z) (1 − C π_c)]``.
* **Swap** (ARS).  ``π^{c⇌j}`` (entries ``c`` and ``j`` of ``π`` exchanged) has the law of
  ``π`` and its entry ``c`` is ``π_j``, so with the pseudo action
  ``z^{c⇌j} = argmin_i (\ln π^{c⇌j}_i − φ_i)`` also
  ``∂_{φ_c} E f = E[f(z^{c⇌j})(1 − C π_j)]`` for every reference ``j``.  Subtracting the
  mean over ``c`` of these (whose expectation is ``(1/C) Σ_m ∂_{φ_m} E f = 0``, softmax
  being shift invariant) gives, with ``f_Δ^{c⇌j} = f(z^{c⇌j}) − (1/C) Σ_m f(z^{m⇌j})``,
  ``∂_{φ_c} E f = E[f_Δ^{c⇌j} (1 − C π_j)]``.
* **Merge** (ARSM).  The mean over the ``C`` references ``j``:

  .. math::  \hat g_c = \sum_{j=1}^{C} f_Δ^{c⇌j}(π)\,\Big(\frac1C − π_j\Big),
             \qquad z^{c⇌c} = z.

* **Several variables** (``d`` independent C-way variables, logits ``φ`` of shape
  ``(d, C)``): the swap ``c⇌j`` is applied to every variable's ``π_k`` at once, so one
  pseudo-action *vector* ``z^{c⇌j} = (z_1^{c⇌j}, …, z_d^{c⇌j})`` per unordered pair, and
  ``\hat g_{kc} = Σ_j f_Δ^{c⇌j} (1/C − π_{kj})`` (unbiased: given the other variables'
  Dirichlet draws, variable ``k``'s term is the one-variable ARSM above).

Every estimate satisfies ``Σ_c \hat g_{kc} = 0`` (since ``Σ_c f_Δ^{c⇌j} = 0``), like the
softmax gradient itself.

**Bernoulli** (``C = 2``, category 0 the bit 0 with logit 0, category 1 the bit 1 with
logit ``ℓ``, one uniform ``u = π_0`` per bit): ``z = 1[u > σ(−ℓ)]``, the single swap gives
``1[u < σ(ℓ)]`` and ``\hat g = (f(z) − f(z^{0⇌1}))(u − ½)`` -- exactly ARM (Yin & Zhou,
ICLR 2019) on the same uniforms, as the paper states (tested bit for bit).

**Conventions checked against the exact gradient.**  The sign of the augmentation
matters: ``z = argmin_i(\ln π_i − φ_i)`` (``π_i e^{−φ_i}``) samples ``softmax(φ)``; the
look-alike ``argmin_i(\ln π_i + φ_i)`` samples ``softmax(−φ)`` and, with the same weights,
gives the wrong gradient (for ``φ = (0, 1, −0.5)``, ``f = Table`` with values ``(1, 3, −2)``
the exact gradient is ``(−0.1934, 0.7314, −0.5380)`` while that variant's exact mean is
``(0.4627, 0.4141, −0.8768)``; tested as a mutation).  The merge weight is ``1/C − π_j``, i.e. the mean of
the ARS weights ``1 − Cπ_j`` over ``C`` references, not their sum: a factor ``C`` separates the two
(the sum's mean is ``C`` times the gradient: ``(−0.5801, 2.1942, −1.6141)`` on the same
problem).  The paper's pseudo actions are counted as
"unique" values of ``z^{c⇌j}``; the identity ``z^{c⇌c} = z`` is one of them.

**Cost** (evaluations of f per estimate, what :func:`refgrad.estimate` spends):
``1 + C (C − 1)/2`` -- f at ``z`` and at the pseudo-action vector of each unordered pair
``c < j`` (``z^{c⇌j} = z^{j⇌c}``).  The paper evaluates f only at the *distinct* vectors
among these, whose number is random and at most this worst case; here f is evaluated at
all of them (deduplicating per sample does not pay in a vectorised batch).  Bernoulli: 2,
as ARM.

**Noise**: ``u`` of shape ``(d, C)`` for categoricals, ``E_{ki} = −\ln u_{ki}``,
``\ln π_{ki} = \ln E_{ki} − \ln S_k`` (``\ln(−\ln u)`` is accurate for ``u`` next to 0 and
to 1: ``\ln u`` of a double next to 1 keeps its relative accuracy); ``u`` of shape ``(d,)``
for bits, ``π = (u, 1 − u)``.  No options.  Logits must be finite (``−inf`` categories are
refused: their comparisons ``\ln π_a − \ln π_b = ±∞`` have no cells).

**Exact moments** (``outcomes``): per variable the pseudo actions are constant on the
convex cells of the common refinement of the ``1 + C(C−1)/2`` argmin partitions of the
simplex (each region ``{π_{τ(i)} e^{−φ_i} ≤ π_{τ(i')} e^{−φ_{i'}} ∀ i'}``, linear in π),
and the estimate is linear in each variable's ``π_k`` on a product of cells.  Each cell
is cut into simplices (its centre joined to the facets of its convex hull) and each
simplex carries the degree-2 rule with ``n + 1`` equal weights at
``α v_i + β Σ_{l≠i} v_l``, ``β = (n + 2 − \sqrt{n+2})/((n+1)(n+2))``, ``α = 1 − nβ``
(``n = C − 1``, exact for polynomials of degree ≤ 2; Stroud 1971); ``π ~ Dir(1)`` is
uniform on the simplex.  The product over variables of these point sets integrates the
estimate and its (bilinear across variables, quadratic within one) square exactly, so
the listed outcomes give the exact mean and covariance.  The estimate at each point is
computed by the same function as :func:`refgrad.estimate` (:func:`arsm_from_pi`).

**Any dimension, separable f** (:mod:`refgrad._moments.separable`): the ``M = 1 + C(C−1)/2``
values ``f(z^s)`` are sums of per-variable terms ``f_r(z^s_r)`` (``z^s_r`` depends on ``π_r``
only) and the estimate of variable ``k`` is linear in them with coefficients from ``π_k``:
``L = M``, ``F_r = (f_r(z^s_r))_s``, ``A_k`` = the merge step applied to the unit vectors.
Each variable's features are integrated with its own cell rule (``noise_rule``: the rule
points as uniforms ``u = e^{−π}``, so ``E = −\ln u = π``).  On a 2 x 3 categorical this
agrees with the 23409 outcomes to 1e-12 (tested); its work grows linearly in ``d`` (the cell
rules of each variable, computed once per distinct logit row), against ``153^d`` outcomes at ``C = 3``
(measured times: docs/estimators-measured.md).
"""
import functools
import itertools
import math

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from .._core.checks import first_index
from ..distributions import ENUMERATION_LIMIT
from ..objectives import as_objective
from ._base import EstimatorSpec, NoiseField, register

__all__ = ["arsm_from_pi", "simplex_cells"]

FAMILIES = ("bernoulli", "categorical")

#: Tolerance (in the reduced simplex coordinates) for a vertex to count as on a cutting plane.
_TOL = 1e-16


def _logits(dist):
    """``φ`` of shape ``(d, C)``: normalised log-probabilities (categorical) or ``(0, ℓ)`` per bit."""
    if dist.family == "categorical":
        return np.asarray(dist.log_probs, dtype=float)
    ell = np.asarray(dist.logits, dtype=float)
    return np.stack([np.zeros_like(ell), ell], axis=-1)


def _swaps(C):
    """The identity and the unordered pairs ``(c, j)``, ``c < j``: ``1 + C(C − 1)/2`` permutations of ``range(C)``."""
    perms = [np.arange(C)]
    index = np.zeros((C, C), dtype=np.int64)  # index[c, j]: which permutation is c⇌j (0 = identity)
    for c, j in itertools.combinations(range(C), 2):
        p = np.arange(C)
        p[c], p[j] = j, c
        index[c, j] = index[j, c] = len(perms)
        perms.append(p)
    return np.array(perms), index


def _pseudo_values(dist, f, log_pi):
    """f at the ``M = 1 + C(C−1)/2`` pseudo-action vectors ``z^s`` of each draw: ``(N, M)``."""
    obj = as_objective(f)
    phi = _logits(dist)
    N, d, C = log_pi.shape
    perms, _ = _swaps(C)
    M = len(perms)
    # z^s_k = argmin_i (ln π_{k, τ_s(i)} − φ_{ki}) for every permutation s: (N, M, d)
    z = np.argmin(log_pi[:, :, perms].transpose(0, 2, 1, 3) - phi[None, None], axis=-1)
    if dist.family == "categorical":
        configs = np.zeros((N, M, d, C))
        np.put_along_axis(configs, z[..., None], 1.0, axis=-1)
        return obj.value(configs.reshape(N * M, d, C)).reshape(N, M)
    return obj.value(z.reshape(N * M, d).astype(float)).reshape(N, M)


def _merge(dist, values, pi):
    r"""``\hat g_{kc} = Σ_j f_Δ^{c⇌j} (1/C − π_{kj})`` from ``values`` ``(N, M, *extra)`` at the pseudo actions.

    Returns ``(N, *extra, *param_shape)``; linear in ``values`` (the separable features
    pass unit vectors as ``extra``).
    """
    C = pi.shape[-1]
    _, index = _swaps(C)
    F = values[:, index]  # (N, C, C, *extra): F[n, c, j] = f(z^{c⇌j})
    f_delta = F - F.mean(axis=1, keepdims=True)  # f_Δ^{c⇌j} = F_cj − (1/C) Σ_m F_mj
    g = np.einsum("ncj...,nkj->n...kc", f_delta, 1.0 / C - pi)
    return g if dist.family == "categorical" else g[..., 1]


def arsm_from_pi(dist, f, log_pi, pi):
    r"""ARSM estimates from Dirichlet draws: ``(N, *param_shape)``.

    ``log_pi`` and ``pi`` have shape ``(N, d, C)`` (``C = 2`` for bits, category 0 the bit
    0); ``log_pi`` may be shifted by any constant per variable (only differences enter the
    argmin).  Evaluates f at ``N (1 + C(C−1)/2)`` configurations.
    """
    return _merge(dist, _pseudo_values(dist, f, log_pi), pi)


def _pi_from_noise(dist, noise):
    """``(ln π, π)``, each ``(N, d, C)``, from the noise (``u_complement = 1 − u`` used when given)."""
    u = noise["u"]
    uc = noise.get("u_complement")
    if dist.family == "categorical":
        e = -np.log(u) if uc is None else -np.log1p(-uc)  # (n, d, C)
        log_s = np.log(e.sum(axis=-1, keepdims=True))
        log_e = np.log(e)
        return log_e - log_s, np.exp(log_e - log_s)
    pi = np.stack([u, 1.0 - u if uc is None else uc], axis=-1)
    return np.log(pi), pi


def _arsm(dist, f, noise):
    return arsm_from_pi(dist, f, *_pi_from_noise(dist, noise))


def _features(dist, f, noise=None, b=None):
    """Separable form (:mod:`refgrad._moments.separable`).

    ``L = M`` pseudo actions, ``F = f_j(z^s_j)``, ``A = ĝ_j(e_s)``.

    The swaps act on every variable at once, so f is evaluated at the same ``M`` pseudo-action
    vectors for all variables and ``f(z^s) = Σ_r f_r(z^s_r)``, where ``z^s_r`` depends on
    variable ``r``'s ``π_r`` only; the estimate of variable ``j`` is linear in these values with
    coefficients from ``π_j`` (:func:`_merge` applied to the unit vectors).
    """
    log_pi, pi = _pi_from_noise(dist, noise)
    values = _pseudo_values(dist, f, log_pi)
    N, M = values.shape
    return values, _merge(dist, np.broadcast_to(np.eye(M), (N, M, M)), pi)


# ------------------------------------------------------------------------------------ exact moments


def _reduced_planes(phi_row):
    """Every argmin partition of one variable's simplex, as halfspace rows in reduced coordinates.

    Returns a list (one entry per swap) of ``(C, C, n + 1)`` arrays ``H[i, i']``: the region of
    label ``i`` is ``{x : H[i, i', :n] · x ≤ H[i, i', n] for all i' ≠ i}`` with ``x = π_{0..C−2}``
    and ``π_{C−1} = 1 − Σ x``.
    """
    C = phi_row.size
    n = C - 1
    perms, _ = _swaps(C)
    # linear form of π_a in x: A[a] · x + c[a]
    A = np.vstack([np.eye(n), -np.ones((1, n))])
    c0 = np.zeros(C)
    c0[-1] = 1.0
    w = np.exp(-(phi_row - phi_row.max()))
    out = []
    for p in perms:
        H = np.zeros((C, C, n + 1))
        for i in range(C):
            for k in range(C):
                # π_{p(i)} w_i − π_{p(k)} w_k ≤ 0
                H[i, k, :n] = w[i] * A[p[i]] - w[k] * A[p[k]]
                H[i, k, n] = -(w[i] * c0[p[i]] - w[k] * c0[p[k]])
        out.append(H)
    return out


def _clip(V, h):
    """Vertices of ``conv(V) ∩ {h[:n] · x ≤ h[n]}`` (a superset, pruned by the caller); None if empty."""
    s = V @ h[:-1] - h[-1]
    scale = max(1.0, float(np.abs(h).max()))
    inside, outside = s <= _TOL * scale, s > _TOL * scale
    if not outside.any():
        return V
    if not (s < -_TOL * scale).any():
        return None
    P, Q = V[s < -_TOL * scale], V[outside]
    sp, sq = s[s < -_TOL * scale][:, None, None], s[outside][None, :, None]
    cuts = (P[:, None] * sq - Q[None] * sp) / (sq - sp)
    return np.vstack([V[inside], cuts.reshape(-1, V.shape[1])])


def _prune(V):
    """The extreme points of ``conv(V)`` (and its volume); None if it is flat."""
    n = V.shape[1]
    if n == 1:
        lo, hi = V.min(), V.max()
        return (np.array([[lo], [hi]]), hi - lo) if hi - lo > 0 else None
    try:
        hull = ConvexHull(V)
    except QhullError:
        return None
    if hull.volume < 1e-15:
        return None
    return V[hull.vertices], hull


def simplex_cells(phi_row):
    r"""The cells on which all of one variable's pseudo actions are constant, as lists of vertices.

    ``phi_row``: the ``C`` logits of one variable.  Returns a list of vertex arrays in
    the reduced coordinates ``x = (π_0, …, π_{C−2})``; the cells tile the simplex.
    """
    n = phi_row.size - 1
    cells = [np.vstack([np.zeros((1, n)), np.eye(n)])]
    for H in _reduced_planes(phi_row):
        refined = []
        for V in cells:
            for i in range(H.shape[0]):
                W = V
                for k in range(H.shape[0]):
                    if k != i and W is not None:
                        W = _clip(W, H[i, k])
                if W is None:
                    continue
                pruned = _prune(W)
                if pruned is not None:
                    refined.append(pruned[0])
        cells = refined
    return cells


#: Largest number of categories whose cells are enumerated for exact moments: the arrangement grows quickly
#: (15 cells for K = 3, 89 for K = 4; tens of thousands of rule points for K = 5, whose cost is measured in
#: docs/estimators-measured.md).
MAX_EXACT_K = 4
#: Largest logit spread (max − min of a variable's logits; |ℓ| for a bit) at which the cells' degree-2 rule
#: keeps every coordinate of the exact mean within 1e-10 relative of ``exact.gradient`` (measured on a
#: 3-way row (s/2, 0, −s/2) and a bit: 2.4e-12 at 10, 5.4e-13 at 12 (bit), 6e-11 at 14, 3.5e-10 at 15).
EXACT_SPREAD_LIMIT = 12.0


def _cell_points(phi_row):
    """Degree-2 exact points and weights (summing to 1) on one variable's simplex: ``(P, C)``, ``(P,)``.

    Cached by the logits (the arrays returned are shared: read only).  Refused beyond
    :data:`MAX_EXACT_K` categories, before any cell is built.
    """
    if phi_row.size > MAX_EXACT_K:
        raise ValueError(
            f"exact moments of 'arsm' enumerate the cells of its pseudo actions, limited to K <= {MAX_EXACT_K} "
            f"categories per variable (refgrad.estimators.arsm.MAX_EXACT_K); got K = {phi_row.size}. For this "
            "problem use exact.moments(..., method='monte_carlo')"
        )
    return _cell_points_cached(tuple(float(v) for v in phi_row))


@functools.lru_cache(maxsize=4096)
def _cell_points_cached(phi_key):
    phi_row = np.array(phi_key)
    n = phi_row.size - 1
    beta = (n + 2 - math.sqrt(n + 2)) / ((n + 1) * (n + 2))
    alpha = 1.0 - n * beta
    total = 1.0 / math.factorial(n)
    pts, wts = [], []
    for V in simplex_cells(phi_row):
        if n == 1:
            simplices = [V]
        else:
            centre = V.mean(axis=0)
            simplices = [np.vstack([centre[None], V[s]]) for s in ConvexHull(V).simplices]
        for S in simplices:
            vol = abs(np.linalg.det(S[1:] - S[0])) / math.factorial(n)
            if vol <= 0:
                continue
            rule = beta * S.sum(axis=0)[None] + (alpha - beta) * S  # α v_i + β Σ_{l≠i} v_l
            pts.append(rule)
            wts.append(np.full(n + 1, vol / total / (n + 1)))
    x = np.vstack(pts)
    points, weights = np.hstack([x, 1.0 - x.sum(axis=1, keepdims=True)]), np.concatenate(wts)
    points.flags.writeable = weights.flags.writeable = False
    return points, weights


def _rule(dist, limit):
    """The product over the variables of their cell rules: ``(weights (N,), π (N, d, C))`` batches."""
    phi = _logits(dist)
    d, C = phi.shape
    spread = phi.max(axis=1) - phi.min(axis=1)
    if d and float(spread.max()) > EXACT_SPREAD_LIMIT:
        k = int(np.argmax(spread))
        raise ValueError(
            f"exact moments of 'arsm' integrate over the cells of its pseudo actions on the simplex, accurate "
            f"(1e-10 relative) up to a logit spread of {EXACT_SPREAD_LIMIT:g} within a variable "
            f"(refgrad.estimators.arsm.EXACT_SPREAD_LIMIT; the smallest coordinate's relative error measured 2.4e-12 "
            f"at 10, 3.5e-10 at 15, 1.7e-4 at 30); variable {k} has spread {float(spread[k]):.4g}: refused rather "
            f"than inexact. Use method='monte_carlo' (an estimate with its interval)")
    per_var = [_cell_points(phi[k]) for k in range(d)]
    sizes = [len(w) for _, w in per_var]
    total = int(np.prod(sizes, dtype=object))
    if total > limit:
        raise ValueError(
            f"exact moments of 'arsm' enumerate {total} points (cells x degree-2 rule, per variable "
            f"{sizes}), beyond limit={limit}; use method='monte_carlo' (an estimate with its interval, in seconds) "
            "or a smaller problem; a larger limit= enumerates them all with no time guard"
        )
    chunk = max(1, 2**16 // max(1, d))
    for start in range(0, total, chunk):
        idx = np.arange(start, min(start + chunk, total))
        digits = np.stack(np.unravel_index(idx, sizes), axis=1)  # (N, d)
        pi = np.stack([per_var[k][0][digits[:, k]] for k in range(d)], axis=1)  # (N, d, C)
        w = np.prod(np.stack([per_var[k][1][digits[:, k]] for k in range(d)], axis=1), axis=1)
        yield w, pi


def _outcomes(dist, f, limit):
    for w, pi in _rule(dist, limit):
        with np.errstate(divide="ignore"):
            yield w, arsm_from_pi(dist, f, np.log(np.clip(pi, 1e-300, None)), pi)


def _noise_rule(dist, **_):
    r"""The cell rule as noise: ``u = e^{−π}`` with its accurate complement ``−\mathrm{expm1}(−π)``.

    Categorical: ``E = −\ln u = −\mathrm{log1p}(−u_c) = π`` (to rounding, ``π`` clipped at
    ``1e-300`` as in :func:`_outcomes`), so ``E / ΣE`` is the rule point; bits: ``u = π_0``,
    ``u_c = π_1``.
    """
    for w, pi in _rule(dist, ENUMERATION_LIMIT):
        if dist.family == "categorical":
            p = np.clip(pi, 1e-300, None)
            yield w, {"u": np.exp(-p), "u_complement": -np.expm1(-p)}
        else:
            yield w, {"u": pi[..., 0], "u_complement": pi[..., 1]}


def _options(dist, opts):
    phi = dist.logits
    bad = ~np.isfinite(phi)
    if bad.any():
        where = first_index(bad)
        raise ValueError(
            f"estimator 'arsm' needs finite logits; got logits{list(where)} = {float(phi[where])!r} "
            "(allowed: finite values)"
        )
    return opts


def _layout(dist, **_):
    if dist.family == "categorical":
        return (NoiseField("u", tuple(dist.event_shape), "uniforms u; E = −ln u, π = E / ΣE ~ Dir(1) per variable"),)
    return (NoiseField("u", tuple(dist.event_shape), "uniforms u = π_0 per bit, π = (u, 1 − u) ~ Dir(1, 1)"),)


def _cost(dist, **_):
    C = dist.K if dist.family == "categorical" else 2
    return 1 + C * (C - 1) // 2


register(
    EstimatorSpec(
        name="arsm",
        doc=__doc__,
        families=FAMILIES,
        unbiased=True,
        compute=_arsm,
        outcomes=_outcomes,
        noise_rule=_noise_rule,
        separable=lambda dist, **o: ((lambda j: dict(o)), _features),
        shape_in_noise="smooth",
        layout=_layout,
        cost=_cost,
        defaults={},
        check_options=_options,
        summary="Σ_j [f(z^{c⇌j}) − (1/C) Σ_m f(z^{m⇌j})] (1/C − π_j), π ~ Dir(1), "
        "z^{c⇌j} = argmin_i(ln π^{c⇌j}_i − φ_i); Yin, Yue & Zhou 2019 (ARSM); ARM on bits",
    )
)
