"""A forum question's Gumbel-Softmax estimator for a mixture of experts, checked with exact numbers.

Source: the forum question "Did I understand the usage of Gumbel-Softmax reparametrization
correctly?" (a public question-and-answer forum, author not named).  The asker's model is
``log p(y|x) = log Σ_z p(y|z, x, θ) p(z|x, φ)`` with a softmax gate ``p(z|x, φ)`` over K experts.
They propose to maximise the Jensen bound ``B(φ) = Σ_z p(z|φ) log p(y|z)`` instead, claim that its
φ-gradient ``Σ_z log p(y|z) ∇φ p(z|φ)`` 'cannot be approximated since it is not an expectation', and
propose the estimator ``(1/n) Σ_i log p(y | onehot(β_i)) ∇φ β_i`` with the Gumbel-Softmax sample
``β = softmax((log α + g)/λ)``.

This case builds a small synthetic problem (K = 3 experts, m = 6 observations at one
input x, expert likelihoods fixed positive numbers, gate logits φ) and answers the
question with exact numbers: the bound and the log-likelihood and their exact
gradients; the different maximisers; the exact mean of every reading of the proposed
estimator, against REINFORCE, REBAR and exact marginalisation.
"""
import math

import numpy as np
from scipy import special

import refgrad
from refgrad import exact
from refgrad import objectives as obj
from refgrad import stats as rstats
from refgrad.distributions import Categorical

from ..core import Case
from ..sources import cite

ALPHA = 1e-3

#: p(y_i | z = k, x): rows are the m observations, columns the K experts.  Experts 0 and 1 are
#: specialists (each good on half of the data), expert 2 a mediocre generalist.
LIKELIHOOD = np.array([
    [0.90, 0.05, 0.40],
    [0.85, 0.10, 0.40],
    [0.90, 0.05, 0.40],
    [0.05, 0.90, 0.40],
    [0.10, 0.80, 0.40],
    [0.05, 0.90, 0.40],
])
PHI0 = np.array([0.3, -0.2, 0.4])  # gate logits at which the estimators are compared
TAUS = (0.5, 1.0)


# ------------------------------------------------------------------------------------ helpers


def _unbiased(samples, target):
    """p-value of refgrad.stats.unbiasedness_test for 'E[samples] = target' at the case's α."""
    return float(rstats.unbiasedness_test(np.asarray(samples, dtype=float), np.asarray(target, dtype=float),
                                          alpha=ALPHA).pvalue)

def _softmax(phi):
    return special.softmax(phi)


def _bound(phi, loglik=None):
    """B(φ) = Σ_k p_k F_k with F_k = (1/m) Σ_i log p(y_i | k)."""
    F = np.log(LIKELIHOOD).mean(0) if loglik is None else loglik.mean(0)
    return float(_softmax(phi) @ F)


def _loglik(phi, lik=None):
    """L(φ) = (1/m) Σ_i log Σ_k p_k p(y_i | k)."""
    lik = LIKELIHOOD if lik is None else lik
    return float(np.mean(np.log(lik @ _softmax(phi))))


def _grad_bound_closed(phi):
    p = _softmax(phi)
    F = np.log(LIKELIHOOD).mean(0)
    return p * (F - p @ F)


def _grad_loglik_closed(phi):
    p = _softmax(phi)
    r = LIKELIHOOD * p / (LIKELIHOOD @ p)[:, None]  # posterior responsibilities r_ik
    return (r - p).mean(0)


def _fd(fun, phi, h=1e-6):
    out = np.zeros_like(phi)
    for k in range(phi.size):
        e = np.zeros_like(phi)
        e[k] = h
        out[k] = (fun(phi + e) - fun(phi - e)) / (2 * h)
    return out


def _mixture_extension():
    """f̃(β) = (1/m) Σ_i log Σ_k β_k p(y_i|k): agrees with F on the vertices, evaluated on relaxed β."""
    P = LIKELIHOOD

    def value(z):
        w = np.ascontiguousarray(z[:, 0, :]) @ P.T  # (n, m); contiguous: a strided matmul is ~8× slower
        return np.log(w).mean(1)

    def grad(z):
        w = np.ascontiguousarray(z[:, 0, :]) @ P.T
        return ((1.0 / w) @ P * (1.0 / P.shape[0]))[:, None, :]

    return obj.FunctionObjective(value, grad_fn=grad, name="log-mixture extension (1/m)Σ_i log Σ_k β_k p(y_i|k)")


