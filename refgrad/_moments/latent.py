"""Exact moments of latent-form estimators by integrating over the latent variables (see the comment below)."""
import itertools
import time

import numpy as np
from scipy import special

from .._core.checks import first_index
from ..estimators.relaxed import latent_form
from .base import MAX_QUADRATURE_DIM, Moments, _dist_text, _objective_text
from .cost import check_run_time
from .plan import _check_node_count, _tensor_chunks
from .quadrature import line_rule

# ------------------------------------------------------------------------------------ latent-space integration
#
# At extreme logits the uniforms cannot resolve where an estimate's mass lies: for a bit with ℓ = −50 the
# relaxation's slope is large only where the latent z = ℓ + L(u) is near 0, i.e. u within e^-50 of 1, which
# no double next to 1 resolves.  For the estimators listed in refgrad.estimators.relaxed.LATENT_FORMS, whose
# estimate depends on the noise only through the latent z (and the sample b it gives), the integral is taken
# over the latent instead, region by region of the sample b:
#
# * a bit (Bernoulli: z − ℓ logistic, density σ(x)σ(−x) = e^{−|x|}/(1 + e^{−|x|})²) over the half-line of its
#   sample value (b = 1: z > 0), split at ℓ; each node is a distance from 0 or ℓ, exact, so the layer of width
#   τ at z = 0 and the bump at z = ℓ are both resolved;
# * a categorical row given its argmax b: the differences y_k = z_k − z_b < 0 (k ≠ b, finite ℓ_k), whose joint
#   density on the negative orthant is (m − 1)! Π_k softmax(ℓ − y)_k over the m finite entries (y_b = 0;
#   integrate out the common Gumbel shift t = e^{−z_b}: ∫ t^{m−1} e^{−tS} dt = (m−1)!/S^m), split at
#   ℓ_k − logsumexp(ℓ) (where z_b lies given b) and ℓ_k − ℓ_b; the softmax is shift invariant, so the
#   estimate takes y as the latent row;
# * an infinite parameter fixes its latent (±inf) and its sample, and adds no axis.
#
# Densities are formed as exp(log w + log p), never as 1 − (something near 1).  Per sample value b (all
# variables) the rule gives Q_b = ∫_b p, J_b = ∫_b g p, m_b = J_b/Q_b and A_b = ∫_b (g − m_b)(g − m_b)ᵀ p;
# mean = Σ_b J_b and cov = Σ_b Q_b (m_b − m)(m_b − m)ᵀ + κ Σ_b A_b, with κ = 1 (one draw) or 1/k (k conditional
# draws given b, gumbel_rao: Var = Var_b(E[ST | b]) + E_b[Var(ST | b)]/k).  Both are sums of terms of one sign
# or centred: no E[g²] − E[g]².
#
# REBAR and RELAX (refgrad.estimators.relaxed.latent_form) add a conditional latent z̃, independent of z given b
# with the same law: their estimate is a term of z plus a term of z̃, each integrated over the same rule, and
# A_b = Σ_terms κ A_term.  Their conditional mean m_b comes from a separate integrand at one latent in which the
# terms equal in law are combined by hand (1 − ∂z̃/∂φ without cancellation): summed as two integrals, REBAR's
# E[c] = 0 cancels to e^-|ℓ| of the terms (the mean at ℓ = 50, τ = 10 came out 88 % off).  gumbel_rao with the
# total derivative is one term of z̃ with κ = 1/k.

#: Default level of the latent rules by the number of latent axes.
LATENT_LEVEL = {1: 6, 2: 5, 3: 4, 4: 3}


def _latent_form(spec, dist, opts):
    """``(parts, latent_dist)`` when the moments are integrated over the latent (see above), else None.

    ``parts``: ``(fn, kappa)`` per term of the estimate, ``fn(dist, f, z, b)`` depending on the noise through
    one latent ``z ~ z | b``, the terms conditionally independent given ``b``
    (:func:`refgrad.estimators.relaxed.latent_form`).
    """
    return latent_form(spec.name, dist, opts)


def _log_logistic_density(x):
    ax = np.abs(x)
    return -ax - 2.0 * np.log1p(np.exp(-ax))


