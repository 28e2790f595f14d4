"""Findings of the PyTorch cross-check at the edges of the relaxed distributions.

* the clamp of ``RelaxedBernoulli`` samples to ``[finfo.tiny, 1 − finfo.eps]``, measured
  against the exact mass the Binary Concrete law puts beyond those points
  (:func:`refgrad.relaxations.binary_concrete_cdf`);
* the accuracy of ``RelaxedBernoulli.log_prob`` near 0 and 1 (``SigmoidTransform``'s
  log-Jacobian is ``−softplus(−x) − softplus(x)``, and ``softplus`` is linear beyond its
  threshold 20);
* the range of ``LogitRelaxedBernoulli.log_prob`` (``log1p(exp(diff))`` overflows);
* batched temperatures in ``rsample``.
"""
import numpy as np

from refgrad import relaxations

from ._findings import add_finding, key_numbers, smallest_failing

__all__ = ["relaxed_edges"]

LOGITS = np.array([0.3, -2.0, 5.0])


def _tdtype(torch, name):
    return {"float32": torch.float32, "float64": torch.float64}[name]


def _clamp_atoms(ctx, torch, version, n):
    """Fractions of RelaxedBernoulli samples exactly at tiny and 1 − eps against the exact mass beyond them."""
    for name in ("float32", "float64"):
        dt = _tdtype(torch, name)
        fi = np.finfo(np.float32 if name == "float32" else np.float64)
        tau = 0.01
        torch.manual_seed(3)
        d = torch.distributions.RelaxedBernoulli(torch.tensor(tau, dtype=dt), logits=torch.tensor(LOGITS, dtype=dt),
                                                 validate_args=False)
        x = d.rsample((n,)).numpy()
        low, high = float(fi.tiny), float(1.0 - fi.eps)
        at_low, at_high = (x == np.array(low, dtype=x.dtype)).mean(axis=0), (x == np.array(high, dtype=x.dtype)).mean(0)
        below = relaxations.binary_concrete_cdf(np.full(3, low), LOGITS, tau)
        above = relaxations.binary_concrete_cdf(np.full(3, high), LOGITS, tau, upper=True)
        clamped = bool((at_low > 0).any() or (at_high > 0).any())
        add_finding(
            ctx, "torch", version, "distributions.RelaxedBernoulli.rsample",
            f"samples clamped to [finfo.tiny, 1 − finfo.eps] ({name}, τ = {tau:g}, logits {LOGITS.tolist()}, n = {n})",
            "FAIL (convention)" if clamped else "agrees",
            "fraction at tiny: " + ", ".join(f"{v:.3g}" for v in at_low)
            + " (exact P(X ≤ tiny): " + ", ".join(f"{v:.3g}" for v in below) + "); fraction at 1 − eps: "
            + ", ".join(f"{v:.3g}" for v in at_high) + " (exact P(X ≥ 1 − eps): "
            + ", ".join(f"{v:.3g}" for v in above) + "). The clamp puts the whole tail mass on one float: "
            "an atom the Binary Concrete law does not have (the rounded law would put it on 0 or 1)",
            f"every input: the exact mass beyond 1 − eps, σ(ℓ − τ·logit(1 − eps)), is > 0 ({above[0]:.3g} at "
            f"τ = {tau:g}, ℓ = {LOGITS[0]:g})")


def _softplus_threshold(ctx, torch, cc, version):
    """RelaxedBernoulli.log_prob (float64) loses min(x, 1 − x) below σ(−20) = 2.06e-9."""
    tau, ell = 0.5, 0.3
    d = torch.distributions.RelaxedBernoulli(torch.tensor(tau, dtype=torch.float64),
                                             logits=torch.tensor(ell, dtype=torch.float64), validate_args=False)

    def verdict(x):
        pts = np.array([x, 1.0 - x])
        vals = d.log_prob(torch.tensor(pts, dtype=torch.float64)).numpy()
        return cc.check_log_prob(vals, pts, np.full(2, ell), tau, family="binary_concrete"), vals, pts

    grid = [1e-12, 1e-10, 1e-9, 2e-9, 2.1e-9, 1e-8, 1e-6]
    errors = []
    for x in grid:
        v, vals, pts = verdict(x)
        ref = relaxations.binary_concrete_log_density(pts, np.full(2, ell), tau)
        errors.append((x, float(vals[0] - ref[0]), v.passed))
    edge = smallest_failing(lambda x: not verdict(x)[0].passed, 1e-6, 1e-12)
    pts = np.array([1e-12, 1e-10, 1e-9, 1e-6, 0.1, 0.3, 0.5, 0.9, 1 - 1e-6, 1 - 1e-9, 1 - 1e-10])
    vals = d.log_prob(torch.tensor(pts, dtype=torch.float64)).numpy()
    v = cc.check_log_prob(vals, pts, np.full(pts.size, ell), tau, family="binary_concrete")
    add_finding(
        ctx, "torch", version, "distributions.RelaxedBernoulli.log_prob",
        f"accuracy near 0 and 1 (float64, τ = {tau:g}, ℓ = {ell:g}; x and 1 − x)",
        v,
        "error (torch − refgrad) at x = " + ", ".join(f"{x:g}: {e:.3g}" for x, e, _ in errors)
        + "; the error is −x below σ(−20) = 2.06e-9: SigmoidTransform's log|J| = −softplus(−t) − softplus(t) "
          "and softplus(t) returns t beyond its threshold 20, dropping log1p(e^−t)",
        "-" if edge is None else f"x ≤ {edge[0]:.6g} (or 1 − x ≤ that): σ(−20) = 2.06115e-09")


