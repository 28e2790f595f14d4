"""Replication tasks of the calibration case: independent, picklable, seeded per task.

The calibration case (:mod:`validation.cases.calibration`) repeats a test on R replications of
n estimates.  The replications of one setting are split into tasks of :data:`CHUNK` consecutive
replications; task i draws its estimates from the i-th ``spawn`` child of the setting's
``SeedSequence`` (:meth:`validation.core.Context.seed_sequence`) and returns only small per-replication
results (p-values, decisions).  A task's result therefore depends on (setting, i) alone, never on the
process, thread or cluster node that runs it or on the order in which tasks run, and the case's numbers
are bit-identical inline, on the process pool and on Dask (``Context.map``).
"""
import numpy as np
from scipy import special

import refgrad
from refgrad import stats

__all__ = ["CHUNK", "chunks", "unbiasedness_chunk", "variance_chunk", "merge"]

#: Replications per task (fixed: the seeds, hence the numbers, depend on it).
CHUNK = 25


def chunks(seed_sequence, reps, size=CHUNK):
    """``[(start, count, seed), ...]``: the tasks covering replications 0..reps−1, ``size`` each.

    The last may be shorter; task i is seeded with the i-th ``spawn`` child of ``seed_sequence``.
    """
    k = -(-int(reps) // int(size))
    return [(i * size, min(size, reps - i * size), s) for i, s in enumerate(seed_sequence.spawn(k))]


def merge(parts):
    """Concatenate the per-task result dicts (in task order) key by key; ``None`` values stay ``None`` if any is."""
    out = {}
    for key in parts[0]:
        vals = [p[key] for p in parts]
        if key == "values":
            out[key] = None if any(v is None for v in vals) else np.unique(np.concatenate(vals))
        elif key.startswith("first_"):
            out[key] = vals[0]
        elif np.ndim(vals[0]) == 0:
            out[key] = sum(vals)
        else:
            out[key] = np.concatenate(vals)
    return out


def _estimates(name, dist, f, n, count, rng, options):
    g = refgrad.estimate(name, dist, f, n * count, rng=rng, **options)
    return g.reshape((count, n) + g.shape[1:])


def unbiasedness_chunk(task):
    """``unbiasedness_test`` on ``count`` replications of n estimates of one estimator.

    ``task = (name, dist, f, options, n, (start, count, seed), target, test_options)``.  Returns per
    replication the Hotelling, Holm and combined p-values, the decision and the heavy-tail flag, and
    ``values``: the distinct estimates when the estimator is one-dimensional and takes at most two values
    (``None`` otherwise), for the exact lattice law of the p-value.
    """
    name, dist, f, options, n, (_, count, seed), target, test_options = task
    g = _estimates(name, dist, f, n, count, np.random.default_rng(seed), options)
    res = [stats.unbiasedness_test(g[r], target, **test_options) for r in range(count)]
    values = None
    if g.shape[-1] == 1 and g.ndim == 3:
        u = np.unique(g)
        values = u if u.size <= 2 else None
    return {"hotelling": np.array([r.hotelling_pvalue for r in res], dtype=float),
            "holm": np.array([r.holm_pvalue for r in res], dtype=float),
            "pvalue": np.array([r.pvalue for r in res], dtype=float),
            "reject": np.array([bool(r.reject) for r in res]),
            "heavy": np.array([bool(r.heavy_tail.unreliable) for r in res]),
            "values": values}


def _pairs(spec, n, count, rng):
    """[(a, b, paired), ...] of shape (count, n, p) each, and the first replication's correlation (or None)."""
    kind = spec[0]
    if kind == "same":  # independent samples of one estimator: equal variances exactly
        _, name, dist, f, options = spec
        g = refgrad.estimate(name, dist, f, 2 * n * count, rng=rng, **options)
        g = g.reshape((2, count, n) + g.shape[1:])
        return [(g[0], g[1], False)], None
    if kind == "st_gr":  # straight-through and Gumbel-Rao k = 1 on the same u: equal laws, correlated
        _, dist, f = spec
        u = refgrad.random.uniform(rng, (n * count, 1))
        v = refgrad.random.uniform(rng, (n * count, 1, 1))
        st = refgrad.estimate("straight_through", dist, f, noise={"u": u}, tau=0.5).reshape(count, n, 1)
        gr = refgrad.estimate("gumbel_rao", dist, f, noise={"u": u, "v": v}, tau=0.5, k=1).reshape(count, n, 1)
        return [(st, gr, True)], float(np.corrcoef(st[0, :, 0], gr[0, :, 0])[0, 1])
    if kind == "sym":  # the two coordinates of REINFORCE on an exchangeable problem: paired, and the misuse
        _, dist, f = spec
        g = refgrad.estimate("reinforce", dist, f, n * count, rng=rng).reshape(count, n, 2)
        return [(g[:, :, :1], g[:, :, 1:], True), (g[:, :, :1], g[:, :, 1:], False)], None
    raise ValueError(f"spec[0] must be 'same', 'st_gr' or 'sym'; got {kind!r}")


def variance_chunk(task):
    """``variance_test`` on ``count`` replications under equal variances.

    ``task = (spec, n, (start, count, seed), alpha, agreement_reps)``; ``spec`` names how the two samples
    are drawn (see :func:`_pairs`).  Per pair of samples: the two-sided statistics ``z`` and decisions, and
    the number of disagreements between the one-sided decisions read off ``z`` (p = Φ(z) for 'less', Φ(−z)
    for 'greater') and refgrad's own one-sided calls, on the replications with global index below
    ``agreement_reps``.
    """
    spec, n, (start, count, seed), alpha, agreement_reps = task
    pairs, corr = _pairs(spec, n, count, np.random.default_rng(seed))
    out = {"first_corr": corr if start == 0 else None}
    for j, (a, b, paired) in enumerate(pairs):
        res = [stats.variance_test(a[r], b[r], alternative="two-sided", paired=paired, alpha=alpha)
               for r in range(count)]
        z = np.array([r.statistic for r in res], dtype=float)
        out[f"z{j}"] = z
        out[f"two{j}"] = np.array([bool(r.reject) for r in res])
        checked = range(max(0, min(count, agreement_reps - start)))
        bad = 0
        for alt, decided in (("less", special.ndtr(z) < alpha), ("greater", special.ndtr(-z) < alpha)):
            own = [stats.variance_test(a[r], b[r], alternative=alt, paired=paired, alpha=alpha).reject
                   for r in checked]
            bad += int(sum(bool(o) != bool(d) for o, d in zip(own, decided)))
        out[f"disagree{j}"] = bad
    return out


def power_chunk(task):
    """Rejections of ``variance_test(DisARM, ARM, 'less', α)``, paired (same u) and independent (fresh u).

    ``task = (dist, f, n, (start, count, seed), alpha)``; returns the two rejection counts.
    """
    dist, f, n, (_, count, seed), alpha = task
    rng = np.random.default_rng(seed)
    u = refgrad.random.uniform(rng, (n * count, dist.d))
    u2 = refgrad.random.uniform(rng, (n * count, dist.d))
    a = refgrad.estimate("arm", dist, f, noise={"u": u}).reshape(count, n, -1)
    d = refgrad.estimate("disarm", dist, f, noise={"u": u}).reshape(count, n, -1)
    a2 = refgrad.estimate("arm", dist, f, noise={"u": u2}).reshape(count, n, -1)
    kp = sum(bool(stats.variance_test(d[r], a[r], "less", paired=True, alpha=alpha).reject) for r in range(count))
    ki = sum(bool(stats.variance_test(d[r], a2[r], "less", paired=False, alpha=alpha).reject) for r in range(count))
    return {"paired": int(kp), "independent": int(ki)}
