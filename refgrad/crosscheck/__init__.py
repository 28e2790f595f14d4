"""Cross-check another framework's samplers, densities and gradient estimators against refgrad.

Framework-neutral: every function takes plain arrays (anything :func:`numpy.asarray`
accepts, float32 or float64) and returns a :class:`Verdict`.  The adapters that turn
PyTorch tensors or JAX arrays into arrays, convert noise between refgrad's uniforms and
each framework's draws, and collect per-sample gradients live in
:mod:`refgrad.crosscheck.torch`, :mod:`refgrad.crosscheck.jax` and
:mod:`refgrad.crosscheck.tensorflow` (tensors and variables, stateless-seed noise); they import their
framework when imported themselves, never before (install with the ``crosscheck`` extra).

* :func:`check_bernoulli_sampler`, :func:`check_categorical_sampler` -- goodness of fit of
  discrete samples against the exact pmf;
* :func:`check_relaxed_sampler` -- Concrete / Binary Concrete samples against the exact law;
* :func:`check_log_prob` -- log-probabilities and log-densities against refgrad's float64 ones;
* :func:`check_estimator` -- unbiasedness (or the exact bias) and the exact variance of
  per-sample gradient estimates;
* :func:`check_same_estimates` -- sample-by-sample agreement with a refgrad estimator fed
  the same uniforms.
"""
from ._densities import check_log_prob
from ._estimators import check_estimator, check_same_estimates
from ._samplers import check_bernoulli_sampler, check_categorical_sampler, check_relaxed_sampler
from ._verdict import DEFAULT_ALPHA, DIAGNOSES, Verdict

__all__ = [
    "DEFAULT_ALPHA",
    "DIAGNOSES",
    "Verdict",
    "check_bernoulli_sampler",
    "check_categorical_sampler",
    "check_relaxed_sampler",
    "check_log_prob",
    "check_estimator",
    "check_same_estimates",
]
