"""exact.moments: agreement between methods, means equal to exact.gradient, exact variance orderings.

Deterministic checks use stated absolute tolerances; the one Monte Carlo check of
the oracle's variance uses seed 31 and a stated chi-square bound.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refgrad
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.objectives import FunctionObjective, SquaredDistance, Table

TOY = SquaredDistance(np.array([0.499]))

logit_lists = st.lists(st.floats(-6.0, 6.0), min_size=1, max_size=3)


def table_for(dist, seed):
    rng = np.random.default_rng(seed)
    K = 2 if dist.family != "categorical" else dist.K
    return Table(rng.normal(size=(K,) * dist.d))


@pytest.mark.parametrize(
    "dist",
    [
        Bernoulli(np.array([0.3])),
        Bernoulli(np.array([1.1, -0.4])),
        GaussianThreshold(np.array([-0.6])),
        Categorical(np.array([[0.3, -1.0, 0.5]])),
    ],
    ids=["bern1", "bern2", "gt1", "cat3"],
)
def test_reinforce_enumeration_equals_quadrature(dist):
    f = table_for(dist, 1)
    a = exact.moments("reinforce", dist, f, method="enumeration")
    b = exact.moments("reinforce", dist, f, method="quadrature", level=4)
    np.testing.assert_allclose(b.mean, a.mean, atol=1e-12)
    np.testing.assert_allclose(b.cov, a.cov, atol=1e-12)
    assert a.method == "enumeration" and b.method == "quadrature" and b.error < 1e-10


@pytest.mark.parametrize("name", ["arm", "disarm"])
@pytest.mark.parametrize("logit", [-3.0, -0.2, 0.9])
def test_piecewise_equals_quadrature(name, logit):
    dist = Bernoulli(np.array([logit]))
    a = exact.moments(name, dist, TOY)
    b = exact.moments(name, dist, TOY, method="quadrature", level=5)
    assert a.method == "piecewise"
    np.testing.assert_allclose(b.mean, a.mean, atol=1e-12)
    np.testing.assert_allclose(b.cov, a.cov, atol=1e-12)


@settings(max_examples=15)
@given(logits=logit_lists, seed=st.integers(0, 1000))
def test_unbiased_means_equal_exact_gradient(logits, seed):
    dist = Bernoulli(np.array(logits))
    f = table_for(dist, seed)
    target = exact.gradient(dist, f)
    for name, options in [("reinforce", {}), ("reinforce", {"baseline": "optimal"}), ("rloo", {"m": 2}),
                          ("muprop", {}), ("arm", {}), ("disarm", {})]:
        m = exact.moments(name, dist, f, **options)
        np.testing.assert_allclose(m.mean, target, atol=1e-12, err_msg=name)


@settings(max_examples=15)
@given(logits=hnp.arrays(np.float64, st.tuples(st.integers(1, 2), st.integers(2, 3)), elements=st.floats(-5, 5)),
       seed=st.integers(0, 1000))
def test_categorical_means_equal_exact_gradient(logits, seed):
    dist = Categorical(logits)
    f = table_for(dist, seed)
    target = exact.gradient(dist, f)
    for name, options in [("reinforce", {}), ("reinforce", {"baseline": "optimal"}), ("rloo", {"m": 2}),
                          ("muprop", {})]:
        np.testing.assert_allclose(exact.moments(name, dist, f, **options).mean, target, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------ exact orderings that are theorems


@settings(max_examples=20)
@given(logits=logit_lists, seed=st.integers(0, 1000))
def test_optimal_baseline_never_worse_than_none(logits, seed):
    dist = Bernoulli(np.array(logits))
    f = table_for(dist, seed)
    none = exact.moments("reinforce", dist, f).variance
    best = exact.moments("reinforce", dist, f, baseline="optimal").variance
    for c in (0.0, 1.0, -2.0):
        assert np.all(best <= exact.moments("reinforce", dist, f, baseline=c).variance + 1e-12)
    assert np.all(best <= none + 1e-12)


@settings(max_examples=20)
@given(logits=logit_lists, seed=st.integers(0, 1000))
def test_disarm_never_worse_than_arm(logits, seed):
    # DisARM is ARM conditioned on the antithetic pair: a conditional expectation cannot add variance.
    dist = Bernoulli(np.array(logits))
    f = table_for(dist, seed)
    arm = exact.moments("arm", dist, f).variance
    disarm = exact.moments("disarm", dist, f).variance
    assert np.all(disarm <= arm + 1e-12)


def test_one_bit_optimal_baseline_has_zero_variance():
    # For one bit, (f(b) − c) s(b) takes two values; the optimal c makes them equal.
    m = exact.moments("reinforce", Bernoulli(np.array([0.3])), TOY, baseline="optimal")
    assert m.variance[0] < 1e-20


# ------------------------------------------------------------------ the oracle against Monte Carlo


@pytest.mark.parametrize("name, options", [("reinforce", {}), ("rloo", {"m": 3}), ("arm", {}), ("disarm", {}),
                                           ("muprop", {})])
def test_exact_variance_matches_sample_variance(name, options):
    # seed 31, n = 20000: (n−1) s² / σ² ~ approximately χ²(n−1) scaled by the kurtosis; we use the
    # kurtosis-robust standard error of s²: sqrt((μ4 − σ⁴)/n), |z| < 5 per coordinate.
    dist = Bernoulli(np.array([0.6, -1.4]))
    f = table_for(dist, 4)
    m = exact.moments(name, dist, f, **options)
    g = refgrad.estimate(name, dist, f, 20000, rng=31, **options)
    dev = g - m.mean
    s2 = (dev**2).mean(axis=0)
    se = np.sqrt(((dev**4).mean(axis=0) - s2**2) / len(g))
    z = (s2 - m.variance) / se
    assert np.all(np.abs(z) < 5), (z, s2, m.variance)


# ------------------------------------------------------------------ normal family and refusals


def test_seed001_variances_by_quadrature():
    # z ~ N(aθ + c, 1), f = z²: pathwise ĝ = 2a z has variance 4a²; score ĝ = z² a (z − μ) has
    # E = 2aμ and E[ĝ²] = a² E[z⁴ (z−μ)²] = a² (μ⁴ + 14 μ² + 15)·… computed here in closed form.
    a, c, theta = 1.5, -0.4, 0.7
    mu = a * theta + c
    dist = Normal(np.array([theta]), scale=a, offset=c)
    f = SquaredDistance(np.array([0.0]))
    pw = exact.moments("pathwise", dist, f)
    sf = exact.moments("reinforce", dist, f)
    np.testing.assert_allclose(pw.mean, [2 * a * mu], atol=1e-10)
    np.testing.assert_allclose(pw.variance, [4 * a * a], atol=1e-9)
    np.testing.assert_allclose(sf.mean, [2 * a * mu], atol=1e-9)
    # E[z^4 ε^2] with z = μ + ε: expand; moments of ε: 1, 0, 1, 0, 3, 0, 15
    e = {0: 1, 1: 0, 2: 1, 3: 0, 4: 3, 5: 0, 6: 15}
    from math import comb

    ez4e2 = sum(comb(4, k) * mu ** (4 - k) * e[k + 2] for k in range(5))
    np.testing.assert_allclose(sf.variance, [a * a * ez4e2 - (2 * a * mu) ** 2], rtol=1e-9)


def test_refusals():
    with pytest.raises(ValueError, match="dimension"):
        exact.moments("reinforce", Bernoulli(np.zeros(5)), table_for(Bernoulli(np.zeros(5)), 0), method="quadrature")
    with pytest.raises(ValueError, match="limit"):
        exact.moments("rloo", Bernoulli(np.zeros(8)), table_for(Bernoulli(np.zeros(8)), 0), m=3)
    with pytest.raises(ValueError, match="method"):
        exact.moments("reinforce", Bernoulli(np.zeros(1)), TOY, method="monte carlo")
    with pytest.raises(ValueError, match="not piecewise|quadrature"):
        exact.moments("pathwise", Normal(np.zeros(1)), SquaredDistance(np.zeros(1)), method="piecewise")
    with pytest.raises(ValueError, match="discrete samples"):
        exact.moments("arm", Bernoulli(np.zeros(1)), TOY, method="enumeration")


# ------------------------------------------------------------------ relaxation-based estimators


@pytest.mark.parametrize("dist, f", [
    (Bernoulli(np.array([0.3])), TOY),
    (Categorical(np.array([[0.3, -1.0, 0.5]])), SquaredDistance(np.array([[0.2, 0.5, 0.3]]))),
], ids=["bern", "cat3"])
def test_gumbel_rao_exact_moments(dist, f):
    # E[GR_k] = E[ST] for every k (the identity derivative); Var decreases in k towards E[Var(ST|b)]-free limit.
    st_m = exact.moments("straight_through", dist, f, level=4)
    variances = []
    for k in (1, 3, 10):
        gr = exact.moments("gumbel_rao", dist, f, level=4, k=k)
        np.testing.assert_allclose(gr.mean, st_m.mean, atol=1e-10)
        variances.append(gr.variance)
    np.testing.assert_allclose(variances[0], st_m.variance, atol=1e-10)  # k = 1 is straight-through
    assert np.all(variances[1] < variances[0]) and np.all(variances[2] < variances[1])
    # against Monte Carlo, seed 41, n = 40000, kurtosis-robust |z| < 5
    g = refgrad.estimate("gumbel_rao", dist, f, 40000, rng=41, k=10)
    dev = g - gr.mean
    s2 = (dev**2).mean(axis=0)
    se = np.sqrt(((dev**4).mean(axis=0) - s2**2) / len(g))
    assert np.all(np.abs((s2 - gr.variance) / se) < 5)


def test_gumbel_softmax_exact_bias_shrinks_with_tau():
    dist = Bernoulli(np.array([0.4]))
    target = exact.gradient(dist, TOY)
    biases = [abs(exact.moments("gumbel_softmax", dist, TOY, tau=t).mean[0] - target[0]) for t in (1.0, 0.3, 0.1)]
    assert biases[0] > biases[1] > biases[2]


def test_gumbel_softmax_small_tau_oracle_converges():
    # The relaxation has a layer of width ~τ at the sample threshold; the declared split point
    # there keeps tanh-sinh accurate: default level and level 9 agree, with a small error estimate.
    dist = Bernoulli(np.array([0.3]))
    for tau in (0.02, 0.05):
        a = exact.moments("gumbel_softmax", dist, TOY, tau=tau)
        b = exact.moments("gumbel_softmax", dist, TOY, tau=tau, level=9)
        assert a.error < 1e-10
        np.testing.assert_allclose(a.variance, b.variance, rtol=1e-10)
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-12)


# ------------------------------------------------------------------ overflow and the limits of the oracle


@pytest.mark.parametrize("name, f", [
    ("reinforce", Table(np.array([1e200, -1e200]))),   # E[ĝ²] beyond float64: the variance was NaN
    ("arm", Table(np.array([1e308, -1e308]))),          # f(b¹) − f(b²) = inf inside the noise domain
])
def test_overflow_is_refused(name, f):
    with pytest.raises(ValueError, match=r"f=Table\(d=1, K=2\).*overflow.*rescale the objective"):
        exact.moments(name, Bernoulli(np.array([0.3])), f)


def test_large_noise_dimension_is_refused_clearly():
    # 100 bits: support size 2**100 (a Python int) used to hit np.isfinite -> TypeError
    # (a separable objective there has exact moments by the separable method: tests/moments/test_separable.py)
    dist = Bernoulli(np.linspace(-2, 2, 100))
    coupled = FunctionObjective(lambda z: np.prod(z, axis=1), lambda z: np.prod(z, axis=1)[:, None] / z)
    with pytest.raises(ValueError, match=r"dist=Bernoulli with event shape \(100,\) need a 200-dimensional "
                                         r"integral.*limited to 4 dimensions"):
        exact.moments("rebar", dist, coupled)
    with pytest.raises(ValueError, match=r"1\.267e\+30\*\*1 = 1\.267e\+30 sample tuples, beyond limit"):
        exact.moments("reinforce", dist, coupled)


@pytest.mark.parametrize("level, error, match", [
    (70, ValueError, r"level must be an integer in \[2, 16\].*got 70"),
    (2000, ValueError, r"level must be an integer in \[2, 16\].*got 2000"),
    (1, ValueError, r"got 1"),
    (3.0, TypeError, r"got 3\.0 of type float"),
    (True, TypeError, r"got True of type bool"),
])
def test_level_is_validated(level, error, match):
    with pytest.raises(error, match=match):
        exact.moments("gumbel_softmax", Bernoulli(np.array([0.3])), TOY, level=level)


def test_method_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="method must be the string"):
        exact.moments("reinforce", Bernoulli(np.array([0.3])), TOY, method=None)


def test_too_many_quadrature_nodes_are_refused():
    # level 12 on two bits: ~1e10 evaluations of the latent quadrature, refused by the time estimate first
    dist = Bernoulli(np.array([0.3, -0.2]))
    with pytest.raises(ValueError, match=r"level=12 need about \d+ evaluations of the estimator.*smaller level"):
        exact.moments("rebar", dist, SquaredDistance(np.array([0.45, 0.45])), level=12)


def test_piecewise_refuses_a_continuous_distribution():
    with pytest.raises(ValueError, match="continuous.*quadrature"):
        exact.moments("reinforce", Normal(np.zeros(1)), SquaredDistance(np.zeros(1)), method="piecewise")
