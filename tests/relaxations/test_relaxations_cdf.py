"""Marginal CDFs of the Binary Concrete and Concrete laws: closed forms vs mpmath, the K = 3 / 4
integrals vs independent quadrature (mpmath, scipy.integrate), structure (monotone, CDF + SF = 1,
limits, K = 2 = binary, infinite logits), Monte Carlo agreement with the samplers, bad input."""
import numpy as np
import pytest
from scipy import special, stats

import naive
from refgrad import relaxations as R
from refgrad.crosscheck._verdict import DEFAULT_ALPHA
from refgrad.random import uniform

mpmath = pytest.importorskip("mpmath")
INF = float("inf")


# ---------------------------------------------------------------- independent references


def mp_binary_cdf(x, ell, tau, upper=False):
    with mpmath.workdps(50):
        x, ell, tau = mpmath.mpf(x), mpmath.mpf(ell), mpmath.mpf(tau)
        s = tau * (mpmath.log(x) - mpmath.log(1 - x)) - ell
        return float(1 / (1 + mpmath.exp(s)) if upper else 1 / (1 + mpmath.exp(-s)))


def mp_concrete3(x, ell, tau, k, upper=False, dps=20):
    """E_theta[(1 + c h)^-2] on theta = sigma(w), from the definition, mpmath Gauss-Legendre on a graded grid."""
    mp = mpmath
    with mp.workdps(dps):
        ell = [mp.mpf(float(v)) for v in ell]
        tau, x = mp.mpf(float(tau)), mp.mpf(float(x))
        o = [ell[j] for j in range(3) if j != k]
        log_c = ell[k] - tau * (mp.log(x) - mp.log1p(-x))

        def g(w):
            l1 = -mp.log1p(mp.exp(-w)) if w > -50 else w - mp.log1p(mp.exp(w))  # log theta
            l2 = -mp.log1p(mp.exp(w)) if w < 50 else -w - mp.log1p(mp.exp(-w))  # log(1 - theta)
            t1, t2 = (o[0] - l1) / tau, (o[1] - l2) / tau
            top = max(t1, t2)
            z = log_c - tau * (top + mp.log(mp.exp(t1 - top) + mp.exp(t2 - top)))
            sp = z + mp.log1p(mp.exp(-z)) if z > 0 else mp.log1p(mp.exp(z))
            return mp.exp(l1 + l2) * (-mp.expm1(-2 * sp) if upper else mp.exp(-2 * sp))

        lx, t = float(mp.log(x) - mp.log1p(-x)), float(tau)
        d = [float(v - ell[k]) for v in o]
        far = 60 + 4 * t + abs(t * lx) + abs(d[0]) + abs(d[1])
        grid = {0.0, d[0] - d[1]}
        for centre, step in [(d[0] - d[1], min(1.0, t) / 4), (0.0, 0.5)] + [
                (r, 0.5) for r in (d[0] + t * lx, -t * lx - d[1])]:
            s = step
            while s < far:
                grid.update((centre - s, centre + s))
                s *= 2
        feats = [0.0, d[0] - d[1], d[0] + t * lx, -t * lx - d[1]]
        lo, hi = max(min(feats) - 60 - 2 * t, -far), min(max(feats) + 60 + 2 * t, far)
        grid.update(np.linspace(lo, hi, int(min(800, (hi - lo) / 2)) + 2))  # plus a uniform grid, spacing <= 2
        # Gauss-Legendre per piece (the integrand is smooth between the grid points): 3 s for the seven
        # extreme points instead of 8.7 s with tanh-sinh, within 3e-11 of a 30-digit rule on a 4x finer grid
        return float(mp.quad(g, sorted(v for v in grid if abs(v) <= far), method="gauss-legendre"))


