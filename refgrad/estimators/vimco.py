r"""VIMCO: score-function gradients of multi-sample objectives with per-sample leave-one-out signals.

Mnih & Rezende, "Variational inference for Monte Carlo objectives", ICML 2016 (PMLR 48:2188-2196),
Section 3 (the multi-sample objective and the gradient estimator with local learning signals).

**Objective.**  A :class:`refgrad.multisample.LogMeanExp` ``L(b^{1:k}) = \log \frac1k \sum_i w(b^i)``
of ``k`` i.i.d. samples ``b^i ∼ q_φ``, with the log weight ``log w`` a single-sample objective that
does not depend on ``φ`` (for weights that do, see below).  The estimand is ``∇_φ E[L(b^{1:k})]``
(= :func:`refgrad.exact.gradient` of the multi-sample objective).

**Estimator.**  Since ``L`` does not depend on ``φ`` except through the samples, the
log-derivative identity over the product density ``Π_i q_φ(b^i)`` gives

.. math::  ∇_φ E[L] = E\Big[\sum_{j=1}^k L(b^{1:k})\, s(b^j)\Big], \qquad s = ∇_φ \log q_φ,

and VIMCO replaces the common signal ``L`` of sample ``j`` by the local signal
``L(b^{1:k}) − L_{−j}(b^{−j})``:

.. math::  \hat g = \sum_{j=1}^k \big(L(b^{1:k}) − L_{−j}\big)\, s(b^j),
           \qquad L_{−j} = \log \frac1k \Big(\sum_{i≠j} w(b^i) + \hat w_{−j}\Big),

with ``ŵ_{−j}`` the stand-in for ``w(b^j)`` computed from the other samples:

- ``baseline="geometric"`` (default; the paper's choice, which it reports working slightly better):
  ``\log \hat w_{−j} = \frac{1}{k−1} \sum_{i≠j} \log w(b^i)``;
- ``baseline="arithmetic"``: ``\hat w_{−j} = \frac{1}{k−1} \sum_{i≠j} w(b^i)``, for which
  ``L_{−j} = \log \frac{1}{k−1} \sum_{i≠j} w(b^i)``, the ``(k−1)``-sample bound of the others;
- ``baseline=None``: ``L_{−j} = 0``, plain REINFORCE on ``L`` (every sample gets the signal ``L``),
  the reference VIMCO improves on.

**Unbiased** for each choice: ``L_{−j}`` is a function of ``b^{−j}`` only, independent of ``b^j``,
so ``E[L_{−j} s(b^j)] = E[L_{−j}]\, E[s(b^j)] = 0``.  Checked exactly: ``exact.moments("vimco", …)``
has mean ``exact.gradient(dist, L)`` to 1e-12 (``tests/estimators/test_estimators_vimco.py``).

**Weights that depend on φ** (:class:`refgrad.multisample.IWAEBound`).  For the importance
weight ``\log w_φ(b) = \log p(x, b) − \log q_φ(b)`` the objective itself moves with ``φ``, and its
gradient (derived in :class:`~refgrad.multisample.IWAEBound`) has a second term,
``E[Σ_j \bar w_j ∇_φ \log w_φ(b^j)] = −E[Σ_j \bar w_j s(b^j)]`` with ``\bar w_j = w_j / Σ_i w_i``
(the paper's gradient of the multi-sample objective has the learning-signal term plus a
normalised-weight term ``Σ_j \tilde w_j ∇ \log f(x, h^j)``, with ``f(x, h) = p(x, h)/q(h | x)`` in
its notation; in the proposal's parameters that term is this one).  For such an objective the
estimator is

.. math::  \hat g = \sum_{j=1}^k \big(L(b^{1:k}) − L_{−j} − \bar w_j\big)\, s(b^j),

the leave-one-out signals computed from ``\log w_φ`` at the current ``φ`` (:func:`iwae_signals`).
Unbiased: ``Σ_j (L − L_{−j}) s(b^j)`` has mean ``E[Σ_j L s(b^j)]`` as above, and
``−Σ_j \bar w_j s(b^j)`` is the integrand of the second term of the gradient itself.  Checked
exactly: ``exact.moments("vimco", dist, f)`` has mean ``exact.gradient(dist, f)`` to 1e-13 and its
covariance matches a loop over the tuples.  Leaving the term out -- the φ-independent treatment,
i.e. VIMCO on ``f.frozen(dist)`` -- has mean the first term only, biased for ``k ≥ 2`` (the
exact bias is measured in ``tests/estimators/test_estimators_vimco.py``).

**Equations.**  The formulas above are derived here and checked against the exact oracle; no
equation numbers are cited.

**Cost**: ``k`` evaluations of ``log w`` (of ``log p(x, ·)`` for an ``IWAEBound``) per estimate.
**Noise**: ``u`` of shape ``(k, *event_shape)``, ``b^i = dist.from_uniforms(u[i])``; the estimate
depends on the noise only through the ``k`` samples, so ``exact.moments`` enumerates the ``S^k``
sample tuples (method "enumeration").

**Options**: ``k`` (integer ≥ 2, default 2) -- must equal the objective's ``k`` (checked when the
estimate is computed, since the noise layout is fixed before the objective is seen);
``baseline`` (``"geometric"``, ``"arithmetic"`` or ``None``).

**Objectives**: :class:`~refgrad.multisample.LogMeanExp` and :class:`~refgrad.multisample.IWAEBound`
(the leave-one-out stand-in is defined for a mean of weights); a single-sample objective is refused
with a ``ValueError`` naming ``LogMeanExp``, as is a generic
:class:`~refgrad.multisample.MultiSampleObjective`.
"""
import numpy as np
from scipy import special

