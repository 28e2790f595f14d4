"""refgrad.crosscheck.jax: array conversion, key-drawn noise matched to jax 0.10.2, per-sample gradients."""
import numpy as np
import pytest

import refgrad
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import SquaredDistance

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import refgrad.crosscheck.jax as cj  # noqa: E402  (after the skip)

x64 = jax.enable_x64  # context manager: float64 inside a test only, the global flag untouched


# ----------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("dtype,expected", [(jnp.float32, np.float32), (jnp.float16, np.float32),
                                            (jnp.bfloat16, np.float32), (jnp.int32, np.int32)])
def test_to_numpy_dtypes(dtype, expected):
    a = cj.to_numpy(jnp.asarray([1.0, 0.0, 3.0]).astype(dtype))
    assert a.dtype == expected
    np.testing.assert_array_equal(a, [1, 0, 3])


def test_to_numpy_float64_zero_d_nested_keys():
    with x64(True):
        a = cj.to_numpy(jnp.asarray(2.5, dtype=jnp.float64))
    assert a.shape == () and a.dtype == np.float64 and a == 2.5
    nested = cj.to_numpy({"a": [jnp.ones(2), (jnp.zeros(()), 3)]})
    assert isinstance(nested["a"][1], tuple) and nested["a"][1][1].shape == ()
    assert cj.to_numpy(jax.random.key(0)).dtype == np.uint32
    with pytest.raises(TypeError, match="JAX array, an array"):
        cj.to_numpy("x")
    with pytest.raises(TypeError, match="traced"):
        jax.jit(cj.to_numpy)(jnp.ones(2))


def test_from_numpy():
    with pytest.warns(UserWarning, match="a of dtype float64 is stored as float32: jax_enable_x64 is off"):
        assert cj.from_numpy(np.ones(2)).dtype == jnp.float32  # x64 off: JAX stores float32
    with x64(True):
        assert cj.from_numpy(np.ones(2)).dtype == jnp.float64
        assert cj.from_numpy(np.ones(2), like=jnp.ones(1, dtype=jnp.float32)).dtype == jnp.float32
    with pytest.raises(TypeError, match="like"):
        cj.from_numpy(np.ones(2), like=np.ones(1))
    with pytest.raises(TypeError, match="real numbers"):
        cj.from_numpy(["a"])


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("use_x64,dtype", [(False, jnp.float32), (True, jnp.float64)])
@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey])
def test_uniforms_from_key_gumbel(use_x64, dtype, make_key):
    with x64(use_x64):
        key = make_key(3)
        u = cj.uniforms_from_key(key, (400, 3), dtype)
        g = np.asarray(jax.random.gumbel(key, (400, 3), dtype))
        assert u.dtype == np.float64 and u.shape == (400, 3) and np.all((u > 0) & (u < 1))
        # bitwise: jax's own transform of these uniforms in its dtype
        np.testing.assert_array_equal(np.asarray(-jnp.log(-jnp.log(jnp.asarray(u, dtype)))), g)
        tol = 1e-13 if use_x64 else 1e-5
        np.testing.assert_allclose(-np.log(-np.log(u)), g, rtol=tol, atol=tol)
        other = cj.uniforms_from_key(jax.random.fold_in(key, 1), (400, 3), dtype)
        assert not np.allclose(-np.log(-np.log(other)), g, atol=0.1)  # another key is seen


def test_uniforms_from_key_high_mode_float32():
    key = jax.random.key(5)
    u = cj.uniforms_from_key(key, (1000,), jnp.float32, mode="high")
    g = np.asarray(jax.random.gumbel(key, (1000,), jnp.float32, mode="high"))
    np.testing.assert_allclose(-np.log(-np.log(u)), g, rtol=1e-5, atol=1e-5)
    low = cj.uniforms_from_key(key, (1000,), jnp.float32, mode="low")
    assert not np.allclose(low, u)
    with x64(True), pytest.raises(ValueError, match="float32 only"):
        cj.uniforms_from_key(key, (3,), jnp.float64, mode="high")


@pytest.mark.parametrize("use_x64,dtype", [(False, jnp.float32), (True, jnp.float64)])
def test_categorical_from_key_matches_refgrad(use_x64, dtype):
    logits = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0], [-50.0, 0.0, 50.0, 49.0]])
    n = 2000
    with x64(use_x64):
        key = jax.random.key(11)
        jl = jnp.asarray(logits, dtype)
        b = np.asarray(jax.random.categorical(key, jl, shape=(n, 3)))
        u = cj.uniforms_from_key(key, (n, 3, 4), dtype, kind="categorical")
    mine = refgrad.random.categorical_gumbel_max(logits, u)
    mismatches = int((mine != b).sum())
    assert mismatches <= (0 if use_x64 else 2)  # float32 can break near-ties differently
    assert set(np.unique(b[:, 2])) <= {2, 3}


