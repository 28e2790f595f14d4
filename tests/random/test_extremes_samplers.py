"""Accuracy at the extremes against mpmath (50 digits unless a case needs more):
exact moments of ARM / DisARM, the conditional samplers and their derivatives,
the relaxation maps and the relaxed densities.

Requirement (issue 8, "Deliver 3"): relative error ≤ 1e-12 where the value is a
normal double; where a bound cannot be met, the docstring of the function states
it and a test here pins it.  All tests are deterministic.
"""
import itertools

import numpy as np
import pytest

import refgrad
from refgrad import exact
from refgrad.distributions import Bernoulli
from refgrad.objectives import Linear, SquaredDistance, Table

mp = pytest.importorskip("mpmath").mp
mp.dps = 50

TINY = np.finfo(float).tiny
RTOL = 1e-12


def rel_err(value, ref):
    """|value − ref| / |ref| (absolute error where ref is 0), ref an mpmath number."""
    value = mp.mpf(float(value))
    ref = mp.mpf(ref)
    return float(abs(value - ref) / abs(ref)) if ref != 0 else float(abs(value))


# ---------------------------------------------------------------------------- ARM / DisARM exact moments


def mp_sigmoid(x):
    if x == np.inf:
        return mp.mpf(1)
    if x == -np.inf:
        return mp.mpf(0)
    return 1 / (1 + mp.exp(-mp.mpf(float(x))))


def mp_objective(f):
    """f(b) for a bit vector b, in mpmath, from the objective's (exact, float64) parameters."""
    if isinstance(f, SquaredDistance):
        def value(b):
            t = np.broadcast_to(f.target, (len(b),))
            return mp.fsum((mp.mpf(int(bi)) - mp.mpf(float(ti))) ** 2 for bi, ti in zip(b, t))
    elif isinstance(f, Linear):
        def value(b):
            w = np.broadcast_to(f.weights, (len(b),))
            return mp.fsum(mp.mpf(float(wi)) * int(bi) for bi, wi in zip(b, w))
    else:
        def value(b):
            return mp.mpf(float(f.values[tuple(int(bi) for bi in b)]))
    return value


def mp_gradient(logits, f):
    """Σ_b q(b) f(b) (b − σ(ℓ)): the exact gradient of E[f(b)], b ~ Bernoulli(σ(ℓ)).

    With 1 − σ(ℓ) written σ(−ℓ), so that 50 digits suffice at ℓ = ±700.
    """
    value = mp_objective(f)
    theta = [mp_sigmoid(x) for x in logits]
    theta_c = [mp_sigmoid(-x) for x in logits]
    grad = [mp.mpf(0)] * len(logits)
    for b in itertools.product((0, 1), repeat=len(logits)):
        q = mp.fprod(t if bi else tc for t, tc, bi in zip(theta, theta_c, b))
        fb = value(b)
        for i in range(len(logits)):
            grad[i] += q * fb * (theta_c[i] if b[i] else -theta[i])
    return grad


