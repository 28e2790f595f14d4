r"""Multi-sample objectives: functions of ``k`` i.i.d. samples, and their exact expectation and gradient.

A single-sample objective ``f(b)`` (:mod:`refgrad.objectives`) defines ``E_{q_φ}[f(b)]``.  A
**multi-sample** objective ``L(b^1, …, b^k)`` defines

.. math::  \mathcal L(φ) = E_{b^1, …, b^k \overset{iid}{\sim} q_φ}\big[L(b^1, …, b^k)\big],

the kind of objective of importance-weighted bounds (Burda, Grosse & Salakhutdinov 2016) and of
VIMCO (Mnih & Rezende, "Variational inference for Monte Carlo objectives", ICML 2016), whose
multi-sample bound is the log of the mean of ``k`` weights:

.. math::  L(b^{1:k}) = \log \frac1k \sum_{i=1}^k w(b^i) = \operatorname{logsumexp}_i \log w(b^i) − \log k

(:class:`LogMeanExp`, computed from the log weights, so weights beyond the float64 range are fine).
In :class:`LogMeanExp` the log weight ``log w`` is a single-sample objective and does not depend
on ``φ`` (as ``f`` does not).  :class:`IWAEBound` is the importance-weighted bound proper, with
``log w_φ(b) = log p(x, b) − log q_φ(b)`` and ``q_φ`` the distribution being differentiated: its
exact gradient has a second term from the weights' dependence on ``φ`` (derived in its docstring).

These objectives are a different kind from the single-sample ones: their ``value`` takes a batch
of ``k``-tuples, shape ``(n, k, *event_shape)``.  They are not callables and not
:class:`~refgrad.objectives.Objective` instances, so the single-sample estimators refuse them
(``as_objective`` raises ``ValueError``); the estimator ``"vimco"`` takes them, and
:func:`refgrad.exact.expectation` / :func:`refgrad.exact.gradient` hand them to
:func:`expectation` / :func:`gradient` below.

Exact oracles
-------------
By enumerating the ``S^k`` sample tuples (``S`` the support size) in chunks: with
``M_j(b) = E[L \mid b^j = b]`` (the expectation over the other ``k − 1`` samples),

.. math::  \mathcal L = \sum_b q(b) M_1(b), \qquad
           ∇_φ \mathcal L = \sum_{j=1}^k ∇_φ \Big(\sum_b q_φ(b)\, M_j(b)\Big)\Big|_{M_j \text{ fixed}}

(the product rule over the ``k`` factors of ``Π_i q_φ(b^i)``).  Each term of the second sum is
the exact gradient of a single-sample objective, the table ``M_j``, computed by
:func:`refgrad.exact.gradient` from expected flip differences (no cancelling score-function sum).
For a symmetric ``L`` (``LogMeanExp``, ``IWAEBound``) all ``M_j`` are equal; an ``IWAEBound`` adds
the table of its normalised weights (its docstring).  The log weights are evaluated once per
configuration of nonzero probability (``S`` evaluations), never at impossible ones; a generic
:class:`MultiSampleObjective` is evaluated on every tuple.  Sums are float64 (``np.bincount``);
accuracy ``≲ S^k eps Σ|terms|`` in the worst case, far below 1e-12 at the sizes allowed by
``limit`` in the tests (checked against finite differences of :func:`expectation` and brute-force
loops over the tuples in ``tests/test_multisample.py``).
"""
import numpy as np
from scipy import special

from ._core.checks import InputTypeError, as_float_array, check_count, describe
from .distributions import ENUMERATION_LIMIT
from .objectives import Objective, Table, as_objective

__all__ = ["MultiSampleObjective", "LogMeanExp", "IWAEBound", "expectation", "gradient", "gradient_parts",
           "conditional_tables"]

#: The families whose ``q_φ`` an :class:`IWAEBound` can take: the distribution's logits are ``φ``.
IWAE_FAMILIES = ("bernoulli", "categorical")

