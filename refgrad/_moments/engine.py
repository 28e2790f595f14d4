"""Exact mean and covariance of an estimator: enumeration, piecewise Gauss–Legendre, tanh-sinh.

Used by :func:`refgrad.exact.moments`; see its docstring for the methods.
"""
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._core.checks import InputTypeError, check_positive_scalar, describe
from .quadrature import GAUSS_LEGENDRE_2, MIDPOINT, complement_pieces, piece_nodes, pieces, tanh_sinh
from ..distributions import ENUMERATION_LIMIT

__all__ = ["Moments", "moments", "MAX_QUADRATURE_DIM", "DEFAULT_MAX_SECONDS"]

#: Largest noise dimension integrated by tanh-sinh quadrature (tensor product).
MAX_QUADRATURE_DIM = 4
#: Largest noise dimension for piecewise-polynomial (Gauss–Legendre) integration.
MAX_PIECEWISE_DIM = 10
_CHUNK = 65536
#: Default tanh-sinh level by noise dimension (nodes per piece and axis: ~25 * 2**(level - 2)).
DEFAULT_LEVEL = {1: 6, 2: 5, 3: 4, 4: 3}
#: Allowed quadrature levels: ``MIN_LEVEL <= level <= MAX_LEVEL`` (level 16: ~550,000 nodes per piece and axis;
#: the error estimate compares level and level − 1, hence the minimum 2).
MIN_LEVEL, MAX_LEVEL = 2, 16
#: Largest number of estimator evaluations one integration may take (tensor product of the 1-D rules).
MAX_QUADRATURE_NODES = 2**32
#: Default ``max_seconds`` of :func:`refgrad.exact.moments`: a longer estimated run is refused.
DEFAULT_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Moments:
    """Exact moments of one estimator on one problem.

    Attributes
    ----------
    name : str
        Estimator name.
    options : dict
        The options used (for ``eta="optimal"``: the exact optimal η is in ``eta``).
    mean : ndarray
        ``E[ĝ]``, shape ``param_shape``.
    cov : ndarray
        ``Cov[ĝ]`` over the flattened parameters, shape ``(p, p)``.
    method : str
        ``"enumeration"``, ``"piecewise"`` (exact Gauss–Legendre between break
        points) or ``"quadrature"`` (tanh-sinh between break points).
    error : float
        Estimated absolute error of every entry of ``mean`` and ``cov``: 0 up to
        rounding for enumeration and piecewise (a bound of a few ulps of the terms is
        reported), and ``|I_L − I_{L−1}|`` between two quadrature levels otherwise
        (conservative: tanh-sinh roughly squares its error per level).
    cost : int
        Evaluations of f per single estimate.
    evaluations : int
        How many single estimates the oracle computed.
    eta : ndarray or None
        For estimators affine in η with ``eta="optimal"``: the exact optimal η.
    """

    name: str
    options: dict
    mean: np.ndarray
    cov: np.ndarray
    method: str
    error: float
    cost: int
    evaluations: int
    eta: object = field(default=None)

    @property
    def variance(self):
        """Per-coordinate variance ``diag(cov)``, shape ``param_shape``.

        Clipped at 0: ``E[ĝ²] − E[ĝ]²`` of a zero-variance estimator can round to ~−1e-19.
        """
        return np.maximum(np.diag(self.cov), 0.0).reshape(self.mean.shape)

    @property
    def second_moment(self):
        """``E[ĝ ĝᵀ] = cov + mean meanᵀ`` (flattened)."""
        m = self.mean.ravel()
        return self.cov + np.outer(m, m)

    @property
    def variance_per_cost(self):
        """Variance times cost: the variance of an average of estimates at a fixed budget of f evaluations."""
        return self.variance * self.cost

    def __str__(self):
        return (
            f"Moments({self.name!r}, method={self.method}, error≈{self.error:.1e}, cost={self.cost})\n"
            f"  mean     = {np.array2string(self.mean, precision=10)}\n"
            f"  variance = {np.array2string(self.variance, precision=10)}"
        )


