"""gapped_straight_through (GST, Fan, Chi, Rudnicky & Ramadge, ICML 2022).

* Twin: an independent plain-Python rebuild of the estimate (loops over categories,
  f's gradient at a vertex read off the Table, not from refgrad's objectives), summed
  over every configuration: its mean must equal ``exact.moments`` (enumeration) to
  1e-12, and differ from ``exact.gradient`` (the estimator is biased).
* Pathwise: at a fixed sample, the estimate equals central finite differences of
  ``θ ↦ ⟨c, softmax((θ + m̄)/τ)⟩`` with the perturbation m̄ frozen (detached).
* Monte Carlo: ``refgrad.testing.assert_biased`` at alpha = 1e-3 with the fixed
  default seed detects the bias (n = 20 000: the largest coordinate bias is 121 standard errors).
* Mutation: dropping the gap, or the temperature, from the formula makes the twin
  comparison fail.
"""
import itertools

import numpy as np
import pytest
from scipy import integrate, special

import refgrad.estimators.gapped_straight_through as gst
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators import ESTIMATORS, estimate
from refgrad.objectives import Linear, SquaredDistance, Table
from refgrad.testing import assert_biased

NAME = "gapped_straight_through"
RNG = np.random.default_rng(20220715)
CAT_LOGITS = np.array([[0.3, -0.5, 1.0], [-1.2, 0.4, 0.0]])
CAT_TABLE = Table(RNG.normal(size=(3, 3)) + np.arange(9).reshape(3, 3) ** 1.5 / 4.0)
BIT_LOGITS = np.array([0.7, -1.3])
BIT_TABLE = Table(np.array([[0.2, -1.0], [1.5, 0.3]]))


# ---------------------------------------------------------------- independent twin


def _twin_gap(pi, gap):
    if gap != "p":
        return gap
    return -np.log(1.0 - pi) / pi


def _twin_row_cat(theta, i, c, tau, gap):
    """One categorical variable: perturbed logits by loops, softmax VJP written out."""
    K = len(theta)
    p = np.exp(theta - theta.max())
    p = p / p.sum()
    kappa = _twin_gap(p[i], gap)
    top = max(theta)
    z = [top if j == i else min(theta[j], top - kappa) for j in range(K)]
    w = [np.exp((zj - top) / tau) for zj in z]
    s = [wj / sum(w) for wj in w]
    cbar = sum(s[k] * c[k] for k in range(K))
    return np.array([s[j] * (c[j] - cbar) / tau for j in range(K)])


def _twin_cat(logits, values, tau, gap):
    d, K = logits.shape
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    mean = np.zeros((d, K))
    for cfg in itertools.product(range(K), repeat=d):
        w = np.prod([p[a, cfg[a]] for a in range(d)])
        for a in range(d):
            c = [values[cfg[:a] + (k,) + cfg[a + 1:]] for k in range(K)]  # ∂F/∂z_{a,k} at a vertex
            mean[a] += w * _twin_row_cat(logits[a], cfg[a], c, tau, gap)
    return mean


def _twin_bits(logits, values, tau, gap):
    d = len(logits)
    mean = np.zeros(d)
    for cfg in itertools.product((0, 1), repeat=d):
        pr = [1 / (1 + np.exp(-logits[a])) if cfg[a] else 1 / (1 + np.exp(logits[a])) for a in range(d)]
        w = np.prod(pr)
        for a in range(d):
            dfdb = values[cfg[:a] + (1,) + cfg[a + 1:]] - values[cfg[:a] + (0,) + cfg[a + 1:]]
            # two categories (0, ℓ): the sampled one raised to the max, the other capped at max − κ
            theta = [0.0, logits[a]]
            kappa = _twin_gap(pr[a], gap)
            top = max(theta)
            z = [top if k == cfg[a] else min(theta[k], top - kappa) for k in (0, 1)]
            x = 1 / (1 + np.exp(-(z[1] - z[0]) / tau))
            mean[a] += w * dfdb * x * (1 - x) / tau
    return mean


CASES = [
    ("categorical", 1.0, 1.0),
    ("categorical", 0.5, 1.0),
    ("categorical", 1.0, "p"),
    ("categorical", 2.0, 0.0),
    ("bernoulli", 1.0, 1.0),
    ("bernoulli", 0.3, 2.5),
    ("bernoulli", 1.0, "p"),
]


