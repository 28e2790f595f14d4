"""Exact marginal CDFs of the Binary Concrete and Concrete laws (kernels and public functions).

Re-exported by :mod:`refgrad.relaxations`, whose module docstring describes the
samplers these laws belong to.  See :func:`binary_concrete_cdf` and
:func:`concrete_marginal_cdf` for the formulas, their derivation and their accuracy.

Kernels
-------
``_binary_cdf(lx, logits, tau, upper)`` takes flat float64 arrays of the same
length (``lx`` the logit of the point); ``_concrete_cdf(lx, d, tau, m, upper)``
takes ``lx`` and ``tau`` of length ``n``, the logit differences ``d`` of shape
``(n, 3)`` (``d[i, :m[i]]`` used) and the number ``m`` of competing categories per
point (1, 2 or 3).  Kernels do not check their input; the public functions do.
"""
import math

import numpy as np

from .._core.checks import as_float_array, check_no_nan, first_index
from .._core.jit import jit
from .._core.special import _sigmoid as _sig  # accurate in both tails
from ._checks import _first_bad

__all__ = ["binary_concrete_cdf", "concrete_marginal_cdf", "MAX_CATEGORIES"]

#: Largest number of categories (with finite logits) :func:`concrete_marginal_cdf` integrates.
MAX_CATEGORIES = 4

_GL_ORDER = 10
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_ORDER)
_GL_X = np.ascontiguousarray(0.5 * (_GL_X + 1.0))  # nodes on [0, 1]
_GL_W = np.ascontiguousarray(0.5 * _GL_W)
_MAX_SUB = 512  # sub-pieces per line integral
_TAIL = 40.0  # the integrands fall by at least e^-40 over 40 (1 + tau) beyond the outermost break point

# ---------------------------------------------------------------------------
# kernels: scalar helpers
# ---------------------------------------------------------------------------


@jit
def _lae(a, b):
    """log(e^a + e^b) without overflow (-inf allowed)."""
    if a < b:
        a, b = b, a
    if b == -np.inf:
        return a
    return a + math.log1p(math.exp(b - a))


@jit
def _tail_value(u, m, upper):
    """(1 + e^u)^-m, or 1 - (1 + e^u)^-m with upper, from log1p(e^u) (no cancellation)."""
    sp = _lae(u, 0.0)
    if upper:
        return -math.expm1(-m * sp)
    return math.exp(-m * sp)


# ---------------------------------------------------------------------------
# kernels: graded pieces
# ---------------------------------------------------------------------------


@jit
def _grade(a, b, sa, sb, sub, count):
    """Append to ``sub`` the sub-pieces of [a, b], doubling in length away from each graded end.

    ``sa`` / ``sb`` are the widths of the features at a / b (``inf``: no feature there).  Returns
    the new count; a full buffer takes the rest of the piece as one sub-piece.
    """
    if not b > a:
        return count
    if sa == np.inf and sb == np.inf:
        split = 0.5 * (a + b)
    elif sb == np.inf:
        split = b
    elif sa == np.inf:
        split = a
    else:
        split = 0.5 * (a + b)
    cap = sub.shape[0] - 2
    if split > a:
        pos = a
        step = sa if sa < np.inf else split - a
        while pos + step < split and count < cap:
            sub[count, 0] = pos
            sub[count, 1] = pos + step
            count += 1
            pos += step
            step = pos - a
        sub[count, 0] = pos
        sub[count, 1] = split
        count += 1
    if b > split:
        pos = b
        step = sb if sb < np.inf else b - split
        while pos - step > split and count < cap:
            sub[count, 0] = pos - step
            sub[count, 1] = pos
            count += 1
            pos -= step
            step = b - pos
        sub[count, 0] = split
        sub[count, 1] = pos
        count += 1
    return count


@jit
def _sort_points(pts, scales, n):
    """Insertion sort of the first n break points (and their scales) in place."""
    for i in range(1, n):
        p, s = pts[i], scales[i]
        j = i - 1
        while j >= 0 and pts[j] > p:
            pts[j + 1] = pts[j]
            scales[j + 1] = scales[j]
            j -= 1
        pts[j + 1] = p
        scales[j + 1] = s


