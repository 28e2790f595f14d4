"""The one Numba decorator every refgrad kernel uses.

``cache=True`` keeps compiled kernels between processes, ``nogil=True`` lets
callers run kernels from threads, ``error_model="numpy"`` makes division by zero
follow IEEE rules instead of raising.  No ``fastmath``: log-space code relies on
``-inf`` and ``nan`` keeping IEEE semantics.
"""
import numba as nb

jit = nb.njit(cache=True, nogil=True, error_model="numpy")

#: The same, inlined into every caller at Numba IR level (``inline="always"``): for the small per-row
#: helpers of the fused kernels.  A call that is not inlined passes each array as a struct and
#: increments and decrements its reference count (two atomic operations) per call -- per row, that
#: cost more than the row's arithmetic (a one-bit MuProp row: 80 ns with calls, see _fused).
row_jit = nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")

__all__ = ["jit", "row_jit"]
