r"""Straightforward vectorised NumPy versions of refgrad's estimators, for the benchmark.

Each function is written the way a careful user would write the estimator from
its published formula and refgrad's docstrings: whole ``(n, ...)`` arrays, one
NumPy expression per stage, the stable forms documented in refgrad (``log1p``,
``expit``, ``b − σ(ℓ)`` for the score), finite parameters only.  The objective is
the squared distance ``f(x) = Σ (x − t)²``, ``∇f = 2 (x − t)``.

Notation (Bernoulli logits ``ℓ`` of shape ``(d,)``; Categorical logits of shape
``(d, K)``; uniforms ``u``, ``v`` laid out as ``refgrad.ESTIMATORS[name].noise_layout``):

* latent ``z = ℓ + log u − log(1 − u)`` (bits) or ``z = ℓ + G(u)``, ``G = −log(−log u)``;
* hard sample ``b = 1[u > σ(−ℓ)]`` or ``onehot(argmax z)``; score ``s = b − E[b]``;
* relaxation ``x = σ(z/τ)`` or ``softmax(z/τ)``; its VJP ``J_τ(z)ᵀ c`` is
  ``c x(1 − x)/τ`` or ``x ⊙ (c − ⟨x, c⟩)/τ``;
* conditional latent ``z̃ ~ z | b`` from ``v`` (Tucker et al. 2017, appendix):
  bits ``z̃ = log(1 + v e^ℓ) − log(1 − v)`` (b = 1), ``log v − log(1 + (1 − v) e^{−ℓ})`` (b = 0),
  with ``∂z̃/∂ℓ = v e^ℓ/(1 + v e^ℓ)`` or ``(1 − v) e^{−ℓ}/(1 + (1 − v) e^{−ℓ})``;
  categorical: top ``T = logsumexp(ℓ) + G(v_b)``, others ``z̃_k = −logaddexp(−T, −(ℓ_k + G(v_k)))``,
  pulled back by ``(∂z̃/∂ℓ)ᵀ c = [k ≠ b] c_k σ(T − y_k) + p_k (c_b + Σ_{j≠b} c_j σ(y_j − T))``.

The formulas of the estimators themselves are those in refgrad's estimator docstrings
(``help(refgrad.ESTIMATORS[name])``); the benchmark checks that every function here
equals ``refgrad.estimate`` on the same uniforms to 1e-12 before timing it.
"""
import numpy as np
from scipy import special

__all__ = ["IMPLEMENTATIONS", "estimate"]


# ---------------------------------------------------------------------------- shared pieces


def _f(x, t):
    """f(x) = Σ (x − t)² over every axis but the first."""
    diff = x - t
    return (diff * diff).reshape(x.shape[0], -1).sum(axis=1)


def _col(values, ndim):
    """Per-sample values (n,) shaped to broadcast against (n, *param_shape)."""
    return values.reshape(values.shape + (1,) * ndim)


def _categorical(logits):
    return logits.ndim == 2


def _gumbel(u):
    return -np.log(-np.log(u))


def _latent(logits, u):
    if _categorical(logits):
        return logits + _gumbel(u)
    return logits + np.log(u) - np.log1p(-u)


def _hard(logits, u):
    """The hard sample b (float), as refgrad's ``dist.from_uniforms``."""
    if _categorical(logits):
        idx = np.argmax(logits + _gumbel(u), axis=-1)
        return np.eye(logits.shape[-1])[idx]
    return (u > special.expit(-logits)).astype(np.float64)


def _mean(logits):
    """E[b]: σ(ℓ) or softmax(ℓ)."""
    if _categorical(logits):
        return special.softmax(logits, axis=-1)
    return special.expit(logits)


def _relax(logits, z, tau):
    if _categorical(logits):
        return special.softmax(z / tau, axis=-1)
    return special.expit(z / tau)


def _relax_vjp(logits, x, tau, c):
    """J_τ(z)ᵀ c at the relaxed point x = σ_τ(z)."""
    if _categorical(logits):
        return x * (c - (x * c).sum(axis=-1, keepdims=True)) / tau
    return c * x * (1.0 - x) / tau


