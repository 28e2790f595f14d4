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

Piecewise-polynomial integrands (the antithetic estimators) are integrated on
pieces whose ends are given together with their complements ``1 − p``
(:func:`complement_pieces`): a break point such as ``σ(ℓ) = 1 − σ(−ℓ)`` lies
closer to 1 than a double can resolve once ``ℓ ≳ 37``, but its complement
``σ(−ℓ)`` is exact.  Each piece then has an exactly computed width, and its
nodes (:func:`piece_nodes`) come as pairs ``(x, 1 − x)`` with the smaller of the
two accurate, so the integrand can decide on which side of a break point a node
lies from whichever is accurate.
"""
import numpy as np

__all__ = ["tanh_sinh", "exp_sinh", "line_rule", "gauss_legendre", "pieces", "complement_pieces", "piece_width",
           "piece_nodes", "MIDPOINT", "GAUSS_LEGENDRE_2"]


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


def exp_sinh(a, direction, level):
    """Nodes and weights of the exp-sinh rule on the half-line from ``a`` (``direction`` +1 or −1).

    ``x = a ± t`` with ``t = exp((π/2) sinh s)``, ``s = k 2**-level``, ``|s| ≤ 4.2``: the
    distances ``t`` to the end run from ``e^-52`` to ``e^52`` and are exact for every node,
    so a layer of any width ``≳ 1e-20`` at the end ``a`` (the latent next to a break point)
    and exponentially or double-exponentially decaying tails are both resolved.
    Returns ``(nodes, weights)``; nodes that round onto ``a`` are dropped (their weight is
    below ``1e-22``).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1; got {direction!r}")
    h = 2.0 ** (-level)
    k = np.arange(-int(np.ceil(4.2 / h)), int(np.ceil(4.2 / h)) + 1)
    s = k * h
    t = np.exp(0.5 * np.pi * np.sinh(s))
    w = h * 0.5 * np.pi * np.cosh(s) * t
    x = a + direction * t
    keep = x != a
    return x[keep], w[keep]


def line_rule(lo, hi, points, level):
    """Nodes and weights on ``(lo, hi)`` (ends possibly infinite), split at the finite ``points`` inside.

    Finite pieces take :func:`tanh_sinh`, half-lines :func:`exp_sinh` from their finite end; the
    whole line with no point inside is split at 0.  Each node is computed from the nearer end
    of its piece, so its distance to a break point is exact.  Used by the latent-space moments
    of :mod:`refgrad._moments.engine`.
    """
    pts = np.asarray([] if points is None else points, dtype=np.float64).ravel()
    pts = np.unique(pts[np.isfinite(pts) & (pts > lo) & (pts < hi)])
    if not np.isfinite(lo) and not np.isfinite(hi) and pts.size == 0:
        pts = np.array([0.0])
    edges = np.concatenate([[lo], pts, [hi]])
    xs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        if np.isfinite(a) and np.isfinite(b):
            x, w = tanh_sinh(a, b, level)
        elif np.isfinite(a):
            x, w = exp_sinh(a, 1, level)
        else:
            x, w = exp_sinh(b, -1, level)
        xs.append(x)
        ws.append(w)
    return np.concatenate(xs), np.concatenate(ws)


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


#: Fractions of a piece and weights of the one-point (midpoint) rule: exact for degree ≤ 1 in each variable.
MIDPOINT = (np.array([0.5]), np.array([1.0]))
#: Fractions and weights of the two-point Gauss–Legendre rule: exact for degree ≤ 3 in each variable.
GAUSS_LEGENDRE_2 = (np.array([0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0)]), np.array([0.5, 0.5]))


def complement_pieces(points, complements):
    """Sub-intervals of (0, 1) between break points given with their complements.

    Parameters
    ----------
    points, complements : array_like
        Break points ``p`` and ``1 − p``, each computed accurately (for example
        ``σ(ℓ)`` and ``σ(−ℓ)``); NaN entries are ignored, as are points with
        ``p ≤ 0`` or ``1 − p ≤ 0``.

    Returns
    -------
    list of tuple
        ``(a, 1 − a, b, 1 − b)`` per piece, in increasing order, covering (0, 1).
        Points at most 1/2 are ordered and de-duplicated by ``p``, the others by
        ``1 − p``, so a break point within 1e-300 of 1 still bounds a piece.
    """
    p = np.asarray([] if points is None else points, dtype=np.float64).ravel()
    q = np.asarray([] if complements is None else complements, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"points and complements must have the same size; got {p.size} and {q.size}")
    keep = np.isfinite(p) & np.isfinite(q) & (p > 0.0) & (q > 0.0)
    p, q = p[keep], q[keep]
    lower = p <= 0.5
    low = sorted({(float(a), float(b)) for a, b in zip(p[lower], q[lower])}, key=lambda e: e[0])
    high = sorted({(float(a), float(b)) for a, b in zip(p[~lower], q[~lower])}, key=lambda e: -e[1])
    edges, seen_low, seen_high = [(0.0, 1.0)], set(), set()
    for a, b in low:
        if a not in seen_low:
            seen_low.add(a)
            edges.append((a, b))
    for a, b in high:
        if b not in seen_high:
            seen_high.add(b)
            edges.append((a, b))
    edges.append((1.0, 0.0))
    return [(a, ac, b, bc) for (a, ac), (b, bc) in zip(edges[:-1], edges[1:])]


def piece_width(piece):
    """Width ``b − a`` of a piece ``(a, 1 − a, b, 1 − b)``, from the accurate ends.

    ``b − a`` below 1/2, ``(1 − a) − (1 − b)`` above it, and
    ``(1/2 − a) + (1/2 − (1 − b))`` for a piece that contains 1/2.
    """
    a, ac, b, bc = piece
    if b <= 0.5:
        return b - a
    if a >= 0.5:
        return ac - bc
    return (0.5 - a) + (0.5 - bc)


def piece_nodes(piece, rule):
    """Nodes ``x``, their complements ``1 − x`` and weights of a rule on one piece.

    Parameters
    ----------
    piece : tuple
        ``(a, 1 − a, b, 1 − b)`` as returned by :func:`complement_pieces`.
    rule : tuple of arrays
        Fractions ``θ`` in (0, 1) of the piece and their weights summing to 1
        (:data:`MIDPOINT`, :data:`GAUSS_LEGENDRE_2`).

    Returns
    -------
    x, xc, w : ndarray
        A piece below 1/2 has ``x = a + θ w`` (``xc = 1 − x`` rounded), a piece
        above 1/2 has ``xc = (1 − b) + (1 − θ) w`` (``x = 1 − xc`` rounded,
        possibly 1.0), a piece containing 1/2 has ``x = 1/2 + δ``,
        ``xc = 1/2 − δ`` with ``δ`` measured from 1/2 (0 exactly at the
        midpoint of a symmetric piece).  ``w`` is the weight times the width.
    """
    a, ac, b, bc = piece
    theta, weight = (np.asarray(r, dtype=np.float64) for r in rule)
    width = piece_width(piece)
    if b <= 0.5:
        x = a + theta * width
        xc = 1.0 - x
    elif a >= 0.5:
        xc = bc + (1.0 - theta) * width
        x = 1.0 - xc
    else:
        below, above = 0.5 - a, 0.5 - bc
        delta = 0.5 * (above - below) + (theta - 0.5) * width
        x, xc = 0.5 + delta, 0.5 - delta
    return x, xc, weight * width
