"""Product of heterogeneous families: layout, probabilities, scores, sampling, exact oracles, estimators.

Every reference here is computed independently in NumPy/SciPy from the blocks' parameters (itertools over the
variables' values), not through refgrad's enumeration.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

import refgrad
from estimator_checks import central_fd
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal, Product
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance

# ------------------------------------------------------------------------------ independent reference


def _variables(blocks):
    """Per variable: (kind, probability vector over its values) from the blocks' parameters, in SciPy."""
    out = []
    for block in blocks:
        if isinstance(block, Categorical):
            for row in np.asarray(block.logits):
                out.append(("cat", special.softmax(row) if np.isfinite(row).all() else _inf_softmax(row)))
        elif isinstance(block, Bernoulli):
            for ell in np.asarray(block.logits):
                out.append(("bit", np.array([special.expit(-ell), special.expit(ell)])))
        else:
            for mu in np.asarray(block.mu):
                out.append(("bit", np.array([stats.norm.cdf(-mu), stats.norm.cdf(mu)])))
    return out


def _inf_softmax(row):
    if np.isposinf(row).any():
        at = np.isposinf(row)
        return at / at.sum()
    finite = np.isfinite(row)
    p = np.zeros(row.shape)
    p[finite] = special.softmax(row[finite])
    return p


def reference_support(blocks):
    """(points (N, P), probabilities (N,)) by itertools over the variables' values, first variable slowest."""
    variables = _variables(blocks)
    points, probs = [], []
    for values in itertools.product(*[range(len(p)) for _, p in variables]):
        x, q = [], 1.0
        for (kind, p), v in zip(variables, values):
            q *= p[v]
            if kind == "bit":
                x.append(float(v))
            else:
                onehot = [0.0] * len(p)
                onehot[v] = 1.0
                x.extend(onehot)
        points.append(x)
        probs.append(q)
    return np.array(points), np.array(probs)


def reference_score(blocks, x):
    """∂ log q(x)/∂ params from the formulas of each family (b − σ(ℓ); b − softmax; ±φ/Φ)."""
    cols, start = [], 0
    for block in blocks:
        size = int(np.prod(block.param_shape))
        xb = x[:, start:start + size]
        if isinstance(block, Bernoulli):
            cols.append(xb - special.expit(np.asarray(block.logits))[None])
        elif isinstance(block, GaussianThreshold):
            mu = np.asarray(block.mu)[None]
            pdf = stats.norm.pdf(mu)
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 at impossible points (dropped by callers)
                cols.append(np.where(xb == 1.0, pdf / stats.norm.cdf(mu), -pdf / stats.norm.cdf(-mu)))
        else:
            p = np.stack([_inf_softmax(r) if not np.isfinite(r).all() else special.softmax(r)
                          for r in np.asarray(block.logits)])
            cols.append(xb - p.ravel()[None])
        start += size
    return np.concatenate(cols, axis=1)


def rebuild(template, flat):
    """A Product of the template's families with flat parameters ``flat``."""
    blocks, start = [], 0
    for block in template.blocks:
        size = int(np.prod(block.param_shape))
        blocks.append(type(block)(flat[start:start + size].reshape(block.param_shape)))
        start += size
    return Product(*blocks)


def mixed():
    return (Bernoulli([0.3, -1.2]), Categorical([[0.0, 1.0, -0.5]]), GaussianThreshold([0.4]),
            Categorical([[0.2, -0.3, 0.9, 0.1, -1.0], [1.0, 0.0, 0.5, -0.5, 0.3]]))


def mixed_objective():
    rng = np.random.default_rng(7)
    w = rng.normal(size=16)
    M = rng.normal(size=(16, 16)) * 0.3

    def value(x):
        return np.sin(x @ w) + np.einsum("ni,ij,nj->n", x, M, x)

    return FunctionObjective(value, name="mixed"), value


# ------------------------------------------------------------------------------ layout and distribution