class _Accumulator:
    """Weighted first and second moments of flattened vectors.

    ``add(..., first=False)`` or ``second=False`` accumulates only one of them: the
    piecewise method takes the mean from a midpoint rule and the second moment
    from a two-point rule.
    """

    def __init__(self, label="the estimator"):
        self.label = label
        self.w = 0.0
        self.s1 = None
        self.s2 = None
        self.count = 0

    def add(self, weights, values, first=True, second=True):
        values = values.reshape(values.shape[0], -1)
        bad = ~np.isfinite(values) & (weights[:, None] > 0)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{self.label} returned a non-finite estimate ({float(values[row, col])!r}, coordinate {col}) at a "
                "point of its noise domain: the objective's values overflow in the estimator's arithmetic or are "
                "undefined there; rescale the objective f"
            )
        values = np.where(weights[:, None] > 0, values, 0.0)
        if self.s1 is None:
            p = values.shape[1]
            self.s1 = np.zeros(p)
            self.s2 = np.zeros((p, p))
        if first:
            self.w += float(np.sum(weights))
            # einsum, not BLAS: a BLAS product splits the sum by thread count, which changes the last bits
            self.s1 += np.einsum("n,np->p", weights, values)
        if second:
            self.s2 += np.einsum("np,nq->pq", values * weights[:, None], values)
        self.count += values.shape[0]

    def result(self, param_shape):
        mean = self.s1
        cov = self.s2 - np.outer(mean, mean)
        cov = 0.5 * (cov + cov.T)
        return mean.reshape(param_shape), cov


# ------------------------------------------------------------------------------------ enumeration


def _enumeration(spec, dist, f, opts, limit, fn=None):
    """Moments of ``fn(b)`` (default: the estimate ``given_samples(b)``) over the ``support**k`` sample tuples."""
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
    configs, probs = configs[keep], probs[keep]
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
    """``Σ_b P(b) (ĝ(b) − mean)(ĝ(b) − mean)ᵀ`` over the ``s**k`` sample tuples (second pass of :func:`_enumeration`)."""
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


# ------------------------------------------------------------------------------------ integration


def _coordinate_rules(spec, dist, opts, method, level, rule=None):
    """Per noise coordinate: (nodes, complements 1 − nodes, weights); the fields conditioned on an
    argmax; the fields whose complements are passed to the estimator.

    With ``method="piecewise"`` a field whose break points come with their complements
    (key ``name + "_complement"`` in the break-point dict) is cut at them by
    :func:`complement_pieces`, so pieces next to 1 keep their exact widths, and the
    estimator receives ``noise[name + "_complement"] = 1 − noise[name]`` accurately
    (see :mod:`refgrad.estimators.antithetic`).
    """
    fields = [nf for nf in spec.layout(dist, **opts) if nf.per_sample]
    bps = spec.breakpoints(dist, **opts) if spec.breakpoints is not None else {}
    rules, argmax_fields, complement_fields = [], [], []
    for nf in fields:
        bp = bps.get(nf.name)
        size = int(np.prod(nf.shape))
        if isinstance(bp, str):
            if bp != "argmax":
                raise ValueError(f"unknown break-point declaration {bp!r} for noise field {nf.name!r}")
            argmax_fields.append(nf.name)
            bp = None
        flat_bp = None if bp is None else np.asarray(bp, dtype=float).reshape(size, -1)
        comp = bps.get(nf.name + "_complement") if method == "piecewise" and flat_bp is not None else None
        flat_comp = None if comp is None else np.asarray(comp, dtype=float).reshape(size, -1)
        if flat_comp is not None:
            complement_fields.append(nf.name)
        for j in range(size):
            if flat_comp is not None:
                segs = complement_pieces(flat_bp[j], flat_comp[j])
            else:
                segs = [(a, 1.0 - a, b, 1.0 - b) for a, b in pieces(None if flat_bp is None else flat_bp[j])]
            xs, xcs, ws = [], [], []
            for seg in segs:
                if method == "piecewise":
                    x, xc, w = piece_nodes(seg, rule)
                else:
                    x, w = tanh_sinh(seg[0], seg[2], level)
                    xc = 1.0 - x
                xs.append(x)
                xcs.append(xc)
                ws.append(w)
            rules.append((np.concatenate(xs), np.concatenate(xcs), np.concatenate(ws)))
    return fields, rules, argmax_fields, complement_fields


