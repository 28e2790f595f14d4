"""ReinMax (Liu, Dong, Liu, Yu & Gao, NeurIPS 2023, Algorithm 2).

* Closed form against central finite differences of ``θ ↦ ⟨π2(θ), ∇f(D)⟩`` at fixed
  ``D`` (and fixed stop-gradient constant), π2 rebuilt here with SciPy's softmax;
  against PyTorch autograd of Algorithm 2 written line by line with ``detach()``.
* Exact moments (enumeration) against an independent twin written with loops over
  the support; exact bias nonzero where expected; the paper's second-order claim:
  at τ = 1 the exact bias is 0 on quadratic and multilinear objectives, where
  straight-through's (quadrature) is not.
* Monte Carlo checks state α and seed: ``refgrad.testing.assert_biased`` /
  ``assert_unbiased`` at α = 1e-3, seed 0 (the default ``rng``).
"""
import itertools

import numpy as np
import pytest
from scipy import special

import refgrad
import refgrad.estimators.reinmax as reinmax_module
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, SquaredDistance, Table

RNG = np.random.default_rng(20230417)
W = np.array([0.7, -1.3, 2.1])
# a cubic along the simplex edges: f(e_k) = w_k, ∇f(e_k) = 3 w_k e_k (trapezoid rule off by 1.5x)
WCUBE = FunctionObjective(lambda z: (W * z**3).sum(axis=(1, 2)), lambda z: 3.0 * W * z**2, name="wcube")
BCUBE = FunctionObjective(lambda z: (z**3).sum(axis=1), lambda z: 3.0 * z**2, name="cube")
A = np.array([[1.0, 0.4, -0.6], [0.4, -2.0, 0.3], [-0.6, 0.3, 0.5]])
QUAD = FunctionObjective(lambda z: np.einsum("nik,kl,nil->n", z, A, z) + z[:, :, 0].sum(axis=1),
                         lambda z: 2.0 * np.einsum("kl,nil->nik", A, z) + np.eye(3)[0], name="quadratic")
CAT = Categorical(np.array([[0.3, -0.5, 1.1], [0.2, 0.0, -0.7]]))
CAT_TABLE = Table(RNG.normal(size=(3, 3)))
BERN = Bernoulli(np.array([0.4, -1.2, 2.0]))
BERN_TABLE = Table(RNG.normal(size=(2, 2, 2)))


# ---------------------------------------------------------------- independent twins


def pi2(theta, c, tau_unused=None):
    """Algorithm 2's π2 at logits ``theta`` with the stop-gradient constant ``c`` held fixed."""
    return 2.0 * special.softmax(c + theta, axis=-1) - 0.5 * special.softmax(theta, axis=-1)


def stopgrad_constant(theta, D, tau):
    """``c = ln π1 − θ`` with ``π1 = (D + softmax(θ/τ))/2`` (step 3 of Algorithm 2)."""
    return np.log(0.5 * (D + special.softmax(theta / tau, axis=-1))) - theta


def twin_estimate(logits, tau, D, g):
    """ReinMax per variable with explicit loops: Σ_j J_kj g_j, J = 2(diag π1 − π1π1ᵀ) − ½(diag π0 − π0π0ᵀ)."""
    out = np.zeros_like(g)
    for i in range(logits.shape[0]):
        p0 = np.exp(logits[i]) / np.exp(logits[i]).sum()
        st = np.exp(logits[i] / tau) / np.exp(logits[i] / tau).sum()
        p1 = [(D[i][k] + st[k]) / 2 for k in range(len(st))]
        for k in range(len(p0)):
            for j in range(len(p0)):
                jac = 2 * ((k == j) * p1[k] - p1[k] * p1[j]) - 0.5 * ((k == j) * p0[k] - p0[k] * p0[j])
                out[i, k] += jac * g[i, j]
    return out


