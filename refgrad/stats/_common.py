"""Input handling, tables and Holm's adjustment shared by the modules behind :mod:`refgrad.stats`."""
import math
import numbers

import numpy as np

from .._core.checks import as_float_array, check_finite, describe, first_index

#: Heavy-tail rule 1: |skewness of the sample mean| = |γ| / sqrt(n) above this is unreliable.
SKEWNESS_LIMIT = 0.1
#: Heavy-tail rule 2: excess kurtosis of the sample mean, κ / n, above this is unreliable.
KURTOSIS_LIMIT = 0.1
#: Heavy-tail rule 3 (large n): one sample carrying more than this fraction of Σ (x_i - x̄)².
SHARE_LIMIT = 0.02
#: Heavy-tail rule 3 (moderate n): one sample further than this many standard deviations from the mean.
OUTLIER_SIGMAS = 5.0

_DEFAULT_RTOL = 1e-12
#: Inputs of lower precision than float64: the default ``rtol`` is this many ulps, ``ROUNDING_ULPS · eps(dtype)``
#: (1.2e-4 for float32), capped at 0.01.
ROUNDING_ULPS = 1024
_METHODS = ("hotelling", "holm", "both")
_ALTERNATIVES = ("less", "greater", "two-sided")
_MAX_ROWS = 20
_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _check_alpha(alpha, name="alpha"):
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1); got {describe(alpha)} of type {type(alpha).__name__}")
    value = float(alpha)
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be in the open interval (0, 1); got {value!r}")
    return value


def _check_rtol(rtol):
    if isinstance(rtol, (bool, np.bool_)) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"rtol must be a real number in [0, 1); got {describe(rtol)} of type {type(rtol).__name__}")
    value = float(rtol)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"rtol must be in [0, 1); got {value!r}")
    return value


def _input_eps(x):
    """Machine epsilon of the floating dtype ``x`` arrives in (float64's for anything else)."""
    try:
        dtype = np.asarray(x).dtype
    except (TypeError, ValueError, RuntimeError):
        return _EPS
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else _EPS


def _resolve_rtol(rtol, *inputs):
    """``rtol`` checked, or for ``None`` the rounding level of the coarsest floating dtype among ``inputs``.

    float64 (and integer or list input): ``_DEFAULT_RTOL`` = 1e-12; a lower precision:
    ``min(ROUNDING_ULPS · eps, 0.01)`` -- float32 samples (torch's default) are rounded at
    relative 6e-8 per entry, so a sum-to-zero score sums to zero only up to a few float32
    ulps, which 1e-12 would read as a real departure from the hyperplane.
    """
    if rtol is not None:
        return _check_rtol(rtol)
    eps = max(_input_eps(x) for x in inputs)
    return _DEFAULT_RTOL if eps <= _EPS else min(ROUNDING_ULPS * eps, 0.01)


def _check_choice(value, name, choices):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {describe(value)} of type "
                        f"{type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {describe(value)}")
    return value


def as_real_array(x, name):
    """``x`` as a float64 array of real numbers.

    Raises ``TypeError`` naming ``name`` for complex, boolean, string, object or other
    non-real input (NumPy would truncate complex values to their real part and read
    numeric strings as numbers), showing the offending value and its index, and
    ``ValueError`` for a ragged sequence.
    """
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be real numbers (float64); got the string {describe(x)}")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a rectangular array of real numbers; got {describe(x)} "
                         f"(a ragged sequence?): {exc}") from exc
    kind = arr.dtype.kind
    if kind == "O":
        real = np.vectorize(lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)),
                            otypes=[bool])(arr) if arr.size else np.ones(arr.shape, bool)
        if not real.all():
            where = first_index(~real)
            value = arr[where] if arr.ndim else arr.item()
            raise TypeError(f"{name} must hold real numbers only; got {describe(value)} of type "
                            f"{type(value).__name__} at index {where}")
        return as_float_array(arr.astype(np.float64), name)
    if kind not in "iuf":
        what = {"c": "complex", "b": "boolean", "U": "string", "S": "bytes"}.get(kind, str(arr.dtype))
        where = first_index(np.ones(arr.shape, bool)) if arr.size else ()
        shown = f"; first entry {describe(arr[where] if arr.ndim else arr.item())} at index {where}" if arr.size else ""
        raise TypeError(f"{name} must be real numbers (float64); got a {what} array (dtype {arr.dtype}){shown}")
    return as_float_array(arr, name)


