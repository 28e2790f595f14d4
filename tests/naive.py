"""Plain NumPy/SciPy twins of every Numba kernel, used as test oracles.

Each twin is written independently of the kernel it checks (straightforward
NumPy, SciPy special functions where they exist), and takes the same uniforms.
"""
import numpy as np
from scipy import special

# ==== random ====


def random_gumbel(u):
    """-log(-log u)."""
    return -np.log(-np.log(np.asarray(u, dtype=np.float64)))


def random_exponential(u):
    """-log u."""
    return -np.log(np.asarray(u, dtype=np.float64))


def random_logistic(u):
    """log u - log(1 - u) (1 - u through log1p)."""
    u = np.asarray(u, dtype=np.float64)
    return np.log(u) - np.log1p(-u)


def random_normal(u):
    """scipy.special.ndtri."""
    return special.ndtri(np.asarray(u, dtype=np.float64))


def random_softplus(x):
    """log(1 + e^x) by np.logaddexp."""
    return np.logaddexp(0.0, x)


def random_log_sigmoid(x):
    """scipy.special.log_expit."""
    return special.log_expit(x)


def random_sigmoid(x):
    """scipy.special.expit."""
    return special.expit(x)


def random_log_ndtr(x):
    """scipy.special.log_ndtr."""
    return special.log_ndtr(x)


def random_ndtri(p):
    """scipy.special.ndtri."""
    return special.ndtri(p)


def random_ndtri_exp(logp):
    """scipy.special.ndtri_exp."""
    return special.ndtri_exp(logp)


def random_normalised_logits(logits):
    """Rows with +inf entries -> 0 on those entries, -inf elsewhere; other rows unchanged."""
    lg = np.asarray(logits, dtype=np.float64)
    pos = np.isposinf(lg)
    has_pos = pos.any(axis=-1, keepdims=True)
    return np.where(has_pos, np.where(pos, 0.0, -np.inf), lg)


def random_categorical_gumbel_max(logits, u):
    """np.argmax(l + G, axis=-1) with G = -log(-log u); -inf logits never win."""
    lg = random_normalised_logits(logits)
    with np.errstate(invalid="ignore"):
        score = lg[None] + random_gumbel(u)
    return np.argmax(np.where(np.isneginf(lg)[None], -np.inf, score), axis=-1).astype(np.int64)


def random_categorical_exponential_argmin(logits, u):
    """np.argmin(log E - l, axis=-1) with E = -log u; -inf logits never win."""
    lg = random_normalised_logits(logits)
    with np.errstate(invalid="ignore"):
        score = np.log(random_exponential(u)) - lg[None]
    return np.argmin(np.where(np.isneginf(lg)[None], np.inf, score), axis=-1).astype(np.int64)


def random_conditional_gumbel(logits, b, v):
    """T = logsumexp(l) + G(v_b) at b; others -logaddexp(-T, -(l + G(v))), moved one ulp below T on ties."""
    lg = random_normalised_logits(logits)
    b = np.asarray(b, dtype=np.int64)
    g = random_gumbel(v)
    top = special.logsumexp(lg, axis=-1)[None, :] + np.take_along_axis(g, b[..., None], axis=-1)[..., 0]
    z = -np.logaddexp(-top[..., None], -(lg[None] + g))
    z = np.where(z >= top[..., None], np.nextafter(top[..., None], -np.inf), z)
    np.put_along_axis(z, b[..., None], top[..., None], axis=-1)
    return z


def random_conditional_gumbel_vjp(logits, b, v, cotangent):
    """[j != b] c_j expit(T - y_j) + softmax(l)_j (c_b + sum_{k != b} c_k expit(y_k - T)); 0 on +inf rows."""
    lg = random_normalised_logits(logits)
    b = np.asarray(b, dtype=np.int64)
    c = np.asarray(cotangent, dtype=np.float64)
    g = random_gumbel(v)
    top = (special.logsumexp(lg, axis=-1)[None, :] + np.take_along_axis(g, b[..., None], axis=-1)[..., 0])[..., None]
    y = lg[None] + g
    is_b = np.arange(lg.shape[-1])[None, None, :] == b[..., None]
    to_top = np.where(is_b, 1.0, special.expit(y - top))  # dz_k/dT (1 for k = b)
    own = np.where(is_b, 0.0, special.expit(top - y))  # dz_k/dl_k through y_k
    p = special.softmax(lg, axis=-1)[None]
    out = c * own + p * np.sum(c * to_top, axis=-1, keepdims=True)
    frozen = np.isposinf(np.asarray(logits, dtype=np.float64)).any(axis=-1)
    return np.where(frozen[None, :, None], 0.0, out)