_CHUNK = 65536


class MultiSampleObjective:
    """A function of ``k`` samples: ``value(b) -> (n,)`` for ``b`` of shape ``(n, k, *event_shape)``.

    Parameters
    ----------
    k : int
        Number of samples, ``≥ 1``.
    fn : callable
        ``fn(b) -> (n,)`` real values for a batch ``b`` of shape ``(n, k, *event_shape)`` (bits, or
        one-hot rows for categoricals, as for single-sample objectives).
    name : str, optional
        Shown in error messages.
    """

    def __init__(self, k, fn, name=None):
        self.k = check_count(k, "k")
        if not callable(fn):
            raise InputTypeError(f"fn must be callable (b of shape (n, k, *event) -> (n,)); got {describe(fn)}")
        self.fn = fn
        self.name = str(name) if name is not None else f"MultiSampleObjective(k={self.k})"

    def __repr__(self):
        return f"<multi-sample objective, k={self.k}, for estimator 'vimco': {self.name!r}>"

    def _check_batch(self, b):
        b = as_float_array(b, "b")
        if b.ndim < 3 or b.shape[1] != self.k:
            raise ValueError(
                f"b must have shape (n, k={self.k}, *event_shape) (a batch of {self.k}-tuples of samples) for "
                f"multi-sample objective {self.name!r}; got shape {b.shape}"
            )
        return b

    def value(self, b):
        """Values ``L(b^1, …, b^k)`` of each tuple, shape ``(n,)``, checked finite."""
        b = self._check_batch(b)
        return self._checked(self._value(b), b.shape[0])

    def _value(self, b):
        return self.fn(b)

    def _checked(self, out, n):
        out = as_float_array(out, f"the output of multi-sample objective {self.name!r}")
        if out.shape != (n,):
            raise ValueError(
                f"multi-sample objective {self.name!r} must return shape ({n},) for {n} tuples; got {out.shape}"
            )
        if not np.isfinite(out).all():
            i = int(np.flatnonzero(~np.isfinite(out))[0])
            raise ValueError(f"multi-sample objective {self.name!r} returned {float(out[i])!r} at tuple {i}; "
                             "values must be finite")
        return out

    def _prepare(self, configs, dist):
        """What :meth:`_tuple_values` needs about the support's live configurations (nothing here)."""
        return configs

    def _tuple_values(self, prepared, digits):
        """Values on the tuples ``configs[digits]`` (``digits`` of shape ``(N, k)``): one call of ``fn``."""
        return self.value(prepared[digits])


class LogMeanExp(MultiSampleObjective):
    r"""``L(b^{1:k}) = \log \frac1k \sum_i \exp(\log w(b^i))``, the multi-sample bound of VIMCO / IWAE.

    Parameters
    ----------
    log_weight : Objective or callable
        The single-sample log weight ``log w(b)`` (``(n, *event) -> (n,)``, finite); it does not
        depend on the distribution's parameters.
    k : int
        Number of samples, ``≥ 1`` (``k = 1``: ``L = log w``).
    name : str, optional
    """

    def __init__(self, log_weight, k, name=None):
        if isinstance(log_weight, MultiSampleObjective) or not (
                isinstance(log_weight, Objective) or callable(log_weight)):
            raise InputTypeError(
                f"log_weight must be a single-sample refgrad Objective or a callable b -> (n,); got "
                f"{describe(log_weight)}"
            )
        obj = as_objective(log_weight)
        super().__init__(k, obj.value, name=name if name is not None else f"LogMeanExp({obj.name}, k={int(k)})")
        self.log_weight = obj

    def log_weights(self, b):
        """``log w(b^i)`` for ``b`` of shape ``(n, k, *event)``: shape ``(n, k)`` (``n k`` evaluations)."""
        b = self._check_batch(b)
        n = b.shape[0]
        return self.log_weight.value(b.reshape((n * self.k,) + b.shape[2:])).reshape(n, self.k)

    @staticmethod
    def from_log_weights(lw):
        """``logsumexp(lw, axis=-1) − log k`` for log weights ``lw`` of shape ``(..., k)``."""
        return special.logsumexp(lw, axis=-1) - np.log(lw.shape[-1])

    def _value(self, b):
        return self.from_log_weights(self.log_weights(b))

    def _prepare(self, configs, dist):
        return self.log_weight.value(np.ascontiguousarray(configs))  # once per live configuration

    def _tuple_values(self, prepared, digits):
        return self.from_log_weights(prepared[digits])


