"""Sweep table, part 2: the estimators (through ``refgrad.estimate``), the exact oracles, stats and testing.

See ``sweep_cases.py`` for the assembled table and the list of known failures.
"""
import itertools
import math

import numpy as np
from hypothesis import strategies as st
from scipy import integrate, special

import refgrad
from estimator_options import GOLDEN, golden_dist, option_sets
from objective_kinds import objective_for
from refgrad import exact, stats, testing
from refgrad.estimators import RelaxSurrogate, fit_relax
from refgrad.objectives import FunctionObjective, Objective, SquaredDistance, Table
from sweep_cases_core import Lazy, _put_flat, array_cases, bad_function, bad_objective_classes, list_case
from sweep_framework import Case, ObjectiveFailure, count_variant, scalar_variant

INF = np.inf
SEED = 20261201
N = 3
F = SquaredDistance(0.45)

#: Distributions per family: (legal parameters, parameters with ±inf entries or None).
FAMILY_PARAMS = {
    "bernoulli": (refgrad.Bernoulli, [0.3, -1.2], [INF, -INF]),
    "gaussian_threshold": (refgrad.GaussianThreshold, [0.4, -0.7], [-INF, INF]),
    "categorical": (refgrad.Categorical, [[0.5, -0.2, 0.1], [-1.0, 0.3, 0.8]], [[INF, 0.0, -1.0], [0.3, -INF, 0.2]]),
    "normal": (lambda p: refgrad.Normal(p, scale=1.5, offset=0.2), [0.3, -0.5], None),
}

#: Estimators that differentiate f (need ``grad``) and those that evaluate f at relaxed points.
NEEDS_GRAD = ("muprop", "pathwise", "gumbel_softmax", "straight_through", "gumbel_rao", "rebar", "relax",
              "straight_through_plain")
EVALUATES_RELAXED = ("muprop", "gumbel_softmax", "rebar", "relax")
#: Estimators that refuse ±inf parameters, and the argument their refusal names.
REFUSES_INFINITE = {"arsm": ("logits",)}
#: A smooth objective that is not separable (no per-variable shortcut past the enumeration / quadrature limits).
COUPLED = FunctionObjective(lambda z: (np.sum(np.reshape(z, (len(z), -1)), axis=1) - 0.45) ** 2,
                            lambda z: (2 * (np.sum(np.reshape(z, (len(z), -1)), axis=1) - 0.45)[:, None]
                                       * np.ones_like(z)),
                            name="sweep_coupled")


def dist_of(family, which=1):
    ctor, legal, infinite = FAMILY_PARAMS[family]
    return Lazy(ctor, legal if which == 1 else infinite)


def _objective(name, f, options):
    """The objective estimator ``name`` takes for ``f`` (a bad non-objective ``f`` is passed unchanged)."""
    return objective_for(name, f, options) if isinstance(f, Objective) else f


def _est(name, dist, f=F, n=N, **kw):
    return refgrad.estimate(name, dist, _objective(name, f, kw), n, **kw)


def _via_noise(name, dist, f, n, seed, opts):
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, n, rng=seed, **opts)
    return refgrad.estimate(name, dist, _objective(name, f, opts), noise=noise, **opts)


# ============================================================================ estimators


def estimator_legal_cases(name, family):
    out = []
    func = f"estimate[{name}, {family}]"
    dist = Lazy(golden_dist, family)  # the golden distributions: option sets may depend on their shape
    for oset in option_sets(name, GOLDEN, family):
        label, opts = oset.label, oset.options(golden_dist(family))
        out.append(Case(func, "options", "legal", st.integers(0, 2**32), SEED,
                        lambda s, opts=opts: _est(name, dist, rng=s, **opts),
                        reference=lambda s, opts=opts: _via_noise(name, dist, F, N, s, opts),
                        note=f"options {label}; reference: the same estimate from noise=draw_noise(...)"))
    if FAMILY_PARAMS[family][2] is not None and name in REFUSES_INFINITE:
        out.append(Case(func, "dist", "inf-legal", st.integers(0, 2**32), SEED,
                        lambda s: _est(name, dist_of(family, which=2), rng=s), expect=REFUSES_INFINITE[name],
                        note=f"parameters {FAMILY_PARAMS[family][2]}: refused by this estimator"))
    elif FAMILY_PARAMS[family][2] is not None:
        inf_dist = dist_of(family, which=2)
        out.append(Case(func, "dist", "inf-legal", st.integers(0, 2**32), SEED,
                        lambda s: _est(name, inf_dist, rng=s),
                        reference=lambda s: _via_noise(name, inf_dist, F, N, s, {}),
                        note=f"parameters {FAMILY_PARAMS[family][2]}"))
    noise = (lambda: refgrad.ESTIMATORS[name].draw_noise(dist, N, rng=SEED))
    with_noise = (lambda nz: refgrad.estimate(name, dist, objective_for(name, F), noise=nz))
    out.append(Case(func, "noise", "noise-list", st.just("lists"), "lists",
                    lambda _: with_noise({k: v.tolist() for k, v in noise().items()}),
                    reference=lambda _: with_noise(noise()), note="every noise field as a nested list"))

    def spoil(kind):
        def build(_):
            nz = noise()
            key = sorted(nz)[0]
            arr = nz[key]
            if kind == "drop":
                nz[key] = arr[..., :-1]
            elif kind == "broadcast":
                nz[key] = arr[..., :1]
            else:
                nz[key] = _put_flat(arr, 0, kind)
            return with_noise(nz)
        return build
    # a field of one column (sum_and_sample's single uniform) is unchanged by the cut to one column
    kinds = ["drop"] if name == "sum_and_sample" else ["drop", "broadcast"]
    out.append(Case(func, "noise", "noise-shape", st.sampled_from(kinds), kinds[-1],
                    lambda k: spoil(k)(None), expect=("noise",),
                    note="first noise field cut to one column ('broadcast') or without its last ('drop')"))
    out.append(Case(func, "noise", "noise-0", st.just(0.0), 0.0, lambda k: spoil(k)(None), expect=("noise",),
                    note="first uniform of the first field set to 0"))
    out.append(Case(func, "noise", "noise-1", st.just(1.0), 1.0, lambda k: spoil(k)(None), expect=("noise",),
                    note="first uniform of the first field set to 1"))
    return out


