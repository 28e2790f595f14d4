"""Scalar special functions for the Numba kernels (Numba cannot call :mod:`scipy.special`).

Logistic helpers (``_softplus``, ``_log_sigmoid``, ``_sigmoid``), the standard normal
log-CDF and quantile (``_log_ndtr``, ``_ndtri``, ``_ndtri_exp``), and the normal-tail
helpers behind :func:`refgrad.random.conditional_normal`: the hazard excess
``λ(x) − x`` (``λ = φ/Q`` the hazard, ``Q = 1 − Φ``), the log Mills ratio
``log(Q/φ)``, their integral, and the truncated-normal distance solver.  The tests check
them against SciPy and mpmath.
"""
import math

import numpy as np

from .jit import jit

_LOG_2PI = math.log(2.0 * math.pi)
_HALF_LOG_2PI = 0.5 * _LOG_2PI
_SQRT1_2 = math.sqrt(0.5)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Region boundaries of the normal quantile: below _P_TAIL (above 1 - _P_TAIL) the
# log-space tail solver is used, in between the central solver.
_P_TAIL = 0.075
_LOG_P_TAIL = math.log(_P_TAIL)
_LOG_P_UPPER = math.log1p(-_P_TAIL)


# ---------------------------------------------------------------------------
# Logistic and standard normal
# ---------------------------------------------------------------------------




@jit
def _softplus(x):
    """log(1 + exp(x)) without overflow; exact at +-inf."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@jit
def _log_sigmoid(x):
    """log sigma(x) = -softplus(-x)."""
    return -_softplus(-x)


@jit
def _sigmoid(x):
    """sigma(x) without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@jit
def _log_ndtr(x):
    """log Phi(x).

    Relative error vs scipy.special.log_ndtr <= 1e-15 for -1e4 <= x <= 5 and
    <= 1e-13 up to x = 37 (where Phi(-x) ~ 1e-300 is ill-conditioned in x, ~x^2 ulps).

    x > -1: log1p(-Phi(-x)) with Phi(-x) = erfc(x/sqrt2)/2 (no cancellation near 1);
    -20 <= x <= -1: log(erfc(-x/sqrt2)/2);
    x < -20: asymptotic series
    log Phi(x) = -x^2/2 - log(-x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4 - 15/x^6 + ...).
    """
    if math.isnan(x):
        return x
    if x == math.inf:
        return 0.0
    if x == -math.inf:
        return -math.inf
    if x > -1.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    if x >= -20.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    # Far left tail: S = sum_i (-1)^i (2i-1)!! / x^(2i); the terms decrease for i < x^2 / 2.
    inv = 1.0 / (x * x)
    term = 1.0
    rest = 0.0
    for i in range(1, 60):
        term *= -(2.0 * i - 1.0) * inv
        rest += term
        if abs(term) <= 1e-17 * abs(rest):
            break
    return -0.5 * x * x - math.log(-x) - _HALF_LOG_2PI + math.log1p(rest)


@jit
def _log_ndtr_pair(x):
    """(log Phi(x), phi(x) / Phi(x)); the ratio is the hazard of the lower tail."""
    lp = _log_ndtr(x)
    return lp, math.exp(-0.5 * x * x - _HALF_LOG_2PI - lp)


@jit
def _solve_log_ndtr(logp, x):
    """Solve log Phi(x) = logp by Halley's method from the initial guess x.

    g = log Phi(x) - logp, g' = h = phi/Phi, g'' = -h (x + h).  log Phi is concave, so
    a Newton step taken from the left of the root stays left of it and increases
    monotonically; the Halley step is used unless its denominator is small, in which
    case the Newton step is taken instead.
    """
    for _ in range(40):
        lp, h = _log_ndtr_pair(x)
        g = lp - logp
        denom = 2.0 * h + g * (x + h)
        if denom > h:
            step = 2.0 * g / denom
        else:
            step = g / h
        x -= step
        if not abs(step) > 1e-11 * abs(x):
            break
    return x


@jit
def _ndtri_lower(logp):
    """Phi^-1(exp(logp)) for logp <= log(0.075), i.e. x <= -1.44.

    Initial guess from the Mills-ratio bound Phi(x) ~ phi(x) |x| / (1 + x^2):
    x0^2 = t - log(2 pi) - log((1 + y)^2 / y), y = t - log(2 pi t), t = -2 logp,
    then Halley refinement on log Phi.
    """
    if logp == -math.inf:
        return -math.inf
    t = -2.0 * logp
    y = t - math.log(2.0 * math.pi * t)
    x2 = t - _LOG_2PI - math.log((1.0 + y) * (1.0 + y) / y)
    if x2 < y:
        x2 = y
    return _solve_log_ndtr(logp, -math.sqrt(x2))