def _asker_objective(F):
    """G(z) = ½ Σ_k F_k z_k²: ∇G at the one-hot b = onehot(k*) is F_{k*} e_{k*}.

    Straight-through on G is therefore J_τ(z)ᵀ (F_{k*} e_{k*}) = F_{k*} ∇φ β_{k*}: the asker's estimator.
    """
    def value(z):
        return 0.5 * np.einsum("k,nk->n", F, z[:, 0, :] ** 2)

    def grad(z):
        return (F[None, :] * z[:, 0, :])[:, None, :]

    return obj.FunctionObjective(value, grad_fn=grad, name="asker: ½Σ_k F_k z_k² (∇ = F_k* e_k* at one-hot)")


def _asker_direct(phi, F, tau, u):
    """The asker's formula, written out: F(onehot(β)) ∇φ β_{k*}, β = softmax((log α + g)/λ), g = −log(−log u)."""
    log_alpha = phi - special.logsumexp(phi)
    g = -np.log(-np.log(u[:, 0, :]))
    beta = special.softmax((log_alpha[None] + g) / tau, axis=1)
    k = np.argmax(beta, axis=1)
    bk = beta[np.arange(len(k)), k]
    onehot = np.eye(phi.size)[k]
    # ∂β_k*/∂φ_i = β_k* (δ_{k* i} − β_i)/λ  (the normalisation of log α drops out)
    return (F[k] * bk)[:, None] * (onehot - beta) / tau


# ------------------------------------------------------------------------------------ parts


def _bound_and_likelihood(ctx):
    F = np.log(LIKELIHOOD).mean(0)
    dist = Categorical(PHI0[None])
    table_F = obj.Table(F, name="F_k = (1/m) Σ_i log p(y_i|k)")
    rows = []
    ok_jensen = True
    rng = ctx.rng("jensen")
    phis = [PHI0] + [rng.normal(0, 2, 3) for _ in range(5)]
    for phi in phis:
        B, L = _bound(phi), _loglik(phi)
        per_point = np.log(LIKELIHOOD) @ _softmax(phi) <= np.log(LIKELIHOOD @ _softmax(phi)) + 1e-15
        ok_jensen &= bool(per_point.all()) and B <= L
        rows.append([np.round(phi, 3).tolist(), np.round(_softmax(phi), 4).tolist(), B, L, L - B])
    ctx.table("Jensen: the bound B(φ) = Σ_z p(z|φ) log p(y|z) against log p(y|x) (both averaged over the m = 6 "
              "observations)", ["φ", "p(z|φ)", "bound B", "log-likelihood L", "gap L − B"], rows)
    ctx.check("the asker's Σ_z p(z|φ) log p(y|z) is a lower bound of log p(y|x) (Jensen), per observation and on "
              "average", ok_jensen, f"{len(phis)} gate settings × 6 observations; smallest average gap "
                                    f"{min(r[4] for r in rows):.4f}")

    # exact gradients: refgrad vs closed forms vs finite differences
    g_bound = exact.gradient(dist, table_F)[0]
    g_bound_closed = _grad_bound_closed(PHI0)
    g_bound_fd = _fd(_bound, PHI0)
    num = np.array([exact.gradient(dist, obj.Table(P))[0] / exact.expectation(dist, obj.Table(P)) for P in LIKELIHOOD])
    g_ll = num.mean(0)
    g_ll_closed = _grad_loglik_closed(PHI0)
    g_ll_fd = _fd(_loglik, PHI0)
    ctx.table("Exact φ-gradients at φ₀ = " + str(PHI0.tolist()),
              ["objective", "refgrad.exact", "closed form", "central FD"],
              [["bound B: p ⊙ (F − B)", g_bound.tolist(), g_bound_closed.tolist(), g_bound_fd.tolist()],
               ["log p(y|x): mean_i (r_i − p)", g_ll.tolist(), g_ll_closed.tolist(), g_ll_fd.tolist()]],
              note="refgrad.exact.gradient(Categorical(φ), Table(F)) computes Σ_z F(z) ∇φ p(z|φ) = E[F ∇ log p] by "
                   "enumeration; for log p(y|x) = (1/m) Σ_i log E[p(y_i|z)] the ratio ∇E[p(y_i|z)] / E[p(y_i|z)] is "
                   "taken per observation. r_ik = p_k p(y_i|k) / Σ_j p_j p(y_i|j) are the posterior responsibilities.")
    ctx.check("exact gradients of the bound and of log p(y|x): refgrad = closed form = finite differences",
              np.allclose(g_bound, g_bound_closed, atol=1e-13) and np.allclose(g_bound, g_bound_fd, atol=1e-8)
              and np.allclose(g_ll, g_ll_closed, atol=1e-13) and np.allclose(g_ll, g_ll_fd, atol=1e-8),
              f"∇B = {np.round(g_bound, 6).tolist()}, ∇L = {np.round(g_ll, 6).tolist()}")

    # 'cannot be approximated since it is not an expectation': it is E[F ∇ log p] (score function)
    probs = dist.probs[0]
    score_form = sum(probs[k] * F[k] * (np.eye(3)[k] - probs) for k in range(3))
    direct = sum(F[k] * _fd(lambda phi, k=k: _softmax(phi)[k], PHI0) for k in range(3))
    ctx.check("the forum question's 'Σ_z log p(y|z) ∇φ p(z|φ) cannot be approximated since it is not an expectation' "
              "is wrong: it equals E_z[log p(y|z) ∇φ log p(z|φ)] (score function)",
              np.allclose(score_form, direct, atol=1e-8) and np.allclose(score_form, g_bound, atol=1e-13),
              f"Σ_z F ∇p (FD) = {np.round(direct, 6).tolist()}, E[F ∇ log p] = {np.round(score_form, 6).tolist()}")
    ctx.source_finding("forum", "∇φ Σ_z log p(y|z) p(z|φ) = Σ_z log p(y|z) ∇φ p(z|φ) “cannot be approximated since it "
                       "is not an expectation”", "wrong",
                       "it is E_z[log p(y|z) ∇φ log p(z|φ)] (score function): both forms agree to "
                       f"{np.max(np.abs(score_form - g_bound)):.0e} at φ₀, and REINFORCE estimates it without bias "
                       f"(table 'Estimators of ∇φ B')")
    ctx.source_finding("forum", "Σ_z p(z|x, φ) log p(y|z, x, θ) is a lower bound of log p(y|x)", "correct",
                       f"Jensen holds at {len(phis)} gate settings × 6 observations (smallest average gap "
                       f"{min(r[4] for r in rows):.4f}); but it is a different objective (table 'Maximisers')")
    return F, g_bound, g_ll