@jit
def _build_pieces(pts, scales, n, tail, sub):
    """Sub-pieces covering [min - tail, max + tail], graded at every break point; returns their count."""
    _sort_points(pts, scales, n)
    eff = np.empty(n)
    for i in range(n):  # a feature of width s_j at distance r from p_i needs resolution max(s_j, r) there
        e = scales[i]
        for j in range(n):
            e = min(e, max(scales[j], abs(pts[i] - pts[j])))
        eff[i] = e
    scales = eff
    count = _grade(pts[0] - tail, pts[0], np.inf, scales[0], sub, 0)
    for i in range(n - 1):
        count = _grade(pts[i], pts[i + 1], scales[i], scales[i + 1], sub, count)
    return _grade(pts[n - 1], pts[n - 1] + tail, scales[n - 1], np.inf, sub, count)


@jit
def _gl_nodes(pts, scales, n, tail, work):
    """Gauss-Legendre nodes of the sub-pieces of ``_build_pieces``: (nodes, count), a node (abscissa, weight).

    ``work`` (``_MAX_SUB * (1 + _GL_ORDER)``, 2) holds the sub-pieces in its first ``_MAX_SUB`` rows and the
    nodes after them; pieces of no positive length are left out.
    """
    sub = work[:_MAX_SUB]
    nodes = work[_MAX_SUB:]
    pieces = _build_pieces(pts, scales, n, tail, sub)
    count = 0
    for i in range(pieces):
        a = sub[i, 0]
        h = sub[i, 1] - a
        if not h > 0.0:
            continue
        for q in range(_GL_X.shape[0]):
            nodes[count, 0] = a + h * _GL_X[q]
            nodes[count, 1] = h * _GL_W[q]
            count += 1
    return nodes, count


# ---------------------------------------------------------------------------
# kernels: the line integral over one log-ratio coordinate
# ---------------------------------------------------------------------------


@jit
def _line_u(w, C, A, B, R, tau):
    """u(w) = C - lae(w, A) - tau lae((B - w)/tau, R/tau) and du/dw."""
    u = C - _lae(w, A) - tau * _lae((B - w) / tau, R / tau)
    du = -_sig(w - A) + _sig((B - w - R) / tau)
    return u, du


@jit
def _line_root(w0, lo, hi, C, A, B, R, tau):
    """Newton steps for u(w) = 0 from w0 (where u <= 0), kept inside [lo, hi]."""
    w = w0
    for _ in range(40):
        u, du = _line_u(w, C, A, B, R, tau)
        if du == 0.0 or not math.isfinite(u):
            break
        step = -u / du
        nw = min(max(w + step, lo), hi)
        if abs(nw - w) < 1e-3:
            return nw
        w = nw
    return w


@jit
def _line_integral(C, A, B, R, tau, m, upper, off, work):
    r"""\int exp(off + w - m lae(w, A)) F(u(w)) dw over the real line, F(u) = (1 + e^u)^-m (or 1 - that).

    Break points: the corner of lae(w, A) at A, the tau-wide kink at B - R, and the two zeros of
    the concave u (where F turns from ~1 to ~e^{-m u}), found by Newton from the zeros of the
    piecewise-linear upper bound u0(w) = C - max(w, A) - max(B - w, R) >= u.
    """
    pts = np.empty(4)
    scales = np.empty(4)
    pts[0] = A
    scales[0] = 1.0
    pts[1] = B - R
    scales[1] = min(1.0, tau)
    n = 2
    top = C - B if B - R >= A else C - A - R  # max of u0 (its flat top)
    if top > 0.0:
        left = A + B - C
        right = C - R
        lo_c = min(A, B - R)
        hi_c = max(A, B - R)
        pts[2] = _line_root(left, left, lo_c, C, A, B, R, tau)
        pts[3] = _line_root(right, hi_c, right, C, A, B, R, tau)
        scales[2] = 1.0
        scales[3] = 1.0
        n = 4
    nodes, count = _gl_nodes(pts, scales, n, _TAIL * (1.0 + tau), work)
    total = 0.0
    for j in range(count):
        w = nodes[j, 0]
        lw = off + w - m * _lae(w, A)
        if lw < -745.0:
            continue
        u = C - _lae(w, A) - tau * _lae((B - w) / tau, R / tau)
        total += nodes[j, 1] * math.exp(lw) * _tail_value(u, m, upper)
    return total


