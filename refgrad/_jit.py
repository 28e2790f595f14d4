"""The one Numba decorator every refgrad kernel uses.

``cache=True`` keeps compiled kernels between processes, ``nogil=True`` lets
callers run kernels from threads, ``error_model="numpy"`` makes division by zero
follow IEEE rules instead of raising.  No ``fastmath``: log-space code relies on
``-inf`` and ``nan`` keeping IEEE semantics.
"""
import numba as nb

jit = nb.njit(cache=True, nogil=True, error_model="numpy")

__all__ = ["jit"]
