"""Stochastic gradient descent on the REBAR/RELAX toy with every estimator, at an equal gradient budget per step.

Minimise ``L(ℓ) = E_{b ~ Bernoulli(σ(ℓ))}[(b − t)²] = t² + θ(1 − 2t)`` over the logit ℓ
(θ = σ(ℓ)), from ℓ₀ = 0 (θ = 0.5), for t = 0.45 (Tucker et al. 2017) and t = 0.499
(Grathwohl et al. 2018, whose Fig. 1 is the classic example where estimators fail).  The
infimum t² is approached as θ → 0; the excess objective is ``θ(1 − 2t)``.

Every estimator gets the same budget of evaluations of f per step for its gradient estimates
(B = 6; refgrad's declared cost per estimate); REBAR and RELAX spend further evaluations on
tuning (fit_relax draws its own noise), which the tables count in a total cost column.  Plain SGD
``ℓ ← ℓ − γ · mean(ĝ)`` with a constant step γ, several seeds; exact gradient descent
(refgrad.exact.gradient) is the reference, and the exact objective of every iterate comes from
refgrad.exact.expectation.  The biased estimators' exact mean has a zero at an interior θ° (computed
here from refgrad.exact.moments): SGD with them is attracted there instead of to θ = 0.
"""
import math
import textwrap

import numpy as np
from scipy import optimize, special

import refgrad
from refgrad import exact
from refgrad import objectives as obj
from refgrad.distributions import Bernoulli
from refgrad.estimators import RelaxSurrogate, fit_relax

from ..core import Case
from ..sources import cite

BUDGET = 6  # evaluations of f per SGD step
TAU = 0.5
LOGIT0 = 0.0
#: t -> constant SGD step size γ.  1 − 2t is 50× smaller at t = 0.499, so γ is larger there, but
#: kept small enough that γ · dE[ĝ]/dℓ < 1 at the biased estimators' zeros (no oscillation).
STEP_SIZES = {0.45: 1.0, 0.499: 5.0}
#: online tuning of REBAR's (η, τ) and RELAX's surrogate: a warm-up fit at ℓ₀, then every TUNE_EVERY steps
#: TUNE_STEPS Adam steps of fit_relax on batches of TUNE_BATCH fresh noise draws (evaluations counted
#: separately).  fit_relax restarts Adam at every call, whose first steps move every parameter by about the
#: step size: the online refits therefore use a small step (at 0.05 they raise RELAX's variance 100-fold).
TUNE_EVERY, TUNE_STEPS, TUNE_BATCH, TUNE_LR = 20, 5, 16, 0.002
WARMUP_STEPS, WARMUP_BATCH, WARMUP_LR = 100, 16, 0.05

#: (key, label, estimator, estimates per step, options, tuned)
ESTIMATORS = [
    ("reinforce", "reinforce", "reinforce", 6, {}, None),
    ("reinforce_opt", "reinforce + optimal constant baseline (oracle)", "reinforce", 6, {"baseline": "optimal"}, None),
    ("rloo", "rloo (m = 6)", "rloo", 1, {"m": 6}, None),
    ("muprop", "muprop", "muprop", 3, {}, None),
    ("arm", "arm", "arm", 3, {}, None),
    ("disarm", "disarm", "disarm", 3, {}, None),
    ("rebar", "rebar (η, τ tuned online)", "rebar", 2, None, ("eta", "tau")),
    ("relax", "relax (surrogate tuned online)", "relax", 2, None, ("psi", "eta", "tau")),
    ("gumbel_softmax", f"gumbel_softmax (τ = {TAU})", "gumbel_softmax", 6, {"tau": TAU}, None),
    ("straight_through", f"straight_through (τ = {TAU})", "straight_through", 6, {"tau": TAU}, None),
]
UNBIASED = [e[0] for e in ESTIMATORS if refgrad.ESTIMATORS[e[2]].unbiased]
BIASED = [e[0] for e in ESTIMATORS if not refgrad.ESTIMATORS[e[2]].unbiased]


def _excess(logits, t):
    return special.expit(logits) * (1 - 2 * t)


