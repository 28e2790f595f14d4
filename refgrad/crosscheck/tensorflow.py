r"""TensorFlow adapter: tensors to arrays, TF's stateless draws to and from refgrad's uniforms, per-sample gradients.

Importing this module imports :mod:`tensorflow`; nothing else in refgrad does (install it with the
``crosscheck`` extra, which names ``tensorflow-cpu``).  The noise converters match **tensorflow 2.21**
(``tensorflow/python/ops/stateless_random_ops.py``, read from the installed sources):

* ``tf.random.stateless_uniform(shape, seed, minval, maxval, dtype, alg)`` draws ``rnd`` on the
  mantissa grid :math:`k\,2^{-p}` (:math:`p` = 23 in float32, 52 in float64, :math:`k = 0` included)
  from a counter-based generator keyed by ``seed`` (Philox on CPU for ``alg="auto_select"``) and
  returns ``rnd * (maxval - minval) + minval`` computed in ``dtype``.  The same ``seed``, shape,
  dtype, bounds and algorithm give the same bits in every call, so :func:`uniforms_from_seed` can
  return the exact uniforms a user's code drew.  With the default ``minval=0`` the value 0 occurs
  (probability :math:`2^{-p}` per draw) and has no counterpart among refgrad's uniforms strictly
  inside (0, 1); ``minval=tiny`` (``np.finfo(dtype).tiny``, as ``jax.random.gumbel`` draws) maps
  :math:`k = 0` to ``tiny`` and, in float32 and float64, leaves every other value unchanged
  (``maxval - minval`` rounds to 1 and ``tiny`` is below half an ulp of :math:`2^{-p}`; in float16,
  ``tiny`` = 6.1e-5 also moves the small values).
* TensorFlow has no Gumbel or logistic sampler of its own; the textbook TF code computes
  :math:`G = -\log(-\log u)` (Gumbel-softmax, Gumbel-max) and :math:`L = \log u - \log(1 - u)`
  (Binary Concrete) from such uniforms, which are refgrad's transforms (:func:`refgrad.random.gumbel`,
  :func:`refgrad.random.logistic`) of the same ``u``.  :func:`gumbel_from_uniforms` and
  :func:`logistic_from_uniforms` hand refgrad's noise to TF code that takes noise as an input;
  :func:`uniforms_from_gumbel` and :func:`uniforms_from_logistic` go back from draws TF returned.
* ``tf.random.Generator`` keeps its state in a variable: :func:`uniforms_from_generator` reads it
  and returns what the generator's next ``uniform`` call will draw, without advancing it.

What TF does not allow:

* the **stateful** ops ``tf.random.uniform`` / ``tf.random.normal`` / ``tf.random.categorical`` (global
  and op seeds) draw from a hidden per-op counter: their uniforms cannot be recovered after the draw,
  and a second call with the same seeds gives other values.  Draw with the stateless ops from an
  explicit seed (``tf.random.experimental.stateless_split`` gives one per sample) or from a
  ``tf.random.Generator`` read beforehand, or write the estimator as a function of its noise and feed
  refgrad's uniforms in;
* ``tf.random.stateless_categorical`` samples inside its kernel from uniforms it does not return, so
  refgrad does not match its draws sample by sample; their law can still be tested
  (:func:`refgrad.crosscheck.check_categorical_sampler`).  Code meant for
  :func:`refgrad.crosscheck.check_same_estimates` draws ``tf.argmax(logits + G, -1)`` with ``G`` from
  a stateless uniform, which is :func:`refgrad.random.categorical_gumbel_max` of the same ``u``.

Measured (``tests/crosscheck/test_crosscheck_tensorflow.py``): TF's own transform of :func:`uniforms_from_seed`'s
values equals its draw bitwise (float32 and float64); the per-sample gradients of textbook TF
REINFORCE, Gumbel-softmax, Binary Concrete and straight-through estimators fed the seed's uniforms pass
:func:`refgrad.crosscheck.check_same_estimates` against ``refgrad.estimate`` in float32 and float64.
"""
import numbers
import time

