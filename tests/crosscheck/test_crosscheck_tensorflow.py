"""refgrad.crosscheck.tensorflow: conversion, stateless noise matched to tensorflow 2.21, per-sample gradients.

The estimator tests run textbook TF implementations (REINFORCE via the score, Binary Concrete and
Gumbel-softmax relaxed estimates, straight-through) through ``check_estimator`` and
``check_same_estimates``; each verdict's truth is known (the correct code passes, a planted bug -- a
missing score term, a wrong temperature -- fails).  Statistical verdicts use the checks' default
α = 1e-3 and fixed seeds, stated at each test.
"""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up logging, before TF is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import refgrad  # noqa: E402
from refgrad.crosscheck import check_estimator, check_same_estimates  # noqa: E402
from refgrad.distributions import Bernoulli, Categorical  # noqa: E402
from refgrad.objectives import SquaredDistance  # noqa: E402

tf = pytest.importorskip("tensorflow")
import refgrad.crosscheck.tensorflow as ctf  # noqa: E402  (after the skip)

DTYPES = [tf.float32, tf.float64]


def _tiny(dtype):
    return float(np.finfo(dtype.as_numpy_dtype).tiny)


def _seeds(seed, n):
    return tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), n)


def _seed_uniforms(seeds, shape, dtype):
    """The uniforms each row's stateless draw used, recovered by the adapter (one call per seed)."""
    return np.stack([ctf.uniforms_from_seed(s, shape, dtype, minval=_tiny(dtype)) for s in seeds.numpy()])


def test_crosscheck_does_not_import_tensorflow():
    code = "import sys, refgrad, refgrad.crosscheck; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("dtype,expected", [(tf.float32, np.float32), (tf.float64, np.float64),
                                            (tf.float16, np.float32), (tf.bfloat16, np.float32),
                                            (tf.int32, np.int32), (tf.bool, np.bool_)])
def test_to_numpy_dtypes(dtype, expected):
    a = ctf.to_numpy(tf.cast(tf.constant([1.0, 0.0, 3.0]), dtype))
    assert a.dtype == expected and a.shape == (3,)
    np.testing.assert_array_equal(a, np.array([1, 0, 3]).astype(expected))


def test_to_numpy_variable_zero_d_nested_copy():
    v = tf.Variable(2.5, dtype=tf.float64)
    a = ctf.to_numpy(v)
    assert a.shape == () and a.dtype == np.float64 and a == 2.5
    a[()] = 7.0  # a copy: the variable is untouched
    assert float(v.numpy()) == 2.5
    nested = ctf.to_numpy({"a": [v * 2, (tf.zeros(()), 1.5)], "b": np.float32(2)})
    assert isinstance(nested["a"], list) and isinstance(nested["a"][1], tuple)
    assert nested["a"][0] == 5.0 and nested["a"][1][0].shape == () and nested["b"].dtype == np.float32


@pytest.mark.parametrize("bad,match", [("1.5", "TensorFlow tensor, an array"), (None, "TensorFlow tensor"),
                                       (tf.constant(["s"]), "real numbers"),
                                       (tf.sparse.from_dense(tf.eye(2)), "SparseTensor"),
                                       (tf.ragged.constant([[1.0], []]), "RaggedTensor")])
def test_to_numpy_rejects(bad, match):
    with pytest.raises(TypeError, match=match):
        ctf.to_numpy(bad)


def test_to_numpy_rejects_symbolic():
    with pytest.raises(TypeError, match="symbolic"):
        tf.function(ctf.to_numpy, autograph=False)(tf.ones(2))
    v = tf.Variable([1.0, 2.0])
    with pytest.raises(TypeError, match="symbolic"):
        tf.function(lambda: ctf.to_numpy(v), autograph=False)()