def _run_one(ctx, t, entry, steps, seed):
    """ℓ_0..ℓ_T of one SGD run, and the evaluations of f spent on tuning."""
    key, _, name, n, opts, tuned = entry
    f = obj.SquaredDistance(t)
    gamma = STEP_SIZES[t]
    rng = ctx.rng(f"sgd/{t}/{key}/{seed}")
    logit = LOGIT0
    path = np.empty(steps + 1)
    path[0] = logit
    extra = 0
    sur = None
    if tuned is not None:
        start = RelaxSurrogate.zero((1,), eta=1.0, tau=TAU) if key == "rebar" else None
        sur, _ = fit_relax(Bernoulli([logit]), f, surrogate=start, steps=WARMUP_STEPS, batch=WARMUP_BATCH,
                           lr=WARMUP_LR, rng=rng, train=tuned)
        extra += 3 * WARMUP_STEPS * WARMUP_BATCH
    for k in range(steps):
        dist = Bernoulli([logit])
        if tuned is not None:
            if k > 0 and k % TUNE_EVERY == 0:
                sur, _ = fit_relax(dist, f, surrogate=sur, steps=TUNE_STEPS, batch=TUNE_BATCH, lr=TUNE_LR, rng=rng,
                                   train=tuned)
                extra += 3 * TUNE_STEPS * TUNE_BATCH
            o = {"eta": sur.eta, "tau": sur.tau} if key == "rebar" else {"surrogate": sur}
        else:
            o = opts
        g = refgrad.estimate(name, dist, f, n=n, rng=rng, **o)
        logit = logit - gamma * float(g.mean())
        path[k + 1] = logit
    return path, extra


def _exact_gd(t, steps):
    f = obj.SquaredDistance(t)
    path = np.empty(steps + 1)
    path[0] = logit = LOGIT0
    for k in range(steps):
        logit = logit - STEP_SIZES[t] * float(exact.gradient(Bernoulli([logit]), f)[0])
        path[k + 1] = logit
    return path


def _biased_zero(t, name):
    """The zero θ° of the exact mean of a biased estimator (one sign change on ℓ ∈ [−8, 8]) and the slope there."""
    f = obj.SquaredDistance(t)

    def mean_at(logit):
        return float(exact.moments(name, Bernoulli([logit]), f, tau=TAU).mean[0])

    grid = np.linspace(-8, 8, 17)
    vals = [mean_at(x) for x in grid]
    i = next(i for i in range(len(grid) - 1) if np.sign(vals[i]) != np.sign(vals[i + 1]))
    root = optimize.brentq(mean_at, grid[i], grid[i + 1], xtol=1e-12)
    slope = (mean_at(root + 1e-5) - mean_at(root - 1e-5)) / 2e-5
    return root, slope


def _predicted_steps(ctx, t):
    """Steps for the drift to beat the noise at θ = 0.5: Var(one step's mean ĝ)/∇², from exact moments."""
    f = obj.SquaredDistance(t)
    dist = Bernoulli([LOGIT0])
    grad = float(exact.gradient(dist, f)[0])
    out = {}
    for key, _, name, n, opts, tuned in ESTIMATORS:
        if tuned is None:
            m = exact.moments(name, dist, f, **opts)
        elif key == "rebar":
            m = exact.moments("rebar", dist, f, eta="optimal", tau=TAU)
        else:
            sur, _ = fit_relax(dist, f, steps=WARMUP_STEPS, batch=WARMUP_BATCH, lr=WARMUP_LR,
                               rng=ctx.rng(f"predict/{t}"))
            m = exact.moments("relax", dist, f, surrogate=sur)
        var_step = max(float(m.variance[0]), 0.0) / n
        out[key] = (var_step / grad**2, float(m.mean[0]))
    return out


