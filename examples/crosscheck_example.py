import numpy as np, torch
from refgrad import Bernoulli, crosscheck
from refgrad.crosscheck.torch import per_sample_gradients, to_numpy
from refgrad.objectives import SquaredDistance

torch.manual_seed(0)
logits = np.array([[3.0, 0.0, -4.0], [50.0, 0.0, -np.inf]])        # a rare, an extreme and an impossible category
draws = torch.distributions.Categorical(logits=torch.tensor(logits)).sample((100_000,))
print(crosscheck.check_categorical_sampler(to_numpy(draws), logits).summary())
ell = np.array([np.inf, -np.inf])                                    # log q(b) at infinite logits: 0 and 0
lp = torch.distributions.Bernoulli(logits=torch.tensor(ell)).log_prob(torch.tensor([1.0, 0.0]))
print(crosscheck.check_log_prob(to_numpy(lp), [1, 0], ell, family="bernoulli").summary())
theta = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)   # REINFORCE written the usual way
q = torch.distributions.Bernoulli(logits=theta)
b = q.sample((2000,))
grads = per_sample_gradients(lambda: ((b - 0.45) ** 2).sum(1) * q.log_prob(b).sum(1), theta)
print(crosscheck.check_estimator(grads, Bernoulli([0.3, -1.0]), SquaredDistance([0.45, 0.45]), name="reinforce").summary())
