"""Cross-check of JAX against refgrad's oracles: jax.random.gumbel, jax.random.categorical, a Gumbel-softmax.

The Gumbel-softmax is written the usual way, ``jax.nn.softmax((ℓ + G) / τ)``, with
per-sample gradients from ``jax.vmap(jax.grad(...))``, and fed refgrad's uniforms
(``G = −log(−log u)``) so that it can be compared with refgrad's ``gumbel_softmax``
estimator sample by sample.  As in :mod:`validation.cases.crosscheck_torch`, every
statement about JAX is a finding that never fails the case; the checks are controls
of the verdict functions on refgrad's own samplers and estimators (pass) and on
deliberately wrong ones (fail).  Skipped, with the reason, when jax is not installed.
"""
import numpy as np

import refgrad
from refgrad import objectives as obj
from refgrad import random as rr
from refgrad.distributions import Categorical

from ..core import Case
from ._findings import add_finding, bracket, control, key_numbers, smallest_failing

ALPHA = 1e-3
TAUS = (1e-2, 1e-1, 1.0, 10.0)
INSTALL = "pip install jax (or the crosscheck extra: pip install -e '.[crosscheck]')"
GUMBEL_LOGITS = np.array([[1.0, 0.0, -0.5], [-np.inf, 50.0, 49.0], [-50.0, 0.0, 2.0]])
CATEGORICAL_LOGITS = np.array([[-np.inf, 1.0, 0.0], [np.inf, np.inf, 0.0], [np.inf, 0.0, -np.inf],
                               [50.0, -50.0, 0.0]])
GS_LOGITS = np.array([[1.0, 0.0, -0.5], [50.0, -50.0, 0.0]])


def _gumbel(ctx, jax, jnp, cc, adapter, version):
    n = ctx.size(4000, 20000)
    shape = (n,) + GUMBEL_LOGITS.shape
    for name in ("float64", "float32"):
        dt = getattr(jnp, name)
        key = jax.random.key(100 + ctx.seed)
        g = np.asarray(jax.random.gumbel(key, shape, dt), dtype=np.float64)
        idx = np.argmax(GUMBEL_LOGITS[None] + g, axis=-1)
        v = cc.check_categorical_sampler(idx, GUMBEL_LOGITS, alpha=ALPHA)
        add_finding(ctx, "jax", version, "random.gumbel", f"Gumbel-max argmax(ℓ + G) vs softmax(ℓ), logits "
                    f"{GUMBEL_LOGITS.tolist()}, {name}, n = {n}", v, key_numbers(v))
        # the noise conversion: G = −log(−log u) with the uniforms jax used (refgrad.crosscheck.jax)
        u = adapter.uniforms_from_key(key, shape, dt, kind="gumbel")
        with np.errstate(divide="ignore"):
            diff = float(np.max(np.abs(rr.gumbel(np.clip(u, 1e-300, 1 - 2 ** -53)) - g)))
        top = float(-np.log(-np.log1p(-2.0 ** -(24 if name == "float32" else 53))))
        add_finding(ctx, "jax", version, "random.gumbel", f"G = −log(−log u) with u = random.uniform(same key, "
                    f"minval=tiny) ({name})", "agrees" if diff < 1e-4 * (1 if name == "float32" else 1e-8)
                    else "FAIL (convention)",
                    f"max |G − (−log(−log u))| = {diff:.3g}; largest possible G = {top:.4g} "
                    f"(P(G > that) = {-np.expm1(-np.exp(-top)):.2g}), largest drawn {g.max():.4g}")


