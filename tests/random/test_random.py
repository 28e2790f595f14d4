"""Tests of refgrad.random: rng handling, special functions, noise kernels and conditional samplers.

Every kernel is compared with its NumPy/SciPy twin in tests/naive.py on the same
uniforms; every hand-derived gradient with central finite differences; every
sampler with its distribution (KS / chi-square tests, stated alpha, fixed seeds).
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special, stats

import naive
from refgrad import random as R
from refgrad._core import special as S
from refgrad.random import conditional as RC
from refgrad.random import noise as RN
from refgrad.random import rng as RG

# Uniforms at the edges of the open interval and in the middle.
SPECIAL_U = np.array([1e-300, 1e-16, 0.5, 1.0 - 1e-16, 1.0 - 2.0**-53])
ALPHA = 1e-3  # family-wise significance level of each statistical test below


def _test_uniforms(n=4000, seed=0):
    """Special values, random uniforms and log-spaced tails."""
    return np.concatenate(
        [
            SPECIAL_U,
            R.uniform(seed, n),
            np.logspace(-300, -1, 301),
            1.0 - np.logspace(-16, -1, 151),
            [2.0**-53, 1e-200, 0.1, 0.9, 0.3678794411714423],
        ]
    )


def _scalar_map(f, x):
    return np.array([f(float(t)) for t in np.asarray(x).ravel()])


def _assert_rel(actual, desired, rtol, atol=0.0):
    """|actual - desired| <= rtol |desired| + atol elementwise, equal infinities allowed."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    same = actual == desired
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity (masked by `same`)
        err = np.where(same, 0.0, np.abs(actual - desired))
    bound = rtol * np.abs(desired) + atol
    bad = ~(err <= bound)
    if bad.any():
        i = np.argwhere(bad)[0] if bad.ndim else ()
        i = tuple(int(j) for j in i)
        raise AssertionError(
            f"{int(bad.sum())} mismatches; first at {i}: actual {actual[i]!r}, desired {desired[i]!r}, "
            f"rel err {err[i] / max(abs(desired[i]), 1e-300):.3e}"
        )


# ---------------------------------------------------------------------------
# as_generator / uniform
# ---------------------------------------------------------------------------


def test_as_generator_accepts_none_int_generator():
    assert isinstance(R.as_generator(None), np.random.Generator)
    g = np.random.default_rng(3)
    assert R.as_generator(g) is g
    for seed in (0, 7, np.int64(7), np.uint32(7), 2**70):
        assert isinstance(R.as_generator(seed), np.random.Generator)


@pytest.mark.parametrize(
    "bad", [np.random.RandomState(0), 1.5, -1, np.int64(-3), True, np.bool_(False), "7", [1, 2], object()]
)
def test_as_generator_rejects(bad):
    with pytest.raises(ValueError, match="rng"):
        R.as_generator(bad)
    with pytest.raises(ValueError, match="rng"):
        R.uniform(bad, 3)


def test_uniform_reproducible():
    a = R.uniform(123, (4, 5))
    assert_array_equal(a, R.uniform(123, (4, 5)))
    assert_array_equal(a, R.uniform(np.int64(123), (4, 5)))
    assert_array_equal(a, R.uniform(np.random.default_rng(123), (4, 5)))
    assert not np.array_equal(a, R.uniform(124, (4, 5)))
    g = np.random.default_rng(5)  # a Generator is advanced, not copied
    assert not np.array_equal(R.uniform(g, 10), R.uniform(g, 10))


def test_uniform_values_and_grid():
    u = R.uniform(1, (3, 1000))
    assert u.shape == (3, 1000) and u.dtype == np.float64
    assert np.all((u > 0) & (u < 1))
    k = (u * 2.0**53 - 1.0) / 2.0  # exact: u = (2k + 1) / 2**53
    assert_array_equal(k, np.floor(k))
    assert R.uniform(0, 7).shape == (7,)
    assert R.uniform(0, ()).shape == ()
    assert R.uniform(0, (0, 3)).shape == (0, 3)
    # the two extreme cells are exact and strictly inside (0, 1)
    assert_array_equal(RG._cells_to_uniform([0, 2**52 - 1]), [2.0**-53, 1.0 - 2.0**-53])


@pytest.mark.parametrize("bad", [-1, 1.5, (2, -1), (2, 1.0), "3", True])
def test_uniform_bad_shape(bad):
    with pytest.raises(ValueError, match="shape"):
        R.uniform(0, bad)


def test_uniform_is_uniform():
    """KS against U(0, 1), alpha = 1e-3, seed 20240."""
    u = R.uniform(20240, 50000)
    assert stats.kstest(u, "uniform").pvalue > ALPHA


# ---------------------------------------------------------------------------
# Scalar special functions (hand-written, Numba) vs scipy.special
# ---------------------------------------------------------------------------


def test_softplus_log_sigmoid():
    x = np.concatenate([np.linspace(-800, 800, 2001), [-1e300, 1e300, 0.0, 1e-20, -1e-20, 37.0, -37.0]])
    # relative 1e-14; the absolute floor 1e-307 only admits subnormal results (x < -708)
    _assert_rel(_scalar_map(S._softplus, x), naive.random_softplus(x), 1e-14, 1e-307)
    _assert_rel(_scalar_map(S._log_sigmoid, x), naive.random_log_sigmoid(x), 1e-14, 1e-307)
    _assert_rel(_scalar_map(S._sigmoid, x), naive.random_sigmoid(x), 1e-14, 1e-307)
    assert S._softplus(math.inf) == math.inf and S._softplus(-math.inf) == 0.0
    assert S._log_sigmoid(math.inf) == 0.0 and S._log_sigmoid(-math.inf) == -math.inf