def test_layout_params_slices_and_unflatten():
    blocks = mixed()
    dist = Product(*blocks)
    expected = np.concatenate([np.ravel(b.params) for b in blocks])
    assert dist.param_shape == (16,) and dist.event_shape == (16,)
    np.testing.assert_array_equal(dist.params, expected)
    assert [(s.start, s.stop) for s in dist.block_slices] == [(0, 2), (2, 5), (5, 6), (6, 16)]
    parts = dist.unflatten(dist.params)
    for part, block in zip(parts, blocks):
        np.testing.assert_array_equal(part, block.params)
    assert dist.family == "product" and dist.d == 2 + 1 + 1 + 2
    assert dist.support_size == 2 * 2 * 3 * 2 * 5 * 5
    assert isinstance(refgrad.Product(Bernoulli([0.0])), Product)
    with pytest.raises(ValueError, match="read-only"):
        dist.params[0] = 1.0
    with pytest.raises(ValueError, match=r"a must have shape \(\.\.\., 16\)"):
        dist.unflatten(np.zeros(12))


def test_enumeration_matches_itertools_reference():
    blocks = mixed()
    dist = Product(*blocks)
    points, probs = dist.enumerate()
    ref_points, ref_probs = reference_support(blocks)
    np.testing.assert_array_equal(points, ref_points)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-13, atol=0)
    # any sub-range is the same rows
    sub, sub_probs = dist.enumerate(37, 211)
    np.testing.assert_array_equal(sub, ref_points[37:211])
    np.testing.assert_array_equal(sub_probs, probs[37:211])
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-14)


def test_log_prob_and_score_against_reference_and_finite_differences():
    blocks = mixed()
    dist = Product(*blocks)
    points, probs = reference_support(blocks)
    np.testing.assert_allclose(dist.log_prob(points), np.log(probs), rtol=1e-13)
    np.testing.assert_allclose(dist.score(points), reference_score(blocks, points), rtol=1e-12, atol=1e-14)
    x = points[[0, 17, 255, 599]]
    fd = central_fd(lambda flat: rebuild(dist, flat).log_prob(x), dist.params)
    np.testing.assert_allclose(dist.score(x), fd, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dist.probs, (probs[:, None] * points).sum(axis=0), rtol=1e-13)


def test_single_block_product_is_that_family():
    """One block: the same enumeration, probabilities, log-probabilities and scores, bit for bit."""
    for block in (Bernoulli([0.3, -40.0, np.inf]), GaussianThreshold([0.2, -9.0]),
                  Categorical([[0.0, 2.0, -np.inf], [1.0, 1.0, 3.0]])):
        dist = Product(block)
        points, probs = dist.enumerate()
        own_points, own_probs = block.enumerate()
        n = own_points.shape[0]
        np.testing.assert_array_equal(points, own_points.reshape(n, -1))
        np.testing.assert_array_equal(probs, own_probs)
        keep = probs > 0
        np.testing.assert_array_equal(dist.log_prob(points), block.log_prob(own_points))
        np.testing.assert_array_equal(dist.score(points[keep]), block.score(own_points[keep]).reshape(keep.sum(), -1))
        u = refgrad.random.uniform(np.random.default_rng(3), (50,) + block.event_shape)
        np.testing.assert_array_equal(dist.from_uniforms(u.reshape(50, -1)), block.from_uniforms(u).reshape(50, -1))


def test_infinite_parameters_behave_as_in_their_family():
    blocks = (Bernoulli([np.inf, 0.5]), Categorical([[-np.inf, 0.0, 1.0]]), GaussianThreshold([-np.inf, 0.3]),
              Categorical([[np.inf, np.inf, 0.0]]))
    dist = Product(*blocks)
    points, probs = dist.enumerate()
    ref_points, ref_probs = reference_support(blocks)
    np.testing.assert_array_equal(points, ref_points)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-13, atol=0)
    lp = dist.log_prob(points)
    assert np.array_equal(np.isneginf(lp), probs == 0.0)
    score = dist.score(points)
    for s, block in zip(dist.block_slices, blocks):
        own = block.score(points[:, s].reshape((-1,) + block.event_shape)).reshape(len(points), -1)
        np.testing.assert_array_equal(score[:, s], own)
    x = dist.sample(2000, rng=1)
    assert np.all(np.isfinite(dist.log_prob(x)))  # never an impossible point
    assert np.all(x[:, 0] == 1.0) and np.all(x[:, 2] == 0.0) and np.all(x[:, 5] == 0.0)
    assert np.all(x[:, 9] == 0.0) and np.all(x[:, 7] + x[:, 8] == 1.0)


