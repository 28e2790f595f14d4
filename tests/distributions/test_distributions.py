"""Distributions: probabilities, scores (vs finite differences), enumeration, sampling, bad input."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special, stats

from estimator_checks import central_fd
from refgrad.distributions import ENUMERATION_LIMIT, Bernoulli, Categorical, GaussianThreshold, Normal

finite = st.floats(-8.0, 8.0, allow_nan=False)


def logits_1d(max_d=4):
    return hnp.arrays(np.float64, st.integers(1, max_d), elements=finite)


def logits_2d(max_d=3, max_k=4):
    return hnp.arrays(np.float64, st.tuples(st.integers(1, max_d), st.integers(2, max_k)), elements=finite)


def make(family, params):
    return {"bernoulli": Bernoulli, "gaussian_threshold": GaussianThreshold, "categorical": Categorical}[family](params)


# ---------------------------------------------------------------- probabilities against scipy.stats


@given(logits_1d())
def test_bernoulli_log_prob_matches_scipy(logits):
    dist = Bernoulli(logits)
    configs, probs = dist.enumerate()
    p1 = special.expit(logits)
    expected = stats.bernoulli(p1).logpmf(configs).sum(axis=1)
    np.testing.assert_allclose(dist.log_prob(configs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-13)


@given(logits_1d())
def test_gaussian_threshold_probs(mu):
    dist = GaussianThreshold(mu)
    np.testing.assert_allclose(dist.probs, stats.norm.sf(0.0, loc=mu, scale=1.0), rtol=1e-13)
    configs, probs = dist.enumerate()
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-13)


@given(logits_2d())
def test_categorical_log_prob_matches_scipy(logits):
    dist = Categorical(logits)
    configs, probs = dist.enumerate()
    p = special.softmax(logits, axis=1)
    expected = np.array([sum(np.log(p[i, np.argmax(c[i])]) for i in range(len(c))) for c in configs])
    np.testing.assert_allclose(dist.log_prob(configs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-13)


# ---------------------------------------------------------------- scores against finite differences


@pytest.mark.parametrize("family", ["bernoulli", "gaussian_threshold"])
@given(params=logits_1d())
def test_bit_score_matches_finite_differences(family, params):
    dist = make(family, params)
    configs, _ = dist.enumerate()
    fd = central_fd(lambda p: make(family, p).log_prob(configs), params)
    np.testing.assert_allclose(dist.score(configs), fd, rtol=1e-6, atol=1e-7)


@given(logits_2d())
def test_categorical_score_matches_finite_differences(logits):
    dist = Categorical(logits)
    configs, _ = dist.enumerate()
    fd = central_fd(lambda p: Categorical(p).log_prob(configs), logits)
    np.testing.assert_allclose(dist.score(configs), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mu", [-35.0, -12.0, 12.0, 35.0])
def test_gaussian_threshold_score_far_tails(mu):
    # φ(μ)/Φ(−μ) ~ μ for large μ (Mills ratio); finite and accurate (erfcx form; mpmath references at up to
    # |μ| = 700 are in test_extremes_oracle.py).
    dist = GaussianThreshold([mu])
    s = dist.score(np.array([[0.0], [1.0]]))
    assert np.all(np.isfinite(s))
    # reference via scipy's log_ndtr in an independent formula
    ref0 = -np.exp(stats.norm.logpdf(mu) - special.log_ndtr(-mu))
    ref1 = np.exp(stats.norm.logpdf(mu) - special.log_ndtr(mu))
    np.testing.assert_allclose(s[:, 0], [ref0, ref1], rtol=1e-12)


# ---------------------------------------------------------------- enumeration


def test_enumeration_order_is_itertools_product():
    dist = Categorical(np.zeros((3, 3)))
    configs, _ = dist.enumerate()
    expected = list(itertools.product(range(3), repeat=3))
    assert [tuple(np.argmax(c, axis=1)) for c in configs] == expected
    bits, _ = Bernoulli(np.zeros(4)).enumerate()
    assert [tuple(int(v) for v in c) for c in bits] == list(itertools.product(range(2), repeat=4))


def test_enumeration_chunks_concatenate():
    dist = Categorical(np.array([[0.3, -1.0, 2.0], [1.0, 0.0, 0.5]]))
    full_c, full_p = dist.enumerate()
    parts = [dist.enumerate(s, min(s + 4, dist.support_size)) for s in range(0, dist.support_size, 4)]
    np.testing.assert_array_equal(np.concatenate([c for c, _ in parts]), full_c)
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), full_p)


def test_enumeration_limit():
    dist = Bernoulli(np.zeros(23))
    assert dist.support_size == 2**23 > ENUMERATION_LIMIT
    with pytest.raises(ValueError, match="limit"):
        dist.enumerate()
    configs, probs = dist.enumerate(5, 9)
    assert configs.shape == (4, 23) and np.allclose(probs, 2.0**-23)
    with pytest.raises(ValueError, match="stop"):
        dist.enumerate(5, 2**23 + 1)
    with pytest.raises(ValueError, match="start"):
        dist.enumerate(-1, 3)


# ---------------------------------------------------------------- infinite parameters


def test_infinite_logits_are_deterministic():
    dist = Bernoulli([np.inf, -np.inf, 0.0])
    configs, probs = dist.enumerate()
    assert not np.isnan(probs).any() and np.isclose(probs.sum(), 1.0)
    live = configs[probs > 0]
    assert np.all(live[:, 0] == 1) and np.all(live[:, 1] == 0)
    s = dist.score(configs[probs > 0])
    np.testing.assert_array_equal(s[:, :2], 0.0)
    assert np.all(dist.sample(50, rng=0)[:, :2] == [1.0, 0.0])

    g = GaussianThreshold([np.inf, -np.inf])
    c, p = g.enumerate()
    assert np.array_equal(p, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(g.score(c[p > 0]), 0.0)
    assert not np.isnan(g.score(c)).any()

    cat = Categorical([[np.inf, 0.0, -np.inf], [0.0, 0.0, -np.inf], [np.inf, np.inf, 1.0]])
    np.testing.assert_allclose(cat.probs, [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    c, p = cat.enumerate()
    assert np.isclose(p.sum(), 1.0) and not np.isnan(cat.score(c)).any()


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "dist",
    [
        Bernoulli([0.7, -1.3]),
        GaussianThreshold([0.4, -0.9]),
        Categorical([[0.5, -0.2, 1.1], [0.0, 2.0, -1.0]]),
    ],
    ids=["bernoulli", "gaussian_threshold", "categorical"],
)
def test_sample_frequencies_chi_square(dist):
    # alpha = 1e-3, seed 20261123: sample joint configurations and compare with enumerate()'s probabilities.
    n = 20000
    samples = dist.sample(n, rng=20261123)
    configs, probs = dist.enumerate()
    flat_s = samples.reshape(n, -1)
    flat_c = configs.reshape(len(configs), -1)
    counts = np.array([(flat_s == c).all(axis=1).sum() for c in flat_c])
    assert counts.sum() == n
    p = stats.chisquare(counts, probs * n).pvalue
    assert p > 1e-3, p


def test_sample_reproducible():
    dist = Categorical(np.zeros((2, 3)))
    np.testing.assert_array_equal(dist.sample(10, rng=5), dist.sample(10, rng=np.random.default_rng(5)))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "factory, arg, match",
    [
        (Bernoulli, [0.0, np.nan], "logits"),
        (Bernoulli, [[0.0]], "logits"),
        (Bernoulli, [], "logits"),
        (GaussianThreshold, [np.nan], "mu"),
        (Categorical, [0.0, 1.0], "logits"),
        (Categorical, [[0.0]], "logits"),
        (Categorical, [[-np.inf, -np.inf]], "logits"),
        (Categorical, [[np.nan, 0.0]], "logits"),
    ],
)
def test_bad_parameters(factory, arg, match):
    with pytest.raises(ValueError, match=match):
        factory(arg)


def test_bad_configurations_and_sizes():
    dist = Bernoulli([0.0, 1.0])
    with pytest.raises(ValueError, match="b"):
        dist.log_prob([[0.5, 1.0]])
    with pytest.raises(ValueError, match="b"):
        dist.score(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n"):
        dist.sample(0)
    with pytest.raises(ValueError, match="n"):
        dist.sample(2.5)
    cat = Categorical(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="b"):
        cat.log_prob(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="u"):
        dist.from_uniforms(np.array([[0.0, 0.5]]))


def test_bad_entries_are_reported_with_value_and_index():
    bits = Bernoulli([0.0, 1.0])
    with pytest.raises(ValueError, match=r"0\.5 at index \(1, 0\)"):
        bits.score([[0.0, 1.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match=r"1\.0 at index \(0, 1\)"):
        bits.from_uniforms([[0.5, 1.0]])
    with pytest.raises(ValueError, match=r"u must have shape \(n, 2\)"):
        GaussianThreshold([0.0, 1.0]).from_uniforms([[0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"-0\.25 at index \(0, 0\)"):
        GaussianThreshold([0.0]).from_uniforms([[-0.25]])
    cat = Categorical(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"2\.0 at index \(0, 1, 2\)"):
        cat.log_prob([[[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]])
    with pytest.raises(ValueError, match=r"row \(0, 1\) .* is \[1\.0, 1\.0, 0\.0\]"):
        cat.score([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    with pytest.raises(ValueError, match=r"got 3 at index \(1,\)"):
        Categorical.one_hot(np.array([0, 3]), 3)
    with pytest.raises(TypeError, match="indices must be integers"):
        Categorical.one_hot(np.array([0.0, 1.0]), 3)


@pytest.mark.parametrize("logits", [[40.0], [-40.0], [700.0, -700.0], [np.inf, -np.inf]])
def test_bernoulli_score_is_complementary(logits):
    """b = 1: σ(−ℓ) exactly as expit computes it; b = 0: −σ(ℓ) (was b − fl(σ(ℓ)): 0 at b = 1 from ℓ ≈ 37)."""
    dist = Bernoulli(logits)
    ell = np.asarray(logits)
    configs = np.array([np.ones_like(ell), np.zeros_like(ell)])
    np.testing.assert_array_equal(dist.score(configs), [special.expit(-ell), -special.expit(ell)])


def test_categorical_score_at_the_chosen_category_is_the_other_probabilities():
    dist = Categorical([[40.0, 0.0, -3.0]])
    s = dist.score(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    others = np.exp([-40.0, -43.0]) / (1 + np.exp(-40.0) + np.exp(-43.0))
    np.testing.assert_allclose(s, [others.sum(), -others[0], -others[1]], rtol=1e-14)
    assert s[0] > 0


@pytest.mark.parametrize(
    "dist", [Bernoulli([0.0, 1.0]), GaussianThreshold([0.0]), Categorical(np.zeros((2, 3))), Normal([0.0, 1.0])],
    ids=["bernoulli", "gaussian_threshold", "categorical", "normal"],
)
def test_sample_refuses_an_n_whose_arrays_do_not_fit(dist):
    """n = 10**13 reached numpy's MemoryError; now a ValueError naming n and the size needed."""
    with pytest.raises(ValueError, match=r"n=10000000000000 would need .* use n <= \d+"):
        dist.sample(10**13, rng=0)