def tensor_concrete4(x, ell, tau, k):
    """2 * integral over the triangle of (1 + c h)^-3: tensor tanh-sinh rule (refgrad._moments.quadrature) in (a, b).

    theta = (a, b (1 - a), (1 - b)(1 - a)), Jacobian (1 - a); moderate arguments only.
    """
    from refgrad._moments.quadrature import tanh_sinh

    ell = np.asarray(ell, dtype=float)
    o = np.delete(ell, k)
    log_c = ell[k] - tau * special.logit(x)
    t, w = tanh_sinh(0.0, 1.0, 6)
    a, b = t[:, None], t[None, :]
    th = np.stack(np.broadcast_arrays(a, b * (1 - a), (1 - b) * (1 - a)))
    lh = -tau * special.logsumexp((o[:, None, None] - np.log(th)) / tau, axis=0)
    f = 2.0 * (1 - a) * np.exp(-3.0 * np.logaddexp(0.0, log_c + lh))
    return float(w @ f @ w)


# ---------------------------------------------------------------- binary closed form


BINARY_POINTS = [(x, ell, tau) for x in (1e-300, 1e-20, 0.3, 0.5, 0.97, 1 - 1e-12, 1 - 2.0**-53)
                 for ell in (-700.0, -3.0, 0.0, 2.5, 700.0) for tau in (0.01, 0.7, 100.0)]


@pytest.mark.parametrize("upper", [False, True])
def test_binary_cdf_matches_mpmath_in_both_tails(upper):
    x, ell, tau = (np.array(v) for v in zip(*BINARY_POINTS))
    got = R.binary_concrete_cdf(x, ell, tau, upper=upper)
    ref = np.array([mp_binary_cdf(*p, upper=upper) for p in BINARY_POINTS])
    normal = ref > 1e-300
    np.testing.assert_allclose(got[normal], ref[normal], rtol=1e-12, atol=0)
    assert np.all(np.abs(got[~normal] - ref[~normal]) <= 1e-300)


def test_binary_cdf_matches_the_formula_and_the_twin():
    rng = np.random.default_rng(3)
    x, ell, tau = rng.uniform(0.001, 0.999, 500), rng.normal(0, 3, 500), np.exp(rng.uniform(-3, 3, 500))
    for upper in (False, True):
        np.testing.assert_allclose(R.binary_concrete_cdf(x, ell, tau, upper=upper),
                                   naive.relaxations_binary_concrete_cdf(x, ell, tau, upper), rtol=1e-13)


def test_binary_cdf_limits_and_point_masses():
    assert R.binary_concrete_cdf(0.0, 1.0, 0.5) == 0.0 and R.binary_concrete_cdf(1.0, 1.0, 0.5) == 1.0
    assert R.binary_concrete_cdf(0.0, 1.0, 0.5, upper=True) == 1.0
    np.testing.assert_array_equal(R.binary_concrete_cdf([0.0, 0.5, 1.0], INF, 2.0), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(R.binary_concrete_cdf([0.0, 0.5, 1.0], -INF, 2.0), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(R.binary_concrete_cdf([0.0, 0.5, 1.0], -INF, 2.0, upper=True), [0, 0, 0])


def test_binary_cdf_batched_tau_broadcasts():
    tau = np.array([[0.1], [1.0], [10.0]])
    got = R.binary_concrete_cdf([0.2, 0.7], [0.3, -0.4], tau)
    assert got.shape == (3, 2)
    for i in range(3):
        np.testing.assert_array_equal(got[i], R.binary_concrete_cdf([0.2, 0.7], [0.3, -0.4], float(tau[i, 0])))


# ---------------------------------------------------------------- Concrete marginals


def test_concrete_k2_equals_binary_with_the_logit_difference():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (200, 2))
    ell = rng.normal(0, 5, (200, 2))
    tau = np.exp(rng.uniform(-4, 4, 200))
    got = R.concrete_marginal_cdf(x, ell, tau)
    np.testing.assert_allclose(got[:, 0], R.binary_concrete_cdf(x[:, 0], ell[:, 0] - ell[:, 1], tau), rtol=1e-13)
    np.testing.assert_allclose(got[:, 1], R.binary_concrete_cdf(x[:, 1], ell[:, 1] - ell[:, 0], tau), rtol=1e-13)


def test_concrete_k3_matches_scipy_quad_at_moderate_points():
    rng = np.random.default_rng(5)
    for _ in range(6):
        x, ell, tau = rng.uniform(0.05, 0.95, 3), rng.normal(0, 1.5, 3), float(np.exp(rng.uniform(-1, 1.5)))
        for upper in (False, True):
            got = R.concrete_marginal_cdf(x, ell, tau, upper=upper)
            ref = [naive.relaxations_concrete_cdf_quad(x[k], ell, tau, k, upper) for k in range(3)]
            np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-13)


