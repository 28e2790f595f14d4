r"""PyTorch adapter: tensors to arrays, torch's noise to and from refgrad's uniforms, per-sample gradients.

Importing this module imports :mod:`torch`; nothing else in refgrad does (install it with the
``crosscheck`` extra).  The noise converters match the internals of **torch 2.13.0** (read from its
installed sources):

* ``torch.nn.functional.gumbel_softmax`` draws its Gumbel noise as
  ``-torch.empty_like(logits).exponential_().log()``: standard exponentials ``E`` then
  :math:`G = -\log E`.  refgrad's Gumbel noise is :math:`G = -\log(-\log u)`, so the two agree when
  :math:`E = -\log u` (:func:`exponential_from_uniforms`); :func:`feed_exponential` /
  :func:`feed_uniforms` make the next ``Tensor.exponential_`` calls fill from given values, so torch's
  own function runs on refgrad's noise.
* ``rsample`` of ``LogitRelaxedBernoulli`` / ``RelaxedBernoulli`` / ``ExpRelaxedCategorical`` /
  ``RelaxedOneHotCategorical`` draws ``clamp_probs(torch.rand(shape, dtype=...))`` with
  ``clamp_probs(p) = p.clamp(eps, 1 - eps)``, ``eps = torch.finfo(dtype).eps`` (1.19e-7 in float32,
  2.2e-16 in float64).  :func:`feed_rand` makes the next ``torch.rand`` calls return given uniforms;
  :func:`rsample_uniforms` gives the uniforms torch actually uses after its rounding to ``dtype`` and
  its clamp, with the number clamped: the clamp moves probability mass onto ``eps`` and ``1 - eps``,
  so it changes the law of the sample (in float32 every :math:`u < 1.19\times10^{-7}` and every
  :math:`u > 1 - 5.96\times10^{-8}` is moved).  The relaxed Bernoulli ``rsample`` also clamps
  ``probs = sigmoid(logits)`` the same way, so its effective logit saturates at
  :math:`\pm\operatorname{logit}(1 - \mathrm{eps})`: :math:`\pm 15.94` in float32, :math:`\pm 36.04`
  in float64 (measured: logits 20 and 40 give the sample of logit 15.94 at ``u = 0.5`` in float32).

Fed the same uniforms, torch's float64 soft samples agree with refgrad's
(:func:`refgrad.relaxations.concrete_sample`, ``binary_concrete_sample``, ``exp_concrete_sample``) to
1e-13 and its float32 ones to 2e-6 at τ ∈ {0.5, 2} (``tests/test_crosscheck_torch.py``), and the
per-sample autograd gradients of ``gumbel_softmax`` (soft / hard) equal
``refgrad.estimate("gumbel_softmax" / "straight_through", ..., noise={"u": u})`` to 1e-10 relative.
"""
import contextlib

import numpy as np
import torch

from .._checks import InputTypeError, describe
from ..random import _check_uniform
from ._convert import convert_nested

__all__ = [
    "to_numpy",
    "from_numpy",
    "exponential_from_uniforms",
    "uniforms_from_exponential",
    "feed_exponential",
    "feed_uniforms",
    "feed_rand",
    "rsample_uniforms",
    "per_sample_gradients",
    "TORCH_VERSION_MATCHED",
]

#: The torch version whose internals (gumbel_softmax, rsample, clamp_probs) this module matches.
TORCH_VERSION_MATCHED = "2.13.0"

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def to_numpy(x):
    """NumPy array from a tensor (any device, ``requires_grad`` or not, 0-d included), recursively.

    float32 and float64 tensors keep their dtype; float16 and bfloat16 are promoted to float32 (NumPy
    has no bfloat16); integer and bool tensors keep theirs.  Lists and tuples become lists and tuples,
    dicts dicts, of converted entries; Python and NumPy numbers and arrays pass through
    :func:`numpy.asarray`.

    Raises
    ------
    TypeError
        For strings, ``None`` and other objects that are not numbers, arrays or tensors.
    """
    return convert_nested(x, _tensor_to_numpy, "a tensor")


def _tensor_to_numpy(x):
    if not isinstance(x, torch.Tensor):
        return None
    t = x.detach()
    if t.dtype in _LOW_PRECISION:
        t = t.to(torch.float32)
    return t.cpu().resolve_conj().resolve_neg().numpy().copy()


