"""Lecture slides' variance-reduction tour (baselines, MuProp, REBAR, RELAX) checked exactly on two small problems.

The lecture slides "Discrete Latent Variables" (Art Sobolev, Samsung AI Center), section
'Variance Reduction', present, for
``∇_φ E_{q_φ(z)}[f(z)]``:

* the baseline form ``(1/M) Σ_m f(z^(m) − b(z)) ∂_φ log q(z^(m)) + ∂_φ E[b(z)]`` -- the baseline
  is printed *inside* f's argument; the slide after it writes ``(f(z) − b(z)) ∂ log q + ∂μ``;
* the optimal constant baseline ``c = Cov[f ∂log q, ∂log q] / Var[∂log q]``;
* MuProp (first-order Taylor baseline around ``z₀ = E[z]``);
* REBAR, with η and τ tuned by minimising ``E[ĝ²]`` -- 'our estimators are unbiased for any
  baseline ... expected gradient does not depend on baseline, and one sample is enough';
* RELAX (a learned control variate, cited).

Problems: P1 is the REBAR toy ``f(b) = (b − 0.45)²`` at ``θ = 0.3``; P2 two Bernoulli bits with
an arbitrary table ``f`` (with an interaction term).  All variances are exact
(``refgrad.exact.moments``) and per evaluation of f.
"""
import numpy as np
from scipy import special

import refgrad
from refgrad import exact
from refgrad import objectives as obj
from refgrad import stats as rstats
from refgrad.distributions import Bernoulli
from refgrad.estimators import RelaxSurrogate, fit_relax

from ..core import Case
from ..sources import cite

ALPHA = 1e-3
TAU0 = 0.5
P2_TABLE = np.array([[2.0, 3.0], [2.5, 1.0]])  # f(b1, b2) = 2 + 0.5 b1 + b2 − 2.5 b1 b2
P2_LOGITS = (0.4, -0.7)
FIT_BATCH = 64
FIT_LR = 1e-2


def _problems():
    return {
        "P1": (Bernoulli([float(special.logit(0.3))]), obj.SquaredDistance(0.45),
               "toy f(b) = (b − 0.45)², θ = 0.3"),
        "P2": (Bernoulli(list(P2_LOGITS)), obj.Table(P2_TABLE, name="P2 table"),
               f"2 bits, logits {P2_LOGITS}, f = table {P2_TABLE.tolist()}"),
    }


def _vpc(m):
    """Per-coordinate variance per evaluation of f, clipped at 0 (quadrature rounding)."""
    return np.maximum(np.asarray(m.variance_per_cost, dtype=float).ravel(), 0.0)


def _var(m):
    return np.maximum(np.asarray(m.variance, dtype=float).ravel(), 0.0)


# ------------------------------------------------------------------------------------ baselines


