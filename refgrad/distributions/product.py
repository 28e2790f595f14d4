r"""A product of heterogeneous discrete families in one problem: :class:`Product`.

A model with a bit, a 3-way and a 5-way variable is one distribution here, without padding the
categories to a common K:

.. code-block:: python

    dist = Product(Bernoulli([0.3]), Categorical([[0.0, 1.0, -1.0]]), Categorical([[0.0] * 5]))

Layout
------
Everything is flat.  With blocks ``B_1, …, B_m``, block ``j`` of ``p_j = prod(B_j.param_shape)``
parameters (``d`` for Bernoulli and GaussianThreshold, ``d·K`` for Categorical):

* ``params`` is the concatenation of ``B_j.params.ravel()`` (C order: a categorical's rows one after the
  other), shape ``(P,)`` with ``P = Σ_j p_j``; a gradient has that shape too;
* a point ``x`` is the concatenation of the blocks' points, each raveled in C order: bits as 0/1,
  categorical rows as one-hot rows; shape ``(D,)`` with ``D = P`` (every family's event has the shape
  of its parameters), and a batch is ``(n, D)``;
* ``block_slices[j]`` selects block ``j`` in both, and :meth:`Product.unflatten` gives the blocks' own
  shapes back.

The flat layout is the one the objectives already accept: a batch ``(n, D)`` is what
:class:`~refgrad.objectives.SquaredDistance`, :class:`~refgrad.objectives.Linear` and
:class:`~refgrad.objectives.FunctionObjective` take for bits, so they apply to a product unchanged
(a target or weights of shape ``(D,)``).  Because ``D = P``, ``x − E[x]`` and the score have the
point's shape, as for the single families.

Enumeration
-----------
The variables are numbered block by block (a categorical block's rows in order); configuration ``i``
is ``i`` written in the mixed radix of the variables (2 for a bit, K for a categorical row) with the
**first variable most significant** -- the order of ``itertools.product`` over the variables' values.
For a product of one block this is that block's own order.

The exact oracles (:func:`refgrad.exact.expectation`, :func:`refgrad.exact.gradient`,
:func:`refgrad.exact.moments`) dispatch here; the gradient uses the flip-difference identities of
:func:`refgrad.exact.gradient` per variable (``∂L/∂φ = c E_q[f(x^{i←1}) − f(x^{i←0})]`` for a bit,
``∂L/∂ℓ_{ik} = p_{ik} E_q[f(x^{i←k}) − f(x)]`` for a categorical row), with ``f`` evaluated by its
values (an objective's closed-form flip differences assume a layout of bits or of one-hot rows of
one K, which a product is not).  ``f`` is evaluated once per configuration of positive probability
plus once per flip whose partner lies outside the current chunk of ``chunk_size`` configurations
(the flips of the variables whose stride in the mixed radix reaches the chunk size), as for a single
family with a plain callable.

Estimators
----------
The score-function estimators -- ``reinforce`` (every baseline), ``rloo`` and ``muprop`` -- accept a
Product (declared by ``EstimatorSpec.product``); their estimate is built from ``f(x)``, the product's
score and, for MuProp, ``z̄ = E[x]`` and ``∂z̄/∂φ`` block by block.  Every other estimator refuses a
Product with a ``ValueError`` naming the families it supports.  Their exact moments enumerate the
``support**k`` sample tuples (:func:`moments`).
"""
import numpy as np

from .._core.checks import as_float_array, describe, first_index
from .families import (
    Bernoulli,
    Categorical,
    GaussianThreshold,
    _check_uniforms,
    _first_where,
    _ProductDistribution,
)

__all__ = ["Product"]

_BLOCK_TYPES = (Bernoulli, Categorical, GaussianThreshold)
_INT64_MAX = int(np.iinfo(np.int64).max)


