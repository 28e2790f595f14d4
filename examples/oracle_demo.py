"""Demonstration of refgrad's enumeration oracle.

Computes E[f] and ∇E[f] exactly for a small Bernoulli and a small Categorical
problem, and checks each gradient against (a) its closed form where one exists and
(b) central finite differences of the exact expectation.  Exits with status 1 if any
check fails.

Run:  python examples/oracle_demo.py
"""
import sys

import numpy as np

from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.objectives import SquaredDistance, Table


def finite_difference_gradient(make_dist, params, f, h=1e-5):
    grad = np.zeros_like(params)
    for idx in np.ndindex(params.shape):
        e = np.zeros_like(params)
        e[idx] = h
        grad[idx] = (exact.expectation(make_dist(params + e), f) - exact.expectation(make_dist(params - e), f)) / (2 * h)
    return grad


def report(title, dist, f, make_dist, closed_form=None):
    value = exact.expectation(dist, f)
    grad = exact.gradient(dist, f)
    fd = finite_difference_gradient(make_dist, np.array(dist.params), f)
    err_fd = float(np.max(np.abs(grad - fd)))
    print(f"\n== {title}")
    print(f"   params       = {np.array2string(np.asarray(dist.params), precision=4)}")
    print(f"   E[f]         = {value:.15g}")
    print(f"   grad E[f]    = {np.array2string(grad, precision=10)}")
    print(f"   |grad - FD|  = {err_fd:.2e}   (central differences of the exact E[f], h = 1e-5)")
    ok = err_fd < 1e-7
    if closed_form is not None:
        err_cf = float(np.max(np.abs(grad - closed_form)))
        print(f"   |grad - closed form| = {err_cf:.2e}")
        ok = ok and err_cf < 1e-13
    print(f"   {'PASS' if ok else 'FAIL'}")
    return ok


def main():
    results = []

    # 1. The REBAR/RELAX toy: one bit, f(b) = (b - t)^2, t = 0.499.
    logits = np.array([0.3])
    t = np.array([0.499])
    theta = 1.0 / (1.0 + np.exp(-logits))
    results.append(
        report(
            "Bernoulli toy f(b) = (b - 0.499)^2",
            Bernoulli(logits),
            SquaredDistance(t),
            Bernoulli,
            closed_form=theta * (1 - theta) * (1 - 2 * t),
        )
    )

    # 2. Three bits, an arbitrary function given by a table of its 8 values.
    rng = np.random.default_rng(0)
    table = Table(rng.normal(size=(2, 2, 2)))
    results.append(report("Bernoulli d=3, tabulated f", Bernoulli(np.array([1.2, -0.4, 2.5])), table, Bernoulli))

    # 3. Two categorical variables with K = 3, tabulated f.
    cat_table = Table(rng.normal(size=(3, 3)))
    cat_logits = np.array([[0.5, -1.0, 0.2], [2.0, 0.0, -0.5]])
    results.append(report("Categorical d=2, K=3, tabulated f", Categorical(cat_logits), cat_table, Categorical))

    # 4. A Gaussian-threshold bit (the REBAR mixture example), P(b = 1) = Phi(mu).
    results.append(
        report("GaussianThreshold d=2, f(b) = |b - t|^2", GaussianThreshold(np.array([0.3, -1.1])),
               SquaredDistance(np.array([0.45, 0.2])), GaussianThreshold)
    )

    print(f"\n{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
