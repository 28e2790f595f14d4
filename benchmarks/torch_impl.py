r"""The estimators written the usual way with PyTorch autograd on the CPU, batched, float64.

Per-sample gradients come from one backward pass: the logits are expanded to a leaf
tensor of shape ``(n, *param_shape)`` (one copy per sample), each sample's surrogate
loss depends only on its own copy, and the gradient of the summed loss is the
``(n, *param_shape)`` array of estimates.  The surrogate losses are the textbook ones:

* REINFORCE: ``stop_grad(f(b)) · log q(b)``; RLOO: ``stop_grad(f(b_j) − mean_{i≠j} f(b_i)) log q(b_j) / m``;
* MuProp: ``stop_grad(f(b) − h(b)) log q(b) + ∇f(z̄)ᵀ z̄(ℓ)`` (``h`` the Taylor baseline at ``z̄ = E[b]``);
* ARM / DisARM: no derivative needed -- the closed forms, as tensor arithmetic;
* Gumbel-Softmax: ``f(σ_τ(z))``; straight-through: ``f(b + x − stop_grad(x))``;
* REBAR: ``stop_grad(f(b) − η f(x̃)) log q(b) + η (f(x) − f(x̃))`` with ``x̃ = σ_τ(z̃(ℓ, b, v))``
  differentiated through the conditioning;
* RELAX: REBAR's loss with the control variate ``c(x) = η f(x) + r_ψ(x)``,
  ``r_ψ(x) = w₂ᵀ tanh(W₁ x + b₁) + b₂`` (the surrogate's weights as constant tensors):
  ``stop_grad(f(b) − c(x̃)) log q(b) + c(x) − c(x̃)``;
* Gumbel-Rao: ``(1/k) Σ_j stop_grad(∇f(b)) · σ_τ(z̃_j)`` over ``k`` conditional latents
  ``z̃_j ~ z | b`` (the sample's ``ℓ`` and ``b`` repeated ``k`` times), with
  ``z̃_j = ℓ + stop_grad(z̃_j − ℓ)`` (``derivative="identity"``: the noise held fixed) or
  ``z̃_j`` differentiated through the conditioning (``derivative="total"``).

The conditional latents ``z̃ ~ z | b`` are written in torch ops, differentiable in the logits:
bits ``z̃ = log(1 + v e^ℓ) − log(1 − v)`` (b = 1) or ``log v − log(1 + (1 − v) e^{−ℓ})`` (b = 0);
categorical: the top coordinate ``T = logsumexp(ℓ) + G(v_b)``, the others
``−logaddexp(−T, −(ℓ_k + G(v_k)))`` (Gumbels truncated below ``T``).  The same uniforms as
refgrad's are converted with ``torch.from_numpy``.  torch is imported inside the functions, so
this module imports without it.
"""
import numpy as np

__all__ = ["IMPLEMENTATIONS", "NOT_WRITTEN", "available", "estimate"]

#: estimator -> why it has no torch version (every estimator of the benchmark has one)
NOT_WRITTEN = {}


def available():
    """True when torch imports."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch():
    import torch

    return torch


def _target(t):
    torch = _torch()
    return torch.as_tensor(np.asarray(t, dtype=np.float64))


def _f(x, t):
    diff = x - _target(t)
    return (diff * diff).reshape(x.shape[0], -1).sum(dim=1)


def _leaf(logits, n):
    torch = _torch()
    base = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    return base.expand((n,) + tuple(base.shape)).clone().requires_grad_(True)


def _categorical(logits):
    return logits.ndim == 3  # (n, d, K) leaf


def _gumbel(u):
    torch = _torch()
    return -torch.log(-torch.log(u))


def _hard(logits, u):
    """b as refgrad's dist.from_uniforms, without gradient."""
    torch = _torch()
    with torch.no_grad():
        if _categorical(logits):
            idx = torch.argmax(logits + _gumbel(u), dim=-1)
            return torch.nn.functional.one_hot(idx, logits.shape[-1]).to(torch.float64)
        return (u > torch.sigmoid(-logits)).to(torch.float64)


