"""The validation case third_party: skip path, table structure, verdict-vs-truth bookkeeping, the truths' formulas."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from validation.cases import third_party as tp
from validation.core import run_case

ROOT = Path(__file__).resolve().parents[2]
PRESENT, ABSENT = tp._available()

HIDE_ALL = """
import sys, json
PEERS = {peers!r}
class Hide:
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in PEERS):
            raise ModuleNotFoundError("No module named " + repr(name) + " (hidden for this test)", name=name)
sys.meta_path.insert(0, Hide())
from validation.cases import third_party as tp
from validation.core import run_case
res = run_case(tp.CASE, quick=True, seed=0, out_dir={out!r})
print(json.dumps(res.to_json()))
"""


def test_absent_libraries_skip_with_the_reason_and_the_install_line(tmp_path):
    peers = sorted({m.split(".")[0] for _, ms in tp.LIBRARIES.values()
                    for m in ((ms,) if isinstance(ms, str) else ms)})
    code = HIDE_ALL.format(peers=peers, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["status"] == "SKIPPED" and res["passed"] is True and res["error"] is None and res["checks"] == []
    assert "none of the peer libraries is installed" in res["skip_reason"] and "[peers]" in res["skip_reason"]
    (libs,) = res["tables"]
    assert [r[0] for r in libs["rows"]] == list(tp.LIBRARIES)
    assert all(r[2].startswith("absent: ") and "hidden for this test" in r[2] for r in libs["rows"])


def test_case_structure():
    assert tp.CASE.name == "third_party" and callable(tp.CASE.run)
    assert set(k for k, _ in tp.STAGES) == set(tp.LIBRARIES)
    assert tp.COLUMNS == ["library", "version", "checked", "refgrad verdict", "independent truth", "agree"]


def test_truth_binary_concrete_density_is_normalised_and_has_the_right_limits():
    mp = pytest.importorskip("mpmath")
    for tau, ell in ((0.5, 0.7), (2.0, -1.3)):
        # in the logit variable y (x = σ(y), dx = σ(y)σ(−y) dy); the mass beyond |y| = 35 is below 1e-7 here
        dens = lambda y: mp.e ** tp._mp_binary_concrete_logpdf(float(1 / (1 + mp.e ** -y)), ell, tau) \
            / (mp.e ** (y / 2) + mp.e ** (-y / 2)) ** 2  # noqa: E731
        total = mp.quad(dens, [-35, -5, 0, 5, 35])
        assert abs(float(total) - 1) < 1e-6, (tau, ell, total)
    assert tp._mp_binary_concrete_logpdf(0.0, 0.7, 0.5) == math.inf
    assert tp._mp_binary_concrete_logpdf(1.0, 0.7, 2.0) == -math.inf
    assert tp._mp_binary_concrete_logpdf(0.0, 0.7, 1.0) == pytest.approx(-0.7, abs=1e-15)
    assert tp._mp_binary_concrete_logpdf(1.0, 0.7, 1.0) == pytest.approx(0.7, abs=1e-15)
    # near the boundary the closed form approaches the limit (tau = 1: p(x) -> e^{-l} as x -> 0)
    assert tp._mp_binary_concrete_logpdf(1e-12, 0.7, 1.0) == pytest.approx(-0.7, abs=1e-9)


def test_truth_helpers_enumeration():
    phi = np.array([0.3, -1.0])
    table = np.array([[0.5, -1.0], [2.0, 0.25]])
    s = tp._sigmoid(phi)

    def expectation(x):
        q = tp._sigmoid(x)
        return sum(table[b] * np.prod(np.where(np.array(b) == 1, q, 1 - q)) for b in np.ndindex(2, 2))

    assert np.allclose(tp._bits_gradient(phi, table), tp._fd(expectation, phi), rtol=1e-8, atol=1e-10)
    G = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    assert set(tp._by_outcome(G, np.array([0, 1, 0]))) == {(0,), (1,)}
    with pytest.raises(ValueError, match="different estimates"):
        tp._by_outcome(G, np.array([0, 0, 0]))
    mean, var, mass = tp._moments_over({(0,): np.array([1.0]), (1,): np.array([3.0])},
                                       lambda k: [0.25, 0.75][k[0]])
    assert mass == 1.0 and mean[0] == 2.5 and var[0] == pytest.approx(0.75)
    assert s.shape == (2,)


@pytest.fixture(autouse=True, scope="module")
def _jax_x64_restored():
    """The case turns jax_enable_x64 on for the whole process: put it back for the test modules run after this one."""
    try:
        import jax
    except ImportError:
        yield
        return
    was = bool(jax.config.jax_enable_x64)
    yield
    jax.config.update("jax_enable_x64", was)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    if not PRESENT:
        pytest.skip(f"no peer library installed ({ABSENT})")
    return run_case(tp.CASE, quick=True, seed=0, out_dir=str(tmp_path_factory.mktemp("third_party")))


def test_quick_run_records_one_check_per_row_and_findings_for_wrong_libraries(quick_result):
    res = quick_result
    assert res.error is None, res.error
    assert not res.skipped
    verdicts = res.tables[-1]
    assert verdicts.columns == tp.COLUMNS and len(verdicts.rows) >= len(PRESENT)
    assert {r[0] for r in verdicts.rows} == set(PRESENT)
    checks = [c for c in res.checks if c.name.startswith("verdict = truth: ")]
    assert len(checks) == len(verdicts.rows)
    for row, check in zip(verdicts.rows, checks):
        assert check.passed == (row[-1] == "yes"), (row, check)
        assert row[4].startswith(("correct: ", "WRONG: "))
    assert all(c.passed for c in res.checks if not c.name.startswith("verdict = truth: ")), \
        [c.detail for c in res.checks if not c.passed and not c.name.startswith("verdict = truth: ")]
    wrong = [r for r in verdicts.rows if r[4].startswith("WRONG: ")]
    assert len(res.findings) == len(wrong)
    assert res.numbers["misverdicts"] == sum(not c.passed for c in checks)
    if "torchreinforce" in PRESENT:  # its loss is an outer product; normalised, every estimate is 0
        rows = [r for r in verdicts.rows if r[0] == "torchreinforce"]
        assert len(rows) == 2 and all(r[4].startswith("WRONG: ") for r in rows)
        assert "[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]" in rows[0][4]
    if "tfp" in PRESENT:  # NaN gradient a third of the time at tau = 0.01 in float32
        (nan_row,) = [r for r in verdicts.rows if r[0] == "tfp" and "float32, τ = 0.01" in r[2] and "gradient" in r[2]]
        frac = float(nan_row[4].split("NaN rows ")[1].split()[0])
        assert nan_row[4].startswith("WRONG: ") and 0.3 < frac < 0.4
    if "numpyro" in PRESENT:
        enum = [r for r in verdicts.rows if r[0] == "numpyro" and "TraceEnum" in r[2]]
        assert [r[4].split(":")[0] for r in enum] == ["correct", "WRONG"]


def _only(monkeypatch, keys):
    monkeypatch.setattr(tp, "STAGES", tuple(s for s in tp.STAGES if s[0] in keys))


@pytest.mark.parametrize("always", [True, False])
def test_a_broken_verdict_function_is_a_misverdict(tmp_path, monkeypatch, always):
    """check_estimator replaced by one that always passes (fails): the wrong (correct) library's row disagrees."""
    keys = [k for k in ("pydrobert", "torchreinforce") if k in PRESENT]
    if not keys:
        pytest.skip("needs pydrobert-pytorch or torchreinforce")
    from refgrad import crosscheck as cc

    def fixed(samples, *args, **kwargs):
        return cc.Verdict("check_estimator", always, "agrees" if always else "wrong", "none", None, 1.0, 1e-3,
                          len(samples))

    monkeypatch.setattr(cc, "check_estimator", fixed)
    _only(monkeypatch, keys)
    res = run_case(tp.CASE, quick=True, seed=0, out_dir=str(tmp_path))
    assert res.error is None, res.error
    rows = res.tables[-1].rows
    for r in rows:
        wrong = r[4].startswith("WRONG: ")
        assert (r[-1] == "yes") == (wrong != always), r
    assert not res.passed