def mp_antithetic_moments(name, logits, f):
    """Mean and second moments of ARM / DisARM, integrated exactly cell by cell in mpmath.

    Per coordinate the pieces of u are (0, s), (s, 1 − s), (1 − s, 1) with s = σ(−|ℓ|),
    carrying the pairs (b¹, b²) = (0, 1), (1, 1) or (0, 0), (1, 0); on a cell ARM is
    Δf (u_i − ½), DisARM is constant.  ∫ (u − ½) and ∫ (u − ½)² over each piece in closed form.
    """
    value = mp_objective(f)
    half = mp.mpf(1) / 2
    per_coord = []
    for x in logits:
        s = mp_sigmoid(-abs(x))
        mid_pair = (1, 1) if x > 0 else (0, 0)
        per_coord.append([
            # (width, ∫(u − ½), ∫(u − ½)², b1, b2)
            (s, (s * s - s) / 2, s * (s * s - 3 * s * half + 3 * half * half) / 3, 0, 1),
            (1 - 2 * s, mp.mpf(0), 2 * (half - s) ** 3 / 3, *mid_pair),
            (s, (s - s * s) / 2, s * (s * s - 3 * s * half + 3 * half * half) / 3, 1, 0),
        ])
    d = len(logits)
    mean = [mp.mpf(0)] * d
    second = [[mp.mpf(0)] * d for _ in range(d)]
    sig_abs = [mp_sigmoid(abs(x)) for x in logits]
    for cell in itertools.product(*per_coord):
        widths = [c[0] for c in cell]
        if any(w == 0 for w in widths):
            continue
        b1 = [c[3] for c in cell]
        b2 = [c[4] for c in cell]
        df = value(b1) - value(b2)
        vol = mp.fprod(widths)
        for i in range(d):
            if name == "arm":
                mean[i] += df * cell[i][1] * vol / widths[i]
                for k in range(d):
                    if k == i:
                        second[i][k] += df * df * cell[i][2] * vol / widths[i]
                    else:
                        second[i][k] += df * df * cell[i][1] * cell[k][1] * vol / (widths[i] * widths[k])
            else:
                gi = 0 if b1[i] == b2[i] else half * df * (-1 if b2[i] else 1) * sig_abs[i]
                mean[i] += vol * gi
                for k in range(d):
                    gk = 0 if b1[k] == b2[k] else half * df * (-1 if b2[k] else 1) * sig_abs[k]
                    second[i][k] += vol * gi * gk
    return mean, second


EXTREME_LOGITS = [10.0, -10.0, 37.0, -37.0, 40.0, -40.0, 100.0, -100.0, 700.0, -700.0, np.inf, -np.inf]

ANTITHETIC_CASES = (
    [((x,), SquaredDistance(0.45)) for x in EXTREME_LOGITS]
    + [((40.0, -0.3), SquaredDistance(np.array([0.45, 0.2]))),
       ((-700.0, 10.0), Linear(np.array([1.5, -0.25]))),
       ((np.inf, 40.0), SquaredDistance(0.45)),
       ((37.0, -37.0), Table(np.array([[0.3, -1.2], [2.0, 0.7]]))),
       ((10.0, -40.0, 700.0), Table(np.arange(8.0).reshape(2, 2, 2) ** 1.5 - 3.0)),
       ((-np.inf, 37.0, -100.0), SquaredDistance(np.array([0.1, 0.45, 0.8]))),
       ((0.5, -10.0, 40.0), Linear(np.array([1.0, -2.0, 0.5])))]
)


@pytest.mark.parametrize("name", ["arm", "disarm"])
@pytest.mark.parametrize("logits, f", ANTITHETIC_CASES, ids=[f"case{i}" for i in range(len(ANTITHETIC_CASES))])
def test_antithetic_exact_moments_at_extreme_logits(name, logits, f):
    # Before the complementary thresholds, DisARM's mean at ℓ = 40 was half the gradient (the piece
    # (σ(40), 1) of width σ(−40) had width 0) and ARM's was off at ℓ = 10 already.
    m = exact.moments(name, Bernoulli(np.array(logits)), f)
    grad = mp_gradient(logits, f)
    mean, second = mp_antithetic_moments(name, logits, f)
    for i, x in enumerate(logits):
        assert abs(mean[i] - grad[i]) <= mp.mpf(10) ** -30 * (abs(grad[i]) + mp.mpf(10) ** -300)  # reference
        if np.isinf(x):
            assert m.mean[i] == 0.0  # a deterministic bit: zero gradient, exactly
        if abs(grad[i]) > TINY:
            assert rel_err(m.mean[i], grad[i]) <= RTOL, (i, m.mean[i], grad[i])
        else:
            assert abs(m.mean[i]) <= 2 * TINY
        var = second[i][i] - mean[i] ** 2
        if var > TINY:
            assert rel_err(m.variance[i], var) <= RTOL, (i, m.variance[i], var)
        else:
            assert m.variance[i] <= 2 * TINY


