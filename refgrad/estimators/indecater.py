r"""IndeCateR: the CatLog-derivative estimator for products of independent categoricals.

De Smet, Sansone & Zuidberg Dos Martires, "Differentiable sampling of categorical
distributions using the CatLog-derivative trick", NeurIPS 2023 (the CatLog-derivative
trick and the IndeCateR estimator built on it).  For ``q(b) = Π_i q_i(b_i)`` with the
parameters ``φ_i`` of variable ``i`` entering only ``q_i``, summing variable ``i``
exactly given the others gives

.. math::  ∂_{φ_i} E_q[f(b)] = E_{b_{≠i}}\Big[\sum_{k=1}^{K} ∂_{φ_i} q_i(k)\, f(b^{i←k})\Big],

with ``b^{i←k}`` the sample ``b`` with variable ``i`` set to ``k``; IndeCateR estimates
the outer expectation with ``N`` joint samples shared by all ``i``:

.. math::  \hat g_{φ_i} = \frac1N \sum_{n=1}^N \sum_{k=1}^K ∂_{φ_i} q_i(k)\, f\big(b^{(n),\,i←k}\big),
           \qquad b^{(1)}, …, b^{(N)} \sim q \text{ i.i.d.}

Written out per family (``F_{ik} = f(b^{i←k})`` for one sample):

* Categorical, logits ``ℓ``, ``p_i = softmax(ℓ_i)``, ``∂p_{ij}/∂ℓ_{ik} = p_{ij}(δ_{jk} − p_{ik})``:

  .. math::  \hat g_{ik} = p_{ik}\Big(F_{ik} − \sum_j p_{ij} F_{ij}\Big)
             = p_{ik} \sum_j p_{ij}\,(F_{ik} − F_{ij}),

  the right-hand form computed (no cancellation when ``p_{ik} ≈ 1``);
* Bernoulli, ``θ_i = σ(ℓ_i)``: ``ĝ_i = σ(ℓ_i) σ(−ℓ_i) [f(b^{i←1}) − f(b^{i←0})]``;
* GaussianThreshold, ``P(b_i = 1) = Φ(μ_i)``: ``ĝ_i = φ(μ_i) [f(b^{i←1}) − f(b^{i←0})]``.

**Unbiased**: ``b_i`` is independent of ``b_{≠i}``, so ``E[Σ_j p_{ij} F_{ij}] = E[f(b)]``
and ``E[ĝ_{ik}] = p_{ik} E[f(b^{i←k}) − f(b)]``, the exact derivative.  ĝ is also the
conditional expectation of REINFORCE's block ``i`` given ``b_{≠i}``,
``ĝ_i = E[f(b) ∂_{φ_i} \log q(b) \mid b_{≠i}]`` (a Rao-Blackwellisation), so at one
sample each coordinate's variance is at most REINFORCE's (tested exactly; this says
nothing about equal cost).  For a fully factorised ``q`` it is the same estimator as the
local expectation gradients of Titsias & Lázaro-Gredilla (NeurIPS 2015).

**Baseline**: the paper's estimator has none, and none can act: ``Σ_k ∂_{φ_i} q_i(k) = 0``,
so subtracting any ``c(b_{≠i})`` from every ``F_{ik}`` leaves ĝ unchanged -- the first
categorical form above *is* the estimate with the built-in baseline
``E[f \mid b_{≠i}] = Σ_j p_{ij} F_{ij}``.  There is therefore no baseline option.

**Cost** (evaluations of f per estimate): ``N (1 + d (K − 1))`` -- per sample ``f(b)``
once (it is ``F_{i, b_i}`` for every ``i``) and the ``d (K − 1)`` configurations that
differ from ``b`` in one variable; ``N (1 + d)`` for bits.  Evaluating the formula
literally, ``F_{ik}`` for all ``i, k``, would take ``N d K``.

**Source check**: equation numbers are not cited because only the paper's abstract and
introduction could be consulted when this module was written; the formula above is
derived here from the paper's construction and checked against ``exact.gradient``
(exact moments by enumeration, to 1e-12).

Options: ``m`` = N, the number of joint samples (integer ≥ 1, default 1; named as in
``rloo`` -- ``samples`` is taken by :func:`refgrad.exact.moments` for its Monte Carlo
method).  Noise: ``u`` of shape ``(N, *event_shape)``, the uniforms of the N samples
(``b^{(n)} = dist.from_uniforms(u_n)``).  On one bit (d = 1) the estimate is the exact
gradient for every sample (variance 0 at cost 2).
The estimate is a function of the N discrete samples only, so ``exact.moments``
enumerates the ``support**N`` sample tuples (``given_samples``).
"""
import numpy as np

from .._core.checks import check_count, check_sample_count
from ..objectives import as_objective
from ._base import EstimatorSpec, NoiseField, own_noise, register
from .score import sample_breakpoints

__all__ = ["neighbour_values", "indecater_given"]

FAMILIES = ("bernoulli", "categorical", "gaussian_threshold")

#: Largest number of float64 entries of one block of neighbour configurations (32 MiB).
_BLOCK_FLOATS = 2**22