def twin_mean(dist, f, tau):
    """Σ_D q(D) ĝ(D) over every configuration, the estimate from :func:`twin_estimate`."""
    if dist.family == "bernoulli":  # K = 2 embedding: logits (0, ℓ), derivative = second coordinate
        logits = np.stack([np.zeros_like(dist.params), dist.params], axis=1)
        K = 2
    else:
        logits = dist.params
        K = logits.shape[1]
    d = logits.shape[0]
    probs = special.softmax(logits, axis=1)
    total = np.zeros((d, K))
    for config in itertools.product(range(K), repeat=d):
        weight = np.prod([probs[i, k] for i, k in enumerate(config)])
        D = np.eye(K)[list(config)]
        if dist.family == "bernoulli":
            gb = f.grad(np.array(config, dtype=float)[None])[0]
            g = np.stack([np.zeros(d), gb], axis=1)
        else:
            g = f.grad(D[None])[0]
        total += weight * twin_estimate(logits, tau, D, g)
    return total[:, 1] if dist.family == "bernoulli" else total


def torch_algorithm2(logits, tau, D, g):
    """Algorithm 2 literally in PyTorch: backpropagate ⟨output, g⟩ to θ."""
    torch = pytest.importorskip("torch")
    theta = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    Dt = torch.tensor(D, dtype=torch.float64)
    pi0 = torch.softmax(theta, dim=-1)
    pi1 = (Dt + torch.softmax(theta / tau, dim=-1)) / 2
    pi1 = torch.softmax((torch.log(pi1) - theta).detach() + theta, dim=-1)
    pi2 = 2 * pi1 - pi0 / 2
    out = pi2 - pi2.detach() + Dt
    (out * torch.tensor(g, dtype=torch.float64)).sum().backward()
    return theta.grad.numpy()


def uniforms(shape, n, seed):
    return np.random.default_rng(seed).uniform(0.02, 0.98, size=(n,) + shape)


# ---------------------------------------------------------------- registration and options


def test_registered_spec():
    spec = ESTIMATORS["reinmax"]
    assert spec.unbiased is False
    assert set(spec.families) == {"bernoulli", "categorical"}
    assert spec.given_samples is not None and spec.shape_in_noise == "piecewise_constant"
    assert spec.cost_of(CAT) == 1 and spec.cost_of(BERN, tau=2.0) == 1
    assert [(f.name, f.shape) for f in spec.noise_layout(CAT)] == [("u", (2, 3))]
    assert "Algorithm 2" in spec.doc and "Liu" in spec.summary
    assert spec.options(CAT) == {"tau": 1.0}


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tau_raises_value_error(tau):
    with pytest.raises(ValueError, match="tau must be"):
        estimate("reinmax", CAT, SquaredDistance(0.3), n=2, rng=0, tau=tau)


def test_bad_options_and_family():
    with pytest.raises(TypeError, match="tau"):
        estimate("reinmax", BERN, SquaredDistance(0.3), n=2, rng=0, tau="1")
    with pytest.raises(ValueError, match="unknown option.*allowed options: tau"):
        estimate("reinmax", BERN, SquaredDistance(0.3), n=2, rng=0, k=3)
    with pytest.raises(ValueError, match="does not support family 'normal'"):
        estimate("reinmax", refgrad.distributions.Normal(np.zeros(2)), SquaredDistance(0.3), n=2, rng=0)
    with pytest.raises(ValueError, match="needs the gradient"):
        estimate("reinmax", BERN, FunctionObjective(lambda z: z.sum(axis=1)), n=2, rng=0)


