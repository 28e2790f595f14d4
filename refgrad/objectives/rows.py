"""Row functions of the built-in objectives, shared by their array methods and the fused kernels.

:class:`~refgrad.objectives.SquaredDistance` and :class:`~refgrad.objectives.Linear`
are described by ``(kind, parameters)``: the kind below and their target or weights
broadcast to the event shape and flattened in C order.  One event is a flat row
``z``; its value is summed left to right, the same sum whether it is called from the
array method ``value`` or from a fused estimator kernel.

The parameters carry the kind in their number of dimensions (:func:`encode`):
``(E,)`` for SquaredDistance, ``(1, E)`` for Linear, ``(1, 1, 1 + K^d)`` for a Table
(``K`` first, then the values).  Numba compiles :func:`objective_value` and
:func:`objective_grad` once per array type and prunes the branches of the other
kinds, so a kernel's objective is as cheap as if it were written inline.  Branching
on the integer ``kind`` at run time instead made a one-bit REINFORCE row ten times
slower (25 ns against 2.3 ns: the call is no longer inlined into the row loop).
"""
import numpy as np

from .._core.jit import jit

__all__ = [
    "objective_value",
    "objective_grad",
    "objective_values",
    "encode",
]

#: Row kinds of built-in objectives.
OBJECTIVE_SQUARED_DISTANCE = 0
OBJECTIVE_LINEAR = 1
#: Table on one-hot (flat d·K) events; parameters ``[K, values...]``.
OBJECTIVE_TABLE = 2
#: Table on bit events (d,) with K = 2, the bits read as the simplex rows (1 − z_i, z_i); parameters ``[2, values...]``.
OBJECTIVE_TABLE_BITS = 3


def encode(kind, flat):
    """The parameters of kind ``kind`` from their flat form, with the kind in their dimension (module docstring)."""
    flat = np.ascontiguousarray(flat, dtype=np.float64).reshape(-1)
    if kind == OBJECTIVE_SQUARED_DISTANCE:
        return flat
    if kind == OBJECTIVE_LINEAR:
        return flat.reshape(1, -1)
    return flat.reshape(1, 1, -1)


@jit
def objective_value(kind, par, z):
    """Value of a built-in objective at one flattened event ``z``, summed left to right."""
    total = 0.0
    if par.ndim == 1:  # SquaredDistance
        for e in range(z.size):
            diff = z[e] - par[e]
            total += diff * diff
    elif par.ndim == 2:  # Linear
        w = par[0]
        for e in range(z.size):
            total += z[e] * w[e]
    else:  # Table: out of line, so that this function stays small enough to be inlined into row loops
        total = _table_value_flat(kind, par[0, 0], z)
    return total


@jit
def objective_grad(kind, par, z, grad):
    """Gradient of a built-in objective at one flattened event ``z``, written into ``grad``."""
    if par.ndim == 1:  # SquaredDistance
        for e in range(z.size):
            grad[e] = 2.0 * (z[e] - par[e])
    elif par.ndim == 2:  # Linear
        w = par[0]
        for e in range(z.size):
            grad[e] = w[e]
    else:  # Table: out of line (see objective_value)
        _table_grad_flat(kind, par[0, 0], z, grad)


@jit
def _table_value_flat(kind, flat, z):
    """A Table's value at one flat event (``flat = [K, values...]``)."""
    return _table_value(flat[1:], _table_simplex(kind, flat, z))[0]


@jit
def _table_grad_flat(kind, flat, z, grad):
    """A Table's gradient at one flat event, written into ``grad`` (bits: ∂/∂z_i of f(1 − z, z), as Table.grad)."""
    zr = _table_simplex(kind, flat, z)
    d, K = zr.shape[1], zr.shape[2]
    g = _table_grad(flat[1:], zr)
    for i in range(d):
        if kind == OBJECTIVE_TABLE_BITS:
            grad[i] = g[0, i, 1] - g[0, i, 0]
        else:
            for k in range(K):
                grad[i * K + k] = g[0, i, k]