def test_categorical_infinite_logits_convention():
    key = jax.random.key(2)
    logits = np.array([[-np.inf, np.inf, np.inf]])
    b = np.asarray(jax.random.categorical(key, jnp.asarray(logits, jnp.float32), shape=(500, 1)))
    assert np.all(b == 1)  # jax: first +inf always (refgrad: uniform over the +inf entries)
    u = cj.uniforms_from_key(key, (500, 1, 3), jnp.float32, kind="categorical")
    mine = refgrad.random.categorical_gumbel_max(logits, u)
    assert set(np.unique(mine)) == {1, 2}


def test_uniforms_from_key_uniform_kind_and_errors():
    key = jax.random.key(0)
    u = cj.uniforms_from_key(key, (50,), kind="uniform")
    np.testing.assert_array_equal(u, np.asarray(jax.random.uniform(key, (50,)), dtype=np.float64))
    with pytest.raises(ValueError, match="kind"):
        cj.uniforms_from_key(key, (3,), kind="normal")
    with pytest.raises(ValueError, match="mode"):
        cj.uniforms_from_key(key, (3,), mode="highest")
    with pytest.raises(ValueError, match="shape"):
        cj.uniforms_from_key(key, (-1,))
    with pytest.raises(TypeError, match="dtype"):
        cj.uniforms_from_key(key, (3,), jnp.int32)
    with pytest.raises(TypeError, match="PRNG key"):
        cj.uniforms_from_key(np.array([1.0, 2.0]), (3,))
    with pytest.raises(ValueError, match="single PRNG key"):
        cj.uniforms_from_key(jax.random.split(key, 2), (3,))


def test_gumbel_from_uniforms():
    u = refgrad.random.uniform(1, (10, 3))
    g = cj.gumbel_from_uniforms(u)
    assert g.dtype == jnp.float32 and g.shape == (10, 3)
    with x64(True):
        g64 = cj.gumbel_from_uniforms(u)
        assert g64.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(g64), refgrad.random.gumbel(u))
    with pytest.raises(ValueError, match="strictly inside"):
        cj.gumbel_from_uniforms([0.5, 1.0])


# ----------------------------------------------------------------------------- per-sample gradients


def test_per_sample_gradients_reinforce():
    logits, t, n = np.array([0.3, -1.0, 2.0]), 0.45, 200
    u = refgrad.random.uniform(8, (n, 3))
    expected = refgrad.estimate("reinforce", Bernoulli(logits), SquaredDistance(t), noise={"u": u})

    def surrogate(lg, ui):
        b = (ui > jax.nn.sigmoid(-lg)).astype(lg.dtype)  # refgrad's Bernoulli.from_uniforms
        log_prob = jnp.sum(b * jax.nn.log_sigmoid(lg) + (1 - b) * jax.nn.log_sigmoid(-lg))
        return jax.lax.stop_gradient(jnp.sum((b - t) ** 2)) * log_prob

    with x64(True):
        grads = cj.per_sample_gradients(surrogate, jnp.asarray(logits), jnp.asarray(u))
        wrong = cj.per_sample_gradients(lambda lg, ui: 1.01 * surrogate(lg, ui), jnp.asarray(logits), jnp.asarray(u))
    assert grads.shape == (n, 3) and grads.dtype == np.float64
    np.testing.assert_allclose(grads, expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(wrong, expected, rtol=1e-6)


def test_per_sample_gradients_gumbel_softmax_with_keys():
    logits, tau, t, n = np.array([[0.3, -1.2, 2.0]]), 0.5, 0.2, 16
    keys = jax.random.split(jax.random.key(4), n)

    def surrogate(lg, key):
        g = jax.random.gumbel(key, lg.shape, lg.dtype)
        y = jax.nn.softmax((lg + g) / tau, axis=-1)
        return jnp.sum((y - t) ** 2)

    with x64(True):
        grads = cj.per_sample_gradients(surrogate, jnp.asarray(logits), keys)
        u = np.stack([cj.uniforms_from_key(k, (1, 3), jnp.float64) for k in keys])
    expected = refgrad.estimate("gumbel_softmax", Categorical(logits), SquaredDistance(t), noise={"u": u}, tau=tau)
    np.testing.assert_allclose(grads, expected, rtol=1e-9, atol=1e-12)


def test_per_sample_gradients_rejects():
    with pytest.raises(TypeError, match="callable"):
        cj.per_sample_gradients(1, jnp.ones(2), jnp.ones((3, 2)))
    with pytest.raises(TypeError, match="float array"):
        cj.per_sample_gradients(lambda p, x: 0.0, jnp.ones(2, dtype=jnp.int32), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="leading sample axis"):
        cj.per_sample_gradients(lambda p, x: 0.0, jnp.ones(2), {"a": jnp.ones((3, 2)), "b": jnp.ones((4,))})
    with pytest.raises(ValueError, match="non-empty"):
        cj.per_sample_gradients(lambda p, x: 0.0, {}, jnp.ones((3, 2)))