def _log_prob(logits, b):
    torch = _torch()
    if _categorical(logits):
        return (torch.log_softmax(logits, dim=-1) * b).sum(dim=(1, 2))
    return -torch.nn.functional.binary_cross_entropy_with_logits(logits, b, reduction="none").sum(dim=1)


def _latent(logits, u):
    torch = _torch()
    if _categorical(logits):
        return logits + _gumbel(u)
    return logits + torch.log(u) - torch.log1p(-u)


def _relax(logits, z, tau):
    torch = _torch()
    if _categorical(logits):
        return torch.softmax(z / tau, dim=-1)
    return torch.sigmoid(z / tau)


def _conditional(logits, b, v):
    """z̃ ~ z | b from v, differentiable in the logits (through the conditioning)."""
    torch = _torch()
    if _categorical(logits):
        g = _gumbel(v)
        top = (torch.logsumexp(logits, dim=-1) + (g * b).sum(dim=-1)).unsqueeze(-1)
        y = logits + g
        return torch.where(b == 1.0, top, -torch.logaddexp(-top, -y))
    up = torch.log1p(v * torch.exp(logits)) - torch.log1p(-v)
    down = torch.log(v) - torch.log1p((1.0 - v) * torch.exp(-logits))
    return torch.where(b == 1.0, up, down)


def _grad(loss, leaf):
    torch = _torch()
    (g,) = torch.autograd.grad(loss.sum(), leaf)
    return g.numpy()


def _tensors(noise):
    torch = _torch()
    return {key: torch.from_numpy(value) for key, value in noise.items()}


def reinforce(logits, t, noise):
    u = _tensors(noise)["u"]
    lg = _leaf(logits, u.shape[0])
    b = _hard(lg, u)
    return _grad(_f(b, t) * _log_prob(lg, b), lg)


def rloo(logits, t, noise, m=2):
    u = _tensors(noise)["u"]  # (n, m, *event)
    n = u.shape[0]
    lg = _leaf(logits, n)
    lg_rep = lg.unsqueeze(1).expand(u.shape).reshape((n * m,) + tuple(lg.shape[1:]))
    flat_u = u.reshape((n * m,) + tuple(lg.shape[1:]))
    b = _hard(lg_rep, flat_u)
    fb = _f(b, t).reshape(n, m)
    loo = (fb.sum(dim=1, keepdim=True) - fb) / (m - 1)
    weights = ((fb - loo) / m).detach()
    return _grad((weights * _log_prob(lg_rep, b).reshape(n, m)).sum(dim=1), lg)


def muprop(logits, t, noise):
    torch = _torch()
    u = _tensors(noise)["u"]
    lg = _leaf(logits, u.shape[0])
    b = _hard(lg, u)
    zbar = torch.softmax(lg, dim=-1) if _categorical(lg) else torch.sigmoid(lg)
    zbar_fixed = zbar.detach()
    g0 = 2.0 * (zbar_fixed - _target(t))
    baseline = _f(zbar_fixed, t) + ((b - zbar_fixed) * g0).reshape(b.shape[0], -1).sum(dim=1)
    loss = (_f(b, t) - baseline).detach() * _log_prob(lg, b) + (g0 * zbar).reshape(b.shape[0], -1).sum(dim=1)
    return _grad(loss, lg)


def arm(logits, t, noise):
    torch = _torch()
    u = _tensors(noise)["u"]
    lg = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    b1 = (u > torch.sigmoid(-lg)).to(torch.float64)
    b2 = (u < torch.sigmoid(lg)).to(torch.float64)
    return ((_f(b1, t) - _f(b2, t))[:, None] * (u - 0.5)).numpy()