def from_numpy(a, like=None, dtype=None):
    """Tensor from an array: dtype ``dtype`` if given, else ``like``'s, else the array's own; ``like``'s device.

    Parameters
    ----------
    a : array_like
        Real numbers (float64 stays float64 unless a dtype is asked for).
    like : torch.Tensor, optional
        Template giving the dtype and device.
    dtype : torch.dtype, optional
    """
    if like is not None and not isinstance(like, torch.Tensor):
        raise InputTypeError(f"like must be a torch.Tensor or None; got {describe(like)} of type {type(like).__name__}")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise InputTypeError(f"dtype must be a torch.dtype (e.g. torch.float32) or None; got {dtype!r}")
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"a must hold real numbers; got {describe(a)} (dtype {arr.dtype})")
    if dtype is None and like is not None:
        dtype = like.dtype
    device = like.device if like is not None else None
    return torch.as_tensor(np.ascontiguousarray(arr), dtype=dtype, device=device)


# ----------------------------------------------------------------------------- exponential noise


def exponential_from_uniforms(u):
    r"""Standard exponentials :math:`E = -\log u` (float64) from refgrad's uniforms.

    Fed to ``Tensor.exponential_`` (:func:`feed_exponential`), they make torch's Gumbel noise
    :math:`-\log E = -\log(-\log u)` the Gumbel noise refgrad computes from the same ``u``.  ``u``
    must be strictly inside (0, 1); the result is then finite and > 0 (at least
    :math:`1.1\times10^{-16}` for refgrad's largest uniform :math:`1 - 2^{-53}`).
    """
    arr = _check_uniform(u, "u")
    return -np.log(arr).reshape(np.shape(u))


def _check_exponential(e, name="e"):
    from .._checks import as_float_array

    arr = as_float_array(to_numpy(e) if isinstance(e, torch.Tensor) else e, name)
    bad = ~((arr > 0.0) & (arr < np.inf))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        value = float(arr[where]) if arr.ndim else float(arr)
        raise ValueError(
            f"{name} must hold standard exponentials, finite and > 0 (no NaN); got {value!r} at index {where}"
        )
    return arr


