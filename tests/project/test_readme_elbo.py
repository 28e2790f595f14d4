"""README "Checking an ELBO from a probabilistic-programming library": the example runs as written,
prints what the README shows, and the ∇ELBO it prints is the finite-difference gradient of the ELBO
computed by enumeration here, without refgrad."""
import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "elbo_example.py"


def _section():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Checking an ELBO from a probabilistic-programming library")
    return text[start:text.index("\n## ", start)]


def _elbo(phi, prior, w, x):
    """E_q[log p(x, b) − log q_φ(b)] over the 2^3 outcomes, written out."""
    total = 0.0
    for b in itertools.product((0.0, 1.0), repeat=3):
        b = np.array(b)
        log_q = float(np.sum(b * -np.logaddexp(0, -phi) + (1 - b) * -np.logaddexp(0, phi)))
        log_p = float(np.sum(b * np.log(prior) + (1 - b) * np.log1p(-prior))
                      - 0.5 * (x - b @ w) ** 2 - 0.5 * np.log(2 * np.pi))
        total += np.exp(log_q) * (log_p - log_q)
    return total


def test_elbo_example_runs_as_written_and_its_gradient_is_the_elbo_gradient():
    pytest.importorskip("numpyro")
    section = _section()
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    code = [b for lang, b in blocks if lang == "python"]
    printed = [b for lang, b in blocks if lang == ""]
    assert len(code) == 1 and len(printed) == 1
    assert code[0] == EXAMPLE.read_text(encoding="utf-8")
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == printed[0]
    lines = out.stdout.splitlines()
    assert lines[1].startswith("PASS") and lines[2].startswith("FAIL (wrong)")
    # the printed ∇ELBO against central differences of the enumerated ELBO (h = 1e-5: error ~1e-10)
    prior, w, x, phi0 = np.array([0.3, 0.6, 0.2]), np.array([1.0, -0.7, 0.5]), 0.4, np.array([0.2, -0.4, 1.0])
    h, fd = 1e-5, np.zeros(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        fd[i] = (_elbo(phi0 + e, prior, w, x) - _elbo(phi0 - e, prior, w, x)) / (2 * h)
    shown = np.array([float(v) for v in re.findall(r"-?\d+\.\d+", lines[0])])
    np.testing.assert_allclose(shown, fd, atol=6e-6)  # printed to 5 decimals
    assert np.abs(fd).min() > 0.1  # a nonzero gradient: Trace_ELBO's mean-zero estimates cannot pass
