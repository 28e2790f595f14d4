"""Sweep table, part 3: legal input at the extremes, checked against mpmath (50 digits) or for finiteness.

Logits up to ±700, temperatures from 0.01 to 100, uniforms next to 0 and 1.  The
accuracy tests proper live elsewhere; here the property is the sweep's: a finite
result equal to the truth (relative 1e-11 where the truth is a normal double).
"""
import itertools

import mpmath
import numpy as np
from hypothesis import strategies as st

import refgrad
from objective_kinds import objective_for
from refgrad.objectives import SquaredDistance, Table
from sweep_cases_core import Lazy
from sweep_framework import Case

F = SquaredDistance(0.45)
SEED = 20261201
N = 3
#: Extreme but legal logits: moderate, large, the float64 saturation points of σ, and ±700.
EXTREME = st.one_of(st.floats(-700.0, 700.0),
                    st.sampled_from([10.0, -10.0, 30.0, -30.0, 37.0, -37.0, 40.0, -40.0, 700.0, -700.0]))
TINY = 2.0**-1022  # values below are subnormal: compared absolutely
RTOL = 1e-11


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-mpmath.mpf(float(x))))


def _mp_bernoulli_exact(logits, values):
    """E[f] and ∇E[f] for Bernoulli logits at 100 digits, without cancellation:
    ``∂E/∂ℓ_i = σ(ℓ_i) σ(−ℓ_i) Σ_{b_{-i}} q(b_{-i}) (f(b_i = 1) − f(b_i = 0))`` (the differences of two doubles
    are exact in mpmath)."""
    d = len(logits)
    with mpmath.workdps(100):
        p1 = [_mp_sigmoid(x) for x in logits]
        p0 = [_mp_sigmoid(-x) for x in logits]
        v = {b: mpmath.mpf(float(values[b])) for b in itertools.product((0, 1), repeat=d)}
        e = mpmath.fsum(mpmath.fprod(p1[i] if bi else p0[i] for i, bi in enumerate(b)) * v[b] for b in v)
        g = []
        for i in range(d):
            terms = []
            for rest in itertools.product((0, 1), repeat=d - 1):
                one, zero = rest[:i] + (1,) + rest[i:], rest[:i] + (0,) + rest[i:]
                q = mpmath.fprod(p1[j] if bj else p0[j] for j, bj in enumerate(one) if j != i)
                terms.append(q * (v[one] - v[zero]))
            g.append(p1[i] * p0[i] * mpmath.fsum(terms))
        return float(e), np.array([float(x) for x in g])


def _mp_bernoulli_log_prob_score(logits, bits):
    with mpmath.workdps(50):
        lp, sc = [], []
        for row in bits:
            lp.append(float(mpmath.fsum(-mpmath.log1p(mpmath.exp(-mpmath.mpf(float(x)) if bi else mpmath.mpf(float(x))))
                                        for x, bi in zip(logits, row))))
            sc.append([float(_mp_sigmoid(-x)) if bi else -float(_mp_sigmoid(x)) for x, bi in zip(logits, row)])
        return np.array(lp), np.array(sc)


def _mp_categorical_log_prob_score(logits, onehot):
    with mpmath.workdps(100):
        lp, sc = [], []
        for row in onehot:
            total = mpmath.mpf(0)
            srow = []
            for ell, b in zip(logits, row):
                ell = [mpmath.mpf(float(x)) for x in ell]
                k = int(np.argmax(b))
                top = int(np.argmax([float(x) for x in ell]))
                m = ell[top]
                others = mpmath.fsum(mpmath.exp(x - m) for j, x in enumerate(ell) if j != top)
                z = 1 + others
                total += ell[k] - m - mpmath.log1p(others)  # log z without rounding 1 + tiny
                probs = [mpmath.exp(x - m) / z for x in ell]
                rest = mpmath.fsum(p for j, p in enumerate(probs) if j != k)  # 1 − p_k without cancellation
                srow.append([float(rest) if j == k else -float(p) for j, p in enumerate(probs)])
            lp.append(float(total))
            sc.append(srow)
        return np.array(lp), np.array(sc)


def _mp_gt_log_prob_score(mu, bits):
    with mpmath.workdps(100):
        lp, sc = [], []
        for row in bits:
            terms, srow = [], []
            for m, bi in zip(mu, row):
                m = mpmath.mpf(float(m))
                arg = m if bi else -m
                cdf = mpmath.ncdf(arg)
                # log Φ(x) = log1p(−Φ(−x)) for x > 0: Φ(37) rounds to 1 even at 100 digits
                terms.append(mpmath.log1p(-mpmath.ncdf(-arg)) if arg > 0 else mpmath.log(cdf))
                ratio = mpmath.npdf(m) / cdf
                srow.append(float(ratio if bi else -ratio))
            lp.append(float(mpmath.fsum(terms)))
            sc.append(srow)
        return np.array(lp), np.array(sc)


