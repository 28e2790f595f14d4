"""Sweep table, part 1: distributions, relaxations, objectives and random.

Every entry is a :class:`sweep_framework.Case`; see ``sweep_cases.py`` for the
assembled table and the list of known failures.
"""
import itertools

import mpmath
import numpy as np
from hypothesis import strategies as st
from scipy import special

import refgrad
from refgrad import objectives as obj
from refgrad import random as rr
from refgrad import relaxations as rx
from sweep_framework import Case, ObjectiveFailure, array_variant, count_variant, scalar_variant

INF = np.inf


def _uniform(seed, shape):
    """The documented uniform map, (2k + 1) / 2**53 with k ~ U{0, ..., 2**52 - 1} from default_rng(seed)."""
    k = np.random.default_rng(seed).integers(0, 1 << 52, size=shape, dtype=np.int64)
    return (2.0 * k.astype(np.float64) + 1.0) * 2.0**-53
BAD_ARRAY = ("nan", "complex", "bool", "str", "object", "ragged")


def array_cases(func, arg, base, call, classes, expect=None, note=""):
    """Cases of bad arrays for ``arg``: ``call(value)`` must refuse naming ``expect`` (default ``arg``)."""
    out = []
    for cls in classes:
        strat, canon = array_variant(base, cls)
        out.append(Case(func, arg, cls, strat, canon, call, expect=expect or (arg,), note=note))
    return out


def list_case(func, arg, base, call, project=lambda r: r, rtol=0.0):
    """Nested list instead of the array ``base``: must equal the array call."""
    strat, canon = array_variant(base, "list")
    return Case(func, arg, "list", strat, canon, call, reference=lambda v: call(np.asarray(v, dtype=np.float64)),
                project=project, rtol=rtol)


# ============================================================================ distributions

BIT_FAMILIES = {
    "Bernoulli": (refgrad.Bernoulli, "logits", np.array([0.3, -1.2, 2.0]),
                  lambda p: special.expit(p)),
    "GaussianThreshold": (refgrad.GaussianThreshold, "mu", np.array([0.4, -0.7, 1.1]),
                          lambda p: special.ndtr(p)),
}
CAT_BASE = np.array([[0.5, -0.2, 0.1], [-1.0, 0.3, 0.8]])


def _bit_log_prob(p1, b):
    b = np.asarray(b, dtype=float).reshape(-1, p1.size)
    return np.sum(np.where(b == 1, np.log(p1), np.log1p(-p1)), axis=1)


def _bernoulli_score(logits, b):
    b = np.asarray(b, dtype=float).reshape(-1, logits.size)
    return b - special.expit(logits)


def _gt_score(mu, b):
    b = np.asarray(b, dtype=float).reshape(-1, mu.size)
    phi = np.exp(-0.5 * mu**2) / np.sqrt(2 * np.pi)
    return np.where(b == 1, phi / special.ndtr(mu), -phi / special.ndtr(-mu))


def _cat_log_prob(logits, b):
    lp = logits - special.logsumexp(logits, axis=1, keepdims=True)
    b = np.asarray(b, dtype=float).reshape((-1,) + logits.shape)
    return np.sum(b * lp, axis=(1, 2))


def _cat_score(logits, b):
    b = np.asarray(b, dtype=float).reshape((-1,) + logits.shape)
    return b - special.softmax(logits, axis=1)


def _bits(d, rows=4, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=(rows, d)).astype(float)


def _one_hot(d, K, rows=4, seed=0):
    idx = np.random.default_rng(seed).integers(0, K, size=(rows, d))
    return np.eye(K)[idx]


def _bits_strategy(d):
    return st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=d,
                                                                  max_size=d), min_size=n, max_size=n)).map(np.array)


def _one_hot_strategy(d, K):
    return st.lists(st.lists(st.integers(0, K - 1), min_size=d, max_size=d), min_size=1, max_size=6).map(
        lambda rows: np.eye(K)[np.array(rows)])


def distribution_constructor_cases():
    out = []
    for name, (ctor, arg, base, probs) in BIT_FAMILIES.items():
        out += array_cases(name, arg, base, ctor, BAD_ARRAY + ("empty", "0-d"))
        out += [Case(name, arg, "shape", st.sampled_from([base[None], base[:, None]]), base[None], ctor, expect=(arg,))]
        out.append(list_case(name, arg, base, ctor, project=lambda d: d.params))

        def inf_values(signs, base=base):
            arr = base.copy()
            arr[: len(signs)] = signs
            return arr
        out.append(Case(name, arg, "inf-legal",
                        st.lists(st.sampled_from([INF, -INF]), min_size=1, max_size=3).map(inf_values),
                        inf_values([INF, -INF]), ctor,
                        reference=lambda v, probs=probs: probs(np.asarray(v)), project=lambda r: r.probs
                        if hasattr(r, "probs") else r))
    ctor, arg = refgrad.Categorical, "logits"
    out += array_cases("Categorical", arg, CAT_BASE, ctor, BAD_ARRAY + ("empty", "0-d"))
    out.append(Case("Categorical", arg, "shape", st.sampled_from([CAT_BASE[0], CAT_BASE[None], CAT_BASE[:, :1]]),
                    CAT_BASE[:, :1], ctor, expect=(arg,), note="1-d, 3-d, or K = 1"))
    out.append(Case("Categorical", arg, "range", st.integers(0, 1).map(lambda i: _put_row(CAT_BASE, i, -INF)),
                    _put_row(CAT_BASE, 1, -INF), ctor, expect=(arg,), note="a row of all -inf"))
    out.append(list_case("Categorical", arg, CAT_BASE, ctor, project=lambda d: d.params))
    out.append(Case("Categorical", arg, "inf-legal", st.sampled_from([(0, 1), (1, 2), (0, 0)]).map(
        lambda ij: _put_entry(CAT_BASE, ij, INF)), _put_entry(CAT_BASE, (0, 1), INF), ctor,
        reference=lambda v: _cat_inf_probs(np.asarray(v)), project=lambda d: d.probs if hasattr(d, "probs") else d))
    # Normal
    theta = np.array([0.3, -0.5, 1.0])
    out += array_cases("Normal", "theta", theta, refgrad.Normal, BAD_ARRAY + ("inf", "empty", "0-d"))
    out.append(list_case("Normal", "theta", theta, refgrad.Normal, project=lambda d: d.mean))
    for arg in ("scale", "offset"):
        call = (lambda v, arg=arg: refgrad.Normal(theta, **{arg: v}))
        out += array_cases("Normal", arg, np.array([1.5, 0.5, 2.0]), call, ("nan", "inf", "complex", "str", "bool"))
        out.append(Case("Normal", arg, "broadcast", st.sampled_from([np.ones(1), np.ones((1, 3)), np.ones(2)]),
                        np.ones(1), call, expect=(arg,)))
    return out


