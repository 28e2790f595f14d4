"""Fused RELAX kernels on the surrogates that ``tests/estimators/test_fused.py`` does not draw.

``relax_plan`` runs a surrogate with all network weights 0 (``RelaxSurrogate.zero``,
the default ``surrogate=None``) through the REBAR kernel plus ``c_r = +0.0``, and any
other surrogate (e.g. ``scale=0``: ``w₂ = 0`` but random hidden weights, the start of
``fit_relax``) through the network kernel.  Both must equal the batched path bit for
bit, signs of zero included, at non-default η and τ and at infinite logits.
"""
import numpy as np
import pytest

import refgrad
from refgrad.estimators import RelaxSurrogate, _fused
from refgrad.objectives import Linear


def _dists():
    return [
        (refgrad.Bernoulli([0.3, -np.inf, 2.0, np.inf, -25.0, -800.0]), Linear([1.0, -1.0, 0.5, -2.0, 1.5, -0.5])),
        (refgrad.Categorical([[0.3, -1.0, np.inf, np.inf], [0.0, -np.inf, 1.5, -0.2]]),
         Linear(np.linspace(-1, 1, 8).reshape(2, 4))),
    ]


def _both(dist, f, noise, **opts):
    fused = refgrad.estimate("relax", dist, f, noise=noise, **opts)
    with _fused.fused_kernels(False):
        batched = refgrad.estimate("relax", dist, f, noise=noise, **opts)
    return fused, batched


@pytest.mark.parametrize("dist, f", _dists(), ids=["bernoulli", "categorical"])
@pytest.mark.parametrize("make", ["zero", "scale0"])
@pytest.mark.parametrize("eta", [0.7, -0.7])  # η < 0: REBAR gives −0.0 where a = −0.0 and c = +0.0, RELAX +0.0
def test_relax_special_surrogates_bit_identical(dist, f, make, eta):
    shape = tuple(dist.event_shape)
    if make == "zero":
        sur = RelaxSurrogate.zero(shape, hidden=4, eta=eta, tau=0.3)
    else:
        sur = RelaxSurrogate(shape, hidden=4, eta=eta, tau=0.3, rng=3, scale=0.0)
    spec = refgrad.ESTIMATORS["relax"]
    plan = spec.fused_plan(dist, f, spec.options(dist, surrogate=sur), {})
    assert plan.kernel.__name__ == ("_rebar_" if make == "zero" else "_relax_") + dist.family
    noise = spec.draw_noise(dist, 300, rng=4, surrogate=sur)
    fused, batched = _both(dist, f, noise, surrogate=sur)
    np.testing.assert_array_equal(fused, batched)
    np.testing.assert_array_equal(np.signbit(fused), np.signbit(batched))
    rebar = refgrad.estimate("rebar", dist, f, noise=noise, eta=eta, tau=0.3)
    np.testing.assert_array_equal(fused, rebar)  # r ≡ 0: RELAX is REBAR(η, τ)
