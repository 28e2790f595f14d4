"""Objectives: values and hand-derived gradients vs NumPy twins and central differences, the multilinear
extension of Table, bad input and bad outputs."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import naive
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.objectives import (
    FunctionObjective,
    Linear,
    Objective,
    SquaredDistance,
    Table,
    as_objective,
    evaluate,
    evaluate_grad,
    evaluate_hvp,
)

EPS = np.finfo(np.float64).eps
table_entry = st.floats(-10.0, 10.0, allow_nan=False)


# ---------------------------------------------------------------- strategies


@st.composite
def table_and_simplex_points(draw, max_d=4, max_k=4, max_n=4):
    """A table (K,)*d and points z (n, d, K) in the interior of the product of simplices."""
    d = draw(st.integers(1, max_d))
    K = draw(st.integers(2, max_k))
    n = draw(st.integers(1, max_n))
    values = draw(hnp.arrays(np.float64, (K,) * d, elements=table_entry))
    w = draw(hnp.arrays(np.float64, (n, d, K), elements=st.floats(0.05, 1.0)))
    return values, w / w.sum(axis=2, keepdims=True)


@st.composite
def table_and_bits(draw, max_d=4, max_n=4):
    """A table (2,)*d and relaxed bits z (n, d) in the interior of [0, 1]^d."""
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(1, max_n))
    values = draw(hnp.arrays(np.float64, (2,) * d, elements=table_entry))
    z = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(0.05, 0.95)))
    return values, z


@st.composite
def event_points(draw, max_d=4, max_k=4, max_n=4):
    """z of shape (n, d) or (n, d, K) in (0.05, 0.95) and a parameter array of the event shape."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    event = (d,) if draw(st.booleans()) else (d, draw(st.integers(2, max_k)))
    z = draw(hnp.arrays(np.float64, (n,) + event, elements=st.floats(0.05, 0.95)))
    param = draw(hnp.arrays(np.float64, event, elements=st.floats(-3.0, 3.0)))
    return z, param


def twin_tolerance(values):
    """Kernel and twin sum K**d mixed-sign terms in different orders.

    On the simplex the weights of the terms sum to one, so Σ|terms| ≤ max|values|; the two results may differ
    by a few ulps of that (not of the possibly much smaller result).  64 ulps of max|values| covers d ≤ 4,
    K ≤ 4 (at most 256 terms, pairwise vs sequential summation) with margin.
    """
    return dict(rtol=1e-14, atol=64 * EPS * max(1.0, float(np.abs(values).max())))


def central_difference_grad(fun, z, h=1e-6):
    """Central differences of fun: (n, *event) -> (n,) with respect to every entry of each row."""
    out = np.zeros_like(z)
    for idx in np.ndindex(z.shape[1:]):
        e = np.zeros_like(z)
        e[(slice(None),) + idx] = h
        out[(slice(None),) + idx] = (fun(z + e) - fun(z - e)) / (2 * h)
    return out


def vertices(d, K):
    """All configurations as index tuples and as inputs: bits (m, d) for K = 2 and one-hot (m, d, K)."""
    digits = np.array(list(itertools.product(range(K), repeat=d)), dtype=np.int64)
    one_hot = np.eye(K)[digits]
    return digits, digits.astype(np.float64), one_hot


# ---------------------------------------------------------------- Table kernels vs NumPy twins


@given(table_and_simplex_points())
def test_table_matches_twin_on_simplex(case):
    values, z = case
    f = Table(values)
    tol = twin_tolerance(values)
    np.testing.assert_allclose(f.value(z), naive.table_value(values, z), **tol)
    np.testing.assert_allclose(f.grad(z), naive.table_grad(values, z), **tol)


@given(table_and_bits())
def test_table_matches_twin_on_bits(case):
    values, z = case
    f = Table(values)
    tol = twin_tolerance(values)
    z3 = naive.table_bits(z)
    g3 = naive.table_grad(values, z3)
    np.testing.assert_allclose(f.value(z), naive.table_value(values, z3), **tol)
    np.testing.assert_allclose(f.grad(z), g3[:, :, 1] - g3[:, :, 0], **tol)


