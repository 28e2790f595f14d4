"""REBAR and RELAX: pathwise terms, hand-derived training gradients, unbiasedness, bias of broken variants,
variance orderings, training, kernels vs NumPy twins, determinism and input checks.

* Pathwise checks: at fixed noise each pathwise term equals central finite differences (in the
  parameters) of the relaxed objective / surrogate evaluated at the same noise, with the latent
  noise and the relaxation rebuilt here from SciPy and the conditional sample z̃(φ, b, v) taken
  from refgrad.random (tested there) at the perturbed φ with b held fixed.
* Monte Carlo checks state seed and bound: |z| <= 5 per coordinate for "unbiased" (family-wise
  false alarm < 1e-5 for the sizes here), max |z| >= 8 for "biased", one-sided z >= 5 for a
  variance ordering (alpha = 2.9e-7), with the gap first proved by an exact computation.
* Exact checks integrate the estimate over (u, v) for one bit with scipy.integrate or use
  refgrad.exact.moments (tanh-sinh quadrature over the declared noise).
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, special

import naive
import refgrad
import refgrad.estimators.rebar as rebar
import refgrad.estimators.relax as relax
import refgrad.estimators.relax_surrogate as relax_surrogate
from estimator_checks import assert_mc_biased, assert_mc_unbiased, central_fd, mc_mean_z
from refgrad import exact
from refgrad import random as rrandom
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import _fused
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.estimators.rebar import optimal_eta, rebar_terms
from refgrad.estimators.relax import RelaxSurrogate, fit_relax
from refgrad.estimators.score import sample_breakpoints
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance, Table

FAMILIES = ("bernoulli", "categorical", "gaussian_threshold")
EPS = np.finfo(np.float64).eps


@pytest.fixture(autouse=True)
def _public_estimate(monkeypatch):
    """estimator_checks calls refgrad.estimate; make sure it is the registry's."""
    if not hasattr(refgrad, "estimate"):
        monkeypatch.setattr(refgrad, "estimate", estimate, raising=False)


def toy(t):
    """The REBAR / RELAX toy: one bit, f(b) = (b − t)²."""
    return SquaredDistance(np.array([t]))


# ---------------------------------------------------------------- independent rebuilds (SciPy)


def make_dist(family, params):
    return {"bernoulli": Bernoulli, "categorical": Categorical, "gaussian_threshold": GaussianThreshold}[family](params)


def latent(family, params, u):
    """z(φ, u) = params + noise(u), noise from SciPy (tests/naive.py)."""
    return params + naive.latent_noise(family, u)


relaxed = naive.relaxed_sample
hard = naive.hard_sample


def conditional(family, params, b, v):
    """z̃(φ, b, v) ~ z | b (refgrad.random, tested there against its own twins)."""
    if family == "categorical":
        return rrandom.conditional_gumbel(params, b.argmax(axis=-1), v)
    fn = rrandom.conditional_logistic if family == "bernoulli" else rrandom.conditional_normal
    return fn(params, b.astype(np.int64), v)


def score(family, params, b):
    """∂ log q(b)/∂φ, from SciPy."""
    if family == "bernoulli":
        return b - special.expit(params)
    if family == "categorical":
        return b - special.softmax(params, axis=-1)
    log_density = -0.5 * params**2 - 0.5 * np.log(2 * np.pi)
    return np.where(b == 1, np.exp(log_density - special.log_ndtr(params)),
                    -np.exp(log_density - special.log_ndtr(-params)))


def table_for(family, shape, seed=0):
    d = shape[0]
    K = shape[1] if family == "categorical" else 2
    return Table(np.random.default_rng(seed).normal(size=(K,) * d))


def event_sum(x):
    return x.reshape(x.shape[0], -1).sum(axis=1)


def assert_fd_close(g, fd):
    scale = 1.0 + np.max(np.abs(fd))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=2e-6 * scale)


# ---------------------------------------------------------------- strategies

unit = st.floats(0.02, 0.98)
temperature = st.floats(0.3, 3.0)
parameter = st.floats(-8.0, 8.0) | st.sampled_from([-8.0, 8.0])


@st.composite
def problems(draw, n=2):
    family = draw(st.sampled_from(FAMILIES))
    if family == "categorical":
        shape = (draw(st.integers(1, 2)), draw(st.integers(2, 4)))
    else:
        shape = (draw(st.integers(1, 3)),)
    params = draw(hnp.arrays(np.float64, shape, elements=parameter))
    u = draw(hnp.arrays(np.float64, (n,) + shape, elements=unit))
    v = draw(hnp.arrays(np.float64, (n,) + shape, elements=unit))
    tau = draw(temperature)
    kind = draw(st.sampled_from(["table", "square"]))
    f = table_for(family, shape, seed=draw(st.integers(0, 3))) if kind == "table" else SquaredDistance(0.3)
    return family, params, u, v, tau, f


def surrogate_for(shape, seed, hidden=3, eta=0.7, tau=0.8):
    return RelaxSurrogate(shape, hidden=hidden, eta=eta, tau=tau, rng=seed)


# ---------------------------------------------------------------- registration, layout, break points


def test_registered_specs():
    for name in ("rebar", "relax"):
        spec = ESTIMATORS[name]
        assert spec.unbiased is True
        assert set(spec.families) == set(FAMILIES)
        assert spec.doc and spec.summary
    dist = Categorical(np.array([[0.1, 0.2, 0.3]]))
    assert ESTIMATORS["rebar"].cost_of(dist) == 3
    assert ESTIMATORS["rebar"].cost_of(dist, eta="optimal") == 3
    assert ESTIMATORS["relax"].cost_of(dist) == 3
    fields = ESTIMATORS["rebar"].noise_layout(dist)
    assert [(f.name, f.shape, f.per_sample) for f in fields] == [("u", (1, 3), True), ("v", (1, 3), True)]
    fields = ESTIMATORS["rebar"].noise_layout(dist, eta="optimal", pilot=7)
    assert [(f.name, f.shape, f.per_sample) for f in fields] == [
        ("u", (1, 3), True), ("v", (1, 3), True), ("pilot_u", (7, 1, 3), False), ("pilot_v", (7, 1, 3), False)]
    assert [f.name for f in ESTIMATORS["relax"].noise_layout(dist)] == ["u", "v"]
    assert ESTIMATORS["rebar"].control_variate is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_breakpoints(family):
    dist = make_dist(family, np.array([[0.3, -0.2]]) if family == "categorical" else np.array([0.3, -1.1]))
    for name, opts in (("rebar", {}), ("rebar", {"eta": "optimal"}), ("relax", {})):
        spec = ESTIMATORS[name]
        bp = spec.breakpoints(dist, **spec.options(dist, **opts))
        if family == "categorical":
            assert bp["u"] == "argmax"
        else:
            np.testing.assert_array_equal(bp["u"], sample_breakpoints(dist))
        assert bp["v"] is None
        if opts:
            assert bp["pilot_u"] is None and bp["pilot_v"] is None