def _put_row(base, i, value):
    arr = base.copy()
    arr[i] = value
    return arr


def _put_entry(base, ij, value):
    arr = base.copy()
    arr[ij] = value
    return arr


def _cat_inf_probs(logits):
    out = special.softmax(np.where(np.isinf(logits), 0.0, logits), axis=1)
    for i, row in enumerate(logits):
        if np.isposinf(row).any():
            out[i] = np.isposinf(row) / np.isposinf(row).sum()
    return out


def distribution_method_cases():
    out = []
    dists = {
        "Bernoulli": (Lazy(refgrad.Bernoulli, BIT_FAMILIES["Bernoulli"][2]), _bits(3), _bits_strategy(3),
                      lambda d, b: _bit_log_prob(special.expit(d.logits), b),
                      lambda d, b: _bernoulli_score(d.logits, b)),
        "GaussianThreshold": (Lazy(refgrad.GaussianThreshold, BIT_FAMILIES["GaussianThreshold"][2]), _bits(3),
                              _bits_strategy(3), lambda d, b: _bit_log_prob(special.ndtr(d.mu), b),
                              lambda d, b: _gt_score(d.mu, b)),
        "Categorical": (Lazy(refgrad.Categorical, CAT_BASE), _one_hot(2, 3), _one_hot_strategy(2, 3),
                        lambda d, b: _cat_log_prob(d.logits, b), lambda d, b: _cat_score(d.logits, b)),
    }
    for name, (dist, b, b_strategy, ref_lp, ref_score) in dists.items():
        for meth, ref in (("log_prob", ref_lp), ("score", ref_score)):
            func = f"{name}.{meth}"
            call = (lambda v, dist=dist, meth=meth: getattr(dist, meth)(v))
            out.append(Case(func, "b", "legal", b_strategy, b, call,
                            reference=lambda v, dist=dist, ref=ref: ref(dist, v), rtol=1e-12, atol=1e-300))
            out.append(list_case(func, "b", b, call))
            out += array_cases(func, "b", b, call, ("nan", "complex", "str", "object", "ragged", "0-d"))
            empty = np.zeros((0,) + b.shape[1:])
            out.append(Case(func, "b", "empty", st.just(empty), empty, call,
                            reference=lambda v, dist=dist, ref=ref, b=b: ref(dist, np.zeros((0,) + b.shape[1:]))))
            if name == "Categorical":
                out.append(Case(func, "b", "bool", st.just(b.astype(bool)), b.astype(bool), call, expect=("b",),
                                reference=lambda v, call=call: call(np.asarray(v, dtype=float)),
                                note="one-hot rows as bools: refuse naming b, or equal the float call"))
                out.append(Case(func, "b", "range", st.sampled_from([b * 0.5, b * 2.0, np.ones_like(b)]), b * 0.5,
                                call, expect=("b",), note="not one-hot"))
                out.append(Case(func, "b", "broadcast", st.just(b[:, :, :1]), b[:, :, :1], call, expect=("b",)))
            else:
                out.append(Case(func, "b", "bool", st.just(b.astype(bool)), b.astype(bool), call, expect=("b",),
                                reference=lambda v, call=call: call(np.asarray(v, dtype=float)),
                                note="bits as bools: refuse naming b, or equal the float call"))
                out.append(Case(func, "b", "range", st.sampled_from([b * 0.5, b + 1.0, -b]), b * 0.5 + 0.25, call,
                                expect=("b",), note="entries outside {0, 1}"))
                out.append(Case(func, "b", "broadcast", st.sampled_from([b[:, :1], b[:1, :1]]), b[:, :1], call,
                                expect=("b",)))
        # sample / from_uniforms / enumerate
        d_shape = b.shape[1:]
        for cls in ("count<=0", "count-float", "count-huge", "bool", "str"):
            strat, canon = count_variant(cls)
            out.append(Case(f"{name}.sample", "n", cls, strat, canon, lambda v, dist=dist: dist.sample(v, rng=1),
                            expect=("n",)))
        for val, cls in (((-1, -5), "range"), ((1.5, "seed"), "type")):
            out.append(Case(f"{name}.sample", "rng", cls, st.sampled_from(list(val)), val[0],
                            lambda v, dist=dist: dist.sample(3, rng=v), expect=("rng",)))
        out.append(Case(f"{name}.sample", "n", "legal", st.integers(1, 50), 5,
                        lambda v, dist=dist: dist.sample(v, rng=11),
                        reference=lambda v, dist=dist, d_shape=d_shape: dist.from_uniforms(
                            _uniform(11, (v,) + tuple(d_shape)))))
        u = _uniform(5, (4,) + tuple(d_shape))
        fu = (lambda v, dist=dist: dist.from_uniforms(v))
        out += array_cases(f"{name}.from_uniforms", "u", u, fu, ("nan", "complex", "str", "0-d"))
        for cls, fill in (("noise-0", 0.0), ("noise-1", 1.0)):
            out.append(Case(f"{name}.from_uniforms", "u", cls, st.integers(0, u.size - 1).map(
                lambda i, fill=fill, u=u: _put_flat(u, i, fill)), _put_flat(u, 0, fill), fu, expect=("u",)))
        out.append(Case(f"{name}.from_uniforms", "u", "broadcast", st.just(u[..., :1]), u[..., :1], fu, expect=("u",)))
        out.append(list_case(f"{name}.from_uniforms", "u", u, fu))
        out.append(Case(f"{name}.from_uniforms", "u", "legal", st.integers(0, 2**31).map(
            lambda s, d_shape=d_shape: _uniform(s, (3,) + tuple(d_shape))), u, fu,
            reference=lambda v, dist=dist: _reference_from_uniforms(dist, np.asarray(v))))
        size = 9 if name == "Categorical" else 8
        en = (lambda v, dist=dist: dist.enumerate(*v))
        out.append(Case(f"{name}.enumerate", "start", "range", st.sampled_from([(-1,), (size + 1,)]), (-1,), en,
                        expect=("start",)))
        out.append(Case(f"{name}.enumerate", "start", "count-float", st.just((1.5,)), (1.5,), en, expect=("start",)))
        out.append(Case(f"{name}.enumerate", "stop", "range", st.sampled_from([(2, 1), (0, size + 1)]), (2, 1), en,
                        expect=("stop",)))
        out.append(Case(f"{name}.enumerate", "limit", "count<=0", st.sampled_from([(0, None, 0), (0, None, -1)]),
                        (0, None, 0), en, expect=("limit",)))
        out.append(Case(f"{name}.enumerate", "limit", "range", st.just((0, None, 2)), (0, None, 2), en,
                        expect=("limit",), note="range wider than limit"))
        out.append(Case(f"{name}.enumerate", "start", "legal", st.integers(0, size).map(lambda s: (s,)), (0,), en,
                        reference=lambda v, dist=dist: _reference_enumerate(dist, v[0])))
    # Normal methods
    nd = Lazy(refgrad.Normal, [0.3, -0.5, 1.0], scale=1.5, offset=0.2)
    z = np.array([[0.1, -2.0, 3.0], [1.0, 0.0, -0.5]])
    for meth, ref in (("log_prob", lambda v: np.sum(-0.5 * (np.asarray(v, float) - nd.mean) ** 2
                                                            - 0.5 * np.log(2 * np.pi), axis=-1).reshape(-1)),
                      ("score", lambda v: (nd.scale * (np.asarray(v, float) - nd.mean)).reshape(-1, 3))):
        call = (lambda v, meth=meth: getattr(nd, meth)(v))
        func = f"Normal.{meth}"
        out.append(Case(func, "z", "legal", st.lists(st.floats(-10, 10), min_size=3, max_size=3).map(
            lambda r: np.array([r])), z, call, reference=ref, rtol=1e-12, atol=1e-14))
        out += array_cases(func, "z", z, call, ("nan", "inf", "complex", "str", "ragged", "0-d"))
        out.append(Case(func, "z", "broadcast", st.just(z[:, :1]), z[:, :1], call, expect=("z",)))
        out.append(list_case(func, "z", z, call))
    for cls in ("count<=0", "count-float", "count-huge"):
        strat, canon = count_variant(cls)
        out.append(Case("Normal.sample", "n", cls, strat, canon, lambda v: nd.sample(v, rng=1), expect=("n",)))
    return out