def _problem(family):
    if family == "categorical":
        return Categorical(CAT_LOGITS), CAT_TABLE, lambda tau, gap: _twin_cat(CAT_LOGITS, CAT_TABLE.values, tau, gap)
    return Bernoulli(BIT_LOGITS), BIT_TABLE, lambda tau, gap: _twin_bits(BIT_LOGITS, BIT_TABLE.values, tau, gap)


@pytest.mark.parametrize("family, tau, gap", CASES)
def test_exact_mean_equals_twin_and_is_biased(family, tau, gap):
    dist, f, twin = _problem(family)
    m = exact.moments(NAME, dist, f, tau=tau, gap=gap)
    assert m.method == "enumeration"
    want = twin(tau, gap)
    np.testing.assert_allclose(m.mean, want, rtol=0, atol=1e-12)
    bias = m.mean - exact.gradient(dist, f)
    assert np.max(np.abs(bias)) > 1e-3


def test_linear_bit_closed_form():
    """One bit, ℓ = 0, f = b, τ = 1, κ = 1: E[ĝ] = σ(1)σ(−1) = 0.19661 (∇ = 0.25), variance 0."""
    m = exact.moments(NAME, Bernoulli([0.0]), Linear([1.0]))
    np.testing.assert_allclose(m.mean, [special.expit(1.0) * special.expit(-1.0)], rtol=1e-14)
    np.testing.assert_allclose(m.cov, [[0.0]], atol=1e-15)


# ---------------------------------------------------------------- mutations


@pytest.mark.parametrize("mutant", ["nogap", "tau"])
def test_mutants_break_the_twin(monkeypatch, mutant):
    """Drop the gap (others not pushed below max θ − κ), or the temperature of the VJP: the twin check fails."""
    dist, f, twin = _problem("categorical")
    if mutant == "tau":
        real_vjp = gst.softmax_tau_vjp
        monkeypatch.setattr(gst, "softmax_tau_vjp", lambda z, tau, c: real_vjp(z, 1.0, c))
    else:
        real_logits = gst.gapped_logits
        monkeypatch.setattr(gst, "gapped_logits", lambda dist, b, gap=1.0: real_logits(dist, b, 0.0))
    m = exact.moments(NAME, dist, f, tau=0.5, gap=1.0)
    assert np.max(np.abs(m.mean - twin(0.5, 1.0))) > 1e-3


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("gap", [1.0, 0.3, "p"])
def test_sample_is_argmax_by_the_gap(gap):
    dist = Categorical(np.array([[2.0, -1.0, 0.5, 1.9], [0.0, 0.0, -3.0, 5.0]]))
    b = dist.from_uniforms(np.random.default_rng(1).uniform(size=(200, 2, 4)))
    z = gst.gapped_logits(dist, b, gap)
    kappa = gst._gap_array(dist, b, gap)
    zi = (z * b).sum(axis=-1)
    others = np.where(b == 1.0, -np.inf, z).max(axis=-1)
    assert np.all(zi - others >= kappa - 1e-12)
    np.testing.assert_array_equal(zi, dist.params.max(axis=-1)[None].repeat(200, axis=0))
    # the minimal move: untouched where already below max − κ
    lo = (b == 0.0) & (dist.params[None] <= dist.params.max(axis=-1)[None, :, None] - kappa[..., None])
    np.testing.assert_array_equal(z[lo], np.broadcast_to(dist.params[None], z.shape)[lo])


@pytest.mark.parametrize("pi", [1e-12, 1e-3, 0.2, 0.5, 0.7, 0.999, 1 - 1e-9])
def test_expected_gap_is_the_gumbel_gap(pi):
    """κ_p = −log(1−π)/π equals ∫_0^∞ σ(μ − t) dt / σ(μ), μ = log(π/(1−π)) (quadrature)."""
    mu = np.log(pi) - np.log1p(-pi)
    val, _ = integrate.quad(lambda t: special.expit(mu - t), 0.0, np.inf, epsabs=0, epsrel=1e-12, limit=200)
    got = gst._expected_gap(np.array(pi), np.array(1.0 - pi))
    np.testing.assert_allclose(got, val / special.expit(mu), rtol=1e-9)


