r"""Fused row kernels: the hot path of :func:`refgrad.estimate` for built-in objectives.

An estimator whose :class:`~refgrad.estimators.EstimatorSpec` has a ``fused`` hook
returns, for a distribution, a built-in objective and checked options, a
:class:`FusedPlan`: one Numba kernel that reads one row of uniforms and writes one
row of estimates, computing the sample, the relaxations, the objective's value and
gradient and the combination inline.  No intermediate ``(n, d)`` array is formed
and nothing is checked on intermediates: the inputs were checked once at the
public boundary.

Noise.  The per-sample fields of an estimator's layout are packed side by side in
one row of ``width`` uniforms (field by field, in layout order, each flattened in C
order): row ``i`` of the block holds every uniform of estimate ``i``.
:meth:`EstimatorSpec.draw_noise` draws this block with one call of
:func:`refgrad.random.uniform` and hands out its columns as the fields, and the
fused path draws the same block in chunks of rows from the same Generator.  The
Generator's stream does not depend on how it is split into calls, so a fixed seed
gives the same uniforms for any chunk size, and the estimates equal those of
passing the drawn ``noise=`` dict.

Threads.  Rows are independent, so a chunk is split into contiguous row ranges run
by Python threads over the GIL-free kernels (the thread count is Numba's:
``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``).  Every row is computed by the
same arithmetic whatever the split: the estimates are bit-identical for any number
of threads.  Python threads rather than ``prange``: Numba's OpenMP layer aborts a
process forked after a parallel region, and its workqueue layer aborts on
concurrent calls from threads (see :mod:`refgrad._oracle.gray`).  While the threads work
on one chunk the calling thread draws the next (the Generator releases the GIL).

Objectives.  :class:`~refgrad.objectives.SquaredDistance` and
:class:`~refgrad.objectives.Linear` (exactly these classes, not subclasses) carry
a row form ``(kind, parameters)`` evaluated by :func:`objective_value` and
:func:`objective_grad`; their array methods are built on the same row functions,
so a formula exists once.  Any other objective takes the batched path.

Inside ``with fused_kernels(False):`` :func:`refgrad.estimate` takes the batched,
stage-by-stage path even where a fused kernel exists (tests compare the two).
"""
import contextvars
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Tuple

import numba as nb
import numpy as np

from .._core.jit import jit, row_jit
from .._core.switches import switched
from ..objectives import objective_row
from ..objectives.rows import objective_grad, objective_value
from ..random.noise import _normalised_row, gumbel_argmax

__all__ = [
    "fused_kernels",
    "enabled",
    "CHUNK_FLOATS",
    "FusedPlan",
    "objective_row",
    "objective_value",
    "objective_grad",
    "run",
]

#: Whether :meth:`EstimatorSpec.fused_plan` may return a plan (see :func:`fused_kernels`).
_ENABLED = contextvars.ContextVar("refgrad_fused_kernels", default=True)


def fused_kernels(enabled):
    """Within the ``with`` block, use the fused kernels where an estimator has one (True) or not (False).

    The batched path computes the same estimates stage by stage (to rounding; bit for bit for most
    estimators), so this only chooses the implementation.  The choice is held in a
    :class:`contextvars.ContextVar`: it applies to the current thread (or asyncio task) and is
    restored on leaving the block, also when it raises.

    Parameters
    ----------
    enabled : bool
        True: fused kernels (the default outside any block); False: the batched path.  Anything else raises
        ``InputTypeError`` (a ``TypeError`` and a ``ValueError``).
    """
    return switched(_ENABLED, enabled)


def enabled():
    """Whether fused kernels are in use here (see :func:`fused_kernels`)."""
    return _ENABLED.get()


#: Uniforms per chunk of rows drawn at once (rounded to whole rows, at least :data:`MIN_CHUNK_ROWS`).
CHUNK_FLOATS = 1 << 19
#: Fewest rows in one chunk.
MIN_CHUNK_ROWS = 64
#: Fewest uniforms a thread is given; smaller chunks run on the calling thread (handing work to threads has a
#: fixed cost per call: docs/estimators-measured.md).
MIN_FLOATS_PER_THREAD = 1 << 14


