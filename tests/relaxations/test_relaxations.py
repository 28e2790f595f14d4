"""Relaxations: kernels vs NumPy twins, VJPs vs finite differences, densities vs quadrature,
sampler histograms vs densities, extreme temperatures vs mpmath, closed forms, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, special, stats

import naive
from refgrad import relaxations as R
from refgrad.relaxations import concrete as RC
from refgrad.relaxations import tempered as RT

INF = float("inf")
EPS = np.finfo(np.float64).eps

try:
    import mpmath
except ImportError:  # pragma: no cover - mpmath ships with SymPy / SciPy test installs
    mpmath = None


# ---------------------------------------------------------------- helpers


def assert_twin(actual, expected, rtol=1e-14, scale=0.0):
    """Kernel vs twin: equal where both are equal (infinities included), else |a - e| <= rtol (|e| + scale) + tiny.

    ``scale`` (array or scalar) is the magnitude of the terms that cancel in the result (a result near 0
    obtained as a difference of terms of size ``scale`` has no meaningful relative error).  ``tiny`` (the
    smallest normal float) absorbs subnormal results, which SciPy's expit flushes to 0.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    assert not np.isnan(actual).any() and not np.isnan(expected).any()
    same = actual == expected
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected)
        bound = rtol * (np.abs(expected) + scale) + np.finfo(np.float64).tiny
    ok = same | (err <= bound)
    assert ok.all(), (
        f"max err {np.max(np.where(ok, 0, err))} at {np.argwhere(~ok)[0]}: "
        f"{actual[~ok][:3]} vs {expected[~ok][:3]}"
    )


def fix_rows(x):
    """Give each all(-inf) row (last axis) a finite first entry, as the public API requires."""
    x = np.array(x, dtype=np.float64)
    if x.size:
        dead = (x == -INF).all(axis=-1)
        x[..., 0] = np.where(dead, 0.0, x[..., 0])
    return x


taus = st.floats(-2.0, 1.5).map(lambda e: float(10.0**e))  # 0.01 .. 31.6, log-uniform
finite_big = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
with_infs = st.one_of(finite_big, st.sampled_from([INF, -INF]))
moderate = st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False)
logit_elems = st.one_of(moderate, moderate, moderate, st.sampled_from([INF, -INF]))
uniforms = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 1e-300, 1.0 - EPS / 2]))
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
cat_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


#: Cotangents for finite-difference checks of VJPs.  Subnormal ones are left out: c · ∂ then keeps only the
#: few significant bits of a subnormal, on both sides, so their relative agreement says nothing about ∂
#: (c = 2.2e-311 once failed rtol = 1e-6 that way, in an order-dependent draw).
COTANGENT = st.floats(-3.0, 3.0, allow_subnormal=False)


def arrays_like(shape, elements):
    return hnp.arrays(np.float64, shape, elements=elements)


# ---------------------------------------------------------------- kernels vs twins (public path)


@given(st.data(), shapes, taus)
def test_sigmoid_tau_and_vjp_match_twin(data, shape, tau):
    x = data.draw(arrays_like(shape, with_infs))
    c = data.draw(arrays_like(shape, st.floats(-10, 10)))
    assert_twin(R.sigmoid_tau(x, tau), naive.relax_sigmoid_tau(x, tau))
    gx, gt = R.sigmoid_tau_vjp(x, tau, c)
    tx, tt = naive.relax_sigmoid_tau_vjp(x, tau, c)
    assert np.shape(gx) == np.shape(x) and np.shape(gt) == np.shape(x)
    assert_twin(gx, tx)
    assert_twin(gt, tt)


@given(st.data(), cat_shapes, taus)
def test_softmax_tau_and_vjp_match_twin(data, shape, tau):
    x = fix_rows(data.draw(arrays_like(shape, with_infs)))
    c = data.draw(arrays_like(shape, st.floats(-10, 10)))
    assert_twin(R.softmax_tau(x, tau), naive.relax_softmax_tau(x, tau))
    gx, gt = R.softmax_tau_vjp(x, tau, c)
    tx, tt = naive.relax_softmax_tau_vjp(x, tau, c)
    assert gx.shape == x.shape and np.shape(gt) == x.shape[:-1]
    # the twin goes through the explicit Jacobian (different cancellations): compare on the scale of the terms
    s = naive.relax_softmax_tau(x, tau)
    term = np.abs(c).max(axis=-1, keepdims=True) * s / tau
    with np.errstate(invalid="ignore"):
        w = np.where(s > 0, np.abs(x - x.max(axis=-1, keepdims=True)) / tau, 0.0)
    assert_twin(gx, tx, scale=term)
    assert_twin(gt, tt, scale=(term * (w + np.max(w, axis=-1, keepdims=True))).sum(axis=-1))


@given(st.data(), shapes, shapes, taus)
def test_binary_concrete_sample_matches_twin(data, shape_l, shape_u, tau):
    try:
        np.broadcast_shapes(shape_l, shape_u)
    except ValueError:
        shape_l = shape_u
    ell = data.draw(arrays_like(shape_l, logit_elems))
    u = data.draw(arrays_like(shape_u, uniforms))
    assert_twin(R.binary_concrete_sample(ell, tau, u), naive.relax_binary_concrete_sample(ell, tau, u))


@given(st.data(), cat_shapes, taus)
def test_concrete_samples_match_twins(data, shape, tau):
    ell = fix_rows(data.draw(arrays_like(shape[-1:], logit_elems)))  # shared logits, broadcast over u
    u = data.draw(arrays_like(shape, st.floats(1e-300, 1.0, exclude_max=True)))
    assert_twin(R.concrete_sample(ell, tau, u), naive.relax_concrete_sample(ell, tau, u))
    assert_twin(R.exp_concrete_sample(ell, tau, u), naive.relax_exp_concrete_sample(ell, tau, u))


