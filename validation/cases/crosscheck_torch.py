"""Cross-check of PyTorch against refgrad's oracles: gumbel_softmax, torch.distributions, REINFORCE and REBAR.

Every statement about PyTorch is a *finding* (a row of the findings table): a bug in
PyTorch never fails this case.  The case's checks are *controls*: each verdict function
of :mod:`refgrad.crosscheck` used here must pass on refgrad's own sampler, density or
estimator on the same settings and fail on a deliberately wrong one (shifted logits, a
density off by a constant, a biased estimator, perturbed estimates), so a broken
verdict function fails the case.  Skipped, with the reason, when torch is not installed.

Grid: τ ∈ {1e-2, 1e-1, 1, 10}, logits up to ±50 and ±inf, float32 and float64 (a subset
per function, listed in the findings).  User reports reproduced or refuted, with
numbers: NaN from ``gumbel_softmax`` at τ = 0 and at large logits, NaN log-densities at
low temperature, and the output shape of ``ExpRelaxedCategorical.log_prob`` with batched
temperatures; for each failure a bisection finds the smallest input that shows it.
"""
import numpy as np

from refgrad import objectives as obj
from refgrad import random as rr
from refgrad import relaxations as rx
from refgrad.distributions import Bernoulli, Categorical

from ..core import Case
from ._findings import add_finding, bracket, call_foreign, control, key_numbers, listing, smallest_failing
from ._torch_edges import relaxed_edges

ALPHA = 1e-3
TAUS = (1e-2, 1e-1, 1.0, 10.0)
INSTALL = "pip install torch==2.13.0 (or the crosscheck extra: pip install -e '.[crosscheck]')"
BERNOULLI_LOGITS = np.array([0.3, -2.0, 5.0, 50.0, -50.0, np.inf, -np.inf])
RELAXED_LOGITS = np.array([0.3, -2.0, 5.0])
CAT_LOGITS = np.array([[1.0, 0.0, -0.5], [2.0, -1.0, 0.5]])
#: Bernoulli logits of the score-function estimators (REBAR on one bit: its exact moments
#: integrate over 2 noise coordinates per bit, 0.06 s for one bit, 13 s for two).
_BITS = {"reinforce": np.array([0.3, -1.0]), "rebar": np.array([0.3])}


def _setup(ctx):
    torch = ctx.require("torch", INSTALL)
    from refgrad import crosscheck as cc

    try:
        from refgrad.crosscheck import torch as adapter
    except ImportError:  # the adapter module is optional for this case
        adapter = None
    return torch, cc, adapter


def _tdtype(torch, name):
    return {"float32": torch.float32, "float64": torch.float64}[name]


def _np(t):
    """The tensor as an array of its own dtype (the verdict functions derive tolerances from it)."""
    return t.detach().cpu().numpy()


# ---------------------------------------------------------------------------- gumbel_softmax


def _gs_same_noise(ctx, torch, cc, adapter, version):
    """Soft (gumbel_softmax estimator) and hard (straight_through) gradients fed refgrad's uniforms."""
    import torch.nn.functional as F

    n = ctx.size(400, 2000)
    dist = Categorical(CAT_LOGITS)
    target = np.full(CAT_LOGITS.shape, 0.3)
    f = obj.SquaredDistance(target)
    for hard, name in ((False, "gumbel_softmax"), (True, "straight_through")):
        rows = []
        for dt in ("float64", "float32"):
            for tau in TAUS:
                u = rr.uniform(ctx.rng(f"gs-{name}-{dt}-{tau}"), (n,) + CAT_LOGITS.shape)
                lp = torch.tensor(np.broadcast_to(CAT_LOGITS, u.shape).copy(), dtype=_tdtype(torch, dt),
                                  requires_grad=True)
                with adapter.feed_uniforms(u):
                    y = F.gumbel_softmax(lp, tau=tau, hard=hard)
                loss = ((y - torch.tensor(target, dtype=lp.dtype)) ** 2).sum()
                (grad,) = torch.autograd.grad(loss, lp)
                v = cc.check_same_estimates(_np(grad), name, dist, f, {"u": u}, tau=tau)
                rows.append((f"{dt}, τ = {tau:g}", v))
                if dt == "float64" and tau == 1.0:
                    good = cc.check_same_estimates
                    ref = _reference_estimates(name, dist, f, u, tau)
                    control(ctx, f"check_same_estimates on refgrad's own {name} (τ = 1)",
                            lambda: good(ref, name, dist, f, {"u": u}, tau=tau),
                            lambda: good(ref * 1.01 + 1e-3, name, dist, f, {"u": u}, tau=tau))
        _grid_finding(ctx, version, f"nn.functional.gumbel_softmax(hard={hard}) backward",
                      f"autograd gradient of Σ(y − 0.3)² w.r.t. logits {CAT_LOGITS.tolist()} vs refgrad's {name} "
                      f"estimator on the same uniforms (feed_uniforms), n = {n}", rows)


