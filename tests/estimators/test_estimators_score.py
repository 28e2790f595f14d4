"""Score-function, antithetic and pathwise estimators: unbiasedness, determinism, rejection.

Monte Carlo checks use z = 5 per coordinate (family-wise false alarm < 1e-5 for the
sizes here) with the seed stated in each test; exact checks integrate the estimate
over its declared noise with scipy.integrate.quad split at the declared break points.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special

import naive
import refgrad
from estimator_checks import assert_mc_unbiased, central_fd, discrete_problems
from refgrad import exact
from refgrad.distributions import Bernoulli, GaussianThreshold, Normal
from refgrad.estimators import ESTIMATORS
from refgrad.objectives import Linear, SquaredDistance, Table

TOY = SquaredDistance(np.array([0.499]))


UNBIASED_DISCRETE = [
    ("reinforce", {}),
    ("reinforce", {"baseline": 0.7}),
    ("reinforce", {"baseline": "optimal"}),
    ("rloo", {"m": 3}),
    ("muprop", {}),
]


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian_threshold"])
@pytest.mark.parametrize("name, options", UNBIASED_DISCRETE, ids=lambda x: str(x))
def test_score_family_unbiased_monte_carlo(family, name, options):
    # seed 11, n = 20000, |z| <= 5 on every coordinate
    dist, f = discrete_problems()[family]
    assert_mc_unbiased(name, dist, f, n=20000, seed=11, **options)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_antithetic_unbiased_monte_carlo(name):
    dist, f = discrete_problems()["bernoulli"]
    assert_mc_unbiased(name, dist, f, n=20000, seed=12)


def _exact_mean_1d(name, dist, f, **options):
    """E[g] for a one-dimensional noise block, by quad split at the declared break points."""
    spec = ESTIMATORS[name]
    bp = spec.breakpoints(dist, **spec.options(dist, **options))["u"]
    points = [] if bp is None else [p for p in np.ravel(bp) if np.isfinite(p)]

    def g(u):
        return refgrad.estimate(name, dist, f, noise={"u": np.array([[u]])}, **options)[0, 0]

    val, err = integrate.quad(g, 0.0, 1.0, points=points or None, epsabs=1e-13, epsrel=1e-13, limit=200)
    return val


@pytest.mark.parametrize("name, options", [("reinforce", {}), ("reinforce", {"baseline": 0.3}), ("muprop", {}),
                                           ("arm", {}), ("disarm", {})])
@pytest.mark.parametrize("logit", [-2.5, -0.3, 0.0, 1.7])
def test_exact_mean_by_integration_over_u(name, options, logit):
    dist = Bernoulli(np.array([logit]))
    assert abs(_exact_mean_1d(name, dist, TOY, **options) - exact.gradient(dist, TOY)[0]) < 1e-12


def test_exact_mean_gaussian_threshold_reinforce():
    dist = GaussianThreshold(np.array([0.35]))
    assert abs(_exact_mean_1d("reinforce", dist, TOY) - exact.gradient(dist, TOY)[0]) < 1e-12


def _pair(u, logit):
    b1 = float(u > special.expit(-logit))
    b2 = float(u < special.expit(logit))
    return b1, b2, TOY.value(np.array([[b1]]))[0] - TOY.value(np.array([[b2]]))[0]


def test_arm_shifted_weight_is_still_unbiased():
    # f(b1) - f(b2) is antisymmetric under u -> 1 - u, so (u - c) has the same mean for every constant c.
    logit = 0.8
    dist = Bernoulli(np.array([logit]))
    pts = sorted([special.expit(-logit), special.expit(logit)])
    for c in (0.0, 1.0, 0.5):
        val = integrate.quad(lambda u: _pair(u, logit)[2] * (u - c), 0, 1, points=pts, epsabs=1e-14)[0]
        assert abs(val - exact.gradient(dist, TOY)[0]) < 1e-12


def test_disarm_without_sigma_factor_is_detected():
    # Mutation guard: DisARM without its σ(|ℓ|) factor is biased; the exact integral over u shows it.
    logit = 0.8
    dist = Bernoulli(np.array([logit]))
    pts = sorted([special.expit(-logit), special.expit(logit)])

    def wrong(u):
        b1, b2, diff = _pair(u, logit)
        return 0.5 * diff * (-1.0) ** b2 * (b1 != b2)

    val = integrate.quad(wrong, 0, 1, points=pts, epsabs=1e-14)[0]
    right = _exact_mean_1d("disarm", dist, TOY)
    assert abs(right - exact.gradient(dist, TOY)[0]) < 1e-12
    assert abs(val - exact.gradient(dist, TOY)[0]) > 1e-5


def test_optimal_baseline_minimises_exact_variance():
    dist, f = discrete_problems()["bernoulli"]
    from refgrad.estimators.score import optimal_baseline

    c_star = optimal_baseline(dist, f)
    configs, probs = dist.enumerate()
    fb = f.value(configs)
    s = dist.score(configs)

    def variance(c):
        g = (fb[:, None] - c[None]) * s
        mean = probs @ g
        return probs @ (g - mean) ** 2

    v_star = variance(c_star)
    for delta in (1e-3, -1e-3, 0.1, -0.1):
        assert np.all(variance(c_star + delta) > v_star)
    # Seed 003's covariance form Cov(f s, s)/Var(s) gives the same constant (E[s] = 0).
    cov_form = (probs @ (fb[:, None] * s * s) - (probs @ (fb[:, None] * s)) * (probs @ s)) / (
        probs @ (s * s) - (probs @ s) ** 2
    )
    np.testing.assert_allclose(c_star, cov_form, rtol=1e-10)


@pytest.mark.parametrize("shift, rloo_wins", [(5.0, True), (0.0, False)])
def test_rloo_against_reinforce_average_depends_on_the_mean_of_f(shift, rloo_wins):
    # Monte Carlo at equal cost (m = 4 evaluations each), seed 3, n = 10000 estimates of each.
    # RLOO is invariant to adding a constant to f, REINFORCE is not: with E[f] far from 0
    # RLOO wins clearly; with this table's E[f] near 0 the leave-one-out baseline only adds
    # noise and REINFORCE averaged over 4 samples has the lower variance on every coordinate
    # (exact variances come with exact.moments; the gaps here are > 30 %).
    dist, table = discrete_problems()["bernoulli"]
    f = Table(table.values + shift)
    r = refgrad.estimate("reinforce", dist, f, 40000, rng=3).reshape(10000, 4, -1).mean(axis=1)
    loo = refgrad.estimate("rloo", dist, f, 10000, rng=3, m=4)
    ratio = loo.var(axis=0) / r.var(axis=0)
    assert np.all(ratio < 0.7) if rloo_wins else np.all(ratio > 1.3), ratio


def test_muprop_pathwise_term_matches_finite_differences():
    # The correction term ∇f(z̄)ᵀ ∂z̄/∂φ equals FD of φ -> f(z̄(φ)) with ∇f held at the current z̄.
    for _family, (dist, f) in discrete_problems().items():
        from refgrad.estimators.score import _mean_and_vjp

        zbar, vjp = _mean_and_vjp(dist)
        g0 = f.grad(zbar[None])[0]
        make = type(dist)

        def linearised(params):
            zb, _ = _mean_and_vjp(make(params))
            return np.sum(g0 * zb)

        np.testing.assert_allclose(vjp(g0), central_fd(linearised, dist.params), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ kernels vs NumPy twins


@given(
    logits=st.lists(st.floats(-30, 30), min_size=1, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_antithetic_kernels_match_naive(logits, seed):
    from refgrad.estimators import antithetic

    logits = np.array(logits)
    u = np.random.default_rng(seed).uniform(1e-12, 1 - 1e-12, size=(6, len(logits)))
    b1, b2 = antithetic._antithetic_pair(logits, u)
    nb1, nb2 = naive.antithetic_pair(logits, u)
    np.testing.assert_array_equal(b1, nb1)
    np.testing.assert_array_equal(b2, nb2)
    fdiff = np.random.default_rng(seed + 1).normal(size=6)
    np.testing.assert_allclose(antithetic._arm_combine(fdiff, u), naive.arm_combine(fdiff, u), rtol=1e-15)
    np.testing.assert_allclose(
        antithetic._disarm_combine(fdiff, b1, b2, logits), naive.disarm_combine(fdiff, b1, b2, logits), rtol=1e-14
    )


# ------------------------------------------------------------------ the Normal family of seed 001


@pytest.mark.parametrize("name", ["reinforce", "pathwise"])
def test_seed001_normal_example(name):
    # z ~ N(aθ + c, 1), f(z) = z², exact gradient 2a(aθ + c); seed 21, n = 40000, |z| <= 5.
    a, c, theta = 1.5, -0.4, np.array([0.7])
    dist = Normal(theta, scale=a, offset=c)
    f = SquaredDistance(np.array([0.0]))
    g = refgrad.estimate(name, dist, f, 40000, rng=21)
    target = 2 * a * (a * theta + c)
    z = (g.mean(axis=0) - target) / (g.std(axis=0, ddof=1) / np.sqrt(len(g)))
    assert np.all(np.abs(z) < 5), z
    if name == "pathwise":
        # variance 4a² exactly; sample variance within 3% at n = 40000
        assert abs(g.var(ddof=1) / (4 * a * a) - 1) < 0.03


def test_normal_score_matches_finite_differences():
    dist = Normal(np.array([0.3, -1.0]), scale=np.array([2.0, 0.5]), offset=0.25)
    z = dist.sample(5, rng=1)
    fd = central_fd(lambda th: Normal(th, scale=np.array([2.0, 0.5]), offset=0.25).log_prob(z), dist.theta)
    np.testing.assert_allclose(dist.score(z), fd, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ determinism and rejection


@pytest.mark.parametrize("name, options", UNBIASED_DISCRETE + [("arm", {}), ("disarm", {})], ids=lambda x: str(x))
def test_noise_path_equals_rng_path(name, options):
    dist, f = discrete_problems()["bernoulli"]
    spec = ESTIMATORS[name]
    noise = spec.draw_noise(dist, 50, np.random.default_rng(99), **options)
    via_noise = refgrad.estimate(name, dist, f, noise=noise, **options)
    via_rng = refgrad.estimate(name, dist, f, 50, rng=np.random.default_rng(99), **options)
    np.testing.assert_array_equal(via_noise, via_rng)
    np.testing.assert_array_equal(refgrad.estimate(name, dist, f, 50, rng=5, **options),
                                  refgrad.estimate(name, dist, f, 50, rng=5, **options))


def test_rejections():
    dist, f = discrete_problems()["categorical"]
    with pytest.raises(ValueError, match="supported families: bernoulli"):
        refgrad.estimate("arm", dist, f, 10)
    bern, fb = discrete_problems()["bernoulli"]
    with pytest.raises(ValueError, match="m"):
        refgrad.estimate("rloo", bern, fb, 10, m=1)
    with pytest.raises(ValueError, match="m"):
        refgrad.estimate("rloo", bern, fb, 10, m=2.5)
    with pytest.raises(ValueError, match="baseline"):
        refgrad.estimate("reinforce", bern, fb, 10, baseline=np.nan)
    with pytest.raises(ValueError, match="baseline"):
        refgrad.estimate("reinforce", bern, fb, 10, baseline="best")
    with pytest.raises(ValueError, match="unknown option"):
        refgrad.estimate("reinforce", bern, fb, 10, tau=1.0)
    with pytest.raises(ValueError, match="name must be one of"):
        refgrad.estimate("nonesuch", bern, fb, 10)
    with pytest.raises(ValueError, match="n"):
        refgrad.estimate("reinforce", bern, fb, 0)
    with pytest.raises(ValueError, match="noise"):
        refgrad.estimate("reinforce", bern, fb, noise={"u": np.full((4, 3), 1.0)})
    with pytest.raises(ValueError, match="noise"):
        refgrad.estimate("reinforce", bern, fb, noise={"v": np.full((4, 3), 0.5)})
    with pytest.raises(ValueError, match="rng or noise"):
        refgrad.estimate("reinforce", bern, fb, rng=1, noise={"u": np.full((4, 3), 0.5)})
    with pytest.raises(ValueError, match="baseline='optimal'"):
        refgrad.estimate("reinforce", Normal([0.0]), SquaredDistance([0.0]), 5, baseline="optimal")
    with pytest.raises(ValueError, match="returned NaN|nan|finite"):
        refgrad.estimate("reinforce", bern, lambda b: np.full(len(b), np.nan), 5)


def test_muprop_needs_gradient():
    bern, _ = discrete_problems()["bernoulli"]
    with pytest.raises(ValueError):
        refgrad.estimate("muprop", bern, lambda b: b.sum(axis=1), 5)


def test_linear_objective_reinforce_exact():
    # Linear f: the score estimator's exact mean by enumeration of the noise equals the gradient.
    dist = Bernoulli(np.array([0.2, -0.7]))
    f = Linear(np.array([1.5, -2.0]))
    np.testing.assert_allclose(exact.gradient(dist, f), [1.5, -2.0] * dist.probs * (1 - dist.probs), rtol=1e-14)


# ------------------------------------------------------------------ overflow and relaxed points


@pytest.mark.parametrize(
    "name, f, options",
    [
        ("arm", Table(np.array([1e308, -1e308])), {}),
        ("disarm", Table(np.array([1e308, -1e308])), {}),
        ("rloo", Table(np.array([1e308, -1e308])), {"m": 2}),
        ("reinforce", Table(np.array([1.7e308, -1.7e308])), {"baseline": -1.5e308}),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_overflow_is_an_error_not_a_silent_inf(name, f, options):
    # finite parameters and objective values whose arithmetic overflows float64 inside the
    # estimator: previously all -inf (arm/disarm) or ±inf/NaN (rloo), returned without error
    match = rf"estimator '{name}' overflowed: estimate .*inf.* at index .*rescale the objective"
    with pytest.raises(ValueError, match=match):
        refgrad.estimate(name, Bernoulli(np.array([0.3])), f, 10, rng=0, **options)


def test_large_but_representable_values_still_work():
    g = refgrad.estimate("reinforce", Bernoulli(np.array([0.3])), Table(np.array([1e200, -1e200])), 10, rng=0)
    assert np.isfinite(g).all() and np.abs(g).max() > 1e199


def test_muprop_refuses_objectives_not_defined_at_relaxed_points():
    # muprop evaluates f and ∇f at z̄ = E[b]; like gumbel_softmax, rebar and relax it must refuse
    from refgrad.objectives import FunctionObjective

    hard = FunctionObjective(lambda z: z.sum(axis=1), lambda z: np.ones_like(z), relaxed_ok=False, name="hard")
    for family in ("bernoulli", "categorical", "gaussian_threshold"):
        dist, _ = discrete_problems()[family]
        with pytest.raises(ValueError, match="estimator 'muprop' evaluates f at relaxed.*'hard'.*relaxed_ok=False"):
            refgrad.estimate("muprop", dist, hard, 5, rng=0)
        with pytest.raises(ValueError, match="relaxed_ok=False"):
            exact.moments("muprop", dist, hard)
    # the estimators that evaluate f only at discrete samples still accept it
    dist, _ = discrete_problems()["bernoulli"]
    assert np.isfinite(refgrad.estimate("reinforce", dist, hard, 5, rng=0)).all()
