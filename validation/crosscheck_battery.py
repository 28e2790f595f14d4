r"""Error rates of :func:`refgrad.crosscheck.check_estimator`'s verdicts on a battery of implementations.

Run as ``python -m validation.crosscheck_battery [--reps 1000] [--out docs/crosscheck.md] [--quick]``.

Every case is an implementation of a gradient estimator written the way users write them -- refgrad's
own estimators cast to float32, textbook NumPy code, PyTorch, JAX and TensorFlow code whose per-sample
gradients come from :mod:`refgrad.crosscheck.torch` / ``.jax`` / ``.tensorflow`` -- on a problem at a
stated n, checked by ``check_estimator(samples, dist, f, unbiased, name=..., alpha=..., **options)``
exactly as a user would call it.  Two kinds:

* **correct** implementations (``null``): each of ``reps`` independent replications (disjoint noise
  from the case's seed sequence; for the deterministic implementations, a new random problem per
  replication) is checked at α = 1e-3 and at α = 1e-2; the false-alarm rate is reported with its
  99 % Clopper-Pearson interval, and a case *holds its level* when the interval's lower end is
  ≤ α (the observed rate is compatible with a rate ≤ α);
* **planted bugs** (``bug``): ``max(200, reps // 5)`` replications; the power (rate of failed
  verdicts) at both levels, required ≥ 0.99 at α = 1e-3.

The problem's side of the check (exact gradient, moments, fourth moments) is computed once per case
with :func:`refgrad.crosscheck._check_estimator.estimator_reference` and passed as ``reference=``: the
verdicts are those of plain calls (tested in ``tests/crosscheck/test_crosscheck_verdicts.py``).

The generated table, with the command, date and machine, is ``docs/crosscheck.md``.
"""
import argparse
import datetime
import os
import platform
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy import special
from scipy import stats as sps

from refgrad import Bernoulli, Categorical, crosscheck, estimate
from refgrad.crosscheck._check_estimator import estimator_reference
from refgrad.objectives import SquaredDistance

__all__ = ["Case", "CASES", "ALPHAS", "run_case", "run", "main"]

#: The levels at which every replication is checked.
ALPHAS = (1e-3, 1e-2)
#: Confidence of the intervals in the table.
CONFIDENCE = 0.99
#: Power required of every planted bug at α = ALPHAS[0].
POWER = 0.99


@dataclass
class Case:
    """One implementation on one problem.

    ``draw(seed, m)`` returns ``m`` rows of per-sample estimates (shape ``(m, *dist.param_shape)``) from
    the noise of ``seed`` (an int); ``block`` replications of ``n`` rows are drawn per call.  For a
    deterministic implementation ``problem(seed)`` returns a fresh ``(dist, f)`` per replication and
    ``draw(seed, m, dist, f)`` its rows.
    """

    key: str
    problem_text: str
    implementation: str
    framework: str
    dtype: str
    n: int
    kind: str  # "null" or "bug"
    draw: object
    dist: object = None
    f: object = None
    unbiased: bool = True
    name: str = None
    options: dict = field(default_factory=dict)
    block: int = 100
    problem: object = None  # seed -> (dist, f), for implementations whose replications vary the problem


# ------------------------------------------------------------------------------------------ problems

def _bern(logits, target):
    return Bernoulli(np.array(logits, dtype=np.float64)), SquaredDistance(np.array(target, dtype=np.float64))


def _cat(logits, target):
    return Categorical(np.array(logits, dtype=np.float64)), SquaredDistance(np.array(target, dtype=np.float64))


PB3 = ([0.3, -1.0, 2.0], [0.45, 0.2, 0.7])
PB2 = ([0.3, -1.0], [0.45, 0.2])
PC1 = ([[1.0, 0.0, -1.0]], [[0.3, 0.1, 0.2]])
PC2 = ([[1.0, 0.0, -1.0], [0.5, -2.0, 0.2]], [[0.3, 0.1, 0.2], [0.6, 0.1, 0.3]])


def _text(logits, target, **opts):
    fam = "Categorical" if np.ndim(logits) == 2 else "Bernoulli"
    extra = "".join(f", {k} = {v:g}" for k, v in opts.items())
    return f"{fam} logits {np.array(logits).tolist()}, f = squared distance to {np.array(target).tolist()}{extra}"


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- NumPy implementations
# Bernoulli product with f(b) = Σ_j (b_j − t_j)², ∂f/∂x_j = 2 (x_j − t_j); every array in `dt`.

