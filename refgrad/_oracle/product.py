r"""Exact expectation and gradient over a :class:`~refgrad.distributions.Product` of heterogeneous blocks.

The layout of parameters and points is documented in :mod:`refgrad.distributions.product`.
"""
import numpy as np

from ..objectives import FunctionObjective
from ..objectives.multisample import LogMeanExp
from .multisample import conditional_tables
from .stream import _stream

__all__ = ["flip_differences", "gradient", "expectation", "multisample_gradient"]


def flip_differences(dist, obj, x, index, active):
    r"""Flip differences of ``obj`` on a chunk of configurations of ``dist``, shape ``(n, P)``.

    ``D_p = f(x^{i←1}) − f(x^{i←0})`` at the column ``p`` of a bit ``i``; ``D_p = f(x^{i←k}) − f(x)`` at the
    column ``p`` of category ``k`` of a categorical row ``i`` (0 at the chosen category); 0 where ``active``
    is False.  ``x`` are configurations of positive probability with ascending enumeration indices ``index``:
    the value of ``f`` at a flipped configuration in the chunk is looked up, elsewhere evaluated (a flip of an
    active entry has positive probability).  A bit's difference is ``(f(x') − f(x))(1 − 2x_i)``, the exact
    negation where ``x_i = 1`` -- the arithmetic of :func:`refgrad.exact.gradient` for a single family.
    """
    n = x.shape[0]
    base = obj.value(x)
    columns = np.ascontiguousarray(x.T)  # variable-major: each column of x contiguous
    out = np.zeros(columns.shape)  # (P, n), transposed on return
    lo, width = int(index[0]), int(index[-1]) - int(index[0]) + 1
    position = np.full(width, -1, dtype=np.int64)
    position[index - lo] = np.arange(n)
    every = np.arange(n)

    def partners(rows, offset, set_value):
        """f at the flipped configurations: looked up in the chunk where there, else evaluated."""
        inside = (offset >= 0) & (offset < width)
        found_at = position[np.where(inside, offset, 0)]
        found = inside & (found_at >= 0)
        other = base[found_at]
        if not found.any():
            flipped = x.copy() if rows is every else x[rows]
            set_value(flipped)
            return obj.value(flipped)
        if not found.all():
            missing = ~found
            flipped = x[rows[missing]]  # a copy (advanced indexing)
            set_value(flipped)
            other[missing] = obj.value(flipped)
        return other

    for v, (_, first, radix, _, categorical) in enumerate(dist._variables):
        stride = dist._strides[v]
        if not categorical:
            if not active[first]:
                continue
            cur = columns[first]
            offset = index - lo + (1 - 2 * cur.astype(np.int64)) * stride

            def flip_bit(rows_x, c=first):
                rows_x[:, c] = 1.0 - rows_x[:, c]

            other = partners(every, offset, flip_bit)
            out[first] = (other - base) * (1.0 - 2.0 * cur)
            continue
        chosen = np.argmax(columns[first:first + radix], axis=0)
        for k in range(radix):
            if not active[first + k]:
                continue
            rows = np.flatnonzero(chosen != k)
            if rows.size == 0:
                continue
            offset = index[rows] - lo + (k - chosen[rows]) * stride

            def set_category(rows_x, c=first, kk=k, K=radix):
                rows_x[:, c:c + K] = 0.0
                rows_x[:, c + kk] = 1.0

            other = partners(rows, offset, set_category)
            out[first + k, rows] = other - base[rows]
    return out.T


def gradient(dist, obj, limit, chunk_size):
    """:func:`refgrad.exact.gradient` for a :class:`Product` (flip differences of ``obj``'s values)."""
    weights, active = dist._flip_weights()
    source = f"objective {obj.name!r}"

    def differences(x, index):
        return flip_differences(dist, obj, x, index, active)

    mean = _stream(dist, differences, limit, chunk_size, f"gradient of {source}", source, True)
    return np.where(active, weights * mean, 0.0)


def expectation(dist, obj, limit, chunk_size):
    """:func:`refgrad.exact.expectation` for a :class:`Product`: the compensated sum of ``q(x) f(x)``."""
    source = f"objective {obj.name!r}"
    return float(_stream(dist, lambda x: obj.value(x), limit, chunk_size, f"expectation of {source}", source))


def multisample_gradient(dist, f, limit):
    r"""``∇_φ E[L(x^1, …, x^k)]`` for a multi-sample objective over a :class:`Product`.

    As :func:`refgrad.multisample.gradient`: ``Σ_j`` the exact gradient of the single-sample function
    ``M_j(x) = E[L | x^j = x]`` (:func:`refgrad.multisample.conditional_tables`), ``k`` times that of ``M_1``
    for the symmetric :class:`~refgrad.multisample.LogMeanExp`; ``M_j`` is looked up by the enumeration
    index of ``x`` (:meth:`Product.index_of`) and differentiated by :func:`gradient`.
    """
    _, M = conditional_tables(dist, f, limit)
    rows = M[:1] if isinstance(f, LogMeanExp) else M
    total = None
    for j, row in enumerate(rows):
        table = FunctionObjective(lambda x, row=row: row[dist.index_of(x)], name=f"E[{f.name} | x^{j + 1} = x]")
        part = gradient(dist, table, limit, 65536)
        total = part if total is None else total + part
    return f.k * total if isinstance(f, LogMeanExp) else total