def test_from_numpy():
    a = np.array([0.1, 0.2])
    assert ctf.from_numpy(a).dtype == tf.float64
    assert ctf.from_numpy(a, like=tf.zeros(1, tf.float32)).dtype == tf.float32
    assert ctf.from_numpy(a, like=tf.Variable([1.0], dtype=tf.float16)).dtype == tf.float16
    assert ctf.from_numpy(a, dtype=np.float32).dtype == tf.float32
    with pytest.raises(TypeError, match="like"):
        ctf.from_numpy(a, like=np.zeros(1))
    with pytest.raises(TypeError, match="dtype"):
        ctf.from_numpy(a, dtype="not a dtype")
    with pytest.raises(TypeError, match="real numbers"):
        ctf.from_numpy(["x"])


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("dtype,tol", [(tf.float32, 1e-5), (tf.float64, 1e-13)])
def test_uniforms_from_seed_match_tf_draws(dtype, tol):
    seed, shape, tiny = (7, 11), (500, 3), _tiny(dtype)
    u = ctf.uniforms_from_seed(seed, shape, dtype, minval=tiny)
    drawn = tf.random.stateless_uniform(shape, seed, minval=tiny, maxval=1.0, dtype=dtype)
    assert u.dtype == np.float64 and u.shape == shape and np.all((u > 0) & (u < 1))
    # bitwise: TF's own Gumbel and logistic transforms of the returned values equal those of its draw
    back = tf.constant(u, dtype)
    for transform in (lambda x: -tf.math.log(-tf.math.log(x)), lambda x: tf.math.log(x) - tf.math.log1p(-x)):
        np.testing.assert_array_equal(transform(back).numpy(), transform(drawn).numpy())
    g = -tf.math.log(-tf.math.log(drawn)).numpy()
    np.testing.assert_allclose(refgrad.random.gumbel(u), g, rtol=tol, atol=tol)
    assert not np.allclose(ctf.uniforms_from_seed((7, 12), shape, dtype, minval=tiny), u, atol=0.1)  # seed seen
    np.testing.assert_array_equal(ctf.uniforms_from_seed(seed, shape, dtype, minval=tiny, alg="philox"), u)  # CPU
    np.testing.assert_array_equal(ctf.uniforms_from_seed(tf.constant(seed, tf.int32), shape, dtype, minval=tiny), u)
    # the mantissa grid: minval = tiny only replaces k = 0, every other value is k 2**-p
    p = np.finfo(dtype.as_numpy_dtype).nmant
    plain = ctf.uniforms_from_seed(seed, shape, dtype)
    np.testing.assert_array_equal(plain, u)
    assert np.all(plain * 2.0**p == np.round(plain * 2.0**p))


def test_uniforms_from_seed_zero_draw_refused_or_replaced():
    seed, shape = (3, 4), (4096,)  # float16: 0 has probability 2**-10 per draw; this draw holds 5 of them
    drawn = tf.random.stateless_uniform(shape, seed, dtype=tf.float16).numpy()
    first_zero = int(np.flatnonzero(drawn == 0)[0])
    with pytest.raises(ValueError, match=rf"minval=np.finfo\(dtype\).tiny.*at index \({first_zero},\)"):
        ctf.uniforms_from_seed(seed, shape, tf.float16)
    u = ctf.uniforms_from_seed(seed, shape, tf.float16, minval=_tiny(tf.float16))
    assert np.all(u > 0) and u[first_zero] == _tiny(tf.float16)
    shifted = tf.random.stateless_uniform(shape, seed, minval=_tiny(tf.float16), maxval=1.0, dtype=tf.float16)
    np.testing.assert_array_equal(u, shifted.numpy().astype(np.float64))  # in float16 tiny also moves small values


@pytest.mark.parametrize("kwargs,error,match", [
    ({"seed": (1, 2, 3)}, ValueError, "seed must be"), ({"seed": (0.5, 1.0)}, ValueError, "seed must be"),
    ({"shape": (-1,)}, ValueError, "shape"), ({"dtype": tf.int32}, TypeError, "dtype"),
    ({"minval": -0.5}, ValueError, "minval"), ({"maxval": 2.0}, ValueError, "maxval"),
    ({"minval": np.nan}, ValueError, "minval")])
