"""Temperature: exact bias and variance of the relaxed estimators against τ, and where heavy tails set in.

Gumbel-Softmax (GS), straight-through (ST) and Gumbel-Rao (GR) are biased for
every temperature τ > 0.  This case computes their bias and variance *exactly*
(``refgrad.exact.moments``, tanh-sinh quadrature over the noise) on a log grid of
τ, for the one-bit toy ``f(b) = (b − 0.45)²`` and for one categorical variable
with K = 3, and checks the trends with numbers:

* GS: the bias vanishes as τ → 0 (like τ) while the variance grows (like 1/τ);
* ST: the bias vanishes as τ → 0 only for objectives that are at most quadratic
  along the edges of the simplex (the limit of E[ST] is the trapezoid rule applied to
  each edge); for a cubic objective it tends to 1.5 × the gradient instead;
* GR (identity derivative): the same mean as ST at every τ, never more variance.

It then draws Monte Carlo samples at each τ and measures where
``refgrad.stats.heavy_tail_diagnostic`` fires, the excess kurtosis there, and the
actual size of ``unbiasedness_test`` against the estimator's exact mean (a true
null), and reports the quadrature oracle's own error estimate as the integrand
becomes a spike of width ∝ τ (resolved for one bit by the declared split point at
the sample threshold; for the categorical the spike lies on the argmax boundary,
where conditional integration has no split point, and the level is raised).
"""
import warnings

import numpy as np
from scipy import special
from scipy import stats as sps

import refgrad
from refgrad import exact, stats
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import FunctionObjective, SquaredDistance

from ..core import Case

# ------------------------------------------------------------------------------------ problems

LOGIT = 0.3  # one bit, θ = σ(0.3) ≈ 0.574 (generic: at ℓ = 0 the GS bias of the toy is O(τ²) by symmetry)
T = 0.45
TOY = SquaredDistance(np.array([T]))
CUBE_BIT = FunctionObjective(lambda z: (z**3).sum(axis=1), lambda z: 3.0 * z**2, name="b³")
CAT_LOGITS = np.array([[0.3, -0.5, 1.0]])
CAT_TARGET = np.array([[0.2, 0.3, 0.5]])
CAT_SQ = SquaredDistance(CAT_TARGET)
CUBE_W = np.array([1.0, -0.5, 2.0])
CAT_CUBE = FunctionObjective(lambda z: (CUBE_W * z**3).sum(axis=(1, 2)), lambda z: 3.0 * CUBE_W * z**2,
                             name="Σ_k w_k x_k³")

ESTIMATORS = ("gumbel_softmax", "straight_through", "gumbel_rao")
SHORT = {"gumbel_softmax": "GS", "straight_through": "ST", "gumbel_rao": "GR"}
GR_K = 10  # gumbel_rao's default number of conditional samples
# exact.moments' documented default quadrature level for noise dimension 1 and 3
DEFAULT_LEVEL = {"toy": 6, "categorical": 4}
ALPHA = 0.05  # level of the unbiasedness tests in the heavy-tail study


# ------------------------------------------------------------------------------------ helpers


def _oracle(name, dist, f, tau, start, cap, rel_tol, **options):
    """Exact moments at the default level, then at higher levels until error ≤ rel_tol × scale (or the cap)."""
    first = exact.moments(name, dist, f, tau=tau, level=start, **options)
    m, level = first, start
    mean_error = float(first.error)  # the oracle's error bounds every entry, the mean's included
    scale = max(float(np.max(np.abs(first.variance))), 1e-300)
    while m.error > rel_tol * scale and level < cap:
        level += 1
        prev = m
        m = exact.moments(name, dist, f, tau=tau, level=level, **options)
        mean_error = min(float(m.error), float(np.max(np.abs(m.mean - prev.mean))))
        scale = max(float(np.max(np.abs(m.variance))), 1e-300)
    return {
        "tau": float(tau),
        "mean": np.array(m.mean, dtype=float).ravel(),
        "var": np.array(m.variance, dtype=float).ravel(),
        "level": level,
        "error": float(m.error),
        "mean_error": mean_error,  # |mean_L − mean_(L−1)| of the last refinement step
        "converged": bool(m.error <= rel_tol * scale),
        "default_error": float(first.error),
        "default_mean": np.array(first.mean, dtype=float).ravel(),
        "default_var": np.array(first.variance, dtype=float).ravel(),
        # how far the default level's answer really was from the refined one (meaningful when converged)
        "default_actual": float(max(np.max(np.abs(first.mean - m.mean)), np.max(np.abs(first.variance - m.variance)))),
    }


def _slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _strictly_decreasing(values):
    return all(a > b for a, b in zip(values, values[1:]))


def _fmt_list(values, digits=3):
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def _binom_ci(k, n, level=0.99):
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


# ------------------------------------------------------------------------------------ exact sweeps


