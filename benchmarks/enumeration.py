r"""Exact enumeration: ``refgrad.exact`` against a straightforward vectorised NumPy enumeration.

Problem: ``d`` Bernoulli bits with seeded logits ``ℓ ~ N(0, 1.5²)`` and
``f(b) = Σ_i (b_i − 0.45)²``.  The NumPy version builds all ``2^d`` configurations as
one float64 array ``B`` (``2^d × d``) and computes

.. math::  \log q = B \log σ(ℓ) + (1 − B) \log σ(−ℓ), \qquad
           E = q^\top f(B), \qquad ∇_ℓ E = B^\top (q ⊙ f(B)) − σ(ℓ)\, E

(the score-function identity ``Σ_b q(b) f(b) (b − σ(ℓ))``).  It needs about
``3 · 8 · d · 2^d`` bytes of temporaries and is skipped above :data:`NUMPY_MEMORY_CAP`.
Peak memory is measured with :mod:`tracemalloc` (NumPy reports its buffers to it;
allocations inside Numba kernels are not traced).
"""
import time
import tracemalloc

import numpy as np
from scipy import special

import refgrad
from refgrad import exact
from refgrad.objectives import SquaredDistance

__all__ = ["NUMPY_MEMORY_CAP", "numpy_expectation", "numpy_gradient", "problem", "run"]

#: largest estimated NumPy working set (bytes) that is run
NUMPY_MEMORY_CAP = 1 << 30
TARGET = 0.45


def problem(d, seed=0):
    """The Bernoulli distribution and objective of the enumeration benchmark."""
    logits = np.random.default_rng(seed).normal(0.0, 1.5, size=d)
    return refgrad.Bernoulli(logits), SquaredDistance(TARGET)


def _configs(d):
    return ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(np.float64)


def _weights_and_values(logits):
    B = _configs(logits.size)
    log_q = B @ np.log(special.expit(logits)) + (1.0 - B) @ np.log(special.expit(-logits))
    diff = B - TARGET
    return B, np.exp(log_q), (diff * diff).sum(axis=1)


def numpy_expectation(logits):
    """E_q[f] by enumerating all 2^d configurations at once."""
    _, q, fv = _weights_and_values(np.asarray(logits, dtype=np.float64))
    return float(q @ fv)


def numpy_gradient(logits):
    """∇_ℓ E_q[f] = Σ_b q(b) f(b) (b − σ(ℓ)), all configurations at once."""
    logits = np.asarray(logits, dtype=np.float64)
    B, q, fv = _weights_and_values(logits)
    qf = q * fv
    return B.T @ qf - special.expit(logits) * qf.sum()


def numpy_bytes(d):
    """Estimated NumPy working set: B, 1 − B and B − t as float64."""
    return 3 * 8 * d * 2 ** d


def _best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(sizes, repeats=3):
    """One result row per d: time (best of ``repeats``) and peak traced memory of each method."""
    rows = []
    for d in sizes:
        dist, f = problem(d)
        calls = {
            "refgrad expectation": lambda: exact.expectation(dist, f),
            "refgrad gradient": lambda: exact.gradient(dist, f),
        }
        skipped = numpy_bytes(d) > NUMPY_MEMORY_CAP
        if not skipped:
            calls["numpy expectation"] = lambda: numpy_expectation(dist.logits)
            calls["numpy gradient"] = lambda: numpy_gradient(dist.logits)
        exact.gradient(dist, f)  # compile / warm both
        exact.expectation(dist, f)
        row = {"d": d, "support": 2 ** d, "numpy_estimated_bytes": numpy_bytes(d)}
        for key, fn in calls.items():
            slug = key.replace(" ", "_")
            row[slug + "_s"] = _best_time(fn, repeats)
            row[slug + "_peak_bytes"] = _peak_bytes(fn)
        if skipped:
            row["numpy_skipped"] = (f"estimated {numpy_bytes(d) / 2**20:.0f} MiB of temporaries > cap "
                                    f"{NUMPY_MEMORY_CAP / 2**20:.0f} MiB")
        else:
            row["speedup_expectation"] = row["numpy_expectation_s"] / row["refgrad_expectation_s"]
            row["speedup_gradient"] = row["numpy_gradient_s"] / row["refgrad_gradient_s"]
        rows.append(row)
    return rows
