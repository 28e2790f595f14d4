r"""Multi-sample objectives: functions of ``k`` i.i.d. samples (see :mod:`refgrad.multisample`)."""
import numpy as np
from scipy import special

from .._core.checks import InputTypeError, as_float_array, check_count, describe
from . import Objective, as_objective

__all__ = ["MultiSampleObjective", "LogMeanExp", "IWAEBound"]

#: The families whose ``q_φ`` an :class:`IWAEBound` can take: the distribution's logits are ``φ``.
IWAE_FAMILIES = ("bernoulli", "categorical")




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
    (``tests/multisample/test_multisample.py`` measures the bias exactly).

    **Exact oracles.**  By symmetry each ``j`` contributes the same, and each expectation
    ``E[T(b^{1:k}) s(b^1)] = ∇_φ \sum_b q_φ(b)\, E[T \mid b^1 = b]`` with the conditional table held
    fixed, so with ``M(b) = E[F_φ \mid b^1 = b]`` and ``W(b) = E[\bar w_1 \mid b^1 = b]`` (both by
    enumerating the ``S^k`` tuples, ``log w_φ`` evaluated once per live configuration)

    .. math::  ∇_φ L_k = k\, ∇_φ \sum_b q_φ(b)\,\big(M(b) − W(b)\big)\Big|_{M, W \text{ fixed}},

    computed by :func:`refgrad.exact.gradient` of the table ``M − W`` (expected flip differences);
    :func:`gradient_parts` returns the two terms separately.  Checked against central finite
    differences of :func:`expectation` (which re-evaluates ``log q`` at ``φ ± h``) and against
    ``mpmath.diff`` of the bound written out in mpmath (``tests/multisample/test_multisample.py``).

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
