"""Third-party gradient estimators and relaxed distributions checked with refgrad.crosscheck.

Each is checked against a truth of its own.

For every library of the ``peers`` extra that imports here (numpyro, TensorFlow Probability,
distrax, rlax, pydrobert-pytorch, torchreinforce, reinmax, redge) the case writes the few lines
a user would write with it -- an ELBO gradient, a relaxed sample, a log-density, a
policy-gradient loss -- and asks :mod:`refgrad.crosscheck` for a verdict.  Each verdict is then
compared with a truth the case establishes *without* refgrad:

* estimators whose only randomness is the discrete sample (score-function ELBOs, policy
  gradients, straight-through, ReinMax): the library's own estimate for every outcome (read
  off its samples, grouped by outcome, or computed with the outcome forced), so its exact
  mean and variance are finite sums; the target is the closed-form gradient of the
  enumerated objective (``p ⊙ (r − p·r)`` for one categorical, ``Σ_b q(b) f(b) (b − σ(φ))``
  for bits), checked by central finite differences, or the estimator's formula from its
  paper written out here;
* deterministic gradients (enumerated ELBOs, all-action policy gradients): the one value
  against the closed form;
* relaxed samples: binomial tests (scipy) of ``P(x ≤ c) = σ(τ logit c − ℓ)`` at fixed
  thresholds ``c`` (Binary Concrete) and Kolmogorov–Smirnov tests of the Logistic law of
  ``τ log(x_i/x_r) − (ℓ_i − ℓ_r)`` (Concrete), at α = 1e-3 with Bonferroni;
* reparameterised gradients: the library's per-sample gradient against the pathwise
  derivative written here at its own sample (``dx/dℓ = x(1 − x)/τ``, the softmax Jacobian
  over τ), plus the sample law above;
* log-densities: the closed forms evaluated in mpmath at 50 digits, and at the boundary
  points x ∈ {0, 1} their limits (``+inf`` for τ < 1, ``−log``-finite at τ = 1, ``−inf`` for τ > 1).

A check of this case passes when refgrad's verdict and the truth agree (a correct
implementation passes, a wrong one fails).  A disagreement is a *misverdict* of refgrad and
fails the case; what the truth says about the library itself (a bug) is a finding, never a
failure.  Libraries that are absent are listed in a table with the reason; the case is skipped
only when none imports.
"""
import importlib
import itertools
import math
import traceback

import numpy as np

from refgrad import objectives as obj
from refgrad.distributions import Bernoulli, Categorical

from ..core import Case
from ._findings import key_numbers

ALPHA = 1e-3
INSTALL = "pip install -e '.[peers]' (then pip install --no-deps tf-keras==2.21.0 for TFP's TensorFlow substrate)"
#: import name -> (distribution name, import(s) that must succeed; numpyro's TraceEnum_ELBO needs funsor)
LIBRARIES = {
    "numpyro": ("numpyro", ("numpyro.infer", "funsor")),
    "tfp": ("tfp-nightly", "tensorflow_probability"),
    "distrax": ("distrax", "distrax"),
    "rlax": ("rlax", "rlax"),
    "pydrobert": ("pydrobert-pytorch", "pydrobert.torch.estimators"),
    "torchreinforce": ("torchreinforce", "torchreinforce"),
    "reinmax": ("reinmax", "reinmax"),
    "redge": ("redge", "redge.st"),
}
COLUMNS = ["library", "version", "checked", "refgrad verdict", "independent truth", "agree"]


def _version(dist_name):
    from importlib import metadata

    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return "?"


def _available():
    """(present: {key: version}, absent: {key: reason})."""
    present, absent = {}, {}
    for key, (dist_name, module) in LIBRARIES.items():
        try:
            for name in (module,) if isinstance(module, str) else module:
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an import that fails for any reason means "absent here"
            absent[key] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            continue
        present[key] = _version(dist_name)
    return present, absent


# ---------------------------------------------------------------------------- recording


class _Recorder:
    """Rows of the verdict-vs-truth table, a check per row, a finding per library bug."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.rows = []

    def verdict(self, call):
        """``(Verdict or None, text)``: refgrad's verdict, or the exception it raised."""
        try:
            v = call()
        except Exception as exc:  # noqa: BLE001 - a refusal on legal input is recorded, not raised
            return None, f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:140]}"
        text = "PASS" if v.passed else f"FAIL ({v.diagnosis})"
        return v, f"{text}; {key_numbers(v)}"

    def add(self, library, version, checked, call, correct, truth, function="", smallest="-", convention=None):
        """One row: ``correct`` is the truth (True: the library is right, refgrad should pass).

        ``convention``: a word the diagnosis of the (passing) verdict must carry when the library is
        right up to that convention (e.g. ``"flush-to-zero"``).
        """
        v, vtext = self.verdict(call)
        agree = v is not None and bool(v.passed) == bool(correct)
        if v is not None and correct and convention:
            agree = bool(v.passed) and convention in v.diagnosis
        truth_text = ("correct: " if correct else "WRONG: ") + truth
        self.rows.append([library, version, checked, vtext, truth_text, "yes" if agree else "MISVERDICT"])
        self.ctx.check(f"verdict = truth: {library}: {checked}", agree,
                       f"refgrad: {vtext}; truth: {truth_text}")
        if not correct:
            self.ctx.finding(framework=library, version=version, function=function or checked, checked=checked,
                             verdict="FAIL (wrong)", key_numbers=truth, smallest_failing_input=smallest,
                             refgrad_verdict=vtext)
        return v