import numpy as np
import tensorflow as tf

from .._core.checks import MAX_ARRAY_BYTES, InputTypeError, _format_bytes, describe, first_index
from ..random import gumbel, logistic
from ..random.rng import _check_uniform
from ._convert import convert_nested

__all__ = [
    "to_numpy",
    "from_numpy",
    "uniforms_from_seed",
    "uniforms_from_generator",
    "gumbel_from_uniforms",
    "logistic_from_uniforms",
    "uniforms_from_gumbel",
    "uniforms_from_logistic",
    "per_sample_gradients",
    "TF_VERSION_MATCHED",
]

#: The tensorflow version whose internals (stateless_uniform, Generator) this module matches.
TF_VERSION_MATCHED = "2.21.0"

_LOW_PRECISION = (tf.float16, tf.bfloat16)
_METHODS = ("vectorized", "jacobian", "loop")


# ----------------------------------------------------------------------------- conversion


def to_numpy(x):
    """NumPy array from a ``tf.Tensor`` (eager), ``tf.Variable`` or ``EagerTensor``, recursively.

    float32 and float64 keep their dtype; float16 and bfloat16 are promoted to float32 (NumPy has no
    bfloat16); integer and bool tensors keep theirs.  Lists and tuples become lists and tuples, dicts
    dicts, of converted entries; Python and NumPy numbers and arrays pass through :func:`numpy.asarray`.
    The result is a copy: writing to it leaves the tensor unchanged.

    Raises
    ------
    TypeError
        For symbolic tensors (inside ``tf.function`` or ``tf.vectorized_map``, where no value exists),
        sparse and ragged tensors, strings, ``None`` and other objects.
    """
    return convert_nested(x, _tf_to_numpy, "a TensorFlow tensor")


def _tf_to_numpy(x):
    if isinstance(x, (tf.SparseTensor, tf.RaggedTensor)):
        raise InputTypeError(f"x is a {type(x).__name__}; convert it to a dense tensor first (tf.sparse.to_dense, "
                             ".to_tensor())")
    if not isinstance(x, (tf.Tensor, tf.Variable)):
        return None
    if not hasattr(x, "numpy") or not tf.executing_eagerly():
        raise InputTypeError("x is a symbolic TensorFlow tensor (inside tf.function or vectorized_map); convert "
                             "eager tensors only, outside the function")
    if isinstance(x, tf.Variable):
        x = x.read_value()
    if x.dtype in _LOW_PRECISION:
        x = tf.cast(x, tf.float32)
    if x.dtype == tf.string or x.dtype.is_complex:
        raise InputTypeError(f"x must hold real numbers; got a tensor of dtype {x.dtype.name}")
    return np.array(x.numpy(), copy=True)


def _tf_float_dtype(dtype, name="dtype"):
    try:
        dt = tf.as_dtype(np.float32 if dtype is None else dtype)
    except TypeError:
        raise InputTypeError(f"{name} must be a float dtype (tf.float16, tf.bfloat16, tf.float32, tf.float64); "
                             f"got {dtype!r}") from None
    if not dt.is_floating:
        raise InputTypeError(f"{name} must be a float dtype (tf.float16, tf.bfloat16, tf.float32, tf.float64); "
                             f"got {dt.name}")
    return dt


