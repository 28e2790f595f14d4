"""refgrad.estimate_moments: the streamed mean and variance of n estimates."""
import tracemalloc

import numpy as np
import pytest

import refgrad
from refgrad.estimators import _fused, _streaming
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance


def _problem(family="bernoulli", d=20):
    rng = np.random.default_rng(8)
    if family == "bernoulli":
        return refgrad.Bernoulli(rng.normal(size=d)), SquaredDistance(0.45)
    return refgrad.Categorical(rng.normal(size=(4, 3))), SquaredDistance([0.2, 0.5, 0.9])


@pytest.mark.parametrize("name, family", [("reinforce", "bernoulli"), ("reinforce", "categorical"),
                                          ("rloo", "bernoulli"), ("muprop", "categorical"), ("arm", "bernoulli")])
def test_equals_reduction_of_estimate(name, family):
    dist, f = _problem(family)
    n = 5000
    est = refgrad.estimate(name, dist, f, n, rng=4).reshape(n, -1)
    m = refgrad.estimate_moments(name, dist, f, n, rng=4)
    assert m.n == n and m.mean.shape == tuple(dist.param_shape)
    scale = np.abs(est).max()
    np.testing.assert_allclose(m.mean.reshape(-1), est.mean(axis=0), rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(m.variance.reshape(-1), est.var(axis=0, ddof=1), rtol=1e-10, atol=1e-13 * scale**2)
    np.testing.assert_allclose(m.standard_error, np.sqrt(m.variance / n))


@pytest.mark.parametrize("objective", ["builtin", "python"])
def test_bit_identical_for_any_chunk_size_and_thread_count(objective, monkeypatch):
    dist, f = _problem()
    if objective == "python":
        f = FunctionObjective(f.value, f.grad)
    results = []
    for threads, chunk in ((1, None), (2, 1), (4, 3000), (2, 7000)):
        monkeypatch.setattr(_fused, "_thread_count", lambda t=threads: t)
        monkeypatch.setattr(_fused, "MIN_FLOATS_PER_THREAD", 256)
        results.append(refgrad.estimate_moments("reinforce", dist, f, 9000, rng=3, chunk_rows=chunk))
    for r in results[1:]:
        np.testing.assert_array_equal(r.mean, results[0].mean)
        np.testing.assert_array_equal(r.variance, results[0].variance)


def test_builtin_and_python_objective_agree():
    dist, f = _problem()
    a = refgrad.estimate_moments("reinforce", dist, f, 3000, rng=1)
    b = refgrad.estimate_moments("reinforce", dist, FunctionObjective(f.value, f.grad), 3000, rng=1)
    np.testing.assert_array_equal(a.mean, b.mean)


def test_memory_does_not_grow_with_n():
    """200 000 estimates at d = 100 would be 160 MB; the stream holds a few chunks."""
    dist = refgrad.Bernoulli(np.linspace(-2, 2, 100))
    f = Linear(np.linspace(-1, 1, 100))
    refgrad.estimate_moments("reinforce", dist, f, 2000, rng=0)  # compile outside the measurement
    tracemalloc.start()
    try:
        refgrad.estimate_moments("reinforce", dist, f, 200_000, rng=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_block_merge_matches_two_pass():
    """The Chan merge of uneven blocks equals a two-pass mean and variance (a wrong merge term fails)."""
    x = np.random.default_rng(2).normal(5.0, 3.0, size=(2500, 3))
    means, m2s = np.empty((3, 3)), np.empty((3, 3))
    counts = np.empty(3, dtype=np.int64)
    mean, m2 = np.zeros(3), np.zeros(3)
    k = _streaming._block_stats(x, 2500, 1024, means, m2s, counts)
    assert list(counts[:k]) == [1024, 1024, 452]
    total = _streaming._merge(0, mean, m2, means, m2s, counts, k)
    assert total == 2500
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m2 / (total - 1), x.var(axis=0, ddof=1), rtol=1e-12)


def test_bad_arguments():
    dist, f = _problem()
    with pytest.raises(ValueError, match="n"):
        refgrad.estimate_moments("reinforce", dist, f, 1, rng=0)
    with pytest.raises(ValueError, match="chunk_rows"):
        refgrad.estimate_moments("reinforce", dist, f, 10, rng=0, chunk_rows=0)
    with pytest.raises(ValueError, match="unknown option"):
        refgrad.estimate_moments("reinforce", dist, f, 10, rng=0, tau=1.0)
    with pytest.raises(ValueError, match="overflowed"):
        refgrad.estimate_moments("reinforce", refgrad.Bernoulli([0.3]), Linear([1e308]), 10, rng=0, baseline=-1e308)
