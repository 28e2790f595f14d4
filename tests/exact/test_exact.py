"""Exact oracles: gradient vs finite differences of the expectation, closed forms, chunking invariance,
compensated summation vs math.fsum, the enumeration limit, ±inf parameters, a Monte Carlo check."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

import naive
from refgrad import exact
from refgrad._core.sums import _compensated_accumulate
from refgrad._oracle.stream import _chunk_flip_differences
from refgrad.distributions import ENUMERATION_LIMIT, Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.exact import expectation, gradient
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance, Table

EPS = np.finfo(np.float64).eps
FAMILIES = {"bernoulli": Bernoulli, "gaussian_threshold": GaussianThreshold, "categorical": Categorical}


def make(family, params):
    return FAMILIES[family](params)


# ---------------------------------------------------------------- strategies

# mostly moderate parameters, sometimes large ones (nearly deterministic bits/categories)
param_entry = st.one_of(st.floats(-4.0, 4.0), st.floats(-40.0, 40.0))
table_entry = st.floats(-10.0, 10.0, allow_nan=False)


@st.composite
def problems(draw, max_d=4, max_k=4):
    """(family, params, table values) with support ≤ 4**3 for categorical, ≤ 2**4 for bits."""
    family = draw(st.sampled_from(sorted(FAMILIES)))
    if family == "categorical":
        d = draw(st.integers(1, 3))
        K = draw(st.integers(2, max_k))
        params = draw(hnp.arrays(np.float64, (d, K), elements=param_entry))
    else:
        d = draw(st.integers(1, max_d))
        K = 2
        params = draw(hnp.arrays(np.float64, (d,), elements=param_entry))
    values = draw(hnp.arrays(np.float64, (K,) * d, elements=table_entry))
    return family, params, values


def central_difference(family, params, f, h=1e-5):
    """Central differences of expectation(make(family, params), f) with respect to every parameter."""
    out = np.zeros_like(params)
    for idx in np.ndindex(params.shape):
        e = np.zeros_like(params)
        e[idx] = h
        out[idx] = (expectation(make(family, params + e), f) - expectation(make(family, params - e), f)) / (2 * h)
    return out


# ---------------------------------------------------------------- gradient vs finite differences


@given(problems())
def test_gradient_matches_central_differences_of_expectation(problem):
    family, params, values = problem
    f = Table(values)
    g = gradient(make(family, params), f)
    assert g.shape == params.shape
    # error: h²/6 |E'''| (E''' ≤ a few max|values| in these parametrisations) + rounding ~ eps max|values| / h
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(g, central_difference(family, params, f), rtol=1e-6, atol=1e-8 * scale)


@given(problems())
def test_expectation_of_table_is_its_multilinear_extension(problem):
    """E_q[f] = F(probabilities): links the oracle to Table's extension (bits: F(θ); categorical: F(π))."""
    family, params, values = problem
    dist = make(family, params)
    probs = dist.probs
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(
        expectation(dist, Table(values)), Table(values).value(probs[None])[0], rtol=1e-13, atol=1e-14 * scale
    )


# ---------------------------------------------------------------- closed forms


def squared_distance_closed_form(theta, dtheta, t):
    """E = Σ_i [θ_i (1 − t_i)² + (1 − θ_i) t_i²] and its derivative dθ_i/dφ_i (1 − 2 t_i)."""
    value = np.sum(theta * (1 - t) ** 2 + (1 - theta) * t**2)
    return value, dtheta * (1 - 2 * t)


@st.composite
def bits_and_targets(draw, max_d=6):
    d = draw(st.integers(1, max_d))
    params = draw(hnp.arrays(np.float64, (d,), elements=st.floats(-10.0, 10.0)))
    targets = draw(hnp.arrays(np.float64, (d,), elements=st.floats(0.0, 1.0)))
    return params, targets