def from_numpy(a, like=None, dtype=None):
    """``tf.Tensor`` from an array: dtype ``dtype`` if given, else ``like``'s, else the array's own.

    Parameters
    ----------
    a : array_like
        Real numbers (float64 stays float64 unless a dtype is asked for).
    like : tf.Tensor or tf.Variable, optional
        Template giving the dtype.
    dtype : tf.DType or NumPy dtype, optional

    The result never shares memory with ``a``: it is made from a private copy, so writing to the
    array afterwards leaves the tensor unchanged (tested).

    Examples
    --------
    >>> import numpy as np
    >>> from refgrad.crosscheck.tensorflow import from_numpy
    >>> a = np.array([0.25, 0.5])
    >>> t = from_numpy(a)
    >>> a[0] = 7.0                  # the tensor is a copy
    >>> t.numpy().tolist(), t.dtype.name
    ([0.25, 0.5], 'float64')
    """
    if like is not None and not isinstance(like, (tf.Tensor, tf.Variable)):
        raise InputTypeError(f"like must be a tf.Tensor, a tf.Variable or None; got {describe(like)} of type "
                             f"{type(like).__name__}")
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"a must hold real numbers; got {describe(a)} (dtype {arr.dtype})")
    if dtype is not None:
        try:
            dtype = tf.as_dtype(dtype)
        except TypeError:
            raise InputTypeError(f"dtype must be a TensorFlow or NumPy dtype (e.g. tf.float32) or None; "
                                 f"got {dtype!r}") from None
    elif like is not None:
        dtype = like.dtype
    # a private copy: TF may share memory with the array it is given, but with nothing the caller holds
    return tf.constant(np.array(arr, order="C", copy=True), dtype=dtype)


# ----------------------------------------------------------------------------- noise


def _check_shape(shape):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, tf.TensorShape)) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"shape must be a tuple of non-negative ints; got {shape!r}")
    return tuple(int(s) for s in shape)


def _check_draw_size(shape, dt):
    """Refuse a draw whose values (in ``dt``) and float64 result exceed the 4 GiB budget of one call."""
    size = 1
    for s in shape:
        size *= s
    need = size * (8 + dt.size)
    if need > MAX_ARRAY_BYTES:
        raise ValueError(
            f"shape={shape} asks for {size:.3g} uniforms ({_format_bytes(need)} for TF's {dt.name} draw and the "
            f"float64 result), more than the {_format_bytes(MAX_ARRAY_BYTES)} budget of one call "
            "(refgrad.limits.MAX_ARRAY_BYTES); draw in several calls (seeds from "
            "tf.random.experimental.stateless_split)"
        )


def _check_seed(seed):
    arr = np.asarray(to_numpy(seed) if isinstance(seed, (tf.Tensor, tf.Variable)) else seed)
    if arr.shape != (2,) or arr.dtype.kind not in "iu":
        raise ValueError(f"seed must be a stateless seed: 2 integers, shape (2,) (e.g. (1, 2) or a row of "
                         f"tf.random.experimental.stateless_split); got {describe(seed)}")
    return tf.constant(arr.astype(np.int64))  # int32 and int64 seeds of equal value draw the same (checked)


def _refuse_edges(u, why):
    bad = ~((u > 0.0) & (u < 1.0))
    if bad.any():
        where = first_index(bad)
        value = float(u[where]) if u.ndim else float(u)
        raise ValueError(f"{why}: got {value!r} at index {where}, which has no counterpart among refgrad's "
                         "uniforms strictly inside (0, 1)")
    return u


