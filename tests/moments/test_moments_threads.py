"""exact.moments gives the same bits for any BLAS thread count (its sums must not go through BLAS products)."""
import os
import subprocess
import sys

SCRIPT = """
import numpy as np
from refgrad import exact
from refgrad.distributions import Bernoulli
from refgrad.objectives import SquaredDistance
m = exact.moments("rebar", Bernoulli(np.array([0.3])), SquaredDistance(np.array([0.45])), tau=0.5, eta=1.0)
print(repr(float(np.ravel(m.mean)[0])), repr(float(np.ravel(m.second_moment)[0])))
"""


def _run(threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          check=True).stdout


def test_moments_do_not_depend_on_the_blas_thread_count():
    assert _run(1) == _run(4)
