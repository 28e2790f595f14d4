"""Gray-code enumeration (refgrad._oracle.gray) against the general chunked path of refgrad.exact."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refgrad import exact
from refgrad._oracle import gray as _gray
from refgrad._oracle.stream import gray_walk
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance

RTOL = 1e-13


def both(fn, dist, obj):
    """``fn(dist, obj)`` by the Gray-code walk and by the general chunked path (the oracle it is compared with)."""
    with gray_walk(True):
        fast = fn(dist, obj)
    with gray_walk(False):
        slow = fn(dist, obj)
    return np.asarray(fast), np.asarray(slow)


def objective_scale(dist, obj):
    """Bound on |f| over the support, and on |D| (the flip differences) per coordinate."""
    param = obj.target if isinstance(obj, SquaredDistance) else obj.weights
    p = np.abs(np.broadcast_to(param, dist.event_shape))
    if isinstance(obj, SquaredDistance):
        return float(((p + 1.0) ** 2).sum()), 2.0 * (p.max(axis=-1, keepdims=True) + p) + 1.0
    return float(p.sum()), p.max(axis=-1, keepdims=True) + p


def assert_same(dist, obj):
    f_scale, d_scale = objective_scale(dist, obj)
    fast, slow = both(exact.expectation, dist, obj)
    assert abs(fast - slow) <= RTOL * (abs(slow) + f_scale), (fast, slow)
    fast_e, slow_e = both(exact.expect, dist, obj)
    assert fast_e.shape == slow_e.shape == ()
    assert abs(fast_e - slow_e) <= RTOL * (abs(slow_e) + f_scale)
    fast_g, slow_g = both(exact.gradient, dist, obj)
    assert fast_g.shape == slow_g.shape == dist.param_shape
    weights, _ = dist._flip_weights()
    bound = RTOL * (np.abs(slow_g) + weights * d_scale)
    assert np.all(np.abs(fast_g - slow_g) <= bound), np.max(np.abs(fast_g - slow_g) - bound)
    assert np.all((fast_g == 0.0) == (slow_g == 0.0))


logit = st.one_of(
    st.floats(-40.0, 40.0, allow_subnormal=False),
    st.sampled_from([np.inf, -np.inf, 40.0, -40.0, 0.0]),
)
param = st.floats(-3.0, 3.0, allow_subnormal=False)


@st.composite
def objectives(draw, shape):
    values = np.array(draw(st.lists(param, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))))
    values = values.reshape(shape) if draw(st.booleans()) else values[:1].reshape(())
    return draw(st.sampled_from([SquaredDistance, Linear]))(values)


@given(data=st.data(), d=st.integers(1, 12))
def test_bernoulli_gray_equals_general_path(data, d):
    dist = Bernoulli(data.draw(st.lists(logit, min_size=d, max_size=d)))
    assert_same(dist, data.draw(objectives((d,))))


@given(data=st.data(), K=st.integers(2, 4))
def test_categorical_gray_equals_general_path(data, K):
    d = data.draw(st.integers(1, {2: 10, 3: 6, 4: 5}[K]))
    rows = []
    for _ in range(d):
        row = data.draw(st.lists(logit, min_size=K, max_size=K))
        if all(x == -np.inf for x in row):
            row[0] = 0.0
        rows.append(row)
    dist = Categorical(rows)
    assert_same(dist, data.draw(objectives((d, K))))


def test_large_problems_equal_general_path():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=4.0, size=14)
    logits[[2, 9]] = [np.inf, -np.inf]
    assert_same(Bernoulli(logits), SquaredDistance(rng.uniform(-1, 2, size=14)))
    assert_same(Bernoulli(logits), Linear(rng.normal(size=14)))
    cat = rng.normal(scale=3.0, size=(7, 4))
    cat[1, 2] = -np.inf
    cat[4, [0, 3]] = np.inf
    assert_same(Categorical(cat), SquaredDistance(rng.normal(size=(7, 4))))
    assert_same(Categorical(cat), Linear(rng.normal(size=4)))


def test_all_variables_fixed():
    dist = Bernoulli([np.inf, -np.inf, np.inf])
    obj = SquaredDistance([0.25, 0.5, -1.0])
    assert exact.expectation(dist, obj) == obj.value(np.array([[1.0, 0.0, 1.0]]))[0]
    assert np.all(exact.gradient(dist, obj) == 0.0)


def test_bit_identical_for_any_thread_count(monkeypatch):
    rng = np.random.default_rng(3)
    cases = [
        (Bernoulli(rng.normal(scale=5.0, size=15)), SquaredDistance(rng.normal(size=15))),
        (Categorical(rng.normal(scale=2.0, size=(10, 3))), SquaredDistance(rng.normal(size=(10, 3)))),
        (Categorical(rng.normal(size=(7, 4))), Linear(rng.normal(size=(7, 4)))),
    ]
    # every case is large enough to be walked by several threads
    assert all(dist.support_size >= _gray.PARALLEL_MIN_CONFIGURATIONS for dist, _ in cases)
    # the walk runs its blocks on Python threads, so any thread count can be tested on any machine
    results = []
    for threads in (1, 2, 3, 7):
        monkeypatch.setattr(_gray, "_thread_count", lambda t=threads: t)
        results.append([(exact.expectation(dist, obj), exact.gradient(dist, obj)) for dist, obj in cases])
    for other in results[1:]:
        for (e1, g1), (e2, g2) in zip(results[0], other):
            assert e1 == e2
            assert np.array_equal(g1, g2)


def _child_expectation(queue):
    queue.put(exact.expectation(Bernoulli(np.linspace(-2.0, 2.0, 15)), SquaredDistance(0.3)))


def test_survives_fork_and_threads():
    """The walk runs in Python threads, not an OpenMP region: a forked child and concurrent threads work."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    dist, obj = Bernoulli(np.linspace(-2.0, 2.0, 15)), SquaredDistance(0.3)
    assert dist.support_size >= _gray.PARALLEL_MIN_CONFIGURATIONS  # the parent walks it on several threads
    expected = exact.expectation(dist, obj)
    with ThreadPoolExecutor(3) as pool:
        assert set(pool.map(lambda _: exact.expectation(dist, obj), range(6))) == {expected}
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_expectation, args=(queue,))
    child.start()
    value = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and value == expected


