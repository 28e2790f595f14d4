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

#: The catalog's order (that of the README's table and of every report): registration follows the import
#: order, which the modules' dependencies decide (relaxed imports rebar and relax), so it is set here.
CATALOG_ORDER = (
    "reinforce", "rloo", "muprop", "arm", "disarm", "pathwise", "gumbel_softmax", "straight_through", "gumbel_rao",
    "rebar", "relax", "reinmax", "indecater", "gapped_straight_through", "sum_and_sample", "disarm_stick_breaking",
    "disarm_stick_breaking_rb", "disarm_stick_breaking_iw", "unordered_set", "vimco", "arsm", "straight_through_plain",
)


def _put_in_catalog_order(registry, order):
    """Reorder ``registry`` in place: the names of ``order`` first, in that order, then any other in its own."""
    entries = dict(registry)
    registry.clear()
    registry.update({name: entries[name] for name in order if name in entries})
    registry.update({name: spec for name, spec in entries.items() if name not in registry})


_put_in_catalog_order(ESTIMATORS, CATALOG_ORDER)

__all__ = ["ESTIMATORS", "EstimatorSpec", "NoiseField", "estimate", "get_spec", "RelaxSurrogate", "fit_relax",
           "SampleMoments", "estimate_moments"]