def _close(a, b, rtol, atol=0.0):
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))
    return bool(np.all((a == b) | near))


def _by_outcome(G, keys):
    """{outcome: the estimate} from samples ``G`` (n, ...) and their outcomes ``keys`` (n, ...).

    Raises when one outcome carries different estimates (then the estimator is not a function
    of the discrete sample alone and enumeration over outcomes would not be its exact law).
    """
    G = np.asarray(G, float)
    keys = np.asarray(keys).reshape(len(G), -1)
    out = {}
    for k in np.unique(keys, axis=0):
        rows = G[(keys == k).all(axis=1)]
        spread = float(np.max(np.abs(rows - rows[0]))) if len(rows) else 0.0
        if spread > 1e-5 * (1.0 + float(np.max(np.abs(rows[0])))):
            raise ValueError(f"outcome {k.tolist()} carries different estimates (spread {spread:.3g})")
        out[tuple(int(x) for x in k)] = rows[0]
    return out


def _moments_over(outcomes, prob):
    """(mean, variance) of an estimate over its outcomes: ``Σ p g``, ``Σ p g² − mean²``."""
    ps = np.array([prob(k) for k in outcomes])
    gs = np.array([np.asarray(g, float) for g in outcomes.values()])
    shape = (-1,) + (1,) * (gs.ndim - 1)
    mean = (ps.reshape(shape) * gs).sum(0)
    var = (ps.reshape(shape) * gs ** 2).sum(0) - mean ** 2
    return mean, np.maximum(var, 0.0), float(ps.sum())


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, float)))


def _bits_gradient(phi, values):
    """∇_φ Σ_b q_φ(b) f(b) for independent bits, q_φ(b) = Π σ(φ_i)^{b_i} σ(−φ_i)^{1−b_i}: Σ_b q(b) f(b) (b − σ(φ))."""
    phi = np.asarray(phi, float)
    s = _sigmoid(phi)
    out = np.zeros_like(phi)
    for b in itertools.product((0, 1), repeat=len(phi)):
        bb = np.array(b, float)
        q = float(np.prod(np.where(bb == 1, s, 1 - s)))
        out += q * values[b] * (bb - s)
    return out


def _fd(fun, x, h=1e-5):
    """Central finite differences of a scalar function."""
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


# ---------------------------------------------------------------------------- truths for relaxed samples


def _binary_concrete_law(x, logits, tau, dtype):
    """(correct, text): P(x ≤ c) = σ(τ logit c − ℓ) at thresholds c, binomial tests (scipy), Bonferroni.

    Thresholds include the smallest normal number of ``dtype``: a sampler that flushes values below
    it to 0 (a convention) puts the same mass at or below it as the exact law.
    """
    from scipy import stats

    tiny = float(np.finfo(dtype).tiny)
    cs = np.array([tiny, 1e-6, 0.05, 0.25, 0.5, 0.75, 0.95, 1 - 1e-6])
    x = np.asarray(x, float)
    pmin, worst = 1.0, ""
    m = x.shape[1] * len(cs)
    for j, ell in enumerate(np.atleast_1d(logits)):
        for c in cs:
            p0 = float(_sigmoid(tau * math.log(c / (1 - c)) - ell))
            k = int(np.sum(x[:, j] <= c))
            if p0 <= 0.0 or p0 >= 1.0:
                continue
            p = stats.binomtest(k, len(x), p0).pvalue
            if p < pmin:
                pmin, worst = p, f"ℓ = {ell:g}, c = {c:.3g}: {k}/{len(x)} vs P = {p0:.4g}"
    ok = pmin * m > ALPHA
    return ok, f"binomial tests of P(x ≤ c) at {len(cs)} thresholds per logit (incl. FLT_MIN), min p = {pmin:.3g} " \
               f"(× {m} Bonferroni vs α = {ALPHA:g}); worst {worst}; zeros: {int(np.sum(x == 0))}"


def _concrete_law(x, logits, tau):
    """(correct, text): τ log(x_i/x_r) − (ℓ_i − ℓ_r) is standard Logistic (KS, scipy), r the largest logit."""
    from scipy import stats

    x = np.asarray(x, float)
    r = int(np.argmax(logits))
    ps = []
    for i in range(len(logits)):
        if i == r:
            continue
        y = tau * (np.log(x[:, i]) - np.log(x[:, r])) - (logits[i] - logits[r])
        ps.append(stats.kstest(y, stats.logistic.cdf).pvalue)
    pmin = min(ps)
    return pmin * len(ps) > ALPHA, f"KS (scipy) of τ log(x_i/x_r) − (ℓ_i − ℓ_r) vs Logistic, min p = {pmin:.3g} " \
                                   f"(× {len(ps)} Bonferroni vs α = {ALPHA:g})"


def _mp_binary_concrete_logpdf(x, ell, tau):
    """log p(x) of the Binary Concrete law (Maddison et al. 2017, eq. 21), mpmath at 50 digits; limits at 0, 1."""
    import mpmath as mp

    mp.mp.dps = 50
    x, ell, tau = mp.mpf(x), mp.mpf(ell), mp.mpf(tau)
    if x in (0, 1):
        # p(x) ~ τ e^{∓ℓ} t^{τ−1} as t = min(x, 1 − x) → 0 (x → 0: e^{−ℓ}; x → 1: e^{ℓ})
        if tau < 1:
            return math.inf
        if tau > 1:
            return -math.inf
        return float(mp.log(tau) + (-ell if x == 0 else ell))
    a = mp.e ** ell
    val = mp.log(tau) + mp.log(a) - (tau + 1) * (mp.log(x) + mp.log(1 - x)) \
        - 2 * mp.log(a * x ** (-tau) + (1 - x) ** (-tau))
    return float(val)