def test_uniforms_from_seed_rejects(kwargs, error, match):
    args = {"seed": (1, 2), "shape": (3,)} | kwargs
    with pytest.raises(error, match=match):
        ctf.uniforms_from_seed(**args)


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniforms_from_generator(dtype):
    gen = tf.random.Generator.from_seed(5)
    gen.uniform((3,))  # an earlier draw: the state has moved
    u = ctf.uniforms_from_generator(gen, (200, 2), dtype, minval=_tiny(dtype))
    again = ctf.uniforms_from_generator(gen, (200, 2), dtype, minval=_tiny(dtype))
    np.testing.assert_array_equal(u, again)  # the generator was not advanced
    drawn = gen.uniform((200, 2), minval=_tiny(dtype), maxval=1.0, dtype=dtype).numpy()
    np.testing.assert_array_equal(u, drawn.astype(np.float64))
    assert not np.allclose(ctf.uniforms_from_generator(gen, (200, 2), dtype), u, atol=0.1)  # now advanced
    with pytest.raises(TypeError, match="tf.random.Generator"):
        ctf.uniforms_from_generator((1, 2), (3,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gumbel_and_logistic_noise_both_ways(dtype):
    u = refgrad.random.uniform(1, (300, 3))
    g, lo = ctf.gumbel_from_uniforms(u, dtype), ctf.logistic_from_uniforms(u, dtype)
    assert g.dtype == dtype and lo.dtype == dtype and tuple(g.shape) == (300, 3)
    np.testing.assert_array_equal(g.numpy(), refgrad.random.gumbel(u).astype(dtype.as_numpy_dtype))
    np.testing.assert_array_equal(lo.numpy(), refgrad.random.logistic(u).astype(dtype.as_numpy_dtype))
    # back: refgrad's transform of the recovered uniforms is TF's draw to float64 rounding
    ug, ul = ctf.uniforms_from_gumbel(g), ctf.uniforms_from_logistic(lo)
    np.testing.assert_allclose(refgrad.random.gumbel(ug), g.numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(refgrad.random.logistic(ul), lo.numpy(), rtol=1e-13, atol=1e-13)
    if dtype == tf.float64:
        np.testing.assert_allclose(ug, u, rtol=1e-13)
        np.testing.assert_allclose(ul, u, rtol=1e-13)


@pytest.mark.parametrize("bad,fn,match", [
    ([0.5, 1.0], ctf.gumbel_from_uniforms, "strictly inside"), ([0.0], ctf.logistic_from_uniforms, "strictly inside"),
    ([1.0, 40.0], ctf.uniforms_from_gumbel, r"index \(1,\)"), ([-7.0], ctf.uniforms_from_gumbel, "index"),
    ([0.0, 37.0], ctf.uniforms_from_logistic, r"index \(1,\)"), ([-746.0], ctf.uniforms_from_logistic, "index"),
    ([np.nan], ctf.uniforms_from_logistic, "NaN"), (["a"], ctf.uniforms_from_gumbel, "real numbers")])
def test_noise_converters_reject(bad, fn, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gumbel_max_from_seed_is_refgrads_categorical(dtype):
    logits = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0], [-50.0, 0.0, 50.0, 49.0]])
    seed, n, tiny = (9, 1), 3000, _tiny(dtype)
    u_tf = tf.random.stateless_uniform((n, 3, 4), seed, minval=tiny, maxval=1.0, dtype=dtype)
    b = tf.argmax(tf.constant(logits, dtype) - tf.math.log(-tf.math.log(u_tf)), axis=-1).numpy()
    mine = refgrad.random.categorical_gumbel_max(logits, ctf.uniforms_from_seed(seed, (n, 3, 4), dtype, minval=tiny))
    assert int((mine != b).sum()) <= (0 if dtype == tf.float64 else 2)  # float32 may break a near-tie otherwise


# ----------------------------------------------------------------------------- per-sample gradients


def test_per_sample_gradients_methods_agree_list_and_unused():
    a = tf.constant([1.0, 2.0], tf.float64)  # a tensor (watched) and a variable the loss does not use
    b = tf.Variable([[3.0]], dtype=tf.float64)
    x = np.arange(4.0)
    for method in ("vectorized", "jacobian", "loop"):
        ga, gb = ctf.per_sample_gradients(lambda p, xi: xi * tf.reduce_sum(p[0]) ** 2, [a, b], x, method=method)
        assert ga.shape == (4, 2) and gb.shape == (4, 1, 1) and not gb.any()
        np.testing.assert_allclose(ga, (2 * 3.0 * x)[:, None] * np.ones(2), rtol=1e-15)


def test_per_sample_gradients_nested_noise_keeps_dtype():
    w = tf.Variable([0.5, -1.0], dtype=tf.float32)
    noise = {"x": np.arange(6.0, dtype=np.float32).reshape(3, 2), "s": tf.constant([1.0, 2.0, 3.0])}
    g = ctf.per_sample_gradients(lambda p, r: r["s"] * tf.reduce_sum(p * r["x"]), w, noise)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, noise["x"] * np.array([1.0, 2.0, 3.0], np.float32)[:, None])


