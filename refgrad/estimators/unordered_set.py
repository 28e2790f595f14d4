r"""The unordered set estimator: REINFORCE over ``k`` samples without replacement, with its built-in baseline.

Kool, van Hoof & Welling, "Estimating gradients for discrete random variables by sampling
without replacement", ICLR 2020 (arXiv:2002.06043): the unordered set policy gradient
estimator and its variant with built-in baseline (the second-order leave-one-out ratio).
Theorem and equation numbers are not cited: only the formulas below could be checked
against the paper's text when this module was written; everything else is derived here.

**Sample.**  ``S`` is an unordered set of ``k`` distinct outcomes of the distribution ``p``
over the finite domain ``D``, drawn by Gumbel-top-k (Vieira 2014; Kool, van Hoof & Welling
2019): with one standard Gumbel ``G_x = −log(−log u_x)`` per outcome, ``S`` is the set of the
``k`` largest ``log p(x) + G_x``.  Its distribution is that of ``k`` draws without replacement
(each draw from ``p`` renormalised on the outcomes not drawn yet), so

.. math::  p(S) = \sum_{(s_1,…,s_k) \text{ ordering of } S} \prod_{i=1}^{k}
           \frac{p(s_i)}{1 − \sum_{j<i} p(s_j)} ,

and ``p^{D∖A}(B)`` is the same sum for the set ``B`` drawn from ``D∖A`` (denominators
``1 − P(A) − Σ_{j<i} p(b_j)``).

**Estimator** (with the leave-one-out ratio
``R(S, s) = p^{D∖\{s\}}(S∖\{s\}) / p(S)``):

.. math::  \hat g = \sum_{s∈S} p(s)\, R(S, s)\, ∇_φ \log p(s)\, \big(f(s) − B_s\big),

with ``B_s = 0`` (``baseline="none"``) or the built-in baseline (``baseline="builtin"``), the unordered set
estimate of ``E_p[f]`` from the other samples,

.. math::  B_s = \sum_{s'∈S} p(s')\, R^{D∖\{s\}}(S, s')\, f(s'), \qquad
           R^{D∖\{s\}}(S, s') = \frac{p^{D∖\{s,s'\}}(S∖\{s,s'\})}{p^{D∖\{s\}}(S∖\{s\})}

(the term ``s' = s`` has ratio 1: ``B_s = p(s) f(s) + Σ_{s'≠s} …``).  Unbiased for both:
``E[\hat g] = Σ_x ∇p(x) (f(x) − E[B_x | x ∈ S])`` because ``S∖\{s\}`` given ``s ∈ S`` is a set
of ``k − 1`` draws from ``D∖\{s\}`` with probability ``p^{D∖\{s\}}(S∖\{s\})``, and for
``k ≥ 2`` the conditional mean of ``B_s`` is ``E_p[f]`` for every ``s``, so the baseline term
is ``E_p[f] Σ_x ∇p(x) = 0``.

**The baseline at k = 1** (not discussed in the paper's formula): ``S∖\{s\}`` is empty, the
formula reads ``B_s = p(s) f(s)``, whose conditional mean is not the same for every ``s``, and
the estimate ``(1 − p(s)) f(s) ∇ \log p(s)`` is **biased**: on ``Bernoulli([0.0])`` with
``f(b) = b`` its exact mean is ``θ(1 − θ)² = 0.125`` against the gradient ``θ(1 − θ) = 0.25``
(checked in the tests).  Here the built-in
baseline is used only for ``k ≥ 2``; at ``k = 1`` it is 0 and the estimator is REINFORCE
(``f(s) ∇ \log p(s)``, since ``p(s) R(\{s\}, s) = 1``), with or without ``baseline``.

**Which distribution the set is drawn from.**  The paper's estimator is for one categorical
variable over ``D``.  Here ``D`` is the **joint** support of the product distribution (``d``
bits or ``d`` K-way categoricals, ``radix**d`` outcomes enumerated in ``dist.enumerate``
order), ``p`` the joint probability, and ``∇_φ \log p(x)`` the score of the joint outcome with
respect to all logits: ``log p(x) = Σ_i \log \mathrm{softmax}(ℓ_i)_{x_i}`` so
``∂ \log p(x)/∂ℓ_{ik} = [x_i = k] − \mathrm{softmax}(ℓ_i)_k`` (Bernoulli: ``x_i − σ(ℓ_i)``), the
sum of the per-coordinate scores (``dist.score``).  The joint support is refused beyond
:data:`MAX_SUPPORT` outcomes (one uniform per outcome per estimate).

**Computing the set probabilities.**  The sums over the ``k!`` orderings are computed by a
recursion over the ``2^k`` subsets ``A`` of ``S`` (the same sum, grouped by the first draw):
``P(A) = p^{D∖A}(S∖A) = Σ_{b∈S∖A} p(b)/m(D∖A) · P(A ∪ \{b\})``, ``P(S) = 1``; then
``p(S) = P(∅)``, ``p^{D∖\{s\}}(S∖\{s\}) = P(\{s\})`` and
``p^{D∖\{s,s'\}}(S∖\{s,s'\}) = P(\{s,s'\})``.  The remaining masses ``m(D∖A)`` are
``m(D∖S) + Σ_{x∈S∖A} p(x)`` with ``m(D∖S)`` summed over the outcomes outside ``S`` (through
suffix sums of the probabilities sorted in decreasing order), never ``1 − P(A)``, which cancels
when ``S`` holds almost all the mass.  ``k`` is refused beyond :data:`MAX_K`.  The recursion is
tested against a brute-force sum over orderings.

**Exact moments.**  ``ĝ`` depends on the noise only through ``S``; ``outcomes=`` lists every
``k``-subset of the possible outcomes with its probability ``p(S)``, and ``exact.moments``
enumerates them (refused when there are more than ``limit`` subsets).  Outcomes of probability
0 (``−inf`` logits) are never drawn (their key is ``−inf``), so ``k`` may not exceed the number
of possible outcomes.  ``k`` equal to that number gives the exact gradient.

**Variance** (exact, trace of the covariance; ``Categorical`` 3 × 3 with logits
``[[0.3, −0.5, 1], [0.4, 0, −1], [1, 0.2, −0.3]]``, ``f = Table(5 + N(0, 1) table, seed 2)``, the
test ``test_builtin_baseline_reduces_variance_on_an_offset_objective``): REINFORCE 43.7; ``k = 2``:
20.2 without baseline, 1.30 with the built-in one; ``k = 4``: 8.54 / 0.387; ``k = 8``: 2.85 / 0.118.
The baseline helps when f has a large common offset; for f centred near 0 it can add variance
(3 × 3 support, ``f`` a standard normal table, ``k = 2``: 0.89 with, 0.48 without).

**Noise layout**: ``u`` of shape ``(support,)``, one uniform per joint outcome per estimate.

**Cost**: ``k`` evaluations of f per estimate.

Options: ``k`` (integer in ``[1, min(number of possible outcomes, MAX_K)]``; default None: 2, or 1
where only one outcome is possible),
``baseline`` (``"builtin"`` or ``"none"``, default ``"builtin"``).
"""
import itertools
import math