def _sweep(ctx, label, dist, runs, taus, start, cap, rel_tol):
    """Exact moments for each (estimator, objective) run over the τ grid; returns {key: [oracle dicts]}."""
    out = {}
    for key, name, f, options in runs:
        out[key] = [_oracle(name, dist, f, tau, start, cap, rel_tol, **options) for tau in taus]
    ctx.record(**{f"{label}_{key}_bias": [list(o["mean"]) for o in out[key]] for key, *_ in runs})
    return out


def _bias_norm(o, grad):
    return float(np.linalg.norm(o["mean"] - grad))


def _toy(ctx, taus):
    dist = Bernoulli(np.array([LOGIT]))
    grad = float(exact.gradient(dist, TOY)[0])
    grad_cube = float(exact.gradient(dist, CUBE_BIT)[0])
    slope = float(special.expit(LOGIT) * special.expit(-LOGIT))  # σ'(ℓ)
    cap = ctx.size(12, 12)
    runs = [
        ("GS", "gumbel_softmax", TOY, {}),
        ("ST", "straight_through", TOY, {}),
        ("GR", "gumbel_rao", TOY, {"k": GR_K}),
        ("GS-cube", "gumbel_softmax", CUBE_BIT, {}),
        ("ST-cube", "straight_through", CUBE_BIT, {}),
    ]
    # the documented default level is what level=None uses (checked on one point)
    a = exact.moments("gumbel_softmax", dist, TOY, tau=0.1)
    b = exact.moments("gumbel_softmax", dist, TOY, tau=0.1, level=DEFAULT_LEVEL["toy"])
    assert a.evaluations == b.evaluations and np.array_equal(a.mean, b.mean), "default quadrature level changed"
    res = _sweep(ctx, "toy", dist, runs, taus, DEFAULT_LEVEL["toy"], cap, 1e-10)

    rows = []
    for i, tau in enumerate(taus):
        for key, _, _f, _ in runs:
            o = res[key][i]
            g = grad_cube if "cube" in key else grad
            rows.append([f"{tau:.3g}", key, "b³" if "cube" in key else f"(b − {T})²", float(o["mean"][0]),
                         float(o["mean"][0] - g), float(o["var"][0]), o["level"], o["error"], o["default_error"],
                         o["default_actual"]])
    ctx.table(f"One bit (ℓ = {LOGIT}): exact mean, bias and variance against τ",
              ["τ", "estimator", "f", "E[ĝ]", "bias", "variance", "level", "error (used)", "error (default level)",
               "|default − refined|"], rows,
              note=f"Exact gradient: {grad:.10f} for (b − {T})² and {grad_cube:.10f} for b³ (σ'(ℓ) = {slope:.6f}). "
                   f"GR uses k = {GR_K}. 'level' is the tanh-sinh level used: the documented default "
                   f"{DEFAULT_LEVEL['toy']} for one noise dimension, raised until the oracle's error estimate "
                   f"(|I_L − I_(L−1)|) is below 1e-10 × the variance (cap {cap}). '|default − refined|' is the "
                   "actual error of the default level's mean or variance.")

    bias = {k: np.array([abs(o["mean"][0] - (grad_cube if "cube" in k else grad)) for o in res[k]]) for k, *_ in runs}
    var = {k: np.array([o["var"][0] for o in res[k]]) for k, *_ in runs}
    converged = all(o["converged"] for k in res for o in res[k])
    ctx.check("the quadrature oracle converged at every τ on the one-bit problems",
              converged, f"largest error estimate used: {max(o['error'] for k in res for o in res[k]):.2g}; "
                         f"levels used {sorted({o['level'] for k in res for o in res[k]})}")
    small = taus <= 0.31
    s_taus = taus[small]
    for key, what in (("GS", "Gumbel-Softmax"), ("ST", "straight-through")):
        b = bias[key][small]
        sl = _slope(s_taus[:3], b[:3])
        ctx.check(f"toy: {what} |bias| decreases strictly as τ decreases (τ ≤ 0.3) and vanishes like τ",
                  _strictly_decreasing(b[::-1]) and 0.8 < sl < 1.2 and b[0] < b[-1] / 5,
                  f"|bias| at τ = {_fmt_list(s_taus)}: {_fmt_list(b)}; log-log slope over the 3 smallest τ "
                  f"{sl:.3f} (expect ≈ 1)")
        v = var[key]
        sv = _slope(taus[:3], v[:3])
        ctx.check(f"toy: {what} variance increases strictly as τ decreases over the whole grid, like 1/τ",
                  _strictly_decreasing(v) and -1.2 < sv < -0.8,
                  f"variance at τ = {_fmt_list(taus)}: {_fmt_list(v)}; log-log slope over the 3 smallest τ "
                  f"{sv:.3f} (expect ≈ −1)")
    gs_sign = np.sign([o["mean"][0] - grad for o in res["GS"]])
    flips = [f"{taus[i]:.3g}–{taus[i + 1]:.3g}" for i in range(len(taus) - 1) if gs_sign[i] != gs_sign[i + 1]]
    if flips:
        ctx.note(f"GS bias on the toy changes sign between τ = {', '.join(flips)}: |bias| is not monotone over the "
                 "whole grid, so the monotone-bias checks are stated on τ ≤ 0.3, where it is.")
    # ST limit: σ'(ℓ)(f'(0) + f'(1))/2
    lim_toy = slope * 0.5 * (2 * (0 - T) + 2 * (1 - T))
    lim_cube = slope * 0.5 * (0.0 + 3.0)
    st_cube_mean = np.array([o["mean"][0] for o in res["ST-cube"]])
    low = taus <= 0.13
    gap = np.abs(st_cube_mean - lim_cube)[low]
    gap_slope = _slope(taus[:2], gap[:2])
    ctx.check("toy: the small-τ limit σ'(ℓ)(f'(0) + f'(1))/2 of E[ST] is the exact gradient for (b − t)² "
              "(quadratic in the bit: the ST bias vanishes)", abs(lim_toy - grad) < 1e-14,
              f"limit {lim_toy:.15f}, exact gradient {grad:.15f}")
    ctx.check("one bit, f = b³: E[ST] → σ'(ℓ)·3/2, so the ST bias tends to σ'(ℓ)/2 ≠ 0 (it does not vanish): "
              "|E[ST] − σ'(ℓ)·3/2| decreases strictly for τ ≤ 0.13, like τ, and is < 5 % of σ'(ℓ)/2 at the smallest τ",
              _strictly_decreasing(gap[::-1]) and gap[0] < 0.05 * abs(lim_cube - grad_cube)
              and abs(lim_cube - grad_cube - slope / 2) < 1e-14 and 0.6 < gap_slope < 1.4,
              f"|E[ST] − σ'(ℓ)·3/2| at τ = {_fmt_list(taus[low])}: {_fmt_list(gap)} (log-log slope over the two "
              f"smallest τ {gap_slope:.3f}; E[ST] overshoots the limit near τ ≈ 0.2 before converging); "
              f"ST bias at τ = {taus[0]:.3g}: "
              f"{bias['ST-cube'][0]:.5f}, limit σ'(ℓ)/2 = {slope / 2:.5f}; meanwhile GS's bias on b³ at τ = "
              f"{taus[0]:.3g} is {bias['GS-cube'][0]:.2g}")
    gr_gap = max(abs(a["mean"][0] - b["mean"][0]) for a, b in zip(res["GR"], res["ST"]))
    ratios = var["GR"] / var["ST"]
    ctx.check(f"toy: GR (k = {GR_K}) has ST's mean at every τ and no more variance",
              gr_gap < 1e-9 and np.all(ratios <= 1 + 1e-9),
              f"max |E[GR] − E[ST]| = {gr_gap:.2g}; Var(GR)/Var(ST) from {ratios.min():.3f} (τ = "
              f"{taus[np.argmin(ratios)]:.3g}) to {ratios.max():.3f} (τ = {taus[np.argmax(ratios)]:.3g})")

    # the oracle's error estimate at the default level
    errs = np.array([o["default_error"] for o in res["GS"]])
    actual = np.array([o["default_actual"] for o in res["GS"]])
    worst = int(np.argmax(np.maximum(errs, actual)))
    ctx.check("toy GS: the oracle is accurate at the default level for every τ (the layer of width ∝ τ at the "
              "sample threshold is a declared split point)",
              bool(np.all(errs < 1e-10) and np.all(actual < 1e-10)),
              f"default level {DEFAULT_LEVEL['toy']}: largest error estimate {errs.max():.1e}, largest actual "
              f"difference from the refined value {actual.max():.1e} (at τ = {taus[worst]:.3g})")
    under = [(tau, e, a) for tau, e, a in zip(taus, errs, actual) if a > 2 * e and a > 1e-8]
    if under:
        ctx.note("The default-level error estimate understated the actual error at τ = "
                 + ", ".join(f"{t:.3g} (estimate {e:.1e}, actual {a:.1e})" for t, e, a in under)
                 + ": |I_L − I_(L−1)| is not a bound while the spike is unresolved at both levels.")
    ctx.record(toy_taus=taus, toy_grad=grad, toy_st_limit_cube=lim_cube)
    return taus, res, grad, grad_cube


