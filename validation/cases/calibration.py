"""Calibration: the measured false-alarm rate and power of refgrad's own statistical tests.

refgrad asserts unbiasedness and variance orderings with hypothesis tests of stated
level α (``refgrad.stats``, ``refgrad.testing``).  A stated α is a claim; this case
measures it, on estimators whose exact moments are known (``refgrad.exact``):

(a) ``unbiasedness_test`` on many null replications of unbiased estimators: the
    false-alarm rates of Hotelling's T², Holm's per-coordinate tests and the combined
    decision, with exact binomial 99 % intervals, and the uniformity of the p-values;
(b) its power against every estimator declared biased, at the default sample size of
    ``refgrad.testing.assert_biased`` (n = 10000, α = 1e-3): analytic power from the
    exact bias and covariance, and the simulated rejection rate;
(c) ``variance_test`` under equal variances (independent and paired samples), and its
    power where exact moments prove a gap (DisARM against ARM);
(d) ``required_samples``: the n it returns achieves the stated power in simulation.

The replications of each setting are split into tasks of ``CHUNK`` = 25 consecutive replications,
task i seeded with the i-th ``spawn`` child of the setting's ``SeedSequence``
(:mod:`validation.cases._calibration_tasks`), and run through ``ctx.map``: in order in the case's
process, or in parallel on a Dask cluster (``python -m validation --scheduler ...``).  The numbers are
bit-identical in every mode (``tests/cli/test_validation_dask.py`` checks it).
"""
import math

import numpy as np
from scipy import special
from scipy import stats as sps

import refgrad
from refgrad import exact, stats
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import SquaredDistance, Table

from ..core import Case
from . import _calibration_tasks as tasks

LOGIT = 0.3
TOY = SquaredDistance(np.array([0.45]))
TABLE2 = Table(np.array([[0.3, -1.2], [2.0, 0.5]]))
TABLE2_LOGITS = np.array([0.4, -0.9])
CAT_LOGITS = np.array([[0.3, -0.5, 1.0]])
CAT_SQ = SquaredDistance(np.array([[0.2, 0.3, 0.5]]))

ALPHAS = (0.01, 0.05)
METHODS = (("hotelling", "Hotelling T²"), ("holm", "Holm"), ("both", "combined"))
CI_LEVEL = 0.99
AGREEMENT_REPS = 40  # replications on which the derived one-sided variance-test decisions are compared


def _problems():
    return {
        "toy": (Bernoulli(np.array([LOGIT])), TOY),
        "2-bit table": (Bernoulli(TABLE2_LOGITS), TABLE2),
    }


def _ci(k, n, level=CI_LEVEL):
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def _ci_text(k, n, level=CI_LEVEL):
    lo, hi = _ci(k, n, level)
    return f"[{lo:.4f}, {hi:.4f}]"


_MOMENTS = {}


