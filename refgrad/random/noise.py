"""Noise transforms of uniforms and the categorical samplers built on them.

Each transform is the inverse CDF of a standard law applied to uniforms strictly
inside (0, 1) (:func:`refgrad.random.uniform`): :func:`gumbel`, :func:`exponential`,
:func:`logistic` and :func:`normal`.  The categorical samplers
:func:`categorical_gumbel_max` and :func:`categorical_exponential_argmin` turn
logits and one uniform per category into a category.

The scalar transforms ``_gumbel_noise_scalar`` and ``_logistic_noise_scalar`` are
also used by the relaxations' samplers, which accept uniforms in the closed
interval [0, 1]: IEEE logarithms give the limits there (``-inf`` at 0, ``+inf`` at 1).
"""
import math

import numpy as np

from .._core.checks import as_float_array, check_no_nan, check_shape
from .._core.jit import jit, row_jit
from .._core.special import _ndtri
from .rng import _check_uniform

__all__ = [
    "gumbel",
    "exponential",
    "logistic",
    "normal",
    "categorical_gumbel_max",
    "categorical_exponential_argmin",
]

# The transforms of ``_noise``.
_GUMBEL, _EXPONENTIAL, _LOGISTIC, _NORMAL = 0, 1, 2, 3


# ---------------------------------------------------------------------------
# Unconditional noise
# ---------------------------------------------------------------------------


@jit
def _gumbel_noise_scalar(u):
    """-log(-log u): standard Gumbel for 0 < u < 1, -inf at u = 0 and +inf at u = 1."""
    return -math.log(-math.log(u))


@jit
def _logistic_noise_scalar(u):
    """log u - log(1 - u): standard logistic for 0 < u < 1, -inf at u = 0 and +inf at u = 1."""
    return math.log(u) - math.log1p(-u)


@jit
def _noise(u, kind):
    """The transform ``kind`` (``_GUMBEL``, ``_EXPONENTIAL``, ``_LOGISTIC``, ``_NORMAL``) elementwise, any shape."""
    flat = u.reshape(u.size)
    out = np.empty(u.size)
    for i in range(u.size):
        x = flat[i]
        if kind == _GUMBEL:
            out[i] = _gumbel_noise_scalar(x)
        elif kind == _EXPONENTIAL:
            out[i] = -math.log(x)
        elif kind == _LOGISTIC:
            out[i] = _logistic_noise_scalar(x)
        else:
            out[i] = _ndtri(x)
    return out.reshape(u.shape)


def _elementwise(kind, u):
    """Check ``u``, apply the transform ``kind`` to it flattened, restore the shape (0-d gives a scalar)."""
    arr = _check_uniform(u, "u")
    shape = np.shape(u)  # as_float_array makes 0-d inputs 1-d (np.ascontiguousarray)
    out = _noise(arr.reshape(-1), kind).reshape(shape)
    return out[()] if out.ndim == 0 else out


def gumbel(u):
    r"""Standard Gumbel noise from uniforms, :math:`G = -\log(-\log u)`.

    Parameters
    ----------
    u : array_like
        Uniforms strictly inside (0, 1), any shape.

    Returns
    -------
    ndarray of float64, same shape; finite for every ``u`` in the open interval
    (e.g. -6.54 at ``u = 1e-300``, 36.7 at ``u = 1 - 2**-53``).

    Notes
    -----
    Inverse-CDF transform of the Gumbel law :math:`F(g) = \exp(-e^{-g})`
    (Gumbel, 1954; Maddison et al., 2014, "A* sampling").  Satisfies
    ``gumbel(u) == -log(exponential(u))``.
    """
    return _elementwise(_GUMBEL, u)


def exponential(u):
    r"""Standard exponential noise from uniforms, :math:`E = -\log u`.

    Uses :math:`-\log u` (not :math:`-\log(1-u)`) so that
    :math:`G = -\log E` is exactly :func:`gumbel` of the same uniforms and the
    exponential-race and Gumbel-max samplers coincide sample by sample.

    Parameters
    ----------
    u : array_like
        As in :func:`gumbel`.

    Returns
    -------
    ndarray of float64, same shape, in (0, inf).
    """
    return _elementwise(_EXPONENTIAL, u)


def logistic(u):
    r"""Standard logistic noise from uniforms, :math:`L = \log u - \log(1-u)`.

    :math:`1 - u` is taken through ``log1p(-u)`` so that values near 1 stay
    accurate.  In law :math:`L = G_1 - G_2` for independent Gumbels (Maddison et
    al., 2017, "The Concrete distribution", section 3).

    Parameters
    ----------
    u : array_like
        As in :func:`gumbel`.

    Returns
    -------
    ndarray of float64, same shape; -36.74 and 36.74 at the extreme values
    ``2**-53`` and ``1 - 2**-53`` of :func:`uniform`.
    """
    return _elementwise(_LOGISTIC, u)


def normal(u):
    r"""Standard normal noise from uniforms, :math:`Z = \Phi^{-1}(u)`.

    The quantile is refgrad's own inverse of the normal CDF (a Halley-refined
    inverse, relative accuracy about 1e-15 against ``scipy.special.ndtri``).

    Parameters
    ----------
    u : array_like
        As in :func:`gumbel`.

    Returns
    -------
    ndarray of float64, same shape; -8.21 and 8.21 at the extreme values
    ``2**-53`` and ``1 - 2**-53`` of :func:`uniform`.
    """
    return _elementwise(_NORMAL, u)


# ---------------------------------------------------------------------------
# Categorical sampling
# ---------------------------------------------------------------------------


