"""The validation suite end to end: CLI, report and JSON, exit codes, and failure on a wrong formula."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import refgrad
from validation.__main__ import main
from validation.core import run_case
from validation.runner import case_names, load_case

ROOT = Path(__file__).resolve().parents[1]


def test_cli_quick_two_cases_end_to_end(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "validation", "--quick", "--case", "seed001_gaussian", "seed002_mixture",
         "--out", str(out), "--jobs", "2", "--seed", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # progress lines while it runs, and the final verdict
    assert "started  seed001_gaussian" in proc.stdout and "[2/2]" in proc.stdout and "PASSED: 2/2" in proc.stdout
    report = (out / "report.md").read_text()
    assert "## Seed 001" in report or "seed001" in report
    data = json.loads((out / "results.json").read_text())
    assert data["passed"] is True and data["quick"] is True and data["seed"] == 3
    assert [c["name"] for c in data["cases"]] == ["seed001_gaussian", "seed002_mixture"]
    for case in data["cases"]:
        assert case["checks"] and all(c["passed"] for c in case["checks"])
        assert case["settings"]["quick"] is True  # sample sizes are stated
        for fig in case["figures"]:
            assert fig["path"] is None or (out / fig["path"]).is_file()


def test_cli_rejects_unknown_case_and_lists_cases(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--case", "no_such_case", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in case_names():
        assert name in listed


def _wrong_pathwise(dist, f, noise):
    # deliberately wrong: drops the chain-rule factor a = ∂z/∂θ
    z = dist.from_uniforms(noise["u"])
    return refgrad.objectives.evaluate_grad(f, z)


def test_case_fed_a_wrong_formula_fails(tmp_path, monkeypatch):
    case = load_case(case_names()["seed001_gaussian"])
    good = run_case(case, quick=True, seed=0, out_dir=str(tmp_path))
    assert good.passed, [c.name for c in good.checks if not c.passed]
    monkeypatch.setattr(refgrad.ESTIMATORS["pathwise"], "compute", _wrong_pathwise)
    bad = run_case(case, quick=True, seed=0, out_dir=str(tmp_path))
    assert not bad.passed
    assert any(not c.passed for c in bad.checks) or bad.error


def test_exit_status_nonzero_when_a_check_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(refgrad.ESTIMATORS["pathwise"], "compute", _wrong_pathwise)
    # --jobs 1 runs the case in this process, where the wrong formula is installed
    assert main(["--quick", "--case", "seed001_gaussian", "--out", str(tmp_path), "--jobs", "1"]) == 1
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["passed"] is False
    assert "FAIL" in (tmp_path / "report.md").read_text()


def test_report_without_matplotlib_says_figures_were_skipped(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("matplotlib hidden for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["--quick", "--case", "seed001_gaussian", "--out", str(tmp_path), "--jobs", "1"]) == 0
    assert "Figure skipped (matplotlib not installed)" in (tmp_path / "report.md").read_text()
    np.testing.assert_equal(list((tmp_path).glob("figures/*.png")), [])