def run(ctx):
    steps = ctx.size(300, 2000)
    seeds = ctx.size(5, 10)
    every = ctx.size(5, 10)
    ctx.setting(steps=steps, seeds=seeds, start_logit=LOGIT0, step_sizes={str(k): v for k, v in STEP_SIZES.items()},
                budget_f_evaluations_per_step=BUDGET,
                estimates_per_step={e[0]: e[3] for e in ESTIMATORS},
                tuning=f"fit_relax every {TUNE_EVERY} steps: {TUNE_STEPS} Adam steps, batch {TUNE_BATCH}, lr "
                       f"{TUNE_LR}; warm-up {WARMUP_STEPS} steps, batch {WARMUP_BATCH}, lr {WARMUP_LR}",
                objective_evaluated_every=every, tau=TAU)
    spent = {key: n * refgrad.ESTIMATORS[name].cost_of(Bernoulli([0.0]), **(opts if opts is not None else {}))
             for key, _, name, n, opts, _ in ESTIMATORS}
    ctx.check(f"equal gradient budget: every estimator spends {BUDGET} evaluations of f per step on its gradient "
              "estimates (estimates per step × the estimator's declared cost, ESTIMATORS[name].cost_of); REBAR's and "
              "RELAX's tuning evaluations come on top (tables, last column)", all(v == BUDGET for v in spent.values()),
              ", ".join(f"{k} {v}" for k, v in spent.items()))

    results, gd, zeros, predicted, extras = {}, {}, {}, {}, {}
    for t in STEP_SIZES:
        gd[t] = _exact_gd(t, steps)
        predicted[t] = _predicted_steps(ctx, t)
        for key in BIASED:
            zeros[(t, key)] = _biased_zero(t, key)
        for entry in ESTIMATORS:
            paths, extra = [], 0
            for s in range(seeds):
                p, e = _run_one(ctx, t, entry, steps, s)
                paths.append(p)
                extra += e
            results[(t, entry[0])] = np.array(paths)
            extras[(t, entry[0])] = extra / (seeds * steps)

    # exact objective of the iterates (refgrad.exact.expectation), on every `every`-th iterate
    idx = np.arange(0, steps + 1, every)
    objective, worst_obj = {}, 0.0
    for (t, key), paths in list(results.items()) + [((t, "exact GD"), gd[t][None]) for t in STEP_SIZES]:
        f = obj.SquaredDistance(t)
        vals = np.array([[exact.expectation(Bernoulli([float(x)]), f) for x in p[idx]] for p in paths])
        worst_obj = max(worst_obj, float(np.max(np.abs(vals - (t * t + _excess(paths[:, idx], t))))))
        objective[(t, key)] = vals - t * t
    ctx.check("exact.expectation at every recorded iterate equals the closed form t² + θ(1 − 2t)", worst_obj < 1e-14,
              f"max abs difference {worst_obj:.1e}")

    _tables(ctx, results, gd, zeros, predicted, extras, steps)
    _checks(ctx, results, gd, zeros, predicted, steps)
    _figure(ctx, objective, idx, zeros)
    for t in STEP_SIZES:
        _trajectory_figure(ctx, results, gd, zeros, t)
    ctx.record(final_logits={f"{t}/{k}": results[(t, k)][:, -1] for t in STEP_SIZES for k, *_ in ESTIMATORS},
               exact_gd_final={str(t): gd[t][-1] for t in STEP_SIZES})


def _tail_theta(paths):
    """Per seed, the mean of θ over the second half of the run."""
    half = paths.shape[1] // 2
    return special.expit(paths[:, half:]).mean(axis=1)


