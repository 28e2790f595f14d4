"""The resource limits of refgrad, in one public place.

Each limit is defined where it is enforced and re-exported here, so that documentation and users name
one public path.  A call that would exceed a limit is refused with a ``ValueError`` naming the limit, the
argument that would raise it (``limit=``, ``max_work=``, ``max_seconds=``, ``level=``) and what it would cost.

- :data:`MAX_ARRAY_BYTES` (2**32, 4 GiB): the largest array one call allocates for samples or noise.
- :data:`WORK_LIMIT` (10**11): the most elementary operations one call may do before it is refused
  (``max_work=`` raises it); what one operation is is stated where the budget is checked.
- :data:`MULTINOMIAL_COST` (100): operations counted for one cell of one multinomial draw.
- :data:`ENUMERATION_LIMIT` (2**22): the largest support the exact oracles enumerate by default (``limit=``).
- :data:`MAX_QUADRATURE_DIM` (4) and :data:`MAX_PIECEWISE_DIM` (10): the largest noise dimension integrated
  by tanh-sinh quadrature and by the piecewise rules in :func:`refgrad.exact.moments`.
- :data:`MAX_QUADRATURE_NODES` (2**32): the most estimator evaluations of one quadrature.
- :data:`MIN_LEVEL`, :data:`MAX_LEVEL` (2, 16): the allowed quadrature levels.
- :data:`DEFAULT_MAX_SECONDS` (60): the default run-time guard of :func:`refgrad.exact.moments`;
  :data:`UNTIMED_EVALUATIONS` (10**6) evaluations run without timing, and a plan beyond ``max_seconds``
  even at :data:`MIN_SECONDS_PER_EVALUATION` (1e-7 s) is refused without timing.

The measurements behind these numbers are in ``docs/oracles-measured.md``.
"""
from ._core.checks import MAX_ARRAY_BYTES, MULTINOMIAL_COST, WORK_LIMIT
from ._moments.base import (
    DEFAULT_MAX_SECONDS,
    MAX_LEVEL,
    MAX_PIECEWISE_DIM,
    MAX_QUADRATURE_DIM,
    MAX_QUADRATURE_NODES,
    MIN_LEVEL,
)
from ._moments.cost import MIN_SECONDS_PER_EVALUATION, UNTIMED_EVALUATIONS
from .distributions import ENUMERATION_LIMIT

__all__ = ["MAX_ARRAY_BYTES", "WORK_LIMIT", "MULTINOMIAL_COST", "ENUMERATION_LIMIT", "MAX_QUADRATURE_DIM",
           "MAX_PIECEWISE_DIM", "MAX_QUADRATURE_NODES", "MIN_LEVEL", "MAX_LEVEL", "DEFAULT_MAX_SECONDS",
           "UNTIMED_EVALUATIONS", "MIN_SECONDS_PER_EVALUATION"]