def test_per_sample_gradients_rejects():
    w = tf.Variable([1.0])
    with pytest.raises(TypeError, match="callable"):
        ctf.per_sample_gradients(3, w, np.ones((2, 1)))
    with pytest.raises(TypeError, match="params"):
        ctf.per_sample_gradients(lambda p, r: p, np.ones(2), np.ones((2, 1)))
    with pytest.raises(TypeError, match="float tensor"):
        ctf.per_sample_gradients(lambda p, r: p, tf.constant([1, 2]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="method"):
        ctf.per_sample_gradients(lambda p, r: p, w, np.ones((2, 1)), method="pfor")
    with pytest.raises(ValueError, match="leading sample axis"):
        ctf.per_sample_gradients(lambda p, r: p, w, {"a": np.ones((2, 1)), "b": np.ones(3)})
    with pytest.raises(ValueError, match="leading sample axis"):
        ctf.per_sample_gradients(lambda p, r: p, w, np.float64(1.0))
    with pytest.raises(ValueError, match="scalar"):
        ctf.per_sample_gradients(lambda p, r: p * r, tf.Variable([1.0, 2.0]), np.ones((2, 2), np.float32),
                                  method="loop")


# ----------------------------------------------------------------------------- textbook TF estimators
#
# Written as a TF user would, from uniforms u: logistic noise L = log u - log(1 - u) for bits
# (b = 1[l + L > 0], Binary Concrete sigmoid((l + L)/tau)), Gumbel noise G = -log(-log u) for
# categories (b = argmax(l + G), Concrete softmax((l + G)/tau)).  f is SquaredDistance(t).

BITS, T_BITS = np.array([0.3, -1.0]), np.array([0.45, 0.2])
CAT, T_CAT = np.array([[0.3, -1.2, 2.0]]), np.array([[0.1, 0.6, 0.3]])
TAU = 0.5


def _logistic(u):
    return tf.math.log(u) - tf.math.log1p(-u)


def _gumbel(u):
    return -tf.math.log(-tf.math.log(u))


def reinforce_bits(lg, u, full_score=True):
    b = tf.cast(lg + _logistic(u) > 0, lg.dtype)
    log_q = -tf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=lg)
    if not full_score:  # planted bug: the (1 - b) log sigmoid(-l) term of the score is missing
        log_q = b * tf.math.log_sigmoid(lg)
    f = tf.reduce_sum((b - tf.constant(T_BITS, lg.dtype)) ** 2)
    return tf.stop_gradient(f) * tf.reduce_sum(log_q)


def binary_concrete(lg, u, tau=TAU):
    y = tf.sigmoid((lg + _logistic(u)) / tau)
    return tf.reduce_sum((y - tf.constant(T_BITS, lg.dtype)) ** 2)