class Broken:
    """Stands in for an object whose construction failed while the table was built: every use fails."""

    def __init__(self, exc):
        self._exc = exc

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"the sweep's fixture could not be built: {type(self._exc).__name__}: {self._exc}")


def Lazy(factory, *args, **kwargs):  # noqa: N802 - reads like a constructor at the call sites
    """``factory(*args, **kwargs)``, or a :class:`Broken` stand-in if that raises (a broken
    constructor then fails its cases instead of the whole table)."""
    try:
        return factory(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return Broken(exc)


def _put_flat(base, i, value):
    arr = np.array(base, dtype=float, copy=True)
    arr.flat[i] = value
    return arr


def _reference_from_uniforms(dist, u):
    if dist.family == "bernoulli":
        return (dist.logits + np.log(u) - np.log1p(-u) > 0).astype(float)
    if dist.family == "gaussian_threshold":
        return (dist.mu + special.ndtri(u) >= 0).astype(float)
    g = -np.log(-np.log(u))
    return np.eye(dist.K)[np.argmax(dist.logits + g, axis=-1)]


def _reference_enumerate(dist, start):
    K = getattr(dist, "K", 2)
    rows = list(itertools.product(range(K), repeat=dist.d))[start:]
    if dist.family == "categorical":
        configs = np.eye(K)[np.array(rows, dtype=int).reshape(-1, dist.d)]
        probs = np.exp(_cat_log_prob(dist.logits, configs)) if len(rows) else np.zeros(0)
    else:
        configs = np.array(rows, dtype=float).reshape(-1, dist.d)
        p1 = special.expit(dist.logits) if dist.family == "bernoulli" else special.ndtr(dist.mu)
        probs = np.exp(_bit_log_prob(p1, configs)) if len(rows) else np.zeros(0)
    return configs.reshape((-1,) + tuple(dist.event_shape)), probs


# ============================================================================ relaxations

X2 = np.array([[0.3, -1.5, 2.0], [0.0, 4.0, -0.7]])
U2 = _uniform(3, X2.shape)


def _softmax_vjp_ref(x, tau, c):
    s = special.softmax(x / tau, axis=-1)
    cbar = np.sum(c * s, axis=-1, keepdims=True)
    zbar = np.sum(s * x / tau, axis=-1, keepdims=True)
    return s * (c - cbar) / tau, -np.sum(c * s * (x / tau - zbar), axis=-1) / tau


def _sigmoid_vjp_ref(x, tau, c):
    s = special.expit(x / tau)
    return c * s * (1 - s) / tau, -c * (x / tau) * s * (1 - s) / tau


def _log_sigmoid(t):
    return -np.logaddexp(0.0, -t)


def _bc_log_density_ref(x, logits, tau):
    t = logits - tau * (np.log(x) - np.log1p(-x))
    return np.log(tau) - np.log(x) - np.log1p(-x) + _log_sigmoid(t) + _log_sigmoid(-t)


def _concrete_log_density_ref(x, logits, tau):
    K = x.shape[-1]
    a = logits - tau * np.log(x)
    return (special.gammaln(K) + (K - 1) * np.log(tau) + np.sum(a - np.log(x), axis=-1)
            - K * special.logsumexp(a, axis=-1))


def _exp_concrete_ref(y, logits, tau, lebesgue):
    K = y.shape[-1]
    a = logits - tau * y
    out = special.gammaln(K) + (K - 1) * np.log(tau) + np.sum(a, axis=-1) - K * special.logsumexp(a, axis=-1)
    return out - y[..., -1] if lebesgue else out


SIMPLEX = special.softmax(X2, axis=-1)
LOG_SIMPLEX = special.log_softmax(X2, axis=-1)
X01 = special.expit(X2)

#: name -> (callable taking keyword args, legal keyword args, reference(kwargs) or None, array args, tau arg)
RELAXATIONS = {
    "sigmoid_tau": (rx.sigmoid_tau, {"x": X2, "tau": 0.7}, lambda k: special.expit(k["x"] / k["tau"])),
    "sigmoid_tau_vjp": (rx.sigmoid_tau_vjp, {"x": X2, "tau": 0.7, "cotangent": X2 * 0.5 + 1},
                        lambda k: _sigmoid_vjp_ref(k["x"], k["tau"], k["cotangent"])),
    "softmax_tau": (rx.softmax_tau, {"x": X2, "tau": 0.7}, lambda k: special.softmax(k["x"] / k["tau"], axis=-1)),
    "softmax_tau_vjp": (rx.softmax_tau_vjp, {"x": X2, "tau": 0.7, "cotangent": X2 * 0.5 + 1},
                        lambda k: _softmax_vjp_ref(k["x"], k["tau"], k["cotangent"])),
    "binary_concrete_sample": (rx.binary_concrete_sample, {"logits": X2, "tau": 0.7, "u": U2},
                               lambda k: special.expit((k["logits"] + np.log(k["u"]) - np.log1p(-k["u"])) / k["tau"])),
    "concrete_sample": (rx.concrete_sample, {"logits": X2, "tau": 0.7, "u": U2},
                        lambda k: special.softmax((k["logits"] - np.log(-np.log(k["u"]))) / k["tau"], axis=-1)),
    "exp_concrete_sample": (rx.exp_concrete_sample, {"logits": X2, "tau": 0.7, "u": U2},
                            lambda k: special.log_softmax((k["logits"] - np.log(-np.log(k["u"]))) / k["tau"], axis=-1)),
    "binary_concrete_log_density": (rx.binary_concrete_log_density, {"x": X01, "logits": X2, "tau": 0.7},
                                    lambda k: _bc_log_density_ref(k["x"], k["logits"], k["tau"])),
    "concrete_log_density": (rx.concrete_log_density, {"x": SIMPLEX, "logits": X2, "tau": 0.7},
                             lambda k: _concrete_log_density_ref(k["x"], k["logits"], k["tau"])),
    "exp_concrete_log_density": (rx.exp_concrete_log_density, {"y": LOG_SIMPLEX, "logits": X2, "tau": 0.7},
                                 lambda k: _exp_concrete_ref(k["y"], k["logits"], k["tau"], False)),
}


def _with(fn, kwargs, arg):
    return lambda v: fn(**{**kwargs, arg: v})


def relaxation_cases():
    out = []
    for name, (fn, kw, ref) in RELAXATIONS.items():
        func = f"relaxations.{name}"
        out.append(Case(func, "tau", "legal",
                        st.floats(0.05, 20.0), kw["tau"], _with(fn, kw, "tau"),
                        reference=lambda t, ref=ref, kw=kw: ref({**kw, "tau": t}), rtol=1e-9, atol=1e-12,
                        note="tau drawn from [0.05, 20]; reference: SciPy formula"))
        for cls in ("tau<=0", "tau=inf", "tau=nan", "complex", "bool", "str", "shape"):
            strat, canon = scalar_variant(cls, legal=0.7)
            out.append(Case(func, "tau", cls, strat, canon, _with(fn, kw, "tau"), expect=("tau",)))
        for arg, base in kw.items():
            if arg == "tau":
                continue
            call = _with(fn, kw, arg)
            classes = ("complex", "str", "object", "ragged")
            if arg in ("x", "logits", "cotangent", "y"):
                classes += ("nan",)
            if arg in ("cotangent", "y"):
                classes += ("inf",)
            out += array_cases(func, arg, base, call, classes)
            out.append(list_case(func, arg, base, call, rtol=0.0))
            if arg == "u" and name != "exp_concrete_sample":  # its documented -inf at u = 0 is not finite
                for cls, fill in (("noise-0", 0.0), ("noise-1", 1.0)):
                    # documented: u = 0 and u = 1 are legal for the relaxation samplers
                    out.append(Case(func, "u", cls, st.just(_put_flat(base, 0, fill)), _put_flat(base, 0, fill), call,
                                    reference=lambda v, name=name, kw=kw: _sample_limit_ref(name, kw, np.asarray(v)),
                                    rtol=1e-9, atol=1e-12, note="documented legal"))
                out.append(Case(func, "u", "range", st.sampled_from([1.5, -0.25]).map(
                    lambda x, base=base: _put_flat(base, 0, x)),
                                _put_flat(base, 0, 1.5), call, expect=("u",)))
            if name.startswith(("softmax_tau_vjp", "concrete", "exp_concrete")) and arg in ("x", "logits", "u", "y"):
                out.append(Case(func, arg, "broadcast", st.just(base[:, :1]), base[:, :1], call,
                                expect=(arg,), note="last axis 1 against K = 3"))
        if name.endswith("log_density"):
            pt = "y" if "y" in kw else "x"
            base = kw[pt]
            call = _with(fn, kw, pt)
            bad = {"binary_concrete_log_density": [0.0, 1.0, 1.5], "concrete_log_density": [0.0, -0.1, 2.0],
                   "exp_concrete_log_density": [1.0, 5.0]}[name]
            out.append(Case(func, pt, "range", st.sampled_from(bad).map(lambda x, base=base: _put_flat(base, 0, x)),
                            _put_flat(base, 0, bad[0]), call, expect=(pt,), note="off the support"))
    out.append(Case("relaxations.exp_concrete_log_density", "measure", "unknown-option",
                    st.sampled_from(["Lebesgue", "counting", None, 1]), "counting",
                    lambda v: rx.exp_concrete_log_density(LOG_SIMPLEX, X2, 0.7, measure=v), expect=("measure",)))
    out.append(Case("relaxations.exp_concrete_log_density", "measure", "legal", st.just("lebesgue"), "lebesgue",
                    lambda v: rx.exp_concrete_log_density(LOG_SIMPLEX, X2, 0.7, measure=v),
                    reference=lambda v: _exp_concrete_ref(LOG_SIMPLEX, X2, 0.7, True), rtol=1e-9, atol=1e-12))
    out.append(Case("relaxations.sigmoid_tau", "x", "inf-legal", st.sampled_from([INF, -INF]).map(
        lambda s: _put_flat(X2, 1, s)), _put_flat(X2, 1, INF), lambda v: rx.sigmoid_tau(v, 0.7),
        reference=lambda v: special.expit(np.asarray(v) / 0.7)))
    out.append(Case("relaxations.sigmoid_tau", "x", "0-d", st.floats(-50, 50), 0.3, lambda v: rx.sigmoid_tau(v, 0.7),
                    reference=lambda v: np.float64(special.expit(v / 0.7)), rtol=1e-12))
    out.append(Case("relaxations.sigmoid_tau", "x", "empty", st.just(np.zeros((0, 3))), np.zeros((0, 3)),
                    lambda v: rx.sigmoid_tau(v, 0.7), reference=lambda v: np.zeros((0, 3))))
    out.append(Case("relaxations.softmax_tau", "x", "0-d", st.just(np.array(0.3)), np.array(0.3),
                    lambda v: rx.softmax_tau(v, 0.7), expect=("x",)))
    out.append(Case("relaxations.softmax_tau", "x", "range", st.integers(0, 1).map(lambda i: _put_row(X2, i, -INF)),
                    _put_row(X2, 0, -INF), lambda v: rx.softmax_tau(v, 0.7), expect=("x",), note="a row of all -inf"))
    out.append(Case("relaxations.binary_concrete_sample", "logits", "broadcast", st.just(X2[:, :1]), X2[:, :1],
                    lambda v: rx.binary_concrete_sample(v, 0.7, U2),
                    reference=lambda v: special.expit((np.asarray(v) + np.log(U2) - np.log1p(-U2)) / 0.7), rtol=1e-12,
                    note="documented: logits broadcast against u"))
    return out


def _sample_limit_ref(name, kw, u):
    """Relaxed samples at u = 0 or 1 (noise ±inf): the limits, computed without NaN."""
    with np.errstate(all="ignore"):
        if name == "binary_concrete_sample":
            return special.expit((kw["logits"] + np.log(u) - np.log1p(-u)) / kw["tau"])
        z = kw["logits"] - np.log(-np.log(u))
        out = special.softmax(np.where(np.isposinf(z), 0.0, z) / kw["tau"], axis=-1)
        top = np.isposinf(z)
        rows = top.any(axis=-1)
        out[rows] = top[rows] / top[rows].sum(axis=-1, keepdims=True)
        return out


# ============================================================================ objectives

Z_BITS = np.array([[0.0, 1.0, 1.0], [0.25, 0.5, 1.0]])
V_BITS = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
TABLE_VALUES = np.arange(8.0).reshape(2, 2, 2) - 3.0


def _table_ref(z):
    z = np.asarray(z, float)
    out = np.zeros(z.shape[0])
    for b in itertools.product((0, 1), repeat=3):
        w = np.prod([z[:, i] if bi else 1 - z[:, i] for i, bi in enumerate(b)], axis=0)
        out += TABLE_VALUES[b] * w
    return out


def _table_grad_ref(z, h=1e-6):
    z = np.asarray(z, float)
    g = np.zeros_like(z)
    for i in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, i] = h
        g[:, i] = (_table_ref(z + e) - _table_ref(z - e)) / (2 * h)  # exact: F is affine in each coordinate
    return g