def np_reinforce(logits, target, dt, scale=1.0):
    """REINFORCE: f(b) (b − σ(ℓ)), b ~ Bernoulli(σ(ℓ))."""
    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        theta = special.expit(ell)
        b = (rng.random((m, ell.size)) < theta).astype(dt)
        fb = ((b - t) ** 2).sum(axis=1, keepdims=True)
        return (scale * fb * (b - theta)).astype(dt)
    return draw


def np_rloo(logits, target, dt, k=4):
    """REINFORCE with a leave-one-out baseline over k samples, averaged (one estimate per k draws)."""
    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        theta = special.expit(ell)
        b = (rng.random((m, k, ell.size)) < theta).astype(dt)
        fb = ((b - t) ** 2).sum(axis=2)
        base = (fb.sum(axis=1, keepdims=True) - fb) / dt(k - 1)
        return ((fb - base)[:, :, None] * (b - theta)).mean(axis=1).astype(dt)
    return draw


def np_concrete(logits, target, dt, tau, tau_used=None, scale=1.0, naive=False, hard=False):
    """Binary Concrete pathwise gradient 2 (y − t) y (1 − y) / τ, y = σ((ℓ + L)/τ), L logistic.

    ``tau_used`` computes at another temperature (a planted bug); ``naive`` writes σ'(s) as
    e^{−s}/(1 + e^{−s})² (NaN once e^{−s} overflows); ``hard`` is straight-through: ∇f at the hard
    sample b = 1[ℓ + L > 0], backward through the relaxation.
    """
    tau_c = tau if tau_used is None else tau_used

    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        u = rng.random((m, ell.size)).astype(dt)
        u = np.clip(u, np.finfo(dt).tiny, dt(1) - np.finfo(dt).epsneg)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = (ell + (np.log(u) - np.log1p(-u))) / dt(tau_c)
            y = special.expit(z).astype(dt)
            dy = np.exp(-z) / (1 + np.exp(-z)) ** 2 if naive else y * (1 - y)
            at = (z > 0).astype(dt) if hard else y
            g = scale * 2 * (at - t) * dy / dt(tau_c)
        return g.astype(dt)
    return draw


def np_plain_straight_through(logits, target, dt):
    """Plain straight-through: ∇f at the hard sample b ~ Bernoulli(σ(ℓ)) times σ'(ℓ) (no noise backward)."""
    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        theta = special.expit(ell)
        b = (rng.random((m, ell.size)) < theta).astype(dt)
        return (2 * (b - t) * theta * (1 - theta)).astype(dt)
    return draw


def np_rebar(logits, target, dt, tau, eta=1.0, conditional=True):
    r"""REBAR for bits (Tucker et al. 2017, eq. 6).

    ĝ = [f(b) − η f(σ_τ(z̃))](b − θ) + η[∂f(σ_τ(z)) − ∂f(σ_τ(z̃))], with

    z = ℓ + logistic(u), b = 1[z > 0]; z̃ ~ z | b from v' = v(1 − θ) (b = 0) or (1 − θ) + vθ (b = 1),
    z̃ = ℓ + log v' − log(1 − v'), ∂z̃/∂ℓ = 1 + (∂v'/∂ℓ)/(v'(1 − v')).  ``conditional=False`` is the planted
    bug: z̃ = ℓ + logistic(v), drawn from the unconditional law, ∂z̃/∂ℓ = 1.
    """
    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        d = ell.size
        u, v = rng.random((m, d)).astype(dt), rng.random((m, d)).astype(dt)
        theta = special.expit(ell)
        z = ell + np.log(u) - np.log1p(-u)
        b = (z > 0).astype(dt)
        if conditional:
            vp = np.where(b > 0, (1 - theta) + v * theta, v * (1 - theta))
            dvp = np.where(b > 0, (v - 1), -v) * theta * (1 - theta)
            zt = ell + np.log(vp) - np.log1p(-vp)
            dzt = 1 + dvp / (vp * (1 - vp))
        else:
            zt = ell + np.log(v) - np.log1p(-v)
            dzt = np.ones_like(zt)
        x, xt = special.expit(z / tau), special.expit(zt / tau)
        fb = ((b - t) ** 2).sum(axis=1, keepdims=True)
        fxt = ((xt - t) ** 2).sum(axis=1, keepdims=True)
        px = 2 * (x - t) * x * (1 - x) / tau
        pxt = 2 * (xt - t) * xt * (1 - xt) / tau * dzt
        return ((fb - eta * fxt) * (b - theta) + eta * (px - pxt)).astype(dt)
    return draw


