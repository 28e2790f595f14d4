r"""JAX adapter: arrays to NumPy, JAX's key-drawn noise to and from refgrad's uniforms, per-sample gradients.

Importing this module imports :mod:`jax`; nothing else in refgrad does (install it with the
``crosscheck`` extra).  The noise converters match the internals of **jax 0.10.2**
(``jax/_src/random/core.py``, read from the installed sources):

* ``jax.random.gumbel(key, shape, dtype)`` in its default mode ``"low"`` (the config flag
  ``jax_high_dynamic_range_gumbel`` off) computes :math:`G = -\log(-\log u)` in ``dtype`` with
  ``u = jax.random.uniform(key, shape, dtype, minval=finfo(dtype).tiny, maxval=1.)``: the mantissa
  grid :math:`k\,2^{-p}` (:math:`p` = 23 in float32, 52 in float64) with :math:`k = 0` replaced by
  ``tiny`` -- strictly inside (0, 1), so refgrad's functions accept it.  Mode ``"high"`` draws two
  uniform blocks ``high, low`` and uses :math:`G = -\log(-\log1p(-x))` with
  ``x = high if high >= 0.5 else high + 2**-p * low + tiny``: the uniform is then :math:`1 - x`.
* ``jax.random.categorical(key, logits, axis=-1)`` (with replacement) is
  ``argmax(gumbel(key, (*prefix, *logits.shape), logits.dtype) + logits, axis)``; ties go to the
  first index, so several ``+inf`` logits always give the first of them (refgrad's convention is the
  uniform law over them), and ``-inf`` logits are never chosen.

:func:`uniforms_from_key` returns, as float64, the exact uniforms the framework used (it calls
``jax.random.uniform`` with the arguments ``gumbel`` uses internally, so the bits are the same), and
:func:`gumbel_from_uniforms` turns refgrad's uniforms into Gumbel noise for JAX code that takes it.

Measured (``tests/crosscheck/test_crosscheck_jax.py``): JAX's own transform of the returned uniforms equals
``jax.random.gumbel`` bitwise (float32 and float64, typed and raw keys); refgrad's float64
:math:`-\log(-\log u)` agrees to 1e-5 (float32) / 1e-13 (float64); ``categorical_gumbel_max`` fed
them reproduces ``jax.random.categorical`` on 6000 draws with finite logits up to ±50 (at most 2
float32 near-ties allowed, none seen in float64); ``vmap(grad)`` of a Gumbel-softmax written with
``jax.nn.softmax`` equals ``refgrad.estimate("gumbel_softmax", ...)`` fed the key's uniforms to 1e-9.
"""
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .._core.checks import MAX_ARRAY_BYTES, InputTypeError, _format_bytes, describe, first_index
from ..random import gumbel
from ..random.rng import _check_uniform
from ._convert import convert_nested

__all__ = ["to_numpy", "from_numpy", "uniforms_from_key", "gumbel_from_uniforms", "per_sample_gradients",
           "JAX_VERSION_MATCHED"]

#: The jax version whose internals (random.gumbel, random.categorical, random.uniform) this module matches.
JAX_VERSION_MATCHED = "0.10.2"

_LOW_PRECISION = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))
_Tracer = getattr(jax.core, "Tracer", None)
if _Tracer is None:  # pragma: no cover - moved in some versions
    from jax._src.core import Tracer as _Tracer


def _is_key(x):
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_numpy(x):
    """NumPy array from a JAX array (any device, 0-d included), recursively through lists, tuples and dicts.

    float32 and float64 keep their dtype; float16 and bfloat16 are promoted to float32; typed PRNG
    keys become their ``key_data`` (uint32).  Python and NumPy numbers and arrays pass through
    :func:`numpy.asarray`.

    Raises
    ------
    TypeError
        For traced values (inside ``jit`` / ``grad`` / ``vmap``, where no concrete value exists), and
        for strings, ``None`` and other objects.
    """
    return convert_nested(x, _jax_to_numpy, "a JAX array")


def _jax_to_numpy(x):
    if _Tracer is not None and isinstance(x, _Tracer):
        raise InputTypeError("x is a traced JAX value (inside jit, grad or vmap); convert concrete arrays only, "
                             "outside the transformation")
    if not isinstance(x, jax.Array):
        return None
    if _is_key(x):
        x = jax.random.key_data(x)
    arr = np.array(jax.device_get(x))
    return arr.astype(np.float32) if arr.dtype in _LOW_PRECISION else arr


