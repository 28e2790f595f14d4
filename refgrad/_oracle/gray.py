r"""Gray-code enumeration kernels behind :mod:`refgrad.exact` for built-in objectives.

For a product distribution over ``V`` free variables (variable ``v`` takes one of
``R_v`` values of nonzero probability ``p_{v,r}``) and a separable objective
``f(b) = C + Σ_v g_v(b_v)`` (:class:`~refgrad.objectives.SquaredDistance`,
:class:`~refgrad.objectives.Linear`), one pass over the support accumulates

.. math::

    E_q[f] = \sum_b q(b) f(b), \qquad M = \sum_b q(b), \qquad
    M_{v,r} = \sum_{b:\, b_v = r} q(b),

from which :func:`refgrad.exact.expectation` and :func:`refgrad.exact.gradient`
are assembled (the gradient's expected flip differences ``E_q[D_j(b)]`` depend on
``b`` only through the variable ``j`` itself for these objectives:
``E_q[D_j] = Σ_r D_j(r) M_{j,r}``).

Walk.  Variables of probability one (``±inf`` logits, or a categorical row with
one possible category) are fixed and left out, so ``log q = −inf`` never occurs
and no configuration of probability zero through them is visited; their
contribution to ``f`` is the constant ``C``.  The free configurations are split
into ``B`` disjoint blocks by the values of the leading ``h`` variables, ``h`` the
smallest with ``Π_{v<h} R_v ≥ 64`` (``B`` depends on the problem only, never on
the thread count).  Within a block the remaining variables follow the reflected
mixed-radix Gray code (Knuth, TAOCP 7.2.1.1, Algorithm H's order; for bits the
binary reflected Gray code, Gray 1953): each step changes one variable by ``±1``.
After a step that changes variable ``v`` the prefix products
``P_{k+1} = P_k p_{k, b_k}`` and prefix sums ``S_{k+1} = S_k + g_k(b_k)`` are
recomputed from ``k = v`` on -- on average fewer than two levels per step -- so
``q(b) = P_V`` is exactly the left-to-right product of its factors (the same
floating-point number as :meth:`refgrad.distributions.Bernoulli.enumerate`
gives) and ``f(b) = S_V``: no rounding error accumulates along the walk.

Sums.  Each block accumulates its terms with Neumaier's compensated summation;
the blocks run in parallel (Python threads over the GIL-free kernel) and their partial sums are then added,
again compensated, in block order.  The result is bit-identical for any number
of threads.  Memory is ``O(B (2 + Σ_v R_v))``, independent of the support size.

Timings against the chunked path, with the command that measures them: ``docs/oracles-measured.md``.
"""
import math
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from .._core.jit import jit
from .._core.sums import _neumaier
from ..distributions import Bernoulli, Categorical
from ..objectives import Linear, SquaredDistance

__all__ = ["separable_tables", "walk_sums", "gray_order"]

#: Smallest number of blocks the support is split into (when it has that many configurations).
MIN_BLOCKS = 64
#: Supports smaller than this are walked on the calling thread (a thread pool costs ~0.2 ms per call).
PARALLEL_MIN_CONFIGURATIONS = 1 << 14


@jit
def _gray_advance(digits, direction, radix, lo, hi):
    """One step of the reflected mixed-radix Gray code on positions ``lo..hi-1`` (``hi-1`` fastest).

    Moves the fastest position that can move in its direction by ``±1`` and reverses the
    directions of the faster positions (all at an end).  Returns the position moved, or ``-1``
    once every configuration has been visited.
    """
    j = hi - 1
    while j >= lo:
        nxt = digits[j] + direction[j]
        if 0 <= nxt < radix[j]:
            digits[j] = nxt
            return j
        direction[j] = -direction[j]
        j -= 1
    return -1


@jit
def _block_head(block, radix, head, digits):
    """Digits of the leading ``head`` variables of block ``block`` (mixed radix, last one fastest)."""
    rest = block
    for v in range(head - 1, -1, -1):
        digits[v] = rest % radix[v]
        rest //= radix[v]


