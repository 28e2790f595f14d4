"""The tempered sigmoid and softmax, and their hand-derived vector-Jacobian products.

:func:`sigmoid_tau` and :func:`softmax_tau` are the maps that turn a perturbed
logit into a Binary Concrete or Concrete sample (:mod:`refgrad.relaxations`);
:func:`sigmoid_tau_vjp` and :func:`softmax_tau_vjp` are their derivatives in the
input and in the temperature.

The kernels ``_sigmoid_tau`` and ``_sigmoid_tau_vjp`` take ``x`` of shape
``(n, d)``, ``_softmax_tau`` and ``_softmax_tau_vjp`` take ``x`` of shape
``(n, d, K)`` with the softmax over the last axis; ``tau`` is a Python float > 0.
The row helpers ``_softmax_row``, ``_log_softmax_row`` and ``_softmax_tau_vjp_row``
are shared with the Concrete samplers and the fused estimator kernels.
"""
import math

import numpy as np

from .._core.jit import jit, row_jit
from .._core.special import _sigmoid
from ._checks import _array, _check_categories, _check_cotangent, _check_some_finite_max, _flat2, _flat3, _tau, _unflat

__all__ = ["sigmoid_tau", "sigmoid_tau_vjp", "softmax_tau", "softmax_tau_vjp"]

# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------


@jit
def _sigmoid_slope_scalar(z):
    """sigma(z) * sigma(-z) = exp(-|z|) / (1 + exp(-|z|))**2, without cancellation."""
    e = math.exp(-abs(z))
    return e / ((1.0 + e) * (1.0 + e))



@jit
def _sigmoid_tau(x, tau):
    """sigma(x / tau) elementwise on an (n, d) array."""
    n, d = x.shape
    out = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = _sigmoid(x[i, j] / tau)
    return out


@jit
def _sigmoid_tau_vjp(x, tau, cotangent):
    """(c * d sigma(x/tau)/dx, c * d sigma(x/tau)/dtau) elementwise on (n, d) arrays."""
    n, d = x.shape
    grad_x = np.empty((n, d))
    grad_tau = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            grad_x[i, j], grad_tau[i, j] = _sigmoid_tau_vjp_scalar(x[i, j], tau, cotangent[i, j])
    return grad_x, grad_tau


@jit
def _sigmoid_tau_vjp_scalar(x, tau, c):
    """(c * d sigma(x/tau)/dx, c * d sigma(x/tau)/dtau) for one entry."""
    z = x / tau
    slope = _sigmoid_slope_scalar(z)
    if slope == 0.0:  # saturated (includes x = +/-inf, where z * slope would be nan)
        return 0.0, 0.0
    return c * slope / tau, -c * slope * z / tau



@row_jit
def _softmax_limit(x, out, m, log_space):
    """Fill ``out`` for a row whose largest entry ``m`` is infinite; returns False if it is -inf.

    All entries -inf: nan everywhere.  Some entries +inf: those share the mass equally (the
    limit of equal, growing entries), 0 elsewhere -- or their logs if ``log_space``.
    """
    if m == -np.inf:
        for k in range(x.shape[0]):
            out[k] = np.nan
        return False
    count = 0
    for k in range(x.shape[0]):
        if x[k] == np.inf:
            count += 1
    for k in range(x.shape[0]):
        if log_space:
            out[k] = -math.log(count) if x[k] == np.inf else -np.inf
        else:
            out[k] = 1.0 / count if x[k] == np.inf else 0.0
    return True


@row_jit
def _tempered_softmax_row(x, tau, out, log_space):
    """softmax(x / tau) of one row into ``out``, or its log (``log_space``), with ``_softmax_limit``'s conventions.

    The log is taken in log space: (x_k - m)/tau - log sum_i exp((x_i - m)/tau), m = max_i x_i, finite where
    softmax underflows.  Returns False (and fills nan) if all entries are -inf.
    """
    m = -np.inf
    for k in range(x.shape[0]):
        if x[k] > m:
            m = x[k]
    if math.isinf(m):
        return _softmax_limit(x, out, m, log_space)
    total = 0.0
    for k in range(x.shape[0]):
        w = (x[k] - m) / tau
        if log_space:
            out[k] = w
            total += math.exp(w)
        else:
            e = math.exp(w)
            out[k] = e
            total += e
    if log_space:
        log_total = math.log(total)
        for k in range(x.shape[0]):
            out[k] = out[k] - log_total
    else:
        for k in range(x.shape[0]):
            out[k] = out[k] / total
    return True


@jit
def _softmax_row(x, tau, out):
    """softmax(x / tau) of one row into ``out``; returns False (and fills nan) if all entries are -inf.

    Rows containing +inf give the uniform distribution over their +inf entries.
    """
    return _tempered_softmax_row(x, tau, out, False)


