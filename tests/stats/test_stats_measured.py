"""The measurements behind docs/stats-calibration.md (``slow``; run with ``-m slow -s`` to see the tables).

Each test prints the rows of one table of that page, prefixed ``TABLE <name>``, and asserts only the
qualitative claim that the docstrings of :mod:`refgrad.stats` keep (the numbers themselves live in
the page, not in the docstrings, because they depend on the seeds and, for the timings, on the
machine).  Regenerate the page's tables with::

    python -m pytest -p no:xdist -m slow -s tests/stats/test_stats_measured.py

Seeds are fixed per test.
"""
import time
import warnings

import numpy as np
import pytest
from scipy import special
from scipy.stats import f as fdist

import refgrad
from refgrad import exact, stats
from refgrad.distributions import Bernoulli
from refgrad.objectives import SquaredDistance
from refgrad.stats import calibration as cal

# the skewed problem of the calibration grid in tests/stats/test_calibration.py
SKEWED_DIST = Bernoulli(np.array([-1.5, 0.3, 2.0]))
SKEWED_F = SquaredDistance(0.45)
ALPHAS = (0.001, 0.01, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reinforce", "disarm", "rebar"])
def test_normal_theory_false_alarm_rates(name):
    # 4000 null replications per n of unbiasedness_test(calibration="asymptotic"), seed 700 + n: the F / t
    # references alone on the skewed 3-bit problem.  The combined decision is min(1, 2 min(p_T2, p_Holm)),
    # which is what method="both" computes when more than one coordinate varies (always here).  Also the
    # mean Edgeworth estimate of the Hotelling part's size at alpha = 0.001 (method="hotelling").
    reps = 4000
    target = exact.gradient(SKEWED_DIST, SKEWED_F)
    worst = 0.0
    for n in (50, 100, 400):
        g = refgrad.estimate(name, SKEWED_DIST, SKEWED_F, n * reps, rng=700 + n).reshape(reps, n, -1)
        pv = np.empty((reps, 2))
        size = np.empty(reps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.CalibrationWarning)
            for r in range(reps):
                res = stats.unbiasedness_test(g[r], target, alpha=0.001, method="hotelling",
                                              calibration="asymptotic")
                pv[r] = res.hotelling_pvalue, res.holm_pvalue
                size[r] = res.estimated_size
        both = np.minimum(1.0, 2.0 * pv.min(axis=1))
        cells = []
        for alpha in ALPHAS:
            rates = [np.mean(pv[:, 0] < alpha), np.mean(pv[:, 1] < alpha), np.mean(both < alpha)]
            cells.append(" ".join(f"{rate / alpha:.2f}" for rate in rates))
            if n <= 100:
                worst = max(worst, rates[0] / alpha)
        print(f"TABLE normal-theory {name:9s} {n:5d}  " + "   ".join(cells)
              + f"   estimated T2 size at 0.001: {np.mean(size) / 0.001:.2f} alpha")
    # the claim kept in unbiasedness_test's docstring: on skewed estimates the F reference rejects too often
    assert worst > 2.0, worst


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reinforce", "disarm", "rebar"])
def test_default_test_below_level_checked_n(name):
    # 1000 null replications of the default unbiasedness_test at n = 20 (the fewest samples the bootstrap-t
    # is used at, MIN_BOOTSTRAP_N) and alpha = 0.01, seed 730.  Among the calls that bootstrap: the rates of
    # Hotelling, the step-down, the combined decision and the largest per-coordinate rate of the bootstrap
    # p-values, in units of alpha.  The other calls are decided exactly (degenerate="exact": a coordinate
    # that is constant because a rare outcome did not occur in 20 draws); they are counted apart.
    # The claim kept in the docstrings: below LEVEL_CHECKED_N every bootstrapped call warns.
    reps, n, alpha = 1000, stats.MIN_BOOTSTRAP_N, 0.01
    target = exact.gradient(SKEWED_DIST, SKEWED_F)
    g = refgrad.estimate(name, SKEWED_DIST, SKEWED_F, n * reps, rng=730).reshape(reps, n, -1)
    hot = holm = both = boot = warned = exactly = exact_rejected = 0
    coordinates = np.zeros(g.shape[2])
    for r in range(reps):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", stats.CalibrationWarning)
            res = stats.unbiasedness_test(g[r], target, alpha=alpha)
        if res.calibration != "bootstrap":
            exactly += 1
            exact_rejected += res.reject
            continue
        boot += 1
        warned += any(issubclass(w.category, stats.CalibrationWarning) for w in caught)
        hot += res.hotelling_pvalue is not None and res.hotelling_pvalue < alpha
        holm += res.holm_pvalue < alpha
        both += res.reject
        coordinates += res.pvalues < alpha
    print(f"TABLE small-n {name:9s} {n:3d}  bootstrapped {boot}: Hotelling {hot / boot / alpha:.2f}  step-down "
          f"{holm / boot / alpha:.2f}  combined {both / boot / alpha:.2f}  worst coordinate "
          f"{coordinates.max() / boot / alpha:.2f}  ({warned} warned); decided otherwise {exactly} "
          f"({exact_rejected} rejected)")
    assert warned == boot > 0


def _variance_size(make_pair, n, reps, rng, alpha=0.05):
    """One-sided sizes ("less", "greater") of variance_test's trace test at alpha over reps null pairs."""
    less = greater = 0
    for _ in range(reps):
        a, b = make_pair(rng, n)
        r = stats.variance_test(a, b, alternative="less", alpha=alpha)
        less += r.pvalue < alpha
        greater += special.ndtr(-r.statistic) < alpha  # the p-value of alternative="greater"
    return less / reps, greater / reps


def _exponential_pair(rng, n):
    return rng.exponential(size=(n, 1)), rng.exponential(size=(n, 1))


def _exponential_bernoulli_pair(rng, n, theta=0.2):
    b = (rng.random((n, 1)) < theta) / np.sqrt(theta * (1.0 - theta))
    return rng.exponential(size=(n, 1)), b


def _normal_pair(rng, n):
    return rng.standard_normal((n, 1)), rng.standard_normal((n, 1))


@pytest.mark.slow
def test_variance_test_one_sided_sizes():
    # 4000 null replications per row, seed 710; alpha = 0.05; one coordinate, independent samples.
    # The claim kept in variance_test's docstring: the one-sided error shrinks with n (an asymptotic test).
    reps, rng = 4000, np.random.default_rng(710)
    rows = [("exponential vs exponential", _exponential_pair, n) for n in (100, 500, 2000)]
    rows += [("exponential vs standardised Bernoulli(0.2)", _exponential_bernoulli_pair, n) for n in (2000, 20000)]
    rows += [("normal vs normal", _normal_pair, n) for n in (100, 1000)]
    sizes = {}
    for label, make_pair, n in rows:
        sizes[label, n] = _variance_size(make_pair, n, reps, rng)
        print(f"TABLE variance {label:42s} {n:6d}  less {sizes[label, n][0]:.4f}  greater {sizes[label, n][1]:.4f}")
    # the classical F test (variance ratio ~ F(n - 1, n - 1)), which variance_test does not use, at n = 200
    a, b = rng.exponential(size=(2, reps, 200))
    f_size = np.mean(fdist.cdf(a.var(axis=1, ddof=1) / b.var(axis=1, ddof=1), 199, 199) < 0.05)
    print(f"TABLE variance F test, exponential vs exponential {200:6d}  less {f_size:.4f}")
    off = {key: max(abs(s - 0.05) for s in value) for key, value in sizes.items()}
    assert f_size > 0.15
    assert off["exponential vs exponential", 2000] < off["exponential vs exponential", 100]
    assert off["exponential vs standardised Bernoulli(0.2)", 20000] < 0.015


def _seconds(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.slow
def test_bootstrap_timings():
    # best of 3 wall-clock times of the bootstrap-t (refgrad.stats.calibration.bootstrap_t), seed 720:
    # continuous samples (every row distinct) and a discrete one (few distinct rows, multinomial counts),
    # and the largest run calibration="auto" chooses, MAX_BUDGET = (distinct rows) x (resamples).
    rng = np.random.default_rng(720)
    cases = [("continuous n = 2000, p = 10, B = 2000, with T2", rng.standard_normal((2000, 10)), 2000, True),
             ("continuous n = 2000, p = 10, B = 2000, t only", rng.standard_normal((2000, 10)), 2000, False),
             ("discrete n = 2000, p = 3 (8 rows), B = 2000", rng.integers(0, 2, (2000, 3)).astype(float), 2000,
              True),
             (f"continuous n = 10000, p = 1, B = 20000 (k x B = MAX_BUDGET = {cal.MAX_BUDGET:g})",
              rng.standard_normal((10000, 1)), 20000, False)]
    for label, x, b, hotelling in cases:
        u = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
        tstat = u.mean(axis=0) * np.sqrt(u.shape[0])
        whiten = np.linalg.inv(np.linalg.cholesky(np.cov(u, rowvar=False)).T) if hotelling else None
        _, compressed = cal.distinct_rows(u)
        seconds = _seconds(lambda: cal.bootstrap_t(u, tstat, whiten, compressed, b, np.random.default_rng(0)))
        print(f"TABLE bootstrap {label:70s} {seconds:8.3f} s")
        assert seconds > 0.0