def test_log_ndtr_vs_scipy():
    """Relative error <= 1e-13 on [-1e4, 37] (measured: <= 7e-16 for x <= 0, 6e-14 near x = 37,
    where Phi(-x) ~ 1e-300 is ill-conditioned in x: d log Phi(-x) / d log x = -x^2)."""
    x = np.concatenate(
        [-np.geomspace(1e4, 1e-6, 3000), np.linspace(-25, 10, 3000), np.geomspace(1e-6, 37, 2000), [0.0]]
    )
    _assert_rel(_scalar_map(S._log_ndtr, x), naive.random_log_ndtr(x), 1e-13)
    # Beyond 37.5 Phi(-x) is subnormal in both implementations: absolute agreement.
    far = np.linspace(37.5, 60, 50)
    assert np.all(np.abs(_scalar_map(S._log_ndtr, far) - special.log_ndtr(far)) <= 1e-310)
    assert S._log_ndtr(math.inf) == 0.0 and S._log_ndtr(-math.inf) == -math.inf
    assert math.isnan(S._log_ndtr(math.nan))


def test_ndtri_vs_scipy():
    """Relative error <= 1e-14 (measured 9e-16) from p = 1e-320 to 1 - 1e-16."""
    p = np.concatenate(
        [np.geomspace(1e-320, 0.5, 3000), 1.0 - np.geomspace(1e-16, 0.5, 2000), np.linspace(0.01, 0.99, 2001)]
    )
    _assert_rel(_scalar_map(S._ndtri, p), naive.random_ndtri(p), 1e-14)
    assert S._ndtri(0.5) == 0.0
    assert S._ndtri(0.0) == -math.inf and S._ndtri(1.0) == math.inf
    assert math.isnan(S._ndtri(-0.1)) and math.isnan(S._ndtri(1.1)) and math.isnan(S._ndtri(math.nan))


def test_ndtri_exp_vs_scipy():
    """For -1e3 <= log p < 0: |err| <= 1e-13 |x| + 1e-15 (the absolute floor covers x ~ 0, i.e.
    log p ~ -log 2, where the problem itself is ill-conditioned).  For -1e5 <= log p < -1e3
    scipy's own error reaches 5e-13 (see the mpmath test), hence 1e-12 there."""
    lp = np.concatenate(
        [-np.geomspace(1e3, 1e-300, 4000), np.linspace(-3, -1e-3, 2000), np.linspace(-0.75, -0.65, 500)]
    )
    _assert_rel(_scalar_map(S._ndtri_exp, lp), naive.random_ndtri_exp(lp), 1e-13, 1e-15)
    deep = -np.geomspace(1e5, 1e3, 500)
    _assert_rel(_scalar_map(S._ndtri_exp, deep), naive.random_ndtri_exp(deep), 1e-12)
    assert S._ndtri_exp(0.0) == math.inf and S._ndtri_exp(-math.inf) == -math.inf
    assert math.isnan(S._ndtri_exp(0.5)) and math.isnan(S._ndtri_exp(math.nan))
    assert np.isfinite(S._ndtri_exp(-1e10))


