"""Catalog-wide checks: every estimator of ``refgrad.estimators.ESTIMATORS`` at ±inf parameters, on bad noise,
sample counts and options, the option table's coverage and the catalog's order.

The option sets come from ``tests/estimator_options.py`` (the sets marked ``"edge"``).
"""
import numpy as np
import pytest

import refgrad
from estimator_checks import discrete_problems
from estimator_options import EDGE, OPTION_SETS, option_sets
from objective_kinds import objective_for
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold, Normal
from refgrad.estimators import ESTIMATORS
from refgrad.objectives import SquaredDistance

INF = np.inf


def _edge_dists():
    return {
        "bernoulli": Bernoulli(np.array([INF, -INF, 0.3])),
        "gaussian_threshold": GaussianThreshold(np.array([INF, -INF, 0.3])),
        "categorical": Categorical(np.array([[INF, 0.0, 1.0], [-INF, 0.0, 1.0], [INF, INF, 0.0], [-INF, -INF, 0.5]])),
        "normal": Normal(np.array([0.3, -1.0])),
    }


def _edge_cases():
    for name in sorted(ESTIMATORS):
        for family in ESTIMATORS[name].families:
            for oset in option_sets(name, EDGE, family):
                yield name, family, oset


def test_option_table_covers_every_estimator():
    assert set(OPTION_SETS) == set(ESTIMATORS)


@pytest.mark.parametrize("name, family, oset", list(_edge_cases()), ids=str)
def test_infinite_parameters_give_finite_estimates(name, family, oset):
    # ±inf logits (a deterministic outcome) are legal: every estimator returns finite numbers,
    # and the coordinates of a deterministic bit get exactly 0 (except ARM, whose weight
    # u_i − 1/2 multiplies f-differences driven by the other bits: mean 0, samples not 0)
    dist = _edge_dists()[family]
    options = oset.options(dist)
    f = objective_for(name, SquaredDistance(np.full(tuple(dist.event_shape), 0.45)), options)
    g = refgrad.estimate(name, dist, f, 64, rng=3, **options)
    assert g.shape == (64,) + tuple(dist.param_shape)
    assert np.isfinite(g).all()
    if family in ("bernoulli", "gaussian_threshold") and name != "arm":
        np.testing.assert_array_equal(g[:, :2], 0.0)


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_arsm_refuses_infinite_logits(family):
    # the one estimator without edge option sets: ±inf logits are refused by name, not returned as NaN
    dist = _edge_dists()[family]
    f = SquaredDistance(np.full(tuple(dist.event_shape), 0.45))
    with pytest.raises(ValueError, match=r"estimator 'arsm' needs finite logits; got logits\[.*\] = -?inf"):
        refgrad.estimate("arsm", dist, f, 8, rng=3)


def test_noise_may_be_lists_and_a_non_dict_is_explained():
    dist = Bernoulli(np.array([0.3, -0.2]))
    f = SquaredDistance(np.array([0.45, 0.45]))
    u = [[0.2, 0.7], [0.9, 0.4]]
    np.testing.assert_array_equal(refgrad.estimate("reinforce", dist, f, noise={"u": u}),
                                  refgrad.estimate("reinforce", dist, f, noise={"u": np.array(u)}))
    with pytest.raises(ValueError, match=r"noise must be a dict of uniform arrays laid out as \{'u': \(n, 2\)\}.*list"):
        refgrad.estimate("reinforce", dist, f, noise=u)
    with pytest.raises(ValueError, match=r"laid out as \{'u': \(n, 2\), 'v': \(n, 2\)\}"):
        refgrad.estimate("rebar", dist, f, noise=np.array(u))
    with pytest.raises(TypeError, match=r"noise\['u'\] must hold real \(float64\) numbers.*complex"):
        refgrad.estimate("reinforce", dist, f, noise={"u": np.array(u) + 0j})
    with pytest.raises(ValueError, match=r"noise\['u'\] must be a rectangular array"):
        refgrad.estimate("reinforce", dist, f, noise={"u": [[0.5, 0.5], [0.5]]})


@pytest.mark.parametrize(
    "u, match",
    [
        ([[0.2, 0.7], [0.9, 1.0]], r"got 1.0 at index \(1, 1\)"),
        ([[0.0, 0.7], [0.9, 0.5]], r"got 0.0 at index \(0, 0\)"),
        ([[0.2, np.nan], [0.9, 0.5]], r"got nan at index \(0, 1\)"),
        ([[0.2, 0.7], [-0.1, 0.5]], r"got -0.1 at index \(1, 0\)"),
    ],
)
def test_bad_uniforms_are_shown_with_their_index(u, match):
    with pytest.raises(ValueError, match=r"noise\['u'\] must contain uniforms strictly inside \(0, 1\).*" + match):
        refgrad.estimate("reinforce", Bernoulli(np.array([0.3, -0.2])), SquaredDistance(np.array([0.4, 0.4])),
                         noise={"u": u})


