import os

from hypothesis import HealthCheck, settings

# Deterministic profile for CI: same examples on every run, no deadline (numba compiles lazily).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _import_project_modules():
    """Import every module of refgrad and validation before any test runs.

    Hypothesis mixes literal constants found in the project's imported modules into its draws, so
    which modules happen to be imported when a test runs (which depends on test order, and under
    pytest-xdist on which worker got which test) would change the examples of a derandomized run.
    Importing them all up front makes every test see the same constants in any order; a module
    whose optional framework is missing is skipped.
    """
    import importlib
    import pkgutil

    import refgrad
    import validation

    for pkg in (refgrad, validation):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass


_import_project_modules()