def _reference_estimates(name, dist, f, u, tau):
    import refgrad

    return refgrad.estimate(name, dist, f, noise={"u": u}, tau=tau)


def _gs_sampler(ctx, torch, cc, version):
    import torch.nn.functional as F

    n = ctx.size(3000, 20000)
    rows = []
    for dt in ("float64", "float32"):
        for tau in TAUS:
            torch.manual_seed(ctx.seed * 1000 + int(tau * 100))
            lp = torch.tensor(np.broadcast_to(CAT_LOGITS, (n,) + CAT_LOGITS.shape).copy(), dtype=_tdtype(torch, dt))
            y = F.gumbel_softmax(lp, tau=tau)
            rows.append((f"{dt}, τ = {tau:g}", cc.check_relaxed_sampler(_np(y), CAT_LOGITS, tau, family="concrete",
                                                                        alpha=ALPHA)))
    _grid_finding(ctx, version, "nn.functional.gumbel_softmax (soft) samples",
                  f"Concrete law of the soft samples (argmax frequencies, Logistic log-ratios, marginal CDFs), "
                  f"logits {CAT_LOGITS.tolist()}, n = {n}", rows)
    u = rr.uniform(ctx.rng("gs-control"), (n,) + CAT_LOGITS.shape)
    control(ctx, "check_relaxed_sampler (concrete) on refgrad's concrete_sample, τ = 1e-1",
            lambda: cc.check_relaxed_sampler(rx.concrete_sample(CAT_LOGITS, 0.1, u), CAT_LOGITS, 0.1,
                                             family="concrete", alpha=ALPHA),
            lambda: cc.check_relaxed_sampler(rx.concrete_sample(CAT_LOGITS + [[0.4, 0, 0], [0, 0, 0]], 0.1, u),
                                             CAT_LOGITS, 0.1, family="concrete", alpha=ALPHA))
    x32 = rx.concrete_sample(CAT_LOGITS, 1e-2, u).astype(np.float32)
    control(ctx, "check_relaxed_sampler (concrete) on refgrad's concrete_sample rounded to float32, τ = 1e-2",
            lambda: cc.check_relaxed_sampler(x32, CAT_LOGITS, 1e-2, family="concrete", alpha=ALPHA),
            lambda: cc.check_relaxed_sampler(np.roll(x32, 1, axis=-1), CAT_LOGITS, 1e-2, family="concrete",
                                             alpha=ALPHA))