TIE_U = np.array([[0.5], [0.7], [0.2], [0.5], [0.5]])  # rows 0, 3, 4 on the rounded threshold of |φ| < 1e-17


def _off_the_rounding_tie(family, params, u):
    """Rows where u is more than 4 ulp away from the threshold probability P(b = 0).

    b = 1[u > σ(−φ)] (or ≥ Φ(−φ)) and z = φ + noise(u) are two roundings of one event: where u
    sits on the rounded threshold (u = 0.5 and |φ| < 1e-17, where σ(−φ) and Φ(−φ) round to 0.5
    while z = φ ≠ 0) the two may disagree on the sign, an event of probability zero."""
    p0 = special.expit(-params) if family == "bernoulli" else special.ndtr(-params)
    return np.abs(u - p0) > 4 * EPS * np.maximum(u, p0)


@given(problems(n=5))
@example(("gaussian_threshold", np.array([-1.6e-248]), TIE_U, np.full((5, 1), 0.5), 1.0, Table(np.array([0.3, 1.0]))))
@example(("bernoulli", np.array([1e-300]), TIE_U, np.full((5, 1), 0.5), 1.0, SquaredDistance(0.3)))
def test_hard_sample_is_the_threshold_of_the_latent(problem):
    family, params, u, v, tau, f = problem
    parts = rebar._Parts(make_dist(family, params), f, u, v, tau)
    np.testing.assert_array_equal(parts.b, hard(family, params, u))
    np.testing.assert_allclose(parts.z, latent(family, params, u), rtol=1e-13, atol=1e-13)
    if family == "categorical":
        np.testing.assert_array_equal(parts.b, np.eye(params.shape[-1])[np.argmax(parts.z, axis=-1)])
        np.testing.assert_array_equal(parts.cond.z.argmax(axis=-1), parts.b.argmax(axis=-1))
    else:
        threshold = (parts.z > 0) if family == "bernoulli" else (parts.z >= 0)
        clear = _off_the_rounding_tie(family, params, u)
        np.testing.assert_array_equal(parts.b[clear], threshold.astype(float)[clear])
        np.testing.assert_array_equal(parts.b, ((parts.cond.z > 0) | ((parts.cond.z == 0) & (family != "bernoulli")))
                                      .astype(float))


# ---------------------------------------------------------------- pathwise terms = finite differences


@given(problems())
def test_rebar_pathwise_terms_are_fd_of_relaxed_objective(problem):
    family, params, u, v, tau, f = problem
    parts = rebar._Parts(make_dist(family, params), f, u, v, tau)
    # ∂_φ f(σ_τ(z(φ, u)))
    fd_z = central_fd(lambda phi: f.value(relaxed(family, latent(family, phi, u), tau)), params)
    assert_fd_close(parts.path_z, fd_z)
    # ∂_φ f(σ_τ(z̃(φ, b, v))) with b held fixed: includes z̃'s dependence on φ through the conditioning
    b = hard(family, params, u)
    fd_zt = central_fd(lambda phi: f.value(relaxed(family, conditional(family, phi, b, v), tau)), params)
    assert_fd_close(parts.path_zt, fd_zt)


@given(problems(), st.sampled_from([1.0, -0.6, 2.5]))
def test_rebar_estimate_is_assembled_from_fd_terms(problem, eta):
    family, params, u, v, tau, f = problem
    dist = make_dist(family, params)
    g = estimate("rebar", dist, f, noise={"u": u, "v": v}, tau=tau, eta=eta)
    b = hard(family, params, u)
    s = score(family, params, b)
    nd = params.ndim
    f_tilde = f.value(relaxed(family, conditional(family, params, b, v), tau))
    pz = central_fd(lambda phi: f.value(relaxed(family, latent(family, phi, u), tau)), params)
    pzt = central_fd(lambda phi: f.value(relaxed(family, conditional(family, phi, b, v), tau)), params)
    want = (f.value(b) - eta * f_tilde).reshape((-1,) + (1,) * nd) * s + eta * (pz - pzt)
    assert_fd_close(g, want)


@given(problems(), st.integers(0, 3))
def test_relax_pathwise_terms_are_fd_of_surrogate(problem, seed):
    family, params, u, v, tau, f = problem
    sur = surrogate_for(params.shape, seed, tau=tau)
    fwd = relax._Forward(make_dist(family, params), f, sur, u, v)
    b = hard(family, params, u)

    def c_psi(z):  # c_ψ(z) = η f(σ_τ(z)) + r_ψ(σ_τ(z)), relaxation from SciPy
        x = relaxed(family, z, tau)
        return sur.eta * f.value(x) + sur.value(x)

    fd_z = central_fd(lambda phi: c_psi(latent(family, phi, u)), params)
    fd_zt = central_fd(lambda phi: c_psi(conditional(family, phi, b, v)), params)
    assert_fd_close(sur.eta * fwd.parts.path_z + fwd.path_r, fd_z)
    assert_fd_close(sur.eta * fwd.parts.path_zt + fwd.path_rt, fd_zt)
    # and the estimate is [f(b) − c_ψ(z̃)] s + ∂c_ψ(z) − ∂c_ψ(z̃)
    s = score(family, params, b)
    c_tilde = c_psi(conditional(family, params, b, v))
    want = (f.value(b) - c_tilde).reshape((-1,) + (1,) * params.ndim) * s + fd_z - fd_zt
    assert_fd_close(fwd.estimate, want)
    assert_fd_close(estimate("relax", make_dist(family, params), f, noise={"u": u, "v": v}, surrogate=sur), want)


@given(problems(), st.integers(0, 3))
def test_surrogate_control_and_gradient_in_the_latent(problem, seed):
    family, params, u, v, tau, f = problem
    sur = surrogate_for(params.shape, seed, tau=tau)
    z = latent(family, params, u)
    x = relaxed(family, z, tau)
    np.testing.assert_allclose(sur.control(f, z), sur.eta * f.value(x) + sur.value(x), rtol=1e-12, atol=1e-12)
    fd = np.stack([central_fd(lambda zz: sur.control(f, zz[None])[0], z[i]) for i in range(len(z))])
    assert_fd_close(sur.control_grad(f, z), fd)


# ---------------------------------------------------------------- fit_relax: hand-derived ∂ĝ/∂(ψ, η, τ)


def _perturbed(sur, name, index, h):
    if name == "tau":  # derivative in log τ
        return sur.replace(tau=sur.tau * np.exp(h))
    value = np.array(getattr(sur, name), dtype=float)
    if value.ndim == 0:
        return sur.replace(**{name: float(value) + h})
    value[index] += h
    return sur.replace(**{name: value})


def fd_params(fun, sur, h=1e-6):
    """Central differences of fun(surrogate) -> float in every parameter (log τ for τ)."""
    out = {}
    for name in ("w1", "b1", "w2", "b2", "eta", "tau"):
        shape = np.shape(getattr(sur, name))
        grad = np.zeros(shape)
        for idx in np.ndindex(shape):
            grad[idx] = (fun(_perturbed(sur, name, idx, h)) - fun(_perturbed(sur, name, idx, -h))) / (2 * h)
        out["log_tau" if name == "tau" else name] = grad
    return out


