"""Quadrature rules on sub-intervals of (0, 1) for integrating estimators over their uniforms.

The noise of an estimator enters through transforms such as ``log u − log(1 − u)``
or ``Φ⁻¹(u)`` whose derivatives blow up at the ends of (0, 1), and the estimate
itself may jump at declared break points.  Integrating piece by piece between
break points with the tanh-sinh (double-exponential) rule of Takahasi & Mori
(1974) handles both: nodes cluster doubly-exponentially at each end of each piece,
so end-point singularities of logarithmic or algebraic type and steep layers next
to a break point are resolved, and the error falls like ``exp(−c N / log N)``.

Nodes are generated in the form ``a + (b − a) σ(2s)`` and ``b − (b − a) σ(−2s)``
so that nodes within 1e-300 of either end keep full relative precision (a node
equal to an end point is dropped; its weight is below 1e-300).
"""
import numpy as np

__all__ = ["tanh_sinh", "gauss_legendre", "pieces"]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def tanh_sinh(a, b, level):
    """Nodes and weights of the tanh-sinh rule on ``[a, b]`` with step ``h = 2**-level``.

    The rule is truncated where weights fall below 1e-300 relative to ``b − a``.
    Returns ``(nodes, weights)``, nodes strictly inside ``(a, b)``.
    """
    h = 2.0 ** (-level)
    # |t| <= 4.2: end nodes lie within ~1e-45 of the ends, weights ~1e-43 (negligible for
    # integrands growing like powers of log(1/u), which is what the noise transforms produce)
    k = np.arange(-int(np.ceil(4.2 / h)), int(np.ceil(4.2 / h)) + 1)
    t = k * h
    s = 0.5 * np.pi * np.sinh(t)
    width = b - a
    # x - a = width * σ(2s),  b - x = width * σ(-2s)
    left = width * _sigmoid(2.0 * s)
    right = width * _sigmoid(-2.0 * s)
    x = np.where(t < 0, a + left, b - right)
    # x = (a+b)/2 + (width/2) tanh(s):  dx/dt = (width/2)(π/2) cosh t / cosh²(s),  1/cosh²(s) = 4 σ(2s) σ(−2s)
    w = width * h * 0.5 * np.pi * np.cosh(t) * 2.0 * _sigmoid(2.0 * s) * _sigmoid(-2.0 * s)
    keep = (x > a) & (x < b) & (w > 1e-300 * max(width, 1e-300))
    return x[keep], w[keep]


def gauss_legendre(a, b, order):
    """Gauss–Legendre nodes and weights on ``[a, b]`` (exact for polynomials of degree < 2·order)."""
    x, w = np.polynomial.legendre.leggauss(order)
    return a + (b - a) * (x + 1.0) / 2.0, w * (b - a) / 2.0


def pieces(points):
    """Sub-intervals of (0, 1) between the sorted, de-duplicated finite ``points`` strictly inside it."""
    pts = np.asarray([] if points is None else points, dtype=np.float64).ravel()
    pts = np.unique(pts[np.isfinite(pts) & (pts > 0.0) & (pts < 1.0)])
    edges = np.concatenate([[0.0], pts, [1.0]])
    return list(zip(edges[:-1], edges[1:]))
