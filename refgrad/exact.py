r"""Exact oracles by enumeration of the support.

For a product distribution ``q_φ`` over a finite support (Bernoulli,
Categorical, GaussianThreshold from :mod:`refgrad.distributions`),

.. math::

    L(φ) = E_{q_φ}[f(b)] = \sum_b q_φ(b) f(b), \qquad
    ∇_φ L = \sum_b q_φ(b) f(b) ∇_φ \log q_φ(b)

(the second identity is the score-function / log-derivative identity,
Williams 1992, eq. 9; ``f`` does not depend on ``φ``).  :func:`gradient` does not
sum that identity, whose terms cancel when ``f`` is large beside a coordinate's
own contribution, but the equivalent differences ``∂L/∂φ_j = c_j E_q[D_j(b)]``
(see its docstring).

The support is streamed in chunks of ``chunk_size`` configurations
(``dist.enumerate(start, stop)``), so memory does not grow with the support size;
supports larger than ``limit`` are refused before anything is evaluated.
Configurations with ``q(b) = 0`` (from ``±inf`` parameters) are skipped -- never
multiplied, so ``0 · inf`` cannot produce NaN -- and ``f`` is not evaluated on them.
Sums are accumulated with Neumaier's compensated summation across all chunks, so
the result is essentially independent of ``chunk_size`` and accurate to a few
ulps of ``Σ |terms|``.  Every chunk's output is checked (real numbers, one row
per configuration, the same row shape in every chunk) before it is accumulated.

Fast path.  For :class:`~refgrad.distributions.Bernoulli` and
:class:`~refgrad.distributions.Categorical` with a built-in
:class:`~refgrad.objectives.SquaredDistance` or :class:`~refgrad.objectives.Linear`
objective (exactly those classes, not subclasses), :func:`expectation`,
:func:`gradient` and :func:`expect` walk the support in (mixed-radix) Gray-code
order in a jitted, block-parallel kernel instead: the
same weights ``q(b)`` bit for bit, compensated sums, a result independent of the
thread count and equal to the chunked path to ``1e-13`` relative to the
objective's scale (``tests/oracle/test_exact_gray.py``).  Variables of probability one
are fixed and left out of the walk, so configurations of probability zero are
never visited.  Should the walk give a non-finite number (an objective that
overflows), the chunked path runs and reports it.  Measured timings of both paths:
``docs/oracles-measured.md``.
"""
import numpy as np

from ._core.checks import check_count, check_work, describe
from ._moments import dispatch as _engine
from ._moments.base import Moments
from ._moments.monte_carlo import DEFAULT_SAMPLES, EstimatedMoments, monte_carlo_moments
from ._moments.product import moments as _product_moments
from ._oracle.enumeration import expect, expectation, gradient
from .distributions import ENUMERATION_LIMIT
from .estimators import get_spec

#: Work counted per Monte Carlo estimate of :func:`moments` beyond the ``p² + p`` of its mean and
#: covariance updates (the timings behind it: ``docs/oracles-measured.md``).
MC_ESTIMATE_OVERHEAD = 8

__all__ = ["expectation", "gradient", "expect", "moments", "Moments", "EstimatedMoments"]


