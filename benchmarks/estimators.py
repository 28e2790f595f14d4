"""Estimates per second: refgrad, the NumPy and PyTorch versions on the same uniforms, and the noise floor.

For each (estimator, family): draw noise for ``n`` estimates; check that the NumPy and
torch versions equal ``refgrad.estimate(..., noise=noise)`` on the first rows to
:data:`benchmarks.cases.TOLERANCE` (a disagreement is reported and not timed); then time
each implementation on the whole noise, ``reps`` calls per timed run so that a run
lasts at least ``min_seconds``, best of ``repeats`` runs (``n`` itself is capped so that
the noise of one call stays under :data:`NOISE_CAP`).  refgrad, NumPy and torch get the
noise (``refgrad.estimate(..., noise=noise)``); the floor draws its own noise of ``n``
rows per call (:mod:`benchmarks.floor`), so it is compared with ``refgrad_rng``,
``refgrad.estimate(name, dist, f, n, rng=generator)``, which draws too.
"""
import math
import time

import numpy as np

import refgrad

from . import numpy_impl, torch_impl
from .cases import ESTIMATOR_NAMES, FAMILIES, TOLERANCE, agreement, head, problem
from .floor import run_floor

__all__ = ["run"]

#: per-sample noise of one timed call is capped at this many bytes (n is reduced, reps raised)
NOISE_CAP = 256 << 20
CHECK_ROWS = 256


def _timed(fn, reps):
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return time.perf_counter() - start


def _rate(fn, n, min_seconds, repeats):
    """(estimates per second, reps): calibrate from one call, then best of ``repeats`` timed runs."""
    once = _timed(fn, 1)
    reps = max(1, math.ceil(min_seconds / max(once, 1e-9)))
    best = min(_timed(fn, reps) for _ in range(repeats))
    return n * reps / best, reps


def _implementations(p, noise, rng):
    calls = {
        "refgrad": lambda: p.refgrad(noise),
        "numpy": lambda: numpy_impl.estimate(p.name, p.logits, p.target, noise, **p.options),
    }
    if torch_impl.available() and p.name in torch_impl.IMPLEMENTATIONS:
        calls["torch"] = lambda: torch_impl.estimate(p.name, p.logits, p.target, noise, **p.options)
    n = next(iter(noise.values())).shape[0]
    calls["refgrad_rng"] = lambda: refgrad.estimate(p.name, p.dist, p.objective, n, rng=rng, **p.options)
    calls["floor"] = lambda: run_floor(p, n, rng)
    return calls


def _check(p, noise, row):
    """Agreement of the NumPy and torch versions with refgrad on the first rows; True where they agree."""
    small = head(noise, CHECK_ROWS)
    ref = p.refgrad(small)
    ok = {}
    row["error_numpy"] = agreement(ref, numpy_impl.estimate(p.name, p.logits, p.target, small, **p.options))
    ok["numpy"] = row["error_numpy"] <= TOLERANCE
    if not torch_impl.available():
        row["torch_note"] = "torch not installed"
    elif p.name not in torch_impl.IMPLEMENTATIONS:
        row["torch_note"] = torch_impl.NOT_WRITTEN[p.name]
    else:
        row["error_torch"] = agreement(ref, torch_impl.estimate(p.name, p.logits, p.target, small, **p.options))
        ok["torch"] = row["error_torch"] <= TOLERANCE
    return ok


def one(name, label, n_start, min_seconds, repeats, seed=0):
    """The result row of one (estimator, family)."""
    p = problem(name, label, seed)
    row = {"estimator": name, "family": label}
    if not p.supported:
        row["note"] = (f"not run: refgrad's {name} supports {', '.join(sorted(p.spec.families))} "
                       f"variables, not {p.family}")
        return row
    n = max(CHECK_ROWS, min(n_start, NOISE_CAP // p.bytes_per_sample()))
    rng = np.random.default_rng(seed)
    noise = p.draw(n, rng)
    ok = _check(p, noise, row)
    row["n"] = n
    for impl, fn in _implementations(p, noise, rng).items():
        if impl in ok and not ok[impl]:
            row[f"{impl}_note"] = f"disagrees with refgrad ({row['error_' + impl]:.2e} > {TOLERANCE:g}): not timed"
            continue
        rate, reps = _rate(fn, n, min_seconds, repeats)
        row[f"{impl}_per_s"] = rate
        row[f"{impl}_reps"] = reps
    for impl in ("numpy", "torch"):
        if f"{impl}_per_s" in row and "refgrad_per_s" in row:
            row[f"refgrad_over_{impl}"] = row["refgrad_per_s"] / row[f"{impl}_per_s"]
    if "floor_per_s" in row and "refgrad_rng_per_s" in row:  # both draw their uniforms
        row["refgrad_over_floor"] = row["refgrad_rng_per_s"] / row["floor_per_s"]
    return row


def run(names=ESTIMATOR_NAMES, labels=tuple(FAMILIES), n_start=20000, min_seconds=0.5, repeats=3, progress=None):
    rows = []
    for name in names:
        for label in labels:
            row = one(name, label, n_start, min_seconds, repeats)
            if progress is not None:
                progress(row)
            rows.append(row)
    return rows
