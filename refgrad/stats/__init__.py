r"""Hypothesis tests for Monte Carlo gradient estimates.

Everything here consumes arrays of per-sample estimates of shape
``(n, *param_shape)`` (one row per independent estimate) and exact targets or
moments as NumPy arrays, so it works for refgrad's estimators and for estimates
produced by any other framework.  Only NumPy and SciPy are used; there are no
Numba kernels in this module.

* :func:`unbiasedness_test` -- is ``E[ĝ]`` equal to the exact gradient?  Hotelling's
  T² and per-coordinate t-tests with Holm's step-down correction.
* :func:`variance_test` -- is ``Var(a) < Var(b)`` (or ``>``, ``≠``), per coordinate and
  for the trace, for independent or paired (same-noise) samples, without assuming
  normality.
* :func:`required_samples` -- the sample size that detects a given bias with a given
  power.
* :func:`heavy_tail_diagnostic` -- flags samples for which the normal approximation
  of the sample mean is not to be trusted (e.g. Gumbel-softmax at small τ).
* :func:`holm_adjust` -- Holm's step-down adjusted p-values.

Every result is a frozen dataclass whose ``str()`` prints a readable table.

The code lives in one module per concern, all re-exported here: ``unbiasedness`` (the test of
the mean and :func:`required_samples`), ``variance`` (:func:`variance_test`), ``heavy_tails``
(:func:`heavy_tail_diagnostic`), ``calibration`` (the bootstrap-t and the Edgeworth size
estimate behind :func:`unbiasedness_test`), and a private module of the input checks, tables
and Holm's adjustment they share.

Calibration at small n
----------------------
The F and Student-t references of :func:`unbiasedness_test` are exact for normal estimates
only; its default ``calibration="auto"`` replaces them by a bootstrap-t where that is cheap or
needed, and warns (:class:`CalibrationWarning`) wherever the level cannot be guaranteed, below
:data:`LEVEL_CHECKED_N` samples in particular.  The false-alarm rates measured on skewed
gradient estimates, and the command that measures them again, are in
``docs/stats-calibration.md``.

Numerical zero
--------------
Gradient coordinates that are structurally deterministic (a zero-variance
coordinate, a direction in which every estimate lies on a hyperplane, as
``Σ_k ĝ_k = 0`` for the score of a softmax) are detected up to rounding: two values
are "equal" when they differ by at most ``rtol · scale`` with ``scale`` the largest
magnitude among the samples of that coordinate and the whole target, and by default
``rtol = 1e-12`` for float64 input and ``ROUNDING_ULPS · eps = 1024 · 2⁻²³ ≈ 1.2e-4``
for float32 input (torch's default dtype: a float32 score sums to zero across the K
classes only up to a few float32 ulps, which the float64 tolerance reads as a real
departure and reports as inconclusive).  Such coordinates and directions are decided exactly (see
:func:`unbiasedness_test`).  This is correct only when the degeneracy is structural;
a discrete estimator whose rare outcomes simply did not occur in the sample looks
the same, so use a sample size that makes every outcome likely to appear (the
heavy-tail diagnostic flags the case where a rare outcome appeared once or twice).

Scale
-----
Every test and diagnostic here gives the same decision and p-value (to rounding) for samples
and target multiplied by any positive double: each coordinate is divided by a power of two near
its largest magnitude before a moment is formed (exact, a change of exponent), so squares and
fourth powers of samples near 1e300 or 1e-300 neither overflow nor underflow
(``tests/stats/test_scale_invariance.py`` checks 1e-300 ... 1e300).  The moments reported in the
results (``mean``, ``stderr``, ``var_a``, ...) are in the units of the samples, and are ``inf`` or
0 where such a moment is not representable as a double (the variance of samples near 1e200).
"""
from ._common import KURTOSIS_LIMIT, OUTLIER_SIGMAS, SHARE_LIMIT, SKEWNESS_LIMIT, holm_adjust
from ._common import as_real_array as as_real_array  # "x as x": importable here as before, not in __all__
from .calibration import (
    AUTO_BUDGET,
    BOOTSTRAP_SEED,
    BOOTSTRAP_SIZE_LIMIT,
    CALIBRATIONS,
    LEVEL_CHECKED_N,
    MAX_BUDGET,
    MAX_RESAMPLES,
    MIN_BOOTSTRAP_N,
    MIN_RESAMPLES,
    RESOLUTION,
    SIZE_TOLERANCE,
    CalibrationWarning,
)
from .calibration import BOOTSTRAP_WORK_UNIT as BOOTSTRAP_WORK_UNIT
from .calibration import MAX_BOOTSTRAP_RANK as MAX_BOOTSTRAP_RANK
from .calibration import bootstrap_t as bootstrap_t
from .calibration import bootstrap_work as bootstrap_work
from .calibration import default_resamples as default_resamples
from .calibration import distinct_rows as distinct_rows
from .calibration import estimated_size as estimated_size
from .heavy_tails import HeavyTailDiagnostic, heavy_tail_diagnostic
from .unbiasedness import (
    COMBINATIONS,
    COMBINED_PVALUE_EXPLANATION,
    UnbiasednessResult,
    required_samples,
    unbiasedness_test,
)
from .variance import VarianceResult, variance_test

__all__ = [
    "COMBINED_PVALUE_EXPLANATION",
    "COMBINATIONS",
    "unbiasedness_test",
    "variance_test",
    "required_samples",
    "heavy_tail_diagnostic",
    "holm_adjust",
    "UnbiasednessResult",
    "VarianceResult",
    "HeavyTailDiagnostic",
    "SKEWNESS_LIMIT",
    "KURTOSIS_LIMIT",
    "SHARE_LIMIT",
    "OUTLIER_SIGMAS",
    "CalibrationWarning",
    "CALIBRATIONS",
    "BOOTSTRAP_SEED",
    "AUTO_BUDGET",
    "MAX_BUDGET",
    "MIN_BOOTSTRAP_N",
    "LEVEL_CHECKED_N",
    "MIN_RESAMPLES",
    "MAX_RESAMPLES",
    "RESOLUTION",
    "SIZE_TOLERANCE",
    "BOOTSTRAP_SIZE_LIMIT",
]

