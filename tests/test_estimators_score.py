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

import refgrad
from estimator_options import EDGE, OPTION_SETS, option_sets
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.estimators import ESTIMATORS
from refgrad.objectives import Linear, SquaredDistance, Table
from tests import naive
from tests.estimator_checks import assert_mc_unbiased, central_fd
from tests.objective_kinds import objective_for

TOY = SquaredDistance(np.array([0.499]))


def problems():
    rng = np.random.default_rng(7)
    return {
        "bernoulli": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "gaussian_threshold": (GaussianThreshold(np.array([0.3, -0.8])), Table(rng.normal(size=(2, 2)))),
    }


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
    dist, f = problems()[family]
    assert_mc_unbiased(name, dist, f, n=20000, seed=11, **options)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_antithetic_unbiased_monte_carlo(name):
    dist, f = problems()["bernoulli"]
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
    dist, f = problems()["bernoulli"]
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
    dist, table = problems()["bernoulli"]
    f = Table(table.values + shift)
    r = refgrad.estimate("reinforce", dist, f, 40000, rng=3).reshape(10000, 4, -1).mean(axis=1)
    loo = refgrad.estimate("rloo", dist, f, 10000, rng=3, m=4)
    ratio = loo.var(axis=0) / r.var(axis=0)
    assert np.all(ratio < 0.7) if rloo_wins else np.all(ratio > 1.3), ratio


def test_muprop_pathwise_term_matches_finite_differences():
    # The correction term ∇f(z̄)ᵀ ∂z̄/∂φ equals FD of φ -> f(z̄(φ)) with ∇f held at the current z̄.
    for _family, (dist, f) in problems().items():
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
    dist, f = problems()["bernoulli"]
    spec = ESTIMATORS[name]
    noise = spec.draw_noise(dist, 50, np.random.default_rng(99), **options)
    via_noise = refgrad.estimate(name, dist, f, noise=noise, **options)
    via_rng = refgrad.estimate(name, dist, f, 50, rng=np.random.default_rng(99), **options)
    np.testing.assert_array_equal(via_noise, via_rng)
    np.testing.assert_array_equal(refgrad.estimate(name, dist, f, 50, rng=5, **options),
                                  refgrad.estimate(name, dist, f, 50, rng=5, **options))


def test_rejections():
    dist, f = problems()["categorical"]
    with pytest.raises(ValueError, match="supported families: bernoulli"):
        refgrad.estimate("arm", dist, f, 10)
    bern, fb = problems()["bernoulli"]
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
    bern, _ = problems()["bernoulli"]
    with pytest.raises(ValueError):
        refgrad.estimate("muprop", bern, lambda b: b.sum(axis=1), 5)


def test_linear_objective_reinforce_exact():
    # Linear f: the score estimator's exact mean by enumeration of the noise equals the gradient.
    dist = Bernoulli(np.array([0.2, -0.7]))
    f = Linear(np.array([1.5, -2.0]))
    np.testing.assert_allclose(exact.gradient(dist, f), [1.5, -2.0] * dist.probs * (1 - dist.probs), rtol=1e-14)


# ---------------------------------------------------------------------------- every estimator: edges and errors

INF = np.inf


def _edge_dists():
    return {
        "bernoulli": Bernoulli(np.array([INF, -INF, 0.3])),
        "gaussian_threshold": GaussianThreshold(np.array([INF, -INF, 0.3])),
        "categorical": Categorical(np.array([[INF, 0.0, 1.0], [-INF, 0.0, 1.0], [INF, INF, 0.0], [-INF, -INF, 0.5]])),
        "normal": Normal(np.array([0.3, -1.0])),
    }


def _edge_cases():
    for name in sorted(ESTIMATORS):
        for family in ESTIMATORS[name].families:
            for oset in option_sets(name, EDGE, family):
                yield name, family, oset


def test_option_table_covers_every_estimator():
    assert set(OPTION_SETS) == set(ESTIMATORS)


