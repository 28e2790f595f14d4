r"""Exact expectation and gradient over one family's support: streamed enumeration and the Gray-code walk.

The algorithm and its accuracy are stated in :mod:`refgrad.exact` (the public entry points are in
:mod:`refgrad._oracle.enumeration`).  The support is streamed in chunks with compensated sums (:func:`_stream`),
configurations of probability zero are skipped, the gradient is the expected flip differences; Bernoulli and
Categorical with a SquaredDistance or Linear objective walk the support in Gray-code order instead
(:mod:`refgrad._oracle.gray`) unless :func:`gray_walk` ``(False)`` switches the walk off for a block of code.
"""
import math
from contextvars import ContextVar

import numpy as np

from .._core.checks import as_float_array, check_count, describe, first_index
from .._core.sums import _compensated_accumulate
from .._core.switches import switched
from ..distributions import ENUMERATION_LIMIT
from ..objectives import Objective, as_objective
from . import gray as _gray
from .gray import walk_sums
from .separable import coordinate_dist, coordinate_terms

#: Whether the Gray-code kernels of :mod:`refgrad._oracle.gray` are used where they apply (Bernoulli or
#: Categorical with a SquaredDistance or Linear objective); :func:`gray_walk` sets it for a block of code.
_GRAY = ContextVar("refgrad_gray_walk", default=True)


def gray_walk(enabled):
    """Use (True, the default) or bypass (False) the Gray-code walk inside the ``with`` block.

    The two paths give the same numbers to ``1e-13`` relative; tests compare them by running the same call
    under ``gray_walk(True)`` and ``gray_walk(False)``.  The setting is a context variable: local to the
    thread (and asyncio task) that sets it.  A non-bool ``enabled`` raises ``InputTypeError``.
    """
    return switched(_GRAY, enabled)


def _check_dist(dist):
    needed = ("support_size", "enumerate", "score", "param_shape", "event_shape")
    if not all(hasattr(dist, a) for a in needed):
        raise ValueError(
            f"dist must be a refgrad distribution (Bernoulli, Categorical or GaussianThreshold); got {describe(dist)}"
        )


def _check_support(dist, limit):
    size = dist.support_size
    if not isinstance(size, (int, np.integer)):
        raise ValueError(
            f"dist must have a finite support to enumerate (Bernoulli, Categorical or GaussianThreshold); got "
            f"{type(dist).__name__} with support size {size!r}"
        )
    if size > limit:
        raise ValueError(
            f"cannot enumerate the support of {type(dist).__name__} with event shape {tuple(dist.event_shape)}: "
            f"support size {size} exceeds limit={limit}; pass a larger limit= (e.g. limit={size}) to enumerate "
            "anyway (time grows linearly with the support size; memory does not)"
        )
    return size


def _chunk_values(raw, configs, start, stop, source, shape):
    """``raw = term(configs)`` as float64, checked: real numbers, one row per configuration, rows of ``shape``."""
    # complex, string, bool and object outputs: TypeError naming the source
    values = as_float_array(raw, f"the output of {source}")
    if values.ndim < 1 or values.shape[0] != configs.shape[0]:
        raise ValueError(
            f"{source} must return one row per configuration: for a batch of {configs.shape[0]} configurations "
            f"(indices {start}..{stop - 1}) it returned shape {values.shape}"
        )
    if shape is not None and values.shape[1:] != shape:
        raise ValueError(
            f"{source} must return rows of the same shape for every batch: rows of shape {shape} for the first "
            f"batch, of shape {values.shape[1:]} for the configurations with indices {start}..{stop - 1}"
        )
    if not np.isfinite(values).all():
        bad = first_index(~np.isfinite(values))
        raise ValueError(
            f"{source} returned the non-finite value {float(values[bad])!r} at index {bad} of the batch of "
            f"configurations {start}..{stop - 1}; the exact oracles need finite values"
        )
    return values


def _stream(dist, term, limit, chunk_size, what, source, with_index=False):
    """Compensated sum over the support of ``q(b) * term(b)``; ``term`` maps (m, *event) -> (m, *shape).

    ``what`` names the result (error messages), ``source`` the function whose output is checked.  With
    ``with_index``, ``term(b, index)`` also receives the (ascending) enumeration indices of the rows of ``b``.
    """
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
        index = None
        if with_index:
            index = np.arange(start, stop, dtype=np.int64)
        if not keep.all():
            configs = configs[keep]
            probs = probs[keep]
            index = None if index is None else index[keep]
        configs = np.ascontiguousarray(configs)
        raw = term(configs, index) if with_index else term(configs)
        values = _chunk_values(raw, configs, start, stop, source, shape)
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
    """``E_q[fn(b)]`` for any array-valued ``fn``, by enumeration: :func:`refgrad.exact.expect`."""
    if not callable(fn):
        raise TypeError(f"fn must be callable (configs -> array with one row per configuration); got {describe(fn)}")
    if isinstance(fn, Objective):
        _check_dist(dist)
        fast = _gray_expectation(dist, fn, limit, chunk_size)
        if fast is not None:
            return np.array(fast)
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return _stream(dist, fn, limit, chunk_size, "expectation of fn", f"fn ({name})")