def _tensor_chunks(rules):
    """Yield (points (N, D), complements (N, D), weights (N,)) over the tensor product of the 1-D rules."""
    sizes = [len(x) for x, _, _ in rules]
    total = int(np.prod(sizes))
    strides = np.cumprod([1] + sizes[::-1][:-1])[::-1]
    for start in range(0, total, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, total))
        pts = np.empty((len(idx), len(rules)))
        cpts = np.empty((len(idx), len(rules)))
        wts = np.ones(len(idx))
        for j, ((x, xc, w), stride, size) in enumerate(zip(rules, strides, sizes)):
            digit = (idx // stride) % size
            pts[:, j] = x[digit]
            cpts[:, j] = xc[digit]
            wts *= w[digit]
        yield pts, cpts, wts


def _unflatten(fields, pts, cpts=None, complement_fields=()):
    noise, col = {}, 0
    for nf in fields:
        size = int(np.prod(nf.shape))
        shape = (-1,) + tuple(nf.shape)
        noise[nf.name] = np.ascontiguousarray(pts[:, col : col + size].reshape(shape))
        if nf.name in complement_fields:
            noise[nf.name + "_complement"] = np.ascontiguousarray(cpts[:, col : col + size].reshape(shape))
        col += size
    return noise


def _uniforms_given_argmax(dist, b_index, v):
    """Uniforms u with argmax(ℓ + gumbel(u)) = b, from the conditional Gumbel of v."""
    from ..random import conditional_gumbel

    logits = dist.params
    ztilde = conditional_gumbel(logits, b_index, v)
    with np.errstate(invalid="ignore", over="ignore"):
        g = ztilde - logits[None]
        u = np.exp(-np.exp(-g))
    u = np.where(np.isfinite(g), u, 0.5)  # impossible categories (ℓ = −inf): any u
    return np.clip(u, np.finfo(float).tiny, 1.0 - 2.0**-53)


def _dist_text(dist):
    """``Bernoulli`` with event shape ``(100,)``, for messages (the parameters may be long)."""
    return f"{type(dist).__name__} with event shape {tuple(getattr(dist, 'event_shape', ()))}"


def _objective_text(f):
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else describe(f)


def _check_node_count(spec, sizes, level):
    """Refuse a tensor rule with more than MAX_QUADRATURE_NODES nodes, before evaluating anything."""
    total = 1
    for size in sizes:
        total *= int(size)
    if total > MAX_QUADRATURE_NODES:
        what = f"at level={level} " if level is not None else ""
        raise ValueError(
            f"exact moments of {spec.name!r} {what}need {total:.3g} evaluations of the estimator "
            f"({len(sizes)}-dimensional tensor rule with {' x '.join(str(int(n)) for n in sizes)} nodes), beyond "
            f"the limit of {MAX_QUADRATURE_NODES:.3g} (refgrad._moments.engine.MAX_QUADRATURE_NODES); "
            "pass a smaller level= or use a smaller problem"
        )


def _passes(spec, method):
    """(rule, first, second) per integration pass: which rule integrates which moment."""
    if method != "piecewise":
        return [(None, True, True)]
    constant = spec.shape_in_noise == "piecewise_constant"
    return [(MIDPOINT, True, constant)] + ([] if constant else [(GAUSS_LEGENDRE_2, False, True)])


def _plan(spec, dist, opts, method, level, rule):
    """The 1-D rules of one pass, checked for dimension and node count before anything is evaluated."""
    fields, rules, argmax_fields, complement_fields = _coordinate_rules(spec, dist, opts, method, level, rule)
    dim = len(rules)
    limit_dim = MAX_PIECEWISE_DIM if method == "piecewise" else MAX_QUADRATURE_DIM
    if dim > limit_dim:
        raise ValueError(_too_many_dimensions(spec, dist, fields, dim, limit_dim, method))
    _check_node_count(spec, [len(r[0]) for r in rules], level if method != "piecewise" else None)
    if len(argmax_fields) > 1:
        raise ValueError(f"exact moments of {spec.name!r}: at most one noise field can be conditioned on an "
                         "argmax")
    if argmax_fields:
        configs, probs = dist.enumerate()
        outer = [(c, p) for c, p in zip(configs, probs) if p > 0]
    else:
        outer = [(None, 1.0)]
    return fields, rules, argmax_fields, complement_fields, outer


def _too_many_dimensions(spec, dist, fields, dim, limit_dim, method):
    """The refusal of an integral of too high a dimension: what it is made of and what is feasible instead."""
    event = int(np.prod(getattr(dist, "event_shape", ()) or (1,)))
    blocks = ", ".join(f"{nf.name}{tuple(nf.shape)}" for nf in fields)
    per_entry = dim // event if event and dim % event == 0 else 0
    room = limit_dim // per_entry if per_entry else 0
    if room >= 1:
        smaller = (f"an event of at most {room} entries ({per_entry} noise block(s) per entry; here {event} entries)"
                   + (f", e.g. one categorical with K <= {room}" if dist.family == "categorical" and room >= 2 else ""))
    else:
        smaller = "no distribution of this family (each entry alone needs more dimensions)" if per_entry else \
            f"a smaller distribution (at most {limit_dim} noise entries in all)"
    return (
        f"exact moments of {spec.name!r} on dist={_dist_text(dist)} need a {dim}-dimensional integral over its noise "
        f"({blocks}); {method} integration is limited to {limit_dim} dimensions. The dimension is set by the "
        f"distribution's event shape; no option of {spec.name!r} reduces it. Feasible: {smaller}. For this problem "
        f"use Monte Carlo instead: refgrad.estimate({spec.name!r}, ...) tested against refgrad.exact.gradient with "
        "refgrad.stats.unbiasedness_test (or refgrad.testing.assert_unbiased), and refgrad.stats.variance_test "
        "for variances."
    )


def _batches(spec, dist, opts, method, level, rule, plan=None):
    """Yield (weights, noise) over the tensor rule of one pass (conditioned on each sample for argmax fields)."""
    fields, rules, argmax_fields, complement_fields, outer = plan or _plan(spec, dist, opts, method, level, rule)
    for config, prob in outer:
        for pts, cpts, wts in _tensor_chunks(rules):
            noise = _unflatten(fields, pts, cpts, complement_fields)
            if config is not None:
                name = argmax_fields[0]
                b_index = np.broadcast_to(np.argmax(config, axis=-1), (len(wts), config.shape[0]))
                noise[name] = _uniforms_given_argmax(dist, np.ascontiguousarray(b_index, dtype=np.int64),
                                                     noise[name])
            yield prob * wts, noise


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


def _uniforms_for_sample(dist, config):
    """One uniform vector (event shape) whose sample ``dist.from_uniforms(u)`` is ``config``."""
    if dist.family == "categorical":
        idx = np.argmax(config, axis=-1)[None].astype(np.int64)
        return _uniforms_given_argmax(dist, idx, np.full((1,) + config.shape, 0.5))[0]
    from scipy import special

    cut = special.expit(-dist.params) if dist.family == "bernoulli" else special.ndtr(-dist.params)
    return np.where(config == 1.0, 0.5 * (cut + 1.0), 0.5 * cut)


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
    from .cost import conditional_draws_check

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


#: Largest logit magnitude (Bernoulli) or spread of finite logits in a row (Categorical) at which a smooth
#: estimate is integrated over its uniforms.  Beyond it the mass of the estimate lies within e^-|ℓ| of an end
#: of a uniform, which no node resolves, and the level-to-level error estimate does not see it.  Measured,
#: REBAR's exact mean against exact.gradient on one bit, f = (b − 0.2)²: relative error 1.1e-10 at ℓ = 15,
#: 1.7e-9 at 20, 2e-7 at 25, 1.3e-4 at 30, 0.92 at 50 (stated error 1.9e-33 there).  The estimators with a
#: latent form (refgrad.estimators.relaxed.LATENT_FORMS) are integrated over the latent instead, at any logit.
UNIFORM_QUADRATURE_LOGIT_LIMIT = 20.0


def _check_uniform_quadrature(spec, dist, method):
    """Refuse the uniforms' quadrature of a smooth estimate at logits it cannot resolve (see the limit above)."""
    if method != "quadrature" or spec.shape_in_noise != "smooth" or dist.family not in ("bernoulli", "categorical"):
        return
    p = np.asarray(dist.params, dtype=float)
    with np.errstate(invalid="ignore"):
        if dist.family == "bernoulli":
            size = float(np.max(np.where(np.isfinite(p), np.abs(p), 0.0))) if p.size else 0.0
        else:
            hi = np.max(np.where(np.isfinite(p), p, -np.inf), axis=-1)
            lo = np.min(np.where(np.isfinite(p), p, np.inf), axis=-1)
            size = float(np.max(np.where(np.isfinite(hi - lo), hi - lo, 0.0))) if p.size else 0.0
    if size > UNIFORM_QUADRATURE_LOGIT_LIMIT:
        what = "logit magnitude" if dist.family == "bernoulli" else "spread of the finite logits in a row"
        raise ValueError(
            f"exact moments of {spec.name!r} integrate over its uniforms, which do not resolve a {what} of "
            f"{size:.4g} (beyond UNIFORM_QUADRATURE_LOGIT_LIMIT = {UNIFORM_QUADRATURE_LOGIT_LIMIT:g}: the mass lies "
            f"within e^-{size:.3g} of an end of a uniform; at 50 REBAR's mean came out 92 % low with a stated error of "
            "1e-33); refused rather than inexact. Use method='monte_carlo' (an estimate with an interval)"
        )


def _moments_by_integration(spec, dist, f, opts, fn, method, level, max_seconds=None, default_level=None):
    from .cost import check_run_time

    _check_uniform_quadrature(spec, dist, method)
    check_run_time(spec, dist, opts, method, level, fn, max_seconds, default_level)
    acc = _integrate(spec, dist, f, opts, fn, method, level)
    if method == "piecewise":
        scale = max(1.0, float(np.max(np.abs(acc.s2))))
        return acc, 64 * np.finfo(float).eps * scale
    coarse = _integrate(spec, dist, f, opts, fn, method, level - 1)
    err = max(float(np.max(np.abs(acc.s1 - coarse.s1))), float(np.max(np.abs(acc.s2 - coarse.s2))))
    return acc, err


def _count_text(n):
    """An integer for an error message: in full up to 15 digits, else as mantissa and power of ten."""
    text = str(int(n))
    return text if len(text) <= 15 else f"{text[0]}.{text[1:4]}e+{len(text) - 1}"


def _is_discrete(dist):
    """Finite support: an integer support size (possibly far beyond float range); np.inf marks a continuous one."""
    size = dist.support_size
    return not (isinstance(size, (float, np.floating)) and not np.isfinite(size))


def _check_level(level):
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Integral):
        raise InputTypeError(f"level must be an integer in [{MIN_LEVEL}, {MAX_LEVEL}]; got {describe(level)} "
                             f"of type {type(level).__name__}")
    level = int(level)
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"level must be an integer in [{MIN_LEVEL}, {MAX_LEVEL}] (tanh-sinh step 2**-level); "
                         f"got {level}")
    return level