def _dtype_arg(dtype, name="dtype"):
    """A real NumPy/JAX dtype (bool, integer or float) from ``dtype``; a ValueError naming ``name`` otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputTypeError(f"{name} must be a real dtype (bool, integer or float, e.g. jnp.float32) or None; got "
                             f"{dtype!r}") from None
    if dt.kind not in "biuf" and dt != np.dtype(jnp.bfloat16):
        raise InputTypeError(f"{name} must be a real dtype (bool, integer or float, e.g. jnp.float32) or None; got "
                             f"{dt}")
    return dt


def from_numpy(a, like=None, dtype=None):
    """JAX array from an array: dtype ``dtype`` if given, else ``like``'s, else the array's own.

    With ``jax_enable_x64`` off, JAX stores 64-bit dtypes in 32 bits (float64 as float32, int64 as
    int32, uint64 as uint32); a ``UserWarning`` naming ``a`` and the two dtypes says so whenever the
    result's dtype is narrower than the one asked for (``dtype``, ``like``'s, or the array's own).
    The result never shares memory with ``a``: it is made from a private copy, so writing to the array
    afterwards leaves it unchanged (JAX arrays are immutable the other way).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from refgrad.crosscheck.jax import from_numpy
    >>> a = np.array([0.25, 0.5])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     x = from_numpy(a)          # jax_enable_x64 off (JAX's default)
    >>> str(x.dtype), [str(w.message)[:44] for w in caught]
    ('float32', ['a of dtype float64 is stored as float32: jax'])
    >>> a[0] = 7.0                     # x is a copy
    >>> x.tolist()
    [0.25, 0.5]
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"a must hold real numbers; got {describe(a)} (dtype {arr.dtype})")
    if dtype is not None:
        dtype = _dtype_arg(dtype)
    if like is not None:
        if not isinstance(like, jax.Array) or _is_key(like):
            raise InputTypeError(f"like must be a JAX array of numbers or None; got {describe(like)} of type "
                                 f"{type(like).__name__}")
        dtype = like.dtype if dtype is None else dtype
    wanted = arr.dtype if dtype is None else np.dtype(dtype)
    stored = np.dtype(jax.dtypes.canonicalize_dtype(wanted))
    if stored != wanted:
        asked = f"a of dtype {wanted}" if wanted == arr.dtype else f"a of dtype {arr.dtype}, asked as {wanted},"
        warnings.warn(f"{asked} is stored as {stored}: jax_enable_x64 is off, so JAX has no {wanted} "
                      "(turn it on with jax.config.update('jax_enable_x64', True) or inside jax.enable_x64(True))",
                      UserWarning, stacklevel=2)
    return jnp.asarray(np.array(arr, order="C", copy=True), dtype=stored)


# ----------------------------------------------------------------------------- noise


