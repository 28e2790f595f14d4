"""Plain NumPy/SciPy twins of every Numba kernel, used as test oracles.

Each twin is written independently of the kernel it checks (straightforward
NumPy, SciPy special functions where they exist), and takes the same uniforms.
"""
import numpy as np
from scipy import special

# ==== random ====

# ==== distributions ====

# ==== relaxations ====

# ==== objectives / exact ====

# ==== estimators ====