@jit
def _probit_series(q):
    """Taylor series of Phi^-1(1/2 + q) in s = sqrt(2 pi) q (5 terms)."""
    s = _SQRT_2PI * q
    s2 = s * s
    return s * (1.0 + s2 * (1.0 / 6.0 + s2 * (7.0 / 120.0 + s2 * (127.0 / 5040.0 + s2 * (4369.0 / 362880.0)))))


@jit
def _ndtri(p):
    """Phi^-1(p), relative accuracy ~1e-15 (checked against scipy.special.ndtri).

    Tails (p < 0.075 or p > 0.925): the log-space solver on log p or log(1 - p)
    (1 - p is exact there).  Centre: Halley on Phi(x) - p = erf(x/sqrt2)/2 - q with the
    exact q = p - 1/2, so the result is relatively accurate near p = 1/2.
    """
    if not (p > 0.0 and p < 1.0):
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        return math.nan
    if p < _P_TAIL:
        return _ndtri_lower(math.log(p))
    if p > 1.0 - _P_TAIL:
        return -_ndtri_lower(math.log(1.0 - p))
    q = p - 0.5
    x = _probit_series(q)
    for _ in range(40):
        f = 0.5 * math.erf(x * _SQRT1_2) - q
        phi = math.exp(-0.5 * x * x - _HALF_LOG_2PI)
        denom = 2.0 * phi + f * x
        if denom > phi:
            step = 2.0 * f / denom
        else:
            step = f / phi
        x -= step
        if not abs(step) > 1e-11 * abs(x):
            break
    return x


@jit
def _ndtri_exp(logp):
    """Phi^-1(exp(logp)) for logp <= 0 (checked against scipy.special.ndtri_exp down to -1e5 and beyond).

    logp <= log 0.075: lower-tail solver; logp >= log 0.925: -lower(log(-expm1(logp)));
    in between: probit series from exp(logp) - 1/2, then Halley on log Phi.
    """
    if not (logp < 0.0):
        if logp == 0.0:
            return math.inf
        return math.nan
    if logp <= _LOG_P_TAIL:
        return _ndtri_lower(logp)
    if logp >= _LOG_P_UPPER:
        return -_ndtri_lower(math.log(-math.expm1(logp)))
    return _solve_log_ndtr(logp, _probit_series(math.exp(logp) - 0.5))




# ---------------------------------------------------------------------------
# Normal tail: hazard, Mills ratio, truncated-normal distance
# ---------------------------------------------------------------------------


# Gauss-Legendre rules on [-1, 1] for the hazard integrals below (nodes, weights).
_GL4 = np.polynomial.legendre.leggauss(4)
_GL10 = np.polynomial.legendre.leggauss(10)
_GL20 = np.polynomial.legendre.leggauss(20)
_GL4_X, _GL4_W = _GL4[0].copy(), _GL4[1].copy()
_GL10_X, _GL10_W = _GL10[0].copy(), _GL10[1].copy()
_GL20_X, _GL20_W = _GL20[0].copy(), _GL20[1].copy()
_ULP = 2.0**-52


@jit
def _square_parts(x):
    """(hi, lo) with x*x = hi + lo exactly (Veltkamp split of x into two 26-bit halves)."""
    c = 134217729.0 * x  # 2**27 + 1
    xh = c - (c - x)
    xl = x - xh
    hi = x * x
    lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl
    return hi, lo


