"""Fused RLOO and MuProp kernels beyond the shapes of ``tests/estimators/test_fused.py``.

``tests/estimators/test_fused.py`` checks every fused estimator on small problems (m = 2, 3;
events of at most 12 entries), where NumPy's sums run left to right.  Here the
kernels' sums must follow NumPy's pairwise order: RLOO with m ≥ 8 samples (the
sum over samples) and MuProp with events of more than 128 entries (the baseline's
sum over the event, split in halves).  The fused estimates must equal the batched
ones bit for bit.
"""
import numpy as np
import pytest

import refgrad
from estimator_checks import batched_estimate
from refgrad.estimators.kernels.score import pairwise_sum
from refgrad.objectives import Linear, SquaredDistance


def test_pairwise_sum_is_numpys_sum():
    """Bit for bit ``np.add.reduce`` of a contiguous run, for short, unrolled and split lengths (seed 1)."""
    rng = np.random.default_rng(1)
    for n in list(range(0, 300)) + [1000, 1023, 4097, 20_000]:
        x = rng.normal(size=n + 3) * 10.0 ** rng.uniform(-8, 8, size=n + 3)
        assert pairwise_sum(x, 3, n) == np.add.reduce(x[3:]), n


def _problems():
    rng = np.random.default_rng(7)
    bern = refgrad.Bernoulli(3.0 * rng.normal(size=200))
    cat = refgrad.Categorical(3.0 * rng.normal(size=(30, 5)))
    return [
        (bern, SquaredDistance(0.45)),
        (bern, Linear(rng.normal(size=200))),
        (cat, SquaredDistance(np.linspace(0.1, 0.9, 5))),
        (cat, Linear(rng.normal(size=(30, 5)))),
    ]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("name, opts", [("rloo", {"m": 9}), ("rloo", {"m": 20}), ("muprop", {})])
def test_fused_bit_identical_on_long_sums(name, opts, case):
    dist, f = _problems()[case]
    spec = refgrad.ESTIMATORS[name]
    assert spec.fused_plan(dist, f, spec.options(dist, **opts), {}) is not None
    noise = spec.draw_noise(dist, 200, rng=3, **opts)
    fused = refgrad.estimate(name, dist, f, noise=noise, **opts)
    np.testing.assert_array_equal(fused, batched_estimate(name, dist, f, noise, **opts))
