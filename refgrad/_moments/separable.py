r"""Exact moments at any dimension for separable objectives ``f(b) = Σ_j f_j(b_j)``.

Used by :func:`refgrad.exact.moments` (method ``"separable"``, and ``"auto"`` where the
full-dimensional methods refuse).

The decomposition
-----------------
Every estimator in the catalog that works variable by variable (independent noise per
variable) evaluates f at ``L`` points built coordinate-wise from the noise, and
differentiates f at such points.  For a separable f the value at a point is a sum of
per-variable contributions and the gradient with respect to variable ``j`` involves
``f_j`` only, so the estimate of variable ``j``'s parameters has the form

.. math::  \hat g_j = X_j + A_j^\top \sum_{r \ne j} F_r ,

where ``X_j = g(q_j, f_j; ξ_j)`` is the same estimator on variable ``j``'s
one-variable problem at its own noise ``ξ_j``, ``F_r(ξ_r) ∈ R^L`` is variable ``r``'s
contribution to the ``L`` values of f, and ``A_j(ξ_j) ∈ R^{L×P}`` is how the estimate
of variable ``j`` (``P`` parameters) responds to them (each estimator states its
``F`` and ``A``: :attr:`refgrad.estimators.EstimatorSpec.separable`).  Examples:
REINFORCE ``F_r = f_r(b_r)``, ``A_j = ∂ log q(b_j)``; ARM ``F_r = f_r(b¹_r) − f_r(b²_r)``,
``A_j = u_j − ½``; RLOO ``L = m`` sample values; REBAR ``L = 2``,
``F_r = (f_r(b_r), f_r(σ_τ(z̃_r)))``, ``A_j = (s_j, −η_j s_j)``.  Relaxed
(pathwise) estimators have ``L = 0``.

With the noise independent across variables, write ``μ_{−j} = Σ_{r≠j} E[F_r]``,
``Y_j = X_j + A_j^\top μ_{−j}`` and the centred sums ``R̃``.  Then, exactly,

.. math::
    E[\hat g_j] &= E[X_j] + E[A_j]^\top μ_{−j}, \\
    \mathrm{Cov}(\hat g_j) &= \mathrm{Cov}(Y_j) + \textstyle\sum_{l,m} E[A_{j,l} A_{j,m}^\top]\,
        \big(\sum_{r≠j} \mathrm{Cov}(F_r)\big)_{lm}, \\
    \mathrm{Cov}(\hat g_j, \hat g_k) &= \mathrm{Cov}(Y_j, F_j)\, E[A_k]
        + E[A_j]^\top \mathrm{Cov}(F_k, Y_k)
        + \textstyle\sum_{l,m} \mathrm{Cov}(A_{j,l}, F_{j,m})\, \mathrm{Cov}(F_{k,l}, A_{k,m})^\top
        + E[A_j]^\top \big(\sum_{r∉\{j,k\}} \mathrm{Cov}(F_r)\big) E[A_k]
        \quad (j ≠ k),

so everything follows from the mean and covariance of the stacked vector
``φ_j = (F_j, A_j, X_j)`` over one variable's noise: an integral of the dimension of
one variable's noise, computed by the same exact methods (enumeration, piecewise
Gauss–Legendre, tanh-sinh quadrature) as the one-variable problem.  Written in centred
form, no large mean is subtracted from a large second moment.

Which objectives decompose: :class:`refgrad.objectives.Separable`,
:class:`~refgrad.objectives.SquaredDistance`, :class:`~refgrad.objectives.Linear`
(per-variable targets or weights), and a :class:`~refgrad.objectives.Table` that is
additive (``values[b] = c + Σ_j t_j[b_j]`` to rounding: checked entry by entry).
Which estimators: those declaring ``separable`` (every estimator whose noise is
per variable).  Refused, with the reason: estimators defined on the joint support
(sum_and_sample, unordered_set), vimco (a multi-sample objective), RELAX with a
non-constant network ``r_ψ`` (it reads every variable at once).

REBAR with ``eta="optimal"``: ``ĝ = a + η ⊙ c``, and the parts decompose with the same
``F`` (``a`` is the estimate at η = 0, ``c`` its change to η = 1), so the stacked ``(a, c)``
is decomposed as one estimate with twice the parameters, and the exact optimal
``η*_j = −E[a_j c_j] / E[c_j²]`` and the moments of ``a + η* ⊙ c`` follow from its mean and
covariance, as in :func:`refgrad.exact.moments` on small problems.
"""
import contextlib

import numpy as np