@pytest.mark.parametrize("name, family, oset", list(_edge_cases()), ids=str)
def test_infinite_parameters_give_finite_estimates(name, family, oset):
    # ±inf logits (a deterministic outcome) are legal: every estimator returns finite numbers,
    # and the coordinates of a deterministic bit get exactly 0 (except ARM, whose weight
    # u_i − 1/2 multiplies f-differences driven by the other bits: mean 0, samples not 0)
    dist = _edge_dists()[family]
    options = oset.options(dist)
    f = objective_for(name, SquaredDistance(np.full(tuple(dist.event_shape), 0.45)), options)
    g = refgrad.estimate(name, dist, f, 64, rng=3, **options)
    assert g.shape == (64,) + tuple(dist.param_shape)
    assert np.isfinite(g).all()
    if family in ("bernoulli", "gaussian_threshold") and name != "arm":
        np.testing.assert_array_equal(g[:, :2], 0.0)


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_arsm_refuses_infinite_logits(family):
    # the one estimator without edge option sets: ±inf logits are refused by name, not returned as NaN
    dist = _edge_dists()[family]
    f = SquaredDistance(np.full(tuple(dist.event_shape), 0.45))
    with pytest.raises(ValueError, match=r"estimator 'arsm' needs finite logits; got logits\[.*\] = -?inf"):
        refgrad.estimate("arsm", dist, f, 8, rng=3)


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
        dist, _ = problems()[family]
        with pytest.raises(ValueError, match="estimator 'muprop' evaluates f at relaxed.*'hard'.*relaxed_ok=False"):
            refgrad.estimate("muprop", dist, hard, 5, rng=0)
        with pytest.raises(ValueError, match="relaxed_ok=False"):
            exact.moments("muprop", dist, hard)
    # the estimators that evaluate f only at discrete samples still accept it
    dist, _ = problems()["bernoulli"]
    assert np.isfinite(refgrad.estimate("reinforce", dist, hard, 5, rng=0)).all()


def test_noise_may_be_lists_and_a_non_dict_is_explained():
    dist = Bernoulli(np.array([0.3, -0.2]))
    f = SquaredDistance(np.array([0.45, 0.45]))
    u = [[0.2, 0.7], [0.9, 0.4]]
    np.testing.assert_array_equal(refgrad.estimate("reinforce", dist, f, noise={"u": u}),
                                  refgrad.estimate("reinforce", dist, f, noise={"u": np.array(u)}))
    with pytest.raises(ValueError, match=r"noise must be a dict of uniform arrays laid out as \{'u': \(n, 2\)\}.*list"):
        refgrad.estimate("reinforce", dist, f, noise=u)
    with pytest.raises(ValueError, match=r"laid out as \{'u': \(n, 2\), 'v': \(n, 2\)\}"):
        refgrad.estimate("rebar", dist, f, noise=np.array(u))
    with pytest.raises(TypeError, match=r"noise\['u'\] must hold real \(float64\) numbers.*complex"):
        refgrad.estimate("reinforce", dist, f, noise={"u": np.array(u) + 0j})
    with pytest.raises(ValueError, match=r"noise\['u'\] must be a rectangular array"):
        refgrad.estimate("reinforce", dist, f, noise={"u": [[0.5, 0.5], [0.5]]})


@pytest.mark.parametrize(
    "u, match",
    [
        ([[0.2, 0.7], [0.9, 1.0]], r"got 1.0 at index \(1, 1\)"),
        ([[0.0, 0.7], [0.9, 0.5]], r"got 0.0 at index \(0, 0\)"),
        ([[0.2, np.nan], [0.9, 0.5]], r"got nan at index \(0, 1\)"),
        ([[0.2, 0.7], [-0.1, 0.5]], r"got -0.1 at index \(1, 0\)"),
    ],
)
def test_bad_uniforms_are_shown_with_their_index(u, match):
    with pytest.raises(ValueError, match=r"noise\['u'\] must contain uniforms strictly inside \(0, 1\).*" + match):
        refgrad.estimate("reinforce", Bernoulli(np.array([0.3, -0.2])), SquaredDistance(np.array([0.4, 0.4])),
                         noise={"u": u})


def test_sample_counts_are_checked_by_type_range_and_size():
    dist, f = problems()["bernoulli"]
    for n in (2.5, 2.0, True, "5", 1j):
        with pytest.raises(TypeError, match=r"n must be an integer >= 1; got"):
            refgrad.estimate("reinforce", dist, f, n, rng=0)
    for n in (0, -3):
        with pytest.raises(ValueError, match=rf"n must be an integer >= 1; got {n}"):
            refgrad.estimate("reinforce", dist, f, n, rng=0)
    # previously numpy's MemoryError ("Unable to allocate 22 TiB ...") from deep inside the noise draw
    with pytest.raises(ValueError, match=r"n=1000000000000 would need 43.7 TiB \(48 bytes per sample\)"):
        refgrad.estimate("reinforce", dist, f, 10**12, rng=0)
    with pytest.raises(ValueError, match=r"n=1000000000000 would need"):
        ESTIMATORS["rebar"].draw_noise(dist, 10**12, rng=0)
    with pytest.raises(ValueError, match=r"m=1000000000000 would need"):
        refgrad.estimate("rloo", dist, f, 5, rng=0, m=10**12)
    with pytest.raises(ValueError, match=r"k=1000000000000 would need"):
        refgrad.estimate("gumbel_rao", dist, f, 5, rng=0, k=10**12)
    with pytest.raises(ValueError, match=r"pilot=1000000000000 would need"):
        refgrad.estimate("rebar", dist, f, 5, rng=0, eta="optimal", pilot=10**12)
    with pytest.raises(ValueError, match=r"n=3 disagrees with the noise arrays, which hold 2 samples"):
        refgrad.estimate("reinforce", dist, f, 3, noise={"u": np.full((2, 3), 0.5)})


