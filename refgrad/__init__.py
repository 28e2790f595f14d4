"""refgrad: reference Monte Carlo gradient estimators for discrete random variables, with exact oracles.

Public surface:

- :func:`estimate` and :data:`ESTIMATORS` -- the estimator catalog (one signature for all);
- :func:`estimate_moments` -- the mean and variance of n estimates, streamed (memory independent of n);
- :mod:`refgrad.distributions` -- Bernoulli, Categorical, GaussianThreshold, Normal;
- :mod:`refgrad.objectives` -- SquaredDistance, Linear, Table and the Objective protocol;
- :mod:`refgrad.exact` -- enumeration oracles;
- :mod:`refgrad.relaxations` -- Concrete / Binary Concrete maps, VJPs and densities;
- :mod:`refgrad.random` -- SPEC 7 rng handling and the noise kernels;
- :mod:`refgrad.stats` -- unbiasedness and variance tests with measured calibration;
- :mod:`refgrad.testing` -- ``numpy.testing``-style assertions built on :mod:`refgrad.stats`;
- :mod:`refgrad.limits` -- the resource limits (enumeration, work, memory, quadrature) in one place;
- :class:`InputTypeError` -- the error for an argument of the wrong type (a ``TypeError`` and a ``ValueError``);
- :mod:`refgrad.crosscheck` -- verdicts on another framework's samples, densities and
  estimates (imported on first access, ``refgrad.crosscheck``, as it is needed only for that).

Every submodule is an attribute of the package after ``import refgrad``.
"""
import importlib

from . import distributions, estimators, exact, limits, objectives, random, relaxations, stats, testing
from ._core.checks import InputTypeError
from .distributions import Bernoulli, Categorical, GaussianThreshold, Normal, Product
from .estimators import ESTIMATORS, estimate, estimate_moments

__version__ = "0.1.0"

#: Submodules imported on first attribute access (``refgrad.crosscheck``), so that
#: ``import refgrad`` does not pay for them.
_LAZY_SUBMODULES = ("crosscheck",)


def __getattr__(name):
    """``refgrad.crosscheck`` imports :mod:`refgrad.crosscheck` on first use (PEP 562)."""
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))

__all__ = [
    "ESTIMATORS",
    "estimate",
    "estimate_moments",
    "Bernoulli",
    "Categorical",
    "GaussianThreshold",
    "Normal",
    "Product",
    "distributions",
    "exact",
    "objectives",
    "random",
    "relaxations",
    "stats",
    "testing",
    "limits",
    "InputTypeError",
    "estimators",
    "crosscheck",
]
