import numpy as np
import refgrad
from refgrad import Bernoulli, exact, testing
from refgrad.objectives import SquaredDistance

dist = Bernoulli(np.array([0.3]))             # one bit with logit ℓ = 0.3
f = SquaredDistance(np.array([0.499]))        # the REBAR/RELAX toy f(b) = (b − t)²
print(exact.gradient(dist, f))                # ∂E/∂ℓ = θ(1−θ)(1 − 2t), exact
for name, opts in [("reinforce", {}), ("disarm", {}), ("rebar", {"eta": "optimal"}), ("gumbel_softmax", {"tau": 0.5})]:
    m = exact.moments(name, dist, f, **opts)  # the estimator's own exact mean and variance
    print(f"{name:15s} mean {m.mean[0]:+.6f}  var/cost {m.variance_per_cost[0]:.3e}  ({m.method})")
testing.assert_unbiased("disarm", dist, f)    # α = 1e-3, fixed seed; raises with a table if biased