def _check_key(key):
    if _is_key(key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key (shape ()); got a key array of shape {key.shape}")
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.ndim == 1:
        try:  # a raw key (jax.random.PRNGKey): its length must be the default PRNG implementation's
            jax.random.wrap_key_data(key)
        except (TypeError, ValueError) as e:
            raise InputTypeError(f"key is raw key data of shape {key.shape} that JAX's default PRNG implementation "
                                 f"does not accept ({str(e).split(' for impl=')[0]}); pass jax.random.key(seed) or "
                                 "jax.random.PRNGKey(seed)") from None
        return key
    raise InputTypeError(f"key must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)); got "
                         f"{describe(key)} of type {type(key).__name__}")


def _check_shape(shape):
    if isinstance(shape, (numbers.Integral,)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"shape must be a tuple of non-negative ints; got {shape!r}")
    return tuple(int(s) for s in shape)


def _check_draw_size(shape, dt, blocks):
    """Refuse a draw whose uniforms (in ``dt``, ``blocks`` of them) and float64 result exceed the 4 GiB budget."""
    size = 1
    for s in shape:
        size *= s
    need = size * (8 + blocks * dt.itemsize)
    if need > MAX_ARRAY_BYTES:
        raise ValueError(
            f"shape={shape} asks for {size:.3g} uniforms ({_format_bytes(need)} for JAX's {dt} draw and the float64 "
            f"result), more than the {_format_bytes(MAX_ARRAY_BYTES)} budget of one call "
            "(refgrad.limits.MAX_ARRAY_BYTES); draw in several calls with keys from jax.random.split"
        )


def _float_dtype(dtype):
    try:
        dt = np.dtype(jnp.float32 if dtype is None else dtype)
    except TypeError:
        raise InputTypeError(
            f"dtype must be a float dtype (float16, bfloat16, float32, float64); got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise InputTypeError(f"dtype must be a float dtype (float16, bfloat16, float32, float64); got {dt}")
    return np.dtype(jax.dtypes.canonicalize_dtype(dt))  # float64 -> float32 unless jax_enable_x64, as JAX does


def _default_mode():
    return "high" if getattr(jax.config, "jax_high_dynamic_range_gumbel", False) else "low"


def uniforms_from_key(key, shape, dtype=None, kind="gumbel", mode=None):
    r"""The exact uniforms (float64, strictly inside (0, 1)) behind a JAX draw from ``key``.

    Parameters
    ----------
    key : PRNG key
        One key, typed (``jax.random.key``) or raw (``jax.random.PRNGKey``).
    shape : tuple of int
        The draw's shape: ``shape`` of ``gumbel``; for ``categorical`` the shape of the Gumbel block,
        ``(*prefix, *logits.shape)`` (just ``logits.shape`` when its ``shape`` argument is None).
    dtype : float dtype
        The draw's dtype (``gumbel``'s ``dtype``; ``logits.dtype`` for ``categorical``); float64 is
        canonicalised to float32 unless ``jax_enable_x64`` is on, exactly as JAX does.
    kind : {"gumbel", "categorical", "uniform"}
        ``"gumbel"`` and ``"categorical"``: the uniforms with :math:`G = -\log(-\log u)` of
        ``jax.random.gumbel`` / ``categorical`` (the same block); ``"uniform"``:
        ``jax.random.uniform(key, shape, dtype)``, whose value 0 (probability :math:`2^{-p}` each) has no
        counterpart among refgrad's uniforms and is refused.
    mode : {None, "low", "high"}
        The Gumbel mode (None: JAX's default from ``jax_high_dynamic_range_gumbel``).  ``"high"``
        returns :math:`u = 1 - x`, exact in float32 except when :math:`x` = ``tiny`` (probability
        :math:`2^{-46}`), refused; it is refused in float64, where :math:`1 - x` is not representable.

    Returns
    -------
    ndarray of float64, shape ``shape``
        At most :data:`refgrad.limits.MAX_ARRAY_BYTES` (4 GiB) for JAX's draw and the result together:
        a larger ``shape`` is refused before anything is drawn.  With ``jax.random.gumbel(key, shape, dtype)``
        equal to :math:`-\log(-\log u)` computed in ``dtype``, and ``jax.random.categorical(key, logits)``
        equal to :func:`refgrad.random.categorical_gumbel_max` ``(logits, u)`` for finite logits (up to
        near-ties that float32 rounding breaks differently).
    """
    key = _check_key(key)
    shape = _check_shape(shape)
    dt = _float_dtype(dtype)
    _check_draw_size(shape, dt, 2 if mode == "high" or (mode is None and _default_mode() == "high") else 1)
    if kind not in ("gumbel", "categorical", "uniform"):
        raise ValueError(f"kind must be 'gumbel', 'categorical' or 'uniform'; got {kind!r}")
    mode = _default_mode() if mode is None else mode
    if mode not in ("low", "high"):
        raise ValueError(f"mode must be None, 'low' or 'high' ('highest' is not supported); got {mode!r}")
    info = jnp.finfo(dt)
    if kind == "uniform":
        u = np.asarray(jax.random.uniform(key, shape, dt), dtype=np.float64)
        return _refuse_edges(u, "jax.random.uniform drew 0, which has no counterpart among refgrad's uniforms "
                                "strictly inside (0, 1)")
    if mode == "low":
        return np.asarray(jax.random.uniform(key, shape, dt, minval=info.tiny, maxval=1.0), dtype=np.float64)
    if dt != np.float32:
        raise ValueError(f"mode='high' is supported for float32 only (in {dt} the uniform 1 - x is not "
                         "representable in float64); use mode='low'")
    high, low = jax.random.uniform(key, (2,) + shape, dt, minval=0.0, maxval=1.0)
    x = jnp.where(high >= 0.5, high, high + 2.0 ** -info.nmant * low + info.tiny)
    u = 1.0 - np.asarray(x, dtype=np.float64)  # exact: x has at most 47 significant bits below 1
    return _refuse_edges(u, "the Gumbel draw used x = tiny, whose uniform 1 - tiny rounds to 1 in float64")


def _refuse_edges(u, why):
    bad = ~((u > 0.0) & (u < 1.0))
    if bad.any():
        where = first_index(bad)
        raise ValueError(f"{why} (at index {where}); use another key")
    return u


def gumbel_from_uniforms(u, dtype=None):
    r"""Standard Gumbel noise :math:`G = -\log(-\log u)` from refgrad's uniforms, as a JAX array.

    Computed in float64 by :func:`refgrad.random.gumbel`, then stored in ``dtype`` (default float32,
    or float64 under ``jax_enable_x64``), so JAX code that takes Gumbel noise (``logits + G``) runs on
    the noise refgrad's estimators use for the same ``u``.
    """
    g = np.asarray(gumbel(_check_uniform(u, "u").reshape(np.shape(u))), dtype=np.float64)
    dt = np.dtype(jax.dtypes.canonicalize_dtype(np.float64)) if dtype is None else _float_dtype(dtype)
    return jnp.asarray(g, dtype=dt)


# ----------------------------------------------------------------------------- per-sample gradients


def _check_output_size(n, entries):
    need = n * entries * 8
    if need > MAX_ARRAY_BYTES:
        raise ValueError(f"keys_or_noise holds n = {n} samples: {n} rows of {entries} float64 gradients need "
                         f"{_format_bytes(need)}, more than the {_format_bytes(MAX_ARRAY_BYTES)} budget of one call "
                         "(refgrad.limits.MAX_ARRAY_BYTES); pass at most "
                         f"{max(1, MAX_ARRAY_BYTES // (8 * entries))} samples per call")


def per_sample_gradients(surrogate, params, keys_or_noise):
    """Per-sample gradients ``jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(params, keys_or_noise)``.

    Parameters
    ----------
    surrogate : callable
        ``surrogate(params, noise_i)`` returns the scalar surrogate loss of one estimate.
    params : array or pytree of arrays
        Differentiated (float dtypes; float64 needs ``jax_enable_x64``).
    keys_or_noise : array, key array or pytree
        Leading axis ``n``: one key (``jax.random.split(key, n)``) or one block of noise per sample.

    Returns
    -------
    ndarray of float64, shape ``(n, *params.shape)`` (a pytree of them for pytree ``params``)
        Each row is computed from its own sample only (``vmap`` of a per-sample ``grad``): a NaN or
        inf in one sample's loss or gradient leaves every other row untouched (tested).

    Raises
    ------
    ValueError
        Naming ``surrogate`` when it returns anything but a real float scalar, ``params`` for
        complex or non-float leaves, ``keys_or_noise`` without a common leading axis, and ``n`` when
        the float64 result would exceed :data:`refgrad.limits.MAX_ARRAY_BYTES` (4 GiB).
    """
    if not callable(surrogate):
        raise InputTypeError(f"surrogate must be callable; got {describe(surrogate)}")
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError(f"params must be an array or a non-empty pytree of arrays; got {describe(params)}")
    for i, leaf in enumerate(leaves):
        dt = jnp.asarray(leaf).dtype
        if not jnp.issubdtype(dt, jnp.floating):
            kind = "complex" if jnp.issubdtype(dt, jnp.complexfloating) else "not a float"
            raise InputTypeError(f"params leaf {i} must be a real float array; got dtype {dt} ({kind}: per-sample "
                                 "gradients are returned for real parameters only; pass the real and imaginary parts "
                                 "of a complex parameter as two real arrays)")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(keys_or_noise)}
    if not sizes or None in sizes or len(sizes) != 1:
        raise ValueError("keys_or_noise must have a leading sample axis n, the same in every leaf; got leading "
                         f"sizes {sorted(s for s in sizes if s is not None)} (0-d leaves: {None in sizes})")
    n = sizes.pop()
    _check_output_size(n, sum(int(np.prod(jnp.shape(leaf), dtype=np.int64)) for leaf in leaves))
    if n:
        row = jax.tree_util.tree_map(lambda x: x[0], keys_or_noise)
        out = jax.eval_shape(surrogate, params, row)
        if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
            got = (f"shape {out.shape}, dtype {out.dtype}" if isinstance(out, jax.ShapeDtypeStruct)
                   else f"a {type(out).__name__}")
            raise ValueError(f"surrogate(params, noise_i) must return a real float scalar (the surrogate loss of one "
                             f"estimate, shape ()); got {got}")
    grads = jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(params, keys_or_noise)
    return jax.tree_util.tree_map(lambda g: to_numpy(g).astype(np.float64), grads)