def test_sample_counts_are_checked_by_type_range_and_size():
    dist, f = discrete_problems()["bernoulli"]
    for n in (2.5, 2.0, True, "5", 1j):
        with pytest.raises(TypeError, match=r"n must be an integer >= 1; got"):
            refgrad.estimate("reinforce", dist, f, n, rng=0)
    for n in (0, -3):
        with pytest.raises(ValueError, match=rf"n must be an integer >= 1; got {n}"):
            refgrad.estimate("reinforce", dist, f, n, rng=0)
    # previously numpy's MemoryError ("Unable to allocate 22 TiB ...") from deep inside the noise draw
    with pytest.raises(ValueError, match=r"n=1000000000000 would need 43.7 TiB \(48 bytes per sample\)"):
        refgrad.estimate("reinforce", dist, f, 10**12, rng=0)
    with pytest.raises(ValueError, match=r"n=1000000000000 would need"):
        ESTIMATORS["rebar"].draw_noise(dist, 10**12, rng=0)
    with pytest.raises(ValueError, match=r"m=1000000000000 would need"):
        refgrad.estimate("rloo", dist, f, 5, rng=0, m=10**12)
    with pytest.raises(ValueError, match=r"k=1000000000000 would need"):
        refgrad.estimate("gumbel_rao", dist, f, 5, rng=0, k=10**12)
    with pytest.raises(ValueError, match=r"pilot=1000000000000 would need"):
        refgrad.estimate("rebar", dist, f, 5, rng=0, eta="optimal", pilot=10**12)
    with pytest.raises(ValueError, match=r"n=3 disagrees with the noise arrays, which hold 2 samples"):
        refgrad.estimate("reinforce", dist, f, 3, noise={"u": np.full((2, 3), 0.5)})