@given(table_and_simplex_points(max_n=6), st.data())
def test_table_matches_twin_on_vertices_and_mixed_batches(case, data):
    """Vertices take a lookup shortcut in the kernels; the twin does the full sum. Mixed batches too."""
    values, z = case
    n, d, K = z.shape
    rows = data.draw(hnp.arrays(np.int64, (n, d), elements=st.integers(0, K - 1)))
    use_vertex = data.draw(hnp.arrays(np.bool_, (n,)))
    z = np.where(use_vertex[:, None, None], np.eye(K)[rows], z)
    f = Table(values)
    tol = twin_tolerance(values)
    np.testing.assert_allclose(f.value(z), naive.table_value(values, z), **tol)
    np.testing.assert_allclose(f.grad(z), naive.table_grad(values, z), **tol)
    if K == 2:
        bits = z[:, :, 1].copy()
        g3 = naive.table_grad(values, naive.table_bits(bits))
        np.testing.assert_allclose(f.value(bits), naive.table_value(values, naive.table_bits(bits)), **tol)
        np.testing.assert_allclose(f.grad(bits), g3[:, :, 1] - g3[:, :, 0], **tol)


# ---------------------------------------------------------------- simple objectives vs NumPy


@given(event_points())
def test_squared_distance_and_linear_match_numpy(case):
    z, param = case
    axes = tuple(range(1, z.ndim))
    sq = SquaredDistance(param)
    np.testing.assert_allclose(sq.value(z), np.sum((z - param) ** 2, axis=axes), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(sq.grad(z), 2.0 * (z - param))
    lin = Linear(param)
    np.testing.assert_allclose(lin.value(z), np.sum(z * param, axis=axes), rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(lin.grad(z), np.broadcast_to(param, z.shape))


def test_squared_distance_scalar_target_is_the_rebar_toy():
    f = SquaredDistance(0.45)
    np.testing.assert_array_equal(f.value(np.array([[0.0], [1.0]])), [0.45**2, 0.55**2])
    np.testing.assert_array_equal(f.grad(np.array([[0.0], [1.0]])), [[-0.9], [1.1]])


# ---------------------------------------------------------------- gradients vs central differences


@given(table_and_simplex_points())
def test_table_grad_matches_central_differences_simplex(case):
    values, z = case
    f = Table(values)
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(f.grad(z), central_difference_grad(f.value, z), rtol=1e-7, atol=1e-7 * scale)


@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_table_grad_at_vertices_matches_central_differences(d, K, data):
    """The extension is a polynomial, so finite differences are valid at the vertices (the lookup shortcut)."""
    values = data.draw(hnp.arrays(np.float64, (K,) * d, elements=table_entry))
    f = Table(values)
    _, bits, one_hot = vertices(d, K)
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(f.grad(one_hot), central_difference_grad(f.value, one_hot), rtol=1e-7, atol=1e-7 * scale)
    if K == 2:
        np.testing.assert_allclose(f.grad(bits), central_difference_grad(f.value, bits), rtol=1e-7, atol=1e-7 * scale)


@given(table_and_bits())
def test_table_grad_matches_central_differences_bits(case):
    values, z = case
    f = Table(values)
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(f.grad(z), central_difference_grad(f.value, z), rtol=1e-7, atol=1e-7 * scale)


@given(event_points())
def test_simple_objective_grads_match_central_differences(case):
    z, param = case
    for f in (SquaredDistance(param), Linear(param)):
        np.testing.assert_allclose(f.grad(z), central_difference_grad(f.value, z), rtol=1e-7, atol=1e-8)


# ---------------------------------------------------------------- the multilinear extension


@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_table_equals_values_on_vertices(d, K, data):
    values = data.draw(hnp.arrays(np.float64, (K,) * d, elements=table_entry))
    f = Table(values)
    digits, bits, one_hot = vertices(d, K)
    expected = values[tuple(digits.T)]
    np.testing.assert_array_equal(f.value(one_hot), expected)
    if K == 2:
        np.testing.assert_array_equal(f.value(bits), expected)


@given(table_and_simplex_points(max_n=1), st.data())
def test_table_is_affine_in_each_coordinate(case, data):
    values, z = case
    _, d, K = z.shape
    f = Table(values)
    i = data.draw(st.integers(0, d - 1))
    k = data.draw(st.integers(0, K - 1))
    a, b, lam = (data.draw(st.floats(-2.0, 2.0)) for _ in range(3))

    def at(x):
        w = z.copy()
        w[0, i, k] = x
        return f.value(w)[0]

    scale = max(1.0, float(np.abs(values).max())) * 10.0
    np.testing.assert_allclose(
        at(lam * a + (1 - lam) * b), lam * at(a) + (1 - lam) * at(b), rtol=1e-12, atol=1e-12 * scale
    )


@given(table_and_bits())
def test_table_on_bits_is_the_bernoulli_expectation(case):
    """F(z) = E_{b ~ Bernoulli(z)} f(b), computed here by a plain loop over the configurations."""
    values, z = case
    d = z.shape[1]
    expected = np.zeros(z.shape[0])
    for b in itertools.product((0, 1), repeat=d):
        prob = np.prod(np.where(np.array(b) == 1, z, 1.0 - z), axis=1)
        expected += values[b] * prob
    np.testing.assert_allclose(Table(values).value(z), expected, **twin_tolerance(values))


@given(table_and_simplex_points())
def test_table_on_simplex_is_the_categorical_expectation(case):
    values, z = case
    _, d, K = z.shape
    expected = np.zeros(z.shape[0])
    for b in itertools.product(range(K), repeat=d):
        expected += values[b] * np.prod(z[:, np.arange(d), list(b)], axis=1)
    np.testing.assert_allclose(Table(values).value(z), expected, **twin_tolerance(values))


def test_table_from_function_follows_enumeration_order():
    def fn(z):
        flat = z.reshape(z.shape[0], -1)
        return flat @ (np.arange(flat.shape[1]) + 1.0) ** 2 + flat[:, 0] * flat[:, -1]

    cases = ((Bernoulli(np.zeros(3)), 2), (GaussianThreshold(np.zeros(3)), 2), (Categorical(np.zeros((2, 3))), 3))
    for dist, K in cases:
        table = Table.from_function(dist, fn)
        d = dist.event_shape[0]
        assert table.values.shape == (K,) * d
        for b in itertools.product(range(K), repeat=d):
            z = np.array(b, dtype=np.float64) if dist.family != "categorical" else np.eye(K)[list(b)]
            assert table.values[b] == fn(z[None])[0]
        configs, _ = dist.enumerate()
        np.testing.assert_array_equal(table.value(configs), fn(configs))


def test_table_from_function_accepts_objectives():
    dist = Bernoulli(np.zeros(2))
    table = Table.from_function(dist, SquaredDistance([0.2, 0.7]))
    np.testing.assert_allclose(table.values, [[0.04 + 0.49, 0.04 + 0.09], [0.64 + 0.49, 0.64 + 0.09]], rtol=1e-15)


# ---------------------------------------------------------------- wrappers


def test_as_objective_and_evaluate():
    f = SquaredDistance(0.5)
    assert as_objective(f) is f
    wrapped = as_objective(lambda z: z.sum(axis=1))
    assert isinstance(wrapped, FunctionObjective) and isinstance(wrapped, Objective)
    z = np.array([[0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(evaluate(lambda z: z.sum(axis=1), z), [1.0, 2.0])
    np.testing.assert_array_equal(evaluate_grad(f, z), 2.0 * (z - 0.5))
    g = FunctionObjective(lambda z: np.sin(z).sum(axis=1), np.cos, name="sines")
    np.testing.assert_array_equal(evaluate_grad(g, z), np.cos(z))
    np.testing.assert_array_equal(g(z), np.sin(z).sum(axis=1))
    assert evaluate(f, [[0.5, 0.5]]).dtype == np.float64  # lists are converted


def test_builtins_are_relaxed_ok_and_differentiable():
    for f in (SquaredDistance(0.0), Linear(1.0), Table(np.zeros((2, 2)))):
        assert f.relaxed_ok and f.differentiable


# ---------------------------------------------------------------- bad input and bad outputs


@pytest.mark.parametrize(
    "z, match",
    [
        (np.array([[0.5, np.nan]]), "NaN"),
        (np.zeros(3), "dimension"),
        (np.zeros((1, 2, 2, 2)), "dimension"),
        ([["a", "b"]], "float64"),
    ],
)
def test_bad_input_is_rejected_naming_the_objective(z, match):
    wrapped = FunctionObjective(lambda z: z.sum(axis=1), np.ones_like, name="mine")
    for f in (SquaredDistance(0.5), Table(np.zeros((2, 2))), wrapped):
        with pytest.raises(ValueError, match=match) as info:
            f.value(z)
        assert f.name in str(info.value)
        with pytest.raises(ValueError, match=match):
            f.grad(z)


def test_table_rejects_mismatched_inputs():
    f = Table(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="K = 2"):
        f.value(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"\(n, 2, 3\)"):
        f.value(np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"d = 2"):
        Table(np.zeros((2, 2))).value(np.zeros((1, 3)))


def test_broadcast_parameters_must_fit_the_event():
    with pytest.raises(ValueError, match="target"):
        SquaredDistance([0.1, 0.2, 0.3]).value(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="weights"):
        Linear(np.ones((2, 3))).value(np.zeros((1, 2)))


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros((2, 3)), "shape"),
        (np.float64(1.0), "shape"),
        (np.zeros((1, 1)), "K >= 2"),
        (np.array([0.0, np.nan]), "finite"),
        (np.array([0.0, np.inf]), "finite"),
    ],
)
def test_table_rejects_bad_values(values, match):
    with pytest.raises(ValueError, match=match):
        Table(values)


@pytest.mark.parametrize("arg", [np.array([np.nan]), np.array([np.inf])])
def test_simple_objectives_reject_non_finite_parameters(arg):
    with pytest.raises(ValueError, match="target"):
        SquaredDistance(arg)
    with pytest.raises(ValueError, match="weights"):
        Linear(arg)


@pytest.mark.parametrize(
    "value_fn, match",
    [
        (lambda z: np.full(z.shape[0], np.nan), "non-finite"),
        (lambda z: np.full(z.shape[0], np.inf), "non-finite"),
        (lambda z: z, r"shape \(3, 2\)"),
        (lambda z: z.sum(), r"shape \(\)"),
        (lambda z: np.zeros(z.shape[0] + 1), "expected shape"),
        (lambda z: ["x"] * z.shape[0], "float64"),
    ],
)
def test_bad_outputs_are_rejected_naming_the_objective(value_fn, match):
    f = FunctionObjective(value_fn, grad_fn=lambda z: np.zeros(z.shape[:1]), name="badfn")
    z = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=match) as info:
        f.value(z)
    assert "'badfn'" in str(info.value)
    with pytest.raises(ValueError, match=r"badfn.*grad") as info:
        f.grad(z)
    with pytest.raises(ValueError, match="badfn"):
        evaluate(f, z)


def test_plain_callable_name_appears_in_errors():
    def my_objective(z):
        return np.full(z.shape[0], np.nan)

    with pytest.raises(ValueError, match="my_objective"):
        evaluate(my_objective, np.zeros((2, 2)))


def test_grad_without_grad_fn_says_a_differentiable_objective_is_needed():
    f = FunctionObjective(lambda z: z.sum(axis=1), name="nograd")
    assert not f.differentiable
    with pytest.raises(ValueError, match="nograd.*differentiable objective"):
        f.grad(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="differentiable objective"):
        evaluate_grad(lambda z: z.sum(axis=1), np.zeros((1, 2)))


@pytest.mark.parametrize("bad", [3, "f", None, np.zeros(3)])
def test_as_objective_rejects_non_callables(bad):
    with pytest.raises(ValueError, match="f must be"):
        as_objective(bad)
    with pytest.raises(ValueError, match="f must be"):
        evaluate(bad, np.zeros((1, 1)))


def test_function_objective_rejects_non_callables():
    with pytest.raises(ValueError, match="value_fn"):
        FunctionObjective(3)
    with pytest.raises(ValueError, match="grad_fn"):
        FunctionObjective(np.sum, grad_fn=3)


# ---------------------------------------------------------------- Hessian-vector products


def central_difference_hvp(f, z, v, h=1e-6):
    """(∇f(z + h v) − ∇f(z − h v)) / 2h: the directional derivative of the gradient."""
    return (f.grad(z + h * v) - f.grad(z - h * v)) / (2 * h)


@given(table_and_simplex_points(), st.data())
def test_table_hvp_matches_twin_and_central_differences_simplex(case, data):
    values, z = case
    v = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(-2.0, 2.0)))
    f = Table(values)
    got = f.hvp(z, v)
    # twin: the same K**d terms (times up to d−1 direction factors) summed in another order
    tol = twin_tolerance(values)
    tol["atol"] *= 1.0 + z.shape[1] * np.abs(v).max()
    np.testing.assert_allclose(got, naive.table_hvp(values, z, v), **tol)
    np.testing.assert_allclose(got, central_difference_hvp(f, z, v), rtol=1e-6, atol=1e-6 * (1 + np.abs(got).max()))