def _gs_nan_reports(ctx, torch, version):
    """User reports: NaN at τ = 0 and at large logits."""
    import torch.nn.functional as F

    n = 2000
    base = np.array([1.0, 0.0, -0.5])

    def nan_fraction(logits, tau, dt, hard=False):
        torch.manual_seed(7)
        lp = torch.tensor(np.broadcast_to(logits, (n, 3)).copy(), dtype=dt)
        y = F.gumbel_softmax(lp, tau=tau, hard=hard)
        return float(torch.isnan(y).any(-1).double().mean())

    for name in ("float32", "float64"):
        dt = _tdtype(torch, name)
        frac0 = nan_fraction(base, 0.0, dt)
        found = smallest_failing(lambda t: nan_fraction(base, t, dt) == 0.0, 1e-320 if name == "float64" else 1e-45,
                                 1.0)
        edge = "-" if found is None else f"NaN for τ ≤ {found[1]:.3g} (largest NaN-producing τ, bisection on log τ)"
        add_finding(ctx, "torch", version, "nn.functional.gumbel_softmax",
                    f"report 'NaN at τ = 0' ({name}, logits {base.tolist()})",
                    "reproduced" if frac0 > 0 else "refuted",
                    f"NaN rows at τ = 0: {frac0:.3g}; refgrad refuses τ = 0 (ValueError: τ must be > 0)",
                    "τ = 0" if frac0 > 0 else "-", nan_edge=edge)
        if found is not None:
            tau_fail, tau_pass = bracket(found[1], found[0])
            add_finding(ctx, "torch", version, "nn.functional.gumbel_softmax",
                        f"NaN at tiny τ > 0 ({name})", "FAIL (wrong)",
                        f"NaN fraction {nan_fraction(base, found[1], dt):.3g} at τ = {tau_fail}; "
                        f"refgrad's concrete_sample is finite for every τ > 0",
                        f"τ = {tau_fail} (largest failing τ; passes at {tau_pass})")
        rows = {L: nan_fraction(np.array([L, 0.0, -0.5]), 1.0, dt) for L in (50.0, 1e4, 1e30, np.inf)}
        low = smallest_failing(lambda L: nan_fraction(np.array([L, 0.0, -0.5]), 1e-2, dt) > 0, 1.0,
                               float(np.finfo(np.float32 if name == "float32" else np.float64).max))
        if low is not None:
            l_fail, l_pass = bracket(*low[:2])
            add_finding(ctx, "torch", version, "nn.functional.gumbel_softmax",
                        f"NaN at large finite logits, τ = 1e-2 ({name}, logits [L, 0, −0.5])", "FAIL (wrong)",
                        f"NaN from L = {l_fail} (finite at {l_pass}): (L + G)/τ overflows to inf",
                        f"logit {l_fail} at τ = 1e-2")
        big = smallest_failing(lambda L: nan_fraction(np.array([L, 0.0, -0.5]), 1.0, dt) > 0, 1.0,
                               float(np.finfo(np.float32 if name == "float32" else np.float64).max))
        smallest = "+inf" if rows[np.inf] > 0 and big is None else ("-" if big is None else f"logit {big[0]:.3g}")
        add_finding(ctx, "torch", version, "nn.functional.gumbel_softmax",
                    f"report 'NaN at large logits' ({name}, τ = 1, logits [L, 0, −0.5])",
                    "reproduced only at L = +inf" if big is None and rows[np.inf] > 0 else (
                        "reproduced" if big is not None else "refuted"),
                    ", ".join(f"NaN rows at L = {L:g}: {v:.3g}" for L, v in rows.items())
                    + f", hard=True at +inf: {nan_fraction(np.array([np.inf, 0.0, -0.5]), 1.0, dt, True):.3g}"
                    + "; refgrad: a +inf logit wins with probability 1",
                    smallest)


# ---------------------------------------------------------------------------- distributions