def _baselines(ctx, probs, table):
    rows = []
    ok_equal, ok_min, detail = True, True, []
    scalar_info = {}
    for key, (dist, f, _) in probs.items():
        grad = exact.gradient(dist, f).ravel()
        d = grad.size

        def fscore(b, f=f, dist=dist):
            return f.value(b)[:, None] * dist.score(b)

        e_s = exact.expect(dist, lambda b, dist=dist: dist.score(b))
        e_fs = exact.expect(dist, fscore)
        e_fs_s = exact.expect(dist, lambda b, f=f, dist=dist: fscore(b) * dist.score(b))
        e_ss = exact.expect(dist, lambda b, dist=dist: dist.score(b) ** 2)
        # the slides, literally: Cov[f s, s] / Var[s], coordinate by coordinate
        cov = e_fs_s - e_fs * e_s
        var_s = e_ss - e_s**2
        c_seed = cov / var_s
        m_none = exact.moments("reinforce", dist, f)
        m_opt = exact.moments("reinforce", dist, f, baseline="optimal")
        v_at_seed = np.array([_var(exact.moments("reinforce", dist, f, baseline=float(c)))[j]
                              for j, c in enumerate(c_seed)])
        for j, c in enumerate(c_seed):
            delta = 0.1 * (1 + abs(c))
            lo = _var(exact.moments("reinforce", dist, f, baseline=float(c - delta)))[j]
            hi = _var(exact.moments("reinforce", dist, f, baseline=float(c + delta)))[j]
            ok_min &= bool(lo > v_at_seed[j] and hi > v_at_seed[j])
        rel = float(np.max(np.abs(v_at_seed - _var(m_opt)) / np.maximum(_var(m_none), 1e-300)))
        ok_equal &= rel < 1e-10
        detail.append(f"{key}: c_j = {np.array2string(c_seed, precision=6)}, max |Var(c_seed) − Var(refgrad optimum)|"
                      f"/Var(no baseline) = {rel:.1e}")
        # the only scalar reading of the printed vector formula: trace(Cov)/trace(Var)
        c_scalar = float(np.sum(cov) / np.sum(var_s))
        m_scalar = exact.moments("reinforce", dist, f, baseline=c_scalar)
        c_mean = exact.expectation(dist, f)
        m_mean = exact.moments("reinforce", dist, f, baseline=c_mean)
        scalar_info[key] = (c_seed, c_scalar, m_scalar, m_opt, dist, f, grad, c_mean)
        table[key]["reinforce"] = (_vpc(m_none), 1, "")
        table[key]["reinforce_mean"] = (_vpc(m_mean), 1, f"c = E[f] = {c_mean:.4g}")
        table[key]["reinforce_opt"] = (_vpc(m_opt), 1, f"c_j = {np.array2string(c_seed, precision=4)}")
        table[key]["reinforce_scalar"] = (_vpc(m_scalar), 1, f"c = {c_scalar:.4g}")
        rows.append([key, d, np.array2string(c_seed, precision=6), c_scalar, c_mean,
                     float(np.sum(_var(m_none))), float(np.sum(_var(m_mean))), float(np.sum(_var(m_scalar))),
                     float(np.sum(_var(m_opt)))])
    ctx.table("The slides' optimal constant baseline c = Cov[f ∂log q, ∂log q]/Var[∂log q] against refgrad's optimum",
              ["problem", "d", "slides' formula per coordinate c_j", "scalar reading Σcov/ΣVar", "E[f]",
               "ΣVar, no baseline", "ΣVar, c = E[f]", "ΣVar, scalar reading", "ΣVar, per-coordinate (refgrad)"], rows,
              note="With E[∂log q] = 0, Cov[f s_j, s_j]/Var[s_j] = E[f s_j²]/E[s_j²], which is refgrad's "
                   "per-coordinate optimum (reinforce, baseline='optimal'). For a vector φ the printed ratio of a "
                   "covariance and a variance is only defined coordinate by coordinate; one c shared by all "
                   "coordinates is best at Σ_j Cov_j/Σ_j Var_j (the trace reading) and is worse than the "
                   "per-coordinate c_j.")
    ctx.check("the slides' optimal-baseline formula, read per coordinate, equals refgrad's exact per-coordinate "
              "optimum (same variance) and is a minimum (variance rises at c_j ± 0.1(1 + |c_j|))", ok_equal and ok_min,
              "; ".join(detail))
    ctx.source_finding("sobolev_slides", "optimal constant baseline c = Cov[f ∂log q, ∂log q] / Var[∂log q]", "correct",
                       "read coordinate by coordinate it is the exact variance-minimising baseline: total variance "
                       + "; ".join(f"{r[0]}: {r[5]:.4g} without a baseline, {r[8]:.4g} with it" for r in rows)
                       + " (one scalar c for a vector φ is worse)")
    c_seed, c_scalar, m_scalar, m_opt, *_ = scalar_info["P2"]
    v_sc, v_opt = float(np.sum(_var(m_scalar))), float(np.sum(_var(m_opt)))
    dist, f = scalar_info["P2"][4], scalar_info["P2"][5]
    delta = 0.1 * (1 + abs(c_scalar))
    around = [float(np.sum(_var(exact.moments("reinforce", dist, f, baseline=c_scalar + s * delta)))) for s in (-1, 1)]
    ctx.check("P2 (two parameters): one scalar c = ΣCov/ΣVar minimises the total variance among scalar baselines but "
              "not the per-coordinate variances; the per-coordinate c_j do strictly better",
              v_opt < v_sc < min(around) and not np.allclose(c_seed, c_scalar),
              f"ΣVar: per-coordinate {v_opt:.6g} < scalar {v_sc:.6g} < scalar ± {delta:.3g}: "
              f"{around[0]:.6g}, {around[1]:.6g}; c_j = {np.array2string(c_seed, precision=4)} vs c = {c_scalar:.4g}")
    return scalar_info


# ------------------------------------------------------------------------------------ the baseline typo


