"""The one table of every estimator's option sets, read by the golden, edge, separable, fused and sweep tests.

Each entry of :data:`OPTION_SETS` is an :class:`OptionSet`: a label, a builder ``dist -> options`` (options
that depend on the distribution's shape, a per-parameter ``eta`` or a RELAX surrogate, are built for the
distribution at hand), the families it applies to (``None``: every family of the estimator) and the tests
that run it (:attr:`OptionSet.uses`):

``"golden"``
    pinned in ``tests/golden_streams.json`` under the label ``name/family/label`` (labels of these sets
    never change: the pinned file is keyed by them); the fused-kernel harness and the sweep table run the
    same sets.
``"edge"``
    run by the catalog-wide test of ±inf parameters (``tests/estimators/test_catalog.py``), whose
    distributions have infinite logits.
``"separable"``
    run by the estimate-by-estimate separable decomposition (``tests/moments/test_separable.py``).
``"fused_extra"``
    option values of the fused kernels that the golden sets do not reach
    (``tests/estimators/test_fused_gumbel_rao.py``).

The edge and separable marks keep the sets those tests ran before the tables were merged (values harmonised
with the golden ones where both ran the same kind of set); a set that a test cannot take says why in a comment.
"""
from dataclasses import dataclass

import numpy as np

import refgrad
from refgrad.estimators import RelaxSurrogate

GOLDEN = "golden"
EDGE = "edge"
SEPARABLE = "separable"
FUSED_EXTRA = "fused_extra"


@dataclass(frozen=True)
class OptionSet:
    """One legal option set of one estimator (see the module docstring)."""

    label: str
    build: object  # dist -> options dict
    families: tuple = None
    uses: frozenset = frozenset({GOLDEN})

    def applies(self, family):
        """Whether the set is legal for ``family``."""
        return self.families is None or family in self.families

    def options(self, dist):
        """The options for ``dist`` (a fresh dict)."""
        return self.build(dist)

    def __str__(self):
        return self.label


def _set(label, options=None, families=None, uses=(GOLDEN,)):
    """An option set whose options do not depend on the distribution."""
    options = dict(options or {})
    return OptionSet(label, lambda dist: dict(options), families, frozenset(uses))


def per_parameter_eta(dist):
    """REBAR's per-parameter ``eta``: 0.5 to 1.5 over the parameters of ``dist``."""
    return np.linspace(0.5, 1.5, int(np.prod(dist.param_shape))).reshape(dist.param_shape)


def mlp_surrogate(dist):
    """A RELAX surrogate with a hidden layer of 3 for the event shape of ``dist``."""
    return RelaxSurrogate(dist.event_shape, hidden=3, eta=0.8, tau=0.6, rng=7)


def constant_surrogate(dist):
    """A RELAX surrogate with no input weights (a constant ``r``), which keeps RELAX separable."""
    return RelaxSurrogate.zero(tuple(dist.event_shape), eta=0.7, tau=0.8).replace(b2=0.4)


ALL = (GOLDEN, EDGE, SEPARABLE)
NOT_NORMAL = ("bernoulli", "categorical", "gaussian_threshold")  # enumerable families