def test_bernoulli_is_the_two_category_construction():
    """The Bernoulli estimate equals the categorical one on logits (0, ℓ), read at category 1."""
    ell = np.array([-2.0, 0.4, 3.0])
    bits = Bernoulli(ell)
    cat = Categorical(np.stack([np.zeros(3), ell], axis=1))
    u = np.random.default_rng(2).uniform(size=(50, 3))
    b = bits.from_uniforms(u)
    onehot = np.stack([1.0 - b, b], axis=-1)
    w = np.array([0.5, -1.0, 2.0])
    for gap in (1.0, "p"):
        gb = gst._given(bits, Linear(w), b[:, None], 0.7, gap)
        gc = gst._given(cat, Linear(np.stack([np.zeros(3), w], axis=1)), onehot[:, None], 0.7, gap)
        np.testing.assert_allclose(gb, gc[..., 1], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- pathwise part: finite differences


@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
@pytest.mark.parametrize("gap", [1.0, "p"])
def test_pathwise_part_matches_central_differences(family, gap):
    dist, f, _ = _problem(family)
    tau = 0.6
    u = np.random.default_rng(3).uniform(size=(5,) + tuple(dist.event_shape))
    b = dist.from_uniforms(u)
    g = estimate(NAME, dist, f, noise={"u": u}, tau=tau, gap=gap)
    c = f.grad(b)
    m_frozen = gst.gapped_logits(dist, b, gap) - (dist.params[None] if family == "categorical" else dist.params[None])
    h = 1e-6

    def surrogate(theta):
        z = theta[None] + m_frozen
        if family == "categorical":
            s = special.softmax(z / tau, axis=-1)
        else:
            s = special.expit(z / tau)
        return (c * s).reshape(len(b), -1).sum(axis=1)

    fd = np.zeros_like(g)
    for idx in np.ndindex(dist.params.shape):
        e = np.zeros(dist.params.shape)
        e[idx] = h
        fd[(slice(None),) + idx] = (surrogate(dist.params + e) - surrogate(dist.params - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- interface


def test_noise_equals_rng():
    dist, f, _ = _problem("categorical")
    spec = ESTIMATORS[NAME]
    noise = spec.draw_noise(dist, 64, rng=7, tau=0.5, gap="p")
    a = estimate(NAME, dist, f, n=64, rng=7, tau=0.5, gap="p")
    b = estimate(NAME, dist, f, noise=noise, tau=0.5, gap="p")
    np.testing.assert_array_equal(a, b)


def test_monte_carlo_detects_the_bias():
    dist, f, _ = _problem("categorical")
    assert_biased(NAME, dist, f, n=20000, alpha=1e-3)


def test_spec():
    spec = ESTIMATORS[NAME]
    assert not spec.unbiased and spec.families == ("bernoulli", "categorical")
    assert spec.cost_of(Categorical(CAT_LOGITS)) == 1
    assert "Fan" in spec.doc and "κ" in spec.doc


@pytest.mark.parametrize(
    "opts, match",
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": np.inf}, "tau"),
        ({"gap": -0.5}, r"gap must be a finite float >= 0 or the string 'p'; got -0.5"),
        ({"gap": np.inf}, "gap must be"),
        ({"gap": np.nan}, "gap must be"),
        ({"gap": "q"}, r"gap .*'q'"),
        ({"kappa": 1.0}, "unknown option"),
    ],
)
def test_bad_options(opts, match):
    with pytest.raises(ValueError, match=match):
        estimate(NAME, Categorical(CAT_LOGITS), CAT_TABLE, n=2, rng=0, **opts)


def test_bad_option_types_and_family():
    with pytest.raises(TypeError, match="gap must be"):
        estimate(NAME, Bernoulli(BIT_LOGITS), BIT_TABLE, n=2, rng=0, gap=True)
    from refgrad.distributions import GaussianThreshold

    with pytest.raises(ValueError, match="does not support family 'gaussian_threshold'"):
        estimate(NAME, GaussianThreshold([0.1]), SquaredDistance(np.array([0.5])), n=2, rng=0)


def test_infinite_logits_give_finite_estimates():
    dist = Categorical(np.array([[np.inf, 0.0, -np.inf], [0.0, -np.inf, 1.0]]))
    f = Linear(np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]]))
    for gap in (1.0, "p"):
        g = estimate(NAME, dist, f, n=50, rng=0, gap=gap)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[:, 0], 0.0)  # the +inf row is deterministic
        assert np.all(g[:, 1, 1] == 0.0)  # an impossible category gets no gradient