# Every option of every estimator: the error type, and a message naming the option and the value.
BAD_OPTIONS = [
    ("reinforce", {"baseline": np.nan}, ValueError, r"baseline must be None, a finite float, or 'optimal'; got nan"),
    ("reinforce", {"baseline": np.inf}, ValueError, r"baseline must be .*; got inf"),
    ("reinforce", {"baseline": "best"}, ValueError, r"baseline must be .*; got 'best'"),
    ("reinforce", {"baseline": True}, TypeError, r"baseline must be .*; got True of type bool"),
    ("reinforce", {"baseline": 1j}, TypeError, r"baseline must be .*; got 1j of type complex"),
    ("reinforce", {"baseline": [0.5]}, TypeError, r"baseline must be .*; got \[0.5\] of type list"),
    ("reinforce", {"tau": 1.0}, ValueError,
     r"'reinforce' got unknown option\(s\) \['tau'\]; allowed options: baseline"),
    ("rloo", {"m": 1}, ValueError, r"m must be an integer >= 2; got 1"),
    ("rloo", {"m": 2.5}, TypeError, r"m must be an integer >= 2; got 2.5 of type float"),
    ("rloo", {"m": "3"}, TypeError, r"m must be an integer >= 2; got '3'"),
    ("muprop", {"tau": 1.0}, ValueError, r"unknown option.*allowed options: none"),
    ("gumbel_softmax", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("gumbel_softmax", {"tau": -1.0}, ValueError, r"tau must be a finite real number > 0; got -1.0"),
    ("gumbel_softmax", {"tau": np.inf}, ValueError, r"tau must be a finite real number > 0; got inf"),
    ("gumbel_softmax", {"tau": np.nan}, ValueError, r"tau must be a finite real number > 0; got nan"),
    ("gumbel_softmax", {"tau": "1"}, TypeError, r"tau must be a finite real number > 0; got '1' of type str"),
    ("gumbel_softmax", {"tau": np.array(0.5 + 0j)}, TypeError, r"tau must hold real \(float64\) numbers.*complex"),
    ("gumbel_softmax", {"tau": [0.5]}, TypeError, r"tau must be a finite real number > 0; got \[0.5\] of type list"),
    ("straight_through", {"tau": True}, TypeError, r"tau must be a finite real number > 0; got True"),
    ("gumbel_rao", {"tau": -np.inf}, ValueError, r"tau must be a finite real number > 0; got -inf"),
    ("gumbel_rao", {"k": 0}, ValueError, r"k must be an integer >= 1; got 0"),
    ("gumbel_rao", {"k": 2.0}, TypeError, r"k must be an integer >= 1; got 2.0 of type float"),
    ("gumbel_rao", {"derivative": "partial"}, ValueError,
     r"derivative must be one of \['identity', 'total'\]; got 'par"),
    ("gumbel_rao", {"derivative": None}, ValueError, r"derivative must be one of .*; got None"),
    ("rebar", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("rebar", {"eta": np.nan}, ValueError,
     r"eta must be a finite float, a finite array of shape \(3,\) or 'optimal'; got n"),
    ("rebar", {"eta": -np.inf}, ValueError, r"eta must be .*; got -inf"),
    ("rebar", {"eta": [1.0, np.nan, 0.0]}, ValueError, r"eta must be .*; got nan at index \(1,\)"),
    ("rebar", {"eta": [1.0, 2.0]}, ValueError,
     r"eta must be a scalar or have the parameter shape \(3,\); got shape \(2"),
    ("rebar", {"eta": "opt"}, ValueError, r"eta must be .*; got 'opt'"),
    ("rebar", {"eta": 1j}, TypeError, r"eta must hold real \(float64\) numbers.*complex"),
    ("rebar", {"eta": np.array([1.0, 0.5 + 1e-9j, 0.0])}, TypeError, r"eta must hold real \(float64\).*complex"),
    ("rebar", {"eta": True}, TypeError, r"eta must be .*; got True"),
    ("rebar", {"eta": None}, TypeError, r"eta must be .*; got None"),
    ("rebar", {"eta": "1.0"}, ValueError, r"eta must be .*; got '1.0'"),
    ("rebar", {"pilot": 1}, ValueError, r"pilot must be an integer >= 2; got 1"),
    ("rebar", {"pilot": 3.0}, TypeError, r"pilot must be an integer >= 2; got 3.0"),
    ("relax", {"surrogate": 3}, ValueError, r"surrogate must be a RelaxSurrogate or None; got 3 of type int"),
    ("indecater", {"m": 0}, ValueError, r"m must be an integer >= 1; got 0"),
    ("indecater", {"m": 1.5}, TypeError, r"m must be an integer >= 1; got 1.5 of type float"),
    ("reinmax", {"tau": 0.0}, ValueError, r"tau must be a finite real number > 0; got 0.0"),
    ("reinmax", {"tau": "1"}, TypeError, r"tau must be a finite real number > 0; got '1' of type str"),
    ("gapped_straight_through", {"tau": -1.0}, ValueError, r"tau must be a finite real number > 0; got -1.0"),
    ("gapped_straight_through", {"gap": -1.0}, ValueError,
     r"gap must be a finite float >= 0 or the string 'p'; got -1.0"),
    ("gapped_straight_through", {"gap": "q"}, ValueError, r"gap must be .*; got 'q'"),
    ("gapped_straight_through", {"gap": True}, TypeError, r"gap must be .*; got True of type bool"),
    ("sum_and_sample", {"k": -1}, ValueError, r"k must be an integer >= 0; got -1"),
    ("sum_and_sample", {"k": 1.5}, TypeError, r"k must be an integer >= 0; got 1.5 of type float"),
    ("unordered_set", {"k": 0}, ValueError, r"k must be an integer >= 1; got 0"),
    ("unordered_set", {"k": 1.5}, TypeError, r"k must be an integer >= 1; got 1.5 of type float"),
    ("unordered_set", {"baseline": "optimal"}, ValueError,
     r"baseline must be one of \('builtin', 'none'\); got 'optimal'"),
    ("arsm", {"tau": 1.0}, ValueError, r"'arsm' got unknown option\(s\) \['tau'\]; allowed options: none"),
    # vimco gets LogMeanExp(f, 2), the objective of its default k
    ("vimco", {"k": 1}, ValueError, r"k must be an integer >= 2; got 1"),
    ("vimco", {"k": 2.0}, TypeError, r"k must be an integer >= 2; got 2.0 of type float"),
    ("vimco", {"k": 3}, ValueError, r"option k = 3 of estimator 'vimco' must equal the objective's number of samples "
                                    r"k = 2 \(pass k=2\)"),
    ("vimco", {"baseline": "harmonic"}, ValueError,
     r"baseline must be 'geometric', 'arithmetic' or None; got 'harmonic'"),
    ("vimco", {"baseline": 1.0}, TypeError, r"baseline must be .*; got 1.0 of type float"),
    ("straight_through_plain", {"backward": "Probs"}, ValueError,
     r"backward must be one of \['probs', 'identity'\]; got 'Probs'"),
    ("straight_through_plain", {"backward": None}, ValueError, r"backward must be one of .*; got None"),
]


def test_bad_options_cover_every_option():
    named = {(name, key) for name, options, _, _ in BAD_OPTIONS for key in options}
    every = {(name, key) for name, spec in ESTIMATORS.items() if name not in ("arm", "disarm", "pathwise")
             for key in spec.defaults}
    assert every <= named


@pytest.mark.parametrize("name, options, error, match", BAD_OPTIONS, ids=str)
def test_bad_options_name_the_option_the_value_and_the_range(name, options, error, match):
    dist, f = discrete_problems()["bernoulli"]
    f = objective_for(name, f)  # the objective of the default options (vimco: a mismatched k is a bad option)
    with pytest.raises(error, match=match):
        refgrad.estimate(name, dist, f, 5, rng=0, **options)


def test_the_catalog_is_in_its_documented_order():
    """ESTIMATORS lists every estimator once, in CATALOG_ORDER (not in the order the modules happen to import)."""
    from refgrad.estimators import CATALOG_ORDER

    assert list(ESTIMATORS) == list(CATALOG_ORDER)