def _typo(ctx, probs, scalar_info):
    rows = []
    ok_exact, ok_mc = True, True
    n_min = ctx.size(2000, 20000)
    for key, (dist, f, _) in probs.items():
        grad = exact.gradient(dist, f)
        c = scalar_info[key][7]  # b(z) = c = E[f], a common constant baseline

        def literal(b, f=f, dist=dist, c=c):
            return f.value(b - c)[:, None] * dist.score(b)  # f(z − b(z)) ∂log q(z); ∂E[c] = 0

        mean_literal = exact.expect(dist, literal)
        shifted = obj.FunctionObjective(lambda z, f=f, c=c: f.value(z - c), name="f(z − c)")
        grad_shifted = exact.gradient(dist, shifted)
        m_int = exact.moments("reinforce", dist, f, baseline=c)
        ok_exact &= bool(np.max(np.abs(mean_literal - grad)) > 0.1 * np.max(np.abs(grad))
                         and np.allclose(mean_literal, grad_shifted, rtol=1e-12, atol=1e-14)
                         and np.allclose(m_int.mean, grad, rtol=1e-12, atol=1e-14))
        # Monte Carlo on common noise: the literal reading and refgrad's reinforce with baseline c
        bias = mean_literal - grad
        need = rstats.required_samples(np.maximum(m_int.variance, 1e-300), bias, alpha=ALPHA, power=0.99)
        n = max(n_min, need)
        u = refgrad.random.uniform(ctx.rng(f"typo/{key}"), (n,) + tuple(dist.event_shape))
        b = dist.from_uniforms(u)
        lit = literal(b)
        intended = refgrad.estimate("reinforce", dist, f, noise={"u": u}, baseline=c)
        same_b = np.allclose(intended, (f.value(b) - c)[:, None] * dist.score(b), rtol=1e-12, atol=1e-14)
        r_lit = rstats.unbiasedness_test(lit, grad, alpha=ALPHA)
        r_int = rstats.unbiasedness_test(intended, grad, alpha=ALPHA)
        ok_mc &= bool(r_lit.reject and not r_int.reject and same_b)
        rows.append([key, c, np.array2string(grad, precision=5), np.array2string(mean_literal, precision=5),
                     np.array2string(grad_shifted, precision=5), np.array2string(m_int.mean, precision=5), n,
                     r_lit.pvalue, r_int.pvalue])
    ctx.table("The slides' baseline as printed, f(z − b(z)) ∂log q, against the intended (f(z) − b(z)) ∂log q, with "
              "b(z) = c = E[f]", ["problem", "c", "exact ∇", "exact mean, literal", "∇E[f(z − c)]",
                                  "exact mean, intended", "MC n", "p literal", "p intended"], rows,
              note="The literal reading evaluates f at z − c (for P2 the table's multilinear extension off {0,1}²): it "
                   "is the score-function estimator of a different objective, E[f(z − c)], so its mean is ∇E[f(z − "
                   "c)], not ∇E[f(z)] (for P1 even the sign is wrong). The intended form is refgrad's reinforce with "
                   f"baseline=c. MC: common uniforms for both readings, refgrad.stats.unbiasedness_test at α = "
                   f"{ALPHA}, n = required_samples(Var of the intended estimator, literal bias, α, 0.99), at least "
                   f"{n_min}.")
    ctx.check("the slides' printed baseline f(z^(m) − b(z)) is a typo: read literally it estimates ∇E[f(z − b)] "
              "(biased); the intended (f(z) − b(z)) ∂log q is unbiased (exact means)", ok_exact,
              "; ".join(f"{r[0]}: ∇ = {r[2]}, literal mean = {r[3]}" for r in rows))
    ctx.source_finding("sobolev_slides", "(1/M) Σ_m f(z^(m) − b(z)) ∂φ log q(z^(m)) + ∂φ E[b(z)]", "imprecise",
                       "a typo for (f(z^(m)) − b(z)) ∂φ log q: read literally its mean is ∇E[f(z − b)], e.g. "
                       + "; ".join(f"{r[0]}: {r[3]} against ∇ = {r[2]}" for r in rows)
                       + "; the slide after it has the intended (unbiased) form")
    ctx.check(f"Monte Carlo (common noise): the literal reading is rejected, the intended one is not (α = {ALPHA})",
              ok_mc, "; ".join(f"{r[0]}: p literal = {r[7]:.3g}, p intended = {r[8]:.3g}, n = {r[6]}" for r in rows))
    ctx.setting(typo_mc_n_min=n_min)


# ------------------------------------------------------------------------------------ REBAR: E[ĝ²] vs Var


def _second_moment(m):
    return float(np.sum(_var(m)) + np.sum(np.asarray(m.mean) ** 2))