def uniforms_from_exponential(e):
    r"""refgrad's uniforms :math:`u = e^{-E}` (float64, strictly inside (0, 1)) from exponentials ``E > 0``.

    Accepts tensors (float32 draws of ``exponential_`` are widened exactly to float64 first).

    Precision: ``u`` is within one rounding (a relative :math:`2^{-53}`, plus the error of ``exp``) of
    :math:`e^{-E}`, so near :math:`u \to 1` (small ``E``) the absolute error
    :math:`\le 2^{-53}` is a *relative* error of about :math:`2^{-53}/E` in :math:`1 - u` and in
    :math:`E` recovered as :math:`-\log u` (1e-9 relative at :math:`E = 10^{-7}`, the smallest float32
    draws; 10^7 draws of torch's own ``exponential_`` in float32 and float64, seed 0, were all
    :math:`\ge 6\times10^{-8}`, none 0).  For :math:`E < 2^{-53}` (:math:`1.1\times10^{-16}`) :math:`e^{-E}` rounds to 1, which is
    not a uniform strictly inside (0, 1): a ``ValueError`` names the index.  At the other end,
    :math:`E > 744` underflows to 0 and is refused the same way.
    """
    shape = tuple(e.shape) if isinstance(e, torch.Tensor) else np.shape(e)
    arr = _check_exponential(e)
    u = np.exp(-arr)
    bad = ~((u > 0.0) & (u < 1.0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"e = {float(arr[where])!r} at index {where} has no float64 uniform strictly inside (0, 1): exp(-e) "
            "rounds to 1 for e < 2**-53 (1.1e-16) and to 0 for e > 744"
        )
    return u.reshape(shape)


class Feed:
    """Values handed out in C order, ``numel`` at a time, to the patched torch sampler.

    Attributes
    ----------
    calls : list of tuple
        The shapes of the tensors filled so far.
    consumed : int
        How many values have been used.
    remaining : int
    """

    def __init__(self, values, name):
        self._values = values.reshape(-1)
        self._name = name
        self.calls = []
        self.consumed = 0

    @property
    def remaining(self):
        return self._values.size - self.consumed

    def take(self, shape):
        size = int(np.prod(shape, dtype=np.int64))
        if size > self.remaining:
            raise ValueError(
                f"{self._name} holds {self._values.size} values and {self.consumed} are used; a draw of shape "
                f"{tuple(shape)} needs {size} more (pass as many values as the code under the context draws)"
            )
        out = self._values[self.consumed:self.consumed + size].reshape(shape)
        self.consumed += size
        self.calls.append(tuple(shape))
        return out


@contextlib.contextmanager
def feed_exponential(e):
    """Make ``Tensor.exponential_`` fill tensors from ``e`` (C order, as many values as each call needs).

    Inside the context every ``t.exponential_(lambd)`` call (for instance the one in
    ``torch.nn.functional.gumbel_softmax``) writes the next ``t.numel()`` values of ``e`` divided by
    ``lambd`` into ``t``, rounded to ``t``'s dtype; outside, the original method is restored.  Yields
    a :class:`Feed` (``calls``, ``consumed``, ``remaining``).  Not thread-safe: the patch is global.

    Example
    -------
    >>> u = refgrad.random.uniform(0, (5, 3))                              # doctest: +SKIP
    >>> with feed_uniforms(u):                                             # doctest: +SKIP
    ...     y = torch.nn.functional.gumbel_softmax(torch.zeros(5, 3, dtype=torch.float64), tau=0.5)
    >>> # y equals refgrad.relaxations.concrete_sample(0.0, 0.5, u) to float64 rounding
    """
    feed = Feed(_check_exponential(e), "e")
    original = torch.Tensor.__dict__.get("exponential_")

    def exponential_(self, lambd=1.0, *, generator=None):
        values = feed.take(tuple(self.shape)) / float(lambd)
        with torch.no_grad():
            self.copy_(torch.as_tensor(values, device=self.device))
        return self

    torch.Tensor.exponential_ = exponential_
    try:
        yield feed
    finally:
        if original is None:
            del torch.Tensor.exponential_
        else:
            torch.Tensor.exponential_ = original


def feed_uniforms(u):
    """:func:`feed_exponential` of :func:`exponential_from_uniforms` ``(u)``: torch's Gumbel noise from refgrad's ``u``."""
    return feed_exponential(exponential_from_uniforms(u))


# ----------------------------------------------------------------------------- rsample's uniforms


def _shape_of(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


@contextlib.contextmanager
def feed_rand(u):
    """Make ``torch.rand`` return the next values of ``u`` (C order) instead of drawing.

    Inside the context ``torch.rand(*size, dtype=..., device=...)`` (the call in the ``rsample`` of
    the relaxed distributions) returns the next ``prod(size)`` values of ``u`` as a tensor of the
    asked dtype (default: torch's default dtype) -- rounded to it, so in float32 values above
    :math:`1 - 2^{-25}` become 1.0 -- which ``rsample`` then clamps (see :func:`rsample_uniforms`).
    ``u`` must be strictly inside (0, 1).  Yields a :class:`Feed`; the patch is global, not thread-safe.
    """
    feed = Feed(_check_uniform(u, "u"), "u")
    original = torch.rand

    def rand(*size, generator=None, out=None, dtype=None, layout=torch.strided, device=None,
             requires_grad=False, pin_memory=False):
        values = feed.take(_shape_of(size))
        t = torch.as_tensor(values, dtype=dtype or torch.get_default_dtype(), device=device)
        if out is not None:
            out.copy_(t)
            t = out
        return t.requires_grad_(requires_grad)

    torch.rand = rand
    try:
        yield feed
    finally:
        torch.rand = original


def rsample_uniforms(u, dtype=torch.float32):
    """The uniforms torch's relaxed ``rsample`` uses when fed ``u``: ``clamp_probs(u.to(dtype))``, as float64.

    Parameters
    ----------
    u : array_like
        refgrad's uniforms, strictly inside (0, 1).
    dtype : torch.dtype
        float16, bfloat16, float32 or float64: the dtype of the distribution's parameters.

    Returns
    -------
    uniforms : ndarray of float64, shape of ``u``
        Exactly the values torch computes with (rounded to ``dtype``, then clamped to
        ``[eps, 1 - eps]`` by torch's own ``clamp_probs``), widened exactly to float64.
    report : dict
        ``eps``, ``clamped_low`` (values moved up to ``eps``), ``clamped_high`` (moved down to
        ``1 - eps``, including those that rounded to 1.0), ``clamped`` (their sum) and ``n``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputTypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32); got {dtype!r}")
    from torch.distributions.utils import clamp_probs

    arr = _check_uniform(u, "u").reshape(np.shape(u))
    rounded = torch.as_tensor(arr).to(dtype)
    clamped = clamp_probs(rounded)
    low = int((clamped > rounded).sum())
    high = int((clamped < rounded).sum())
    report = {"eps": float(torch.finfo(dtype).eps), "clamped_low": low, "clamped_high": high,
              "clamped": low + high, "n": int(arr.size), "dtype": str(dtype).replace("torch.", "")}
    return to_numpy(clamped).astype(np.float64), report


# ----------------------------------------------------------------------------- per-sample gradients


def _as_params(params):
    single = isinstance(params, torch.Tensor)
    plist = [params] if single else list(params) if isinstance(params, (list, tuple)) else None
    if plist is None or not plist or not all(isinstance(p, torch.Tensor) for p in plist):
        raise InputTypeError(
            f"params must be a tensor or a non-empty list/tuple of tensors; got {describe(params)} of type "
            f"{type(params).__name__}"
        )
    for i, p in enumerate(plist):
        if not p.requires_grad:
            raise ValueError(f"params[{i}] (shape {tuple(p.shape)}) does not require grad; call requires_grad_() on it")
    return single, plist


def _scalar(loss, where):
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"surrogate{where} must return a scalar tensor (the surrogate loss of one estimate); "
                         f"got {describe(loss)}")
    return loss.reshape(())


def _stack(grads, param):
    return torch.stack([torch.zeros_like(param) if g is None else g for g in grads])


def per_sample_gradients(surrogate, params, n=None):
    """Per-sample gradients of a surrogate loss, as float64 arrays of shape ``(n, *param.shape)``.

    Two forms:

    * ``n`` given: ``surrogate(i)`` returns the scalar surrogate loss of estimate ``i``
      (``i = 0, ..., n - 1``); each is differentiated by ``torch.autograd.grad`` in a loop;
    * ``n`` None: ``surrogate()`` returns an ``(n,)`` tensor whose entry ``i`` depends on sample
      ``i`` only; the ``n`` rows of its Jacobian come from one ``torch.autograd.grad`` call with
      ``grad_outputs = I_n`` and ``is_grads_batched=True`` (a vmapped backward), falling back to a
      loop of ``n`` backward passes over the retained graph if some operation has no batching rule.

    Parameters
    ----------
    surrogate : callable
    params : torch.Tensor or list/tuple of tensors
        Leaves with ``requires_grad``; parameters the loss does not use get zero gradients.
    n : int, optional

    Returns
    -------
    ndarray of float64 (or a list of them, one per parameter, if ``params`` is a list/tuple)
    """
    if not callable(surrogate):
        raise InputTypeError(f"surrogate must be callable; got {describe(surrogate)}")
    single, plist = _as_params(params)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int or None; got {n!r}")
        rows = []
        for i in range(int(n)):
            loss = _scalar(surrogate(i), f"({i})")
            rows.append(torch.autograd.grad(loss, plist, allow_unused=True, retain_graph=True))
        grads = [_stack([r[j] for r in rows], p) for j, p in enumerate(plist)]
    else:
        losses = surrogate()
        if not isinstance(losses, torch.Tensor) or losses.ndim != 1 or losses.numel() == 0:
            raise ValueError(f"surrogate() must return a non-empty 1-d tensor (n,) of per-sample losses; "
                             f"got {describe(losses)}")
        eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
        n = losses.shape[0]
        try:
            batched = torch.autograd.grad(losses, plist, grad_outputs=eye, is_grads_batched=True,
                                          allow_unused=True, retain_graph=True)
            grads = [torch.zeros((n,) + tuple(p.shape), dtype=p.dtype) if g is None else g
                     for g, p in zip(batched, plist)]
        except RuntimeError:  # an operation without a batching rule: one backward pass per sample
            rows = [torch.autograd.grad(losses[i], plist, retain_graph=True, allow_unused=True) for i in range(n)]
            grads = [_stack([r[j] for r in rows], p) for j, p in enumerate(plist)]
    out = [to_numpy(g).astype(np.float64) for g in grads]
    return out[0] if single else out