from .._core.checks import describe
from .._oracle.separable import coordinate_dist, coordinate_terms
from ..distributions import ENUMERATION_LIMIT
from .base import Moments, _Accumulator, _checked, _objective_text
from .engine import _enumeration, _moments_by_integration
from .plan import _default_level, _pick_method

__all__ = ["separable_moments", "separable_reason"]

def separable_reason(spec, dist, f, opts):
    """None if (spec, dist, f, opts) decomposes, else the reason it does not (for the error message)."""
    if spec.separable is None:
        return (f"estimator {spec.name!r} does not decompose over the variables (it is defined on the joint "
                "support, or has no separable declaration)")
    if getattr(dist, "event_shape", None) is None or len(dist.event_shape) == 0:
        return "the distribution has no variables to separate"
    hook = _affine_parts(spec, dist, opts) if _is_optimal_eta(spec, opts) else spec.separable(dist, **opts)
    if hook is None:
        return f"estimator {spec.name!r} with these options does not decompose ({_options_text(opts)})"
    if coordinate_terms(f, dist) is None:
        return (f"the objective {describe(f)} is not separable: pass refgrad.objectives.Separable, SquaredDistance, "
                "Linear or an additive Table")
    return None


def _options_text(opts):
    return ", ".join(f"{k}={describe(v)}" for k, v in sorted(opts.items()))


# ------------------------------------------------------------------------------ per-variable moments


def _stacked(F, A, X):
    n = X.shape[0]
    return np.concatenate([F.reshape(n, -1), A.reshape(n, -1), X.reshape(n, -1)], axis=1)


def _variable_moments(spec, dist1, f1, opts1, features, level, limit, max_seconds, x_fn=None, width=1):
    """Mean and covariance of φ = (F, A, X) over one variable's noise; (mean, cov, L, err, count).

    ``x_fn(dist1, f1, noise, **opts1)``: the one-variable estimate (default ``spec.compute``), with ``width``
    times the variable's parameters (2 for the stacked parts (a, c) of an estimator affine in η).
    """
    method, _ = _pick_method(spec, dist1, "auto")
    P = int(np.prod(dist1.param_shape)) * width
    shape = {}

    def record(F, A, X):
        shape["L"] = F.shape[1]
        if A.shape[:2] != F.shape[:2] or int(np.prod(A.shape[2:])) != P or X.shape[0] != F.shape[0]:
            raise AssertionError(f"separable features of {spec.name!r} have shapes F {F.shape}, A {A.shape}, "
                                 f"X {X.shape}")
        return _stacked(F, A, X)

    if method == "enumeration" and spec.outcomes is None and x_fn is None:
        def fn_b(b):
            F, A = features(dist1, f1, b=b, **opts1)
            return record(F, A, spec.given_samples(dist1, f1, b, **opts1))

        mean, cov, err, count = _enumeration(spec, dist1, f1, opts1, limit, fn=fn_b)
        return mean, cov, shape["L"], err, count
    compute = spec.compute if x_fn is None else x_fn

    def fn_noise(noise):
        F, A = features(dist1, f1, noise=noise, **opts1)
        return record(F, A, compute(dist1, f1, noise, **opts1))

    if method == "enumeration":
        if spec.noise_rule is None:
            raise ValueError(f"estimator {spec.name!r}: the separable method needs an exact rule over one "
                             "variable's noise (EstimatorSpec.noise_rule), not only a list of outcomes")
        acc = _Accumulator(f"estimator {spec.name!r} with f={_objective_text(f1)}")
        for w, noise in spec.noise_rule(dist1, **opts1):
            acc.add(np.asarray(w, dtype=float), fn_noise(noise))
        mean, cov = acc.result((-1,))
        return mean, cov, shape["L"], 64 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(acc.s2)))), acc.count

    default_level = _default_level(spec, dist1, opts1)
    lvl = default_level if level is None else level
    acc, err = _moments_by_integration(spec, dist1, f1, opts1, fn_noise, method, lvl, max_seconds, default_level)
    mean, cov = acc.result((-1,))
    return mean, cov, shape["L"], err, acc.count