def _rebar_invariance(ctx, probs, level2):
    dist, f, _ = probs["P1"]
    grad = exact.gradient(dist, f)
    etas, taus = (-1.0, 0.0, 0.5, 1.0, 2.0), (0.1, 0.5, 2.0)
    worst = 0.0
    for eta in etas:
        for tau in taus:
            m = exact.moments("rebar", dist, f, eta=eta, tau=tau)
            worst = max(worst, float(np.max(np.abs(m.mean - grad)) / (1e-12 + 10 * m.error)))
    # finite differences of E[ĝ²] and of Var in η and τ at (η, τ) = (1, 0.5)
    h = 1e-3
    rows = []
    fd_ok = True
    for name, opts_fn, params in [("rebar", lambda p: {"eta": p[0], "tau": p[1]}, ("η", "τ")),
                                  ("gumbel_softmax", lambda p: {"tau": p[1]}, ("τ",))]:
        for which in params:
            i = 0 if which == "η" else 1
            plus, minus = [1.0, TAU0], [1.0, TAU0]
            plus[i] += h
            minus[i] -= h
            mp, mm = exact.moments(name, dist, f, **opts_fn(plus)), exact.moments(name, dist, f, **opts_fn(minus))
            d_second = (_second_moment(mp) - _second_moment(mm)) / (2 * h)
            d_var = (float(np.sum(_var(mp))) - float(np.sum(_var(mm)))) / (2 * h)
            d_mean = (float(np.sum(mp.mean)) - float(np.sum(mm.mean))) / (2 * h)
            rows.append([name, which, d_second, d_var, d_second - d_var, d_mean])
            if name == "rebar":
                fd_ok &= abs(d_second - d_var) <= 1e-8 * max(1.0, abs(d_var)) and abs(d_mean) < 1e-8
    gs_rows = [r for r in rows if r[0] == "gumbel_softmax"]
    # for a biased estimator ∂E[ĝ²] − ∂Var = ∂(E[ĝ]²) = 2 E[ĝ] ∂E[ĝ] ≠ 0
    m_gs = exact.moments("gumbel_softmax", dist, f, tau=TAU0)
    identity = [abs((r[2] - r[3]) - 2 * float(np.sum(m_gs.mean)) * r[5]) for r in gs_rows]
    gs_differs = all(abs(r[4]) > 1e-6 for r in gs_rows) and max(identity) < 1e-8
    # and minimising E[ĝ²] over τ drives the biased estimator towards ĝ ≈ 0
    taus_gs = np.geomspace(0.05, 5.0, ctx.size(9, 25))
    gs_scan = [exact.moments("gumbel_softmax", dist, f, tau=float(t)) for t in taus_gs]
    second = np.array([_second_moment(m) for m in gs_scan])
    i_min = int(np.argmin(second))
    mean_at_min = float(gs_scan[i_min].mean[0])
    ctx.table(f"P1: derivatives of E[ĝ²] and of Var(ĝ) at η = 1, τ = {TAU0} (central differences of exact moments, "
              f"step {h})", ["estimator", "parameter", "∂E[ĝ²]", "∂Var", "difference", "∂E[ĝ]"], rows,
              note="For REBAR E[ĝ] does not depend on η or τ, so E[ĝ²] = Var + const and the two gradients coincide: "
                   "one sample of ĝ² is an unbiased estimate of the objective (as the slides say). For the biased "
                   "Gumbel-softmax estimator E[ĝ] moves with τ and minimising E[ĝ²] is not minimising the variance.")
    ctx.check("REBAR's exact mean does not depend on η or τ (P1: η ∈ {−1, 0, 0.5, 1, 2} × τ ∈ {0.1, 0.5, 2}; "
              "P2: the five (η, τ) below)", worst <= 1.0 and level2["worst_mean"] <= 1.0,
              f"max |E[ĝ] − ∇| / (1e-12 + 10·quadrature error): P1 {worst:.3g}, P2 {level2['worst_mean']:.3g}")
    ctx.check("hence ∂E[ĝ²] = ∂Var for REBAR in η and in τ (the slides: minimising E[ĝ²] is enough)", fd_ok,
              "; ".join(f"∂/∂{r[1]}: {r[2]:.6g} vs {r[3]:.6g}" for r in rows if r[0] == "rebar"))
    ctx.source_finding("sobolev_slides", "REBAR's η and τ tuned by minimising E[ĝ²] (“expected gradient does not "
                                         "depend "
                       "on baseline, and one sample is enough”)", "correct",
                       "for REBAR ∂E[ĝ²] = ∂Var: " + "; ".join(f"∂/∂{r[1]} {r[2]:.6g} vs {r[3]:.6g}" for r in rows
                                                               if r[0] == "rebar")
                       + " (P1); it needs unbiasedness: for gumbel_softmax the two differ")
    ctx.check("contrast: for the biased gumbel_softmax, ∂E[ĝ²]/∂τ − ∂Var/∂τ = 2E[ĝ]∂E[ĝ]/∂τ ≠ 0 (the slides' argument "
              "needs unbiasedness)", gs_differs,
              "; ".join(f"∂/∂τ: {r[2]:.6g} vs {r[3]:.6g}, difference {r[4]:.3g} = 2E[ĝ]∂E[ĝ] up to {e:.1e}"
                        for r, e in zip(gs_rows, identity)))
    ctx.check("contrast: minimising E[ĝ²] over τ for gumbel_softmax runs to the largest τ scanned, where the estimate "
              "is nearly 0 (|E[ĝ]| < 0.1|∇|): the criterion rewards the useless estimator ĝ ≡ 0",
              i_min == len(taus_gs) - 1 and abs(mean_at_min) < 0.1 * abs(float(grad[0])),
              f"τ ∈ [{taus_gs[0]:.3g}, {taus_gs[-1]:.3g}] ({len(taus_gs)} values): argmin E[ĝ²] at τ = "
              f"{taus_gs[i_min]:.3g}, E[ĝ²] = {second[i_min]:.3g}, E[ĝ] = {mean_at_min:.3g} vs ∇ = "
              f"{float(grad[0]):.3g}; at τ = {TAU0}: E[ĝ] = {float(m_gs.mean[0]):.3g}")