def _latent_outcomes(dist):
    """Per variable, its sample values: ``(index, log probability or None, axes, fixed latent)``.

    ``index`` is the bit (0/1) or the category; ``axes`` a list of ``(lo, hi, break points, coordinate)``
    (coordinate: the entry of the variable's latent it sets); the log probability is given only for
    outcomes without axes (with axes, the density integrates to it); ``fixed latent`` is the latent
    with the axes' entries to be filled.
    """
    out = []
    if dist.family == "bernoulli":
        for ell in np.asarray(dist.params, dtype=float):
            if np.isposinf(ell):
                out.append([(1, 0.0, [], np.array(np.inf))])
            elif np.isneginf(ell):
                out.append([(0, 0.0, [], np.array(-np.inf))])
            else:
                out.append([(0, None, [(-np.inf, 0.0, [ell], None)], np.array(0.0)),
                            (1, None, [(0.0, np.inf, [ell], None)], np.array(0.0))])
        return out
    for row in np.asarray(dist.params, dtype=float):
        K = row.size
        if np.isposinf(row).any():
            top = np.flatnonzero(np.isposinf(row))
            out.append([(int(b), -np.log(top.size), [], row.copy()) for b in top])
            continue
        fin = np.flatnonzero(np.isfinite(row))
        if fin.size == 1:
            z = np.full(K, -np.inf)
            z[fin[0]] = 0.0
            out.append([(int(fin[0]), 0.0, [], z)])
            continue
        lse = special.logsumexp(row[fin])
        outs = []
        for b in fin:
            z = np.full(K, -np.inf)
            z[b] = 0.0
            axes = [(-np.inf, 0.0, [row[k] - lse, row[k] - row[b]], int(k)) for k in fin if k != b]
            outs.append((int(b), None, axes, z))
        out.append(outs)
    return out


def _latent_log_density(dist, j, b, latent):
    """Log density of variable ``j``'s latent axes (rows of ``latent``: the variable's latent) given sample ``b``."""
    ell = np.asarray(dist.params, dtype=float)[j]
    if dist.family == "bernoulli":
        return _log_logistic_density(latent - ell)
    fin = np.isfinite(ell)
    m = int(fin.sum())
    a = ell[fin][None, :] - latent[:, fin]  # a_k = ℓ_k − y_k, y_b = 0
    top = a.max(axis=1, keepdims=True)
    d = a - top
    return special.gammaln(m) + d.sum(axis=1) - m * np.log(np.exp(d).sum(axis=1))


def _latent_configs(dist):
    """Sample values of all variables: ``(indices, log probability of the axis-free factors, axes, latents)``."""
    per_var = _latent_outcomes(dist)
    for combo in itertools.product(*per_var):
        yield combo


def _latent_rules(combo, level):
    """The 1-D rules of one configuration's axes, in order: list of (variable, coordinate, nodes, weights)."""
    rules = []
    for j, (_, _, axes, _) in enumerate(combo):
        for lo, hi, pts, coord in axes:
            x, w = line_rule(lo, hi, pts, level)
            rules.append((j, coord, x, w))
    return rules


def _latent_sample(dist, combo, n):
    """The samples ``b`` of a configuration, broadcast to ``(n, *event)``."""
    idx = [c[0] for c in combo]
    if dist.family == "categorical":
        b = np.zeros(tuple(dist.event_shape))
        b[np.arange(len(idx)), idx] = 1.0
    else:
        b = np.asarray(idx, dtype=float)
    return np.ascontiguousarray(np.broadcast_to(b, (n,) + b.shape))


def _latent_chunks(dist, combo, rules):
    """Yield (log weights (N,), latent z (N, *event)) over the tensor rule of one configuration."""
    base = sum(c[1] for c in combo if c[1] is not None)
    fixed = np.stack([np.asarray(c[3], dtype=float) for c in combo])
    if not rules:
        yield np.array([base]), fixed[None].copy()
        return
    triples = [(x, x, w) for _, _, x, w in rules]
    for pts, _, wts in _tensor_chunks(triples):
        n = len(wts)
        z = np.repeat(fixed[None], n, axis=0)
        with np.errstate(divide="ignore"):
            logw = base + np.log(wts)
        for col, (j, coord, _, _) in enumerate(rules):
            if coord is None:
                z[:, j] = pts[:, col]
            else:
                z[:, j, coord] = pts[:, col]
        for j in sorted({r[0] for r in rules}):
            logw = logw + _latent_log_density(dist, j, combo[j][0], z[:, j])
        yield logw, z