@jit
def _hazard_excess(x):
    """g(x) = lambda(x) - x, lambda = phi / Q the hazard of N(0, 1) (Q = 1 - Phi); g > 0, decreasing.

    x >= 3: continued fraction g = 1/(x + 2/(x + 3/(x + ...))) (the tail of Q/phi = 1/(x + 1/(x + 2/...)));
    0 <= x < 3: 1/R(x) - x with the Mills ratio R = Q/phi from erfc and an exactly split exp(x^2/2);
    x < 0: lambda(x) + |x| (no cancellation), lambda = phi(x) / Q(x).
    """
    if x >= 3.0:
        terms = 80 if x < 4.0 else (40 if x < 8.0 else (20 if x < 20.0 else 8))
        t = x
        for k in range(terms, 1, -1):
            t = x + k / t
        return 1.0 / t
    hi, lo = _square_parts(x)
    if x >= 0.0:
        mills = 0.5 * math.erfc(x * _SQRT1_2) * _SQRT_2PI * math.exp(0.5 * hi) * math.exp(0.5 * lo)
        return 1.0 / mills - x
    q = 0.5 * math.erfc(x * _SQRT1_2)
    return math.exp(-0.5 * hi) * math.exp(-0.5 * lo) / (_SQRT_2PI * q) - x


@jit
def _log_mills(x):
    """log R(x), R = Q / phi the Mills ratio of N(0, 1), for any real x.

    x >= 3: -log(x + g(x)); 0 <= x < 3: log of the erfc form; x < 0: log Q(x) + x^2/2 + log(2 pi)/2.
    """
    if x >= 3.0:
        return -math.log(x + _hazard_excess(x))
    if x >= 0.0:
        return math.log(0.5 * math.erfc(x * _SQRT1_2)) + 0.5 * x * x + _HALF_LOG_2PI
    return _log_ndtr(-x) + 0.5 * x * x + _HALF_LOG_2PI


@jit
def _ndtr_negative(a):
    """Phi(a) for a <= 0 with relative accuracy of a few ulp.

    Also where erfc's argument rounding would cost a^2 ulp: phi(a) R(|a|) with exp(-a^2/2) from an exact split
    of a^2, for a <= -3.
    """
    if a > -3.0:
        return 0.5 * math.erfc(-a * _SQRT1_2)
    hi, lo = _square_parts(a)
    return math.exp(-0.5 * hi) * math.exp(-0.5 * lo) / (_SQRT_2PI * (-a + _hazard_excess(-a)))


@jit
def _log_hazard(x):
    """log lambda(x), lambda = phi / Q."""
    if x >= 0.0:
        return math.log(x + _hazard_excess(x))
    return -0.5 * x * x - _HALF_LOG_2PI - _log_ndtr(-x)


@jit
def _excess_integral(c, w):
    """G = int_c^(c+w) g(x) dx = log R(c) - log R(c + w) for w >= 0, with relative accuracy.

    Short intervals (w <= max(1, |c|/4), where g is analytic in a strip wider than the interval:
    its poles, the zeros of Q, lie at distance >= max(2.8, |x|/sqrt2) from the real axis) by
    Gauss-Legendre (4, 10 or 20 nodes by length); longer ones, where G is not small, as the
    difference of log R.
    """
    if w <= 0.0:
        return 0.0
    if w > max(1.0, 0.25 * abs(c)):
        return _log_mills(c) - _log_mills(c + w)
    h = 0.5 * w
    mid = c + h
    if w <= 1e-3 * max(1.0, abs(c)):
        xs, ws = _GL4_X, _GL4_W
    elif w <= 0.1 * max(1.0, abs(c)):
        xs, ws = _GL10_X, _GL10_W
    else:
        xs, ws = _GL20_X, _GL20_W
    total = 0.0
    for i in range(xs.size):
        total += ws[i] * _hazard_excess(mid + h * xs[i])
    return h * total


@jit
def _log_expm1(d):
    """log(exp(d) - 1) for d >= 0."""
    if d > 36.0:
        return d + math.log1p(-math.exp(-d))
    return math.log(math.expm1(d))


