"""Input checks shared by the public functions.

Every public function converts its inputs once, here, and raises an error that
names the argument, the offending value and the allowed range: ``TypeError`` for
a wrong type (complex, string, bool, object where a real number is meant; a float
where an integer is meant), ``ValueError`` for a bad value, range or shape.
Kernels never see unchecked input.
"""
import numbers

import numpy as np

from .jit import jit

__all__ = [
    "InputTypeError",
    "as_float_array",
    "check_finite",
    "check_no_nan",
    "check_positive_scalar",
    "check_count",
    "check_sample_count",
    "check_shape",
    "describe",
    "MAX_ARRAY_BYTES",
    "WORK_LIMIT",
    "MULTINOMIAL_COST",
    "check_max_work",
    "check_work",
    "check_seed",
    "check_distribution",
]


class InputTypeError(TypeError, ValueError):
    """An input of the wrong type (complex, string, bool, object where a real number is meant).

    A ``TypeError``; also a ``ValueError``, the single error type of bad input in
    earlier versions, so that ``except ValueError`` written against them still
    catches it (the pattern of NumPy's ``AxisError(ValueError, IndexError)``).
    """


def describe(value, limit=60):
    """Short printable description of ``value`` for error messages.

    Never raises: arrays are described by shape and dtype (and their values when
    short), ragged sequences and objects whose ``repr`` fails by their type.
    """
    try:
        if isinstance(value, np.ndarray) and value.ndim > 0:
            text = np.array2string(value.ravel()[:6], threshold=6, precision=6, separator=", ")
            if value.size <= 6 and len(text) <= limit:
                return f"array {text} of shape {value.shape}, dtype {value.dtype}"
            return f"array of shape {value.shape}, dtype {value.dtype}"
        if isinstance(value, (list, tuple)):
            try:
                arr = np.asarray(value)
            except Exception:  # ragged or otherwise not an array
                arr = None
            if arr is None:
                text = repr(value)
                text = text if len(text) <= limit else text[: limit - 3] + "..."
                return f"ragged {type(value).__name__} {text}"
            if arr.ndim > 0 and arr.size > 6:
                return f"{type(value).__name__} of shape {arr.shape}"
        text = repr(value)
    except Exception:  # a repr that raises
        return f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _index_text(index):
    return "(" + ", ".join(str(int(i)) for i in index) + ("," if len(index) == 1 else "") + ")"


def _with_dtype(x, raw):
    """``describe(x)`` with the dtype of its conversion ``raw`` appended unless already shown."""
    text = describe(x)
    return text if "dtype" in text else f"{text} (dtype {raw.dtype})"


def _first_bool(x, path=()):
    """Index of the first bool (Python or NumPy, or a bool array) in a nested list/tuple; None if none."""
    if isinstance(x, (bool, np.bool_)):
        return path
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "b":
            return path + (0,) * x.ndim
        return None
    if isinstance(x, (list, tuple)):
        for i, item in enumerate(x):
            found = _first_bool(item, path + (i,))
            if found is not None:
                return found
    return None


def _from_objects(arr, name):
    """float64 array from an object array whose entries must all be real numbers (not bool)."""
    out = np.empty(arr.shape, dtype=np.float64)
    for index, item in np.ndenumerate(arr):
        ok = isinstance(item, numbers.Real) and not isinstance(item, (bool, np.bool_))
        if not ok:
            where = f" at index {_index_text(index)}" if arr.ndim else ""
            raise InputTypeError(
                f"{name} must hold real numbers (int or float, converted to float64); got {describe(item)} of type "
                f"{type(item).__name__}{where}"
            )
        try:
            out[index] = float(item)
        except OverflowError:
            where = f" at index {_index_text(index)}" if arr.ndim else ""
            raise ValueError(
                f"{name} must be representable as float64 (|x| < 1.8e308); got {describe(item)}{where}"
            ) from None
    return out