def _as_samples(samples, name, minimum=2):
    """(n, p) float64 view of ``samples`` (n, *shape), and ``shape``."""
    arr = as_real_array(samples, name)
    if arr.ndim < 1:
        raise ValueError(f"{name} must have shape (n, *param_shape) with one row per estimate; got the scalar "
                         f"{float(arr)!r}")
    check_finite(arr, name)
    n = arr.shape[0]
    if n < minimum:
        raise ValueError(f"{name} must hold at least {minimum} estimates (rows); got n = {n}")
    shape = arr.shape[1:]
    p = int(np.prod(shape, dtype=np.int64))
    if p == 0:
        raise ValueError(f"{name} must have at least one parameter coordinate; got shape {arr.shape}")
    return np.ascontiguousarray(arr.reshape(n, p)), shape


def _index_labels(shape):
    if len(shape) == 0:
        return ["()"]
    if len(shape) == 1:
        return [str(i) for i in range(shape[0])]
    return [str(idx) for idx in np.ndindex(*shape)]


def _frozen(arr, shape=None):
    out = np.array(arr, dtype=arr.dtype if isinstance(arr, np.ndarray) else None, copy=True)
    if shape is not None:
        out = out.reshape(shape)
    out.setflags(write=False)
    return out


def _fmt(value):
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0.0:
        return "0"
    return f"{value:.4g}"


def _table(headers, rows, order=None):
    """Plain-text table; with ``order`` only the first _MAX_ROWS rows of that order are shown."""
    shown = list(range(len(rows))) if order is None else list(order)
    omitted = 0
    if len(shown) > _MAX_ROWS:
        omitted = len(shown) - _MAX_ROWS
        shown = shown[:_MAX_ROWS]
    cells = [list(headers)] + [[str(c) for c in rows[i]] for i in shown]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if omitted:
        lines.append(f"... {omitted} more coordinate(s) not shown (rows sorted by p-value)")
    return "\n".join(lines)


def _coordinate_table(headers, columns, sort_key):
    """:func:`_table` of one row per coordinate: its label, then each array of ``columns`` at it, formatted.

    ``columns`` are arrays of the parameter shape (the shape of the first one labels the rows); the
    rows are shown by increasing ``sort_key`` (an array of that shape; ties in coordinate order), the
    first ``_MAX_ROWS`` of them.
    """
    labels = _index_labels(columns[0].shape)
    rows = [[labels[i]] + [_fmt(column.flat[i]) for column in columns] for i in range(columns[0].size)]
    return _table(headers, rows, np.argsort(np.ravel(sort_key), kind="stable"))


def holm_adjust(pvalues):
    r"""Holm's step-down adjusted p-values.

    With the m p-values sorted increasingly, :math:`p_{(1)} ≤ … ≤ p_{(m)}`,

    .. math::

        \tilde p_{(i)} = \max_{k ≤ i} \min\{1, (m - k + 1)\, p_{(k)}\},

    and hypothesis i is rejected at family-wise error rate α iff
    :math:`\tilde p_i < α` (Holm 1979, "A simple sequentially rejective multiple
    test procedure", Scand. J. Statist. 6, 65-70).  Valid under any dependence
    between the tests.

    Parameters
    ----------
    pvalues : array_like
        p-values in [0, 1], any shape.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same shape.
    """
    p = as_real_array(pvalues, "pvalues")
    bad = np.isnan(p) | (p < 0) | (p > 1)
    if bad.any():
        where = first_index(bad)
        raise ValueError(f"pvalues must lie in [0, 1] (no NaN); got {float(p[where])!r} at index {where}")
    return _holm(p.ravel()).reshape(p.shape)


def _holm(p):
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted
    return out


def _unit(magnitude):
    r"""Powers of two :math:`u = 2^{e}` with ``magnitude / u`` in [1, 2) (1 where the magnitude is 0).

    Dividing samples by ``u`` is exact (a change of exponent, unless a result falls below the
    smallest normal double, 2⁻¹⁰²², i.e. more than 10³⁰⁷ times smaller than the magnitude), so the
    statistics computed from the scaled samples are those of the samples themselves, bit for bit,
    wherever the unscaled computation neither overflowed nor underflowed -- and stay correct where it
    would have: squares of samples near 10²⁰⁰ overflow and squares near 10⁻²⁰⁰ underflow, while the
    scaled samples are at most 2 in magnitude.
    """
    mant, expo = np.frexp(np.asarray(magnitude, dtype=np.float64))
    return np.where(mant == 0.0, 1.0, np.ldexp(1.0, expo - 1))


def _constant_columns(x, scale, rtol):
    """Columns whose spread (max - min) is at most ``rtol * scale``."""
    spread = x.max(axis=0) - x.min(axis=0)
    return spread <= rtol * scale
