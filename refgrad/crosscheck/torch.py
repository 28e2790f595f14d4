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
1e-13 and its float32 ones to 2e-6 at τ ∈ {0.5, 2} (``tests/crosscheck/test_crosscheck_torch.py``), and the
per-sample autograd gradients of ``gumbel_softmax`` (soft / hard) equal
``refgrad.estimate("gumbel_softmax" / "straight_through", ..., noise={"u": u})`` to 1e-10 relative.
"""
import contextlib
import subprocess
import sys
import warnings

import numpy as np
import torch

from .._core.checks import InputTypeError, as_float_array, check_sample_count, describe, first_index
from ..random.rng import _check_uniform
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
# torch's own samplers, kept at import: every feed checks its arguments with them (nested feeds included)
_TORCH_EXPONENTIAL = torch.Tensor.exponential_
_TORCH_RAND = torch.rand


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


def _check_dense(t, name):
    """``t`` if it is a dense (strided) tensor holding data; a ValueError naming ``name`` otherwise."""
    kind = None
    if t.is_meta:
        kind = "a meta tensor (shape only, no data)"
    elif getattr(t, "is_nested", False):
        kind = "a nested tensor"
    elif t.is_quantized:
        kind = f"a quantised tensor (dtype {str(t.dtype).replace('torch.', '')})"
    elif t.layout != torch.strided:
        kind = f"a tensor of layout {str(t.layout).replace('torch.', '')}"
    if kind is not None:
        raise InputTypeError(f"{name} is {kind}; accepted are dense (strided) tensors holding data, on any device "
                             "(convert with .to_dense(), .dequantize(), .unbind() or a real device first)")
    return t


def _tensor_to_numpy(x, name="x"):
    if not isinstance(x, torch.Tensor):
        return None
    t = _check_dense(x, name).detach()
    if t.dtype in _LOW_PRECISION:
        t = t.to(torch.float32)
    return t.cpu().resolve_conj().resolve_neg().numpy().copy()


def from_numpy(a, like=None, dtype=None):
    """Tensor from an array: dtype ``dtype`` if given, else ``like``'s, else the array's own; ``like``'s device.

    Unlike ``torch.from_numpy`` (and ``torch.as_tensor``), the result never shares memory with ``a``:
    it is a copy, so writing to the array afterwards leaves the tensor unchanged, and writing to the
    tensor leaves the array unchanged (as :func:`to_numpy` returns a copy the other way).

    Parameters
    ----------
    a : array_like
        Real numbers (float64 stays float64 unless a dtype is asked for).
    like : torch.Tensor, optional
        Template giving the dtype and device: a dense (strided) tensor holding data.
    dtype : torch.dtype, optional

    Examples
    --------
    >>> import numpy as np
    >>> from refgrad.crosscheck.torch import from_numpy
    >>> a = np.array([0.25, 0.5])
    >>> t = from_numpy(a)
    >>> a[0] = 7.0                  # the tensor is a copy
    >>> t.tolist(), str(t.dtype)
    ([0.25, 0.5], 'torch.float64')
    """
    if like is not None and not isinstance(like, torch.Tensor):
        raise InputTypeError(f"like must be a torch.Tensor or None; got {describe(like)} of type {type(like).__name__}")
    if like is not None:
        _check_dense(like, "like")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise InputTypeError(f"dtype must be a torch.dtype (e.g. torch.float32) or None; got {dtype!r}")
    arr = _tensor_to_numpy(a, "a") if isinstance(a, torch.Tensor) else np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"a must hold real numbers; got {describe(a)} (dtype {arr.dtype})")
    if dtype is None and like is not None:
        dtype = like.dtype
    device = like.device if like is not None else None
    # a private C-ordered copy: torch may share memory with it, but with nothing the caller holds
    return torch.as_tensor(np.array(arr, order="C", copy=True), dtype=dtype, device=device)


# ----------------------------------------------------------------------------- exponential noise


def exponential_from_uniforms(u):
    r"""Standard exponentials :math:`E = -\log u` (float64) from refgrad's uniforms.

    Fed to ``Tensor.exponential_`` (:func:`feed_exponential`), they make torch's Gumbel noise
    :math:`-\log E = -\log(-\log u)` the Gumbel noise refgrad computes from the same ``u``.  ``u``
    must be strictly inside (0, 1); the result is then finite and > 0 (at least
    :math:`1.1\times10^{-16}` for refgrad's largest uniform :math:`1 - 2^{-53}`).
    """
    return -np.log(_uniforms(u))


def _check_exponential(e, name="e"):
    arr = as_float_array(_tensor_to_numpy(e, name) if isinstance(e, torch.Tensor) else e, name)
    bad = ~((arr > 0.0) & (arr < np.inf))
    if bad.any():
        where = first_index(bad)
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
    :math:`\ge 6\times10^{-8}`, none 0).  For :math:`E < 2^{-53}` (:math:`1.1\times10^{-16}`)
    :math:`e^{-E}` rounds to 1, which is not a uniform strictly inside (0, 1): a ``ValueError`` names
    the index.  At the other end,
    :math:`E > 744` underflows to 0 and is refused the same way.
    """
    arr = _check_exponential(e)
    shape = tuple(e.shape) if isinstance(e, torch.Tensor) else np.shape(e)
    u = np.exp(-arr)
    bad = ~((u > 0.0) & (u < 1.0))
    if bad.any():
        where = first_index(bad)
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


def _uniforms(u, name="u"):
    """refgrad's uniforms from an array or dense tensor (widened exactly to float64), checked inside (0, 1)."""
    if isinstance(u, torch.Tensor):
        u = _tensor_to_numpy(u, name)
    return _check_uniform(u, name).reshape(np.shape(u))


def _rng_devices():
    """The CUDA devices whose random state a fed call saves and restores (none unless CUDA is in use)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []


def _fill(t, feed):
    """Overwrite ``t`` in place with the feed's next values, rounded to ``t``'s dtype.

    Complex: real and imaginary parts in the order of ``torch.view_as_real``.  The write is not
    recorded in autograd.
    """
    target = torch.view_as_real(t) if t.is_complex() else t
    values = feed.take(tuple(target.shape))
    with torch.no_grad():
        target.copy_(torch.as_tensor(values, device=t.device))
    return values


@contextlib.contextmanager
def feed_exponential(e):
    """Make ``Tensor.exponential_`` fill tensors from ``e`` (C order, as many values as each call needs).

    Inside the context every ``t.exponential_(lambd)`` call (for instance the one in
    ``torch.nn.functional.gumbel_softmax``) writes the next ``t.numel()`` values of ``e`` divided by
    ``lambd`` into ``t``, rounded to ``t``'s dtype; outside, the original method is restored.  Yields
    a :class:`Feed` (``calls``, ``consumed``, ``remaining``).  Not thread-safe: the patch is global.

    Each call first runs torch's own ``exponential_`` with the same arguments, so whatever torch
    refuses is refused with torch's own error and nothing is taken from ``e``: ``lambd <= 0`` or NaN,
    integer, bool and complex tensors, a leaf that requires grad (outside ``torch.no_grad``), a
    ``generator`` that is not a ``torch.Generator``.  The global random state is saved and restored
    around that call, so code after the context draws as if the fed calls had not drawn (a
    ``generator=`` passed explicitly is advanced, as by torch).  The values then replace torch's draw
    without a new autograd record: the gradient with respect to the tensor's previous values is zero,
    as for torch's ``exponential_``.

    Examples
    --------
    >>> import numpy as np, torch, refgrad
    >>> from refgrad.crosscheck.torch import feed_uniforms, to_numpy
    >>> u = refgrad.random.uniform(0, (5, 3))
    >>> with feed_uniforms(u) as feed:
    ...     y = torch.nn.functional.gumbel_softmax(torch.zeros(5, 3, dtype=torch.float64), tau=0.5)
    >>> feed.calls, feed.remaining
    ([(5, 3)], 0)
    >>> # refgrad's Gumbel-softmax sample of the same uniforms, to float64 rounding
    >>> bool(np.abs(to_numpy(y) - refgrad.relaxations.concrete_sample(np.zeros(3), 0.5, u)).max() < 1e-14)
    True
    """
    feed = Feed(_check_exponential(e), "e")
    original = torch.Tensor.__dict__.get("exponential_")

    def exponential_(self, *args, **kwargs):
        with torch.random.fork_rng(devices=_rng_devices(), enabled=kwargs.get("generator") is None):
            _TORCH_EXPONENTIAL(self, *args, **kwargs)  # torch's own parsing and checks; its draw is overwritten
        lambd = args[0] if args else kwargs.get("lambd", 1.0)
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
    """:func:`feed_exponential` of :func:`exponential_from_uniforms` ``(u)``.

    Torch's Gumbel noise from refgrad's ``u``.
    """
    return feed_exponential(exponential_from_uniforms(_uniforms(u)))


# ----------------------------------------------------------------------------- rsample's uniforms


@contextlib.contextmanager
def feed_rand(u):
    """Make ``torch.rand`` return the next values of ``u`` (C order) instead of drawing.

    Inside the context ``torch.rand`` (the call in the ``rsample`` of the relaxed distributions)
    accepts exactly what torch's accepts -- ``torch.rand(2, 3)``, ``torch.rand((2, 3))``,
    ``torch.rand(size=(2, 3))``, ``torch.rand(())``, ``dtype=``, ``device=``, ``out=``,
    ``requires_grad=``, ``generator=`` -- because each call first runs torch's own ``torch.rand`` with
    the same arguments (the global random state saved and restored around it; an explicit
    ``generator=`` is advanced, as by torch); so what torch refuses (``torch.rand(-1)``, no size, an
    integer dtype, an unknown keyword) is refused with torch's own error, and nothing is taken from
    ``u``.  The tensor torch made is then overwritten with the next ``numel`` values of ``u`` (a
    complex dtype takes two values per entry, real and imaginary parts in the order of
    ``torch.view_as_real``), rounded to its dtype -- so in float32 values above :math:`1 - 2^{-25}`
    become 1.0 -- which ``rsample`` then clamps (see :func:`rsample_uniforms`).  ``u`` must be strictly
    inside (0, 1).  Yields a :class:`Feed`; the patch is global, not thread-safe.

    Examples
    --------
    >>> import torch
    >>> from refgrad.crosscheck.torch import feed_rand
    >>> with feed_rand([0.25, 0.5, 0.75]) as feed:
    ...     a = torch.rand(size=(2,), dtype=torch.float64)
    ...     b = torch.rand(())
    >>> a.tolist(), b.item(), feed.calls
    ([0.25, 0.5], 0.75, [(2,), ()])
    """
    feed = Feed(_uniforms(u), "u")
    original = torch.rand

    def rand(*args, **kwargs):
        with torch.random.fork_rng(devices=_rng_devices(), enabled=kwargs.get("generator") is None):
            t = _TORCH_RAND(*args, **kwargs)  # torch's own parsing and checks; its draw is overwritten
        _fill(t, feed)
        return t

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

    arr = _uniforms(u)
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
        name = "params" if single else f"params[{i}]"
        _check_dense(p, name)
        if p.is_complex():
            raise InputTypeError(
                f"{name} is a complex tensor (dtype {str(p.dtype).replace('torch.', '')}); per-sample gradients are "
                "returned for real float parameters only (a complex gradient has no float64 array without "
                "dropping its imaginary part): pass the real and imaginary parts as two real tensors"
            )
        if not p.requires_grad:
            raise ValueError(f"{name} (shape {tuple(p.shape)}) does not require grad; call requires_grad_() on it")
    return single, plist


def _loss_tensor(loss, what, need):
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"{what} must return {need}; got {describe(loss)} of type {type(loss).__name__}")
    _check_dense(loss, f"the tensor {what} returned")
    if not loss.dtype.is_floating_point:
        raise ValueError(f"{what} must return {need}, of a real float dtype; got dtype "
                         f"{str(loss.dtype).replace('torch.', '')}")
    if not loss.requires_grad:
        raise ValueError(f"{what} returned a tensor that does not require grad: it was computed from no parameter in "
                         "params (or under torch.no_grad / after .detach()), so it has no gradient to take")
    return loss


def _scalar(loss, where):
    need = "a scalar tensor (the surrogate loss of one estimate)"
    loss = _loss_tensor(loss, f"surrogate{where}", need)
    if loss.numel() != 1:
        raise ValueError(f"surrogate{where} must return {need}; got a tensor of shape {tuple(loss.shape)}")
    return loss.reshape(())


def _stack(grads, param):
    return torch.stack([torch.zeros_like(param) if g is None else g for g in grads])


def _check_output_size(n, plist):
    check_sample_count(n, 8 * sum(p.numel() for p in plist), "n")


def _has_error_node(tensors):
    """Whether the autograd graph behind ``tensors`` holds a node that raises when differentiated.

    ``once_differentiable`` backward functions leave one, detached from the rest of the graph.
    """
    seen, stack = set(), [t.grad_fn for t in tensors if t is not None and t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "Error" in type(node).__name__:
            return True
        stack.extend(nxt for nxt, _ in node.next_functions)
    return False


def _rows_forward(losses, plist):
    r"""The Jacobian of ``losses`` (n,) with respect to each parameter, one column per parameter entry.

    Column :math:`k` is :math:`J e_k`, obtained as the gradient with respect to :math:`v` of
    :math:`e_k^\top J^\top v`, where :math:`J^\top v` is one backward pass with ``create_graph`` (the
    double-backward form of a Jacobian-vector product).  Each column costs one backward pass over
    the graph, which is linear in n; no pass mixes samples, since the only cross-sample operation of
    :math:`J^\top v`, the sum over samples where a parameter is broadcast, becomes a broadcast again.
    Returns None when the graph has an operation without a double backward (an error node, a
    gradient detached from :math:`v`, or rows whose sum differs from one ordinary backward pass).
    """
    n = losses.shape[0]
    v = torch.zeros_like(losses, requires_grad=True)
    try:
        vjp = torch.autograd.grad(losses, plist, grad_outputs=v, create_graph=True, allow_unused=True)
    except RuntimeError:
        return None
    if _has_error_node(vjp):
        return None
    grads = []
    for p, g in zip(plist, vjp):
        out = torch.zeros((n, p.numel()), dtype=p.dtype, device=p.device)
        if g is not None:
            if not g.requires_grad:
                return None
            flat = g.reshape(-1)
            for k in range(flat.numel()):
                try:
                    (col,) = torch.autograd.grad(flat[k], v, retain_graph=True)
                except RuntimeError:  # an entry not connected to v: a backward that is not differentiable
                    return None
                out[:, k] = col
        grads.append(out.reshape((n,) + tuple(p.shape)))
    # the rows must add up to the ordinary backward pass J^T 1 (up to the rounding of n terms)
    total = torch.autograd.grad(losses, plist, grad_outputs=torch.ones_like(losses), retain_graph=True,
                                allow_unused=True)
    for g, t in zip(grads, total):
        t = torch.zeros_like(g[0]) if t is None else t
        finite = torch.isfinite(g).all(0) & torch.isfinite(t)
        size = g.abs().sum(0)
        eps = torch.finfo(g.dtype).eps
        if ((g.sum(0) - t).abs() > 8 * (n + 10) * eps * size + torch.finfo(g.dtype).tiny)[finite].any():
            return None
    return grads


def _rows_reverse(losses, plist):
    """The Jacobian's rows by one backward pass per sample.

    ``grad_outputs`` are the rows of the ``n x n`` identity, batched (``is_grads_batched``), or a loop
    where an operation has no batching rule.
    """
    n = losses.shape[0]
    eye = torch.eye(n, dtype=losses.dtype, device=losses.device)
    try:
        batched = torch.autograd.grad(losses, plist, grad_outputs=eye, is_grads_batched=True, allow_unused=True,
                                      retain_graph=True)
        return [torch.zeros((n,) + tuple(p.shape), dtype=p.dtype, device=p.device) if g is None else g
                for g, p in zip(batched, plist)]
    except RuntimeError:  # an operation without a batching rule
        rows = [torch.autograd.grad(losses[i], plist, retain_graph=True, allow_unused=True) for i in range(n)]
        return [_stack([r[j] for r in rows], p) for j, p in enumerate(plist)]


def per_sample_gradients(surrogate, params, n=None):
    r"""Per-sample gradients of a surrogate loss, as float64 arrays of shape ``(n, *param.shape)``.

    Two forms:

    * ``n`` given: ``surrogate(i)`` returns the scalar surrogate loss of estimate ``i``
      (``i = 0, ..., n - 1``); each is differentiated by ``torch.autograd.grad`` in a loop.  Time and
      memory are linear in ``n`` when ``surrogate(i)`` builds the graph of sample ``i`` only; indexing
      a loss vector of one shared graph (``lambda i: losses[i]``) makes each pass walk all n samples
      (time :math:`\propto n^2`) and lets a NaN of one sample reach the others (0 times NaN in the
      shared backward): use the other form for that;
    * ``n`` None: ``surrogate()`` returns an ``(n,)`` tensor whose entry ``i`` depends on sample
      ``i`` only.  With more samples than parameter entries (n > P), row ``i`` of its Jacobian
      :math:`J` is computed column by column, :math:`J e_k` for each of the P parameter entries,
      as the gradient with respect to :math:`v` of :math:`e_k^\top J^\top v` (one backward pass
      with ``create_graph``, then P backward passes of the same size): time and memory linear in n
      (P + 1 passes over the graph, plus the ``n x P`` result).  No pass mixes samples, so a NaN or
      inf in one sample's loss or gradient leaves every other row untouched.  An operation without
      a double backward falls back to one backward pass per sample (a ``RuntimeWarning`` says so;
      time :math:`\propto n^2`, and a non-finite sample then spreads as above).  With n <= P, the
      rows come from n backward passes (one vmapped pass with the ``n x n`` identity as
      ``grad_outputs``, no larger than the ``n x P`` result); if any entry is then not finite (0
      times one sample's NaN reaches every row there), they are recomputed column by column as
      above.

    The rows equal those of one backward pass per sample up to rounding, not always bitwise: the
    products of the chain rule are taken in the opposite order (``tests/crosscheck/test_adapters_torch.py``
    checks bitwise equality on a float64 REINFORCE surrogate and 1e-15 absolute on torch's
    ``gumbel_softmax``, soft and hard, against one graph per sample).

    Measured (the batched form, 3 parameters, a REINFORCE surrogate on 3 bits, float64, one torch
    thread on the shared 2-core development machine at load average 9; best of 5 calls after a
    warm-up; peak resident memory of the call above the level before it, freed heap handed back
    first): n = 10^3: 0.00059 s, +0.3 MiB; n = 10^4: 0.0023 s, +2.5 MiB; n = 10^5: 0.099 s,
    +25 MiB; n = 10^6: 0.86 s, +227 MiB (about 230 bytes a sample; the result itself is 24 bytes a
    sample).  Redo with ``python -m refgrad.crosscheck.torch``.  The form used before (one vmapped
    backward pass per sample, an ``n x n`` identity as ``grad_outputs``), measured the same way:
    0.12 s and +53 MiB at n = 10^3, 1.5 s and +855 MiB at n = 4,000.

    Parameters
    ----------
    surrogate : callable
    params : torch.Tensor or list/tuple of tensors
        Dense real float leaves with ``requires_grad``; parameters the loss does not use get zero
        gradients.  Complex parameters are refused (their gradient has no float64 array).
    n : int, optional
        At most the number of rows whose float64 result fits in
        :data:`refgrad.limits.MAX_ARRAY_BYTES` (4 GiB); the same bound applies to the batched form.

    Returns
    -------
    ndarray of float64 (or a list of them, one per parameter, if ``params`` is a list/tuple)

    Raises
    ------
    ValueError
        Naming ``surrogate`` when it returns something other than a real float scalar (``n`` given)
        or 1-d tensor (``n`` None), naming ``params`` for complex, sparse, meta, quantised or nested
        tensors, and naming ``n`` when it is not a positive int or the result exceeds 4 GiB.
    """
    if not callable(surrogate):
        raise InputTypeError(f"surrogate must be callable; got {describe(surrogate)}")
    single, plist = _as_params(params)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int or None; got {n!r}")
        _check_output_size(int(n), plist)
        rows = []
        for i in range(int(n)):
            loss = _scalar(surrogate(i), f"({i})")
            rows.append(torch.autograd.grad(loss, plist, allow_unused=True, retain_graph=True))
        grads = [_stack([r[j] for r in rows], p) for j, p in enumerate(plist)]
    else:
        need = "a non-empty 1-d tensor (n,) of per-sample losses"
        losses = _loss_tensor(surrogate(), "surrogate()", need)
        if losses.ndim != 1 or losses.numel() == 0:
            raise ValueError(f"surrogate() must return {need}; got a tensor of shape {tuple(losses.shape)}")
        n = losses.shape[0]
        _check_output_size(n, plist)
        if n <= sum(p.numel() for p in plist):  # no more samples than parameters: n reverse passes are fewer
            grads = _rows_reverse(losses, plist)
            if not all(bool(torch.isfinite(g).all()) for g in grads):  # 0 * NaN may have spread: isolate
                grads = _rows_forward(losses, plist) or grads
        else:
            grads = _rows_forward(losses, plist)
            if grads is None:  # an operation without a double backward: one backward pass per sample
                warnings.warn("per_sample_gradients: the surrogate's graph has an operation without a double "
                              "backward; falling back to one backward pass per sample (time grows with n**2, and a "
                              "NaN in one sample can reach the others)", RuntimeWarning, stacklevel=2)
                grads = _rows_reverse(losses, plist)
    out = [to_numpy(g).astype(np.float64) for g in grads]
    return out[0] if single else out


def _measure_cost(sizes=(10**3, 10**4, 10**5)):  # pragma: no cover - the command behind the docstring's numbers
    code = r"""
import sys, time
import numpy as np, torch
import refgrad.crosscheck.torch as ct
n = int(sys.argv[1])
torch.set_num_threads(1)  # one thread: timings on a shared machine vary less
def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field))  # KiB
def surrogate_losses():
    u = torch.as_tensor(np.random.default_rng(0).random((n, 3)))
    lg = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = (u > torch.sigmoid(-lg)).to(torch.float64)
    log_prob = torch.distributions.Bernoulli(logits=lg).log_prob(b).sum(-1)
    return lg, ((b - 0.45) ** 2).sum(-1).detach() * log_prob
lg, losses = surrogate_losses()
ct.per_sample_gradients(lambda: losses[:10], lg)  # warm-up: torch's first backward pass loads its kernels
import ctypes, gc
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the call's own allocations show in the peak
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak resident size (VmHWM) to the current one
before = status("VmRSS:")
g = ct.per_sample_gradients(lambda: losses, lg)
peak = status("VmHWM:") - before
times = []
for _ in range(5):
    t0 = time.perf_counter()
    ct.per_sample_gradients(lambda: losses, lg)
    times.append(time.perf_counter() - t0)
print(f"n = {n:>7}: {min(times):.2g} s (best of 5), peak memory +{peak / 1024:.1f} MiB "
      f"(result {g.nbytes / 2**20:.1f} MiB)")
"""
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True)
        print(out.stdout.strip())


if __name__ == "__main__":  # pragma: no cover
    _measure_cost()