@given(bits_and_targets())
def test_squared_distance_bernoulli_closed_form(case):
    logits, t = case
    theta = special.expit(logits)
    value, grad = squared_distance_closed_form(theta, theta * (1 - theta), t)
    dist = Bernoulli(logits)
    f = SquaredDistance(t)
    # the enumeration sums terms of size ≤ E; cancellation in the gradient is measured against E
    np.testing.assert_allclose(expectation(dist, f), value, rtol=1e-13)
    np.testing.assert_allclose(gradient(dist, f), grad, rtol=1e-12, atol=1e-14 * max(value, 1.0))


@given(bits_and_targets())
def test_squared_distance_gaussian_threshold_closed_form(case):
    mu, t = case
    theta = special.ndtr(mu)
    dtheta = np.exp(-0.5 * mu**2) / np.sqrt(2 * np.pi)
    value, grad = squared_distance_closed_form(theta, dtheta, t)
    dist = GaussianThreshold(mu)
    f = SquaredDistance(t)
    np.testing.assert_allclose(expectation(dist, f), value, rtol=1e-13)
    np.testing.assert_allclose(gradient(dist, f), grad, rtol=1e-12, atol=1e-14 * max(value, 1.0))


def test_rebar_toy_problem():
    """One bit, t = 0.45 (Tucker et al. 2017 §6.1): E = θ 0.55² + (1 − θ) 0.45², dE/dℓ = θ(1 − θ) 0.1."""
    for logit in (-3.0, 0.0, 0.7, 5.0):
        theta = special.expit(logit)
        dist = Bernoulli([logit])
        expected = theta * 0.3025 + (1 - theta) * 0.2025
        np.testing.assert_allclose(expectation(dist, SquaredDistance(0.45)), expected, rtol=1e-15)
        np.testing.assert_allclose(gradient(dist, SquaredDistance(0.45)), [theta * (1 - theta) * 0.1], rtol=1e-13)


# ---------------------------------------------------------------- chunking and summation


@given(problems())
def test_chunking_invariance(problem):
    family, params, values = problem
    dist = make(family, params)
    f = Table(values)
    full_e = expectation(dist, f, chunk_size=dist.support_size)
    full_g = gradient(dist, f, chunk_size=dist.support_size)
    scale = max(1.0, float(np.abs(values).max()))
    for chunk in (1, 3, 7, 65536, 2 * ENUMERATION_LIMIT):
        np.testing.assert_allclose(expectation(dist, f, chunk_size=chunk), full_e, rtol=1e-14, atol=1e-15 * scale)
        np.testing.assert_allclose(gradient(dist, f, chunk_size=chunk), full_g, rtol=1e-14, atol=1e-15 * scale)


wide_floats = st.one_of(st.floats(-1e3, 1e3), st.floats(-1e12, 1e12), st.floats(-1e-6, 1e-6))


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 300), st.integers(1, 3)), elements=wide_floats),
    st.integers(1, 300),
)
def test_compensated_accumulate_matches_fsum(terms, split):
    """Neumaier summation: |error| ≤ 2 eps |S| + O(m eps²) Σ|x| (Neumaier 1974), also across chunks."""
    exact_sums = naive.compensated_sum_columns(terms)
    bound = 2 * EPS * np.abs(exact_sums) + terms.shape[0] * EPS**2 * np.abs(terms).sum(axis=0) * 4
    for pieces in ((terms,), (terms[:split], terms[split:])):
        total = np.zeros(terms.shape[1])
        comp = np.zeros(terms.shape[1])
        for piece in pieces:
            _compensated_accumulate(np.ascontiguousarray(piece), total, comp)
        assert np.all(np.abs((total + comp) - exact_sums) <= bound)


def test_compensated_accumulate_recovers_cancelled_terms():
    terms = np.array([[1e16], [1.0], [-1e16], [3.0]])
    assert terms.sum() == 3.0  # plain summation loses the 1
    total, comp = np.zeros(1), np.zeros(1)
    _compensated_accumulate(terms, total, comp)
    assert total[0] + comp[0] == 4.0
    assert naive.compensated_sum_columns(terms)[0] == 4.0


# ---------------------------------------------------------------- the enumeration limit