def _theta_gradient(ctx):
    """Experts with one bias each: p(y_i|k, θ) = σ(logit P_ik + θ_k), so ∂θ_k log p(y_i|k) = 1 − p(y_i|k)."""
    logit = special.logit(LIKELIHOOD)
    p = _softmax(PHI0)

    def lik(theta):
        return special.expit(logit + theta[None, :])

    def bound_theta(theta):
        return float(np.log(lik(theta)).mean(0) @ p)

    def ll_theta(theta):
        return float(np.mean(np.log(lik(theta) @ p)))

    theta0 = np.zeros(3)
    asker = p * (1 - LIKELIHOOD).mean(0)  # Σ_z p(z) ∇θ log p(y|z, θ), averaged over observations
    r = LIKELIHOOD * p / (LIKELIHOOD @ p)[:, None]
    posterior = (r * (1 - LIKELIHOOD)).mean(0)
    fd_b, fd_l = _fd(bound_theta, theta0), _fd(ll_theta, theta0)
    ctx.table("θ-gradients (experts p(y|k, θ) = σ(logit p(y|k) + θ_k), at θ = 0)",
              ["quantity", "formula", "value", "central FD of"],
              [["∇θ bound", "Σ_z p(z|φ) ∇θ log p(y|z, θ) (asker)", asker.tolist(), fd_b.tolist()],
               ["∇θ log p(y|x)", "Σ_z p(z|y, x) ∇θ log p(y|z, θ) (posterior weights)", posterior.tolist(),
                fd_l.tolist()]],
              note="The asker's θ-gradient is the right gradient of their bound. For log p(y|x) itself the experts' "
                   "gradients are weighted by the posterior p(z|y, x), not by the gate p(z|x).")
    ctx.check("the forum question's θ-gradient Σ_z ∇θ log p(y|z, θ) p(z|φ) is the gradient of the bound (FD)",
              np.allclose(asker, fd_b, atol=1e-8) and np.allclose(posterior, fd_l, atol=1e-8)
              and not np.allclose(asker, posterior, atol=1e-3),
              f"bound: {np.round(asker, 6).tolist()}; log-likelihood: {np.round(posterior, 6).tolist()}")
    ctx.source_finding("forum", "∇θ = Σ_z ∇θ log p(y|z, x, θ) p(z|x, φ)", "correct",
                       f"equals central finite differences of the bound (max deviation "
                       f"{np.max(np.abs(asker - fd_b)):.1e}); it is not the gradient of log p(y|x), which weights the "
                       f"experts by the posterior p(z|y, x)")


