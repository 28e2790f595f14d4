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

__all__ = ["SIMPLEX_SLACK", "GUMBEL_BOUND", "simplex_allowance"]

#: c in the bound.
SIMPLEX_SLACK = 8.0
#: Upper bound on a Gumbel variate drawn from uniforms of any float dtype (−log(−log(1 − 2⁻⁵³)) = 36.7).
GUMBEL_BOUND = 40.0


def simplex_allowance(eps, K, logits=None, tau=None):
    """Largest deviation from the simplex that rounding in a dtype of epsilon ``eps`` explains.

    Parameters
    ----------
    eps : float
        Epsilon of the points' dtype (at least float64's is used).
    K : int
        Number of categories.
    logits : array_like, optional
        The logits the points were drawn with (non-finite entries ignored); without them
        (or ``tau``) only the K roundings of the coordinates are allowed for.
    tau : float or array_like, optional
        The temperature(s); the smallest one sets the bound.
    """
    eps = max(float(eps), float(np.finfo(np.float64).eps))
    scale = float(K)
    if logits is not None and tau is not None:
        ell = np.asarray(logits, dtype=np.float64)
        finite = ell[np.isfinite(ell)]
        top = float(np.max(np.abs(finite))) if finite.size else 0.0
        tmin = float(np.min(np.asarray(tau, dtype=np.float64)))
        if tmin > 0 and np.isfinite(tmin):
            scale += (top + GUMBEL_BOUND) / tmin
    return SIMPLEX_SLACK * eps * scale