def test_antithetic_pairs_from_complements_next_to_one():
    # u in (σ(40), 1) cannot be represented (u rounds to 1.0) but its complement can: the pair there is
    # (b¹, b²) = (1, 0) and ARM's factor u − ½ is ½ − ū
    from refgrad.estimators import antithetic

    s = float(mp_sigmoid(-40.0))
    logits = np.array([40.0, -40.0])
    uc = np.array([[0.5 * s, 0.5 * s], [2.0 * s, 2.0 * s]])
    u = 1.0 - uc
    assert np.all(u[0] == 1.0)
    b1, b2 = antithetic._antithetic_pair(logits, u, uc)
    # ℓ = 40: ū < σ(−40) -> b2 = 0 (u > σ(40)); ℓ = −40: ū < σ(−40) -> b1 = 1 (u > σ(40) = 1 − σ(−40))
    np.testing.assert_array_equal(b1, [[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(b2, [[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(antithetic._arm_combine(np.ones(2), u, uc), 0.5 - uc)


def test_disarm_issue_example():
    # the example of issue 8: half the gradient before the fix
    m = exact.moments("disarm", Bernoulli([40.0]), SquaredDistance(0.45))
    assert rel_err(m.mean[0], mp_sigmoid(40.0) * mp_sigmoid(-40.0) * mp.mpf("0.1")) < 1e-13


# ---------------------------------------------------------------------------- conditional normal


def mp_conditional_normal(mu, b, v, guess):
    """(z~, dz~/dmu) of refgrad.random.conditional_normal in mpmath.

    The distance y = |z~| beyond the threshold solves log Q(a + y) = log P(beyond) + log Q(a),
    a = -mu (b = 1) or mu (b = 0), Q the standard normal survival function; the slope is
    1 − R(a + y)/R(a), R = Q/φ.  The precision grows with the cancellation of a + y − a and of
    v against 1: ``guess`` (refgrad's value) sets it and starts the root finder.
    """
    a_ = -mu if b == 1 else mu
    y_g = abs(guess) if guess != 0 else 1e-300
    extra = max(0, int(-np.log10(y_g))) + int(np.log10(1 + abs(a_)))
    if b == 1 and v < 1e-5:
        extra += int(-np.log10(v))
    with mp.workdps(60 + extra):
        a, V = mp.mpf(a_), mp.mpf(v)
        beyond = (1 - V) if b == 1 else V

        def log_q(t):
            return mp.log(mp.ncdf(-t))

        target = mp.log(beyond) + log_q(a)
        x = mp.findroot(lambda t: log_q(t) - target, a + mp.mpf(y_g), tol=mp.mpf(10) ** (-(50 + extra)))

        def log_mills(t):
            return log_q(t) - mp.log(mp.npdf(t))

        grad = -mp.expm1(log_mills(x) - log_mills(a))
        y = x - a
        return +(y if b == 1 else -y), +grad


def _conditional_normal_bound(mu, b, v):
    """The documented relative-error bound of conditional_normal and its slope."""
    corner = b == 1 and 37.5 < mu < 38.6 and v < 1e-299
    return 2e-13 if corner else 3e-14


def _check_conditional_normal(mu, b, v):
    z = float(refgrad.random.conditional_normal([mu], [[b]], [[v]])[0, 0])
    g = float(refgrad.random.conditional_normal_grad([mu], [[b]], [[v]])[0, 0])
    assert (z >= 0) == (b == 1)
    z_ref, g_ref = mp_conditional_normal(mu, b, v, z)
    bound = _conditional_normal_bound(mu, b, v)
    if abs(z_ref) > TINY:
        assert rel_err(z, z_ref) <= bound, (mu, b, v, z, z_ref)
    if abs(g_ref) > TINY:
        assert rel_err(g, g_ref) <= bound, (mu, b, v, g, g_ref)


NORMAL_MU = [0.0, 0.5, -0.5, 5.0, -5.0, 30.0, -30.0, 38.0, -38.0, 1e3, -1e3]
NORMAL_V = [5e-324, 1e-300, 1e-12, 0.5, 1.0 - 1e-10, 1.0 - 2.0**-53]


@pytest.mark.parametrize("mu", NORMAL_MU)
def test_conditional_normal_vs_mpmath_at_the_extremes(mu):
    # Before: mu ± w cancelled next to the threshold, e.g. mu = 5, b = 1, v = 1e-300 gave 8.9e-16 for
    # 6.7e-295 (error 100 %), and mu = ±30, v = 0.5 lost 3e-11.
    for b in (0, 1):
        for v in NORMAL_V:
            _check_conditional_normal(mu, b, v)


def test_conditional_normal_issue_examples():
    z = refgrad.random.conditional_normal([5.0], [[1]], [[1e-300]])[0, 0]
    z_ref, _ = mp_conditional_normal(5.0, 1, 1e-300, z)
    assert rel_err(z, z_ref) < 3e-14 and abs(z - 6.726216367228793e-295) < 1e-308
    for mu, b in [(30.0, 0), (-30.0, 1)]:
        _check_conditional_normal(mu, b, 0.5)


@pytest.mark.slow
def test_conditional_normal_vs_mpmath_random():
    # 3000 points, |mu| log-uniform in [1e-6, 1e4], v log-uniform next to 0 and 1 and uniform; seed 7
    rng = np.random.default_rng(7)
    for _ in range(3000):
        mu = float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-6, 4))
        t = rng.uniform()
        if t < 0.4:
            v = float(10 ** rng.uniform(-323, -0.3))
        elif t < 0.8:
            v = float(1.0 - 10 ** rng.uniform(-16, -0.3))
        else:
            v = float(rng.uniform())
        _check_conditional_normal(mu, int(rng.integers(0, 2)), v)


# ---------------------------------------------------------------------------- conditional logistic


def mp_conditional_logistic(logit, b, v):
    """REBAR's z~ = ℓ + logit(v'), v' = σ(−ℓ) + v σ(ℓ) (b = 1) or v σ(−ℓ) (b = 0), and dz~/dℓ
    by numerical differentiation, at 720 digits (1 − v' cancels at ℓ = ±710)."""
    with mp.workdps(720):
        V = mp.mpf(v)

        def sig(x):
            return 1 / (1 + mp.exp(-x))

        def z(ell):
            if b == 1:
                return ell + mp.log(sig(-ell) + V * sig(ell)) - mp.log((1 - V) * sig(ell))
            return ell + mp.log(V * sig(-ell)) - mp.log(1 - V * sig(-ell))

        ell = mp.mpf(logit)
        return +z(ell), +mp.diff(z, ell)


@pytest.mark.parametrize("logit", [0.0, -0.5, 10.0, -10.0, 37.0, -37.0, 100.0, -100.0, 700.0, -700.0,
                                   708.0, -708.0, 710.0, -710.0])
def test_conditional_logistic_vs_mpmath(logit):
    # a few ulp everywhere; before, v e^ℓ was formed in log space once e^ℓ overflowed (ℓ >= 709),
    # which cost 4.4e-14 at ℓ = 710, v = 5e-324 (log v rounded)
    for b in (0, 1):
        for v in [5e-324, 1e-300, 1e-16, 1e-8, 0.1, 0.5, 0.9, 1.0 - 1e-8, 1.0 - 2.0**-53]:
            z = refgrad.random.conditional_logistic([logit], [[b]], [[v]])[0, 0]
            g = refgrad.random.conditional_logistic_grad([logit], [[b]], [[v]])[0, 0]
            z_ref, g_ref = mp_conditional_logistic(logit, b, v)
            if abs(z_ref) > TINY:
                assert rel_err(z, z_ref) <= 1e-15, (logit, b, v)
            if abs(g_ref) > TINY:
                assert rel_err(g, g_ref) <= 1e-15, (logit, b, v)


# ---------------------------------------------------------------------------- conditional Gumbel


def mp_conditional_gumbel(logits, b, v):
    """z~ of refgrad.random.conditional_gumbel and its Jacobian dz~_k/dℓ_j = a_k p_j + (1 − a_k) δ_kj
    (a_k = σ(y_k − T), p = softmax ℓ; z~_b = T has row p), in mpmath."""
    L = [mp.mpf(x) for x in logits]
    m = max(L)
    lse = m + mp.log(mp.fsum(mp.exp(x - m) for x in L))
    p = [mp.exp(x - lse) for x in L]
    top = lse - mp.log(-mp.log(mp.mpf(v[b])))
    z, jac = [], []
    for k in range(len(L)):
        if k == b:
            z.append(top)
            jac.append(p)
            continue
        y = L[k] - mp.log(-mp.log(mp.mpf(v[k])))
        z.append(-mp.log(mp.exp(-top) + mp.exp(-y)))
        a = 1 / (1 + mp.exp(top - y))
        jac.append([a * p[j] + ((1 - a) if j == k else 0) for j in range(len(L))])
    return z, jac, top


GUMBEL_LOGITS = [[0.0, 0.0, 0.0], [40.0, 0.0, -40.0], [700.0, 0.0, -700.0], [-700.0, -700.0, 0.0],
                 [10.0, -10.0, 3.0], [1e3, 999.0, -5.0], [-30.0, 30.0, 0.5]]
GUMBEL_V = [1e-300, 1e-16, 0.3678794411714423, 0.5, 1.0 - 1e-16, 1.0 - 2.0**-53, 1e-3, 0.9]


@pytest.mark.parametrize("logits", GUMBEL_LOGITS, ids=[str(x) for x in GUMBEL_LOGITS])
def test_conditional_gumbel_and_vjp_vs_mpmath(logits):
    # The documented bounds: |error of z~_k| <= 4 eps (|T| + |y_k| + 1) (relative wherever z~ is not near 0;
    # near 0, e.g. ℓ_k = 0, v_k = 1/e, only this absolute bound holds: the Gumbel noise −log(−log v) is a
    # rounded double) and Jacobian entries to 4 eps (1 + |T| + |y_k|) relative.
    eps = np.finfo(float).eps
    rng = np.random.default_rng(3)
    lg = np.array([logits])
    for b in range(3):
        for _ in range(4):
            v = rng.choice(GUMBEL_V, size=3)
            z = refgrad.random.conditional_gumbel(lg, np.array([[b]]), v[None, None, :])[0, 0]
            z_ref, jac_ref, top = mp_conditional_gumbel(logits, b, list(v))
            for k in range(3):
                y_k = float(abs(logits[k]) + abs(mp.log(-mp.log(mp.mpf(v[k])))))
                scale = 4 * eps * (float(abs(top)) + y_k + 1)
                assert float(abs(z[k] - z_ref[k])) <= scale, (b, v, k)
                ct = np.zeros((1, 1, 3))
                ct[0, 0, k] = 1.0
                row = refgrad.random.conditional_gumbel_vjp(lg, np.array([[b]]), v[None, None, :], ct)[0, 0]
                for j in range(3):
                    if abs(jac_ref[k][j]) > TINY:
                        assert rel_err(row[j], jac_ref[k][j]) <= scale, (b, v, k, j)


# ---------------------------------------------------------------------------- relaxation maps

TAUS = [0.01, 0.1, 1.0, 10.0, 100.0]
EPS = np.finfo(float).eps


def mp_sigmoid_mp(z):
    return 1 / (1 + mp.exp(-z))


@pytest.mark.parametrize("tau", TAUS)
def test_sigmoid_tau_and_vjp_vs_mpmath(tau):
    # documented: relative error <= eps (|x/τ| + 4) (the rounding of x/τ, amplified by exp), i.e. below
    # 1.7e-13 wherever the value is a normal double
    xs = np.array([0.0, 1e-300, -1e-300, 1e-10, 0.3, -0.3, 1.0, -1.0, 5.0, -5.0, 37.0, -37.0, 100.0, -100.0,
                   700.0, -700.0, 7.0, -7.0, 7.45, -7.45, 1e4, -1e4, 7e4, -7e4])
    s = refgrad.relaxations.sigmoid_tau(xs, tau)
    gx, gt = refgrad.relaxations.sigmoid_tau_vjp(xs, tau, np.ones_like(xs))
    for x, si, gxi, gti in zip(xs, s, gx, gt):
        z = mp.mpf(float(x)) / mp.mpf(tau)
        slope = mp_sigmoid_mp(z) * mp_sigmoid_mp(-z)
        bound = EPS * (abs(float(x) / tau) + 4)
        for value, ref in ((si, mp_sigmoid_mp(z)), (gxi, slope / tau), (gti, -z * slope / tau)):
            if abs(ref) > TINY:
                assert rel_err(value, ref) <= bound, (tau, x, value, ref)
            else:
                assert abs(value) <= 2 * TINY


SOFTMAX_ROWS = [[0.0, 0.0, 0.0], [40.0, 0.0, -40.0], [700.0, 0.0, -700.0], [1.0, 1.0000001, 0.999],
                [1e4, 0.0, -1e4], [0.5, -0.2, 0.1], [3.0, -np.inf, 2.0], [-5.0, -5.0 + 1e-12, 30.0]]


@pytest.mark.parametrize("tau", TAUS)
def test_softmax_tau_and_vjp_vs_mpmath(tau):
    # documented: relative error <= 2 eps (max_k |x_k − max x| / τ + K + 2) for s, every Jacobian entry
    # ∂s_k/∂x_j = s_k (δ_kj − s_j)/τ and ∂s_k/∂τ.  Before, ∂s_0/∂x_0 = s_0 (1 − s_0)/τ was formed with
    # 1 − s_0, which is 0 for row [0.5, −0.2, 0.1] at τ = 0.01 (true 4.2e-16).
    for row in SOFTMAX_ROWS:
        x = np.array(row)
        finite = np.isfinite(x)
        m = max(v for v in row if np.isfinite(v))
        w = [(mp.mpf(v) - mp.mpf(m)) / mp.mpf(tau) if np.isfinite(v) else None for v in row]
        ex = [mp.exp(wi) if wi is not None else mp.mpf(0) for wi in w]
        total = mp.fsum(ex)
        s_ref = [e / total for e in ex]
        bound = 2 * EPS * (float(np.max(np.abs(x[finite] - m))) / tau + len(row) + 2)
        s = refgrad.relaxations.softmax_tau(x, tau)
        for k in range(len(row)):
            if s_ref[k] > TINY:
                assert rel_err(s[k], s_ref[k]) <= bound, (tau, row, k)
        zbar = mp.fsum(s_ref[i] * w[i] for i in range(len(row)) if w[i] is not None)
        for k in range(len(row)):
            c = np.zeros(len(row))
            c[k] = 1.0
            gx, gt = refgrad.relaxations.softmax_tau_vjp(x, tau, c)
            for j in range(len(row)):
                # δ_kj − s_j written as Σ_{i≠j} s_i for j = k (1 − s_k cancels in mpmath too)
                comp = mp.fsum(s_ref[i] for i in range(len(row)) if i != j) if j == k else -s_ref[j]
                ref = s_ref[k] * comp / tau
                if finite[j] and abs(ref) > TINY:
                    assert rel_err(gx[j], ref) <= bound, (tau, row, k, j, gx[j], ref)
            ref = -s_ref[k] * (w[k] - zbar) / tau if finite[k] else mp.mpf(0)
            if abs(ref) > TINY:
                assert rel_err(gt, ref) <= bound, (tau, row, k, gt, ref)


def test_softmax_vjp_issue_case():
    gx, _ = refgrad.relaxations.softmax_tau_vjp(np.array([0.5, -0.2, 0.1]), 0.01, np.array([1.0, 0.0, 0.0]))
    s = [mp.exp(mp.mpf(v) / mp.mpf(0.01)) for v in (0.0, -0.7, -0.4)]
    s0 = s[0] / mp.fsum(s)
    assert rel_err(gx[0], s0 * (s[1] + s[2]) / mp.fsum(s) / mp.mpf(0.01)) <= 1e-13


# ---------------------------------------------------------------------------- relaxed densities


def mp_binary_concrete_log_density(x, logit, tau):
    """log of τ α x^(−τ−1) (1−x)^(−τ−1) / (α x^(−τ) + (1−x)^(−τ))², α = e^ℓ (the Concrete formula)."""
    X, L, T = mp.mpf(x), mp.mpf(logit), mp.mpf(tau)
    return (mp.log(T) + L - (T + 1) * (mp.log(X) + mp.log(1 - X))
            - 2 * mp.log(mp.exp(L) * X ** (-T) + (1 - X) ** (-T)))


def binary_density_scale(x, logit, tau):
    lx, l1 = np.log(x), np.log1p(-x)
    return abs(np.log(tau)) + abs(lx) + abs(l1) + abs(logit) + tau * abs(lx - l1) + 2.0


def mp_concrete_log_density(point, logits, tau, logspace, lebesgue):
    K = len(point)
    T = mp.mpf(tau)
    ly = [mp.mpf(float(v)) for v in point] if logspace else [mp.log(mp.mpf(float(v))) for v in point]
    a = [mp.mpf(float(lk)) - T * yk for lk, yk in zip(logits, ly)]
    m = max(a)
    lse = m + mp.log(mp.fsum(mp.exp(ak - m) for ak in a))
    value = mp.log(mp.factorial(K - 1)) + (K - 1) * mp.log(T) + mp.fsum(a) - K * lse
    if not logspace:
        value -= mp.fsum(ly)
    if lebesgue:
        value -= ly[-1]
    return value


def concrete_density_scale(point, logits, tau, logspace, lebesgue):
    """S of the docstrings: log((K−1)!) + (K−1)|log τ| + Σ (|ℓ_k| + τ|y_k|) + K max|a_k| + K log K
    (+ Σ |log x_k| for the Concrete density, + |y_K| for the Lebesgue ExpConcrete density)."""
    K = len(point)
    ly = np.asarray(point) if logspace else np.log(np.asarray(point))
    a = np.asarray(logits) - tau * ly
    scale = (np.log(float(np.prod(np.arange(1, K)))) + (K - 1) * abs(np.log(tau))
             + np.sum(np.abs(logits) + tau * np.abs(ly)) + K * np.max(np.abs(a)) + K * np.log(K))
    if not logspace:
        scale += np.sum(np.abs(ly))
    if lebesgue:
        scale += abs(ly[-1])
    return scale


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0, 10.0, 100.0])
def test_binary_concrete_log_density_error_bound(tau):
    # documented: |error| <= 2 eps S(x, ℓ, τ); the value itself may be ≈ 0 (then only this absolute bound holds)
    for logit in [0.0, 1.0, -1.0, 10.0, -10.0, 50.0, -50.0, 700.0, -700.0]:
        for x in [1e-300, 1e-100, 1e-10, 0.01, 0.3, 0.5, 0.7, 0.99, 1.0 - 1e-10, 1.0 - 2.0**-53]:
            value = refgrad.relaxations.binary_concrete_log_density(x, logit, tau)
            ref = mp_binary_concrete_log_density(x, logit, tau)
            assert float(abs(value - ref)) <= 2 * EPS * binary_density_scale(x, logit, tau), (tau, logit, x)


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0, 10.0, 100.0])
def test_concrete_log_densities_error_bound(tau):
    # documented: |error| <= 2 eps S, S as in concrete_density_scale; seed 1 draws K in 2..6, logits of
    # scale 0.01 .. 700 and ExpConcrete points from exp_concrete_sample.  A case of issue 8: the
    # ExpConcrete log-density 0.0017 with absolute error 1.6e-15, relative 1e-12, inside the bound.
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(40):
        K = int(rng.integers(2, 7))
        logits = rng.normal(size=K) * rng.choice([0.01, 1.0, 10.0, 100.0, 700.0])
        y = refgrad.relaxations.exp_concrete_sample(logits, tau, rng.uniform(size=K))
        if not np.all(np.isfinite(y)):
            continue
        for measure in ("symmetric", "lebesgue"):
            value = refgrad.relaxations.exp_concrete_log_density(y, logits, tau, measure=measure)
            ref = mp_concrete_log_density(y, logits, tau, True, measure == "lebesgue")
            bound = 2 * EPS * concrete_density_scale(y, logits, tau, True, measure == "lebesgue")
            assert float(abs(value - ref)) <= bound, (tau, logits, y, measure)
        x = np.exp(y)
        if np.all(x > 0) and abs(x.sum() - 1.0) < 1e-9:
            value = refgrad.relaxations.concrete_log_density(x, logits, tau)
            ref = mp_concrete_log_density(x, logits, tau, False, False)
            assert float(abs(value - ref)) <= 2 * EPS * concrete_density_scale(x, logits, tau, False, False)
            checked += 1
    assert checked >= 10