@given(st.data(), shapes, taus)
def test_binary_concrete_log_density_matches_twin(data, shape, tau):
    x = data.draw(arrays_like(shape, st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)))
    ell = data.draw(arrays_like(shape, logit_elems))
    got = R.binary_concrete_log_density(x, ell, tau)
    want = naive.relax_binary_concrete_log_density(x, ell, tau)
    # twin: the closed form term by term; both sum terms of size |log x|, |log(1-x)|, |logit|
    scale = np.where(np.isinf(ell), 0.0, np.abs(ell) + (tau + 2.0) * (np.abs(np.log(x)) + np.abs(np.log1p(-x))) + 1.0)
    assert_twin(got, want, scale=scale)


@given(st.data(), st.integers(2, 5), st.integers(1, 3), taus)
def test_concrete_log_densities_match_twins(data, k, n, tau):
    t = data.draw(arrays_like((n, k), st.floats(-300.0, 300.0)))
    y = special.log_softmax(t, axis=-1)
    x = np.exp(y)
    ell = fix_rows(data.draw(arrays_like((n, k), logit_elems)))
    finite = np.isfinite(ell).all(axis=-1)
    with np.errstate(invalid="ignore"):
        a = np.where(np.isfinite(ell), np.abs(ell), 0.0) + (tau + 1.0) * np.abs(y)
    scale = np.where(finite, 2 * k * a.max(axis=-1) + 2.0, 0.0)
    if (x > 0).all():
        assert_twin(R.concrete_log_density(x, ell, tau), naive.relax_concrete_log_density(x, ell, tau), scale=scale)
    for measure in ("symmetric", "lebesgue"):
        assert_twin(
            R.exp_concrete_log_density(y, ell, tau, measure=measure),
            naive.relax_exp_concrete_log_density(y, ell, tau, measure=measure),
            scale=scale,
        )


# ---------------------------------------------------------------- private kernels on (n, d) / (n, d, K)


def test_private_kernels_on_estimator_shapes_with_shared_logits():
    """Estimators call the kernels on (n, d) / (n, d, K) arrays, logits with first axis n or 1 (shared)."""
    rng = np.random.default_rng(12345)
    n, d, k, tau = 5, 3, 4, 0.3
    x2 = np.ascontiguousarray(rng.normal(size=(n, d)) * 3)
    u2 = rng.random((n, d))
    l2 = np.ascontiguousarray(rng.normal(size=(1, d)))
    c2 = rng.normal(size=(n, d))
    assert_twin(RT._sigmoid_tau(x2, tau), naive.relax_sigmoid_tau(x2, tau))
    for got, want in zip(RT._sigmoid_tau_vjp(x2, tau, c2), naive.relax_sigmoid_tau_vjp(x2, tau, c2)):
        assert_twin(got, want)
    assert_twin(RC._binary_concrete_sample(l2, tau, u2), naive.relax_binary_concrete_sample(l2, tau, u2))
    full = np.ascontiguousarray(np.broadcast_to(l2, (n, d)))
    assert_twin(RC._binary_concrete_sample(full, tau, u2), RC._binary_concrete_sample(l2, tau, u2), rtol=0)
    xb = RC._binary_concrete_sample(l2, tau, u2)
    assert_twin(
        RC._binary_concrete_log_density(xb, l2, tau), naive.relax_binary_concrete_log_density(xb, l2, tau), scale=50
    )

    x3 = np.ascontiguousarray(rng.normal(size=(n, d, k)) * 3)
    u3 = rng.random((n, d, k))
    l3 = np.ascontiguousarray(rng.normal(size=(1, d, k)))
    c3 = rng.normal(size=(n, d, k))
    assert_twin(RT._softmax_tau(x3, tau), naive.relax_softmax_tau(x3, tau))
    gx, gt = RT._softmax_tau_vjp(x3, tau, c3)
    tx, tt = naive.relax_softmax_tau_vjp(x3, tau, c3)
    assert gx.shape == (n, d, k) and gt.shape == (n, d)
    assert_twin(gx, tx, scale=1.0 / tau)
    assert_twin(gt, tt, scale=100.0 / tau)
    xs = RC._concrete_sample(l3, tau, u3, False)
    ys = RC._concrete_sample(l3, tau, u3, True)
    assert_twin(xs, naive.relax_concrete_sample(l3, tau, u3))
    assert_twin(ys, naive.relax_exp_concrete_sample(l3, tau, u3), scale=1.0)
    assert_twin(
        RC._concrete_log_density(xs, l3, tau, False, False), naive.relax_concrete_log_density(xs, l3, tau), scale=100
    )
    for lebesgue, measure in ((False, "symmetric"), (True, "lebesgue")):
        assert_twin(
            RC._concrete_log_density(ys, l3, tau, True, lebesgue),
            naive.relax_exp_concrete_log_density(ys, l3, tau, measure),
            scale=100,
        )


# ---------------------------------------------------------------- VJPs vs central finite differences


@given(st.data(), hnp.array_shapes(min_dims=0, max_dims=2, max_side=4), st.floats(0.1, 10.0))
def test_sigmoid_tau_vjp_matches_finite_differences(data, shape, tau):
    x = data.draw(arrays_like(shape, st.floats(-20.0, 20.0)))
    c = data.draw(arrays_like(shape, COTANGENT))
    gx, gt = R.sigmoid_tau_vjp(x, tau, c)
    h = 1e-6 * tau
    fd_x = c * (R.sigmoid_tau(x + h, tau) - R.sigmoid_tau(x - h, tau)) / (2 * h)
    fd_tau = c * (R.sigmoid_tau(x, tau + h) - R.sigmoid_tau(x, tau - h)) / (2 * h)  # elementwise, not summed
    cmax = float(np.max(np.abs(c), initial=0.0))
    zmax = float(np.max(np.abs(x), initial=0.0)) / tau
    np.testing.assert_allclose(gx, fd_x, rtol=1e-6, atol=1e-9 * cmax / tau)
    np.testing.assert_allclose(gt, fd_tau, rtol=1e-6, atol=1e-9 * cmax * (1 + zmax) / tau)


