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
loops over the tuples in ``tests/multisample/test_multisample.py``).
"""
from ._oracle.multisample import conditional_tables, expectation, gradient, gradient_parts
from .objectives.multisample import IWAE_FAMILIES as IWAE_FAMILIES  # the families an IWAEBound takes
from .objectives.multisample import IWAEBound, LogMeanExp, MultiSampleObjective

__all__ = ["MultiSampleObjective", "LogMeanExp", "IWAEBound", "expectation", "gradient", "gradient_parts",
           "conditional_tables"]
