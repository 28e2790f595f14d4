"""Gumbel-Rao's fused kernels on the option values ``tests/estimators/test_fused.py`` does not draw.

The harness there runs the golden option sets (the default, and ``k=3,
derivative="total", tau=0.7``); here ``derivative="total"`` with the default
``k = 10`` (the batched path averages the k VJPs with ``mean(axis=1)``) and the
identity derivative with ``k = 1`` and a small ``tau``, on problems with ±inf
logits (frozen categorical rows, deterministic bits).  The fused rows follow the
batched order of operations, so the two paths are compared bit for bit.
"""
import numpy as np
import pytest

import refgrad
from estimator_options import FUSED_EXTRA, option_sets
from refgrad.estimators import _fused
from refgrad.objectives import Linear, SquaredDistance

OPTIONS = option_sets("gumbel_rao", FUSED_EXTRA)


def _problems():
    bits = np.array([0.3, -2.0, 5.0, np.inf, -np.inf, 30.0])
    logits = np.array([[0.5, -1.0, 2.0, 0.1], [1.0, 3.0, -np.inf, -0.5], [np.inf, 0.2, 0.0, np.inf]])
    return [
        ("bernoulli-squared", refgrad.Bernoulli(bits), SquaredDistance(0.45)),
        ("bernoulli-linear", refgrad.Bernoulli(bits), Linear(np.linspace(-1.0, 1.0, 6))),
        ("categorical-squared", refgrad.Categorical(logits), SquaredDistance(np.linspace(0.1, 0.9, 4))),
        ("categorical-linear", refgrad.Categorical(logits), Linear(np.linspace(-1.0, 1.0, 12).reshape(3, 4))),
    ]


@pytest.mark.parametrize("oset", OPTIONS, ids=str)
@pytest.mark.parametrize("label, dist, f", _problems(), ids=lambda x: x if isinstance(x, str) else "")
def test_fused_gumbel_rao_bit_identical(label, dist, f, oset):
    opts = oset.options(dist)
    spec = refgrad.ESTIMATORS["gumbel_rao"]
    assert spec.fused_plan(dist, f, spec.options(dist, **opts), {}) is not None, label
    noise = spec.draw_noise(dist, 500, rng=4, **opts)
    fused = refgrad.estimate("gumbel_rao", dist, f, noise=noise, **opts)
    with _fused.fused_kernels(False):
        batched = refgrad.estimate("gumbel_rao", dist, f, noise=noise, **opts)
    np.testing.assert_array_equal(fused, batched, err_msg=label)