@given(st.data(), st.integers(1, 2), st.integers(1, 4), st.floats(0.1, 10.0))
def test_softmax_tau_vjp_matches_finite_differences(data, n, k, tau):
    elems = st.one_of(st.floats(-10.0, 10.0), st.floats(-10.0, 10.0), st.sampled_from([INF, -INF]))
    x = fix_rows(data.draw(arrays_like((n, k), elems)))
    c = data.draw(arrays_like((n, k), COTANGENT))
    gx, gt = R.softmax_tau_vjp(x, tau, c)
    h = 1e-6 * tau
    phi = lambda xx, tt: (c * R.softmax_tau(xx, tt)).sum(axis=-1)  # noqa: E731 - one value per row
    fd_x = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd_x[idx] = (phi(x + e, tau) - phi(x - e, tau))[idx[0]] / (2 * h)
    fd_tau = (phi(x, tau + h) - phi(x, tau - h)) / (2 * h)
    zmax = np.abs(np.where(np.isfinite(x), x, 0.0)).max() / tau
    np.testing.assert_allclose(gx, fd_x, rtol=1e-6, atol=1e-9 * np.abs(c).max() / tau)
    np.testing.assert_allclose(gt, fd_tau, rtol=1e-6, atol=1e-9 * np.abs(c).max() * (1 + zmax) / tau)
    assert (gx[np.isinf(x)] == 0).all()


# ---------------------------------------------------------------- normalisation by quadrature

BINARY_PARAMS = [(0.0, 1.0), (1.5, 0.5), (-2.0, 0.3), (0.7, 2.0), (-0.4, 5.0)]


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("ell, tau", BINARY_PARAMS)
def test_binary_concrete_density_integrates_to_one(ell, tau):
    """int_0^1 p(x) dx = 1 by QUADPACK's QAWS: the endpoint singularities x^(tau-1) (1-x)^(tau-1) go into the
    weight, the bounded rest f = p / weight is evaluated at float nodes x (where 1 - x is exact), so no
    cancellation near x = 1.  f's limits at the endpoints: tau e^-ell at 0, tau e^ell at 1."""

    def f(x):
        if x <= 0.0:
            return tau * math.exp(-ell)
        if x >= 1.0:
            return tau * math.exp(ell)
        return math.exp(R.binary_concrete_log_density(x, ell, tau) + (1.0 - tau) * (math.log(x) + math.log1p(-x)))

    weight = dict(weight="alg", wvar=(tau - 1.0, tau - 1.0))
    total, _ = integrate.quad(f, 0.0, 1.0, **weight, limit=500, epsabs=1e-13, epsrel=1e-12)
    assert abs(total - 1.0) < 1e-9, total


def _binary_lower_half(ell, tau):
    """int_0^(1/2) p(x) dx in t = logit(x) (x = exp(log_expit(t)) has full relative accuracy for t <= 0)."""

    def f(t):
        x = math.exp(special.log_expit(t))
        return math.exp(R.binary_concrete_log_density(x, ell, tau)) * x * special.expit(-t)

    centre = ell / tau
    points = [p for p in (centre - 20 / tau, centre, centre + 20 / tau) if -740.0 < p < 0.0]
    total, _ = integrate.quad(f, -740.0, 0.0, points=points or None, limit=500, epsabs=1e-14)
    return total


@pytest.mark.parametrize("ell, tau", [(2.0, 0.1), (-1.0, 0.05), (0.5, 0.1), (0.0, 0.3)])
def test_binary_concrete_density_integrates_to_one_small_tau(ell, tau):
    """At small tau most of the mass lies within float spacing of x = 1, where x cannot carry it; use the
    symmetry 1 - X ~ BinConcrete(-ell, tau) (tested below): int_0^1 p_ell = int_0^(1/2) p_ell + int_0^(1/2) p_-ell."""
    total = _binary_lower_half(ell, tau) + _binary_lower_half(-ell, tau)
    assert abs(total - 1.0) < 1e-9, total


@given(st.floats(0.5, 1.0, exclude_max=True), moderate, taus)
def test_binary_concrete_density_symmetry(x, ell, tau):
    """p_ell(x) = p_-ell(1 - x), checked where 1 - x is exact (x >= 1/2)."""
    a = R.binary_concrete_log_density(x, ell, tau)
    b = R.binary_concrete_log_density(1.0 - x, -ell, tau)
    assert_twin(a, b, rtol=1e-14, scale=abs(ell) + (tau + 2) * (abs(math.log(x)) + abs(math.log1p(-x))) + 1)


CONCRETE2_PARAMS = [((0.0, 0.0), 1.0), ((1.0, -0.5), 0.5), ((2.0, 0.0), 0.1), ((-1.0, 1.0), 0.05), ((0.3, 0.0), 3.0)]


@pytest.mark.parametrize("logits, tau", CONCRETE2_PARAMS)
def test_concrete_density_k2_integrates_to_one(logits, tau):
    """K = 2: int p(x1, 1 - x1) dx1 = 1, in t = log(x1 / x2), x = (expit(t), expit(-t)) (both accurate)."""

    def f(t):
        x = np.exp([special.log_expit(t), special.log_expit(-t)])
        return math.exp(R.concrete_log_density(x, logits, tau)) * x[0] * x[1]

    centre = (logits[0] - logits[1]) / tau
    lo, hi = max(-740.0, centre - 60 / tau), min(740.0, centre + 60 / tau)  # logistic tails beyond: < 1e-26
    points = [p for p in centre + np.array([-20, -5, 0, 5, 20]) / tau if lo < p < hi]
    total, _ = integrate.quad(f, lo, hi, points=points, limit=500, epsabs=1e-14)
    assert abs(total - 1.0) < 1e-9, total


def _s_box(logits, half_width=40.0):
    """Integration box for s_k = tau log(x_k / x_K) = l_k - l_K + G_k - G_K (k < K), whose law is free of tau;
    outside centre +/- 40 the (logistic-tailed) mass is below 1e-16."""
    centre = np.asarray(logits[:-1], dtype=np.float64) - logits[-1]
    return centre - half_width, centre + half_width


def _log_point(s, tau):
    """y = log softmax((s, 0) / tau) for points s of shape (m, K-1): the log-point of the simplex."""
    t = np.concatenate([s, np.zeros((s.shape[0], 1))], axis=1) / tau
    return special.log_softmax(t, axis=1)


