"""refgrad: reference Monte Carlo gradient estimators for discrete random variables, with exact oracles.

Public surface:

- :func:`estimate` and :data:`ESTIMATORS` -- the estimator catalog (one signature for all);
- :mod:`refgrad.distributions` -- Bernoulli, Categorical, GaussianThreshold, Normal;
- :mod:`refgrad.objectives` -- SquaredDistance, Linear, Table and the Objective protocol;
- :mod:`refgrad.exact` -- enumeration oracles;
- :mod:`refgrad.relaxations` -- Concrete / Binary Concrete maps, VJPs and densities;
- :mod:`refgrad.random` -- SPEC 7 rng handling and the noise kernels;
- :mod:`refgrad.stats` -- unbiasedness and variance tests with measured calibration.
"""
from . import distributions, exact, objectives, random, relaxations, stats
from .distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from .estimators import ESTIMATORS, estimate

__version__ = "0.1.0"

__all__ = [
    "ESTIMATORS",
    "estimate",
    "Bernoulli",
    "Categorical",
    "GaussianThreshold",
    "Normal",
    "distributions",
    "exact",
    "objectives",
    "random",
    "relaxations",
    "stats",
]
