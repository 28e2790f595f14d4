r"""Exact oracles by enumeration of the support.

For a product distribution ``q_φ`` over a finite support (Bernoulli,
Categorical, GaussianThreshold from :mod:`refgrad.distributions`),

.. math::

    L(φ) = E_{q_φ}[f(b)] = \sum_b q_φ(b) f(b), \qquad
    ∇_φ L = \sum_b q_φ(b) f(b) ∇_φ \log q_φ(b)

(the second identity is the score-function / log-derivative identity,
Williams 1992, eq. 9; ``f`` does not depend on ``φ``).

The support is streamed in chunks of ``chunk_size`` configurations
(``dist.enumerate(start, stop)``), so memory does not grow with the support size;
supports larger than ``limit`` are refused before anything is evaluated.
Configurations with ``q(b) = 0`` (from ``±inf`` parameters) are skipped -- never
multiplied, so ``0 · inf`` cannot produce NaN -- and ``f`` is not evaluated on them.
Sums are accumulated with Neumaier's compensated summation across all chunks, so
the result is essentially independent of ``chunk_size`` and accurate to a few
ulps of ``Σ |terms|``.
"""
import numpy as np

from ._checks import check_count, describe
from ._jit import jit
from .distributions import ENUMERATION_LIMIT
from .objectives import as_objective
from ._moments import Moments

__all__ = ["expectation", "gradient", "expect", "moments", "Moments"]


@jit
def _compensated_accumulate(terms, total, compensation):
    """Neumaier summation of the columns of ``terms`` (m, P) into ``total``/``compensation`` (P,), in place.

    The running sum of column ``p`` is ``total[p] + compensation[p]``.
    """
    m, P = terms.shape
    for r in range(m):
        for p in range(P):
            x = terms[r, p]
            s = total[p]
            t = s + x
            if abs(s) >= abs(x):
                compensation[p] += (s - t) + x
            else:
                compensation[p] += (x - t) + s
            total[p] = t


def _check_dist(dist):
    needed = ("support_size", "enumerate", "score", "param_shape", "event_shape")
    if not all(hasattr(dist, a) for a in needed):
        raise ValueError(
            f"dist must be a refgrad distribution (Bernoulli, Categorical or GaussianThreshold); got {describe(dist)}"
        )


def _check_support(dist, limit):
    size = dist.support_size
    if size > limit:
        raise ValueError(
            f"cannot enumerate the support of {type(dist).__name__} with event shape {tuple(dist.event_shape)}: "
            f"support size {size} exceeds limit={limit}; pass a larger limit= (e.g. limit={size}) to enumerate "
            "anyway (time grows linearly with the support size; memory does not)"
        )
    return size


def _stream(dist, term, limit, chunk_size, what):
    """Compensated sum over the support of ``q(b) * term(b)``; ``term`` maps (m, *event) -> (m, *shape)."""
    _check_dist(dist)
    limit = check_count(limit, "limit")
    chunk_size = check_count(chunk_size, "chunk_size")
    size = _check_support(dist, limit)
    total = compensation = shape = None
    for start in range(0, size, chunk_size):
        stop = min(start + chunk_size, size)
        configs, probs = dist.enumerate(start, stop, limit=stop - start)
        keep = probs > 0.0
        if not keep.any():
            continue
        if not keep.all():
            configs = configs[keep]
            probs = probs[keep]
        values = np.asarray(term(np.ascontiguousarray(configs)), dtype=np.float64)
        if values.ndim < 1 or values.shape[0] != configs.shape[0]:
            raise ValueError(f"{what} must return one row per configuration; got shape {values.shape}")
        if total is None:
            shape = values.shape[1:]
            width = int(np.prod(shape))
            total = np.zeros(width)
            compensation = np.zeros(width)
        terms = probs[:, None] * values.reshape(values.shape[0], -1)
        _compensated_accumulate(np.ascontiguousarray(terms), total, compensation)
    result = total + compensation
    if not np.isfinite(result).all():
        raise ValueError(
            f"the exact {what} under {dist!r} overflowed or is undefined (non-finite sum); rescale the objective"
        )
    return result.reshape(shape)