K3_EXTREME = [  # (x, logits, tau, k, upper): small / large tau, far logits, x at the ends, both tails
    (0.4, [3.0, 3.0, 3.0], 0.01, 0, True),
    (1e-30, [0.5, 0.1, -1.0], 0.01, 2, False),
    (0.9, [700.0, -700.0, 0.0], 0.3, 1, True),
    (1e-300, [-700.0, 0.0, 700.0], 1.0, 2, False),
    (1 - 2.0**-53, [0.0, 40.0, -40.0], 7.0, 0, True),
    (0.01, [0.5, 0.1, -1.0], 100.0, 0, False),
    (1 - 1e-10, [3.0, 3.0, 3.0], 100.0, 1, True),
]


@pytest.mark.parametrize("case", K3_EXTREME)
def test_concrete_k3_matches_mpmath_at_extreme_points(case):
    x, ell, tau, k, upper = case
    ref = mp_concrete3(x, ell, tau, k, upper)
    got = R.concrete_marginal_cdf(np.full(3, x), ell, tau, upper=upper)[k]
    assert abs(got - ref) <= 1e-10 * ref + 1e-300, (got, ref)


def test_concrete_k4_matches_a_tensor_tanh_sinh_rule():
    for x, ell, tau in [([0.3, 0.6, 0.2, 0.1], [0.5, 0.1, -1.0, 0.3], 0.7),
                        ([0.5, 0.05, 0.25, 0.9], [0, 1, 2, 3], 2.0)]:
        got = R.concrete_marginal_cdf(x, ell, tau)
        for k in range(4):
            assert abs(got[k] - tensor_concrete4(x[k], ell, tau, k)) < 1e-11


def test_concrete_cdf_is_monotone_and_cdf_plus_sf_is_one():
    grid = np.linspace(0.0, 1.0, 41)
    for ell, tau in [([0.5, 0.1, -1.0], 0.05), ([2.0, -1.0, 0.0], 5.0), ([0.0, 0.5, 1.0, -0.5], 0.5)]:
        K = len(ell)
        x = np.repeat(grid[:, None], K, axis=1)
        cdf = R.concrete_marginal_cdf(x, ell, tau)
        sf = R.concrete_marginal_cdf(x, ell, tau, upper=True)
        assert np.all(np.diff(cdf, axis=0) >= -1e-15)
        np.testing.assert_allclose(cdf + sf, 1.0, atol=1e-13)
        np.testing.assert_array_equal(cdf[0], 0.0)
        np.testing.assert_array_equal(cdf[-1], 1.0)


def test_concrete_marginals_average_to_the_mean_relation():
    """E[X_k] = int_0^1 P(X_k > x) dx; the E[X_k] sum to 1 over k (a check of the mass, all k at once)."""
    x, w = np.polynomial.legendre.leggauss(60)
    x, w = 0.5 * (x + 1), 0.5 * w
    for ell, tau in [([0.5, 0.1, -1.0], 0.8), ([1.0, 0.0, -2.0], 3.0)]:
        sf = R.concrete_marginal_cdf(np.repeat(x[:, None], 3, axis=1), ell, tau, upper=True)
        assert abs((w[:, None] * sf).sum() - 1.0) < 1e-6


def test_concrete_cdf_agrees_with_samples_ks():
    """KS of F(X_k) against U(0, 1) for concrete_sample on refgrad uniforms: alpha = DEFAULT_ALPHA (1e-3), seed 11."""
    ell, tau, n = np.array([0.5, 0.1, -1.0]), 0.6, 20000
    sample = R.concrete_sample(ell, tau, uniform(11, (n, 3)))
    pit = R.concrete_marginal_cdf(sample, ell, tau)
    for k in range(3):
        assert stats.kstest(pit[:, k], "uniform").pvalue > DEFAULT_ALPHA