def uniforms_from_seed(seed, shape, dtype=None, minval=0.0, maxval=1.0, alg="auto_select"):
    r"""The exact uniforms (float64) of ``tf.random.stateless_uniform(shape, seed, minval, maxval, dtype, alg)``.

    Parameters
    ----------
    seed : shape (2,) ints
        The stateless seed (tuple, array or tensor).
    shape : tuple of int
    dtype : float dtype
        The draw's dtype (default ``tf.float32``).
    minval, maxval : float
        The draw's bounds; the result must lie strictly inside (0, 1), so ``maxval`` is at most 1 and
        ``minval`` at least 0.  ``minval=np.finfo(dtype).tiny`` makes every draw usable; with the
        default 0 a draw of exactly 0 (probability :math:`2^{-23}` in float32, :math:`2^{-52}` in
        float64, each value) is refused with its index.
    alg : str or tf.random.Algorithm
        As in TF (``"auto_select"``: Philox on CPU).

    Returns
    -------
    ndarray of float64, shape ``shape``
        At most :data:`refgrad.limits.MAX_ARRAY_BYTES` (4 GiB) for TF's draw and the result together:
        a larger ``shape`` is refused before anything is drawn.  The values TF computed, widened exactly
        to float64: ``-tf.math.log(-tf.math.log(u))`` of them in ``dtype`` equals the same expression on
        TF's draw bitwise, and refgrad fed them computes the noise TF used up to TF's rounding of its
        transform.
    """
    shape = _check_shape(shape)
    dt = _tf_float_dtype(dtype)
    _check_draw_size(shape, dt)
    lo, hi = _check_bounds(minval, maxval)
    u = tf.random.stateless_uniform(shape, _check_seed(seed), minval=lo, maxval=hi, dtype=dt, alg=alg)
    return _refuse_edges(np.asarray(to_numpy(u), dtype=np.float64),
                         "tf.random.stateless_uniform drew a value outside (0, 1) (pass minval=np.finfo(dtype).tiny "
                         "to replace 0, or use another seed)")


def _check_bounds(minval, maxval):
    for name, v in (("minval", minval), ("maxval", maxval)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite real number; got {describe(v)}")
    if not 0.0 <= minval < maxval <= 1.0:
        raise ValueError(f"minval and maxval must satisfy 0 <= minval < maxval <= 1 (refgrad's uniforms lie in "
                         f"(0, 1)); got minval={minval!r}, maxval={maxval!r}")
    return float(minval), float(maxval)


def uniforms_from_generator(generator, shape, dtype=None, minval=0.0, maxval=1.0):
    """The uniforms (float64) that ``generator.uniform(shape, minval, maxval, dtype)`` will draw next.

    Reads the state of the ``tf.random.Generator`` and draws from a copy of it, so ``generator`` is not
    advanced: its next ``uniform`` call with the same arguments returns these values.  Call it *before*
    the draw; the state after a draw no longer tells what was drawn.  ``minval``, ``maxval`` and the
    refusal of a drawn 0 are as in :func:`uniforms_from_seed`.
    """
    if not isinstance(generator, tf.random.Generator):
        raise InputTypeError(f"generator must be a tf.random.Generator; got {describe(generator)} of type "
                             f"{type(generator).__name__}")
    shape = _check_shape(shape)
    dt = _tf_float_dtype(dtype)
    _check_draw_size(shape, dt)
    lo, hi = _check_bounds(minval, maxval)
    copy = tf.random.Generator.from_state(generator.state.numpy(), generator.algorithm)
    u = copy.uniform(shape, minval=lo, maxval=hi, dtype=dt)
    return _refuse_edges(np.asarray(to_numpy(u), dtype=np.float64),
                         "the generator's next uniform draw holds a value outside (0, 1) (pass "
                         "minval=np.finfo(dtype).tiny to replace 0)")


def _as_tf_noise(values, dtype):
    dt = _tf_float_dtype(dtype, "dtype")
    return tf.constant(np.asarray(values, dtype=np.float64), dtype=dt)


def gumbel_from_uniforms(u, dtype=None):
    r"""Standard Gumbel noise :math:`G = -\log(-\log u)` from refgrad's uniforms, as a ``tf.Tensor``.

    Computed in float64 by :func:`refgrad.random.gumbel`, then stored in ``dtype`` (default
    ``tf.float32``), so TF code that takes Gumbel noise (``logits + G``) runs on the noise refgrad's
    Gumbel-softmax, straight-through and categorical estimators use for the same ``u``.
    """
    g = gumbel(_check_uniform(u, "u").reshape(np.shape(u)))
    return _as_tf_noise(g, dtype)


def logistic_from_uniforms(u, dtype=None):
    r"""Standard logistic noise :math:`L = \log u - \log(1 - u)` from refgrad's uniforms, as a ``tf.Tensor``.

    Computed in float64 by :func:`refgrad.random.logistic`, then stored in ``dtype`` (default
    ``tf.float32``): the noise of refgrad's Bernoulli estimators (``b = 1[ℓ + L > 0]``, Binary Concrete
    ``σ((ℓ + L)/τ)``) for the same ``u``.
    """
    return _as_tf_noise(logistic(_check_uniform(u, "u").reshape(np.shape(u))), dtype)


def _draws(x, name):
    shape = tuple(x.shape) if isinstance(x, (tf.Tensor, tf.Variable)) else np.shape(x)
    arr = np.asarray(to_numpy(x) if isinstance(x, (tf.Tensor, tf.Variable)) else x)
    if arr.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} must hold real numbers; got {describe(x)}")
    arr = arr.astype(np.float64).reshape(shape)
    if np.isnan(arr).any():
        where = first_index(np.isnan(arr))
        raise ValueError(f"{name} must not contain NaN; got NaN at index {where}")
    return arr