# ---------------------------------------------------------------- closed form: FD, autograd, K = 2


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("f", [SquaredDistance(0.3), CAT_TABLE, WCUBE, QUAD])
def test_closed_form_is_fd_of_pi2_at_fixed_sample(tau, f):
    u = uniforms(CAT.event_shape, 4, seed=1)
    g_est = estimate("reinmax", CAT, f, noise={"u": u}, tau=tau)
    D = CAT.from_uniforms(u)
    grads = f.grad(D)
    theta0 = CAT.params
    for s in range(u.shape[0]):
        c = stopgrad_constant(theta0, D[s], tau)
        np.testing.assert_allclose(pi2(theta0, c), 2 * 0.5 * (D[s] + special.softmax(theta0 / tau, axis=1))
                                   - 0.5 * special.softmax(theta0, axis=1), atol=1e-15)  # π1 keeps its value
        fd = central_fd(lambda th: np.sum(pi2(th, c) * grads[s]), theta0)
        np.testing.assert_allclose(g_est[s], fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_closed_form_equals_torch_autograd_of_algorithm2(tau):
    u = uniforms(CAT.event_shape, 3, seed=2)
    g_est = estimate("reinmax", CAT, CAT_TABLE, noise={"u": u}, tau=tau)
    D = CAT.from_uniforms(u)
    grads = CAT_TABLE.grad(D)
    for s in range(3):
        np.testing.assert_allclose(g_est[s], torch_algorithm2(CAT.params, tau, D[s], grads[s]), rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("tau", [0.7, 1.0, 2.0])
def test_bernoulli_is_the_k2_categorical_over_the_bit(tau):
    ell = np.array([0.4, -1.2, 2.0])
    u = uniforms((3,), 6, seed=3)
    gb = estimate("reinmax", Bernoulli(ell), BCUBE, noise={"u": u}, tau=tau)
    b = Bernoulli(ell).from_uniforms(u)
    cat = Categorical(np.stack([np.zeros(3), ell], axis=1))
    D = np.stack([1.0 - b, b], axis=2)
    g = np.stack([np.zeros_like(b), BCUBE.grad(b)], axis=2)
    gc = reinmax_module.reinmax_categorical(cat.params, tau, D, g)
    np.testing.assert_allclose(gb, gc[:, :, 1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gc.sum(axis=2), 0.0, atol=1e-15)  # J 1 = 0: the (0, ℓ) parametrisation loses nothing


def test_infinite_logits():
    b = estimate("reinmax", Bernoulli(np.array([np.inf, -np.inf, 0.0])), BCUBE, n=5, rng=0)
    assert np.all(b[:, :2] == 0.0) and np.all(np.isfinite(b))
    c = estimate("reinmax", Categorical(np.array([[0.0, -np.inf, 1.0]])), SquaredDistance(0.2), n=50, rng=0)
    assert np.all(c[:, 0, 1] == 0.0) and np.all(np.isfinite(c))
    # extreme logits keep the tiny slopes (no 1 − p cancellation)
    g = estimate("reinmax", Bernoulli(np.array([40.0])), BCUBE, noise={"u": np.array([[0.5]])}, tau=1.0)
    # b = 1: 2 p1 (1 − p1) − ½ σσ' = (1 + σ(40)) σ(−40)/2 − σ(40) σ(−40)/2 = σ(−40)/2; f'(1) = 3
    np.testing.assert_allclose(g[0, 0], 1.5 * special.expit(-40.0), rtol=1e-12)


def test_noise_equals_rng():
    spec = ESTIMATORS["reinmax"]
    for dist, f in ((CAT, CAT_TABLE), (BERN, BERN_TABLE)):
        noise = spec.draw_noise(dist, 64, rng=7, tau=1.5)
        np.testing.assert_array_equal(estimate("reinmax", dist, f, noise=noise, tau=1.5),
                                      estimate("reinmax", dist, f, n=64, rng=7, tau=1.5))


# ---------------------------------------------------------------- exact moments


@pytest.mark.parametrize("dist, f", [(CAT, CAT_TABLE), (CAT, WCUBE),
                                     (BERN, BERN_TABLE), (BERN, BCUBE)])
@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_exact_mean_equals_twin(dist, f, tau):
    m = exact.moments("reinmax", dist, f, tau=tau)
    assert m.method == "enumeration"
    np.testing.assert_allclose(m.mean, twin_mean(dist, f, tau), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dist, f, tau", [(CAT, CAT_TABLE, 2.0), (CAT, SquaredDistance(0.3), 0.5),
                                          (BERN, BERN_TABLE, 0.5), (BERN, BCUBE, 1.0)])
def test_exact_bias_is_nonzero(dist, f, tau):
    bias = exact.moments("reinmax", dist, f, tau=tau).mean - exact.gradient(dist, f)
    assert np.max(np.abs(bias)) > 1e-2, bias


ONE_CAT = Categorical(np.array([[0.3, -0.5, 1.1]]))
ONE_QUAD = FunctionObjective(lambda z: np.einsum("nik,kl,nil->n", z, A, z) + z[:, :, 0].sum(axis=1),
                             lambda z: 2.0 * np.einsum("kl,nil->nik", A, z) + np.eye(3)[0], name="quadratic")


@pytest.mark.parametrize("dist, f", [(CAT, SquaredDistance(0.3)), (CAT, CAT_TABLE), (CAT, QUAD),
                                     (BERN, SquaredDistance(0.3)), (BERN, BERN_TABLE)])
def test_second_order_unbiased_at_tau_one(dist, f):
    """The paper's claim: at τ = 1 the mean is the trapezoid rule along edges, exact for quadratic f."""
    bias = exact.moments("reinmax", dist, f, tau=1.0).mean - exact.gradient(dist, f)
    np.testing.assert_allclose(bias, 0.0, atol=1e-14)


def test_bias_is_first_order_in_tau_minus_one():
    """Away from τ = 1 the midpoint moves: relative bias 0.0036 at τ = 1 ± 0.01, 0.033-0.039 at 1 ± 0.1."""
    grad = exact.gradient(ONE_CAT, ONE_QUAD)
    rel = {tau: np.max(np.abs(exact.moments("reinmax", ONE_CAT, ONE_QUAD, tau=tau).mean - grad)) / np.max(np.abs(grad))
           for tau in (0.9, 0.99, 1.01, 1.1)}
    for near, far in ((0.99, 0.9), (1.01, 1.1)):
        assert 1e-3 < rel[near] < 1e-2 and 0.08 < rel[near] / rel[far] < 0.12, rel


def test_weighted_cubic_mean_is_trapezoid_rule():
    """f(e_k) = w_k, ∇f(e_k) = 3 w_k e_k: trapezoid gives 1.5 (w_k − w_j), so E[ĝ] = 1.5 × the gradient."""
    f = FunctionObjective(lambda z: (W * z**3).sum(axis=(1, 2)), lambda z: 3.0 * W * z**2, name="wcube")
    np.testing.assert_allclose(exact.moments("reinmax", ONE_CAT, f).mean, 1.5 * exact.gradient(ONE_CAT, f),
                               rtol=1e-12)


@pytest.mark.parametrize("dist, f", [(ONE_CAT, ONE_QUAD), (Bernoulli(np.array([0.4, -1.2])),
                                                            SquaredDistance(0.3))])
def test_straight_through_is_biased_where_reinmax_is_not(dist, f):
    st = exact.moments("straight_through", dist, f, tau=1.0).mean - exact.gradient(dist, f)
    rm = exact.moments("reinmax", dist, f, tau=1.0).mean - exact.gradient(dist, f)
    assert np.max(np.abs(st)) > 1e-2 and np.max(np.abs(rm)) < 1e-14


# ---------------------------------------------------------------- Monte Carlo (α = 1e-3, seed 0)


def test_monte_carlo_detects_bias():
    testing.assert_biased("reinmax", BERN, BCUBE, n=20000, alpha=1e-3, rng=0, tau=1.0)
    testing.assert_biased("reinmax", CAT, CAT_TABLE, n=20000, alpha=1e-3, rng=0, tau=2.0)


def test_monte_carlo_unbiased_on_quadratic_at_tau_one():
    testing.assert_unbiased("reinmax", CAT, SquaredDistance(0.3), n=20000, alpha=1e-3, rng=0)


# ---------------------------------------------------------------- mutation: a broken term is caught


@pytest.mark.parametrize("mutation", ["half_pi0", "no_midpoint", "tau_on_pi0"])
def test_mutations_fail_the_twin(monkeypatch, mutation):
    original = reinmax_module.reinmax_categorical
    vjp = reinmax_module._softmax_vjp

    def broken(logits, tau, D, g):
        p0 = Categorical(logits).probs[None]
        p1 = 0.5 * (D + Categorical(logits / tau).probs[None])
        if mutation == "half_pi0":  # − π0/2 replaced by − π0
            return 2.0 * vjp(p1, g) - vjp(p0, g)
        if mutation == "no_midpoint":  # π1 = softmax(θ/τ) instead of (D + softmax(θ/τ))/2
            return 2.0 * vjp(2 * p1 - D, g) - 0.5 * vjp(p0, g)
        return 2.0 * vjp(p1, g) - 0.5 * vjp(Categorical(logits / tau).probs[None], g)  # π0 at temperature τ

    assert original is not broken
    monkeypatch.setattr(reinmax_module, "reinmax_categorical", broken)
    with pytest.raises(AssertionError):
        test_exact_mean_equals_twin(CAT, CAT_TABLE, 2.0)
