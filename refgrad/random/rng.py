"""SPEC 7 random number handling: the one place where randomness enters refgrad.

:func:`as_generator` turns an ``rng`` argument (None, a seed or a
:class:`numpy.random.Generator`) into a Generator once, and :func:`uniform` draws
float64 uniforms strictly inside (0, 1) from it.  Everything else in
:mod:`refgrad.random` is a deterministic function of such uniforms;
``_check_uniform`` is the check every function that takes uniforms applies.
"""
import numbers

import numpy as np

from .._core.checks import MAX_ARRAY_BYTES, InputTypeError, as_float_array, describe, outside_unit_index

__all__ = ["as_generator", "uniform"]


def as_generator(rng):
    """Turn ``rng`` into a :class:`numpy.random.Generator` (SPEC 7).

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        ``None`` gives a freshly seeded generator (``np.random.default_rng()``);
        a non-negative integer (Python or NumPy, not ``bool``) seeds
        ``np.random.default_rng(rng)``; a ``Generator`` is returned unchanged.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        For any other type: ``RandomState``, floats, booleans, strings, ...
        (its class is also a ``ValueError``).
    ValueError
        For a negative integer seed.

    References
    ----------
    Scientific Python SPEC 7, "Seeding pseudo-random number generation".
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if int(rng) >= 0:
            return np.random.default_rng(int(rng))
        raise ValueError(
            f"rng must be None, a non-negative integer seed or a numpy.random.Generator; got the seed {int(rng)}"
        )
    raise InputTypeError(
        "rng must be None, a non-negative integer seed or a numpy.random.Generator; "
        f"got {describe(rng)} of type {type(rng).__name__}"
    )


def _as_shape(shape):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in dims):
        raise InputTypeError(f"shape must be a non-negative integer or a tuple of them; got {describe(shape)} "
                             f"of type {type(shape).__name__}")
    negative = [i for i, s in enumerate(dims) if int(s) < 0]
    if negative:
        raise ValueError(f"shape must hold non-negative integers; got {int(dims[negative[0]])} at index "
                         f"{negative[0]} of {tuple(int(s) for s in dims)}")
    return tuple(int(s) for s in dims)


def uniform(rng, shape):
    r"""Float64 uniforms strictly inside (0, 1).

    Each value is the midpoint of one of :math:`2^{52}` equal cells of [0, 1]:

    .. math::  u = \frac{2k + 1}{2^{53}}, \qquad k \sim \mathcal{U}\{0, \dots, 2^{52} - 1\}.

    Every such value is exactly representable, the smallest is
    :math:`2^{-53}` and the largest :math:`1 - 2^{-53}` (so neither 0 nor 1 can
    occur, unlike ``Generator.random``), and the set of values is symmetric
    (:math:`u` and :math:`1 - u` are equally likely and both exact).  The
    distance to the continuous uniform law is :math:`2^{-53}` in Kolmogorov
    distance.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        Passed through :func:`as_generator`.
    shape : int or tuple of int

    Returns
    -------
    ndarray of float64, shape ``shape``
    """
    gen = as_generator(rng)
    dims = _as_shape(shape)
    size = 1
    for s in dims:
        size *= s
    if size * 16 > MAX_ARRAY_BYTES:  # the int64 cells and the float64 result
        raise ValueError(
            f"shape={dims} asks for {size:.3g} uniforms ({size * 16 / 2**30:.3g} GiB while drawn), more than the "
            f"{MAX_ARRAY_BYTES / 2**30:.3g} GiB budget of one call (refgrad._core.checks.MAX_ARRAY_BYTES); draw in "
            "several calls"
        )
    return _cells_to_uniform(gen.integers(0, 1 << 52, size=dims, dtype=np.int64))


def _cells_to_uniform(k):
    """(2k + 1) / 2**53 for integers 0 <= k < 2**52, exactly (2k + 1 < 2**53 fits in a double)."""
    return (2.0 * np.asarray(k, dtype=np.int64).astype(np.float64) + 1.0) * 2.0**-53


def _check_uniform(x, name, ndim=None):
    """float64 C-contiguous array with every value strictly inside (0, 1)."""
    arr = as_float_array(x, name, ndim=ndim)
    where = outside_unit_index(arr)  # catches NaN too
    if where is not None:
        value = float(arr[where]) if arr.ndim else float(arr)
        raise ValueError(
            f"{name} must hold uniforms strictly inside (0, 1) (no NaN); got {value!r} at index {where}"
        )
    return arr