def test_normal_refuses_infinite_samples():
    dist = Normal([0.0, 1.0])
    for method in (dist.log_prob, dist.score):
        with pytest.raises(ValueError, match=r"z must be finite; got inf at index \(0, 1\)"):
            method([[0.0, np.inf]])


def test_boolean_samples_are_accepted_as_bits():
    """Bits and one-hot rows given as booleans mean 0/1 (the strict float converter would refuse them)."""
    bern = Bernoulli(np.array([0.3, -1.0]))
    b = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(bern.log_prob(b), bern.log_prob(b.astype(float)))
    np.testing.assert_array_equal(bern.score(b), bern.score(b.astype(float)))
    cat = Categorical(np.array([[0.3, -1.0, 2.0]]))
    onehot = np.array([[[False, True, False]]])
    np.testing.assert_array_equal(cat.log_prob(onehot), cat.log_prob(onehot.astype(float)))
    np.testing.assert_array_equal(cat.score(onehot), cat.score(onehot.astype(float)))


def test_categorical_with_one_dimensional_logits_says_d_k_and_how_to_write_one_variable():
    # before: "logits must have 2 dimension(s)", with neither (d, K) nor the one-variable form
    with pytest.raises(ValueError, match=r"shape \(d, K\) \(d variables with K categories.*logits\[None, :\] "
                                         r"\(shape \(1, 3\)\)"):
        Categorical(np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(d, K\).*got 3 dimension\(s\), shape \(1, 1, 2\)"):
        Categorical(np.zeros((1, 1, 2)))
    assert Categorical(np.array([0.0, 1.0, 2.0])[None, :]).logits.shape == (1, 3)
