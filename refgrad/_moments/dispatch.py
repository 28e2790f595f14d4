"""Exact estimator moments: the choice of method (enumeration, piecewise, quadrature, latent, separable).

Used by :func:`refgrad.exact.moments`; see its docstring for the methods.
"""
import numpy as np

from .._core.checks import check_positive_scalar
from .._oracle.separable import coordinate_dist
from ..distributions import ENUMERATION_LIMIT
from .base import DEFAULT_MAX_SECONDS, MAX_PIECEWISE_DIM, MAX_QUADRATURE_DIM, Moments, _check_level, _checked
from .engine import (
    _conditional_draws_moments,
    _enumeration,
    _moments_by_integration,
    _optimal_eta_moments,
    _outcome_enumeration,
)
from .latent import LATENT_LEVEL, _latent_dim, _latent_form, _latent_moments
from .plan import _default_level, _pick_method
from .separable import separable_moments, separable_reason


def moments(spec, dist, f, opts, method="auto", level=None, limit=ENUMERATION_LIMIT, max_seconds=DEFAULT_MAX_SECONDS):
    """See :func:`refgrad.exact.moments`."""
    if max_seconds is not None:
        max_seconds = check_positive_scalar(max_seconds, "max_seconds")
    # Overflow is detected on the results (and on the estimates) and refused with a clear message.
    with np.errstate(over="ignore", invalid="ignore"):
        if isinstance(method, str) and method in ("separable", "auto"):
            # "auto": the separable method only where the full-dimensional one exceeds its limits
            if method == "separable" or (not _full_feasible(spec, dist, opts, limit)
                                         and separable_reason(spec, dist, f, opts) is None):
                return separable_moments(spec, dist, f, opts, None if level is None else _check_level(level), limit,
                                         max_seconds, solve=_moments)
        return _moments(spec, dist, f, opts, method, level, limit, max_seconds)


def _rule_product_size(spec, dist, opts, limit):
    """Size of the product over the variables of ``spec.noise_rule``, counted up to ``limit``.

    By the contract of :attr:`EstimatorSpec.noise_rule` this is the number of the estimator's outcomes.
    """
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
