"""Fixed, vectorised quadrature rules for integrals of the Concrete density over pieces of the simplex.

The Concrete density (Maddison, Mnih & Teh 2017, Definition 1) on the simplex of
dimension K − 1, taken w.r.t. Lebesgue measure on ``x_1, ..., x_{K-1}``, behaves
near the faces and vertices like powers of the distance:

* near a vertex (all but one coordinate → 0, at distance r): ``p · r^{K−2} ~ r^{τ−1}``,
  the same as the one-bit (K = 2) density near an end of (0, 1);
* near a face ``x_k → 0`` away from the vertices: ``p ~ x_k^{(K−1)τ − 1}``.

Both are integrable end-point singularities, unbounded for small τ.  The rules here
remove the leading power with the substitution ``t = w · u^{1/β}`` (``β`` the power,
``t`` the distance to the singular end, ``w`` the length of the piece), which turns
``t^{β−1} dt`` into ``(w^β/β) du``, and integrate the remaining bounded integrand in
``u`` with the tanh-sinh rule of :func:`refgrad._moments.quadrature.tanh_sinh` (Takahasi &
Mori 1974), which absorbs what is left (powers ``u^{j/β}`` of the next terms).

K = 2 is a one-dimensional integral in ``x_1`` with ``x_2 = 1 − x_1``; K = 3 uses the
coordinates ``(x_1, y)`` with ``x_2 = (1 − x_1) y``, ``x_3 = (1 − x_1)(1 − y)``,
``dx_1 dx_2 = (1 − x_1) dx_1 dy`` (a Duffy-type map that collapses the edge
``x_1 = 1`` onto the vertex e_1), with a tensor rule over ``[a, b] × [0, 1]``.  Every
node carries its complement (``1 − x_1``, ``1 − y``) computed without cancellation,
so points within 1e-300 of a face keep full relative precision.  All nodes are
evaluated in one call of :func:`refgrad.relaxations.concrete_log_density`.

The accuracy of a rule is checked by the caller against the same rule at the next
tanh-sinh level (twice as many nodes in each variable) and against the total mass 1.
"""
import numpy as np

from refgrad import relaxations as rx
from refgrad._moments.quadrature import tanh_sinh

__all__ = ["end_nodes", "interval_nodes", "concrete_mass", "concrete_bin_masses"]


def end_nodes(width, power, level):
    """Nodes ``t`` in (0, width] and weights for ``∫_0^width g(t) dt`` with ``g(t) ~ t^{power−1}`` at 0.

    Substitution ``t = width · u^{1/power}``, ``dt = (width/power) u^{1/power − 1} du``, then
    tanh-sinh in ``u`` on (0, 1) at ``level``.  Nodes that underflow to 0 are dropped.
    """
    u, w = tanh_sinh(0.0, 1.0, level)
    log_u = np.log(u)
    t = width * np.exp(log_u / power)
    wt = w * (width / power) * np.exp((1.0 / power - 1.0) * log_u)
    keep = t > 0.0
    return t[keep], wt[keep]


def interval_nodes(a, b, power, level):
    """Nodes on ``[a, b] ⊂ [0, 1]`` as ``(x, 1 − x, weights)``, both coordinates accurate.

    An end at 0 or 1 is treated as a singular end of type ``t^{power−1}`` (see :func:`end_nodes`);
    ``[0, 1]`` is split at 1/2.  A piece strictly inside (0, 1) gets plain tanh-sinh nodes.
    """
    if a == 0.0 and b == 1.0:
        x1, xc1, w1 = interval_nodes(0.0, 0.5, power, level)
        x2, xc2, w2 = interval_nodes(0.5, 1.0, power, level)
        return np.concatenate([x1, x2]), np.concatenate([xc1, xc2]), np.concatenate([w1, w2])
    if a == 0.0:
        t, w = end_nodes(b, power, level)
        return t, 1.0 - t, w
    if b == 1.0:
        r, w = end_nodes(1.0 - a, power, level)
        return 1.0 - r, r, w
    x, w = tanh_sinh(a, b, level)
    return x, 1.0 - x, w