import numpy as np

from .._core.checks import InputTypeError, check_count, describe
from ..objectives import evaluate
from ..random import gumbel
from ._base import EstimatorSpec, NoiseField, register

__all__ = ["MAX_SUPPORT", "MAX_K", "joint_support", "subset_probabilities", "set_estimates", "top_k_sets"]

FAMILIES = ("bernoulli", "categorical")

#: Largest joint support (outcomes) the estimator accepts: one uniform per outcome per estimate.
MAX_SUPPORT = 2**16

#: Largest sample size: the set probabilities take ``k 2^k`` operations per set.
MAX_K = 10

BASELINES = ("builtin", "none")

_CHUNK = 4096


class _Joint:
    """The joint support: configurations, probabilities, log-probabilities, and suffix masses.

    ``order``: indices by decreasing probability (ties: lower index first); ``rank[x]``: the
    position of ``x`` in it; ``tail[r] = Σ_{rank ≥ r} p`` (summed from the smallest).
    """

    def __init__(self, dist):
        self.configs, self.probs = dist.enumerate(limit=MAX_SUPPORT)
        self.logp = dist.log_prob(self.configs)
        self.order = np.argsort(-self.probs, kind="stable")
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(self.order.size)
        ascending = self.probs[self.order][::-1]
        self.tail = np.concatenate([np.cumsum(ascending)[::-1], [0.0]])
        self.possible = int(np.count_nonzero(self.probs > 0.0))

    def outside_mass(self, sets):
        """``m(D∖S) = Σ_{x∉S} p(x)`` for index sets of shape ``(N, k)``, as sums of rank ranges."""
        r = np.sort(self.rank[sets], axis=1)
        lo = np.concatenate([np.zeros((r.shape[0], 1), dtype=r.dtype), r + 1], axis=1)
        hi = np.concatenate([r, np.full((r.shape[0], 1), self.order.size, dtype=r.dtype)], axis=1)
        return np.sum(np.where(hi > lo, self.tail[lo] - self.tail[hi], 0.0), axis=1)


