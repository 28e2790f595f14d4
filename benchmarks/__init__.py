"""Side-by-side performance measurements of refgrad: ``python -m benchmarks``.

Sections (``--only``):

* ``estimators`` (:mod:`benchmarks.estimators`): estimates per second of
  ``refgrad.estimate`` for reinforce, rloo, muprop, arm, disarm, gumbel_softmax,
  straight_through, gumbel_rao, rebar and relax on Bernoulli d ∈ {1, 100} and
  Categorical d = 10, K ∈ {2, 10} (SquaredDistance objective), against a vectorised
  NumPy implementation (:mod:`benchmarks.numpy_impl`), PyTorch CPU autograd
  (:mod:`benchmarks.torch_impl`) on the same uniforms -- each first checked to agree
  with refgrad to 1e-12 -- and the noise floor (:mod:`benchmarks.floor`);
* ``enumeration`` (:mod:`benchmarks.enumeration`): ``exact.expectation`` and
  ``exact.gradient`` time and peak memory for Bernoulli d = 10 … 22 against a
  vectorised NumPy enumeration;
* ``compile`` (:mod:`benchmarks.compile_time`): ``import refgrad`` and first / second
  calls in fresh processes, Numba cache warm and cold.

Ratios are meaningful only from one run on a quiet machine; nothing here is a test
assertion on time.  The correctness of the NumPy and torch versions is tested in
``tests/cli/test_benchmarks.py``.
"""