def _categorical(ctx, taus):
    dist = Categorical(CAT_LOGITS)
    grad = exact.gradient(dist, CAT_SQ).ravel()
    grad_cube = exact.gradient(dist, CAT_CUBE).ravel()
    pi = special.softmax(CAT_LOGITS[0])
    # quick mode starts one level below the documented default (1/8 of the cost; its error is reported)
    start = ctx.size(DEFAULT_LEVEL["categorical"] - 1, DEFAULT_LEVEL["categorical"])
    runs = [
        ("GS", "gumbel_softmax", CAT_SQ, {}),
        ("ST", "straight_through", CAT_SQ, {}),
        ("GR", "gumbel_rao", CAT_SQ, {"k": GR_K}),
        ("ST-cube", "straight_through", CAT_CUBE, {}),
    ]
    res = {}
    for key, name, f, options in runs:
        cap = start + 2 if key == "GS" else start + 1
        res[key] = [_oracle(name, dist, f, tau, start, cap, 1e-3, **options) for tau in taus]

    # ST's small-τ limit: per edge (b, j) the trapezoid rule ½[(∂_b f − ∂_j f)(e_b) + (∂_b f − ∂_j f)(e_j)],
    # weighted by the boundary flux π_b π_j (the exact gradient uses f(e_b) − f(e_j) instead)
    def st_limit(f):
        vertices = np.eye(3)[:, None, :]
        G = f.grad(vertices)[:, 0, :]
        out = np.zeros(3)
        for b in range(3):
            for j in range(3):
                if j != b:
                    out[b] += pi[b] * pi[j] * 0.5 * ((G[b, b] - G[b, j]) + (G[j, b] - G[j, j]))
        return out

    lim_sq, lim_cube = st_limit(CAT_SQ), st_limit(CAT_CUBE)
    rows = []
    for i, tau in enumerate(taus):
        for key, *_ in runs:
            o = res[key][i]
            g = grad_cube if "cube" in key else grad
            rows.append([f"{tau:.3g}", key, "cube" if "cube" in key else "squared distance",
                         np.round(o["mean"] - g, 6).tolist(), float(np.linalg.norm(o["mean"] - g)),
                         float(o["var"].sum()), o["level"], o["error"], o["default_error"],
                         "yes" if o["converged"] else "no"])
    ctx.table("One categorical variable, K = 3: exact bias and variance against τ",
              ["τ", "estimator", "f", "bias (per logit)", "‖bias‖", "trace of covariance", "level", "error (used)",
               f"error (level {start})", "converged"], rows,
              note=f"Logits {CAT_LOGITS[0].tolist()}; squared distance ‖x − {CAT_TARGET.ravel().tolist()}‖²; "
                   f"cube f(x) = Σ_k w_k x_k³ with w = {CUBE_W.tolist()}. Exact gradients "
                   f"{np.round(grad, 8).tolist()} (squared distance) and {np.round(grad_cube, 8).tolist()} (cube). "
                   f"Levels: from {start} (the documented default for three noise dimensions is "
                   f"{DEFAULT_LEVEL['categorical']}), raised until the error estimate is below "
                   f"1e-3 × the largest variance, capped at {start + 2} for GS and {start + 1} otherwise "
                   "('converged' says whether the tolerance was met; each level costs 8× the previous).")

    def norms(key, g):
        return np.array([np.linalg.norm(o["mean"] - g) for o in res[key]])

    b_gs, b_st = norms("GS", grad), norms("ST", grad)
    v_gs = np.array([o["var"].sum() for o in res["GS"]])
    v_st = np.array([o["var"].sum() for o in res["ST"]])
    err_gs = np.array([o["error"] for o in res["GS"]])
    mean_err_gs = np.array([o["mean_error"] for o in res["GS"]])
    small = taus <= 1.2
    ctx.check("categorical: GS ‖bias‖ decreases strictly as τ decreases (τ ≤ 1.2) and vanishes like τ",
              _strictly_decreasing(b_gs[small][::-1]) and 0.7 < _slope(taus[:2], b_gs[:2]) < 1.3
              and np.all(mean_err_gs[small] < 0.01 * b_gs[small]),
              f"‖bias‖ at τ = {_fmt_list(taus[small])}: {_fmt_list(b_gs[small])}; log-log slope over the two "
              f"smallest τ {_slope(taus[:2], b_gs[:2]):.3f}; change of the mean at the last quadrature refinement "
              f"≤ {mean_err_gs.max():.1e} (< 1 % of ‖bias‖ at every point)")
    # variance ordering must exceed the oracle's error to count
    gaps_ok = all(v_gs[i] - v_gs[i + 1] > 3 * 3 * (err_gs[i] + err_gs[i + 1]) for i in range(len(taus) - 1))
    ctx.check("categorical: GS total variance increases strictly as τ decreases, like 1/τ (gaps larger than the "
              "oracle's error)", gaps_ok and -1.3 < _slope(taus[:2], v_gs[:2]) < -0.7,
              f"tr Cov at τ = {_fmt_list(taus)}: {_fmt_list(v_gs)}; log-log slope over the two smallest τ "
              f"{_slope(taus[:2], v_gs[:2]):.3f}; oracle errors {_fmt_list(err_gs, 2)}")
    ctx.check("categorical, squared distance: ST ‖bias‖ decreases strictly as τ decreases (τ ≤ 1.2) and vanishes "
              "like τ; the trapezoid-rule limit equals the exact gradient",
              _strictly_decreasing(b_st[small][::-1]) and 0.7 < _slope(taus[:2], b_st[:2]) < 1.3
              and np.max(np.abs(lim_sq - grad)) < 1e-14,
              f"‖bias‖ at τ = {_fmt_list(taus[small])}: {_fmt_list(b_st[small])}; slope "
              f"{_slope(taus[:2], b_st[:2]):.3f}; |limit − gradient| = {np.max(np.abs(lim_sq - grad)):.1e}")
    cube_mean = np.array([o["mean"] for o in res["ST-cube"]])
    gap = np.linalg.norm(cube_mean - lim_cube, axis=1)
    ratio = cube_mean[0] / grad_cube
    lim_bias = float(np.linalg.norm(lim_cube - grad_cube))
    low = taus <= 0.35
    gap_slope = _slope(taus[:2], gap[:2])
    ctx.check("categorical, cube Σ w_k x_k³: E[ST] → 1.5 × the exact gradient (the ST bias does not vanish): "
              "‖E[ST] − limit‖ decreases strictly for τ ≤ 0.35, like τ, and is < 1/4 of the limit's bias at the "
              "smallest τ", _strictly_decreasing(gap[low][::-1]) and np.max(np.abs(lim_cube / grad_cube - 1.5)) < 1e-12
              and gap[0] < 0.25 * lim_bias and 0.6 < gap_slope < 1.4,
              f"‖E[ST] − limit‖ at τ = {_fmt_list(taus)}: {_fmt_list(gap)} (log-log slope over the two smallest "
              f"τ {gap_slope:.3f}); ‖limit − gradient‖ = {lim_bias:.4f}; limit / gradient = "
              f"{np.round(lim_cube / grad_cube, 12).tolist()}; E[ST]/gradient at τ = {taus[0]:.3g}: "
              f"{np.round(ratio, 4).tolist()}; ‖bias‖ there {np.linalg.norm(cube_mean[0] - grad_cube):.4f}")
    gr_gap = max(np.max(np.abs(a["mean"] - b["mean"])) for a, b in zip(res["GR"], res["ST"]))
    v_gr = np.array([o["var"].sum() for o in res["GR"]])
    worst = max(np.max(a["var"] / b["var"]) for a, b in zip(res["GR"], res["ST"]))
    ctx.check(f"categorical: GR (k = {GR_K}) has ST's mean at every τ and no coordinate has more variance",
              gr_gap < 1e-8 and worst <= 1 + 1e-8,
              f"max |E[GR] − E[ST]| = {gr_gap:.2g}; largest per-coordinate Var(GR)/Var(ST) = {worst:.3f}; "
              f"tr Cov ratio from {np.min(v_gr / v_st):.3f} to {np.max(v_gr / v_st):.3f}")
    errs = [(tau, o["default_error"], o["error"], o["level"], o["converged"]) for tau, o in zip(taus, res["GS"])]
    ctx.note("Categorical GS oracle at small τ: " + "; ".join(
        f"τ = {t:.3g}: error {e0:.1e} at the first level {start}, {e:.1e} at level {lv}"
        + ("" if ok else " (not converged to 1e-3 × variance: this point's variance carries that error)")
        for t, e0, e, lv, ok in errs))
    ctx.record(cat_taus=taus, cat_grad=grad, cat_grad_cube=grad_cube, cat_st_limit_cube=lim_cube)
    return taus, res, grad, grad_cube


