"""The benchmark's problems: estimators, families, options, and the agreement check.

Every implementation (refgrad, :mod:`benchmarks.numpy_impl`, :mod:`benchmarks.torch_impl`)
gets the same logits, target, options and uniforms; :func:`agreement` is the error the
benchmark prints before timing (max abs difference relative to max |refgrad estimate|).
"""
import numpy as np

import refgrad
from refgrad.objectives import SquaredDistance

__all__ = ["ESTIMATOR_NAMES", "FAMILIES", "TOLERANCE", "TARGET", "Problem", "agreement", "problem"]

ESTIMATOR_NAMES = (
    "reinforce", "rloo", "muprop", "arm", "disarm",
    "gumbel_softmax", "straight_through", "gumbel_rao", "rebar", "relax",
)

#: label -> (family, d, K); K is None for Bernoulli
FAMILIES = {
    "bernoulli d=1": ("bernoulli", 1, None),
    "bernoulli d=100": ("bernoulli", 100, None),
    "categorical d=10 K=2": ("categorical", 10, 2),
    "categorical d=10 K=10": ("categorical", 10, 10),
}

#: agreement required before timing: max |impl − refgrad| / max |refgrad|
TOLERANCE = 1e-12

#: SquaredDistance target for bits (the REBAR toy problem's t = 0.45, on every coordinate).  A
#: categorical variable needs targets that differ across categories: with one t for all, f is the
#: same at every one-hot b and the score-function estimators would estimate a zero gradient.
TARGET = 0.45

#: options passed to every implementation (refgrad's defaults, written out)
OPTIONS = {
    "rloo": {"m": 2},
    "gumbel_softmax": {"tau": 1.0},
    "straight_through": {"tau": 1.0},
    "gumbel_rao": {"tau": 1.0, "k": 10},
    "rebar": {"tau": 0.5, "eta": 1.0},
}


class Problem:
    """One (estimator, family) problem: logits, the refgrad distribution, objective and options."""

    def __init__(self, name, family, d, K=None, seed=0):
        gen = np.random.default_rng(seed)
        self.name, self.family = name, family
        if family == "bernoulli":
            self.logits = gen.normal(0.0, 1.5, size=d)
            self.dist = refgrad.Bernoulli(self.logits)
        else:
            self.logits = gen.normal(0.0, 1.5, size=(d, K))
            self.dist = refgrad.Categorical(self.logits)
        self.target = TARGET if family == "bernoulli" else gen.uniform(0.0, 1.0, size=(d, K))
        self.objective = SquaredDistance(self.target)
        self.spec = refgrad.ESTIMATORS[name]
        self.options = dict(OPTIONS.get(name, {}))
        if name == "relax":  # a non-trivial surrogate (r ≢ 0), fixed seed
            self.options["surrogate"] = refgrad.estimators.RelaxSurrogate(
                tuple(self.dist.event_shape), hidden=8, eta=1.0, tau=0.5, rng=seed, scale=1.0)

    @property
    def supported(self):
        return self.family in self.spec.families

    def draw(self, n, rng):
        """The noise dict for n estimates, drawn exactly as ``refgrad.estimate(..., rng=rng)`` draws it."""
        return self.spec.draw_noise(self.dist, n, rng, **self.options)

    def refgrad(self, noise):
        return refgrad.estimate(self.name, self.dist, self.objective, noise=noise, **self.options)

    def bytes_per_sample(self):
        return self.spec.bytes_per_sample(self.dist, **self.options)


def problem(name, label, seed=0):
    family, d, K = FAMILIES[label]
    return Problem(name, family, d, K, seed)


def head(noise, n):
    """The first n rows of every per-sample noise field."""
    return {key: value[:n] for key, value in noise.items()}


def agreement(reference, other):
    """max |other − reference| / max |reference| (inf on a shape mismatch or a non-finite value)."""
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or not np.all(np.isfinite(other)):
        return float("inf")
    scale = float(np.max(np.abs(reference)))
    err = float(np.max(np.abs(other - reference)))
    return err / scale if scale > 0 else err