def as_float_array(x, name, ndim=None, copy=False, allow_bool=False):
    """Convert ``x`` to a C-contiguous float64 array, checking its type and dimension.

    Accepted: Python and NumPy ints and floats (any width), 0-d arrays, arrays and
    (nested) lists of them, and object arrays holding only such numbers.
    Rejected with a ``TypeError`` naming ``name`` and the offending dtype or value:
    complex numbers (even with a zero imaginary part: a silent truncation to the
    real part is the failure this prevents), strings and bytes (including numeric
    ones like ``"1.5"``), ``None`` and other objects, datetimes, and booleans
    (Python ``True``/``False``, NumPy bools, bool arrays) unless ``allow_bool`` is
    true -- pass it where the input is 0/1 data (the bits of a Bernoulli sample,
    a one-hot categorical sample), never where a real parameter is meant.
    Ragged nested sequences (rows of unequal length) raise a ``ValueError``.
    """
    if isinstance(x, (str, bytes)):
        raise InputTypeError(
            f"{name} must be a real (float64) number or an array of them; got the string {describe(x)}"
        )
    if isinstance(x, (bool, np.bool_)) and not allow_bool:
        raise InputTypeError(f"{name} must be a real (float64) number or an array of them, not a bool; got {x!r}")
    if isinstance(x, np.ndarray):
        raw = x
    else:
        try:
            raw = np.asarray(x)
        except ValueError as exc:
            raise ValueError(
                f"{name} must be a rectangular array of real numbers; got {describe(x)} "
                f"(nested sequences of unequal lengths)"
            ) from exc
        except Exception as exc:  # objects whose conversion raises
            raise InputTypeError(f"{name} must be an array of real (float64) numbers; got {describe(x)}") from exc
    kind = raw.dtype.kind
    if kind == "b" and not allow_bool:
        raise InputTypeError(
            f"{name} must hold real (float64) numbers, not booleans; got {_with_dtype(x, raw)} "
            "(convert explicitly, e.g. x.astype(float), if 0/1 values are meant)"
        )
    if kind == "c":
        raise InputTypeError(
            f"{name} must hold real (float64) numbers; got {_with_dtype(x, raw)}, complex "
            "(pass x.real explicitly if the imaginary part is meant to be dropped)"
        )
    if kind in "US":
        raise InputTypeError(f"{name} must hold real (float64) numbers, not strings; got {_with_dtype(x, raw)}")
    if kind == "O":
        arr = _from_objects(raw, name)
    elif kind in "fiub":
        if not allow_bool and isinstance(x, (list, tuple)):
            where = _first_bool(x)
            if where is not None:
                raise InputTypeError(
                    f"{name} must hold real (float64) numbers, not booleans; got a bool at index {_index_text(where)}"
                )
        arr = raw
    else:
        raise InputTypeError(f"{name} must hold real (float64) numbers; got {_with_dtype(x, raw)}")
    try:
        arr = np.array(arr, dtype=np.float64, copy=True) if copy else np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # defensive: the dtype kinds above all convert
        raise InputTypeError(f"{name} must be convertible to a float64 array; got {describe(x)}") from exc
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
        where = first_index(np.isnan(arr))
        raise ValueError(f"{name} must not contain NaN (allowed: finite values or +/-inf); NaN at index {where}")
    return arr


def check_finite(arr, name):
    """Reject NaN and infinities."""
    if not np.isfinite(arr).all():
        where = first_index(~np.isfinite(arr))
        value = arr[where] if arr.ndim else arr
        raise ValueError(f"{name} must be finite; got {float(value)} at index {where}")
    return arr


def check_positive_scalar(value, name):
    """A finite real scalar > 0 (temperatures, step sizes).

    ``TypeError`` for a non-number (string, bool, complex, None, array of them);
    ``ValueError`` for a non-scalar array or a value that is not finite and > 0.
    """
    if not isinstance(value, (numbers.Real, np.ndarray)) or isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be a finite real number > 0; got {describe(value)} "
                        f"of type {type(value).__name__}")
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar > 0; got {describe(value)}")
    v = float(arr)
    if not np.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite real number > 0; got {v!r}")
    return v