def _moments(name, pname, dist, f, level=None, **options):
    """``exact.moments``, computed once per (estimator, problem label, level, options) in a process."""
    key = (name, pname, level, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key not in _MOMENTS:
        _MOMENTS[key] = exact.moments(name, dist, f, level=level, **options)
    return _MOMENTS[key]


def _mapped(ctx, fn, settings, label):
    """``ctx.map`` over the tasks of every setting at once (``settings``: a list of task lists).

    Returns the merged result of each setting, in order (:func:`_calibration_tasks.merge`).
    """
    flat = [t for ts in settings for t in ts]
    out = ctx.map(fn, flat, label=label)
    merged, i = [], 0
    for ts in settings:
        merged.append(tasks.merge(out[i:i + len(ts)]))
        i += len(ts)
    return merged


def _unbiasedness(ctx, fn_settings, label):
    """Replicated ``unbiasedness_test``: the merged per-replication results of each setting.

    ``fn_settings`` lists (seed label, name, dist, f, options, n, reps, target, test options).
    """
    settings = [[(name, dist, f, options, n, chunk, target, test)
                 for chunk in tasks.chunks(ctx.seed_sequence(lab), reps)]
                for lab, name, dist, f, options, n, reps, target, test in fn_settings]
    return _mapped(ctx, tasks.unbiasedness_chunk, settings, label)


def _two_point_law(values, mean, target, n):
    """Exact law of Hotelling's p-value when every estimate takes one of two values (one coordinate).

    The sample mean is then a function of K ~ Binomial(n, q), the count of the larger value, with
    q = (E[ĝ] − v0)/(v1 − v0) from the exact mean.  With K copies of v1 the t statistic is
    t = (v̄ − μ0)/(s/√n), v̄ = v0 + (v1 − v0) K/n, s² = (v1 − v0)² K (n − K)/(n (n − 1)), and
    p(K) = P(F(1, n − 1) > t²) (Hotelling's T² = t² with one coordinate); K = 0 and K = n give a
    constant sample (p = 1).  All n + 1 atoms are computed at once; :func:`_lattice_check` compares a
    few of them with refgrad's test.  Returns (atoms p(K), weights P(K), (v0, v1, q)) or None when the
    estimates are not two-valued (``values``: their distinct values, ``None`` when not one-dimensional).
    """
    if values is None or values.size != 2:
        return None
    v0, v1 = values
    q = float((mean[0] - v0) / (v1 - v0))
    K = np.arange(1, n)
    diff = v1 - v0
    mean_k = v0 + diff * K / n
    var_k = diff**2 * K * (n - K) / (n * (n - 1.0))
    t2 = (mean_k - float(np.ravel(target)[0])) ** 2 / (var_k / n)
    atoms = np.ones(n + 1)
    atoms[1:n] = sps.f.sf(t2, 1, n - 1)
    weights = sps.binom.pmf(np.arange(n + 1), n, q)
    return atoms, weights, (float(v0), float(v1), q)


def _lattice_check(law, target, n):
    """Largest relative difference between the closed-form atoms and refgrad's test at 7 counts K."""
    atoms, weights, (v0, v1, q) = law
    ks = np.unique(np.clip(np.round(n * q + np.array([-4, -2, -1, 0, 1, 2, 4]) * np.sqrt(n * q * (1 - q))),
                           1, n - 1).astype(int))
    worst = 0.0
    for K in ks:
        x = np.concatenate([np.full(K, v1), np.full(n - K, v0)])[:, None]
        pv = stats.unbiasedness_test(x, target, calibration="asymptotic").hotelling_pvalue
        worst = max(worst, abs(float(pv) - atoms[K]) / max(atoms[K], 1e-300))
    return worst, ks.size


def _lattice_ks(pvalues, atoms, weights, rng, sims=2000):
    """KS distance of the p-values' ECDF from the exact lattice CDF, with a Monte Carlo p-value from that law."""
    # merge atoms equal up to rounding (the p-value of K and of a K' with the same |mean − target|)
    order = np.argsort(atoms)
    sorted_atoms = atoms[order]
    new_group = np.concatenate([[True], np.diff(sorted_atoms) > 1e-9 * np.maximum(sorted_atoms[1:], 1e-300)])
    group = np.cumsum(new_group) - 1
    support = sorted_atoms[new_group]
    mass = np.bincount(group, weights=weights[order])
    mass = mass / mass.sum()
    cdf = np.cumsum(mass)

    def distance(counts):
        ecdf = np.cumsum(counts, axis=-1) / counts.sum(axis=-1, keepdims=True)
        return np.max(np.abs(ecdf - cdf), axis=-1)

    right = np.clip(np.searchsorted(support, pvalues), 0, support.size - 1)
    left = np.clip(right - 1, 0, support.size - 1)
    idx = np.where(np.abs(support[left] - pvalues) < np.abs(support[right] - pvalues), left, right)
    ok = np.isclose(support[idx], pvalues, rtol=1e-8, atol=1e-14)
    if not ok.all():  # an observed p-value outside the computed lattice: the law does not describe the test
        return 0.0
    observed = distance(np.bincount(idx, minlength=support.size).astype(float))
    simulated = distance(rng.multinomial(pvalues.size, mass, size=sims).astype(float))
    return float((1 + np.sum(simulated >= observed - 1e-12)) / (sims + 1))


# ------------------------------------------------------------------------------------ (a) false alarms


def _false_alarms(ctx):
    n = 1000
    reps = ctx.size(300, 1000)
    ctx.setting(a_n=n, a_replications=reps, a_alphas=list(ALPHAS))
    estimators = [("reinforce", {}), ("rloo", {"m": 2}), ("disarm", {}), ("rebar", {"tau": 0.5, "eta": 1.0})]
    moment_rows, rate_rows = [], []
    pvals_all = []
    ks_rows = []
    laws = []
    results = []  # (problem, estimator, alpha, method, k)
    equal_1d = []
    closed_vs_refgrad = []
    settings = [(pname, dist, f, name, options) for pname, (dist, f) in _problems().items()
                for name, options in estimators]
    targets = [exact.gradient(dist, f) for _, dist, f, _, _ in settings]
    test = {"alpha": 0.05, "calibration": "asymptotic"}
    merged = _unbiasedness(ctx, [(f"a/{pname}/{name}", name, dist, f, options, n, reps, target, test)
                                 for (pname, dist, f, name, options), target in zip(settings, targets)],
                           "(a) null replications")
    for (pname, dist, f, name, options), target, out in zip(settings, targets, merged):
        level = ctx.size(2, None) if (name == "rebar" and dist.d > 1) else None
        m = _moments(name, pname, dist, f, level=level, **options)
        dev = float(np.max(np.abs(m.mean - target)))
        moment_rows.append([pname, name, str(options or ""), m.method, np.round(m.mean.ravel(), 10).tolist(),
                            np.round(target.ravel(), 10).tolist(), dev, m.error,
                            np.round(m.variance.ravel(), 6).tolist()])
        p = {"hotelling": out["hotelling"], "holm": out["holm"], "both": out["pvalue"]}
        if dist.d == 1:
            equal_1d.append(float(np.max(np.abs(p["hotelling"] - p["holm"]))))
        pvals_all.append(p["hotelling"])
        law = _two_point_law(out["values"], m.mean.ravel(), target, n)
        laws.append(law)
        if law is not None:
            closed_vs_refgrad.append((f"{name}/{pname}",) + _lattice_check(law, target, n))
        exact_size = {}
        if law is None:
            gof = sps.kstest(p["hotelling"], "uniform").pvalue
            ks_rows.append([pname, name, gof, "KS vs uniform", None, gof])
        else:
            atoms, weights, (v0, v1, q) = law
            gof = _lattice_ks(p["hotelling"], atoms, weights, ctx.rng(f"a/ks/{pname}/{name}"))
            # sup_u |F(u) − u| of the step CDF: checked just at and just below every atom
            order = np.argsort(atoms)
            sa = atoms[order]
            cdf = np.cumsum(weights[order])
            below = np.concatenate([[0.0], cdf[:-1]])
            lattice_dev = float(max(np.max(np.abs(cdf - sa)), np.max(np.abs(below - sa))))
            ks_rows.append([pname, name, gof, f"KS vs exact lattice law (values {v0:.4g}, {v1:.4g}; "
                                              f"q = {q:.4f})", lattice_dev,
                            sps.kstest(p["hotelling"], "uniform").pvalue])
            exact_size = {a: float(weights[atoms < a].sum()) for a in ALPHAS}
        heavy = float(np.mean(out["heavy"]))
        for alpha in ALPHAS:
            for method, label in METHODS:
                k = int(np.sum(p[method] < alpha))
                alt = "two-sided" if method == "hotelling" else "greater"
                bp = sps.binomtest(k, reps, alpha, alternative=alt).pvalue
                results.append((pname, name, alpha, method, k, bp))
                first = method == "hotelling" and alpha == ALPHAS[0]
                rate_rows.append([pname, name, alpha, label, f"{k}/{reps}", k / reps, _ci_text(k, reps), bp,
                                  exact_size.get(alpha, "") if method == "hotelling" else "",
                                  gof if first else "", heavy if first else ""])
    ctx.table("(a) Exact moments of the unbiased estimators used as nulls", [
        "problem", "estimator", "options", "method", "exact E[ĝ]", "exact ∇", "max |E[ĝ] − ∇|", "oracle error",
        "exact variance"], moment_rows,
        note=f"Toy: one bit, ℓ = {LOGIT}, f(b) = (b − 0.45)²; 2-bit table: ℓ = {TABLE2_LOGITS.tolist()}, "
             f"f = {TABLE2.values.tolist()}. rebar on the 2-bit table (noise dimension 4) is integrated at level "
             f"{ctx.size('2 (quick mode)', 'the default 3')}.")
    ctx.table(f"(a) False-alarm rates of unbiasedness_test over {reps} null replications of n = {n}", [
        "problem", "estimator", "α", "decision", "rejections", "rate", f"{CI_LEVEL:.0%} CI (Clopper-Pearson)",
        "binomial p", "exact size (two-valued estimates)", "uniformity p (Hotelling p-values)",
        "heavy-tail flag rate"], rate_rows,
        note="Target: refgrad.exact.gradient, equal to the estimator's exact mean (table above), so every rejection is "
             "a false alarm. 'binomial p' tests rate = α two-sided for Hotelling (calibrated: exact under normality) "
             "and rate ≤ α one-sided for Holm and the combined decision (conservative by construction: Holm "
             "controls the family-wise error under any dependence; the combined p is 2·min(p_T², p_Holm)). With "
             "one coordinate Hotelling's T² is the squared t statistic, so Hotelling and Holm coincide and the "
             "combined p-value is that t-test's p-value, not doubled. On the one-bit toy, REINFORCE, RLOO and "
             "DisARM take only two values, so the sample mean is a rescaled Binomial(n, q) count and the p-value has a "
             "lattice law: 'exact size' is P(p < α) under that law (the p-value of every count K = 0..n in closed "
             "form, checked against refgrad's test at 7 counts), and "
             "the uniformity column is a KS test of the observed p-values against that exact law (p-value by "
             "simulating 2000 samples of R from it) instead of a KS test against the continuous uniform, which a "
             "lattice fails at large R without any miscalibration.")
    dev_max = max(r[6] for r in moment_rows)
    err_max = max(r[7] for r in moment_rows)
    ctx.check("(a) the null estimators are exactly unbiased on both problems (exact moments)",
              all(r[6] <= max(1e-12, 10 * r[7]) for r in moment_rows),
              f"max |E[ĝ] − ∇| = {dev_max:.1e} (oracle error ≤ {err_max:.1e})")
    m_hot = sum(1 for r in results if r[3] == "hotelling")
    fam = 1 - (1 - CI_LEVEL) / m_hot  # Bonferroni over the Hotelling rates
    inside, inside_fam, outside = 0, 0, []
    for pname, name, alpha, method, k, _bp in results:
        if method != "hotelling":
            continue
        lo, hi = _ci(k, reps)
        lo_f, hi_f = _ci(k, reps, fam)
        inside += lo <= alpha <= hi
        inside_fam += lo_f <= alpha <= hi_f
        if not lo <= alpha <= hi:
            outside.append(f"{pname}/{name} α = {alpha}: {k}/{reps}")
    ctx.check(f"(a) Hotelling's false-alarm rate matches α: α inside the {CI_LEVEL:.0%} Clopper-Pearson interval "
              f"of every rate (Bonferroni-adjusted over the {m_hot} rates to a family-wise {CI_LEVEL:.0%}, i.e. "
              f"{fam:.5f} each)", inside_fam == m_hot,
              f"inside the adjusted intervals: {inside_fam}/{m_hot}; inside the unadjusted {CI_LEVEL:.0%} intervals: "
              f"{inside}/{m_hot}" + (f" (outside: {'; '.join(outside)})" if outside else ""))
    cons = [(r, k) for r in results if r[3] != "hotelling" for k in [r[4]]]
    m_cons = len(cons)
    worst = min(r[5] for r, _ in cons)
    rates_holm = [r[4] / reps / r[2] for r, _ in cons if r[3] == "holm"]
    rates_both = [r[4] / reps / r[2] for r, _ in cons if r[3] == "both"]
    ctx.check("(a) Holm's and the combined decision's false-alarm rates do not exceed α (one-sided binomial test "
              f"at 0.01, Bonferroni over {m_cons} rates)", worst > 0.01 / m_cons,
              f"smallest one-sided binomial p = {worst:.3g} > {0.01 / m_cons:.2g}; rate/α ranges: Holm "
              f"{min(rates_holm):.2f}–{max(rates_holm):.2f}, combined {min(rates_both):.2f}–{max(rates_both):.2f}")
    ctx.check("(a) with one coordinate, Hotelling's p-value equals the t-test (Holm) p-value",
              max(equal_1d) < 1e-12, f"max |p_T² − p_Holm| over the toy replications: {max(equal_1d):.1e}")
    pooled = np.concatenate([p for p, r in zip(pvals_all, ks_rows) if r[4] is None])
    ks_pooled = sps.kstest(pooled, "uniform").pvalue
    ks_min = min(r[2] for r in ks_rows)
    lattice = [r for r in ks_rows if r[4] is not None]
    ctx.check("(a) Hotelling's p-values follow their null law: uniform where the estimates are continuous or "
              "multi-valued (KS), the exact lattice law where they take two values (KS against that law, Monte Carlo "
              f"p-value); each at 0.01 Bonferroni over {len(ks_rows)} settings, and the pooled continuous settings KS "
              f"at 0.01",
              ks_min > 0.01 / len(ks_rows) and ks_pooled > 0.01,
              "; ".join(f"{r[1]}/{r[0]}: {r[3].split(' (')[0]} p = {r[2]:.3g}" for r in ks_rows)
              + f"; pooled KS p = {ks_pooled:.3g} ({pooled.size} p-values)")
    if closed_vs_refgrad:
        worst = max(w for _, w, _ in closed_vs_refgrad)
        ctx.check("(a) the closed-form lattice law of the p-value agrees with refgrad's test on two-valued samples "
                  "(relative difference < 1e-9 at the counts K checked)", worst < 1e-9,
                  "; ".join(f"{lab}: {k} counts K around nq (±4 sd), largest relative difference {w:.1e}"
                            for lab, w, k in closed_vs_refgrad))
    if lattice:
        ctx.note("(a) Two-valued estimates make the p-value a lattice variable: the exact law's largest distance from "
                 "the uniform CDF is " + ", ".join(f"{r[4]:.3f} ({r[1]}/{r[0]})" for r in lattice)
                 + f" at n = {n}, so a KS test against the continuous uniform fails as R grows into the thousands "
                 f"without any miscalibration (here, R = {reps}: KS p = "
                 + ", ".join(f"{r[5]:.2g} ({r[1]}/{r[0]})" for r in lattice) + "). "
                 "Exact sizes of Hotelling at α = " + ", ".join(str(a) for a in ALPHAS) + ": "
                 + "; ".join(f"{r[0]}/{r[1]}: " + ", ".join(f"{row[8]:.4f}" for row in rate_rows
                                                            if row[0] == r[0] and row[1] == r[1] and row[8] != "")
                             for r in lattice) + ".")
    ctx.record(a_ks_pooled=ks_pooled, a_uniformity=[[r[0], r[1], r[2], r[3]] for r in ks_rows],
               a_rates=[[r[0], r[1], r[2], r[3], r[4] / reps] for r in results])

    def draw(fig):
        ax = fig.add_subplot(121)
        bins = np.linspace(0, 1, 21)
        ax.hist(pooled, bins=bins, density=True, alpha=0.6, label=f"{pooled.size} p-values (continuous settings)")
        ax.axhline(1.0, color="k", ls="--", lw=1, label="uniform")
        ax.set_xlabel("Hotelling p-value")
        ax.set_ylabel("density")
        ax.set_ylim(0, 1.5)
        ax.set_title(f"pooled KS p = {ks_pooled:.3g}", fontsize=9)
        ax.legend(fontsize=7, loc="upper center")  # above the bars (ylim 1.5 leaves room)
        ax2 = fig.add_subplot(122)
        grid = np.linspace(0, 1, 401)
        for (pname, name, ks, _, _, _), p, law in zip(ks_rows, pvals_all, laws):
            ecdf = np.searchsorted(np.sort(p), grid, side="right") / p.size
            if law is None:
                ref = grid
            else:
                atoms, weights, _ = law
                order = np.argsort(atoms)
                ref = np.cumsum(weights[order])[np.searchsorted(atoms[order], grid, side="right") - 1]
            ax2.plot(grid, ecdf - ref, lw=0.8, label=f"{name}/{pname}{'' if law is None else ' (lattice)'} "
                                                     f"p {ks:.2g}")
        band = sps.kstwo.isf(0.01, reps)  # 99 % KS band for one setting
        ax2.axhline(band, color="k", ls=":", lw=0.8)
        ax2.axhline(-band, color="k", ls=":", lw=0.8, label="99% KS band (one setting)")
        ax2.set_xlabel("u")
        ax2.set_ylabel("ECDF(u) − null CDF(u)")
        ax2.set_title(f"per setting, {reps} replications each", fontsize=9)
        ax2.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.25, -0.2), ncol=2)  # below: off the curves

    ctx.figure("pvalues", "Hotelling p-values of unbiasedness_test under the null (should be uniform)", draw)