# ------------------------------------------------------------------------------------ heavy tails


def _heavy_tails(ctx, taus, toy_res):
    dist = Bernoulli(np.array([LOGIT]))
    extra = np.array([0.005, 0.01])
    grid = np.concatenate([extra, taus])
    # the estimator's exact mean (a true null for the test): the sweep's oracles on the τ grid, new ones below it
    oracles = {}
    for name in ("gumbel_softmax", "straight_through"):
        for tau in extra:
            oracles[(name, float(tau))] = _oracle(name, dist, TOY, tau, DEFAULT_LEVEL["toy"], 14, 1e-10)
        for tau, o in zip(taus, toy_res[SHORT[name]]):
            oracles[(name, float(tau))] = o
    ctx.setting(heavy_tail_calibration="asymptotic")
    sizes = [(1000, ctx.size(200, 1000)), (10000, ctx.size(20, 100))]
    ctx.setting(heavy_tail_grid=[float(t) for t in grid],
                heavy_tail_replications={str(n): r for n, r in sizes})
    rows = []
    fire = {}
    kurt = {}
    size_off = []
    same_diagnostic = []
    stages = [(name, tau) for name in ("gumbel_softmax", "straight_through") for tau in grid]
    for name, tau in ctx.progress(stages, label="heavy tails (Monte Carlo)"):
        key = SHORT[name]
        o = oracles[(name, float(tau))]
        for n, reps in sizes:
            rng = ctx.rng(f"heavy/{name}/{tau:.6g}/{n}")
            g = refgrad.estimate(name, dist, TOY, n * reps, rng=rng, tau=float(tau))
            pooled = stats.heavy_tail_diagnostic(g)
            g = g.reshape(reps, n, 1)
            with warnings.catch_warnings():
                # the study measures the very size problem this warning announces (the table shows it)
                warnings.simplefilter("ignore", stats.CalibrationWarning)
                tests = [stats.unbiasedness_test(g[r], o["mean"], alpha=ALPHA, method="hotelling",
                                                 calibration="asymptotic") for r in range(reps)]
            # the test runs the diagnostic on its samples: use its result (checked on the first replication)
            diags = [t.heavy_tail for t in tests]
            first = stats.heavy_tail_diagnostic(g[0])
            same_diagnostic.append(first.unreliable == diags[0].unreliable
                                   and np.array_equal(first.max_share, diags[0].max_share))
            fired = np.array([d.unreliable for d in diags])
            k = int(sum(t.hotelling_pvalue < ALPHA for t in tests))
            k_low = int(sum(t.hotelling_pvalue < ALPHA and t.tstat[0] < 0 for t in tests))
            k_up = k - k_low
            # two-sided size and each tail's share (α/2 each under a symmetric null law)
            binom_p = min(sps.binomtest(k, reps, ALPHA).pvalue, sps.binomtest(k_low, reps, ALPHA / 2).pvalue,
                          sps.binomtest(k_up, reps, ALPHA / 2).pvalue)
            lo, hi = _binom_ci(k, reps)
            rule = ""
            if fired.any():
                share = np.mean([d.max_share[0] > d.share_limit for d in diags])
                mk = np.mean([d.mean_excess_kurtosis[0] > stats.KURTOSIS_LIMIT for d in diags])
                ms = np.mean([abs(d.mean_skewness[0]) > stats.SKEWNESS_LIMIT for d in diags])
                rule = f"share {share:.2f}, κ/n {mk:.2f}, γ/√n {ms:.2f}"
            fire[(key, float(tau), n)] = float(fired.mean())
            kurt[(key, float(tau), n)] = float(pooled.excess_kurtosis[0])
            rows.append([key, f"{tau:.3g}", n, reps, float(pooled.skewness[0]), float(pooled.excess_kurtosis[0]),
                         float(fired.mean()), rule, k / reps, f"[{lo:.3f}, {hi:.3f}]", k_low / reps, k_up / reps,
                         binom_p])
            if binom_p < 0.01:
                size_off.append((key, float(tau), n, k / reps, float(fired.mean()), k_low / reps, k_up / reps))
    ctx.table("Heavy-tail diagnostic and the actual size of the unbiasedness test on the toy, against τ",
              ["estimator", "τ", "n", "replications", "skewness (pooled)", "excess kurtosis (pooled)",
               "fires (fraction)", "which rule (fraction of replications)", f"size at α = {ALPHA}", "99% CI",
               "lower tail (t < 0)", "upper tail (t > 0)", "smallest binomial p"], rows,
              note="Each replication is n estimates; the diagnostic (refgrad.stats.heavy_tail_diagnostic) and "
                   "Hotelling's test (unbiasedness_test, method='hotelling') are run on each. The test's target is "
                   "the estimator's own exact mean E[ĝ] (exact.moments), so H0 is true and every rejection is a false "
                   "alarm; 'size' is their fraction, split by the sign of t into the two tails (α/2 each when the "
                   "t statistic is symmetric; skewed estimates shift rejections into one tail, which is what breaks "
                   "one-sided use first). 'smallest binomial p' is the smallest of the three two-sided binomial tests "
                   "(size vs α, each tail vs α/2). Skewness and excess kurtosis are of the pooled replications "
                   f"(n × replications samples). τ = {', '.join(f'{t:g}' for t in extra)} are added below the grid "
                   "to reach the region where the test's size visibly degrades. The test uses the F reference "
                   "(calibration='asymptotic'), the normal-theory test whose size the diagnostic is meant to flag; "
                   "the default calibration ('auto') bootstraps where that test's estimated size is off (its "
                   "levels are measured in the calibration case).")

    ctx.check("the diagnostic attached to unbiasedness_test's result is heavy_tail_diagnostic of its samples",
              all(same_diagnostic), f"equal flag and largest share on {sum(same_diagnostic)} of "
                                    f"{len(same_diagnostic)} settings (first replication of each)")
    crossover = {}
    for key in ("GS", "ST"):
        for n, _ in sizes:
            fired_taus = [t for t in grid if fire[(key, float(t), n)] >= 0.5]
            crossover[(key, n)] = max(fired_taus) if fired_taus else None
    cross_text = "; ".join(f"{k} n = {n}: " + (f"τ ≤ {c:.3g}" if c is not None else f"never (τ ≥ {grid[0]:g})")
                           for (k, n), c in crossover.items())
    t_min = float(taus[0])
    ctx.check(f"the heavy-tail diagnostic fires at small τ: in ≥ 90 % of replications at τ = {t_min:.3g}, n = 1000 "
              "(GS and ST)", fire[("GS", t_min, 1000)] >= 0.9 and fire[("ST", t_min, 1000)] >= 0.9,
              f"fraction fired at τ = {t_min:.3g}, n = 1000: GS {fire[('GS', t_min, 1000)]:.2f}, ST "
              f"{fire[('ST', t_min, 1000)]:.2f}; at τ = {grid[0]:g}, n = 10000: GS "
              f"{fire[('GS', float(grid[0]), 10000)]:.2f}, ST {fire[('ST', float(grid[0]), 10000)]:.2f}")
    quiet = {k: v for k, v in fire.items() if k[1] >= 1.0}
    ctx.check("the heavy-tail diagnostic is quiet at τ ≥ 1 (no replication flagged, both n)",
              all(v == 0 for v in quiet.values()),
              f"largest fraction fired over τ ≥ 1: {max(quiet.values()):.3f} ({len(quiet)} settings)")
    ok_cross = all(crossover[(k, 10000)] is None or (crossover[(k, 1000)] is not None
                                                     and crossover[(k, 10000)] < crossover[(k, 1000)])
                   for k in ("GS", "ST"))
    ctx.check("the crossover τ (largest τ where the diagnostic fires in ≥ half the replications) moves down as n grows",
              ok_cross and crossover[("GS", 1000)] is not None, "crossover: " + cross_text)
    silent = [s for s in size_off if s[4] < 0.5]
    ctx.check("no silent failure: wherever the test's actual size, or either tail's share, differs significantly "
              "from α (resp. α/2; binomial p < 0.01), the diagnostic fires in at least half the replications",
              not silent,
              ("settings with a significantly wrong size: " + "; ".join(
                  f"{k} τ = {t:.3g} n = {n}: size {s:.3f} (tails {lo:.3f} / {up:.3f} vs {ALPHA / 2}), fired {fr:.2f}"
                  for k, t, n, s, fr, lo, up in size_off)
               if size_off else "no setting had a significantly wrong size") +
              (("; silent: " + "; ".join(f"{k} τ = {t:.3g} n = {n}" for k, t, n, *_ in silent)) if silent else ""))
    ks = [t for t in grid if t <= 0.06]
    for key in ("GS", "ST"):
        kv = np.array([kurt[(key, float(t), 1000)] for t in ks])
        sl = _slope(np.array(ks), np.maximum(kv, 1e-12))
        ctx.check(f"{key}: the excess kurtosis grows like 1/τ as τ → 0 (log-log slope over τ ≤ 0.06 in [−1.4, −0.6])",
                  -1.4 < sl < -0.6,
                  f"pooled excess kurtosis at τ = {_fmt_list(ks)}: {_fmt_list(kv)}; slope {sl:.3f}")
    ctx.note("**Heavy-tail crossover.** The diagnostic's rules scale with n (κ/n > 0.1, |γ|/√n > 0.1, one sample "
             "carrying > max(2 %, 25/(n−1)) of the sum of squares), while the GS/ST kurtosis grows like 1/τ; so the "
             "crossover τ falls roughly like 1/n: " + cross_text + ". The estimates are bounded (|ĝ| ≤ max|f'|/(4τ)), "
             "so the tail is a spike of probability ∝ τ rather than an infinite moment, and at large n the CLT "
             "eventually holds at any fixed τ.")
    ctx.record(heavy_tail_crossover={f"{k}/{n}": c for (k, n), c in crossover.items()},
               heavy_tail_fire={f"{k}/{t:g}/{n}": v for (k, t, n), v in fire.items()})

    def draw(fig):
        ax = fig.add_subplot(111)
        for key, color in (("GS", "C0"), ("ST", "C1")):
            kv = np.array([kurt[(key, float(t), 1000)] for t in grid]) + 3.0
            ax.loglog(grid, kv, "-", color=color, label=f"{key}: kurtosis (pooled samples)")
            for n, marker in ((1000, "o"), (10000, "s")):
                fired = [i for i, t in enumerate(grid) if fire[(key, float(t), n)] >= 0.5]
                if fired:
                    ax.loglog(grid[fired], kv[fired], marker, color=color, mfc="none", ms=10 if n == 10000 else 6,
                              label=f"{key}: diagnostic fires (n = {n})")
        ax.axhline(3.0, color="k", lw=0.8, ls=":", label="normal (3)")
        ax.set_xlabel("τ")
        ax.set_ylabel("kurtosis E[(ĝ − μ)⁴]/σ⁴ of one estimate")
        ax.legend(fontsize=7)

    ctx.figure("kurtosis", "Kurtosis of GS and ST estimates on the toy against τ, and where the heavy-tail "
                           "diagnostic fires (≥ half the replications)", draw)