def test_ndtri_exp_vs_mpmath():
    """Against 40-digit mpmath: relative error <= 1e-15 for log p in [-1e5, -1e3] (measured 2e-16)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    for lp in -np.geomspace(1e3, 1e5, 12):
        target = mp.mpf(lp)
        x0 = S._ndtri_exp(lp)
        exact = mp.findroot(lambda x: mp.log(mp.ncdf(x)) - target, mp.mpf(x0))
        assert abs(x0 - float(exact)) <= 1e-15 * abs(float(exact))


def test_ndtri_and_log_ndtr_inverse():
    x = np.linspace(-300, 8, 3001)
    back = _scalar_map(S._ndtri_exp, _scalar_map(S._log_ndtr, x))
    _assert_rel(back, x, 1e-13, 1e-15)


# ---------------------------------------------------------------------------
# Unconditional noise
# ---------------------------------------------------------------------------


def test_noise_kernels_vs_twins():
    """Relative 1e-14 with an absolute floor 1e-15 (gumbel and logistic cross 0 at u = 1/e and 1/2)."""
    u = _test_uniforms()
    _assert_rel(RN._noise(u, RN._GUMBEL), naive.random_gumbel(u), 1e-14, 1e-15)
    _assert_rel(RN._noise(u, RN._EXPONENTIAL), naive.random_exponential(u), 1e-14)
    _assert_rel(RN._noise(u, RN._LOGISTIC), naive.random_logistic(u), 1e-14, 1e-15)
    _assert_rel(RN._noise(u, RN._NORMAL), naive.random_normal(u), 1e-14)


def test_noise_public_shapes_and_finiteness():
    u = R.uniform(2, (3, 4, 5))
    for f in (R.gumbel, R.exponential, R.logistic, R.normal):
        out = f(u)
        assert out.shape == u.shape and out.dtype == np.float64
        ext = f(SPECIAL_U)
        assert np.all(np.isfinite(ext)), f.__name__
        assert np.ndim(f(0.25)) == 0
        assert f([]).shape == (0,)
    assert np.all(R.exponential(SPECIAL_U) > 0)
    # the exponential and Gumbel noises are tied: G = -log E, exactly
    uu = _test_uniforms()
    assert_array_equal(R.gumbel(uu), RN._noise(R.exponential(uu), RN._EXPONENTIAL))  # -log E, with the same log
    # monotone in u
    s = np.sort(uu)
    for f in (R.gumbel, R.exponential, R.logistic, R.normal):
        d = np.diff(f(s))
        assert np.all(d >= 0) if f is not R.exponential else np.all(d <= 0)


@pytest.mark.parametrize(
    "transform, dist",
    [(R.gumbel, "gumbel_r"), (R.exponential, "expon"), (R.logistic, "logistic"), (R.normal, "norm")],
)
def test_noise_distribution(transform, dist):
    """One-sample KS against scipy.stats, alpha = 1e-3, seed 777, n = 50000."""
    x = transform(R.uniform(777, 50000))
    assert stats.kstest(x, dist).pvalue > ALPHA


@pytest.mark.parametrize("f", [R.gumbel, R.exponential, R.logistic, R.normal])
@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, np.nan, np.inf])
def test_noise_rejects_outside_open_interval(f, bad):
    with pytest.raises(ValueError, match="u must"):
        f(np.array([0.3, bad]))


def test_noise_rejects_non_numeric():
    with pytest.raises(ValueError, match="u"):
        R.gumbel("abc")


# ---------------------------------------------------------------------------
# Categorical sampling
# ---------------------------------------------------------------------------

CAT_LOGITS = np.array(
    [
        [0.5, -1.0, 2.0, 0.0, -np.inf],
        [13.0, 13.0, 8.0, 11.0, 10.5],  # unnormalised (logsumexp = 13.8)
        [np.inf, 1.0, np.inf, -np.inf, 0.0],  # mass shared by the two +inf entries
        [40.0, -40.0, 0.0, 1.0, 2.0],
    ]
)


def _cat_probs(logits):
    return special.softmax(naive.random_normalised_logits(logits), axis=-1)


def test_categorical_kernels_vs_twins_and_each_other():
    n = 3000
    u = R.uniform(11, (n, 4, 5))
    u[:5] = SPECIAL_U[:, None, None]
    u[5:10] = SPECIAL_U[::-1, None, None]
    u[10:15] = SPECIAL_U[:, None, None][np.array([2, 0, 4, 1, 3])].reshape(5, 1, 1)
    a = RN._categorical_sample(CAT_LOGITS, u, False)
    assert a.dtype == np.int64 and a.shape == (n, 4)
    assert_array_equal(a, naive.random_categorical_gumbel_max(CAT_LOGITS, u))
    assert_array_equal(
        RN._categorical_sample(CAT_LOGITS, u, True), naive.random_categorical_exponential_argmin(CAT_LOGITS, u)
    )
    assert_array_equal(R.categorical_exponential_argmin(CAT_LOGITS, u), a)
    assert_array_equal(R.categorical_gumbel_max(CAT_LOGITS, u), a)


def test_categorical_frequencies():
    """Chi-square of Gumbel-max counts against softmax, per row; alpha = 1e-3 family-wise
    (Bonferroni over 4 rows), seed 4242.  Impossible categories never appear."""
    n = 20000
    u = R.uniform(4242, (n, 4, 5))
    b = R.categorical_gumbel_max(CAT_LOGITS, u)
    assert_array_equal(b, R.categorical_exponential_argmin(CAT_LOGITS, u))
    p = _cat_probs(CAT_LOGITS)
    for i in range(4):
        counts = np.bincount(b[:, i], minlength=5)
        assert np.all(counts[p[i] == 0] == 0)
        live = p[i] > 1e-12
        if live.sum() == 1:
            assert counts[live][0] == n
            continue
        expected = n * p[i][live] / p[i][live].sum()
        assert stats.chisquare(counts[live], expected).pvalue > ALPHA / 4, (i, counts, expected)


def test_categorical_bad_input():
    u = R.uniform(0, (2, 4, 5))
    with pytest.raises(ValueError, match="logits"):
        R.categorical_gumbel_max(np.where(np.eye(4, 5) > 0, np.nan, 0.0), u)
    with pytest.raises(ValueError, match="logits row 1 is all -inf"):
        R.categorical_gumbel_max(np.where(np.arange(4)[:, None] == 1, -np.inf, 0.0) + np.zeros((4, 5)), u)
    with pytest.raises(ValueError, match="logits"):
        R.categorical_gumbel_max(np.zeros(5), u)
    with pytest.raises(ValueError, match=r"logits must have at least one category"):
        R.categorical_gumbel_max(np.zeros((4, 0)), u[:, :, :0])
    with pytest.raises(ValueError, match=r"u must have shape \(n, 4, 5\)"):
        R.categorical_gumbel_max(np.zeros((4, 5)), u[:, :, :4])
    with pytest.raises(ValueError, match="u"):
        R.categorical_exponential_argmin(np.zeros((4, 5)), u[0])
    bad = u.copy()
    bad[1, 2, 3] = 1.0
    with pytest.raises(ValueError, match="u must hold uniforms"):
        R.categorical_exponential_argmin(np.zeros((4, 5)), bad)


# ---------------------------------------------------------------------------
# Conditional Gumbel
# ---------------------------------------------------------------------------


def _cond_gumbel_inputs(n=3000, seed=21):
    b = R.categorical_gumbel_max(CAT_LOGITS, R.uniform(seed, (n, 4, 5)))
    v = R.uniform(seed + 1, (n, 4, 5))
    v[:5] = SPECIAL_U[:, None, None]
    v[5:10] = SPECIAL_U[::-1, None, None]
    return b, v


def test_conditional_gumbel_vs_twin():
    """|err| <= 1e-14 |z| + 1e-14 (logsumexp and logaddexp are summed in a different order)."""
    b, v = _cond_gumbel_inputs()
    z = RC._conditional_gumbel(CAT_LOGITS, b, v)
    _assert_rel(z, naive.random_conditional_gumbel(CAT_LOGITS, b, v), 1e-14, 1e-14)
    assert_array_equal(R.conditional_gumbel(CAT_LOGITS, b, v), z)


def test_conditional_gumbel_support():
    """argmax z~ = b always (extreme v included); impossible categories get -inf; no NaN."""
    b, v = _cond_gumbel_inputs()
    z = R.conditional_gumbel(CAT_LOGITS, b, v)
    assert not np.isnan(z).any()
    assert_array_equal(np.argmax(z, axis=-1), b)
    top = np.take_along_axis(z, b[..., None], axis=-1)
    assert np.all((z < top) | (np.arange(5) == b[..., None]))
    assert np.all(np.isfinite(top))
    impossible = np.isneginf(naive.random_normalised_logits(CAT_LOGITS))[None] & np.ones(z.shape, bool)
    assert np.all(np.isneginf(z[impossible])) and np.all(np.isfinite(z[~impossible]))


def test_conditional_gumbel_top_is_gumbel_of_logsumexp():
    """For each fixed b, z~_b ~ Gumbel(logsumexp(l)) whatever b (the biased sampler uses
    l_b + Gumbel).  KS, alpha = 1e-3 family-wise over 4 categories, seed 99."""
    logits = np.array([[1.0, 3.0, -0.5, 0.2]])  # unnormalised: logsumexp = 3.2
    lse = special.logsumexp(logits[0])
    n = 5000
    for k in range(4):
        z = R.conditional_gumbel(logits, np.full((n, 1), k), R.uniform(99 + k, (n, 1, 4)))
        assert stats.kstest(z[:, 0, k], "gumbel_r", args=(lse,)).pvalue > ALPHA / 4


def test_conditional_gumbel_mixture_reproduces_unconditional():
    """b ~ Gumbel-max(u), z~ ~ z | b with fresh v: (b, z~) has the law of (argmax z, z), z = l + G.
    One-sample KS on each coordinate (Gumbel(l_k)), on the maximum (Gumbel(logsumexp l)) and on
    pairwise differences (Logistic(l_j - l_k), a joint check); alpha = 1e-3 family-wise
    (Bonferroni over all tests), seed 31415."""
    logits = np.array([[0.5, 2.0, -1.0, 1.2], [3.0, 2.5, 2.9, 4.0]])
    d, K = logits.shape
    n = 20000
    b = R.categorical_gumbel_max(logits, R.uniform(31415, (n, d, K)))
    z = R.conditional_gumbel(logits, b, R.uniform(31416, (n, d, K)))
    pairs = [(0, 1), (1, 2), (2, 3), (0, 3)]
    n_tests = d * (K + 1 + len(pairs))
    for i in range(d):
        for k in range(K):
            assert stats.kstest(z[:, i, k], "gumbel_r", args=(logits[i, k],)).pvalue > ALPHA / n_tests, (i, k)
        lse = special.logsumexp(logits[i])
        assert stats.kstest(z[:, i].max(axis=-1), "gumbel_r", args=(lse,)).pvalue > ALPHA / n_tests
        for j, k in pairs:
            diff = z[:, i, j] - z[:, i, k]
            loc = logits[i, j] - logits[i, k]
            assert stats.kstest(diff, "logistic", args=(loc,)).pvalue > ALPHA / n_tests, (i, j, k)


def test_conditional_gumbel_single_category():
    """K = 1: no conditioning, z~ = l + G(v) and the VJP is the cotangent."""
    v = R.uniform(6, (5, 2, 1))
    lg = np.array([[1.5], [-2.0]])
    b = np.zeros((5, 2), dtype=int)
    assert_allclose(R.conditional_gumbel(lg, b, v), lg[None] + R.gumbel(v), rtol=1e-15)
    c = np.random.default_rng(1).normal(size=v.shape)
    assert_allclose(R.conditional_gumbel_vjp(lg, b, v, c), c, rtol=1e-15)


def test_conditional_gumbel_infinite_logits():
    logits = np.array([[np.inf, 1.0, np.inf, -np.inf], [0.0, -np.inf, 2.0, 1.0]])
    b = np.array([[2, 3], [0, 0]])
    v = R.uniform(5, (2, 2, 4))
    z = R.conditional_gumbel(logits, b, v)
    assert_array_equal(np.argmax(z, axis=-1), b)
    assert np.isneginf(z[:, 0, [1, 3]]).all() and np.isfinite(z[:, 0, [0, 2]]).all()
    assert np.isneginf(z[:, 1, 1]).all()
    g = R.conditional_gumbel_vjp(logits, b, v, np.ones((2, 2, 4)))
    assert_array_equal(g[:, 0], 0.0)  # locally constant in the logits
    assert np.all(np.isfinite(g))
    with pytest.raises(ValueError, match="b at index"):
        R.conditional_gumbel(logits, np.array([[1, 3]]), v[:1])  # finite logit beside +inf
    with pytest.raises(ValueError, match="b at index"):
        R.conditional_gumbel(logits, np.array([[0, 1]]), v[:1])  # -inf logit


def test_conditional_gumbel_vjp_vs_twin():
    """|err| <= 1e-13 |g| + 1e-14."""
    b, v = _cond_gumbel_inputs(n=2000)
    c = np.random.default_rng(8).normal(size=v.shape)
    g = RC._conditional_gumbel_vjp(CAT_LOGITS, b, v, c)
    _assert_rel(g, naive.random_conditional_gumbel_vjp(CAT_LOGITS, b, v, c), 1e-13, 1e-14)
    assert_array_equal(R.conditional_gumbel_vjp(CAT_LOGITS, b, v, c), g)


@st.composite
def _categorical_case(draw):
    d = draw(st.integers(1, 2))
    K = draw(st.integers(2, 4))
    n = draw(st.integers(1, 2))
    logits = draw(arrays(np.float64, (d, K), elements=st.floats(-4.0, 4.0)))
    b = draw(arrays(np.int64, (n, d), elements=st.integers(0, K - 1)))
    v = draw(arrays(np.float64, (n, d, K), elements=st.floats(0.01, 0.99)))
    c = draw(arrays(np.float64, (n, d, K), elements=st.floats(-2.0, 2.0)))
    return logits, b, v, c


@given(_categorical_case())
def test_conditional_gumbel_vjp_finite_differences(case):
    logits, b, v, c = case
    g = R.conditional_gumbel_vjp(logits, b, v, c)
    h = 1e-6
    fd = np.empty_like(g)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        f_up = np.sum(c * R.conditional_gumbel(up, b, v), axis=(1, 2))
        f_down = np.sum(c * R.conditional_gumbel(down, b, v), axis=(1, 2))
        fd[(slice(None),) + idx] = (f_up - f_down) / (2 * h)
    assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_conditional_gumbel_bad_input():
    logits = np.zeros((2, 3))
    v = R.uniform(0, (4, 2, 3))
    b = np.zeros((4, 2), dtype=int)
    with pytest.raises(ValueError, match=r"b must have shape \(4, 2\)"):
        R.conditional_gumbel(logits, b[:, :1], v)
    with pytest.raises(ValueError, match=r"b must hold integers in \{0, ..., 2\}"):
        R.conditional_gumbel(logits, b + 3, v)
    with pytest.raises(ValueError, match="b must hold integers"):
        R.conditional_gumbel(logits, b - 1, v)
    with pytest.raises(ValueError, match="b must hold integers"):
        R.conditional_gumbel(logits, b + 0.5, v)
    with pytest.raises(ValueError, match="b must hold integers"):
        R.conditional_gumbel(logits, np.where(b == 0, np.nan, 0.0), v)
    with pytest.raises(ValueError, match="b must"):
        R.conditional_gumbel(logits, np.array([["a", "b"]] * 4), v)
    with pytest.raises(ValueError, match=r"v must have shape \(n, 2, 3\)"):
        R.conditional_gumbel(logits, b, v[:, :, :2])
    with pytest.raises(ValueError, match="v must hold uniforms"):
        R.conditional_gumbel(logits, b, np.where(v > 0.5, 0.0, v))
    with pytest.raises(ValueError, match="logits must not contain NaN"):
        R.conditional_gumbel(np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]]), b, v)
    with pytest.raises(ValueError, match="logits row 0 is all -inf"):
        R.conditional_gumbel(np.array([[-np.inf] * 3, [0.0] * 3]), b, v)
    with pytest.raises(ValueError, match=r"cotangent must have shape \(4, 2, 3\)"):
        R.conditional_gumbel_vjp(logits, b, v, np.ones((4, 2, 2)))
    with pytest.raises(ValueError, match="cotangent must be finite"):
        R.conditional_gumbel_vjp(logits, b, v, np.full((4, 2, 3), np.nan))
    # float and bool b in range are accepted
    assert_array_equal(R.conditional_gumbel(logits, b.astype(float), v), R.conditional_gumbel(logits, b, v))


# ---------------------------------------------------------------------------
# Conditional logistic
# ---------------------------------------------------------------------------

LOGISTIC_LOGITS = np.array([-50.0, -5.0, -0.3, 0.0, 0.7, 5.0, 50.0])


def _binary_grid(params, n=300, seed=41):
    v = np.concatenate([SPECIAL_U, R.uniform(seed, n), [1e-10, 1.0 - 1e-10]])
    V = np.repeat(v[:, None], params.size, axis=1)
    return V


@pytest.mark.parametrize("bit", [0, 1])
def test_conditional_logistic_vs_twin(bit):
    """Relative 1e-14 (measured 3e-16; z~ and its slope are relatively accurate everywhere).
    The absolute floor 1e-307 only admits subnormal slopes (l = -50, v = 1e-300)."""
    V = _binary_grid(LOGISTIC_LOGITS)
    B = np.full(V.shape, bit, dtype=np.int64)
    z = RC._conditional_binary(LOGISTIC_LOGITS, B, V, False, False)
    _assert_rel(z, naive.random_conditional_logistic(LOGISTIC_LOGITS, B, V), 1e-14, 1e-307)
    g = RC._conditional_binary(LOGISTIC_LOGITS, B, V, False, True)
    _assert_rel(g, naive.random_conditional_logistic_grad(LOGISTIC_LOGITS, B, V), 1e-14, 1e-307)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(g))
    assert np.all((z > 0) == (bit == 1)) and np.all(z != 0)
    assert np.all((g >= 0) & (g <= 1))
    assert np.all(np.diff(z[np.argsort(V[:, 0])], axis=0) >= 0)  # monotone in v


def test_conditional_logistic_is_rebar_definition():
    """The simplified log-space form equals REBAR's l + logit(v') with v' = v(1 - theta) (b = 0),
    v' = 1 - theta + v theta (b = 1): plain floats at moderate l and v (rel 1e-11), and 50-digit
    mpmath at the extremes l = +-50, v in {1e-300, ..., 1 - 2**-53} (rel 1e-14, measured 3e-16)."""
    lg = np.array([-3.0, -0.4, 0.0, 1.1, 4.0])
    v = R.uniform(3, (200, 5)) * 0.98 + 0.01
    theta = special.expit(lg)[None]
    for bit in (0, 1):
        vp = v * (1 - theta) if bit == 0 else (1 - theta) + v * theta
        direct = lg[None] + np.log(vp / (1 - vp))
        _assert_rel(R.conditional_logistic(lg, np.full(v.shape, bit), v), direct, 1e-11, 1e-13)
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 800  # v' = 1 - theta + v theta must resolve v theta ~ 1e-322 next to 1
    for ell in (-50.0, -5.0, 0.5, 50.0):
        for x in SPECIAL_U:
            for bit in (0, 1):
                L, V = mp.mpf(ell), mp.mpf(float(x))
                th = 1 / (1 + mp.exp(-L))
                vp = V * (1 - th) if bit == 0 else (1 - th) + V * th
                exact = float(L + mp.log(vp) - mp.log(1 - vp))
                got = R.conditional_logistic([ell], [[bit]], [[x]])[0, 0]
                assert abs(got - exact) <= 1e-14 * abs(exact), (ell, x, bit, got, exact)


def test_conditional_logistic_mixture_and_conditionals():
    """b = 1[l + L(u) > 0], z~ ~ z | b with fresh v.  KS of z~ against Logistic(l) per coordinate,
    and of z~ given each b against the truncated logistic; alpha = 1e-3 family-wise
    (Bonferroni over 9 tests), seed 2718."""
    lg = np.array([-2.0, 0.3, 3.0])
    n = 20000
    b = (lg[None] + R.logistic(R.uniform(2718, (n, 3))) > 0).astype(np.int64)
    z = R.conditional_logistic(lg, b, R.uniform(2719, (n, 3)))
    assert_array_equal(z > 0, b == 1)
    a = ALPHA / 9
    for j in range(3):
        assert stats.kstest(z[:, j], "logistic", args=(lg[j],)).pvalue > a
        F0 = special.expit(-lg[j])  # P(z < 0)
        neg = z[b[:, j] == 0, j]
        pos = z[b[:, j] == 1, j]
        assert stats.kstest(neg, lambda x: special.expit(x - lg[j]) / F0).pvalue > a
        assert stats.kstest(pos, lambda x: (special.expit(x - lg[j]) - F0) / (1 - F0)).pvalue > a


@given(
    arrays(np.float64, (3,), elements=st.floats(-8.0, 8.0)),
    arrays(np.int64, (2, 3), elements=st.integers(0, 1)),
    arrays(np.float64, (2, 3), elements=st.floats(1e-6, 1.0 - 1e-6)),
)
def test_conditional_logistic_grad_finite_differences(logits, b, v):
    g = R.conditional_logistic_grad(logits, b, v)
    h = 1e-6
    fd = (R.conditional_logistic(logits + h, b, v) - R.conditional_logistic(logits - h, b, v)) / (2 * h)
    assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_conditional_logistic_infinite_logits():
    v = np.array([SPECIAL_U, SPECIAL_U])
    lg = np.array([np.inf, -np.inf, np.inf, -np.inf, 0.0])
    b = np.array([[1, 0, 1, 0, 1], [1, 0, 1, 0, 0]])
    z = R.conditional_logistic(lg, b, v)
    assert_array_equal(z[:, [0, 2]], np.inf)
    assert_array_equal(z[:, [1, 3]], -np.inf)
    assert_array_equal(R.conditional_logistic_grad(lg, b, v)[:, :4], 1.0)
    with pytest.raises(ValueError, match=r"b at index \(0, 0\)"):
        R.conditional_logistic(lg, 1 - b, v)
    with pytest.raises(ValueError, match="b at index"):
        R.conditional_logistic_grad(lg, 1 - b, v)
    # the kernels return the finite limits (no NaN) for the impossible combinations
    lim = RC._conditional_binary(lg[:2], np.array([[0, 1]]), np.array([[0.3, 0.3]]), False, False)
    assert_allclose(lim, [[np.log(0.3), -np.log(0.7)]], rtol=1e-15)


def test_conditional_logistic_bad_input():
    lg = np.zeros(3)
    v = R.uniform(0, (4, 3))
    b = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"b must hold integers in \{0, ..., 1\}"):
        R.conditional_logistic(lg, b + 2, v)
    with pytest.raises(ValueError, match="b must hold integers"):
        R.conditional_logistic(lg, b + 0.5, v)
    with pytest.raises(ValueError, match=r"b must have shape \(4, 3\)"):
        R.conditional_logistic(lg, b[:2], v)
    with pytest.raises(ValueError, match=r"v must have shape \(n, 3\)"):
        R.conditional_logistic(lg, b, v[:, :2])
    with pytest.raises(ValueError, match="v must hold uniforms"):
        R.conditional_logistic(lg, b, v + 1.0)
    with pytest.raises(ValueError, match="v must hold uniforms"):
        R.conditional_logistic_grad(lg, b, np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="logits must not contain NaN"):
        R.conditional_logistic(np.array([0.0, np.nan, 1.0]), b, v)
    with pytest.raises(ValueError, match="logits must have 1 dimension"):
        R.conditional_logistic(np.zeros((1, 3)), b, v)
    assert_array_equal(R.conditional_logistic(lg, b.astype(bool), v), R.conditional_logistic(lg, b, v))


# ---------------------------------------------------------------------------
# Conditional normal (Gaussian threshold)
# ---------------------------------------------------------------------------

NORMAL_MU = np.array([-30.0, -8.0, -1.5, 0.0, 0.4, 2.0, 8.0, 30.0])


@pytest.mark.parametrize("bit", [0, 1])
def test_conditional_normal_vs_twin(bit):
    """Twin built on scipy.special.ndtri_exp / log_ndtr.  Tolerance |err| <= 1e-13 |z| + 2e-15 (1 + |mu|)
    for z~ and 1e-13 |g| + 2e-14 (1 + |mu|) for the slope: z~ = mu -+ w carries |mu| ulps of absolute
    error in both implementations (measured: 1.4e-14 and 3.6e-13 at |mu| = 30)."""
    V = _binary_grid(NORMAL_MU)
    B = np.full(V.shape, bit, dtype=np.int64)
    scale = 1.0 + np.abs(NORMAL_MU)[None]
    z = RC._conditional_binary(NORMAL_MU, B, V, True, False)
    _assert_rel(z, naive.random_conditional_normal(NORMAL_MU, B, V), 1e-13, 2e-15 * scale)
    g = RC._conditional_binary(NORMAL_MU, B, V, True, True)
    _assert_rel(g, naive.random_conditional_normal_grad(NORMAL_MU, B, V), 1e-13, 2e-14 * scale)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(g))
    assert_array_equal(z >= 0, bit == 1)
    assert np.all((g >= 0) & (g <= 1))
    assert np.all(np.diff(z[np.argsort(V[:, 0])], axis=0) >= 0)  # monotone in v


def test_conditional_normal_vs_mpmath():
    """40-digit reference at |mu| up to 30: |err z~| <= 4e-16 (1 + |mu| + |z~|), |err slope| <= 1e-14 (1 + |mu|)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    for mu, bit in [(-30.0, 1), (30.0, 0), (-8.0, 1), (8.0, 0), (0.4, 0), (-1.5, 1), (2.0, 1), (-30.0, 0)]:
        for x in [0.1, 0.5, 0.9, 1e-16, 1.0 - 1e-10]:
            M, V = mp.mpf(mu), mp.mpf(x)
            r = (1 - V) if bit == 1 else V
            target = mp.log(r * mp.ncdf(M if bit == 1 else -M))
            w = mp.findroot(lambda t: mp.log(mp.ncdf(t)) - target, mp.mpf(float(S._ndtri_exp(float(target)))))
            z_exact = M - w if bit == 1 else M + w
            g_exact = 1 - r * mp.exp(z_exact**2 / 2 - M * z_exact)
            z = R.conditional_normal([mu], [[bit]], [[x]])[0, 0]
            g = R.conditional_normal_grad([mu], [[bit]], [[x]])[0, 0]
            assert abs(z - float(z_exact)) <= 4e-16 * (1 + abs(mu) + abs(z)), (mu, bit, x)
            assert abs(g - float(g_exact)) <= 1e-14 * (1 + abs(mu)), (mu, bit, x)