# Every option of every estimator: the error type, and a message naming the option and the value.
BAD_OPTIONS = [
    ("reinforce", {"baseline": np.nan}, ValueError, r"baseline must be None, a finite float, or 'optimal'; got nan"),
    ("reinforce", {"baseline": np.inf}, ValueError, r"baseline must be .*; got inf"),
    ("reinforce", {"baseline": "best"}, ValueError, r"baseline must be .*; got 'best'"),
    ("reinforce", {"baseline": True}, TypeError, r"baseline must be .*; got True of type bool"),
    ("reinforce", {"baseline": 1j}, TypeError, r"baseline must be .*; got 1j of type complex"),
    ("reinforce", {"baseline": [0.5]}, TypeError, r"baseline must be .*; got \[0.5\] of type list"),
    ("reinforce", {"tau": 1.0}, ValueError,
     r"'reinforce' got unknown option\(s\) \['tau'\]; allowed options: baseline"),
    ("rloo", {"m": 1}, ValueError, r"m must be an integer >= 2; got 1"),
    ("rloo", {"m": 2.5}, TypeError, r"m must be an integer >= 2; got 2.5 of type float"),
    ("rloo", {"m": "3"}, TypeError, r"m must be an integer >= 2; got '3'"),
    ("muprop", {"tau": 1.0}, ValueError, r"unknown option.*allowed options: none"),
    ("gumbel_softmax", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("gumbel_softmax", {"tau": -1.0}, ValueError, r"tau must be a finite real number > 0; got -1.0"),
    ("gumbel_softmax", {"tau": np.inf}, ValueError, r"tau must be a finite real number > 0; got inf"),
    ("gumbel_softmax", {"tau": np.nan}, ValueError, r"tau must be a finite real number > 0; got nan"),
    ("gumbel_softmax", {"tau": "1"}, TypeError, r"tau must be a finite real number > 0; got '1' of type str"),
    ("gumbel_softmax", {"tau": np.array(0.5 + 0j)}, TypeError, r"tau must hold real \(float64\) numbers.*complex"),
    ("gumbel_softmax", {"tau": [0.5]}, TypeError, r"tau must be a finite real number > 0; got \[0.5\] of type list"),
    ("straight_through", {"tau": True}, TypeError, r"tau must be a finite real number > 0; got True"),
    ("gumbel_rao", {"tau": -np.inf}, ValueError, r"tau must be a finite real number > 0; got -inf"),
    ("gumbel_rao", {"k": 0}, ValueError, r"k must be an integer >= 1; got 0"),
    ("gumbel_rao", {"k": 2.0}, TypeError, r"k must be an integer >= 1; got 2.0 of type float"),
    ("gumbel_rao", {"derivative": "partial"}, ValueError,
     r"derivative must be one of \['identity', 'total'\]; got 'par"),
    ("gumbel_rao", {"derivative": None}, ValueError, r"derivative must be one of .*; got None"),
    ("rebar", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("rebar", {"eta": np.nan}, ValueError,
     r"eta must be a finite float, a finite array of shape \(3,\) or 'optimal'; got n"),
    ("rebar", {"eta": -np.inf}, ValueError, r"eta must be .*; got -inf"),
    ("rebar", {"eta": [1.0, np.nan, 0.0]}, ValueError, r"eta must be .*; got nan at index \(1,\)"),
    ("rebar", {"eta": [1.0, 2.0]}, ValueError,
     r"eta must be a scalar or have the parameter shape \(3,\); got shape \(2"),
    ("rebar", {"eta": "opt"}, ValueError, r"eta must be .*; got 'opt'"),
    ("rebar", {"eta": 1j}, TypeError, r"eta must hold real \(float64\) numbers.*complex"),
    ("rebar", {"eta": np.array([1.0, 0.5 + 1e-9j, 0.0])}, TypeError, r"eta must hold real \(float64\).*complex"),
    ("rebar", {"eta": True}, TypeError, r"eta must be .*; got True"),
    ("rebar", {"eta": None}, TypeError, r"eta must be .*; got None"),
    ("rebar", {"eta": "1.0"}, ValueError, r"eta must be .*; got '1.0'"),
    ("rebar", {"pilot": 1}, ValueError, r"pilot must be an integer >= 2; got 1"),
    ("rebar", {"pilot": 3.0}, TypeError, r"pilot must be an integer >= 2; got 3.0"),
    ("relax", {"surrogate": 3}, ValueError, r"surrogate must be a RelaxSurrogate or None; got 3 of type int"),
    ("indecater", {"m": 0}, ValueError, r"m must be an integer >= 1; got 0"),
    ("indecater", {"m": 1.5}, TypeError, r"m must be an integer >= 1; got 1.5 of type float"),
    ("reinmax", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("reinmax", {"tau": "1"}, TypeError, r"tau must be a finite real number > 0; got '1' of type str"),
    ("gapped_straight_through", {"tau": -1.0}, ValueError, r"tau must be a finite real number > 0; got -1.0"),
    ("gapped_straight_through", {"gap": -1.0}, ValueError,
     r"gap must be a finite float >= 0 or the string 'p'; got -1.0"),
    ("gapped_straight_through", {"gap": "q"}, ValueError, r"gap must be .*; got 'q'"),
    ("gapped_straight_through", {"gap": True}, TypeError, r"gap must be .*; got True of type bool"),
    ("sum_and_sample", {"k": -1}, ValueError, r"k must be an integer >= 0; got -1"),
    ("sum_and_sample", {"k": 1.5}, TypeError, r"k must be an integer >= 0; got 1.5 of type float"),
    ("unordered_set", {"k": 0}, ValueError, r"k must be an integer >= 1; got 0"),
    ("unordered_set", {"k": 1.5}, TypeError, r"k must be an integer >= 1; got 1.5 of type float"),
    ("unordered_set", {"baseline": "optimal"}, ValueError,
     r"baseline must be one of \('builtin', 'none'\); got 'optimal'"),
    ("arsm", {"tau": 1.0}, ValueError, r"'arsm' got unknown option\(s\) \['tau'\]; allowed options: none"),
    # vimco gets LogMeanExp(f, 2), the objective of its default k
    ("vimco", {"k": 1}, ValueError, r"k must be an integer >= 2; got 1"),
    ("vimco", {"k": 2.0}, TypeError, r"k must be an integer >= 2; got 2.0 of type float"),
    ("vimco", {"k": 3}, ValueError, r"option k = 3 of estimator 'vimco' must equal the objective's number of samples "
                                    r"k = 2 \(pass k=2\)"),
    ("vimco", {"baseline": "harmonic"}, ValueError,
     r"baseline must be 'geometric', 'arithmetic' or None; got 'harmonic'"),
    ("vimco", {"baseline": 1.0}, TypeError, r"baseline must be .*; got 1.0 of type float"),
    ("straight_through_plain", {"backward": "Probs"}, ValueError,
     r"backward must be one of \['probs', 'identity'\]; got 'Probs'"),
    ("straight_through_plain", {"backward": None}, ValueError, r"backward must be one of .*; got None"),
]


def test_bad_options_cover_every_option():
    named = {(name, key) for name, options, _, _ in BAD_OPTIONS for key in options}
    every = {(name, key) for name, spec in ESTIMATORS.items() if name not in ("arm", "disarm", "pathwise")
             for key in spec.defaults}
    assert every <= named


@pytest.mark.parametrize("name, options, error, match", BAD_OPTIONS, ids=str)
def test_bad_options_name_the_option_the_value_and_the_range(name, options, error, match):
    dist, f = problems()["bernoulli"]
    f = objective_for(name, f)  # the objective of the default options (vimco: a mismatched k is a bad option)
    with pytest.raises(error, match=match):
        refgrad.estimate(name, dist, f, 5, rng=0, **options)


def test_the_catalog_is_in_its_documented_order():
    """ESTIMATORS lists every estimator once, in CATALOG_ORDER (not in the order the modules happen to import)."""
    from refgrad.estimators import CATALOG_ORDER

    assert list(ESTIMATORS) == list(CATALOG_ORDER)
