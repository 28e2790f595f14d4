"""A refusal for too much enumeration advises what answers: method='monte_carlo', not a larger limit.

A larger ``limit=`` enumerates every tuple with no time guard (rloo with m = 4 on ten bits: 1.1e12
tuples); the Monte Carlo moments answer the same question with an interval in seconds.  Each case
here is refused with that advice, and following the advice answers."""
import numpy as np
import pytest

from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, Product
from refgrad.objectives import FunctionObjective, SquaredDistance

ADVICE = r"use method='monte_carlo' \(an estimate with its interval, in seconds\)"


def _sin_sum(b):
    return np.sin(1.3 * b.reshape(b.shape[0], -1).sum(axis=1))


CASES = {
    "rloo m=4 on ten bits": ("rloo", Bernoulli(np.linspace(-1, 1, 10)), FunctionObjective(_sin_sum), {"m": 4}),
    "arsm": ("arsm", Categorical(np.zeros((6, 4))), FunctionObjective(_sin_sum), {}),
    "unordered_set": ("unordered_set", Categorical(np.zeros((4, 6))), SquaredDistance(np.full((4, 6), 0.2)),
                      {"k": 3}),
    "rloo on a Product": ("rloo", Product(Bernoulli(np.zeros(6)), Categorical(np.zeros((1, 3)))),
                          SquaredDistance(np.full(9, 0.3)), {"m": 3}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal_advises_monte_carlo_and_the_advice_answers(case):
    name, dist, f, opts = CASES[case]
    with pytest.raises(ValueError, match=ADVICE) as info:
        exact.moments(name, dist, f, limit=1000, **opts)
    assert "no time guard" in str(info.value)
    mc = exact.moments(name, dist, f, method="monte_carlo", samples=30720, limit=1000, **opts)
    assert np.all(np.isfinite(mc.mean)) and mc.method == "monte_carlo"


def test_monte_carlo_refuses_a_level():
    dist, f = Bernoulli(np.array([0.3, -0.8])), SquaredDistance(np.array([0.45, 0.45]))
    with pytest.raises(ValueError, match="level applies to method='quadrature'.*got level=3"):
        exact.moments("reinforce", dist, f, method="monte_carlo", level=3)


def test_arsm_exact_moments_are_refused_beyond_their_accurate_spread():
    """Within EXACT_SPREAD_LIMIT the exact mean is the exact gradient to 1e-10 relative in every
    coordinate; beyond it (an AssertionError at a spread of 720, 4e0 relative error at 40) it is refused."""
    from refgrad.estimators.arsm import EXACT_SPREAD_LIMIT

    f = FunctionObjective(lambda z: np.sin(z[:, 0, :] @ np.array([0.1, 0.7, -0.3])))
    inside = Categorical(np.array([[EXACT_SPREAD_LIMIT / 2, 0.0, -EXACT_SPREAD_LIMIT / 2]]))
    np.testing.assert_allclose(exact.moments("arsm", inside, f).mean, exact.gradient(inside, f), rtol=1e-10)
    for s in (40.0, 720.0):
        with pytest.raises(ValueError, match=r"EXACT_SPREAD_LIMIT.*spread " + f"{s:g}" + r".*method='monte_carlo'"):
            exact.moments("arsm", Categorical(np.array([[s / 2, 0.0, -s / 2]])), f)
    with pytest.raises(ValueError, match="EXACT_SPREAD_LIMIT"):
        exact.moments("arsm", Bernoulli(np.array([30.0, -1.0])), FunctionObjective(lambda z: np.sin(z @ [0.7, -0.3])))