def _mp_concrete_logpdf(x, logits, tau):
    """log p(x) of the Concrete law on the simplex (Lebesgue on K − 1 coordinates), mpmath at 50 digits."""
    import mpmath as mp

    mp.mp.dps = 50
    K = len(logits)
    tau = mp.mpf(tau)
    xs = [mp.mpf(float(v)) for v in x]
    s = mp.mpf(float(sum(float(v) for v in x)))
    xs = [v / s for v in xs]  # renormalise the float simplex point
    ls = [mp.mpf(float(v)) for v in logits]
    val = mp.log(mp.factorial(K - 1)) + (K - 1) * mp.log(tau)
    val += sum(ls[k] - (tau + 1) * mp.log(xs[k]) for k in range(K))
    val -= K * mp.log(sum(mp.e ** (ls[k] - tau * mp.log(xs[k])) for k in range(K)))
    return float(val)


# ---------------------------------------------------------------------------- TensorFlow Probability


def _tfp(ctx, rec, cc, version):
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    n = ctx.size(3000, 12000)
    lib = "tfp"
    # -- RelaxedBernoulli samples: float64 at τ = 0.5, float32 at τ = 0.01 (values below FLT_MIN flushed to 0 on CPU)
    for dt, tau, logits in ((tf.float64, 0.5, np.array([0.3, -2.0, 5.0])), (tf.float32, 0.01, np.array([0.3, -2.0]))):
        tf.random.set_seed(ctx.seed + 11)
        x = tfd.RelaxedBernoulli(tf.constant(tau, dt), logits=tf.constant(logits, dt)).sample(n).numpy()
        ok, truth = _binary_concrete_law(x, logits, tau, x.dtype)
        flushed = bool(np.any(x == 0)) and x.dtype == np.float32
        if flushed:
            truth += " (values below FLT_MIN flushed to 0: a convention)"
        rec.add(lib, version, f"RelaxedBernoulli samples ({x.dtype}, τ = {tau:g}, logits {logits.tolist()})",
                lambda: cc.check_relaxed_sampler(x, logits, tau, family="binary_concrete", alpha=ALPHA), ok, truth,
                function="distributions.RelaxedBernoulli.sample", convention="flush-to-zero" if flushed else None)
    # -- RelaxedBernoulli log_prob: interior points, then the boundary points 0 and 1
    pts = np.array([1e-3, 0.2, 0.5, 0.9, 1 - 1e-3])
    for tau in (0.5, 2.0):
        lg = 0.7
        vals = tfd.RelaxedBernoulli(tf.constant(tau, tf.float64), logits=tf.constant(lg, tf.float64)).log_prob(
            tf.constant(pts, tf.float64)).numpy()
        ref = np.array([_mp_binary_concrete_logpdf(p, lg, tau) for p in pts])
        ok = _close(vals, ref, 1e-10)
        rec.add(lib, version, f"RelaxedBernoulli.log_prob, interior points (float64, τ = {tau:g}, ℓ = {lg:g})",
                lambda: cc.check_log_prob(vals, pts, np.full(pts.shape, lg), tau, family="binary_concrete"), ok,
                f"mpmath closed form, max |Δ| = {np.max(np.abs(vals - ref)):.3g}",
                function="distributions.RelaxedBernoulli.log_prob")
    edge = np.array([0.0, 1.0])
    for tau in (0.5, 1.0, 2.0):
        lg = 0.7
        vals = tfd.RelaxedBernoulli(tf.constant(tau, tf.float64), logits=tf.constant(lg, tf.float64)).log_prob(
            tf.constant(edge, tf.float64)).numpy()
        ref = np.array([_mp_binary_concrete_logpdf(p, lg, tau) for p in edge])
        ok = bool(np.all((vals == ref) | (np.isfinite(ref) & _close(vals, ref, 1e-10))))
        rec.add(lib, version, f"RelaxedBernoulli.log_prob at x = 0 and 1 (float64, τ = {tau:g}, ℓ = {lg:g})",
                lambda: cc.check_log_prob(vals, edge, np.full(edge.shape, lg), tau, family="binary_concrete"), ok,
                f"limit of the closed form {ref.tolist()}; TFP gives {vals.tolist()}",
                function="distributions.RelaxedBernoulli.log_prob", smallest=f"x = 0, τ = {tau:g}")
    # -- RelaxedBernoulli reparameterised gradient of Σ(x − 0.45)²
    for dt, tau, logits in ((tf.float64, 0.5, np.array([0.3, -2.0])), (tf.float64, 0.5, np.array([-50.0, 100.0])),
                            (tf.float32, 0.01, np.array([0.3]))):
        tf.random.set_seed(ctx.seed + 12)
        lp = tf.Variable(np.broadcast_to(logits, (n, len(logits))).astype(dt.as_numpy_dtype))
        with tf.GradientTape() as tape:
            x = tfd.RelaxedBernoulli(tf.constant(tau, dt), logits=lp).sample()
            loss = tf.reduce_sum((x - 0.45) ** 2)
        g = tape.gradient(loss, lp).numpy()
        xs = x.numpy().astype(float)
        path = 2 * (xs - 0.45) * xs * (1 - xs) / tau  # d/dℓ of (x − t)², x = σ((ℓ + L)/τ)
        nan = float(np.mean(~np.isfinite(g).all(axis=1)))
        logmax = math.log(float(np.finfo(dt.as_numpy_dtype).max))
        # (ℓ + L)/τ > log-max  <=>  L > τ log-max − ℓ: probability σ(ℓ − τ log-max) for one bit
        p_over = float(1 - np.prod([1 - _sigmoid(lg - tau * logmax) for lg in logits]))
        finite = np.isfinite(g).all(axis=1)
        # x(1 − x) from a rounded x is off by up to eps·x absolutely (1 − x loses digits near 1): allowed for
        eps = float(np.finfo(dt.as_numpy_dtype).eps)
        slack = 4 * eps * np.abs(2 * (xs - 0.45) / tau) + 1e-9 * np.abs(path) + (1e-3 * np.abs(path) if eps > 1e-10
                                                                                  else 0)
        same = bool(np.all(np.abs(g[finite] - path[finite]) <= slack[finite]))
        ok_law, law = _binary_concrete_law(xs, logits, tau, x.numpy().dtype)
        ok = same and nan == 0 and ok_law
        truth = (f"NaN rows {nan:.3f} (P((ℓ + L)/τ > log-max) = {p_over:.3f}); finite rows = pathwise derivative "
                 f"x(1 − x)/τ·2(x − t) at TFP's own sample: {'yes' if same else 'no'}; sample law: {law}")
        f = obj.SquaredDistance(np.full(len(logits), 0.45))
        g_in = g.astype(dt.as_numpy_dtype)
        rec.add(lib, version, f"RelaxedBernoulli reparameterised gradient ({x.numpy().dtype}, τ = {tau:g}, "
                f"logits {logits.tolist()}) as gumbel_softmax",
                lambda: cc.check_estimator(g_in, Bernoulli(logits), f, False, name="gumbel_softmax", alpha=ALPHA,
                                           tau=tau), ok, truth,
                function="distributions.RelaxedBernoulli.sample (gradient)",
                smallest=f"τ = {tau:g}, ℓ = {logits[0]:g} (NaN when (ℓ + L)/τ > {logmax:.2f})")
    # -- RelaxedOneHotCategorical: samples, log_prob, float32 gradient
    logits = np.array([1.0, 0.0, -0.5])
    tau = 0.5
    tf.random.set_seed(ctx.seed + 13)
    x = tfd.RelaxedOneHotCategorical(tf.constant(tau, tf.float64), logits=tf.constant(logits)).sample(n).numpy()
    ok, truth = _concrete_law(x, logits, tau)
    rec.add(lib, version, f"RelaxedOneHotCategorical samples (float64, τ = {tau:g}, logits {logits.tolist()})",
            lambda: cc.check_relaxed_sampler(x, logits, tau, family="concrete", alpha=ALPHA), ok, truth,
            function="distributions.RelaxedOneHotCategorical.sample")
    pts = x[:5]
    vals = tfd.RelaxedOneHotCategorical(tf.constant(tau, tf.float64), logits=tf.constant(logits)).log_prob(
        tf.constant(pts)).numpy()
    ref = np.array([_mp_concrete_logpdf(p, logits, tau) for p in pts])
    ok = _close(vals, ref, 1e-8)
    rec.add(lib, version, f"RelaxedOneHotCategorical.log_prob (float64, τ = {tau:g}, 5 sampled points)",
            lambda: cc.check_log_prob(vals, pts, np.broadcast_to(logits, pts.shape), tau, family="concrete"), ok,
            f"mpmath closed form, max |Δ| = {np.max(np.abs(vals - ref)):.3g}",
            function="distributions.RelaxedOneHotCategorical.log_prob")
    t = np.array([0.2, 0.5, 0.3])
    tf.random.set_seed(ctx.seed + 14)
    lp = tf.Variable(np.broadcast_to(logits, (n, 1, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        x = tfd.RelaxedOneHotCategorical(tf.constant(tau, tf.float32), logits=lp).sample()
        loss = tf.reduce_sum((x - t.astype(np.float32)) ** 2)
    g = tape.gradient(loss, lp).numpy()
    xs = x.numpy().astype(float)
    df = 2 * (xs - t)
    path = xs * (df - np.sum(xs * df, axis=-1, keepdims=True)) / tau  # (diag x − x xᵀ)/τ · ∇f
    same = _close(g, path, 2e-3, atol=1e-6)
    ok_law, law = _concrete_law(xs[:, 0], logits, tau)
    rec.add(lib, version, f"RelaxedOneHotCategorical reparameterised gradient (float32, τ = {tau:g}) as gumbel_softmax",
            lambda: cc.check_estimator(g, Categorical(logits[None]), obj.SquaredDistance(t[None]), False,
                                       name="gumbel_softmax", alpha=ALPHA, tau=tau),
            same and ok_law, f"= softmax-Jacobian/τ · ∇f at TFP's own sample (float32 tolerance): "
                             f"{'yes' if same else 'no'}; sample law: {law}",
            function="distributions.RelaxedOneHotCategorical.sample (gradient)")


# ---------------------------------------------------------------------------- numpyro


def _numpyro(ctx, rec, cc, version):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro import handlers
    from numpyro.infer import TraceEnum_ELBO, TraceGraph_ELBO

    lib = "numpyro"
    n = ctx.size(2000, 8000)
    prior, w, xobs = np.array([0.3, 0.6]), np.array([1.0, -0.7]), 0.4
    phi0 = np.array([0.2, -0.4])

    def model():
        b = numpyro.sample("b", nd.Bernoulli(probs=jnp.asarray(prior)).to_event(1))
        numpyro.sample("x", nd.Normal(jnp.dot(jnp.asarray(w), b), 1.0), obs=xobs)

    def guide(phi):
        numpyro.sample("b", nd.Bernoulli(logits=phi).to_event(1))

    def log_joint(b):  # log p(x, b), written out
        b = np.asarray(b, float)
        return float(np.sum(b * np.log(prior) + (1 - b) * np.log1p(-prior))
                     - 0.5 * (xobs - w @ b) ** 2 - 0.5 * math.log(2 * math.pi))

    def log_q(b, phi):
        b = np.asarray(b, float)
        return float(np.sum(b * np.log(_sigmoid(phi)) + (1 - b) * np.log(_sigmoid(-phi))))

    def elbo_exact(phi):
        return sum(math.exp(log_q(b, phi)) * (log_joint(b) - log_q(b, phi))
                   for b in itertools.product((0, 1), repeat=2))

    # the ELBO gradient as a refgrad problem: f(b) = log p(x, b) − log q_φ0(b) at fixed φ0 (E[∇ log q] = 0)
    table = np.zeros((2, 2))
    for b in itertools.product((0, 1), repeat=2):
        table[b] = log_joint(b) - log_q(b, phi0)
    target = _bits_gradient(phi0, table)
    fd = _fd(elbo_exact, phi0)
    elbo = TraceGraph_ELBO()

    def one(key):
        g = -jax.grad(lambda p: elbo.loss(key, {}, model, lambda: guide(p)))(jnp.asarray(phi0))
        _, gkey = jax.random.split(key)  # the guide's seed inside TraceGraph_ELBO.loss
        b = handlers.trace(handlers.seed(lambda: guide(jnp.asarray(phi0)), gkey)).get_trace()["b"]["value"]
        return g, b

    keys = jax.random.split(jax.random.PRNGKey(ctx.seed + 21), n)
    G, B = jax.jit(jax.vmap(one))(keys)
    G, B = np.asarray(G, float), np.asarray(B, int)
    per = _by_outcome(G, B)
    s = _sigmoid(phi0)
    q = lambda b: float(np.prod(np.where(np.array(b) == 1, s, 1 - s)))  # noqa: E731
    mean, var, mass = _moments_over(per, q)
    score = {b: table[b] * (np.array(b) - s) for b in per}  # REINFORCE for f, per outcome
    smean, svar, _ = _moments_over(score, q)
    ok = mass > 1 - 1e-12 and _close(mean, target, 1e-9) and _close(var, svar, 1e-9) and _close(target, fd, 1e-6)
    rec.add(lib, version, "TraceGraph_ELBO gradient, Bernoulli guide (2 bits) as reinforce on f = log p − log q_φ0",
            lambda: cc.check_estimator(G, Bernoulli(phi0), obj.Table(table), True, name="reinforce", alpha=ALPHA), ok,
            f"its exact mean over the 4 outcomes {np.round(mean, 6).tolist()} vs ∇ELBO {np.round(target, 6).tolist()} "
            f"(finite differences {np.round(fd, 6).tolist()}); variance = REINFORCE's: "
            f"{'yes' if _close(var, svar, 1e-9) else 'no'}", function="infer.TraceGraph_ELBO")

    # -- TraceEnum_ELBO with the guide's bit enumerated: deterministic; the second model is not enumeration-safe
    p1, w1, x1, phi1 = 0.3, 1.5, 0.4, 0.2

    def model_safe():
        b = numpyro.sample("b", nd.Bernoulli(probs=p1))
        numpyro.sample("x", nd.Normal(w1 * b, 1.0), obs=x1)

    def model_unsafe():  # jnp.max reduces over the enumeration dimension
        b = numpyro.sample("b", nd.Bernoulli(probs=p1))
        numpyro.sample("x", nd.Normal(w1 * jnp.max(b), 1.0), obs=x1)

    def guide_enum(phi):
        numpyro.sample("b", nd.Bernoulli(logits=phi), infer={"enumerate": "parallel"})

    tab1 = np.array([math.log1p(-p1) - 0.5 * x1 ** 2 - math.log(_sigmoid(-phi1)),
                     math.log(p1) - 0.5 * (x1 - w1) ** 2 - math.log(_sigmoid(phi1))]) - 0.5 * math.log(2 * math.pi)
    target1 = _bits_gradient(np.array([phi1]), tab1)
    m_ens = ctx.size(50, 200)
    for label, mdl in (("enumeration-safe model", model_safe), ("model not enumeration-safe (jnp.max over b)",
                                                                 model_unsafe)):
        el = TraceEnum_ELBO()
        grad = jax.jit(lambda k: -jax.grad(lambda p: el.loss(k, {}, mdl, lambda: guide_enum(p)))(jnp.asarray(phi1)))
        Ge = np.array([float(grad(k)) for k in jax.random.split(jax.random.PRNGKey(ctx.seed + 22), m_ens)])[:, None]
        const = bool(np.all(Ge == Ge[0]))
        ok = const and _close(Ge[0], target1, 1e-9)
        rec.add(lib, version, f"TraceEnum_ELBO gradient, guide bit enumerated, {label} (deterministic)",
                lambda: cc.check_estimator(Ge, Bernoulli(np.array([phi1])), obj.Table(tab1), True, alpha=ALPHA), ok,
                f"{'constant' if const else 'varying'} value {Ge[0, 0]:.6g} vs closed-form ∇ELBO {target1[0]:.6g} "
                f"(off by {Ge[0, 0] - target1[0]:.3g})", function="infer.TraceEnum_ELBO")


# ---------------------------------------------------------------------------- rlax, distrax (JAX)


def _rlax(ctx, rec, cc, version):
    import jax
    import jax.numpy as jnp
    import rlax

    lib = "rlax"
    n = ctx.size(4000, 20000)
    logits = np.array([0.5, -0.3, 1.2, 0.0])
    r = np.array([1.0, -0.5, 0.3, 2.0])
    p = _softmax(logits)
    exact = p * (r - p @ r)  # ∇_ℓ Σ_k softmax(ℓ)_k r_k
    dist, f = Categorical(logits[None]), obj.Table(r)
    key = jax.random.PRNGKey(ctx.seed + 31)
    a = np.asarray(jax.random.categorical(key, jnp.asarray(logits), shape=(n,)))

    def pg(lg, acts):  # per-time-step gradient: n × the gradient of the mean loss
        L = jnp.broadcast_to(jnp.asarray(lg), (len(acts), len(lg)))
        return -len(acts) * jax.grad(lambda z: rlax.policy_gradient_loss(z, jnp.asarray(acts), jnp.asarray(r[acts]),
                                                                         jnp.ones(len(acts))))(L)

    G = np.asarray(pg(logits, a), float)[:, None, :]
    per = {(k,): np.asarray(pg(logits, np.array([k])), float)[0] for k in range(4)}
    mean, var, _ = _moments_over(per, lambda k: p[k[0]])
    score = {(k,): r[k] * (np.eye(4)[k] - p) for k in range(4)}
    smean, svar, _ = _moments_over(score, lambda k: p[k[0]])
    ok = _close(mean, exact, 1e-9) and _close(var, svar, 1e-9)
    rec.add(lib, version, "policy_gradient_loss (adv = r(a), one categorical, K = 4) as reinforce",
            lambda: cc.check_estimator(G, dist, f, True, name="reinforce", alpha=ALPHA), ok,
            f"exact mean over the 4 actions {np.round(mean, 6).tolist()} vs p ⊙ (r − p·r) "
            f"{np.round(exact, 6).tolist()}; variance = REINFORCE's: {'yes' if _close(var, svar, 1e-9) else 'no'}",
            function="policy_gradient_loss")
    m = ctx.size(100, 400)
    for name in ("qpg_loss", "rm_loss"):
        loss = getattr(rlax, name)
        L = jnp.broadcast_to(jnp.asarray(logits), (m, 4))
        Q = jnp.broadcast_to(jnp.asarray(r), (m, 4))
        Gd = -m * np.asarray(jax.grad(lambda z: loss(z, Q))(L), float)[:, None, :]
        ok = bool(np.all(Gd == Gd[0])) and _close(Gd[0, 0], exact, 1e-9, atol=1e-15)
        rec.add(lib, version, f"{name} (all action values given, deterministic) checked as a gradient of E r",
                lambda: cc.check_estimator(Gd, dist, f, True, alpha=ALPHA), ok,
                f"value {np.round(Gd[0, 0], 6).tolist()} vs p ⊙ (r − p·r) {np.round(exact, 6).tolist()} "
                f"(max |Δ| = {np.max(np.abs(Gd[0, 0] - exact)):.3g})", function=name)


def _plain_st_truth(G, samples, logits, t, p):
    """(correct, text) for a plain straight-through estimator of f(y) = Σ (y − t)² on one categorical row."""
    from scipy import stats

    idx = np.argmax(samples, axis=-1).reshape(len(G), -1)
    per = _by_outcome(G.reshape(len(G), -1), idx)
    K = len(logits)
    ok_formula = True
    for (k,), g in per.items():
        df = 2 * (np.eye(K)[k] - t)
        ok_formula &= _close(g, p * (df - p @ df), 1e-5, atol=1e-7)  # (diag p − p pᵀ) ∇f(e_k)
    counts = np.bincount(idx[:, 0], minlength=K)
    chi = stats.chisquare(counts, len(G) * p).pvalue
    ok = ok_formula and chi > ALPHA
    return ok, (f"per outcome = (diag p − p pᵀ) ∇f(one-hot): {'yes' if ok_formula else 'no'} "
                f"({len(per)}/{K} outcomes seen); draws ~ softmax(ℓ): chi-square p = {chi:.3g} (α = {ALPHA:g})")


def _distrax(ctx, rec, cc, version):
    import distrax
    import jax
    import jax.numpy as jnp

    lib = "distrax"
    n = ctx.size(3000, 12000)
    logits = np.array([1.0, 0.0, -0.5])
    t = np.array([0.2, 0.5, 0.3])
    ST = distrax.straight_through_wrapper(distrax.OneHotCategorical)

    def one(key):
        def loss(lg):
            y = ST(logits=lg, dtype=jnp.float64).sample(seed=key)
            return jnp.sum((y - jnp.asarray(t)) ** 2), y
        return jax.grad(loss, has_aux=True)(jnp.asarray(logits))

    G, Y = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(ctx.seed + 41), n))
    G, Y = np.asarray(G, float)[:, None, :], np.asarray(Y, float)
    ok, truth = _plain_st_truth(G, Y, logits, t, _softmax(logits))
    rec.add(lib, version, "straight_through_wrapper(OneHotCategorical) gradient as straight_through_plain",
            lambda: cc.check_estimator(G, Categorical(logits[None]), obj.SquaredDistance(t[None]), False,
                                       name="straight_through_plain", alpha=ALPHA), ok, truth,
            function="straight_through_wrapper")


# ---------------------------------------------------------------------------- torch libraries


def _redge(ctx, rec, cc, version):
    import torch
    from redge.st import straight_through

    lib = "redge"
    n = ctx.size(3000, 12000)
    logits = np.array([1.0, 0.0, -0.5])
    t = np.array([0.2, 0.5, 0.3])
    torch.manual_seed(ctx.seed + 51)
    lp = torch.tensor(np.broadcast_to(logits, (n, 3)).copy(), requires_grad=True)
    y = straight_through(lp)
    ((y - torch.tensor(t)) ** 2).sum().backward()
    G, Y = lp.grad.numpy()[:, None, :], y.detach().numpy()
    ok, truth = _plain_st_truth(G, Y, logits, t, _softmax(logits))
    rec.add(lib, version, "st.straight_through gradient as straight_through_plain",
            lambda: cc.check_estimator(G, Categorical(logits[None]), obj.SquaredDistance(t[None]), False,
                                       name="straight_through_plain", alpha=ALPHA), ok, truth,
            function="st.straight_through")


def _reinmax(ctx, rec, cc, version):
    import torch
    from reinmax import reinmax

    lib = "reinmax"
    n = ctx.size(3000, 12000)
    logits = np.array([1.0, 0.0, -0.5])
    t = np.array([0.2, 0.5, 0.3])
    tau = 0.5
    torch.manual_seed(ctx.seed + 61)
    lp = torch.tensor(np.broadcast_to(logits, (n, 3)).copy(), requires_grad=True)
    y, _ = reinmax(lp, tau)
    ((y - torch.tensor(t)) ** 2).sum().backward()
    G, Y = lp.grad.numpy(), y.detach().numpy()
    idx = np.argmax(Y, axis=-1)[:, None]
    per = _by_outcome(G, idx)
    # ReinMax (Liu et al. 2023, Algorithm 2): π0 = softmax(θ), π1 = (D + softmax(θ/τ))/2,
    # ∇ = [2 (diag π1 − π1 π1ᵀ) − ½ (diag π0 − π0 π0ᵀ)] ∇f(D)
    p0, ps = _softmax(logits), _softmax(logits / tau)
    ok_formula = True
    for (k,), g in per.items():
        D = np.eye(3)[k]
        p1 = 0.5 * (D + ps)
        df = 2 * (D - t)
        want = 2 * p1 * (df - p1 @ df) - 0.5 * p0 * (df - p0 @ df)
        ok_formula &= _close(g, want, 1e-9, atol=1e-12)
    from scipy import stats

    chi = stats.chisquare(np.bincount(idx[:, 0], minlength=3), n * p0).pvalue
    ok = ok_formula and chi > ALPHA
    G3 = G[:, None, :]
    rec.add(lib, version, f"reinmax gradient (τ = {tau:g}) as reinmax",
            lambda: cc.check_estimator(G3, Categorical(logits[None]), obj.SquaredDistance(t[None]), False,
                                       name="reinmax", alpha=ALPHA, tau=tau), ok,
            f"per outcome = Algorithm 2's [2 J(π1) − ½ J(π0)] ∇f(D): {'yes' if ok_formula else 'no'} "
            f"({len(per)}/3 outcomes seen); D ~ softmax(θ): chi-square p = {chi:.3g}", function="reinmax")


def _pydrobert(ctx, rec, cc, version):
    import torch
    from pydrobert.torch import estimators as est

    lib = "pydrobert"
    n = ctx.size(4000, 16000)
    phi = np.array([0.3, -1.0])
    table = np.array([[0.5, -1.0], [2.0, 0.25]])  # f(b1, b2)
    T = torch.tensor(table)

    def fb_of(b):
        i, j = b[..., 0].long(), b[..., 1].long()
        return T[i, j]

    def estimate(lp, b):
        fb = fb_of(b)[..., None].expand_as(b)  # per-bit f(b) (the function estimates d f / d logits per element)
        return est.reinforce(fb, b, lp, "bern")

    torch.manual_seed(ctx.seed + 71)
    lp = torch.tensor(np.broadcast_to(phi, (n, 2)).copy(), requires_grad=True)
    b = est.to_b(est.to_z(lp, "bern"), "bern").detach()
    G = estimate(lp, b).detach().numpy()
    per = {bb: estimate(torch.tensor(phi[None], requires_grad=True),
                        torch.tensor([bb], dtype=torch.float64)).detach().numpy()[0]
           for bb in itertools.product((0, 1), repeat=2)}
    s = _sigmoid(phi)
    q = lambda bb: float(np.prod(np.where(np.array(bb) == 1, s, 1 - s)))  # noqa: E731
    mean, var, _ = _moments_over(per, q)
    target = _bits_gradient(phi, table)
    score = {bb: table[bb] * (np.array(bb) - s) for bb in per}
    _, svar, _ = _moments_over(score, q)
    fd = _fd(lambda x: sum(float(np.prod(np.where(np.array(bb) == 1, _sigmoid(x), _sigmoid(-x)))) * table[bb]
                           for bb in per), phi)
    ok = _close(mean, target, 1e-9) and _close(var, svar, 1e-9) and _close(target, fd, 1e-6)
    rec.add(lib, version, "estimators.reinforce (Bernoulli, 2 bits) as reinforce",
            lambda: cc.check_estimator(G, Bernoulli(phi), obj.Table(table), True, name="reinforce", alpha=ALPHA), ok,
            f"exact mean over the 4 outcomes {np.round(mean, 6).tolist()} vs Σ q f (b − σ) "
            f"{np.round(target, 6).tolist()} "
            f"(finite differences {np.round(fd, 6).tolist()})", function="estimators.reinforce")


def _torchreinforce(ctx, rec, cc, version):
    import torch
    from torchreinforce import ReinforceModule

    lib = "torchreinforce"
    n = ctx.size(600, 2000)
    logits = np.array([[0.4, -0.2, 0.1], [0.0, 0.6, -0.5]])  # one row per time step
    r = np.array([1.0, -0.5, 2.0])
    T, K = logits.shape

    class Policy(ReinforceModule):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.logits = torch.nn.Parameter(torch.tensor(logits))

        @ReinforceModule.forward
        def forward(self, step):
            return torch.softmax(self.logits[step], -1)

    def episode(policy, actions=None):
        policy.reset()
        policy.zero_grad()
        taken = []
        for step in range(T):
            out = policy(step)
            if actions is None:
                a = out.get()
            else:
                out.action = torch.tensor(actions[step])
                a = actions[step]
            taken.append(a)
            out.reward(float(r[a]))
        return policy, taken

    # f(b) = Σ_t r(b_t) (γ = 1); the REINFORCE-with-returns estimate is an unbiased gradient of E f
    table = r[:, None] + r[None, :]
    p = _softmax(logits)
    exact = p * (r - (p @ r)[:, None])  # per step: ∂E r(b_t)/∂ℓ_t
    for normalize in (True, False):
        torch.manual_seed(ctx.seed + 81)
        G, B = np.zeros((n, T, K)), np.zeros((n, T), int)
        policy = Policy(gamma=1.0)
        for i in range(n):
            _, taken = episode(policy)
            (-policy.loss(normalize=normalize)).backward()
            G[i], B[i] = policy.logits.grad.numpy(), taken
        per = {}
        for acts in itertools.product(range(K), repeat=T):
            _, _ = episode(policy, acts)
            (-policy.loss(normalize=normalize)).backward()
            per[acts] = policy.logits.grad.numpy().copy()
        mean, _, _ = _moments_over(per, lambda a: float(np.prod([p[t, a[t]] for t in range(T)])))
        ok = _close(mean, exact, 1e-9, atol=1e-12)
        rec.add(lib, version, f"ReinforceModule.loss(normalize={normalize}) gradient, γ = 1, 2 steps × 3 actions",
                lambda: cc.check_estimator(G, Categorical(logits), obj.Table(table), True, alpha=ALPHA), ok,
                f"exact mean over the 9 episodes {np.round(mean, 4).tolist()} vs p ⊙ (r − p·r) per step "
                f"{np.round(exact, 4).tolist()}"
                + ("; the loss is the outer product of returns and log-probabilities; normalised returns sum to "
                   "0, so every estimate is 0" if normalize else "; the loss is the outer product of returns and "
                   "log-probabilities (step t gets the sum of all returns)"),
                function="ReinforceModule.loss", smallest="2 steps")


STAGES = (("tfp", _tfp), ("numpyro", _numpyro), ("rlax", _rlax), ("distrax", _distrax), ("redge", _redge),
          ("reinmax", _reinmax), ("pydrobert", _pydrobert), ("torchreinforce", _torchreinforce))


def run(ctx):
    present, absent = _available()
    ctx.table("Libraries", ["library", "package", "status"],
              [[k, LIBRARIES[k][0], f"installed {present[k]}" if k in present else f"absent: {absent[k]}"]
               for k in LIBRARIES], note=f"Install: {INSTALL}")
    if not present:
        ctx.skip(f"none of the peer libraries is installed ({', '.join(LIBRARIES)}): {INSTALL}")
    from refgrad import crosscheck as cc

    jax = None
    if any(k in present for k in ("numpyro", "rlax", "distrax")):
        import jax

        was_x64 = bool(jax.config.jax_enable_x64)
        jax.config.update("jax_enable_x64", True)  # float64 arrays where the case asks for them
    ctx.setting(alpha=ALPHA, libraries=present)
    rec = _Recorder(ctx)
    try:
        for key, stage in ctx.progress([s for s in STAGES if s[0] in present], label="libraries"):
            try:
                stage(ctx, rec, cc, present[key])
            except Exception as exc:  # noqa: BLE001 - one library's stage failing must not hide the others' rows
                ctx.check(f"{key}: the stage ran", False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        if jax is not None:  # the process's setting back as it was (later cases and tests run in it)
            jax.config.update("jax_enable_x64", was_x64)
    ctx.table("Verdicts against the independent truth", COLUMNS, rec.rows,
              note="A row agrees when refgrad passes a correct implementation or fails a wrong one; a MISVERDICT "
                   "fails the case. WRONG rows are findings about the library (never a failure).")
    ctx.record(misverdicts=sum(r[-1] != "yes" for r in rec.rows), rows=len(rec.rows))


CASE = Case(
    name="third_party",
    title="Third-party estimators and relaxed distributions against an independent truth",
    source="numpyro, TensorFlow Probability, distrax, rlax, pydrobert-pytorch, torchreinforce, reinmax and redge as a "
           "user calls them; truths from closed forms, enumeration over the discrete outcomes, mpmath and scipy tests",
    description="Each library's estimator, sampler or density checked with refgrad.crosscheck, and the verdict "
                "compared with a truth the case computes without refgrad. A library bug is a finding; a verdict "
                "that disagrees with the truth (a misverdict) fails the case.",
    run=run,
)