def _categorical(ctx, jax, jnp, cc, adapter, version):
    n = ctx.size(4000, 20000)
    for name in ("float64", "float32"):
        dt = getattr(jnp, name)
        key = jax.random.key(200 + ctx.seed)
        idx = np.asarray(jax.random.categorical(key, jnp.asarray(CATEGORICAL_LOGITS, dt), axis=-1,
                                                shape=(n, CATEGORICAL_LOGITS.shape[0])))
        v = cc.check_categorical_sampler(idx, CATEGORICAL_LOGITS, alpha=ALPHA)
        freq = np.bincount(idx[:, 1], minlength=3) / n
        # the same draws from refgrad, fed the uniforms jax used (rows with finite logits only)
        u = adapter.uniforms_from_key(key, (n,) + CATEGORICAL_LOGITS.shape, dt, kind="categorical")
        finite = np.isfinite(CATEGORICAL_LOGITS).all(axis=-1) | ~np.isposinf(CATEGORICAL_LOGITS).any(axis=-1)
        ours = rr.categorical_gumbel_max(CATEGORICAL_LOGITS, u)
        same = float(np.mean(ours[:, finite] == idx[:, finite]))
        add_finding(ctx, "jax", version, "random.categorical",
                    f"same draws from refgrad fed jax's own uniforms (uniforms_from_key), rows without +inf, {name}, "
                    f"n = {n}", "agrees" if same >= (1.0 if name == "float64" else 0.999) else "FAIL (wrong)",
                    f"fraction of identical draws = {same:.6g} (float32 rounding may break near-ties differently)")
        add_finding(ctx, "jax", version, "random.categorical",
                    f"exact pmf, logits {CATEGORICAL_LOGITS.tolist()} (−inf, two +inf, ±50), {name}, n = {n}", v,
                    key_numbers(v, row_1_frequencies=np.round(freq, 4).tolist()),
                    "logits [inf, inf, 0] (two +inf)" if not v.passed else "-")
    u = rr.uniform(ctx.rng("cat-control"), (n,) + CATEGORICAL_LOGITS.shape)
    shifted = CATEGORICAL_LOGITS.copy()
    shifted[0, 1] += 0.5
    control(ctx, "check_categorical_sampler on refgrad's Gumbel-max (−inf, several +inf, ±50)",
            lambda: cc.check_categorical_sampler(rr.categorical_gumbel_max(CATEGORICAL_LOGITS, u),
                                                 CATEGORICAL_LOGITS, alpha=ALPHA),
            lambda: cc.check_categorical_sampler(rr.categorical_gumbel_max(shifted, u), CATEGORICAL_LOGITS,
                                                 alpha=ALPHA))


_COMPILED = {}


def _gs_grads(jax, jnp, logits, u, tau, dt):
    """Per-sample ∂/∂ℓ Σ(softmax((ℓ + G)/τ) − 0.3)² with G = −log(−log u), by jax.vmap(jax.grad) (jitted once)."""
    if "gs" not in _COMPILED:
        def loss(ell, uu, t):
            g = -jnp.log(-jnp.log(uu))
            y = jax.nn.softmax((ell + g) / t, axis=-1)
            return jnp.sum((y - 0.3) ** 2)

        _COMPILED["gs"] = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, None)))
    grads = _COMPILED["gs"](jnp.asarray(logits, dt), jnp.asarray(u, dt), jnp.asarray(tau, dt))
    return np.asarray(grads)  # its own dtype: the verdict derives its tolerance from it