def _cubature(f, a, b):
    res = integrate.cubature(f, a, b, rtol=1e-10, atol=1e-13)
    assert res.status == "converged"
    return float(res.estimate)


CONCRETE3_PARAMS = [((0.0, 0.0, 0.0), 1.0), ((1.0, -0.5, 0.3), 0.5), ((2.0, 0.0, -1.0), 0.2), ((0.5, 1.0, 0.0), 2.0)]


@pytest.mark.parametrize("logits, tau", CONCRETE3_PARAMS)
def test_concrete_density_k3_integrates_to_one(logits, tau):
    """K = 3: int over the 2-simplex of p(x) dx1 dx2 = 1, by scipy cubature in s = tau log(x_k / x_3):
    dx1 dx2 = x1 x2 x3 / tau^2 ds1 ds2."""

    def f(s):
        y = _log_point(s, tau)
        return np.exp(R.concrete_log_density(np.exp(y), logits, tau) + y.sum(axis=1) - 2 * math.log(tau))

    total = _cubature(f, *_s_box(logits))
    assert abs(total - 1.0) < 1e-9, total


EXP_PARAMS = [
    ((0.0, 0.0, 0.0), 1.0),
    ((1.0, -0.5, 0.3), 0.5),
    ((2.0, 0.0, -1.0), 0.2),
    ((0.5, 1.0, 0.0), 2.0),
    ((50.0, -50.0, 0.0), 0.01),
    ((0.0, 1.0), 0.1),
    ((50.0, -50.0), 0.01),
]


def _exp_concrete_integrals(logits, tau):
    """(int p_leb dy, int p_sym e^(-y_K) dy, int p_sym dy) over y_1..y_{K-1}; in s: dy = x_K / tau^(K-1) ds."""
    k = len(logits)
    log_jac = -(k - 1) * math.log(tau)

    def integrand(measure, extra):
        def f(s):
            y = _log_point(np.atleast_2d(s).reshape(-1, k - 1), tau)
            logp = R.exp_concrete_log_density(y, logits, tau, measure=measure)
            return np.exp(logp + log_jac + extra(y))

        return f

    a, b = _s_box(logits)
    plain = lambda y: y[:, -1]  # noqa: E731 - dy = e^(y_K) ds / tau^(K-1)
    against_mu = lambda y: 0.0 * y[:, -1]  # noqa: E731 - e^(-y_K) dy = ds / tau^(K-1)
    return (
        _cubature(integrand("lebesgue", plain), a, b),
        _cubature(integrand("symmetric", against_mu), a, b),
        _cubature(integrand("symmetric", plain), a, b),
    )


def _expected_last_coordinate(logits, tau):
    """E[X_K] from the noise alone (no density code): exact 1/K for equal logits, 1-D quadrature over the
    logistic L = G_1 - G_2 for K = 2, 3-D cubature over the Gumbel noise for K = 3."""
    ell = np.asarray(logits, dtype=np.float64)
    k = ell.size
    if np.all(ell == ell[0]):
        return 1.0 / k
    if k == 2:
        f = lambda v: special.expit(-(ell[0] - ell[1] + v) / tau) * special.expit(v) * special.expit(-v)  # noqa
        return integrate.quad(f, -60, 60, points=[-(ell[0] - ell[1])], limit=200, epsabs=1e-14)[0]

    def f(g):
        return special.softmax((ell + g) / tau, axis=1)[:, -1] * np.exp((-g - np.exp(-g)).sum(axis=1))

    return float(integrate.cubature(f, [-4.5] * 3, [40.0] * 3, rtol=1e-8, atol=1e-12).estimate)


@pytest.mark.parametrize("logits, tau", EXP_PARAMS)
def test_exp_concrete_density_measures(logits, tau):
    """'lebesgue' integrates to 1 against dy_1..dy_{K-1}; 'symmetric' integrates to 1 against e^(-y_K) dy,
    and to E[X_K] (not 1) against plain dy -- E[X_K] computed independently from the noise."""
    leb, sym_mu, sym_dy = _exp_concrete_integrals(logits, tau)
    expected = _expected_last_coordinate(logits, tau)
    numbers = (f"ExpConcrete logits={logits} tau={tau}: int p_leb dy = {leb:.12f}, "
               f"int p_sym e^-yK dy = {sym_mu:.12f}, int p_sym dy = {sym_dy:.12g} (E[X_K] = {expected})")
    assert abs(leb - 1.0) < 1e-9, numbers
    assert abs(sym_mu - 1.0) < 1e-9, numbers
    assert abs(sym_dy - 1.0) > 0.2, numbers  # far from 1: the quoted formula is not a density w.r.t. dy
    assert abs(sym_dy - expected) < 1e-8, numbers


# ---------------------------------------------------------------- densities vs sampler histograms

ALPHA = 1e-3  # level of every chi-square test below (fixed seeds: deterministic in CI)
N_SAMPLES = 20_000


def _chi_square_pvalue(observed, probs):
    """Pearson chi-square of counts against bin probabilities (which must already sum to 1)."""
    assert abs(probs.sum() - 1.0) < 1e-7, probs.sum()
    expected = probs / probs.sum() * observed.sum()
    assert expected.min() >= 5, expected.min()
    return stats.chisquare(observed, expected).pvalue