@settings(max_examples=10)
@given(problems(n=3), st.integers(0, 3), st.data())
def test_training_gradient_is_fd_of_estimate(problem, seed, data):
    family, params, u, v, tau, f = problem
    dist = make_dist(family, params)
    sur = surrogate_for(params.shape, seed, tau=tau, eta=data.draw(st.floats(-2.0, 2.0)))
    w = data.draw(hnp.arrays(np.float64, u.shape, elements=st.floats(-1.0, 1.0)))
    grads = relax._param_vjp(relax._Forward(dist, f, sur, u, v), w, ("psi", "eta", "tau"))
    fd = fd_params(lambda s: float(np.sum(w * relax._Forward(dist, f, s, u, v).estimate)), sur)
    for name, value in fd.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-5, atol=1e-6 * (1.0 + np.abs(value).max()),
                                   err_msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_second_moment_gradient_is_fd_of_batch_loss(family):
    rng = np.random.default_rng(7)
    params = np.array([[0.4, -1.0, 0.2]]) if family == "categorical" else np.array([0.4, -1.0])
    dist = make_dist(family, params)
    f = table_for(family, params.shape, seed=2)
    u, v = rng.random((6,) + params.shape), rng.random((6,) + params.shape)
    sur = surrogate_for(params.shape, 4)
    g, loss, grads = relax._second_moment_grad(dist, f, sur, u, v, ("psi", "eta", "tau"))
    assert loss == pytest.approx(np.mean(event_sum(g**2)), rel=1e-14)
    fd = fd_params(lambda s: relax._second_moment_grad(dist, f, s, u, v, ())[1], sur)
    for name, value in fd.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    # the trained subset only
    only = relax._second_moment_grad(dist, f, sur, u, v, ("eta",))[2]
    assert set(only) == {"eta"} and only["eta"] == grads["eta"]


# ---------------------------------------------------------------- relax with r ≡ 0 is rebar


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("eta, tau", [(1.0, 0.5), (-0.7, 2.0), (3.0, 0.3)])
def test_relax_with_zero_surrogate_is_rebar_exactly(family, eta, tau):
    params = np.array([[0.3, -0.4, 1.1], [0.0, 2.0, -1.0]]) if family == "categorical" else np.array([0.3, -0.4])
    dist = make_dist(family, params)
    f = table_for(family, params.shape)
    noise = ESTIMATORS["relax"].draw_noise(dist, 200, 11)
    g_relax = estimate("relax", dist, f, noise=noise, surrogate=RelaxSurrogate.zero(params.shape, eta=eta, tau=tau))
    g_rebar = estimate("rebar", dist, f, noise=noise, eta=eta, tau=tau)
    np.testing.assert_array_equal(g_relax, g_rebar)
    if eta == 1.0 and tau == 0.5:  # the default surrogate
        np.testing.assert_array_equal(estimate("relax", dist, f, noise=noise), g_rebar)
        # a surrogate with w2 = 0 (r ≡ 0, random hidden layer) too
        sur = RelaxSurrogate(params.shape, rng=3, scale=0.0)
        np.testing.assert_array_equal(estimate("relax", dist, f, noise=noise, surrogate=sur), g_rebar)


# ---------------------------------------------------------------- unbiasedness


@pytest.mark.parametrize("t", [0.45, 0.499])
@pytest.mark.parametrize("eta", [1.0, np.array([-2.0]), "optimal"])
def test_rebar_unbiased_on_the_toy(t, eta):
    assert_mc_unbiased("rebar", Bernoulli(np.array([0.3])), toy(t), n=20000, seed=101, eta=eta)