def _discrete(ctx, torch, cc, version):
    D = torch.distributions
    n = ctx.size(4000, 20000)
    for name in ("float64", "float32"):
        dt = _tdtype(torch, name)
        torch.manual_seed(11)
        b = D.Bernoulli(logits=torch.tensor(BERNOULLI_LOGITS, dtype=dt))
        v = cc.check_bernoulli_sampler(_np(b.sample((n,))), BERNOULLI_LOGITS, alpha=ALPHA)
        add_finding(ctx, "torch", version, "distributions.Bernoulli.sample",
                    f"exact pmf, logits {BERNOULLI_LOGITS.tolist()}, {name}", v, key_numbers(v))
        pts = np.array([[1.0] * len(BERNOULLI_LOGITS), [0.0] * len(BERNOULLI_LOGITS)])
        vals, err = call_foreign(lambda: _np(b.log_prob(torch.tensor(pts, dtype=dt))))
        if err:
            add_finding(ctx, "torch", version, "distributions.Bernoulli.log_prob", f"bits 0/1 ({name})", "raises", err)
            continue
        v = cc.check_log_prob(vals, pts, BERNOULLI_LOGITS, family="bernoulli")
        nan_at = [f"ℓ = {BERNOULLI_LOGITS[j]:g}, b = {int(pts[i, j])}" for i, j in zip(*np.nonzero(np.isnan(vals)))]
        add_finding(ctx, "torch", version, "distributions.Bernoulli.log_prob",
                    f"log σ(±ℓ) at b ∈ {{0, 1}}, logits {BERNOULLI_LOGITS.tolist()}, {name}", v,
                    key_numbers(v, NaN_values=len(nan_at)), "; ".join(nan_at[:3]) or "-")
    # Categorical: −inf, and several +inf
    logits = np.array([[-np.inf, 1.0, 0.0], [50.0, -50.0, 0.0]])
    torch.manual_seed(12)
    c = D.Categorical(logits=torch.tensor(logits))
    v = cc.check_categorical_sampler(_np(c.sample((n,))).astype(np.int64), logits, alpha=ALPHA)
    add_finding(ctx, "torch", version, "distributions.Categorical.sample", f"exact pmf, logits {logits.tolist()}",
                v, key_numbers(v))
    idx = np.array([[1, 0], [2, 1], [0, 2]])
    vals = _np(c.log_prob(torch.tensor(idx)))
    v = cc.check_log_prob(vals, idx, logits, family="categorical")
    add_finding(ctx, "torch", version, "distributions.Categorical.log_prob", f"indices, logits {logits.tolist()}",
                v, key_numbers(v))
    plus = np.array([[np.inf, np.inf, 0.0]])
    _, err = call_foreign(lambda: D.Categorical(logits=torch.tensor(plus)))
    probs, _ = call_foreign(lambda: _np(D.Categorical(logits=torch.tensor(plus), validate_args=False).probs))
    add_finding(ctx, "torch", version, "distributions.Categorical", "several +inf logits [inf, inf, 0]",
                "FAIL (convention)" if err else "agrees",
                f"constructor: {err or 'accepted'}; with validate_args=False probs = {probs}; refgrad: the +inf "
                "categories share the mass, probs [0.5, 0.5, 0]", "logits [inf, inf, 0]" if err else "-")
    u = rr.uniform(ctx.rng("cat-control"), (n,) + logits.shape)
    control(ctx, "check_categorical_sampler on refgrad's Gumbel-max (−inf and ±50 logits)",
            lambda: cc.check_categorical_sampler(rr.categorical_gumbel_max(logits, u), logits, alpha=ALPHA),
            lambda: cc.check_categorical_sampler(rr.categorical_gumbel_max(logits + [[0, 0.5, 0], [0, 0, 0]], u),
                                                 logits, alpha=ALPHA))
    ub = rr.uniform(ctx.rng("bern-control"), (n, len(BERNOULLI_LOGITS)))
    control(ctx, "check_bernoulli_sampler on refgrad's Bernoulli (±50, ±inf logits)",
            lambda: cc.check_bernoulli_sampler(Bernoulli(BERNOULLI_LOGITS).from_uniforms(ub), BERNOULLI_LOGITS,
                                               alpha=ALPHA),
            lambda: cc.check_bernoulli_sampler(Bernoulli(BERNOULLI_LOGITS + 0.2 * (np.arange(7) == 0)).from_uniforms(
                ub), BERNOULLI_LOGITS, alpha=ALPHA))


def _relaxed_dists(torch):
    from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli, RelaxedBernoulli
    from torch.distributions.relaxed_categorical import ExpRelaxedCategorical, RelaxedOneHotCategorical

    # (class, refgrad sampler family, space, log_prob family, logits)
    return [
        (RelaxedBernoulli, "binary_concrete", "probability", "binary_concrete", RELAXED_LOGITS),
        (LogitRelaxedBernoulli, "binary_concrete", "logit", "logit_binary_concrete", RELAXED_LOGITS),
        (RelaxedOneHotCategorical, "concrete", "probability", "concrete", CAT_LOGITS),
        (ExpRelaxedCategorical, "concrete", "log", "exp_concrete", CAT_LOGITS),
    ]