@jit
def _walk_block(block, radix, probs, values, constant, head, marginals, total, compensation):
    """Accumulate ``[Σ q f, Σ q, M_{v,r}...]`` over one block into ``total``/``compensation``."""
    V, R = probs.shape
    digits = np.zeros(V, dtype=np.int64)
    direction = np.ones(V, dtype=np.int64)
    _block_head(block, radix, head, digits)
    prod = np.empty(V + 1)
    acc = np.empty(V + 1)
    prod[0] = 1.0
    acc[0] = constant
    start = 0
    while True:
        for k in range(start, V):
            prod[k + 1] = prod[k] * probs[k, digits[k]]
            acc[k + 1] = acc[k] + values[k, digits[k]]
        q = prod[V]
        _neumaier(total, compensation, 0, q * acc[V])
        _neumaier(total, compensation, 1, q)
        if marginals:
            for v in range(V):
                _neumaier(total, compensation, 2 + v * R + digits[v], q)
        start = _gray_advance(digits, direction, radix, head, V)
        if start < 0:
            break


@jit
def _walk_range(radix, probs, values, constant, head, marginals, first, last, totals, compensations):
    """Per-block compensated sums of blocks ``first..last-1`` into rows of ``totals``/``compensations``."""
    width = totals.shape[1]
    for block in range(first, last):
        total = np.zeros(width)
        compensation = np.zeros(width)
        _walk_block(block, radix, probs, values, constant, head, marginals, total, compensation)
        totals[block, :] = total
        compensations[block, :] = compensation


def _thread_count():
    """Threads for the walk: Numba's setting (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``)."""
    return int(nb.get_num_threads())


def _walk_blocks(radix, probs, values, constant, head, nblocks, marginals):
    """Per-block compensated sums, shape ``(nblocks, width)`` each, blocks spread over threads.

    The kernel releases the GIL (``nogil``), so Python threads run the block ranges in parallel; the
    thread count is Numba's (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``).  Python threads rather
    than ``prange``: Numba's OpenMP threading layer aborts a process forked after a parallel region
    (``fork() called from a process already using GNU OpenMP``), and its workqueue layer aborts on
    concurrent calls from threads; the oracles must survive both.
    """
    V, R = probs.shape
    width = 2 + V * R if marginals else 2
    totals = np.zeros((nblocks, width))
    compensations = np.zeros((nblocks, width))
    threads = max(1, min(_thread_count(), nblocks))
    if float(np.prod(radix.astype(np.float64))) < PARALLEL_MIN_CONFIGURATIONS:
        threads = 1  # starting threads costs more than walking a small support (the blocks, and so the sums, are
        # the same either way)
    args = (radix, probs, values, float(constant), int(head), bool(marginals))
    if threads == 1:
        _walk_range(*args, 0, nblocks, totals, compensations)
        return totals, compensations
    edges = [nblocks * t // threads for t in range(threads + 1)]
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_walk_range, *args, edges[t], edges[t + 1], totals, compensations) for t in range(threads)]
        for job in jobs:
            job.result()
    return totals, compensations


@jit
def _reduce_blocks(totals, compensations):
    """Compensated sum of the blocks' partial sums, in block order (independent of threads)."""
    nblocks, width = totals.shape
    total = np.zeros(width)
    compensation = np.zeros(width)
    for b in range(nblocks):
        for p in range(width):
            _neumaier(total, compensation, p, totals[b, p])
            _neumaier(total, compensation, p, compensations[b, p])
    return total + compensation


@jit
def _gray_order(radix, head, nblocks):
    """Visited configurations (rows of digits) in walk order, block after block (tests)."""
    V = radix.shape[0]
    size = 1
    for v in range(V):
        size *= radix[v]
    out = np.empty((size, V), dtype=np.int64)
    row = 0
    for block in range(nblocks):
        digits = np.zeros(V, dtype=np.int64)
        direction = np.ones(V, dtype=np.int64)
        _block_head(block, radix, head, digits)
        while True:
            out[row, :] = digits
            row += 1
            if _gray_advance(digits, direction, radix, head, V) < 0:
                break
    return out


def _blocks(radix):
    """``(head, nblocks)``: the fewest leading variables whose configurations number ≥ MIN_BLOCKS."""
    head, nblocks = 0, 1
    while head < len(radix) and nblocks < MIN_BLOCKS:
        nblocks *= int(radix[head])
        head += 1
    return head, nblocks