def estimator_bad_cases(name):
    """Every hostile class on the estimator's first family."""
    spec = refgrad.ESTIMATORS[name]
    family = spec.families[0] if name != "pathwise" else "normal"
    func = f"estimate[{name}, {family}]"
    dist = dist_of(family)
    out = []
    for cls in ("count<=0", "count-float", "count-huge", "bool", "str"):
        strat, canon = count_variant(cls)
        out.append(Case(func, "n", cls, strat, canon, lambda v: refgrad.estimate(name, dist, F, v, rng=1),
                        expect=("n",)))
    out.append(Case(func, "rng", "range", st.sampled_from([-1, -2**40]), -1, lambda v: _est(name, dist, rng=v),
                    expect=("rng",)))
    out.append(Case(func, "rng", "type", st.sampled_from([1.5, "seed", np.random.RandomState(0)]), 1.5,
                    lambda v: _est(name, dist, rng=v), expect=("rng",)))
    out.append(Case(func, "noise", "noise-container", st.sampled_from(["list", "missing", "extra", "nan", "rng"]),
                    "list", lambda k: _noise_container(name, dist, k), expect=("noise", "rng"),
                    note="noise as a list of arrays; or a missing / extra key, a NaN, rng and noise both"))
    out.append(Case(func, "options", "unknown-option", st.sampled_from(["bogus", "temperature", "Tau"]), "bogus",
                    lambda k: _est(name, dist, rng=1, **{k: 1}), expect=("bogus", "temperature", "Tau")))
    other = {"bernoulli": dist_of("categorical") if "categorical" not in spec.families else dist_of("normal"),
             "normal": dist_of("bernoulli"), "categorical": dist_of("bernoulli")}[family]
    if set(spec.families) >= {"bernoulli", "categorical", "gaussian_threshold", "normal"}:
        other = "not a distribution"
    out.append(Case(func, "dist", "type", st.just(other), other, lambda d: _est(name, d, rng=1),
                    expect=("dist", "family")))
    out.append(Case(func, "f", "type", st.sampled_from([3.0, "f", None]), 3.0,
                    lambda f: _est(name, dist, f=f, rng=1), expect=("f",)))
    for cls, (strat, canon, propagate) in bad_objective_classes().items():
        out.append(Case(func, "f", cls, strat, canon, lambda f: _est(name, dist, f=f, rng=1),
                        expect=("f", "sweep_fn"), propagate=propagate,
                        reference=lambda f: _est(name, dist, f=bad_function(None), rng=1),
                        note="bad value: refuse naming f, or (an estimator that never evaluates it) the estimate "
                             "of the same objective with a good value"))
    if name in NEEDS_GRAD:
        for cls, (strat, canon, propagate) in bad_objective_classes(grad=True).items():
            out.append(Case(func, "f", cls, strat, canon, lambda f: _est(name, dist, f=f, rng=1),
                            expect=("f", "sweep_fn"), propagate=propagate, note="bad gradient"))
        no_grad = FunctionObjective(lambda z: np.sum(np.reshape(z, (len(z), -1)), axis=1), name="sweep_fn")
        out.append(Case(func, "f", "type", st.just(no_grad), no_grad, lambda f: _est(name, dist, f=f, rng=1),
                        expect=("f", "sweep_fn"), note="objective without grad"))
    if name in EVALUATES_RELAXED:
        hard_only = FunctionObjective(lambda z: np.sum(np.reshape(z, (len(z), -1)), axis=1),
                                      grad_fn=lambda z: np.ones_like(z), name="sweep_fn", relaxed_ok=False)
        out.append(Case(func, "f", "type", st.just(hard_only), hard_only, lambda f: _est(name, dist, f=f, rng=1),
                        expect=("f", "sweep_fn", "relaxed_ok"), note="relaxed_ok=False"))
    if family == "bernoulli":
        one = Lazy(refgrad.Bernoulli, [0.3])
        out.append(Case(func, "f", "overflow", st.sampled_from([1e308, 1.7e308]), 1e308,
                        lambda v: _est(name, one, f=Table([v, -v], name="sweep_big"), rng=SEED),
                        expect=("f", "sweep_big"),
                        reference=lambda v: _via_noise(name, one, Table([v, -v], name="sweep_big"), N, SEED, {}),
                        note="Table([v, -v]): refuse naming f, or a finite estimate"))
    out += option_cases(name, dist, func)
    return out


def _noise_container(name, dist, kind):
    nz = refgrad.ESTIMATORS[name].draw_noise(dist, N, rng=SEED)
    key = sorted(nz)[0]
    f = objective_for(name, F)
    if kind == "list":
        return refgrad.estimate(name, dist, f, noise=list(nz.values()))
    if kind == "missing":
        del nz[key]
    elif kind == "extra":
        nz["w"] = nz[key]
    elif kind == "nan":
        nz[key] = _put_flat(nz[key], 0, np.nan)
    elif kind == "rng":
        return refgrad.estimate(name, dist, f, rng=SEED, noise=nz)
    return refgrad.estimate(name, dist, f, noise=nz)


