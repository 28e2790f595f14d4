"""The vectorised density rules of the gumbel_concrete case, against refgrad's exact Concrete CDFs, and a
broken density must fail the case's checks."""
import numpy as np
import pytest

from refgrad import relaxations as rx
from refgrad.relaxations import concrete_marginal_cdf
from validation.cases import _quad_concrete as qc

EDGES = np.linspace(0.0, 1.0, 11)


def _exact_bin_masses(logits, tau):
    """P(edges[i] <= x_1 <= edges[i+1]) from the closed-form / exact marginal CDF of x_1."""
    K = len(logits)
    x = np.zeros((EDGES.size, K))
    x[:, 0] = EDGES
    cdf = concrete_marginal_cdf(x, np.broadcast_to(logits, (EDGES.size, K)), tau)[:, 0]
    return np.diff(cdf)


@pytest.mark.parametrize("logits, tau", [([0.3, -0.4], 0.05), ([0.3, -0.4], 0.5), ([1.0, 0.0], 2.0),
                                         ([0.2, -0.5, 0.4], 0.1), ([0.2, -0.5, 0.4], 0.7)])
def test_bin_masses_equal_the_exact_cdf(logits, tau):
    masses, evaluations = qc.concrete_bin_masses(np.array(logits), tau, EDGES, level=6)
    exact = _exact_bin_masses(np.array(logits), tau)
    assert evaluations > 0
    np.testing.assert_allclose(masses, exact, rtol=1e-9, atol=1e-12)
    assert abs(masses.sum() - 1.0) < 1e-12


def test_a_wrong_density_fails_the_rule_and_the_case(monkeypatch, tmp_path):
    from validation.core import run_case
    from validation.runner import load_case

    good = qc.concrete_mass(np.array([0.2, -0.5, 0.4]), 0.5, 0.0, 1.0, 6)[0]
    real = rx.concrete_log_density
    # a density off by a constant factor 1.001 (a wrong normalising constant)
    monkeypatch.setattr(rx, "concrete_log_density", lambda *a, **k: real(*a, **k) + np.log(1.001))
    bad = qc.concrete_mass(np.array([0.2, -0.5, 0.4]), 0.5, 0.0, 1.0, 6)[0]
    assert abs(good - 1) < 1e-12 and abs(bad - 1.001) < 1e-9
    res = run_case(load_case("validation.cases.gumbel_concrete"), True, 0, str(tmp_path))
    failed = [c.name for c in res.checks if not c.passed]
    assert any("integrates to 1" in name for name in failed), failed
