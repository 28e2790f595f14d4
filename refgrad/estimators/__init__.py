"""The estimator catalog: every estimator a pure function of its noise, behind one interface.

Importing this package registers every estimator in :data:`ESTIMATORS`.
"""
from ._base import ESTIMATORS, EstimatorSpec, NoiseField, estimate, get_spec
from . import score, antithetic, pathwise, relaxed  # noqa: F401  (registration)

__all__ = ["ESTIMATORS", "EstimatorSpec", "NoiseField", "estimate", "get_spec"]
