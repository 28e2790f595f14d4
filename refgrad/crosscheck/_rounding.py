r"""How far a relaxed sample computed in a given dtype may legitimately sit off the simplex.

A Concrete point is computed as :math:`y = s - \mathrm{logsumexp}(s)` (or
:math:`x = \mathrm{softmax}(s)`) from the scores :math:`s_k = (\ell_k + G_k)/τ`.  In a dtype
with epsilon ε the dominant coordinate carries an error of about
:math:`ε(|s_{\max}| + |\mathrm{logsumexp}\, s|) \le 2ε(\max_k|\ell_k| + G_{\max})/τ`, and
every one of the K coordinates one rounding more, so

.. math::
    |\textstyle\sum_k x_k - 1| \;\text{or}\; |\mathrm{logsumexp}_k\, y_k|
    \;\le\; c\,ε\,\bigl(K + (\max_k |\ell_k| + 40)/τ\bigr)

is what rounding can explain (:math:`G_{\max} \le 40`: a Gumbel drawn from a uniform of
any float type is below 36.8).  At τ = 0.01 and logits of size 2 a float32 implementation
may be off by :math:`4\cdot 10^{-3}`, a float64 one by :math:`7\cdot 10^{-12}`: the
scores are large and so is their rounding.  The bound is a scalar per call (the largest
finite logit, the smallest τ), so it is loose for batches of mixed temperatures.
"""
import numpy as np

__all__ = ["SIMPLEX_SLACK", "GUMBEL_BOUND", "score_rounding", "simplex_allowance"]

#: c in the bound.
SIMPLEX_SLACK = 8.0
#: Upper bound on a Gumbel variate drawn from uniforms of any float dtype (−log(−log(1 − 2⁻⁵³)) = 36.7).
GUMBEL_BOUND = 40.0


def score_rounding(eps, logits, tau):
    """Per row of ``logits`` (shape (..., K)): ``eps (K + (max_k |ℓ_k| + 40)/τ)``, non-finite logits ignored.

    The rounding, in a dtype of epsilon ``eps``, that a Concrete sample computed from the scores
    (ℓ + G)/τ carries into log x (without the slack factor); ``tau`` broadcasts against the
    leading shape of ``logits``.
    """
    ell = np.asarray(logits, dtype=np.float64)
    top = np.max(np.where(np.isfinite(ell), np.abs(ell), 0.0), axis=-1)
    return float(eps) * (ell.shape[-1] + (top + GUMBEL_BOUND) / np.asarray(tau, dtype=np.float64))


def simplex_allowance(eps, K, logits=None, tau=None):
    """Largest deviation from the simplex that rounding in a dtype of epsilon ``eps`` explains.

    ``SIMPLEX_SLACK`` times :func:`score_rounding` at the worst row (the largest finite logit, the
    smallest τ); at least float64's epsilon is used.

    Parameters
    ----------
    eps : float
        Epsilon of the points' dtype.
    K : int
        Number of categories.
    logits : array_like, optional
        The logits the points were drawn with; without them (or ``tau``) only the K roundings of
        the coordinates are allowed for.
    tau : float or array_like, optional
        The temperature(s).
    """
    eps = max(float(eps), float(np.finfo(np.float64).eps))
    if logits is None or tau is None:
        return SIMPLEX_SLACK * eps * float(K)
    ell = np.asarray(logits, dtype=np.float64)
    tmin = float(np.min(np.asarray(tau, dtype=np.float64)))
    return SIMPLEX_SLACK * float(np.max(score_rounding(eps, ell.reshape(-1, ell.shape[-1]), tmin)))