def random_conditional_logistic(logits, b, v):
    """l + logit(v') simplified without logs of v: b=0: log v - log1p((1-v) e^-l); b=1: log1p(v e^l) - log1p(-v).
    Valid for |l| < 709 and l = +-inf."""
    lg = np.asarray(logits, dtype=np.float64)[None, :]
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.where(
            np.asarray(b) == 1,
            np.log1p(v * np.exp(lg)) - np.log1p(-v),
            np.log(v) - np.log1p((1.0 - v) * np.exp(-lg)),
        )


def random_conditional_logistic_grad(logits, b, v):
    """t / (1 + t) with t = v e^l (b=1) or (1-v) e^-l (b=0); 1 where t = inf.  Valid for |l| < 709 and +-inf."""
    lg = np.asarray(logits, dtype=np.float64)[None, :]
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.where(np.asarray(b) == 1, v * np.exp(lg), (1.0 - v) * np.exp(-lg))
        return np.where(np.isinf(t), 1.0, t / (1.0 + t))


def _random_conditional_normal_parts(mu, b, v):
    mu = np.asarray(mu, dtype=np.float64)[None, :]
    v = np.asarray(v, dtype=np.float64)
    one = np.asarray(b) == 1
    log_r = np.where(one, np.log1p(-v), np.log(v))
    with np.errstate(invalid="ignore"):
        w = special.ndtri_exp(log_r + special.log_ndtr(np.where(one, mu, -mu)))
        z = np.where(one, mu - w, mu + w)
    z = np.where(one, np.maximum(z, 0.0), np.where(z >= 0.0, -5e-324, z))
    # Deterministic (and impossible) infinite means: the limits.
    z = np.where(np.isposinf(mu), np.where(one, np.inf, -5e-324), z)
    z = np.where(np.isneginf(mu), np.where(one, 0.0, -np.inf), z)
    return mu, one, log_r, z


def random_conditional_normal(mu, b, v):
    """b=0: mu + ndtri_exp(log v + log_ndtr(-mu)); b=1: mu - ndtri_exp(log(1-v) + log_ndtr(mu)); clamped to its side."""
    return _random_conditional_normal_parts(mu, b, v)[3]


def random_conditional_normal_grad(mu, b, v):
    """-expm1(log r + z (z/2 - mu)), r = v (b=0) or 1-v (b=1); 1 at consistent infinite mu, 0 at impossible."""
    mu, one, log_r, z = _random_conditional_normal_parts(mu, b, v)
    with np.errstate(invalid="ignore"):
        g = -np.expm1(log_r + z * (0.5 * z - mu))
    inf = np.isinf(mu) & np.ones_like(one)
    consistent = np.where(np.isposinf(mu), one, ~one)
    return np.where(inf, np.where(consistent, 1.0, 0.0), g)

# ==== distributions ====

# ==== relaxations ====


def relax_sigmoid_tau(x, tau):
    """sigma(x / tau) by scipy.special.expit."""
    return special.expit(np.asarray(x, dtype=np.float64) / tau)


def relax_sigmoid_tau_vjp(x, tau, cotangent):
    """(c ds/dx, c ds/dtau) elementwise, ds/dz = expit(z) expit(-z); saturated entries give 0."""
    z = np.asarray(x, dtype=np.float64) / tau
    slope = special.expit(z) * special.expit(-z)
    with np.errstate(invalid="ignore"):
        grad_tau = np.where(slope == 0.0, 0.0, -cotangent * slope * z / tau)
    return np.broadcast_to(cotangent * slope / tau, z.shape), np.broadcast_to(grad_tau, z.shape)


def _relax_plus_inf_rows(x):
    pos = x == np.inf
    return pos, pos.any(axis=-1, keepdims=True)


def relax_softmax_tau(x, tau):
    """softmax(x / tau) over the last axis by scipy.special.softmax after shifting by the max of x;
    rows with +inf entries: uniform over those entries."""
    x = np.asarray(x, dtype=np.float64)
    pos, has_pos = _relax_plus_inf_rows(x)
    safe = np.where(has_pos, 0.0, x)
    shifted = (safe - safe.max(axis=-1, keepdims=True)) / tau
    regular = special.softmax(shifted, axis=-1)
    return np.where(has_pos, pos / np.maximum(pos.sum(axis=-1, keepdims=True), 1), regular)