def uniforms_from_gumbel(g):
    r"""refgrad's uniforms :math:`u = \exp(-e^{-G})` (float64) from Gumbel draws ``G`` (tensor or array).

    float32 draws are widened exactly first, so refgrad fed ``u`` computes :math:`-\log(-\log u) = G`
    up to float64 rounding: the noise TF's code actually used, not the uniform before TF's own
    rounding.  ``G`` above 37.64 (where :math:`u` rounds to 1) or below -6.61 (where it underflows to 0)
    has no float64 uniform strictly inside (0, 1) and is refused with its index; a float32 Gumbel
    computed from a stateless draw with ``minval=tiny`` (``[tiny, 1 - 2^{-23}]``) lies in
    [-4.47, 15.94].
    """
    arr = _draws(g, "g")
    with np.errstate(over="ignore", under="ignore"):
        u = np.exp(-np.exp(-arr))
    return _refuse_edges(u, "exp(-exp(-g)) is not a uniform strictly inside (0, 1) for this Gumbel draw")


def uniforms_from_logistic(x):
    r"""refgrad's uniforms :math:`u = σ(L)` (float64) from logistic draws ``L`` (tensor or array).

    As :func:`uniforms_from_gumbel`: refgrad fed ``u`` computes :math:`\log u - \log(1 - u) = L` up to
    float64 rounding.  ``L`` above 36.74 (:math:`σ(L)` rounds to 1) or below -745.13 (it underflows to
    0) is refused with its index (thresholds found by scanning; the range of float32 logistic draws from
    ``[tiny, 1 - 2^{-23}]`` is [-87.3, 15.9]).
    """
    arr = _draws(x, "x")
    with np.errstate(over="ignore", under="ignore"):
        u = np.where(arr >= 0, 1.0 / (1.0 + np.exp(-arr)), np.exp(arr) / (1.0 + np.exp(arr)))
    return _refuse_edges(u, "sigmoid(x) is not a uniform strictly inside (0, 1) for this logistic draw")


# ----------------------------------------------------------------------------- per-sample gradients


def _as_params(params):
    single = isinstance(params, (tf.Tensor, tf.Variable))
    plist = [params] if single else list(params) if isinstance(params, (list, tuple)) else None
    if plist is None or not plist or not all(isinstance(p, (tf.Tensor, tf.Variable)) for p in plist):
        raise InputTypeError(f"params must be a tf.Variable or tf.Tensor or a non-empty list/tuple of them; got "
                             f"{describe(params)} of type {type(params).__name__}")
    for i, p in enumerate(plist):
        if not p.dtype.is_floating:
            raise InputTypeError(f"params[{i}] must be a float tensor or variable; got dtype {p.dtype.name}")
    return single, plist


