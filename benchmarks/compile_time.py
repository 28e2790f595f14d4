"""Numba compilation cost: ``import refgrad`` and the first against the second call, in fresh processes.

Each measurement is one fresh ``python`` subprocess that times ``import refgrad``, the
first and second call of ``refgrad.estimate(name, dist, SquaredDistance, n=1000, rng=0)``
and of ``refgrad.exact.gradient`` (Bernoulli d = 10).  "warm": the Numba cache already
filled (one unmeasured run first); "cold": ``NUMBA_CACHE_DIR`` pointed at a new empty
temporary folder, so every kernel compiles.  Python's own start-up is not included.
"""
import json
import os
import subprocess
import sys
import tempfile

__all__ = ["SCRIPT", "measure", "run"]

SCRIPT = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import refgrad
from refgrad.objectives import SquaredDistance
t1 = time.perf_counter()
name, family = sys.argv[1], sys.argv[2]
if family == "bernoulli":
    dist, f = refgrad.Bernoulli(np.linspace(-1, 1, 100)), SquaredDistance(0.45)
else:
    dist = refgrad.Categorical(np.linspace(-1, 1, 100).reshape(10, 10))
    f = SquaredDistance(np.linspace(0, 1, 100).reshape(10, 10))
out = {"import_s": t1 - t0}
for key in ("first", "second"):
    t = time.perf_counter()
    refgrad.estimate(name, dist, f, n=1000, rng=0)
    out[f"estimate_{key}_s"] = time.perf_counter() - t
small = refgrad.Bernoulli(np.linspace(-1, 1, 10))
for key in ("first", "second"):
    t = time.perf_counter()
    refgrad.exact.gradient(small, SquaredDistance(0.45))
    out[f"exact_gradient_{key}_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def measure(name, family, cache_dir=None, timeout=600):
    """One fresh process; returns its timings (dict), or {"error": text}."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    proc = subprocess.run([sys.executable, "-c", SCRIPT, name, family], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(cases):
    """For each (estimator, family): warm-cache and cold-cache measurements."""
    rows = []
    for name, family in cases:
        measure(name, family)  # fill the default cache
        warm = measure(name, family)
        with tempfile.TemporaryDirectory(prefix="refgrad-numba-cold-") as empty:
            cold = measure(name, family, cache_dir=empty)
        rows.append({"estimator": name, "family": family, "warm": warm, "cold": cold})
    return rows