def _relaxed(ctx, torch, cc, version):
    n = ctx.size(2000, 10000)
    dtypes = ("float64", "float32")
    for cls, fam, space, lp_family, logits in _relaxed_dists(torch):
        samp_rows, lp_rows, nonfinite, dropped, refused = [], [], {}, {}, {}
        for name in dtypes:
            dt = _tdtype(torch, name)
            for tau in TAUS:
                torch.manual_seed(int(1000 * tau) + len(name))
                d = cls(torch.tensor(tau, dtype=dt), logits=torch.tensor(logits, dtype=dt), validate_args=False)
                x = d.rsample((n,))
                xs = _np(x)
                samp_rows.append((f"{name}, τ = {tau:g}", cc.check_relaxed_sampler(
                    xs, logits, tau, family=fam, space=space, alpha=ALPHA)))
                vals = _np(d.log_prob(x))
                nonfinite[(name, tau)] = float(np.mean(~np.isfinite(vals)))
                keep = _interior_rows(xs, lp_family)[:500]
                dropped[(name, tau)] = float(1 - keep.size / min(n, 500))
                try:
                    if keep.size:
                        lp_rows.append((f"{name}, τ = {tau:g}", cc.check_log_prob(
                            vals[keep], xs[keep], logits, tau, family=lp_family)))
                except ValueError as exc:  # refgrad refuses the points: reported, not hidden
                    refused[(name, tau)] = " ".join(str(exc).split())[:200]
        label = cls.__name__
        _grid_finding(ctx, version, f"distributions.{label}.rsample",
                      f"{fam} law in {space} space, logits {logits.tolist()}, n = {n}", samp_rows)
        _grid_finding(ctx, version, f"distributions.{label}.log_prob",
                      f"own rsample fed back into log_prob vs refgrad's {lp_family} log-density", lp_rows,
                      extra=_log_prob_extra(nonfinite, dropped, refused))
        if any(v > 0 for v in nonfinite.values()):
            _low_temperature_edge(ctx, torch, cls, logits, version)


def _log_prob_extra(nonfinite, dropped, refused):
    """The extra cell of a log_prob finding: non-finite fractions, boundary samples and refused points.

    Each is keyed by (dtype name, τ); an empty list reads 'none' (not an empty value).
    """
    return ("non-finite log_prob fraction: "
            + listing(f"{k[0]} τ={k[1]:g}: {v:.3g}" for k, v in nonfinite.items() if v > 0)
            + "; samples on the simplex boundary (rounded to 0 or 1, left out of the density check): "
            + listing(f"{k[0]} τ={k[1]:g}: {v:.3g}" for k, v in dropped.items() if v > 0)
            + ("; points refused by check_log_prob: " + "; ".join(
                f"{k[0]} τ={k[1]:g}: {v}" for k, v in refused.items()) if refused else ""))


def _interior_rows(xs, family):
    """Indices of the samples strictly inside the support (refgrad's densities refuse boundary points)."""
    if family == "binary_concrete":
        ok = (xs > 0) & (xs < 1)
    elif family == "concrete":
        ok = xs > 0
    else:
        ok = np.isfinite(xs)
    return np.flatnonzero(ok.reshape(len(xs), -1).all(axis=1))


def _low_temperature_edge(ctx, torch, cls, logits, version):
    """Report 'NaN log-densities at low temperature': the largest τ at which own samples give non-finite log_prob."""
    for name in ("float32", "float64"):
        dt = _tdtype(torch, name)

        def bad(tau):
            torch.manual_seed(5)
            d = cls(torch.tensor(tau, dtype=dt), logits=torch.tensor(logits, dtype=dt), validate_args=False)
            return bool((~torch.isfinite(d.log_prob(d.rsample((1000,))))).any())

        found = smallest_failing(lambda t: bad(1.0 / t), 1.0 / 10.0, 1.0 / 1e-3)
        if found is None:
            continue
        tau_fail, tau_pass = bracket(1 / found[0], 1 / found[1], 3)
        add_finding(ctx, "torch", version, f"distributions.{cls.__name__}.log_prob",
                    f"report 'NaN log-densities at low temperature' ({name}, own samples, n = 1000)", "reproduced",
                    f"non-finite log_prob appears for τ ≤ {tau_fail} (finite at τ = {tau_pass})",
                    f"τ = {tau_fail} (largest failing τ)")