def _cat_f(onehot, t):
    return ((onehot - t) ** 2).sum(axis=(-1, -2))


def np_cat_reinforce(logits, target, dt, forget_normaliser=False):
    """Categorical REINFORCE: f(b) (onehot(b) − softmax(ℓ)) per row; the bug drops the −softmax(ℓ) term."""
    def draw(seed, m):
        rng = _rng(seed)
        ell, t = np.asarray(logits, dt), np.asarray(target, dt)
        p = special.softmax(ell, axis=-1).astype(dt)
        g = -np.log(-np.log(rng.random((m,) + ell.shape)))
        onehot = (np.arange(ell.shape[-1]) == np.argmax(ell + g, axis=-1)[..., None]).astype(dt)
        fb = _cat_f(onehot, t)[:, None, None]
        return (fb * (onehot if forget_normaliser else onehot - p)).astype(dt)
    return draw


# --------------------------------------------------------------------- deterministic implementations

def _random_bern(seed, d=3):
    rng = _rng(seed)
    return _bern(rng.normal(0.0, 3.0, d), rng.random(d))


def _random_cat(seed, rows=2, k=4):
    rng = _rng(seed)
    return _cat(rng.normal(0.0, 3.0, (rows, k)), rng.random((rows, k)))


def det_enumeration(dt, rel_error=0.0):
    """The exact gradient Σ_b q(b) f(b) (b − σ(ℓ)) over the 2^d configurations, by hand, every row the same."""
    def draw(seed, m, dist, f):
        ell, t = np.asarray(dist.params, dt), np.asarray(f.target, dt)
        d = ell.size
        theta = special.expit(ell).astype(dt)
        bits = ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(dt)
        q = np.prod(np.where(bits > 0, theta, 1 - theta), axis=1)
        fb = ((bits - t) ** 2).sum(axis=1)
        g = ((q * fb)[:, None] * (bits - theta)).sum(axis=0) * dt(1 + rel_error)
        return np.tile(g.astype(dt), (m, 1))
    return draw


def det_all_action(dt):
    """All-action policy gradient per categorical row: p_k (f(e_k) − Σ_j p_j f(e_j)) (f separable over rows)."""
    def draw(seed, m, dist, f):
        ell, t = np.asarray(dist.params, dt), np.asarray(f.target, dt)
        p = special.softmax(ell, axis=-1).astype(dt)
        eye = np.eye(ell.shape[-1], dtype=dt)
        fk = ((eye[None, :, :] - t[:, None, :]) ** 2).sum(axis=-1)  # (rows, K): row r's term at e_k
        g = p * (fk - (p * fk).sum(axis=-1, keepdims=True))
        return np.tile(g.astype(dt)[None], (m, 1, 1))
    return draw


# ------------------------------------------------------------------------------ refgrad's own, cast

def own(name, dist, f, dt=np.float32, **opts):
    def draw(seed, m):
        return estimate(name, dist, f, n=m, rng=seed, **opts).astype(dt)
    return draw


# -------------------------------------------------------------------------------------------- torch
# per_sample_gradients(surrogate) with an (m,) loss runs one backward pass batched over grad_outputs = I_m, whose
# cost grows like m²: the rows are drawn TORCH_CHUNK at a time (n = 1000 in one call: 1.9 s for F.gumbel_softmax).

TORCH_CHUNK = 200


def _chunked(one):
    def draw(seed, m):
        import torch

        torch.manual_seed(seed)
        return np.concatenate([one(min(TORCH_CHUNK, m - i)) for i in range(0, m, TORCH_CHUNK)])
    return draw


def torch_bern_reinforce(logits, target):
    def one(m):
        import torch

        from refgrad.crosscheck import torch as ct

        ell = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
        t = torch.tensor(target, dtype=torch.float32)

        def surrogate():
            q = torch.distributions.Bernoulli(logits=ell.expand(m, -1))
            b = q.sample()
            fb = ((b - t) ** 2).sum(-1)
            return fb.detach() * q.log_prob(b).sum(-1)
        return ct.per_sample_gradients(surrogate, ell)
    return _chunked(one)


def torch_cat_reinforce(logits, target):
    def one(m):
        import torch

        from refgrad.crosscheck import torch as ct

        ell = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
        t = torch.tensor(target, dtype=torch.float32)

        def surrogate():
            q = torch.distributions.Categorical(logits=ell.expand(m, -1, -1))
            b = q.sample()
            onehot = torch.nn.functional.one_hot(b, ell.shape[-1]).to(torch.float32)
            fb = ((onehot - t) ** 2).sum((-1, -2))
            return fb.detach() * q.log_prob(b).sum(-1)
        return ct.per_sample_gradients(surrogate, ell)
    return _chunked(one)


