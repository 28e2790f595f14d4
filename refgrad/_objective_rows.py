"""Row functions of the built-in objectives, shared by their array methods and the fused kernels.

:class:`~refgrad.objectives.SquaredDistance` and :class:`~refgrad.objectives.Linear`
are described by ``(kind, parameters)``: the kind below and their target or weights
broadcast to the event shape and flattened in C order.  One event is a flat row
``z``; its value is summed left to right, the same sum whether it is called from the
array method ``value`` or from a fused estimator kernel.
"""
import numpy as np

from ._jit import jit

__all__ = ["objective_row", "objective_value", "objective_grad", "objective_values"]

#: Row kinds of built-in objectives.
OBJECTIVE_SQUARED_DISTANCE = 0
OBJECTIVE_LINEAR = 1


def objective_row(obj, event_shape):
    """``(kind, parameters)`` of a built-in objective on events of ``event_shape``, or None.

    ``parameters`` is the target (SquaredDistance) or the weights (Linear)
    broadcast to the event shape and flattened in C order.  Subclasses and every
    other objective return None: they take the batched path.
    """
    from .objectives import Linear, SquaredDistance

    if type(obj) is SquaredDistance:
        kind, par = OBJECTIVE_SQUARED_DISTANCE, obj.target
    elif type(obj) is Linear:
        kind, par = OBJECTIVE_LINEAR, obj.weights
    else:
        return None
    try:
        flat = np.ascontiguousarray(np.broadcast_to(par, tuple(event_shape)), dtype=np.float64).reshape(-1)
    except ValueError:
        return None  # the batched path reports the shape mismatch with its own message
    return kind, flat


@jit
def objective_value(kind, par, z):
    """Value of a built-in objective at one flattened event ``z``, summed left to right."""
    total = 0.0
    if kind == OBJECTIVE_SQUARED_DISTANCE:
        for e in range(z.size):
            diff = z[e] - par[e]
            total += diff * diff
    else:
        for e in range(z.size):
            total += z[e] * par[e]
    return total


@jit
def objective_grad(kind, par, z, grad):
    """Gradient of a built-in objective at one flattened event ``z``, written into ``grad``."""
    if kind == OBJECTIVE_SQUARED_DISTANCE:
        for e in range(z.size):
            grad[e] = 2.0 * (z[e] - par[e])
    else:
        for e in range(z.size):
            grad[e] = par[e]


@jit
def objective_values(kind, par, z):
    """:func:`objective_value` of each row of ``z`` (``(n, size)``) -> ``(n,)``."""
    n = z.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = objective_value(kind, par, z[i])
    return out