def test_conditional_normal_conditionals_and_mixture():
    """z ~ N(mu, 1), b = 1[z >= 0] (P(b = 1) = Phi(mu)).  Given each b, z~ ~ truncnorm on its side
    (seed 002 swaps Phi(mu) and Phi(-mu) here, which this test rejects); the mixture is N(mu, 1).
    KS, alpha = 1e-3 family-wise (Bonferroni over 9 tests), seed 16180."""
    mu = np.array([-1.5, 0.4, 2.0])
    n = 20000
    b = (mu[None] + R.normal(R.uniform(16180, (n, 3))) >= 0).astype(np.int64)
    z = R.conditional_normal(mu, b, R.uniform(16181, (n, 3)))
    assert_array_equal(z >= 0, b == 1)
    a = ALPHA / 9
    for j in range(3):
        assert stats.kstest(z[:, j], "norm", args=(mu[j],)).pvalue > a
        neg = z[b[:, j] == 0, j]
        pos = z[b[:, j] == 1, j]
        assert stats.kstest(neg, stats.truncnorm(-np.inf, -mu[j], loc=mu[j]).cdf).pvalue > a
        assert stats.kstest(pos, stats.truncnorm(-mu[j], np.inf, loc=mu[j]).cdf).pvalue > a


@given(
    arrays(np.float64, (3,), elements=st.floats(-6.0, 6.0)),
    arrays(np.int64, (2, 3), elements=st.integers(0, 1)),
    arrays(np.float64, (2, 3), elements=st.floats(1e-4, 1.0 - 1e-4)),
)
def test_conditional_normal_grad_finite_differences(mu, b, v):
    g = R.conditional_normal_grad(mu, b, v)
    h = 1e-6
    fd = (R.conditional_normal(mu + h, b, v) - R.conditional_normal(mu - h, b, v)) / (2 * h)
    assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_conditional_normal_extremes_finite():
    mu = np.array([-30.0, 30.0, -30.0, 30.0])
    for x in SPECIAL_U:
        v = np.full((2, 4), x)
        b = np.array([[0, 0, 1, 1], [1, 1, 0, 0]])
        z = R.conditional_normal(mu, b, v)
        g = R.conditional_normal_grad(mu, b, v)
        assert np.all(np.isfinite(z)) and np.all(np.isfinite(g)), x
        assert_array_equal(z >= 0, b == 1)