def test_support_too_large_is_refused_before_evaluating():
    calls = []

    def f(z):
        calls.append(z.shape)
        return np.zeros(z.shape[0])

    for dist in (Bernoulli(np.zeros(23)), GaussianThreshold(np.zeros(23)), Categorical(np.zeros((12, 4)))):
        for oracle in (expectation, gradient):
            message = rf"support size {dist.support_size} exceeds limit={ENUMERATION_LIMIT}.*larger limit="
            with pytest.raises(ValueError, match=message):
                oracle(dist, f)
    assert calls == []


def test_limit_is_adjustable():
    dist = Bernoulli(np.zeros(5))
    f = FunctionObjective(lambda z: np.sum((z - 0.25) ** 2, axis=1))  # not recognisably separable
    with pytest.raises(ValueError, match="limit=16"):
        expectation(dist, f, limit=16)
    assert expectation(dist, f, limit=32) == pytest.approx(5 * (0.5 * 0.75**2 + 0.5 * 0.25**2), rel=1e-15)


def test_separable_objective_beyond_the_limit_is_summed_per_variable():
    dist = Bernoulli(np.linspace(-1.0, 1.0, 5))
    f = SquaredDistance(0.25)
    np.testing.assert_allclose(expectation(dist, f, limit=16), expectation(dist, f), rtol=1e-15)
    np.testing.assert_allclose(gradient(dist, f, limit=16), gradient(dist, f), rtol=1e-14)
    big = Bernoulli(np.zeros(200))
    assert expectation(big, f) == pytest.approx(200 * (0.5 * 0.75**2 + 0.5 * 0.25**2), rel=1e-14)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_bad_chunk_size_and_limit(bad):
    dist = Bernoulli([0.0])
    with pytest.raises(ValueError, match="chunk_size"):
        expectation(dist, SquaredDistance(0.0), chunk_size=bad)
    with pytest.raises(ValueError, match="limit"):
        gradient(dist, SquaredDistance(0.0), limit=bad)


def test_bad_dist_and_objective():
    def nanny(z):
        return np.full(z.shape[0], np.nan)

    with pytest.raises(ValueError, match="dist must be"):
        expectation(np.zeros(3), SquaredDistance(0.0))
    for oracle in (expectation, gradient):  # a continuous distribution: named, not 'pass limit=inf'
        with pytest.raises(ValueError, match="dist must have a finite support.*Normal with support size inf"):
            oracle(Normal([0.0]), SquaredDistance(0.0))
    with pytest.raises(ValueError, match="f must be"):
        gradient(Bernoulli([0.0]), 3.0)
    with pytest.raises(ValueError, match="nanny.*non-finite"):
        expectation(Bernoulli([0.0]), nanny)


# ---------------------------------------------------------------- infinite parameters


def test_infinite_logits_bits():
    t = np.array([0.3, 0.9, 0.45])
    for family in ("bernoulli", "gaussian_threshold"):
        dist = make(family, np.array([np.inf, -np.inf, 0.3]))
        theta = dist.probs
        assert theta[0] == 1.0 and theta[1] == 0.0
        if family == "bernoulli":
            finite_deriv = special.expit(0.3) * special.expit(-0.3)
        else:
            finite_deriv = np.exp(-0.045) / np.sqrt(2 * np.pi)
        value, grad = squared_distance_closed_form(theta, np.array([0.0, 0.0, finite_deriv]), t)
        e = expectation(dist, SquaredDistance(t))
        g = gradient(dist, SquaredDistance(t))
        assert np.isfinite(e) and np.all(np.isfinite(g))
        np.testing.assert_allclose(e, value, rtol=1e-14)
        np.testing.assert_allclose(g, grad, rtol=1e-13, atol=0.0)