@jit
def _hazard_ratio_log(a, y, e, log_e):
    """(log(H(y)/e), log H(y)) of the cumulative hazard H of N(0, 1) beyond a.

    H(y) = log Q(a) - log Q(a + y) = int_a^(a+y) lambda, in forms whose terms do not cancel:

    * a >= 0: H = y (a + y/2) + G(a, y) (Q = phi R, phi(a + y)/phi(a) = exp(-a y - y^2/2)), all terms >= 0;
    * a < 0, y <= |a|: Phi(a + y) = Phi(a) exp(D), D = y (|a| - y/2) + G(|a| - y, y) >= 0, and
      H = -log1p(-w), w = Phi(a) expm1(D) / Q(a) <= 1/2; the ratio H/e is formed from products
      (not from log e, whose rounding would cost up to 745 ulp) while they are in range;
    * a < 0, y > |a|: split at 0, H = log1p(erf(|a|/sqrt2)) + t (t/2) + G(0, t), t = a + y > 0.
    """
    if a >= 0.0:
        h = y * (a + 0.5 * y) + _excess_integral(a, y)
        ratio = h / e
        if ratio > 0.0 and ratio < math.inf:
            return math.log(ratio), math.log(h) if h > 0.0 else log_e + math.log(ratio)
        lh = math.log(h)
        return lh - log_e, lh
    if y > -a:
        # split at 0: H = [log Q(a) - log Q(0)] + H_0(a + y) = log1p(erf(|a|/sqrt2)) + t^2/2 + G(0, t)
        t = a + y
        lh = math.log(math.log1p(math.erf(-a * _SQRT1_2)) + t * (0.5 * t) + _excess_integral(0.0, t))
        return lh - log_e, lh
    d = y * (-a - 0.5 * y) + _excess_integral(-a - y, y)
    em = math.expm1(d)
    cdf = _ndtr_negative(a)
    q = 1.0 - cdf if cdf < 0.25 else 0.5 * math.erfc(a * _SQRT1_2)
    if cdf > 1e-307 and em > 1e-307 and em < 1e300:
        w = cdf * em / q
        factor = -math.log1p(-w) / w if w > 1e-8 else 1.0 + w * (0.5 + w / 3.0)
        ratio = (cdf * factor / q) * (em / e) if em < e * 1e300 else math.inf
        if ratio > 0.0 and ratio < math.inf:
            r = math.log(ratio)
            return r, r + log_e
    log_w = _log_ndtr(a) + _log_expm1(d) - _log_ndtr(-a)
    if log_w < -30.0:
        lh = log_w + 0.5 * math.exp(log_w)
    else:
        lh = math.log(-math.log1p(-math.exp(log_w)))
    return lh - log_e, lh


@jit
def _truncated_normal_distance(a, e):
    """Distance y >= 0 beyond the standardised threshold a of X ~ N(0, 1) | X > a at cumulative hazard e.

    The survival is Q(a + y)/Q(a) = exp(-e), i.e. H(y) = e > 0.

    The direct inverse (a + y) = Q^-1(Q(a) e^-e), y = (a + y) - a, is kept when its rounding
    bound (|a| + 8 |a + y| + |log Q(a + y)| / lambda(a + y)) ulp / y is below 2**-48; otherwise y
    is refined by Newton's method in log y on log(H(y)/e) (see _hazard_ratio_log, whose terms
    do not cancel).
    """
    logp = _log_ndtr(-a) - e
    x = -_ndtri_exp(logp)
    y = x - a
    if y > 0.0 and y < math.inf:
        # d x / d log Q(x) = -1 / lambda(x): the rounding of logp moves x by |logp| / lambda(x) ulp
        tail = math.exp(math.log(-logp) - _log_hazard(x)) if logp < 0.0 else 0.0
        bound = (abs(a) + 8.0 * abs(x) + tail) * _ULP
        if bound <= 2.0**-46 * y:
            return y
    # e / lambda(a) is an upper bound of y (H convex, H'(0) = lambda(a)), and so is the root of
    # y (a + y/2) = e for a >= 0 (H >= y (a + y/2)); where the direct inverse rounded to nothing
    # (y <= 0), y is tiny beside |a|, so |a| bounds it too for a < 0
    upper = e * math.exp(-_log_hazard(a))
    if a >= 0.0:
        upper = min(upper, e / a if a > 1e100 else 2.0 * e / (a + math.sqrt(a * a + 2.0 * e)))
    if not (y > 0.0 and y < math.inf):
        y = min(upper, -a) if a < 0.0 else upper
    else:
        y = min(y, upper)
    # Newton's method in log y on log(H(y)/e) = 0: exact in one step where H is a power of y,
    # and y stays positive
    log_e = math.log(e)
    for _ in range(100):
        r, lh = _hazard_ratio_log(a, y, e, log_e)
        if lh == -math.inf:  # H(y) underflowed: y is far too small
            ratio = -30.0
        else:
            ratio = r / (y * math.exp(_log_hazard(a + y) - lh))
        if not (abs(ratio) <= 30.0):
            if math.isnan(ratio):
                return y
            ratio = 30.0 if ratio > 0.0 else -30.0
        y_new = y * math.exp(-ratio)
        if abs(y_new - y) <= 4e-16 * y:
            return y_new
        y = y_new
    return y