CASES = [
    ("table_d2", Bernoulli(np.array([0.4, -1.2])), Table(np.array([[1.0, -2.0], [0.5, 3.0]])), np.array([0.5, -1.5])),
    ("categorical_d1", Categorical(np.array([[1.5, 0.0, -1.0]])), SquaredDistance(np.array([[0.2, 0.5, 0.3]])),
     np.array([[0.5, 2.0, -1.0]])),
    ("categorical_d2", Categorical(np.array([[0.3, -0.5, 1.0], [0.0, 0.8, -0.4]])),
     Table(np.random.default_rng(5).normal(size=(3, 3))), np.array([[1.0, 0.0, -1.0], [2.0, 0.5, 0.5]])),
    ("gaussian_threshold_d2", GaussianThreshold(np.array([0.3, -0.8])), Table(np.array([[1.0, -2.0], [0.5, 3.0]])),
     np.array([2.0, -0.5])),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("eta_kind", ["scalar", "array", "optimal"])
def test_rebar_unbiased(case, eta_kind):
    _, dist, f, eta_array = case
    eta = {"scalar": 1.7, "array": eta_array, "optimal": "optimal"}[eta_kind]
    assert_mc_unbiased("rebar", dist, f, n=20000, seed=202, eta=eta, tau=0.7)


@pytest.mark.parametrize("case", CASES + [("toy", Bernoulli(np.array([0.3])), toy(0.45), None)],
                         ids=[c[0] for c in CASES] + ["toy"])
def test_relax_unbiased_with_random_surrogate(case):
    _, dist, f, _ = case
    sur = RelaxSurrogate(tuple(dist.event_shape), hidden=5, eta=0.8, tau=0.6, rng=9)
    assert np.abs(sur.value(relaxed("bernoulli", np.zeros((1,) + tuple(dist.event_shape)), 1.0))).max() > 0.05
    assert_mc_unbiased("relax", dist, f, n=20000, seed=303, surrogate=sur)


@pytest.mark.parametrize("family, params", [("bernoulli", np.array([0.4])), ("gaussian_threshold", np.array([-0.6]))])
def test_exact_mean_over_the_noise_is_the_exact_gradient(family, params):
    # tanh-sinh quadrature over (u, v), split at the sample's break point (refgrad.exact.moments)
    dist = make_dist(family, params)
    f = toy(0.45)
    want = exact.gradient(dist, f)
    for name, opts in (("rebar", {"eta": 2.0, "tau": 0.4}), ("relax", {"surrogate": surrogate_for((1,), 5)})):
        m = exact.moments(name, dist, f, **opts)
        assert m.method == "quadrature"
        np.testing.assert_allclose(m.mean, want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- broken variants are biased (mutation tests)


def integral_over_noise(dist, f, **options):
    """E[ĝ] for one Bernoulli bit: scipy.integrate.quad over u (split where b jumps) of a 64-point
    Gauss–Legendre integral over v (the estimate is smooth in v; rational in v for τ = 1/2)."""

    def inner(u):
        def along_v(v):
            noise = {"u": np.full((v.size, 1), u), "v": v[:, None]}
            return estimate("rebar", dist, f, noise=noise, **options)[:, 0]

        return integrate.fixed_quad(along_v, 0.0, 1.0, n=64)[0]

    split = special.expit(-dist.params[0])
    return sum(integrate.quad(inner, a, b, epsabs=1e-13, epsrel=1e-12, limit=100)[0]
               for a, b in ((0.0, split), (split, 1.0)))


def test_dropping_the_conditioning_dependence_is_biased(monkeypatch):
    # Mutation 1: ∂z̃/∂ℓ = 1 (v' treated as fixed) instead of the total derivative through v'(θ).
    dist, f = Bernoulli(np.array([0.4])), toy(0.45)
    want = float(exact.gradient(dist, f)[0])
    assert integral_over_noise(dist, f, eta=1.0, tau=0.5) == pytest.approx(want, rel=1e-9, abs=1e-12)
    monkeypatch.setattr(rebar, "conditional_logistic_grad", lambda logits, b, v: np.ones(np.shape(v)))
    with _fused.fused_kernels(False):  # the mutation is of the batched path (fused: tests/estimators/test_fused.py)
        broken = integral_over_noise(dist, f, eta=1.0, tau=0.5)
    assert abs(broken - want) > 0.1 * abs(want), (broken, want)


def _top_is_own_logit_conditional_gumbel(logits, b, v):
    """The biased sampler: top coordinate ℓ_b + G(v_b) instead of logsumexp(ℓ) + G(v_b)."""
    g = -np.log(-np.log(v))
    y = np.asarray(logits)[None] + g
    top = np.take_along_axis(y, np.asarray(b)[..., None], axis=-1)
    z = -np.logaddexp(-top, -y)
    z = np.where(z >= top, np.nextafter(top, -np.inf), z)
    np.put_along_axis(z, np.asarray(b)[..., None], top, axis=-1)
    return z


def _top_is_own_logit_vjp(logits, b, v, cotangent):
    """Its exact VJP: ∂T/∂ℓ_j = [j = b]."""
    g = -np.log(-np.log(v))
    y = np.asarray(logits)[None] + g
    top = np.take_along_axis(y, np.asarray(b)[..., None], axis=-1)
    is_b = np.arange(y.shape[-1]) == np.asarray(b)[..., None]
    to_top = np.where(is_b, 1.0, special.expit(y - top))
    own = np.where(is_b, 0.0, special.expit(top - y))
    return cotangent * own + is_b * np.sum(cotangent * to_top, axis=-1, keepdims=True)


def test_categorical_top_from_own_logit_is_biased(monkeypatch):
    # Mutation 2: the top Gumbel located at ℓ_b rather than logsumexp(ℓ) (unnormalised logits); n = 20000, seed 0
    dist = Categorical(np.array([[1.5, 0.0, -1.0]]))
    f = SquaredDistance(np.array([[0.2, 0.5, 0.3]]))
    assert np.max(np.abs(mc_mean_z("rebar", dist, f, 20000, 0)[0])) <= 5.0
    monkeypatch.setattr(rebar, "conditional_gumbel", _top_is_own_logit_conditional_gumbel)
    monkeypatch.setattr(rebar, "conditional_gumbel_vjp", _top_is_own_logit_vjp)
    with _fused.fused_kernels(False):  # the mutation is of the batched path (fused: tests/estimators/test_fused.py)
        assert_mc_biased("rebar", dist, f, n=20000, seed=0, zmin=8.0)


# ---------------------------------------------------------------- variance


def _variance_and_se(g):
    """Per-coordinate sample variance and its standard error sqrt((m4 − s⁴)/n)."""
    centred = g - g.mean(axis=0)
    var = np.mean(centred**2, axis=0)
    return var, np.sqrt(np.maximum(np.mean(centred**4, axis=0) - var**2, 0.0) / len(g))


def _exact_quadratic(dist, f, tau):
    """Exact Var(a + η c) = V0 + 2η E[ac] + η² E[c²] from exact.moments at η = 0, ±1: (V0, E[ac], E[c²])."""
    v0, vp, vm = (exact.moments("rebar", dist, f, eta=e, tau=tau).variance[0] for e in (0.0, 1.0, -1.0))
    return v0, (vp - vm) / 4.0, (vp + vm - 2.0 * v0) / 2.0


def test_rebar_with_optimal_eta_beats_reinforce_at_equal_cost_on_the_toy():
    # Toy t = 0.45, ℓ = 0.  With τ = 100 the relaxed f is nearly quadratic in z and η f(σ_τ(z̃)) acts as a
    # (sample-dependent) baseline; at τ = 0.5 the optimum gains only ~0.03 % here (independent z and z̃).
    dist, f, tau = Bernoulli(np.array([0.0])), toy(0.45), 100.0
    v_reinforce = exact.moments("reinforce", dist, f).variance[0]
    v0, e_ac, e_cc = _exact_quadratic(dist, f, tau)
    assert v0 == pytest.approx(v_reinforce, rel=1e-9)  # η = 0 is REINFORCE without baseline
    v_opt = v0 - e_ac**2 / e_cc
    assert 3 * v_opt < 0.1 * v_reinforce  # the exact gap at equal cost (REBAR costs 3 evaluations, REINFORCE 1)
    # Monte Carlo: seed 404 (rebar, pilot of 4096) and 405 (reinforce), n = 20000 each, one-sided z >= 5
    g = estimate("rebar", dist, f, 20000, rng=404, eta="optimal", pilot=4096, tau=tau)
    r = estimate("reinforce", dist, f, 20000, rng=405)
    (vg,), (sg,) = _variance_and_se(g)
    (vr,), (sr,) = _variance_and_se(r)
    z = (vr - 3 * vg) / np.hypot(sr, 3 * sg)
    assert z >= 5.0, (vg, vr, z)


@pytest.mark.parametrize("eta", [5.0, -3.0, 1.0])
def test_rebar_with_a_poor_eta_has_more_variance_than_reinforce(eta):
    # Toy t = 0.45, ℓ = 0, τ = 0.5: exact variance ratios REBAR/REINFORCE ≈ 11.9 (η = 5), 5.0 (η = −3), 1.42 (η = 1,
    # the default!) -- more variance per estimate, before even accounting for REBAR's 3 evaluations.
    dist, f = Bernoulli(np.array([0.0])), toy(0.45)
    v_reinforce = exact.moments("reinforce", dist, f).variance[0]
    v_rebar = exact.moments("rebar", dist, f, eta=eta).variance[0]
    assert v_rebar > 1.3 * v_reinforce
    # Monte Carlo: seeds 406 / 407, n = 20000, one-sided z >= 5
    g = estimate("rebar", dist, f, 20000, rng=406, eta=eta)
    r = estimate("reinforce", dist, f, 20000, rng=407)
    (vg,), (sg,) = _variance_and_se(g)
    (vr,), (sr,) = _variance_and_se(r)
    assert (vg - vr) / np.hypot(sg, sr) >= 5.0, (vg, vr)


def test_pilot_eta_estimates_the_exact_optimum():
    dist, f, tau = Bernoulli(np.array([0.0])), toy(0.45), 100.0
    _, e_ac, e_cc = _exact_quadratic(dist, f, tau)
    noise = ESTIMATORS["rebar"].draw_noise(dist, 1, 8, eta="optimal", pilot=20000)
    a, c = rebar_terms(dist, f, noise["pilot_u"], noise["pilot_v"], tau)
    assert optimal_eta(a, c)[0] == pytest.approx(-e_ac / e_cc, rel=0.05)


# ---------------------------------------------------------------- fit_relax


def test_fit_relax_reduces_the_second_moment_on_the_toy():
    # toy t = 0.499, one bit at ℓ = 0; seed 0, 300 Adam steps of 64 draws (< 1 s)
    dist, f = Bernoulli(np.array([0.0])), toy(0.499)
    sur, history = fit_relax(dist, f, steps=300, batch=64, lr=1e-2, rng=0)
    sm = history["second_moment"]
    assert sm.shape == (300,) and np.isfinite(sm).all()
    assert history["eta"][0] == 1.0 and history["tau"][0] == 0.5  # starts at REBAR's defaults
    assert np.mean(sm[-50:]) < 0.05 * np.mean(sm[:10])
    # the fitted surrogate: still unbiased, and far less variance than REBAR's defaults (seed 501, n = 20000)
    assert_mc_unbiased("relax", dist, f, n=20000, seed=501, surrogate=sur)
    g = estimate("relax", dist, f, 20000, rng=502, surrogate=sur)
    assert g.var() < 0.05 * exact.moments("rebar", dist, f).variance[0]


def test_fit_relax_options_and_reproducibility():
    dist, f = Bernoulli(np.array([0.3, -0.2])), Table(np.array([[1.0, -2.0], [0.5, 3.0]]))
    start = surrogate_for((2,), 1)
    s1, h1 = fit_relax(dist, f, surrogate=start, steps=5, batch=8, rng=3)
    s2, h2 = fit_relax(dist, f, surrogate=start, steps=5, batch=8, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(h1["second_moment"], h2["second_moment"])
    np.testing.assert_array_equal(s1.w1, s2.w1)
    assert s1.eta != start.eta and s1.tau != start.tau and not np.array_equal(s1.w1, start.w1)
    # train subsets leave the others alone
    s3, _ = fit_relax(dist, f, surrogate=start, steps=3, batch=8, rng=3, train=("eta",))
    assert s3.tau == start.tau and np.array_equal(s3.w1, start.w1) and s3.b2 == start.b2 and s3.eta != start.eta
    s4, _ = fit_relax(dist, f, surrogate=start, steps=3, batch=8, rng=3, train="tau")
    assert s4.eta == start.eta and np.array_equal(s4.w2, start.w2) and s4.tau != start.tau
    # objectives without a Hessian-vector product can train ψ and η only
    plain = FunctionObjective(lambda z: (z**2).sum(axis=1), lambda z: 2 * z, name="plain")
    fit_relax(dist, plain, steps=2, batch=4, rng=0, train=("psi", "eta"))
    with pytest.raises(ValueError, match="Hessian-vector product"):
        fit_relax(dist, plain, steps=2, batch=4, rng=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"steps": 0}, "steps"), ({"batch": 1.5}, "batch"), ({"lr": -1.0}, "lr"), ({"lr": np.nan}, "lr"),
     ({"train": ("psi", "temperature")}, "train"), ({"train": 3}, "train"), ({"rng": -1}, "rng"),
     ({"surrogate": "zero"}, "surrogate"), ({"surrogate": RelaxSurrogate((3,))}, "surrogate")],
)
def test_fit_relax_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_relax(Bernoulli(np.array([0.3, -0.2])), SquaredDistance(0.3), **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_relax_runs_on_every_family(family):
    params = np.array([[0.4, -1.0, 0.2]]) if family == "categorical" else np.array([0.4, -1.0])
    dist = make_dist(family, params)
    sur, history = fit_relax(dist, table_for(family, params.shape), steps=20, batch=16, lr=3e-2, rng=1)
    assert sur.event_shape == params.shape and np.isfinite(history["second_moment"]).all()


# ---------------------------------------------------------------- kernels vs NumPy twins


def twin_close(got, want, terms_scale):
    """Kernels and twins sum the same terms in different orders: a few ulps of the terms' scale."""
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=64 * EPS * max(1.0, terms_scale))


