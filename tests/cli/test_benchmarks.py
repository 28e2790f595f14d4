"""The benchmark's own implementations are correct: they equal refgrad on the same uniforms.

Deterministic checks (seeded noise, no statistics).  A broken NumPy implementation is
detected (``test_broken_numpy_implementation_is_caught``).
"""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import cases, enumeration, numpy_impl, torch_impl  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from refgrad import exact  # noqa: E402

SMALL = {"bernoulli": ("bernoulli", 3, None), "categorical": ("categorical", 2, 3)}
def _small(name, fam, seed=3):
    family, d, K = SMALL[fam]
    return cases.Problem(name, family, d, K, seed=seed)


ALL_PAIRS = [(name, fam) for name in cases.ESTIMATOR_NAMES for fam in SMALL]
#: the estimator/family pairs refgrad implements (ARM and DisARM are defined for bits only)
PAIRS = [(name, fam) for name, fam in ALL_PAIRS if _small(name, fam).supported]


def test_only_the_bit_estimators_lack_a_categorical_version():
    assert sorted(set(ALL_PAIRS) - set(PAIRS)) == [("arm", "categorical"), ("disarm", "categorical")]


def _compare(impl, name, fam, **extra):
    p = _small(name, fam)
    p.options.update(extra)
    noise = p.draw(64, np.random.default_rng(11))
    return cases.agreement(p.refgrad(noise), impl.estimate(name, p.logits, p.target, noise, **p.options))


@pytest.mark.parametrize("name,fam", PAIRS)
def test_numpy_implementation_equals_refgrad(name, fam):
    assert _compare(numpy_impl, name, fam) <= cases.TOLERANCE


@pytest.mark.parametrize("name,fam", [(n, f) for n, f in PAIRS if n in torch_impl.IMPLEMENTATIONS])
def test_torch_implementation_equals_refgrad(name, fam):
    pytest.importorskip("torch")
    assert _compare(torch_impl, name, fam) <= cases.TOLERANCE


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_torch_gumbel_rao_total_derivative_equals_refgrad(fam):
    """The option the benchmark leaves at its default: z̃ differentiated through the conditioning."""
    pytest.importorskip("torch")
    assert _compare(torch_impl, "gumbel_rao", fam, derivative="total") <= cases.TOLERANCE


def test_broken_numpy_implementation_is_caught(monkeypatch):
    """The agreement check fails for a NumPy REBAR whose conditional ignores its φ-dependence."""
    original = numpy_impl._conditional

    def no_conditioning_derivative(logits, b, v):
        zt, _ = original(logits, b, v)
        return zt, lambda c: c  # ∂z̃/∂φ = I: the classic bias
    monkeypatch.setattr(numpy_impl, "_conditional", no_conditioning_derivative)
    assert _compare(numpy_impl, "rebar", "bernoulli") > 1e-3
    assert _compare(numpy_impl, "rebar", "categorical") > 1e-3


def test_categorical_problem_has_a_nonzero_gradient():
    """A scalar target makes f constant on one-hot b; the benchmark's targets must not."""
    p = _small("reinforce", "categorical")
    assert np.max(np.abs(exact.gradient(p.dist, p.objective))) > 1e-3


def test_numpy_enumeration_equals_exact():
    dist, f = enumeration.problem(8)
    ref_e = exact.expectation(dist, f)
    ref_g = exact.gradient(dist, f)
    assert abs(enumeration.numpy_expectation(dist.logits) - ref_e) <= 1e-13 * abs(ref_e)
    assert np.max(np.abs(enumeration.numpy_gradient(dist.logits) - ref_g)) <= 1e-11 * np.max(np.abs(ref_g))


def test_command_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(enumeration, "NUMPY_MEMORY_CAP", enumeration.numpy_bytes(12))  # d = 14 is skipped
    monkeypatch.setitem(__import__("benchmarks.__main__").__main__.QUICK, "sizes", (10, 14))
    path = tmp_path / "bench.json"
    main(["--quick", "--only", "enumeration", "--json", str(path)])
    data = json.loads(path.read_text())
    assert set(data) == {"machine", "settings", "enumeration"}
    for key in ("cpu_count", "numba_threads", "versions", "date", "command"):
        assert key in data["machine"]
    rows = data["enumeration"]
    assert [r["d"] for r in rows] == [10, 14]
    assert rows[0]["refgrad_gradient_s"] > 0 and rows[0]["numpy_gradient_s"] > 0
    assert "numpy_skipped" in rows[1] and "numpy_gradient_s" not in rows[1]
    assert "rg grad s" in capsys.readouterr().out