def test_conditional_normal_infinite_mu():
    mu = np.array([np.inf, -np.inf])
    v = np.array([[0.3, 0.7], [1e-300, 1 - 2**-53]])
    b = np.array([[1, 0], [1, 0]])
    assert_array_equal(R.conditional_normal(mu, b, v), [[np.inf, -np.inf]] * 2)
    assert_array_equal(R.conditional_normal_grad(mu, b, v), 1.0)
    with pytest.raises(ValueError, match="b at index"):
        R.conditional_normal(mu, 1 - b, v)
    with pytest.raises(ValueError, match="b at index"):
        R.conditional_normal_grad(mu, 1 - b, v)
    lim = RC._conditional_binary(mu, 1 - b, v, True, False)
    assert np.all(np.isfinite(lim)) and np.all(np.abs(lim) < 1e-300)
    assert_array_equal((lim >= 0), (1 - b) == 1)


def test_conditional_normal_bad_input():
    mu = np.zeros(2)
    v = R.uniform(0, (3, 2))
    b = np.ones((3, 2), dtype=int)
    with pytest.raises(ValueError, match="mu must not contain NaN"):
        R.conditional_normal(np.array([np.nan, 0.0]), b, v)
    with pytest.raises(ValueError, match=r"b must hold integers in \{0, ..., 1\}"):
        R.conditional_normal(mu, -b, v)
    with pytest.raises(ValueError, match=r"v must have shape \(n, 2\)"):
        R.conditional_normal(mu, b, v[:, :1])
    with pytest.raises(ValueError, match="v must hold uniforms"):
        R.conditional_normal_grad(mu, b, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mu must have 1 dimension"):
        R.conditional_normal(0.0, b, v)


# ---------------------------------------------------------------------------
# Input types and messages that show the offending value and its index
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad, what", [
    (np.array([[0.5 + 0j, 0.25]]), "complex"),
    (np.array([[True, False]]), "bool"),
    ([["0.5", "0.25"]], "string"),
])
def test_uniforms_of_the_wrong_type_are_type_errors(bad, what):
    mu = np.zeros(2)
    b = np.ones((1, 2), dtype=int)
    for fn in (R.conditional_normal, R.conditional_normal_grad, R.conditional_logistic,
               R.conditional_logistic_grad):
        with pytest.raises(TypeError, match=r"\bv\b"):
            fn(mu, b, bad)
    with pytest.raises(TypeError, match=r"\bu\b"):
        R.gumbel(bad)
    with pytest.raises(TypeError, match=r"\bmu\b"):
        R.conditional_normal(np.array([0.0, 1j]), b, np.full((1, 2), 0.5))