def joint_support(dist):
    """The joint support of ``dist`` as used by the estimator (see :class:`_Joint`)."""
    return _Joint(dist)


def subset_probabilities(p_set, outside):
    r"""``P(A) = p^{D∖A}(S∖A)`` for every subset ``A`` of each set, by recursion over subsets.

    Parameters
    ----------
    p_set : ndarray, shape (N, k)
        The probabilities ``p(s_1), …, p(s_k)`` of each set's elements.
    outside : ndarray, shape (N,)
        ``m(D∖S)``, the mass outside each set.

    Returns
    -------
    ndarray, shape (N, 2**k)
        Entry ``[n, mask]`` is ``P(A)`` for ``A = {s_i : bit i of mask}``; ``P(S) = 1``.
    """
    n, k = p_set.shape
    full = (1 << k) - 1
    out = np.zeros((n, full + 1))
    out[:, full] = 1.0
    bits = [1 << i for i in range(k)]
    for mask in sorted(range(full), key=lambda m: -bin(m).count("1")):
        rest = [i for i in range(k) if not mask & bits[i]]
        remaining = outside + p_set[:, rest].sum(axis=1)  # m(D∖A): positive terms only
        acc = np.zeros(n)
        for i in rest:
            acc += p_set[:, i] * out[:, mask | bits[i]]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, mask] = np.where(remaining > 0.0, acc / remaining, 0.0)
    return out


def _weights(p_set, f_set, outside, baseline):
    """``w_i = p(s_i) R(S, s_i) (f(s_i) − B_{s_i})`` and ``p(S)`` for sets of shape ``(N, k)``."""
    n, k = p_set.shape
    P = subset_probabilities(p_set, outside)
    p_S = P[:, 0]
    single = np.stack([P[:, 1 << i] for i in range(k)], axis=1)  # p^{D∖s_i}(S∖s_i)
    coeff = p_set * single / p_S[:, None]  # p(s_i) R(S, s_i)
    if baseline == "none" or k == 1:
        return coeff * f_set, p_S
    B = p_set * f_set  # the term s' = s (ratio 1)
    for i in range(k):
        for j in range(k):
            if j != i:
                ratio = P[:, (1 << i) | (1 << j)] / single[:, i]  # R^{D∖s_i}(S, s_j)
                B[:, i] += p_set[:, j] * ratio * f_set[:, j]
    return coeff * (f_set - B), p_S


def set_estimates(dist, f, joint, sets, baseline):
    """The estimates ``ĝ(S)`` for index sets of shape ``(N, k)`` (k evaluations of f each) and ``p(S)``.

    The one code path of both :func:`estimate` (``compute``) and the exact-moments enumeration.
    """
    n, k = sets.shape
    b = joint.configs[sets.reshape(-1)]
    f_set = evaluate(f, b).reshape(n, k)
    score = dist.score(b).reshape((n, k) + tuple(dist.param_shape))
    w, p_S = _weights(joint.probs[sets], f_set, joint.outside_mass(sets), baseline)
    return np.einsum("nk,nk...->n...", w, score), p_S