def _separable_beyond_limit(dist, obj, limit):
    """Per-variable (distribution, term) pairs of a separable objective whose support exceeds ``limit``, else None.

    ``E[Σ_j f_j(b_j)] = Σ_j E[f_j(b_j)]`` and the gradient of variable j's parameters is that of its own term,
    so a support too large to enumerate is not enumerated (:mod:`refgrad._moments.separable`).
    A ``limit`` raised above :data:`~refgrad.distributions.ENUMERATION_LIMIT` does not turn the
    decomposition off: beyond that default it is taken all the same (a raised limit once turned
    the instant answer for 61 separable bits into a 2**61-step walk).
    """
    limit = check_count(limit, "limit")
    size = getattr(dist, "support_size", None)
    if not isinstance(size, (int, np.integer)) or size <= min(limit, ENUMERATION_LIMIT) or len(dist.event_shape) < 1:
        return None
    event = tuple(dist.event_shape)
    if event[0] < 2 or (event[1] if len(event) == 2 else 2) > limit:
        return None  # one variable, or even one variable's support exceeds the limit: refused as before
    terms = coordinate_terms(obj, dist)
    if terms is None:
        return None
    return [(coordinate_dist(dist, j), t) for j, t in enumerate(terms)]


def expectation(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    """``E_q[f(b)]`` for one family (Bernoulli, Categorical, GaussianThreshold): :func:`refgrad.exact.expectation`."""
    _check_dist(dist)
    obj = as_objective(f)
    separated = _separable_beyond_limit(dist, obj, limit)
    if separated is not None:
        return float(math.fsum(expectation(dj, fj, limit, chunk_size) for dj, fj in separated))
    fast = _gray_expectation(dist, obj, limit, chunk_size)
    if fast is not None:
        return fast
    source = f"objective {obj.name!r}"
    return float(_stream(dist, lambda b: obj.value(b), limit, chunk_size, f"expectation of {source}", source))


def gradient(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    """``∇_φ E_q[f(b)]`` for one family, by expected flip differences: :func:`refgrad.exact.gradient`."""
    _check_dist(dist)
    obj = as_objective(f)
    separated = _separable_beyond_limit(dist, obj, limit)
    if separated is not None:
        return np.concatenate([gradient(dj, fj, limit, chunk_size) for dj, fj in separated], axis=0)
    fast = _gray_gradient(dist, obj, limit, chunk_size)
    if fast is not None:
        return fast
    source = f"objective {obj.name!r}"
    if not hasattr(dist, "_flip_weights"):  # a duck-typed distribution: the score-function identity
        nd = len(dist.param_shape)

        def term(b):
            return obj.value(b).reshape((-1,) + (1,) * nd) * dist.score(b)

        return _stream(dist, term, limit, chunk_size, f"gradient of {source}", source)
    weights, active = dist._flip_weights()
    if type(obj)._flip_differences is Objective._flip_differences:
        # no closed form: the same differences as obj.flip_differences, reusing f on the chunk itself
        def differences(b, index):
            return _chunk_flip_differences(obj, dist, b, index, active)

        with_index = True
    else:

        def differences(b):
            return obj.flip_differences(b, active=active)

        with_index = False
    mean = _stream(
        dist, differences, limit, chunk_size, f"gradient of {source}", f"{source} (flip differences)", with_index
    )
    return np.where(active, weights * mean, 0.0)


def _gray_tables(dist, obj, limit, chunk_size):
    """Walk tables when the Gray-code kernels apply (arguments checked as the general path does), else None."""
    if not _GRAY.get():
        return None

    limit = check_count(limit, "limit")
    check_count(chunk_size, "chunk_size")
    _check_support(dist, limit)
    return _gray.separable_tables(dist, obj)


def _gray_expectation(dist, obj, limit, chunk_size):
    """:func:`expectation` by the Gray-code walk, or None (not applicable, or non-finite: the general path reports)."""
    found = _gray_tables(dist, obj, limit, chunk_size)
    if found is None:
        return None
    value = walk_sums(found[0], marginals=False)[0]
    return value if np.isfinite(value) else None


def _gray_gradient(dist, obj, limit, chunk_size):
    r""":func:`gradient` by the Gray-code walk, or None.

    The expected flip differences ``E_q[D_j(b)]`` of :class:`~refgrad.objectives.SquaredDistance` and
    :class:`~refgrad.objectives.Linear` depend on ``b`` through variable ``j`` only: for bits ``D_j`` is the
    constant ``1 − 2t_j`` or ``w_j`` and ``E_q[D_j] = D_j Σ_b q(b)``; for categorical variables
    ``D_{jk}(c) = 2(t_{jc} − t_{jk})`` or ``w_{jk} − w_{jc}`` and ``E_q[D_{jk}] = Σ_c D_{jk}(c) M_{j,c}`` with
    ``M_{j,c} = Σ_{b: b_j = c} q(b)`` (compensated, :mod:`refgrad._oracle.gray`).
    """
    found = _gray_tables(dist, obj, limit, chunk_size)
    if found is None:
        return None
    tables, kind, param, choices = found
    categorical = dist.family == "categorical"
    _, mass, margin = walk_sums(tables, marginals=categorical)
    weights, active = dist._flip_weights()
    mean = np.zeros(dist.param_shape)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the general path reports it
        for v, (i, cats) in enumerate(choices):
            if not categorical:
                mean[i] = ((1.0 - 2.0 * param[i]) if kind == "squared" else param[i]) * mass
                continue
            for k in cats:
                if kind == "squared":
                    diffs = 2.0 * (param[i, cats] - param[i, k])
                else:
                    diffs = param[i, k] - param[i, cats]
                try:
                    mean[i, k] = math.fsum(diffs * margin[v, : cats.size])
                except OverflowError:  # reported by the general path
                    return None
        result = np.where(active, weights * mean, 0.0)
    return result if np.isfinite(result).all() else None


def _chunk_flip_differences(obj, dist, b, index, active):
    """``obj.flip_differences(b, active)`` by the default rule (f at b and at b'), with f(b') looked up.

    ``b`` are configurations of positive probability with ascending enumeration indices ``index``.  Where
    the flipped configuration ``b'`` is among them its value of f is reused; elsewhere it is evaluated (it has
    positive probability: only variables and categories of nonzero probability are active).  The numbers are
    those of :meth:`refgrad.objectives.Objective.flip_differences`; the cost falls from ``1 + Σ active``
    evaluations of f per configuration to ``1`` plus those whose flips leave the chunk.
    """
    n, d = b.shape[0], b.shape[1]
    bits = b.ndim == 2
    radix = 2 if bits else b.shape[2]
    base = obj.value(b)
    strides = radix ** np.arange(d - 1, -1, -1, dtype=np.int64)
    lo, width = int(index[0]), int(index[-1]) - int(index[0]) + 1
    position = np.full(width, -1, dtype=np.int64)  # row of each enumeration index of the chunk, -1 if skipped
    position[index - lo] = np.arange(n)

    def lookup(offset):
        """Rows of the partners at ``offset`` from ``lo`` (and whether each is in the chunk)."""
        inside = (offset >= 0) & (offset < width)
        found_at = position[np.where(inside, offset, 0)]
        return found_at, inside & (found_at >= 0)

    if bits:  # all variables at once (flipping bit i is index XOR stride_i); then the flips leaving the chunk
        offset = (index[:, None] ^ strides[None, :]) - lo
        if n == width:  # no configuration skipped: rows are the offsets themselves
            found = (offset >= 0) & (offset < width)
            found_at = np.where(found, offset, 0)
        else:
            found_at, found = lookup(offset)
        other = base[found_at]  # garbage where not found: replaced just below
        for i in np.flatnonzero(active & ~found.all(axis=0)):
            missing = np.flatnonzero(~found[:, i])
            flipped = b[missing]
            flipped[:, i] = 1.0 - flipped[:, i]
            other[missing, i] = obj.value(flipped)
        # f(b^{i←1}) − f(b^{i←0}): negated where b_i = 1, by the exact factor 1 − 2 b_i (fl(x − y) = −fl(y − x))
        out = np.subtract(other, base[:, None], out=other)
        out *= 1.0 - 2.0 * b
        if not active.all():
            out[:, ~active] = 0.0
        return out
    chosen = np.ascontiguousarray(np.argmax(b, axis=2).T)  # (d, n): the category of each variable
    out = np.zeros(b.shape)
    for i, k in np.argwhere(active):
        rows = np.flatnonzero(chosen[i] != k)
        if rows.size == 0:
            continue
        found_at, found = lookup(index[rows] - lo + (k - chosen[i][rows]) * strides[i])
        other = base[found_at]
        if not found.all():
            missing = ~found
            flipped = b[rows[missing]]
            flipped[:, i, :] = 0.0
            flipped[:, i, k] = 1.0
            other[missing] = obj.value(flipped)
        out[rows, i, k] = other - base[rows]
    return out