# ------------------------------------------------------------------------------------ REBAR: tuned vs closed form


def _quadratic(dist, f, tau, level, v0):
    """Exact per-coordinate Var(η) = v0 + 2η C + η² W at this τ, from REBAR at η = ±1 (η = 0 is REINFORCE)."""
    mp = exact.moments("rebar", dist, f, eta=1.0, tau=tau, level=level)
    mm = exact.moments("rebar", dist, f, eta=-1.0, tau=tau, level=level)
    vp, vm = _var(mp), _var(mm)
    C = (vp - vm) / 4
    W = (vp + vm - 2 * v0) / 2
    return C, W, mp, mm, max(mp.error, mm.error)


def _rebar_tuning(ctx, probs, table):
    fit_steps = ctx.size(300, 1000)
    taus_scan = ctx.size((), (0.1, 0.25, 1.0, 2.0, 4.0))
    level_p2 = 2
    ctx.setting(rebar_fit_steps=fit_steps, rebar_fit_batch=FIT_BATCH, rebar_fit_lr=FIT_LR,
                rebar_fit_train=("eta", "tau"), p2_quadrature_level=level_p2, tau_scan=[TAU0] + list(taus_scan))
    rows, curves, fitted = [], {}, {}
    checks = {"eta_closed": [], "fit_vs_closed": [], "zero_is_rebar": None, "fit_beats_default": []}
    worst_mean_p2 = 0.0
    for key, (dist, f, _) in probs.items():
        level = level_p2 if key == "P2" else None
        grad = exact.gradient(dist, f)
        v0 = _var(exact.moments("reinforce", dist, f))
        # closed-form η* at τ0
        m_opt = exact.moments("rebar", dist, f, eta="optimal", tau=TAU0, level=level)
        C, W, m_one, m_minus, err = _quadratic(dist, f, TAU0, level, v0)
        eta_quad = -C / W
        tol = 3 * err / W + 1e-9
        checks["eta_closed"].append((key, np.ravel(m_opt.eta), eta_quad,
                                     bool(np.all(np.abs(np.ravel(m_opt.eta) - eta_quad) <= tol))))
        scalar_eta = float(-np.sum(C) / np.sum(W))
        curves[(key, TAU0)] = (v0, C, W)
        # the slides' recipe: minimise E[ĝ²] over (η, τ) from the zero surrogate (REBAR)
        start = RelaxSurrogate.zero(tuple(dist.event_shape), eta=1.0, tau=TAU0)
        sur, hist = fit_relax(dist, f, surrogate=start, steps=fit_steps, batch=FIT_BATCH, lr=FIT_LR,
                              rng=ctx.rng(f"rebar-fit/{key}"), train=("eta", "tau"))
        eta_hat, tau_hat = sur.eta, sur.tau
        m_fit = exact.moments("rebar", dist, f, eta=eta_hat, tau=tau_hat, level=level)
        if key == "P1":
            m_relax0 = exact.moments("relax", dist, f, surrogate=sur)
            checks["zero_is_rebar"] = (float(np.max(np.abs(m_relax0.cov - m_fit.cov))),
                                       float(np.max(np.abs(m_relax0.mean - m_fit.mean))))
        C_h, W_h, m_one_h, m_minus_h, err_h = _quadratic(dist, f, tau_hat, level, v0)
        curves[(key, tau_hat)] = (v0, C_h, W_h)
        best_scalar_h = float(np.sum(v0) - np.sum(C_h) ** 2 / np.sum(W_h))
        best_coord_h = float(np.sum(v0 - C_h**2 / W_h))
        v_fit = float(np.sum(_var(m_fit)))
        checks["fit_vs_closed"].append((key, v_fit, best_scalar_h, best_coord_h, float(-np.sum(C_h) / np.sum(W_h)),
                                        eta_hat, tau_hat))
        checks["fit_beats_default"].append((key, v_fit, float(np.sum(_var(m_one)))))
        for m in (m_one, m_minus, m_opt, m_fit, m_one_h, m_minus_h):
            worst = float(np.max(np.abs(m.mean - grad)) / (1e-12 + 10 * m.error))
            if key == "P2":
                worst_mean_p2 = max(worst_mean_p2, worst)
        # τ scan with the closed-form η (full mode): the best REBAR over (η, τ) on this grid
        scan = {TAU0: float(np.sum(v0 - C**2 / W)), tau_hat: best_coord_h}
        for tau in taus_scan:
            C_s, W_s, *_ = _quadratic(dist, f, tau, level, v0)
            curves[(key, tau)] = (v0, C_s, W_s)
            scan[tau] = float(np.sum(v0 - C_s**2 / W_s))
        fitted[key] = dict(eta=eta_hat, tau=tau_hat, hist=hist, scan=scan, scalar_eta=scalar_eta)
        table[key]["rebar_1"] = (_vpc(m_one), m_one.cost, f"η = 1, τ = {TAU0}")
        table[key]["rebar_opt"] = (_vpc(m_opt), m_opt.cost,
                                   f"η* = {np.array2string(np.ravel(m_opt.eta), precision=4)}, τ = {TAU0}")
        table[key]["rebar_fit"] = (_vpc(m_fit), m_fit.cost, f"η̂ = {eta_hat:.4g}, τ̂ = {tau_hat:.4g}")
        rows.append([key, np.array2string(np.ravel(m_opt.eta), precision=5), np.array2string(eta_quad, precision=5),
                     scalar_eta, eta_hat, tau_hat, v_fit, best_scalar_h, best_coord_h,
                     min(scan.values()), min(scan, key=scan.get)])
    ctx.table("REBAR: η and τ fitted by minimising E[ĝ²] (fit_relax, train=('eta', 'tau'), zero surrogate) against the "
              "closed-form optimal η", ["problem", f"η* per coordinate (Moments.eta, τ={TAU0})",
                                        "η* from Var(η) quadratic", f"best scalar η (τ={TAU0})", "fitted η̂",
                                        "fitted τ̂", "ΣVar at (η̂, τ̂)", "ΣVar, best scalar η at τ̂",
                                        "ΣVar, per-coordinate η* at τ̂", "min ΣVar over τ scan (η* per coord.)",
                                        "argmin τ"], rows,
              note="Var_j(η) = Var_j(0) + 2η C_j + η² W_j exactly (ĝ = a + η c is affine in η); C and W from the exact "
                   "moments at η = ±1, η = 0 being REINFORCE. The best scalar η is −ΣC/ΣW, the per-coordinate one "
                   "−C_j/W_j. fit_relax trains a scalar η (one RelaxSurrogate.eta) by Adam on batch means of Σ_j ĝ_j²; "
                   f"P2's REBAR moments use tanh-sinh level {level_p2} (reported error ≤ 3e-4).")
    ok = all(c[3] for c in checks["eta_closed"])
    ctx.check("refgrad's closed-form η* (exact.moments(..., eta='optimal').eta) equals −C/W from the exact variance "
              "quadratic", ok, "; ".join(f"{k}: {np.array2string(a, precision=6)} vs {np.array2string(b, precision=6)}"
                                          for k, a, b, _ in checks["eta_closed"]))
    ok = all(v <= 1.02 * bs + 1e-12 for _, v, bs, *_ in checks["fit_vs_closed"])
    ctx.check("fitting (η, τ) by stochastic minimisation of E[ĝ²] reaches the closed-form best scalar η at its τ "
              "(within 2% of the exact minimum)", ok,
              "; ".join(f"{k}: ΣVar {v:.6g} at η̂ = {e:.4g} vs {bs:.6g} at η = {be:.4g} (τ̂ = {t:.3g}); per-coordinate "
                        f"η* would give {bc:.6g}" for k, v, bs, bc, be, e, t in checks["fit_vs_closed"]))
    ok = all(v <= d * (1 + 1e-9) for _, v, d in checks["fit_beats_default"])
    ctx.check(f"the tuned REBAR has no more variance than REBAR's default (η = 1, τ = {TAU0})", ok,
              "; ".join(f"{k}: {v:.6g} vs {d:.6g}" for k, v, d in checks["fit_beats_default"]))
    dc, dm = checks["zero_is_rebar"]
    ctx.check("RELAX with the zero network trained only in (η, τ) is exactly REBAR(η̂, τ̂) (P1, exact moments)",
              dc < 1e-15 and dm < 1e-15, f"max |Δcov| = {dc:.1e}, max |Δmean| = {dm:.1e}")
    return curves, fitted, worst_mean_p2