def torch_gumbel_softmax(logits, target, tau, tau_used=None):
    def one(m):
        import torch

        from refgrad.crosscheck import torch as ct

        ell = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
        t = torch.tensor(target, dtype=torch.float32)

        def surrogate():
            y = torch.nn.functional.gumbel_softmax(ell.expand(m, -1, -1), tau=tau if tau_used is None else tau_used)
            return ((y - t) ** 2).sum((-1, -2))
        return ct.per_sample_gradients(surrogate, ell)
    return _chunked(one)


# ---------------------------------------------------------------------------------------------- JAX

def jax_cat_reinforce(logits, target):
    def draw(seed, m):
        import jax
        import jax.numpy as jnp

        from refgrad.crosscheck import jax as cj

        t = jnp.asarray(target, dtype=jnp.float32)

        def surrogate(ell, key):
            b = jax.random.categorical(key, jax.lax.stop_gradient(ell), axis=-1)
            onehot = jax.nn.one_hot(b, ell.shape[-1], dtype=jnp.float32)
            fb = jnp.sum((onehot - t) ** 2)
            return jax.lax.stop_gradient(fb) * jnp.sum(onehot * jax.nn.log_softmax(ell, axis=-1))
        keys = jax.random.split(jax.random.PRNGKey(seed), m)
        return cj.per_sample_gradients(surrogate, jnp.asarray(logits, dtype=jnp.float32), keys)
    return draw


def jax_concrete(logits, target, tau, step=False):
    """Binary Concrete pathwise gradient by jax.grad; ``step`` is the planted bug f(1[z > 0]).

    The step has derivative 0 almost everywhere, so the score term is missing and the gradient is 0.
    """
    def draw(seed, m):
        import jax
        import jax.numpy as jnp

        from refgrad.crosscheck import jax as cj

        t = jnp.asarray(target, dtype=jnp.float32)

        def surrogate(ell, key):
            z = ell + jax.random.logistic(key, ell.shape, dtype=jnp.float32)
            y = (z > 0).astype(jnp.float32) if step else jax.nn.sigmoid(z / tau)
            return jnp.sum((y - t) ** 2)
        keys = jax.random.split(jax.random.PRNGKey(seed), m)
        return cj.per_sample_gradients(surrogate, jnp.asarray(logits, dtype=jnp.float32), keys)
    return draw


# --------------------------------------------------------------------------------------- TensorFlow

def tf_bern_reinforce(logits, target):
    def draw(seed, m):
        import tensorflow as tf

        from refgrad.crosscheck import tensorflow as ctf

        ell = tf.Variable(np.asarray(logits, np.float32))
        t = tf.constant(np.asarray(target, np.float32))
        u = tf.random.stateless_uniform((m,) + tuple(ell.shape), seed=[seed % (2 ** 31), 7], dtype=tf.float32)

        def surrogate(ell, u):
            theta = tf.sigmoid(ell)
            b = tf.cast(u < theta, tf.float32)
            fb = tf.reduce_sum((b - t) ** 2)
            logq = tf.reduce_sum(b * tf.math.log_sigmoid(ell) + (1 - b) * tf.math.log_sigmoid(-ell))
            return tf.stop_gradient(fb) * logq
        return ctf.per_sample_gradients(surrogate, ell, u)
    return draw


def tf_gumbel_softmax(logits, target, tau):
    def draw(seed, m):
        import tensorflow as tf

        from refgrad.crosscheck import tensorflow as ctf

        ell = tf.Variable(np.asarray(logits, np.float32))
        t = tf.constant(np.asarray(target, np.float32))
        u = tf.random.stateless_uniform((m,) + tuple(ell.shape), seed=[seed % (2 ** 31), 11], minval=1e-7, maxval=1.0,
                                        dtype=tf.float32)

        def surrogate(ell, u):
            y = tf.nn.softmax((ell - tf.math.log(-tf.math.log(u))) / tau, axis=-1)
            return tf.reduce_sum((y - t) ** 2)
        return ctf.per_sample_gradients(surrogate, ell, u)
    return draw