def _variables(dist):
    """``(d, K)``: number of variables and of values per variable (2 for bits)."""
    if dist.family == "categorical":
        return dist.d, dist.K
    return dist.d, 2


def neighbour_values(dist, f, b):
    r"""``F[m, i, k] = f(b_m with variable i set to k)`` for samples ``b`` of shape ``(M, *event_shape)``.

    ``f(b_m)`` is evaluated once per sample and placed at ``k = b_{m,i}`` for every ``i``;
    the ``d (K − 1)`` other configurations are evaluated in blocks of at most
    :data:`_BLOCK_FLOATS` entries.  Returns shape ``(M, d, K)`` (``K = 2`` for bits, index
    ``k`` the bit's value).  Evaluations of f: ``M (1 + d (K − 1))``.
    """
    obj = as_objective(f)
    d, K = _variables(dist)
    M = b.shape[0]
    categorical = dist.family == "categorical"
    current = np.argmax(b, axis=-1) if categorical else b.astype(np.int64)  # (M, d): b_{m,i}
    fb = obj.value(b)
    F = np.empty((M, d, K))
    F[np.arange(M)[:, None], np.arange(d)[None, :], current] = fb[:, None]
    others = K - 1
    total = M * d * others
    if total == 0:
        return F
    values = np.empty(total)
    row = int(np.prod(b.shape[1:]))
    block = max(1, _BLOCK_FLOATS // row)
    for start in range(0, total, block):
        t = np.arange(start, min(start + block, total))
        m, i, j = t // (d * others), (t // others) % d, t % others
        configs = b[m].copy()
        if categorical:
            k = j + (j >= current[m, i])  # the K − 1 values other than b_{m,i}, in order
            configs[np.arange(t.size), i, :] = 0.0
            configs[np.arange(t.size), i, k] = 1.0
        else:
            configs[np.arange(t.size), i] = 1.0 - configs[np.arange(t.size), i]
        values[start:start + t.size] = obj.value(configs)
    values = values.reshape(M, d, others)
    mask = np.ones((M, d, K), dtype=bool)
    mask[np.arange(M)[:, None], np.arange(d)[None, :], current] = False
    F[mask] = values.reshape(-1)  # row-major order of (m, i, k ≠ b_{m,i}) matches (m, i, j)
    return F


def _block_gradient(dist, F):
    r"""``Σ_k ∂_{φ_i} q_i(k) F_{ik}`` per sample: ``(M, *param_shape)`` from ``F`` of shape ``(M, d, K)``."""
    if dist.family == "categorical":
        p = dist.probs  # (d, K)
        diff = F[:, :, :, None] - F[:, :, None, :]  # F_ik − F_ij
        return p[None] * (diff * p[None, :, None, :]).sum(axis=-1)
    # ∂P(b_i = 1)/∂φ_i: σ(ℓ)σ(−ℓ) (Bernoulli), φ(μ) (GaussianThreshold); ∂P(b_i = 0) = −∂P(b_i = 1)
    return dist._dp1()[None] * (F[:, :, 1] - F[:, :, 0])


def indecater_given(dist, f, b, m):
    """IndeCateR estimates from the samples ``b`` of shape ``(n, m, *event_shape)``: ``(n, *param_shape)``."""
    n = b.shape[0]
    event = tuple(dist.event_shape)
    flat = np.ascontiguousarray(b.reshape((n * m,) + event))
    g = _block_gradient(dist, neighbour_values(dist, f, flat))
    return g.reshape((n, m) + tuple(dist.param_shape)).mean(axis=1)


def _indecater(dist, f, noise, m):
    u = noise["u"]  # (n, m, *event)
    n = u.shape[0]
    event = tuple(dist.event_shape)
    b = dist.from_uniforms(u.reshape((n * m,) + event)).reshape((n, m) + event)
    return indecater_given(dist, f, b, m)


def _options(dist, opts):
    m = check_count(opts["m"], "m", minimum=1)
    opts["m"] = check_sample_count(m, 8 * int(np.prod(dist.event_shape)), "m")  # one estimate's noise must fit
    return opts


def _cost(dist, m, **_):
    d, K = _variables(dist)
    return m * (1 + d * (K - 1))


def _breakpoints(dist, m, **_):
    bp = sample_breakpoints(dist)
    return {"u": bp if isinstance(bp, str) else np.broadcast_to(bp, (m,) + bp.shape).copy()}


register(
    EstimatorSpec(
        separable=own_noise,
        name="indecater",
        doc=__doc__,
        families=FAMILIES,
        unbiased=True,
        compute=_indecater,
        given_samples=indecater_given,
        draws=lambda m, **_: m,
        shape_in_noise="piecewise_constant",
        layout=lambda dist, m, **_: (
            NoiseField("u", (m,) + tuple(dist.event_shape), "N uniform blocks, one per joint sample b^(n)"),
        ),
        cost=_cost,
        defaults={"m": 1},
        check_options=_options,
        breakpoints=_breakpoints,
        summary="(1/N) Σ_n Σ_i Σ_k ∂q_i(k)/∂φ_i f(b^(n) with b_i := k): each variable summed exactly given "
        "the others; De Smet, Sansone & Zuidberg Dos Martires 2023 (IndeCateR)",
    )
)