OBJECTIVES = {
    "SquaredDistance": (lambda: obj.SquaredDistance(0.45), lambda z: np.sum((z - 0.45) ** 2, axis=1),
                        lambda z: 2 * (z - 0.45), lambda z, v: 2 * v),
    "Linear": (lambda: obj.Linear([1.0, -2.0, 0.5]), lambda z: z @ np.array([1.0, -2.0, 0.5]),
               lambda z: np.broadcast_to([1.0, -2.0, 0.5], z.shape).copy(), lambda z, v: np.zeros_like(z)),
    "Table": (lambda: obj.Table(TABLE_VALUES, name="sweep_table"), _table_ref, _table_grad_ref, None),
}


def objective_cases():
    out = []
    ctor_base = {"SquaredDistance": ("target", np.array([0.45, 0.5, 0.1]), obj.SquaredDistance),
                 "Linear": ("weights", np.array([1.0, -2.0, 0.5]), obj.Linear),
                 "Table": ("values", TABLE_VALUES, obj.Table)}
    for name, (arg, base, ctor) in ctor_base.items():
        out += array_cases(name, arg, base, ctor, ("nan", "inf", "complex", "str", "object", "ragged", "bool"))
        out.append(list_case(name, arg, base, ctor, project=lambda o, ctor=ctor: o.value(Z_BITS)))
    out.append(Case("Table", "values", "shape", st.sampled_from([np.zeros((2, 3)), np.zeros(1), np.array(1.0)]),
                    np.zeros((2, 3)), obj.Table, expect=("values",)))
    z_strategy = st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=1, max_size=5).map(np.array)
    for name, (make, val, grad, hvp) in OBJECTIVES.items():
        o = Lazy(make)
        for meth, ref in (("value", val), ("grad", grad), ("hvp", hvp)):
            func = f"{name}.{meth}"
            call = ((lambda v, o=o, meth=meth: getattr(o, meth)(v)) if meth != "hvp"
                    else (lambda v, o=o: o.hvp(v, _direction(v))))
            if ref is not None:
                if meth == "hvp":
                    reference = (lambda v, ref=ref: ref(np.asarray(v, float), V_BITS[: np.shape(v)[0]]))
                else:
                    reference = (lambda v, ref=ref: ref(np.asarray(v, float)))
                out.append(Case(func, "z", "legal", z_strategy.map(lambda z: z[:2]), Z_BITS, call, reference=reference,
                                rtol=1e-9, atol=1e-9))
            out.append(list_case(func, "z", Z_BITS, call))
            empty = np.zeros((0, 3))
            out.append(Case(func, "z", "empty", st.just(empty), empty,
                            (lambda v, o=o, meth=meth: getattr(o, meth)(v) if meth != "hvp" else o.hvp(v, empty)),
                            reference=lambda v, meth=meth: np.zeros((0,) if meth == "value" else (0, 3)),
                            note="an empty batch is legal"))
            out += array_cases(func, "z", Z_BITS, call, ("nan", "complex", "str", "object", "ragged"),
                               expect=("z", name, "sweep_table"))
            out.append(Case(func, "z", "shape", st.sampled_from([Z_BITS[0], Z_BITS[None, None]]), Z_BITS[0], call,
                            expect=("z",)))
            if name != "SquaredDistance":
                out.append(Case(func, "z", "broadcast", st.just(Z_BITS[:, :1]), Z_BITS[:, :1],
                                (lambda v, o=o, meth=meth: getattr(o, meth)(v) if meth != "hvp" else o.hvp(v, v)),
                                expect=("z", "weights", "sweep_table")))
            if meth == "hvp":
                vcall = (lambda v, o=o: o.hvp(Z_BITS, v))
                out += array_cases(func, "v", V_BITS, vcall, ("nan", "inf", "complex", "str"))
                out.append(Case(func, "v", "broadcast", st.just(V_BITS[:, :1]), V_BITS[:, :1], vcall, expect=("v",)))
    # FunctionObjective and the evaluate helpers
    out.append(Case("FunctionObjective", "value_fn", "type", st.sampled_from([3.0, "f", None]), 3.0,
                    lambda v: obj.FunctionObjective(v), expect=("value_fn",)))
    out.append(Case("FunctionObjective", "grad_fn", "type", st.sampled_from([3.0, "g"]), 3.0,
                    lambda v: obj.FunctionObjective(lambda z: z.sum(1), grad_fn=v), expect=("grad_fn",)))
    for cls, fo in bad_objective_classes().items():
        strat, canon, propagate = fo
        out.append(Case("FunctionObjective.value", "value_fn", cls, strat, canon, lambda o: o.value(Z_BITS),
                        expect=("sweep_fn", "value_fn"), propagate=propagate))
    for helper in ("evaluate", "evaluate_grad"):
        fn = getattr(obj, helper)
        out.append(Case(f"objectives.{helper}", "f", "type", st.sampled_from([3.0, "f", None]), 3.0,
                        lambda v, fn=fn: fn(v, Z_BITS), expect=("f",)))
    out.append(Case("objectives.evaluate_hvp", "f", "type", st.sampled_from([3.0, None]), 3.0,
                    lambda v: obj.evaluate_hvp(v, Z_BITS, V_BITS), expect=("f",)))
    return out


