"""Fused kernels of ARM, DisARM, Gumbel-Softmax and straight-through: bit-identical to the batched path.

``tests/estimators/test_fused.py`` checks every fused kernel against the batched path bit for bit;
these kernels call the same scalar helpers in the same order, so here the two are
compared bit for bit, on fixed problems with large and infinite logits and on
uniforms placed on the antithetic thresholds and next to ½ and 1.
"""
import numpy as np
import pytest

import refgrad
from estimator_checks import batched_estimate
from refgrad.objectives import Linear, SquaredDistance, Table

BERNOULLI_LOGITS = np.array([0.3, -1.2, 30.0, -30.0, np.inf, -np.inf, 40.0, 0.0])
CATEGORICAL_LOGITS = np.array(
    [[0.2, -0.7, 1.5, 0.0], [np.inf, 0.3, -np.inf, 1.0], [-np.inf, 2.0, -1.0, 35.0], [np.inf, np.inf, 0.0, -2.0]]
)

CASES = [
    ("arm", "bernoulli", {}),
    ("disarm", "bernoulli", {}),
    ("gumbel_softmax", "bernoulli", {}),
    ("gumbel_softmax", "bernoulli", {"tau": 0.3}),
    ("gumbel_softmax", "categorical", {}),
    ("gumbel_softmax", "categorical", {"tau": 0.3}),
    ("straight_through", "bernoulli", {}),
    ("straight_through", "bernoulli", {"tau": 0.3}),
    ("straight_through", "categorical", {}),
    ("straight_through", "categorical", {"tau": 0.3}),
]


def _dist(family):
    return refgrad.Bernoulli(BERNOULLI_LOGITS) if family == "bernoulli" else refgrad.Categorical(CATEGORICAL_LOGITS)


def _objectives(dist):
    shape = tuple(dist.event_shape)
    target = np.linspace(-0.4, 1.3, int(np.prod(shape))).reshape(shape)
    K = 2 if dist.family == "bernoulli" else dist.K
    table = Table(np.random.default_rng(3).normal(size=(K,) * dist.d))
    return [SquaredDistance(target), Linear(np.cos(np.arange(int(np.prod(shape)))).reshape(shape)), table]


@pytest.mark.parametrize("name, family, opts", CASES, ids=[f"{n}/{f}/{o}" for n, f, o in CASES])
def test_fused_bit_identical_to_batched(name, family, opts):
    dist = _dist(family)
    spec = refgrad.ESTIMATORS[name]
    noise = spec.draw_noise(dist, 400, rng=2024, **opts)
    for f in _objectives(dist):
        assert spec.fused_plan(dist, f, spec.options(dist, **opts), {}) is not None
        fused = refgrad.estimate(name, dist, f, noise=noise, **opts)
        np.testing.assert_array_equal(fused, batched_estimate(name, dist, f, noise, **opts), err_msg=f"{name} {f!r}")


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_antithetic_uniforms_on_thresholds(name):
    """Uniforms exactly on σ(∓ℓ), at ½ ± 2⁻⁵³ and next to 0 and 1: the fused pair takes the batched side."""
    logits = np.array([0.7, -2.0, 37.5, -40.0, 0.0, 5.0])
    dist = refgrad.Bernoulli(logits)
    lo, hi = 1.0 / (1.0 + np.exp(logits)), 1.0 / (1.0 + np.exp(-logits))
    special = [0.5, 0.5 - 2.0**-53, 0.5 + 2.0**-53, 2.0**-53, 1.0 - 2.0**-53]
    rows = [lo, hi, np.nextafter(lo, 1.0), np.nextafter(hi, 0.0)] + [np.full(logits.size, x) for x in special]
    u = np.clip(np.array(rows), 2.0**-53, 1.0 - 2.0**-53)
    f = SquaredDistance(np.linspace(0.1, 0.9, logits.size))
    fused = refgrad.estimate(name, dist, f, noise={"u": u})
    np.testing.assert_array_equal(fused, batched_estimate(name, dist, f, {"u": u}))
    assert np.any(fused != 0.0)


@pytest.mark.parametrize("name", ["gumbel_softmax", "straight_through"])
def test_gaussian_threshold_takes_batched_path(name):
    dist = refgrad.GaussianThreshold([0.2, -0.4])
    spec = refgrad.ESTIMATORS[name]
    assert spec.fused_plan(dist, SquaredDistance(0.4), spec.options(dist), {}) is None