def gray_twin(radix):
    """NumPy twin of the walk: blocks by the leading digits, then the reflected mixed-radix Gray code."""
    radix = [int(r) for r in radix]
    head, nblocks = 0, 1
    while head < len(radix) and nblocks < _gray.MIN_BLOCKS:
        nblocks *= radix[head]
        head += 1

    def reflected(rs):
        if not rs:
            return [[]]
        rest = reflected(rs[1:])
        out = []
        for c in range(rs[0]):
            out += [[c] + tail for tail in (rest if c % 2 == 0 else rest[::-1])]
        return out

    rows = []
    for lead in itertools.product(*[range(r) for r in radix[:head]]):
        rows += [list(lead) + tail for tail in reflected(radix[head:])]
    return np.array(rows, dtype=np.int64).reshape(-1, len(radix)), head


@pytest.mark.parametrize(
    "radix", [[2] * 9, [2], [3, 2, 4], [5, 5, 5, 2], [2, 3] * 4, [10, 10, 3], [4] * 5, [2] * 6 + [3, 4, 2]]
)
def test_gray_order_visits_every_configuration_once(radix):
    order = _gray.gray_order(radix)
    twin, head = gray_twin(radix)
    assert np.array_equal(order, twin)
    size = int(np.prod(radix))
    strides = np.cumprod([1] + list(radix[::-1]))[:-1][::-1]
    assert np.array_equal(np.sort(order @ strides), np.arange(size))
    # within a block one variable moves by ±1 per step
    step = np.diff(order, axis=0)
    same_block = np.all(step[:, :head] == 0, axis=1)
    moves = np.abs(step[same_block, head:])
    assert np.all(moves.sum(axis=1) == 1) and np.all(moves.max(axis=1, initial=0) == 1)
    assert same_block.sum() == size - int(np.prod(radix[:head]))


def test_fast_path_only_where_it_applies():
    assert _gray.separable_tables(Bernoulli([0.1, 0.2]), SquaredDistance(0.4)) is not None
    assert _gray.separable_tables(GaussianThreshold([0.1, 0.2]), SquaredDistance(0.4)) is None
    assert _gray.separable_tables(Bernoulli([0.1, 0.2]), FunctionObjective(lambda b: b.sum(axis=1))) is None

    class Shifted(SquaredDistance):
        def _value(self, z):
            return super()._value(z) + 1.0

    assert _gray.separable_tables(Bernoulli([0.1, 0.2]), Shifted(0.4)) is None
    assert exact.expectation(Bernoulli([0.0, 0.0]), Shifted(0.5)) == pytest.approx(1.5, rel=1e-15)
    # a target that does not fit the event shape: the general path's error
    with pytest.raises(ValueError, match="does not broadcast"):
        exact.expectation(Bernoulli([0.1, 0.2]), SquaredDistance([0.1, 0.2, 0.3]))


def test_overflow_and_limits_reported_as_before():
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="non-finite value"):
        exact.expectation(Bernoulli([0.1, 0.2]), SquaredDistance(1e200))
    with np.errstate(over="ignore"), pytest.raises(ValueError, match="non-finite value"):
        exact.expectation(Categorical(np.zeros((2, 3))), SquaredDistance(1e200))
    with pytest.raises(ValueError, match="exceeds limit=8"):  # (Linear itself is summed per variable there)
        exact.gradient(Bernoulli(np.zeros(4)), lambda z: np.sum(z, axis=1), limit=8)
    np.testing.assert_allclose(exact.gradient(Bernoulli(np.zeros(4)), Linear(1.0), limit=8), np.full(4, 0.25))
    with pytest.raises(ValueError, match="chunk_size"):
        exact.expectation(Bernoulli(np.zeros(4)), Linear(1.0), chunk_size=0)


def test_gray_walk_takes_a_bool_only():
    """A truthy non-bool is refused by name (it once switched the walk on or off by its truthiness)."""
    with pytest.raises(ValueError, match="enabled must be a bool"), gray_walk("no"):
        pass
    with gray_walk(False), pytest.raises(TypeError, match="enabled must be a bool"), gray_walk(1):
        pass