@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_combine_and_optimal_eta_kernels_match_twins(n, p, data):
    a = data.draw(hnp.arrays(np.float64, (n, p), elements=st.floats(-10.0, 10.0)))
    c = data.draw(hnp.arrays(np.float64, (n, p), elements=st.floats(-10.0, 10.0)))
    eta = data.draw(hnp.arrays(np.float64, (p,), elements=st.floats(-5.0, 5.0)))
    np.testing.assert_array_equal(rebar._rebar_combine(a, c, eta), naive.rebar_combine(a, c, eta))
    got = rebar._optimal_eta(a, c)
    want = naive.rebar_optimal_eta(a, c)
    den = np.sum(c * c, axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-13,
                               atol=64 * EPS * np.sum(np.abs(a * c), axis=0).max() / max(den.min(initial=1.0), 1e-300))
    assert np.all(got[den == 0] == 0)


@given(st.integers(1, 2), st.integers(2, 4), st.integers(1, 3), st.data())
def test_conditional_gumbel_jvp_matches_twin_fd_and_vjp(d, K, n, data):
    logits = data.draw(hnp.arrays(np.float64, (d, K), elements=parameter))
    v = data.draw(hnp.arrays(np.float64, (n, d, K), elements=unit))
    b = data.draw(hnp.arrays(np.int64, (n, d), elements=st.integers(0, K - 1)))
    e = data.draw(hnp.arrays(np.float64, (n, d, K), elements=st.floats(-2.0, 2.0)))
    c = data.draw(hnp.arrays(np.float64, (n, d, K), elements=st.floats(-2.0, 2.0)))
    got = rebar._conditional_gumbel_jvp(logits, b, v, e)
    twin_close(got, naive.rebar_conditional_gumbel_jvp(logits, b, v, e), np.abs(e).max())
    # directional finite difference of z̃ along e (per sample: e differs by sample)
    for i in range(n):
        h = 1e-6
        fd = (rrandom.conditional_gumbel(logits + h * e[i], b[i:i + 1], v[i:i + 1])
              - rrandom.conditional_gumbel(logits - h * e[i], b[i:i + 1], v[i:i + 1]))[0] / (2 * h)
        np.testing.assert_allclose(got[i], fd, rtol=1e-6, atol=1e-6)
    # transpose of refgrad.random.conditional_gumbel_vjp: <c, D e> = <D^T c, e>
    vjp = rrandom.conditional_gumbel_vjp(logits, b, v, c)
    np.testing.assert_allclose(event_sum(c * got), event_sum(vjp * e), rtol=1e-12, atol=1e-12)