def _logit_overflow(ctx, torch, cc, version):
    """LogitRelaxedBernoulli.log_prob computes log1p(exp(ℓ − τy)): −inf once exp overflows."""
    tau, ell = 1.0, 0.3
    for name in ("float32", "float64"):
        dt = _tdtype(torch, name)
        d = torch.distributions.relaxed_bernoulli.LogitRelaxedBernoulli(torch.tensor(tau, dtype=dt),
                                                                        logits=torch.tensor(ell, dtype=dt),
                                                                        validate_args=False)

        def fails(z, d=d, dt=dt):
            y = np.array([-z], dtype=np.float64)  # diff = ℓ − τ y = ℓ + z
            vals = d.log_prob(torch.tensor(y, dtype=dt)).numpy()
            return not cc.check_log_prob(vals, y.astype(vals.dtype), np.array([ell]), tau,
                                         family="logit_binary_concrete").passed

        edge = smallest_failing(fails, 1.0, 1e4, log=True)
        y = np.array([-1000.0])
        val = float(d.log_prob(torch.tensor(y, dtype=dt)).numpy()[0])
        diff = ell + 1000.0  # ℓ − τ y at y = −1000
        ref = float(np.log(tau) - diff - 2 * np.log1p(np.exp(-diff)))  # log τ + diff − 2 softplus(diff)
        add_finding(
            ctx, "torch", version, "distributions.LogitRelaxedBernoulli.log_prob",
            f"range of the log-density in logit space ({name}, τ = {tau:g}, ℓ = {ell:g}, points y = −z)",
            "agrees" if edge is None else "FAIL (wrong)",
            f"at y = −1000: torch {val:.6g}, exact {ref:.6g}; log_prob computes log1p(exp(ℓ − τy)), which "
            "overflows to inf where the exact value is ℓ − τy − 2 log1p(e^−(ℓ−τy))",
            "-" if edge is None else f"ℓ − τy ≥ {ell + edge[0]:.6g} (log of the largest {name})")


def _batched_rsample(ctx, torch, cc, version, n, alpha):
    """rsample with one temperature per coordinate, against check_relaxed_sampler with array τ."""
    taus = np.array([0.1, 1.0, 10.0])
    rows = []
    for name in ("float64", "float32"):
        dt = _tdtype(torch, name)
        torch.manual_seed(11)
        d = torch.distributions.RelaxedBernoulli(torch.tensor(taus, dtype=dt), logits=torch.tensor(LOGITS, dtype=dt),
                                                 validate_args=False)
        v = cc.check_relaxed_sampler(d.rsample((n,)).numpy(), LOGITS, taus, family="binary_concrete", alpha=alpha)
        rows.append((f"RelaxedBernoulli {name}, τ = {taus.tolist()}", v))
        cat = np.array([[1.0, 0.0, -0.5], [2.0, -1.0, 0.5]])
        tcat = np.array([0.1, 1.0])
        d = torch.distributions.RelaxedOneHotCategorical(torch.tensor(tcat[:, None], dtype=dt),
                                                         logits=torch.tensor(cat, dtype=dt), validate_args=False)
        v = cc.check_relaxed_sampler(d.rsample((n,)).numpy(), cat, tcat, family="concrete", alpha=alpha)
        rows.append((f"RelaxedOneHotCategorical {name}, τ = {tcat.tolist()} (shape (2, 1))", v))
    for label, v in rows:
        add_finding(ctx, "torch", version, "distributions." + label.split()[0] + ".rsample",
                    f"batched temperatures: {label}, n = {n}", v, key_numbers(v),
                    "-" if v.passed else label)


def relaxed_edges(ctx, torch, cc, version, alpha):
    """All the edge findings above."""
    n = ctx.size(2000, 10000)
    _clamp_atoms(ctx, torch, version, n)
    _softplus_threshold(ctx, torch, cc, version)
    _logit_overflow(ctx, torch, cc, version)
    _batched_rsample(ctx, torch, cc, version, n, alpha)