@jit
def objective_values(kind, par, z):
    """:func:`objective_value` of each row of ``z`` (``(n, size)``) -> ``(n,)``."""
    n = z.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = objective_value(kind, par, z[i])
    return out




# ----------------------------------------------------------------------------- Table
# The array kernels of Table.value / Table.grad live here, so that the fused kernels' Table rows call the
# same code (on a (1, d, K) simplex row) without a circular import.  A per-row helper shared by both was
# tried and made Table.value 1.7x and Table.grad 2x slower (the validation's Table-heavy cases 15 s slower).


@jit
def _table_simplex(kind, par, z):
    """The ``(1, d, K)`` simplex row of a flat event: one-hot rows as they are, bits as ``(1 − z_i, z_i)``.

    ``par`` is the Table's flat parameters ``[K, values...]``.
    """
    K = int(par[0])
    if kind == OBJECTIVE_TABLE_BITS:
        d = z.size
        zr = np.empty((1, d, 2))
        for i in range(d):
            zr[0, i, 0] = 1.0 - z[i]
            zr[0, i, 1] = z[i]
        return zr
    d = z.size // K
    zr = np.empty((1, d, K))
    for i in range(d):
        for k in range(K):
            zr[0, i, k] = z[i * K + k]
    return zr


@jit
def _vertex_index(z, s):
    """Index (first variable most significant) of row ``s`` of ``z`` if it is a vertex, else -1."""
    d = z.shape[1]
    K = z.shape[2]
    index = 0
    for i in range(d):
        hot = -1
        for k in range(K):
            x = z[s, i, k]
            if x == 1.0:
                if hot >= 0:
                    return -1
                hot = k
            elif x != 0.0:
                return -1
        if hot < 0:
            return -1
        index = index * K + hot
    return index


@jit
def _table_value(values, z):
    """Multilinear extension ``Σ_b values[b] Π_i z[s, i, b_i]`` for each row ``s`` of ``z`` (n, d, K)."""
    n, d, K = z.shape
    size = values.shape[0]
    out = np.empty(n)
    digits = np.zeros(d, dtype=np.int64)
    for s in range(n):
        vertex = _vertex_index(z, s)
        if vertex >= 0:
            # exact shortcut: every other term is values[b] * 0
            out[s] = values[vertex]
            continue
        total = 0.0
        for c in range(size):
            rest = c
            for i in range(d - 1, -1, -1):
                digits[i] = rest % K
                rest //= K
            weight = 1.0
            for i in range(d):
                weight *= z[s, i, digits[i]]
            total += values[c] * weight
        out[s] = total
    return out


@jit
def _table_grad(values, z):
    """``∂/∂z[s, i, k]`` of the multilinear extension: ``Σ_{b: b_i = k} values[b] Π_{j≠i} z[s, j, b_j]``.

    Prefix/suffix products, no division (vertices contain exact zeros).
    """
    n, d, K = z.shape
    size = values.shape[0]
    out = np.zeros((n, d, K))
    digits = np.zeros(d, dtype=np.int64)
    prefix = np.empty(d + 1)
    suffix = np.empty(d + 1)
    for s in range(n):
        vertex = _vertex_index(z, s)
        if vertex >= 0:
            # at a vertex only the configurations differing from it in variable i alone contribute
            rest = vertex
            for i in range(d - 1, -1, -1):
                digits[i] = rest % K
                rest //= K
            stride = 1
            for i in range(d - 1, -1, -1):
                base = vertex - digits[i] * stride
                for k in range(K):
                    out[s, i, k] = values[base + k * stride]
                stride *= K
            continue
        for c in range(size):
            rest = c
            for i in range(d - 1, -1, -1):
                digits[i] = rest % K
                rest //= K
            prefix[0] = 1.0
            for i in range(d):
                prefix[i + 1] = prefix[i] * z[s, i, digits[i]]
            suffix[d] = 1.0
            for i in range(d - 1, -1, -1):
                suffix[i] = z[s, i, digits[i]] * suffix[i + 1]
            v = values[c]
            for i in range(d):
                out[s, i, digits[i]] += v * (prefix[i] * suffix[i + 1])
    return out
