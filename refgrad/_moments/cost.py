"""Run-time estimate of :func:`refgrad.exact.moments`: refuse, before integrating, a run beyond ``max_seconds``.

The estimate is (number of estimator evaluations) × (seconds per evaluation).  The
count is exact: the nodes per axis of each 1-D rule multiplied over the noise
dimensions, summed over the pieces (they are part of each rule), the passes of the
piecewise rules, the samples an argmax field is conditioned on and the two levels
compared by the error estimate.  The rate is timed on ``_PROBE_NODES`` nodes of the
actual rule (best of 3 calls after a warm-up call, so Numba compilation is not
counted), unless the count alone decides: at most :data:`UNTIMED_EVALUATIONS` runs
untimed, and a count beyond ``max_seconds`` at :data:`MIN_SECONDS_PER_EVALUATION`
is refused without timing.
"""
import time

import numpy as np

from .base import MIN_LEVEL, _count_text, _dist_text
from .plan import _batches, _passes, _plan, _uniforms_for_sample
from .quadrature import tanh_sinh

__all__ = ["check_run_time", "conditional_draws_check", "MIN_SECONDS_PER_EVALUATION", "UNTIMED_EVALUATIONS"]

#: Seconds per estimator evaluation below every measured one (``docs/oracles-measured.md``): a plan above
#: ``max_seconds`` at this rate is refused without timing anything.
MIN_SECONDS_PER_EVALUATION = 1e-7
#: Plans of at most this many evaluations (about a second at the slowest measured rate) run without timing.
UNTIMED_EVALUATIONS = 10**6
_PROBE_NODES = 2048


def _levels(method, level):
    """The levels one call integrates at: the error estimate compares ``level`` with ``level − 1``."""
    return [level] if method == "piecewise" else [level, level - 1]


def _planned_evaluations(spec, dist, opts, method, level):
    """Number of estimator evaluations of the integration at ``level`` (both levels, every pass)."""
    total = 0
    for lvl in _levels(method, level):
        for rule, _, _ in _passes(spec, method):
            _, rules, _, _, outer = _plan(spec, dist, opts, method, lvl, rule)
            nodes = 1
            for r in rules:
                nodes *= len(r[0])
            total += nodes * len(outer)
    return total


def _seconds_per_evaluation(spec, dist, opts, method, level, fn):
    """Measured seconds per evaluation of ``fn``: one warm-up call (Numba compiles), then one timed call."""
    wts, noise = next(_batches(spec, dist, opts, method, level, _passes(spec, method)[0][0]))
    k = min(_PROBE_NODES, len(wts))
    probe = {name: np.ascontiguousarray(arr[:k]) for name, arr in noise.items()}
    fn({name: arr[:16] for name, arr in probe.items()})
    return _best_time(lambda: fn(probe)) / k


def _best_time(call, repeats=3):
    """Shortest of ``repeats`` wall-clock timings of ``call()`` (the least disturbed by other processes)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def check_run_time(spec, dist, opts, method, level, fn, max_seconds, default_level, count=None, timer=None):
    """Refuse (ValueError naming ``level`` and the estimate) a run estimated to take longer than ``max_seconds``.

    The estimate is evaluations × seconds per evaluation; the rate is the floor
    MIN_SECONDS_PER_EVALUATION when that already exceeds the limit, else a timing of
    ``fn`` on _PROBE_NODES nodes (skipped for plans of at most UNTIMED_EVALUATIONS).  ``count(level)`` and
    ``timer()`` replace the node count and the timing of the tensor-rule paths (conditional draws).
    """
    count = count or (lambda lvl: _planned_evaluations(spec, dist, opts, method, lvl))
    total = count(level)
    if max_seconds is None or total <= UNTIMED_EVALUATIONS:
        return
    rate, how = MIN_SECONDS_PER_EVALUATION, f"at least {MIN_SECONDS_PER_EVALUATION:g} s each"
    timed = total * rate <= max_seconds
    if timed:
        rate = timer() if timer else _seconds_per_evaluation(spec, dist, opts, method, level, fn)
        how = f"{rate:.2g} s each, timed on {_PROBE_NODES} nodes"
    seconds = total * rate
    if seconds <= max_seconds:
        return
    hint = ""
    if method != "piecewise":
        fits = [lvl for lvl in range(MIN_LEVEL, level) if count(lvl) * rate <= max_seconds]
        if fits:
            hint = f" (level={fits[-1]} needs {'about' if timed else 'at least'} {_duration(count(fits[-1]) * rate)})"
    shown = f"level={level}" + (" (the default)" if level == default_level else "")
    raise ValueError(
        f"exact moments of {spec.name!r} on dist={_dist_text(dist)} at {shown} need about "
        f"{_count_text(total)} evaluations of the estimator ({how}): {'about' if timed else 'at least'} "
        f"{_duration(seconds)}, beyond "
        f"max_seconds={max_seconds:g}. Pass a smaller level={hint}, or a larger max_seconds= (None: no limit) to "
        "run it anyway"
    )


def _duration(seconds):
    """Seconds as a readable duration."""
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def conditional_draws_check(spec, dist, f, one, field_name, fields, configs, probs, level, max_seconds,
                             default_level):
    """The run-time check of ``_conditional_draws_moments`` (the rule of :func:`check_run_time`)."""
    inner = next(nf for nf in fields if nf.name == field_name)
    live = int(np.sum(np.asarray(probs) > 0))
    dim = int(np.prod(inner.shape))

    def count(lvl):
        return sum(live * len(tanh_sinh(0.0, 1.0, v)[0]) ** dim for v in (lvl, lvl - 1))

    def noise(pts, u):
        out = {field_name: pts}
        for nf in fields:
            if nf.name != field_name:
                out[nf.name] = np.ascontiguousarray(np.broadcast_to(u, (len(pts),) + u.shape))
        return out

    def timer():
        x, _ = tanh_sinh(0.0, 1.0, level)
        k = min(_PROBE_NODES, len(x) ** dim)
        pts = np.ascontiguousarray(np.resize(x, k * dim).reshape((k,) + tuple(inner.shape)))
        u = _uniforms_for_sample(dist, next(c for c, p in zip(configs, probs) if p > 0))
        spec.compute(dist, f, noise(pts[:16], u), **one)
        return _best_time(lambda: spec.compute(dist, f, noise(pts, u), **one)) / k

    check_run_time(spec, dist, one, "quadrature", level, None, max_seconds, default_level, count=count,
                    timer=timer)