def option_cases(name, dist, func):
    out = []

    def opt(option, cls, strat, canon, note=""):
        out.append(Case(func, option, cls, strat, canon, lambda v: _est(name, dist, rng=1, **{option: v}),
                        expect=(option,), note=note))
    if "tau" in refgrad.ESTIMATORS[name].defaults:
        for cls in ("tau<=0", "tau=inf", "tau=nan", "complex", "bool", "str", "shape"):
            opt("tau", cls, *scalar_variant(cls, legal=0.5))
    for option, minimum in (("k", 0 if name == "sum_and_sample" else 1), ("m", 1 if name == "indecater" else 2),
                            ("pilot", 2)):
        if option in refgrad.ESTIMATORS[name].defaults:
            for cls in ("count<=0", "count-float", "count-huge", "bool"):
                strat, canon = count_variant(cls)
                if cls == "count<=0" and minimum == 0:  # 0 is legal: only negative counts are bad
                    strat, canon = st.integers(-10**6, -1), -1
                opt(option, cls, strat, canon)
            if minimum > 1:
                opt(option, "range", st.just(minimum - 1), minimum - 1, note=f"{option} >= {minimum}")
    if name == "gumbel_rao":
        opt("derivative", "unknown-option", st.sampled_from(["Identity", "none", 3, None]), "none")
    if name == "straight_through_plain":
        opt("backward", "unknown-option", st.sampled_from(["Probs", "softmax", 3, None]), "softmax")
    if name == "reinforce":
        for cls in ("nan", "inf", "complex", "bool", "shape"):
            opt("baseline", cls, *scalar_variant(cls, legal=0.25))
        opt("baseline", "str", st.sampled_from(["best", "0.25", "Optimal"]), "best")
        out.append(Case("estimate[reinforce, normal]", "baseline", "unknown-option", st.just("optimal"), "optimal",
                        lambda v: _est("reinforce", dist_of("normal"), rng=1, baseline=v), expect=("baseline",),
                        note="'optimal' needs an enumerable family"))
    if name == "rebar":
        for cls in ("nan", "inf", "complex", "bool"):
            opt("eta", cls, *scalar_variant(cls, legal=0.5))
        opt("eta", "str", st.sampled_from(["best", "0.5", "Optimal"]), "best")
        opt("eta", "broadcast", st.sampled_from([np.ones(1), np.ones((1, 2)), np.ones(3)]), np.ones(1))
    if name == "relax":
        opt("surrogate", "type", st.sampled_from(["net", 3.0, F]), "net")
        opt("surrogate", "shape", st.sampled_from([(5,), (2, 3)]).map(lambda s: RelaxSurrogate(s, hidden=2, rng=0)),
            RelaxSurrogate((5,), hidden=2, rng=0), note="surrogate for another event shape")
    return out


def estimator_cases():
    out = [Case("estimate", "name", "unknown-option", st.sampled_from(["rienforce", "REINFORCE", 3, None]),
                "rienforce", lambda v: refgrad.estimate(v, dist_of("bernoulli"), F, N, rng=1), expect=("name",))]
    for name in sorted(refgrad.ESTIMATORS):
        for family in refgrad.ESTIMATORS[name].families:
            out += estimator_legal_cases(name, family)
        out += estimator_bad_cases(name)
    out += relax_training_cases()
    return out


def relax_training_cases():
    out = []
    b1 = Lazy(refgrad.Bernoulli, [0.3, -1.2])

    def fit(**kw):
        args = dict(dist=b1, f=F, steps=3, batch=8, lr=1e-2, rng=SEED)
        args.update(kw)
        return fit_relax(**args)

    def params(s):
        s = s[0] if isinstance(s, tuple) else s
        return [s.w1, s.b1, s.w2, np.float64(s.b2), np.float64(s.eta), np.float64(s.tau)]
    out.append(Case("fit_relax", "rng", "legal", st.integers(0, 2**32), SEED, lambda s: fit(rng=s),
                    reference=lambda s: fit(rng=s), project=params, note="reference: the same call (reproducible)"))
    for cls in ("tau<=0", "tau=inf", "tau=nan", "str", "complex"):
        out.append(Case("fit_relax", "lr", cls, *scalar_variant(cls, legal=0.01), lambda v: fit(lr=v), expect=("lr",)))
    out.append(Case("fit_relax", "lr", "overflow", st.sampled_from([1e6, 1e9]), 1e6, lambda v: fit(lr=v, steps=20),
                    expect=("lr",), reference=lambda v: fit(lr=v, steps=20), project=params,
                    note="a diverging run: refuse naming lr, or a finite (reproducible) surrogate"))
    for cls in ("count<=0", "count-float", "str"):
        out.append(Case("fit_relax", "steps", cls, *count_variant(cls), lambda v: fit(steps=v), expect=("steps",)))
    for cls in ("count<=0", "count-float", "count-huge"):
        out.append(Case("fit_relax", "batch", cls, *count_variant(cls), lambda v: fit(batch=v), expect=("batch",)))
    out.append(Case("fit_relax", "train", "unknown-option", st.sampled_from([("bogus",), "Psi", 3]), ("bogus",),
                    lambda v: fit(train=v), expect=("train",)))
    out.append(Case("fit_relax", "dist", "type", st.just(dist_of("normal")), dist_of("normal"), lambda d: fit(dist=d),
                    expect=("dist", "family")))
    out.append(Case("RelaxSurrogate", "event_shape", "shape", st.sampled_from([(0,), (2, 1), (), "x", (2, 3, 4)]),
                    (0,), lambda s: RelaxSurrogate(s), expect=("event_shape",)))
    for cls in ("count<=0", "count-float", "count-huge"):
        out.append(Case("RelaxSurrogate", "hidden", cls, *count_variant(cls), lambda v: RelaxSurrogate((2,), hidden=v),
                        expect=("hidden",)))
    for arg, classes in (("eta", ("nan", "inf", "str", "complex")), ("tau", ("tau<=0", "tau=inf", "tau=nan", "str")),
                         ("scale", ("nan", "inf", "str"))):
        for cls in classes:
            out.append(Case("RelaxSurrogate", arg, cls, *scalar_variant(cls, legal=0.5),
                            lambda v, arg=arg: RelaxSurrogate((2,), **{arg: v}), expect=(arg,)))
    out.append(Case("RelaxSurrogate", "scale", "range", st.sampled_from([-1.0, -1e-300]), -1.0,
                    lambda v: RelaxSurrogate((2,), scale=v), expect=("scale",)))
    return out