def _direction(z):
    """A Hessian-vector direction with as many rows as ``z`` (whatever ``z`` is)."""
    try:
        return V_BITS[: len(z)]
    except TypeError:
        return V_BITS


def bad_function(kind, where=0, name="sweep_fn", grad_kind=None):
    """A FunctionObjective whose value (or gradient) misbehaves in the way ``kind`` says."""

    def value(z):
        z = np.asarray(z)
        base = np.sum(np.reshape(z, (z.shape[0], -1)), axis=1) * 0.5 + 0.1
        return _spoil(kind, base, z, where)

    def grad(z):
        g = np.ones_like(np.asarray(z)) * 0.5
        return _spoil(grad_kind, g, z, where) if grad_kind else g

    def hvp(z, v):
        return np.zeros_like(np.asarray(z))

    return obj.FunctionObjective(value, grad_fn=grad, hvp_fn=hvp, name=name)


def _spoil(kind, out, z, where):
    if kind is None:
        return out
    out = np.array(out, dtype=float)
    i = min(where, out.shape[0] - 1) if out.shape[0] else 0
    if kind == "nan":
        if out.size:
            out.flat[i] = np.nan
        return out
    if kind == "inf":
        if out.size:
            out.flat[i] = np.inf
        return out
    if kind == "shape":
        return out[..., None] if where % 2 == 0 else out[:-1]
    if kind == "complex":
        return out + 0.5j
    if kind == "str":
        return out.astype(str)
    if kind == "raises":
        raise ObjectiveFailure("the objective itself failed")
    raise ValueError(kind)


