r"""Multi-sample objectives: functions of ``k`` i.i.d. samples, and their exact expectation and gradient.

A single-sample objective ``f(b)`` (:mod:`refgrad.objectives`) defines ``E_{q_φ}[f(b)]``.  A
**multi-sample** objective ``L(b^1, …, b^k)`` defines

.. math::  \mathcal L(φ) = E_{b^1, …, b^k \overset{iid}{\sim} q_φ}\big[L(b^1, …, b^k)\big],

the kind of objective of importance-weighted bounds (Burda, Grosse & Salakhutdinov 2016) and of
VIMCO (Mnih & Rezende, "Variational inference for Monte Carlo objectives", ICML 2016), whose
multi-sample bound is the log of the mean of ``k`` weights:

.. math::  L(b^{1:k}) = \log \frac1k \sum_{i=1}^k w(b^i) = \operatorname{logsumexp}_i \log w(b^i) − \log k

(:class:`LogMeanExp`, computed from the log weights, so weights beyond the float64 range are fine).
The log weight ``log w`` is a single-sample objective here and does not depend on ``φ`` (as ``f``
does not); for an importance weight ``p(x, b)/q_φ(b)`` see :mod:`refgrad.estimators.vimco`.

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
For a symmetric ``L`` (``LogMeanExp``) all ``M_j`` are equal.  The log weights are evaluated once
per configuration of nonzero probability (``S`` evaluations), never at impossible ones; a generic
:class:`MultiSampleObjective` is evaluated on every tuple.  Sums are float64 (``np.bincount``);
accuracy ``≲ S^k eps Σ|terms|`` in the worst case, far below 1e-12 at the sizes allowed by
``limit`` in the tests (checked against finite differences of :func:`expectation` and brute-force
loops over the tuples in ``tests/test_multisample.py``).
"""
import numpy as np
from scipy import special

from ._checks import InputTypeError, as_float_array, check_count, describe
from .distributions import ENUMERATION_LIMIT
from .objectives import Objective, Table, as_objective

__all__ = ["MultiSampleObjective", "LogMeanExp", "expectation", "gradient", "conditional_tables"]

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

    def _prepare(self, configs):
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

    def _prepare(self, configs):
        return self.log_weight.value(np.ascontiguousarray(configs))  # once per live configuration

    def _tuple_values(self, prepared, digits):
        return self.from_log_weights(prepared[digits])


# ------------------------------------------------------------------------------------ exact oracles


def _check_inputs(dist, f, limit):
    if not isinstance(f, MultiSampleObjective):
        raise InputTypeError(f"f must be a MultiSampleObjective (e.g. LogMeanExp(log_weight, k)); got {describe(f)}")
    if not all(hasattr(dist, a) for a in ("support_size", "enumerate", "score", "param_shape", "event_shape")):
        raise ValueError(f"dist must be a refgrad distribution (Bernoulli or Categorical); got {describe(dist)}")
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
    refused beyond ``limit`` (``ValueError`` naming it).
    """
    limit = _check_inputs(dist, f, limit)
    configs, probs = dist.enumerate(limit=limit)
    keep = np.flatnonzero(probs > 0.0)
    live, p = configs[keep], probs[keep]
    s, k = len(p), f.k
    prepared = f._prepare(live)
    M = np.zeros((k, s))
    powers = s ** np.arange(k - 1, -1, -1)
    for start in range(0, s**k, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, s**k))
        digits = (idx[:, None] // powers[None, :]) % s
        vals = f._tuple_values(prepared, digits)
        pd = p[digits]
        for j in range(k):
            others = np.prod(np.delete(pd, j, axis=1), axis=1)
            M[j] += np.bincount(digits[:, j], weights=others * vals, minlength=s)
    full = np.zeros((k, probs.shape[0]))
    full[:, keep] = M
    return probs, full


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
    docstring), each by :func:`refgrad.exact.gradient` (expected flip differences).
    """
    from . import exact

    probs, M = conditional_tables(dist, f, limit)
    d = int(dist.param_shape[0])
    radix = int(dist.param_shape[1]) if len(dist.param_shape) == 2 else 2
    if isinstance(f, LogMeanExp):  # symmetric in its samples: M_1 = ... = M_k
        return f.k * exact.gradient(dist, Table(M[0].reshape((radix,) * d)))
    return sum(exact.gradient(dist, Table(row.reshape((radix,) * d))) for row in M)
