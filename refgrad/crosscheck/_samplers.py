"""Cross-checks of discrete and relaxed samplers against refgrad's exact laws.

* :func:`check_bernoulli_sampler` -- exact binomial test per coordinate, Holm-combined;
* :func:`check_categorical_sampler` -- likelihood-ratio G test per coordinate with a
  sequential Monte Carlo p-value under the exact pmf, Holm-combined;
* :func:`check_relaxed_sampler` -- Concrete / Binary Concrete samples: argmax frequencies,
  the exact Logistic law of tempered log-ratios, and the exact marginal CDFs.

An event of probability zero (a hit in a zero-probability cell, a value outside the support,
NaN) is a ``"certain failure"`` with p = 0, reported with its indices; a rejection at level
α is ``"wrong"``.

Underflow
---------
A relaxed sample in probability space that is exactly 0 stands first for a real value below
``ROUNDING_ULPS`` smallest subnormals (gradual underflow, IEEE's default).  Several libraries
return 0 for every value below the smallest *normal* float, FLT_MIN =
``np.finfo(np.float32).tiny`` = 1.18e-38 in float32: TensorFlow and JAX on CPU flush every
result below it to zero and hold no subnormal value (measured on TensorFlow's float32 sigmoid:
the largest score giving 0 is -87.33675, where the exact sigmoid is 1.1753e-38), and the
float32 sigmoids of NumPy, SciPy and PyTorch compute 1/(1 + exp(-z)), whose exp overflows
below 1/FLT_MAX = 2.9e-39 (zeros there, subnormals above).  When the zeros make the law fail
under the first reading, :func:`check_relaxed_sampler` reads each 0 as the censored event
"x < FLT_MIN" (the dtype's ``tiny``; times the rounding of the scores), whose probability the
exact law gives, and reruns every statistical part; the KS parts then take a 0 as the interval
[0, FLT_MIN], and a part counting the zeros compares each entry's count of zeros with
Binomial(n, P(x < FLT_MIN)), one-sided.  If every part then agrees, the verdict fails with
diagnosis ``"convention: flush-to-zero below FLT_MIN"`` (the samples follow the law, up to
the convention), never ``"wrong"``; if a part still rejects -- zeros where the law has no mass
below FLT_MIN (at τ = 1, P(x < FLT_MIN) ≈ 1e-38, so three zeros have p < 1e-30), too many
zeros, or a wrong law elsewhere -- the verdict is ``"wrong"``.  The second reading only widens
the intervals, so it never rejects where the first does not: the rate of FAIL verdicts on
correct samplers is that of the first reading.  The zero count part runs whenever the tested
entries hold zeros (it also catches a handful of zeros where the law has no mass, which KS
cannot at any feasible n).  The symmetric case needs no convention: 1 - δ with δ below half an
ulp of 1 rounds to 1.0, and a 1.0 stands for [1 - 4 spacing(1), 1] like every value.  The
discrete checks are unaffected: a cell whose probability flushes to 0 has probability below
FLT_MIN, and a correct sampler hits it 0 times at any feasible n.  Measured on flushed float32
samples (NumPy emulation of ``tests/crosscheck/test_crosscheck_underflow.py``, ℓ = −2 / (0, −2), τ = 0.03,
n = 300, seeds 1000-1999, α = 0.05): "wrong" in 45 of 1000 (Binary Concrete) and 30 of 1000
(Concrete, K = 2), "convention: flush-to-zero below FLT_MIN" in 859 and 808, the rest "agrees"
(``python -m pytest -q -m slow tests/crosscheck/test_crosscheck_underflow.py -s``, 11 s).

Calibration
-----------
Measured with ``python -m pytest -q -m slow tests/crosscheck/test_crosscheck_samplers.py -s`` (155 s on
two cores; the default run repeats it with 200 replications, seeds fixed).  False-alarm rates
at α = 0.05 on refgrad's own samplers, 5000 replications each (99 % binomial interval of a
0.05 rate: [0.042, 0.058]; the binomial test is discrete and the relaxed checks are
Bonferroni-combined over parts, so rates below 0.05 are the expected conservative side):

* Bernoulli, d = 3, n = 400: 0.046;
* categorical, d = 2, K = 5 with a cell of probability 0.002, n = 300: 0.052;
* Concrete, K = 4, τ = 0.5, n = 300, float64 (parts a, b): 0.044;
* Concrete, K = 3, τ = 0.2, n = 300, float32 (parts a, b, c): 0.032;
* Binary Concrete, d = 2, τ = 0.3, n = 300: 0.038.

Power at the default α = 1e-3, 200 replications each: Bernoulli logits shifted by +0.2
(n = 5000): 1.00; a categorical sampler that never produces its p = 0.002 cell (n = 10000,
20 expected): 1.00; Concrete at temperature τ·1.2 (K = 4, n = 2000): 1.00; Concrete with the
Gumbel replaced by a Normal of equal mean and variance (K = 4, n = 5000): 0.75 (1.00 of 40 at
n = 10000); Binary Concrete with a Normal of the Logistic's variance (n = 5000): 0.71.  Single
fixed-seed tests: a hit on a -inf logit and values off the support are certain failures;
refgrad's samples rounded to float32 at τ = 0.01 and 0.1 (probability and log space) pass,
while zeros put where the law has mass (τ = 1) fail.
"""
import math

import numpy as np
from scipy import special, stats

from refgrad._core.checks import (
    MULTINOMIAL_COST,
    InputTypeError,
    as_float_array,
    check_max_work,
    check_no_nan,
    check_seed,
    check_work,
    describe,
    first_index,
)
from refgrad.distributions import Categorical
from refgrad.relaxations import concrete_marginal_cdf

from ._gof import (
    EXCEEDANCES,
    ROUNDING_ULPS,
    binomial_pvalues,
    g_test_monte_carlo,
    holm,
    ks_interval,
    monte_carlo_budget,
    rounding_interval,
)
from ._rounding import score_rounding
from ._verdict import DEFAULT_ALPHA, FLUSH_TO_ZERO, Verdict, combine, part_alpha

__all__ = ["check_bernoulli_sampler", "check_categorical_sampler", "check_relaxed_sampler"]

_MAX_WORST = 20
_AUTO_MARGINAL_CATEGORIES = 3  # part (c) of check_relaxed_sampler runs by default up to this K


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------


def _check_alpha(alpha):
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"alpha must be a float in (0, 1); got {describe(alpha)}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    return float(alpha)


def _raw_samples(samples, ndims, what):
    """``samples`` as an array of bool, integer or real float dtype with ndim in ``ndims``."""
    if isinstance(samples, (str, bytes)):
        raise InputTypeError(f"samples must be an array of {what}; got the string {describe(samples)}")
    try:
        raw = np.asarray(samples)
    except ValueError:
        raise ValueError(f"samples must be a rectangular array of {what}; got {describe(samples)}") from None
    if raw.dtype.kind not in "biuf":
        raise InputTypeError(f"samples must be an array of {what}; got {describe(samples)} of dtype {raw.dtype}")
    if raw.ndim not in ndims:
        raise ValueError(f"samples must have {' or '.join(str(k) for k in ndims)} dimensions; got shape {raw.shape}")
    if raw.shape[0] < 1 or raw.size == 0:
        raise ValueError(f"samples must hold at least one sample; got shape {raw.shape}")
    return raw


