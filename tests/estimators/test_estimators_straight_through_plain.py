"""Plain straight-through (Bengio, Léonard & Courville 2013; the form of distrax and redge).

* The kernel against a twin written here with loops over the Jacobian entries (SciPy's
  ``expit``, ``ndtr`` and ``softmax``, nothing from refgrad), against central finite
  differences of ``φ ↦ ⟨p(φ), ∇f(b)⟩`` at the fixed sample (the derivative of
  ``b + p − stop_gradient(p)``) and against PyTorch autograd of that expression.
* Exact moments (enumeration of the sample) against the closed form ``Σ_b q(b) Jᵀ ∇f(b)``
  written below with itertools, to 1e-13; against Monte Carlo intervals
  (``exact.moments(method="monte_carlo")``, confidence 1 − 1e-4 per coordinate, seeds
  stated); the separable method against enumeration.
* Bias: zero for every multilinear f (linear f, ``Table``: derivation in the module
  docstring), nonzero for ``(b − t)²`` (closed form ``σ'(ℓ)(2σ(ℓ) − 1)``) and for a cubic;
  ``backward="identity"`` biased already for linear f.
* Monte Carlo checks state α and seed: ``refgrad.testing.assert_biased`` /
  ``assert_unbiased`` at α = 1e-3, seed 0.
"""
import itertools

import numpy as np
import pytest
from scipy import special

import refgrad
import refgrad.estimators.straight_through_plain as stp
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance, Table

NAME = "straight_through_plain"
RNG = np.random.default_rng(20130803)
W = np.array([0.7, -1.3, 2.1])
WCUBE = FunctionObjective(lambda z: (W * z**3).sum(axis=(1, 2)), lambda z: 3.0 * W * z**2, name="wcube")
BCUBE = FunctionObjective(lambda z: (z**3).sum(axis=1), lambda z: 3.0 * z**2, name="cube")
CAT = Categorical(np.array([[0.3, -0.5, 1.1], [0.2, 0.0, -0.7]]))
CAT_TABLE = Table(RNG.normal(size=(3, 3)))
BERN = Bernoulli(np.array([0.4, -1.2, 2.0]))
BERN_TABLE = Table(RNG.normal(size=(2, 2, 2)))
GT = GaussianThreshold(np.array([0.4, -0.7, 1.1]))
SQ = SquaredDistance([0.45, 0.1, 0.8])


# ---------------------------------------------------------------- independent twins


def twin_probs(family, params):
    """The probability map p(φ) with SciPy: σ(ℓ), Φ(μ) (bits) or softmax per row."""
    if family == "bernoulli":
        return special.expit(params)
    if family == "gaussian_threshold":
        return special.ndtr(params)
    return special.softmax(params, axis=-1)


def twin_estimate(family, params, c, backward="probs"):
    """One estimate from ``c = ∇f(b)`` with explicit loops: Σ_j (∂p_j/∂φ_k) c_j per variable."""
    out = np.zeros_like(c)
    if backward == "identity":
        return c.copy()
    for i in range(params.shape[0]):
        if family == "bernoulli":
            slope = special.expit(params[i]) * (1.0 - special.expit(params[i])) if np.isfinite(params[i]) else 0.0
            out[i] = slope * c[i]
        elif family == "gaussian_threshold":
            out[i] = np.exp(-0.5 * params[i] ** 2) / np.sqrt(2 * np.pi) * c[i]
        else:
            row = params[i]
            if np.isposinf(row).any():  # +inf entries share the mass equally (Categorical's convention)
                row = np.where(np.isposinf(row), 0.0, -np.inf)
            p = special.softmax(row)
            for k in range(len(p)):
                for j in range(len(p)):
                    out[i, k] += ((k == j) * p[k] - p[k] * p[j]) * c[i, j]
    return out


