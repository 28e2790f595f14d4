"""Fused row kernels (refgrad/estimators/_fused.py) against the batched, stage-by-stage path.

Every estimator whose spec has a ``fused`` hook is found here automatically, for
each family it supports and each golden option set of ``tests/estimator_options.py``, and is
checked

* against the batched path (``with _fused.fused_kernels(False)``) on the same noise, on
  Hypothesis-drawn distributions (logits up to ±30, some ±inf) and objectives
  (SquaredDistance, Linear, Table), bit for bit (signs of zero included);
* for bit-identity across thread counts (1, 2, 4) and chunk sizes, and against
  passing the drawn ``noise=`` dict;
* for the same stream as ``draw_noise`` with the same seed.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refgrad
from estimator_checks import batched_estimate
from estimator_options import GOLDEN, option_sets
from refgrad.estimators import _fused
from refgrad.objectives import Linear, SquaredDistance, Table, objective_row
from refgrad.objectives.rows import objective_grad, objective_value

FUSED_FAMILIES = ("bernoulli", "categorical")


def fused_cases():
    """(label, estimator, family, option builder) for every estimator with a fused hook."""
    out = []
    for name in sorted(refgrad.ESTIMATORS):
        spec = refgrad.ESTIMATORS[name]
        if spec.fused is None:
            continue
        for family in spec.families:
            if family not in FUSED_FAMILIES:
                continue
            for oset in option_sets(name, GOLDEN, family):
                out.append(pytest.param(name, family, oset.build, id=f"{name}/{family}/{oset.label}"))
    return out


CASES = fused_cases()


def _plan(name, dist, f, opts):
    spec = refgrad.ESTIMATORS[name]
    return spec.fused_plan(dist, f, spec.options(dist, **opts), {})


@st.composite
def problems(draw, family):
    """A distribution with moderate, large and some infinite logits, and a built-in objective."""
    logit = st.one_of(
        st.floats(-4, 4),
        st.floats(-30, 30),
        st.sampled_from([np.inf, -np.inf, 0.0]),
    )
    if family == "bernoulli":
        d = draw(st.integers(1, 6))
        logits = np.array(draw(st.lists(logit, min_size=d, max_size=d)))
        dist = refgrad.Bernoulli(logits)
    else:
        d = draw(st.integers(1, 3))
        K = draw(st.integers(2, 4))
        rows = []
        for _ in range(d):
            row = draw(st.lists(logit, min_size=K, max_size=K))
            if all(x == -np.inf for x in row):
                row[0] = 0.0
            rows.append(row)
        dist = refgrad.Categorical(np.array(rows))
    shape = tuple(dist.event_shape)
    values = np.array(draw(st.lists(st.floats(-2, 2), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))))
    kind = draw(st.sampled_from(["squared", "linear", "table"]))
    if kind == "table":
        K = 2 if family == "bernoulli" else dist.K
        table = np.array(draw(st.lists(st.floats(-2, 2), min_size=K ** dist.d, max_size=K ** dist.d)))
        return dist, Table(table.reshape((K,) * dist.d))
    f = (SquaredDistance if kind == "squared" else Linear)(values.reshape(shape))
    return dist, f


def _close(fused, batched, label):
    """Bit for bit: every kernel follows the batched path's order of operations (the issue asks 1e-13)."""
    np.testing.assert_array_equal(fused, batched, err_msg=label)
    np.testing.assert_array_equal(np.signbit(fused), np.signbit(batched), err_msg=label + " (sign of zero)")


@pytest.mark.parametrize("name, family, build", CASES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fused_equals_batched(name, family, build, data):
    dist, f = data.draw(problems(family))
    opts = build(dist)
    if opts.get("baseline") == "optimal" and dist.d > 4:
        opts["baseline"] = 0.25
    spec = refgrad.ESTIMATORS[name]
    noise = spec.draw_noise(dist, 40, rng=data.draw(st.integers(0, 2**32 - 1)), **opts)
    if not any(not nf.per_sample for nf in spec.noise_layout(dist, **opts)):
        assert _plan(name, dist, f, opts) is not None, "the fused hook declined a supported case"
    try:
        batched = batched_estimate(name, dist, f, noise, **opts)
    except ValueError as exc:  # an overflow the batched path refuses must be refused by the fused one too
        with pytest.raises(ValueError, match="overflowed"):
            refgrad.estimate(name, dist, f, noise=noise, **opts)
        assert "overflowed" in str(exc)
        return
    fused = refgrad.estimate(name, dist, f, noise=noise, **opts)
    _close(fused, batched, f"{name}/{family} {dist!r} {f!r}")


def _moderate(family, big=False):
    rng = np.random.default_rng(5)
    if family == "bernoulli":
        return refgrad.Bernoulli(rng.normal(size=40 if big else 5)), SquaredDistance(0.45)
    d, K = (6, 5) if big else (3, 4)
    return refgrad.Categorical(rng.normal(size=(d, K))), SquaredDistance(np.linspace(0.1, 0.9, K))


@pytest.mark.parametrize("name, family, build", CASES)
def test_threads_chunks_and_noise_bit_identical(name, family, build, monkeypatch):
    dist, f = _moderate(family, big=True)
    opts = build(dist)
    if opts.get("baseline") == "optimal":
        opts["baseline"] = 0.25
    n = 3000  # several chunks at the small chunk size, several threads
    runs = {}
    for threads in (1, 2, 4):
        for floats in (1 << 10, 1 << 19):
            monkeypatch.setattr(_fused, "_thread_count", lambda t=threads: t)
            monkeypatch.setattr(_fused, "CHUNK_FLOATS", floats)
            monkeypatch.setattr(_fused, "MIN_FLOATS_PER_THREAD", 256)
            runs[threads, floats] = refgrad.estimate(name, dist, f, n, rng=11, **opts)
    first = runs[1, 1 << 19]
    for key, value in runs.items():
        np.testing.assert_array_equal(value, first, err_msg=f"threads, chunk floats = {key}")
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, n, rng=11, **opts)
    np.testing.assert_array_equal(refgrad.estimate(name, dist, f, noise=noise, **opts), first)
    _close(first, batched_estimate(name, dist, f, noise, **opts), name)