# ---------------------------------------------------------------------------
# kernels: CDFs
# ---------------------------------------------------------------------------


@jit
def _binary_cdf(lx, logits, tau, upper):
    """sigma(tau lx - logits) (or sigma(logits - tau lx)); lx = +/-inf and logits = +/-inf give the steps."""
    n = lx.shape[0]
    out = np.empty(n)
    for i in range(n):
        ell, t, z = logits[i], tau[i], lx[i]
        if ell == np.inf:
            cdf_one = 1.0 if z == np.inf else 0.0  # X = 1: P(X <= x) = 1[x >= 1]
            out[i] = 1.0 - cdf_one if upper else cdf_one
        elif ell == -np.inf:
            out[i] = 0.0 if upper else 1.0  # X = 0
        else:
            s = t * z - ell
            out[i] = _sig(-s) if upper else _sig(s)
    return out


@jit
def _plane_vertices(C, d1, d2, d3, tau, out):
    """w2-coordinates of the vertices of the piecewise-linear cell complex of u0 on the (w1, w2) plane.

    u0 = C - max(w1, w2, 0) - max(d1 - w1, d2 - w2, d3); lines where two terms of a max tie or u0 = 0
    in a cell; a vertex is a point where at least two such conditions hold.  Returns the count.
    """
    # lines a1 w1 + a2 w2 = c
    lines = np.empty((13, 3))
    k = 0
    for a1, a2, c in ((1.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                      (1.0, -1.0, d1 - d2), (1.0, 0.0, d1 - d3), (0.0, 1.0, d2 - d3),
                      (1.0, -1.0, C - d2), (1.0, 0.0, C - d3), (-1.0, 1.0, C - d1),
                      (0.0, 1.0, C - d3), (-1.0, 0.0, C - d1), (0.0, -1.0, C - d2)):
        lines[k, 0] = a1
        lines[k, 1] = a2
        lines[k, 2] = c
        k += 1
    count = 0
    scale = 1.0 + abs(C) + abs(d1) + abs(d2) + abs(d3)
    tol = 1e-9 * scale
    for i in range(k):
        for j in range(i + 1, k):
            det = lines[i, 0] * lines[j, 1] - lines[i, 1] * lines[j, 0]
            if det == 0.0:
                continue
            w1 = (lines[i, 2] * lines[j, 1] - lines[i, 1] * lines[j, 2]) / det
            w2 = (lines[i, 0] * lines[j, 2] - lines[i, 2] * lines[j, 0]) / det
            m1 = max(w1, w2, 0.0)
            m2 = max(d1 - w1, d2 - w2, d3)
            ties = -2
            for v in (w1, w2, 0.0):
                if m1 - v <= tol:
                    ties += 1
            for v in (d1 - w1, d2 - w2, d3):
                if m2 - v <= tol:
                    ties += 1
            if abs(C - m1 - m2) <= tol:
                ties += 1
            if ties >= 2 and count < out.shape[0]:
                out[count] = w2
                count += 1
    return count


@jit
def _plane_integral(C, d1, d2, d3, tau, upper, work_outer, work_inner):
    r"""2 \int\int exp(w1 + w2 - 3 L) F(u) dw1 dw2 (K = 4), the inner line integral over w1."""
    verts = np.empty(80)
    nv = _plane_vertices(C, d1, d2, d3, tau, verts)
    pts = np.empty(nv + 2)
    scales = np.empty(nv + 2)
    pts[0] = 0.0
    scales[0] = 1.0
    pts[1] = d2 - d3
    scales[1] = min(1.0, tau)
    for i in range(nv):
        pts[2 + i] = verts[i]
        scales[2 + i] = min(1.0, tau)
    nodes, count = _gl_nodes(pts, scales, nv + 2, _TAIL * (1.0 + tau), work_outer)
    total = 0.0
    for j in range(count):
        w2 = nodes[j, 0]
        A = _lae(w2, 0.0)
        R = tau * _lae((d2 - w2) / tau, d3 / tau)
        total += nodes[j, 1] * _line_integral(C, A, d1, R, tau, 3.0, upper, w2, work_inner)
    return 2.0 * total


@jit
def _concrete_cdf(lx, d, tau, m, upper):
    """Marginal CDF (or survival function) per point; see concrete_marginal_cdf for the formula."""
    n = lx.shape[0]
    out = np.empty(n)
    work_outer = np.empty((_MAX_SUB * (1 + _GL_ORDER), 2))
    work_inner = np.empty((_MAX_SUB * (1 + _GL_ORDER), 2))
    for i in range(n):
        t = tau[i]
        z = lx[i]
        if z == -np.inf:
            out[i] = 1.0 if upper else 0.0
            continue
        if z == np.inf:
            out[i] = 0.0 if upper else 1.0
            continue
        C = -t * z
        if m[i] == 1:
            s = t * z + d[i, 0]
            out[i] = _sig(-s) if upper else _sig(s)
        elif m[i] == 2:
            out[i] = _line_integral(C, 0.0, d[i, 0], d[i, 1], t, 2.0, upper, 0.0, work_inner)
        else:
            out[i] = _plane_integral(C, d[i, 0], d[i, 1], d[i, 2], t, upper, work_outer, work_inner)
    return out


# ---------------------------------------------------------------------------
# public layer
# ---------------------------------------------------------------------------


def _check_points(x):
    arr = as_float_array(x, "x")
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # NaN included
    if bad.any():
        where, value = _first_bad(arr, bad)
        raise ValueError(f"x must hold points of [0, 1] (no NaN); got {value!r} at index {where}")
    return arr


def _check_tau(tau):
    if isinstance(tau, (bool, np.bool_)):
        raise TypeError(f"tau must be a finite real number > 0 or an array of them; got {tau!r}")
    arr = as_float_array(tau, "tau")
    bad = ~(np.isfinite(arr) & (arr > 0.0))
    if bad.any():
        where, value = _first_bad(arr, bad)
        raise ValueError(f"tau must hold finite temperatures > 0; got {value!r} at index {where}")
    return arr


def _check_upper(upper):
    if not isinstance(upper, (bool, np.bool_)):
        raise TypeError(f"upper must be a bool (False: P(X <= x), True: P(X > x)); got {upper!r}")
    return bool(upper)


def _shape(arrays, names):
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        desc = ", ".join(f"{n} of shape {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"{desc} do not broadcast against each other (NumPy rules)") from None


def _logit_points(xx):
    """log x - log1p(-x): -inf at 0, +inf at 1, exact 1 - x for x > 1/2."""
    with np.errstate(divide="ignore"):
        return np.log(xx) - np.log1p(-xx)


def binary_concrete_cdf(x, logits, tau, upper=False):
    r"""CDF (or survival function) of the Binary Concrete law, in closed form.

    For :math:`X = \sigma((\ell + L)/\tau)` with :math:`L` standard logistic (the law of
    :func:`binary_concrete_sample`), and :math:`x \in (0, 1)`,

    .. math::
        X \le x \iff \ell + L \le \tau\,\mathrm{logit}(x) \iff L \le \tau\,\mathrm{logit}(x) - \ell,
        \qquad P(X \le x) = \sigma(\tau\,\mathrm{logit}(x) - \ell),\quad
        P(X > x) = \sigma(\ell - \tau\,\mathrm{logit}(x)),

    since :math:`P(L \le t) = \sigma(t)` (Maddison, Mnih & Teh 2017, binary Concrete).

    Parameters
    ----------
    x : array_like
        Points of [0, 1] (NaN and values outside rejected); ``P(X <= 0) = 0`` and
        ``P(X <= 1) = 1`` for finite logits.
    logits : array_like
        :math:`\ell`, broadcast against ``x``; ``+inf`` (``X = 1``: the CDF is the step
        :math:`1[x \ge 1]`) and ``-inf`` (``X = 0``: the CDF is 1 on [0, 1]) allowed.
    tau : float or array_like
        Temperatures, finite and > 0, broadcast against ``x`` and ``logits``.
    upper : bool
        ``False``: :math:`P(X \le x)`; ``True``: :math:`P(X > x)`.

    Returns
    -------
    ndarray or float
        Of the broadcast shape.

    Notes
    -----
    :math:`\mathrm{logit}(x) = \log x - \log(1 - x)` uses ``log1p(-x)`` (``1 - x`` is exact for
    :math:`x \ge 1/2`), and each tail is one sigmoid of the right sign (no ``1 - CDF``), so both
    tails have relative error at most about :math:`\epsilon\,(|\tau\,\mathrm{logit}(x)| + |\ell| + 4)`
    wherever they are normal doubles (measured against mpmath at 50 digits: below 3e-13 for
    ``tau`` in [0.01, 100], ``|logits| <= 700``, ``x`` from 1e-300 to 1 - 2**-53).
    """
    xx = _check_points(x)
    ell = check_no_nan(as_float_array(logits, "logits"), "logits")
    tt = _check_tau(tau)
    upper = _check_upper(upper)
    shape = _shape((xx, ell, tt), ("x", "logits", "tau"))
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).ravel() for a in (xx, ell, tt)]
    out = _binary_cdf(_logit_points(flat[0]), flat[1], flat[2], upper).reshape(shape)
    return out[()] if out.ndim == 0 else out


