"""Input checks shared by the public functions.

Every public function converts its inputs once, here, and raises a
``ValueError`` that names the argument, the offending value and the allowed
range.  Kernels never see unchecked input.
"""
import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_no_nan",
    "check_positive_scalar",
    "check_count",
    "check_shape",
    "describe",
]


def describe(value, limit=60):
    """Short printable description of ``value`` for error messages."""
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if arr is not None and arr.ndim > 0:
        return f"array of shape {arr.shape}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_float_array(x, name, ndim=None, copy=False):
    """Convert ``x`` to a C-contiguous float64 array, checking its dimension."""
    try:
        arr = np.array(x, dtype=np.float64, copy=True) if copy else np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be convertible to a float64 array; got {describe(x)}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimension(s); got shape {arr.shape}")
    # ascontiguousarray would promote a 0-d array to shape (1,)
    return np.ascontiguousarray(arr) if arr.ndim else arr


def check_no_nan(arr, name):
    """Reject NaN (infinities are allowed)."""
    if np.isnan(arr).any():
        where = tuple(int(i) for i in np.argwhere(np.isnan(arr))[0]) if arr.ndim else ()
        raise ValueError(f"{name} must not contain NaN (allowed: finite values or +/-inf); NaN at index {where}")
    return arr


def check_finite(arr, name):
    """Reject NaN and infinities."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0] if arr.ndim else ()
        where = tuple(int(i) for i in bad)
        value = arr[where] if arr.ndim else arr
        raise ValueError(f"{name} must be finite; got {float(value)} at index {where}")
    return arr


def check_positive_scalar(value, name):
    """A finite scalar > 0 (temperatures, step sizes)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray)):
        raise ValueError(f"{name} must be a finite real number > 0; got {describe(value)}")
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar > 0; got {describe(value)}")
    v = float(arr)
    if not np.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite real number > 0; got {v!r}")
    return v


def check_count(value, name, minimum=1):
    """An integer >= ``minimum`` (sample sizes, chunk sizes)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {describe(value)}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v}")
    return v


def check_shape(arr, name, shape):
    """Exact shape match; ``None`` in ``shape`` matches any length."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    return arr
