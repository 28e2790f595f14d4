"""The result type of exact estimator moments, its accumulator, limits and shared messages."""
import numbers
from dataclasses import dataclass, field

import numpy as np

from .._core.checks import InputTypeError, describe, first_index

#: Largest noise dimension integrated by tanh-sinh quadrature (tensor product).
MAX_QUADRATURE_DIM = 4


#: Largest noise dimension for piecewise-polynomial (Gauss–Legendre) integration.
MAX_PIECEWISE_DIM = 10


_CHUNK = 65536


#: Default tanh-sinh level by noise dimension (nodes per piece and axis: ~25 * 2**(level - 2)).
DEFAULT_LEVEL = {1: 6, 2: 5, 3: 4, 4: 3}


#: Allowed quadrature levels: ``MIN_LEVEL <= level <= MAX_LEVEL`` (level 16: ~550,000 nodes per piece and axis;
#: the error estimate compares level and level − 1, hence the minimum 2).
MIN_LEVEL, MAX_LEVEL = 2, 16


#: Largest number of estimator evaluations one integration may take (tensor product of the 1-D rules).
MAX_QUADRATURE_NODES = 2**32


#: Default ``max_seconds`` of :func:`refgrad.exact.moments`: a longer estimated run is refused.
DEFAULT_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Moments:
    """Exact moments of one estimator on one problem.

    Attributes
    ----------
    name : str
        Estimator name.
    options : dict
        The options used (for ``eta="optimal"``: the exact optimal η is in ``eta``).
    mean : ndarray
        ``E[ĝ]``, shape ``param_shape``.
    cov : ndarray
        ``Cov[ĝ]`` over the flattened parameters, shape ``(p, p)``.
    method : str
        ``"enumeration"``, ``"piecewise"`` (exact Gauss–Legendre between break
        points) or ``"quadrature"`` (tanh-sinh between break points).
    error : float
        Estimated absolute error of every entry of ``mean`` and ``cov``: 0 up to
        rounding for enumeration and piecewise (a bound of a few ulps of the terms is
        reported), and ``|I_L − I_{L−1}|`` between two quadrature levels otherwise
        (conservative: tanh-sinh roughly squares its error per level).
    cost : int
        Evaluations of f per single estimate.
    evaluations : int
        How many single estimates the oracle computed.
    eta : ndarray or None
        For estimators affine in η with ``eta="optimal"``: the exact optimal η.
    """

    name: str
    options: dict
    mean: np.ndarray
    cov: np.ndarray
    method: str
    error: float
    cost: int
    evaluations: int
    eta: object = field(default=None)

    @property
    def variance(self):
        """Per-coordinate variance ``diag(cov)``, shape ``param_shape``.

        Clipped at 0: ``E[ĝ²] − E[ĝ]²`` of a zero-variance estimator can round to ~−1e-19.
        """
        return np.maximum(np.diag(self.cov), 0.0).reshape(self.mean.shape)

    @property
    def second_moment(self):
        """``E[ĝ ĝᵀ] = cov + mean meanᵀ`` (flattened)."""
        m = self.mean.ravel()
        return self.cov + np.outer(m, m)

    @property
    def variance_per_cost(self):
        """Variance times cost: the variance of an average of estimates at a fixed budget of f evaluations."""
        return self.variance * self.cost

    def __str__(self):
        return (
            f"Moments({self.name!r}, method={self.method}, error≈{self.error:.1e}, cost={self.cost})\n"
            f"  mean     = {np.array2string(self.mean, precision=10)}\n"
            f"  variance = {np.array2string(self.variance, precision=10)}"
        )


class _Accumulator:
    """Weighted first and second moments of flattened vectors.

    ``add(..., first=False)`` or ``second=False`` accumulates only one of them: the
    piecewise method takes the mean from a midpoint rule and the second moment
    from a two-point rule.
    """

    def __init__(self, label="the estimator"):
        self.label = label
        self.w = 0.0
        self.s1 = None
        self.s2 = None
        self.count = 0

    def add(self, weights, values, first=True, second=True):
        values = values.reshape(values.shape[0], -1)
        bad = ~np.isfinite(values) & (weights[:, None] > 0)
        if bad.any():
            row, col = first_index(bad)
            raise ValueError(
                f"{self.label} returned a non-finite estimate ({float(values[row, col])!r}, coordinate {col}) at a "
                "point of its noise domain: the objective's values overflow in the estimator's arithmetic or are "
                "undefined there; rescale the objective f"
            )
        values = np.where(weights[:, None] > 0, values, 0.0)
        if self.s1 is None:
            p = values.shape[1]
            self.s1 = np.zeros(p)
            self.s2 = np.zeros((p, p))
        if first:
            self.w += float(np.sum(weights))
            # einsum, not BLAS: a BLAS product splits the sum by thread count, which changes the last bits
            self.s1 += np.einsum("n,np->p", weights, values)
        if second:
            self.s2 += np.einsum("np,nq->pq", values * weights[:, None], values)
        self.count += values.shape[0]

    def result(self, param_shape):
        mean = self.s1
        cov = self.s2 - np.outer(mean, mean)
        cov = 0.5 * (cov + cov.T)
        return mean.reshape(param_shape), cov


def _dist_text(dist):
    """``Bernoulli`` with event shape ``(100,)``, for messages (the parameters may be long)."""
    return f"{type(dist).__name__} with event shape {tuple(getattr(dist, 'event_shape', ()))}"


def _objective_text(f):
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else describe(f)


def _count_text(n):
    """An integer for an error message: in full up to 15 digits, else as mantissa and power of ten."""
    text = str(int(n))
    return text if len(text) <= 15 else f"{text[0]}.{text[1:4]}e+{len(text) - 1}"


def _is_discrete(dist):
    """Finite support: an integer support size (possibly far beyond float range); np.inf marks a continuous one."""
    size = dist.support_size
    return not (isinstance(size, (float, np.floating)) and not np.isfinite(size))


def _check_level(level):
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Integral):
        raise InputTypeError(f"level must be an integer in [{MIN_LEVEL}, {MAX_LEVEL}]; got {describe(level)} "
                             f"of type {type(level).__name__}")
    level = int(level)
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"level must be an integer in [{MIN_LEVEL}, {MAX_LEVEL}] (tanh-sinh step 2**-level); "
                         f"got {level}")
    return level


def _checked(spec, dist, f, result):
    """Refuse a Moments whose mean or covariance overflowed (like exact.expectation does)."""
    for what, value in (("mean", result.mean), ("covariance", result.cov)):
        if not np.all(np.isfinite(value)):
            bad = first_index(~np.isfinite(value))
            raise ValueError(
                f"the exact moments of {spec.name!r} with f={_objective_text(f)} on dist={_dist_text(dist)} "
                f"overflowed or are undefined: {what} entry {bad} is {float(value[bad])!r} (sums of the estimate "
                f"or its square beyond the float64 range, {np.finfo(float).max:.3g}); rescale the objective f"
            )
    return result