def _concrete_inputs(x, logits, tau):
    xx = _check_points(x)
    ell = check_no_nan(as_float_array(logits, "logits"), "logits")
    if xx.ndim < 1 or xx.shape[-1] < 2:
        raise ValueError(f"x must have shape (..., K) with K >= 2 categories on its last axis; got shape {xx.shape}")
    if ell.ndim < 1 or ell.shape[-1] != xx.shape[-1]:
        raise ValueError(f"logits must have shape (..., K) with the K = {xx.shape[-1]} of x on its last axis; "
                         f"got logits.shape={ell.shape}, x.shape={xx.shape}")
    if ell.size and (ell.max(axis=-1) == -np.inf).any():
        where = first_index(ell.max(axis=-1) == -np.inf)
        raise ValueError(f"logits must have at least one entry > -inf on its last axis; all are -inf at {where}")
    tt = _check_tau(tau)
    lead = _shape((xx[..., 0], ell[..., 0], tt), ("x[..., 0]", "logits[..., 0]", "tau"))
    shape = lead + (xx.shape[-1],)
    xx = np.broadcast_to(xx, shape).reshape(-1, shape[-1])
    ell = np.broadcast_to(ell, shape).reshape(-1, shape[-1])
    tt = np.broadcast_to(tt, lead).reshape(-1)
    return xx, ell, tt, shape