def _interval_mass(logpdf, a, b, tau):
    """int_a^b p(x) dx on (0, 1); bins touching 0 or 1 by QAWS with the x^(tau-1) / (1-x)^(tau-1) weight."""
    if a == 0.0:
        f = lambda x: math.exp(logpdf(x) + (1 - tau) * math.log(x)) if x > 0 else np.nan  # noqa: E731
        g = lambda x: f(x) if x > 0 else f(1e-300)  # noqa: E731 - QAWS may touch the endpoint
        return integrate.quad(g, a, b, weight="alg", wvar=(tau - 1, 0.0), epsabs=1e-12, limit=200)[0]
    if b == 1.0:
        f = lambda x: math.exp(logpdf(x) + (1 - tau) * math.log1p(-x)) if x < 1 else np.nan  # noqa: E731
        g = lambda x: f(x) if x < 1 else f(1 - EPS / 2)  # noqa: E731
        return integrate.quad(g, a, b, weight="alg", wvar=(0.0, tau - 1), epsabs=1e-12, limit=200)[0]
    return integrate.quad(lambda x: math.exp(logpdf(x)), a, b, epsabs=1e-12, limit=200)[0]


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("ell, tau, seed", [(0.8, 0.5, 12345), (-1.0, 2.0, 12346)])
def test_binary_concrete_histogram_matches_density(ell, tau, seed):
    """Samples sigma_tau(ell + logistic) binned on 20 equal bins of [0, 1] vs the density integrated over
    each bin; chi-square at alpha = 1e-3."""
    u = np.random.default_rng(seed).random(N_SAMPLES)
    x = R.binary_concrete_sample(ell, tau, u)
    edges = np.linspace(0.0, 1.0, 21)
    observed = np.histogram(x, edges)[0]
    logpdf = lambda v: float(R.binary_concrete_log_density(v, ell, tau))  # noqa: E731
    probs = np.array([_interval_mass(logpdf, a, b, tau) for a, b in zip(edges[:-1], edges[1:])])
    assert _chi_square_pvalue(observed, probs) > ALPHA


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_concrete_k2_histogram_matches_density():
    """K = 2 via x_1: concrete_sample binned on 20 equal bins vs concrete_log_density((x1, 1 - x1))."""
    logits, tau = np.array([0.3, -0.5]), 0.6
    u = np.random.default_rng(12347).random((N_SAMPLES, 2))
    x1 = R.concrete_sample(logits, tau, u)[:, 0]
    edges = np.linspace(0.0, 1.0, 21)
    observed = np.histogram(x1, edges)[0]
    logpdf = lambda v: float(R.concrete_log_density([v, 1.0 - v], logits, tau))  # noqa: E731
    probs = np.array([_interval_mass(logpdf, a, b, tau) for a, b in zip(edges[:-1], edges[1:])])
    assert _chi_square_pvalue(observed, probs) > ALPHA


def _grid_probabilities(log_density_in_s, logits, n_per_axis=6):
    """Probabilities of the cells of a grid in s = tau log(x_k / x_3) (k = 1, 2), the edges at the logistic
    sixths of each marginal (s_k = l_k - l_3 + logistic); the outer cells cut at centre +/- 40 (mass beyond
    < 1e-16).  Returns (inner edges per axis, probabilities of shape (n, n))."""
    q = special.logit(np.arange(1, n_per_axis) / n_per_axis)
    a, b = _s_box(logits)
    centre = (a + b) / 2
    inner = [centre[i] + q for i in range(2)]
    full = [np.concatenate([[a[i]], inner[i], [b[i]]]) for i in range(2)]
    probs = np.empty((n_per_axis, n_per_axis))
    for i in range(n_per_axis):
        for j in range(n_per_axis):
            lo = [full[0][i], full[1][j]]
            hi = [full[0][i + 1], full[1][j + 1]]
            res = integrate.cubature(lambda s: np.exp(log_density_in_s(s)), lo, hi, rtol=1e-8, atol=1e-12)
            probs[i, j] = res.estimate
    return inner, probs


def _grid_counts(s, inner):
    i = np.searchsorted(inner[0], s[:, 0])
    j = np.searchsorted(inner[1], s[:, 1])
    counts = np.zeros((len(inner[0]) + 1, len(inner[1]) + 1))
    np.add.at(counts, (i, j), 1)
    return counts


def test_concrete_k3_histogram_matches_density():
    """K = 3: concrete_sample, mapped to s_k = tau log(x_k / x_3), on a 6 x 6 grid; expected counts from
    concrete_log_density integrated over each cell (dx1 dx2 = x1 x2 x3 / tau^2 ds); chi-square, alpha = 1e-3."""
    logits, tau = np.array([1.0, -0.5, 0.3]), 0.5
    u = np.random.default_rng(12348).random((N_SAMPLES, 3))
    x = R.concrete_sample(logits, tau, u)
    assert (x > 0).all()
    s = tau * (np.log(x[:, :2]) - np.log(x[:, 2:]))

    def log_density_in_s(pts):
        y = _log_point(pts, tau)
        return R.concrete_log_density(np.exp(y), logits, tau) + y.sum(axis=1) - 2 * math.log(tau)

    inner, probs = _grid_probabilities(log_density_in_s, logits)
    assert _chi_square_pvalue(_grid_counts(s, inner).ravel(), probs.ravel()) > ALPHA


@pytest.mark.parametrize("logits, tau, seed", [((2.0, -1.0, 0.0), 0.05, 12349), ((50.0, -50.0, 0.0), 0.01, 12350)])
def test_exp_concrete_k3_histogram_matches_density(logits, tau, seed):
    """ExpConcrete at small tau (where concrete_sample underflows): exp_concrete_sample mapped to
    s_k = tau (y_k - y_3), 6 x 6 grid, expected counts from the 'lebesgue' log-density (dy = x_3 / tau^2 ds);
    chi-square, alpha = 1e-3."""
    logits = np.array(logits)
    u = np.random.default_rng(seed).random((N_SAMPLES, 3))
    y = R.exp_concrete_sample(logits, tau, u)
    assert np.isfinite(y).all()
    s = tau * (y[:, :2] - y[:, 2:])

    def log_density_in_s(pts):
        yy = _log_point(pts, tau)
        return R.exp_concrete_log_density(yy, logits, tau, measure="lebesgue") + yy[:, -1] - 2 * math.log(tau)

    inner, probs = _grid_probabilities(log_density_in_s, logits)
    assert _chi_square_pvalue(_grid_counts(s, inner).ravel(), probs.ravel()) > ALPHA


# ---------------------------------------------------------------- extreme values: tau = 0.01, logits +/-50

needs_mpmath = pytest.mark.skipif(mpmath is None, reason="mpmath not installed")


def _mp_binary(x, ell, tau):
    """The closed form, literally, at 60 digits (x is a float, so 1 - x is exact in mpmath)."""
    with mpmath.workdps(60):
        x, ell, tau = mpmath.mpf(x), mpmath.mpf(ell), mpmath.mpf(tau)
        alpha = mpmath.exp(ell)
        p = tau * alpha * x ** (-tau - 1) * (1 - x) ** (-tau - 1) / (alpha * x ** (-tau) + (1 - x) ** (-tau)) ** 2
        return float(mpmath.log(p))