# ------------------------------------------------------------------------------------------ the list
# REBAR runs on two bits: on three, exact.moments refuses (an 8-minute quadrature) and the Monte Carlo fallback's
# bootstrap-calibrated mean test costs about 0.3 s per check.

def _cases():
    f32, f64 = np.float32, np.float64
    cases = []

    def add(key, logits_target, impl, fw, dt, n, kind, draw, unbiased=True, name=None, block=100, **opts):
        logits, target = logits_target
        dist, f = (_cat if np.ndim(logits) == 2 else _bern)(logits, target)
        cases.append(Case(key, _text(logits, target, **opts), impl, fw, np.dtype(dt).name, n, kind, draw, dist, f,
                          unbiased, name, opts, block))

    def det(key, text, impl, dt, n, kind, draw, problem):
        cases.append(Case(key, text, impl, "NumPy", np.dtype(dt).name, n, kind, draw, unbiased=True, block=1,
                          problem=problem))

    # refgrad's own estimators, cast to float32
    add("own-reinforce-cat", PC2, "refgrad reinforce, cast", "refgrad", f32, 1000, "null",
        own("reinforce", *_cat(*PC2)), name="reinforce")
    add("own-disarm", PB2, "refgrad disarm, cast", "refgrad", f32, 1000, "null", own("disarm", *_bern(*PB2)),
        name="disarm")
    add("own-gs-cat", PC1, "refgrad gumbel_softmax, cast", "refgrad", f32, 1000, "null",
        own("gumbel_softmax", *_cat(*PC1), tau=0.5), unbiased=False, name="gumbel_softmax", tau=0.5)
    add("own-st-cat", PC1, "refgrad straight_through, cast", "refgrad", f32, 1000, "null",
        own("straight_through", *_cat(*PC1), tau=0.5), unbiased=False, name="straight_through", tau=0.5)
    add("own-reinmax", PB3, "refgrad reinmax, cast", "refgrad", f32, 1000, "null",
        own("reinmax", *_bern(*PB3), tau=1.0), unbiased=False, name="reinmax", tau=1.0)
    add("own-stplain-cat", PC2, "refgrad straight_through_plain, cast", "refgrad", f32, 1000, "null",
        own("straight_through_plain", *_cat(*PC2)), unbiased=False, name="straight_through_plain")
    add("own-rebar", PB2, "refgrad rebar, cast", "refgrad", f32, 1000, "null",
        own("rebar", *_bern(*PB2), tau=0.5, eta=1.0), name="rebar", tau=0.5, eta=1.0)
    px100 = ([100.0, -100.0], [0.45, 0.2])
    add("own-gs-100", px100, "refgrad gumbel_softmax, cast", "refgrad", f32, 1000, "null",
        own("gumbel_softmax", *_bern(*px100), tau=0.5), unbiased=False, name="gumbel_softmax", tau=0.5)
    pc30 = ([[30.0, 0.0, -30.0]], [[0.3, 0.1, 0.2]])
    add("own-gs-cat30", pc30, "refgrad gumbel_softmax, cast", "refgrad", f32, 1000, "null",
        own("gumbel_softmax", *_cat(*pc30), tau=0.1), unbiased=False, name="gumbel_softmax", tau=0.1)
    pc_t = ([[1.0, 0.0, -1.0]], [[0.3, 0.1, 0.2]])
    for tau in (0.01, 10.0):
        add(f"own-gs-cat-t{tau:g}", pc_t, "refgrad gumbel_softmax, cast", "refgrad", f32, 1000, "null",
            own("gumbel_softmax", *_cat(*pc_t), tau=tau), unbiased=False, name="gumbel_softmax", tau=tau)

    # textbook NumPy
    add("np-reinforce", PB3, "REINFORCE", "NumPy", f32, 1000, "null", np_reinforce(*PB3, f32), name="reinforce")
    add("np-reinforce-noname", PB3, "REINFORCE (no name=)", "NumPy", f64, 1000, "null", np_reinforce(*PB3, f64))
    add("np-rloo", PB3, "REINFORCE, leave-one-out baseline (m = 4)", "NumPy", f64, 1000, "null",
        np_rloo(*PB3, f64), name="rloo", m=4)
    add("np-cat-reinforce", PC2, "REINFORCE", "NumPy", f32, 1000, "null", np_cat_reinforce(*PC2, f32),
        name="reinforce")
    for tau, dt in ((0.01, f64), (0.01, f32), (0.1, f64), (0.5, f32), (1.0, f64), (10.0, f64)):
        add(f"np-concrete-t{tau:g}-{np.dtype(dt).name}", PB2, "Binary Concrete pathwise", "NumPy", dt, 1000, "null",
            np_concrete(*PB2, dt, tau), unbiased=False, name="gumbel_softmax", tau=tau)
    add("np-st", PB2, "straight-through (Binary Concrete backward)", "NumPy", f32, 1000, "null",
        np_concrete(*PB2, f32, 0.5, hard=True), unbiased=False, name="straight_through", tau=0.5)
    add("np-stplain", PB3, "plain straight-through (backward through σ)", "NumPy", f32, 1000, "null",
        np_plain_straight_through(*PB3, f32), unbiased=False, name="straight_through_plain")
    add("np-rebar", PB2, "REBAR (conditional z̃ | b)", "NumPy", f64, 1000, "null", np_rebar(*PB2, f64, 0.5),
        name="rebar", tau=0.5, eta=1.0)
    # extreme logits
    for logits in ([30.0, -30.0], [50.0, -50.0], [100.0, -100.0], [np.inf, -np.inf, 0.5]):
        pt = (logits, [0.45, 0.2, 0.7][:len(logits)])
        key = "np-reinforce-" + ("inf" if np.isinf(logits[0]) else f"{logits[0]:g}")
        add(key, pt, "REINFORCE", "NumPy", f64, 1000, "null", np_reinforce(*pt, f64), name="reinforce")
    for logits, dt in (([30.0, -30.0], f32), ([50.0, -50.0], f64)):
        pt = (logits, [0.45, 0.2])
        add(f"np-concrete-{logits[0]:g}-{np.dtype(dt).name}", pt, "Binary Concrete pathwise", "NumPy", dt, 1000,
            "null", np_concrete(*pt, dt, 0.5), unbiased=False, name="gumbel_softmax", tau=0.5)

    # frameworks (float32, per-sample gradients from refgrad.crosscheck's helpers)
    add("torch-reinforce", PB3, "REINFORCE (torch.distributions.Bernoulli)", "torch", f32, 1000, "null",
        torch_bern_reinforce(*PB3), name="reinforce", block=10)
    add("torch-cat-reinforce", PC2, "REINFORCE (torch.distributions.Categorical)", "torch", f32, 1000, "null",
        torch_cat_reinforce(*PC2), name="reinforce", block=10)
    add("torch-gs", PC1, "F.gumbel_softmax", "torch", f32, 200, "null", torch_gumbel_softmax(*PC1, 0.5),
        unbiased=False, name="gumbel_softmax", tau=0.5, block=10)
    add("jax-cat-reinforce", PC2, "REINFORCE (jax.random.categorical)", "JAX", f32, 1000, "null",
        jax_cat_reinforce(*PC2), name="reinforce")
    add("jax-concrete", PB2, "Binary Concrete pathwise (jax.grad)", "JAX", f32, 1000, "null",
        jax_concrete(*PB2, 0.5), unbiased=False, name="gumbel_softmax", tau=0.5)
    add("tf-reinforce", PB3, "REINFORCE (stateless uniforms)", "TensorFlow", f32, 1000, "null",
        tf_bern_reinforce(*PB3), name="reinforce")
    add("tf-gs", PC1, "Gumbel-softmax (stateless uniforms)", "TensorFlow", f32, 1000, "null",
        tf_gumbel_softmax(*PC1, 0.5), unbiased=False, name="gumbel_softmax", tau=0.5)

    # deterministic
    det("det-enum-f64", "random Bernoulli logits N(0, 3²)^3, targets U(0, 1)^3, new per replication",
        "exact gradient by enumeration", f64, 100, "null", det_enumeration(f64), _random_bern)
    det("det-enum-f32", "random Bernoulli logits N(0, 3²)^3, targets U(0, 1)^3, new per replication",
        "exact gradient by enumeration", f32, 100, "null", det_enumeration(f32), _random_bern)
    det("det-allaction-f32", "random Categorical logits N(0, 3²)^(2×4), targets U(0, 1), new per replication",
        "all-action policy gradient", f32, 100, "null", det_all_action(f32), _random_cat)

    # planted bugs
    det("bug-const-1e-3", "random Bernoulli logits N(0, 3²)^3, targets U(0, 1)^3, new per replication",
        "exact gradient × (1 + 1e-3)", f32, 100, "bug", det_enumeration(f32, 1e-3), _random_bern)
    add("bug-1.5x-concrete", PB2, "Binary Concrete pathwise × 1.5", "NumPy", f64, 1000, "bug",
        np_concrete(*PB2, f64, 0.5, scale=1.5), unbiased=False, name="gumbel_softmax", tau=0.5)
    add("bug-1.5x-reinforce", PB3, "REINFORCE × 1.5", "NumPy", f64, 1000, "bug",
        np_reinforce(*PB3, f64, scale=1.5), name="reinforce")
    add("bug-nan", PB2, "Binary Concrete, σ' as e^{−s}/(1+e^{−s})² (NaN on overflow)", "NumPy", f32, 1000, "bug",
        np_concrete(*PB2, f32, 0.05, naive=True), unbiased=False, name="gumbel_softmax", tau=0.05)
    add("bug-step", PB2, "pathwise through the step 1[z > 0] (score term missing)", "JAX", f32, 1000, "bug",
        jax_concrete(*PB2, 0.5, step=True))
    add("bug-cat-normaliser", PC2, "REINFORCE without −softmax(ℓ) in the score", "NumPy", f32, 1000, "bug",
        np_cat_reinforce(*PC2, f32, forget_normaliser=True), name="reinforce")
    add("bug-tau", PB2, "Binary Concrete at τ' = 0.7, claiming τ = 0.5", "NumPy", f64, 1000, "bug",
        np_concrete(*PB2, f64, 0.5, tau_used=0.7), unbiased=False, name="gumbel_softmax", tau=0.5)
    add("bug-tau-torch", PC1, "F.gumbel_softmax at τ' = 1, claiming τ = 0.5", "torch", f32, 200, "bug",
        torch_gumbel_softmax(*PC1, 0.5, tau_used=1.0), unbiased=False, name="gumbel_softmax", tau=0.5, block=10)
    add("bug-rebar-unconditional", PB2, "REBAR with z̃ from the unconditional law", "NumPy", f64, 1000, "bug",
        np_rebar(*PB2, f64, 0.5, conditional=False), name="rebar", tau=0.5, eta=1.0)
    return cases


