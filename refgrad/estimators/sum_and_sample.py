r"""Sum-and-sample: REINFORCE Rao-Blackwellised over the k most probable configurations.

Liu, Regier, Tripuraneni, Jordan & McAuliffe, "Rao-Blackwellized stochastic gradients for
discrete distributions", ICML 2019 (PMLR 97:4023-4031).  For any unbiased per-sample
estimator ``h(z)`` of ``∇ E_q[f]`` with ``z ~ q`` on a finite set, and any set ``T`` of
configurations fixed before sampling, split the expectation over ``T`` and its complement
``C``:

.. math::  E_q[h(z)] = \sum_{t∈T} q(t)\, h(t) + q(C)\, E_{j \sim q(\cdot \mid C)}[h(j)],

and estimate only the second term by one sample ``j`` from ``q`` renormalised on ``C``:

.. math::  \hat g = \sum_{t∈T} q(t)\, f(t)\, ∇_φ \log q(t) + q(C)\, f(j)\, ∇_φ \log q(j),
           \qquad j \sim q(\cdot)/q(C) \text{ on } C,

here with the REINFORCE integrand ``h(z) = f(z) ∇_φ \log q(z)`` and ``T`` the ``k`` most
probable configurations.  **Unbiased** for every fixed ``T`` (the display above); ``T``
depends on φ only through a piecewise-constant choice, so nothing is differentiated through
it.  **Variance**: ĝ is ``E[h(z) \mid j]`` for the coupling ``z = j`` with probability
``q(C)``, else ``z ~ q(\cdot \mid T)`` (which makes ``z ~ q``), so by Rao-Blackwell
``Cov(ĝ) ⪯ Cov(h)``: every coordinate's variance is at most REINFORCE's at one sample
(checked exactly in the tests; it says nothing about equal cost).  ``k = 0`` is REINFORCE
itself (``T`` empty, ``j ~ q``); ``k = S``, the support size, gives the exact gradient.

**Which distribution the sum runs over.**  The paper states the construction for one
categorical variable with ``K`` categories.  Here it is applied to the **joint** support of
the product distribution (``d`` bits or ``d`` K-way categoricals, ``radix**d``
configurations): ``T`` is the ``k`` jointly most probable configurations, ``j`` one joint
configuration from the rest.  This is the paper's estimator for the categorical over the
joint support, so its unbiasedness and variance argument carry over unchanged; a
per-variable variant would need a sample of all other variables for each variable and is a
different estimator.  For ``d = 1`` the joint support is the variable's own ``K`` values.
Ties in probability are broken by the lower enumeration index (``dist.enumerate`` order),
so ``T`` is a deterministic function of the parameters.

**Baseline**: none.  Only the abstract of the paper could be consulted when this module was
written, so no baseline option is claimed from it, and no equation numbers are cited; the
formula above is derived here and checked against ``exact.gradient`` (to 1e-12).

**Noise layout**: one uniform ``u`` (field shape ``(1,)``) per estimate.  ``j`` is the
inverse CDF of ``q(\cdot \mid C)`` at ``u``, ``C`` taken in enumeration order:
``j = C_i`` for ``c_{i-1} ≤ u < c_i`` with ``c_i = Σ_{l ≤ i} q(C_l) / q(C)``
(zero-probability configurations, pieces of zero width, are never chosen).  The estimate is
piecewise constant in ``u`` with break points ``c_i``, declared, so ``exact.moments``
integrates it exactly (method "piecewise": one midpoint per piece).  Enumeration by
``given_samples`` does not apply: the sample is drawn from ``q`` renormalised on ``C``, not
from ``q`` (the enumeration oracle weights samples by ``q``).  Inverse-CDF resolution:
configurations with ``q(C_l)/q(C)`` below about ``1e-16`` are reached with probability off by
rounding (their contribution to the moments is of that order).

**Cost** (evaluations of f per estimate): ``k + 1`` (``k = S``, the support size: ``S``).  A batch of ``n``
estimates shares the ``k`` summed evaluations: ``k + n`` evaluations in one call.

**Limit**: finding ``T`` enumerates the joint support, so a distribution with more than
:data:`refgrad.distributions.ENUMERATION_LIMIT` configurations is refused (ValueError naming
both sizes).

Options: ``k`` (integer in ``[0, S]``, default 1), the number of configurations summed exactly;
``k = S`` sums the whole support (the exact gradient, variance 0).
"""
import numpy as np

from .._core.checks import check_count
from ..distributions import ENUMERATION_LIMIT
from ..objectives import evaluate
from ._base import EstimatorSpec, NoiseField, register

__all__ = ["split_support", "sampled_index", "summed_part", "sampled_part"]