# ------------------------------------------------------------------------------------ the one table


def _others(ctx, probs, table):
    steps = ctx.size(300, 1000)
    ctx.setting(relax_fit_steps=steps, relax_fit_batch=FIT_BATCH, relax_fit_lr=FIT_LR, relax_hidden=8)
    for key, (dist, f, _) in probs.items():
        level = 2 if key == "P2" else None
        for name, opts, row in [("muprop", {}, "muprop"), ("rloo", {"m": 2}, "rloo"), ("disarm", {}, "disarm")]:
            m = exact.moments(name, dist, f, **opts)
            table[key][row] = (_vpc(m), m.cost, "")
        sur, _ = fit_relax(dist, f, steps=steps, batch=FIT_BATCH, lr=FIT_LR, rng=ctx.rng(f"relax-fit/{key}"))
        m = exact.moments("relax", dist, f, surrogate=sur, level=level)
        table[key]["relax"] = (_vpc(m), m.cost, f"η = {sur.eta:.3g}, τ = {sur.tau:.3g}, b₂ = {sur.b2:.3g}")


ROW_LABELS = [
    ("reinforce", "REINFORCE, no baseline", "score function"),
    ("reinforce_mean", "REINFORCE, c = E[f]", "constant baseline"),
    ("reinforce_scalar", "REINFORCE, one c = ΣCov/ΣVar", "optimal c (scalar reading)"),
    ("reinforce_opt", "REINFORCE, c_j = Cov/Var per coordinate (= refgrad 'optimal', oracle)", "optimal c"),
    ("muprop", "MuProp", "MuProp"),
    ("rebar_1", f"REBAR, η = 1, τ = {TAU0}", "REBAR"),
    ("rebar_opt", f"REBAR, closed-form η* per coordinate, τ = {TAU0}", "—"),
    ("rebar_fit", "REBAR, (η, τ) fitted by minimising E[ĝ²]", "REBAR tuning"),
    ("relax", "RELAX, surrogate fitted by fit_relax", "RELAX [cited]"),
    ("rloo", "RLOO (m = 2)", "not in the slides"),
    ("disarm", "DisARM", "not in the slides"),
]