def check_count(value, name, minimum=1, maximum=None):
    """An integer in ``[minimum, maximum]`` (sample sizes, chunk sizes).

    ``TypeError`` for a non-integer type (float -- even ``2.0`` --, bool, string);
    ``ValueError`` for an integer out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer >= {minimum}; got {describe(value)} "
                        f"of type {type(value).__name__}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}]; got {v}")
    return v


#: Largest array (in bytes) a single call may allocate for its noise or its estimates:
#: 4 GiB, i.e. 537 million float64 numbers.  Larger requests are refused up front with
#: the size they would need, rather than failing deep inside NumPy with a MemoryError
#: (or swapping the machine); a fixed budget keeps the outcome independent of the
#: machine.  Split larger Monte Carlo runs into several calls.
MAX_ARRAY_BYTES = 2**32


def _format_bytes(nbytes):
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def check_sample_count(n, row_bytes, name="n", budget=None):
    """A sample count ``n >= 1`` whose arrays of ``row_bytes`` bytes per sample fit the budget.

    ``budget`` defaults to :data:`MAX_ARRAY_BYTES` (4 GiB).  Raises ``TypeError`` for a
    non-integer ``n``, ``ValueError`` for ``n < 1`` or ``n * row_bytes > budget``,
    naming ``n`` and the size it would need.
    """
    n = check_count(n, name)
    budget = MAX_ARRAY_BYTES if budget is None else int(budget)
    need = int(n) * int(row_bytes)
    if need > budget:
        limit = max(1, budget // max(1, int(row_bytes)))
        raise ValueError(
            f"{name}={n} would need {_format_bytes(need)} ({int(row_bytes)} bytes per sample), more than the "
            f"{_format_bytes(budget)} budget of one call (refgrad.limits.MAX_ARRAY_BYTES); "
            f"use {name} <= {limit} and several calls"
        )
    return n


def check_shape(arr, name, shape):
    """Exact shape match; ``None`` in ``shape`` matches any length."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    return arr


@jit
def first_outside_unit(flat):
    """Index of the first entry of the 1-d array ``flat`` not strictly inside (0, 1) (NaN included), or -1.

    One pass, no temporaries: the one check behind every "uniforms strictly inside (0, 1)" error.
    """
    for i in range(flat.size):
        x = flat[i]
        if not (x > 0.0 and x < 1.0):
            return i
    return -1


def first_index(mask):
    """Index tuple of the first ``True`` entry of ``mask`` in C order (``()`` for a 0-d array), for messages.

    The caller knows there is one; an all-``False`` mask raises ``IndexError``.
    """
    mask = np.asarray(mask)
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def outside_unit_index(arr):
    """Index tuple of the first entry of ``arr`` not strictly inside (0, 1), or None (``()`` for 0-d)."""
    k = first_outside_unit(np.ascontiguousarray(arr, dtype=np.float64).reshape(-1))
    if k < 0:
        return None
    return tuple(int(i) for i in np.unravel_index(k, arr.shape)) if arr.ndim else ()


#: Largest amount of work one call may do, in elementary operations: 10¹¹.  What one operation is
#: depends on the call and is stated where the budget is checked -- one feature of one resampled row
#: in the bootstrap of :func:`refgrad.stats.unbiasedness_test` (resamples x rows x features, 0.9-3.6
#: ns each), :data:`MULTINOMIAL_COST` for one cell of one multinomial draw in the Monte Carlo G test
#: of the sampler checks (draws x cells, 240-400 ns a cell).  A call at the budget takes about 2-7
#: minutes of one core; like :data:`MAX_ARRAY_BYTES` the budget is fixed, so the outcome does not
#: depend on the machine.  A call whose work would exceed it is refused before it starts, with what
#: it would cost; pass ``max_work=`` (a number of operations, ``float("inf")`` for no bound) to such
#: a call to run it anyway.  The default bootstrap of ``calibration="auto"`` stays within it (it
#: falls back to the F / t references beyond it).
WORK_LIMIT = 10**11
# The costs per operation behind it are measured in docs/oracles-measured.md.

#: Elementary operations counted for one cell of one multinomial draw (a multinomial cell costs about a
#: hundred times one resampled feature in a matrix product: ``docs/oracles-measured.md``).
MULTINOMIAL_COST = 100