def test_sampling_frequencies_match_probabilities():
    """Chi-square goodness of fit of 200,000 points (seed 0) over the 600 configurations; alpha = 1e-3."""
    blocks = mixed()
    dist = Product(*blocks)
    points, probs = dist.enumerate()
    x = dist.sample(200_000, rng=0)
    strides = np.array([int(np.prod([len(p) for _, p in _variables(blocks)][v + 1:]))
                        for v in range(dist.d)])
    digits = []
    for _, first, radix, _, categorical in dist._variables:
        digits.append(np.argmax(x[:, first:first + radix], axis=1) if categorical else x[:, first].astype(int))
    index = np.stack(digits, axis=1) @ strides
    counts = np.bincount(index, minlength=len(probs))
    assert stats.chisquare(counts, 200_000 * probs).pvalue > 1e-3
    np.testing.assert_array_equal(dist.sample(100, rng=5), dist.sample(100, rng=np.random.default_rng(5)))
    u = refgrad.random.uniform(np.random.default_rng(5), (100, 16))
    np.testing.assert_array_equal(dist.sample(100, rng=5), dist.from_uniforms(u))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="blocks must be one or more"):
        Product()
    with pytest.raises(ValueError, match=r"blocks\[1\] must be a Bernoulli, Categorical or GaussianThreshold"):
        Product(Bernoulli([0.0]), Normal([0.0]))
    with pytest.raises(ValueError, match=r"blocks\[0\] must be"):
        Product(Product(Bernoulli([0.0])))
    with pytest.raises(ValueError, match=r"blocks\[0\] must be"):
        Product(np.zeros(3))
    dist = Product(*mixed())
    with pytest.raises(ValueError, match=r"x must have shape \(n, 16\)"):
        dist.log_prob(np.zeros((2, 12)))
    with pytest.raises(ValueError, match="x must contain only 0 and 1"):
        dist.score(np.full((1, 16), 0.5))
    bad = dist.enumerate(0, 1)[0].copy()
    bad[0, 2:5] = [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match=r"x must be one-hot in each categorical row; sample 0, block 1"):
        dist.log_prob(bad)
    with pytest.raises(ValueError, match=r"u must have shape \(n, 16\)"):
        dist.from_uniforms(np.full((2, 12), 0.5))
    with pytest.raises(ValueError, match="u must contain uniforms strictly inside"):
        dist.from_uniforms(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="n must"):
        dist.sample(0)
    with pytest.raises(ValueError, match=r"cannot enumerate 600 configurations at once: the limit is 10 \(support "
                                         r"size 600 = 2\*\*2 \* 3\*\*1 \* 2\*\*1 \* 5\*\*2\)"):
        dist.enumerate(limit=10)


# ------------------------------------------------------------------------------ exact oracles


def reference_oracles(blocks, value):
    points, probs = reference_support(blocks)
    fx = value(points)
    keep = probs > 0
    return (np.sum(probs * fx),
            np.sum((probs * fx)[keep, None] * reference_score(blocks, points[keep]), axis=0))