def test_infinite_logits_categorical_skip_impossible_configurations():
    logits = np.array([[0.0, -np.inf, 1.0], [np.inf, 0.0, -np.inf]])
    values = np.arange(9.0).reshape(3, 3)
    pi = special.softmax([0.0, 1.0])

    def f(z):
        # NaN on impossible configurations: they must be neither evaluated nor multiplied
        idx = z.argmax(axis=2)
        possible = (idx[:, 0] != 1) & (idx[:, 1] == 0)
        return np.where(possible, values[idx[:, 0], idx[:, 1]], np.nan)

    dist = Categorical(logits)
    e = expectation(dist, f, chunk_size=2)
    g = gradient(dist, f, chunk_size=2)
    expected_e = pi[0] * values[0, 0] + pi[1] * values[2, 0]
    np.testing.assert_allclose(e, expected_e, rtol=1e-15)
    expected_g = np.zeros((2, 3))
    expected_g[0, 0] = pi[0] * (values[0, 0] - expected_e)
    expected_g[0, 2] = pi[1] * (values[2, 0] - expected_e)
    np.testing.assert_allclose(g, expected_g, rtol=1e-14, atol=1e-15)


def test_all_parameters_infinite_is_a_point_mass():
    dist = Bernoulli([np.inf, -np.inf])
    assert expectation(dist, SquaredDistance([0.2, 0.7])) == 0.8**2 + 0.7**2
    np.testing.assert_array_equal(gradient(dist, SquaredDistance([0.2, 0.7])), [0.0, 0.0])


# ---------------------------------------------------------------- Monte Carlo check


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_expectation_agrees_with_monte_carlo(family):
    """Sample mean of f over n = 100 000 draws vs the exact expectation.

    Two-sided z-test with the exact standard deviation (from expectation(f²)): reject when |z| > 4.5,
    α ≈ 6.8e-6 per family; seed fixed.
    """
    rng = np.random.default_rng(12345)
    shape = (3, 3) if family == "categorical" else (4,)
    params = rng.normal(0.0, 1.5, size=shape)
    K = 3 if family == "categorical" else 2
    table = Table(rng.normal(size=(K,) * shape[0]))
    squared = Table(table.values**2)
    dist = make(family, params)
    n = 100_000
    samples = dist.sample(n, rng=rng)
    mean = table.value(samples).mean()
    e = expectation(dist, table)
    sd = np.sqrt(expectation(dist, squared) - e**2)
    z = (mean - e) / (sd / np.sqrt(n))
    assert abs(z) < 4.5, f"z = {z:.2f}"


def test_module_exports():
    assert set(exact.__all__) >= {"expectation", "gradient"}


# ---------------------------------------------------------------- every chunk of exact.expect is checked


def width_changing(first, later, split):
    """fn whose rows have ``first`` entries for configurations before index ``split``, ``later`` after."""

    def fn(b):
        index = b @ (2.0 ** np.arange(b.shape[1] - 1, -1, -1))
        width = first if index[0] < split else later
        return np.ones((b.shape[0], width))

    return fn


@pytest.mark.parametrize("first, later", [(3, 1), (1, 400)])
def test_expect_refuses_a_width_change_between_chunks(first, later):
    """3 then 1 gave a silent partial sum; 1 then 400 wrote past the accumulator (SIGSEGV)."""
    dist = Bernoulli(np.zeros(3))
    fn = width_changing(first, later, 4)
    message = rf"fn \(fn\) must return rows of the same shape.*\({first},\).*\({later},\).*indices 4\.\.5"
    with pytest.raises(ValueError, match=message):
        exact.expect(dist, fn, chunk_size=2)
    np.testing.assert_allclose(exact.expect(dist, fn, chunk_size=8), np.ones(first))  # one chunk: fine


@pytest.mark.parametrize(
    "fn, error, match",
    [
        (lambda b: b.astype(str), TypeError, r"output of fn \(<lambda>\).*strings"),
        (lambda b: b + 1j, TypeError, r"output of fn \(<lambda>\).*complex"),
        (lambda b: b > 0.5, TypeError, r"output of fn \(<lambda>\).*booleans"),
        (lambda b: np.where(b == 1.0, np.nan, 0.0), ValueError, r"fn \(<lambda>\) returned the non-finite value nan "
                                                                  r"at index \(\d+, \d\)"),
        (lambda b: b[:1], ValueError, r"one row per configuration.*returned shape \(1, 2\)"),
    ],
)
def test_expect_rejects_bad_outputs_naming_fn(fn, error, match):
    with pytest.raises(error, match=match):
        exact.expect(Bernoulli([0.3, -0.2]), fn)