def relax_log_softmax_tau(x, tau):
    """log softmax(x / tau) over the last axis by scipy.special.log_softmax (same +inf convention)."""
    x = np.asarray(x, dtype=np.float64)
    pos, has_pos = _relax_plus_inf_rows(x)
    safe = np.where(has_pos, 0.0, x)
    shifted = (safe - safe.max(axis=-1, keepdims=True)) / tau
    regular = special.log_softmax(shifted, axis=-1)
    count = np.maximum(pos.sum(axis=-1, keepdims=True), 1)
    with np.errstate(divide="ignore"):
        degenerate = np.where(pos, -np.log(count), -np.inf)
    return np.where(has_pos, degenerate, regular)


def relax_softmax_tau_vjp(x, tau, cotangent):
    """VJP through the explicit Jacobian: ds/dx = (diag(s) - s s^T) / tau, ds/dtau = -(diag(s) - s s^T) w / tau
    with w = (x - max x) / tau (entries with s = 0 contribute nothing); rows with +inf: zero."""
    x = np.asarray(x, dtype=np.float64)
    c = np.broadcast_to(np.asarray(cotangent, dtype=np.float64), x.shape)
    s = relax_softmax_tau(x, tau)
    _, has_pos = _relax_plus_inf_rows(x)
    jac = (s[..., :, None] * np.eye(x.shape[-1]) - s[..., :, None] * s[..., None, :]) / tau
    grad_x = np.einsum("...ij,...i->...j", jac, c)
    with np.errstate(invalid="ignore"):
        w = np.where(s > 0.0, (x - x.max(axis=-1, keepdims=True)) / tau, 0.0)
    ds_dtau = -np.einsum("...ij,...j->...i", jac, w)
    grad_tau = np.einsum("...i,...i->...", c, ds_dtau)
    grad_x = np.where(has_pos, 0.0, grad_x)
    grad_tau = np.where(has_pos[..., 0], 0.0, grad_tau)
    return grad_x, grad_tau


def _relax_perturb(logits, noise):
    logits = np.asarray(logits, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(logits), logits, logits + noise)


