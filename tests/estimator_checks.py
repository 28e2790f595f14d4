"""Shared checks for estimator tests (simple, able to fail; calibrated tests come with refgrad.stats).

Conventions: every Monte Carlo check states its z-bound and seed.  With p coordinates
checked at z = 5, the family-wise false-alarm probability is below p * 5.7e-7.
"""
import numpy as np

import refgrad
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.estimators import _fused
from refgrad.objectives import Table


def batched_estimate(name, dist, f, noise, **opts):
    """``refgrad.estimate`` from ``noise`` on the batched, stage-by-stage path (the fused row kernels off)."""
    with _fused.fused_kernels(False):
        return refgrad.estimate(name, dist, f, noise=noise, **opts)


def central_fd(fun, x, h=1e-6):
    """Central differences of ``fun`` (array -> array) w.r.t. every entry of ``x``.

    Returns an array of shape ``fun(x).shape + x.shape``.
    """
    x = np.array(x, dtype=np.float64)
    base = np.asarray(fun(x))
    out = np.zeros(base.shape + x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        out[(...,) + idx] = (np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2.0 * h)
    return out


def mc_mean_z(name, dist, f, n, seed, **options):
    """(z-scores of the Monte Carlo mean against exact.gradient, mean, standard error)."""
    g = refgrad.estimate(name, dist, f, n, rng=seed, **options)
    target = exact.gradient(dist, f)
    mean = g.mean(axis=0)
    se = g.std(axis=0, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (mean - target) / np.where(se > 0, se, 1.0), np.where(mean == target, 0.0, np.inf))
    return z, mean, se


def assert_mc_unbiased(name, dist, f, n=20000, seed=0, zmax=5.0, **options):
    """Every coordinate of the MC mean within ``zmax`` standard errors of exact.gradient."""
    z, mean, se = mc_mean_z(name, dist, f, n, seed, **options)
    assert np.all(np.abs(z) <= zmax), (
        f"{name}{options}: |z| > {zmax}\nz={z}\nmean={mean}\nexact={exact.gradient(dist, f)}\nse={se}"
    )


def assert_mc_biased(name, dist, f, n=20000, seed=0, zmin=8.0, **options):
    """Some coordinate of the MC mean at least ``zmin`` standard errors from exact.gradient."""
    z, mean, se = mc_mean_z(name, dist, f, n, seed, **options)
    assert np.max(np.abs(z)) >= zmin, (
        f"{name}{options}: expected bias, max |z| = {np.max(np.abs(z))} < {zmin}\nmean={mean}\n"
        f"exact={exact.gradient(dist, f)}"
    )


def discrete_problems():
    """A small distribution and a ``Table`` objective for each of bernoulli, categorical and gaussian_threshold."""
    rng = np.random.default_rng(7)
    return {
        "bernoulli": (Bernoulli(np.array([0.4, -1.2, 2.0])), Table(rng.normal(size=(2, 2, 2)))),
        "categorical": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "gaussian_threshold": (GaussianThreshold(np.array([0.3, -0.8])), Table(rng.normal(size=(2, 2)))),
    }