@jit
def _log_softmax_row(x, tau, out):
    """log softmax(x / tau) of one row into ``out``, in log space (finite where softmax underflows).

    Same conventions as ``_softmax_row``: all -inf -> nan, +inf entries share the mass.
    """
    return _tempered_softmax_row(x, tau, out, True)


@jit
def _softmax_tau(x, tau):
    """softmax(x / tau) over the last axis of an (n, d, K) array."""
    n, d, k_len = x.shape
    out = np.empty((n, d, k_len))
    for i in range(n):
        for j in range(d):
            _softmax_row(x[i, j], tau, out[i, j])
    return out


@jit
def _softmax_tau_vjp(x, tau, cotangent):
    """VJP of softmax(x / tau) on (n, d, K): grad_x of shape (n, d, K), grad_tau of shape (n, d)."""
    n, d, k_len = x.shape
    grad_x = np.empty((n, d, k_len))
    grad_tau = np.empty((n, d))
    s = np.empty(k_len)
    for i in range(n):
        for j in range(d):
            grad_tau[i, j] = _softmax_tau_vjp_row(x[i, j], tau, cotangent[i, j], s, grad_x[i, j])
    return grad_x, grad_tau


@row_jit
def _softmax_tau_vjp_row(xr, tau, c, s, gx):
    """One row of ``_softmax_tau_vjp``: writes grad_x into ``gx`` (K,), returns grad_tau; ``s`` (K,) is scratch."""
    k_len = xr.shape[0]
    ok = _softmax_row(xr, tau, s)
    if not ok:
        for k in range(k_len):
            gx[k] = np.nan
        return np.nan
    m = -np.inf
    top = 0
    for k in range(k_len):
        if xr[k] > m:
            m = xr[k]
            top = k
    if m == np.inf:  # locally constant in x and tau
        for k in range(k_len):
            gx[k] = 0.0
        return 0.0
    # c_k - c_bar = (c_k - c_top) - sum_{i != top} s_i (c_i - c_top): no 1 - s_top, which
    # cancels where the largest entry holds nearly all the mass (s_top(1 - s_top) of 4e-16 rounds to 0)
    shift = 0.0
    w_bar = 0.0
    for k in range(k_len):
        if s[k] > 0.0 and k != top:
            shift += s[k] * (c[k] - c[top])
            w_bar += s[k] * ((xr[k] - m) / tau)
    acc = 0.0
    for k in range(k_len):
        if s[k] > 0.0:
            dc = (c[k] - c[top]) - shift
            gx[k] = s[k] * dc / tau
            acc += s[k] * dc * ((xr[k] - m) / tau - w_bar)
        else:
            gx[k] = 0.0
    return -acc / tau



# ---------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------


def sigmoid_tau(x, tau):
    r"""Tempered sigmoid :math:`\sigma_\tau(x) = \sigma(x/\tau) = 1/(1 + e^{-x/\tau})`, elementwise.

    The Binary Concrete relaxation of the hard threshold :math:`1[x > 0]`, which it
    approaches as :math:`\tau \to 0` (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017).

    Parameters
    ----------
    x : array_like
        Pre-activations; ``+/-inf`` allowed (give 1 / 0), NaN rejected.
    tau : float
        Temperature, finite and > 0.

    Returns
    -------
    ndarray
        Same shape as ``x``, values in [0, 1]; evaluated without overflow for any
        ``x / tau`` (saturates to exactly 0 or 1).

    Notes
    -----
    Relative error at most :math:`\epsilon\,(|x/\tau| + 4)` against mpmath for
    ``tau`` from 0.01 to 100: the rounding of :math:`x/\tau`, amplified by the
    exponential (below 1.7e-13 wherever the value is a normal double).
    """
    tau = _tau(tau)
    arr = _array(x, "x")
    return _unflat(_sigmoid_tau(_flat2(arr, arr.shape), tau), arr.shape)