def _exact_integers(raw, what, low, high):
    """``raw`` as int64, every entry an exact integer in [low, high]; else ValueError naming samples."""
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            i = first_index(bad)
            raise ValueError(f"samples must hold {what} (exact integers in [{low}, {high}]); got {raw[i]!r} at "
                             f"index {i}")
    out = raw.astype(np.int64)
    bad = (out < low) | (out > high)
    if bad.any():
        i = first_index(bad)
        raise ValueError(f"samples must hold {what} in [{low}, {high}]; got {raw[i]!r} at index {i}")
    return out


def _tau_vector(tau, d):
    arr = as_float_array(tau, "tau")
    try:
        vec = np.broadcast_to(arr, (d,)).astype(np.float64)
    except ValueError:
        raise ValueError(f"tau must be a float or an array broadcast to the batch shape ({d},); got shape "
                         f"{arr.shape}") from None
    bad = ~(np.isfinite(vec) & (vec > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"tau must be finite and > 0; got {vec[i]!r} at index ({i},)")
    return vec


# ---------------------------------------------------------------------------
# Bernoulli
# ---------------------------------------------------------------------------


def _bernoulli_verdict(bits, probs, alpha, check, what="samples"):
    """Holm-combined exact binomial tests of ``bits`` (n, d) against ``probs`` (d,)."""
    n, d = bits.shape
    fixed = (probs == 0.0) | (probs == 1.0)
    contrary = fixed[None, :] & (bits != (probs[None, :] == 1.0))
    counts = bits.sum(axis=0)
    observed = counts / n
    compared = {"expected P(1)": probs, "observed frequency": observed}
    if contrary.any():
        rows, cols = np.nonzero(contrary)
        worst = [{"index": int(r), "coordinate": int(c), "expected P(1)": float(probs[c]), "observed": int(bits[r, c]),
                  "pvalue": 0.0} for r, c in zip(rows[:_MAX_WORST], cols[:_MAX_WORST])]
        text = (f"{int(contrary.sum())} of the {n} {what} contradict a deterministic coordinate (P(1) = 0 or 1, "
                f"from logits -inf / +inf): the first is row {int(rows[0])}, coordinate {int(cols[0])}, value "
                f"{int(bits[rows[0], cols[0]])} where P(1) = {probs[cols[0]]:g}. Such a sample has probability "
                f"zero under the checked law, so the sampler is wrong with certainty (p = 0).")
        return Verdict(check, False, "certain failure", "support of the exact Bernoulli law", None, 0.0, alpha, n,
                       compared, worst, text)
    free = np.flatnonzero(~fixed)
    pvals = np.ones(d)
    pvals[free] = binomial_pvalues(counts[free], n, probs[free])
    adjusted = np.ones(d)
    adjusted[free] = holm(pvals[free])
    pvalue = float(adjusted[free].min()) if free.size else 1.0
    compared.update({"pvalue per coordinate": pvals, "Holm-adjusted": adjusted})
    order = free[np.argsort(pvals[free], kind="stable")]
    worst = [{"coordinate": int(j), "expected P(1)": float(probs[j]), "observed frequency": float(observed[j]),
              "count": int(counts[j]), "pvalue": float(pvals[j]), "Holm": float(adjusted[j])}
             for j in order[:_MAX_WORST]]
    passed = pvalue > alpha
    test = (f"exact two-sided binomial test per coordinate, Holm across {free.size} (statistic: largest |z| of the "
            f"frequencies)")
    if free.size:
        j = int(order[0])
        text = (f"Bit frequencies of {n} {what} in {d} coordinate(s) ({d - free.size} deterministic) against "
                f"σ(logits), exact binomial test per coordinate, Holm-adjusted at α = {alpha:g}. Worst: coordinate "
                f"{j}, observed {observed[j]:.4g} ({int(counts[j])} ones) for expected {probs[j]:.4g}, p = "
                f"{pvals[j]:.3g}, Holm-adjusted {adjusted[j]:.3g}: "
                + ("consistent with the exact law." if passed else "the frequencies disagree with the exact law."))
    else:
        text = f"All {d} coordinate(s) are deterministic (±inf logits) and every one of the {n} {what} agrees."
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(fixed, 0.0, (counts - n * probs) / np.sqrt(n * probs * (1 - probs)))
    compared["z per coordinate"] = z
    return Verdict(check, passed, "agrees" if passed else "wrong", test, float(np.max(np.abs(z))), pvalue, alpha, n,
                   compared, worst, text)


def check_bernoulli_sampler(samples, logits, *, alpha=DEFAULT_ALPHA):
    r"""Check Bernoulli samples against the exact law :math:`P(b_i = 1) = \sigma(\ell_i)`.

    For each coordinate the number of ones :math:`k_i \sim \mathrm{Binomial}(n, \sigma(\ell_i))`
    under the null; the exact two-sided binomial p-value (:func:`scipy.stats.binomtest`) is
    computed per coordinate and the coordinates are combined by Holm's step-down procedure
    (family-wise level α; the composite p-value is the smallest Holm-adjusted one,
    ``min(1, d · min p_i)``).  Coordinates with :math:`\ell_i = \pm\infty` are deterministic:
    any contrary sample is a certain failure (p = 0), reported with its row and coordinate.

    Parameters
    ----------
    samples : array_like, shape (n,) or (n, d)
        Bits: bool, integers, or floats holding exactly 0 or 1.
    logits : float or array_like, shape (d,)
        :math:`\ell`; ±inf allowed, NaN rejected.  A scalar is shared by all coordinates.
    alpha : float
        Family-wise level, default :data:`DEFAULT_ALPHA`.

    Returns
    -------
    Verdict
        ``compared`` holds the expected and observed frequencies and the per-coordinate
        p-values; ``worst`` the coordinates sorted by p-value (or the contrary samples).
    """
    alpha = _check_alpha(alpha)
    ell = check_no_nan(as_float_array(logits, "logits"), "logits")
    if ell.ndim > 1:
        raise ValueError(f"logits must be a float or have shape (d,); got shape {ell.shape}")
    raw = _raw_samples(samples, (1, 2), "bits (0/1)")
    bits = _exact_integers(raw, "bits (0 or 1)", 0, 1)
    bits = bits.reshape(bits.shape[0], -1)
    d = bits.shape[1]
    if ell.ndim == 1 and ell.shape[0] not in (1, d):
        raise ValueError(f"logits of shape {ell.shape} do not match samples of shape {raw.shape} (allowed: logits "
                         f"of shape ({d},) or a float)")
    probs = np.broadcast_to(special.expit(ell), (d,)).copy()
    return _bernoulli_verdict(bits, probs, alpha, "check_bernoulli_sampler")


# ---------------------------------------------------------------------------
# categorical
# ---------------------------------------------------------------------------


def _categorical_verdict(idx, probs, alpha, resamples, seed, check, what="samples", max_work=None):
    """Holm-combined Monte Carlo G tests of category indices ``idx`` (n, d) against ``probs`` (d, K)."""
    n, d = idx.shape
    K = probs.shape[1]
    counts = np.stack([np.bincount(idx[:, j], minlength=K) for j in range(d)])
    compared = {"expected counts": n * probs, "observed counts": counts}
    impossible = (probs == 0.0) & (counts > 0)
    if impossible.any():
        worst = []
        for j, k in np.argwhere(impossible)[:_MAX_WORST]:
            worst.append({"coordinate": int(j), "cell": int(k), "expected": 0.0, "observed": int(counts[j, k]),
                          "first index": int(np.argmax(idx[:, j] == k)), "pvalue": 0.0})
        w = worst[0]
        text = (f"{int(counts[impossible].sum())} of the {n} {what} fall in {int(impossible.sum())} cell(s) of "
                f"probability zero (logit -inf, or outside the +inf categories): coordinate {w['coordinate']}, cell "
                f"{w['cell']} has {w['observed']} hit(s), the first at row {w['first index']}. Such a sample is "
                f"impossible under the checked law, so the sampler is wrong with certainty (p = 0).")
        return Verdict(check, False, "certain failure", "support of the exact categorical law", None, 0.0, alpha, n,
                       compared, worst, text)
    free = [j for j in range(d) if np.count_nonzero(probs[j]) > 1]
    level = alpha / max(len(free), 1)
    budget = monte_carlo_budget(resamples, level)
    cells = int(sum(np.count_nonzero(probs[j]) for j in free))
    cap = check_max_work(max_work)
    if resamples is None and cells and float(budget) * cells * MULTINOMIAL_COST > cap:
        # the automatic budget shrinks to the work budget while the test can still reject with margin
        # (smallest p-value 1/(R + 1) at most half the per-coordinate level); below that it is refused
        fit = int(cap // (cells * MULTINOMIAL_COST))
        if fit >= math.ceil(2.0 / level):
            budget = fit
    check_work(float(budget) * cells * MULTINOMIAL_COST,
               f"the Monte Carlo G test of {check} (up to {budget} multinomial draws over {cells} cells in "
               f"{len(free)} coordinate(s))",
               "draws x cells, a multinomial cell counting refgrad.limits.MULTINOMIAL_COST = "
               f"{MULTINOMIAL_COST}", max_work,
               advice=f"pass fewer resamples= (at least {math.ceil(1 / level)} at the per-coordinate level "
                      f"{level:.3g}), or check fewer coordinates per call")
    stats_, pvals, draws = np.zeros(d), np.ones(d), np.zeros(d, dtype=np.int64)
    for j in free:
        cells = probs[j] > 0
        gen = np.random.default_rng([int(seed), j, *counts[j].tolist()])
        stats_[j], pvals[j], draws[j] = g_test_monte_carlo(counts[j, cells], probs[j, cells], budget, gen)
    adjusted = np.ones(d)
    adjusted[free] = holm(pvals[free])
    pvalue = float(adjusted[free].min()) if free else 1.0
    compared.update({"G per coordinate": stats_, "pvalue per coordinate": pvals, "Holm-adjusted": adjusted,
                     "Monte Carlo draws": draws})
    worst = _worst_cells(counts, probs, pvals, adjusted, free)
    passed = pvalue > alpha
    test = (f"likelihood-ratio G test per coordinate, sequential Monte Carlo p-value (up to {budget} multinomial "
            f"draws, stop at {EXCEEDANCES} exceedances, seed {seed}), Holm across {len(free)}")
    if free:
        w = worst[0]
        text = (f"Category counts of {n} {what} in {d} coordinate(s) against the exact pmf softmax(logits) by the G "
                f"statistic, whose Monte Carlo p-value is valid with small expected counts (no chi-square "
                f"asymptotics); Holm at α = {alpha:g}. Worst: coordinate {w['coordinate']}, G = "
                f"{stats_[w['coordinate']]:.4g}, p = {w['pvalue']:.3g} (Holm {w['Holm']:.3g}); "
                f"its largest deviation is "
                f"cell {w['cell']}, {w['observed']} observed for {w['expected']:.4g} expected: "
                + ("consistent with the exact law." if passed else "the counts disagree with the exact law."))
    else:
        text = f"Every coordinate is deterministic and all {n} {what} fall in the certain cell."
    return Verdict(check, passed, "agrees" if passed else "wrong", test,
                   float(stats_[worst[0]["coordinate"]]) if free else 0.0, pvalue, alpha, n, compared, worst, text)


def _worst_cells(counts, probs, pvals, adjusted, free):
    """Up to three cells per coordinate, coordinates by p-value, cells by |Pearson residual|."""
    n = counts[0].sum()
    worst = []
    for j in sorted(free, key=lambda c: pvals[c]):
        expected = n * probs[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            resid = np.where(expected > 0, (counts[j] - expected) / np.sqrt(expected), 0.0)
        for k in np.argsort(-np.abs(resid), kind="stable")[:3]:
            worst.append({"coordinate": int(j), "cell": int(k), "expected": float(expected[k]),
                          "observed": int(counts[j, k]), "residual": float(resid[k]), "pvalue": float(pvals[j]),
                          "Holm": float(adjusted[j])})
    return worst[:_MAX_WORST]


def _category_indices(raw, d, K, one_hot):
    if one_hot:
        vals = _exact_integers(raw, "one-hot rows (entries 0 or 1)", 0, 1)
        sums = vals.sum(axis=-1)
        if np.any(sums != 1):
            i = first_index(sums != 1)
            raise ValueError(f"samples must be one-hot (exactly one 1 per row); row {i} has {int(sums[i])} ones")
        return np.argmax(vals, axis=-1).reshape(raw.shape[0], d)
    if raw.dtype.kind == "b":
        raise InputTypeError(f"samples must hold category indices (integers in [0, {K - 1}]), not bools; got "
                             f"{describe(raw)}")
    return _exact_integers(raw, "category indices", 0, K - 1).reshape(raw.shape[0], d)


def check_categorical_sampler(samples, logits, *, alpha=DEFAULT_ALPHA, resamples=None, seed=0, max_work=None):
    r"""Check categorical samples against the exact pmf :math:`\mathrm{softmax}(\ell)`.

    Per coordinate, the likelihood-ratio statistic :math:`G = 2\sum_k O_k \log(O_k / E_k)`
    over the cells of positive probability, with :math:`E_k = n p_k` and
    :math:`p = ` ``refgrad.distributions.Categorical(logits).probs`` (−inf impossible,
    several +inf share the mass equally).  Its p-value is a sequential Monte Carlo one
    (Besag & Clifford 1991): multinomial draws under the exact pmf until 50 draws have
    :math:`G^* \ge G` (``p = 50 / L`` at draw ``L``) or ``R`` draws are spent
    (``p = (1 + \#\{G^* \ge G\}) / (1 + R)``); valid at any ``n`` and any expected count,
    so rare cells need no pooling.  Coordinates are Holm-combined at level α.  A hit in a
    zero-probability cell is a certain failure (p = 0), reported with the cell and count.

    Parameters
    ----------
    samples : array_like
        Category indices, shape (n,) with logits (K,) or (n, d) with logits (d, K); or
        one-hot rows, shape (n, K) / (n, d, K) (told apart by shape).
    logits : array_like, shape (K,) or (d, K)
        K ≥ 2; ±inf allowed, NaN and all -inf rows rejected.
    alpha : float
        Family-wise level, default :data:`DEFAULT_ALPHA`.
    resamples : int or None
        Largest number of Monte Carlo draws ``R`` per coordinate.  None (default):
        ``max(9999, ceil(20 d / α))``, so the smallest p-value is at most α / (20 d),
        lowered to what ``max_work`` allows (down to ``ceil(2 d / α)``, below which the
        call is refused); the verdict's ``test`` states the ``R`` used.
    seed : None, int, numpy.random.Generator or numpy.random.SeedSequence
        Seed of the Monte Carlo draws (default 0): coordinate ``j`` with counts ``O`` uses
        ``default_rng([seed, j, *O])``, so an input always gets the same p-value while
        different inputs get effectively independent draws (with one fixed stream for all
        inputs the level would be α times a Monte Carlo error of about 1/sqrt(50)).  A
        non-negative int is used as is; None, a Generator or a SeedSequence give one
        (:func:`refgrad._core.checks.check_seed`), which the verdict's ``test`` reports.
        Anything else (a float, a bool, a string, a negative int) is a ``ValueError``.
    max_work : float, optional
        Budget of the Monte Carlo draws in elementary operations, ``R`` x the cells of
        positive probability x :data:`refgrad.limits.MULTINOMIAL_COST` (off the null every
        one of the ``R`` draws is made); default :data:`refgrad.limits.WORK_LIMIT`
        (10¹¹, a few minutes).  Beyond it the call is refused before any draw, with what it
        would cost (e.g. ``resamples=10**15``); pass a larger number to run it anyway.

    Returns
    -------
    Verdict
        ``compared``: expected and observed counts, G and p-values per coordinate;
        ``worst``: per coordinate (by p-value) its three most deviating cells.
    """
    alpha = _check_alpha(alpha)
    ell = as_float_array(logits, "logits")
    if ell.ndim not in (1, 2):
        raise ValueError(f"logits must have shape (K,) or (d, K); got shape {ell.shape}")
    probs = Categorical(ell.reshape(-1, ell.shape[-1])).probs
    d, K = probs.shape
    raw = _raw_samples(samples, (1, 2, 3), "category indices or one-hot rows")
    if ell.ndim == 1 and raw.ndim in (1, 2):
        one_hot = raw.ndim == 2
        ok = not one_hot or raw.shape[1] == K
    else:
        one_hot = raw.ndim == 3
        ok = ell.ndim == 2 and raw.ndim in (2, 3) and raw.shape[1] == d and (not one_hot or raw.shape[2] == K)
    if not ok:
        raise ValueError(f"samples of shape {raw.shape} do not match logits of shape {ell.shape} (allowed: indices "
                         f"(n,) / one-hot (n, K) for logits (K,); indices (n, d) / one-hot (n, d, K) for (d, K))")
    seed = check_seed(seed)
    check_max_work(max_work)
    idx = _category_indices(raw, d, K, one_hot)
    return _categorical_verdict(idx, probs, alpha, resamples, seed, "check_categorical_sampler", max_work=max_work)


# ---------------------------------------------------------------------------
# relaxed samplers
# ---------------------------------------------------------------------------

_SPACES = {"concrete": ("probability", "log"), "binary_concrete": ("probability", "logit")}


def _relaxed_inputs(samples, logits, tau, family, space):
    """(values (n, d[, K]) float64, dtype, logits (d[, K]), tau (d,))."""
    if not isinstance(family, str) or family not in _SPACES:
        raise ValueError(f"family must be one of {tuple(_SPACES)}; got {describe(family)}")
    if not isinstance(space, str) or space not in _SPACES[family]:
        raise ValueError(f"space must be one of {_SPACES[family]} for family {family!r}; got {describe(space)}")
    ell = check_no_nan(as_float_array(logits, "logits"), "logits")
    concrete = family == "concrete"
    raw = _raw_samples(samples, (2, 3) if concrete else (1, 2), "real numbers (relaxed samples)")
    if raw.dtype.kind == "b":
        raise InputTypeError(f"samples must hold real numbers (relaxed samples), not bools; got {describe(raw)}")
    dtype = raw.dtype if raw.dtype.kind == "f" else np.dtype(np.float64)
    if concrete:
        if ell.ndim not in (1, 2) or ell.shape[-1] < 2 or raw.ndim != ell.ndim + 1 or raw.shape[1:] != ell.shape:
            raise ValueError(f"samples of shape {raw.shape} do not match logits of shape {ell.shape} (allowed: "
                             f"samples (n, K) with logits (K,), or (n, d, K) with logits (d, K), K >= 2)")
        ell = ell.reshape(-1, ell.shape[-1])
        Categorical(ell)  # rejects rows of all -inf, naming logits
        values = raw.reshape(raw.shape[0], *ell.shape)
    else:
        values = raw.reshape(raw.shape[0], -1)
        d = values.shape[1]
        if ell.ndim > 1 or (ell.ndim == 1 and ell.shape[0] not in (1, d)):
            raise ValueError(f"logits of shape {ell.shape} do not match samples of shape {raw.shape} (allowed: a "
                             f"float or shape ({d},))")
        ell = np.broadcast_to(ell, (d,)).astype(np.float64)
    return values, dtype, ell, _tau_vector(tau, ell.shape[0])


def _support_masks(values, dtype, ell, tau, family, space):
    """[(mask, reason)] of the entries that a sample of the exact law cannot take."""
    masks = [(np.isnan(values), "NaN")]
    if family == "binary_concrete":
        up, down = np.isposinf(ell)[None, :], np.isneginf(ell)[None, :]
        one, zero = (1.0, 0.0) if space == "probability" else (np.inf, -np.inf)
        if space == "probability":
            masks.append(((values < 0) | (values > 1), "outside [0, 1]"))
        masks += [(up & (values != one), "logit +inf but not the point 1"),
                  (down & (values != zero), "logit -inf but not the point 0")]
        return masks
    tol = _score_rounding(dtype, ell, tau)[None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        x = values if space == "probability" else np.exp(values)
        row_off = np.abs(np.nansum(x, axis=-1) - 1.0) > tol
    if space == "probability":
        masks.append(((values < 0) | (values > 1), "outside [0, 1]"))
    else:
        masks.append((values > tol[..., None], "log-probability > 0"))
    masks.append((np.broadcast_to(row_off[..., None], values.shape), "row sum off 1 by more than the rounding allows"))
    masks.append((np.isneginf(ell)[None] & (x != 0), "mass on a -inf logit"))
    plus = np.isposinf(ell)
    outside = plus.any(axis=1)[:, None] & ~plus
    masks.append((outside[None] & (x > tol[..., None]), "mass outside the +inf logits"))
    single = (plus.sum(axis=1) == 1)[:, None] & plus
    masks.append((single[None] & (x < 1 - tol[..., None]), "not the vertex of the single +inf logit"))
    return masks


def _support_verdict(values, dtype, ell, tau, family, space):
    masks = _support_masks(values, dtype, ell, tau, family, space)
    bad = np.zeros(values.shape, dtype=bool)
    worst, counts = [], []
    for mask, reason in masks:
        new = mask & ~bad
        bad |= mask
        if new.any():
            counts.append(f"{int(new.sum())} {reason}")
            for index in np.argwhere(new)[:_MAX_WORST]:
                worst.append({"index": tuple(int(i) for i in index), "value": float(values[tuple(index)]),
                              "reason": reason})
    n = values.shape[0]
    test = f"support of the {family} law in {space} space (dtype {dtype})"
    if not bad.any():
        return Verdict("check_relaxed_sampler", True, "agrees", test, 0.0, None, None, n, {"entries outside": 0}, [],
                       f"All {n} samples lie in the support (tolerance from dtype {dtype}).")
    w = worst[0]
    text = (f"{int(bad.sum())} entries of the {n} samples are impossible under the exact law ({'; '.join(counts)}); "
            f"the first is at index {w['index']} with value {w['value']!r} ({w['reason']}). The sampler is wrong "
            f"with certainty (p = 0).")
    return Verdict("check_relaxed_sampler", False, "certain failure", test, float(bad.sum()), 0.0, None, n,
                   {"entries outside": int(bad.sum())}, worst[:_MAX_WORST], text)


def _ks_verdict(tests, alpha, test, what):
    """Holm-combined interval KS tests; ``tests``: list of (label dict, u_low, u_high)."""
    n = tests[0][1].size
    d_stats, pvals = np.array([ks_interval(lo, hi) for _, lo, hi in tests]).T
    adjusted = holm(pvals)
    order = np.argsort(pvals, kind="stable")
    worst = [dict(tests[i][0], D=float(d_stats[i]), pvalue=float(pvals[i]), Holm=float(adjusted[i]))
             for i in order[:_MAX_WORST]]
    pvalue = float(adjusted.min())
    passed = pvalue > alpha
    w = worst[0]
    text = (f"{what}: {len(tests)} Kolmogorov-Smirnov test(s) with the exact Kolmogorov law, each sample taken as the "
            f"interval of reals that rounds to it (bounds favouring the null), Holm at α = {alpha:.3g}. Worst: "
            f"{ {k: v for k, v in w.items() if k not in ('D', 'pvalue', 'Holm')} }, D = {w['D']:.4g} with n = {n}, "
            f"p = {w['pvalue']:.3g} (Holm {w['Holm']:.3g}): "
            + ("consistent with the exact law." if passed else "the samples do not follow the exact law."))
    return Verdict("check_relaxed_sampler", passed, "agrees" if passed else "wrong",
                   f"{test}, KS with rounding intervals, Holm across {len(tests)}", float(d_stats.max()), pvalue,
                   alpha, n, {"D": d_stats, "pvalue per test": pvals}, worst, text)


def _score_rounding(dtype, ell, tau):
    """Per coordinate: how far rounding moves log x of a Concrete sample computed in ``dtype``.

    ROUNDING_ULPS · eps · (K + (max|ℓ| + 40)/τ): the scores s = (ℓ + G)/τ are rounded to eps·|s|,
    and y = s − logsumexp(s) (or x = exp(y)) carries that error
    (:func:`refgrad.crosscheck._rounding.score_rounding`).
    """
    return ROUNDING_ULPS * score_rounding(float(np.finfo(dtype).eps), ell, tau)


def _log_bounds(values, dtype, space, ell, tau, zero_high=None):
    """Bounds of log x for each entry of a Concrete sample (x itself or y = log x).

    The rounding interval of the value in its own dtype, widened by the rounding of the scores it
    was computed from (:func:`_score_rounding`): a float32 sample y = s − logsumexp(s) at τ = 0.1
    has its largest entry off by ~1e-6, which is the whole distance of x_max from 1.  ``zero_high``
    (probability space): the upper end of the reals an exact 0 stands for, instead of
    ``ROUNDING_ULPS`` smallest subnormals (the flush-to-zero reading passes the dtype's ``tiny``).
    """
    low, high = rounding_interval(values, dtype)
    if space == "probability":
        if zero_high is not None:
            high = np.where(values == 0, float(zero_high), high)
        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
        with np.errstate(divide="ignore"):
            low, high = np.log(low), np.log(high)
    widen = _score_rounding(dtype, ell, tau)[None, :, None]
    return low - widen, np.minimum(high + widen, 0.0)


def _concrete_logistic_tests(values, dtype, ell, tau, space, keep, zero_high=None):
    """τ(log x_i − log x_ref) − (ℓ_i − ℓ_ref) ~ Logistic, ref = the largest logit, per coordinate in ``keep``."""
    log_low, log_high = _log_bounds(values, dtype, space, ell, tau, zero_high)
    tests = []
    for j in keep:
        ref = int(np.argmax(ell[j]))
        for i in np.flatnonzero(np.isfinite(ell[j])):
            if i == ref:
                continue
            delta = ell[j, i] - ell[j, ref]
            with np.errstate(invalid="ignore"):
                t_low = tau[j] * (log_low[:, j, i] - log_high[:, j, ref]) - delta
                t_high = tau[j] * (log_high[:, j, i] - log_low[:, j, ref]) - delta
            tests.append(({"coordinate": int(j), "category": int(i), "ref": ref}, special.expit(t_low),
                          special.expit(t_high)))
    return tests


def _concrete_marginal_tests(values, dtype, ell, tau, space, keep, marginals, zero_high=None):
    """KS of each marginal against ``refgrad.relaxations.concrete_marginal_cdf``; (tests, reason if skipped)."""
    K = ell.shape[1]
    if marginals is False or (marginals == "auto" and K > _AUTO_MARGINAL_CATEGORIES):
        return [], (f"K = {K} > {_AUTO_MARGINAL_CATEGORIES}, where the exact marginal CDF costs a two-dimensional "
                    f"quadrature per point (pass marginals=True to run it)" if marginals == "auto" else
                    "marginals=False")
    log_low, log_high = _log_bounds(values, dtype, space, ell, tau, zero_high)
    n = values.shape[0]
    # exp rounds by < 1 ulp: one step outwards keeps the bounds (y = -1e-17 must not become x = 1)
    x_low = np.nextafter(np.exp(log_low[:, keep]), 0.0)
    x_high = np.minimum(np.nextafter(np.exp(log_high[:, keep]), np.inf), 1.0)
    x = np.concatenate([x_low, x_high])
    try:
        cdf = concrete_marginal_cdf(x, ell[keep], tau[keep], upper=False)
    except ValueError as exc:
        return [], f"the exact marginal CDF refuses this input ({exc})"
    tests = []
    for a, j in enumerate(keep):
        for k in np.flatnonzero(np.isfinite(ell[j])):
            tests.append(({"coordinate": int(j), "category": int(k)}, cdf[:n, a, k], cdf[n:, a, k]))
    return tests, None


def _binary_logistic_tests(values, dtype, ell, tau, space, keep, zero_high=None):
    """τ·logit(x) − ℓ (= τ·y − ℓ in logit space) ~ Logistic, i.e. the exact marginal CDF σ(τ logit x − ℓ).

    ``zero_high`` (probability space): an exact 0 stands for ``[0, zero_high · exp(w)]``, ``w`` the
    rounding of the score (ℓ + L)/τ carried into log x (:func:`_binary_score_rounding`), instead of
    ``ROUNDING_ULPS`` smallest subnormals.
    """
    if space == "logit":
        low, high = rounding_interval(values, dtype)
    else:
        low, high = rounding_interval(values, dtype)
        if zero_high is not None:
            bound = float(zero_high) * np.exp(_binary_score_rounding(dtype, ell, tau))[None, :]
            high = np.where(values == 0, bound, high)
        with np.errstate(divide="ignore"):
            low, high = special.logit(np.clip(low, 0.0, 1.0)), special.logit(np.clip(high, 0.0, 1.0))
    return [({"coordinate": int(j)}, special.expit(tau[j] * low[:, j] - ell[j]),
             special.expit(tau[j] * high[:, j] - ell[j])) for j in keep]


def _binary_score_rounding(dtype, ell, tau):
    """Per coordinate: the rounding of the score (ℓ + L)/τ carried into log x of a Binary Concrete sample.

    :func:`_score_rounding` of the pair of logits (ℓ, 0): the binary law is the K = 2 Concrete law.
    """
    return _score_rounding(dtype, np.column_stack([ell, np.zeros_like(ell)]), tau)


def _zero_probabilities(log_bound, ell, tau, family):
    r"""P(x < exp(log_bound)) under the exact law, per tested entry (an upper bound where inexact).

    Binary: :math:`σ(τ\,\mathrm{logit}(t) - ℓ)`, exact.  Concrete: the exact marginal CDF
    (``concrete_marginal_cdf``) where it accepts K; otherwise the union bound
    :math:`P(x_k < t) \le \sum_{j \ne k} σ(τ \log(Kt) - ℓ_k + ℓ_j)` (``x_k < t`` with
    :math:`\max_j x_j \ge 1/K` implies :math:`x_k/x_j < Kt` for the largest :math:`j`, and
    :math:`τ\log(x_k/x_j) - (ℓ_k - ℓ_j)` is standard Logistic), which keeps the one-sided test's level.
    ``log_bound`` has one entry per row of ``ell``.
    """
    if family == "binary_concrete":
        t = np.exp(log_bound)
        return special.expit(tau * (log_bound - np.log1p(-t)) - ell)
    K = ell.shape[1]
    out = np.empty(ell.shape)
    try:
        for j in range(ell.shape[0]):
            out[j] = concrete_marginal_cdf(np.full(K, np.exp(log_bound[j])), ell[j], tau[j])
        return np.clip(out, 0.0, 1.0)
    except ValueError:
        pass
    for j in range(ell.shape[0]):
        diff = tau[j] * (np.log(K) + log_bound[j]) - ell[j][:, None] + ell[j][None, :]
        np.fill_diagonal(diff, -np.inf)
        with np.errstate(invalid="ignore"):
            out[j] = np.minimum(1.0, np.nansum(special.expit(diff), axis=1))
    return out


def _zero_count_verdict(values, dtype, ell, tau, family, keep, zero_bound, level, reading):
    """One-sided exact binomial tests of the count of exact zeros per tested entry, Holm-combined.

    An exact 0 stands for a real value below ``zero_bound`` (times the score rounding), so under the
    null the count of zeros of entry j is at most Binomial(n, p_j) with p_j = P(x_j < bound_j)
    (:func:`_zero_probabilities`): the p-value is ``P(Binomial(n, p_j) >= count_j)``.  Too few zeros
    is no evidence (a sampler keeping subnormals, or computing in log space, has fewer).
    """
    n = values.shape[0]
    if family == "binary_concrete":
        w = _binary_score_rounding(dtype, ell, tau)
        probs = _zero_probabilities(np.log(zero_bound) + w[keep], ell[keep], tau[keep], family)
        counts = np.sum(values[:, keep] == 0, axis=0)
        labels = [{"coordinate": int(j)} for j in keep]
        probs, counts = probs.ravel(), counts.ravel()
    else:
        w = _score_rounding(dtype, ell, tau)
        table = _zero_probabilities(np.log(zero_bound) + w[keep], ell[keep], tau[keep], family)
        zeros = np.sum(values[:, keep] == 0, axis=0)
        labels, probs, counts = [], [], []
        for a, j in enumerate(keep):
            for k in np.flatnonzero(np.isfinite(ell[j])):
                labels.append({"coordinate": int(j), "category": int(k)})
                probs.append(table[a, k])
                counts.append(zeros[a, k])
        probs, counts = np.array(probs), np.array(counts)
    pvals = np.where(counts > 0, stats.binom.sf(counts - 1, n, probs), 1.0)
    adjusted = holm(pvals)
    order = np.argsort(pvals, kind="stable")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(counts > 0, counts / (n * probs), 0.0)
    worst = [dict(labels[i], zeros=int(counts[i]), expected_at_most=float(n * probs[i]), pvalue=float(pvals[i]),
                  Holm=float(adjusted[i])) for i in order[:_MAX_WORST]]
    pvalue = float(adjusted.min())
    passed = pvalue > level
    w0 = worst[0]
    where = {k: v for k, v in w0.items() if k in ("coordinate", "category")}
    text = (f"Exact zeros read as {reading}: a 0 stands for a value below {zero_bound:.4g} (times the rounding "
            f"of the scores), an event of known probability, so the count of zeros of each of the {len(labels)} "
            f"tested entries is at most Binomial(n = {n}, P(x < bound)); one-sided exact binomial test, Holm at "
            f"α = {level:.3g}. Worst: {where}, {w0['zeros']} zeros where at most {w0['expected_at_most']:.4g} are "
            f"expected, p = {w0['pvalue']:.3g} (Holm {w0['Holm']:.3g}): "
            + ("consistent with the exact law." if passed else "too many zeros for the exact law."))
    return Verdict("check_relaxed_sampler", passed, "agrees" if passed else "wrong",
                   f"count of exact zeros read as {reading}, one-sided exact binomial test, Holm across {len(labels)}",
                   float(np.max(ratio)), pvalue, level, n,
                   {"zeros": counts, "P(x < bound)": probs, "pvalue per entry": pvals}, worst, text)


def _tested_entries(values, ell, keep, family):
    """The entries (n, ...) of ``values`` that the statistical parts read: kept coordinates, finite logits."""
    if family == "binary_concrete":
        return values[:, keep]
    return values[:, keep][:, np.isfinite(ell[keep])]


#: The two readings of an exact 0 in probability space, as the verdicts name them: below ROUNDING_ULPS smallest
#: subnormals (the bounds' default), or below the dtype's smallest normal float (``tiny``).
_ORDINARY = "a value below the smallest subnormals (gradual underflow)"
_FLUSHED = "the event x < FLT_MIN (flush-to-zero)"


def check_relaxed_sampler(samples, logits, tau, *, family="concrete", space="probability", alpha=DEFAULT_ALPHA,
                          resamples=None, seed=0, marginals="auto", max_work=None):
    r"""Check Concrete or Binary Concrete samples against the exact law.

    With :math:`G_k` i.i.d. standard Gumbel, a Concrete sample is
    :math:`x = \mathrm{softmax}((\ell + G)/\tau)` and a Binary Concrete one
    :math:`x = \sigma((\ell + L)/\tau)`, :math:`L = G_1 - G_2` standard Logistic
    (Maddison, Mnih & Teh 2017).  Parts, Bonferroni-combined by
    :func:`~refgrad.crosscheck._verdict.combine` (each statistical part at α/m):

    * support (deterministic): NaN, values outside [0, 1], simplex rows whose sum is off 1
      by more than the rounding of the scores allows, ``4 eps(dtype) (K + (max|ℓ| + 40)/τ)``, mass on
      −inf logits, anything but the vertex of a single +inf logit, are certain failures reported with
      their indices;
    * (a) argmax frequencies: :math:`\arg\max_k x_k \sim \mathrm{softmax}(\ell)`, by
      :func:`check_categorical_sampler`'s test (binary: :math:`P(x > 1/2) = \sigma(\ell)`
      by :func:`check_bernoulli_sampler`'s);
    * (b) the exact Logistic law: :math:`\tau \log(x_i / x_r) - (\ell_i - \ell_r) = G_i - G_r`
      is standard Logistic for every :math:`i \ne r`, :math:`r` the largest logit
      (binary: :math:`\tau\,\mathrm{logit}(x) - \ell`), KS with the exact Kolmogorov law;
    * (c) Concrete only: each marginal against
      ``refgrad.relaxations.concrete_marginal_cdf(x, logits, tau)`` by KS; skipped (and
      said so in the explanation) per ``marginals`` or where that function refuses the
      input (K above its limit).  For the Binary Concrete law the
      marginal CDF is :math:`\sigma(\tau\,\mathrm{logit}(x) - \ell)`, which is part (b).

    Float rounding.  Each sample stands for the interval of reals within
    ``4 spacing(x)`` of it in its own dtype (0 for ``[0, 4·smallest subnormal]``); the KS
    statistic takes D+ from the upper and D− from the lower ends, so it is at most the
    statistic of the unrounded values and the test keeps its level.  At small τ, float32
    entries are exactly 0 or 1 and log-ratios ±inf: legitimate, they only widen the
    intervals.  An exact 0 is legitimate exactly as far as the true value can lie below
    the smallest subnormal: the interval of a 0 says :math:`\tau \log x_i \le \tau \log(4
    \cdot 1.4\cdot 10^{-45})`, which is a likely event at τ = 0.01 (bound −1.02) and an
    impossible one at τ = 1 (bound −102), where the KS part then fails.  Concrete samples
    are also computed from the scores :math:`s = (\ell + G)/\tau`, whose rounding
    (:math:`\epsilon |s|`) every entry of :math:`y = s - \mathrm{logsumexp}\, s` carries: the
    bounds of :math:`\log x` are widened by :math:`4\epsilon(K + (\max|\ell| + 40)/\tau)`
    (:mod:`refgrad.crosscheck._rounding`).  Without it PyTorch's float32 ExpRelaxedCategorical
    samples at τ = 0.1 failed the marginal part with p = 1e-249; with it the marginal parts of
    float32 samples at τ ≤ 0.1 have little power (the dominant entry's distance from 1 is
    below its rounding), which the argmax and log-ratio parts keep.

    Underflow (probability space).  When the tested entries hold exact zeros, a further part
    compares each entry's count of zeros with Binomial(n, P(x < bound)), one-sided, bound =
    4 smallest subnormals (times the score rounding).  If the law is rejected so, the zeros are
    read as the censored event x < FLT_MIN (the dtype's ``tiny``: flush-to-zero, as TensorFlow
    and JAX on CPU, or an exp overflowing in 1/(1 + exp(-z))) and every statistical part is
    rerun; all agreeing gives the diagnosis ``"convention: flush-to-zero below FLT_MIN"`` (not
    passed, not "wrong"), any rejecting gives ``"wrong"``.  See the module docstring.

    Parameters
    ----------
    samples : array_like
        ``family="concrete"``: shape (n, K) with logits (K,), or (n, d, K) with logits
        (d, K); ``space="probability"`` points of the simplex, ``"log"`` their logarithms
        (torch's ExpRelaxedCategorical).  ``family="binary_concrete"``: shape (n,) or
        (n, d); ``"probability"`` values in [0, 1], ``"logit"`` :math:`y = (\ell + L)/\tau`
        (torch's LogitRelaxedBernoulli).
    logits : array_like
        :math:`\ell`, ±inf allowed (refgrad's conventions), NaN rejected.
    tau : float or array_like, shape (d,)
        Temperatures, finite and > 0, broadcast to the batch shape (d,).
    family, space : str
        See ``samples``.
    alpha : float
        Composite level, default :data:`DEFAULT_ALPHA`.
    resamples, seed, max_work
        Monte Carlo budget, seed and work budget of part (a) (see
        :func:`check_categorical_sampler`; a bad ``seed`` is refused with a ``ValueError``).
    marginals : "auto", bool
        Whether to run part (c) (Concrete only).  ``"auto"``: for K <= 3, where the exact
        marginal CDF is a one-dimensional quadrature (about 10 µs a point); for K = 4 it is
        two-dimensional (about 4 ms a point), so it runs only with ``True``.

    Returns
    -------
    Verdict
        Composite; ``parts`` holds the support check and the statistical parts.
    """
    alpha, seed, values, dtype, ell, tau = _relaxed_arguments(samples, logits, tau, family, space, alpha, resamples,
                                                              seed, marginals, max_work)
    n, d = values.shape[0], ell.shape[0]
    support = _support_verdict(values, dtype, ell, tau, family, space)
    head = f"{family} samples in {space} space, n = {n}, d = {d}, dtype {dtype}, tau = {describe(tau)}:"
    if not support.passed:
        return combine("check_relaxed_sampler", [support], n, alpha, head + " statistical parts not run, since",
                       test=f"{family} sampler against the exact law")
    if family == "binary_concrete":
        keep = np.flatnonzero(np.isfinite(ell))
    else:
        keep = np.flatnonzero(~np.isposinf(ell).any(axis=1) & (np.isfinite(ell).sum(axis=1) > 1))
    skipped = d - keep.size
    notes = []
    if not keep.size:
        notes.append(f"{skipped} coordinate(s) with +inf logits or a single possible category are deterministic "
                     f"(or follow a limit convention) and are checked by the support part only.")
        return combine("check_relaxed_sampler", [support], n, alpha, head + " " + " ".join(notes),
                       test=f"{family} sampler against the exact law")
    tested = _tested_entries(values, ell, keep, family)
    zeros = space == "probability" and bool((tested == 0).any())
    tiny = float(np.finfo(dtype).tiny)

    def ks_parts(zero_high):
        if family == "binary_concrete":
            return [_binary_logistic_tests(values, dtype, ell, tau, space, keep, zero_high)], None
        marginal, reason = _concrete_marginal_tests(values, dtype, ell, tau, space, keep, marginals, zero_high)
        return [_concrete_logistic_tests(values, dtype, ell, tau, space, keep, zero_high)] + (
            [marginal] if marginal else []), reason

    tests, reason = ks_parts(None)
    if reason:
        notes.append(f"part (c), the marginal CDFs, is skipped: {reason}.")
    if skipped:
        notes.append(f"{skipped} coordinate(s) with +inf logits or a single possible category are deterministic "
                     f"(or follow a limit convention) and are checked by the support part only.")
    level = part_alpha(alpha, 1 + len(tests) + zeros)
    if family == "binary_concrete":
        bits = values[:, keep] > (0.5 if space == "probability" else 0.0)
        argmax = _bernoulli_verdict(bits.astype(np.int64), special.expit(ell[keep]), level,
                                    "check_relaxed_sampler", what="events x > 1/2")
    else:
        argmax = _categorical_verdict(np.argmax(values[:, keep], axis=-1), Categorical(ell[keep]).probs, level,
                                      resamples, seed, "check_relaxed_sampler", what="argmaxes", max_work=max_work)
    names = ["exact Logistic law of tempered log-ratios" if family == "concrete" else
             "exact Logistic law of tau logit(x) - logit (the marginal CDF)",
             "marginal CDFs against concrete_marginal_cdf"]

    def statistical(tests, zero_bound, reading):
        parts = [argmax] + [_ks_verdict(t, level, name, name) for t, name in zip(tests, names)]
        if zeros:
            parts.append(_zero_count_verdict(values, dtype, ell, tau, family, keep, zero_bound, level, reading))
        return parts

    smallest = ROUNDING_ULPS * float(np.finfo(dtype).smallest_subnormal)
    ordinary = statistical(tests, smallest, _ORDINARY)
    test = f"{family} sampler against the exact law ({len(ordinary)} statistical parts)"
    compared = {"tau": tau, "logits": ell}
    if all(p.passed for p in ordinary):
        return combine("check_relaxed_sampler", [support] + ordinary, n, alpha, " ".join([head] + notes), test=test,
                       compared=compared)
    flushed = statistical(ks_parts(tiny)[0], tiny, _FLUSHED)
    return _flush_to_zero_reading([support], ordinary, flushed, tested, dtype, n, alpha, [head] + notes, test, compared)


def _relaxed_arguments(samples, logits, tau, family, space, alpha, resamples, seed, marginals, max_work):
    """The checked arguments of :func:`check_relaxed_sampler`: ``(alpha, seed, values, dtype, ell, tau)``.

    A ``resamples`` count whose Monte Carlo G test would exceed the work budget is refused before any part runs
    (part (a) checks its exact count again, over the cells of positive probability).
    """
    alpha = _check_alpha(alpha)
    if not (isinstance(marginals, (bool, np.bool_)) or (isinstance(marginals, str) and marginals == "auto")):
        raise InputTypeError(f"marginals must be 'auto', True or False; got {describe(marginals)}")
    seed = check_seed(seed)
    check_max_work(max_work)
    values, dtype, ell, tau = _relaxed_inputs(samples, logits, tau, family, space)
    if family == "concrete" and resamples is not None and not isinstance(resamples, (bool, np.bool_)) and \
            isinstance(resamples, (int, np.integer)):
        cells = int(np.count_nonzero(np.isfinite(ell)))
        check_work(float(resamples) * cells * MULTINOMIAL_COST,
                   f"the Monte Carlo G test of check_relaxed_sampler's part (a) (up to {resamples} multinomial draws "
                   f"over {cells} cells)",
                   "draws x cells, a multinomial cell counting refgrad.limits.MULTINOMIAL_COST = "
                   f"{MULTINOMIAL_COST}",
                   max_work, advice="pass fewer resamples=, or None for the automatic budget")
    return alpha, seed, values, dtype, ell, tau


def _flush_to_zero_reading(support, ordinary, flushed, tested, dtype, n, alpha, notes, test, compared):
    """The verdict of :func:`check_relaxed_sampler` when the ordinary reading of its exact zeros is rejected.

    ``flushed`` are the statistical parts with every exact 0 read as the censored event ``x < FLT_MIN`` (the
    smallest normal float of ``dtype``): if they agree with the exact law, the samples follow it up to the
    flush-to-zero convention (diagnosis :data:`FLUSH_TO_ZERO`); if not, the sampler is wrong.
    """
    tiny = float(np.finfo(dtype).tiny)
    head, notes = notes[0], notes[1:]
    count = int(np.sum(tested == 0))
    reject = [p for p in ordinary if not p.passed]
    subnormal = int(np.sum((tested > 0) & (tested < tiny)))
    how = (f"and no subnormal value: what a CPU flushing every result below the smallest normal float of {dtype} "
           f"({tiny:.4g}; FLT_MIN for float32) to zero produces, as TensorFlow and JAX do on CPU" if not subnormal else
           f"beside {subnormal} subnormal value(s): an underflow to 0 inside the formula below the smallest normal "
           f"float of {dtype} ({tiny:.4g}), e.g. exp(-z) overflowing in 1/(1 + exp(-z)) below 2.9e-39, as the "
           f"float32 sigmoids of NumPy, SciPy and PyTorch do on CPU")
    read = (f"The {count} exact zeros come {how}. "
            f"Read as values below the smallest subnormal, the law is rejected ("
            + "; ".join(f"{p.test}: p = {p.pvalue:.3g}" for p in reject)
            + f"); the statistical parts below read each 0 as the censored event x < {tiny:.4g} instead.")
    compared.update({"exact zeros": count, "smallest normal (FLT_MIN)": tiny,
                     "p-value with zeros below the smallest subnormal": min(p.pvalue for p in reject)})
    if not all(p.passed for p in flushed):
        return combine("check_relaxed_sampler", support + flushed, n, alpha,
                       " ".join([head] + notes + [read, "Even so the law is rejected: the sampler is wrong."]),
                       test=test, compared=compared)
    convention = Verdict("check_relaxed_sampler", True, FLUSH_TO_ZERO, "underflow convention of the exact zeros",
                         float(count), None, None, n, {"exact zeros": count, "smallest normal": tiny}, [],
                         read + " Read so, every statistical part agrees with the exact law: the samples follow "
                         "it up to the flush-to-zero convention.")
    return combine("check_relaxed_sampler", support + flushed + [convention], n, alpha,
                   " ".join([head] + notes + [read]), test=test, compared=compared)