def test_messages_show_value_and_index():
    with pytest.raises(ValueError, match=r"v must hold uniforms strictly inside \(0, 1\).*got 1\.0 at index \(1, 0\)"):
        R.conditional_logistic(np.zeros(2), np.ones((2, 2), dtype=int), np.array([[0.5, 0.5], [1.0, 0.5]]))
    with pytest.raises(ValueError, match=r"cotangent must be finite; got nan at index \(0, 0, 1\)"):
        ct = np.zeros((1, 1, 2))
        ct[0, 0, 1] = np.nan
        R.conditional_gumbel_vjp(np.zeros((1, 2)), np.zeros((1, 1), dtype=int), np.full((1, 1, 2), 0.5), ct)
    with pytest.raises(TypeError, match=r"b must be an array of integers.*dtype complex"):
        R.conditional_logistic(np.zeros(1), np.array([[1 + 0j]]), np.full((1, 1), 0.5))
    with pytest.raises(ValueError, match=r"b must hold integers in \{0, ..., 1\}; got 2 at index \(0, 1\)"):
        R.conditional_logistic(np.zeros(2), np.array([[1, 2]]), np.full((1, 2), 0.5))
    with pytest.raises(ValueError, match=r"shape must hold non-negative integers; got -3 at index 1"):
        R.uniform(0, (2, -3))
    with pytest.raises(TypeError, match="shape must be a non-negative integer"):
        R.uniform(0, 2.5)
    with pytest.raises(ValueError, match=r"shape=\(10000000, 1000000\) asks for 1e\+13 uniforms.*budget"):
        R.uniform(0, (10**7, 10**6))  # was numpy's MemoryError
    with pytest.raises(TypeError, match="rng must be None.*of type float"):
        R.as_generator(1.5)
    with pytest.raises(ValueError, match="got the seed -1"):
        R.as_generator(-1)


