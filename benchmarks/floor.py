r"""The noise floor of an estimator: drawing its uniforms plus only the transcendental functions it needs.

The floor of one run of ``n`` estimates is the time to

1. draw the noise dict exactly as ``refgrad.estimate(name, dist, f, n, rng=...)`` does
   (``spec.draw_noise``: the same Generator calls), and
2. run one fused Numba loop over the rows (``prange``, so it uses the threads Numba is
   given) that evaluates, per uniform, the count of logarithms and exponentials the
   estimator's formula needs for that uniform (:data:`TRANSCENDENTALS`), as a dependent
   chain ``w ← log1p(w)`` / ``w ← exp(−w)`` that the compiler cannot share or drop.

Everything else an estimator does (comparisons, products, sums, the objective) is
taken as free, so no implementation of the same formula can beat the floor by much.
Per-parameter quantities (``σ(ℓ)``, ``e^ℓ``, ``logsumexp ℓ``) are computed once per call,
not per sample, and are not counted.
"""
import math

import numba as nb
import numpy as np

__all__ = ["TRANSCENDENTALS", "floor_kernel", "run_floor"]

_BITS_LATENT = (2, 1)        # logistic: log u, log1p(−u); σ(z/τ): one exp
_BITS_CONDITIONAL = (2, 1)   # log v, log1p(v e^ℓ) (or the b = 0 twin); σ(z̃/τ): one exp
_CAT_GUMBEL = (2, 0)         # −log(−log u)
_CAT_LATENT = (2, 1)         # Gumbel, softmax exp
_CAT_CONDITIONAL = (3, 2)    # Gumbel, logaddexp (log1p, exp), softmax exp (σ of the pull reuses it)

#: (estimator, family) -> ({noise field: (logs, exps) per uniform}, exps per row)
TRANSCENDENTALS = {
    ("reinforce", "bernoulli"): ({"u": (0, 0)}, 0),  # b = 1[u > σ(−ℓ)]: a comparison
    ("rloo", "bernoulli"): ({"u": (0, 0)}, 0),
    ("muprop", "bernoulli"): ({"u": (0, 0)}, 0),
    ("arm", "bernoulli"): ({"u": (0, 0)}, 0),
    ("disarm", "bernoulli"): ({"u": (0, 0)}, 0),
    ("gumbel_softmax", "bernoulli"): ({"u": _BITS_LATENT}, 0),
    ("straight_through", "bernoulli"): ({"u": _BITS_LATENT}, 0),
    ("gumbel_rao", "bernoulli"): ({"u": (0, 0), "v": _BITS_CONDITIONAL}, 0),
    ("rebar", "bernoulli"): ({"u": _BITS_LATENT, "v": _BITS_CONDITIONAL}, 0),
    ("relax", "bernoulli"): ({"u": _BITS_LATENT, "v": _BITS_CONDITIONAL}, 16),  # tanh of 8 units, twice
    ("reinforce", "categorical"): ({"u": _CAT_GUMBEL}, 0),
    ("rloo", "categorical"): ({"u": _CAT_GUMBEL}, 0),
    ("muprop", "categorical"): ({"u": _CAT_GUMBEL}, 0),
    ("gumbel_softmax", "categorical"): ({"u": _CAT_LATENT}, 0),
    ("straight_through", "categorical"): ({"u": _CAT_LATENT}, 0),
    ("gumbel_rao", "categorical"): ({"u": _CAT_GUMBEL, "v": _CAT_CONDITIONAL}, 0),
    ("rebar", "categorical"): ({"u": _CAT_LATENT, "v": _CAT_CONDITIONAL}, 0),
    ("relax", "categorical"): ({"u": _CAT_LATENT, "v": _CAT_CONDITIONAL}, 16),
}


@nb.njit(parallel=True, cache=True, nogil=True)
def floor_kernel(u, u_logs, u_exps, v, v_logs, v_exps, row_exps):
    """Per row: the dependent chains of logs and exps over the row's uniforms; returns one value per row."""
    n = u.shape[0]
    out = np.empty(n)
    for i in nb.prange(n):
        acc = 0.0
        for j in range(u.shape[1]):
            w = u[i, j]
            for _ in range(u_logs):
                w = math.log1p(w)
            for _ in range(u_exps):
                w = math.exp(-w)
            acc += w
        for j in range(v.shape[1]):
            w = v[i, j]
            for _ in range(v_logs):
                w = math.log1p(w)
            for _ in range(v_exps):
                w = math.exp(-w)
            acc += w
        w = acc
        for _ in range(row_exps):
            w = math.exp(-w)
        out[i] = acc + w
    return out


def run_floor(problem, n, rng):
    """Draw the noise of ``n`` estimates of ``problem`` and run its floor kernel; returns the per-row values."""
    noise = problem.draw(n, rng)
    counts, row_exps = TRANSCENDENTALS[(problem.name, problem.family)]
    u = noise["u"].reshape(n, -1)
    v = noise["v"].reshape(n, -1) if "v" in noise else np.empty((n, 0))
    u_logs, u_exps = counts["u"]
    v_logs, v_exps = counts.get("v", (0, 0))
    return floor_kernel(u, u_logs, u_exps, v, v_logs, v_exps, row_exps)