def bad_objective_classes(grad=False):
    """Input classes of misbehaving objectives: cls -> (strategy, canonical, exception allowed to propagate)."""
    out = {}
    for cls, kind in (("fn-nan", "nan"), ("fn-shape", "shape"), ("fn-complex", "complex"), ("fn-str", "str"),
                      ("fn-raises", "raises")):
        build = ((lambda w, kind=kind: bad_function(None, w, grad_kind=kind)) if grad
                 else (lambda w, kind=kind: bad_function(kind, w)))
        out[cls] = (st.integers(0, 3).map(build), build(0), ObjectiveFailure if kind == "raises" else None)
    return out


# ============================================================================ random

U1 = _uniform(7, (5,))


def _mp(fn, u):
    with mpmath.workdps(50):
        return np.float64(float(fn(mpmath.mpf(float(u)))))


def random_cases():
    out = []
    for v, cls in (([-1, -10**20], "range"), ([1.5, "seed", np.random.RandomState(0), True], "type")):
        out.append(Case("random.as_generator", "rng", cls, st.sampled_from(v), v[0], rr.as_generator, expect=("rng",)))
    out.append(Case("random.as_generator", "rng", "legal", st.integers(0, 2**63 - 1), 12,
                    lambda s: rr.as_generator(s).integers(0, 2**62, size=4),
                    reference=lambda s: np.random.default_rng(s).integers(0, 2**62, size=4)))
    for cls, (strat, canon) in {"count-huge": (st.sampled_from([10**13, (10**7, 10**6)]), 10**13),
                                "count<=0": (st.sampled_from([-1, (2, -3)]), -1),
                                "count-float": (st.sampled_from([2.5, (2.0, 3)]), 2.5),
                                "type": (st.sampled_from(["3", None, True]), "3")}.items():
        out.append(Case("random.uniform", "shape", cls, strat, canon, lambda s: rr.uniform(1, s), expect=("shape",)))
    out.append(Case("random.uniform", "rng", "type", st.sampled_from([1.5, "x", -1]), 1.5,
                    lambda r: rr.uniform(r, 3), expect=("rng",)))
    out.append(Case("random.uniform", "rng", "legal", st.integers(0, 2**32), 9, lambda r: rr.uniform(r, (4, 2)),
                    reference=lambda r: _uniform(r, (4, 2)), note="reference: the documented (2k + 1) / 2**53 map"))
    out.append(Case("random.uniform", "shape", "empty", st.sampled_from([0, (0, 3)]), 0, lambda s: rr.uniform(1, s),
                    reference=lambda s: np.zeros(s)))
    refs = {"gumbel": lambda u: -mpmath.log(-mpmath.log(u)), "exponential": lambda u: -mpmath.log(u),
            "logistic": lambda u: mpmath.log(u / (1 - u)),
            "normal": lambda u: mpmath.findroot(lambda x: mpmath.ncdf(x) - u, special.ndtri(float(u)))}
    for name, ref in refs.items():
        fn = getattr(rr, name)
        func = f"random.{name}"
        out.append(Case(func, "u", "legal", st.floats(1e-300, 1 - 2**-53), float(U1[0]), fn,
                        reference=lambda u, ref=ref: _mp(ref, u), rtol=1e-12, atol=1e-15,
                        note="reference: mpmath at 50 digits"))
        out += array_cases(func, "u", U1, fn, ("nan", "complex", "str", "object", "ragged", "bool"))
        for cls, fill in (("noise-0", 0.0), ("noise-1", 1.0)):
            out.append(Case(func, "u", cls, st.integers(0, 4).map(lambda i, fill=fill: _put_flat(U1, i, fill)),
                            _put_flat(U1, 0, fill), fn, expect=("u",)))
        out.append(list_case(func, "u", U1, fn))
        out.append(Case(func, "u", "empty", st.just(np.zeros((0, 2))), np.zeros((0, 2)), fn,
                        reference=lambda u: np.zeros((0, 2))))
    lg = CAT_BASE
    u3 = _uniform(2, (4,) + lg.shape)
    naive_argmax = (lambda u: np.argmax(lg - np.log(-np.log(np.asarray(u, float))), axis=-1))
    for name in ("categorical_gumbel_max", "categorical_exponential_argmin"):
        fn = getattr(rr, name)
        func = f"random.{name}"
        out.append(Case(func, "u", "legal", st.integers(0, 2**31).map(lambda s: _uniform(s, (3,) + lg.shape)), u3,
                        lambda u, fn=fn: fn(lg, u), reference=naive_argmax))
        out += array_cases(func, "u", u3, lambda u, fn=fn: fn(lg, u), ("nan", "complex", "str"))
        out += array_cases(func, "logits", lg, lambda x, fn=fn: fn(x, u3), ("nan", "complex", "str", "ragged"))
        out.append(Case(func, "u", "broadcast", st.just(u3[..., :1]), u3[..., :1], lambda u, fn=fn: fn(lg, u),
                        expect=("u",)))
        out.append(Case(func, "u", "noise-0", st.just(_put_flat(u3, 0, 0.0)), _put_flat(u3, 0, 0.0),
                        lambda u, fn=fn: fn(lg, u), expect=("u",)))
        out.append(Case(func, "logits", "range", st.just(_put_row(lg, 0, -INF)), _put_row(lg, 0, -INF),
                        lambda x, fn=fn: fn(x, u3), expect=("logits",), note="a row of all -inf"))
    out += conditional_cases()
    return out