def _tables(ctx, results, gd, zeros, predicted, extras, steps):
    for t in STEP_SIZES:
        theta_gd = float(special.expit(gd[t][-1]))
        rows = [["exact gradient descent", "n/a", "n/a", theta_gd, 0.0, theta_gd * (1 - 2 * t), 0.0,
                 float(special.expit(gd[t][len(gd[t]) // 2:]).mean()), "n/a", "n/a", "n/a"]]
        for key, label, _name, n, _, _ in ESTIMATORS:
            paths = results[(t, key)]
            theta = special.expit(paths[:, -1])
            excess = theta * (1 - 2 * t)
            tail = _tail_theta(paths)
            zero = f"{special.expit(zeros[(t, key)][0]):.4f}" if key in BIASED else "n/a"
            rows.append([label, "yes" if key in UNBIASED else "no", n, float(theta.mean()), float(theta.std()),
                         float(excess.mean()), float(excess.std()), float(tail.mean()), zero,
                         f"{predicted[t][key][0]:.3g}" if key in UNBIASED else "n/a",
                         round(BUDGET + extras[(t, key)], 2)])
        ctx.table(f"t = {t}, step size γ = {STEP_SIZES[t]}, {steps} steps from θ = 0.5: final θ and final excess "
                  "objective E[f] − t² = θ(1 − 2t) over seeds",
                  ["estimator", "unbiased", "estimates/step", "mean θ_T", "sd θ_T", "mean excess", "sd excess",
                   "mean θ over 2nd half", "zero θ° of E[ĝ]", "predicted steps to beat noise at θ=0.5",
                   "f-evals/step incl. tuning"], rows,
                  note=f"Each step spends {BUDGET} evaluations of f on gradient estimates: estimates/step × the "
                       "estimator's declared cost (reinforce, gumbel_softmax, straight_through 1 — for the last two "
                       "one gradient of f; muprop, arm, disarm 2; rebar, relax 3; rloo m = 6 uses one estimate of 6 "
                       "samples). REBAR's (η, τ) and RELAX's surrogate are tuned online with fit_relax, which draws "
                       "its own noise: the last column counts them (estimates + tuning, averaged over the run: the "
                       "warm-up fit at ℓ₀ and the periodic refits), so REBAR and RELAX cost more per step than the "
                       "others (the papers reuse the estimator's samples). "
                       "The optimal constant baseline is the exact oracle (by enumeration). 'Predicted steps' "
                       "(unbiased only) = Var(mean of one step's estimates)/∇² at θ = 0.5 from exact moments (REBAR at "
                       "its exact optimal η; RELAX with a surrogate fitted as in the warm-up): below it the noise "
                       "dominates the drift.")


def _checks(ctx, results, gd, zeros, predicted, steps):
    # the zero-variance oracle reproduces exact GD
    dev = max(float(np.max(np.abs(results[(t, "reinforce_opt")] - gd[t][None]))) for t in STEP_SIZES)
    ctx.check("REINFORCE with the exact optimal constant baseline has zero variance for one bit, so its SGD path is "
              "exact gradient descent", dev < 1e-9, f"max |ℓ_k − ℓ_k(exact GD)| = {dev:.1e} over all steps, seeds, t")

    # unbiased estimators approach the optimum like exact GD: they achieve at least 75% of exact GD's decrease of
    # the excess objective, within 2 standard errors over seeds
    def approach(t, keys):
        start, gd_excess = float(_excess(LOGIT0, t)), float(_excess(gd[t][-1], t))
        bound = start - 0.75 * (start - gd_excess)
        out = []
        for key in keys:
            ex = _excess(results[(t, key)][:, -1], t)
            se = float(ex.std(ddof=1) / math.sqrt(len(ex)))
            out.append((key, float(ex.mean()), se, bool(ex.mean() <= bound + 2 * se)))
        return gd_excess, bound, out

    t = 0.45
    gd_excess, bound, res = approach(t, UNBIASED)
    ctx.check(f"t = 0.45: every unbiased estimator's seed-averaged final excess objective approaches the optimum like "
              f"exact gradient descent (tolerance: at least 75% of exact GD's decrease from {0.5 * (1 - 2 * t):.3g} to "
              f"{gd_excess:.3g}, i.e. ≤ {bound:.3g}, + 2 standard errors over seeds)", all(r[3] for r in res),
              ", ".join(f"{k} {m:.3g} ± {se:.2g}" for k, m, se, _ in res))

    # t = 0.499: those whose exact noise allows it converge; the others are still noise-dominated
    t = 0.499
    fast = [k for k in UNBIASED if predicted[t][k][0] < steps / 5]
    slow = [k for k in UNBIASED if predicted[t][k][0] > steps]
    gd_excess, bound, res = approach(t, fast)
    ctx.check(f"t = 0.499: the unbiased estimators whose exact variance lets the drift beat the noise within a fifth "
              f"of the run (predicted steps < {steps // 5}) approach the optimum like exact gradient descent (same "
              f"tolerance: from {0.5 * (1 - 2 * t):.3g}, exact GD reaches {gd_excess:.3g}; bound {bound:.3g})",
              all(r[3] for r in res) and len(fast) > 0,
              ", ".join(f"{k} {m:.3g} ± {se:.2g} (predicted {predicted[t][k][0]:.3g} steps)" for k, m, se, _ in res))
    theta_gd = float(special.expit(gd[t][-1]))
    distance = {k: float(np.mean(np.abs(special.expit(results[(t, k)][:, -1]) - theta_gd))) for k in slow}
    ctx.check(f"t = 0.499: the unbiased estimators whose predicted steps exceed the run ({steps}) have not converged: "
              f"their final θ is far from exact GD's θ_T = {theta_gd:.4f} (mean over seeds of |θ_T − θ_T(GD)| > 0.1)",
              all(v > 0.1 for v in distance.values()) and len(slow) > 0,
              ", ".join(f"{k}: {distance[k]:.3f} (predicted {predicted[t][k][0]:.3g} steps)" for k in slow))

    # biased estimators converge to the wrong θ: near the zero of their exact mean, far from θ = 0
    parts, ok = [], True
    for t in STEP_SIZES:
        theta_gd = float(special.expit(gd[t][-1]))
        for key in BIASED:
            root, slope = zeros[(t, key)]
            theta0 = float(special.expit(root))
            tail = float(_tail_theta(results[(t, key)]).mean())
            ok &= abs(tail - theta0) <= 0.15 and tail >= 0.25 and slope > 0 and tail > theta_gd + 0.1
            parts.append(f"t={t} {key}: θ̄ = {tail:.3f} vs θ° = {theta0:.4f} (slope {slope:.3g}), exact GD θ_T = "
                         f"{theta_gd:.4f}")
    ctx.check("the biased estimators (gumbel_softmax, straight_through at τ = 0.5) converge to the wrong θ: their "
              "iterates settle around the zero θ° of their exact mean (seed- and time-averaged θ over the second half "
              "within 0.15 of θ°, above 0.25), not at the optimum θ → 0, for t = 0.45 as well as t = 0.499", ok,
              "; ".join(parts))


def _figure(ctx, objective, idx, zeros):
    def draw(fig):
        import matplotlib.pyplot as plt

        fig.set_size_inches(13.0, 4.8)
        colors = plt.get_cmap("tab10")(np.arange(10))
        axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
        for ax, t in zip(axes, STEP_SIZES):
            ax.plot(idx, objective[(t, "exact GD")][0], "k-", lw=2.5, label="exact gradient descent")
            for i, (key, label, *_) in enumerate(ESTIMATORS):
                vals = objective[(t, key)]
                style = "-" if key in UNBIASED else "--"
                ax.plot(idx, vals.mean(axis=0), style, lw=1.2, color=colors[i], label=label)
            for key in BIASED:
                ax.axhline(float(special.expit(zeros[(t, key)][0])) * (1 - 2 * t), color="grey", ls=":", lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel(f"SGD step ({BUDGET} evaluations of f each)")
            ax.set_ylabel("exact E[f] − t² (mean over seeds)")
            ax.set_title(f"t = {t}, γ = {STEP_SIZES[t]}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))

    ctx.figure("objective", "Exact excess objective E[f] − t² = θ(1 − 2t) of the SGD iterates "
                            "(refgrad.exact.expectation), averaged over seeds; dotted: the value at the zeros θ° of "
                            "the biased estimators' means. At t = 0.499 the mean over seeds hides that REINFORCE, "
                            "MuProp and REBAR are random walks (next figure)", draw)


def _trajectory_figure(ctx, results, gd, zeros, t):
    def draw(fig):
        fig.set_size_inches(14.0, 5.2)
        steps = gd[t].size - 1
        for i, (key, label, *_) in enumerate(ESTIMATORS):
            ax = fig.add_subplot(2, 5, i + 1)
            for path in results[(t, key)]:
                ax.plot(np.arange(steps + 1), special.expit(path), lw=0.6, alpha=0.7)
            ax.plot(np.arange(steps + 1), special.expit(gd[t]), "k-", lw=1.8)
            if key in BIASED:
                ax.axhline(float(special.expit(zeros[(t, key)][0])), color="grey", ls=":", lw=1)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title("\n".join(textwrap.wrap(label, 26)), fontsize=7.5)
            ax.tick_params(labelsize=6.5)
            if i % 5 == 0:
                ax.set_ylabel("θ = σ(ℓ)", fontsize=7)
            if i >= 5:
                ax.set_xlabel("step", fontsize=7)

    ctx.figure(f"theta-{t}", f"t = {t}: θ along every seed's SGD run (thin lines), exact gradient descent (black), the "
                             "zero θ° of a biased estimator's exact mean (dotted)", draw)


CASE = Case(
    name="optimisation",
    title="SGD on the toy with every estimator at an equal gradient budget (6 evaluations of f per step)",
    source="Tucker et al. 2017 (REBAR) §6.1; Grathwohl et al. 2018 (RELAX) §6.1, Fig. 1 (t = 0.499); "
           + cite("rebar_report") + ", appendix C (SGD needs unbiased gradients)",
    description="Minimise E[(b − t)²] over the logit with plain SGD, each estimator at 6 evaluations of f per step "
                "for its gradient estimates (REBAR and RELAX spend more on tuning their control variates; the tables "
                "give the total per step), against exact gradient descent, averaged over seeds; the exact objective of "
                "every iterate from refgrad.exact.expectation. Checks that the unbiased estimators follow exact "
                "gradient descent where their exact variance allows it, and that the biased ones converge to the zero "
                "of their exact mean — the wrong θ — at t = 0.45 and t = 0.499.",
    run=run,
)