class IWAEBound(MultiSampleObjective):
    r"""The importance-weighted bound ``L_k(φ) = E_{b^{1:k} ∼ q_φ}[\log \frac1k \sum_i w_φ(b^i)]``.

    Burda, Grosse & Salakhutdinov, "Importance weighted autoencoders", ICLR 2016 (the bound ``L_k``);
    Mnih & Rezende, "Variational inference for Monte Carlo objectives", ICML 2016 (its gradient with
    respect to the proposal).  The log weight is

    .. math::  \log w_φ(b) = \log p(x, b) − \log q_φ(b),

    with ``log p(x, b)`` given by ``log_joint`` and ``q_φ`` **the distribution the bound is evaluated
    or differentiated under** (the ``dist`` passed to :func:`refgrad.exact.expectation`,
    :func:`refgrad.exact.gradient`, :func:`refgrad.exact.moments` or :func:`refgrad.estimate`):
    Bernoulli or Categorical, ``φ`` its logits.  So the weights move with ``φ``, unlike those of
    :class:`LogMeanExp`; ``k = 1`` gives the ELBO ``E_q[\log p(x, b) − \log q_φ(b)]``.

    **Gradient** (derived here).  Write ``F_φ(b^{1:k}) = \log \frac1k \sum_i w_φ(b^i)``,
    ``s = ∇_φ \log q_φ`` and ``\bar w_i = w_φ(b^i) / \sum_l w_φ(b^l)``.  The bound is
    ``\sum_{b^{1:k}} \prod_i q_φ(b^i)\, F_φ(b^{1:k})``; the product rule over the ``k`` factors
    ``q_φ(b^i)`` (``∇ \prod_i q_φ(b^i) = \prod_i q_φ(b^i) \sum_j s(b^j)``) and over ``F_φ``, with

    .. math::  ∇_φ F_φ = \sum_i \bar w_i\, ∇_φ \log w_φ(b^i) = −\sum_i \bar w_i\, s(b^i),

    gives

    .. math::  ∇_φ L_k = E\Big[\sum_{j=1}^k F_φ(b^{1:k})\, s(b^j)\Big] − E\Big[\sum_{j=1}^k \bar w_j\, s(b^j)\Big]
               = E\Big[\sum_{j=1}^k \big(F_φ(b^{1:k}) − \bar w_j\big)\, s(b^j)\Big].

    The first term is the gradient of :meth:`frozen`, the same bound with ``\log q`` held at the
    current ``φ`` (a :class:`LogMeanExp` of the fixed log weight); the second is what that
    treatment leaves out.  At ``k = 1`` it vanishes (``\bar w_1 = 1`` and ``E[s] = 0``: why the
    ``−∇ \log q`` term drops out of an ELBO gradient); for ``k ≥ 2`` it does not in general, since
    ``\bar w_j`` depends on ``b^j``, so the frozen treatment is biased
    (``tests/test_multisample.py`` measures the bias exactly).

    **Exact oracles.**  By symmetry each ``j`` contributes the same, and each expectation
    ``E[T(b^{1:k}) s(b^1)] = ∇_φ \sum_b q_φ(b)\, E[T \mid b^1 = b]`` with the conditional table held
    fixed, so with ``M(b) = E[F_φ \mid b^1 = b]`` and ``W(b) = E[\bar w_1 \mid b^1 = b]`` (both by
    enumerating the ``S^k`` tuples, ``log w_φ`` evaluated once per live configuration)

    .. math::  ∇_φ L_k = k\, ∇_φ \sum_b q_φ(b)\,\big(M(b) − W(b)\big)\Big|_{M, W \text{ fixed}},

    computed by :func:`refgrad.exact.gradient` of the table ``M − W`` (expected flip differences);
    :func:`gradient_parts` returns the two terms separately.  Checked against central finite
    differences of :func:`expectation` (which re-evaluates ``log q`` at ``φ ± h``) and against
    ``mpmath.diff`` of the bound written out in mpmath (``tests/test_multisample.py``).

    Parameters
    ----------
    log_joint : Objective or callable
        ``log p(x, b)`` for a batch of configurations ``b`` of shape ``(n, *event_shape)`` (bits, or
        one-hot rows for categoricals) -> ``(n,)``, finite (the data ``x`` is fixed inside it).
    k : int
        Number of samples, ``≥ 1``.
    name : str, optional

    Raises
    ------
    ValueError
        ``k`` not an integer ``≥ 1``; ``log_joint`` not a single-sample objective or callable; (when
        evaluated) ``log_joint`` returning a wrong shape or a non-finite value, or a ``dist`` that is
        not Bernoulli or Categorical -- each message names the argument.
    """

    def __init__(self, log_joint, k, name=None):
        if isinstance(log_joint, MultiSampleObjective) or not (
                isinstance(log_joint, Objective) or callable(log_joint)):
            raise InputTypeError(
                f"log_joint must be a single-sample refgrad Objective or a callable b -> (n,) giving log p(x, b); "
                f"got {describe(log_joint)}"
            )
        obj = as_objective(log_joint)
        super().__init__(k, self._needs_dist, name=name if name is not None else f"IWAEBound({obj.name}, k={k})")
        self.log_joint = obj

    def _needs_dist(self, b):
        raise ValueError(f"{self.name!r} depends on the distribution's logits: call value(b, dist)")

    def _check_dist(self, dist):
        if getattr(dist, "family", None) not in IWAE_FAMILIES or not hasattr(dist, "log_prob"):
            raise ValueError(
                f"dist must be a Bernoulli or Categorical refgrad distribution (the q_φ of the log weight "
                f"log p(x, b) − log q_φ(b) of {self.name!r}); got {describe(dist)}"
            )
        return dist

    def _joint(self, configs):
        try:
            return self.log_joint.value(configs)
        except ValueError as err:
            raise ValueError(f"log_joint of {self.name!r} is not usable: {err}") from err

    def single_log_weights(self, configs, dist):
        """``log p(x, b) − log q_φ(b)`` for configurations of shape ``(n, *event)``: shape ``(n,)``.

        ``+inf`` at a configuration with ``q_φ(b) = 0`` (never sampled, never enumerated).
        """
        self._check_dist(dist)
        return self._joint(configs) - dist.log_prob(configs)

    def log_weights(self, b, dist):
        """``log w_φ(b^i)`` for ``b`` of shape ``(n, k, *event)``: shape ``(n, k)`` (``n k`` evaluations)."""
        b = self._check_batch(b)
        n = b.shape[0]
        flat = b.reshape((n * self.k,) + b.shape[2:])
        return self.single_log_weights(flat, dist).reshape(n, self.k)

    def value(self, b, dist=None):
        """``F_φ(b^{1:k}) = logsumexp_i log w_φ(b^i) − log k`` for each tuple, shape ``(n,)``, checked finite.

        ``dist`` (the ``q_φ``) is required: the weights depend on it.
        """
        if dist is None:
            self._needs_dist(b)
        b = self._check_batch(b)
        return self._checked(LogMeanExp.from_log_weights(self.log_weights(b, dist)), b.shape[0])

    @staticmethod
    def normalised_weights(lw):
        r"""``\bar w_i = \exp(\log w_i − \operatorname{logsumexp}_l \log w_l)`` for ``lw`` of shape ``(..., k)``."""
        return special.softmax(lw, axis=-1)

    def frozen(self, dist):
        """The bound with ``log q`` held at ``dist``'s logits: ``LogMeanExp(log p(x, ·) − log q_{φ0}, k)``.

        Its expectation under ``dist`` equals this bound's; its gradient is the first term only (the
        φ-independent treatment of the weights; biased for ``k ≥ 2``, see the class docstring).
        """
        self._check_dist(dist)
        frozen_dist = type(dist)(np.array(dist.params, dtype=float, copy=True))
        return LogMeanExp(lambda z: self._joint(z) - frozen_dist.log_prob(z), self.k,
                          name=f"{self.name} with log q frozen at the given logits")

    def _prepare(self, configs, dist):
        return self.single_log_weights(np.ascontiguousarray(configs), dist)  # once per live configuration

    def _tuple_values(self, prepared, digits):
        return LogMeanExp.from_log_weights(prepared[digits])