def _mp_log_ncdf(x):
    """log Φ(x), without rounding Φ to 1 for large x."""
    return mpmath.log1p(-mpmath.ncdf(-x)) if x > 0 else mpmath.log(mpmath.ncdf(x))


def _mp_mass_to_threshold(m, s, b):
    """P(Z between 0 and ±e^s), Z ~ N(m, 1), as a difference of CDFs at enough digits to resolve it."""
    z = mpmath.exp(s)
    with mpmath.workdps(40 + int(max(0, -s / mpmath.log(10)))):
        # the form whose two terms are at most 1/2 (no rounding of a CDF to 1)
        if b == 1:
            return +(mpmath.ncdf(z - m) - mpmath.ncdf(-m)) if m >= 0 else +(mpmath.ncdf(m) - mpmath.ncdf(m - z))
        return +(mpmath.ncdf(-m) - mpmath.ncdf(-z - m)) if m >= 0 else +(mpmath.ncdf(m + z) - mpmath.ncdf(m))


def _mp_conditional_normal(mu, bits, v):
    """z̃ given b: the root of the truncated-normal CDF in log form, in the variable s = log|z̃|, by bisection
    at 40 digits.  The probability between z̃ and the threshold is a difference of CDFs evaluated with as many
    extra digits as z̃ is small, so values down to 1e-300 next to the threshold keep their relative accuracy."""
    out = np.empty(np.shape(bits))
    with mpmath.workdps(40):
        for (i, j), b in np.ndenumerate(np.asarray(bits)):
            m, vv = mpmath.mpf(float(mu[j])), mpmath.mpf(float(v[i, j]))
            near = vv <= 0.5 if b == 1 else vv > 0.5  # is z~ on the threshold's side of the conditional median?
            r = vv if b == 1 else 1 - vv  # mass between the threshold and z~, in units of P(b)
            if near:
                t = mpmath.log(r) + _mp_log_ncdf(m if b == 1 else -m)
                fn = (lambda s, m=m, t=t, b=b: mpmath.log(_mp_mass_to_threshold(m, s, b)) - t)
            elif b == 1:  # P(Z >= z~) = (1 - v) Φ(μ): decreasing in s, negate
                t = mpmath.log(1 - vv) + _mp_log_ncdf(m)
                fn = (lambda s, m=m, t=t: t - _mp_log_ncdf(m - mpmath.exp(s)))
            else:  # P(Z <= z~) = v Φ(−μ), z~ = −e^s: decreasing in s, negate
                t = mpmath.log(vv) + _mp_log_ncdf(-m)
                fn = (lambda s, m=m, t=t: t - _mp_log_ncdf(-mpmath.exp(s) - m))
            root = _bisect(fn, mpmath.log(mpmath.mpf(10) ** -320), mpmath.log(80 + abs(m)))
            out[i, j] = (1 if b == 1 else -1) * float(mpmath.exp(root))
    return out


