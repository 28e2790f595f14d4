r"""Monte Carlo moments of an estimator, with confidence intervals: ``exact.moments(..., method="monte_carlo")``.

Where the noise dimension is too large to integrate (REBAR on more than a few
variables, any estimator on a non-separable objective in high dimension),
:func:`refgrad.exact.moments` refuses; with ``method="monte_carlo"`` it returns an
:class:`EstimatedMoments` instead -- an estimate, never presented as exact.

The ``samples`` estimates are those of ``refgrad.estimate(name, dist, f, samples,
rng=rng)``, streamed in blocks of :data:`refgrad.estimators._streaming.BLOCK_ROWS`
(1024) rows (memory independent of ``samples``):

* ``mean`` and ``cov`` are the sample mean and covariance (``ddof = 1``), merged
  block by block in order (Chan, Golub & LeVeque 1979), bit-identical for any chunk
  size and thread count;
* the intervals are **batch means** (e.g. Glynn & Whitt, "Estimating the asymptotic
  variance with batch means", 1991): the ``B`` full blocks are i.i.d. batches, so
  with ``s_m`` and ``s_v`` the standard deviations, across batches, of the batch
  means and of the batch variances,

  .. math::  \bar g \pm z\, s_m / \sqrt{B}, \qquad
             \hat σ^2 \pm z\, s_v / \sqrt{B}, \qquad z = Φ^{-1}\big(1 − (1 − c)/2\big),

  per coordinate (not simultaneous over coordinates), ``c`` the ``confidence``.
  The variance interval needs no fourth-moment formula and stays valid for
  heavy-tailed estimates as long as a batch variance has a finite variance.
  Their coverage is measured in ``tests/moments/test_moments_mc.py``.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from .._core.checks import check_count, describe
from .._core.jit import jit
from ..estimators._streaming import BLOCK_ROWS, stream

__all__ = ["EstimatedMoments", "monte_carlo_moments", "DEFAULT_SAMPLES", "MIN_BATCHES"]

#: Default number of estimates.
DEFAULT_SAMPLES = 1 << 20
#: Fewest full blocks (batches) the intervals are formed from.
MIN_BATCHES = 30
#: Largest number of parameters whose full covariance is accumulated (p² per estimate).
MAX_COVARIANCE_PARAMETERS = 2048


_G2 = {"float_kind": lambda x: f"{x:.2g}"}


@dataclass
class EstimatedMoments:
    """Monte Carlo estimate of an estimator's mean and covariance, with confidence intervals.

    **Not exact**: ``exact`` is False, ``method`` is ``"monte_carlo"``.

    Attributes
    ----------
    name, options, cost
        As in :class:`refgrad._moments.base.Moments`.
    mean : ndarray
        Sample mean of the estimates, shape ``param_shape``.
    cov : ndarray
        Sample covariance (``ddof = 1``) over the flattened parameters, ``(p, p)``.
    mean_halfwidth, variance_halfwidth : ndarray
        Half-widths of the per-coordinate ``confidence`` intervals of the mean and of
        the variance (batch means), shape ``param_shape``.
    confidence : float
    samples : int
        Number of estimates.
    batches : int
        Number of full blocks the intervals use.
    rng : str
        The randomness given (for the record).
    """

    name: str
    options: dict
    mean: np.ndarray
    cov: np.ndarray
    mean_halfwidth: np.ndarray
    variance_halfwidth: np.ndarray
    confidence: float
    samples: int
    batches: int
    cost: int
    rng: str
    method: str = field(default="monte_carlo")
    exact = False

    @property
    def variance(self):
        """Per-coordinate sample variance ``diag(cov)``, shape ``param_shape``."""
        return np.diag(self.cov).reshape(self.mean.shape).copy()

    @property
    def mean_interval(self):
        """``(low, high)`` of the per-coordinate confidence interval of the mean."""
        return self.mean - self.mean_halfwidth, self.mean + self.mean_halfwidth

    @property
    def variance_interval(self):
        """``(low, high)`` of the per-coordinate confidence interval of the variance (low clipped at 0)."""
        v = self.variance
        return np.maximum(v - self.variance_halfwidth, 0.0), v + self.variance_halfwidth

    @property
    def variance_per_cost(self):
        """Variance times cost (see :attr:`refgrad._moments.base.Moments.variance_per_cost`)."""
        return self.variance * self.cost

    @property
    def error(self):
        """The largest half-width of the mean's interval (a statistical, not a rounding, error)."""
        return float(np.max(self.mean_halfwidth))

    def __str__(self):
        return (
            f"EstimatedMoments({self.name!r}, Monte Carlo estimate -- not exact, {self.samples} samples, "
            f"{100 * self.confidence:g}% intervals, cost={self.cost})\n"
            f"  mean     = {np.array2string(self.mean, precision=6)}\n"
            f"  ± {np.array2string(self.mean_halfwidth, formatter=_G2)}\n"
            f"  variance = {np.array2string(self.variance, precision=6)}\n"
            f"  ± {np.array2string(self.variance_halfwidth, formatter=_G2)}"
        )


