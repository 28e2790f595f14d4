"""Hostile input on refgrad.crosscheck.tensorflow: per-sample gradients with non-finite samples and bad
surrogates, draws beyond the memory budget, memory sharing of from_numpy."""
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import refgrad.crosscheck.tensorflow as ctf  # noqa: E402  (after the skip)


@pytest.mark.parametrize("method", ["vectorized", "jacobian", "loop"])
def test_per_sample_gradients_non_finite_sample_isolated(method):
    a = tf.Variable([0.5, -2.0], dtype=tf.float64)
    w = np.ones((6, 1))
    w[1], w[4] = np.nan, np.inf
    g = ctf.per_sample_gradients(lambda p, wi: tf.reduce_sum((p * wi) ** 2), a, w, method=method)
    np.testing.assert_array_equal(g[[0, 2, 3, 5]], np.tile([1.0, -4.0], (4, 1)))
    assert not np.isfinite(g[[1, 4]]).any()


@pytest.mark.parametrize("method", ["vectorized", "jacobian", "loop"])
def test_per_sample_gradients_surrogate_named(method):
    a = tf.Variable([0.5, -2.0], dtype=tf.float64)
    noise = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"surrogate must return a real float scalar tensor.*complex128"):
        ctf.per_sample_gradients(lambda p, x: tf.complex(tf.reduce_sum(p * x), 0.0 * tf.reduce_sum(p)), a, noise,
                                 method=method)
    with pytest.raises(ValueError, match=r"surrogate must return a real float scalar tensor.*shape \(2,\)"):
        ctf.per_sample_gradients(lambda p, x: p * x, a, noise, method=method)


def test_per_sample_gradients_output_budget():
    big = tf.Variable(tf.zeros(10**6, dtype=tf.float64))
    with pytest.raises(ValueError, match=r"^noise holds n = 1000 samples.*7.45 GiB.*4 GiB budget"):
        ctf.per_sample_gradients(lambda p, x: tf.reduce_sum(p), big, np.ones((1000, 1)))
    with pytest.raises(ValueError, match=r"params\[0\] must be a float tensor or variable; got dtype complex64"):
        ctf.per_sample_gradients(lambda p, x: tf.reduce_sum(p), tf.Variable([1j], dtype=tf.complex64),
                                 np.ones((2, 1)))


_HUGE = """
import numpy as np, tensorflow as tf, refgrad.crosscheck.tensorflow as ctf
gen = tf.random.Generator.from_seed(1)
for call in (lambda: ctf.uniforms_from_seed((1, 2), (10**7, 10**6)),
             lambda: ctf.uniforms_from_seed((1, 2), (2**29,), tf.float32),
             lambda: ctf.uniforms_from_generator(gen, (10**7, 10**6), tf.float64)):
    try:
        call()
    except ValueError as e:
        print("refused:", e)
"""


def test_draws_beyond_the_budget_refused_before_allocating():
    out = subprocess.run([sys.executable, "-c", _HUGE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("refused")]
    assert len(lines) == 3 and all("4 GiB budget of one call" in line for line in lines), out.stdout
    assert "(109 TiB for TF's float32" in lines[0] and "(6 GiB" in lines[1] and "(146 TiB for TF's float64" in lines[2]


def test_from_numpy_never_shares_memory():
    for a in (np.array([0.25, 0.5]), np.arange(8.0).reshape(2, 4)[:, ::2], np.ones(2**12)):
        before = a.copy()
        t = ctf.from_numpy(a)
        a[...] = 7
        np.testing.assert_array_equal(t.numpy(), before)