from .._core.checks import InputTypeError, check_count, check_sample_count, describe
from ..multisample import IWAEBound, LogMeanExp, MultiSampleObjective
from ._base import EstimatorSpec, NoiseField, register
from .score import sample_breakpoints

__all__ = ["learning_signals", "iwae_signals", "leave_one_out", "SPEC"]

FAMILIES = ("bernoulli", "categorical")
BASELINES = ("geometric", "arithmetic", None)


def leave_one_out(lw, baseline):
    r"""``L_{−j}`` for log weights ``lw`` of shape ``(n, k)``: shape ``(n, k)`` (zeros for ``None``)."""
    n, k = lw.shape
    if baseline is None:
        return np.zeros((n, k))
    if baseline == "arithmetic":
        others = np.where(np.eye(k, dtype=bool)[None], -np.inf, lw[:, None, :])  # row j: lw without j
        return special.logsumexp(others, axis=-1) - np.log(k - 1)
    # geometric: lw_j replaced by the mean of the others' log weights
    stand_in = (lw.sum(axis=1, keepdims=True) - lw) / (k - 1)
    swapped = np.where(np.eye(k, dtype=bool)[None], stand_in[:, :, None], lw[:, None, :])
    return special.logsumexp(swapped, axis=-1) - np.log(k)


def learning_signals(lw, baseline):
    r"""The per-sample signals ``L(b^{1:k}) − L_{−j}`` for log weights ``lw`` ``(n, k)``."""
    return LogMeanExp.from_log_weights(lw)[:, None] - leave_one_out(lw, baseline)


def iwae_signals(lw, baseline):
    r"""The coefficients ``L(b^{1:k}) − L_{−j} − \bar w_j`` of ``s(b^j)`` for an ``IWAEBound``, shape ``(n, k)``.

    ``lw``: the log weights ``log w_φ(b^i)`` at the current ``φ``, shape ``(n, k)``; the learning signals
    plus the normalised-weight term of ``∇_φ \log w_φ = −s``.
    """
    return learning_signals(lw, baseline) - IWAEBound.normalised_weights(lw)


def _objective(f, k):
    if not isinstance(f, (LogMeanExp, IWAEBound)):
        generic = isinstance(f, MultiSampleObjective)
        kind = "a generic multi-sample objective" if generic else "a single-sample objective"
        raise ValueError(
            f"estimator 'vimco' needs f = refgrad.multisample.LogMeanExp(log_weight, k) (the log of the mean of k "
            f"weights) or refgrad.multisample.IWAEBound(log_joint, k); got {kind}, {describe(f)}"
        )
    if f.k != k:
        raise ValueError(f"option k = {k} of estimator 'vimco' must equal the objective's number of samples "
                         f"k = {f.k} (pass k={f.k})")
    return f


def _vimco_given(dist, f, b, k, baseline):
    obj = _objective(f, k)
    n = b.shape[0]
    event = tuple(dist.event_shape)
    s = dist.score(b.reshape((n * k,) + event)).reshape((n, k) + tuple(dist.param_shape))
    if isinstance(obj, IWAEBound):  # log w depends on φ: the term −Σ_j w̄_j s(b^j) joins the signals
        lw = obj.log_weights(b, dist)  # (n, k): k evaluations of log p(x, b) per estimate
        signals = iwae_signals(lw, baseline)
    else:
        lw = obj.log_weights(b)  # (n, k): k evaluations of log w per estimate
        signals = learning_signals(lw, baseline)
    return np.einsum("nk,nk...->n...", signals, s)


def _vimco(dist, f, noise, k, baseline):
    u = noise["u"]
    n = u.shape[0]
    event = tuple(dist.event_shape)
    b = dist.from_uniforms(u.reshape((n * k,) + event)).reshape((n, k) + event)
    return _vimco_given(dist, f, b, k, baseline)


def _options(dist, opts):
    k = check_count(opts["k"], "k", minimum=2)
    opts["k"] = check_sample_count(k, 8 * int(np.prod(dist.event_shape)), "k")
    b = opts["baseline"]
    allowed = "'geometric', 'arithmetic' or None"
    if b is not None and not isinstance(b, str):
        raise InputTypeError(f"baseline must be {allowed}; got {describe(b)} of type {type(b).__name__}")
    if b not in BASELINES:
        raise ValueError(f"baseline must be {allowed}; got {b!r}")
    return opts


def _breakpoints(dist, k, **_):
    bp = sample_breakpoints(dist)
    return {"u": bp if isinstance(bp, str) else np.broadcast_to(bp, (k,) + bp.shape).copy()}


SPEC = register(
    EstimatorSpec(
        name="vimco",
        doc=__doc__,
        families=FAMILIES,
        unbiased=True,
        compute=_vimco,
        given_samples=_vimco_given,
        draws=lambda k, **_: k,
        shape_in_noise="piecewise_constant",
        layout=lambda dist, k, **_: (
            NoiseField("u", (k,) + tuple(dist.event_shape), "k independent uniform blocks, one per sample b^i"),
        ),
        cost=lambda dist, k, **_: k,
        defaults={"k": 2, "baseline": "geometric"},
        check_options=_options,
        breakpoints=_breakpoints,
        summary="Σ_j (L(b^{1:k}) − L_{−j}) ∂log q(b^j) for L = log mean of k weights, L_{−j} with w_j replaced "
        "by the others' geometric (or arithmetic) mean; Mnih & Rezende 2016",
    )
)

#: The kind of objective the estimator takes (``"multi_sample"``: a :class:`~refgrad.multisample.LogMeanExp`
#: or :class:`~refgrad.multisample.IWAEBound`),
#: for harnesses that feed every registered estimator a single-sample objective; estimators without the
#: attribute take single-sample objectives.
SPEC.objective_kind = "multi_sample"