def test_chunked_draw_is_one_draw():
    """The Generator's integer stream does not depend on how a draw is split (what chunking relies on)."""
    gen = np.random.default_rng(3)
    whole = refgrad.random.uniform(gen, (1000, 7))
    gen = np.random.default_rng(3)
    parts = [_fused._draw_cells(gen, c, 7) for c in (3, 500, 1, 496)]
    U = np.empty((1000, 7))
    _fused._cells_to_uniform_rows(np.concatenate(parts), U, 0, 1000)
    np.testing.assert_array_equal(U, whole)


def test_nonfinite_estimate_is_refused():
    """An overflow inside a fused kernel is reported like the batched path's (the threads check every entry)."""
    dist = refgrad.Bernoulli([0.3, -0.2])
    f = Linear([1e308, 1e308])
    with pytest.raises(ValueError, match="overflowed"):
        refgrad.estimate("reinforce", dist, f, 50_000, rng=1, baseline=-1e308)


def test_python_objective_takes_batched_path():
    dist, f = _moderate("bernoulli")
    spec = refgrad.ESTIMATORS["reinforce"]
    obj = refgrad.objectives.FunctionObjective(f.value, f.grad)
    assert spec.fused_plan(dist, obj, spec.options(dist), {}) is None

    class Sub(SquaredDistance):
        pass

    assert spec.fused_plan(dist, Sub(0.45), spec.options(dist), {}) is None
    assert spec.fused_plan(dist, f, spec.options(dist), {}) is not None
    noise = spec.draw_noise(dist, 100, rng=2)
    np.testing.assert_array_equal(refgrad.estimate("reinforce", dist, obj, noise=noise),
                                  refgrad.estimate("reinforce", dist, f, noise=noise))


@pytest.mark.parametrize("family", ["bits", "one_hot"])
@pytest.mark.parametrize("which", ["squared", "linear", "table"])
def test_row_functions_equal_array_methods(family, which):
    """objective_value / objective_grad on flat rows equal the objectives' value and grad, at vertices and inside."""
    rng = np.random.default_rng(4)
    d, K = 3, (2 if family == "bits" else 3)
    shape = (d,) if family == "bits" else (d, K)
    if which == "table":
        f = Table(rng.normal(size=(K,) * d))
    elif which == "squared":
        f = SquaredDistance(rng.normal(size=shape))
    else:
        f = Linear(rng.normal(size=shape))
    inside = rng.random((6,) + shape)
    if family == "bits":
        vertices = (rng.random((6,) + shape) < 0.5).astype(float)
    else:
        vertices = np.eye(K)[rng.integers(0, K, size=(6, d))]
    z = np.concatenate([inside, vertices])
    kind, par = objective_row(f, shape)
    grad = np.empty(int(np.prod(shape)))
    values, grads = f.value(z), f.grad(z)
    for s in range(z.shape[0]):
        row = np.ascontiguousarray(z[s]).reshape(-1)
        assert objective_value(kind, par, row) == values[s]
        objective_grad(kind, par, row, grad)
        np.testing.assert_array_equal(grad, grads[s].reshape(-1))


def _child_estimate(queue):
    dist, f = _moderate("bernoulli", big=True)
    queue.put(refgrad.estimate("reinforce", dist, f, 20_000, rng=5).sum())


def test_pool_survives_fork_and_concurrent_callers(monkeypatch):
    """The kept worker pool is dropped in a forked child (whose copy has no threads) and shared by threads."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(_fused, "_thread_count", lambda: 2)
    dist, f = _moderate("bernoulli", big=True)
    expected = refgrad.estimate("reinforce", dist, f, 20_000, rng=5)  # n * width is above the threading threshold
    assert _fused._POOL is not None
    with ThreadPoolExecutor(3) as callers:
        for got in callers.map(lambda _: refgrad.estimate("reinforce", dist, f, 20_000, rng=5), range(6)):
            np.testing.assert_array_equal(got, expected)
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_estimate, args=(queue,))
    child.start()
    value = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and value == expected.sum()


def test_fused_kernels_context_chooses_the_path_and_restores_it():
    """``fused_kernels(False)`` forces the batched path inside its block only, nested or left by an error."""
    dist, f = refgrad.Bernoulli([0.3, -1.2]), Linear([1.0, -0.5])
    assert _fused.enabled() and _plan("reinforce", dist, f, {}) is not None
    with _fused.fused_kernels(False):
        assert not _fused.enabled() and _plan("reinforce", dist, f, {}) is None
        with _fused.fused_kernels(True):
            assert _plan("reinforce", dist, f, {}) is not None
        assert _plan("reinforce", dist, f, {}) is None
    with pytest.raises(RuntimeError), _fused.fused_kernels(False):
        raise RuntimeError
    assert _fused.enabled()
    with pytest.raises(TypeError, match="enabled must be a bool"), _fused.fused_kernels(0):
        pass