# ============================================================================ exact


def _naive_bits(p1, values):
    """Σ q(b) values[b] and its gradient w.r.t. the logits (Bernoulli), by itertools."""
    d = len(p1)
    e = 0.0
    g = np.zeros(d)
    for b in itertools.product((0, 1), repeat=d):
        q = np.prod([p1[i] if bi else 1 - p1[i] for i, bi in enumerate(b)])
        if q == 0:
            continue
        e += q * values[b]
        g += q * values[b] * (np.array(b) - p1)
    return e, g


def exact_cases():
    out = []
    vals = st.lists(st.floats(-10, 10), min_size=8, max_size=8).map(lambda v: np.reshape(v, (2, 2, 2)))
    logits = st.lists(st.floats(-5, 5), min_size=3, max_size=3)
    problem = st.tuples(logits, vals)
    canon = ([0.3, -1.2, 2.0], np.arange(8.0).reshape(2, 2, 2) - 3)
    out.append(Case("exact.expectation", "f", "legal", problem, canon,
                    lambda pv: exact.expectation(refgrad.Bernoulli(pv[0]), Table(pv[1])),
                    reference=lambda pv: _naive_bits(special.expit(np.array(pv[0])), pv[1])[0],
                    rtol=1e-10, atol=1e-12, note="Bernoulli d=3, logits in [-5, 5]; reference: itertools sum"))
    out.append(Case("exact.gradient", "f", "legal", problem, canon,
                    lambda pv: exact.gradient(refgrad.Bernoulli(pv[0]), Table(pv[1])),
                    reference=lambda pv: _naive_bits(special.expit(np.array(pv[0])), pv[1])[1],
                    rtol=1e-9, atol=1e-11, note="Bernoulli d=3, logits in [-5, 5]; reference: itertools sum"))
    infl = st.lists(st.sampled_from([INF, -INF, 0.3, -1.0]), min_size=3, max_size=3)
    out.append(Case("exact.gradient", "dist", "inf-legal", st.tuples(infl, vals), ([INF, -INF, 0.3], canon[1]),
                    lambda pv: exact.gradient(refgrad.Bernoulli(pv[0]), Table(pv[1])),
                    reference=lambda pv: _naive_bits(special.expit(np.array(pv[0])), pv[1])[1],
                    rtol=1e-9, atol=1e-11))
    b3 = Lazy(refgrad.Bernoulli, [0.3, -1.2, 2.0])
    for fname in ("expectation", "gradient"):
        fn = getattr(exact, fname)
        func = f"exact.{fname}"
        for cls, (strat, canonical, propagate) in bad_objective_classes().items():
            out.append(Case(func, "f", cls, strat, canonical, lambda f, fn=fn: fn(b3, f), expect=("f", "sweep_fn"),
                            propagate=propagate))
        out.append(Case(func, "f", "type", st.sampled_from([3.0, "f"]), 3.0, lambda f, fn=fn: fn(b3, f),
                        expect=("f",)))
        out.append(Case(func, "dist", "type", st.sampled_from(["bernoulli", None, 3.0]), "bernoulli",
                        lambda d, fn=fn: fn(d, F), expect=("dist",)))
        out.append(Case(func, "dist", "type", st.just(dist_of("normal")), dist_of("normal"),
                        lambda d, fn=fn: fn(d, F), expect=("dist",), note="a continuous distribution (Normal)"))
        for cls in ("count<=0", "count-float", "str"):
            out.append(Case(func, "limit", cls, *count_variant(cls), lambda v, fn=fn: fn(b3, F, limit=v),
                            expect=("limit",)))
            out.append(Case(func, "chunk_size", cls, *count_variant(cls), lambda v, fn=fn: fn(b3, F, chunk_size=v),
                            expect=("chunk_size",)))
        out.append(Case(func, "limit", "range", st.sampled_from([30, 40]), 30,
                        lambda d, fn=fn: fn(refgrad.Bernoulli(np.zeros(d)), COUPLED), expect=("limit",),
                        note="support 2**30 beyond the default limit, a non-separable objective"))
        out.append(Case(func, "chunk_size", "count-huge", st.sampled_from([10**13, 2**62]), 10**13,
                        lambda v, fn=fn: fn(b3, F, chunk_size=v), reference=lambda v, fn=fn: fn(b3, F),
                        rtol=1e-15, atol=1e-300, note="legal: one chunk"))
    # exact.expect
    b3x = Lazy(refgrad.Bernoulli, [0.3, -1.2, 2.0])
    out.append(Case("exact.expect", "fn", "legal", st.integers(1, 8), 2, lambda c: exact.expect(b3x, lambda b: b,
                                                                                                chunk_size=c),
                    reference=lambda c: special.expit(np.array([0.3, -1.2, 2.0])), rtol=1e-12,
                    note="E[b] = σ(ℓ) at every chunk size"))
    out.append(Case("exact.expect", "fn", "type", st.sampled_from([3.0, "fn", None]), 3.0,
                    lambda v: exact.expect(b3x, v), expect=("fn",)))
    for cls, kind in (("fn-str", "str"), ("fn-nan", "nan"), ("fn-complex", "complex")):
        out.append(Case("exact.expect", "fn", cls, st.integers(0, 3), 0,
                        lambda w, kind=kind: exact.expect(b3x, lambda b: _spoil_rows(kind, b, w)), expect=("fn",)))
    out.append(Case("exact.expect", "fn", "fn-shape", st.sampled_from(["scalar", "rows"]), "scalar",
                    lambda k: exact.expect(b3x, (lambda b: 1.0) if k == "scalar" else (lambda b: b[:-1])),
                    expect=("fn",)))
    out.append(Case("exact.expect", "fn", "fn-raises", st.just(0), 0,
                    lambda _: exact.expect(b3x, _raiser), expect=("fn",), propagate=ObjectiveFailure))
    out.append(Case("exact.expect", "fn", "fn-chunks", st.sampled_from([(3, 1), (2, 5), (3, 2)]), (3, 1),
                    lambda w: exact.expect(b3x, _changing_width(*w), chunk_size=2), expect=("fn",),
                    note="output width w[0] in the first chunk, w[1] after"))
    out.append(Case("exact.expect", "fn", "fn-chunks", st.just((1, 400)), (1, 400),
                    lambda w: exact.expect(b3x, _changing_width(*w), chunk_size=2), expect=("fn",), isolate=True,
                    note="width 1 then 400; run in a subprocess (the accumulator may write out of bounds)"))
    out += moments_cases()
    return out


