"""The estimator catalog: every estimator a pure function of its noise, behind one interface.

Importing this package registers every estimator in :data:`ESTIMATORS`.
"""
# The estimator modules register themselves on import.
# isort: off
from ._base import ESTIMATORS, EstimatorSpec, NoiseField, estimate, get_spec
from . import score, antithetic, pathwise, relaxed, rebar, relax, reinmax, indecater  # noqa: F401  (registration)
from . import gapped_straight_through, sum_and_sample, coupled, unordered_set, vimco, arsm  # noqa: F401
from . import straight_through_plain  # noqa: F401
from .relax import RelaxSurrogate, fit_relax
from ._streaming import SampleMoments, estimate_moments
# isort: on

__all__ = ["ESTIMATORS", "EstimatorSpec", "NoiseField", "estimate", "get_spec", "RelaxSurrogate", "fit_relax",
           "SampleMoments", "estimate_moments"]