def _batched_temperature(ctx, torch, cc, version):
    """Report: wrong output shape of ExpRelaxedCategorical.log_prob with batched temperatures."""
    from torch.distributions.relaxed_categorical import ExpRelaxedCategorical, RelaxedOneHotCategorical

    taus = np.array([0.1, 1.0, 10.0, 0.5])
    for cls, fam, _space in ((ExpRelaxedCategorical, "exp_concrete", "log"),
                            (RelaxedOneHotCategorical, "concrete", "probability")):
        def shape_of(batch, cls=cls):
            torch.manual_seed(3)
            t = torch.tensor(taus[:batch, None], dtype=torch.float64)
            d = cls(t, logits=torch.zeros(batch, 3, dtype=torch.float64), validate_args=False)
            x = d.rsample()
            return x, tuple(d.log_prob(x).shape)

        x, got = shape_of(3)
        v = cc.check_log_prob(_np(cls(torch.tensor(taus[:3, None]), logits=torch.zeros(3, 3, dtype=torch.float64),
                                      validate_args=False).log_prob(x)), _np(x), np.zeros((3, 3)), taus[:3],
                              family=fam)
        smallest = next((b for b in range(1, 5) if shape_of(b)[1] != (b,)), None)
        _, err1d = call_foreign(lambda: cls(torch.tensor(taus[:2]), logits=torch.zeros(2, 3),
                                            validate_args=False).log_prob(torch.zeros(2, 3)))
        add_finding(ctx, "torch", version, f"distributions.{cls.__name__}.log_prob",
                    "report 'wrong output shape with batched temperatures' (temperature shape (B, 1), logits (B, 3))",
                    f"reproduced: {verdict_or_shape(v)}" if got != (3,) else "refuted",
                    f"B = 3: shape {got}, expected (3,); temperature shape (B,): {err1d or 'accepted'}",
                    f"B = {smallest} (temperature shape ({smallest}, 1))" if smallest else "-")


def verdict_or_shape(v):
    return "FAIL (shape)" if v.diagnosis == "shape" else f"FAIL ({v.diagnosis})" if not v.passed else "agrees"


def _density_controls(ctx, cc):
    n = 300
    u = rr.uniform(ctx.rng("dens-control"), (n,) + CAT_LOGITS.shape)
    for fam, tau in (("concrete", 0.1), ("exp_concrete", 1.0)):
        sample = rx.concrete_sample if fam == "concrete" else rx.exp_concrete_sample
        dens = rx.concrete_log_density if fam == "concrete" else rx.exp_concrete_log_density
        x = sample(CAT_LOGITS, tau, u)
        good = dens(x, CAT_LOGITS, tau)
        control(ctx, f"check_log_prob ({fam}, τ = {tau:g}) on refgrad's own density",
                lambda: cc.check_log_prob(good, x, CAT_LOGITS, tau, family=fam),
                lambda: cc.check_log_prob(good + 0.5, x, CAT_LOGITS, tau, family=fam))


# ---------------------------------------------------------------------------- REINFORCE and REBAR


def _torch_estimates(torch, name, u, v, dt, eta=1.0, tau=0.5, own_noise=False):
    """REINFORCE / REBAR for Bernoulli(logits), f(b) = Σ(b − 0.45)², per-sample autograd gradients."""
    D = torch.distributions
    n, d = u.shape
    logits = _BITS[name]
    lp = torch.tensor(np.broadcast_to(logits, (n, d)).copy(), dtype=dt, requires_grad=True)
    t = torch.tensor(np.full(d, 0.45), dtype=dt)

    def f(x):
        return ((x - t) ** 2).sum(-1)

    q = D.Bernoulli(logits=lp)
    if name == "reinforce":
        b = q.sample() if own_noise else (torch.tensor(u, dtype=dt) > torch.sigmoid(-lp)).to(dt)
        surrogate = (f(b).detach() * q.log_prob(b).sum(-1)).sum()
    else:
        uu, vv = torch.tensor(u, dtype=dt), torch.tensor(v, dtype=dt)
        z = lp + torch.log(uu) - torch.log1p(-uu)
        b = (z > 0).to(dt)
        theta = torch.sigmoid(lp)
        vp = torch.where(b == 1, (1 - theta) + vv * theta, vv * (1 - theta))
        zt = lp + torch.log(vp) - torch.log1p(-vp)
        fz, fzt = f(torch.sigmoid(z / tau)), f(torch.sigmoid(zt / tau))
        surrogate = ((f(b) - eta * fzt).detach() * q.log_prob(b).sum(-1) + eta * (fz - fzt)).sum()
    (g,) = torch.autograd.grad(surrogate, lp)
    return _np(g)