def test_expect_rejects_a_non_callable():
    with pytest.raises(TypeError, match="fn must be callable"):
        exact.expect(Bernoulli([0.0]), 3.0)


# ---------------------------------------------------------------- gradient by differences


def test_gradient_evaluates_a_plain_callable_once_per_configuration_within_a_chunk():
    """The differences reuse the chunk's values of f; flips that leave the chunk are evaluated, nothing else."""
    rows = []

    def f(z):
        rows.append(len(z))
        return z @ np.array([1.0, 2.0, 4.0, 8.0]) + z[:, 0] * z[:, 3]

    dist = Bernoulli([0.3, -1.0, 2.0, 0.5])
    g = gradient(dist, f)
    assert sum(rows) == 16
    rows.clear()
    np.testing.assert_allclose(gradient(dist, f, chunk_size=4), g, rtol=1e-15)
    # chunks of 4: variables 0 and 1 (strides 8, 4) leave the chunk from every configuration
    assert sum(rows) == 16 + 2 * 16
    rows.clear()
    np.testing.assert_array_equal(gradient(dist, Table.from_function(dist, f)), g)


@given(problems(), st.integers(1, 20), st.data())
def test_chunk_flip_differences_equal_the_objective_default(problem, chunk, data):
    """The in-chunk lookup gives the very numbers of Objective.flip_differences (same evaluations of f)."""
    family, params, values = problem
    dist = make(family, params)
    wrapped = FunctionObjective(Table(values).value, name="wrapped")
    _, active = dist._flip_weights()
    size = dist.support_size
    start = data.draw(st.integers(0, size - 1))
    stop = min(size, start + chunk)
    configs, probs = dist.enumerate(start, stop)
    keep = probs > 0
    if not keep.any():
        return
    index = np.arange(start, stop)[keep]
    got = _chunk_flip_differences(wrapped, dist, np.ascontiguousarray(configs[keep]), index, active)
    np.testing.assert_array_equal(got, wrapped.flip_differences(configs[keep], active=active))


def test_gradient_never_evaluates_impossible_bits_across_chunks():
    def f(z):
        assert np.all(z[:, 1] == 0.0) and np.all(z[:, 2] == 1.0), "evaluated an impossible configuration"
        return 10.0 * z[:, 0] + 3.0 * z[:, 3] + z[:, 0] * z[:, 3]

    dist = Bernoulli([0.4, -np.inf, np.inf, -1.2])
    p0, p3 = special.expit([0.4, -1.2])
    expected = [p0 * (1 - p0) * (10.0 + p3), 0.0, 0.0, p3 * (1 - p3) * (3.0 + p0)]
    for chunk in (1, 3, 16):
        np.testing.assert_allclose(gradient(dist, f, chunk_size=chunk), expected, rtol=1e-14)