@jit
def _normalised_row(row, out):
    """Copy ``row`` into ``out``, or 0 on +inf entries and -inf elsewhere if it has any +inf.

    Returns logsumexp(out) (-inf for a row of all -inf).
    """
    m = -math.inf
    for k in range(row.size):
        if row[k] > m:
            m = row[k]
    if m == math.inf:
        count = 0
        for k in range(row.size):
            if row[k] == math.inf:
                out[k] = 0.0
                count += 1
            else:
                out[k] = -math.inf
        return math.log(count)
    for k in range(row.size):
        out[k] = row[k]
    if m == -math.inf:
        return -math.inf
    s = 0.0
    for k in range(row.size):
        s += math.exp(row[k] - m)
    return m + math.log(s)


@jit
def _normalised_rows(logits):
    """``_normalised_row`` of every row of logits (d, K): (normalised logits (d, K), logsumexp (d,))."""
    d, K = logits.shape
    lg = np.empty((d, K))
    lse = np.empty(d)
    for j in range(d):
        lse[j] = _normalised_row(logits[j], lg[j])
    return lg, lse


@row_jit
def _race_row(lg, u, j, K, base, race):
    """The winning category of row ``j`` of the normalised logits ``lg``, uniforms ``u[base:base + K]``.

    The first k of nonzero probability with the largest l_k + G_k (``race`` False: the Gumbel-max
    trick) or the smallest log E_k - l_k (``race`` True: the exponential race), where
    E_k = -log u_k and G_k = -log E_k.  Both keys are formed from the same log E_k, so the two
    choices agree exactly (rounding is symmetric in sign).
    """
    best = -math.inf
    arg = -1
    for k in range(K):
        if lg[j, k] == -math.inf:
            continue
        log_e = math.log(-math.log(u[base + k]))
        if race:
            val = log_e - lg[j, k]
            wins = val < best
        else:
            val = lg[j, k] + (-log_e)
            wins = val > best
        if arg < 0 or wins:
            best = val
            arg = k
    return arg


@row_jit
def gumbel_argmax(lg, u, j, K, base):
    """argmax_k (lg[j, k] − log(−log u[base + k])) over the categories of nonzero probability (first on ties).

    The row step of :func:`categorical_gumbel_max`, shared with the fused estimator kernels.
    """
    return _race_row(lg, u, j, K, base, False)


@jit
def _categorical_sample(logits, u, race):
    """Categories for logits (d, K), u (n, d, K) -> int64 (n, d): the Gumbel-max trick, or the exponential race."""
    n, d, K = u.shape
    lg, _ = _normalised_rows(logits)
    out = np.empty((n, d), dtype=np.int64)
    for i in range(n):
        for j in range(d):
            out[i, j] = _race_row(lg, u[i, j], j, K, 0, race)
    return out


def _check_logits(x, name, ndim):
    arr = as_float_array(x, name, ndim=ndim)
    check_no_nan(arr, name)
    return arr


def _check_rows_alive(logits, name):
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one category (K >= 1); got shape {logits.shape}")
    dead = np.all(np.isneginf(logits), axis=-1)
    if dead.any():
        row = int(np.argmax(dead))
        raise ValueError(
            f"{name} row {row} is all -inf: every category impossible (allowed: at least one logit > -inf per row)"
        )


def _check_categorical(logits, u, u_name="u"):
    lg = _check_logits(logits, "logits", 2)
    _check_rows_alive(lg, "logits")
    uu = _check_uniform(u, u_name, ndim=3)
    check_shape(uu, u_name, (None,) + lg.shape)
    return lg, uu


def categorical_gumbel_max(logits, u):
    r"""Categorical samples by the Gumbel-max trick.

    .. math::  b_{s,i} = \operatorname{argmax}_k \; (\ell_{ik} + G_{sik}),
               \qquad G_{sik} = -\log(-\log u_{sik}),

    so that :math:`P(b_{s,i} = k) = \operatorname{softmax}(\ell_i)_k`
    (Gumbel, 1954; Maddison et al., 2014; Jang et al., 2017, eq. 1).

    Parameters
    ----------
    logits : array_like, shape (d, K)
        Unnormalised log-probabilities; ``-inf`` marks an impossible category, a
        row with ``+inf`` entries is uniform over them, NaN and all-``-inf`` rows
        are rejected.
    u : array_like, shape (n, d, K)
        Uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of int64, shape (n, d)
        Ties (probability zero) go to the smallest index; impossible categories
        are never chosen.
    """
    lg, uu = _check_categorical(logits, u)
    return _categorical_sample(lg, uu, False)


def categorical_exponential_argmin(logits, u):
    r"""Categorical samples by the exponential race.

    .. math::  b_{s,i} = \operatorname{argmin}_k \; E_{sik} / \pi_{ik}
               = \operatorname{argmin}_k \; (\log E_{sik} - \ell_{ik}),
               \qquad E_{sik} = -\log u_{sik},

    computed in log space.  Because :math:`\log E = -G` for the
    :func:`gumbel` noise of the same uniforms, the result equals
    :func:`categorical_gumbel_max` sample by sample (including ties and infinite
    logits).

    Parameters
    ----------
    logits : array_like, shape (d, K)
        As in :func:`categorical_gumbel_max`.
    u : array_like, shape (n, d, K)
        Uniforms strictly inside (0, 1).

    Returns
    -------
    ndarray of int64, shape (n, d)
    """
    lg, uu = _check_categorical(logits, u)
    return _categorical_sample(lg, uu, True)