class FusedPlan(NamedTuple):
    """One fused kernel bound to its arguments.

    ``kernel(U, out, start, stop, *args)`` writes ``out[i]`` (flattened parameter
    shape) for the rows ``start <= i < stop`` of the noise block ``U`` (``(c, width)``);
    it must be ``nogil`` and write nothing else.
    """

    kernel: Callable
    args: Tuple
    width: int
    size: int


# ----------------------------------------------------------------------------- noise


def per_sample_fields(layout):
    """``[(name, shape, offset, size)]`` of the per-sample fields in their packed row."""
    fields = []
    offset = 0
    for nf in layout:
        if nf.per_sample:
            size = int(np.prod(nf.shape, dtype=np.int64))
            fields.append((nf.name, tuple(nf.shape), offset, size))
            offset += size
    return fields, offset


def pack(layout, noise, n):
    """The ``(n, width)`` block holding the per-sample fields of ``noise`` side by side."""
    fields, width = per_sample_fields(layout)
    if len(fields) == 1:
        name = fields[0][0]
        return np.ascontiguousarray(noise[name], dtype=np.float64).reshape(n, width)
    block = np.empty((n, width))
    for name, _, offset, size in fields:
        block[:, offset:offset + size] = np.asarray(noise[name], dtype=np.float64).reshape(n, size)
    return block


def unpack(layout, block):
    """The per-sample fields of a packed block, each a C-contiguous ``(n, *shape)`` array."""
    fields, _ = per_sample_fields(layout)
    n = block.shape[0]
    if len(fields) == 1:
        name, shape, _, _ = fields[0]
        return {name: block.reshape((n,) + shape)}
    return {name: np.ascontiguousarray(block[:, o:o + s]).reshape((n,) + shape) for name, shape, o, s in fields}