@given(table_and_bits(), st.data())
def test_table_hvp_matches_twin_and_central_differences_bits(case, data):
    values, z = case
    v = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(-2.0, 2.0)))
    f = Table(values)
    got = f.hvp(z, v)
    h3 = naive.table_hvp(values, naive.table_bits(z), np.stack([-v, v], axis=-1))
    tol = twin_tolerance(values)
    tol["atol"] *= 1.0 + z.shape[1] * np.abs(v).max()
    np.testing.assert_allclose(got, h3[:, :, 1] - h3[:, :, 0], **tol)
    np.testing.assert_allclose(got, central_difference_hvp(f, z, v), rtol=1e-6, atol=1e-6 * (1 + np.abs(got).max()))


@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_table_hvp_has_no_terms_within_a_variable(d, K, data):
    values = data.draw(hnp.arrays(np.float64, (K,) * d, elements=table_entry))
    w = data.draw(hnp.arrays(np.float64, (2, d, K), elements=st.floats(0.05, 1.0)))
    z = w / w.sum(axis=2, keepdims=True)
    i = data.draw(st.integers(0, d - 1))
    v = np.zeros_like(z)
    v[:, i, :] = data.draw(hnp.arrays(np.float64, (2, K), elements=st.floats(-2.0, 2.0)))
    np.testing.assert_array_equal(Table(values).hvp(z, v)[:, i, :], 0.0)