CASES = _cases()


# ------------------------------------------------------------------------------------------ running

def _seed(key, block):
    return int(np.random.SeedSequence([zlib.crc32(key.encode()), block]).generate_state(1)[0])


_MODULES = {"torch": "torch", "JAX": "jax", "TensorFlow": "tensorflow"}


def _available(framework):
    import importlib.util

    mod = _MODULES.get(framework)
    return mod is None or importlib.util.find_spec(mod) is not None


def clopper_pearson(k, n, confidence=CONFIDENCE):
    """Two-sided Clopper-Pearson interval of a binomial rate (k successes in n)."""
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def run_case(case, reps, alphas=ALPHAS, keep=False):
    """Check ``reps`` replications of ``case``; returns a dict of counts (and the verdicts with ``keep``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fails = np.zeros(len(alphas), dtype=int)
    verdicts = []
    ref = None
    done, block = 0, 0
    while done < reps:
        if case.problem is not None:
            seed = _seed(case.key, done)
            dist, f = case.problem(seed)
            x = case.draw(seed, case.n, dist, f)[None]
            ref_here = estimator_reference(dist, f, name=case.name, **case.options)
        else:
            dist, f = case.dist, case.f
            if ref is None:
                ref = estimator_reference(dist, f, name=case.name, **case.options)
            ref_here = ref
            m = min(case.block, reps - done)
            x = np.asarray(case.draw(_seed(case.key, block), m * case.n))
            x = x.reshape((m, case.n) + x.shape[1:])
        block += 1
        for rows in x:
            for a, alpha in enumerate(alphas):
                v = crosscheck.check_estimator(rows, dist, f, case.unbiased, name=case.name, alpha=alpha,
                                               reference=ref_here, **case.options)
                fails[a] += not v.passed
                if keep:
                    verdicts.append((alpha, v))
            done += 1
    out = {"case": case, "reps": reps, "fails": fails.tolist(), "seconds": time.perf_counter() - t0,
           "cpu": time.process_time() - c0}
    if keep:
        out["verdicts"] = verdicts
    return out


def _ok(result, alphas=ALPHAS):
    case, reps, fails = result["case"], result["reps"], result["fails"]
    if case.kind == "null":
        return all(clopper_pearson(k, reps)[0] <= a for k, a in zip(fails, alphas))
    return fails[0] / reps >= POWER


def _fmt_rate(k, reps):
    lo, hi = clopper_pearson(k, reps)
    return f"{k}/{reps} = {k / reps:.3g} [{lo:.2g}, {hi:.2g}]"


def table(results, command, seconds, cpu, total=None):
    lines = ["# Error rates of `refgrad.crosscheck.check_estimator`", "",
             "Generated by `" + command + "` on " + datetime.datetime.now(datetime.timezone.utc).strftime(
                 "%Y-%m-%d %H:%M UTC") + f", {platform.node() or 'unknown host'} ({platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}); "
             f"{seconds:.0f} s wall-clock, {cpu:.0f} s CPU time of the process (all its threads) in all. Do not edit "
             "by hand: rerun the command.", "",
             "Each correct implementation (`null`) is checked on independent replications at α = 1e-3 and "
             "α = 1e-2; the false-alarm rate is shown with its 99 % Clopper-Pearson interval, and the case "
             "holds its level when the interval's lower end is at most α. Each planted bug (`bug`) shows the "
             "rate of failed verdicts (power), required ≥ 0.99 at α = 1e-3. The check is "
             "`check_estimator(samples, dist, f, unbiased, name=..., alpha=..., **options)` with the listed "
             "name and options; the cases are in `validation/crosscheck_battery.py`.", "",
             "| case | problem | implementation | framework | dtype | n | check | reps | "
             "false alarms / power at α = 1e-3 | at α = 1e-2 | ok | wall s | CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["case"]
        check = ("name=" + repr(c.name) if c.name else "no name") + ("" if c.unbiased else ", unbiased=False")
        if c.options:
            check += ", " + ", ".join(f"{k}={v!r}" for k, v in c.options.items())
        lines.append(f"| {c.key} ({c.kind}) | {c.problem_text} | {c.implementation} | {c.framework} | {c.dtype} | "
                     f"{c.n} | {check} | {r['reps']} | {_fmt_rate(r['fails'][0], r['reps'])} | "
                     f"{_fmt_rate(r['fails'][1], r['reps'])} | {'yes' if _ok(r) else '**NO**'} | {r['seconds']:.0f} | "
                     f"{r['cpu']:.0f} |")
    bad = [r["case"].key for r in results if not _ok(r)]
    lines += ["", "Every verdict rate is within its requirement." if not bad
              else "Cases outside their requirement: " + ", ".join(bad) + "."]
    if total is not None and len(results) < total:
        lines += ["", f"**Partial run**: {len(results)} of {total} cases so far."]
    return "\n".join(lines) + "\n"


def run(reps=1000, quick=False, keys=None, out=None, command=None, log=sys.stderr):
    """Run the battery; returns the list of results (and writes the table to ``out`` if given)."""
    t0, c0 = time.perf_counter(), time.process_time()
    results = []
    chosen = [c for c in CASES if keys is None or c.key in keys]
    skipped = [c for c in chosen if not _available(c.framework)]
    if skipped and log is not None:
        print("skipped (framework not installed): " + ", ".join(c.key for c in skipped), file=log, flush=True)
    chosen = [c for c in chosen if c not in skipped]
    for case in chosen:
        r_null = 3 if quick else reps
        r = r_null if case.kind == "null" else (3 if quick else max(200, reps // 5))
        res = run_case(case, r)
        results.append(res)
        if log is not None:
            print(f"{case.key:28s} {case.kind:4s} fails {res['fails']} of {r} "
                  f"{'ok' if _ok(res) else 'NOT OK'} ({res['seconds']:.1f} s, CPU {res['cpu']:.1f} s)", file=log,
                  flush=True)
        if out is not None:  # rewritten after every case: a long run leaves its table so far
            text = table(results, command or "python -m validation.crosscheck_battery", time.perf_counter() - t0,
                         time.process_time() - c0, len(chosen))
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m validation.crosscheck_battery", description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="replications per correct case (bugs: max(200, reps/5))")
    parser.add_argument("--out", default=None,
                        help="where the Markdown table goes (default docs/crosscheck.md; none with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 replications per case (a smoke run)")
    parser.add_argument("--case", action="append", help="run only this case key (repeatable)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be a positive integer; got {args.reps}")
    out = args.out if args.out is not None or args.quick else "docs/crosscheck.md"
    command = "python -m validation.crosscheck_battery" + (f" --reps {args.reps}" if args.reps != 1000 else "") \
        + (" --quick" if args.quick else "") + (f" --out {out}" if out not in (None, "docs/crosscheck.md") else "") \
        + "".join(f" --case {k}" for k in args.case or ())
    results = run(args.reps, args.quick, set(args.case) if args.case else None, out, command)
    return 0 if all(_ok(r) for r in results) or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