def _bisect(fn, lo, hi, steps=60):
    """Root of the increasing ``fn`` on [lo, hi] by bisection (2**-60 of the width: z~ to ~6e-16 relative)."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fn(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _mp_conditional_logistic(logits, bits, v):
    """REBAR's definition: v' = v σ(−ℓ) (b = 0) or σ(−ℓ) + v σ(ℓ) (b = 1), z̃ = ℓ + log(v'/(1 − v'))."""
    out = np.empty(np.shape(bits))
    with mpmath.workdps(400):  # ℓ + log(v'/(1 − v')) cancels down to v e^ℓ ≈ 1e-283 at ℓ = 40, v = 1e-300
        for (i, j), b in np.ndenumerate(np.asarray(bits)):
            ell, vv = mpmath.mpf(float(logits[j])), mpmath.mpf(float(v[i, j]))
            s0, s1 = _mp_sigmoid(-ell), _mp_sigmoid(ell)
            vp, one_minus = (s0 + vv * s1, (1 - vv) * s1) if b == 1 else (vv * s0, s1 + (1 - vv) * s0)
            out[i, j] = float(ell + mpmath.log(vp) - mpmath.log(one_minus))
    return out


def _mp_binary_concrete_log_density(x, logits, tau):
    out = np.empty(np.shape(x))
    with mpmath.workdps(100):
        for idx, xv in np.ndenumerate(np.asarray(x)):
            xv, ell, t = mpmath.mpf(float(xv)), mpmath.mpf(float(np.asarray(logits)[idx])), mpmath.mpf(float(tau))
            s = ell - t * (mpmath.log(xv) - mpmath.log1p(-xv))
            out[idx] = float(mpmath.log(t) - mpmath.log(xv) - mpmath.log1p(-xv)
                             - mpmath.log1p(mpmath.exp(-s)) - mpmath.log1p(mpmath.exp(s)))
    return out


UNIFORM_EDGES = st.sampled_from([1e-300, 2.0**-53, 1e-10, 0.5, 1 - 1e-10, 1 - 2.0**-53])


def sampler_extreme_cases():
    out = []
    bits = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    mu3 = st.lists(EXTREME, min_size=3, max_size=3)
    for meth, k in (("log_prob", 0), ("score", 1)):
        out.append(Case(f"GaussianThreshold.{meth}", "mu", "extreme", mu3, [8.0, -40.0, 700.0],
                        lambda p, meth=meth: getattr(refgrad.GaussianThreshold(p), meth)(bits),
                        reference=lambda p, k=k: _mp_gt_log_prob_score(p, bits)[k], rtol=RTOL, atol=TINY,
                        note="reference: mpmath"))
    b1 = np.array([[1.0, 0.0, 1.0]])
    vs = st.lists(UNIFORM_EDGES, min_size=3, max_size=3).map(lambda v: np.array([v]))
    out.append(Case("random.conditional_normal", "v", "extreme",
                    st.tuples(st.lists(st.floats(-30.0, 30.0), min_size=3, max_size=3), vs),
                    ([5.0, 0.3, -30.0], np.array([[1e-300, 0.5, 0.5]])),
                    lambda mv: refgrad.random.conditional_normal(mv[0], b1, mv[1]),
                    reference=lambda mv: _mp_conditional_normal(mv[0], b1, mv[1]), rtol=RTOL, atol=TINY,
                    note="μ in [-30, 30], v next to 0 and 1; reference: mpmath root of the truncated CDF"))
    out.append(Case("random.conditional_logistic", "v", "extreme",
                    st.tuples(st.lists(st.floats(-50.0, 50.0), min_size=3, max_size=3), vs),
                    ([40.0, -40.0, 0.3], np.array([[1e-300, 1 - 2.0**-53, 0.5]])),
                    lambda lv: refgrad.random.conditional_logistic(lv[0], b1, lv[1]),
                    reference=lambda lv: _mp_conditional_logistic(lv[0], b1, lv[1]), rtol=RTOL, atol=TINY,
                    note="ℓ in [-50, 50], v next to 0 and 1; reference: mpmath of REBAR's definition"))
    taus = st.one_of(st.floats(0.01, 100.0), st.sampled_from([0.01, 100.0]))
    xs = st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4).map(np.array)
    out.append(Case("relaxations.sigmoid_tau", "x", "extreme", st.tuples(xs, taus),
                    (np.array([700.0, -700.0, 30.0, -0.5]), 0.01),
                    lambda xt: refgrad.relaxations.sigmoid_tau(xt[0], xt[1]),
                    reference=lambda xt: np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(x)) / mpmath.mpf(
                        float(xt[1]))))) for x in xt[0]]), rtol=RTOL, atol=TINY, note="reference: mpmath"))
    pts = st.lists(UNIFORM_EDGES, min_size=3, max_size=3).map(np.array)
    lg = st.lists(st.floats(-50.0, 50.0), min_size=3, max_size=3).map(np.array)
    out.append(Case("relaxations.binary_concrete_log_density", "x", "extreme", st.tuples(pts, lg, taus),
                    (np.array([1e-300, 1 - 2.0**-53, 0.5]), np.array([50.0, -50.0, 0.3]), 0.01),
                    lambda a: refgrad.relaxations.binary_concrete_log_density(*a),
                    reference=lambda a: _mp_binary_concrete_log_density(*a), rtol=RTOL, atol=TINY,
                    note="reference: mpmath of the change of variables from the logistic density"))
    return out


def extreme_cases():
    out = []
    bits = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    logits3 = st.lists(EXTREME, min_size=3, max_size=3)
    canon = [40.0, -40.0, 700.0]
    for meth, k in (("log_prob", 0), ("score", 1)):
        out.append(Case(f"Bernoulli.{meth}", "logits", "extreme", logits3, canon,
                        lambda p, meth=meth: getattr(refgrad.Bernoulli(p), meth)(bits),
                        reference=lambda p, k=k: _mp_bernoulli_log_prob_score(p, bits)[k], rtol=RTOL, atol=TINY,
                        note="reference: mpmath"))
    onehot = np.eye(3)[np.array([[0, 2], [1, 1]])]
    logits23 = st.lists(st.lists(EXTREME, min_size=3, max_size=3), min_size=2, max_size=2)
    canon23 = [[50.0, 0.0, -3.0], [-40.0, 0.0, 700.0]]
    for meth, k in (("log_prob", 0), ("score", 1)):
        out.append(Case(f"Categorical.{meth}", "logits", "extreme", logits23, canon23,
                        lambda p, meth=meth: getattr(refgrad.Categorical(p), meth)(onehot),
                        reference=lambda p, k=k: _mp_categorical_log_prob_score(p, onehot)[k], rtol=RTOL, atol=TINY,
                        note="reference: mpmath"))
    values = st.lists(st.floats(-10, 10), min_size=8, max_size=8).map(lambda v: np.reshape(v, (2, 2, 2)))
    table = np.arange(8.0).reshape(2, 2, 2) - 3.0
    for fname, k in (("expectation", 0), ("gradient", 1)):
        fn = getattr(refgrad.exact, fname)
        out.append(Case(f"exact.{fname}", "dist", "extreme", st.tuples(logits3, values), (canon, table),
                        lambda pv, fn=fn: fn(refgrad.Bernoulli(pv[0]), Table(pv[1])),
                        reference=lambda pv, k=k: _mp_bernoulli_exact(pv[0], pv[1])[k], rtol=RTOL, atol=TINY,
                        note="Bernoulli d=3, Table values in [-10, 10]; reference: mpmath"))
    out += sampler_extreme_cases()
    out += estimator_extreme_cases()
    return out


def _extreme_dist(family, params):
    if family == "bernoulli":
        return refgrad.Bernoulli(params)
    if family == "gaussian_threshold":
        return refgrad.GaussianThreshold(params)
    if family == "categorical":
        return refgrad.Categorical(params)
    return refgrad.Normal(params, scale=1.5, offset=0.2)


def _via_noise(name, dist, n, seed, opts):
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, n, rng=seed, **opts)
    return refgrad.estimate(name, dist, objective_for(name, F, opts), noise=noise, **opts)


def estimator_extreme_cases():
    """Every estimator and family at extreme parameters, temperatures and uniforms: finite, and equal to the
    estimate from the same noise passed as noise=."""
    out = []
    shapes = {"bernoulli": (2,), "gaussian_threshold": (2,), "categorical": (2, 3), "normal": (2,)}
    for name in sorted(refgrad.ESTIMATORS):
        spec = refgrad.ESTIMATORS[name]
        for family in spec.families:
            func = f"estimate[{name}, {family}]"
            shape = shapes[family]
            size = int(np.prod(shape))
            entries = EXTREME if family != "normal" else st.floats(-1e3, 1e3)
            params = st.lists(entries, min_size=size, max_size=size).map(lambda v, shape=shape: np.reshape(v, shape))
            canon = np.reshape(([40.0, -40.0, 700.0, -700.0, 30.0, -37.0] if family != "normal"
                                else [1e3, -1e3])[:size], shape)
            out.append(Case(func, "dist", "extreme", st.tuples(params, st.integers(0, 2**32)), (canon, SEED),
                            lambda ps, name=name, family=family: refgrad.estimate(
                                name, _extreme_dist(family, ps[0]), objective_for(name, F), N, rng=ps[1]),
                            reference=lambda ps, name=name, family=family: _via_noise(
                                name, _extreme_dist(family, ps[0]), N, ps[1], {}),
                            note="parameters up to ±700; reference: the same noise through noise="))
            if "tau" in spec.defaults:
                dist = Lazy(_extreme_dist, family, np.reshape([0.3, -1.2, 2.0, 0.5, -0.4, 0.1][:size], shape))
                out.append(Case(func, "tau", "extreme",
                                st.one_of(st.floats(0.01, 100.0), st.sampled_from([0.01, 100.0])), 0.01,
                                lambda t, name=name, dist=dist: refgrad.estimate(name, dist, objective_for(name, F), N,
                                                                                 rng=SEED, tau=t),
                                reference=lambda t, name=name, dist=dist: _via_noise(name, dist, N, SEED, {"tau": t}),
                                note="tau from 0.01 to 100"))
            dist = Lazy(_extreme_dist, family, np.reshape([0.3, -1.2, 2.0, 0.5, -0.4, 0.1][:size], shape))
            out.append(Case(func, "noise", "extreme", st.sampled_from([2.0**-53, 1 - 2.0**-53, 1e-300, 0.5]), 1e-300,
                            lambda u, name=name, dist=dist: _constant_noise(name, dist, u),
                            reference=lambda u, name=name, dist=dist: _constant_noise(name, dist, u),
                            note="every uniform equal to u (next to 0 or 1); reference: finiteness and determinism"))
    return out


def _constant_noise(name, dist, u):
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, N, rng=SEED)
    return refgrad.estimate(name, dist, objective_for(name, F), noise={k: np.full_like(v, u) for k, v in noise.items()})