def _latent_count(dist, level):
    """Estimator evaluations of the latent rule at ``level`` (every configuration)."""
    total = 0
    for combo in _latent_configs(dist):
        nodes = 1
        for _, _, x, _ in _latent_rules(combo, level):
            nodes *= len(x)
        total += nodes
    return total


def _latent_dim(dist):
    """Largest number of latent axes of one configuration.

    Per variable, its outcome with the most axes (not by listing the configurations, which are 2**100 for 100 bits).
    """
    return sum(max(len(c[2]) for c in outs) for outs in _latent_outcomes(dist))


def _latent_pieces(spec, dist, f, form, level):
    """``([(w, [g per term], g_mean or None) per sample value b], evaluations)`` over the latent rule at ``level``.

    ``w`` (N,) are the weights times the density (summing to P(b)), ``g`` (N, p) each term's values at the
    same nodes and ``g_mean`` the form's conditional-mean integrand there; ``f`` and the real ``dist`` go to
    the terms, the rule comes from ``form``'s latent distribution.  A configuration whose weights all
    underflow is left out.
    """
    parts, ldist, mean_fn = form
    fns = [fn for fn, _ in parts] + ([] if mean_fn is None else [mean_fn])
    label = f"estimator {spec.name!r} with f={_objective_text(f)}"
    p = int(np.prod(dist.param_shape))
    out = []
    count = 0
    for combo in _latent_configs(ldist):
        rules = _latent_rules(combo, level)
        _check_node_count(spec, [len(r[2]) for r in rules] or [1], level)
        ws, gs = [], [[] for _ in fns]
        for logw, z in _latent_chunks(ldist, combo, rules):
            w = np.exp(logw)
            keep = w > 0
            if not keep.any():
                continue
            z = np.ascontiguousarray(z[keep])
            b = _latent_sample(ldist, combo, len(z))
            for i, fn in enumerate(fns):
                g = np.asarray(fn(dist, f, z, b), dtype=float).reshape(len(z), p)
                bad = ~np.isfinite(g)
                if bad.any():
                    row, col = first_index(bad)
                    raise ValueError(
                        f"{label} returned a non-finite estimate ({float(g[row, col])!r}, coordinate {col}) at a "
                        "point of its noise domain: the objective's values overflow in the estimator's arithmetic "
                        "or are undefined there; rescale the objective f"
                    )
                gs[i].append(g)
            ws.append(w[keep])
            count += len(z) * len(fns)
        if not ws:
            continue
        w = np.concatenate(ws)
        if float(np.sum(w)) <= 0.0:
            continue
        gs = [np.concatenate(g) for g in gs]
        out.append((w, gs[:len(parts)], gs[len(parts)] if mean_fn is not None else None))
    return out, count


def _latent_integrate(spec, dist, f, form, level):
    """Mean, covariance and evaluation count of the estimate integrated over the latent at ``level``.

    Per ``b``: ``q = Σ w``, per term ``m_i = Σ w g_i / q`` and ``A_i = Σ w (g_i − m_i)(g_i − m_i)ᵀ``;
    ``m_b = Σ w g_mean / q`` (or ``Σ_i m_i``), mean ``= Σ_b q m_b``,
    cov ``= Σ_b [q (m_b − mean)(m_b − mean)ᵀ + Σ_i κ_i A_i]``.
    """
    pieces, count = _latent_pieces(spec, dist, f, form, level)
    kappas = [k for _, k in form[0]]
    p = int(np.prod(dist.param_shape))
    mean = np.zeros(p)
    parts = []
    for w, gs, gm in pieces:
        q = float(np.sum(w))
        m = np.zeros(p)
        a = np.zeros((p, p))
        for g, kappa in zip(gs, kappas):
            mi = np.einsum("n,np->p", w, g) / q
            c = g - mi
            a += kappa * np.einsum("np,nq->pq", c * w[:, None], c)
            m += mi
        if gm is not None:
            m = np.einsum("n,np->p", w, gm) / q
        mean += q * m
        parts.append((q, m, a))
    cov = np.zeros((p, p))
    for q, m, a in parts:
        dm = m - mean
        cov += q * np.outer(dm, dm) + a
    cov = 0.5 * (cov + cov.T)
    return mean, cov, count


