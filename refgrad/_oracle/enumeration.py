r"""The exact oracles' entry points: one family, a :class:`~refgrad.distributions.Product` or a multi-sample objective.

:func:`expectation`, :func:`gradient` and :func:`expect` are those of :mod:`refgrad.exact` (public there, with
the algorithm in its module docstring): they hand a multi-sample objective to :mod:`refgrad._oracle.multisample`,
a Product to :mod:`refgrad._oracle.product`, and everything else to :mod:`refgrad._oracle.stream`.
"""
from ..distributions import ENUMERATION_LIMIT
from ..objectives import as_objective
from ..objectives.multisample import IWAEBound, MultiSampleObjective
from . import multisample as _multisample
from . import product as _product
from . import stream as _single
from .stream import _check_dist

__all__ = ["expect", "expectation", "gradient"]


def expect(dist, fn, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact ``E_q[fn(b)] = Σ_b q(b) fn(b)`` for any array-valued ``fn``, by enumeration.

    The building block of the other oracles (and of exact estimator moments):
    ``fn`` maps a batch of configurations ``(m, *event_shape)`` to ``(m, *shape)``
    and the result has shape ``shape``.  Streaming, limits, skipping of
    ``q(b) = 0`` and compensated summation are as for :func:`expectation`.

    Every chunk's output must be real numbers (a complex, string, bool or object
    output raises ``TypeError``), finite, with one row per configuration and rows
    of the same shape in every chunk (``ValueError`` otherwise, naming ``fn``, the
    offending value or shape and the configuration indices).
    """
    return _single.expect(dist, fn, limit, chunk_size)


def expectation(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact expectation ``E_{q}[f(b)] = Σ_b q(b) f(b)`` by enumerating the support.

    Parameters
    ----------
    dist : Bernoulli, Categorical, GaussianThreshold or Product
        The distribution ``q`` (a :class:`~refgrad.distributions.Product` is enumerated in
        :mod:`refgrad.distributions.product`, without the Gray-code walk or the separable decomposition).
    f : Objective or callable
        Evaluated on batches of configurations (shape ``(m, *event_shape)``),
        returning ``(m,)`` finite values.  Not evaluated where ``q(b) = 0``.
    limit : int
        Largest support size accepted (default
        :data:`refgrad.distributions.ENUMERATION_LIMIT` = ``2**22``); a larger
        support raises ``ValueError`` before ``f`` is evaluated -- unless ``f`` is
        separable (:class:`~refgrad.objectives.Separable`, ``SquaredDistance``, ``Linear``,
        an additive ``Table``): then ``E[Σ_j f_j(b_j)] = Σ_j E[f_j(b_j)]`` is summed over the
        variables (and :func:`gradient` takes each variable's block from its own term),
        enumerating one variable at a time.
    chunk_size : int
        Configurations per chunk, ``≥ 1``; the result does not depend on it beyond
        rounding (compensated summation), memory is ``O(chunk_size)``.

    Returns
    -------
    float

    Notes
    -----
    Accuracy: each weight ``q(b)`` is a product of ``d`` per-variable probabilities
    (a few ulps each), the sum is compensated, so the absolute error is at most
    about ``(d + 3) eps Σ_b q(b) |f(b)|`` beyond the error of ``f``'s own values
    (measured against mpmath at 50 digits in ``tests/oracle/test_extremes_oracle.py``).
    Bernoulli and Categorical with SquaredDistance or Linear take the Gray-code
    walk (module docstring): the same weights and bound, memory ``O(d K)``.
    """
    if isinstance(f, MultiSampleObjective):  # a function of k samples: refgrad.multisample
        return _multisample.expectation(dist, f, limit=limit)
    _check_dist(dist)
    obj = as_objective(f)
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: refgrad.distributions.product
        return _product.expectation(dist, obj, limit, chunk_size)
    return _single.expectation(dist, obj, limit, chunk_size)


