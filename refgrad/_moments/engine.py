"""Exact mean and covariance of an estimator: enumeration, piecewise Gauss–Legendre, tanh-sinh.

Used by :func:`refgrad.exact.moments`; see its docstring for the methods.
"""
import numpy as np

from .base import _CHUNK, MAX_QUADRATURE_DIM, Moments, _Accumulator, _count_text, _objective_text
from .cost import check_run_time, conditional_draws_check
from .plan import _batches, _check_node_count, _check_uniform_quadrature, _passes, _tensor_chunks, _uniforms_for_sample
from .quadrature import tanh_sinh

# ------------------------------------------------------------------------------------ enumeration


def _live_support(spec, dist, opts, limit):
    """``(configs, probs, k)``: the configurations of positive probability and the estimator's draws ``k``.

    Refuses (``ValueError`` naming ``limit``) when the ``support**k`` sample tuples to enumerate exceed ``limit``.
    """
    k = int(spec.draws(**opts))
    size = dist.support_size
    if size > limit or size**k > limit:
        raise ValueError(
            f"exact moments of {spec.name!r} by enumeration need {_count_text(size)}**{k} = "
            f"{_count_text(size ** k)} sample tuples, beyond limit={limit}; use method='monte_carlo' (an estimate "
            f"with its interval, in seconds) or a smaller problem; a larger limit= enumerates them all with no time "
            f"guard"
        )
    configs, probs = dist.enumerate(limit=limit)
    keep = np.flatnonzero(probs > 0)
    return configs[keep], probs[keep], k