def _mp_concrete(log_x, logits, tau):
    """log of (K-1)! tau^(K-1) prod_k alpha_k x_k^(-tau-1) / (sum_i alpha_i x_i^(-tau))^K at 60 digits, from
    log x (so x = exp(log x) cannot underflow); returns (log p_x, sum_k log x_k, log x_K)."""
    with mpmath.workdps(60):
        k = len(log_x)
        x = [mpmath.exp(mpmath.mpf(v)) for v in log_x]
        alpha = [mpmath.exp(mpmath.mpf(v)) for v in logits]
        tau = mpmath.mpf(tau)
        num = mpmath.factorial(k - 1) * tau ** (k - 1)
        for a, xi in zip(alpha, x):
            num *= a * xi ** (-tau - 1)
        den = mpmath.fsum(a * xi ** (-tau) for a, xi in zip(alpha, x)) ** k
        return float(mpmath.log(num / den)), float(mpmath.fsum(mpmath.mpf(v) for v in log_x)), float(log_x[-1])


@needs_mpmath
@pytest.mark.parametrize("ell", [-50.0, 0.0, 50.0])
def test_binary_concrete_log_density_extreme_vs_mpmath(ell):
    tau = 0.01
    xs = np.array([1e-300, 1e-20, 1e-3, 0.25, 0.5, 0.75, 1 - 1e-3, 1 - 1e-12, 1 - EPS / 2])
    got = R.binary_concrete_log_density(xs, ell, tau)
    assert np.isfinite(got).all()
    want = np.array([_mp_binary(x, ell, tau) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-13)


@needs_mpmath
@pytest.mark.parametrize("logits", [(50.0, -50.0, 0.0), (-50.0, 50.0, 0.0), (50.0, 50.0, -50.0)])
def test_concrete_log_densities_extreme_vs_mpmath(logits):
    """tau = 0.01, logits +/-50: Concrete at representable points, ExpConcrete at sampler output (where the
    Concrete sample is exactly 0 in places), both against mpmath; 'lebesgue' = log p_x + sum_{k<K} log x_k,
    'symmetric' = log p_x + sum_k log x_k (the Jacobians of x -> y)."""
    tau = 0.01
    points = np.array([[1 / 3, 1 / 3, 1 / 3], [1e-300, 0.5, 0.5], [1 - 1e-6, 5e-7, 5e-7], [0.2, 1e-12, 0.8 - 1e-12]])
    got = R.concrete_log_density(points, logits, tau)
    assert np.isfinite(got).all()
    want = np.array([_mp_concrete(np.log(p), logits, tau)[0] for p in points])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-12)

    u = np.random.default_rng(12351).random((8, 3))
    x = R.concrete_sample(logits, tau, u)
    y = R.exp_concrete_sample(logits, tau, u)
    assert (x == 0).any() and np.isfinite(y).all() and not np.isnan(x).any()
    np.testing.assert_allclose(np.exp(y), x, rtol=1e-12, atol=0)
    sym = R.exp_concrete_log_density(y, logits, tau, measure="symmetric")
    leb = R.exp_concrete_log_density(y, logits, tau, measure="lebesgue")
    assert np.isfinite(sym).all() and np.isfinite(leb).all()
    ref = np.array([_mp_concrete(row, logits, tau) for row in y])
    np.testing.assert_allclose(sym, ref[:, 0] + ref[:, 1], rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(leb, ref[:, 0] + ref[:, 1] - ref[:, 2], rtol=1e-13, atol=1e-10)


# Overflow to +/-inf is intended here; NumPy scalars warn about it only under NUMBA_DISABLE_JIT=1.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_maps_saturate_without_nan():
    tau = 0.01
    x = np.array([-INF, -1e300, -50.0, -1e-300, 0.0, 1e-300, 50.0, 1e300, INF])
    s = R.sigmoid_tau(x, tau)
    np.testing.assert_array_equal(s[[0, 1, 2]], 0.0)
    np.testing.assert_array_equal(s[[6, 7, 8]], 1.0)
    gx, gt = R.sigmoid_tau_vjp(x, 1e-300, np.ones_like(x))  # |x| > ~1e8: x / tau = +/-inf
    assert np.isfinite(gx).all() and np.isfinite(gt).all()
    np.testing.assert_array_equal(gx[[0, 1, 7, 8]], 0.0)
    np.testing.assert_array_equal(gt[[0, 1, 7, 8]], 0.0)

    rows = np.array(
        [[50.0, -50.0, 0.0], [1e300, -1e300, 0.0], [-INF, 3.0, -INF], [INF, 0.0, INF], [-1e308, 1e308, 0.0]]
    )
    p = R.softmax_tau(rows, tau)
    assert not np.isnan(p).any()
    np.testing.assert_array_equal(p, [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 0, 0.5], [0, 1, 0]])
    gx, gt = R.softmax_tau_vjp(rows, tau, np.arange(15.0).reshape(5, 3))
    assert np.isfinite(gx).all() and np.isfinite(gt).all()

    b = R.binary_concrete_sample([50.0, -50.0, INF, -INF], tau, [0.5, 0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b, [1.0, 0.0, 1.0, 0.0])  # infinite logits win over boundary uniforms
    ys = R.exp_concrete_sample([INF, 0.0, INF], tau, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(ys, [-math.log(2), -INF, -math.log(2)])


# ---------------------------------------------------------------- closed forms (tau = 1, K = 2)


@given(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), st.floats(-20, 20))
def test_binary_concrete_tau_one_closed_form(x, ell):
    """tau = 1: X = sigma(ell + L) has p(x) = alpha / (alpha (1 - x) + x)^2 and CDF x / (x + alpha (1 - x))."""
    got = R.binary_concrete_log_density(x, ell, 1.0)
    want = ell - 2 * np.logaddexp(ell + math.log1p(-x), math.log(x))
    assert_twin(got, want, rtol=1e-13, scale=abs(ell) + abs(math.log(x)) + abs(math.log1p(-x)))


def test_tau_one_zero_logit_is_uniform():
    """ell = 0, tau = 1: X = sigma(logit U) = U, density 1 on (0, 1); Concrete K = 2 likewise; ExpConcrete
    K = 2 (y = log x): p_leb(y1) = x1 = e^(y1), p_sym = x1 x2."""
    u = np.random.default_rng(12352).random(50)
    np.testing.assert_allclose(R.binary_concrete_sample(0.0, 1.0, u), u, rtol=1e-14)
    x = np.array([1e-200, 1e-5, 0.3, 0.5, 0.9])
    np.testing.assert_allclose(R.binary_concrete_log_density(x, 0.0, 1.0), 0.0, atol=1e-15)
    pts = np.stack([x, 1 - x], axis=-1)
    np.testing.assert_allclose(R.concrete_log_density(pts, [0.0, 0.0], 1.0), 0.0, atol=1e-15)
    y = np.log(pts)
    leb = R.exp_concrete_log_density(y, [0.0, 0.0], 1.0, "lebesgue")
    np.testing.assert_allclose(leb, y[:, 0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(R.exp_concrete_log_density(y, [0.0, 0.0], 1.0), y.sum(axis=1), rtol=1e-14, atol=1e-15)


@given(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), moderate, moderate, taus)
def test_concrete_k2_is_binary_concrete_of_logit_difference(x1, l1, l2, tau):
    """Concrete((l1, l2), tau) at (x1, 1 - x1) = BinConcrete(l1 - l2, tau) at x1, and the samplers agree
    (G1 - G2 is logistic, but from two uniforms: compare the maps, not the noise)."""
    x = np.array([x1, 1.0 - x1])
    if x[1] <= 0 or abs(x.sum() - 1) > 1e-15:
        return
    a = R.concrete_log_density(x, [l1, l2], tau)
    b = R.binary_concrete_log_density(x1, l1 - l2, tau)
    scale = abs(l1) + abs(l2) + (tau + 2) * (abs(math.log(x1)) + abs(math.log1p(-x1))) + 1
    # x[1] = fl(1 - x1) carries a relative rounding error eps / (1 - x1) for x1 < 1/2 (density slope tau + 1)
    assert_twin(a, b, rtol=1e-13, scale=scale)
    np.testing.assert_allclose(R.softmax_tau([l1, l2], tau)[0], R.sigmoid_tau(l1 - l2, tau), rtol=1e-13, atol=1e-300)


# ---------------------------------------------------------------- bad input


BAD_TAUS = [0.0, -1.0, math.nan, INF, -INF, [1.0, 2.0], "1", True, None]
SIMPLEX = np.array([0.2, 0.3, 0.5])


@pytest.mark.parametrize("tau", BAD_TAUS)
@pytest.mark.parametrize(
    "call",
    [
        lambda t: R.sigmoid_tau([0.0], t),
        lambda t: R.sigmoid_tau_vjp([0.0], t, 1.0),
        lambda t: R.softmax_tau([0.0, 1.0], t),
        lambda t: R.softmax_tau_vjp([0.0, 1.0], t, 1.0),
        lambda t: R.binary_concrete_sample(0.0, t, 0.5),
        lambda t: R.concrete_sample([0.0, 1.0], t, [0.5, 0.5]),
        lambda t: R.exp_concrete_sample([0.0, 1.0], t, [0.5, 0.5]),
        lambda t: R.binary_concrete_log_density(0.5, 0.0, t),
        lambda t: R.concrete_log_density(SIMPLEX, [0.0, 1.0, 2.0], t),
        lambda t: R.exp_concrete_log_density(np.log(SIMPLEX), [0.0, 1.0, 2.0], t),
    ],
)
def test_bad_tau(call, tau):
    with pytest.raises(ValueError, match=r"^tau\b"):
        call(tau)


BAD_CALLS = [
    ("x", lambda: R.sigmoid_tau([0.0, math.nan], 1.0)),
    ("x", lambda: R.sigmoid_tau("abc", 1.0)),
    ("cotangent", lambda: R.sigmoid_tau_vjp([0.0, 1.0], 1.0, [1.0, 2.0, 3.0])),
    ("cotangent", lambda: R.sigmoid_tau_vjp([0.0, 1.0], 1.0, [1.0, math.nan])),
    ("cotangent", lambda: R.softmax_tau_vjp([0.0, 1.0], 1.0, [1.0, INF])),
    ("x", lambda: R.sigmoid_tau_vjp([math.nan], 1.0, 1.0)),
    ("x", lambda: R.softmax_tau(1.0, 1.0)),
    ("x", lambda: R.softmax_tau(np.zeros((2, 0)), 1.0)),
    ("x", lambda: R.softmax_tau([[0.0, 1.0], [-INF, -INF]], 1.0)),
    ("x", lambda: R.softmax_tau([0.0, math.nan], 1.0)),
    ("x", lambda: R.softmax_tau_vjp([-INF, -INF], 1.0, 1.0)),
    ("logits", lambda: R.binary_concrete_sample([0.0, math.nan], 1.0, [0.5, 0.5])),
    ("logits", lambda: R.binary_concrete_sample([0.0, 1.0, 2.0], 1.0, [0.5, 0.5])),
    ("u", lambda: R.binary_concrete_sample(0.0, 1.0, [0.5, 1.5])),
    ("u", lambda: R.binary_concrete_sample(0.0, 1.0, [-0.1])),
    ("u", lambda: R.binary_concrete_sample(0.0, 1.0, [math.nan])),
    ("logits", lambda: R.concrete_sample([0.0, 1.0, 2.0], 1.0, [[0.5, 0.5]])),
    ("logits", lambda: R.concrete_sample([[0.0, 1.0]] * 3, 1.0, [[0.5, 0.5]] * 2)),
    ("logits", lambda: R.concrete_sample([-INF, -INF], 1.0, [0.5, 0.5])),
    ("logits", lambda: R.exp_concrete_sample([0.0, math.nan], 1.0, [0.5, 0.5])),
    ("logits", lambda: R.exp_concrete_sample(0.0, 1.0, [0.5, 0.5])),
    ("u", lambda: R.exp_concrete_sample([0.0, 1.0], 1.0, [0.5, 2.0])),
    ("x", lambda: R.binary_concrete_log_density(0.0, 0.0, 1.0)),
    ("x", lambda: R.binary_concrete_log_density(1.0, 0.0, 1.0)),
    ("x", lambda: R.binary_concrete_log_density([0.5, 1.5], 0.0, 1.0)),
    ("x", lambda: R.binary_concrete_log_density(math.nan, 0.0, 1.0)),
    ("logits", lambda: R.binary_concrete_log_density(0.5, math.nan, 1.0)),
    ("logits", lambda: R.binary_concrete_log_density([0.5, 0.5], [0.0, 1.0, 2.0], 1.0)),
    ("x", lambda: R.concrete_log_density([0.0, 0.5, 0.5], [0.0, 0.0, 0.0], 1.0)),
    ("x", lambda: R.concrete_log_density([0.2, 0.3, 0.6], [0.0, 0.0, 0.0], 1.0)),
    ("x", lambda: R.concrete_log_density([-0.2, 0.6, 0.6], [0.0, 0.0, 0.0], 1.0)),
    ("x", lambda: R.concrete_log_density([1.0], [0.0], 1.0)),
    ("x", lambda: R.concrete_log_density(0.5, 0.0, 1.0)),
    ("x", lambda: R.concrete_log_density([0.5, math.nan], [0.0, 0.0], 1.0)),
    ("logits", lambda: R.concrete_log_density(SIMPLEX, [0.0, 0.0], 1.0)),
    ("logits", lambda: R.concrete_log_density([SIMPLEX] * 2, [[0.0, 0.0, 0.0]] * 3, 1.0)),
    ("logits", lambda: R.concrete_log_density(SIMPLEX, [0.0, math.nan, 0.0], 1.0)),
    ("logits", lambda: R.concrete_log_density(SIMPLEX, [-INF, -INF, -INF], 1.0)),
    ("y", lambda: R.exp_concrete_log_density(SIMPLEX, [0.0, 0.0, 0.0], 1.0)),
    ("y", lambda: R.exp_concrete_log_density(np.log(SIMPLEX) + 1e-8, [0.0, 0.0, 0.0], 1.0)),
    ("y", lambda: R.exp_concrete_log_density([-INF, 0.0], [0.0, 0.0], 1.0)),
    ("y", lambda: R.exp_concrete_log_density([math.nan, 0.0], [0.0, 0.0], 1.0)),
    ("y", lambda: R.exp_concrete_log_density([0.0], [0.0], 1.0)),
    ("logits", lambda: R.exp_concrete_log_density(np.log(SIMPLEX), [0.0, 0.0], 1.0)),
    ("measure", lambda: R.exp_concrete_log_density(np.log(SIMPLEX), [0.0, 0.0, 0.0], 1.0, measure="Lebesgue")),
    ("measure", lambda: R.exp_concrete_log_density(np.log(SIMPLEX), [0.0, 0.0, 0.0], 1.0, measure=None)),
    ("measure", lambda: R.exp_concrete_log_density(np.log(SIMPLEX), [0.0, 0.0, 0.0], 1.0, measure=1)),
]


@pytest.mark.parametrize("name, call", BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, call):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


def test_infinite_logits_are_legal():
    """+/-inf logits are deterministic outcomes: samplers give the outcome, densities give -inf (a point mass
    has no density on the open interval / simplex), maps and VJPs stay NaN-free."""
    assert R.binary_concrete_log_density(0.5, INF, 1.0) == -INF
    assert R.binary_concrete_log_density(0.5, -INF, 1.0) == -INF
    assert R.concrete_log_density(SIMPLEX, [0.0, -INF, 1.0], 0.5) == -INF
    assert R.concrete_log_density(SIMPLEX, [INF, 0.0, 1.0], 0.5) == -INF
    assert R.exp_concrete_log_density(np.log(SIMPLEX), [-INF, 0.0, 1.0], 0.5, "lebesgue") == -INF
    x = R.concrete_sample([-INF, 0.0, 1.0], 0.5, [[0.3, 0.3, 0.3], [1.0, 0.2, 0.9]])
    assert (x[:, 0] == 0).all() and np.allclose(x.sum(axis=1), 1)
    y = R.exp_concrete_sample([-INF, 0.0, 1.0], 0.5, [1.0, 0.2, 0.9])
    assert y[0] == -INF and np.isfinite(y[1:]).all()


# ---------------------------------------------------------------------------
# Input types and messages that show the offending value and its index
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.array([0.5 + 0j, 0.25]), np.array([True, False]), ["0.5", "0.25"]],
                         ids=["complex", "bool", "string"])