#: Option sets per estimator, in the order the tests run them.
OPTION_SETS = {
    "reinforce": [
        _set("default", uses=ALL),
        _set("baseline=0.25", {"baseline": 0.25}, uses=ALL),
        # the optimal baseline is an enumeration: refused for the Normal family
        _set("baseline=optimal", {"baseline": "optimal"}, NOT_NORMAL, uses=ALL),
    ],
    "rloo": [_set("default"), _set("m=3", {"m": 3}, uses=ALL)],
    "muprop": [_set("default", uses=ALL)],
    "arm": [_set("default", uses=ALL)],
    "disarm": [_set("default", uses=ALL)],
    "pathwise": [_set("default", uses=ALL)],
    "gumbel_softmax": [_set("default", uses=(GOLDEN, SEPARABLE)), _set("tau=0.3", {"tau": 0.3}, uses=(GOLDEN, EDGE))],
    "straight_through": [_set("default", uses=(GOLDEN, SEPARABLE)),
                         _set("tau=0.3", {"tau": 0.3}, uses=(GOLDEN, EDGE))],
    "gumbel_rao": [
        _set("default", uses=(GOLDEN, EDGE)),
        _set("k=3,derivative=total,tau=0.7", {"k": 3, "derivative": "total", "tau": 0.7}, uses=ALL),
        # the fused rows of the total derivative at the default k = 10 (averaged over k like the batched path),
        # and of the identity derivative at k = 1 and a small tau
        _set("derivative=total", {"derivative": "total"}, uses=(FUSED_EXTRA,)),
        _set("k=1,tau=0.3", {"k": 1, "tau": 0.3}, uses=(FUSED_EXTRA,)),
        _set("k=4,derivative=total,tau=2.5", {"k": 4, "derivative": "total", "tau": 2.5}, uses=(FUSED_EXTRA,)),
    ],
    "rebar": [
        _set("default", uses=ALL),
        _set("eta=0.5,tau=0.3", {"eta": 0.5, "tau": 0.3}),
        _set("eta=optimal,pilot=16", {"eta": "optimal", "pilot": 16}, uses=(GOLDEN, EDGE)),
        OptionSet("eta=per-parameter", lambda dist: {"eta": per_parameter_eta(dist)},
                  uses=frozenset({GOLDEN, SEPARABLE})),
    ],
    "relax": [
        _set("default", uses=ALL),
        # a surrogate with input weights couples the variables: RELAX is separable with a constant one only
        OptionSet("surrogate(hidden=3,rng=7)", lambda dist: {"surrogate": mlp_surrogate(dist)}),
        OptionSet("surrogate=constant", lambda dist: {"surrogate": constant_surrogate(dist)},
                  uses=frozenset({SEPARABLE})),
    ],
    "indecater": [_set("default", uses=(GOLDEN, EDGE)), _set("m=3", {"m": 3}, uses=ALL)],
    "reinmax": [_set("default", uses=ALL), _set("tau=2", {"tau": 2.0}, uses=(GOLDEN, EDGE))],
    "sum_and_sample": [
        _set("default", uses=(GOLDEN, EDGE)),
        _set("k=0", {"k": 0}, uses=(GOLDEN, EDGE)),
        _set("k=3", {"k": 3}, uses=(GOLDEN, EDGE)),
    ],
    "gapped_straight_through": [
        _set("default", uses=ALL),
        _set("tau=0.5,gap=p", {"tau": 0.5, "gap": "p"}, uses=(GOLDEN, EDGE)),
        _set("gap=0", {"gap": 0.0}),
    ],
    "unordered_set": [
        _set("default", uses=(GOLDEN, EDGE)),
        # k = 3 needs 3 possible outcomes: the edge test's Bernoulli with two infinite logits has 2 (k=2 there)
        _set("k=3,baseline=none", {"k": 3, "baseline": "none"}),
        _set("k=2,baseline=none", {"k": 2, "baseline": "none"}, uses=(EDGE,)),
        _set("k=1", {"k": 1}, uses=(GOLDEN, EDGE)),
    ],
    # arsm refuses infinite logits (tests/estimators/test_catalog.py::test_arsm_refuses_infinite_logits)
    "arsm": [_set("default", uses=(GOLDEN, SEPARABLE))],
    # backward="identity" copies ∇f(b) also at ±inf, by definition (test_estimators_straight_through_plain.py)
    "straight_through_plain": [_set("default", uses=ALL), _set("backward=identity", {"backward": "identity"})],
    "disarm_stick_breaking": [_set("default", uses=ALL)],
    "disarm_stick_breaking_rb": [_set("default", uses=ALL)],
    "disarm_stick_breaking_iw": [_set("default", uses=ALL)],
    "vimco": [
        _set("default", uses=(GOLDEN, EDGE)),
        _set("k=3,arithmetic", {"k": 3, "baseline": "arithmetic"}, uses=(GOLDEN, EDGE)),
        _set("baseline=None", {"baseline": None}, uses=(GOLDEN, EDGE)),
    ],
}


def option_sets(name, use, family=None):
    """The option sets of estimator ``name`` that test ``use`` runs (for ``family`` when given)."""
    return [s for s in OPTION_SETS[name] if use in s.uses and (family is None or s.applies(family))]


def golden_dist(family):
    """The moderate-parameter distribution of each family used for the pinned streams."""
    if family == "bernoulli":
        return refgrad.Bernoulli([0.3, -1.2, 2.0])
    if family == "gaussian_threshold":
        return refgrad.GaussianThreshold([0.4, -0.7, 1.1])
    if family == "categorical":
        return refgrad.Categorical([[0.5, -0.2, 0.1], [-1.0, 0.3, 0.8]])
    if family == "normal":
        return refgrad.Normal([0.3, -0.5], scale=1.5, offset=0.2)
    raise AssertionError(family)