def _concrete_point_masses(xx, ell, upper):
    """Results fixed by the infinite-logit conventions (NaN where the integral is needed)."""
    out = np.full(xx.shape, np.nan)
    n_top = (ell == np.inf).sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        share = np.where(n_top > 0, 1.0 / np.maximum(n_top, 1), 1.0)  # the value of X_k where it is fixed
    zero = (ell == -np.inf) | ((n_top > 0) & (ell < np.inf))  # X_k = 0 exactly
    n_finite = np.isfinite(ell).sum(axis=-1, keepdims=True)
    fixed = (ell == np.inf) | ((n_finite == 1) & np.isfinite(ell))  # X_k = 1/#(+inf), or 1 if alone
    cdf_fixed = (xx >= np.broadcast_to(share, xx.shape)).astype(np.float64)
    out = np.where(fixed, 1.0 - cdf_fixed if upper else cdf_fixed, out)
    out = np.where(zero, 0.0 if upper else 1.0, out)
    return out


def concrete_marginal_cdf(x, logits, tau, upper=False):
    r"""Marginal CDFs (or survival functions) :math:`P(X_k \le x_k)` of the Concrete law, exactly.

    For :math:`X = \mathrm{softmax}((\ell + G)/\tau)` with i.i.d. standard Gumbel :math:`G` (the law of
    :func:`concrete_sample`), entry ``[..., k]`` of the result is :math:`P(X_k \le x_{\dots k})`
    (``upper=False``) or :math:`P(X_k > x_{\dots k})` (``upper=True``).

    Parameters
    ----------
    x : array_like, shape (..., K)
        ``x[..., k]`` is the point of [0, 1] at which the CDF of coordinate ``k`` is evaluated
        (``K >= 2``; NaN and values outside [0, 1] rejected).
    logits : array_like, shape (..., K)
        :math:`\ell`; leading axes broadcast against ``x``'s, the last axis must equal ``x``'s.  NaN
        rejected, each row needs an entry > -inf.  Infinite logits follow the conventions of
        :mod:`refgrad.random`: a ``-inf`` category has :math:`X_k = 0` exactly (its CDF is 1 on
        [0, 1]) and drops out of the others' laws; if a row has ``+inf`` entries, each of them has
        :math:`X_k = 1/\#\{+\infty\}` exactly and the others :math:`X_k = 0`; a category that is
        the only finite one of its row has :math:`X_k = 1`.  These fixed values give step CDFs
        :math:`1[x \ge X_k]`.
    tau : float or array_like
        Temperatures, finite and > 0, broadcast against the leading shape ``(...)``.
    upper : bool
        ``False``: CDF; ``True``: survival function, computed without ``1 - CDF``.

    Returns
    -------
    ndarray, shape (..., K)

    Raises
    ------
    ValueError
        Besides bad input: for a row with more than :data:`MAX_CATEGORIES` = 4 finite logits
        (the integral below has dimension ``K - 2``).

    Notes
    -----
    **Derivation.**  Write :math:`G_j = -\log V_j` with :math:`V_j` i.i.d. Exp(1),
    :math:`\alpha = e^\ell` and :math:`S = \sum_{j \ne k} e^{(\ell_j + G_j)/\tau}`.  Then
    :math:`X_k \le x \iff e^{(\ell_k + G_k)/\tau}(1 - x) \le x S \iff
    G_k \le \tau\,\mathrm{logit}(x) + \tau \log S - \ell_k`, and :math:`P(G \le g) = \exp(-e^{-g})` gives

    .. math::
        P(X_k \le x) = E\big[\exp(-c\, h(V))\big], \qquad c = \alpha_k e^{-\tau\,\mathrm{logit}(x)},
        \qquad h(V) = \Big(\sum_{j \ne k} \alpha_j^{1/\tau} V_j^{-1/\tau}\Big)^{-\tau},

    with :math:`h` homogeneous of degree 1.  With :math:`m = K - 1`, :math:`V = R\,\theta`,
    :math:`R \sim \mathrm{Gamma}(m)` independent of :math:`\theta` uniform on the simplex, and
    :math:`E[e^{-sR}] = (1 + s)^{-m}`:

    .. math::  P(X_k \le x) = E_\theta\big[(1 + c\,h(\theta))^{-m}\big].

    For ``K = 2`` this is :math:`\sigma(\tau\,\mathrm{logit}(x) - (\ell_k - \ell_j))`, the
    :func:`binary_concrete_cdf` of the logit difference.  For ``K >= 3`` the simplex is
    parametrised by log-ratios :math:`w_j = \log(\theta_j/\theta_m)`, :math:`j < m` (density
    :math:`(m-1)!\prod_j \theta_j` on :math:`\mathbb{R}^{m-1}`), where, with
    :math:`d_j = \ell_j - \ell_k`, :math:`L = \log(1 + \sum_{j<m} e^{w_j})` and :math:`w_m = 0`,

    .. math::
        \log(c\,h) = u(w) = -\tau\,\mathrm{logit}(x) - L(w) - \tau \log \sum_j e^{(d_j - w_j)/\tau},
        \qquad P(X_k \le x) = (m-1)! \int e^{\sum_{j<m} w_j - m L(w)}\, (1 + e^{u})^{-m}\, dw .

    :math:`u` is concave; as :math:`\tau \to 0` it tends to the piecewise-linear
    :math:`-\tau\,\mathrm{logit}(x) - \max(w, 0) - \max_j(d_j - w_j)`.  The integrand is smooth
    except near the corners of that limit (width 1, or :math:`\tau` for the kinks of the last
    term) and near the zeros of :math:`u`; it falls off at least like :math:`e^{-|w|}` beyond them.
    The integral is taken with 10-point Gauss–Legendre rules on pieces that start at each corner
    (width :math:`\min(1, \tau)` at the kinks, 1 elsewhere) and double in length away from it, out to
    :math:`40(1 + \tau)` beyond the outermost one; the zeros of :math:`u` are located by Newton
    steps from those of the piecewise-linear bound.  ``K = 4`` is an iterated integral (inner over
    :math:`w_1`, outer over :math:`w_2`, break points at the vertices of the limiting cell complex).
    The upper tail integrates :math:`1 - (1 + e^u)^{-m} = -\mathrm{expm1}(-m\,\mathrm{log1p}(e^u))`,
    so small survival probabilities keep their relative accuracy, and everything is in log space
    (logits to :math:`\pm 700`, ``tau`` from 0.01 to 100, ``x`` from 1e-300 to 1 - 2**-53).

    **Measured accuracy** (``python -m pytest tests/relaxations/test_relaxations_cdf.py``): K = 3 against
    ``scipy.integrate.quad`` at moderate points, absolute error below 2e-15; against mpmath
    (20 digits) at extreme points (``tau`` 0.01 to 100, logits to 700, ``x`` from 1e-300 to
    1 - 2**-53, both tails), relative error at most 6e-11 (tails of 9e-130 and 7e-200 at
    ``tau`` = 7 and 100; below 3e-15 elsewhere).  K = 4 against a tensor tanh-sinh rule: absolute
    error below 4e-15 at the two points tested; extreme K = 4 arguments have not been checked.

    **Cost**: per point, one line integral (at most 512 pieces of 10 nodes) for ``K = 3``, and for
    ``K = 4`` one such inner integral at every node of the outer one; measured times are in the
    project's ``docs/random-measured.md``, with the command that regenerates them.

    **Logistic law of log-ratios** (no function needed):
    :math:`\tau \log(X_i/X_j) - (\ell_i - \ell_j) = G_i - G_j` is standard logistic.
    """
    xx, ell, tt, shape = _concrete_inputs(x, logits, tau)
    upper = _check_upper(upper)
    n_rows, K = ell.shape
    out = _concrete_point_masses(xx, ell, upper)
    n_finite = np.isfinite(ell).sum(axis=-1)
    todo = np.isnan(out)
    too_many = todo.any(axis=-1) & (n_finite > MAX_CATEGORIES)
    if too_many.any():
        row = int(np.argmax(too_many))
        raise ValueError(f"concrete_marginal_cdf integrates at most K = {MAX_CATEGORIES} categories with finite "
                         f"logits (refgrad.relaxations.MAX_CATEGORIES); got K = {int(n_finite[row])} finite of "
                         f"K = {K} in row {row} of the flattened logits")
    rows, cols = np.nonzero(todo)
    if rows.size:
        ell_k = ell[rows, cols]
        others = ell[rows]
        others = np.where(np.arange(K)[None, :] == cols[:, None], -np.inf, others)
        others = -np.sort(-others, axis=-1)[:, : K - 1]  # finite ones first (no +inf in these rows)
        m = np.isfinite(others).sum(axis=-1).astype(np.int64)
        d = np.zeros((rows.size, 3))
        width = min(K - 1, 3)
        d[:, :width] = np.where(np.isfinite(others[:, :width]), others[:, :width] - ell_k[:, None], 0.0)
        lx = _logit_points(np.ascontiguousarray(xx[rows, cols]))
        out[rows, cols] = _concrete_cdf(lx, np.ascontiguousarray(d), np.ascontiguousarray(tt[rows]), m, upper)
    return out.reshape(shape)
