"""Compensated (Neumaier) summation kernels shared by the exact oracles."""
from .jit import jit


@jit
def _neumaier(total, compensation, p, x):
    """Add ``x`` to the compensated sum ``total[p] + compensation[p]`` (Neumaier 1974)."""
    s = total[p]
    t = s + x
    if abs(s) >= abs(x):
        compensation[p] += (s - t) + x
    else:
        compensation[p] += (x - t) + s
    total[p] = t


@jit
def _compensated_accumulate(terms, total, compensation):
    """Neumaier summation of the columns of ``terms`` (m, P) into ``total``/``compensation`` (P,), in place.

    The running sum of column ``p`` is ``total[p] + compensation[p]``.
    """
    m, P = terms.shape
    for r in range(m):
        for p in range(P):
            _neumaier(total, compensation, p, terms[r, p])