def chunk_rows(width, rows=None):
    """Rows per chunk for rows of ``width`` uniforms (``rows`` overrides :data:`CHUNK_FLOATS`)."""
    if rows is not None:
        return max(1, int(rows))
    return max(MIN_CHUNK_ROWS, CHUNK_FLOATS // max(1, int(width)))


# ----------------------------------------------------------------------------- running


_POOL = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(threads):
    """The module's worker pool with at least ``threads`` threads, kept between calls.

    Starting threads costs more than running them (docs/estimators-measured.md).  A forked child starts
    without one (its copy's threads do not exist).
    """
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < threads:
            old = _POOL
            _POOL, _POOL_SIZE = ThreadPoolExecutor(threads, thread_name_prefix="refgrad-fused"), threads
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def _forget_pool():
    global _POOL, _POOL_SIZE, _POOL_LOCK
    _POOL, _POOL_SIZE, _POOL_LOCK = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _thread_count():
    """Threads for the fused kernels: Numba's setting (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``)."""
    return int(nb.get_num_threads())


def _edges(rows, threads):
    return [rows * t // threads for t in range(threads + 1)]


@jit
def _cells_to_uniform_rows(cells, U, start, stop):
    """``U[i] = (2 cells[i] + 1) / 2**53`` for rows ``start <= i < stop``: :func:`refgrad.random.uniform`'s map."""
    for i in range(start, stop):
        for e in range(cells.shape[1]):
            U[i, e] = (2.0 * float(cells[i, e]) + 1.0) * 2.0**-53


@jit
def _first_nonfinite(out, start, stop):
    """Flat index of the first non-finite entry of rows ``start <= i < stop`` of ``out``, or -1."""
    for i in range(start, stop):
        for e in range(out.shape[1]):
            if not math.isfinite(out[i, e]):
                return i * out.shape[1] + e
    return -1


def _rows_task(plan, cells, U, out, start, stop):
    """Uniforms from the cells (if drawn), the kernel, and the finiteness check, on rows ``start:stop``."""
    if cells is not None:
        _cells_to_uniform_rows(cells, U, start, stop)
    plan.kernel(U, out, start, stop, *plan.args)
    return _first_nonfinite(out, start, stop)


def _launch(plan, pool, threads, cells, U, out):
    """Start the row ranges of one chunk; returns a list of futures, or of results if run inline."""
    rows = U.shape[0]
    use = min(threads, max(1, (rows * max(1, plan.width)) // MIN_FLOATS_PER_THREAD))
    if pool is None or use <= 1:
        return [_rows_task(plan, cells, U, out, 0, rows)]
    edges = _edges(rows, use)
    return [pool.submit(_rows_task, plan, cells, U, out, edges[t], edges[t + 1]) for t in range(use)]


def _wait(jobs, offset, bad):
    """The first non-finite flat index so far (``bad``, -1 for none), updated by one chunk's results."""
    for job in jobs:
        found = job if isinstance(job, int) else job.result()
        if found >= 0 and bad < 0:
            bad = offset + found
    return bad


def _draw_cells(gen, rows, width):
    """The integers behind :func:`refgrad.random.uniform` for a ``(rows, width)`` draw (same Generator call)."""
    return gen.integers(0, 1 << 52, size=(rows, width), dtype=np.int64)


def run(plan, n, gen=None, block=None, rows=None, out=None):
    """Estimates ``(n, plan.size)`` from the plan, drawing uniforms from ``gen`` or reading ``block``.

    Returns ``(out, bad)``: ``bad`` is the flat index of the first non-finite
    estimate, or -1.  With ``gen`` the uniforms are drawn in chunks of
    :func:`chunk_rows` rows by the same Generator call as
    :func:`refgrad.random.uniform` (its integer cells; the worker threads map them to
    uniforms), the next chunk drawn while the threads compute the current one.  The
    result does not depend on the chunk size or the thread count, bit for bit.
    ``out`` (``(n, plan.size)``, C-contiguous) receives the estimates if given.
    """
    out = np.empty((n, plan.size)) if out is None else out
    width = plan.width
    step = chunk_rows(width, rows)
    threads = _thread_count()
    parallel = threads > 1 and n * max(1, width) >= 2 * MIN_FLOATS_PER_THREAD
    pool = _pool(threads) if parallel else None
    bad = -1
    size = plan.size
    if block is not None:
        for start in range(0, n, step):
            stop = min(n, start + step)
            bad = _wait(_launch(plan, pool, threads, None, block[start:stop], out[start:stop]), start * size, bad)
        return out, bad
    start = 0
    cells = _draw_cells(gen, min(step, n), width)
    buffers = [np.empty((cells.shape[0], width)), np.empty((cells.shape[0], width))]
    which = 0
    while start < n:
        stop = start + cells.shape[0]
        U = buffers[which][: cells.shape[0]]
        jobs = _launch(plan, pool, threads, cells, U, out[start:stop])
        nxt = _draw_cells(gen, min(step, n - stop), width) if stop < n else None
        bad = _wait(jobs, start * size, bad)
        start, cells, which = stop, nxt, 1 - which
    return out, bad


# ----------------------------------------------------------------------------- shared row helpers


@jit
def normalised_logits(logits):
    """Each row of ``logits`` (d, K) as :func:`refgrad.random.categorical_gumbel_max` normalises it."""
    d, K = logits.shape
    lg = np.empty((d, K))
    for j in range(d):
        _normalised_row(logits[j], lg[j])
    return lg


@row_jit
def bernoulli_bits(u, offset, thr, z):
    """``z[j] = 1[u[offset + j] > thr[j]]`` (``thr = σ(−ℓ)``), as ``Bernoulli.from_uniforms``."""
    for j in range(thr.size):
        z[j] = 1.0 if u[offset + j] > thr[j] else 0.0


@row_jit
def categorical_one_hot(u, offset, lg, z, arg):
    """Gumbel-max one-hot rows ``z`` (flat ``d·K``) and categories ``arg`` (d,) from ``u[offset:offset + d·K]``."""
    d, K = lg.shape
    for j in range(d):
        a = gumbel_argmax(lg, u, j, K, offset + j * K)
        arg[j] = a
        for k in range(K):
            z[j * K + k] = 1.0 if k == a else 0.0