def _as_noise(noise):
    leaves = tf.nest.flatten(noise)
    if not leaves:
        raise ValueError(f"noise must be an array, a tensor or a non-empty nest of them; got {describe(noise)}")
    converted = [x if isinstance(x, tf.Tensor) else tf.convert_to_tensor(np.asarray(x) if not isinstance(
        x, tf.Variable) else x.read_value()) for x in leaves]
    sizes = {int(x.shape[0]) if x.shape.rank else None for x in converted}
    if None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError("noise must have a leading sample axis n >= 1, the same in every leaf; got leading sizes "
                         f"{sorted(s for s in sizes if s is not None)} (0-d leaves: {None in sizes})")
    return tf.nest.pack_sequence_as(noise, converted), sizes.pop()


def _scalar(loss):
    if not isinstance(loss, tf.Tensor) or loss.shape.num_elements() != 1 or not loss.dtype.is_floating:
        got = (f"a tensor of shape {loss.shape}, dtype {loss.dtype.name}" if isinstance(loss, tf.Tensor)
               else describe(loss))
        raise ValueError(f"surrogate must return a real float scalar tensor (the surrogate loss of one estimate); "
                         f"got {got}")
    return tf.reshape(loss, ())


def _check_output_size(n, plist):
    row = sum(int(p.shape.num_elements()) * p.dtype.size for p in plist)
    if n * row > MAX_ARRAY_BYTES:
        raise ValueError(f"noise holds n = {n} samples: {n} rows of {row} bytes of gradients need "
                         f"{_format_bytes(n * row)}, more than the {_format_bytes(MAX_ARRAY_BYTES)} budget of one call "
                         "(refgrad.limits.MAX_ARRAY_BYTES); pass at most "
                         f"{max(1, MAX_ARRAY_BYTES // row)} samples per call")