def test_conditional_gumbel_jvp_special_rows():
    logits = np.array([[np.inf, 0.0, 1.0], [-np.inf, 0.3, 0.1]])
    v = np.full((1, 2, 3), 0.4)
    e = np.ones((1, 2, 3))
    out = rebar._conditional_gumbel_jvp(logits, np.array([[0, 1]]), v, e)
    np.testing.assert_array_equal(out[0, 0], 0.0)  # +inf row: locally constant
    np.testing.assert_allclose(out, naive.rebar_conditional_gumbel_jvp(logits, np.array([[0, 1]]), v, e))


@given(st.integers(1, 4), st.integers(1, 3), st.floats(0.1, 5.0), st.data())
def test_sigmoid_jets_match_twin_and_fd(n, d, tau, data):
    z = data.draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-30.0, 30.0) | st.sampled_from([np.inf, -np.inf])))
    e = data.draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-3.0, 3.0)))
    got = relax._sigmoid_tau_jets(z, tau, e)
    for g, w in zip(got, naive.relax_sigmoid_tau_jets(z, tau, e)):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)
    zf = np.where(np.isfinite(z), z, 0.0)
    xdot, x_tau, xdot_tau = relax._sigmoid_tau_jets(zf, tau, e)
    h = 1e-6
    from refgrad.relaxations import sigmoid_tau, sigmoid_tau_vjp

    np.testing.assert_allclose(xdot, (sigmoid_tau(zf + h * e, tau) - sigmoid_tau(zf - h * e, tau)) / (2 * h),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(x_tau, (sigmoid_tau(zf, tau + h) - sigmoid_tau(zf, tau - h)) / (2 * h),
                               rtol=1e-6, atol=1e-8)
    fd = (sigmoid_tau_vjp(zf, tau + h, e)[0] - sigmoid_tau_vjp(zf, tau - h, e)[0]) / (2 * h)
    np.testing.assert_allclose(xdot_tau, fd, rtol=1e-5, atol=1e-7)


@given(st.integers(1, 3), st.integers(1, 2), st.integers(2, 4), st.floats(0.2, 5.0), st.data())
def test_softmax_jets_match_twin_and_fd(n, d, K, tau, data):
    z = data.draw(hnp.arrays(np.float64, (n, d, K), elements=st.floats(-15.0, 15.0)))
    ninf = data.draw(hnp.arrays(np.bool_, (n, d, K)))
    ninf[..., 0] = False
    z_inf = np.where(ninf, -np.inf, z)
    z_inf[0, 0, 1] = np.inf if data.draw(st.booleans()) else z_inf[0, 0, 1]
    e = data.draw(hnp.arrays(np.float64, (n, d, K), elements=st.floats(-3.0, 3.0)))
    for g, w in zip(relax._softmax_tau_jets(z_inf, tau, e), naive.relax_softmax_tau_jets(z_inf, tau, e)):
        twin_close(g, w, np.abs(e).max() / tau + 30.0 / tau**2)
    xdot, x_tau, xdot_tau = relax._softmax_tau_jets(z, tau, e)
    h = 1e-6
    from refgrad.relaxations import softmax_tau, softmax_tau_vjp

    np.testing.assert_allclose(xdot, (softmax_tau(z + h * e, tau) - softmax_tau(z - h * e, tau)) / (2 * h),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(x_tau, (softmax_tau(z, tau + h) - softmax_tau(z, tau - h)) / (2 * h),
                               rtol=1e-6, atol=1e-8)
    fd = (softmax_tau_vjp(z, tau + h, e)[0] - softmax_tau_vjp(z, tau - h, e)[0]) / (2 * h)  # J symmetric: J e
    np.testing.assert_allclose(xdot_tau, fd, rtol=1e-5, atol=1e-7)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.data())
def test_network_kernels_match_twins_and_fd(n, D, H, data):
    def arr(shape, lo=-2.0, hi=2.0):
        return data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))

    x, xdot, p = arr((n, D), 0.0, 1.0), arr((n, D)), arr((n, D))
    w1, b1, w2 = arr((H, D)), arr((H,)), arr((H,))
    b2 = data.draw(st.floats(-1.0, 1.0))
    alpha, beta = arr((n,)), arr((n,))
    scale = (1.0 + np.abs(w1).sum()) * (1.0 + np.abs(w2).sum()) * (1.0 + np.abs(xdot).max() + np.abs(p).max()) ** 2
    twin_close(relax_surrogate._mlp_value(x, w1, b1, w2, b2), naive.relax_mlp_value(x, w1, b1, w2, b2), scale)
    twin_close(relax_surrogate._mlp_grad(x, w1, b1, w2), naive.relax_mlp_grad(x, w1, b1, w2), scale)
    twin_close(relax_surrogate._mlp_hessian_bilinear(x, p, xdot, w1, b1, w2),
               naive.relax_mlp_hessian_bilinear(x, p, xdot, w1, b1, w2), scale)
    for g, w in zip(relax_surrogate._mlp_param_vjp(x, xdot, alpha, beta, w1, b1, w2),
                    naive.relax_mlp_param_vjp(x, xdot, alpha, beta, w1, b1, w2)):
        twin_close(g, w, scale * (1.0 + np.abs(alpha).sum() + np.abs(beta).sum()))
    # finite differences: grad of value, Hessian of grad, parameter derivatives
    sur = RelaxSurrogate.from_params((D,), w1, b1, w2, b2)
    fd = np.stack([central_fd(lambda xx: sur.value(xx[None])[0], x[i]) for i in range(n)])
    np.testing.assert_allclose(sur.grad_x(x), fd, rtol=1e-6, atol=1e-7)
    h = 1e-6
    fd_h = event_sum((sur.grad_x(x + h * xdot) - sur.grad_x(x - h * xdot)) * p) / (2 * h)
    np.testing.assert_allclose(sur.hessian_bilinear(x, p, xdot), fd_h, rtol=1e-6, atol=1e-7)

    def objective(s):
        return float(np.sum(alpha * s.value(x)) + np.sum(beta * event_sum(s.grad_x(x) * xdot)))

    grads = relax_surrogate._mlp_param_vjp(x, xdot, alpha, beta, w1, b1, w2)
    fd = fd_params(objective, sur)
    for name, g in zip(("w1", "b1", "w2", "b2"), grads):
        np.testing.assert_allclose(g, fd[name], rtol=1e-6, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------- determinism, noise, infinite parameters


@pytest.mark.parametrize("name, options", [("rebar", {}), ("rebar", {"eta": "optimal", "pilot": 16}),
                                           ("rebar", {"eta": 0.3, "tau": 2.0}), ("relax", {})])
@pytest.mark.parametrize("family", FAMILIES)
def test_noise_and_rng_agree_and_seed_reproduces(name, options, family):
    params = np.array([[0.3, -0.4, 1.1], [0.0, 2.0, -1.0]]) if family == "categorical" else np.array([0.3, -0.4])
    dist = make_dist(family, params)
    f = table_for(family, params.shape)
    if name == "relax":
        options = {"surrogate": surrogate_for(params.shape, 2)}
    g1 = estimate(name, dist, f, 40, rng=123, **options)
    g2 = estimate(name, dist, f, 40, rng=np.random.default_rng(123), **options)
    g3 = estimate(name, dist, f, noise=ESTIMATORS[name].draw_noise(dist, 40, 123, **options), **options)
    assert g1.shape == (40,) + params.shape and g1.dtype == np.float64
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(g1, g3)
    assert np.isfinite(g1).all()
    assert not np.array_equal(g1, estimate(name, dist, f, 40, rng=124, **options))


def test_eta_array_scales_each_coordinate_and_terms_match_estimate():
    dist = Bernoulli(np.array([0.3, -0.4]))
    f = Table(np.array([[1.0, -2.0], [0.5, 3.0]]))
    noise = ESTIMATORS["rebar"].draw_noise(dist, 30, 5)
    a, c = rebar_terms(dist, f, noise["u"], noise["v"], 0.5)
    np.testing.assert_array_equal(estimate("rebar", dist, f, noise=noise, eta=0.0), a)  # η = 0: REINFORCE
    np.testing.assert_array_equal(estimate("reinforce", dist, f, noise={"u": noise["u"]}), a)
    eta = np.array([2.0, -1.0])
    np.testing.assert_array_equal(estimate("rebar", dist, f, noise=noise, eta=eta), a + eta * c)
    np.testing.assert_array_equal(estimate("rebar", dist, f, noise=noise, eta=[2.0, 2.0]),
                                  estimate("rebar", dist, f, noise=noise, eta=2.0))
    spec = ESTIMATORS["rebar"]
    a2, c2 = spec.control_variate(dist, f, noise, **spec.options(dist))
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(c2, c)


def test_optimal_eta_uses_the_pilot_noise_only():
    dist = Categorical(np.array([[0.3, -0.4, 1.1]]))
    f = table_for("categorical", (1, 3))
    noise = ESTIMATORS["rebar"].draw_noise(dist, 25, 9, eta="optimal", pilot=50)
    a, c = rebar_terms(dist, f, noise["u"], noise["v"], 0.5)
    ap, cp = rebar_terms(dist, f, noise["pilot_u"], noise["pilot_v"], 0.5)
    eta = optimal_eta(ap, cp)
    np.testing.assert_allclose(eta, naive.rebar_optimal_eta(ap.reshape(50, -1), cp.reshape(50, -1)).reshape(1, 3),
                               rtol=1e-12)
    np.testing.assert_array_equal(estimate("rebar", dist, f, noise=noise, eta="optimal", pilot=50), a + eta * c)


def test_infinite_parameters():
    for family, params in (
        ("bernoulli", np.array([np.inf, -np.inf, 0.3])),
        ("gaussian_threshold", np.array([np.inf, -np.inf, 0.3])),
        ("categorical", np.array([[np.inf, 0.0, 1.0], [-np.inf, 0.5, 0.0]])),
    ):
        dist = make_dist(family, params)
        f = table_for(family, params.shape)
        for name, opts in (("rebar", {}), ("rebar", {"eta": "optimal", "pilot": 8}),
                           ("relax", {"surrogate": surrogate_for(params.shape, 1)})):
            g = estimate(name, dist, f, 25, rng=3, **opts)
            assert np.isfinite(g).all(), (family, name)
            if family == "categorical":
                assert (g[:, 0] == 0).all() and (g[:, 1, 0] == 0).all() and (g[:, 1, 1:] != 0).any()
            else:
                assert (g[:, :2] == 0).all() and (g[:, 2] != 0).any()


def test_two_plus_inf_logits_are_the_finite_problem_on_those_categories():
    # a row with several +inf logits: the categories at +inf share the mass, the score b − p is not 0,
    # and the estimate equals that of logits 0 on those categories and −inf elsewhere
    f = SquaredDistance(np.array([[0.2, 0.7, 0.1]]))
    a = Categorical(np.array([[np.inf, np.inf, 1.0]]))
    b = Categorical(np.array([[0.0, 0.0, -np.inf]]))
    noise = ESTIMATORS["rebar"].draw_noise(a, 50, 4)
    np.testing.assert_array_equal(estimate("rebar", a, f, noise=noise), estimate("rebar", b, f, noise=noise))
    assert_mc_unbiased("rebar", a, f, n=5000, seed=6)


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "options, match",
    [({"tau": 0.0}, "tau"), ({"tau": -1.0}, "tau"), ({"tau": np.inf}, "tau"), ({"tau": "hot"}, "tau"),
     ({"eta": np.nan}, "eta"), ({"eta": np.inf}, "eta"), ({"eta": np.array([1.0, np.nan])}, "eta"),
     ({"eta": np.ones(3)}, "eta"), ({"eta": np.ones((2, 1))}, "eta"), ({"eta": "best"}, "eta"),
     ({"eta": True}, "eta"), ({"eta": None}, "eta"), ({"pilot": 1}, "pilot"), ({"pilot": 2.5}, "pilot"),
     ({"temperature": 1.0}, "unknown option")],
)
def test_rebar_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        estimate("rebar", Bernoulli(np.array([0.3, -0.2])), SquaredDistance(0.3), 5, rng=0, **options)