def moments(name, dist, f, method="auto", level=None, limit=ENUMERATION_LIMIT, max_seconds=60.0, *, samples=None,
            rng=0, confidence=0.99, max_work=None, **options):
    r"""Exact mean and covariance of estimator ``name`` on ``(dist, f)``.

    The estimate ``ĝ = g(φ, f, noise)`` is a deterministic function of its uniforms
    (see :data:`refgrad.ESTIMATORS`), so its moments are integrals over the noise
    cube, computed without Monte Carlo:

    * ``"enumeration"`` -- for estimators whose noise enters only through ``k``
      i.i.d. discrete samples (reinforce with any baseline, muprop: ``k = 1``;
      rloo: ``k = m``): ``E[ĝ] = Σ q(b_1)…q(b_k) g(b_1..b_k)`` over the
      ``support**k`` tuples (refused beyond ``limit``);
    * ``"piecewise"`` -- for estimators that are polynomial of degree ≤ 1 in each
      uniform between the declared break points (arm, disarm): the midpoint rule per
      piece and coordinate integrates ``ĝ`` exactly, two-point Gauss–Legendre ``ĝĝᵀ``;
      pieces next to 1 (``σ(ℓ)``, ``ℓ ≳ 37``) keep their exact widths through the
      complements of the break points;
    * ``"quadrature"`` -- for continuous-noise estimators (gumbel_softmax,
      straight_through, gumbel_rao, rebar, relax, pathwise): tensor tanh-sinh
      quadrature, split at the declared break points; a categorical sample's
      Gumbel noise (whose argmax regions are not axis-aligned) is integrated
      conditionally on the sample, ``Σ_b q(b) ∫ g(u(b, v)) dv``, with ``u(b, v)``
      the conditional Gumbel of ``v``.  Limited to noise dimension
      :data:`refgrad.limits.MAX_QUADRATURE_DIM` (one Bernoulli or
      GaussianThreshold variable with two noise blocks; one categorical with
      K ≤ 3 and one noise block, or K ≤ 2 with two; ...); beyond it a
      ``ValueError`` is raised rather than a Monte Carlo guess.  The reported error
      is the difference between levels ``level`` and ``level − 1``.

    * ``"separable"`` -- for a separable objective ``f(b) = Σ_j f_j(b_j)``
      (:class:`refgrad.objectives.Separable`, :class:`~refgrad.objectives.SquaredDistance`,
      :class:`~refgrad.objectives.Linear`, an additive :class:`~refgrad.objectives.Table`) at
      any dimension: the estimate of variable j is its one-variable estimate plus
      ``A_jᵀ Σ_{r≠j} F_r`` (each estimator declares ``F`` and ``A``), so the exact mean and
      full covariance follow from integrals over one variable's noise at a time, by the
      methods above (REBAR on 100 bits in a few seconds).
      ``"auto"`` chooses it where the full-dimensional methods exceed their limits;
      ``max_seconds`` is then shared by the variables.  Refused, with the reason, for
      estimators defined on the joint support (sum_and_sample, unordered_set), vimco and
      RELAX with a non-constant network.

    * ``"monte_carlo"`` -- **not exact**, and never chosen by ``"auto"``: where the
      methods above refuse (noise dimension too large to integrate), an
      :class:`EstimatedMoments` from ``samples`` estimates
      (``refgrad.estimate(name, dist, f, samples, rng=rng)``, streamed): the sample
      mean and covariance with per-coordinate ``confidence`` intervals of the mean and
      the variance by batch means.  Its ``exact`` attribute is False.

    A :class:`~refgrad.distributions.Product` (estimators declared with ``product=True``: reinforce,
    rloo, muprop) takes ``"enumeration"`` only (or ``"monte_carlo"``); ``level`` must then be None
    (:func:`refgrad.distributions.product.moments`).

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
    method : {"auto", "enumeration", "piecewise", "quadrature", "separable", "monte_carlo"}
        ``"auto"`` picks the first exact method that applies in the order above (``"separable"``
        only where the full-dimensional one exceeds its limits).
    level : int, optional
        Quadrature level (step ``2**-level``), an integer in [2, 16]; by default
        6, 5, 4, 3 for noise dimension 1, 2, 3, 4.  A rule with more than
        :data:`refgrad.limits.MAX_QUADRATURE_NODES` (2**32) evaluations is refused.
    limit : int
        Largest number of sample tuples enumerated.
    max_seconds : float > 0 or None, default 60
        Refuse, before integrating, a quadrature whose estimated run time exceeds this
        many seconds (``ValueError`` naming ``level``, the number of evaluations, the
        estimate and the largest level that fits); None: no limit.  The estimate is
        the number of estimator evaluations (nodes per axis multiplied over the noise
        dimensions, pieces and both levels) times the seconds per evaluation, timed on
        a few thousand nodes; a plan of at most 10⁶ evaluations runs without timing,
        and one beyond ``max_seconds`` even at a floor of 1e-7 s per evaluation is
        refused without timing (measured rates: ``docs/oracles-measured.md``).
    samples : int, optional
        ``method="monte_carlo"`` only: number of estimates (default 2**20, at least
        30 · 1024); the full covariance costs ``p²`` operations per estimate.
    rng : None, int or numpy.random.Generator, default 0
        ``method="monte_carlo"`` only: the randomness (a fixed seed by default, so the
        estimate is reproducible).
    confidence : float in (0, 1), default 0.99
        ``method="monte_carlo"`` only: level of the per-coordinate intervals.
    max_work : float, optional
        ``method="monte_carlo"`` only: the work budget (default
        :data:`refgrad.limits.WORK_LIMIT`), counted as ``samples x (p² + p + 8)`` for ``p``
        parameter entries (:data:`MC_ESTIMATE_OVERHEAD`); a larger ``samples`` is refused
        before any estimate is drawn, saying what it would cost.
    **options
        Estimator options.

    Returns
    -------
    Moments or EstimatedMoments
        ``mean``, ``cov``, ``variance``, ``method``, ``error``, ``cost``; for
        ``"monte_carlo"`` also ``mean_interval``, ``variance_interval`` and ``exact = False``.
    """
    spec = get_spec(name)
    opts = spec.options(dist, **options)
    if isinstance(method, str) and method == "monte_carlo":
        if level is not None:
            raise ValueError(f"level applies to method='quadrature' (and 'auto'), not to method='monte_carlo' (whose "
                             f"accuracy is set by samples=); got level={level!r}")

        n_est = DEFAULT_SAMPLES if samples is None else check_count(samples, "samples")
        p = int(np.prod(dist.param_shape))
        check_work(n_est * (p * p + p + MC_ESTIMATE_OVERHEAD),
                   f"exact.moments({name!r}, method='monte_carlo', samples={n_est})",
                   f"estimates x (p^2 + p + {MC_ESTIMATE_OVERHEAD}) for p = {p} parameter entries",
                   max_work=max_work, advice="or pass fewer samples")
        return monte_carlo_moments(spec, dist, f, opts, samples=samples, rng=rng, confidence=confidence)
    if samples is not None or confidence != 0.99 or not (isinstance(rng, int) and rng == 0) or max_work is not None:
        raise ValueError(
            f"samples, rng and confidence apply only to method='monte_carlo'; got method={method!r} with "
            f"samples={samples!r}, rng={describe(rng)}, confidence={confidence!r}"
        )
    limit = check_count(limit, "limit")
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: enumerated in refgrad.distributions.product
        return _product_moments(spec, dist, f, opts, method=method, level=level, limit=limit)
    return _engine.moments(spec, dist, f, opts, method=method, level=level, limit=limit, max_seconds=max_seconds)