def per_sample_gradients(surrogate, params, noise, method="vectorized"):
    r"""Per-sample gradients of a TF surrogate, one row per sample of noise, without tiling the parameters.

    Row ``i`` is :math:`∂\,\mathrm{surrogate}(\mathrm{params}, \mathrm{noise}_i) / ∂\,\mathrm{params}`:
    the gradient estimate of sample ``i``.

    Parameters
    ----------
    surrogate : callable
        ``surrogate(params, noise_i)`` returns the scalar surrogate loss of one estimate, written in TF
        ops (``tf.stop_gradient`` where the estimator detaches); ``noise_i`` is row ``i`` of ``noise``
        (a nest of rows for a nest).  Randomness must come from ``noise_i``: uniforms, Gumbel or logistic
        noise, or a stateless seed passed to ``tf.random.stateless_*`` (stateful ops would give every
        row its own hidden draw, which no check can reproduce).
    params : tf.Variable, tf.Tensor or a list/tuple of them
        Differentiated (float dtypes; tensors are watched); parameters the loss does not use get zero
        gradients.
    noise : array, tensor or a nest (dict, tuple, list) of them
        Leading axis ``n`` in every leaf: e.g. refgrad's uniforms ``(n, d)``, or seeds ``(n, 2)`` from
        ``tf.random.experimental.stateless_split(seed, n)``.
    method : {"vectorized", "jacobian", "loop"}
        ``"vectorized"``: ``tf.vectorized_map`` (inside ``tf.function``) of the ``GradientTape`` gradient of
        one row, which TF turns into batched ops (and a while-loop for ops it cannot batch, with its own
        warning); ``"jacobian"``: the ``n`` surrogates from ``tf.vectorized_map`` and their Jacobian by
        ``GradientTape.jacobian``; ``"loop"``: one eager ``GradientTape`` per row, for code neither
        transformation accepts.  All three give the same rows up to rounding (see Notes).  Each row
        depends on its own sample only: a NaN or inf in one sample leaves the other rows untouched
        (``"jacobian"``, whose one-hot output gradients would spread it through the shared graph,
        recomputes its rows as ``"vectorized"`` does when any entry is not finite; tested).

    Returns
    -------
    ndarray, shape ``(n, *param.shape)`` (a list of them for a list/tuple of ``params``)
        In the parameter's dtype (float32 stays float32, so :mod:`refgrad.crosscheck` derives its
        tolerances from it; float16/bfloat16 become float32).

    Notes
    -----
    Cost on the shared 2-core development machine (CPU, tensorflow-cpu 2.21), a Gumbel-softmax
    surrogate on one 3-way categorical drawing its own noise from a stateless seed, float64,
    n = 2000, tracing included, two runs at load averages 4 and 7: ``"vectorized"`` 0.4 to 1.1 s,
    ``"jacobian"`` 1.5 to 2.8 s, ``"loop"`` 5.3 to 12.6 s (about 2.5 to 6 ms per row, the cost of an
    eager tape per row); measured with ``python -m refgrad.crosscheck.tensorflow``, which prints the
    three times and the largest difference between the methods' rows (0 and 1.1e-15).
    """
    if not callable(surrogate):
        raise InputTypeError(f"surrogate must be callable; got {describe(surrogate)}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}; got {method!r}")
    single, plist = _as_params(params)
    noise, n = _as_noise(noise)
    _check_output_size(n, plist)
    arg = plist[0] if single else type(params)(plist)

    def one(row):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(plist)
            loss = _scalar(surrogate(arg, row))
        return tape.gradient(loss, plist, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    if method == "vectorized":
        grads = tf.function(lambda: tf.vectorized_map(one, noise), autograph=False)()
    elif method == "jacobian":
        with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
            tape.watch(plist)
            losses = tf.vectorized_map(lambda row: _scalar(surrogate(arg, row)), noise)
        grads = [tape.jacobian(losses, p, unconnected_gradients=tf.UnconnectedGradients.ZERO) for p in plist]
        del tape
        if not all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads):
            # the Jacobian's rows come from one-hot output gradients through the shared graph, where 0 times a
            # NaN or inf of one sample reaches every row: recompute row by row
            try:
                grads = tf.function(lambda: tf.vectorized_map(one, noise), autograph=False)()
            except Exception:  # noqa: BLE001 - code vectorized_map does not accept: one tape per row
                rows = [one(tf.nest.map_structure(lambda x, i=i: x[i], noise)) for i in range(n)]
                grads = [tf.stack([r[j] for r in rows]) for j in range(len(plist))]
    else:
        rows = [one(tf.nest.map_structure(lambda x, i=i: x[i], noise)) for i in range(n)]
        grads = [tf.stack([r[j] for r in rows]) for j in range(len(plist))]
    out = [to_numpy(g) for g in grads]
    return out[0] if single else out


def _measure_cost(n=2000, repeats=1):  # pragma: no cover - the command behind the numbers in the docstring
    logits = tf.Variable([[0.3, -1.2, 2.0]], dtype=tf.float64)
    tiny = float(np.finfo(np.float64).tiny)

    def surrogate(lg, seed):
        u = tf.random.stateless_uniform(tf.shape(lg), seed, minval=tiny, maxval=1.0, dtype=lg.dtype)
        y = tf.nn.softmax((lg - tf.math.log(-tf.math.log(u))) / 0.5, axis=-1)
        return tf.reduce_sum((y - 0.2) ** 2)

    seeds = tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int64), n)
    rows = {}
    for method in _METHODS:
        t0 = time.perf_counter()
        for _ in range(repeats):
            rows[method] = per_sample_gradients(surrogate, logits, seeds, method=method)
        print(f"{method:10s} n = {n}: {(time.perf_counter() - t0) / repeats:.2f} s per call (trace included)")
    for method in _METHODS[1:]:
        print(f"max |{method} - vectorized| = {np.abs(rows[method] - rows['vectorized']).max():.2g}")


if __name__ == "__main__":  # pragma: no cover
    _measure_cost()
