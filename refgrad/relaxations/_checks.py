"""Input checks and reshaping shared by the public functions of :mod:`refgrad.relaxations`.

The kernels take C-contiguous float64 arrays of two or three axes; these helpers
check the public inputs, broadcast them against each other and flatten them to
``(1, N)`` or ``(1, N, K)`` (``_flat2``, ``_flat3``), and restore the shape of the
result (``_unflat``).
"""
import numpy as np

from .._core.checks import as_float_array, check_finite, check_no_nan, check_positive_scalar, first_index


def _array(value, name, min_ndim=0, nan_check=True):
    arr = as_float_array(value, name)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s) (last axis: categories); got shape {arr.shape}"
        )
    return check_no_nan(arr, name) if nan_check else arr


def _first_bad(arr, bad):
    """(index, value) of the first True entry of the mask ``bad``."""
    where = first_index(bad)
    return where, float(arr[where])


def _tau(tau):
    return check_positive_scalar(tau, "tau")


def _broadcast(a, b, b_name, a_name):
    """Broadcast shape of ``a`` and ``b`` under NumPy rules; the error names ``b_name``."""
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{b_name} of shape {b.shape} does not broadcast against {a_name} of shape {a.shape} "
            "(NumPy broadcasting rules)"
        ) from None


def _broadcast_categorical(a, b, b_name, a_name):
    """Broadcast shape for (..., K) arrays whose last axes must agree exactly."""
    if b.shape[-1] != a.shape[-1]:
        raise ValueError(
            f"{b_name} must have the same last axis (number of categories) as {a_name}: "
            f"got {b_name}.shape={b.shape}, {a_name}.shape={a.shape}"
        )
    return _broadcast(a, b, b_name, a_name)


def _broadcast_to(arr, shape):
    """``arr`` broadcast to ``shape``, contiguous.

    A copy only where broadcasting is needed; a copy is writable, so the kernels are not compiled a second time
    for read-only broadcast views.
    """
    if arr.shape == tuple(shape):
        return np.ascontiguousarray(arr)
    return np.array(np.broadcast_to(arr, shape), order="C")


def _flat2(arr, shape):
    """``arr`` broadcast to ``shape`` as a contiguous (1, N) array."""
    return _broadcast_to(arr, shape).reshape(1, -1)


def _flat3(arr, shape):
    """``arr`` broadcast to ``shape`` (..., K) as a contiguous (1, N, K) array."""
    return _broadcast_to(arr, shape).reshape(1, -1, shape[-1])


def _unflat(out, shape):
    out = out.reshape(shape)
    return out[()] if out.ndim == 0 else out


def _check_categories(arr, name, minimum=1):
    if arr.shape[-1] < minimum:
        raise ValueError(
            f"{name} must have at least {minimum} entries (categories) on its last axis; got shape {arr.shape}"
        )


def _check_some_finite_max(arr, name):
    """Each row (last axis) needs an entry > -inf, otherwise softmax is undefined."""
    if arr.size and (arr.max(axis=-1) == -np.inf).any():
        where = first_index(arr.max(axis=-1) == -np.inf)
        raise ValueError(
            f"{name} must have at least one entry > -inf on its last axis; all entries are -inf at {where}"
        )


def _uniforms(u):
    uu = _array(u, "u", nan_check=False)
    bad = ~((uu >= 0.0) & (uu <= 1.0))  # NaN included
    if bad.any():
        where, value = _first_bad(uu, bad)
        raise ValueError(f"u must contain uniforms in [0, 1]; got {value!r} at index {where}")
    return uu


def _check_cotangent(cotangent, shape):
    c = as_float_array(cotangent, "cotangent")
    check_finite(c, "cotangent")
    try:
        np.broadcast_to(c, shape)
    except ValueError:
        raise ValueError(f"cotangent of shape {c.shape} must broadcast to the shape of x, {shape}") from None
    return c