def top_k_sets(joint, u, k):
    """The index sets (sorted, shape ``(n, k)``) of the ``k`` largest ``log p(x) + G(u_x)``."""
    keys = joint.logp[None, :] + gumbel(u)
    if k == keys.shape[1]:
        top = np.broadcast_to(np.arange(k), (keys.shape[0], k))
    else:
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return np.sort(top, axis=1)


def _unordered_set(dist, f, noise, k, baseline):
    joint = _Joint(dist)
    sets = top_k_sets(joint, noise["u"], k)
    out = np.empty((sets.shape[0],) + tuple(dist.param_shape))
    for start in range(0, sets.shape[0], _CHUNK):
        out[start:start + _CHUNK] = set_estimates(dist, f, joint, sets[start:start + _CHUNK], baseline)[0]
    return out


def _outcomes(dist, f, limit, k, baseline):
    joint = _Joint(dist)
    possible = np.flatnonzero(joint.probs > 0.0)
    count = math.comb(possible.size, k)
    if count > limit:
        raise ValueError(
            f"exact moments of 'unordered_set' enumerate the {count} sets of k = {k} of the {possible.size} "
            f"possible outcomes, beyond limit={limit}; use method='monte_carlo' (an estimate with its interval, in "
            "seconds) or a smaller k or problem; a larger limit= enumerates them all with no time guard"
        )
    combos = itertools.combinations(possible.tolist(), k)
    while True:
        block = np.array(list(itertools.islice(combos, _CHUNK)), dtype=np.int64).reshape(-1, k)
        if block.shape[0] == 0:
            return
        g, p_S = set_estimates(dist, f, joint, block, baseline)
        yield p_S, g


def _options(dist, opts):
    size = dist.support_size
    if size > MAX_SUPPORT:
        raise ValueError(
            f"unordered_set draws from the joint support, one uniform per outcome: {dist.family} with d = "
            f"{dist.d} has {size} outcomes, beyond MAX_SUPPORT = {MAX_SUPPORT}; use a smaller distribution or "
            "another estimator (reinforce, rloo)"
        )
    possible = int(np.count_nonzero(dist.enumerate(limit=MAX_SUPPORT)[1] > 0.0))
    top = min(possible, MAX_K)
    if opts["k"] is None:
        opts["k"] = min(2, possible)
        return _check_baseline(opts)
    k = check_count(opts["k"], "k", minimum=1)
    if k > top:
        raise ValueError(
            f"k must be an integer in [1, {top}] (the {possible} possible outcomes of the joint support, at most "
            f"MAX_K = {MAX_K}); got {k}"
        )
    opts["k"] = k
    return _check_baseline(opts)


def _check_baseline(opts):
    b = opts["baseline"]
    if not isinstance(b, str):
        raise InputTypeError(f"baseline must be one of {BASELINES}; got {describe(b)} of type {type(b).__name__}")
    if b not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}; got {describe(b)}")
    return opts


register(
    EstimatorSpec(
        name="unordered_set",
        doc=__doc__,
        families=FAMILIES,
        unbiased=True,
        compute=_unordered_set,
        outcomes=_outcomes,
        shape_in_noise="piecewise_constant",
        layout=lambda dist, **_: (
            NoiseField("u", (dist.support_size,), "one uniform per joint outcome: Gumbel-top-k keys "
                       "log p(x) − log(−log u_x)"),
        ),
        cost=lambda dist, k, **_: k,
        defaults={"k": None, "baseline": "builtin"},
        check_options=_options,
        summary="Σ_{s∈S} p(s) R(S,s) (f(s) − B_s) ∇log p(s), S = k outcomes without replacement (Gumbel-top-k), "
        "B_s the built-in leave-one-out baseline; Kool, van Hoof & Welling 2020",
    )
)
