"""Quadrature and enumeration plans: per-coordinate rules, node counts, batches and the method choice."""
import numpy as np

from .._core.checks import InputTypeError, describe
from .base import (
    _CHUNK,
    DEFAULT_LEVEL,
    MAX_PIECEWISE_DIM,
    MAX_QUADRATURE_DIM,
    MAX_QUADRATURE_NODES,
    _dist_text,
    _is_discrete,
)
from .quadrature import GAUSS_LEGENDRE_2, MIDPOINT, complement_pieces, piece_nodes, pieces, tanh_sinh

# ------------------------------------------------------------------------------------ integration


def _coordinate_rules(spec, dist, opts, method, level, rule=None):
    """Per noise coordinate, the rule ``(nodes, complements 1 − nodes, weights)``, and the special fields.

    Also returns the fields conditioned on an argmax and the fields whose complements are passed to the estimator.

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
            f"the limit of {MAX_QUADRATURE_NODES:.3g} (refgrad._moments.base.MAX_QUADRATURE_NODES); "
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
                noise[name] = dist._uniforms_given_argmax(np.ascontiguousarray(b_index, dtype=np.int64),
                                                     noise[name])
            yield prob * wts, noise


def _uniforms_for_sample(dist, config):
    """One uniform vector (event shape) whose sample ``dist.from_uniforms(u)`` is ``config``."""
    return dist._uniforms_for(config)


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