def _main_table(ctx, table):
    rows = []
    for key, label, slide in ROW_LABELS:
        p1 = table["P1"][key]
        p2 = table["P2"][key]
        rows.append([label, slide, p1[1], float(p1[0][0]), float(p2[0][0]), float(p2[0][1]), float(np.sum(p2[0])),
                     "; ".join(x for x in (p1[2] and f"P1: {p1[2]}", p2[2] and f"P2: {p2[2]}") if x)])
    ctx.table("The slides' tour: exact variance per evaluation of f (Var × cost) — P1 = toy (b − 0.45)² at θ = 0.3, "
              "P2 = two bits with a table f",
              ["estimator", "slides' name", "cost", "P1", "P2 coord. 1", "P2 coord. 2", "P2 total", "settings"], rows,
              note="Exact moments (enumeration / piecewise / tanh-sinh quadrature; P2 REBAR and RELAX at level 2). The "
                   "optimal baselines are exact oracles computed by enumeration (not available in practice). RLOO and "
                   "DisARM are not in the slides and are given for scale.")
    ctx.record(table={k: {r: [list(map(float, v[0])), v[1]] for r, v in table[k].items()} for k in table})
    v = {key: float(np.sum(table["P2"][key][0])) for key, *_ in ROW_LABELS}
    p1 = {key: float(table["P1"][key][0][0]) for key, *_ in ROW_LABELS}
    ctx.check("P2: every baseline of the tour reduces REINFORCE's variance (c = E[f], optimal c, MuProp, tuned REBAR, "
              "RELAX)", all(v[k] < v["reinforce"] for k in ("reinforce_mean", "reinforce_opt", "muprop", "rebar_fit",
                                                              "relax")),
              ", ".join(f"{k} {v[k]:.4g}" for k in v))
    ratio = p1["rebar_fit"] / 3 / p1["reinforce"]
    ctx.check("P1 (the toy): MuProp has MORE variance per evaluation than plain REINFORCE; the tuned REBAR's variance "
              "per estimate is within 1% of REINFORCE's (so 3× more per evaluation); the optimal constant baseline "
              "is exact", p1["muprop"] > p1["reinforce"] and 0.99 < ratio < 1.01 and p1["reinforce_opt"] < 1e-15,
              f"Var·cost: REINFORCE {p1['reinforce']:.4g}, MuProp {p1['muprop']:.4g}, tuned REBAR "
              f"{p1['rebar_fit']:.4g} (per estimate {ratio:.4f} × REINFORCE), optimal c {p1['reinforce_opt']:.2g}. "
              f"MuProp's residual f(b) − f(z̄) − f'(z̄)(b − z̄) = (b − θ)² does not depend on t and is not small")


