"""Every docstring example of the framework adapters runs as written (no example is skipped)."""
import doctest
import importlib

import pytest

MODULES = ["refgrad.crosscheck.torch", "refgrad.crosscheck.jax", "refgrad.crosscheck.tensorflow"]
FRAMEWORK = {"refgrad.crosscheck.torch": "torch", "refgrad.crosscheck.jax": "jax",
             "refgrad.crosscheck.tensorflow": "tensorflow"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_written(name):
    pytest.importorskip(FRAMEWORK[name])
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]
    assert tests, f"{name} has no docstring example"
    skipped = [f"{t.name} line {t.lineno + e.lineno}" for t in tests for e in t.examples
               if e.options.get(doctest.SKIP)]
    assert not skipped, f"examples marked +SKIP do not run: {skipped}"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output above)"