def _pick_method(spec, dist, method):
    if not isinstance(method, str):
        raise InputTypeError(f"method must be the string 'auto', 'enumeration', 'piecewise' or 'quadrature'; "
                             f"got {describe(method)} of type {type(method).__name__}")
    if method not in ("auto", "enumeration", "piecewise", "quadrature"):
        raise ValueError(f"method must be 'auto', 'enumeration', 'piecewise', 'quadrature', 'separable' or "
                         f"'monte_carlo'; got {describe(method)}")
    discrete = _is_discrete(dist)
    if method == "auto":
        if (spec.given_samples is not None or spec.outcomes is not None) and discrete:
            method = "enumeration"
        elif spec.shape_in_noise in ("piecewise_constant", "piecewise_linear") and discrete:
            method = "piecewise"
        else:
            method = "quadrature"
    if method == "enumeration" and not discrete:
        raise ValueError(f"{type(dist).__name__} is continuous and cannot be enumerated; use method='quadrature'")
    if method == "enumeration" and spec.given_samples is None and spec.outcomes is None:
        raise ValueError(f"estimator {spec.name!r} does not depend on its noise through discrete samples only; "
                         "use method='quadrature' (or 'piecewise')")
    if method in ("piecewise", "quadrature") and spec.outcomes is not None and spec.breakpoints is None:
        raise ValueError(f"estimator {spec.name!r} is not integrable over its uniforms by {method!r} (its "
                         "discontinuities are not axis-aligned and it declares no break points); its exact moments "
                         "come from its list of outcomes: use method='enumeration' (or 'auto')")
    if method == "piecewise" and spec.shape_in_noise == "smooth":
        raise ValueError(f"estimator {spec.name!r} is not piecewise polynomial in its noise; use method='quadrature'")
    if method == "piecewise" and not discrete:
        raise ValueError(f"{type(dist).__name__} is continuous; estimator {spec.name!r} on it needs "
                         "method='quadrature'")
    return method, discrete