def gradient(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact gradient ``∇_φ E_{q_φ}[f(b)]`` by enumeration, as expected differences of ``f``.

    Summing the score-function identity ``Σ_b q(b) f(b) ∇ log q(b)`` (Williams 1992,
    eq. 9) cancels: its terms are of size ``|f|`` while a coordinate's derivative can
    be of size ``|f(b^{i←1}) − f(b^{i←0})| ≪ |f|``.  Summing over the variable ``i``
    analytically gives the same sum without cancellation:

    .. math::

        \text{Bernoulli:}\quad \frac{∂L}{∂ℓ_i} = σ(ℓ_i)σ(−ℓ_i)\, E_q[f(b^{i←1}) − f(b^{i←0})],
        \qquad
        \text{GaussianThreshold:}\quad \frac{∂L}{∂μ_i} = φ(μ_i)\, E_q[f(b^{i←1}) − f(b^{i←0})],

        \text{Categorical:}\quad \frac{∂L}{∂ℓ_{ik}} = p_{ik}\, E_q[f(b^{i←k}) − f(b)]
        = p_{ik} \sum_j p_{ij}\, E_{b_{−i}}[f(b^{i←k}) − f(b^{i←j})],

    with ``b^{i←k}`` the configuration ``b`` with variable ``i`` set to ``k`` (the
    first two because ``dP(b_i = 1)/dφ_i`` is ``σσ'`` or ``φ``; the third from
    ``∂p_ij/∂ℓ_ik = p_ij(δ_jk − p_ik)``).  The differences come from
    :meth:`refgrad.objectives.Objective.flip_differences`, in closed form for the
    built-in objectives; only variables and categories of nonzero probability (the
    others have derivative 0) are flipped, so ``f`` is never evaluated at an
    impossible configuration.  Configurations with ``q(b) = 0`` are skipped.

    Parameters
    ----------
    dist : Bernoulli, Categorical, GaussianThreshold or Product
        The distribution ``q_φ``; ``φ`` is ``dist.params`` (flat for a
        :class:`~refgrad.distributions.Product`, whose variables are flipped block by block from the
        values of ``f``: :func:`refgrad.distributions.product.flip_differences`).
    f : Objective or callable
        As for :func:`expectation`.
    limit, chunk_size : int
        As for :func:`expectation`.

    Returns
    -------
    ndarray
        Shape ``dist.param_shape``.

    Notes
    -----
    Accuracy: with ``c_j`` the coefficient above (computed to a few ulps) and
    ``D_j`` the differences, the error of coordinate ``j`` is at most about
    ``(d + 4) eps c_j Σ_b q(b)|D_j(b)|`` -- a relative error of a few times
    ``(d + 4) eps`` whenever ``D_j`` has one sign over the support, which is always
    so for :class:`~refgrad.objectives.SquaredDistance` and
    :class:`~refgrad.objectives.Linear` on bits and for any objective monotone in
    each variable (for categorical variables with K ≥ 3 the sum over categories can
    cancel: the bound is then relative to ``Σ|terms|``, which is the conditioning of
    the derivative itself).  For objectives without closed-form differences (plain
    callables, :class:`~refgrad.objectives.FunctionObjective`) add the error of
    ``D`` from two evaluations of ``f``: ``≲ eps c_j E_q[|f(b)| + |f(b')|]``
    absolute.  For those the values of ``f`` on the chunk are reused for the
    differences within it, so ``f`` is evaluated once per configuration plus once per
    flip that leaves the chunk (none when the support fits in one chunk; for d = 20
    bits and the default chunk of 2**16, 4 more per configuration).  Measured against
    mpmath at 50 digits in ``tests/oracle/test_extremes_oracle.py``.  Bernoulli and Categorical with
    SquaredDistance or Linear take the Gray-code walk (module docstring), which accumulates
    ``Σ_b q(b)`` and the marginal masses ``Σ_{b: b_j = c} q(b)`` and combines them with the closed-form
    differences (:func:`_gray_gradient`): the same bound.
    """
    if isinstance(f, MultiSampleObjective):  # a function of k samples: refgrad.multisample
        if getattr(dist, "family", None) == "product" and not isinstance(f, IWAEBound):
            return _product.multisample_gradient(dist, f, limit)
        return _multisample.gradient(dist, f, limit=limit)
    _check_dist(dist)
    obj = as_objective(f)
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: refgrad.distributions.product
        return _product.gradient(dist, obj, limit, chunk_size)
    return _single.gradient(dist, obj, limit, chunk_size)