@given(event_points(), st.data())
def test_simple_objective_hvps(case, data):
    z, param = case
    v = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(-2.0, 2.0)))
    sq, lin = SquaredDistance(param), Linear(param)
    np.testing.assert_array_equal(sq.hvp(z, v), 2.0 * v)
    np.testing.assert_array_equal(lin.hvp(z, v), np.zeros_like(z))
    np.testing.assert_allclose(sq.hvp(z, v), central_difference_hvp(sq, z, v), rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(evaluate_hvp(sq, z, v), sq.hvp(z, v))


def test_hvp_availability_and_errors():
    assert SquaredDistance(0.3).has_hvp and Linear(1.0).has_hvp and Table(np.zeros((2, 2))).has_hvp
    cube = FunctionObjective(lambda z: (z**3).sum(axis=1), lambda z: 3 * z**2, hvp_fn=lambda z, v: 6 * z * v,
                             name="cube")
    z = np.array([[0.2, 0.7]])
    np.testing.assert_allclose(cube.hvp(z, np.ones_like(z)), 6 * z)
    plain = FunctionObjective(lambda z: z.sum(axis=1), lambda z: np.ones_like(z), name="plain")
    assert not plain.has_hvp
    with pytest.raises(ValueError, match="plain.*Hessian-vector product"):
        plain.hvp(z, z)
    with pytest.raises(ValueError, match="v must have the shape of z"):
        cube.hvp(z, np.ones((1, 3)))
    with pytest.raises(ValueError, match="v must be finite"):
        cube.hvp(z, np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="returned an array of shape"):
        FunctionObjective(np.sum, lambda z: z, hvp_fn=lambda z, v: v[:, :1], name="bad").hvp(z, z)
    with pytest.raises(ValueError, match="hvp_fn"):
        FunctionObjective(np.sum, hvp_fn=3)


# ---------------------------------------------------------------- flip differences


def all_configs(d, K=None):
    """Every configuration: bits (2**d, d) or one-hot rows (K**d, d, K), itertools.product order."""
    digits = np.array(list(itertools.product(range(K or 2), repeat=d)))
    return digits.astype(float) if K is None else np.eye(K)[digits]


def flip_by_definition(values_of, b):
    """D by the definition, with f given on every configuration through ``values_of(b) -> (n,)``."""
    out = np.zeros(b.shape)
    for i in range(b.shape[1]):
        if b.ndim == 2:
            one, zero = b.copy(), b.copy()
            one[:, i], zero[:, i] = 1.0, 0.0
            out[:, i] = values_of(one) - values_of(zero)
        else:
            for k in range(b.shape[2]):
                moved = b.copy()
                moved[:, i, :] = 0.0
                moved[:, i, k] = 1.0
                out[:, i, k] = values_of(moved) - values_of(b)
    return out


@st.composite
def objectives_and_configs(draw):
    """A built-in objective, all configurations of its event shape, and a tolerance scale max|f|."""
    d = draw(st.integers(1, 3))
    K = draw(st.sampled_from([None, 2, 3]))
    event = (d,) if K is None else (d, K)
    kind = draw(st.sampled_from(["squared", "linear", "table"]))
    param = draw(hnp.arrays(np.float64, event, elements=st.floats(-3.0, 3.0)))
    if kind == "squared":
        f = SquaredDistance(param)
    elif kind == "linear":
        f = Linear(param)
    else:
        f = Table(draw(hnp.arrays(np.float64, (K or 2,) * d, elements=table_entry)))
    return f, all_configs(d, K)


@given(objectives_and_configs())
def test_flip_differences_closed_forms_match_the_definition_and_the_default(case):
    f, b = case
    closed = f.flip_differences(b)
    assert closed.shape == b.shape
    scale = max(1.0, float(np.abs(f.value(b)).max()))
    np.testing.assert_allclose(closed, flip_by_definition(f.value, b), rtol=0, atol=8 * EPS * scale)
    default = FunctionObjective(f.value, name="default").flip_differences(b)
    np.testing.assert_allclose(closed, default, rtol=0, atol=8 * EPS * scale)
    if b.ndim == 3:  # zero at the chosen category
        assert np.all(closed[b == 1.0] == 0.0)


def test_flip_differences_closed_forms_are_one_rounding_where_f_is_large():
    """t = [0.4999999, −1e3]: f ≈ 1e6, D_0 = 1 − 2 t_0 = 2e-7; two evaluations of f lose ~1e-5 of it."""
    t = np.array([0.4999999, -1e3])
    b = all_configs(2)
    d_closed = SquaredDistance(t).flip_differences(b)
    np.testing.assert_array_equal(d_closed, np.broadcast_to(1.0 - 2.0 * t, b.shape))
    d_default = FunctionObjective(SquaredDistance(t).value).flip_differences(b)
    assert np.max(np.abs(d_default[:, 0] - d_closed[:, 0])) > 1e-7 * abs(1.0 - 2.0 * t[0])  # why closed forms
    w = np.array([[1e8, 1.0, 1e-6]])
    one_hot = all_configs(1, 3)
    np.testing.assert_array_equal(Linear(w).flip_differences(one_hot)[0], [[0.0, 1.0 - 1e8, 1e-6 - 1e8]])
    values = np.array([[1e6, 1e6 + 2**-20], [3.0, 4.0]])
    np.testing.assert_array_equal(Table(values).flip_differences(np.array([[0.0, 0.0]])), [[3.0 - 1e6, 2**-20]])
    cat = Table(np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(cat.flip_differences(all_configs(2, 3)[[5]]), [[[-3.0, 0.0, 3.0], [-2.0, -1.0, 0.0]]])


def test_flip_differences_active_mask_skips_evaluations():
    rows = []

    def f(z):
        rows.append(z.copy())
        return z @ np.array([1.0, 10.0, 100.0])

    obj = FunctionObjective(f, name="counted")
    b = np.array([[0.0, 1.0, 0.0]])
    out = obj.flip_differences(b, active=np.array([True, False, True]))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 100.0]])
    assert len(rows) == 3  # f(b) and two flips; the inactive variable 1 is never flipped
    assert not any(np.array_equal(r, [[0.0, 0.0, 0.0]]) for r in rows)
    one_hot = all_configs(1, 3)[[0]]
    rows.clear()
    lin = FunctionObjective(lambda z: z[:, 0] @ np.array([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal(lin.flip_differences(one_hot, active=np.array([[True, False, True]])),
                                  [[[0.0, 0.0, 3.0]]])
    np.testing.assert_array_equal(Linear([[1.0, 2.0, 4.0]]).flip_differences(one_hot, np.array([[True, False, True]])),
                                  [[[0.0, 0.0, 3.0]]])


@pytest.mark.parametrize(
    "b, active, error, match",
    [
        (np.array([[0.5, 1.0]]), None, ValueError, r"discrete.*0\.5 at index \(0, 0\)"),
        (np.zeros((1, 2, 2)), None, ValueError, r"one 1 per variable.*row \(0, 0\)"),
        (np.array([[0.0, 1.0]]), np.array([True]), ValueError, r"active must have the event shape \(2,\)"),
        (np.array([[0.0, 1.0]]), np.array([1, 0]), TypeError, "active must be a boolean array"),
        (np.array([[0.0, np.nan]]), None, ValueError, "NaN"),
    ],
)
def test_flip_differences_bad_input(b, active, error, match):
    for f in (SquaredDistance(0.2), FunctionObjective(lambda z: z.reshape(len(z), -1).sum(axis=1), name="mine")):
        with pytest.raises(error, match=match) as info:
            f.flip_differences(b, active=active)
        if error is ValueError and "active" not in match:
            assert f.name in str(info.value)


def test_flip_differences_overflow_is_an_error():
    with pytest.raises(ValueError, match=r"Table.*overflowed: -inf at index \(0, 0\); rescale the objective"):
        Table(np.array([1e308, -1e308])).flip_differences(np.array([[0.0]]))


def test_flip_differences_of_an_empty_batch():
    for f in (SquaredDistance(0.3), Linear(2.0), Table(np.zeros((2, 2))), FunctionObjective(lambda z: z.sum(axis=1))):
        assert f.flip_differences(np.zeros((0, 2))).shape == (0, 2)


# ---------------------------------------------------------------- empty batches and output types


@pytest.mark.parametrize("shape", [(0, 2), (0, 2, 3)])
def test_empty_batches_give_empty_values(shape):
    """A batch of zero rows is legal input (it used to fail in reshape(0, -1))."""
    z = np.zeros(shape)
    for f in (SquaredDistance(0.45), Linear(1.5),
              Table(np.zeros((shape[-1],) * 2)) if len(shape) == 3 else Table(np.zeros((2, 2)))):
        v = f.value(z)
        assert v.shape == (0,) and v.dtype == np.float64
        assert f.grad(z).shape == shape


@pytest.mark.parametrize(
    "value_fn, kind",
    [
        (lambda z: z.sum(axis=1) + 0j, "complex"),
        (lambda z: z.sum(axis=1).astype(str), "strings"),
        (lambda z: z.sum(axis=1) > 0, "booleans"),
        (lambda z: np.array([object()] * len(z)), "object"),
    ],
)
def test_outputs_of_the_wrong_type_are_a_type_error_naming_the_objective(value_fn, kind):
    f = FunctionObjective(value_fn, grad_fn=value_fn, name="typed")
    z = np.full((3, 2), 0.5)
    with pytest.raises(TypeError, match=r"objective 'typed' from value\(z\)") as info:
        f.value(z)
    assert kind in str(info.value) or "real" in str(info.value)
    with pytest.raises(TypeError, match=r"objective 'typed' from grad\(z\)"):
        f.grad(z)


def test_parameter_and_direction_errors_show_value_and_index():
    with pytest.raises(ValueError, match=r"target must be finite; got inf at index \(1,\)"):
        SquaredDistance([0.0, np.inf])
    with pytest.raises(ValueError, match=r"weights must be finite; got nan at index \(0, 1\)"):
        Linear([[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"v must be finite.*got nan at index \(0, 0\)"):
        SquaredDistance(0.0).hvp(np.zeros((1, 2)), np.array([[np.nan, 0.0]]))


def test_a_function_written_for_integer_indices_gets_the_one_hot_convention_explained():
    # before: the user's own IndexError ("arrays used as indices must be of integer type") surfaced raw
    from refgrad import Bernoulli, Categorical, exact

    table = np.array([1.0, 2.0, 5.0])
    f = FunctionObjective(lambda b: table[b[:, 0]], name="indexing")
    with pytest.raises(ValueError, match=r"objective 'indexing': value_fn raised IndexError.*shape \(n, d, K\) = "
                                         r"\(3, 1, 3\): one one-hot row.*z.argmax\(-1\)") as info:
        exact.gradient(Categorical([[0.0, 1.0, 2.0]]), f)
    assert isinstance(info.value.__cause__, IndexError)
    bits = FunctionObjective(lambda b: table[b[:, 0]], name="bits")
    with pytest.raises(ValueError, match=r"bits 0.0/1.0.*z.astype\(int\)"):
        exact.gradient(Bernoulli([0.3]), bits)
    typed = FunctionObjective(lambda z: z.sum(1), grad_fn=lambda z: len(z) + "x", name="g")
    with pytest.raises(ValueError, match=r"objective 'g': grad_fn raised TypeError") as info:
        typed.grad(np.zeros((2, 1, 3)))
    assert isinstance(info.value.__cause__, TypeError)
    # the convention itself, written as the README shows it, works
    good = FunctionObjective(lambda b: (b[:, 0, :] * table).sum(1))
    assert np.isfinite(exact.gradient(Categorical([[0.0, 1.0, 2.0]]), good)).all()
