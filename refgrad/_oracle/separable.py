r"""The per-variable decomposition of a separable objective ``f(b) = Σ_j f_j(b_j)``.

``E[f] = Σ_j E[f_j(b_j)]`` and the gradient of variable ``j``'s parameters is that of its own term, so
the exact oracles enumerate one variable at a time (:func:`refgrad.exact.expectation`) and the exact
estimator moments integrate one variable's noise at a time (:mod:`refgrad._moments.separable`).
"""
import numpy as np

from ..objectives import Linear, Objective, Separable, SquaredDistance, Table

__all__ = ["coordinate_dist", "coordinate_terms"]

#: Relative tolerance of the additivity check of a Table (in units of its largest |value|).
ADDITIVE_RTOL = 1e-13


def coordinate_dist(dist, j):
    """Variable ``j``'s one-variable distribution (event shape ``(1,)`` or ``(1, K)``)."""
    if not hasattr(dist, "coordinate"):
        raise ValueError(f"no one-variable form for family {getattr(dist, 'family', None)!r}")
    return dist.coordinate(j)


def _additive_table(obj, radix, d):
    """Per-variable tables ``t_j`` (with the constant in ``t_0``) of an additive Table, or None."""
    values = obj.values
    if obj.d != d or obj.K != radix:
        return None
    origin = (0,) * d
    c = values[origin]
    tables = []
    for j in range(d):
        idx = [0] * d
        row = np.empty(radix)
        for k in range(radix):
            idx[j] = k
            row[k] = values[tuple(idx)] - c
        tables.append(row)
    recon = np.full(values.shape, c)
    for j, t in enumerate(tables):
        shape = [1] * d
        shape[j] = radix
        recon = recon + t.reshape(shape)
    scale = max(1.0, float(np.max(np.abs(values))))
    if float(np.max(np.abs(recon - values))) > ADDITIVE_RTOL * scale * d:
        return None
    tables[0] = tables[0] + c
    return tables


def coordinate_terms(f, dist):
    """The per-variable objectives ``f_j`` (each on a one-variable event) of a separable ``f``, or None."""
    if not isinstance(f, Objective):
        return None
    event = tuple(dist.event_shape)
    d = event[0]
    if isinstance(f, Separable):
        return list(f.terms) if f.d == d else None
    if isinstance(f, (SquaredDistance, Linear)):
        param = f.target if isinstance(f, SquaredDistance) else f.weights
        try:
            full = np.broadcast_to(param, event)
        except ValueError:
            return None
        return [type(f)(np.array(full[j:j + 1])) for j in range(d)]
    if isinstance(f, Table) and dist.family in ("bernoulli", "categorical", "gaussian_threshold"):
        radix = event[1] if len(event) == 2 else 2
        tables = _additive_table(f, radix, d)
        if tables is None:
            return None
        return [Table(t, name=f"{f.name} term {j}") for j, t in enumerate(tables)]
    return None