def _default_level(spec, dist, opts):
    fields = [nf for nf in spec.layout(dist, **opts) if nf.per_sample]
    if spec.conditional_draws is not None:
        fields = [nf for nf in spec.layout(dist, **dict(opts, **{spec.conditional_draws[0]: 1}))
                  if nf.name == spec.conditional_draws[1]]
    dim = sum(int(np.prod(nf.shape)) for nf in fields)
    return DEFAULT_LEVEL.get(dim, 3)


def _checked(spec, dist, f, result):
    """Refuse a Moments whose mean or covariance overflowed (like exact.expectation does)."""
    for what, value in (("mean", result.mean), ("covariance", result.cov)):
        if not np.all(np.isfinite(value)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ValueError(
                f"the exact moments of {spec.name!r} with f={_objective_text(f)} on dist={_dist_text(dist)} "
                f"overflowed or are undefined: {what} entry {bad} is {float(value[bad])!r} (sums of the estimate "
                f"or its square beyond the float64 range, {np.finfo(float).max:.3g}); rescale the objective f"
            )
    return result


def moments(spec, dist, f, opts, method="auto", level=None, limit=ENUMERATION_LIMIT, max_seconds=DEFAULT_MAX_SECONDS):
    """See :func:`refgrad.exact.moments`."""
    if max_seconds is not None:
        max_seconds = check_positive_scalar(max_seconds, "max_seconds")
    # Overflow is detected on the results (and on the estimates) and refused with a clear message.
    with np.errstate(over="ignore", invalid="ignore"):
        if isinstance(method, str) and method in ("separable", "auto"):
            from .separable import separable_moments, separable_reason

            # "auto": the separable method only where the full-dimensional one exceeds its limits
            if method == "separable" or (not _full_feasible(spec, dist, opts, limit)
                                         and separable_reason(spec, dist, f, opts) is None):
                return separable_moments(spec, dist, f, opts, None if level is None else _check_level(level), limit,
                                         max_seconds)
        return _moments(spec, dist, f, opts, method, level, limit, max_seconds)


def _rule_product_size(spec, dist, opts, limit):
    """Size of the product over the variables of ``spec.noise_rule``, counted up to ``limit``.

    By the contract of :attr:`EstimatorSpec.noise_rule` this is the number of the estimator's outcomes.
    """
    from .separable import coordinate_dist

    size = 1
    for j in range(int(dist.event_shape[0]) if len(dist.event_shape) else 0):
        size *= sum(len(w) for w, _ in spec.noise_rule(coordinate_dist(dist, j), **opts))
        if size > limit:
            break
    return size


def _full_feasible(spec, dist, opts, limit):
    """Whether the full-dimensional exact method that ``"auto"`` picks fits its size limits."""
    method, _ = _pick_method(spec, dist, "auto")
    if method == "enumeration":
        if spec.outcomes is not None:
            return spec.noise_rule is None or _rule_product_size(spec, dist, opts, limit) <= limit
        size = dist.support_size
        return size <= limit and size ** int(spec.draws(**opts)) <= limit
    form = _latent_form(spec, dist, opts) if method == "quadrature" else None
    if form is not None:
        return _latent_dim(form[1]) <= MAX_QUADRATURE_DIM
    fields = [nf for nf in spec.layout(dist, **opts) if nf.per_sample]
    if spec.conditional_draws is not None:
        fields = [nf for nf in spec.layout(dist, **dict(opts, **{spec.conditional_draws[0]: 1}))
                  if nf.name == spec.conditional_draws[1]]
    dim = sum(int(np.prod(nf.shape)) for nf in fields)
    return dim <= (MAX_PIECEWISE_DIM if method == "piecewise" else MAX_QUADRATURE_DIM)


def _moments(spec, dist, f, opts, method, level, limit, max_seconds=None):
    if level is not None:
        level = _check_level(level)
    method, discrete = _pick_method(spec, dist, method)
    form = _latent_form(spec, dist, opts) if method == "quadrature" else None
    if form is not None and form[2] is not None and _latent_dim(form[1]) > MAX_QUADRATURE_DIM:
        form = None  # REBAR, RELAX: the uniforms' path says what is feasible (its integral is larger still)
    if form is not None:
        default_level = LATENT_LEVEL.get(_latent_dim(form[1]), 3)
        if form[2] is not None and dist.family == "categorical":
            default_level += 1  # REBAR, RELAX on a row: level 5 left 1.2e-10 at (8, 0, 1), τ = 10; level 6 7e-13
        return _checked(spec, dist, f, _latent_moments(spec, dist, f, opts, form, default_level if level is None
                                                       else level, max_seconds, default_level))
    default_level = _default_level(spec, dist, opts)
    if level is None:
        level = default_level
    budget = (max_seconds, default_level)
    cost = int(spec.cost(dist, **opts))
    param_shape = tuple(dist.param_shape)

    if method == "enumeration":
        run = _outcome_enumeration if spec.outcomes is not None else _enumeration
        mean, cov, err, count = run(spec, dist, f, opts, limit)
        return _checked(spec, dist, f, Moments(spec.name, opts, mean, cov, method, err, cost, count))

    if spec.control_variate is not None and isinstance(opts.get("eta"), str) and opts["eta"] == "optimal":
        return _checked(spec, dist, f, _optimal_eta_moments(spec, dist, f, opts, method, level, cost, budget))

    if spec.conditional_draws is not None and method == "quadrature" and discrete:
        mean, cov, err, count = _conditional_draws_moments(spec, dist, f, opts, level, *budget)
        return _checked(spec, dist, f, Moments(spec.name, opts, mean.reshape(param_shape), cov, method, err, cost,
                                            count))

    def fn(noise):
        return spec.compute(dist, f, noise, **opts)

    acc, err = _moments_by_integration(spec, dist, f, opts, fn, method, level, *budget)
    mean, cov = acc.result(param_shape)
    return _checked(spec, dist, f, Moments(spec.name, opts, mean, cov, method, err, cost, acc.count))


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


# ------------------------------------------------------------------------------------ latent-space integration
#
# At extreme logits the uniforms cannot resolve where an estimate's mass lies: for a bit with ℓ = −50 the
# relaxation's slope is large only where the latent z = ℓ + L(u) is near 0, i.e. u within e^-50 of 1, which
# no double next to 1 resolves.  For the estimators listed in refgrad.estimators.relaxed.LATENT_FORMS, whose
# estimate depends on the noise only through the latent z (and the sample b it gives), the integral is taken
# over the latent instead, region by region of the sample b:
#
# * a bit (Bernoulli: z − ℓ logistic, density σ(x)σ(−x) = e^{−|x|}/(1 + e^{−|x|})²) over the half-line of its sample value (b = 1: z > 0), split at ℓ; each node is a
#   distance from 0 or ℓ, exact, so the layer of width τ at z = 0 and the bump at z = ℓ are both resolved;
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
    from ..estimators.relaxed import latent_form

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
    from scipy import special

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
    from scipy import special

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
    import itertools

    per_var = _latent_outcomes(dist)
    for combo in itertools.product(*per_var):
        yield combo


def _latent_rules(combo, level):
    """The 1-D rules of one configuration's axes, in order: list of (variable, coordinate, nodes, weights)."""
    from .quadrature import line_rule

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
    """Largest number of latent axes of one configuration: per variable, its outcome with the most axes
    (not by listing the configurations, which are 2**100 for 100 bits)."""
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
                    row, col = (int(i) for i in np.argwhere(bad)[0])
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
    from .cost import check_run_time

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
        import time

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