def straight_through_bits(lg, u, tau=TAU):
    z = lg + _logistic(u)
    y = tf.sigmoid(z / tau)
    st = y + tf.stop_gradient(tf.cast(z > 0, lg.dtype) - y)
    return tf.reduce_sum((st - tf.constant(T_BITS, lg.dtype)) ** 2)


def reinforce_cat(lg, u, full_score=True):
    b = tf.one_hot(tf.argmax(lg + _gumbel(u), axis=-1), lg.shape[-1], dtype=lg.dtype)
    log_q = tf.reduce_sum(b * tf.nn.log_softmax(lg, axis=-1))
    if not full_score:  # planted bug: the log-normaliser's term -softmax(l) of the score is missing
        log_q = tf.reduce_sum(b * lg)
    f = tf.reduce_sum((b - tf.constant(T_CAT, lg.dtype)) ** 2)
    return tf.stop_gradient(f) * log_q


def gumbel_softmax_cat(lg, u, tau=TAU):
    y = tf.nn.softmax((lg + _gumbel(u)) / tau, axis=-1)
    return tf.reduce_sum((y - tf.constant(T_CAT, lg.dtype)) ** 2)


def straight_through_cat(lg, u, tau=TAU):
    z = lg + _gumbel(u)
    y = tf.nn.softmax(z / tau, axis=-1)
    st = y + tf.stop_gradient(tf.one_hot(tf.argmax(z, axis=-1), z.shape[-1], dtype=lg.dtype) - y)
    return tf.reduce_sum((st - tf.constant(T_CAT, lg.dtype)) ** 2)


def _from_seed(estimator, dtype, **kw):
    """The estimator drawing its own uniforms from a per-sample stateless seed."""
    def surrogate(lg, seed):
        u = tf.random.stateless_uniform(tf.shape(lg), seed, minval=_tiny(dtype), maxval=1.0, dtype=dtype)
        return estimator(lg, u, **kw)
    return surrogate


# name, refgrad distribution, objective, TF code, logits, refgrad options, planted bug (TF code, options)
CASES = {
    "reinforce": (Bernoulli(BITS), SquaredDistance(T_BITS), reinforce_bits, BITS, {}, {"full_score": False}),
    "gumbel_softmax": (Bernoulli(BITS), SquaredDistance(T_BITS), binary_concrete, BITS, {"tau": TAU}, {"tau": 1.0}),
    "straight_through": (Bernoulli(BITS), SquaredDistance(T_BITS), straight_through_bits, BITS, {"tau": TAU},
                         {"tau": 1.0}),
    "reinforce_cat": (Categorical(CAT), SquaredDistance(T_CAT), reinforce_cat, CAT, {}, {"full_score": False}),
    "gumbel_softmax_cat": (Categorical(CAT), SquaredDistance(T_CAT), gumbel_softmax_cat, CAT, {"tau": TAU},
                           {"tau": 1.0}),
    "straight_through_cat": (Categorical(CAT), SquaredDistance(T_CAT), straight_through_cat, CAT, {"tau": TAU},
                             {"tau": 1.0}),
}