def check_max_work(max_work, name="max_work"):
    """``max_work`` as a float: None gives :data:`WORK_LIMIT`; else a real number >= 1 (inf allowed)."""
    if max_work is None:
        return float(WORK_LIMIT)
    if isinstance(max_work, (bool, np.bool_)) or not isinstance(max_work, numbers.Real):
        raise InputTypeError(f"{name} must be None (the budget WORK_LIMIT = {WORK_LIMIT:.3g} operations) or a number "
                             f">= 1 of elementary operations; got {describe(max_work)} of type "
                             f"{type(max_work).__name__}")
    value = float(max_work)
    if not value >= 1.0:  # NaN too
        raise ValueError(f"{name} must be None or a number >= 1 of elementary operations (inf: no bound); got "
                         f"{value!r}")
    return value


def check_work(work, what, unit, max_work=None, name="max_work", advice=""):
    """Refuse, before it starts, work of ``work`` elementary operations beyond the budget.

    ``what`` names the work (``"the bootstrap of 10**12 resamples"``), ``unit`` says how it was
    counted; the budget is ``max_work`` (checked by :func:`check_max_work`; None:
    :data:`WORK_LIMIT`).  The ``ValueError`` says what the work would cost, the budget, how
    to run it anyway (``name=`` a larger budget) and ``advice``.  Returns the budget.
    """
    budget = check_max_work(max_work, name)
    if work > budget:
        extra = f"; {advice}" if advice else ""
        raise ValueError(
            f"{what} would take about {float(work):.3g} elementary operations ({unit}), more than the budget of "
            f"one call, {name} = {budget:.3g} (default refgrad.limits.WORK_LIMIT = {WORK_LIMIT:.0e}, a few "
            f"minutes of one core){extra}; to run it deliberately pass {name}={float(work):.3g} or more "
            f"(max_work=float('inf') lifts the bound)"
        )
    return budget


def check_seed(seed, name="seed"):
    """A non-negative integer seed from ``seed``: what :func:`refgrad.random.as_generator` accepts.

    A non-negative int (Python or NumPy, not bool) is returned as is; ``None`` gives fresh OS
    entropy; a ``numpy.random.Generator`` its next 63-bit integer; a ``numpy.random.SeedSequence``
    a 63-bit integer of its state.  The integer is what the caller reports, so its result can be
    reproduced.  Anything else (floats, bools, strings, negative ints) is a ``ValueError``
    (an :class:`InputTypeError` for a wrong type) naming ``name`` and what is accepted.
    """
    accepted = "None, a non-negative int, a numpy.random.Generator or a numpy.random.SeedSequence"
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if int(seed) < 0:
            raise ValueError(f"{name} must be {accepted}; got the negative integer {int(seed)}")
        return int(seed)
    raise InputTypeError(f"{name} must be {accepted}; got {describe(seed)} of type {type(seed).__name__}")


_DIST_ATTRIBUTES = ("family", "param_shape", "event_shape")


def check_distribution(dist, name="dist"):
    """``dist`` itself if it is a refgrad distribution, else a ``ValueError`` naming ``name``.

    A refgrad distribution has the attributes ``family``, ``param_shape`` and
    ``event_shape`` (:class:`refgrad.Bernoulli`, :class:`refgrad.Categorical`,
    :class:`refgrad.GaussianThreshold`, their products and the continuous ones of
    :mod:`refgrad.distributions`).  A string (``"bernoulli"``), None, an array or any other object
    is refused with an :class:`InputTypeError` (a ``TypeError`` and a ``ValueError``) that names
    the argument and the accepted types, instead of an ``AttributeError`` deeper down.
    """
    if all(hasattr(dist, a) for a in _DIST_ATTRIBUTES):
        return dist
    hint = ""
    if isinstance(dist, str):
        hint = " (a family name is not a distribution: build one, e.g. refgrad.Bernoulli(logits))"
    raise InputTypeError(
        f"{name} must be a refgrad distribution (refgrad.Bernoulli, refgrad.Categorical, refgrad.GaussianThreshold, "
        f"or another class of refgrad.distributions); got {describe(dist)} of type {type(dist).__name__}{hint}"
    )