# ------------------------------------------------------------------------------------ (b) power


def _analytic_power(bias, cov, n, alpha):
    """Power of the combined decision (reject iff p_T² < α/2 or p_Holm < α/2; one coordinate: the t-test at α).

    Hotelling: T² rescaled is noncentral F(r, n − r) with λ = n δᵀ Σ⁺ δ (normal approximation of the mean).
    Holm: at least as powerful as Bonferroni, per coordinate a two-sided z-test at α/(2p).
    Returns (hotelling, holm lower bound, combined lower bound, combined upper bound).
    """
    bias = np.asarray(bias, float).ravel()
    cov = np.atleast_2d(cov)
    r = int(np.linalg.matrix_rank(cov, tol=1e-10 * np.max(np.abs(cov))))
    lam = float(n * bias @ np.linalg.pinv(cov, rcond=1e-10) @ bias)
    p = bias.size
    # the combined decision tests each part at α/2; with one coordinate it is the single t-test at α
    crit = sps.f.isf(alpha if p == 1 else alpha / 2, r, n - r)
    hot = float(sps.ncf.sf(crit, r, n - r, lam))
    var = np.maximum(np.diag(cov), 1e-300)
    z = special.ndtri(1 - alpha / (4 * p))
    shift = np.abs(bias) / np.sqrt(var / n)
    per = special.ndtr(shift - z) + special.ndtr(-shift - z)
    holm = float(np.max(per))
    if p == 1:  # Hotelling and the t-test coincide: the combined decision is that one test at α
        return hot, holm, hot, hot
    return hot, holm, max(hot, holm), min(1.0, hot + float(np.sum(per)))