def _name(case):
    return case.split("_cat")[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_same_estimates_on_the_seeds_uniforms(case, dtype):
    """TF draws its own noise from per-sample seeds; refgrad gets the same uniforms back from the adapter."""
    dist, f, code, logits, opts, bug = CASES[case]
    n = 200
    seeds = _seeds(1, n)
    lg = tf.Variable(logits, dtype=dtype)
    grads = ctf.per_sample_gradients(_from_seed(code, dtype), lg, seeds)
    assert grads.dtype == dtype.as_numpy_dtype and grads.shape == (n, *logits.shape)
    noise = {"u": _seed_uniforms(seeds, logits.shape, dtype)}
    verdict = check_same_estimates(grads, _name(case), dist, f, noise, **opts)
    assert verdict.passed, verdict
    wrong = ctf.per_sample_gradients(_from_seed(code, dtype, **bug), lg, seeds)
    assert not check_same_estimates(wrong, _name(case), dist, f, noise, **opts).passed


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_estimates_fed_refgrads_uniforms(dtype):
    """The other direction: refgrad's uniforms fed into TF code (as a float32 or float64 tensor)."""
    dist, f, code, logits, opts, bug = CASES["straight_through_cat"]
    u = refgrad.random.uniform(4, (100, *logits.shape))
    lg = tf.Variable(logits, dtype=dtype)
    grads = ctf.per_sample_gradients(code, lg, ctf.from_numpy(u, dtype=dtype))
    assert check_same_estimates(grads, "straight_through", dist, f, {"u": u}, **opts).passed
    assert not check_same_estimates(ctf.per_sample_gradients(lambda p, r: code(p, r, **bug), lg,
                                                             ctf.from_numpy(u, dtype=dtype)),
                                    "straight_through", dist, f, {"u": u}, **opts).passed
    if dtype == tf.float64:  # and through the noise the TF code would take: Gumbel draws from refgrad's u
        g = ctf.gumbel_from_uniforms(u, tf.float64)
        soft = ctf.per_sample_gradients(lambda p, gi: tf.reduce_sum((tf.nn.softmax((p + gi) / TAU) - T_CAT) ** 2),
                                        lg, g)
        expected = refgrad.estimate("gumbel_softmax", dist, f, noise={"u": u}, tau=TAU)
        np.testing.assert_allclose(soft, expected, rtol=1e-10, atol=1e-13)


# check_estimator on TF's own noise (per-sample stateless seeds): α = 1e-3 (the default), n = 4000,
# seeds 2 (correct) and 3 (planted bug).  Unbiased estimators are tested against the exact gradient,
# biased ones against refgrad's exact mean of the estimator they implement; both with the exact variance.
@pytest.mark.parametrize("dtype,case", [(tf.float32, "reinforce"), (tf.float64, "reinforce"),
                                        (tf.float32, "gumbel_softmax"), (tf.float64, "gumbel_softmax"),
                                        (tf.float64, "straight_through"), (tf.float32, "reinforce_cat"),
                                        (tf.float32, "straight_through_cat")])
def test_check_estimator_verdicts(case, dtype):
    dist, f, code, logits, opts, bug = CASES[case]
    name, n = _name(case), 4000
    unbiased = refgrad.ESTIMATORS[name].unbiased
    lg = tf.Variable(logits, dtype=dtype)
    grads = ctf.per_sample_gradients(_from_seed(code, dtype), lg, _seeds(2, n))
    verdict = check_estimator(grads, dist, f, unbiased=unbiased, name=name, **opts)
    assert verdict.passed, verdict
    wrong = ctf.per_sample_gradients(_from_seed(code, dtype, **bug), lg, _seeds(3, n))
    bad = check_estimator(wrong, dist, f, unbiased=unbiased, name=name, **opts)
    assert not bad.passed and not bad.parts[0].passed, bad  # the mean part sees the bug


# ----------------------------------------------------------------------------- README


def test_readme_tensorflow_example_runs_and_prints_what_the_readme_says():
    """The ```py block of README's "### TensorFlow" subsection, run as written; its ```text block is the output.

    Each printed line is compared up to its first colon (verdict and check); the numbers after it
    follow the checks' statistics, which the README shows from a run of this example.
    """
    import contextlib
    import io
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index("### TensorFlow")
    section = text[start:text.index("\n## ", start)]
    code = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    printed = re.findall(r"```text\n(.*?)```", section, flags=re.S)
    assert len(code) == 1 and len(printed) == 1 and len(code[0].strip().splitlines()) <= 20
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # in this process: TF is imported already
        exec(compile(code[0], "README.md (### TensorFlow)", "exec"), {"__name__": "__readme__"})
    got, want = buffer.getvalue().splitlines(), printed[0].splitlines()
    assert [line.split(":")[0] for line in got] == [line.split(":")[0] for line in want], buffer.getvalue()