def _enumeration(spec, dist, f, opts, limit, fn=None):
    """Moments of ``fn(b)`` (default: the estimate ``given_samples(b)``) over the ``support**k`` sample tuples."""
    configs, probs, k = _live_support(spec, dist, opts, limit)
    s = len(probs)
    acc = _Accumulator(f"estimator {spec.name!r} with f={_objective_text(f)}")
    total = s**k
    for start in range(0, total, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, total))
        digits = (idx[:, None] // (s ** np.arange(k - 1, -1, -1))[None, :]) % s
        b = configs[digits]  # (N, k, *event)
        w = np.prod(probs[digits], axis=1)
        b = np.ascontiguousarray(b)
        g = spec.given_samples(dist, f, b, **opts) if fn is None else fn(b)
        acc.add(w, g)
    mean, cov = acc.result(tuple(dist.param_shape) if fn is None else (-1,))
    scale = max(1.0, float(np.max(np.abs(acc.s2))))
    if np.any(np.diag(cov) < CANCELLATION_RATIO * np.diag(acc.s2)):
        # E[ĝ²] − E[ĝ]² lost more than 4 digits (a nearly constant coordinate, a variance carried by an outcome of
        # probability e^-50): a second pass sums Σ w (ĝ − mean)(ĝ − mean)ᵀ, terms of one sign on the diagonal
        cov = _centred_enumeration(spec, dist, f, opts, fn, configs, probs, k, acc.s1)
    return mean, cov, 64 * np.finfo(float).eps * scale, acc.count


#: Where ``Var = E[ĝ²] − E[ĝ]²`` is below this fraction of ``E[ĝ²]`` the enumeration sums centred squares instead.
CANCELLATION_RATIO = 1e-4


def _centred_enumeration(spec, dist, f, opts, fn, configs, probs, k, mean):
    """``Σ_b P(b) (ĝ(b) − mean)(ĝ(b) − mean)ᵀ`` over the ``s**k`` sample tuples (:func:`_enumeration`'s 2nd pass)."""
    s = len(probs)
    cov = np.zeros((mean.size, mean.size))
    for start in range(0, s**k, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, s**k))
        digits = (idx[:, None] // (s ** np.arange(k - 1, -1, -1))[None, :]) % s
        b = np.ascontiguousarray(configs[digits])
        w = np.prod(probs[digits], axis=1)
        g = spec.given_samples(dist, f, b, **opts) if fn is None else fn(b)
        c = np.asarray(g, dtype=float).reshape(len(w), -1) - mean
        cov += np.einsum("np,nq->pq", c * w[:, None], c)
    return 0.5 * (cov + cov.T)


def _outcome_enumeration(spec, dist, f, opts, limit):
    """Moments from the estimator's own list of outcomes and their probabilities (EstimatorSpec.outcomes)."""
    acc = _Accumulator(f"estimator {spec.name!r} with f={_objective_text(f)}")
    for w, g in spec.outcomes(dist, f, limit, **opts):
        acc.add(np.asarray(w, dtype=float), np.asarray(g, dtype=float))
    if acc.s1 is None or abs(acc.w - 1.0) > 1e-9:
        raise AssertionError(f"outcomes of estimator {spec.name!r} have total probability {acc.w!r}, not 1")
    mean, cov = acc.result(tuple(dist.param_shape))
    scale = max(1.0, float(np.max(np.abs(acc.s2))))
    return mean, cov, 64 * np.finfo(float).eps * scale, acc.count


def _integrate(spec, dist, f, opts, fn, method, level):
    """E[fn(noise)] and its second moment by tensor quadrature over the per-sample noise.

    ``method="piecewise"``: the estimate is a polynomial of degree ≤ 1 in each uniform on
    every cell between break points, so the midpoint rule gives the mean exactly (and a
    term that vanishes by symmetry, such as ``u − ½`` at the middle of a symmetric piece,
    is exactly 0 rather than a sum of cancelling rounding errors), and the two-point
    Gauss–Legendre rule gives the second moment exactly (piecewise-constant estimates take
    it from the midpoint rule as well).
    """
    acc = _Accumulator(f"estimator {spec.name!r} with f={_objective_text(f)}")
    for rule, first, second in _passes(spec, method):
        for wts, noise in _batches(spec, dist, opts, method, level, rule):
            acc.add(wts, fn(noise), first=first, second=second)
    return acc


def _conditional_draws_moments(spec, dist, f, opts, level, max_seconds=None, default_level=None):
    """Moments of an average of k conditional draws given the sample (see EstimatorSpec.conditional_draws)."""
    option, field_name = spec.conditional_draws
    k = int(opts[option])
    one = dict(opts, **{option: 1})
    fields = [nf for nf in spec.layout(dist, **one) if nf.per_sample]
    inner = [nf for nf in fields if nf.name == field_name]
    dim = int(np.prod(inner[0].shape))
    if dim > MAX_QUADRATURE_DIM:
        raise ValueError(
            f"exact moments of {spec.name!r} need a {dim}-dimensional integral per sample value; "
            f"quadrature is limited to {MAX_QUADRATURE_DIM} dimensions"
        )
    _check_uniform_quadrature(spec, dist, "quadrature")
    configs, probs = dist.enumerate()
    conditional_draws_check(spec, dist, f, one, field_name, fields, configs, probs, level, max_seconds,
                            default_level)

    def run(lvl):
        rules = [(x, 1.0 - x, w) for x, w in (tanh_sinh(0.0, 1.0, lvl) for _ in range(dim))]
        _check_node_count(spec, [len(r[0]) * len(configs) for r in rules[:1]] + [len(r[0]) for r in rules[1:]],
                          lvl)
        mean = second = None
        count = 0
        for config, prob in zip(configs, probs):
            if prob <= 0:
                continue
            acc = _Accumulator(f"estimator {spec.name!r} with f={_objective_text(f)}")
            u = _uniforms_for_sample(dist, config)
            for pts, _, wts in _tensor_chunks(rules):
                noise = {field_name: pts.reshape((-1,) + tuple(inner[0].shape))}
                for nf in fields:
                    if nf.name != field_name:
                        noise[nf.name] = np.ascontiguousarray(np.broadcast_to(u, (len(wts),) + u.shape))
                acc.add(wts, spec.compute(dist, f, noise, **one))
            m, s2 = acc.s1, acc.s2
            term_mean = prob * m
            term_second = prob * ((1.0 - 1.0 / k) * np.outer(m, m) + s2 / k)
            mean = term_mean if mean is None else mean + term_mean
            second = term_second if second is None else second + term_second
            count += acc.count
        return mean, second, count

    mean, second, count = run(level)
    cmean, csecond, _ = run(level - 1)
    err = max(float(np.max(np.abs(mean - cmean))), float(np.max(np.abs(second - csecond))))
    cov = second - np.outer(mean, mean)
    return mean, 0.5 * (cov + cov.T), err, count


def _moments_by_integration(spec, dist, f, opts, fn, method, level, max_seconds=None, default_level=None):

    _check_uniform_quadrature(spec, dist, method)
    check_run_time(spec, dist, opts, method, level, fn, max_seconds, default_level)
    acc = _integrate(spec, dist, f, opts, fn, method, level)
    if method == "piecewise":
        scale = max(1.0, float(np.max(np.abs(acc.s2))))
        return acc, 64 * np.finfo(float).eps * scale
    coarse = _integrate(spec, dist, f, opts, fn, method, level - 1)
    err = max(float(np.max(np.abs(acc.s1 - coarse.s1))), float(np.max(np.abs(acc.s2 - coarse.s2))))
    return acc, err


def _optimal_eta_moments(spec, dist, f, opts, method, level, cost, budget=(None, None)):
    """ĝ = a + η c, E[c] = 0: integrate (a, c) jointly, then η* = −E[a c]/E[c c] per coordinate."""
    param_shape = tuple(dist.param_shape)
    p = int(np.prod(param_shape))

    def fn(noise):
        a, c = spec.control_variate(dist, f, noise, **opts)
        return np.concatenate([a.reshape(len(a), -1), c.reshape(len(c), -1)], axis=1)

    acc, err = _moments_by_integration(spec, dist, f, opts, fn, method, level, *budget)
    s1, s2 = acc.s1, acc.s2
    e_ac = np.diag(s2[:p, p:])
    e_cc = np.diag(s2[p:, p:])
    eta_star = np.where(e_cc > 0, -e_ac / np.where(e_cc > 0, e_cc, 1.0), 0.0)
    mean = (s1[:p] + eta_star * s1[p:]).reshape(param_shape)
    second = (s2[:p, :p] + eta_star[:, None] * s2[p:, :p] + s2[:p, p:] * eta_star[None, :]
              + eta_star[:, None] * s2[p:, p:] * eta_star[None, :])
    m = mean.ravel()
    cov = second - np.outer(m, m)
    cov = 0.5 * (cov + cov.T)
    opts = dict(opts, eta=eta_star.reshape(param_shape))
    return Moments(spec.name, opts, mean, cov, method, err, cost, acc.count, eta=eta_star.reshape(param_shape))