def test_concrete_batched_tau_equals_scalar_calls():
    x = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.2]])
    ell = np.array([0.4, -0.3, 0.0])
    tau = np.array([0.1, 4.0])
    got = R.concrete_marginal_cdf(x, ell, tau)
    for i in range(2):
        np.testing.assert_array_equal(got[i], R.concrete_marginal_cdf(x[i], ell, float(tau[i])))


def test_concrete_infinite_logits_follow_the_conventions():
    x = np.array([0.0, 0.4, 0.6, 1.0])
    # -inf category: X = 0; the others form a K = 2 Concrete
    got = R.concrete_marginal_cdf(np.full((4, 3), 0.3), [0.5, -INF, -0.2], 0.7)
    np.testing.assert_array_equal(got[:, 1], 1.0)
    np.testing.assert_allclose(got[0, 0], R.binary_concrete_cdf(0.3, 0.7, 0.7), rtol=1e-14)
    # two +inf entries share the mass: X = 1/2 exactly, the finite one is 0
    cdf = R.concrete_marginal_cdf(np.repeat(x[:, None], 3, axis=1), [INF, 0.0, INF], 1.0)
    np.testing.assert_array_equal(cdf[:, 0], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(cdf[:, 1], [1.0, 1.0, 1.0, 1.0])
    # the only finite logit: X = 1
    cdf = R.concrete_marginal_cdf(np.repeat(x[:, None], 3, axis=1), [-INF, 2.0, -INF], 1.0)
    np.testing.assert_array_equal(cdf[:, 1], [0.0, 0.0, 0.0, 1.0])


def test_too_many_categories_is_refused_naming_k():
    with pytest.raises(ValueError, match="K = 4.*K = 5"):
        R.concrete_marginal_cdf(np.full(5, 0.2), np.zeros(5), 1.0)
    # -inf categories do not count
    assert np.isfinite(R.concrete_marginal_cdf(np.full(5, 0.2), [0, 0, 0, -INF, -INF], 1.0)).all()


@pytest.mark.parametrize("call, match", [
    (lambda: R.binary_concrete_cdf(1.5, 0.0, 1.0), r"x must hold points of \[0, 1\].*1\.5"),
    (lambda: R.binary_concrete_cdf([0.2, np.nan], 0.0, 1.0), r"x .*nan at index \(1,\)"),
    (lambda: R.binary_concrete_cdf(0.2, np.nan, 1.0), "logits must not contain NaN"),
    (lambda: R.binary_concrete_cdf(0.2, 0.0, [1.0, -2.0]),
     r"tau must hold finite temperatures > 0.*-2\.0 at index \(1,\)"),
    (lambda: R.binary_concrete_cdf(0.2, 0.0, INF), "tau must hold finite"),
    (lambda: R.binary_concrete_cdf([0.2, 0.3], [0.0, 1.0, 2.0], 1.0), "x of shape .* logits of shape"),
    (lambda: R.concrete_marginal_cdf([0.2], [0.0], 1.0), "K >= 2"),
    (lambda: R.concrete_marginal_cdf([0.2, 0.3], [0.0, 1.0, 2.0], 1.0), "logits must have shape"),
    (lambda: R.concrete_marginal_cdf([0.2, 0.3], [-INF, -INF], 1.0), "at least one entry > -inf"),
    (lambda: R.concrete_marginal_cdf([[0.2, 0.3]] * 2, [0.0, 1.0], [1.0, 2.0, 3.0]), "tau of shape"),
    (lambda: R.concrete_marginal_cdf([0.2, -0.1], [0.0, 1.0], 1.0), r"x must hold points.*-0\.1 at index \(1,\)"),
])
def test_bad_input_is_refused_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_are_refused():
    with pytest.raises(TypeError, match="tau"):
        R.binary_concrete_cdf(0.2, 0.0, True)
    with pytest.raises(TypeError, match="upper"):
        R.concrete_marginal_cdf([0.2, 0.3], [0.0, 1.0], 1.0, upper="yes")
    with pytest.raises(TypeError, match="x"):
        R.binary_concrete_cdf("0.2", 0.0, 1.0)