def _assemble(stats, P):
    """Mean (d P,) and covariance (d P, d P) from the per-variable moments of φ = (F, A, X)."""
    d = len(stats)
    L = stats[0][2]
    mF = np.array([m[:L] for m, _, _ in stats]).reshape(d, L)
    mA = np.array([m[L:L + L * P] for m, _, _ in stats]).reshape(d, L, P)
    mX = np.array([m[L + L * P:] for m, _, _ in stats]).reshape(d, P)
    iF, iA, iX = slice(0, L), slice(L, L + L * P), slice(L + L * P, L + L * P + P)
    CF = np.array([c[iF, iF] for _, c, _ in stats]).reshape(d, L, L)
    CAF = np.array([c[iA, iF] for _, c, _ in stats]).reshape(d, L, P, L)
    CAA = np.array([c[iA, iA] for _, c, _ in stats]).reshape(d, L, P, L, P)
    CXA = np.array([c[iX, iA] for _, c, _ in stats]).reshape(d, P, L, P)
    CXF = np.array([c[iX, iF] for _, c, _ in stats]).reshape(d, P, L)
    CXX = np.array([c[iX, iX] for _, c, _ in stats]).reshape(d, P, P)

    mu = mF.sum(axis=0)[None, :] - mF  # μ_{−j}, (d, L)
    CF_total = CF.sum(axis=0)
    mean = mX + np.einsum("jl,jlp->jp", mu, mA)
    # Cov(Y_j, F_j), Y_j = X_j + A_jᵀ μ_{−j}
    B = CXF + np.einsum("jl,jlpm->jpm", mu, CAF)
    cov_y = (CXX + np.einsum("jl,jplq->jpq", mu, CXA) + np.einsum("jl,jqlp->jpq", mu, CXA)
             + np.einsum("jl,jm,jlpmq->jpq", mu, mu, CAA))
    EAA = CAA + np.einsum("jlp,jmq->jlpmq", mA, mA)
    rest = CF_total[None] - CF  # Σ_{r≠j} Cov(F_r)
    diag = cov_y + np.einsum("jlpmq,jlm->jpq", EAA, rest)

    cross = (np.einsum("jpl,klq->jkpq", B, mA) + np.einsum("kql,jlp->jkpq", B, mA)
             + np.einsum("jlpm,kmql->jkpq", CAF, CAF)
             + np.einsum("jlp,lm,kmq->jkpq", mA, CF_total, mA)
             - np.einsum("jlp,jlm,kmq->jkpq", mA, CF, mA)
             - np.einsum("jlp,klm,kmq->jkpq", mA, CF, mA))
    idx = np.arange(d)
    cross[idx, idx] = diag
    cov = cross.transpose(0, 2, 1, 3).reshape(d * P, d * P)
    cov = 0.5 * (cov + cov.T)
    scale = 1.0 + float(np.max(np.abs(mF.sum(axis=0)), initial=0.0)) * (1.0 + float(np.max(np.abs(mA), initial=0.0)))
    return mean.reshape(-1), cov, scale


def _is_optimal_eta(spec, opts):
    eta = opts.get("eta")
    return spec.control_variate is not None and isinstance(eta, str) and eta == "optimal"


def _affine_parts(spec, dist, opts):
    """For ``ĝ = a + η ⊙ c`` (``eta="optimal"``): the separable form of the stacked parts ``(a, c)``.

    ``a`` is the estimate at η = 0 and ``c`` the change from η = 0 to η = 1, so their ``A`` are the
    declared ``A`` at η = 0 and its change; ``F`` must not depend on η (checked).  Returns
    ``(coordinate_options, features, x_fn)`` or None.
    """
    fixed = [spec.separable(dist, **dict(opts, eta=e)) for e in (0.0, 1.0)]
    if any(h is None or h[1] is None for h in fixed):
        return None
    (options0, feat0), (_, feat1) = fixed

    def coordinate_options(j):
        return dict(options0(j), eta="optimal")

    def features(dist1, f1, noise=None, b=None, **opts1):
        F0, A0 = feat0(dist1, f1, noise=noise, b=b, **dict(opts1, eta=0.0))
        F1, A1 = feat1(dist1, f1, noise=noise, b=b, **dict(opts1, eta=1.0))
        if not np.array_equal(F0, F1):
            raise AssertionError(f"separable features F of {spec.name!r} depend on eta")
        n, L = F0.shape
        return F0, np.concatenate([A0.reshape(n, L, -1), (A1 - A0).reshape(n, L, -1)], axis=2)

    def x_fn(dist1, f1, noise, **opts1):
        a, c = spec.control_variate(dist1, f1, noise, **opts1)
        return np.concatenate([a.reshape(len(a), -1), c.reshape(len(c), -1)], axis=1)

    return coordinate_options, features, x_fn