def latent_fourth_moments(spec, dist, f, form, mean, level):
    """``E[(ĝ_j − mean_j)^4]`` per coordinate over the latent, or None for averages of several draws.

    Per ``b``, with ``δ = m_b − mean`` and the terms' conditional central moments ``M2_i, M3_i, M4_i``
    (independent given ``b``): ``E[(δ + Σ X_i)^4] = δ⁴ + 6 δ² Σ M2_i + 4 δ Σ M3_i + Σ M4_i
    + 3 [(Σ M2_i)² − Σ M2_i²]``.
    """
    if any(k != 1.0 for _, k in form[0]):
        return None
    pieces, _ = _latent_pieces(spec, dist, f, form, level)
    mean = np.asarray(mean, dtype=float).ravel()
    m4 = np.zeros(mean.size)
    for w, gs, gm in pieces:
        q = float(np.sum(w))
        ms, m2, m3, m4s, m2sq = np.zeros(mean.size), 0.0, 0.0, 0.0, 0.0
        for g in gs:
            mi = np.einsum("n,np->p", w, g) / q
            c = g - mi
            c2 = c * c
            a2 = np.einsum("n,np->p", w, c2) / q
            m2 = m2 + a2
            m2sq = m2sq + a2 * a2
            m3 = m3 + np.einsum("n,np->p", w, c2 * c) / q
            m4s = m4s + np.einsum("n,np->p", w, c2 * c2) / q
            ms += mi
        if gm is not None:
            ms = np.einsum("n,np->p", w, gm) / q
        d = ms - mean
        m4 += q * (d ** 4 + 6.0 * d * d * m2 + 4.0 * d * m3 + m4s + 3.0 * (m2 * m2 - m2sq))
    return m4


def _latent_moments(spec, dist, f, opts, form, level, max_seconds, default_level):
    """:class:`Moments` of ``spec`` integrated over its latent (see the notes above)."""
    parts, ldist, mean_fn = form
    dim = _latent_dim(ldist)
    if dim > MAX_QUADRATURE_DIM:
        raise ValueError(
            f"exact moments of {spec.name!r} on dist={_dist_text(dist)} need a {dim}-dimensional integral over its "
            f"latent; quadrature is limited to {MAX_QUADRATURE_DIM} dimensions. For this problem use Monte Carlo "
            f"instead: refgrad.estimate({spec.name!r}, ...) with refgrad.stats.unbiasedness_test, or "
            "method='separable' for a separable objective"
        )

    def timer():
        combo = max(_latent_configs(ldist), key=lambda c: sum(len(x[2]) for x in c))
        logw, z = next(_latent_chunks(ldist, combo, _latent_rules(combo, level)))
        z = np.ascontiguousarray(z[:2048])
        b = _latent_sample(ldist, combo, len(z))
        fns = [fn for fn, _ in parts] + ([] if mean_fn is None else [mean_fn])
        for fn in fns:
            fn(dist, f, z[:16], b[:16])
        start = time.perf_counter()
        for fn in fns:
            fn(dist, f, z, b)
        return max(time.perf_counter() - start, 1e-9) / len(z)

    for combo in _latent_configs(ldist):  # the node limit first, as for the uniforms' rules
        _check_node_count(spec, [len(r[2]) for r in _latent_rules(combo, level)] or [1], level)
    check_run_time(spec, dist, opts, "quadrature", level, None, max_seconds, default_level,
                   count=lambda lvl: _latent_count(ldist, lvl) + _latent_count(ldist, lvl - 1), timer=timer)
    mean, cov, count = _latent_integrate(spec, dist, f, form, level)
    cmean, ccov, _ = _latent_integrate(spec, dist, f, form, level - 1)
    err = max(float(np.max(np.abs(mean - cmean))), float(np.max(np.abs(cov - ccov))))
    cost = int(spec.cost(dist, **opts))
    return Moments(spec.name, opts, mean.reshape(tuple(dist.param_shape)), cov, "quadrature", err, cost, count)
