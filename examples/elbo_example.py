import jax, jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as nd
from numpyro.infer import Trace_ELBO, TraceGraph_ELBO
from refgrad import Bernoulli, crosscheck, exact
from refgrad.objectives import FunctionObjective

prior, w, x, phi0 = np.array([0.3, 0.6, 0.2]), np.array([1.0, -0.7, 0.5]), 0.4, np.array([0.2, -0.4, 1.0])
def model():                                    # b_i ~ Bernoulli(prior_i), x | b ~ Normal(w·b, 1)
    b = numpyro.sample("b", nd.Bernoulli(probs=jnp.asarray(prior)).to_event(1))
    numpyro.sample("x", nd.Normal(jnp.dot(jnp.asarray(w), b), 1.0), obs=x)
def guide(phi):                                 # q_φ(b) = Π_i Bernoulli(b_i; σ(φ_i))
    numpyro.sample("b", nd.Bernoulli(logits=phi).to_event(1))
def f(b):                                       # log p(x, b) − log q_φ0(b), φ0 fixed, for a batch of bits (n, 3)
    log_p = b @ np.log(prior) + (1 - b) @ np.log1p(-prior) - 0.5 * (x - b @ w) ** 2 - 0.5 * np.log(2 * np.pi)
    return log_p + b @ np.logaddexp(0, -phi0) + (1 - b) @ np.logaddexp(0, phi0)
def grads(elbo, n=4000):                        # one ∇ELBO estimate per key: minus the loss's gradient
    one = lambda key: -jax.grad(lambda p: elbo.loss(key, {}, model, lambda: guide(p)))(jnp.asarray(phi0))
    return np.asarray(jax.vmap(one)(jax.random.split(jax.random.PRNGKey(0), n)))
dist, obj = Bernoulli(phi0), FunctionObjective(f, relaxed_ok=False)
print("exact ∇ELBO at φ0:", np.round(exact.gradient(dist, obj), 5))
print(crosscheck.check_estimator(grads(TraceGraph_ELBO()), dist, obj, name="reinforce").summary())
print(crosscheck.check_estimator(grads(Trace_ELBO()), dist, obj).summary())