def test_exact_expectation_and_gradient_against_numpy_and_finite_differences():
    blocks = mixed()
    dist = Product(*blocks)
    obj, value = mixed_objective()
    ref_value, ref_grad = reference_oracles(blocks, value)
    np.testing.assert_allclose(exact.expectation(dist, obj), ref_value, rtol=1e-13)
    np.testing.assert_allclose(exact.expectation(dist, value), ref_value, rtol=1e-13)  # a plain callable
    grad = exact.gradient(dist, obj)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-11, atol=1e-14)
    fd = central_fd(lambda flat: exact.expectation(rebuild(dist, flat), obj), dist.params)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)
    # the chunk size changes only rounding (flips leaving the chunk are evaluated, not looked up)
    np.testing.assert_allclose(exact.gradient(dist, obj, chunk_size=7), grad, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(exact.expectation(dist, obj, chunk_size=7), ref_value, rtol=1e-13)
    # built-in objectives on the flat point
    t = np.linspace(0.1, 0.9, 16)
    ref_value, ref_grad = reference_oracles(blocks, lambda x: ((x - t) ** 2).sum(axis=1))
    np.testing.assert_allclose(exact.expectation(dist, SquaredDistance(t)), ref_value, rtol=1e-13)
    np.testing.assert_allclose(exact.gradient(dist, SquaredDistance(t)), ref_grad, rtol=1e-11, atol=1e-14)
    w = np.linspace(-1.0, 2.0, 16)
    ref_value, ref_grad = reference_oracles(blocks, lambda x: x @ w)
    np.testing.assert_allclose(exact.gradient(dist, Linear(w)), ref_grad, rtol=1e-11, atol=1e-14)


def test_exact_oracles_with_infinite_parameters():
    blocks = (Bernoulli([np.inf, 0.5]), Categorical([[-np.inf, 0.0, 1.0]]), GaussianThreshold([-np.inf, 0.3]),
              Categorical([[np.inf, np.inf, 0.0]]))
    dist = Product(*blocks)
    w = np.arange(1.0, 11.0)

    def value(x):
        return np.cos(x @ w)

    ref_value, ref_grad = reference_oracles(blocks, value)
    np.testing.assert_allclose(exact.expectation(dist, value), ref_value, rtol=1e-13)
    grad = exact.gradient(dist, value)
    assert np.all(np.isfinite(grad))
    # deterministic variables and impossible categories have derivative 0, as in their own families
    assert grad[0] == 0.0 and grad[2] == 0.0 and grad[5] == 0.0 and grad[9] == 0.0
    np.testing.assert_allclose(grad, np.where(np.isfinite(ref_grad), ref_grad, 0.0), rtol=1e-11, atol=1e-14)


def test_single_block_oracles_equal_the_family_oracles():
    """Plain callables share the chunked path: bit-identical; the Gray-code walk of SquaredDistance: 1e-14."""
    for block in (Bernoulli([0.3, -2.0, 1.1]), GaussianThreshold([0.2, -1.0]),
                  Categorical([[0.0, 2.0, -1.0], [1.0, 1.0, 3.0]])):
        dist = Product(block)
        event = tuple(block.event_shape)

        def own(z):
            return np.sin(3.0 * z.reshape(len(z), -1) @ np.arange(1.0, z[0].size + 1.0))

        def flat(x):
            return own(x.reshape((len(x),) + event))

        assert exact.expectation(dist, flat) == exact.expectation(block, own)
        np.testing.assert_array_equal(exact.gradient(dist, flat), exact.gradient(block, own).ravel())
        t = np.full(event, 0.3)
        np.testing.assert_allclose(exact.expectation(dist, SquaredDistance(t.ravel())),
                                   exact.expectation(block, SquaredDistance(t)), rtol=1e-14)
        np.testing.assert_allclose(exact.gradient(dist, SquaredDistance(t.ravel())),
                                   exact.gradient(block, SquaredDistance(t)).ravel(), rtol=1e-14, atol=1e-16)


def test_exact_oracles_refuse_beyond_limit_with_the_family_wording():
    dist = Product(Bernoulli(np.zeros(3)), Categorical(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"cannot enumerate the support of Product with event shape \(9,\): support "
                                         r"size 72 exceeds limit=50; pass a larger limit= \(e\.g\. limit=72\)"):
        exact.expectation(dist, lambda x: x.sum(axis=1), limit=50)
    with pytest.raises(ValueError, match="support size 72 exceeds limit=50"):
        exact.gradient(dist, SquaredDistance(np.zeros(9)), limit=50)
    np.testing.assert_allclose(exact.gradient(dist, SquaredDistance(np.zeros(9)), limit=72),
                               exact.gradient(dist, SquaredDistance(np.zeros(9))))


# ------------------------------------------------------------------------------ estimators


SCORE_ESTIMATORS = [("reinforce", {}), ("reinforce", {"baseline": 0.7}), ("reinforce", {"baseline": "optimal"}),
                    ("rloo", {"m": 2}), ("rloo", {"m": 3}), ("muprop", {})]


def small_mixed():
    return (Bernoulli([0.4]), Categorical([[0.3, -0.6, 1.0]]), GaussianThreshold([-0.5]))


def reference_estimates(blocks, name, options, t):
    """Every outcome of the estimator by itertools, each estimate from its textbook formula: (weights, estimates)."""
    points, probs = reference_support(blocks)
    keep = probs > 0
    points, probs = points[keep], probs[keep]
    fx = ((points - t) ** 2).sum(axis=1)
    score = reference_score(blocks, points)
    if name == "reinforce":
        baseline = options.get("baseline")
        if baseline is None:
            c = np.zeros(score.shape[1])
        elif baseline == "optimal":  # E[f s_j²] / E[s_j²] (Weaver & Tao 2001)
            c = (probs[:, None] * fx[:, None] * score**2).sum(0) / (probs[:, None] * score**2).sum(0)
        else:
            c = np.full(score.shape[1], baseline)
        return probs, (fx[:, None] - c[None]) * score
    if name == "rloo":
        m = options["m"]
        weights, estimates = [], []
        for tup in itertools.product(range(len(probs)), repeat=m):
            tup = list(tup)
            g = np.zeros(score.shape[1])
            for j, i in enumerate(tup):
                others = [fx[r] for jj, r in enumerate(tup) if jj != j]
                g += (fx[i] - np.mean(others)) * score[i] / m
            weights.append(np.prod(probs[tup]))
            estimates.append(g)
        return np.array(weights), np.array(estimates)
    # muprop: z̄ = E[x] from the enumeration, ∂z̄/∂φ by central differences of it, f = Σ (z − t)²
    zbar = (probs[:, None] * points).sum(0)
    grad0 = 2.0 * (zbar - t)
    jac = central_fd(lambda flat: (lambda P, Q: (Q[:, None] * P).sum(0))(*reference_support(rebuild(
        Product(*blocks), flat).blocks)), Product(*blocks).params)
    h = ((zbar - t) ** 2).sum() + (points - zbar) @ grad0
    return probs, (fx - h)[:, None] * score + (grad0 @ jac)[None]


@pytest.mark.parametrize("name, options", SCORE_ESTIMATORS)
def test_exact_moments_of_score_estimators_against_numpy(name, options):
    blocks = small_mixed()
    dist = Product(*blocks)
    t = np.array([0.2, 0.9, 0.1, 0.4, 0.6])
    f = SquaredDistance(t)
    mom = exact.moments(name, dist, f, **options)
    w, g = reference_estimates(blocks, name, options, t)
    mean = (w[:, None] * g).sum(0)
    cov = ((w[:, None] * (g - mean)).T @ (g - mean))
    tol = 1e-6 if name == "muprop" else 1e-12  # muprop's reference Jacobian is a central difference
    assert mom.method == "enumeration" and mom.mean.shape == (5,)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-13)
    np.testing.assert_allclose(mom.mean, mean, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(mom.cov, cov, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(mom.mean, exact.gradient(dist, f), rtol=1e-12, atol=1e-15)  # unbiased


@pytest.mark.parametrize("name, options", SCORE_ESTIMATORS)
def test_score_estimators_sample_what_the_formula_says(name, options):
    """Estimates on given noise equal the textbook formula at the points dist.from_uniforms(u) (same rows)."""
    blocks = small_mixed()
    dist = Product(*blocks)
    t = np.array([0.2, 0.9, 0.1, 0.4, 0.6])
    f = SquaredDistance(t)
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, 400, rng=2, **options)
    g = refgrad.estimate(name, dist, f, noise=noise, **options)
    m = options.get("m", 1)
    x = dist.from_uniforms(noise["u"].reshape(-1, 5)).reshape(400, m, 5)
    points, _ = reference_support(blocks)
    w, ref = reference_estimates(blocks, name, options, t)
    index = {tuple(p): i for i, p in enumerate(points)}
    rows = np.array([[index[tuple(xi)] for xi in xs] for xs in x])
    flat = rows @ (len(points) ** np.arange(m - 1, -1, -1)) if name == "rloo" else rows[:, 0]
    tol = 1e-6 if name == "muprop" else 1e-12
    np.testing.assert_allclose(g, ref[flat], rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("name, options", SCORE_ESTIMATORS)
def test_score_estimators_are_unbiased_on_a_mixed_problem(name, options):
    """assert_unbiased at alpha = 1e-3, seed 0, n = 20,000 on four blocks."""
    dist = Product(Bernoulli([0.4, -1.0]), Categorical([[0.3, -0.6, 1.0]]), GaussianThreshold([-0.5]),
                   Categorical([[0.0, 0.5, -0.5, 1.0]]))
    f = SquaredDistance(np.linspace(0.0, 1.0, 10))
    refgrad.testing.assert_unbiased(name, dist, f, n=20_000, alpha=1e-3, rng=0, **options)


@pytest.mark.parametrize("block", [Bernoulli([0.3, -2.0]), GaussianThreshold([0.2, -1.0]),
                                   Categorical([[0.0, 2.0, -1.0], [1.0, 1.0, 3.0]])])
@pytest.mark.parametrize("name, options", SCORE_ESTIMATORS)
def test_single_block_product_estimates_and_moments_equal_the_family(block, name, options):
    """Same uniforms, same estimates; the same exact moments (1e-14; the family's fused kernel rounds differently)."""
    dist = Product(block)
    event = tuple(block.event_shape)
    t = np.full(event, 0.35)
    f_block, f_dist = SquaredDistance(t), SquaredDistance(t.ravel())
    noise = refgrad.ESTIMATORS[name].draw_noise(block, 300, rng=4, **options)
    flat_noise = {"u": noise["u"].reshape(300, -1) if name != "rloo" else noise["u"].reshape(300, options["m"], -1)}
    np.testing.assert_allclose(refgrad.estimate(name, dist, f_dist, noise=flat_noise, **options),
                               refgrad.estimate(name, block, f_block, noise=noise, **options).reshape(300, -1),
                               rtol=1e-14, atol=1e-15)
    a = exact.moments(name, dist, f_dist, **options)
    b = exact.moments(name, block, f_block, **options)
    np.testing.assert_allclose(a.mean, b.mean.ravel(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-13, atol=1e-15)


def test_other_estimators_refuse_a_product_naming_their_families():
    dist = Product(*small_mixed())
    f = SquaredDistance(np.zeros(5))
    supported = {"reinforce", "rloo", "muprop", "straight_through_plain"}
    for name, spec in refgrad.ESTIMATORS.items():
        assert spec.product == (name in supported)
        if name in supported:
            assert spec.product
            continue
        with pytest.raises(ValueError, match=rf"estimator '{name}' does not support family 'product' .*supported "
                                             rf"families: {', '.join(spec.families)}"):
            refgrad.estimate(name, dist, f, 10, rng=0)
        with pytest.raises(ValueError, match="does not support family 'product'"):
            exact.moments(name, dist, f)


def test_exact_moments_refusals_on_a_product():
    dist = Product(Bernoulli(np.zeros(3)), Categorical(np.zeros((2, 3))))
    f = SquaredDistance(np.zeros(9))
    with pytest.raises(ValueError, match=r"exact moments of 'rloo' by enumeration need 72\*\*2 = 5184 sample tuples, "
                                         r"beyond limit=5000"):
        exact.moments("rloo", dist, f, m=2, limit=5000)
    assert exact.moments("rloo", dist, f, m=2, limit=5184).evaluations == 5184
    with pytest.raises(ValueError, match="method must be 'auto', 'enumeration' or 'monte_carlo' for a Product"):
        exact.moments("reinforce", dist, f, method="quadrature")
    with pytest.raises(ValueError, match="level applies to quadrature only"):
        exact.moments("reinforce", dist, f, level=4)
    mc = exact.moments("reinforce", dist, f, method="monte_carlo", samples=30 * 1024)
    assert mc.exact is False


def test_sample_breakpoints_of_a_product():
    from refgrad.estimators.score import sample_breakpoints

    bits = Product(Bernoulli([0.3, np.inf]), GaussianThreshold([-0.4]))
    np.testing.assert_array_equal(sample_breakpoints(bits)[:, 0],
                                  [special.expit(-0.3), np.nan, special.ndtr(0.4)])
    assert sample_breakpoints(Product(Bernoulli([0.3]), Categorical([[0.0, 1.0]]))) == "argmax"


# ------------------------------------------------------------------------------ crosscheck


def numpy_reinforce(n, seed, t, bug=None):
    """A hand-written NumPy REINFORCE on the four-block problem of :func:`crosscheck_problem`.

    Samples each block from its own textbook sampler (bits by comparison, Gumbel-max, a thresholded normal),
    ``g = f(x) ∂ log q(x)`` with the scores of the families' formulas.  ``bug``: ``"drop"`` zeroes the
    GaussianThreshold block's score, ``"scale"`` returns 1.5 g.
    """
    rng = np.random.default_rng(seed)
    xs, ss = [], []
    p = special.expit([0.4, -1.0])
    b = (rng.random((n, 2)) < p).astype(float)
    xs.append(b)
    ss.append(b - p)
    for logits in ([0.3, -0.6, 1.0], None, [0.0, 0.5, -0.5, 1.0]):
        if logits is None:  # the GaussianThreshold block, μ = −0.5
            mu = -0.5
            b = (mu + rng.standard_normal((n, 1)) >= 0.0).astype(float)
            xs.append(b)
            ratio_up, ratio_down = stats.norm.pdf(mu) / stats.norm.cdf(mu), stats.norm.pdf(mu) / stats.norm.cdf(-mu)
            score = np.where(b == 1.0, ratio_up, -ratio_down)
            ss.append(0.0 * score if bug == "drop" else score)
            continue
        logits = np.array(logits)
        onehot = np.eye(len(logits))[np.argmax(logits + rng.gumbel(size=(n, len(logits))), axis=1)]
        xs.append(onehot)
        ss.append(onehot - special.softmax(logits))
    x, s = np.concatenate(xs, axis=1), np.concatenate(ss, axis=1)
    g = ((x - t) ** 2).sum(axis=1)[:, None] * s
    return 1.5 * g if bug == "scale" else g


def crosscheck_problem():
    dist = Product(Bernoulli([0.4, -1.0]), Categorical([[0.3, -0.6, 1.0]]), GaussianThreshold([-0.5]),
                   Categorical([[0.0, 0.5, -0.5, 1.0]]))
    t = np.linspace(0.0, 1.0, 10)
    return dist, t, SquaredDistance(t)


@pytest.mark.parametrize("bug", [None, "drop", "scale"])
def test_check_estimator_on_a_numpy_reinforce_over_a_product(bug):
    """alpha = 1e-3, seed 0, n = 20,000: the correct NumPy REINFORCE passes, each planted bug fails."""
    dist, t, f = crosscheck_problem()
    verdict = refgrad.crosscheck.check_estimator(numpy_reinforce(20_000, 0, t, bug), dist, f, name="reinforce",
                                                 alpha=1e-3)
    assert verdict.passed == (bug is None), verdict.explanation


# ------------------------------------------------------------------------------ random products, extreme parameters

_values = st.one_of(st.sampled_from([-np.inf, -40.0, -3.0, 0.0, 2.5, 40.0, np.inf]), st.floats(-4.0, 4.0))


@st.composite
def random_blocks(draw):
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        family = draw(st.sampled_from(["bernoulli", "categorical", "gaussian_threshold"]))
        d = draw(st.integers(1, 2))
        if family == "categorical":
            K = draw(st.integers(2, 3))
            rows = [draw(st.lists(_values, min_size=K, max_size=K).filter(lambda r: max(r) > -np.inf))
                    for _ in range(d)]
            blocks.append(Categorical(rows))
        else:
            values = draw(st.lists(_values, min_size=d, max_size=d))
            blocks.append(Bernoulli(values) if family == "bernoulli" else GaussianThreshold(values))
    return tuple(blocks)


@given(random_blocks())
def test_random_products_with_extreme_parameters_against_the_reference(blocks):
    """Enumeration, log q, score and both oracles against the itertools/SciPy reference, ±inf included."""
    dist = Product(*blocks)
    points, probs = dist.enumerate()
    ref_points, ref_probs = reference_support(blocks)
    np.testing.assert_array_equal(points, ref_points)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-12, atol=0)
    keep = probs > 0
    normal = ref_probs > 1e-290  # log q of configurations whose probability is a normal float
    np.testing.assert_allclose(dist.log_prob(points[normal]), np.log(ref_probs[normal]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dist.score(points[keep]), reference_score(blocks, points[keep]), rtol=1e-9, atol=1e-15)
    w = np.linspace(-1.0, 1.5, points.shape[1])

    def value(x):
        return np.sin(2.0 * x @ w) + x @ w

    ref_value, ref_grad = reference_oracles(blocks, value)
    scale = np.abs(value(points)).max()
    np.testing.assert_allclose(exact.expectation(dist, value), ref_value, rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(exact.gradient(dist, value), ref_grad, rtol=1e-9, atol=1e-13 * scale)


# ------------------------------------------------------------------------------ multi-sample objectives


@pytest.mark.parametrize("kind", ["logmeanexp", "asymmetric"])
def test_multisample_objective_over_a_product(kind):
    """E and ∇ of a k-sample objective over a Product: itertools over tuples, and central differences."""
    from refgrad import multisample

    blocks = small_mixed()
    dist = Product(*blocks)
    t = np.array([0.2, 0.9, 0.1, 0.4, 0.6])
    if kind == "logmeanexp":
        f = multisample.LogMeanExp(SquaredDistance(t), k=2)

        def value(x1, x2):
            return np.logaddexp(((x1 - t) ** 2).sum(-1), ((x2 - t) ** 2).sum(-1)) - np.log(2.0)
    else:
        w = np.linspace(-1.0, 1.0, 5)

        def value(x1, x2):
            return np.sin(x1 @ w) * np.cos(2.0 * x2 @ w) + x2 @ t

        f = multisample.MultiSampleObjective(2, lambda b: value(b[:, 0], b[:, 1]), name="asymmetric")
    points, probs = reference_support(blocks)
    score = reference_score(blocks, points)
    ref_value, ref_grad = 0.0, np.zeros(5)
    for i, j in itertools.product(range(len(probs)), repeat=2):
        v = value(points[i], points[j])
        ref_value += probs[i] * probs[j] * v
        ref_grad += probs[i] * probs[j] * v * (score[i] + score[j])
    np.testing.assert_allclose(exact.expectation(dist, f), ref_value, rtol=1e-13)
    grad = exact.gradient(dist, f)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-11, atol=1e-14)
    fd = central_fd(lambda flat: exact.expectation(rebuild(dist, flat), f), dist.params)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(dist.index_of(points), np.arange(len(points)))


def test_iwae_bound_over_a_product_is_refused_by_name():
    from refgrad import multisample

    f = multisample.IWAEBound(SquaredDistance(np.zeros(5)), 2)
    with pytest.raises(ValueError, match="dist must be a Bernoulli or Categorical refgrad distribution"):
        exact.gradient(Product(*small_mixed()), f)


@pytest.mark.parametrize("backward", ["probs", "identity"])
def test_plain_straight_through_on_a_product_block_by_block(backward):
    """Forward the sample, backward through each block's probabilities: Jᵀ ∂f/∂x per block, by hand
    (σ'(ℓ) for a bit, φ(μ) for a Gaussian-threshold bit, the softmax Jacobian for a row); the exact
    moments by enumeration equal the weighted reference estimates."""
    blocks = small_mixed()
    dist = Product(*blocks)
    t = np.array([0.2, 0.9, 0.1, 0.4, 0.6])
    f = SquaredDistance(t)

    def reference(x):
        c = 2.0 * (x - t)
        if backward == "identity":
            return c
        s = special.expit(0.4)
        p = special.softmax([0.3, -0.6, 1.0])
        row = c[..., 1:4]
        cat = p * (row - (row * p).sum(-1, keepdims=True))
        return np.concatenate([c[..., :1] * s * (1 - s), cat, c[..., 4:] * stats.norm.pdf(-0.5)], axis=-1)

    noise = refgrad.ESTIMATORS["straight_through_plain"].draw_noise(dist, 300, rng=5)
    g = refgrad.estimate("straight_through_plain", dist, f, noise=noise, backward=backward)
    x = dist.from_uniforms(noise["u"].reshape(300, 5))
    np.testing.assert_allclose(g, reference(x), rtol=1e-13, atol=1e-15)
    points, probs = reference_support(blocks)
    ref = reference(points)
    mean = (probs[:, None] * ref).sum(0)
    cov = (probs[:, None] * (ref - mean)).T @ (ref - mean)
    mom = exact.moments("straight_through_plain", dist, f, backward=backward)
    np.testing.assert_allclose(mom.mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mom.cov, cov, rtol=1e-12, atol=1e-15)