def _gumbel_softmax(ctx, jax, jnp, cc, version):
    n = ctx.size(400, 2000)
    dist = Categorical(GS_LOGITS)
    f = obj.SquaredDistance(np.full(GS_LOGITS.shape, 0.3))
    rows = []
    for name in ("float64", "float32"):
        for tau in TAUS:
            u = rr.uniform(ctx.rng(f"gs-{name}-{tau}"), (n,) + GS_LOGITS.shape)
            g = _gs_grads(jax, jnp, GS_LOGITS, u, tau, getattr(jnp, name))
            rows.append((f"{name}, τ = {tau:g}", cc.check_same_estimates(g, "gumbel_softmax", dist, f, {"u": u},
                                                                          tau=tau)))
            if name == "float64" and tau == 1.0:
                ref = refgrad.estimate("gumbel_softmax", dist, f, noise={"u": u}, tau=tau)
                control(ctx, "check_same_estimates on refgrad's own gumbel_softmax (τ = 1)",
                        lambda: cc.check_same_estimates(ref, "gumbel_softmax", dist, f, {"u": u}, tau=tau),
                        lambda: cc.check_same_estimates(ref * 1.01 + 1e-3, "gumbel_softmax", dist, f, {"u": u},
                                                        tau=tau))
    failing = [(lab, v) for lab, v in rows if not v.passed]
    add_finding(ctx, "jax", version, "nn.softmax + grad (Gumbel-softmax written by hand)",
                f"per-sample gradients vs refgrad's gumbel_softmax on the same uniforms, logits "
                f"{GS_LOGITS.tolist()}, n = {n}",
                "agrees" if not failing else f"FAIL ({failing[0][1].diagnosis}) at {len(failing)}/{len(rows)}",
                f"{len(rows) - len(failing)}/{len(rows)} settings agree"
                + (f"; first failure ({failing[0][0]}): {key_numbers(failing[0][1])}" if failing else ""),
                failing[0][0] if failing else "-", settings=[lab for lab, _ in rows],
                verdicts=[v.to_dict() for _, v in rows])
    _gs_extremes(ctx, jax, jnp, version)


def _gs_extremes(ctx, jax, jnp, version):
    """+inf logits, and the smallest finite logit at which the hand-written Gumbel-softmax gives NaN."""
    u = rr.uniform(ctx.rng("gs-extreme"), (200, 3))
    for name in ("float32", "float64"):
        dt = getattr(jnp, name)

        def nan_rows(L, tau):
            g = _gs_grads(jax, jnp, np.array([L, 0.0, -0.5]), u, tau, dt)
            return float(np.mean(np.isnan(g).any(-1)))

        at_inf = nan_rows(np.inf, 1.0)
        big = smallest_failing(lambda L: nan_rows(L, 1e-2) > 0, 1.0, float(np.finfo(getattr(np, name)).max))
        add_finding(ctx, "jax", version, "nn.softmax + grad (Gumbel-softmax written by hand)",
                    f"logits [L, 0, −0.5] with L = +inf (τ = 1) and large finite L (τ = 1e-2), {name}",
                    "FAIL (wrong)" if at_inf > 0 or big else "agrees",
                    f"NaN gradient rows at L = +inf: {at_inf:.3g}"
                    + ("; at τ = 1e-2 NaN from L = {} (finite up to {})".format(*bracket(*big[:2])) if big else
                       "; finite for every finite L at τ = 1e-2")
                    + "; refgrad: gradient 0 (a +inf logit wins whatever the noise)",
                    (f"logit {big[0]:.4g} at τ = 1e-2" if big else "logit +inf"))


def run(ctx):
    jax = ctx.require("jax", INSTALL)
    import jax.numpy as jnp

    from refgrad import crosscheck as cc
    from refgrad.crosscheck import jax as adapter

    was_x64 = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)  # float64 on request; float32 still asked for explicitly
    try:
        version = jax.__version__
        ctx.setting(jax=version, alpha=ALPHA, taus=list(TAUS))
        _gumbel(ctx, jax, jnp, cc, adapter, version)
        _categorical(ctx, jax, jnp, cc, adapter, version)
        _gumbel_softmax(ctx, jax, jnp, cc, version)
    finally:
        jax.config.update("jax_enable_x64", was_x64)


CASE = Case(
    name="crosscheck_jax",
    title="Cross-check: JAX",
    source="refgrad.crosscheck against jax.random.gumbel, jax.random.categorical and a Gumbel-softmax written "
           "with jax.nn.softmax and jax.grad (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017)",
    description="JAX's Gumbel and categorical samplers against the exact pmf (−inf and several +inf logits), the "
                "conversion between JAX's uniforms and its Gumbel noise, and a hand-written Gumbel-softmax's "
                "per-sample gradients against refgrad's estimator on the same uniforms, at τ ∈ {1e-2, 1e-1, 1, 10}, "
                "logits up to ±50 and ±inf, float32 and float64. Findings about JAX never fail this case; the checks "
                "are controls of the verdict functions.",
    run=run,
)
