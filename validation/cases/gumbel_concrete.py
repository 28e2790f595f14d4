"""Case 3: Gumbel-max, the exponential-argmin form, and the Concrete densities (seeds 001 and 003)."""
import math

import numpy as np
from scipy import integrate, special, stats

import refgrad
from refgrad import random as rr
from refgrad import relaxations as rx

from ..core import Case

ALPHA = 1e-3


def _gumbel_max(ctx):
    n = ctx.size(20000, 200000)
    logits = np.array([[1.0, 0.0, -0.5, 2.0], [0.3, 0.3, -3.0, 1.2]])
    u = rr.uniform(ctx.rng("gumbel-max"), (n,) + logits.shape)
    idx_g = rr.categorical_gumbel_max(logits, u)
    idx_e = rr.categorical_exponential_argmin(logits, u)
    probs = special.softmax(logits, axis=1)
    rows = []
    for i in range(logits.shape[0]):
        counts = np.bincount(idx_g[:, i], minlength=logits.shape[1])
        p = stats.chisquare(counts, probs[i] * n).pvalue
        rows.append([i, np.round(probs[i], 4).tolist(), np.round(counts / n, 4).tolist(), p])
        ctx.check(f"Gumbel-max frequencies equal softmax (variable {i})", p > ALPHA,
                  f"chi-square p = {p:.3g} > α = {ALPHA} (n = {n}, seed-derived stream 'gumbel-max')")
    ctx.table("Gumbel-max: argmax_k(ℓ_k + G_k) against softmax(ℓ)", ["variable", "softmax", "frequency", "χ² p"], rows)
    same = bool(np.array_equal(idx_g, idx_e))
    ctx.check("argmin_k E_k/π_k (seed 003) picks the same index as Gumbel-max on the same uniforms", same,
              "E = −log u, G = −log E: the two forms are the same map of the uniforms")
    ctx.setting(n_gumbel_max=n)


def _concrete_normalisation(ctx):
    rows = []
    for logits, tau in [((0.5, -0.3), 0.5), ((1.0, 0.0), 2.0), ((0.3, -1.0, 0.5), 0.7), ((0.0, 0.0, 0.0), 1.0)]:
        logits = np.array(logits)
        K = len(logits)
        if K == 2:
            def dens(x1):
                return math.exp(rx.concrete_log_density(np.array([x1, 1 - x1]), logits, tau))
            total = integrate.quad(dens, 0, 1, limit=200)[0]
        else:
            def dens2(x2, x1):
                if x1 + x2 >= 1:
                    return 0.0
                return math.exp(rx.concrete_log_density(np.array([x1, x2, 1 - x1 - x2]), logits, tau))
            total = integrate.dblquad(dens2, 0, 1, 0, lambda x1: 1 - x1, epsabs=1e-9)[0]
        rows.append([K, logits.tolist(), tau, f"{total:.12f}"])
        ctx.check(f"Concrete density integrates to 1 (K={K}, τ={tau})", abs(total - 1) < 1e-6, f"∫ p = {total:.10f}")
    ctx.table("Normalisation of the Concrete density w.r.t. Lebesgue measure on the first K−1 coordinates",
              ["K", "logits", "τ", "∫ p"], rows)


def _seed001_tau1_claim(ctx):
    # Seed 001 ('Back to the Gumbel-max trick (2)') claims that at τ = 1 the density reduces to
    # (n−1)! Π_k softmax(μ)_k -- a constant on the simplex.  Compare with refgrad's density at two points.
    logits = np.array([0.3, -1.0, 0.5])
    claim = math.log(math.factorial(2)) + float(np.sum(np.log(special.softmax(logits))))
    xs = [np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])]
    ours = [float(rx.concrete_log_density(x, logits, 1.0)) for x in xs]
    rows = [[x.tolist(), math.exp(o), math.exp(claim)] for x, o in zip(xs, ours)]
    ctx.table("Seed 001's τ = 1 claim p(x) = (n−1)! Π softmax(μ)_k against the Concrete density",
              ["x", "refgrad density", "seed 001 claim"], rows,
              note="At τ = 1 the density is (K−1)! Π_k α_k x_k^{−2} / (Σ_i α_i / x_i)^K, which depends on x; "
                   "the seed's constant does not even integrate to 1 over the simplex (its integral is "
                   f"{math.exp(claim) / math.factorial(2):.4f}).")
    ctx.check("seed 001's τ = 1 simplification is wrong (density varies over the simplex; the claim is constant)",
              abs(ours[0] - ours[1]) > 0.1 and abs(math.exp(claim) / 2 - 1) > 0.01,
              f"log p at two points: {ours[0]:.4f}, {ours[1]:.4f}; claimed constant {claim:.4f}")


def _histogram(ctx):
    n = ctx.size(20000, 200000)
    rows = []
    for logits, tau in [((0.7, -0.2), 0.5), ((0.3, -1.0, 0.5), 0.6)]:
        logits = np.array(logits)
        K = len(logits)
        u = rr.uniform(ctx.rng(f"hist{K}"), (n, K))
        x = rx.concrete_sample(logits, tau, u)
        edges = np.linspace(0, 1, 11)
        counts = np.histogram(x[:, 0], bins=edges)[0]
        # expected mass of each bin of x_1 from the density (K = 2: direct; K = 3: integrate out x_2)
        if K == 2:
            def marg(x1):
                return math.exp(rx.concrete_log_density(np.array([x1, 1 - x1]), logits, tau))
        else:
            def marg(x1):
                def inner(x2):
                    return math.exp(rx.concrete_log_density(np.array([x1, x2, 1 - x1 - x2]), logits, tau))
                return integrate.quad(inner, 0, 1 - x1, limit=100)[0]
        expected = np.array([integrate.quad(marg, a, b, limit=100)[0] for a, b in zip(edges[:-1], edges[1:])])
        expected = expected / expected.sum() * n
        p = stats.chisquare(counts, expected).pvalue
        rows.append([K, tau, p])
        ctx.check(f"Concrete samples match the density (K={K}, histogram of x_1)", p > ALPHA,
                  f"chi-square p = {p:.3g} > α = {ALPHA}, n = {n}")
        if K == 3:
            def draw(fig, x=x, edges=edges, expected=expected):
                ax = fig.add_subplot(111)
                ax.hist(x[:, 0], bins=edges, alpha=0.6, label="samples")
                ax.step(edges[:-1], expected, where="post", label="density (integrated per bin)")
                ax.set_xlabel("x_1")
                ax.set_ylabel("count")
                ax.legend()
            ctx.figure("concrete-k3", f"Concrete K=3, τ={tau}: histogram of x_1 vs the density", draw)
    ctx.table("Concrete samples against the density", ["K", "τ", "χ² p"], rows)


def run(ctx):
    _gumbel_max(ctx)
    _concrete_normalisation(ctx)
    _seed001_tau1_claim(ctx)
    _histogram(ctx)


CASE = Case(
    name="gumbel_concrete",
    title="Gumbel-max and Concrete (seeds 001, 003)",
    source="Maddison, Mnih & Teh 2017 (Concrete), Jang, Gu & Poole 2017; seed 001 'Gumbel-max trick', "
           "seed 003 'Relaxations' (exponential-argmin form)",
    description="Gumbel-max argmax frequencies equal softmax; the exponential-argmin form of seed 003 selects the "
                "same index on the same uniforms; the Concrete density integrates to one and matches sample "
                "histograms; seed 001's τ = 1 simplification of the density is checked and found wrong.",
    run=run,
)