# ---------------------------------------------------------------------------
# Normal-tail helpers of the conditional normal, against SciPy
# ---------------------------------------------------------------------------


def test_normal_tail_helpers_vs_scipy():
    # g(x) = lambda(x) - x with lambda = phi/Q = 1/R, R(x) = sqrt(pi/2) erfcx(x/sqrt2) (Mills ratio);
    # the continued fraction (x >= 3) and the erfc form (x < 3) meet at x = 3
    x = np.concatenate([np.linspace(-30, 30, 601), [2.999999999, 3.0, 3.999999, 4.0, 7.99999, 8.0, 19.9999, 20.0,
                                                     1e3, 1e8, 1e150]])
    mills = np.sqrt(np.pi / 2) * special.erfcx(x / np.sqrt(2))
    lam = 1.0 / mills
    g = _scalar_map(S._hazard_excess, x)
    # relative to lambda where g = lambda - x cancels (0 < x), plus the cancellation of the reference itself
    _assert_rel(g, lam - x, 1e-13, 4e-16 * np.abs(lam) + 1e-300)
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    for t in [3.0, 4.0, 8.0, 20.0, 1e3, 1e8, 1e150]:  # where lambda - x cancels in the SciPy reference
        ref = 1 / (mp.erfc(mp.mpf(t) / mp.sqrt(2)) / 2 / mp.npdf(mp.mpf(t))) - t
        _assert_rel(S._hazard_excess(t), float(ref), 1e-15)
    _assert_rel(_scalar_map(S._log_mills, x), np.log(mills), 1e-14, 1e-15)
    for t in [-0.5, -2.9, -3.0, -10.0, -29.4, -37.0]:  # SciPy's ndtr carries the a^2 ulp of erfc's argument
        _assert_rel(S._ndtr_negative(t), float(mp.ncdf(t)), 1e-15)


def test_excess_integral_vs_quadrature():
    # G(c, w) = int_c^(c+w) g = log R(c) - log R(c + w), by Gauss-Legendre (short) or the difference (long)
    from scipy import integrate

    def g(t):
        return 1.0 / (np.sqrt(np.pi / 2) * special.erfcx(t / np.sqrt(2))) - t

    for c in [-20.0, -3.0, -0.5, 0.0, 0.7, 2.9, 5.0, 40.0]:
        for w in [1e-300, 1e-12, 1e-5, 1e-3, 0.05, 0.5, 1.0, 3.0, 12.0]:
            if w > 1e-6:  # quad integrates over the rounded [c, c + w]: rescale to the width w itself
                ref = integrate.quad(g, c, c + w, epsabs=0, epsrel=1e-13, limit=200)[0] * w / ((c + w) - c)
            else:
                ref = w * g(c + w / 2)
            _assert_rel(S._excess_integral(c, w), ref, 1e-11)