def _conditional(logits, b, v):
    """z̃ ~ z | b from v and a function pulling a cotangent back through ∂z̃/∂ℓ."""
    if _categorical(logits):
        lse = special.logsumexp(logits, axis=-1)
        y = logits + _gumbel(v)
        onehot = b.astype(bool)
        if v.ndim == b.ndim + 1:  # k conditional draws per sample
            onehot = np.broadcast_to(onehot[:, None], v.shape)
        top = lse + np.where(onehot, _gumbel(v), 0.0).sum(axis=-1)
        top_k = top[..., None]
        zt = np.where(onehot, top_k, -np.logaddexp(-top_k, -y))
        p = _mean(logits)

        def pull(c):
            c_b = np.where(onehot, c, 0.0).sum(axis=-1, keepdims=True)
            rest = np.where(onehot, 0.0, c * special.expit(y - top_k)).sum(axis=-1, keepdims=True)
            return np.where(onehot, 0.0, c * special.expit(top_k - y)) + p * (c_b + rest)

        return zt, pull
    if v.ndim == b.ndim + 1:
        b = b[:, None]
    up = b == 1.0
    ve = v * np.exp(logits)
    we = (1.0 - v) * np.exp(-logits)
    zt = np.where(up, np.log1p(ve) - np.log1p(-v), np.log(v) - np.log1p(we))
    slope = np.where(up, ve / (1.0 + ve), we / (1.0 + we))
    return zt, lambda c: slope * c


def _squared(t, shape):
    return np.broadcast_to(np.asarray(t, dtype=np.float64), shape)


# ---------------------------------------------------------------------------- score-function family


def reinforce(logits, t, noise):
    """(f(b)) ∂log q(b) = f(b) (b − E[b])."""
    b = _hard(logits, noise["u"])
    return _col(_f(b, t), logits.ndim) * (b - _mean(logits))


def rloo(logits, t, noise, m=2):
    """(1/m) Σ_j (f(b_j) − mean_{i≠j} f(b_i)) (b_j − E[b])."""
    u = noise["u"]  # (n, m, *event)
    n = u.shape[0]
    b = _hard(logits, u.reshape((n * m,) + logits.shape)).reshape(u.shape)
    fb = _f(b.reshape((n * m,) + logits.shape), t).reshape(n, m)
    loo = (fb.sum(axis=1, keepdims=True) - fb) / (m - 1)
    weights = (fb - loo) / m
    return (_col(weights, logits.ndim) * (b - _mean(logits))).sum(axis=1)


def muprop(logits, t, noise):
    """(f(b) − f(z̄) − ∇f(z̄)ᵀ(b − z̄)) (b − z̄) + J_mean(ℓ)ᵀ ∇f(z̄), z̄ = E[b]."""
    b = _hard(logits, noise["u"])
    zbar = _mean(logits)
    g0 = 2.0 * (zbar - t)
    f0 = _f(zbar[None], t)[0]
    centred = b - zbar
    baseline = f0 + (centred * g0).reshape(b.shape[0], -1).sum(axis=1)
    if _categorical(logits):
        mean_vjp = zbar * (g0 - (zbar * g0).sum(axis=-1, keepdims=True))
    else:
        mean_vjp = g0 * zbar * (1.0 - zbar)
    return _col(_f(b, t) - baseline, logits.ndim) * centred + mean_vjp


# ---------------------------------------------------------------------------- antithetic (Bernoulli)


def _pair(logits, u):
    b1 = (u > special.expit(-logits)).astype(np.float64)
    b2 = (u < special.expit(logits)).astype(np.float64)
    return b1, b2


def arm(logits, t, noise):
    """(f(b¹) − f(b²)) (u − ½)."""
    u = noise["u"]
    b1, b2 = _pair(logits, u)
    return (_f(b1, t) - _f(b2, t))[:, None] * (u - 0.5)


def disarm(logits, t, noise):
    """½ (f(b¹) − f(b²)) (−1)^{b²} 1[b¹ ≠ b²] σ(|ℓ|)."""
    u = noise["u"]
    b1, b2 = _pair(logits, u)
    sign = np.where(b2 == 1.0, -1.0, 1.0) * (b1 != b2)
    return 0.5 * (_f(b1, t) - _f(b2, t))[:, None] * sign * special.expit(np.abs(logits))


# ---------------------------------------------------------------------------- relaxed family