def relax_binary_concrete_sample(logits, tau, u):
    """sigma((logits + log u - log(1 - u)) / tau); infinite logits decide the outcome."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore"):
        noise = np.log(u) - np.log1p(-u)
    return special.expit(_relax_perturb(logits, noise) / tau)


def _relax_gumbel(u):
    with np.errstate(divide="ignore"):
        return -np.log(-np.log(np.asarray(u, dtype=np.float64)))


def relax_concrete_sample(logits, tau, u):
    """softmax((logits + G) / tau), G = -log(-log u)."""
    return relax_softmax_tau(_relax_perturb(logits, _relax_gumbel(u)), tau)


def relax_exp_concrete_sample(logits, tau, u):
    """log softmax((logits + G) / tau), G = -log(-log u), by scipy.special.log_softmax."""
    return relax_log_softmax_tau(_relax_perturb(logits, _relax_gumbel(u)), tau)


def relax_binary_concrete_log_density(x, logits, tau):
    """log of tau a x^(-tau-1) (1-x)^(-tau-1) / (a x^(-tau) + (1-x)^(-tau))^2, a = e^logits, term by term
    (np.logaddexp for the denominator); infinite logits give -inf."""
    x = np.asarray(x, dtype=np.float64)
    ell = np.asarray(logits, dtype=np.float64)
    log_x, log_1mx = np.log(x), np.log1p(-x)
    with np.errstate(invalid="ignore"):
        value = (np.log(tau) + ell - (tau + 1.0) * (log_x + log_1mx)
                 - 2.0 * np.logaddexp(ell - tau * log_x, -tau * log_1mx))
    return np.where(np.isinf(ell), -np.inf, value)


def relax_concrete_log_density(x, logits, tau):
    """log((K-1)!) + (K-1) log tau + sum_k (l_k - (tau+1) log x_k) - K logsumexp_k(l_k - tau log x_k)."""
    x = np.asarray(x, dtype=np.float64)
    ell = np.broadcast_to(np.asarray(logits, dtype=np.float64), x.shape)
    k = x.shape[-1]
    log_x = np.log(x)
    with np.errstate(invalid="ignore"):
        value = (special.gammaln(k) + (k - 1) * np.log(tau) + np.sum(ell - (tau + 1.0) * log_x, axis=-1)
                 - k * special.logsumexp(ell - tau * log_x, axis=-1))
    return np.where(np.isinf(ell).any(axis=-1), -np.inf, value)


def relax_exp_concrete_log_density(y, logits, tau, measure="symmetric"):
    """log((K-1)!) + (K-1) log tau + sum_k (l_k - tau y_k) - K logsumexp_k(l_k - tau y_k), minus y_K for
    measure="lebesgue"."""
    y = np.asarray(y, dtype=np.float64)
    ell = np.broadcast_to(np.asarray(logits, dtype=np.float64), y.shape)
    k = y.shape[-1]
    a = ell - tau * y
    with np.errstate(invalid="ignore"):
        value = special.gammaln(k) + (k - 1) * np.log(tau) + np.sum(a, axis=-1) - k * special.logsumexp(a, axis=-1)
    if measure == "lebesgue":
        value = value - y[..., -1]
    return np.where(np.isinf(ell).any(axis=-1), -np.inf, value)

# ==== objectives / exact ====


def table_hvp(values, z, v):
    """Hessian-vector product of the multilinear extension: for each pair i != j the einsum of the table with
    z[:, m, :] for m not in {i, j}, v[:, j, :] for j, free index for i; summed over j.  z, v (n, d, K)."""
    d = values.ndim
    out = np.zeros(z.shape)
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            operands = [values, list(range(d))]
            for m in range(d):
                operands += [v[:, m, :] if m == j else z[:, m, :], [d, m]] if m != i else []
            operands += [np.ones(z.shape[0]), [d]]
            out[:, i, :] += np.einsum(*operands, [d, i])
    return out


def table_value(values, z):
    """Multilinear extension Σ_b values[b] Π_i z[:, i, b_i] by one einsum; values (K,)*d, z (n, d, K)."""
    d = values.ndim
    operands = [values, list(range(d))]
    for i in range(d):
        operands += [z[:, i, :], [d, i]]
    return np.einsum(*operands, [d])


def table_grad(values, z):
    """∂/∂z[:, i, k] of the multilinear extension: the einsum above with factor i left out; (n, d, K)."""
    d = values.ndim
    columns = []
    for i in range(d):
        operands = [values, list(range(d)), np.ones(z.shape[0]), [d]]
        for j in range(d):
            if j != i:
                operands += [z[:, j, :], [d, j]]
        columns.append(np.einsum(*operands, [d, i]))
    return np.stack(columns, axis=1)


def table_bits(z):
    """Bit inputs (n, d) as simplex inputs (n, d, 2): [1 − z, z]."""
    return np.stack([1.0 - z, z], axis=-1)


def compensated_sum_columns(terms):
    """Correctly rounded column sums of terms (m, P) with math.fsum.

    Twin of refgrad._core.sums._compensated_accumulate.
    """
    import math

    return np.array([math.fsum(terms[:, p].tolist()) for p in range(terms.shape[1])])

# ==== estimators ====

# ---- shared SciPy references of an estimator's sample path: noise, relaxation, hard sample


def latent_noise(family, u):
    """Logistic / normal / Gumbel noise from uniforms (by SciPy), the z − params of each family."""
    if family == "bernoulli":
        return special.logit(u)
    if family == "gaussian_threshold":
        return special.ndtri(u)
    return -np.log(-np.log(u))


def relaxed_sample(family, z, tau):
    """σ(z/τ) for bits, softmax(z/τ) over the last axis for a categorical."""
    if family == "categorical":
        return special.softmax(z / tau, axis=-1)
    return special.expit(z / tau)


def hard_sample(family, params, u):
    """The discrete sample dist.from_uniforms(u): thresholds for bits, one-hot Gumbel-max for a categorical."""
    if family == "bernoulli":
        return (u > special.expit(-params)).astype(float)
    if family == "gaussian_threshold":
        return (u >= special.ndtr(-params)).astype(float)
    return np.eye(params.shape[-1])[np.argmax(params + latent_noise(family, u), axis=-1)]

# ---- estimators/rebar.py


def rebar_combine(a, c, eta):
    """a + eta * c with eta broadcast over the rows; (n, P)."""
    return a + np.asarray(eta)[None, :] * c


def rebar_optimal_eta(a, c):
    """-mean(a c) / mean(c^2) per column; 0 where the column of c is all zero."""
    num = np.sum(a * c, axis=0)
    den = np.sum(c * c, axis=0)
    return np.where(den > 0, -num / np.where(den > 0, den, 1.0), 0.0)


def rebar_conditional_gumbel_jvp(logits, b, v, e):
    """(dz~/dl) e with the explicit K x K Jacobian per row: diag([k != b] expit(T - y_k)) + t p^T,
    t_k = expit(y_k - T) (k != b), t_b = 1, T = logsumexp(l) + G(v_b), y = l + G(v); +inf rows give 0."""
    lg = random_normalised_logits(logits)
    frozen = np.isposinf(np.asarray(logits, dtype=np.float64)).any(axis=-1)
    g = random_gumbel(v)
    n, d, K = g.shape
    out = np.zeros((n, d, K))
    for i in range(n):
        for j in range(d):
            if frozen[j]:
                continue
            bb = int(b[i, j])
            top = special.logsumexp(lg[j]) + g[i, j, bb]
            y = lg[j] + g[i, j]
            is_b = np.arange(K) == bb
            t = np.where(is_b, 1.0, special.expit(y - top))
            own = np.where(is_b, 0.0, special.expit(top - y))
            jac = np.diag(own) + np.outer(t, special.softmax(lg[j]))
            out[i, j] = jac @ e[i, j]
    return out


# ---- estimators/relax.py


def relax_sigmoid_tau_jets(z, tau, e):
    """(J e, d sigma_tau/d tau, d(J e)/d tau) elementwise from expit: s' = expit(y) expit(-y), s'' = s'(1 - 2 expit(y)),
    y = z / tau; J e = s' e / tau, x_tau = -s' y / tau, (J e)_tau = -e (s'' y + s') / tau^2; 0 where s' = 0."""
    y = np.asarray(z, dtype=np.float64) / tau
    sp = special.expit(y) * special.expit(-y)
    spp = sp * (1.0 - 2.0 * special.expit(y))
    alive = sp > 0
    ys = np.where(alive, y, 0.0)
    return (np.where(alive, sp * e / tau, 0.0), np.where(alive, -sp * ys / tau, 0.0),
            np.where(alive, -e * (spp * ys + sp) / tau**2, 0.0))


def relax_softmax_tau_jets(z, tau, e):
    """Explicit matrices per row: J = (diag s - s s^T)/tau, J e, x_tau = -J y (y = z/tau, shift-free),
    (J e)_tau = [(diag x_tau - x_tau s^T - s x_tau^T)/tau - J/tau] e; rows with +inf give 0."""
    z = np.asarray(z, dtype=np.float64)
    n, d, K = z.shape
    out = [np.zeros((n, d, K)) for _ in range(3)]
    for i in range(n):
        for j in range(d):
            row = z[i, j]
            if np.isposinf(row).any():
                continue
            s = special.softmax((row - row.max()) / tau)
            y = np.where(s > 0, (row - row.max()) / tau, 0.0)
            jac = (np.diag(s) - np.outer(s, s)) / tau
            x_tau = -jac @ y
            djac = (np.diag(x_tau) - np.outer(x_tau, s) - np.outer(s, x_tau)) / tau - jac / tau
            out[0][i, j] = jac @ e[i, j]
            out[1][i, j] = x_tau
            out[2][i, j] = djac @ e[i, j]
    return tuple(out)


def relax_mlp_value(x, w1, b1, w2, b2):
    """w2 . tanh(W1 x + b1) + b2 row by row with matrix products; x (n, D)."""
    return np.tanh(x @ w1.T + b1) @ w2 + b2


def relax_mlp_grad(x, w1, b1, w2):
    """((1 - t^2) * w2) @ W1; (n, D)."""
    t = np.tanh(x @ w1.T + b1)
    return ((1.0 - t**2) * w2) @ w1


def relax_mlp_hessian_bilinear(x, p, q, w1, b1, w2):
    """p^T H q with the explicit Hessian H = W1^T diag(w2 * (-2 t (1 - t^2))) W1 per row."""
    t = np.tanh(x @ w1.T + b1)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        hess = w1.T @ np.diag(w2 * (-2.0 * t[i] * (1.0 - t[i] ** 2))) @ w1
        out[i] = p[i] @ hess @ q[i]
    return out


def relax_mlp_param_vjp(x, xdot, alpha, beta, w1, b1, w2):
    """sum_i alpha_i d r(x_i)/d psi + beta_i d(grad r(x_i) . xdot_i)/d psi, psi = (W1, b1, w2, b2), vectorised:
    with a = W1 x + b1, t = tanh a, g = 1 - t^2, q = W1 xdot: d r = (g w2 x^T, g w2, t, 1) and
    d(sum_h w2_h g_h q_h) = (w2 g' q x^T + w2 g xdot^T, w2 g' q, g q, 0), g' = -2 t g."""
    t = np.tanh(x @ w1.T + b1)
    g = 1.0 - t**2
    gp = -2.0 * t * g
    q = xdot @ w1.T
    coef_x = alpha[:, None] * g * w2 + beta[:, None] * gp * q * w2  # (n, H): factor of x^T in dW1 and of db1
    g_w1 = coef_x.T @ x + (beta[:, None] * g * w2).T @ xdot
    return g_w1, coef_x.sum(axis=0), (alpha[:, None] * t + beta[:, None] * g * q).sum(axis=0), float(alpha.sum())

# ---- estimators/relaxed.py


def relaxed_sigmoid_tau_vjp_mean(z, tau, cotangent, dz):
    """mean over axis 1 of c * sigma'(z/tau)/tau * dz, sigma' = expit * expit(-.); z, dz (n, k, d), c (n, d)."""
    x = np.asarray(z, dtype=np.float64) / tau
    slope = special.expit(x) * special.expit(-x)
    return cotangent * np.mean(slope * dz, axis=1) / tau


def relaxed_softmax_tau_vjp_mean(z, tau, cotangent):
    """mean over axis 1 of the explicit Jacobian (diag(s) - s s^T)/tau applied to c; rows with +inf give 0."""
    z = np.asarray(z, dtype=np.float64)
    frozen = np.isposinf(z).any(axis=-1, keepdims=True)
    safe = np.where(frozen, 0.0, z)
    s = special.softmax((safe - safe.max(axis=-1, keepdims=True)) / tau, axis=-1)  # (n, k, d, K)
    jac = (s[..., :, None] * np.eye(z.shape[-1]) - s[..., :, None] * s[..., None, :]) / tau
    per_draw = np.einsum("nkdqr,ndq->nkdr", jac, cotangent)
    return np.where(frozen, 0.0, per_draw).mean(axis=1)


# ---- estimators/antithetic.py


def antithetic_pair(logits, u):
    """b1 = 1[u > 1 - θ], b2 = 1[u < θ] with θ = σ(ℓ)."""
    theta = special.expit(logits)
    return (u > 1.0 - theta).astype(float), (u < theta).astype(float)


def arm_combine(fdiff, u):
    return fdiff[:, None] * (u - 0.5)


def disarm_combine(fdiff, b1, b2, logits):
    return 0.5 * fdiff[:, None] * (-1.0) ** b2 * (b1 != b2) * special.expit(np.abs(logits))[None, :]


# ==== relaxations: marginal CDFs of the Concrete laws (twins of refgrad/relaxations/cdf.py) ====


def relaxations_binary_concrete_cdf(x, logits, tau, upper=False):
    """sigma(tau logit(x) - logits) by scipy.special.expit/logit (finite logits, x in (0, 1))."""
    s = np.asarray(tau, dtype=np.float64) * special.logit(np.asarray(x, dtype=np.float64)) - logits
    return special.expit(-s) if upper else special.expit(s)


def relaxations_concrete_cdf_quad(x, logits, tau, k, upper=False):
    """P(X_k <= x) for K = 3 by scipy.integrate.quad over theta in (0, 1) of (1 + c h(theta))^-2.

    h(theta) = (a1 theta^(-1/tau) + a2 (1 - theta)^(-1/tau))^(-tau), c = alpha_k exp(-tau logit x),
    in log space; the integral is split at theta* = alpha_1 / (alpha_1 + alpha_2).  Moderate arguments only.
    """
    from scipy import integrate

    ell = np.asarray(logits, dtype=np.float64)
    o = np.delete(ell, k)
    log_c = ell[k] - tau * special.logit(x)

    def f(t):
        lh = -tau * np.logaddexp((o[0] - np.log(t)) / tau, (o[1] - np.log1p(-t)) / tau)
        sp = np.logaddexp(0.0, log_c + lh)
        return -np.expm1(-2.0 * sp) if upper else np.exp(-2.0 * sp)

    star = special.expit(o[0] - o[1])
    a = integrate.quad(f, 0.0, star, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    b = integrate.quad(f, star, 1.0, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    return a + b