# ------------------------------------------------------------------------------------ figures


def _bias_variance_figure(ctx, name, title, taus, res, grad_of):
    def draw(fig):
        ax1 = fig.add_subplot(121)
        ax2 = fig.add_subplot(122)
        for key, o in res.items():
            g = grad_of(key)
            b = np.array([np.linalg.norm(x["mean"] - g) for x in o])
            v = np.array([x["var"].sum() for x in o])
            style = "--" if "cube" in key else (":" if key == "GR" else "-")
            width = 3.0 if key == "ST" else 1.5
            label = "GR (mean = ST's)" if key == "GR" else key
            ax1.loglog(taus, np.maximum(b, 1e-16), style, lw=width, marker="o", ms=3, label=label)
            ax2.loglog(taus, v, style, lw=width, marker="o", ms=3, label=label)
        ax1.set_xlabel("τ")
        ax1.set_ylabel("‖E[ĝ] − ∇‖ (exact)")
        ax2.set_xlabel("τ")
        ax2.set_ylabel("total variance (exact)")
        # outside both panels: the bias panel's small-τ end, where ST on the cube keeps its bias, stays visible
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        ax1.set_title("bias", fontsize=9)
        ax2.set_title("variance", fontsize=9)

    ctx.figure(name, title, draw)


def run(ctx):
    toy_taus = np.geomspace(0.02, 5.0, ctx.size(7, 13))
    cat_taus = np.geomspace(ctx.size(0.05, 0.02), 5.0, ctx.size(4, 9))
    ctx.setting(toy_logit=LOGIT, toy_t=T, toy_taus=[float(t) for t in toy_taus],
                categorical_logits=CAT_LOGITS[0].tolist(), categorical_taus=[float(t) for t in cat_taus],
                gumbel_rao_k=GR_K)
    taus, res, grad, grad_cube = _toy(ctx, toy_taus)
    _bias_variance_figure(ctx, "toy", f"One bit (ℓ = {LOGIT}): exact |bias| and variance of GS, ST, GR against τ "
                                      "(dashed: f = b³)", taus, res,
                          lambda k: np.array([grad_cube if "cube" in k else grad]))
    taus_c, res_c, grad_c, grad_cube_c = _categorical(ctx, cat_taus)
    _bias_variance_figure(ctx, "categorical", "Categorical K = 3: exact ‖bias‖ and total variance against τ "
                                              "(dashed: cube objective)", taus_c, res_c,
                          lambda k: grad_cube_c if "cube" in k else grad_c)
    _heavy_tails(ctx, toy_taus, res)
    ctx.note("**Summary.** Gumbel-Softmax trades bias for variance: its bias shrinks like τ and its variance grows "
             "like 1/τ. Straight-through's bias also shrinks like τ on these quadratic objectives, but only "
             "because its small-τ limit -- the trapezoid rule for f(e_b) − f(e_j) along each edge of the simplex, "
             "weighted by π_b π_j -- is exact for functions quadratic along edges; for a cubic objective the limit "
             "is 1.5 × the gradient on one bit and on K = 3. Gumbel-Rao keeps ST's mean and lowers its variance "
             "most at small τ.")


CASE = Case(
    name="temperature",
    title="Temperature: bias and variance of Gumbel-Softmax, straight-through and Gumbel-Rao against τ",
    source="Jang, Gu & Poole 2017 and Maddison, Mnih & Teh 2017 (Gumbel-Softmax / Concrete, bias-variance in τ); "
           "Bengio, Léonard & Courville 2013 (straight-through); Paulus, Maddison & Krause 2021 (Gumbel-Rao); "
           "Tucker et al. 2017 §6.1 (toy f(b) = (b − 0.45)²)",
    description="Exact (quadrature) bias and variance of the relaxed estimators on a log grid of τ for one bit and "
                "for one categorical with K = 3: GS's bias → 0 like τ while its variance grows like 1/τ; ST's bias "
                "→ 0 only for objectives quadratic along the simplex's edges (cubic: E[ST] → 1.5 × gradient); GR "
                "keeps ST's mean with less variance. Monte Carlo at each τ locates where the heavy-tail diagnostic "
                "fires and whether the unbiasedness test's size is really off there; the quadrature oracle's own "
                "error estimate at small τ is reported.",
    run=run,
)
