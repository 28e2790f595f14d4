"""The project is clean under ruff, with the configuration in pyproject.toml ([tool.ruff])."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The whole repository is checked (refgrad/, tests/, validation/, benchmarks/, examples/), with the per-file
# settings of pyproject.toml.
CLEAN_PATHS = ["."]


def ruff_check(paths):
    """Run ``python -m ruff check`` on ``paths`` from the repository root: (exit status, output)."""
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *paths]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (it is in the test extra: pip install -e '.[test]')")
def test_ruff_reports_nothing():
    status, output = ruff_check(CLEAN_PATHS)
    assert status == 0, f"ruff check reported problems (fix them, or `python -m ruff check --fix`):\n{output}"