FAMILIES = ("bernoulli", "categorical", "gaussian_threshold")


def split_support(dist, k):
    """``(configs, probs, top, rest, rest_mass, cum)`` of the joint support.

    ``top``: indices of the ``k`` most probable configurations (ties: lower index first);
    ``rest``: the other indices in enumeration order; ``rest_mass = Σ q(rest)`` (summed
    directly, not ``1 − q(top)``); ``cum``: the normalised cumulative masses ``c_i`` of
    ``rest`` (empty if ``rest_mass = 0``).
    """
    configs, probs = dist.enumerate()
    order = np.argsort(-probs, kind="stable")
    top = order[:k]
    rest = np.sort(order[k:])
    rest_mass = float(np.sum(probs[rest])) if rest.size else 0.0
    cum = np.cumsum(probs[rest]) / rest_mass if rest_mass > 0.0 else np.empty(0)
    return configs, probs, top, rest, rest_mass, cum


def sampled_index(cum, rest_probs, u):
    """Index into ``rest`` of the inverse-CDF sample for uniforms ``u`` of shape ``(n,)``."""
    if cum.size == 0:
        return np.zeros(u.shape[0], dtype=np.int64)
    last = int(np.flatnonzero(rest_probs > 0.0)[-1])  # rounding: u beyond the last c_i
    return np.minimum(np.searchsorted(cum, u, side="right"), last)


def _weighted_reinforce(dist, f, b, weights):
    """``w_n f(b_n) ∇ log q(b_n)`` for configurations ``b`` of shape ``(n, *event)``."""
    fb = evaluate(f, b)
    s = dist.score(b)
    shape = (-1,) + (1,) * len(dist.param_shape)
    # weight 0 (an impossible configuration, or q(C) = 0): the term is 0, also where its score is infinite
    return np.where(weights.reshape(shape) > 0.0, (weights * fb).reshape(shape) * s, 0.0)


def summed_part(dist, f, configs, probs, top):
    """``Σ_{t∈T} q(t) f(t) ∇ log q(t)``, shape ``param_shape`` (k evaluations of f)."""
    if top.size == 0:
        return np.zeros(dist.param_shape)
    return _weighted_reinforce(dist, f, configs[top], probs[top]).sum(axis=0)


def sampled_part(dist, f, configs, rest, rest_mass, j):
    """``q(C) f(j) ∇ log q(j)`` for sample indices ``j`` into ``rest``: ``(n, *param_shape)``."""
    b = configs[rest[j]]
    return _weighted_reinforce(dist, f, b, np.full(j.shape[0], rest_mass))


def _sum_and_sample(dist, f, noise, k):
    u = noise["u"][:, 0]
    configs, probs, top, rest, rest_mass, cum = split_support(dist, k)
    g = np.broadcast_to(summed_part(dist, f, configs, probs, top), (u.shape[0],) + tuple(dist.param_shape)).copy()
    if rest.size:
        g += sampled_part(dist, f, configs, rest, rest_mass, sampled_index(cum, probs[rest], u))
    return g


def _options(dist, opts):
    size = dist.support_size
    if size > ENUMERATION_LIMIT:
        raise ValueError(
            f"sum_and_sample finds the k most probable configurations by enumerating the joint support: "
            f"{dist.family} with d = {dist.d} has {size} configurations, beyond ENUMERATION_LIMIT = "
            f"{ENUMERATION_LIMIT}; use a smaller distribution or another estimator (reinforce, rloo)"
        )
    opts["k"] = check_count(opts["k"], "k", minimum=0, maximum=size)
    return opts


def _cost(dist, k, **_):
    return k + (1 if k < dist.support_size else 0)


def _breakpoints(dist, k, **_):
    _, probs, _, rest, _, cum = split_support(dist, k)
    inner = cum[:-1] if cum.size else cum
    return {"u": inner[None, :].copy() if inner.size else np.full((1, 1), np.nan)}


register(
    EstimatorSpec(
        name="sum_and_sample",
        doc=__doc__,
        families=FAMILIES,
        unbiased=True,
        compute=_sum_and_sample,
        shape_in_noise="piecewise_constant",
        layout=lambda dist, k, **_: (
            NoiseField("u", (1,), "one uniform: inverse CDF of q renormalised on the configurations outside the "
                       "top k"),
        ),
        cost=_cost,
        defaults={"k": 1},
        check_options=_options,
        breakpoints=_breakpoints,
        summary="Σ_{top k} q(t) f(t) ∇log q(t) + q(rest) f(j) ∇log q(j), j ~ q on the rest: REINFORCE "
        "Rao-Blackwellised over the k jointly most probable configurations; Liu, Regier, Tripuraneni, Jordan & "
        "McAuliffe 2019",
    )
)