def _cond_normal_ref(mu, b, v):
    b = np.asarray(b)
    lo = mu + special.ndtri(v * special.ndtr(-mu))
    hi = mu - special.ndtri((1 - v) * special.ndtr(mu))
    return np.where(b == 1, hi, lo)


def _cond_logistic_ref(ell, b, v):
    th = special.expit(ell)
    vp = np.where(np.asarray(b) == 1, (1 - th) + v * th, v * (1 - th))
    return ell + np.log(vp) - np.log1p(-vp)


def conditional_cases():
    out = []
    p = np.array([0.3, -1.2, 2.0])
    b = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    v = _uniform(4, b.shape)
    binary = {
        "conditional_logistic": (rr.conditional_logistic, "logits", _cond_logistic_ref),
        "conditional_logistic_grad": (rr.conditional_logistic_grad, "logits", None),
        "conditional_normal": (rr.conditional_normal, "mu", _cond_normal_ref),
        "conditional_normal_grad": (rr.conditional_normal_grad, "mu", None),
    }
    for name, (fn, pname, ref) in binary.items():
        func = f"random.{name}"
        if ref is not None:
            out.append(Case(func, "v", "legal", st.integers(0, 2**31).map(lambda s: _uniform(s, b.shape)), v,
                            lambda vv, fn=fn: fn(p, b, vv), reference=lambda vv, ref=ref: ref(p, b, np.asarray(vv)),
                            rtol=1e-9, atol=1e-12))
        out += array_cases(func, pname, p, lambda x, fn=fn: fn(x, b, v), ("nan", "complex", "str", "ragged"))
        out += array_cases(func, "v", v, lambda x, fn=fn: fn(p, b, x), ("nan", "complex", "str"))
        out += array_cases(func, "b", b, lambda x, fn=fn: fn(p, x, v), ("nan", "complex", "str"))
        out.append(Case(func, "b", "range", st.sampled_from([2.0, 0.5, -1.0]).map(lambda x: _put_flat(b, 0, x)),
                        _put_flat(b, 0, 0.5), lambda x, fn=fn: fn(p, x, v), expect=("b",)))
        out.append(Case(func, "b", "range", st.just(_put_flat(p, 0, -INF)), _put_flat(p, 0, -INF),
                        lambda x, fn=fn: fn(x, b, v), expect=("b", pname), note="b = 1 impossible under -inf"))
        for cls, fill in (("noise-0", 0.0), ("noise-1", 1.0)):
            out.append(Case(func, "v", cls, st.just(_put_flat(v, 0, fill)), _put_flat(v, 0, fill),
                            lambda x, fn=fn: fn(p, b, x), expect=("v",)))
        out.append(Case(func, "v", "broadcast", st.just(v[:, :1]), v[:, :1], lambda x, fn=fn: fn(p, b, x),
                        expect=("v",)))
        out.append(list_case(func, "v", v, lambda x, fn=fn: fn(p, b, x)))
        out.append(Case(func, "b", "bool", st.just(b.astype(bool)), b.astype(bool), lambda x, fn=fn: fn(p, x, v),
                        reference=lambda x, fn=fn: fn(p, np.asarray(x, float), v), note="documented legal"))
    lg = CAT_BASE
    bc = np.array([[0, 2], [1, 1]])
    vc = _uniform(6, (2,) + lg.shape)
    cot = np.ones_like(vc) * 0.5
    for name, fn in (("conditional_gumbel", lambda x, bb, vv: rr.conditional_gumbel(x, bb, vv)),
                     ("conditional_gumbel_vjp", lambda x, bb, vv: rr.conditional_gumbel_vjp(x, bb, vv, cot))):
        func = f"random.{name}"
        out += array_cases(func, "logits", lg, lambda x, fn=fn: fn(x, bc, vc), ("nan", "complex", "str", "ragged"))
        out += array_cases(func, "v", vc, lambda x, fn=fn: fn(lg, bc, x), ("nan", "complex", "str"))
        out.append(Case(func, "b", "range", st.sampled_from([3, -1]).map(lambda x: _put_flat(bc, 0, x).astype(int)),
                        _put_flat(bc, 0, 3).astype(int), lambda x, fn=fn: fn(lg, x, vc), expect=("b",)))
        out.append(Case(func, "b", "range", st.just(np.array([[0.5, 2.0], [1.0, 1.0]])),
                        np.array([[0.5, 2.0], [1.0, 1.0]]), lambda x, fn=fn: fn(lg, x, vc), expect=("b",),
                        note="non-integer category"))
        out.append(Case(func, "b", "str", st.just(bc.astype(str)), bc.astype(str), lambda x, fn=fn: fn(lg, x, vc),
                        expect=("b",)))
        for cls, fill in (("noise-0", 0.0), ("noise-1", 1.0)):
            out.append(Case(func, "v", cls, st.just(_put_flat(vc, 0, fill)), _put_flat(vc, 0, fill),
                            lambda x, fn=fn: fn(lg, bc, x), expect=("v",)))
        out.append(Case(func, "v", "broadcast", st.just(vc[:, :, :1]), vc[:, :, :1], lambda x, fn=fn: fn(lg, bc, x),
                        expect=("v",)))
        out.append(list_case(func, "v", vc, lambda x, fn=fn: fn(lg, bc, x)))
    vjp = (lambda c: rr.conditional_gumbel_vjp(lg, bc, vc, c))
    out += array_cases("random.conditional_gumbel_vjp", "cotangent", cot, vjp, ("nan", "inf", "complex", "str"))
    out.append(Case("random.conditional_gumbel_vjp", "cotangent", "broadcast", st.just(cot[:, :, :1]), cot[:, :, :1],
                    vjp, expect=("cotangent",)))
    return out


def core_cases():
    return (distribution_constructor_cases() + distribution_method_cases() + relaxation_cases() + objective_cases()
            + random_cases())