@pytest.mark.parametrize(
    "surrogate, match",
    [("zero", "surrogate"), (3.0, "surrogate"), (RelaxSurrogate((3,)), "surrogate"),
     (RelaxSurrogate((2, 3)), "surrogate")],
)
def test_relax_rejects_bad_surrogates(surrogate, match):
    with pytest.raises(ValueError, match=match):
        estimate("relax", Bernoulli(np.array([0.3, -0.2])), SquaredDistance(0.3), 5, rng=0, surrogate=surrogate)


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_objectives_without_gradient_are_rejected(name):
    dist = Bernoulli(np.array([0.3]))
    with pytest.raises(ValueError, match="gradient"):
        estimate(name, dist, FunctionObjective(lambda z: z.sum(axis=1), name="nograd"), 5, rng=0)
    with pytest.raises(ValueError, match="gradient"):
        estimate(name, dist, lambda z: z.sum(axis=1), 5, rng=0)
    hard_only = FunctionObjective(lambda z: z.sum(axis=1), lambda z: np.ones_like(z), relaxed_ok=False, name="hard")
    with pytest.raises(ValueError, match="relaxed_ok"):
        estimate(name, dist, hard_only, 5, rng=0)


def test_helpers_reject_bad_input():
    dist = Bernoulli(np.array([0.3, -0.2]))
    f = SquaredDistance(0.3)
    u = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="noise_u"):
        rebar_terms(dist, f, np.full((4, 3), 0.5), u, 0.5)
    with pytest.raises(ValueError, match="noise_v"):
        rebar_terms(dist, f, u, np.full((3, 2), 0.5), 0.5)
    with pytest.raises(ValueError, match="noise_v"):
        rebar_terms(dist, f, u, np.ones((4, 2)), 0.5)
    with pytest.raises(ValueError, match="tau"):
        rebar_terms(dist, f, u, u, 0.0)
    with pytest.raises(ValueError, match="dist"):
        rebar_terms("bernoulli", f, u, u, 0.5)
    with pytest.raises(ValueError, match="a and c"):
        optimal_eta(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        optimal_eta(np.ones((3, 2)), np.full((3, 2), np.nan))


@pytest.mark.parametrize(
    "build, match",
    [(lambda: RelaxSurrogate((0,)), "event_shape"), (lambda: RelaxSurrogate((2, 1)), "K >= 2"),
     (lambda: RelaxSurrogate("ab"), "event_shape"), (lambda: RelaxSurrogate((2,), hidden=0), "hidden"),
     (lambda: RelaxSurrogate((2,), eta=np.nan), "eta"), (lambda: RelaxSurrogate((2,), tau=0.0), "tau"),
     (lambda: RelaxSurrogate((2,), scale=-1.0), "scale"),
     (lambda: RelaxSurrogate.from_params((2,), np.ones((3, 2)), np.ones(2), np.ones(3)), "b1"),
     (lambda: RelaxSurrogate.from_params((2,), np.ones((3, 3)), np.ones(3), np.ones(3)), "w1"),
     (lambda: RelaxSurrogate.from_params((2,), np.ones((3, 2)), np.ones(3), np.full(3, np.inf)), "w2"),
     (lambda: RelaxSurrogate((2,)).replace(gamma=1.0), "gamma"),
     (lambda: RelaxSurrogate((2,)).value(np.ones((3, 3))), "x"),
     (lambda: RelaxSurrogate((2,)).control(SquaredDistance(0.1), np.ones((3, 3))), "z")],
)
def test_surrogate_rejects_bad_input(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_surrogate_construction():
    a = RelaxSurrogate((2, 3), hidden=4, rng=5)
    b = RelaxSurrogate((2, 3), hidden=4, rng=5)
    np.testing.assert_array_equal(a.w1, b.w1)
    assert a.w1.shape == (4, 6) and a.b1.shape == (4,) and a.w2.shape == (4,) and a.b2 == 0.0
    assert not a.w1.flags.writeable
    z = RelaxSurrogate.zero((2,))
    assert (z.value(np.full((3, 2), 0.3)) == 0).all() and (z.grad_x(np.full((3, 2), 0.3)) == 0).all()
    assert (RelaxSurrogate((2,), rng=1, scale=0.0).value(np.full((3, 2), 0.3)) == 0).all()
    c = a.replace(eta=2.0, tau=0.1)
    assert c.eta == 2.0 and c.tau == 0.1 and c.w1 is not a.w1 and np.array_equal(c.w1, a.w1)
    assert "RelaxSurrogate" in repr(c) and set(a.params) == {"w1", "b1", "w2", "b2"}


# ---------------------------------------------------------------------------- errors that show the value


def test_helper_errors_show_the_offending_value_and_index():
    dist = Bernoulli(np.array([0.3, -0.2]))
    f = SquaredDistance(0.3)
    u = np.full((4, 2), 0.5)
    v = u.copy()
    v[2, 1] = 1.0
    with pytest.raises(ValueError,
                       match=r"noise_v must contain uniforms strictly inside \(0, 1\).*1.0 at index \(2, 1\)"):
        rebar_terms(dist, f, u, v, 0.5)
    with pytest.raises(TypeError, match=r"noise_u must hold real \(float64\) numbers.*complex"):
        rebar_terms(dist, f, u + 0j, u, 0.5)
    c = np.ones((3, 2))
    c[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"c must be finite; got inf at index \(1, 0\)"):
        optimal_eta(np.ones((3, 2)), c)


@pytest.mark.parametrize(
    "build, error, match",
    [(lambda: RelaxSurrogate((2,), eta=1 + 1j), TypeError, r"eta must be a finite float; got \(1\+1j\)"),
     (lambda: RelaxSurrogate((2,), scale=np.array(0.5 + 0j)), TypeError, r"scale must hold real \(float64\).*complex"),
     (lambda: RelaxSurrogate((2,), eta="1.0"), TypeError, r"eta must be a finite float; got '1.0' of type str"),
     (lambda: RelaxSurrogate((2,), eta=True), TypeError, r"eta must be a finite float; got True"),
     (lambda: RelaxSurrogate((2.0,)), ValueError, r"event_shape must be \(d,\).*got \(2.0,\)"),
     (lambda: RelaxSurrogate((True,)), ValueError, r"event_shape must be"),
     (lambda: RelaxSurrogate((2,), hidden=10**12), ValueError, r"hidden=1000000000000 would need"),
     (lambda: RelaxSurrogate((2,), hidden=2.0), TypeError, r"hidden must be an integer >= 1; got 2.0"),
     (lambda: RelaxSurrogate.from_params((2,), np.ones((3, 2)), np.ones(3), np.array([1.0, np.inf, 0.0])),
      ValueError, r"w2 must be finite; got inf at index \(1,\)"),
     (lambda: RelaxSurrogate((2,)).value(np.array([[0.5, 0.5], [np.nan, 0.5]])),
      ValueError, r"x must be finite; got nan at index \(1, 0\)")],
)
def test_surrogate_errors_name_type_value_and_index(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("lr", [1e6, 1e3])
def test_fit_relax_reports_divergence(lr):
    # previously OverflowError ("math range error") from math.exp(log tau) after one step
    dist = Bernoulli(np.array([0.3, 0.1]))
    with pytest.raises(ValueError, match=rf"fit_relax diverged at step 1 of 5: log tau reached .*lr={lr!r} is too large"
                                         r".*use a smaller lr"):
        fit_relax(dist, SquaredDistance(np.array([0.45, 0.45])), steps=5, batch=8, lr=lr, rng=0)


def test_fit_relax_reports_a_non_finite_second_moment():
    # an objective whose estimates overflow float64: the loss is inf and training must stop, naming lr
    dist = Bernoulli(np.array([0.3]))
    with pytest.raises(ValueError, match=r"fit_relax diverged at step 1 of 3: the batch second moment .* is inf"):
        fit_relax(dist, Linear(np.array([1e300])), steps=3, batch=4, lr=1e-2, rng=0, train=("psi", "eta"))


def test_fit_relax_checks_its_counts():
    dist = Bernoulli(np.array([0.3]))
    f = SquaredDistance(0.4)
    with pytest.raises(ValueError, match=r"batch=1000000000000 would need"):
        fit_relax(dist, f, steps=1, batch=10**12)
    with pytest.raises(ValueError, match=r"steps=1000000000000 would need"):
        fit_relax(dist, f, steps=10**12)
    with pytest.raises(TypeError, match=r"steps must be an integer >= 1; got 2.5"):
        fit_relax(dist, f, steps=2.5)
    with pytest.raises(ValueError, match=r"lr must be a finite real number > 0; got nan"):
        fit_relax(dist, f, lr=np.nan)