def twin_support(dist):
    """Every configuration (bits, or one-hot rows) with its probability, by itertools."""
    family = dist.family
    params = dist.params
    d = params.shape[0]
    if family == "categorical":
        probs = special.softmax(np.where(np.isposinf(params).any(axis=1, keepdims=True),
                                         np.where(np.isposinf(params), 0.0, -np.inf), params), axis=1)
        K = params.shape[1]
        for config in itertools.product(range(K), repeat=d):
            yield np.prod([probs[i, k] for i, k in enumerate(config)]), np.eye(K)[list(config)]
    else:
        p1 = twin_probs(family, params)
        for config in itertools.product((0, 1), repeat=d):
            yield np.prod([p1[i] if bit else 1.0 - p1[i] for i, bit in enumerate(config)]), np.array(config, float)


def twin_moments(dist, f, backward="probs"):
    """Σ_b q(b) Jᵀ∇f(b) and Σ_b q(b) (g − mean)(g − mean)ᵀ over the support."""
    rows = [(w, twin_estimate(dist.family, dist.params, f.grad(b[None])[0], backward)) for w, b in twin_support(dist)]
    mean = sum(w * g for w, g in rows)
    cov = sum(w * np.outer(g - mean, g - mean) for w, g in rows)
    return mean, cov


def uniforms(shape, n, seed):
    return np.random.default_rng(seed).uniform(0.02, 0.98, size=(n,) + shape)


DISTS = {"bernoulli": BERN, "categorical": CAT, "gaussian_threshold": GT}
TABLES = {"bernoulli": BERN_TABLE, "categorical": CAT_TABLE, "gaussian_threshold": BERN_TABLE}
NONLINEAR = {"bernoulli": BCUBE, "categorical": WCUBE, "gaussian_threshold": BCUBE}


# ---------------------------------------------------------------- registration and options


def test_registered_spec():
    spec = ESTIMATORS[NAME]
    assert spec.unbiased is False
    assert spec.families == ("bernoulli", "categorical", "gaussian_threshold")
    assert spec.given_samples is not None and spec.shape_in_noise == "piecewise_constant"
    assert spec.cost_of(CAT) == 1 and spec.cost_of(BERN, backward="identity") == 1 and spec.cost_of(GT) == 1
    assert [(f.name, f.shape) for f in spec.noise_layout(CAT)] == [("u", (2, 3))]
    assert spec.options(BERN) == {"backward": "probs"}
    for words in ("Bengio", "distrax", "redge", "stop_gradient", "multilinear"):
        assert words in spec.doc, words


@pytest.mark.parametrize("backward", ["Probs", "softmax", "", 3, None, ("probs",)])
def test_bad_backward_raises_value_error_naming_it(backward):
    with pytest.raises(ValueError, match=r"backward must be one of \['probs', 'identity'\]"):
        estimate(NAME, CAT, SQ, n=2, rng=0, backward=backward)


def test_bad_options_family_and_objective():
    with pytest.raises(ValueError, match="unknown option.*allowed options: backward"):
        estimate(NAME, BERN, SQ, n=2, rng=0, tau=1.0)
    with pytest.raises(ValueError, match="does not support family 'normal'"):
        estimate(NAME, refgrad.Normal(np.zeros(2)), SquaredDistance(0.3), n=2, rng=0)
    with pytest.raises(ValueError, match="needs the gradient"):
        estimate(NAME, BERN, FunctionObjective(lambda z: z.sum(axis=1)), n=2, rng=0)


# ---------------------------------------------------------------- the kernel: twin, FD, autograd