def _optimal_eta_combination(spec, dist, opts, mean2, cov2, err, count, cost):
    """Moments of ``a + η* ⊙ c`` from those of the stacked ``(a, c)`` per variable, ``η* = −E[a c] / E[c²]``."""
    param_shape = tuple(dist.param_shape)
    d = param_shape[0]
    P = int(np.prod(param_shape[1:])) if len(param_shape) > 1 else 1
    m = mean2.reshape(d, 2, P)
    C = cov2.reshape(d, 2, P, d, 2, P)
    ma, mc = m[:, 0].reshape(-1), m[:, 1].reshape(-1)
    Caa, Cac = C[:, 0, :, :, 0, :].reshape(d * P, d * P), C[:, 0, :, :, 1, :].reshape(d * P, d * P)
    Cca, Ccc = C[:, 1, :, :, 0, :].reshape(d * P, d * P), C[:, 1, :, :, 1, :].reshape(d * P, d * P)
    e_ac = np.diag(Cac) + ma * mc
    e_cc = np.diag(Ccc) + mc * mc
    eta = np.where(e_cc > 0, -e_ac / np.where(e_cc > 0, e_cc, 1.0), 0.0)
    mean = ma + eta * mc
    cov = Caa + eta[:, None] * Cca + Cac * eta[None, :] + eta[:, None] * Ccc * eta[None, :]
    cov = 0.5 * (cov + cov.T)
    eta = eta.reshape(param_shape)
    return Moments(spec.name, dict(opts, eta=eta), mean.reshape(param_shape), cov, "separable", err, cost, count,
                     eta=eta)


@contextlib.contextmanager
def _variable_context(spec, j, d, max_seconds):
    """Re-raise a one-variable refusal with where it comes from (the message names a one-variable event)."""
    try:
        yield
    except ValueError as exc:
        budget = "" if max_seconds is None else f"; max_seconds={max_seconds:g} is shared by the {d} variables"
        raise ValueError(f"exact moments of {spec.name!r} by the separable method integrate each of the {d} "
                         f"variables over its own noise (variable {j} refused{budget}): {exc}") from exc


def separable_moments(spec, dist, f, opts, level=None, limit=None, max_seconds=None, *, solve):
    """Exact moments of ``spec`` on ``(dist, f)`` for separable ``f``; a :class:`refgrad._moments.base.Moments`.

    With ``eta="optimal"`` (an estimator affine in η) the stacked parts ``(a, c)`` are decomposed as one
    estimate of twice the parameters (:func:`_affine_parts`), then combined with the exact optimal η.
    ``solve(spec, dist1, f1, opts1, method, level, limit, max_seconds)`` gives the moments of one variable's
    problem where its estimate does not mix with the others' (the full-dimensional methods of
    :mod:`refgrad._moments.dispatch`, passed in by their caller).
    """
    reason = separable_reason(spec, dist, f, opts)
    if reason is not None:
        raise ValueError(f"exact moments by the separable method are not available: {reason}")
    limit = ENUMERATION_LIMIT if limit is None else limit
    optimal = _is_optimal_eta(spec, opts)
    if optimal:
        coordinate_options, features, x_fn = _affine_parts(spec, dist, opts)
    else:
        (coordinate_options, features), x_fn = spec.separable(dist, **opts), None
    terms = coordinate_terms(f, dist)
    d = len(terms)
    per_variable_seconds = None if max_seconds is None else max_seconds / d
    param_shape = tuple(dist.param_shape)
    P = int(np.prod(param_shape[1:])) if len(param_shape) > 1 else 1
    cost = int(spec.cost(dist, **opts))
    count = 0
    if features is None:  # own noise and term only: block-diagonal covariance
        mean = np.empty((d, P))
        cov = np.zeros((d, P, d, P))
        err = 0.0
        for j in range(d):
            with _variable_context(spec, j, d, max_seconds):
                m = solve(spec, coordinate_dist(dist, j), terms[j], coordinate_options(j), "auto", level,
                               limit, per_variable_seconds)
            mean[j] = m.mean.reshape(-1)
            cov[j, :, j, :] = m.cov
            err = max(err, m.error)
            count += m.evaluations
        result = Moments(spec.name, opts, mean.reshape(param_shape), cov.reshape(d * P, d * P), "separable", err,
                           cost, count)
        return _checked(spec, dist, f, result)
    width = 2 if optimal else 1
    stats, errs = [], []
    for j in range(d):
        with _variable_context(spec, j, d, max_seconds):
            m, c, L, e, n = _variable_moments(spec, coordinate_dist(dist, j), terms[j], coordinate_options(j),
                                              features, level, limit, per_variable_seconds, x_fn=x_fn, width=width)
        stats.append((m, c, L))
        errs.append(e)
        count += n
    flat_mean, cov, scale = _assemble(stats, width * P)
    err = float(np.sum(errs)) * scale * scale
    if optimal:
        result = _optimal_eta_combination(spec, dist, opts, flat_mean, cov, err, count, cost)
    else:
        result = Moments(spec.name, opts, flat_mean.reshape(param_shape), cov, "separable", err, cost, count)
    return _checked(spec, dist, f, result)