# ------------------------------------------------------------------------------------ exact oracles


def _check_inputs(dist, f, limit):
    if not isinstance(f, MultiSampleObjective):
        raise InputTypeError(f"f must be a MultiSampleObjective (e.g. LogMeanExp(log_weight, k)); got {describe(f)}")
    if not all(hasattr(dist, a) for a in ("support_size", "enumerate", "score", "param_shape", "event_shape")):
        raise ValueError(f"dist must be a refgrad distribution (Bernoulli or Categorical); got {describe(dist)}")
    if isinstance(f, IWAEBound):
        f._check_dist(dist)
    limit = check_count(limit, "limit")
    size = dist.support_size
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"dist must have a finite support to enumerate; got {describe(dist)}")
    if size > limit or size**f.k > limit:
        raise ValueError(
            f"the exact oracle of multi-sample objective {f.name!r} enumerates support**k = {size}**{f.k} = "
            f"{size ** f.k} sample tuples, beyond limit={limit}; pass a larger limit= (e.g. limit={size ** f.k}) or "
            "a smaller problem"
        )
    return limit


def conditional_tables(dist, f, limit=ENUMERATION_LIMIT):
    r"""``(probs, M)``: the support's probabilities ``(S,)`` and ``M[j, a] = E[L | b^j = config a]`` ``(k, S)``.

    ``M[j, a]`` sums ``Π_{i≠j} q(b^i) L(b^{1:k})`` over the tuples with ``b^j`` the ``a``-th
    configuration (``dist.enumerate`` order); 0 where ``q(a) = 0``.  Enumerates ``S^k`` tuples,
    refused beyond ``limit`` (``ValueError`` naming it).  For an :class:`IWAEBound` ``L`` is
    ``F_φ`` with ``q_φ = dist``.
    """
    probs, M, _ = _tables(dist, f, limit, weights=False)
    return probs, M