def gumbel_softmax(logits, t, noise, tau=1.0):
    """J_τ(z)ᵀ ∇f(σ_τ(z))."""
    x = _relax(logits, _latent(logits, noise["u"]), tau)
    return _relax_vjp(logits, x, tau, 2.0 * (x - t))


def straight_through(logits, t, noise, tau=1.0):
    """J_τ(z)ᵀ ∇f(b)."""
    u = noise["u"]
    x = _relax(logits, _latent(logits, u), tau)
    return _relax_vjp(logits, x, tau, 2.0 * (_hard(logits, u) - _squared(t, logits.shape)))


def gumbel_rao(logits, t, noise, tau=1.0, k=10):
    """(1/k) Σ_j J_τ(z̃_j)ᵀ ∇f(b), z̃_j ~ z | b, ∂z̃/∂φ = I (derivative='identity')."""
    b = _hard(logits, noise["u"])
    zt, _ = _conditional(logits, b, noise["v"])  # (n, k, *event)
    xt = _relax(logits, zt, tau)
    c = 2.0 * (b - _squared(t, logits.shape))
    return _relax_vjp(logits, xt, tau, c[:, None]).mean(axis=1)


def _rebar_pieces(logits, t, noise, tau):
    u, v = noise["u"], noise["v"]
    b = _hard(logits, u)
    x = _relax(logits, _latent(logits, u), tau)
    zt, pull = _conditional(logits, b, v)
    xt = _relax(logits, zt, tau)
    return b, x, xt, pull


def rebar(logits, t, noise, tau=0.5, eta=1.0):
    """[f(b) − η f(σ_τ(z̃))] (b − E[b]) + η [J_τ(z)ᵀ ∇f(x) − (∂z̃/∂ℓ)ᵀ J_τ(z̃)ᵀ ∇f(x̃)]."""
    b, x, xt, pull = _rebar_pieces(logits, t, noise, tau)
    path = _relax_vjp(logits, x, tau, 2.0 * (x - t))
    path_t = pull(_relax_vjp(logits, xt, tau, 2.0 * (xt - t)))
    score = b - _mean(logits)
    return _col(_f(b, t) - eta * _f(xt, t), logits.ndim) * score + eta * (path - path_t)


def _mlp(x, w1, b1, w2, b2):
    """r(x) = w2ᵀ tanh(W1 x + b1) + b2 and ∂r/∂x, per row of x flattened."""
    X = x.reshape(x.shape[0], -1)
    h = np.tanh(X @ w1.T + b1)
    return h @ w2 + b2, ((1.0 - h * h) * w2) @ w1


def relax(logits, t, noise, surrogate):
    """[f(b) − c(z̃)] (b − E[b]) + ∂c(z) − ∂c(z̃), c = η f(σ_τ(·)) + r_ψ(σ_τ(·))."""
    tau, eta = surrogate.tau, surrogate.eta
    w = (surrogate.w1, surrogate.b1, surrogate.w2, surrogate.b2)
    b, x, xt, pull = _rebar_pieces(logits, t, noise, tau)
    _, grad_r = _mlp(x, *w)
    r_t, grad_rt = _mlp(xt, *w)
    cot = eta * 2.0 * (x - t) + grad_r.reshape(x.shape)
    cot_t = eta * 2.0 * (xt - t) + grad_rt.reshape(xt.shape)
    path = _relax_vjp(logits, x, tau, cot)
    path_t = pull(_relax_vjp(logits, xt, tau, cot_t))
    score = b - _mean(logits)
    return _col(_f(b, t) - eta * _f(xt, t) - r_t, logits.ndim) * score + path - path_t


#: name -> function(logits, target, noise, **options)
IMPLEMENTATIONS = {
    "reinforce": reinforce,
    "rloo": rloo,
    "muprop": muprop,
    "arm": arm,
    "disarm": disarm,
    "gumbel_softmax": gumbel_softmax,
    "straight_through": straight_through,
    "gumbel_rao": gumbel_rao,
    "rebar": rebar,
    "relax": relax,
}


def estimate(name, logits, target, noise, **options):
    """The NumPy estimate of ``name`` for logits ``(d,)`` (Bernoulli) or ``(d, K)`` (Categorical)."""
    return IMPLEMENTATIONS[name](np.asarray(logits, dtype=np.float64), target, noise, **options)