def sigmoid_tau_vjp(x, tau, cotangent):
    r"""Vector-Jacobian product of :func:`sigmoid_tau` with respect to ``x`` and ``tau``.

    With :math:`z = x/\tau` and :math:`s = \sigma(z)`,

    .. math::
        \partial s/\partial x = s(1-s)/\tau, \qquad
        \partial s/\partial \tau = -z\, s(1-s)/\tau .

    Parameters
    ----------
    x : array_like
        Pre-activations (``+/-inf`` allowed, NaN rejected).
    tau : float
        Temperature, finite and > 0.
    cotangent : array_like
        Finite; broadcast to the shape of ``x``.

    Returns
    -------
    grad_x : ndarray
        ``cotangent * ds/dx``, same shape as ``x``.
    grad_tau : ndarray
        ``cotangent * ds/dtau`` **elementwise**, same shape as ``x`` (not summed):
        a caller whose elements share one ``tau`` sums ``grad_tau`` over those axes.

    Notes
    -----
    Where the sigmoid saturates (:math:`s(1-s)` underflows to 0, including
    ``x = +/-inf``) both gradients are exactly 0.  :math:`s(1-s)` is formed as
    :math:`e^{-|z|}/(1 + e^{-|z|})^2` (no :math:`1 - s`), so both have relative error
    at most :math:`\epsilon\,(|x/\tau| + 4)` as :func:`sigmoid_tau` does.
    """
    tau = _tau(tau)
    arr = _array(x, "x")
    c = _check_cotangent(cotangent, arr.shape)
    gx, gt = _sigmoid_tau_vjp(_flat2(arr, arr.shape), tau, _flat2(c, arr.shape))
    return _unflat(gx, arr.shape), _unflat(gt, arr.shape)


def softmax_tau(x, tau):
    r"""Tempered softmax over the last axis, :math:`\mathrm{softmax}(x/\tau)_k = e^{x_k/\tau} / \sum_i e^{x_i/\tau}`.

    The Concrete / Gumbel-Softmax map (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017),
    computed as :math:`e^{(x_k - m)/\tau} / \sum_i e^{(x_i - m)/\tau}` with :math:`m = \max_i x_i`,
    so it never overflows.

    Parameters
    ----------
    x : array_like, shape (..., K)
        Scores.  ``-inf`` entries get probability 0 (each row needs one entry > -inf).
        If a row contains ``+inf`` entries, the result is the uniform distribution over
        those entries (the limit when they grow to infinity together) and 0 elsewhere.
        NaN rejected.
    tau : float
        Temperature, finite and > 0.

    Returns
    -------
    ndarray, shape (..., K)

    Notes
    -----
    Relative error of every entry at most :math:`2\epsilon\,(\max_k |x_k - m|/\tau + K + 2)`
    against mpmath (the rounding of :math:`(x_k - m)/\tau` amplified by the exponential,
    and of the normalising sum), for ``tau`` from 0.01 to 100.
    """
    tau = _tau(tau)
    arr = _array(x, "x", min_ndim=1)
    _check_categories(arr, "x")
    _check_some_finite_max(arr, "x")
    return _softmax_tau(_flat3(arr, arr.shape), tau).reshape(arr.shape)


def softmax_tau_vjp(x, tau, cotangent):
    r"""Vector-Jacobian product of :func:`softmax_tau` with respect to ``x`` and ``tau``.

    With :math:`s = \mathrm{softmax}(x/\tau)`, :math:`\bar c = \sum_k c_k s_k` and
    :math:`\bar z = \sum_k s_k x_k/\tau`,

    .. math::
        (\mathrm{grad}_x)_k = s_k (c_k - \bar c)/\tau, \qquad
        \mathrm{grad}_\tau = -\frac{1}{\tau} \sum_k c_k s_k (x_k/\tau - \bar z)
                           = -\frac{1}{\tau} \sum_k s_k (c_k - \bar c)(x_k/\tau - \bar z).

    The last form, evaluated with :math:`x_k - \max_i x_i`, is the one computed, with
    :math:`c_k - \bar c = (c_k - c_t) - \sum_{i \ne t} s_i (c_i - c_t)`, :math:`t` the
    largest entry: no :math:`1 - s_t`, which cancels where one entry holds nearly all
    the mass (formed with :math:`1 - s_t`, the diagonal :math:`s_t(1 - s_t)/\tau` of 4.2e-16 at
    ``x = [0.5, -0.2, 0.1]``, ``tau = 0.01`` rounds to 0).  Every Jacobian entry (unit cotangent) then has the
    relative error bound of :func:`softmax_tau`.

    Parameters
    ----------
    x : array_like, shape (..., K)
        As in :func:`softmax_tau`.
    tau, cotangent
        As in :func:`sigmoid_tau_vjp`.

    Returns
    -------
    grad_x : ndarray, shape (..., K)
    grad_tau : ndarray, shape (...)
        One derivative per simplex (summed over the last axis); a caller whose
        simplices share one ``tau`` sums it over the remaining axes.

    Notes
    -----
    Entries equal to ``-inf`` get zero gradient; rows containing ``+inf`` are
    locally constant in ``x`` and ``tau`` and get zero gradients.
    """
    tau = _tau(tau)
    arr = _array(x, "x", min_ndim=1)
    _check_categories(arr, "x")
    _check_some_finite_max(arr, "x")
    c = _check_cotangent(cotangent, arr.shape)
    gx, gt = _softmax_tau_vjp(_flat3(arr, arr.shape), tau, _flat3(c, arr.shape))
    return gx.reshape(arr.shape), _unflat(gt, arr.shape[:-1])