@pytest.mark.parametrize("backward", ["probs", "identity"])
@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_estimate_equals_loop_twin(family, backward):
    dist = DISTS[family]
    for f in (TABLES[family], NONLINEAR[family], SQ if family != "categorical" else SquaredDistance(0.3)):
        u = uniforms(dist.event_shape, 16, seed=1)
        got = estimate(NAME, dist, f, noise={"u": u}, backward=backward)
        b = dist.from_uniforms(u)
        c = f.grad(b)
        want = np.stack([twin_estimate(family, dist.params, c[s], backward) for s in range(len(u))])
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_estimate_is_fd_of_probabilities_at_fixed_sample(family):
    """ĝ = ∂/∂φ ⟨p(φ), c⟩ with c = ∇f(b) held fixed: the derivative of b + p − stop_gradient(p)."""
    dist = DISTS[family]
    f = NONLINEAR[family]
    u = uniforms(dist.event_shape, 5, seed=2)
    got = estimate(NAME, dist, f, noise={"u": u})
    c = f.grad(dist.from_uniforms(u))
    for s in range(len(u)):
        fd = central_fd(lambda phi: np.sum(twin_probs(family, phi) * c[s]), dist.params)
        np.testing.assert_allclose(got[s], fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_estimate_equals_torch_autograd_of_the_stop_gradient_form(family):
    """``b + p − p.detach()`` in PyTorch (the form of distrax and redge), ⟨·, ∇f(b)⟩ back-propagated."""
    torch = pytest.importorskip("torch")
    dist = DISTS[family]
    f = TABLES[family]
    u = uniforms(dist.event_shape, 4, seed=3)
    got = estimate(NAME, dist, f, noise={"u": u})
    b = dist.from_uniforms(u)
    c = f.grad(b)
    for s in range(len(u)):
        phi = torch.tensor(dist.params, dtype=torch.float64, requires_grad=True)
        if family == "bernoulli":
            p = torch.sigmoid(phi)
        elif family == "gaussian_threshold":
            p = torch.special.ndtr(phi)
        else:
            p = torch.softmax(phi, dim=-1)
        out = torch.tensor(b[s]) + p - p.detach()
        # the forward value is the sample, up to the rounding of (b + p) − p
        np.testing.assert_allclose(out.detach().numpy(), b[s], rtol=0, atol=2e-16)
        (out * torch.tensor(c[s])).sum().backward()
        np.testing.assert_allclose(got[s], phi.grad.numpy(), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("ell", [0.4, -1.2, 30.0])
def test_bernoulli_is_the_k2_categorical_over_the_bit(ell):
    bern = Bernoulli(np.array([ell, 0.3]))
    cat = Categorical(np.stack([np.zeros(2), bern.params], axis=1))
    u = uniforms((2,), 8, seed=4)
    b = bern.from_uniforms(u)
    gb = estimate(NAME, bern, BCUBE, noise={"u": u})
    c = np.stack([np.zeros_like(b), BCUBE.grad(b)], axis=2)
    gc = stp.plain_straight_through_categorical(cat.probs, c)
    np.testing.assert_allclose(gb, gc[:, :, 1], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(gc.sum(axis=2), 0.0, atol=1e-15)


def test_noise_equals_rng():
    spec = ESTIMATORS[NAME]
    for family, dist in DISTS.items():
        for backward in ("probs", "identity"):
            noise = spec.draw_noise(dist, 64, rng=7, backward=backward)
            np.testing.assert_array_equal(estimate(NAME, dist, TABLES[family], noise=noise, backward=backward),
                                          estimate(NAME, dist, TABLES[family], n=64, rng=7, backward=backward))


# ---------------------------------------------------------------- infinite and extreme parameters


def test_infinite_parameters():
    g = estimate(NAME, Bernoulli(np.array([np.inf, -np.inf, 0.0])), SQ, n=20, rng=0)
    assert np.all(g[:, :2] == 0.0) and np.all(g[:, 2] != 0.0)
    g = estimate(NAME, GaussianThreshold(np.array([np.inf, -np.inf, 0.0])), SQ, n=20, rng=0)
    assert np.all(g[:, :2] == 0.0) and np.all(g[:, 2] != 0.0)
    # a categorical row is read through its probabilities: one +inf logit gives p = e_k and 0; two share the
    # mass (Categorical's convention, as exact.gradient); -inf entries have p = 0
    cat = Categorical(np.array([[np.inf, np.inf, 0.0], [0.0, -np.inf, 1.0], [np.inf, 0.0, -np.inf]]))
    f = Table(RNG.normal(size=(3, 3, 3)))
    u = uniforms((3, 3), 50, 6)
    g = estimate(NAME, cat, f, noise={"u": u})
    assert np.all(g[:, 2] == 0.0) and np.all(g[:, 1, 1] == 0.0) and np.all(g[:, 0, 2] == 0.0)
    assert np.all(g[:, 1, [0, 2]] != 0.0) and np.any(g[:, 0, :2] != 0.0)
    c = f.grad(cat.from_uniforms(u))
    want = np.stack([twin_estimate("categorical", cat.params, c[s]) for s in range(len(u))])
    np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-15)
    # unbiased on the multilinear Table also there
    m = exact.moments(NAME, cat, f)
    assert np.all(np.isfinite(m.cov))
    np.testing.assert_allclose(m.mean, exact.gradient(cat, f), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m.mean, twin_moments(cat, f)[0], rtol=1e-13, atol=1e-15)
    # identity copies the gradient whatever the logits
    gi = estimate(NAME, cat, f, noise={"u": uniforms((3, 3), 4, 5)}, backward="identity")
    np.testing.assert_array_equal(gi, f.grad(cat.from_uniforms(uniforms((3, 3), 4, 5))))


def test_extreme_logits_keep_the_tiny_slope():
    g = estimate(NAME, Bernoulli(np.array([700.0, -40.0])), BCUBE, noise={"u": np.array([[0.5, 0.5]])})
    # b = (1, 0): 3 σ(700)σ(−700), 0 (f'(0) = 0)
    np.testing.assert_allclose(g[0], [3.0 * np.exp(-700.0), 0.0], rtol=1e-13)
    g = estimate(NAME, Categorical(np.array([[50.0, 0.0, -50.0]])), WCUBE, noise={"u": np.full((1, 1, 3), 0.5)})
    # b = e_0, c = ∇f(e_0) = (3 w_0, 0, 0): ĝ_0 = p_0 (p_1 + p_2) 3w_0, ĝ_j = −p_j p_0 3w_0 (j = 1, 2)
    p = special.softmax([50.0, 0.0, -50.0])
    want = 3 * W[0] * p[0] * np.array([p[1] + p[2], -p[1], -p[2]])
    np.testing.assert_allclose(g[0, 0], want, rtol=1e-13)
    assert 0 < g[0, 0, 0] < 1e-21  # p_0 ≈ 1: kept as p_0 Σ_j p_j (c_0 − c_j), not a cancelled c_0 − ⟨p, c⟩


@pytest.mark.parametrize("logits", [[40.0, 0.5, -3.0], [0.5, 40.0, -3.0], [-700.0, 30.0, 29.0], [0.1, 0.2, 0.3]])
def test_categorical_kernel_to_mpmath(logits):
    """Every entry to 1e-12 relative against 50-digit arithmetic, also where c_k ≈ c_r and p_r ≈ 1."""
    mpmath = pytest.importorskip("mpmath")
    c = np.array([[[1.0, 1.0 + 1e-9, -2.0]], [[3.0, -1.0, 3.0 + 2e-12]], [[0.0, 0.0, 1e-300]]])
    got = stp.plain_straight_through_categorical(Categorical(np.array([logits])).probs, c)
    with mpmath.workdps(50):
        e = [mpmath.exp(mpmath.mpf(x)) for x in logits]
        p = [x / sum(e) for x in e]
        for s in range(len(c)):
            cs = [mpmath.mpf(float(x)) for x in c[s, 0]]
            mean = sum(pj * cj for pj, cj in zip(p, cs))
            want = [float(p[k] * (cs[k] - mean)) for k in range(3)]
            np.testing.assert_allclose(got[s, 0], want, rtol=1e-12, atol=1e-300,  # subnormal p: its own rounding
                                       err_msg=f"{logits} {c[s]}")


# ---------------------------------------------------------------- exact moments


@pytest.mark.parametrize("backward", ["probs", "identity"])
@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_exact_moments_equal_the_closed_form_over_the_support(family, backward):
    dist = DISTS[family]
    for f in (TABLES[family], NONLINEAR[family]):
        m = exact.moments(NAME, dist, f, backward=backward)
        assert m.method == "enumeration" and m.cost == 1
        mean, cov = twin_moments(dist, f, backward)
        np.testing.assert_allclose(m.mean, mean, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(m.cov, cov, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("family, seed", [("bernoulli", 11), ("categorical", 12), ("gaussian_threshold", 13)])
def test_exact_moments_inside_monte_carlo_intervals(family, seed):
    """Per coordinate, the exact mean and variance lie in the 1 − 1e-4 batch-means intervals (2**17 draws)."""
    dist = DISTS[family]
    f = NONLINEAR[family]
    ex = exact.moments(NAME, dist, f)
    mc = exact.moments(NAME, dist, f, method="monte_carlo", samples=2**17, rng=seed, confidence=1 - 1e-4)
    lo, hi = mc.mean_interval
    assert np.all((lo <= ex.mean) & (ex.mean <= hi)), (ex.mean, lo, hi)
    lo, hi = mc.variance_interval
    assert np.all((lo <= ex.variance) & (ex.variance <= hi)), (ex.variance, lo, hi)
    # not vacuous: the intervals are narrow next to the bias
    assert np.max(mc.mean_interval[1] - mc.mean_interval[0]) < 0.1 * np.max(np.abs(ex.mean - exact.gradient(dist, f)))


def test_separable_method_equals_enumeration():
    for dist in (BERN, CAT, GT):
        f = SquaredDistance(0.3)
        a = exact.moments(NAME, dist, f, method="enumeration")
        b = exact.moments(NAME, dist, f, method="separable")
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(b.cov, a.cov, rtol=1e-12, atol=1e-15)
    big = Bernoulli(np.linspace(-3, 3, 100))
    m = exact.moments(NAME, big, SquaredDistance(0.45))
    assert m.method == "separable"
    p = special.expit(big.params)
    np.testing.assert_allclose(m.mean, p * (1 - p) * 2 * (p - 0.45), rtol=1e-13)


# ---------------------------------------------------------------- bias


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_unbiased_on_multilinear_objectives(family):
    """∂f/∂b_i does not depend on b_i for a multilinear f, so E[Jᵀ∇f(b)] is the gradient term by term."""
    dist = DISTS[family]
    for f in (TABLES[family], Linear(RNG.normal(size=dist.event_shape))):
        np.testing.assert_allclose(exact.moments(NAME, dist, f).mean, exact.gradient(dist, f), rtol=1e-13,
                                   atol=1e-15)
    lin = exact.moments(NAME, dist, Linear(RNG.normal(size=dist.event_shape)))
    np.testing.assert_allclose(lin.cov, 0.0, atol=1e-15)  # linear f: a constant estimate


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_identity_backward_is_biased_on_linear_f(family):
    dist = DISTS[family]
    f = Linear(RNG.normal(size=dist.event_shape) + 2.0)
    bias = exact.moments(NAME, dist, f, backward="identity").mean - exact.gradient(dist, f)
    assert np.max(np.abs(bias)) > 0.5, bias
    np.testing.assert_allclose(exact.moments(NAME, dist, f, backward="identity").mean,
                               f.grad(np.zeros((1,) + dist.event_shape))[0])


@pytest.mark.parametrize("ell, t", [(0.4, 0.45), (-1.2, 0.1), (2.0, 0.8), (0.0, 0.3)])
def test_bit_squared_distance_bias_closed_form(ell, t):
    """E[ĝ] − ∇ = σ'(ℓ)·2(σ(ℓ) − t) − σ'(ℓ)(1 − 2t) = σ'(ℓ)(2σ(ℓ) − 1), independent of t."""
    dist = Bernoulli(np.array([ell]))
    f = SquaredDistance(t)
    bias = exact.moments(NAME, dist, f).mean - exact.gradient(dist, f)
    p = special.expit(ell)
    np.testing.assert_allclose(bias, [p * (1 - p) * (2 * p - 1)], rtol=1e-12, atol=1e-16)
    if ell != 0.0:
        assert abs(bias[0]) > 1e-2


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
def test_biased_on_nonlinear_f(family):
    dist = DISTS[family]
    f = NONLINEAR[family]
    bias = exact.moments(NAME, dist, f).mean - exact.gradient(dist, f)
    assert np.max(np.abs(bias)) > 5e-2, bias


def test_documented_numbers():
    """The numbers in the module docstring.

    Run: python -m pytest tests/estimators/test_estimators_straight_through_plain.py -k documented
    """
    one, f = Bernoulli(np.array([0.4])), SquaredDistance(0.45)
    m = exact.moments(NAME, one, f)
    grad = exact.gradient(one, f)
    np.testing.assert_allclose([m.mean[0], grad[0], m.mean[0] - grad[0], m.variance[0]],
                               [0.07145, 0.02403, 0.04742, 0.05548], atol=5e-6)
    cat = Categorical(np.array([[0.3, -0.5, 1.1]]))
    grad = exact.gradient(cat, WCUBE)
    rel = {name: np.max(np.abs(exact.moments(name, cat, WCUBE, **o).mean - grad)) / np.max(np.abs(grad))
           for name, o in ((NAME, {}), ("straight_through", {"tau": 1.0}))}
    np.testing.assert_allclose([rel[NAME], rel["straight_through"]], [0.767, 0.353], atol=5e-4)


# ---------------------------------------------------------------- Monte Carlo (α = 1e-3, seed 0)


def test_monte_carlo_detects_bias():
    testing.assert_biased(NAME, BERN, SQ, n=20000, alpha=1e-3, rng=0)
    testing.assert_biased(NAME, CAT, WCUBE, n=20000, alpha=1e-3, rng=0)
    testing.assert_biased(NAME, GT, BCUBE, n=20000, alpha=1e-3, rng=0)


def test_monte_carlo_unbiased_on_tables():
    testing.assert_unbiased(NAME, BERN, BERN_TABLE, n=20000, alpha=1e-3, rng=0)
    testing.assert_unbiased(NAME, CAT, CAT_TABLE, n=20000, alpha=1e-3, rng=0)


# ---------------------------------------------------------------- mutations: a broken kernel is caught


@pytest.mark.parametrize("mutation", ["no_centering", "tau_two", "cancelling", "zero_infinite_rows", "bits_no_slope"])
def test_mutations_fail_the_tests(monkeypatch, mutation):
    cat_kernel, bit_kernel = stp.plain_straight_through_categorical, stp.plain_straight_through_bits

    def broken_cat(probs, c):
        if mutation == "no_centering":  # p ⊙ c instead of p ⊙ (c − ⟨p, c⟩)
            return probs[None] * c
        if mutation == "tau_two":  # softmax(ℓ/2): a temperature where there is none
            return cat_kernel(special.softmax(np.log(np.maximum(probs, 1e-300)) / 2.0, axis=-1), c)
        if mutation == "cancelling":  # the same value in exact arithmetic, cancelling when p_k ≈ 1
            return probs[None] * (c - (probs[None] * c).sum(axis=-1, keepdims=True))
        if mutation == "zero_infinite_rows":  # the straight_through convention: 0 on rows with a +inf logit
            out = cat_kernel(probs, c)
            out[:, (probs == 0.5).any(axis=1), :] = 0.0
            return out
        return cat_kernel(probs, c)

    def broken_bits(slope, c):
        return c if mutation == "bits_no_slope" else bit_kernel(slope, c)

    monkeypatch.setattr(stp, "plain_straight_through_categorical", broken_cat)
    monkeypatch.setattr(stp, "plain_straight_through_bits", broken_bits)
    with pytest.raises(AssertionError):
        if mutation == "zero_infinite_rows":
            test_infinite_parameters()
        elif mutation == "cancelling":
            test_extreme_logits_keep_the_tiny_slope()
        elif mutation == "bits_no_slope":
            test_estimate_equals_loop_twin("bernoulli", "probs")
        else:
            test_exact_moments_equal_the_closed_form_over_the_support("categorical", "probs")