def _integrate(points, weights, logits, tau):
    """``Σ_i w_i p(x_i)`` over ``points`` (n, K), each term formed in log space (no overflow of p at small τ).

    Points with a coordinate that underflowed to 0 are dropped (their weight is below 1e-300).
    """
    ok = np.all(points > 0.0, axis=1) & (weights > 0.0)
    if not ok.any():
        return 0.0
    logp = rx.concrete_log_density(points[ok], logits, tau)
    return float(np.sum(np.exp(logp + np.log(weights[ok]))))


def _tensor(x1, xc1, w1, y, yc, wy):
    """Points (x_1, (1 − x_1) y, (1 − x_1)(1 − y)) and weights w_1 w_y (1 − x_1) of a tensor rule."""
    X1, Y = np.meshgrid(x1, y, indexing="ij")
    XC1, YC = np.meshgrid(xc1, yc, indexing="ij")
    pts = np.stack([X1.ravel(), (XC1 * Y).ravel(), (XC1 * YC).ravel()], axis=1)
    return pts, (w1[:, None] * wy[None, :] * XC1).ravel()


def _corner(b, tau, level):
    """Nodes of ``[0, b] × [0, 1]`` in ``(x_1, y)`` near the vertices e_3 (y → 0) and e_2 (y → 1) at x_1 = 0.

    Each half ``y ≤ 1/2`` / ``y ≥ 1/2`` is cut along its diagonal into two triangles with apex at the
    vertex, each mapped from the unit square by a Duffy map ``(r, s) ↦ apex + r · (edge point at s)``
    (Jacobian ∝ r).  Near the apex the integrand is then ``r^{τ−1} h(s)`` and ``h(s) ~ s^{2τ−1}`` at the
    face, both of product type: power τ in ``r``, 2τ in ``s`` (see :func:`end_nodes`).
    """
    r, wr = end_nodes(1.0, tau, level)
    s, ws = end_nodes(1.0, 2.0 * tau, level)
    R, S = np.meshgrid(r, s, indexing="ij")
    W = (wr[:, None] * ws[None, :] * R * (0.5 * b)).ravel()
    R, S = R.ravel(), S.ravel()
    # triangle A: x_1 = b r, small y = r s / 2;  triangle B: small y = r / 2, x_1 = b r s
    x1 = np.concatenate([b * R, b * R * S])
    small = np.concatenate([0.5 * R * S, 0.5 * R])
    w = np.concatenate([W, W])
    xc1 = 1.0 - x1
    out_pts, out_w = [], []
    for y, yc in ((small, 1.0 - small), (1.0 - small, small)):  # lower half (near e_3), upper half (near e_2)
        out_pts.append(np.stack([x1, xc1 * y, xc1 * yc], axis=1))
        out_w.append(w * xc1)
    return np.concatenate(out_pts), np.concatenate(out_w)


def concrete_mass(logits, tau, a, b, level):
    """``P(a ≤ x_1 ≤ b)`` for the Concrete distribution with K = 2 or 3, by the rules above.

    Parameters
    ----------
    logits : array_like, shape (K,)
    tau : float
    a, b : float, 0 ≤ a < b ≤ 1
    level : int
        tanh-sinh level in each variable (step ``2^-level``).

    Returns
    -------
    (mass, evaluations) : (float, int)
    """
    logits = np.asarray(logits, dtype=np.float64)
    K = logits.size
    if K == 2:
        x, xc, w = interval_nodes(a, b, tau, level)
        return _integrate(np.stack([x, xc], axis=1), w, logits, tau), x.size
    if K != 3:
        raise ValueError(f"logits must have K = 2 or 3 entries; got K = {K}")
    if a == 0.0 and b == 1.0:
        m1, e1 = concrete_mass(logits, tau, 0.0, 0.5, level)
        m2, e2 = concrete_mass(logits, tau, 0.5, 1.0, level)
        return m1 + m2, e1 + e2
    if a == 0.0:
        pts, w = _corner(b, tau, level)
    else:
        pts, w = _tensor(*interval_nodes(a, b, tau, level), *interval_nodes(0.0, 1.0, 2.0 * tau, level))
    return _integrate(pts, w, logits, tau), pts.shape[0]


def concrete_bin_masses(logits, tau, edges, level):
    """Masses of the bins ``[edges[i], edges[i+1]]`` of ``x_1``; returns (masses, total evaluations)."""
    out = [concrete_mass(logits, tau, float(a), float(b), level) for a, b in zip(edges[:-1], edges[1:])]
    return np.array([m for m, _ in out]), int(sum(e for _, e in out))