@jit
def _merge_blocks(state_n, mean, cov, chunk, rows, block, means, m2s, counts, nblocks, batch):
    """Merge the chunk's blocks into the running mean and co-moment matrix (upper triangle) and the batch sums.

    ``batch`` rows: [count, running mean and Welford sum of the batch means, the same for the batch
    variances]; a batch variance is the block's centred sum of squares (``m2s``, from the stream) / (n_b − 1).
    """
    p = mean.size
    for b in range(nblocks):
        lo = b * block
        hi = min(rows, lo + block)
        nb = counts[b]
        mb = means[b]
        for i in range(p):
            for j in range(i, p):
                s = 0.0
                for r in range(lo, hi):
                    s += (chunk[r, i] - mb[i]) * (chunk[r, j] - mb[j])
                if state_n == 0:
                    cov[i, j] = s
                else:
                    na = float(state_n)
                    n = na + nb
                    cov[i, j] += s + (mb[i] - mean[i]) * (mb[j] - mean[j]) * (na * nb / n)
        if state_n == 0:
            for i in range(p):
                mean[i] = mb[i]
        else:
            n = float(state_n + nb)
            for i in range(p):
                mean[i] += (mb[i] - mean[i]) * (nb / n)
        state_n += nb
        if nb == block:  # a full block is one batch
            batch[0, 0] += 1.0
            k = batch[0, 0]
            for i in range(p):
                x = mb[i]
                delta = x - batch[1, i]
                batch[1, i] += delta / k
                batch[2, i] += delta * (x - batch[1, i])
                v = m2s[b, i] / (nb - 1)
                delta = v - batch[3, i]
                batch[3, i] += delta / k
                batch[4, i] += delta * (v - batch[3, i])
    return state_n


def _z(confidence):
    return float(ndtri(1.0 - (1.0 - confidence) / 2.0))


def _check_confidence(confidence):
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating, np.integer)):
        raise TypeError(f"confidence must be a float in (0, 1); got {describe(confidence)}")
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.99; got {c!r}")
    return c


def monte_carlo_moments(spec, dist, f, opts, samples=None, rng=0, confidence=0.99, chunk_rows=None):
    """See the module docstring and :func:`refgrad.exact.moments`; ``opts`` are checked options."""
    samples = DEFAULT_SAMPLES if samples is None else check_count(samples, "samples")
    if samples < MIN_BATCHES * BLOCK_ROWS:
        raise ValueError(
            f"samples must be >= {MIN_BATCHES * BLOCK_ROWS} ({MIN_BATCHES} batches of {BLOCK_ROWS} estimates, "
            f"for the batch-means intervals); got {samples}"
        )
    confidence = _check_confidence(confidence)
    size = int(np.prod(dist.param_shape))
    if size > MAX_COVARIANCE_PARAMETERS:
        raise ValueError(
            f"method='monte_carlo' accumulates the full {size}x{size} covariance; at most "
            f"{MAX_COVARIANCE_PARAMETERS} parameters are allowed -- use refgrad.estimate_moments for the mean and "
            "per-coordinate variance"
        )
    mean = np.zeros(size)
    cov = np.zeros((size, size))
    batch = np.zeros((5, size))
    state = [0]

    def on_blocks(chunk, rows, means, m2s, counts, nblocks):
        state[0] = _merge_blocks(state[0], mean, cov, chunk, rows, BLOCK_ROWS, means, m2s, counts, nblocks, batch)

    total, _, _ = stream(spec, dist, f, opts, samples, rng, chunk_rows, on_blocks)
    upper = np.triu(cov)
    cov = (upper + np.triu(cov, 1).T) / (total - 1)
    k = int(batch[0, 0])
    z = _z(confidence)
    shape = tuple(dist.param_shape)
    mean_hw = z * np.sqrt(batch[2] / (k - 1) / k)
    var_hw = z * np.sqrt(batch[4] / (k - 1) / k)
    return EstimatedMoments(
        spec.name, opts, mean.reshape(shape), cov, mean_hw.reshape(shape), var_hw.reshape(shape), confidence,
        int(total), k, int(spec.cost(dist, **opts)), describe(rng),
    )