def _raiser(b):
    raise ObjectiveFailure("fn failed")


def _spoil_rows(kind, b, where):
    out = np.asarray(b, dtype=float).copy()
    if kind == "str":
        return out.astype(str)
    if kind == "nan":
        out.flat[min(where, out.size - 1)] = np.nan
        return out
    return out + 0.5j


def _changing_width(first, later):
    calls = {"n": 0}

    def fn(b):
        calls["n"] += 1
        width = first if calls["n"] == 1 else later
        return np.repeat(np.asarray(b)[:, :1], width, axis=1)
    return fn


def _relaxed_mean_ref(kind, ell, tau, t=0.45):
    """E[ĝ] of gumbel_softmax / straight_through on one Bernoulli bit, f = (x − t)², by SciPy quad over u."""
    thr = special.expit(-ell)  # b = 1[u > σ(−ℓ)]

    def integrand(u):
        z = ell + math.log(u) - math.log1p(-u)
        x = special.expit(z / tau)
        at = x if kind == "gumbel_softmax" else float(u > thr)
        return 2 * (at - t) * x * (1 - x) / tau
    val = sum(integrate.quad(integrand, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
              for a, b in ((0.0, thr), (thr, 1.0)))
    return np.array([val])


def _gst_bit_mean_ref(ell, tau, gap, t=0.45):
    """E[ĝ] of gapped_straight_through on one bit, f = (x − t)²: Σ_b q(b) 2(b − t) σ'(Δ_b/τ)/τ,
    Δ_1 = max(ℓ, κ), Δ_0 = min(ℓ, −κ)."""
    val = 0.0
    for bit, delta in ((1, max(ell, gap)), (0, min(ell, -gap))):
        x = special.expit(delta / tau)
        val += special.expit(ell if bit else -ell) * 2 * (bit - t) * x * (1 - x) / tau
    return np.array([val])


def moments_cases():
    out = []
    one = Lazy(refgrad.Bernoulli, [0.3])
    normal = Lazy(refgrad.Normal, [0.3], scale=1.5, offset=0.2)
    truth = 2 * 1.5 * (1.5 * 0.3 + 0.2 - 0.45)  # ∂θ E[(aθ + c + ε − t)²]
    for name in sorted(refgrad.ESTIMATORS):
        spec = refgrad.ESTIMATORS[name]
        func = f"exact.moments[{name}]"
        if name == "pathwise" or (spec.unbiased and "bernoulli" not in spec.families):
            continue
        if spec.unbiased:
            ref = (lambda _, name=name: exact.gradient(refgrad.Bernoulli([0.3]), objective_for(name, F)))
            note = "mean equals exact.gradient (of LogMeanExp(f, k) for a multi-sample estimator)"
        elif name == "reinmax":  # second order: at τ = 1 unbiased on a quadratic, so the mean is exact.gradient
            ref = (lambda _: np.array([sum(special.expit(0.3 if b else -0.3) * 2 * (b - 0.45) * (
                2 * (b + special.expit(0.3)) / 2 * (1 - b + special.expit(-0.3)) / 2
                - special.expit(0.3) * special.expit(-0.3) / 2) for b in (0, 1))]))
            note = "mean by its closed form over b ∈ {0, 1} (= the exact gradient: f is quadratic)"
        elif name == "gapped_straight_through":
            ref = (lambda _: _gst_bit_mean_ref(0.3, 1.0, 1.0))
            note = "mean by its closed form over b ∈ {0, 1}"
        elif name == "straight_through_plain":  # σ'(ℓ) E[2(b − t)]: the gradient at b through the probability
            ref = (lambda _: np.array([special.expit(0.3) * special.expit(-0.3) * sum(
                special.expit(0.3 if b else -0.3) * 2 * (b - 0.45) for b in (0, 1))]))
            note = "mean by its closed form σ'(ℓ) Σ_b q(b) 2(b − t)"
        elif name == "gumbel_rao":
            ref = (lambda _: _relaxed_mean_ref("straight_through", 0.3, 1.0))
            note = "mean equals straight-through's, by SciPy quad"
        else:
            ref = (lambda _, name=name: _relaxed_mean_ref(name, 0.3, 1.0))
            note = "mean by SciPy quad over u"
        out.append(Case(func, "dist", "legal", st.just(0.3), 0.3,
                        lambda _, name=name: exact.moments(name, one, objective_for(name, F)).mean,
                        reference=ref, rtol=1e-8, atol=1e-12, note=f"Bernoulli([0.3]), (x − 0.45)²: {note}"))
    out.append(Case("exact.moments[pathwise]", "dist", "legal", st.just(0.3), 0.3,
                    lambda _: exact.moments("pathwise", normal, F).mean, reference=lambda _: np.array([truth]),
                    rtol=1e-9, note="closed form 2a(aθ + c − t)"))
    out.append(Case("exact.moments", "method", "unknown-option", st.sampled_from(["mc", "exact", None, 3]), "mc",
                    lambda m: exact.moments("reinforce", one, F, method=m), expect=("method",)))
    out.append(Case("exact.moments", "method", "range", st.sampled_from(["enumeration"]), "enumeration",
                    lambda m: exact.moments("arm", one, F, method=m), expect=("method",),
                    note="a method that does not apply to the estimator"))
    for cls in ("count<=0", "count-float", "str"):
        out.append(Case("exact.moments", "level", cls, *count_variant(cls),
                        lambda v: exact.moments("gumbel_softmax", one, F, level=v), expect=("level",)))
    out.append(Case("exact.moments", "level", "count-huge", st.sampled_from([70, 2000, 10**13]), 70,
                    lambda v: exact.moments("gumbel_softmax", one, F, level=v), expect=("level",),
                    note="2**level quadrature points"))
    out.append(Case("exact.moments", "limit", "count<=0", *count_variant("count<=0"),
                    lambda v: exact.moments("reinforce", one, F, limit=v), expect=("limit",)))
    out.append(Case("exact.moments", "limit", "range", st.sampled_from([30, 25]), 30,
                    lambda d: exact.moments("reinforce", refgrad.Bernoulli(np.zeros(d)), COUPLED),
                    expect=("limit",), note="support beyond the enumeration limit, a non-separable objective"))
    out.append(Case("exact.moments", "dist", "range", st.sampled_from([100, 40]), 100,
                    lambda d: exact.moments("rebar", refgrad.Bernoulli(np.linspace(-2, 2, d)), COUPLED),
                    expect=("dist",),
                    note="noise dimension far beyond the quadrature limit, a non-separable objective"))
    out.append(Case("exact.moments", "options", "unknown-option", st.just("bogus"), "bogus",
                    lambda k: exact.moments("reinforce", one, F, **{k: 1}), expect=("bogus",)))
    out.append(Case("exact.moments", "name", "unknown-option", st.sampled_from(["rienforce", 3]), "rienforce",
                    lambda v: exact.moments(v, one, F), expect=("name",)))
    for name in ("reinforce", "arm", "disarm", "rloo"):
        out.append(Case(f"exact.moments[{name}]", "f", "overflow", st.sampled_from([1e200, 1e300]), 1e200,
                        lambda v, name=name: exact.moments(name, one, Table([v, -v], name="sweep_big")).variance,
                        expect=("f", "sweep_big"), note="Table([v, -v]): the variance overflows"))
    return out


# ============================================================================ stats and testing

RNG = np.random.default_rng(0)
SAMPLES = RNG.normal(size=(120, 2))  # n >= stats.LEVEL_CHECKED_N (100): below it the test warns by design
SAMPLES_B = RNG.normal(size=(60, 2)) * 3.0
TARGET = np.zeros(2)
ALPHA_BAD = st.sampled_from([0.0, 1.0, -0.1, 1.5, np.nan, np.inf])


def _alpha_cases(func, call, arg="alpha"):
    out = [Case(func, arg, "range", ALPHA_BAD, 0.0, call, expect=(arg,))]
    for cls in ("str", "complex", "bool"):
        out.append(Case(func, arg, cls, *scalar_variant(cls, legal=0.05), call, expect=(arg,)))
    return out


def _pv(r):
    return np.float64(r.pvalue)


def stats_cases():
    out = []
    ut = (lambda s: stats.unbiasedness_test(s, TARGET))
    out.append(Case("stats.unbiasedness_test", "samples", "legal",
                    st.integers(0, 2**32).map(lambda s: np.random.default_rng(s).normal(size=(120, 2)) + 0.1), SAMPLES,
                    ut, reference=lambda s: stats.unbiasedness_test(np.asarray(s) * 2.0 + 1.0, TARGET * 2.0 + 1.0),
                    project=_pv, rtol=1e-8, atol=1e-12, note="reference: the test is invariant under x -> 2x + 1"))
    out.append(list_case("stats.unbiasedness_test", "samples", SAMPLES, ut, project=_pv))
    out += array_cases("stats.unbiasedness_test", "samples", SAMPLES, ut,
                       ("nan", "inf", "complex", "str", "object", "ragged", "empty", "0-d"))
    out.append(Case("stats.unbiasedness_test", "samples", "shape", st.sampled_from([SAMPLES[:1], SAMPLES[:1, :1]]),
                    SAMPLES[:1], ut, expect=("samples",), note="a single sample (n = 1)"))
    tt = (lambda t: stats.unbiasedness_test(SAMPLES, t))
    out += array_cases("stats.unbiasedness_test", "target", TARGET, tt, ("nan", "inf", "complex", "str"))
    out.append(Case("stats.unbiasedness_test", "target", "broadcast", st.sampled_from([np.zeros(1), np.array(0.0),
                                                                                       np.zeros((1, 2))]),
                    np.zeros(1), tt, expect=("target",)))
    out += _alpha_cases("stats.unbiasedness_test", lambda a: stats.unbiasedness_test(SAMPLES, TARGET, alpha=a))
    out.append(Case("stats.unbiasedness_test", "method", "unknown-option", st.sampled_from(["t", "Holm", None]), "t",
                    lambda m: stats.unbiasedness_test(SAMPLES, TARGET, method=m), expect=("method",)))
    out.append(Case("stats.unbiasedness_test", "degenerate", "unknown-option", st.sampled_from(["ignore", None]),
                    "ignore", lambda m: stats.unbiasedness_test(SAMPLES, TARGET, degenerate=m), expect=("degenerate",)))
    out.append(Case("stats.unbiasedness_test", "rtol", "range", st.sampled_from([-1.0, np.nan, 1.0, "x"]), -1.0,
                    lambda r: stats.unbiasedness_test(SAMPLES, TARGET, rtol=r), expect=("rtol",)))
    # variance_test
    vt = (lambda a: stats.variance_test(a, SAMPLES_B))
    out.append(Case("stats.variance_test", "a", "legal",
                    st.integers(0, 2**32).map(lambda s: np.random.default_rng(s).normal(size=(40, 2))), SAMPLES, vt,
                    reference=lambda a: stats.variance_test(np.asarray(a) * 2.0 + 1.0, SAMPLES_B * 2.0 - 3.0),
                    project=_pv, rtol=1e-8, atol=1e-12, note="reference: invariant under x -> 2x + c"))
    out.append(list_case("stats.variance_test", "a", SAMPLES, vt, project=_pv))
    out += array_cases("stats.variance_test", "a", SAMPLES, vt, ("nan", "inf", "complex", "str", "empty", "0-d"))
    out += array_cases("stats.variance_test", "b", SAMPLES_B, lambda b: stats.variance_test(SAMPLES, b),
                       ("nan", "inf", "complex", "str", "empty"))
    out.append(Case("stats.variance_test", "b", "shape", st.sampled_from([SAMPLES_B[:, :1], SAMPLES_B[:, None]]),
                    SAMPLES_B[:, :1], lambda b: stats.variance_test(SAMPLES, b), expect=("b", "a")))
    out.append(Case("stats.variance_test", "paired", "shape", st.just(SAMPLES_B[:30]), SAMPLES_B[:30],
                    lambda b: stats.variance_test(SAMPLES, b, paired=True), expect=("paired", "b")))
    out.append(Case("stats.variance_test", "alternative", "unknown-option", st.sampled_from(["lesser", None]),
                    "lesser", lambda a: stats.variance_test(SAMPLES, SAMPLES_B, alternative=a),
                    expect=("alternative",)))
    out.append(Case("stats.variance_test", "paired", "type", st.sampled_from(["yes", 2, None]), "yes",
                    lambda p: stats.variance_test(SAMPLES, SAMPLES_B, paired=p), expect=("paired",)))
    out += _alpha_cases("stats.variance_test", lambda a: stats.variance_test(SAMPLES, SAMPLES_B, alpha=a))
    # required_samples
    def rs_ref(v, e, alpha=0.01, power=0.99, p=1):
        z = special.ndtri(1 - alpha / (2 * p)) + special.ndtri(power)
        return max(2, math.ceil(z * z * v / (e * e)))
    out.append(Case("stats.required_samples", "variance", "legal",
                    st.tuples(st.floats(0.01, 100), st.floats(0.01, 10)), (2.0, 0.1),
                    lambda ve: stats.required_samples(*ve), reference=lambda ve: rs_ref(*ve), rtol=0.0))
    out.append(Case("stats.required_samples", "p", "count-huge", st.sampled_from([10**13, 10**6]), 10**13,
                    lambda p: stats.required_samples(2.0, 0.1, p=p), reference=lambda p: rs_ref(2.0, 0.1, p=p),
                    expect=("p",), rtol=1e-12, note="refuse naming p, or the right n"))
    rs = (lambda v: stats.required_samples(v, 0.1))
    out += array_cases("stats.required_samples", "variance", np.array([2.0, 1.0]), rs,
                       ("nan", "inf", "complex", "str", "empty"))
    out.append(Case("stats.required_samples", "variance", "range", st.sampled_from([-1.0, -1e-300]), -1.0, rs,
                    expect=("variance",)))
    re_ = (lambda e: stats.required_samples(2.0, e))
    out += array_cases("stats.required_samples", "effect", np.array([0.1, 0.2]), re_, ("nan", "complex", "str",
                                                                                        "empty"))
    out.append(Case("stats.required_samples", "effect", "range", st.sampled_from([0.0, -0.0]), 0.0, re_,
                    expect=("effect",)))
    out.append(Case("stats.required_samples", "effect", "overflow", st.sampled_from([1e-300, 1e-200]), 1e-300,
                    lambda e: stats.required_samples(1e300, e), expect=("variance", "effect")))
    out += _alpha_cases("stats.required_samples", lambda a: stats.required_samples(2.0, 0.1, alpha=a))
    out += _alpha_cases("stats.required_samples", lambda a: stats.required_samples(2.0, 0.1, power=a), arg="power")
    for cls in ("count<=0", "count-float", "str"):
        out.append(Case("stats.required_samples", "p", cls, *count_variant(cls),
                        lambda p: stats.required_samples(2.0, 0.1, p=p), expect=("p",)))
    # heavy_tail_diagnostic
    ht = (lambda s: stats.heavy_tail_diagnostic(s))

    def flags(r):
        return [np.asarray(r.flagged, dtype=float), np.asarray(r.skewness), np.asarray(r.excess_kurtosis)]
    out.append(Case("stats.heavy_tail_diagnostic", "samples", "legal",
                    st.integers(0, 2**32).map(lambda s: np.random.default_rng(s).exponential(size=(30, 2))), SAMPLES,
                    ht, reference=lambda s: stats.heavy_tail_diagnostic(np.asarray(s) * 2.0 - 1.0), project=flags,
                    rtol=1e-8, atol=1e-10, note="reference: invariant under x -> 2x + c"))
    out.append(list_case("stats.heavy_tail_diagnostic", "samples", SAMPLES, ht, project=flags))
    out += array_cases("stats.heavy_tail_diagnostic", "samples", SAMPLES, ht,
                       ("nan", "inf", "complex", "str", "empty", "0-d"))
    for cls in ("count<=0", "count-float", "str"):
        out.append(Case("stats.heavy_tail_diagnostic", "n_eff", cls, *count_variant(cls),
                        lambda v: stats.heavy_tail_diagnostic(SAMPLES, n_eff=v), expect=("n_eff",)))
    # holm_adjust
    def holm_ref(p):
        p = np.asarray(p, dtype=float)
        m = p.size
        order = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        out_ = np.empty(m)
        out_[order] = adj
        return out_
    pv = np.array([0.01, 0.04, 0.03, 0.5])
    out.append(Case("stats.holm_adjust", "pvalues", "legal", st.lists(st.floats(0, 1), min_size=1, max_size=8), pv,
                    stats.holm_adjust, reference=holm_ref, rtol=1e-14))
    out.append(list_case("stats.holm_adjust", "pvalues", pv, stats.holm_adjust))
    out += array_cases("stats.holm_adjust", "pvalues", pv, stats.holm_adjust, ("nan", "complex", "str"))
    out.append(Case("stats.holm_adjust", "pvalues", "range", st.sampled_from([1.5, -0.1, np.inf]).map(
        lambda x: _put_flat(pv, 0, x)), _put_flat(pv, 0, 1.5), stats.holm_adjust, expect=("pvalues",)))
    return out


def testing_cases():
    out = []
    one = Lazy(refgrad.Bernoulli, [0.3])
    samples = np.random.default_rng(1).normal(size=(200, 2))
    au = (lambda s: testing.assert_unbiased(s, target=TARGET))
    out.append(Case("testing.assert_unbiased", "name_or_samples", "legal", st.just(samples), samples, au,
                    reference=lambda s: stats.unbiasedness_test(s, TARGET, alpha=1e-3), project=_pv,
                    note="reference: stats.unbiasedness_test"))
    out.append(Case("testing.assert_unbiased", "name_or_samples", "legal", st.just("reinforce"), "reinforce",
                    lambda nm: testing.assert_unbiased(nm, one, F, n=2000),
                    reference=lambda nm: stats.unbiasedness_test(
                        refgrad.estimate(nm, one, F, 2000, rng=testing.DEFAULT_SEED),
                        exact.gradient(refgrad.Bernoulli([0.3]), F), alpha=1e-3),
                    project=_pv, note="reference: stats.unbiasedness_test on the same estimates"))
    out += array_cases("testing.assert_unbiased", "name_or_samples", samples, au, ("nan", "complex", "str", "empty"),
                       expect=("name_or_samples", "samples"))
    out.append(Case("testing.assert_unbiased", "name_or_samples", "unknown-option",
                    st.sampled_from(["rienforce", "REINFORCE"]), "rienforce",
                    lambda nm: testing.assert_unbiased(nm, one, F, n=100), expect=("name", "name_or_samples")))
    out.append(Case("testing.assert_unbiased", "dist", "type", st.just(None), None,
                    lambda d: testing.assert_unbiased("reinforce", d, F, n=100), expect=("dist",)))
    for cls in ("count<=0", "count-float", "count-huge", "str"):
        out.append(Case("testing.assert_unbiased", "n", cls, *count_variant(cls),
                        lambda v: testing.assert_unbiased("reinforce", one, F, n=v), expect=("n",)))
    out.append(Case("testing.assert_unbiased", "n", "range", st.just(1), 1,
                    lambda v: testing.assert_unbiased("reinforce", one, F, n=v), expect=("n",), note="n >= 2"))
    out.append(Case("testing.assert_unbiased", "target", "broadcast", st.sampled_from([np.zeros(1), np.zeros(3)]),
                    np.zeros(1), lambda t: testing.assert_unbiased(samples, target=t), expect=("target",)))
    out.append(Case("testing.assert_unbiased", "options", "unknown-option", st.just("tau"), "tau",
                    lambda k: testing.assert_unbiased(samples, target=TARGET, **{k: 1.0}), expect=("tau", "options")))
    out += _alpha_cases("testing.assert_unbiased", lambda a: testing.assert_unbiased(samples, target=TARGET, alpha=a))
    out.append(Case("testing.assert_unbiased", "rng", "range", st.sampled_from([-1, 1.5]), -1,
                    lambda r: testing.assert_unbiased("reinforce", one, F, n=100, rng=r), expect=("rng",)))
    out.append(Case("testing.assert_biased", "n", "count<=0", *count_variant("count<=0"),
                    lambda v: testing.assert_biased("gumbel_softmax", one, F, n=v), expect=("n",)))
    out += _alpha_cases("testing.assert_biased", lambda a: testing.assert_biased(samples + 1.0, target=TARGET,
                                                                                 alpha=a))
    small, big = samples * 0.1, np.random.default_rng(2).normal(size=(200, 2))
    avl = (lambda **kw: testing.assert_variance_less(small, big, cost=(1, 1), **kw))
    out.append(Case("testing.assert_variance_less", "a", "legal", st.just(small), small,
                    lambda a: testing.assert_variance_less(a, big, cost=(1, 1)),
                    reference=lambda a: stats.variance_test(a, big, alternative="less", alpha=1e-3), project=_pv,
                    note="reference: stats.variance_test"))
    out.append(Case("testing.assert_variance_less", "options_a", "type", st.sampled_from(["tau", 3, ["tau"]]), "tau",
                    lambda o: testing.assert_variance_less("reinforce", "rloo", one, F, n=100, options_a=o),
                    expect=("options_a",)))
    out.append(Case("testing.assert_variance_less", "options_b", "unknown-option", st.just({"bogus": 1}),
                    {"bogus": 1}, lambda o: testing.assert_variance_less("reinforce", "rloo", one, F, n=100,
                                                                         options_b=o),
                    expect=("options_b", "bogus")))
    out.append(Case("testing.assert_variance_less", "coordinates", "unknown-option", st.sampled_from(["some", None]),
                    "some", lambda c: avl(coordinates=c), expect=("coordinates",)))
    out.append(Case("testing.assert_variance_less", "b", "shape", st.just(big[:, :1]), big[:, :1],
                    lambda b: testing.assert_variance_less(small, b, cost=(1, 1)), expect=("b", "a")))
    out += _alpha_cases("testing.assert_variance_less", lambda a: avl(alpha=a))
    out.append(Case("testing.rarest_outcome", "dist", "legal", st.lists(st.floats(-8, 8), min_size=1, max_size=4),
                    [0.3, -2.0], lambda p: testing.rarest_outcome(refgrad.Bernoulli(p)),
                    reference=lambda p: float(np.min(special.expit(-np.abs(np.asarray(p))))), rtol=1e-12))
    out.append(Case("testing.rarest_outcome", "dist", "type", st.sampled_from([dist_of("normal"), "x", None]),
                    dist_of("normal"), testing.rarest_outcome, expect=("dist",)))
    return out


def api_cases():
    return estimator_cases() + exact_cases() + stats_cases() + testing_cases()