def expect(dist, fn, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact ``E_q[fn(b)] = Σ_b q(b) fn(b)`` for any array-valued ``fn``, by enumeration.

    The building block of the other oracles (and of exact estimator moments):
    ``fn`` maps a batch of configurations ``(m, *event_shape)`` to ``(m, *shape)``
    and the result has shape ``shape``.  Streaming, limits, skipping of
    ``q(b) = 0`` and compensated summation are as for :func:`expectation`.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable (configs -> array with one row per configuration); got {describe(fn)}")
    return _stream(dist, fn, limit, chunk_size, "expectation of fn")


def expectation(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact expectation ``E_{q}[f(b)] = Σ_b q(b) f(b)`` by enumerating the support.

    Parameters
    ----------
    dist : Bernoulli, Categorical or GaussianThreshold
        The distribution ``q``.
    f : Objective or callable
        Evaluated on batches of configurations (shape ``(m, *event_shape)``),
        returning ``(m,)`` finite values.  Not evaluated where ``q(b) = 0``.
    limit : int
        Largest support size accepted (default
        :data:`refgrad.distributions.ENUMERATION_LIMIT` = ``2**22``); a larger
        support raises ``ValueError`` before ``f`` is evaluated.
    chunk_size : int
        Configurations per chunk, ``≥ 1``; the result does not depend on it beyond
        rounding (compensated summation), memory is ``O(chunk_size)``.

    Returns
    -------
    float
    """
    _check_dist(dist)
    obj = as_objective(f)
    return float(_stream(dist, lambda b: obj.value(b), limit, chunk_size, f"expectation of objective {obj.name!r}"))


def gradient(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact gradient ``∇_φ E_{q_φ}[f(b)] = Σ_b q_φ(b) f(b) ∇_φ \log q_φ(b)`` by enumeration.

    The score-function identity (Williams 1992, eq. 9) is exact here because the
    sum is finite; ``∇_φ \log q_φ(b)`` is ``dist.score(b)`` (hand-derived, e.g.
    ``b − σ(ℓ)`` for Bernoulli logits).  Configurations with ``q(b) = 0`` are
    skipped.

    Parameters
    ----------
    dist : Bernoulli, Categorical or GaussianThreshold
        The distribution ``q_φ``; ``φ`` is ``dist.params``.
    f : Objective or callable
        As for :func:`expectation`.
    limit, chunk_size : int
        As for :func:`expectation`.

    Returns
    -------
    ndarray
        Shape ``dist.param_shape``.
    """
    _check_dist(dist)
    obj = as_objective(f)
    nd = len(dist.param_shape)

    def term(b):
        return obj.value(b).reshape((-1,) + (1,) * nd) * dist.score(b)

    return _stream(dist, term, limit, chunk_size, f"gradient of objective {obj.name!r}")


def moments(name, dist, f, method="auto", level=None, limit=ENUMERATION_LIMIT, **options):
    r"""Exact mean and covariance of estimator ``name`` on ``(dist, f)``.

    The estimate ``ĝ = g(φ, f, noise)`` is a deterministic function of its uniforms
    (see :data:`refgrad.ESTIMATORS`), so its moments are integrals over the noise
    cube, computed without Monte Carlo:

    * ``"enumeration"`` -- for estimators whose noise enters only through ``k``
      i.i.d. discrete samples (reinforce with any baseline, muprop: ``k = 1``;
      rloo: ``k = m``): ``E[ĝ] = Σ q(b_1)…q(b_k) g(b_1..b_k)`` over the
      ``support**k`` tuples (refused beyond ``limit``);
    * ``"piecewise"`` -- for estimators that are polynomial of degree ≤ 1 in each
      uniform between the declared break points (arm, disarm): two-point
      Gauss–Legendre per piece and coordinate integrates ``ĝ`` and ``ĝĝᵀ`` exactly;
    * ``"quadrature"`` -- for continuous-noise estimators (gumbel_softmax,
      straight_through, gumbel_rao, rebar, relax, pathwise): tensor tanh-sinh
      quadrature, split at the declared break points; a categorical sample's
      Gumbel noise (whose argmax regions are not axis-aligned) is integrated
      conditionally on the sample, ``Σ_b q(b) ∫ g(u(b, v)) dv``, with ``u(b, v)``
      the conditional Gumbel of ``v``.  Limited to noise dimension
      :data:`refgrad._moments.MAX_QUADRATURE_DIM` (one Bernoulli or
      GaussianThreshold variable with two noise blocks; one categorical with
      K ≤ 3 and one noise block, or K ≤ 2 with two; ...); beyond it a
      ``ValueError`` is raised rather than a Monte Carlo guess.  The reported error
      is the difference between levels ``level`` and ``level − 1``.

    For estimators affine in a coefficient η with ``eta="optimal"`` (rebar), the
    joint moments of the two parts ``ĝ = a + η c`` are integrated and the exact
    variance-optimal ``η* = −E[a c]/E[c²]`` (per coordinate) is used; it is
    returned in ``Moments.eta``.

    Parameters
    ----------
    name : str
        Estimator name.
    dist, f
        Distribution and objective.
    method : {"auto", "enumeration", "piecewise", "quadrature"}
        ``"auto"`` picks the first that applies in the order above.
    level : int, optional
        Quadrature level (step ``2**-level``); by default 6, 5, 4, 3 for noise
        dimension 1, 2, 3, 4.
    limit : int
        Largest number of sample tuples enumerated.
    **options
        Estimator options.

    Returns
    -------
    Moments
        ``mean``, ``cov``, ``variance``, ``method``, ``error``, ``cost``.
    """
    from .estimators import get_spec
    from . import _moments

    spec = get_spec(name)
    opts = spec.options(dist, **options)
    limit = check_count(limit, "limit")
    return _moments.moments(spec, dist, f, opts, method=method, level=level, limit=limit)