def _score_estimators(ctx, torch, cc, version):
    import refgrad

    n = ctx.size(4000, 20000)
    for name, opts in (("reinforce", {}), ("rebar", {"eta": 1.0, "tau": 0.5})):
        dist, f = Bernoulli(_BITS[name]), obj.SquaredDistance(np.full(len(_BITS[name]), 0.45))
        layout = refgrad.ESTIMATORS[name].noise_layout(dist, **opts)
        for dt_name in ("float64", "float32"):
            dt = _tdtype(torch, dt_name)
            rng = ctx.rng(f"{name}-{dt_name}")
            noise = {nf.name: rr.uniform(rng, (n,) + nf.shape) for nf in layout}
            g = _torch_estimates(torch, name, noise["u"], noise.get("v"), dt, **opts)
            same = cc.check_same_estimates(g, name, dist, f, noise, **opts)
            add_finding(ctx, "torch", version, f"{name} written with torch autograd",
                        f"per-sample gradients vs refgrad's {name} on the same uniforms ({dt_name}, n = {n})", same,
                        key_numbers(same))
            torch.manual_seed(21)
            own = g if name == "rebar" else _torch_estimates(torch, name, noise["u"], None, dt, own_noise=True)
            v = cc.check_estimator(own, dist, f, True, name=name, alpha=ALPHA, **opts)
            add_finding(ctx, "torch", version, f"{name} written with torch autograd",
                        f"unbiasedness and variance vs refgrad.exact.moments ({dt_name}, n = {n})", v, key_numbers(v))
        ref = refgrad.estimate(name, dist, f, noise=noise, **opts)
        control(ctx, f"check_estimator on refgrad's own {name}",
                lambda: cc.check_estimator(ref, dist, f, True, name=name, alpha=ALPHA, **opts),
                lambda: cc.check_estimator(ref + 0.05, dist, f, True, name=name, alpha=ALPHA, **opts))
        control(ctx, f"check_same_estimates on refgrad's own {name}",
                lambda: cc.check_same_estimates(ref, name, dist, f, noise, **opts),
                lambda: cc.check_same_estimates(ref * (1 + 1e-3), name, dist, f, noise, **opts))
    ctx.setting(n_estimators=n)


# ---------------------------------------------------------------------------- assembly


def _grid_finding(ctx, version, function, checked, rows, extra=""):
    """One findings row for a grid of settings (ordered mildest first): agrees, or the first failing setting."""
    failing = [(label, v) for label, v in rows if not v.passed]
    pvals = [v.pvalue for _, v in rows if v.pvalue is not None]
    numbers = f"{len(rows) - len(failing)}/{len(rows)} settings agree"
    if pvals:
        numbers += f", min p = {min(pvals):.3g} (α = {ALPHA:g} each)"
    if failing:
        label, v = failing[0]
        numbers += f"; first failure ({label}): {key_numbers(v)}"
        diags = sorted({v.diagnosis for _, v in failing})
        verdict = f"FAIL ({', '.join(diags)}) at {len(failing)}/{len(rows)}"
    else:
        verdict = "agrees" if rows else "not checked"
    if extra:
        numbers += "; " + extra
    add_finding(ctx, "torch", version, function, checked, verdict, numbers, failing[0][0] if failing else "-",
                settings=[label for label, _ in rows], verdicts=[v.to_dict() for _, v in rows])


def run(ctx):
    torch, cc, adapter = _setup(ctx)
    if adapter is None or not hasattr(adapter, "feed_uniforms"):
        ctx.skip("refgrad.crosscheck.torch (the torch adapter) is not available")
    version = torch.__version__
    torch.set_num_threads(1)
    ctx.setting(torch=version, alpha=ALPHA, taus=list(TAUS))
    _gs_nan_reports(ctx, torch, version)
    _batched_temperature(ctx, torch, cc, version)
    _discrete(ctx, torch, cc, version)
    _gs_sampler(ctx, torch, cc, version)
    _gs_same_noise(ctx, torch, cc, adapter, version)
    _relaxed(ctx, torch, cc, version)
    _density_controls(ctx, cc)
    _score_estimators(ctx, torch, cc, version)
    relaxed_edges(ctx, torch, cc, version, ALPHA)


CASE = Case(
    name="crosscheck_torch",
    title="Cross-check: PyTorch",
    source="refgrad.crosscheck against torch.nn.functional.gumbel_softmax and torch.distributions; REINFORCE "
           "(Williams 1992) and REBAR (Tucker et al. 2017) written with torch autograd",
    description="PyTorch's samplers, log-densities and autograd gradient estimators against refgrad's exact laws, "
                "float64 densities and exact moments, at τ ∈ {1e-2, 1e-1, 1, 10}, logits up to ±50 and ±inf, "
                "float32 and float64. The findings are facts about the installed PyTorch and never fail this case; "
                "the checks are controls that each verdict function passes on refgrad's own sampler, density or "
                "estimator and fails on a deliberately wrong one.",
    run=run,
)