def _figure(ctx, curves, fitted, table):
    short = {"reinforce": "REINFORCE", "reinforce_mean": "REINFORCE, c = E[f]",
             "reinforce_scalar": "REINFORCE, scalar c*",
             "reinforce_opt": "REINFORCE, c*_j (oracle)", "muprop": "MuProp", "rebar_1": "REBAR η=1",
             "rebar_opt": "REBAR η* (τ=0.5)", "rebar_fit": "REBAR (η̂, τ̂) fitted", "relax": "RELAX fitted",
             "rloo": "RLOO m=2", "disarm": "DisARM"}
    floor = 1e-6

    def draw(fig):
        fig.set_size_inches(14.0, 4.8)
        grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.0, 1.2])
        for i, key in enumerate(("P1", "P2")):
            ax = fig.add_subplot(grid[0, i])
            etas = np.linspace(-0.5, 2.0, 101)
            for (k, tau), (v0, C, W) in sorted(curves.items(), key=lambda kv: kv[0][1]):
                if k != key:
                    continue
                total = np.sum(v0) + 2 * etas * np.sum(C) + etas**2 * np.sum(W)
                lab = f"τ = {tau:.3g}" + (" (fitted τ̂)" if np.isclose(tau, fitted[key]["tau"]) else "")
                ax.plot(etas, total, lw=1.2, label=lab)
            v0, C, W = curves[(key, fitted[key]["tau"])]
            e = fitted[key]["eta"]
            ax.plot([e], [np.sum(v0) + 2 * e * np.sum(C) + e * e * np.sum(W)], "k*", ms=10, label="fitted (η̂, τ̂)")
            ax.axhline(float(np.sum(v0)), color="grey", ls=":", lw=1, label="REINFORCE (η = 0)")
            ax.set_xlabel("η")
            ax.set_ylabel("exact Σ_j Var(ĝ_j)")
            ax.set_title(f"{key}: REBAR variance against η", fontsize=9)
            ax.legend(fontsize=6.5)
        ax = fig.add_subplot(grid[0, 2])
        keys = [k for k, *_ in ROW_LABELS]
        y = np.arange(len(keys))
        for key, off in (("P1", -0.2), ("P2", 0.2)):
            vals = np.array([float(np.sum(table[key][k][0])) for k in keys])
            ax.barh(y + off, np.maximum(vals, floor), height=0.4, label=key)
            for yy, v in zip(y + off, vals):
                if v < floor:
                    ax.text(floor * 1.3, yy, "0 (exact)", va="center", fontsize=6)
        ax.set_xscale("log")
        ax.set_xlim(floor, None)
        ax.set_yticks(y)
        ax.set_yticklabels([short[k] for k in keys], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("Σ_j Var(ĝ_j) × cost (log scale)")
        ax.set_title("variance per evaluation of f", fontsize=9)
        ax.legend(fontsize=7)

    ctx.figure("rebar-eta", "Left, middle: exact REBAR variance as a function of η for several τ (exact quadratic); "
                            "the star is the (η̂, τ̂) found by minimising E[ĝ²]. Right: variance per evaluation of f "
                            "for the whole tour", draw)


def run(ctx):
    probs = _problems()
    ctx.setting(problems={k: v[2] for k, v in probs.items()}, alpha=ALPHA)
    table = {"P1": {}, "P2": {}}
    scalar_info = _baselines(ctx, probs, table)
    _typo(ctx, probs, scalar_info)
    curves, fitted, worst_mean_p2 = _rebar_tuning(ctx, probs, table)
    _rebar_invariance(ctx, probs, {"worst_mean": worst_mean_p2})
    _others(ctx, probs, table)
    _main_table(ctx, table)
    _figure(ctx, curves, fitted, table)
    if not ctx.quick:
        dist, f, _ = probs["P2"]
        m2 = exact.moments("rebar", dist, f, eta="optimal", tau=TAU0, level=2)
        m3 = exact.moments("rebar", dist, f, eta="optimal", tau=TAU0, level=3)
        diff = float(np.max(np.abs(_var(m2) - _var(m3))))
        ctx.check("P2 quadrature: level 2 agrees with level 3 within level 2's reported error (REBAR, η*)",
                  diff <= max(m2.error, 1e-12), f"max |ΔVar| = {diff:.2e} ≤ reported error {m2.error:.2e}")
    ctx.record(fitted={k: {"eta": v["eta"], "tau": v["tau"], "tau_scan": v["scan"]} for k, v in fitted.items()})


CASE = Case(
    name="sobolev_slides_variance",
    title="Lecture slides' variance-reduction tour: baselines, MuProp, REBAR tuning, RELAX",
    source=cite("sobolev_slides") + ", section 'Variance Reduction'; Weaver & Tao 2001 (optimal "
           "baseline); Gu et al. 2016 (MuProp); Tucker et al. 2017 (REBAR, §3.2 tuning); Grathwohl et al. 2018 (RELAX)",
    description="Formulas under test: the slides' baseline estimator (1/M) Σ_m f(z^(m) − b(z)) ∂φ log q(z^(m)) + "
                "∂φ E[b(z)] (the baseline is printed inside f's argument: read literally it is biased, the intended "
                "(f(z) − b(z)) ∂ log q is not), the optimal constant baseline c = Cov[f ∂log q, ∂log q]/Var[∂log q] "
                "(right per coordinate) and tuning REBAR by minimising E[ĝ²] (right because REBAR is unbiased); the "
                "source findings list the measured numbers. "
                "On the REBAR toy (P1) and a two-bit table objective (P2), with exact moments: the slides' optimal "
                "constant baseline against refgrad's per-coordinate optimum (and the scalar reading); the printed "
                "baseline 'f(z − b(z))' shown to be a typo (literal reading biased, intended one unbiased, exactly and "
                "by Monte Carlo); REBAR's mean independent of η and τ so that ∇E[ĝ²] = ∇Var; (η, τ) fitted by "
                "minimising E[ĝ²] against the closed-form optimal η; MuProp and RELAX; one table of variance per "
                "evaluation of f.",
    run=run,
)
