"""Hostile input on refgrad.crosscheck.jax: narrowing and memory sharing of from_numpy, draws beyond the
memory budget, key and dtype errors, per-sample gradients with non-finite samples and bad surrogates."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import refgrad.crosscheck.jax as cj  # noqa: E402  (after the skip)

x64 = jax.enable_x64


@pytest.mark.parametrize("dtype,stored", [(np.float64, "float32"), (np.int64, "int32"), (np.uint64, "uint32")])
def test_from_numpy_warns_when_jax_narrows(dtype, stored):
    a = np.array([1, 2], dtype=dtype)
    with pytest.warns(UserWarning,
                      match=rf"^a of dtype {np.dtype(dtype)} is stored as {stored}: jax_enable_x64 is off"):
        x = cj.from_numpy(a)
    assert x.dtype == np.dtype(stored)
    with pytest.warns(UserWarning, match="^a of dtype float32, asked as float64, is stored as float32"):
        cj.from_numpy(np.ones(2, dtype=np.float32), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cj.from_numpy(np.ones(2, dtype=np.float32)).dtype == jnp.float32
        assert cj.from_numpy(a, dtype=jnp.float32).dtype == jnp.float32
        with x64(True):
            assert cj.from_numpy(a).dtype == dtype


def test_from_numpy_never_shares_memory():
    for use_x64 in (False, True):
        with x64(use_x64), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.array([0.25, 0.5], dtype=np.float32)
            x = cj.from_numpy(a)
            a[:] = 7
            assert x.tolist() == [0.25, 0.5]


@pytest.mark.parametrize("bad", ["float99", jnp.complex64, np.dtype("U3"), object])
def test_from_numpy_dtype_named(bad):
    with pytest.raises(ValueError, match=r"^dtype must be a real dtype"):
        cj.from_numpy(np.ones(2), dtype=bad)


def test_from_numpy_key_dtypes_named():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"^dtype must be a real dtype"):
        cj.from_numpy(np.ones(2), dtype=key.dtype)
    with pytest.raises(ValueError, match=r"^like must be a JAX array of numbers"):
        cj.from_numpy(np.ones(2), like=key)


def test_raw_key_of_wrong_length_named():
    for bad in (np.array([1, 2, 3], dtype=np.uint32), jnp.array([1], dtype=jnp.uint32)):
        with pytest.raises(ValueError, match=r"^key is raw key data of shape \(\d,\).*expected key_data.shape"):
            cj.uniforms_from_key(bad, (3,))


_HUGE = """
import jax, jax.numpy as jnp, refgrad.crosscheck.jax as cj
for args in ({args}):
    try:
        cj.uniforms_from_key(jax.random.key(0), *args)
    except ValueError as e:
        print("refused:", e)
"""


def test_draws_beyond_the_budget_refused_before_allocating():
    """In a subprocess: the unchecked draw of (10**7, 10**6) aborted the interpreter inside XLA (exit 134)."""
    args = "((10**7, 10**6),), ((2**29,), jnp.float32), ((2**28 + 1,), jnp.float32, 'gumbel', 'high')"
    out = subprocess.run([sys.executable, "-c", _HUGE.format(args=args)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and all("4 GiB budget of one call" in line for line in lines), out.stdout
    assert lines[0].startswith("refused: shape=(10000000, 1000000) asks for 1e+13 uniforms (109 TiB")
    assert "(6 GiB" in lines[1] and "(4 GiB" in lines[2]  # 12 bytes a value; 16 with the two blocks of mode high


def test_per_sample_gradients_non_finite_sample_isolated():
    w = np.ones((6, 1))
    w[1], w[4] = np.nan, np.inf
    with x64(True):
        g = cj.per_sample_gradients(lambda p, wi: jnp.sum((p * wi) ** 2), jnp.asarray([0.5, -2.0]), jnp.asarray(w))
    np.testing.assert_array_equal(g[[0, 2, 3, 5]], np.tile([1.0, -4.0], (4, 1)))
    assert not np.isfinite(g[[1, 4]]).any()


def test_per_sample_gradients_surrogate_and_params_named():
    p, noise = jnp.ones(2), jnp.ones((3, 2))
    with pytest.raises(ValueError,
                       match=r"^surrogate\(params, noise_i\) must return a real float scalar.*shape \(2,\)"):
        cj.per_sample_gradients(lambda q, x: q * x, p, noise)
    with pytest.raises(ValueError, match=r"^surrogate.*dtype complex64"):
        cj.per_sample_gradients(lambda q, x: jnp.sum(q * x) * 1j, p, noise)
    with pytest.raises(ValueError, match=r"^surrogate.*got a tuple"):
        cj.per_sample_gradients(lambda q, x: (jnp.sum(q), jnp.sum(x)), p, noise)
    with pytest.raises(ValueError, match=r"^params leaf 0 must be a real float array; got dtype complex64 \(complex"):
        cj.per_sample_gradients(lambda q, x: jnp.sum(jnp.abs(q * x)), jnp.ones(2, jnp.complex64), noise)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(ValueError, match="complex"):
            cj.per_sample_gradients(lambda q, x: jnp.sum(jnp.abs(q * x)), {"a": p, "b": jnp.ones(1, jnp.complex64)},
                                    noise)
    with pytest.raises(ValueError, match=r"^keys_or_noise holds n = 1000 samples.*7.45 GiB.*4 GiB budget"):
        cj.per_sample_gradients(lambda q, x: jnp.sum(q), jnp.ones(10**6), jnp.ones((1000, 1)))