def gray_order(radix):
    """The configurations (digits, shape ``(Π R, V)``) in the order the kernels visit them."""
    radix = np.ascontiguousarray(radix, dtype=np.int64)
    head, nblocks = _blocks(radix)
    return _gray_order(radix, head, nblocks)


def walk_sums(tables, marginals):
    """``(E f, M, M_{v,r} of shape (V, R) or None)`` from the tables of :func:`separable_tables`."""
    radix, probs, values, constant = tables
    head, nblocks = _blocks(radix)
    totals, compensations = _walk_blocks(radix, probs, values, constant, head, nblocks, bool(marginals))
    sums = _reduce_blocks(totals, compensations)
    margin = sums[2:].reshape(probs.shape) if marginals else None
    return float(sums[0]), float(sums[1]), margin


def _objective_parameter(obj, event_shape):
    """``("squared" | "linear", parameter broadcast to event_shape)``, or None when not separable here."""
    kind = {SquaredDistance: "squared", Linear: "linear"}.get(type(obj))
    if kind is None:
        return None
    param = obj.target if kind == "squared" else obj.weights
    try:
        if np.broadcast_shapes(param.shape, event_shape) != tuple(event_shape) or param.ndim > len(event_shape):
            return None
    except ValueError:
        return None
    return kind, np.broadcast_to(param, event_shape).astype(np.float64)


def _variable_values(kind, param_row, choices, K):
    """``g_v(c)`` for the categories ``choices`` of one variable (one-hot rows of length K, or bits if K is None)."""
    if K is None:  # bits: (c − t)² or c w
        c = np.asarray(choices, dtype=np.float64)
        with np.errstate(over="ignore"):  # an overflowing objective falls back to the general path
            return (c - param_row) * (c - param_row) if kind == "squared" else c * param_row
    if kind == "linear":
        return param_row[choices].copy()
    eye = np.eye(K)
    with np.errstate(over="ignore"):
        squares = [(eye[c] - param_row) * (eye[c] - param_row) for c in choices]
    try:
        return np.array([math.fsum(row) for row in squares])
    except OverflowError:  # a finite sum beyond the float range
        return np.full(len(squares), np.inf)


def separable_tables(dist, obj):
    """Walk tables for ``dist`` (exactly Bernoulli or Categorical) and ``obj``, or None if the fast path does not apply.

    Returns ``(tables, kind, param, choices)``: ``tables = (radix (V,), probs (V, R), values (V, R), C)``
    over the free variables, ``param`` the objective's parameter broadcast to the event shape, and
    ``choices[v]`` the original index and the possible values of free variable ``v``.
    """
    if type(dist) is Bernoulli:
        p1, p0 = dist._p1_p0()
        table = np.stack([p0, p1], axis=1)  # (d, 2): P(b_i = 0), P(b_i = 1)
        K = None
    elif type(dist) is Categorical:
        table = dist._probs
        K = dist.K
    else:
        return None
    found = _objective_parameter(obj, dist.event_shape)
    if found is None:
        return None
    kind, param = found
    constant_terms, radix, rows, vals, choices = [], [], [], [], []
    for i in range(table.shape[0]):
        possible = np.flatnonzero(table[i] > 0.0)
        g = _variable_values(kind, param[i], possible, K)
        if possible.size == 1:  # probability one: fixed
            constant_terms.append(float(g[0]))
            continue
        radix.append(possible.size)
        rows.append(table[i][possible])
        vals.append(g)
        choices.append((i, possible))
    R = max(radix, default=1)
    V = len(radix)
    probs = np.zeros((V, R))
    values = np.zeros((V, R))
    for v in range(V):
        probs[v, : radix[v]] = rows[v]
        values[v, : radix[v]] = vals[v]
    try:
        constant = math.fsum(constant_terms)
    except OverflowError:
        return None
    if not (np.isfinite(values).all() and math.isfinite(constant)):
        return None  # overflowing objective: the general path reports it
    return (np.array(radix, dtype=np.int64), probs, values, constant), kind, param, choices