def test_gradient_of_large_objective_beside_small_contributions():
    """The score-function sum cancelled here (relative error ~1e-3 and wrong signs)."""
    logits = np.array([40.0, -3.0, 0.5])
    t = np.array([0.4999999, -1e3, -1e3])
    p = special.expit(logits)
    expected = p * special.expit(-logits) * (1.0 - 2.0 * t)
    np.testing.assert_allclose(gradient(Bernoulli(logits), SquaredDistance(t)), expected, rtol=1e-14)
    w = np.array([1e8, 1.0, 1e-6])
    np.testing.assert_allclose(gradient(Bernoulli(logits), Linear(w)), p * special.expit(-logits) * w, rtol=1e-14)
    mu = np.array([-30.0, 2.0, 10.0])
    dens = np.exp(-0.5 * mu**2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(gradient(GaussianThreshold(mu), Linear(w)), dens * w, rtol=1e-13)


def test_gradient_overflowing_differences_are_an_error():
    with pytest.raises(ValueError, match="overflowed.*rescale the objective"):
        gradient(Bernoulli([0.0]), Table(np.array([1e308, -1e308])))


def test_gradient_of_a_duck_typed_distribution_uses_the_score_identity():
    class Wrapped:
        """A distribution with the public surface only (no _flip_weights)."""

        def __init__(self, dist):
            self._dist = dist

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            return getattr(self._dist, name)

    dist = Bernoulli([0.3, -1.0])
    f = SquaredDistance([0.2, 0.9])
    np.testing.assert_allclose(gradient(Wrapped(dist), f), gradient(dist, f), rtol=1e-14)


# --------------------------------------------------------------------------------------------
# refusals before integrating: dimension, estimated run time
# --------------------------------------------------------------------------------------------


def _two_bits():
    from refgrad import objectives
    from refgrad.distributions import Bernoulli

    return Bernoulli(np.array([0.3, -0.8])), objectives.SquaredDistance(np.array([0.45, 0.45]))


def test_rebar_on_a_three_way_categorical_has_exact_moments_and_an_extreme_row_is_refused():
    from refgrad import objectives
    from refgrad.distributions import Categorical

    f = objectives.SquaredDistance(np.array([[0.1, 0.5, 0.9]]))
    dist = Categorical(np.array([[0.2, -0.3, 0.5]]))
    m = exact.moments("rebar", dist, f)  # the latent form (REBAR is unbiased: its mean is the gradient)
    np.testing.assert_allclose(m.mean, exact.gradient(dist, f), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"UNIFORM_QUADRATURE_LOGIT_LIMIT.*method='monte_carlo'"):
        exact.moments("rebar", Categorical(np.array([[30.0, 0.0, -30.0]])), f)  # spread 60 > 40: refused


def test_a_long_run_is_refused_fast_naming_level_and_estimate():
    import time

    dist, f = _two_bits()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"level=12 need about \d+ evaluations of the estimator .* beyond "
                                         r"max_seconds=10") as info:
        exact.moments("rebar", dist, f, level=12, max_seconds=10)
    assert time.perf_counter() - start < 1.0
    assert "Pass a smaller level= (level=" in str(info.value) and "max_seconds= (None: no limit)" in str(info.value)


def test_the_estimate_uses_a_timed_rate(monkeypatch):
    from refgrad._moments import cost as _moments_cost

    dist, f = _two_bits()
    monkeypatch.setattr(_moments_cost, "MIN_SECONDS_PER_EVALUATION", 1e-12)  # force the timing
    with pytest.raises(ValueError, match=r"level=6 need about \d+ evaluations .*timed on 2048 "
                                         r"nodes\): about .*beyond max_seconds=0.01"):
        exact.moments("rebar", dist, f, level=6, max_seconds=0.01)


def test_raising_the_limit_lets_it_run(monkeypatch):
    from refgrad._moments import cost as _moments_cost

    dist, f = _two_bits()
    monkeypatch.setattr(_moments_cost, "UNTIMED_EVALUATIONS", 0)  # make a small case subject to the check
    with pytest.raises(ValueError, match="level=3 need about 43059 evaluations"):  # latent quadrature (both levels)
        exact.moments("gumbel_softmax", dist, f, level=3, max_seconds=1e-6)
    ran = exact.moments("gumbel_softmax", dist, f, level=3, max_seconds=None)
    again = exact.moments("gumbel_softmax", dist, f, level=3, max_seconds=60)
    np.testing.assert_array_equal(ran.mean, again.mean)
    assert ran.evaluations == 22932


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                      ("60", TypeError)])
def test_max_seconds_is_checked(bad, exc):
    dist, f = _two_bits()
    with pytest.raises(exc, match="max_seconds"):
        exact.moments("gumbel_softmax", dist, f, max_seconds=bad)