def _maximisers(ctx, F):
    """Exact gradient ascent on each objective from φ = 0, and EM for the gate of log p(y|x)."""
    steps = ctx.size(300, 1000)
    lr = 2.0
    ctx.setting(ascent_steps=steps, ascent_learning_rate=lr)
    paths = {}
    for label, grad in [("bound B", _grad_bound_closed), ("log p(y|x)", _grad_loglik_closed)]:
        phi = np.zeros(3)
        path = [_softmax(phi)]
        for _ in range(steps):
            phi = phi + lr * grad(phi)
            path.append(_softmax(phi))
        paths[label] = np.array(path)
    # EM for the mixing weights (fixed experts): p ← mean_i r_i
    p = np.full(3, 1 / 3)
    for _ in range(5000):
        r = LIKELIHOOD * p / (LIKELIHOOD @ p)[:, None]
        p = r.mean(0)
    p_em = p
    p_bound = paths["bound B"][-1]
    p_ll = paths["log p(y|x)"][-1]
    vertex = np.eye(3)[np.argmax(F)]

    def both(pp):
        return float(pp @ F), float(np.mean(np.log(LIKELIHOOD @ pp)))

    rows = []
    for label, pp in [("maximiser of the bound (ascent)", p_bound), ("best single expert onehot(argmax F)", vertex),
                      ("maximiser of log p(y|x) (ascent)", p_ll), ("maximiser of log p(y|x) (EM)", p_em)]:
        b, ll = both(pp)
        rows.append([label, np.round(pp, 4).tolist(), b, ll])
    ctx.table("Maximisers of the two objectives over the gate", ["point", "p(z|x, φ)", "bound B", "log p(y|x)"], rows,
              note=f"F = (1/m)Σ_i log p(y_i|k) = {np.round(F, 4).tolist()}: B is linear in p, so its maximum is the "
                   "vertex of the expert with the best average log-likelihood (the generalist, expert 2). The "
                   "likelihood prefers to mix the two specialists.")
    b_vertex, l_vertex = both(vertex)
    b_mle, l_mle = both(p_em)
    ctx.check("the bound's maximiser puts all mass on one expert (argmax_k F_k); log p(y|x)'s maximiser mixes experts",
              abs(p_bound[np.argmax(F)] - 1) < 1e-2 and p_em.max() < 0.9 and np.allclose(p_ll, p_em, atol=1e-2),
              f"bound ascent: p = {np.round(p_bound, 4).tolist()}; log-likelihood: ascent "
              f"{np.round(p_ll, 4).tolist()}, EM {np.round(p_em, 4).tolist()}")
    ctx.check("maximising the bound loses log-likelihood: log p(y|x) at the bound's maximiser < at the MLE",
              l_vertex < l_mle - 0.1,
              f"log p(y|x) = {l_vertex:.4f} (bound's maximiser) vs {l_mle:.4f} (MLE); the bound there is "
              f"{b_vertex:.4f} vs {b_mle:.4f}")

    def draw(fig):
        for j, (label, path) in enumerate(paths.items()):
            ax = fig.add_subplot(1, 2, j + 1)
            for k in range(3):
                ax.plot(path[:, k], label=f"expert {k}")
            ax.set_title(f"ascent on {label}", fontsize=9)
            ax.set_xlabel("step (exact gradient)")
            ax.set_ylim(-0.02, 1.02)
            if j == 0:
                ax.set_ylabel("gate probability p(z = k | x, φ)")
            ax.legend(fontsize=7)

    ctx.figure("maximisers", "Gate probabilities under exact gradient ascent on the bound (left) and on log p(y|x) "
                             "(right), from φ = 0", draw)


