"""Relaxation-based estimators: gumbel_softmax, straight_through, gumbel_rao.

* Pathwise checks: at fixed noise each estimate equals central finite differences (in
  the parameters) of the relaxed objective / surrogate it differentiates, with the
  latent noise, the relaxation and the hard sample rebuilt here from SciPy.
* Exact checks: the estimate integrated over its one-dimensional noise with
  ``scipy.integrate.quad`` (split where the integrand jumps or peaks).
* Monte Carlo checks state their seed and z-bound: |z| <= 5 for "no difference"
  (per coordinate, family-wise false alarm < 1e-5 for the sizes here), |z| >= 8 for
  "biased" / "different", one-sided z >= 5 for a variance reduction.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, special

import naive
import refgrad
import refgrad.estimators.relaxed as relaxed
from estimator_checks import assert_mc_biased, central_fd
from refgrad import exact
from refgrad import random as rrandom
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.estimators import ESTIMATORS, estimate
from refgrad.estimators._fused import fused_kernels
from refgrad.estimators.score import sample_breakpoints
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance, Table

FAMILIES = ("bernoulli", "categorical", "gaussian_threshold")
NAMES = ("gumbel_softmax", "straight_through", "gumbel_rao")
TOY = SquaredDistance(np.array([0.499]))
CUBE = FunctionObjective(lambda z: (z**3).sum(axis=1), lambda z: 3.0 * z**2, name="cube")


@pytest.fixture(autouse=True)
def _public_estimate(monkeypatch):
    """estimator_checks calls refgrad.estimate; make it available until the package exports it."""
    if not hasattr(refgrad, "estimate"):
        monkeypatch.setattr(refgrad, "estimate", estimate, raising=False)


# ---------------------------------------------------------------- independent rebuilds (SciPy)


def make_dist(family, params):
    return {"bernoulli": Bernoulli, "categorical": Categorical, "gaussian_threshold": GaussianThreshold}[family](params)


latent_noise = naive.latent_noise
relax = naive.relaxed_sample
hard = naive.hard_sample


def conditional(family, params, b, v):
    """z̃ ~ z | b (refgrad.random, tested there against its own twins); v of shape (n, k, *event)."""
    n, k = v.shape[:2]
    if family == "categorical":
        idx = np.repeat(b.argmax(axis=-1), k, axis=0)
        return rrandom.conditional_gumbel(params, idx, v.reshape((n * k,) + v.shape[2:])).reshape(v.shape)
    bits = np.repeat(b.astype(np.int64), k, axis=0)
    fn = rrandom.conditional_logistic if family == "bernoulli" else rrandom.conditional_normal
    return fn(params, bits, v.reshape(n * k, -1)).reshape(v.shape)


def table_for(family, shape, seed=0):
    d = shape[0]
    K = shape[1] if family == "categorical" else 2
    return Table(np.random.default_rng(seed).normal(size=(K,) * d))


def event_sum(x):
    return x.reshape(x.shape[0], -1).sum(axis=1)


# ---------------------------------------------------------------- strategies

unit = st.floats(0.02, 0.98)
temperature = st.floats(0.3, 3.0)


@st.composite
def problems(draw, k_max=3):
    family = draw(st.sampled_from(FAMILIES))
    if family == "categorical":
        shape = (draw(st.integers(1, 2)), draw(st.integers(2, 4)))
    else:
        shape = (draw(st.integers(1, 3)),)
    params = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3.0, 3.0)))
    n = 2
    u = draw(hnp.arrays(np.float64, (n,) + shape, elements=unit))
    k = draw(st.integers(1, k_max))
    v = draw(hnp.arrays(np.float64, (n, k) + shape, elements=unit))
    tau = draw(temperature)
    kind = draw(st.sampled_from(["table", "square"]))
    f = table_for(family, shape, seed=draw(st.integers(0, 3))) if kind == "table" else SquaredDistance(0.3)
    return family, params, u, v, k, tau, f


def assert_fd_close(g, fd):
    scale = 1.0 + np.max(np.abs(fd))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * scale)


# ---------------------------------------------------------------- registration


def test_registered_specs():
    for name in NAMES:
        spec = ESTIMATORS[name]
        assert spec.unbiased is False
        assert set(spec.families) == set(FAMILIES)
        assert spec.doc and spec.summary
    dist = Categorical(np.array([[0.1, 0.2, 0.3]]))
    assert ESTIMATORS["gumbel_rao"].cost_of(dist, k=7) == 1
    assert ESTIMATORS["gumbel_softmax"].cost_of(dist) == 1
    assert ESTIMATORS["straight_through"].cost_of(dist) == 1
    fields = ESTIMATORS["gumbel_rao"].noise_layout(dist, k=7)
    assert [(f.name, f.shape) for f in fields] == [("u", (1, 3)), ("v", (7, 1, 3))]
    assert [(f.name, f.shape) for f in ESTIMATORS["straight_through"].noise_layout(dist)] == [("u", (1, 3))]


@pytest.mark.parametrize("family", FAMILIES)
def test_breakpoints(family):
    dist = make_dist(family, np.array([[0.3, -0.2]]) if family == "categorical" else np.array([0.3, -1.1]))
    # gumbel_softmax is continuous in u but declares the sample threshold as a split point (steep layer)
    for name, opts in (("gumbel_softmax", {"tau": 1.0}), ("straight_through", {"tau": 1.0}),
                       ("gumbel_rao", {"tau": 1.0, "k": 2})):
        bp = ESTIMATORS[name].breakpoints(dist, **opts)
        if family == "categorical":
            assert bp["u"] == "argmax"
        else:
            np.testing.assert_array_equal(bp["u"], sample_breakpoints(dist))
        if name == "gumbel_rao":
            assert bp["v"] is None


# ---------------------------------------------------------------- pathwise: equal to finite differences


@given(problems())
def test_gumbel_softmax_is_fd_of_relaxed_objective(problem):
    family, params, u, _, _, tau, f = problem
    g = estimate("gumbel_softmax", make_dist(family, params), f, noise={"u": u}, tau=tau)
    eps = latent_noise(family, u)
    fd = central_fd(lambda phi: f.value(relax(family, phi[None] + eps, tau)), params)
    assert_fd_close(g, fd)


@given(problems())
def test_straight_through_is_fd_of_surrogate(problem):
    # surrogate ∇f(b) · relaxed(φ) with the hard sample b (and so ∇f(b)) held at its value at φ0
    family, params, u, _, _, tau, f = problem
    g = estimate("straight_through", make_dist(family, params), f, noise={"u": u}, tau=tau)
    c = f.grad(hard(family, params, u))
    eps = latent_noise(family, u)
    fd = central_fd(lambda phi: event_sum(c * relax(family, phi[None] + eps, tau)), params)
    assert_fd_close(g, fd)


@given(problems())
def test_gumbel_rao_identity_is_fd_of_surrogate(problem):
    # derivative="identity": z̃_j = φ + G̃_j with G̃_j = z̃_j(φ0) − φ0 held fixed
    family, params, u, v, k, tau, f = problem
    g = estimate("gumbel_rao", make_dist(family, params), f, noise={"u": u, "v": v}, tau=tau, k=k)
    b = hard(family, params, u)
    c = f.grad(b)[:, None]
    noise = conditional(family, params, b, v) - params
    fd = central_fd(lambda phi: event_sum(np.mean(c * relax(family, phi + noise, tau), axis=1)), params)
    assert_fd_close(g, fd)


@given(problems())
def test_gumbel_rao_total_is_fd_of_conditional_surrogate(problem):
    # derivative="total": z̃_j(φ, b, v_j) differentiated through the conditioning
    family, params, u, v, k, tau, f = problem
    g = estimate("gumbel_rao", make_dist(family, params), f, noise={"u": u, "v": v}, tau=tau, k=k, derivative="total")
    b = hard(family, params, u)
    c = f.grad(b)[:, None]
    fd = central_fd(
        lambda phi: event_sum(np.mean(c * relax(family, conditional(family, phi, b, v), tau), axis=1)), params
    )
    assert_fd_close(g, fd)


@pytest.mark.parametrize("family", FAMILIES)
def test_straight_through_equals_gumbel_softmax_for_linear_f(family):
    # ∇f is constant, so f at b or at the relaxed sample gives the same estimate sample by sample
    params = np.array([[0.3, -0.4, 1.1]]) if family == "categorical" else np.array([0.3, -0.4])
    dist = make_dist(family, params)
    f = Linear(np.random.default_rng(1).normal(size=params.shape))
    noise = ESTIMATORS["straight_through"].draw_noise(dist, 50, 3)
    np.testing.assert_array_equal(
        estimate("straight_through", dist, f, noise=noise, tau=0.7),
        estimate("gumbel_softmax", dist, f, noise=noise, tau=0.7),
    )


# ---------------------------------------------------------------- kernels vs NumPy twins


@given(
    hnp.array_shapes(min_dims=3, max_dims=3, max_side=4),
    st.floats(0.05, 5.0),
    st.data(),
)
def test_sigmoid_mean_kernel_matches_twin(shape, tau, data):
    z = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-30.0, 30.0) | st.sampled_from([np.inf, -np.inf])))
    dz = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
    c = data.draw(hnp.arrays(np.float64, (shape[0], shape[2]), elements=st.floats(-10.0, 10.0)))
    got = relaxed._sigmoid_tau_vjp_mean(z, tau, c, dz)
    want = naive.relaxed_sigmoid_tau_vjp_mean(z, tau, c, dz)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


@given(
    hnp.array_shapes(min_dims=4, max_dims=4, max_side=4).filter(lambda s: s[3] >= 2),
    st.floats(0.1, 5.0),
    st.data(),
)
def test_softmax_mean_kernel_matches_twin(shape, tau, data):
    z = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-20.0, 20.0)))
    # some -inf entries (never a whole row) and some rows with a +inf entry
    ninf = data.draw(hnp.arrays(np.bool_, shape))
    ninf[..., 0] = False
    pinf = data.draw(hnp.arrays(np.bool_, shape[:3]))
    z = np.where(ninf, -np.inf, z)
    z[..., 1] = np.where(pinf, np.inf, z[..., 1])
    c = data.draw(hnp.arrays(np.float64, (shape[0], shape[2], shape[3]), elements=st.floats(-5.0, 5.0)))
    got = relaxed._softmax_tau_vjp_mean(z, tau, c)
    want = naive.relaxed_softmax_tau_vjp_mean(z, tau, c)
    # s_q (c_q − c̄) cancels when c_q ≈ c̄: entries near 0 get an absolute bound of a few ulps of |c|/τ
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=8 * np.finfo(float).eps * (1.0 + np.abs(c).max()) / tau)


def test_softmax_mean_kernel_all_minus_inf_row_is_nan():
    z = np.full((1, 1, 1, 3), -np.inf)
    assert np.isnan(relaxed._softmax_tau_vjp_mean(z, 1.0, np.ones((1, 1, 3)))).all()


# ---------------------------------------------------------------- randomness, determinism


@pytest.mark.parametrize("name, options", [("gumbel_softmax", {}), ("straight_through", {"tau": 0.5}),
                                           ("gumbel_rao", {"k": 3}), ("gumbel_rao", {"derivative": "total"})])
@pytest.mark.parametrize("family", FAMILIES)
def test_noise_and_rng_agree_and_seed_reproduces(name, options, family):
    params = np.array([[0.3, -0.4, 1.1], [0.0, 2.0, -1.0]]) if family == "categorical" else np.array([0.3, -0.4])
    dist = make_dist(family, params)
    f = table_for(family, params.shape)
    g1 = estimate(name, dist, f, 40, rng=123, **options)
    g2 = estimate(name, dist, f, 40, rng=np.random.default_rng(123), **options)
    noise = ESTIMATORS[name].draw_noise(dist, 40, 123, **options)
    g3 = estimate(name, dist, f, noise=noise, **options)
    assert g1.shape == (40,) + params.shape and g1.dtype == np.float64
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(g1, g3)
    assert np.isfinite(g1).all()
    assert not np.array_equal(g1, estimate(name, dist, f, 40, rng=124, **options))


@pytest.mark.parametrize("name", NAMES)
def test_noise_u_is_shared_with_reinforce(name):
    # common random numbers: the same u block gives the same hard sample b as reinforce,
    # seen through f(b) (REINFORCE with c = 0 returns f(b) * score(b))
    dist = Bernoulli(np.array([0.4, -1.0]))
    f = Linear(np.array([1.0, 10.0]))
    u = ESTIMATORS[name].draw_noise(dist, 30, 5)["u"]
    b = dist.from_uniforms(u)
    want = (b @ f.weights)[:, None] * dist.score(b)
    np.testing.assert_array_equal(estimate("reinforce", dist, f, noise={"u": u}), want)
    # and the straight-through estimate of a Linear f is w σ_τ'(z), z = ℓ + logit(u): no dependence on b's rule
    if name == "straight_through":
        z = dist.params + special.logit(u)
        want = f.weights * special.expit(z) * special.expit(-z)
        np.testing.assert_allclose(estimate(name, dist, f, noise={"u": u}), want, rtol=1e-13)


# ---------------------------------------------------------------- infinite parameters


@pytest.mark.parametrize("name, options", [("gumbel_softmax", {}), ("straight_through", {}),
                                           ("gumbel_rao", {"k": 2}), ("gumbel_rao", {"k": 2, "derivative": "total"})])
def test_infinite_parameters_give_zero_gradient(name, options):
    for family, params in (
        ("bernoulli", np.array([np.inf, -np.inf, 0.3])),
        ("gaussian_threshold", np.array([np.inf, -np.inf, 0.3])),
        ("categorical", np.array([[np.inf, 0.0, 1.0], [-np.inf, 0.5, 0.0], [np.inf, np.inf, 0.0]])),
    ):
        dist = make_dist(family, params)
        g = estimate(name, dist, table_for(family, params.shape), 25, rng=3, **options)
        assert np.isfinite(g).all(), (family, g)
        if family == "categorical":
            assert (g[:, 0] == 0).all() and (g[:, 1, 0] == 0).all() and (g[:, 2, 2] == 0).all()
            assert (g[:, 1, 1:] != 0).any()
            if name == "gumbel_rao":
                assert (g[:, 2] == 0).all()
            else:  # two +inf categories: the finite problem on them (test_two_infinite_logits_are_the_limit)
                assert (g[:, 2, :2] != 0).any()
        else:
            assert (g[:, :2] == 0).all() and (g[:, 2] != 0).any()



@pytest.mark.parametrize("fused", [True, False], ids=["fused", "batched"])
@pytest.mark.parametrize("name", ["gumbel_softmax", "straight_through"])
def test_two_infinite_logits_are_the_limit(name, fused):
    """A row with several +inf logits is the limit of equal, growing logits: the finite problem on them.

    The latent adds its Gumbel noise to the effective logits (0 on the +inf entries, -inf elsewhere); adding it
    to the +inf logits themselves made the row's relaxation constant and its estimate 0.
    """
    logits = np.array([[np.inf, np.inf, 0.3], [np.inf, 1.0, 0.0], [0.5, -0.2, 0.1]])
    big = np.where(np.isinf(logits), 300.0, logits)
    f = SquaredDistance(np.array([[0.2, 0.9, 0.1], [0.3, 0.3, 0.4], [1.0, 0.0, 0.0]]))
    noise = ESTIMATORS[name].draw_noise(Categorical(logits), 64, rng=5)
    with fused_kernels(fused):
        got = estimate(name, Categorical(logits), f, noise=noise, tau=0.5)
        want = estimate(name, Categorical(big), f, noise=noise, tau=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-250)
    assert (got[:, 0, :2] != 0).all() and (got[:, 0, 2] == 0).all()
    np.testing.assert_allclose(got[:, 0, 0], -got[:, 0, 1], rtol=1e-12)
    m = exact.moments(name, Categorical(logits[:1]), SquaredDistance(f.target[:1]), tau=0.5)
    m_big = exact.moments(name, Categorical(big[:1]), SquaredDistance(f.target[:1]), tau=0.5)
    np.testing.assert_allclose(m.mean, m_big.mean, rtol=1e-9, atol=1e-15)
    assert abs(m.mean[0, 0]) > 1e-2

# ---------------------------------------------------------------- exact means by quadrature (one bit)


def _break(dist):
    return special.expit(-dist.params[0]) if dist.family == "bernoulli" else special.ndtr(-dist.params[0])


def quad_mean(name, dist, f, **options):
    """E[ĝ] for one bit, integrating the estimate over u split where z = 0 (jump or peak)."""

    def g(u):
        return estimate(name, dist, f, noise={"u": np.array([[u]])}, **options)[0, 0]

    return integrate.quad(g, 0.0, 1.0, points=[_break(dist)], limit=500, epsabs=1e-13, epsrel=1e-12)[0]


def quad_mean_gumbel_rao(dist, f, **options):
    """E[ĝ] = Σ_b q(b) ∫ ĝ(u_b, v) dv with k = 1 (ĝ depends on u only through b)."""
    p0 = _break(dist)
    total = 0.0
    for u_b, q in ((0.5 * p0, p0), (0.5 * (1.0 + p0), 1.0 - p0)):

        def g(v):
            noise = {"u": np.array([[u_b]]), "v": np.array([[[v]]])}
            return estimate("gumbel_rao", dist, f, noise=noise, k=1, **options)[0, 0]

        total += q * integrate.quad(g, 0.0, 1.0, limit=500, epsabs=1e-13, epsrel=1e-12)[0]
    return total


def relaxed_objective(dist, f, tau):
    """E[f(σ_τ(z))] for one bit, by quadrature over u."""
    family = dist.family

    def h(u):
        z = dist.params[0] + latent_noise(family, np.array(u))
        return f.value(np.array([[special.expit(z / tau)]]))[0]

    return integrate.quad(h, 0.0, 1.0, points=[_break(dist)], limit=500, epsabs=1e-14, epsrel=1e-13)[0]


@pytest.mark.parametrize("family", ["bernoulli", "gaussian_threshold"])
@pytest.mark.parametrize("f", [TOY, CUBE], ids=["toy", "cube"])
def test_gumbel_softmax_mean_is_gradient_of_relaxed_objective(family, f):
    # E[ĝ_GS] = d/dφ E[f(σ_τ(z))] exactly: quadrature of the estimate vs FD of the quadrature of f
    tau, phi, h = 0.5, 0.7, 1e-4
    mean = quad_mean("gumbel_softmax", make_dist(family, np.array([phi])), f, tau=tau)
    up = relaxed_objective(make_dist(family, np.array([phi + h])), f, tau)
    down = relaxed_objective(make_dist(family, np.array([phi - h])), f, tau)
    assert abs(mean - (up - down) / (2 * h)) < 1e-7


def test_gumbel_softmax_linear_objective_is_biased_closed_form():
    # f = b: E[ĝ] = ∫ σ'(ℓ + L) p_L(L) dL = density of L1 + L2 at −ℓ;
    # at ℓ = 0, τ = 1 it is ∫ σ'(x)² dx = 1/6,
    # while the true gradient is σ'(0) = 1/4: linear f does NOT make Gumbel-Softmax unbiased
    dist = Bernoulli(np.array([0.0]))
    f = Linear(np.array([1.0]))
    assert abs(quad_mean("gumbel_softmax", dist, f, tau=1.0) - 1.0 / 6.0) < 1e-10
    assert abs(exact.gradient(dist, f)[0] - 0.25) < 1e-15


@pytest.mark.parametrize("logit", [0.0, 0.7])
@pytest.mark.parametrize("f", [TOY, Linear(np.array([1.0])), CUBE], ids=["toy", "linear", "cube"])
def test_gumbel_softmax_bias_vanishes_as_tau_to_zero(logit, f):
    dist = Bernoulli(np.array([logit]))
    target = exact.gradient(dist, f)[0]
    bias = [abs(quad_mean("gumbel_softmax", dist, f, tau=tau) - target) for tau in (1.0, 0.3, 0.1, 0.03, 0.01)]
    assert all(a > b for a, b in zip(bias, bias[1:])), bias
    assert bias[-1] < bias[0] / 15 and bias[-1] < 2e-3, bias


@pytest.mark.parametrize("logit", [0.0, 0.7])
@pytest.mark.parametrize("f, vanishes", [(TOY, True), (Linear(np.array([1.0])), True), (CUBE, False)],
                         ids=["toy", "linear", "cube"])
def test_straight_through_small_tau_limit(logit, f, vanishes):
    # one bit: E[ĝ_ST] → σ'(ℓ) (f'(0) + f'(1)) / 2 as τ → 0, which is the true gradient σ'(ℓ)(f(1) − f(0))
    # when f is at most quadratic in the bit, and is not otherwise (cube: limit 3/2 σ' vs σ')
    dist = Bernoulli(np.array([logit]))
    slope = special.expit(logit) * special.expit(-logit)
    d0, d1 = f.grad(np.array([[0.0]]))[0, 0], f.grad(np.array([[1.0]]))[0, 0]
    limit = slope * 0.5 * (d0 + d1)
    scale = slope * 0.5 * (abs(d0) + abs(d1))
    gaps = [abs(quad_mean("straight_through", dist, f, tau=tau) - limit) for tau in (1.0, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01 * scale, gaps
    bias_of_limit = abs(limit - exact.gradient(dist, f)[0])
    if vanishes:
        assert bias_of_limit < 1e-12
    else:
        assert bias_of_limit > 0.1


@pytest.mark.parametrize("family", ["bernoulli", "gaussian_threshold"])
@pytest.mark.parametrize("phi", [-1.3, 0.0, 0.7])
@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_gumbel_rao_identity_has_straight_through_mean_exactly(family, phi, tau):
    # Rao-Blackwellisation: E[GR] = E[ST] with ∂z̃/∂φ = I; the total derivative changes the mean
    dist = make_dist(family, np.array([phi]))
    f = SquaredDistance(np.array([0.25]))
    st_mean = quad_mean("straight_through", dist, f, tau=tau)
    assert abs(quad_mean_gumbel_rao(dist, f, tau=tau) - st_mean) < 1e-9
    assert abs(quad_mean_gumbel_rao(dist, f, tau=tau, derivative="total") - st_mean) > 0.1 * abs(st_mean)


# ---------------------------------------------------------------- Monte Carlo: bias, Rao-Blackwellisation


def mc_problems():
    rng = np.random.default_rng(7)
    return {
        "bernoulli": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "gaussian_threshold": (GaussianThreshold(np.array([0.3, -0.8])), Table(rng.normal(size=(2, 2)))),
    }


@pytest.mark.parametrize("name", NAMES)
def test_biased_on_toy_problem(name):
    # seed 21, n = 20000, max |z| >= 8 against exact.gradient: f(b) = (b − 0.499)², ℓ = 0.7, τ = 1
    assert_mc_biased(name, Bernoulli(np.array([0.7])), TOY, n=20000, seed=21)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("family", FAMILIES)
def test_biased_on_table_problem(name, family):
    # seed 22, n = 20000, max |z| >= 8 against exact.gradient
    dist, f = mc_problems()[family]
    assert_mc_biased(name, dist, f, n=20000, seed=22)


def test_gumbel_softmax_linear_objective_biased_monte_carlo():
    # seed 23, n = 20000, |z| >= 8: E = 1/6 vs the true 1/4 (see the closed-form test)
    assert_mc_biased("gumbel_softmax", Bernoulli(np.array([0.0])), Linear(np.array([1.0])), n=20000, seed=23)


def _paired(family, derivative, k=10, n=20000, seed=31):
    dist, f = mc_problems()[family]
    noise = ESTIMATORS["gumbel_rao"].draw_noise(dist, n, seed, k=k)
    gr = estimate("gumbel_rao", dist, f, noise=noise, k=k, derivative=derivative)
    st_ = estimate("straight_through", dist, f, noise={"u": noise["u"]})
    return st_, gr


def _z(x):
    return x.mean(axis=0) / (x.std(axis=0, ddof=1) / np.sqrt(x.shape[0]))


@pytest.mark.parametrize("family", FAMILIES)
def test_gumbel_rao_same_mean_as_straight_through(family):
    # seed 31, n = 20000, k = 10: the paired difference ST(u) − GR(u, v) has mean 0, |z| <= 5 per coordinate
    st_, gr = _paired(family, "identity")
    assert np.abs(_z(st_ - gr)).max() <= 5.0


@pytest.mark.parametrize("family", FAMILIES)
def test_gumbel_rao_total_derivative_changes_the_mean(family):
    # seed 31, n = 20000: with the total derivative the paired difference is detected, max |z| >= 8
    st_, gr = _paired(family, "total")
    assert np.abs(_z(st_ - gr)).max() >= 8.0


@pytest.mark.parametrize("family", FAMILIES)
def test_gumbel_rao_reduces_variance(family):
    # seed 31, n = 20000, k = 10: per coordinate, Var(ST) − Var(GR) > 0 with one-sided z >= 5
    # (z of the mean of (ST − mean ST)² − (GR − mean GR)²;
    # exact theory: Var(GR) = Var(ST) − (1 − 1/k) E Var(ST | b))
    st_, gr = _paired(family, "identity")
    diff = (st_ - st_.mean(axis=0)) ** 2 - (gr - gr.mean(axis=0)) ** 2
    assert _z(diff).min() >= 5.0


# ---------------------------------------------------------------- rejection


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("tau", [0.0, -1.0, np.nan, np.inf, "1", True, None, [1.0]])
def test_bad_tau_rejected(name, tau):
    with pytest.raises(ValueError, match="tau"):
        estimate(name, Bernoulli(np.array([0.1])), TOY, 5, rng=0, tau=tau)


@pytest.mark.parametrize("k", [0, -2, 2.5, "3", True, None])
def test_bad_k_rejected(k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        estimate("gumbel_rao", Bernoulli(np.array([0.1])), TOY, 5, rng=0, k=k)


@pytest.mark.parametrize("derivative", ["full", "", None, 1])
def test_bad_derivative_rejected(derivative):
    with pytest.raises(ValueError, match="derivative must be one of"):
        estimate("gumbel_rao", Bernoulli(np.array([0.1])), TOY, 5, rng=0, derivative=derivative)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_and_family_rejected(name):
    with pytest.raises(ValueError, match="unknown option"):
        estimate(name, Bernoulli(np.array([0.1])), TOY, 5, rng=0, temperature=1.0)
    with pytest.raises(ValueError, match="supported families: bernoulli, categorical, gaussian_threshold"):
        estimate(name, Normal(np.array([0.1])), TOY, 5, rng=0)


@pytest.mark.parametrize("name", NAMES)
def test_objective_without_gradient_rejected(name):
    for f in (FunctionObjective(lambda z: z.sum(axis=1)), lambda z: z.sum(axis=1)):
        with pytest.raises(ValueError, match=f"estimator '{name}' needs the gradient"):
            estimate(name, Bernoulli(np.array([0.1, 0.2])), f, 5, rng=0)


def test_gumbel_softmax_needs_relaxed_objective():
    f = FunctionObjective(lambda z: z.sum(axis=1), lambda z: np.ones_like(z), name="vertices only", relaxed_ok=False)
    with pytest.raises(ValueError, match="relaxed_ok=False"):
        estimate("gumbel_softmax", Bernoulli(np.array([0.1])), f, 5, rng=0)
    # straight-through and Gumbel-Rao evaluate ∇f at the hard sample only
    assert np.isfinite(estimate("straight_through", Bernoulli(np.array([0.1])), f, 5, rng=0)).all()


def test_bad_noise_rejected():
    dist = Categorical(np.array([[0.1, 0.2, 0.3]]))
    with pytest.raises(ValueError, match="noise\\['v'\\] must have shape"):
        estimate("gumbel_rao", dist, table_for("categorical", (1, 3)), noise={"u": np.full((4, 1, 3), 0.5),
                                                                             "v": np.full((4, 2, 1, 3), 0.5)}, k=3)
    with pytest.raises(ValueError, match="exactly the keys"):
        estimate("gumbel_rao", dist, table_for("categorical", (1, 3)), noise={"u": np.full((4, 1, 3), 0.5)})