def _tables(dist, f, limit, weights):
    """``(probs, M, W)``: :func:`conditional_tables`, and with ``weights`` (an :class:`IWAEBound`)
    ``W[a] = E[\bar w_1 | b^1 = config a]`` ``(S,)`` from the same enumeration (else ``None``)."""
    limit = _check_inputs(dist, f, limit)
    configs, probs = dist.enumerate(limit=limit)
    keep = np.flatnonzero(probs > 0.0)
    live, p = configs[keep], probs[keep]
    s, k = len(p), f.k
    prepared = f._prepare(live, dist)
    M = np.zeros((k, s))
    W = np.zeros(s) if weights else None
    powers = s ** np.arange(k - 1, -1, -1)
    for start in range(0, s**k, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, s**k))
        digits = (idx[:, None] // powers[None, :]) % s
        vals = f._tuple_values(prepared, digits)
        pd = p[digits]
        for j in range(k):
            others = np.prod(np.delete(pd, j, axis=1), axis=1)
            M[j] += np.bincount(digits[:, j], weights=others * vals, minlength=s)
            if weights and j == 0:
                wbar = IWAEBound.normalised_weights(prepared[digits])[:, 0]
                W += np.bincount(digits[:, 0], weights=others * wbar, minlength=s)
    full = np.zeros((k, probs.shape[0]))
    full[:, keep] = M
    if weights:
        W_full = np.zeros(probs.shape[0])
        W_full[keep] = W
        W = W_full
    return probs, full, W


def expectation(dist, f, limit=ENUMERATION_LIMIT):
    r"""Exact ``E[L(b^1, …, b^k)]`` over ``k`` i.i.d. samples of ``dist``, by enumerating ``S^k`` tuples.

    Parameters
    ----------
    dist : Bernoulli or Categorical (any refgrad distribution with a finite support)
    f : MultiSampleObjective
    limit : int
        Largest number of tuples ``S^k`` enumerated (default ``2**22``); beyond it ``ValueError``.

    Returns
    -------
    float
    """
    probs, M = conditional_tables(dist, f, limit)
    return float(np.dot(probs, M[0]))


def gradient(dist, f, limit=ENUMERATION_LIMIT):
    r"""Exact ``∇_φ E[L(b^1, …, b^k)]``, shape ``dist.param_shape``.

    ``Σ_j`` exact gradient of the single-sample table ``M_j(b) = E[L | b^j = b]`` (module
    docstring), each by :func:`refgrad.exact.gradient` (expected flip differences).  For an
    :class:`IWAEBound`, ``k`` times the exact gradient of the table ``M − W``, which includes the
    weights' dependence on ``φ`` (derivation in :class:`IWAEBound`; the two terms apart:
    :func:`gradient_parts`).
    """
    from . import exact

    if isinstance(f, IWAEBound):
        score_part, weight_part = gradient_parts(dist, f, limit)
        return score_part + weight_part
    probs, M = conditional_tables(dist, f, limit)
    d = int(dist.param_shape[0])
    radix = int(dist.param_shape[1]) if len(dist.param_shape) == 2 else 2
    if isinstance(f, LogMeanExp):  # symmetric in its samples: M_1 = ... = M_k
        return f.k * exact.gradient(dist, Table(M[0].reshape((radix,) * d)))
    return sum(exact.gradient(dist, Table(row.reshape((radix,) * d))) for row in M)


def gradient_parts(dist, f, limit=ENUMERATION_LIMIT):
    r"""The two terms of the exact gradient of an :class:`IWAEBound` ``f`` under ``q_φ = dist``.

    Returns
    -------
    score_part : ndarray
        ``E[Σ_j F_φ(b^{1:k}) s(b^j)] = k ∇_φ Σ_b q_φ(b) M(b)`` with ``M`` fixed: the gradient of
        ``f.frozen(dist)``, i.e. of the bound with ``log q`` treated as a fixed log weight.
    weight_part : ndarray
        ``E[Σ_j ar w_j ∇_φ \log w_φ(b^j)] = −E[Σ_j ar w_j s(b^j)] = −k ∇_φ Σ_b q_φ(b) W(b)`` with
        ``W`` fixed: the term the frozen treatment leaves out (0 at ``k = 1``).

    Their sum is :func:`gradient` (``exact.gradient(dist, f)``); both by expected flip differences.
    """
    from . import exact

    if not isinstance(f, IWAEBound):
        raise InputTypeError(f"f must be an IWAEBound(log_joint, k); got {describe(f)}")
    probs, M, W = _tables(dist, f, limit, weights=True)
    d = int(dist.param_shape[0])
    radix = int(dist.param_shape[1]) if len(dist.param_shape) == 2 else 2
    shape = (radix,) * d
    score_part = f.k * exact.gradient(dist, Table(M[0].reshape(shape)))
    weight_part = -f.k * exact.gradient(dist, Table(W.reshape(shape)))
    return score_part, weight_part