def test_relaxation_inputs_of_the_wrong_type_are_type_errors(bad):
    with pytest.raises(TypeError, match=r"\bx\b"):
        R.sigmoid_tau(bad, 0.5)
    with pytest.raises(TypeError, match=r"\bx\b"):
        R.softmax_tau_vjp(bad, 0.5, np.ones(2))
    with pytest.raises(TypeError, match=r"\bu\b"):
        R.binary_concrete_sample(np.zeros(2), 0.5, bad)
    with pytest.raises(TypeError, match=r"\blogits\b"):
        R.concrete_sample(bad, 0.5, np.full(2, 0.5))
    with pytest.raises(TypeError, match=r"\btau\b"):
        R.sigmoid_tau(np.zeros(2), 0.5 + 0j)
    with pytest.raises(TypeError, match="measure must be the string"):
        R.exp_concrete_log_density(np.log([0.5, 0.5]), np.zeros(2), 0.5, measure=1)


def test_simplex_errors_show_the_row_and_its_sum():
    x = np.array([[0.5, 0.5], [0.6, 0.5]])
    with pytest.raises(ValueError, match=r"got sum 1\.1 at index \(1,\)"):
        R.concrete_log_density(x, np.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"got logsumexp .* at index \(1,\)"):
        R.exp_concrete_log_density(np.log(x), np.zeros(2), 0.5)
