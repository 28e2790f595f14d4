"""Sweep table, part 4: refgrad.crosscheck, the torch / JAX adapters, stats at any scale, work budgets,
the command lines.

Every legal case is checked against an independent reference: a closed form (per-sample gradients of
``sum((p * w)**2)``, the exact binomial test Holm-combined by hand, log-softmax by SciPy), the JAX or
torch function an adapter stands for, or the same call on unscaled data (stats at scale s must give
the p-value and decision of scale 1).  The command lines run as subprocesses: a bad argument must
end with exit status 2 and a usage message naming the option, with no traceback (:func:`_cli` turns
that into a ``ValueError`` carrying the message, anything else into a failure).  Cases of a framework
that is not installed are left out of the table.

See ``sweep_cases.py`` for the assembled table and the list of known failures.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps

import refgrad
from refgrad import crosscheck as cc
from refgrad import exact, stats
from refgrad.objectives import SquaredDistance
from sweep_cases_core import Lazy
from sweep_framework import Case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = Lazy(refgrad.Bernoulli, [0.3, -1.0])
F = SquaredDistance([0.45, 0.2])
SCALES = (1e-300, 1e-150, 1.0, 1e150, 1e300)


def _have(module):
    return importlib.util.find_spec(module) is not None


def _reinforce(n=400, seed=1):
    return refgrad.estimate("reinforce", D, F, n=n, rng=seed)


X = Lazy(_reinforce)


def _verdict_key(v):
    """passed (as 0/1) and the p-value (0 when None): what two verdicts of the same data must share."""
    if isinstance(v, list):  # a reference given directly
        return v
    return [np.float64(bool(v.passed)), np.float64(0.0 if v.pvalue is None else v.pvalue)]


# ============================================================================ crosscheck


def _put(arr, value):
    out = np.array(arr, dtype=float, copy=True)
    out.flat[0] = value
    return out


def check_estimator_cases():
    out = []
    func = "crosscheck.check_estimator"
    ce = (lambda s: cc.check_estimator(s, D, F))
    out.append(Case(func, "samples", "legal", st.integers(0, 2**32).map(lambda s: _reinforce(400, s)), X, ce,
                    reference=lambda s: [1.0, np.float64(len(s))],
                    project=lambda v: v if isinstance(v, list) else [np.float64(v.passed), np.float64(v.n)],
                    rtol=1e-12, note="REINFORCE estimates (seed drawn): passes at alpha 1e-3"))
    for cls, value in (("nan", np.nan), ("inf", np.inf)):
        out.append(Case(func, "samples", cls, st.sampled_from([value, -value]), _put(X, value),
                        lambda s, v=value: ce(_put(X, s if np.ndim(s) == 0 else v)), expect=("samples",),
                        reference=lambda s: [0.0], project=lambda v: v if isinstance(v, list) else [float(v.passed)],
                        rtol=0.0, note="refused, or a failing verdict"))
    out.append(Case(func, "samples", "shape", st.sampled_from([1, 3]), 1,
                    lambda k: ce(np.ones((400, k)) if k != 3 else np.ones((400, 2, 1))), expect=("samples",)))
    out.append(Case(func, "samples", "empty", st.just(0), 0, lambda k: ce(np.zeros((k, 2))), expect=("samples",)))
    out.append(Case(func, "samples", "complex", st.floats(1e-3, 1.0), 0.5, lambda im: ce(X + 1j * im),
                    expect=("samples",)))
    xi = np.round(_reinforce()).astype(np.int64)
    out.append(Case(func, "samples", "type", st.just(xi), xi, ce, expect=("samples",),
                    reference=lambda s: cc.check_estimator(np.asarray(s, dtype=np.float64), D, F),
                    project=_verdict_key, rtol=1e-12, note="integer estimates: refused, or judged as float64"))
    out.append(Case(func, "unbiased", "type", st.sampled_from(["no", "yes", 1.5, None]), "no",
                    lambda u: cc.check_estimator(X, D, F, unbiased=u), expect=("unbiased",)))
    out.append(Case(func, "options", "unknown-option", st.sampled_from([{"tau": 0.5}, {"baseline": "mean"}]),
                    {"tau": 0.5}, lambda o: cc.check_estimator(X, D, F, **o), expect=("name", "options", "tau",
                                                                                    "baseline"),
                    note="estimator options without name="))
    out.append(Case(func, "alpha", "range", st.sampled_from([0.0, 1.0, 1.5, -0.1, np.nan]), 1.5,
                    lambda a: cc.check_estimator(X, D, F, alpha=a), expect=("alpha",)))
    # check_same_estimates
    func = "crosscheck.check_same_estimates"
    noise = Lazy(lambda: refgrad.ESTIMATORS["reinforce"].draw_noise(D, 50, rng=2))
    ours = Lazy(lambda: refgrad.estimate("reinforce", D, F, noise=noise))
    cs = (lambda r: cc.check_same_estimates(ours, "reinforce", D, F, noise, rtol=r))
    out.append(Case(func, "rtol", "legal", st.sampled_from([1e-12, 1e-6, 0.1]), 1e-9, cs,
                    reference=lambda r: [1.0, 0.0], project=_verdict_key, rtol=0.0,
                    note="refgrad's own estimates on the same noise agree"))
    out.append(Case(func, "rtol", "range", st.sampled_from([-1.0, np.nan, -np.inf, np.inf]), -1.0, cs,
                    expect=("rtol",)))
    out.append(Case(func, "rtol", "str", st.sampled_from(["tight", "1e-6"]), "tight", cs, expect=("rtol",)))
    return out


def _binom_holm(b, logits):
    """The exact two-sided binomial test per coordinate, Holm-combined: min(1, d * min p)."""
    b = np.asarray(b)
    p1 = special.expit(np.asarray(logits, dtype=float))
    ps = [sps.binomtest(int(b[:, j].sum()), b.shape[0], p1[j]).pvalue for j in range(b.shape[1])]
    return min(1.0, len(ps) * min(ps))


def sampler_cases():
    out = []
    logits = np.array([0.3, -1.0])
    bits = Lazy(lambda: (np.random.default_rng(3).random((500, 2)) < special.expit(logits)).astype(float))
    out.append(Case("crosscheck.check_bernoulli_sampler", "samples", "legal",
                    st.integers(0, 2**32).map(lambda s: (np.random.default_rng(s).random((300, 2))
                                                         < special.expit(logits)).astype(float)), bits,
                    lambda b: cc.check_bernoulli_sampler(b, logits), reference=lambda b: _binom_holm(b, logits),
                    project=lambda v: np.float64(v.pvalue if hasattr(v, "pvalue") else v), rtol=1e-9,
                    note="reference: scipy.stats.binomtest per coordinate, Holm"))
    idx = Lazy(lambda: np.random.default_rng(4).integers(0, 3, size=(300, 2)))
    zeros = np.zeros((2, 3))
    seeded = (lambda s: cc.check_categorical_sampler(idx, zeros, seed=s))
    out.append(Case("crosscheck.check_categorical_sampler", "seed", "legal",
                    st.sampled_from([np.int64(7), np.uint8(7)]),
                    np.int64(7), seeded, reference=lambda s: seeded(7), project=_verdict_key, rtol=0.0,
                    note="a NumPy integer seed: the same verdict as the int"))
    for func, call in (("crosscheck.check_categorical_sampler", seeded),
                       ("crosscheck.check_relaxed_sampler",
                        lambda s: cc.check_relaxed_sampler(np.full((100, 2), 0.5), np.zeros(2), 1.0,
                                                           family="binary_concrete", seed=s))):
        out.append(Case(func, "seed", "type", st.sampled_from([0.5, True, "7"]), 0.5, call,
                        expect=("seed",)))
        out.append(Case(func, "seed", "range", st.sampled_from([-3, -1, -2**70]), -3, call, expect=("seed",)))
    off_null = np.zeros((500, 2), dtype=np.int64)  # every sample in category 0: far off the null
    out.append(Case("crosscheck.check_categorical_sampler", "resamples", "count-huge",
                    st.sampled_from([10**15, 10**12, 2**62]), 10**15,
                    lambda r: cc.check_categorical_sampler(off_null, zeros, resamples=r),
                    expect=("resamples", "max_work"), note="off-null samples: refused before any draw"))
    # check_log_prob
    ell = np.array([[0.5, -0.2, 0.1], [-1.0, 0.3, 0.8]])
    pts = np.array([[0, 2], [1, 1], [2, 0]])
    good = np.take_along_axis(ell - special.logsumexp(ell, axis=-1, keepdims=True), pts.T, axis=-1).T
    lp = (lambda v: cc.check_log_prob(v, pts, ell))
    out.append(Case("crosscheck.check_log_prob", "values", "legal", st.just(good), good, lp,
                    reference=lambda v: [1.0, 0.0], project=_verdict_key, rtol=0.0,
                    note="reference: log-softmax by scipy.special.logsumexp"))
    out.append(Case("crosscheck.check_log_prob", "values", "complex", st.just(good + 0.5j), good + 0.5j, lp,
                    expect=("values",)))
    out.append(Case("crosscheck.check_log_prob", "values", "shape", st.sampled_from([good[:2], good[:, :1].T]),
                    good[:2], lp, expect=("values", "points"), reference=lambda v: [0.0],
                    project=lambda v: v if isinstance(v, list) else [float(v.passed)], rtol=0.0,
                    note="refused, or a failing verdict (diagnosis 'shape')"))
    out.append(Case("crosscheck.check_log_prob", "family", "unknown-option", st.sampled_from(["poisson", None]),
                    "poisson", lambda fam: cc.check_log_prob(good, pts, ell, family=fam), expect=("family",)))
    return out


def verdict_cases():
    out = []
    base = dict(check="c", passed=True, diagnosis="agrees", test="t", statistic=0.1, pvalue=0.5, alpha=0.01, n=10)

    def build(**kw):
        return cc.Verdict(**{**base, **kw})
    import json
    out.append(Case("crosscheck.Verdict", "pvalue", "legal", st.floats(0.0, 1.0), 0.5,
                    lambda p: json.loads(json.dumps(build(pvalue=p, compared={"m": np.arange(3.0)}).to_dict())),
                    reference=lambda p: {"pvalue": p, "n": 10, "passed": True},
                    project=lambda d: [np.float64(d["pvalue"]), np.float64(d["n"]), np.float64(d["passed"])],
                    rtol=0.0, note="to_dict() through JSON keeps the fields"))
    for arg, cls, values, canon in (("passed", "type", ["no", 1, None], "no"),
                                    ("pvalue", "nan", [np.nan], np.nan),
                                    ("pvalue", "range", [2.0, -0.1, np.inf], 2.0),
                                    ("n", "count<=0", [-1, -10**6], -1),
                                    ("n", "count-float", [2.5, 10.0], 2.5),
                                    ("alpha", "range", [0.0, 1.0, np.nan], 1.0),
                                    ("compared", "complex", [{"x": 1j}, {"x": np.array([1 + 2j])}], {"x": 1j}),
                                    ("statistic", "complex", [1j, np.complex128(2)], 1j)):
        out.append(Case("crosscheck.Verdict", arg, cls, st.sampled_from(values), canon,
                        lambda v, arg=arg: build(**{arg: v}), expect=(arg,)))
    return out


# ============================================================================ adapters


def _psg_ref(p, w):
    """d/dp sum((p * w_i)**2) = 2 p w_i**2 per sample (rows of NaN / inf samples dropped by the caller)."""
    return 2.0 * np.asarray(p) * np.asarray(w) ** 2


W = np.random.default_rng(5).normal(size=(6, 2))
P0 = np.array([0.5, -2.0])


def torch_cases():
    import torch

    import refgrad.crosscheck.torch as ct
    out = []

    def psg(w, n_bad=0):
        a = torch.tensor(P0, dtype=torch.float64, requires_grad=True)
        wt = torch.tensor(np.asarray(w, dtype=float))
        return ct.per_sample_gradients(lambda: ((a * wt) ** 2).sum(-1), a)
    wdraw = st.integers(1, 300).map(lambda n: np.random.default_rng(n).normal(size=(n, 2)))
    out.append(Case("crosscheck.torch.per_sample_gradients", "surrogate", "legal", wdraw, W, psg,
                    reference=lambda w: _psg_ref(P0, w), rtol=1e-14, note="batched surrogate; closed form 2 p w^2"))
    out.append(Case("crosscheck.torch.per_sample_gradients", "surrogate", "nan",
                    st.sampled_from([np.nan, np.inf, -np.inf]), np.nan, lambda v: psg(_put(W, v))[1:],
                    reference=lambda v: _psg_ref(P0, W)[1:], rtol=1e-14,
                    note="one non-finite sample: the other rows are unchanged"))
    a1 = (lambda: torch.tensor(P0, requires_grad=True))
    out.append(Case("crosscheck.torch.per_sample_gradients", "params", "type", st.sampled_from(["a", None, 3.0]), "a",
                    lambda p: ct.per_sample_gradients(lambda: (a1() ** 2).sum(), p), expect=("params",)))
    out.append(Case("crosscheck.torch.per_sample_gradients", "params", "complex", st.just(1), 1,
                    lambda _: (lambda c: ct.per_sample_gradients(lambda i: (c.abs() ** 2).sum(), c, n=2))(
                        torch.ones(2, dtype=torch.complex128, requires_grad=True)), expect=("params",)))
    out.append(Case("crosscheck.torch.per_sample_gradients", "surrogate", "fn-shape", st.just(1), 1,
                    lambda _: (lambda a: ct.per_sample_gradients(lambda i: a * 2, a, n=3))(a1()),
                    expect=("surrogate",)))
    out.append(Case("crosscheck.torch.per_sample_gradients", "n", "count-huge", st.sampled_from([10**6, 10**13]),
                    10**6, lambda n: (lambda b: ct.per_sample_gradients(lambda i: b.sum(), b, n=n))(
                        torch.ones(10**6, requires_grad=True)), expect=("n",),
                    note="10**6 parameters x n rows beyond the 4 GiB rule"))
    out.append(Case("crosscheck.torch.per_sample_gradients", "n", "count<=0", st.sampled_from([0, -1]), -1,
                    lambda n: (lambda a: ct.per_sample_gradients(lambda i: (a ** 2).sum(), a, n=n))(a1()),
                    expect=("n",)))
    out.append(Case("crosscheck.torch.feed_exponential", "e", "range", st.sampled_from([-1.0, 0.0, np.nan, np.inf]),
                    -1.0, lambda v: ct.feed_exponential([1.0, v]).__enter__(), expect=("e",)))
    out.append(Case("crosscheck.torch.feed_rand", "u", "range", st.sampled_from([0.0, 1.0, np.nan, 1.5]), 1.0,
                    lambda v: ct.feed_rand([0.5, v]).__enter__(), expect=("u",)))
    u = np.array([0.25, 0.5, 0.75])

    def fed(_):
        with ct.feed_rand(u):
            return torch.rand(3, dtype=torch.float64).numpy()
    out.append(Case("crosscheck.torch.feed_rand", "u", "legal", st.just(1), 1, fed, reference=lambda _: u, rtol=0.0,
                    note="torch.rand(3) inside returns u"))

    def rand_bad(args):
        with ct.feed_rand(u):
            return torch.rand(*args[0], **args[1]).numpy()
    out.append(Case("crosscheck.torch.feed_rand", "size", "shape", st.sampled_from([((-1,), {}), ((4,), {})]),
                    ((-1,), {}), rand_bad, expect=("size", "u", "shape"), propagate=RuntimeError,
                    note="torch.rand(-1): torch's own RuntimeError, as without the feed; 4 values of 3 fed"))
    a64 = np.arange(3.0)
    out.append(Case("crosscheck.torch.from_numpy", "a", "legal", st.just(a64), a64,
                    lambda a: ct.to_numpy(ct.from_numpy(a)), reference=lambda a: a, rtol=0.0))
    out.append(Case("crosscheck.torch.from_numpy", "a", "object", st.just(np.array([None, 1.0])),
                    np.array([None, 1.0]), ct.from_numpy, expect=("a",)))
    out.append(Case("crosscheck.torch.from_numpy", "dtype", "unknown-option", st.sampled_from(["float7", 3]),
                    "float7", lambda d: ct.from_numpy(a64, dtype=d), expect=("dtype",)))
    return out


def jax_cases():
    import jax
    import jax.numpy as jnp

    import refgrad.crosscheck.jax as cj
    out = []
    key = jax.random.key(0)
    out.append(Case("crosscheck.jax.uniforms_from_key", "shape", "legal",
                    st.tuples(st.integers(1, 5), st.integers(1, 4)), (3, 2),
                    lambda s: cj.uniforms_from_key(key, s, kind="uniform"),
                    reference=lambda s: np.asarray(jax.random.uniform(key, s), dtype=np.float64), rtol=0.0,
                    note="reference: jax.random.uniform(key, shape)"))
    out.append(Case("crosscheck.jax.uniforms_from_key", "shape", "legal", st.integers(1, 6), 4,
                    lambda s: -np.log(-np.log(cj.uniforms_from_key(key, (s,)))),
                    reference=lambda s: np.asarray(jax.random.gumbel(key, (s,)), dtype=np.float64), rtol=2e-6,
                    atol=1e-6, note="Gumbel -log(-log u) against jax.random.gumbel (float32 rounding)"))
    out.append(Case("crosscheck.jax.uniforms_from_key", "shape", "count-huge",
                    st.sampled_from([(10**7, 10**6), (2**40,)]), (10**7, 10**6),
                    lambda s: _in_subprocess("import jax, refgrad.crosscheck.jax as cj; "
                                             f"cj.uniforms_from_key(jax.random.key(0), {s!r})"),
                    expect=("shape",), note="in a subprocess: this draw once aborted the interpreter in XLA"))
    out.append(Case("crosscheck.jax.uniforms_from_key", "shape", "range", st.sampled_from([(-1,), (2.5,), "3"]), (-1,),
                    lambda s: cj.uniforms_from_key(key, s), expect=("shape",)))
    out.append(Case("crosscheck.jax.uniforms_from_key", "key", "type",
                    st.sampled_from(["abc", np.array([1, 2, 3], dtype=np.uint32), None]), "abc",
                    lambda k: cj.uniforms_from_key(k, (3,)), expect=("key",)))
    out.append(Case("crosscheck.jax.uniforms_from_key", "dtype", "unknown-option", st.sampled_from(["int32", "x"]),
                    "int32", lambda d: cj.uniforms_from_key(key, (3,), dtype=d), expect=("dtype",)))
    out.append(Case("crosscheck.jax.from_numpy", "dtype", "unknown-option", st.sampled_from(["float7", 3]), "float7",
                    lambda d: cj.from_numpy(np.ones(2), dtype=d), expect=("dtype",)))
    out.append(Case("crosscheck.jax.from_numpy", "a", "object", st.just(np.array([None, 1.0])),
                    np.array([None, 1.0]), cj.from_numpy, expect=("a",)))

    def psg(w):
        return cj.per_sample_gradients(lambda p, wi: jnp.sum((p * wi) ** 2), jnp.asarray(P0, dtype=jnp.float32),
                                       jnp.asarray(np.asarray(w), dtype=jnp.float32))
    w32 = W.astype(np.float32).astype(np.float64)
    out.append(Case("crosscheck.jax.per_sample_gradients", "surrogate", "legal", st.just(w32), w32, psg,
                    reference=lambda w: _psg_ref(P0, w), rtol=1e-6, note="closed form 2 p w^2 (float32)"))
    out.append(Case("crosscheck.jax.per_sample_gradients", "keys_or_noise", "nan", st.sampled_from([np.nan, np.inf]),
                    np.nan, lambda v: psg(_put(w32, v))[1:], reference=lambda v: _psg_ref(P0, w32)[1:], rtol=1e-6,
                    note="one non-finite sample: the other rows are unchanged"))
    out.append(Case("crosscheck.jax.per_sample_gradients", "keys_or_noise", "0-d", st.sampled_from(["x", 1.0]), "x",
                    lambda k: cj.per_sample_gradients(lambda p, wi: jnp.sum(p * wi), jnp.ones(2), k),
                    expect=("keys_or_noise",)))
    out.append(Case("crosscheck.jax.per_sample_gradients", "params", "count-huge", st.just(10**6), 10**6,
                    lambda m: cj.per_sample_gradients(lambda q, x: jnp.sum(q), jnp.ones(m), jnp.ones((1000, 1))),
                    expect=("params", "keys_or_noise", "n")))
    return out


# ============================================================================ stats at any scale, work budgets


def scale_cases():
    out = []
    rng = np.random.default_rng(11)
    x = rng.normal(size=(120, 2)) + 0.3
    a, b = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) * 3.0
    heavy = rng.standard_t(2.5, size=(200, 2))

    def decision(v):
        return [np.float64(v.pvalue), np.float64(bool(getattr(v, "reject", getattr(v, "passed", False))))]
    tests = (("stats.unbiasedness_test", lambda s: stats.unbiasedness_test(x * s, np.zeros(2)), decision),
             ("stats.variance_test", lambda s: stats.variance_test(a * s, b * s), decision),
             ("stats.heavy_tail_diagnostic", lambda s: stats.heavy_tail_diagnostic(heavy * s),
              lambda r: [np.asarray(r.flagged, dtype=float), np.asarray(r.skewness), np.asarray(r.excess_kurtosis)]),
             ("stats.unbiasedness_test[bootstrap]",
              lambda s: stats.unbiasedness_test(x * s, np.full(2, 0.3) * s, calibration="bootstrap"),
              decision))
    for func, call, proj in tests:
        for s in SCALES:
            out.append(Case(func, "samples",
                            "extreme", st.just(s), s, call, reference=lambda s, call=call: call(1.0), project=proj,
                            rtol=1e-9, atol=1e-300, note=f"data x {s:g}; reference: the same call at scale 1"))
    return out


def budget_cases():
    out = []
    x = np.random.default_rng(0).normal(size=(120, 2))
    out.append(Case("stats.unbiasedness_test", "resamples", "count-huge", st.sampled_from([10**12, 10**15]), 10**12,
                    lambda r: stats.unbiasedness_test(x, np.zeros(2), calibration="bootstrap", resamples=r),
                    expect=("resamples", "max_work")))
    out.append(Case("exact.moments[monte_carlo]", "samples", "count-huge", st.sampled_from([10**13, 10**11]), 10**13,
                    lambda n: exact.moments("reinforce", D, F, method="monte_carlo", samples=n),
                    expect=("samples", "max_work"), note="refused before any estimate"))
    d61 = Lazy(refgrad.Bernoulli, np.zeros(61))
    f61 = SquaredDistance(np.zeros(61))
    out.append(Case("exact.gradient", "limit", "count-huge", st.sampled_from([2**62, 2**61]), 2**62,
                    lambda lim: exact.gradient(d61, f61, limit=lim), expect=("limit",),
                    reference=lambda lim: exact.gradient(d61, f61), rtol=1e-13, atol=1e-15,
                    note="a raised limit: refuse, or the separable answer of the default limit"))
    return out


# ============================================================================ command lines


def _in_subprocess(code, timeout=50):
    """Run ``code`` in a fresh interpreter; a ValueError / TypeError there is raised here with its message."""
    wrapper = ("import sys\ntry:\n    exec(%r)\nexcept (ValueError, TypeError) as exc:\n"
               "    print('REFUSED ' + type(exc).__name__ + ': ' + str(exc)); sys.exit(3)\n") % code
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("REFUSED "):
            raise ValueError(line[len("REFUSED "):])
    raise RuntimeError(f"subprocess exited with status {proc.returncode}: "
                       f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def _cli(module, args, timeout=50):
    """``python -m module args``: exit 2 with a usage message and no traceback becomes a ValueError (its stderr)."""
    with tempfile.TemporaryDirectory() as cwd:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd, env=env)
        created = os.listdir(cwd)
    err = proc.stderr
    if "Traceback" in err or "Traceback" in proc.stdout:
        raise RuntimeError(f"exit {proc.returncode} with a traceback: {err.strip().splitlines()[-1:]}")
    if proc.returncode != 2 or "usage:" not in err:
        raise RuntimeError(f"exit {proc.returncode} (expected 2 with a usage message): {err.strip()[-200:]}")
    if created:
        raise RuntimeError(f"refused, but left {created} in the current directory")
    raise ValueError(err.strip().splitlines()[-1])


_FILE = os.path.join(tempfile.gettempdir(), "refgrad-sweep-a-file.txt")
UNWRITABLE = "/proc/refgrad-sweep/out"


def _a_file():
    with open(_FILE, "w", encoding="ascii") as fh:
        fh.write("x")
    return _FILE


def cli_cases():
    out = []
    for arg, cls, values, note in (
            ("--out", "type", [("--out", "FILE"), ("--out", ""), ("--out", UNWRITABLE)], "a file, '', unwritable"),
            ("--jobs", "count-huge", [("--jobs", str(2**31)), ("--jobs", "0")], "beyond a C int"),
            ("--scheduler", "range", [("--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1")],
             "an unreachable scheduler, --connect-timeout 1")):
        def call(argv):
            argv = [_a_file() if a == "FILE" else a for a in argv]
            return _cli("validation", ["--quick", "--case", "toy", *argv])
        out.append(Case("python -m validation", arg, cls, st.sampled_from(values), values[0], call,
                        expect=(arg,), note=note + "; exit 2, usage, no traceback"))
    out.append(Case("python -m benchmarks", "--json", "type",
                    st.sampled_from([("--json", UNWRITABLE), ("--json", "FILE/x.json")]), ("--json", UNWRITABLE),
                    lambda argv: _cli("benchmarks", ["--quick", *[a.replace("FILE", _a_file()) for a in argv]]),
                    expect=("--json",), note="unwritable path: refused before the section runs"))
    out.append(Case("python -m benchmarks", "--threads", "count<=0", st.sampled_from([("--threads", "0")]),
                    ("--threads", "0"), lambda argv: _cli("benchmarks", ["--quick", *argv]), expect=("--threads",)))
    return out


def issue20_cases():
    out = check_estimator_cases() + sampler_cases() + verdict_cases()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _have("torch"):
            out += torch_cases()
        if _have("jax"):
            out += jax_cases()
    return out + scale_cases() + budget_cases() + cli_cases()