def _estimators(ctx, F, g_bound, g_ll):
    dist = Categorical(PHI0[None])
    table_F = obj.Table(F, name="F (linear extension Σ_k β_k F_k)")
    asker = _asker_objective(F)
    mixture = _mixture_extension()
    n = ctx.size(20000, 200000)
    level_st, level_gs = ctx.size(3, 4), ctx.size(3, 4)
    ctx.setting(n_mc_per_estimator=n, quadrature_level_straight_through=level_st,
                quadrature_level_gumbel_softmax=level_gs)
    have_rebar = "rebar" in refgrad.ESTIMATORS
    rows, mc_rows, bars = [], [], []

    def add(label, name, f, tau=None, options=None, exact_moments=True, cost=None, short=None):
        options = dict(options or {})
        if tau is not None:
            options["tau"] = tau
        if exact_moments:
            lvl = {"straight_through": level_st, "gumbel_softmax": level_gs}.get(name)
            m = exact.moments(name, dist, f, level=lvl, **options) if lvl else exact.moments(name, dist, f, **options)
            mean, var, method, err, c = m.mean[0], float(np.sum(m.variance)), m.method, m.error, m.cost
        samples = refgrad.estimate(name, dist, f, n=n, rng=ctx.rng(f"est/{label}/{tau}"), **options)
        if not exact_moments:
            mean, var = samples[:, 0].mean(0), float(np.sum(samples[:, 0].var(0, ddof=1)))
            method, err = "Monte Carlo", float(np.max(samples[:, 0].std(0, ddof=1)) / math.sqrt(n))
            c = refgrad.ESTIMATORS[name].cost_of(dist, **options)
        bias = mean - g_bound
        cos = float(mean @ g_bound / (np.linalg.norm(mean) * np.linalg.norm(g_bound)))
        rows.append([label, "n/a" if tau is None else tau, np.round(mean, 5).tolist(), float(np.linalg.norm(bias)),
                     float(np.linalg.norm(bias) / np.linalg.norm(g_bound)), cos, float(np.linalg.norm(mean - g_ll)),
                     var, c if cost is None else cost, method, err])
        p_oracle = _unbiased(samples, mean[None]) if exact_moments else "n/a (no exact mean)"
        p_bound = _unbiased(samples, g_bound[None])
        mc_rows.append([label, "n/a" if tau is None else tau, np.round(samples[:, 0].mean(0), 5).tolist(), p_oracle,
                        p_bound])
        # Monte Carlo: ±2 standard errors of ‖mean − ∇B‖ (its size under unbiasedness is about √(tr Var / n))
        half_width = 2 * math.sqrt(var / n) / float(np.linalg.norm(g_bound)) if not exact_moments else 0.0
        bars.append(((short or label) + ("" if tau is None else f", τ={tau}"),
                     float(np.linalg.norm(bias) / np.linalg.norm(g_bound)), method, half_width))
        return mean, samples, p_oracle, p_bound

    m_rf, _, p_o, p_b = add("REINFORCE (score function)", "reinforce", table_F, short="REINFORCE")
    ctx.check("REINFORCE is unbiased for ∇φ of the bound (exact enumeration; Monte Carlo does not reject)",
              np.allclose(m_rf, g_bound, atol=1e-12) and p_b > ALPHA, f"exact mean = ∇B to 1e-12; MC p = {p_b:.3g}")
    if have_rebar:
        _, s_rebar, _, p_b = add("REBAR (η = 1, τ = 0.5)", "rebar", table_F, options={"tau": 0.5, "eta": 1.0},
                                 exact_moments=False, short="REBAR (MC)")
        ctx.check("REBAR is unbiased for ∇φ of the bound (Monte Carlo; exact quadrature refuses noise dimension 6)",
                  p_b > ALPHA, f"n = {n}, p = {p_b:.3g} > α = {ALPHA}")
    for tau in TAUS:
        m_ask, s_ask, p_o, p_b = add("(i) asker: F(onehot β) ∇φ β_k*", "straight_through", asker, tau=tau,
                                           short="(i) asker")
        u_noise = refgrad.random.uniform(ctx.rng(f"asker-direct/{tau}"), (2000, 1, 3))
        via_st = refgrad.estimate("straight_through", dist, asker, noise={"u": u_noise}, tau=tau)[:, 0]
        direct = _asker_direct(PHI0, F, tau, u_noise)
        ctx.check(f"(i) the asker's estimator, written out, equals straight-through on ½Σ_k F_k z_k² (τ = {tau})",
                  np.allclose(via_st, direct, rtol=1e-10, atol=1e-12),
                  f"max |difference| over 2000 common-noise samples {np.max(np.abs(via_st - direct)):.2e}")
        ctx.check(f"(i) the asker's estimator is biased for ∇φ of the bound (τ = {tau}): exact mean ≠ ∇B and "
                  "Monte Carlo rejects ∇B while agreeing with the exact mean",
                  np.linalg.norm(m_ask - g_bound) > 0.05 * np.linalg.norm(g_bound) and p_b < ALPHA and p_o > ALPHA,
                  f"E[ĝ] = {np.round(m_ask, 5).tolist()} vs ∇B = {np.round(g_bound, 5).tolist()}; MC p vs exact mean "
                  f"{p_o:.3g}, vs ∇B {p_b:.2g}")
        log_alpha = PHI0 - special.logsumexp(PHI0)
        beta = special.softmax((log_alpha[None] - np.log(-np.log(u_noise[:, 0, :]))) / tau, axis=1)
        jac_sum = np.einsum("nj,nji->ni", np.ones_like(beta),
                            beta[:, :, None] * (np.eye(3)[None] - beta[:, None, :]) / tau)  # Σ_j ∂β_j/∂φ_i
        ctx.check(f"(i') read as F(onehot β) Σ_j ∇φ β_j, the estimator is identically 0 (Σ_j β_j = 1; τ = {tau})",
                  np.max(np.abs(jac_sum)) < 1e-12,
                  f"max |Σ_j ∂β_j/∂φ_i| over 2000 samples = {np.max(np.abs(jac_sum)):.1e}")
        m_st, s_st, p_o, p_b = add("(ii) straight-through Gumbel-Softmax, f linear ext.", "straight_through", table_F,
                                   tau=tau, short="(ii) ST-GS = (iii) GS, linear ext.")
        s_gs = refgrad.estimate("gumbel_softmax", dist, table_F, noise={"u": u_noise}, tau=tau)[:, 0]
        s_st_same = refgrad.estimate("straight_through", dist, table_F, noise={"u": u_noise}, tau=tau)[:, 0]
        ctx.check(f"(iii) Gumbel-Softmax with the linear extension Σ_k β_k F_k is the same estimator as (ii) "
                  f"(τ = {tau}): ∇F is constant, so the forward point does not matter",
                  np.allclose(s_gs, s_st_same, rtol=1e-12, atol=1e-14),
                  f"max |difference| over 2000 common-noise samples {np.max(np.abs(s_gs - s_st_same)):.1e}")
        ctx.check(f"(ii) straight-through Gumbel-Softmax is biased for ∇B (τ = {tau})",
                  np.linalg.norm(m_st - g_bound) > 0.05 * np.linalg.norm(g_bound) and p_b < ALPHA and p_o > ALPHA,
                  f"E[ĝ] = {np.round(m_st, 5).tolist()}; MC p vs exact mean {p_o:.3g}, vs ∇B {p_b:.2g}")
        m_gs, _, p_o, p_b = add("(iv) Gumbel-Softmax, f = (1/m)Σ log Σ_k β_k p(y|k)", "gumbel_softmax", mixture,
                                tau=tau, short="(iv) GS, log-mixture ext.")
        ctx.check(f"(iv) Gumbel-Softmax with the log-mixture extension is biased for ∇B (τ = {tau})",
                  np.linalg.norm(m_gs - g_bound) > 0.05 * np.linalg.norm(g_bound) and p_b < ALPHA and p_o > ALPHA,
                  f"E[ĝ] = {np.round(m_gs, 5).tolist()}; MC p vs exact mean {p_o:.3g}, vs ∇B {p_b:.2g}")
    rows.append(["exact marginalisation Σ_k F_k ∇φ p_k", "", np.round(g_bound, 5).tolist(), 0.0, 0.0, 1.0,
                 float(np.linalg.norm(g_bound - g_ll)), 0.0, 3, "enumeration", 0.0])
    ctx.table(f"Estimators of ∇φ B at φ₀ = {PHI0.tolist()} (∇B = {np.round(g_bound, 5).tolist()}, "
              f"∇ log p(y|x) = {np.round(g_ll, 5).tolist()})",
              ["estimator", "τ = λ", "E[ĝ]", "‖E ĝ − ∇B‖", "relative bias", "cos(E ĝ, ∇B)", "‖E ĝ − ∇ log p(y|x)‖",
               "tr Var (one estimate)", "f evals", "method", "error (quadrature) / s.e. (MC)"], rows,
              note="Exact means and variances by refgrad.exact.moments (enumeration for REINFORCE, tanh-sinh "
                   "quadrature over the Gumbel noise for the relaxed estimators; the error column is the difference "
                   "between two quadrature levels); REBAR by Monte Carlo (its noise dimension 6 exceeds the quadrature "
                   "limit). Reading (i) is exactly straight-through applied to G(z) = ½Σ_k F_k z_k², whose gradient at "
                   "the one-hot onehot(k*) is F_{k*} e_{k*}, so that J_τᵀ∇G = F_{k*} ∇φ β_{k*} (checked sample by "
                   "sample against the formula written out). Read literally as a vector, F(onehot β) ∇φ Σ_k β_k, it is "
                   "identically 0 because Σ_k β_k = 1. Every estimator of ∇B is biased for ∇ log p(y|x): the bound is "
                   "a different objective.")
    ctx.table(f"Monte Carlo confirmation (n = {n} per row)", ["estimator", "τ", "MC mean", "p vs exact mean",
                                                                "p vs ∇B"], mc_rows,
              note=f"Unbiasedness tests at α = {ALPHA} (refgrad.stats.unbiasedness_test: Hotelling T² and Holm, "
                   "Bonferroni-combined). 'p vs exact mean' confirms the oracle; 'p vs ∇B' < α detects the bias.")

    # cost of a given accuracy: exact marginalisation is K = 3 evaluations
    var_rf = float(np.sum(exact.moments("reinforce", dist, table_F).variance))
    target_se = 0.01 * np.linalg.norm(g_bound)
    need = int(math.ceil(var_rf / target_se**2))
    ctx.check("with K = 3, exact marginalisation (3 evaluations of log p(y|z), no variance) is cheaper than "
              "REINFORCE at 1% accuracy", need > 3,
              f"REINFORCE needs ≈ tr Var / (0.01 ‖∇B‖)² = {need} evaluations for a standard error of 1% of ‖∇B‖")
    ctx.record(reinforce_evaluations_for_1pct=need)

    def draw(fig):
        ax = fig.add_subplot(111)
        labels = [b[0] for b in bars]
        values = [b[1] for b in bars]
        errs = [b[3] for b in bars]
        ax.barh(range(len(bars)), values, color=["C2" if v < 0.01 + e else "C3" for v, e in zip(values, errs)])
        mc = [j for j, b in enumerate(bars) if b[2] == "Monte Carlo"]
        ax.errorbar([values[j] for j in mc], mc, xerr=[errs[j] for j in mc], fmt="o", color="k", ms=3, capsize=3,
                    lw=0.9)
        for j, (v, b) in enumerate(zip(values, bars)):
            text = f"{v:.3f}" + (f" ± {b[3]:.3f} (MC, 2 s.e.)" if b[2] == "Monte Carlo" else " (exact)")
            ax.text(v + b[3] + 0.01, j, text, va="center", fontsize=7)
        ax.set_yticks(range(len(bars)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlim(-0.03, max(values) * 1.25)
        ax.axvline(0, color="k", lw=0.6)
        ax.invert_yaxis()
        ax.set_xlabel("relative bias ‖E[ĝ] − ∇B‖ / ‖∇B‖")

    ctx.figure("bias", "Relative bias of each estimator of the bound's φ-gradient: exact (quadrature or enumeration) "
                       "except REBAR, a Monte Carlo mean whose error bar (±2 standard errors) covers 0 — its bar is "
                       "noise, not bias. (ii) and (iii) are the same estimator here (checked sample by sample)", draw)
    return need


def _annealing(ctx, F, g_bound):
    """'The training will involve some tinkering with the annealing schedule of λ': the exact means as λ → 0."""
    dist = Categorical(PHI0[None])
    asker, table_F = _asker_objective(F), obj.Table(F)
    taus = (2.0, 1.0, 0.5, 0.25, 0.1, 0.05)
    level = ctx.size(3, 4)
    ctx.setting(annealing_taus=list(taus), annealing_quadrature_level=level)
    half = 0.5 * g_bound
    rows, curve = [], []
    for tau in taus:
        m_i = exact.moments("straight_through", dist, asker, tau=tau, level=level)
        m_ii = exact.moments("straight_through", dist, table_F, tau=tau, level=level)
        mi, mii = m_i.mean[0], m_ii.mean[0]
        rel_i = float(np.linalg.norm(mi - g_bound) / np.linalg.norm(g_bound))
        rel_half = float(np.linalg.norm(mi - half) / np.linalg.norm(half))
        rel_ii = float(np.linalg.norm(mii - g_bound) / np.linalg.norm(g_bound))
        rows.append([tau, np.round(mi, 5).tolist(), rel_i, rel_half, float(np.sum(m_i.variance)),
                     np.round(mii, 5).tolist(), rel_ii, float(np.sum(m_ii.variance)), max(m_i.error, m_ii.error)])
        curve.append((tau, rel_i, rel_half, rel_ii, float(np.sum(m_i.variance)), float(np.sum(m_ii.variance))))
    ctx.table(f"Annealing λ = τ → 0: exact means (∇B = {np.round(g_bound, 5).tolist()}, ½∇B = "
              f"{np.round(half, 5).tolist()})",
              ["τ", "(i) asker E[ĝ]", "(i) ‖E ĝ − ∇B‖/‖∇B‖", "(i) ‖E ĝ − ½∇B‖/‖½∇B‖", "(i) tr Var",
               "(ii) ST-GS E[ĝ]", "(ii) ‖E ĝ − ∇B‖/‖∇B‖", "(ii) tr Var", "quadrature error"], rows,
              note="As τ → 0 the straight-through estimator with the linear extension becomes unbiased (for one "
                   "categorical and a linear f its limit is ∇B), while the asker's estimator tends to ½∇B (its "
                   "distance to ½∇B shrinks in proportion to τ). This is consistent with the τ → 0 limit of "
                   "straight-through averaging ∇f over the two vertices at each boundary between Gumbel-max regions: "
                   "for ½Σ_k F_k z_k² that average, projected on e_j − e_k, is ½(F_j − F_k) instead of F_j − F_k. "
                   "Annealing λ does not remove its bias, and the variance of both grows like 1/τ.")
    small = curve[-1]
    ctx.check("annealing does not fix the asker's estimator: as τ → 0 its exact mean tends to ½∇B (a factor-2 error), "
              "while straight-through with the linear extension tends to ∇B",
              all(c[1] > 0.4 for c in curve) and small[2] < 0.1 and small[3] < 0.02
              and all(a[2] > b[2] for a, b in zip(curve[1:], curve[2:])),
              f"τ = {small[0]}: (i) relative bias {small[1]:.3f}, distance to ½∇B {small[2]:.3f}; (ii) relative bias "
              f"{small[3]:.4f}; (i) relative bias over τ = {list(taus)}: {[round(c[1], 3) for c in curve]}")
    by_tau = {c[0]: c for c in curve}
    ctx.source_finding("forum", "∇φ ≈ (1/n) Σ_i log p(y | z = onehot(β(x, g_i))) ∇φ β(x, g_i), β = softmax((log α + "
                                "g)/λ), "
                       "with “tinkering with the annealing schedule of λ”", "wrong",
                       f"exact relative bias of its mean for ∇φ of the bound: {by_tau[1.0][1]:.2f} at λ = 1, "
                       f"{by_tau[0.5][1]:.2f} at λ = 0.5, {small[1]:.2f} at λ = {small[0]} (the mean tends to ½∇B); "
                       f"tr Var grows from {by_tau[1.0][4]:.3g} to {small[4]:.3g}")

    def draw(fig):
        ax = fig.add_subplot(1, 2, 1)
        t = [c[0] for c in curve]
        ax.loglog(t, [c[1] for c in curve], "o-", label="(i) asker vs ∇B")
        ax.loglog(t, [c[2] for c in curve], "s--", label="(i) asker vs ½∇B")
        ax.loglog(t, [c[3] for c in curve], "^-", label="(ii) ST-GS vs ∇B")
        ax.set_xlabel("τ = λ")
        ax.set_ylabel("relative distance of E[ĝ]")
        ax.legend(fontsize=7)
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.loglog(t, [c[4] for c in curve], "o-", label="(i) asker")
        ax2.loglog(t, [c[5] for c in curve], "^-", label="(ii) ST-GS")
        ax2.set_xlabel("τ = λ")
        ax2.set_ylabel("tr Var of one estimate")
        ax2.legend(fontsize=7)

    ctx.figure("annealing", "Exact bias (left) and variance (right) of the asker's estimator and of straight-through "
                            "Gumbel-Softmax as λ = τ → 0", draw)


def run(ctx):
    F, g_bound, g_ll = _bound_and_likelihood(ctx)
    _theta_gradient(ctx)
    _maximisers(ctx, F)
    need = _estimators(ctx, F, g_bound, g_ll)
    _annealing(ctx, F, g_bound)
    ctx.note("**Is this correct? No.** (1) Σ_z p(z|x, φ) log p(y|z, x, θ) is a valid lower bound of log p(y|x) "
             "(Jensen, checked above), but a different objective: it is linear in the gate probabilities, so its "
             "maximiser puts all mass on the single expert with the best average log-likelihood — here the mediocre "
             "generalist, losing log-likelihood against the mixture of specialists that maximises log p(y|x). "
             "(2) The θ-gradient is right for the bound. (3) 'Σ_z log p(y|z) ∇φ p(z|φ) cannot be approximated since "
             "it is not an expectation' is wrong: it equals E_z[log p(y|z) ∇φ log p(z|φ)], estimated without bias by "
             "REINFORCE (and with less variance by REBAR/RELAX). (4) The proposed estimator F(onehot β) ∇φ β_{k*} "
             "multiplies f by the gradient of the relaxed sample instead of using ∇f: it is neither REINFORCE nor "
             "reparameterisation; its exact mean differs from ∇B by 70–82% at λ = 0.5–1, and annealing λ → 0 "
             "does not help: the mean tends to ½∇B while the variance grows like 1/λ. Straight-through and "
             "Gumbel-Softmax are biased too for every λ > 0. (5) With K experts, the sum over z has K terms: exact "
             f"marginalisation costs K evaluations (3 here), has no variance, and can target log p(y|x) itself "
             f"(gradient mean_i(r_i − p)) — REINFORCE would need ≈ {need} evaluations for a 1% standard error.")


CASE = Case(
    name="forum_experts",
    title="A forum question's Gumbel-Softmax estimator for a mixture of experts",
    source=cite("forum"),
    description="Formula under test: the asker's gradient of the Jensen bound B(φ) = Σ_z p(z|x, φ) log p(y|z, x, θ), "
                "∇φ ≈ (1/n) Σ_i log p(y | z = onehot(β(x, g_i)), x, θ) ∇φ β(x, g_i) with "
                "β = softmax((log α + g)/λ), and the claim that Σ_z log p(y|z) ∇φ p(z|φ) 'cannot be approximated "
                "since it is not an expectation'. Both are wrong: the sum is E_z[log p(y|z) ∇φ log p(z|φ)], which "
                "REINFORCE estimates without bias, and the proposed estimator's exact mean misses ∇B by 70–82% at "
                "λ = 0.5–1 and tends to ½∇B as λ → 0 (the source findings list the measured numbers). "
                "Setting: a synthetic mixture of K = 3 experts (6 observations at one input, fixed expert likelihoods, "
                "softmax gate logits φ). Exact log p(y|x), the asker's Jensen bound and both exact φ-gradients "
                "(refgrad.exact, closed forms, finite differences); the maximiser of each; the θ-gradient; and the "
                "exact mean and variance of every reading of the proposed estimator against REINFORCE, REBAR and exact "
                "marginalisation, with Monte Carlo confirmation.",
    run=run,
)