class Product(_ProductDistribution):
    r"""Independent blocks of different families side by side: ``q(x) = Π_j q_j(x_j)``.

    .. math::  \log q(x) = \sum_j \log q_j(x_{S_j}), \qquad
               \frac{∂ \log q(x)}{∂ φ_{S_j}} = \frac{∂ \log q_j(x_{S_j})}{∂ φ_j}

    with ``S_j = block_slices[j]``: the score of block ``j`` is that block's own score (the other
    factors do not depend on its parameters), so each block's accuracy and its handling of ``±inf``
    parameters are those of its family.

    Layout (see :mod:`refgrad.distributions.product`): ``params`` is the flat concatenation of the blocks'
    ``params.ravel()`` (C order), ``param_shape = (P,)``; a point is the flat float concatenation of
    the blocks' points (bits 0/1, categorical rows one-hot, raveled), ``event_shape = (P,)`` as well.
    Sampling draws one block of uniforms of shape ``(n, P)``, split by ``block_slices`` and handed to
    each block's ``from_uniforms`` (a categorical block's slice reshaped to ``(n, d, K)``).

    Parameters
    ----------
    *blocks : Bernoulli, Categorical or GaussianThreshold
        One or more instances (any K, any number of rows, families in any order; the same family may
        appear several times).  A Product is not a block.
    """

    family = "product"

    def __init__(self, *blocks):
        if len(blocks) == 0:
            raise ValueError("blocks must be one or more Bernoulli, Categorical or GaussianThreshold instances; "
                             "got none (write Product(Bernoulli(...), Categorical(...), ...))")
        for j, block in enumerate(blocks):
            if not isinstance(block, _BLOCK_TYPES):
                raise ValueError(f"blocks[{j}] must be a Bernoulli, Categorical or GaussianThreshold instance; got "
                                 f"{describe(block)} of type {type(block).__name__}")
        self.blocks = tuple(blocks)
        sizes = [int(np.prod(block.param_shape)) for block in blocks]
        ends = np.cumsum(sizes)
        self.block_slices = tuple(slice(int(e - s), int(e)) for s, e in zip(sizes, ends))
        params = np.concatenate([np.ravel(block.params) for block in blocks]).astype(np.float64)
        params.setflags(write=False)
        self._params = params
        # one entry per variable: (block index, first column, radix, P(value) table, categorical?)
        variables = []
        for j, block in enumerate(blocks):
            first = self.block_slices[j].start
            if isinstance(block, Categorical):
                for i in range(block.d):
                    variables.append((j, first + i * block.K, block.K, block._probs[i], True))
            else:
                p1, p0 = block._p1_p0()
                for i in range(block.d):
                    variables.append((j, first + i, 2, np.array([p0[i], p1[i]]), False))
        self._variables = variables
        radices = [v[2] for v in variables]
        strides, size = [], 1
        for r in reversed(radices):
            strides.append(size)
            size *= r
        self._strides = strides[::-1]  # Python ints: the first variable is the most significant digit
        self._size = size

    # ------------------------------------------------------------------ shape and layout
    def __repr__(self):
        return "Product(" + ", ".join(repr(block) for block in self.blocks) + ")"

    @property
    def params(self):
        """Flat parameters, the blocks' ``params.ravel()`` side by side, shape ``(P,)`` (read-only)."""
        return self._params

    @property
    def d(self):
        """Number of independent variables (bits and categorical rows, over all blocks)."""
        return len(self._variables)

    @property
    def event_shape(self):
        """Shape of one point: ``(P,)``, the flat layout of the blocks' points."""
        return self._params.shape

    @property
    def _noise_shape(self):
        return self._params.shape

    @property
    def support_size(self):
        """Number of configurations, the product of the variables' radices (a Python int)."""
        return self._size

    def _support_formula(self):
        return " * ".join(f"{block._radix}**{block.d}" for block in self.blocks)

    @property
    def layout(self):
        """One line per block: its slice, family and shape, e.g. ``"[0:2] bernoulli (2,)"``."""
        return "; ".join(f"[{s.start}:{s.stop}] {block.family} {tuple(block.param_shape)}"
                         for s, block in zip(self.block_slices, self.blocks))

    def unflatten(self, a):
        """Split an array of shape ``(..., P)`` (points, parameters, gradients) into the blocks' own shapes.

        Returns a tuple with one array per block, of shape ``(..., *block.param_shape)`` (views where possible).
        """
        arr = np.asarray(a)
        if arr.ndim < 1 or arr.shape[-1] != self._params.shape[0]:
            raise ValueError(f"a must have shape (..., {self._params.shape[0]}) (flat over the blocks: "
                             f"{self.layout}); got shape {arr.shape}")
        lead = arr.shape[:-1]
        return tuple(arr[..., s].reshape(lead + tuple(block.param_shape))
                     for s, block in zip(self.block_slices, self.blocks))

    @property
    def probs(self):
        """``E[x]`` per coordinate, shape ``(P,)``.

        ``P(bit = 1)`` for a bit, ``softmax(ℓ_i)`` for a categorical row.
        """
        return np.concatenate([np.ravel(block.probs) for block in self.blocks])

    # ------------------------------------------------------------------ points
    def _check_points(self, x, name="x"):
        """Points of shape ``(n, P)`` (or ``(P,)``) whose blocks are bits or one-hot rows."""
        arr = as_float_array(x, name, allow_bool=True)
        P = self._params.shape[0]
        if arr.ndim == 1 and arr.shape == (P,):
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != P:
            raise ValueError(f"{name} must have shape (n, {P}) (the blocks' points side by side, flat: "
                             f"{self.layout}); got shape {arr.shape}")
        bad = (arr != 0.0) & (arr != 1.0)
        if bad.any():
            raise ValueError(f"{name} must contain only 0 and 1 (bits and one-hot rows); got {_first_where(arr, bad)}")
        for j, (s, block) in enumerate(zip(self.block_slices, self.blocks)):
            if isinstance(block, Categorical):
                hot = arr[:, s].reshape(arr.shape[0], block.d, block.K).sum(axis=2)
                if np.any(hot != 1.0):
                    row, var = first_index(hot != 1.0)
                    cols = slice(s.start + var * block.K, s.start + (var + 1) * block.K)
                    raise ValueError(
                        f"{name} must be one-hot in each categorical row; sample {row}, block {j} (categorical), "
                        f"row {var} (columns {cols.start}:{cols.stop}) is {arr[row, cols].tolist()}")
        return arr

    def _blocks_of(self, x):
        """The blocks' slices of checked points ``x`` (n, P), each in its family's layout."""
        n = x.shape[0]
        return [x[:, s].reshape((n,) + tuple(block.event_shape)) for s, block in zip(self.block_slices, self.blocks)]

    def from_uniforms(self, u):
        """Points for uniforms ``u`` of shape ``(n, P)``: each block's ``from_uniforms`` on its slice, flattened."""
        u = _check_uniforms(u, self._params.shape[0])
        n = u.shape[0]
        parts = [block.from_uniforms(ub).reshape(n, -1) for ub, block in zip(self._blocks_of(u), self.blocks)]
        return np.concatenate(parts, axis=1)

    def log_prob(self, x):
        """``Σ_j log q_j(x_j)``, shape ``(n,)``, for points ``x`` of shape ``(n, P)`` (or ``(P,)``)."""
        x = self._check_points(x)
        parts = [block.log_prob(xb) for xb, block in zip(self._blocks_of(x), self.blocks)]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def score(self, x):
        """``∂ log q(x)/∂ params``, shape ``(n, P)``: each block's own score on its slice, flattened."""
        x = self._check_points(x)
        n = x.shape[0]
        return np.concatenate([block.score(xb).reshape(n, -1) for xb, block in zip(self._blocks_of(x), self.blocks)],
                              axis=1)

    # ------------------------------------------------------------------ enumeration
    def _digits(self, start, stop):
        """Mixed-radix digits (m, V) of the indices [start, stop), first variable most significant.

        A transposed view of a variable-major array, so that each variable's digits are contiguous.
        """
        big = stop > _INT64_MAX  # indices beyond int64 (a support larger than 2**63): Python integers
        idx = np.arange(start, stop, dtype=object if big else np.int64)
        out = np.empty((len(self._variables), stop - start), dtype=np.int64)
        for v, (stride, variable) in enumerate(zip(self._strides, self._variables)):
            if not big and stride > _INT64_MAX:
                out[v] = 0  # every index is below this variable's stride
            else:
                out[v] = (idx // stride) % variable[2]
        return out.T

    def _configs_from_digits(self, digits):
        out = np.zeros((digits.shape[0], self._params.shape[0]))
        categorical = np.array([v[4] for v in self._variables], dtype=bool)
        first = np.array([v[1] for v in self._variables], dtype=np.int64)
        # a bit's column holds its digit; a categorical row's column first + digit holds 1 (variable-major)
        digits = digits.T
        where = first[:, None] + np.where(categorical[:, None], digits, 0)
        where += np.arange(digits.shape[1], dtype=np.int64)[None, :] * out.shape[1]
        out.reshape(-1)[where.reshape(-1)] = np.where(categorical[:, None], 1.0, digits).reshape(-1)
        return out

    def _probs_of_digits(self, digits):
        q = np.ones(digits.shape[0])
        digits = digits.T  # variable-major (contiguous rows from _digits)
        for v, (_, _, _, table, _) in enumerate(self._variables):  # variable by variable, as the single families do
            q *= table[digits[v]]
        return q

    def index_of(self, x):
        """Enumeration indices (``int64``, or Python ints beyond 2**63) of the points ``x`` of shape ``(n, P)``."""
        x = self._check_points(x)
        total = np.zeros(x.shape[0], dtype=object if self._size > _INT64_MAX else np.int64)
        for stride, (_, first, radix, _, categorical) in zip(self._strides, self._variables):
            digit = np.argmax(x[:, first:first + radix], axis=1) if categorical else x[:, first].astype(np.int64)
            total += digit.astype(total.dtype) * stride
        return total

    def _sample_breakpoints(self):
        """The blocks' break points side by side, or ``"argmax"`` when a block is categorical."""
        parts = [block._sample_breakpoints() for block in self.blocks]
        return "argmax" if any(isinstance(part, str) for part in parts) else np.concatenate(parts, axis=0)

    def _mean_and_vjp(self):
        """The blocks' means side by side and the block-diagonal VJP (flat layout)."""
        pairs = [block._mean_and_vjp() for block in self.blocks]
        zbar = np.concatenate([np.ravel(z) for z, _ in pairs])

        def vjp(gz):
            return np.concatenate([np.ravel(v(g)) for (_, v), g in zip(pairs, self.unflatten(gz))], axis=-1)

        return zbar, vjp

    def _centred(self, b):
        """``b − E[b]`` block by block, flat."""
        n = b.shape[0]
        return np.concatenate([block._centred(part).reshape(n, -1)
                               for block, part in zip(self.blocks, self.unflatten(b))], axis=1)

    def _flip_weights(self):
        """``(c, active)``, shape ``(P,)``: the blocks' flip weights side by side (:func:`refgrad.exact.gradient`)."""
        pairs = [block._flip_weights() for block in self.blocks]
        return (np.concatenate([np.ravel(c) for c, _ in pairs]),
                np.concatenate([np.ravel(a) for _, a in pairs]))
