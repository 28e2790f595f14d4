"""Row kernels of the fused estimators: one Numba function per estimator and family, and its plan."""