def _power(ctx):
    n, alpha = 10000, 1e-3
    reps = ctx.size(40, 150)
    ctx.setting(b_n=n, b_alpha=alpha, b_replications=reps)
    cat = Categorical(CAT_LOGITS)
    declared = [name for name, spec in refgrad.ESTIMATORS.items() if not spec.unbiased]
    settings = [
        ("gumbel_softmax", {"tau": 0.5}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
        ("straight_through", {"tau": 0.5}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
        ("gumbel_rao", {"tau": 0.5, "k": 4}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
        ("gumbel_softmax", {"tau": 1.0}, "categorical K = 3", cat, CAT_SQ),
        ("straight_through", {"tau": 1.0}, "categorical K = 3", cat, CAT_SQ),
        ("gumbel_rao", {"tau": 1.0, "k": 4}, "categorical K = 3", cat, CAT_SQ),
        # ReinMax is exact on quadratic objectives at its default τ = 1 (its mean is the trapezoid rule along the
        # simplex edges), so its power setting uses τ = 2; gapped straight-through at its defaults
        ("reinmax", {"tau": 2.0}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
        ("gapped_straight_through", {}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
        ("straight_through_plain", {}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY),
    ]
    # intermediate-power settings (GS on the toy at ℓ = 0.3 against τ): analytic vs simulated power
    curve = [("gumbel_softmax", {"tau": t}, f"one bit ℓ = {LOGIT}", Bernoulli(np.array([LOGIT])), TOY)
             for t in (0.15, 0.2, 0.25, 0.35)]
    rows = []
    default_ok, curve_ok = [], []
    targets = [exact.gradient(dist, f) for _, _, _, dist, f in settings + curve]
    merged = _unbiasedness(ctx, [(f"b/{idx}", name, dist, f, options, n, reps, target, {"alpha": alpha})
                                 for idx, ((name, options, _, dist, f), target)
                                 in enumerate(zip(settings + curve, targets))], "(b) power replications")
    for idx, (name, options, pname, dist, f) in enumerate(settings + curve):
        m = _moments(name, pname, dist, f, **options)
        target, out = targets[idx], merged[idx]
        bias = (m.mean - target).ravel()
        hot, holm, lo, hi = _analytic_power(bias, m.cov, n, alpha)
        k = int(np.sum(out["reject"]))
        heavy = float(np.mean(out["heavy"]))
        is_curve = idx >= len(settings)
        if is_curve:
            clo, chi = _ci(k, reps, 1 - 0.01 / len(curve))
            ok = clo <= hi and chi >= lo
            curve_ok.append((options["tau"], k / reps, lo, ok))
        else:
            bp = sps.binomtest(k, reps, 0.99, alternative="less").pvalue
            ok = lo >= 0.99 and bp > 0.01 / len(settings)
            default_ok.append((name, pname, lo, k, bp, ok))
        rows.append(["power curve" if is_curve else "assert_biased default", name, str(options), pname,
                     np.round(bias, 6).tolist(), np.round(np.sqrt(m.variance.ravel()), 5).tolist(), hot, holm,
                     f"{lo:.4f}" if lo == hi else f"{lo:.4f}–{hi:.4f}", f"{k}/{reps}", _ci_text(k, reps), heavy])
    ctx.table(f"(b) Power of unbiasedness_test (combined decision) at n = {n}, α = {alpha}", [
        "kind", "estimator", "options", "problem", "exact bias", "exact sd", "analytic power Hotelling",
        "Holm (Bonferroni bound)", "analytic power, combined", "simulated rejections", "99% CI",
        "heavy-tail flag rate"], rows,
        note="Analytic power from refgrad.exact.moments' bias δ and covariance Σ: Hotelling's T² as noncentral "
             "F(r, n − r) with λ = n δᵀΣ⁺δ at level α/2 (α with one coordinate); Holm bounded below by Bonferroni "
             "z-tests at α/(2p). The combined decision rejects iff either rejects at α/2, so its power lies between "
             "the larger of the two and their sum; with one coordinate both are the same t-test, its p-value is the "
             "decision (not doubled) and the power is the Hotelling value at α. "
             "Simulated: replications of refgrad.testing.assert_biased's default test (n = 10000, α = 1e-3, "
             "method='both').")
    ctx.check("(b) every estimator declared biased is covered by a power setting",
              set(declared) == {s[0] for s in settings}, f"declared biased: {sorted(declared)}")
    ctx.check("(b) at assert_biased's defaults every biased estimator has analytic power ≥ 0.99 and a simulated "
              "rejection rate not significantly below 0.99 (one-sided binomial test, 0.01 Bonferroni)",
              all(r[5] for r in default_ok),
              "; ".join(f"{nm} ({pn}): analytic ≥ {lo:.5f}, simulated {k}/{reps} (p = {bp:.2g})"
                        for nm, pn, lo, k, bp, _ in default_ok))
    ctx.check("(b) where power is intermediate, the simulated rejection rate agrees with the analytic power "
              f"(analytic value inside the simulated rate's Bonferroni {CI_LEVEL:.0%} interval)",
              all(c[3] for c in curve_ok),
              "; ".join(f"GS τ = {t}: simulated {s:.3f}, analytic {a:.3f}" for t, s, a, _ in curve_ok))


# ------------------------------------------------------------------------------------ (c) variance test


def _variance(ctx):
    n = 2000
    reps = ctx.size(200, 500)
    alpha = 0.05
    ctx.setting(c_n=n, c_replications=reps, c_alpha=alpha)
    toy_dist = Bernoulli(np.array([LOGIT]))
    sym_dist = Bernoulli(np.array([0.4, 0.4]))
    sym_f = Table(np.array([[0.3, 1.1], [1.1, -0.5]]))
    alternatives = ("less", "greater", "two-sided")
    rows = []
    null_results = []

    agreement = []

    def rates(label, kind, out, j, exact_ratio, count=True):
        # the trace statistic z does not depend on the alternative: one two-sided call per replication, the
        # one-sided decisions from z (p = Φ(z) for 'less', Φ(−z) for 'greater'), checked against refgrad's own
        # one-sided calls on the first replications (in the tasks, _calibration_tasks.variance_chunk)
        z = out[f"z{j}"]
        decided = {"two-sided": out[f"two{j}"], "less": special.ndtr(z) < alpha, "greater": special.ndtr(-z) < alpha}
        agreement.append(out[f"disagree{j}"])
        for alt in alternatives:
            k = int(np.sum(decided[alt]))
            bp = sps.binomtest(k, reps, alpha, alternative="greater").pvalue
            bp2 = sps.binomtest(k, reps, alpha).pvalue
            rows.append([label, kind, exact_ratio, alt, f"{k}/{reps}", k / reps, _ci_text(k, reps), bp,
                         "inside" if _ci(k, reps)[0] <= alpha <= _ci(k, reps)[1] else
                         ("below (conservative)" if k / reps < alpha else "above")])
            if count:
                null_results.append((label, kind, alt, k, bp, bp2))

    # independent samples of the same estimator (equal variances exactly); paired: straight-through and
    # Gumbel-Rao with k = 1 on the same u (same b: equal laws, correlated); the two coordinates of REINFORCE
    # on an exchangeable 2-bit problem
    same = [("reinforce, toy", "reinforce", toy_dist, TOY, {}), ("disarm, toy", "disarm", toy_dist, TOY, {}),
            ("gumbel_softmax τ = 0.5, toy", "gumbel_softmax", toy_dist, TOY, {"tau": 0.5}),
            ("reinforce, 2-bit table (trace)", "reinforce", Bernoulli(TABLE2_LOGITS), TABLE2, {})]
    specs = [(f"c/null/{label}", ("same", name, dist, f, options)) for label, name, dist, f, options in same]
    specs += [("c/null/st-gr1", ("st_gr", toy_dist, TOY)), ("c/null/sym", ("sym", sym_dist, sym_f))]
    merged = _mapped(ctx, tasks.variance_chunk, [[(spec, n, chunk, alpha, AGREEMENT_REPS) for chunk in
                                                   tasks.chunks(ctx.seed_sequence(lab), reps)] for lab, spec in specs],
                     "(c) null replications")
    for (label, *_), out in zip(same, merged):
        rates(label, "independent", out, 0, 1.0)
    corr_st = merged[-2]["first_corr"]
    m_st = _moments("straight_through", "toy", toy_dist, TOY, tau=0.5)
    m_gr = exact.moments("gumbel_rao", toy_dist, TOY, tau=0.5, k=1)
    rates("ST vs GR (k = 1), same u, toy τ = 0.5", "paired", merged[-2], 0,
          float(m_gr.variance[0] / m_st.variance[0]))
    m_sym = exact.moments("reinforce", sym_dist, sym_f)
    corr_sym = float(m_sym.cov[0, 1] / math.sqrt(m_sym.cov[0, 0] * m_sym.cov[1, 1]))
    rates("REINFORCE coordinate 1 vs 2, exchangeable 2-bit problem", "paired", merged[-1], 0,
          float(m_sym.variance[1] / m_sym.variance[0]))
    rates("same, tested as if independent (misuse)", "independent (wrong)", merged[-1], 1,
          float(m_sym.variance[1] / m_sym.variance[0]), count=False)
    ctx.table(f"(c) variance_test under equal variances: rejection rates at α = {alpha}, n = {n}, {reps} replications",
              ["samples", "test", "exact variance ratio", "alternative", "rejections", "rate", "99% CI",
               "one-sided binomial p (rate ≤ α)", "α vs the interval"], rows,
              note=f"Paired settings share noise: ST and Gumbel-Rao with k = 1 use the same u, hence the same b "
                   f"(correlation {corr_st:.2f}), and have the same law; the two REINFORCE coordinates on "
                   f"ℓ = (0.4, 0.4), f = {sym_f.values.tolist()} are exchangeable (exact correlation {corr_sym:.2f}). "
                   "The last rows run the independent-samples test on those paired coordinates: the correlation "
                   "of the squared deviations makes it very conservative (and it would lose power the same way).")
    m = len(null_results)
    worst = min(r[4] for r in null_results)
    ctx.check(f"(c) variance_test holds its level under equal variances: no rejection rate significantly above α = "
              f"{alpha} (one-sided binomial test at 0.01, Bonferroni over {m} rates; independent and paired)",
              worst > 0.01 / m,
              f"smallest one-sided p = {worst:.3g}; rates: " + ", ".join(
                  f"{lab.split(',')[0]} {kind[0]} {alt}: {k / reps:.3f}" for lab, kind, alt, k, _, _ in null_results))
    ctx.check("(c) the one-sided decisions read off the two-sided call's statistic equal refgrad's one-sided calls",
              sum(agreement) == 0, f"{sum(agreement)} disagreements in {len(agreement) * AGREEMENT_REPS} "
                                   f"one-sided calls (first {AGREEMENT_REPS} replications of each setting)")
    off = [r for r in null_results if r[5] < 0.01 / m]
    ctx.note("(c) Rates significantly different from α (two-sided binomial, 0.01 Bonferroni): "
             + ("; ".join(f"{lab} ({kind}, {alt}): {k}/{reps}" for lab, kind, alt, k, _, _ in off) if off else "none")
             + ". The statistic is asymptotic (log variance ratio with a fourth-moment standard error); "
               "refgrad.stats documents its measured sizes.")

    # power where exact moments prove a gap: DisARM < ARM (both cost 2)
    power_rows = []
    power = {}
    sizes = (100, 300, 1000)
    plans = [(pname, dist, f, nn) for pname, (dist, f) in _problems().items() for nn in sizes]
    counts = _mapped(ctx, tasks.power_chunk, [[(dist, f, nn, chunk, 0.01) for chunk in
                                               tasks.chunks(ctx.seed_sequence(f"c/power/{pname}/{nn}"), reps)]
                                              for pname, dist, f, nn in plans], "(c) power, DisARM < ARM")
    counts = {(pname, nn): c for (pname, _, _, nn), c in zip(plans, counts)}
    for pname, (dist, f) in _problems().items():
        ma = _moments("arm", pname, dist, f)
        md = _moments("disarm", pname, dist, f)
        ratio = float(md.variance.sum() / ma.variance.sum())
        ratios = (md.variance / ma.variance).ravel()
        for nn in sizes:
            kp, ki = counts[(pname, nn)]["paired"], counts[(pname, nn)]["independent"]
            power[(pname, nn)] = (kp / reps, ki / reps)
            power_rows.append([pname, np.round(ma.variance.ravel(), 6).tolist(),
                               np.round(md.variance.ravel(), 6).tolist(), ratio, nn,
                               f"{kp / reps:.3f} {_ci_text(kp, reps)}", f"{ki / reps:.3f} {_ci_text(ki, reps)}"])
        ctx.check(f"(c) {pname}: exact moments prove DisARM's variance below ARM's in every coordinate",
                  np.all(ratios < 1) and ma.error < 1e-10 and md.error < 1e-10,
                  f"Var(DisARM)/Var(ARM) per coordinate {np.round(ratios, 4).tolist()} (trace {ratio:.4f}), "
                  f"method {md.method}, error {max(ma.error, md.error):.1e}")
    ctx.table(f"(c) Power of variance_test (alternative 'less', α = 0.01) for Var(DisARM) < Var(ARM), {reps} "
              "replications", ["problem", "exact Var(ARM)", "exact Var(DisARM)", "trace ratio", "n",
                               "paired (same u): power, 99% CI", "independent: power, 99% CI"], power_rows,
              note="Equal cost (both evaluate f twice per estimate). Paired: ARM and DisARM computed from the same "
                   "uniforms; independent: ARM from fresh uniforms.")
    ok_mono = all(power[(p, 100)][j] <= power[(p, 300)][j] + 0.02 and power[(p, 300)][j] <= power[(p, 1000)][j] + 0.02
                  for p in _problems() for j in (0, 1))
    ok_paired = all(power[k][0] >= power[k][1] - 0.02 for k in power)
    ok_final = all(power[(p, 1000)][0] >= 0.99 and power[(p, 1000)][1] >= 0.9 for p in _problems())
    ctx.check("(c) the gap is detected: power grows with n, pairing (common random numbers) never loses power, and "
              "at n = 1000 the paired power is ≥ 0.99 and the independent power ≥ 0.9 on both problems",
              ok_mono and ok_paired and ok_final,
              "; ".join(f"{p} n = {nn}: paired {pp:.3f}, independent {pi:.3f}" for (p, nn), (pp, pi) in power.items()))


# ------------------------------------------------------------------------------------ (d) required samples


def _required(ctx):
    reps = ctx.size(100, 400)
    ctx.setting(d_replications=reps)
    cat = Categorical(CAT_LOGITS)
    settings = [
        ("gumbel_softmax", {"tau": 0.3}, f"one bit ℓ = {LOGIT}", Bernoulli(np.array([LOGIT])), TOY, 1e-3, 0.9, "holm"),
        ("straight_through", {"tau": 0.5}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY, 0.01, 0.8, "holm"),
        ("gumbel_softmax", {"tau": 0.5}, "one bit ℓ = 0.7", Bernoulli(np.array([0.7])), TOY, 1e-3, 0.9, "both"),
        ("gumbel_softmax", {"tau": 1.0}, "categorical K = 3", cat, CAT_SQ, 1e-3, 0.9, "holm"),
        ("gumbel_rao", {"tau": 1.0, "k": 4}, "categorical K = 3", cat, CAT_SQ, 0.01, 0.5, "both"),
    ]
    rows = []
    outcome = []
    plans = []
    for idx, (name, options, pname, dist, f, alpha, power, method) in enumerate(settings):
        m = _moments(name, pname, dist, f, **options)
        target = exact.gradient(dist, f)
        bias = (m.mean - target).ravel()
        var = m.variance.ravel()
        # for the combined decision on several coordinates, required_samples' docstring says: pass alpha / 2
        # (with one coordinate the combined p-value is the t-test's own, not doubled)
        halve = method == "both" and var.size > 1
        n = stats.required_samples(var, bias, alpha=alpha / 2 if halve else alpha, power=power)
        plans.append((bias, var, n, (f"d/{idx}", name, dist, f, options, n, reps, target,
                                     {"alpha": alpha, "method": method})))
    merged = _unbiasedness(ctx, [plan[3] for plan in plans], "(d) required samples")
    for (name, options, pname, _dist, _f, alpha, power, method), (bias, var, n, _), out in zip(settings, plans, merged):
        k = int(np.sum(out["reject"]))
        bp = sps.binomtest(k, reps, power, alternative="less").pvalue
        outcome.append((name, pname, n, power, k, bp))
        rows.append([name, str(options), pname, np.round(bias, 6).tolist(), np.round(var, 6).tolist(), alpha, power,
                     method, n, f"{k}/{reps}", k / reps, _ci_text(k, reps), bp])
    ctx.table("(d) required_samples: simulated power at the n it returns", [
        "estimator", "options", "problem", "exact bias", "exact variance", "α", "stated power", "method", "n",
        "rejections", "simulated power", "99% CI", "binomial p (power not reached)"], rows,
        note="n = refgrad.stats.required_samples(exact variance, exact bias, α, power) (α/2 for method='both' on "
             "several coordinates, as its docstring prescribes; α with one coordinate, where the combined p is the "
             "t-test's); with several coordinates it is the n at which every coordinate's bias is "
             "detected with that power, so the test's overall power is higher. The formula is a two-sided z-test "
             "ignoring the far tail, so the simulated power should be at or slightly above the stated one.")
    m = len(outcome)
    ctx.check("(d) the n from required_samples achieves the stated power (simulated rate not significantly below it: "
              f"one-sided binomial test at 0.01, Bonferroni over {m})", all(o[5] > 0.01 / m for o in outcome),
              "; ".join(f"{nm} ({pn}): n = {n}, stated {pw}, simulated {k / reps:.3f} (p = {bp:.2g})"
                        for nm, pn, n, pw, k, bp in outcome))
    one_d = [o for o, r in zip(outcome, rows) if len(r[3]) == 1]
    level = 1 - (1 - CI_LEVEL) / len(one_d)
    tight = [(nm, pw, k, _ci(k, reps, level)) for nm, _, _, pw, k, _ in one_d]
    ctx.check("(d) with one coordinate the formula is tight: the stated power lies inside the simulated rate's "
              f"{CI_LEVEL:.0%} interval (Bonferroni over {len(one_d)})",
              all(lo <= pw <= hi for _, pw, _, (lo, hi) in tight),
              "; ".join(f"{nm}: stated {pw}, simulated {k / reps:.3f} [{lo:.3f}, {hi:.3f}]"
                        for nm, pw, k, (lo, hi) in tight))


def run(ctx):
    _false_alarms(ctx)
    _power(ctx)
    _variance(ctx)
    _required(ctx)


CASE = Case(
    name="calibration",
    title="Calibration of refgrad's own tests: false-alarm rate, power, variance test, sample size",
    source="Hotelling 1931 (the T² test); Holm 1979 (step-down multiple testing); Clopper & Pearson 1934 (exact "
           "binomial intervals); the documented levels and power of refgrad's tests in refgrad/stats/ "
           "(unbiasedness_test, variance_test, required_samples) and refgrad/testing.py (assert_biased's defaults)",
    description="Runs refgrad's tests on many replications of estimators whose exact moments are known: the "
                "false-alarm rate of unbiasedness_test (Hotelling, Holm, combined) on unbiased estimators at "
                "α = 0.01 and 0.05 with exact binomial intervals and the uniformity of its p-values; its power "
                "against every biased estimator at assert_biased's defaults, analytic (from exact bias and "
                "covariance) and simulated; variance_test's size under equal variances (independent and paired) "
                "and its power for DisARM < ARM; and whether required_samples' n delivers the stated power.",
    run=run,
)