def disarm(logits, t, noise):
    torch = _torch()
    u = _tensors(noise)["u"]
    lg = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    b1 = (u > torch.sigmoid(-lg)).to(torch.float64)
    b2 = (u < torch.sigmoid(lg)).to(torch.float64)
    sign = torch.where(b2 == 1.0, -1.0, 1.0) * (b1 != b2).to(torch.float64)
    return (0.5 * (_f(b1, t) - _f(b2, t))[:, None] * sign * torch.sigmoid(lg.abs())).numpy()


def gumbel_softmax(logits, t, noise, tau=1.0):
    u = _tensors(noise)["u"]
    lg = _leaf(logits, u.shape[0])
    return _grad(_f(_relax(lg, _latent(lg, u), tau), t), lg)


def straight_through(logits, t, noise, tau=1.0):
    u = _tensors(noise)["u"]
    lg = _leaf(logits, u.shape[0])
    x = _relax(lg, _latent(lg, u), tau)
    b = _hard(lg, u)
    return _grad(_f(b + x - x.detach(), t), lg)


def rebar(logits, t, noise, tau=0.5, eta=1.0):
    tensors = _tensors(noise)
    u, v = tensors["u"], tensors["v"]
    lg = _leaf(logits, u.shape[0])
    b = _hard(lg, u)
    x = _relax(lg, _latent(lg, u), tau)
    xt = _relax(lg, _conditional(lg, b, v), tau)
    f_xt = _f(xt, t)
    loss = (_f(b, t) - eta * f_xt).detach() * _log_prob(lg, b) + eta * (_f(x, t) - f_xt)
    return _grad(loss, lg)


def _repeat(x, k):
    """(n, *rest) -> (n k, *rest), each sample repeated k times (sample-major, as v's layout)."""
    return x.unsqueeze(1).expand((x.shape[0], k) + tuple(x.shape[1:])).reshape((x.shape[0] * k,) + tuple(x.shape[1:]))


def gumbel_rao(logits, t, noise, tau=1.0, k=10, derivative="identity"):
    if derivative not in ("identity", "total"):
        raise ValueError(f"derivative must be 'identity' or 'total'; got {derivative!r}")
    tensors = _tensors(noise)
    u, v = tensors["u"], tensors["v"]  # v: (n, k, *event)
    n = u.shape[0]
    lg = _leaf(logits, n)
    b = _hard(lg, u)
    lg_k = _repeat(lg, k)
    zt = _conditional(lg_k, _repeat(b, k), v.reshape((n * k,) + tuple(lg.shape[1:])))
    if derivative == "identity":
        zt = lg_k + (zt - lg_k).detach()
    c = (2.0 * (b - _target(t))).detach()
    xt = _relax(lg_k, zt, tau).reshape(v.shape)
    return _grad((xt * c.unsqueeze(1)).reshape(n, -1).sum(dim=1) / k, lg)


def _mlp(x, surrogate):
    """r_ψ(x) = w₂ᵀ tanh(W₁ x + b₁) + b₂ per sample of x (flattened)."""
    torch = _torch()
    w1, b1, w2 = (torch.tensor(np.asarray(a, dtype=np.float64)) for a in (surrogate.w1, surrogate.b1, surrogate.w2))
    return torch.tanh(x.reshape(x.shape[0], -1) @ w1.T + b1) @ w2 + surrogate.b2


def relax(logits, t, noise, surrogate):
    tau, eta = surrogate.tau, surrogate.eta
    tensors = _tensors(noise)
    u, v = tensors["u"], tensors["v"]
    lg = _leaf(logits, u.shape[0])
    b = _hard(lg, u)
    x = _relax(lg, _latent(lg, u), tau)
    xt = _relax(lg, _conditional(lg, b, v), tau)
    c_x = eta * _f(x, t) + _mlp(x, surrogate)
    c_xt = eta * _f(xt, t) + _mlp(xt, surrogate)
    loss = (_f(b, t) - c_xt).detach() * _log_prob(lg, b) + c_x - c_xt
    return _grad(loss, lg)


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
    """The torch estimate of ``name`` as a NumPy array (logits ``(d,)`` or ``(d, K)``)."""
    return IMPLEMENTATIONS[name](logits, target, noise, **options)
