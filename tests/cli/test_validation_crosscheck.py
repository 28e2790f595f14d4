"""The cross-check cases of the validation suite: skip path, findings table, controls."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from validation.core import FINDING_COLUMNS, Context, run_case
from validation.report import escape_cell, markdown_table
from validation.runner import case_names, load_case

CASES = ("crosscheck_torch", "crosscheck_jax")
ROOT = Path(__file__).resolve().parents[2]


def _case(name):
    return load_case(case_names()[name])


HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module!r} + "."):
            raise ModuleNotFoundError("No module named " + repr(name) + " (hidden for this test)", name=name)
sys.meta_path.insert(0, Hide())
from validation.__main__ import main
sys.exit(main(["--quick", "--case", {name!r}, "--out", {out!r}, "--jobs", "1"]))
"""


@pytest.mark.parametrize("name, module, hint", [("crosscheck_torch", "torch", "pip install torch==2.13.0"),
                                                 ("crosscheck_jax", "jax", "pip install jax")])
def test_missing_framework_is_skipped_with_reason_and_the_run_succeeds(name, module, hint, tmp_path):
    code = HIDE.format(module=module, name=name, out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "1 skipped" in proc.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    reason = data["skipped"][name]
    assert f"{module} is not installed" in reason and hint in reason and data["passed"] is True
    (case,) = data["cases"]
    assert case["skipped"] is True and case["status"] == "SKIPPED" and case["skip_reason"] == reason
    assert case["passed"] is True and case["error"] is None and case["checks"] == []
    report = (tmp_path / "report.md").read_text()
    assert "| SKIPPED |" in report and reason in report and "no checks were recorded" not in report


def test_an_error_is_not_a_skip(tmp_path):
    from validation.core import Case

    def run(ctx):
        raise RuntimeError("boom")

    res = run_case(Case("x", "x", "s", "d", run), quick=True, seed=0, out_dir=str(tmp_path))
    assert not res.skipped and not res.passed and res.status == "FAIL"


def test_findings_table_is_escaped_and_never_fails_the_case(tmp_path):
    from validation.core import Case
    from validation.report import write_report

    def run(ctx):
        ctx.check("control", True)
        ctx.finding(framework="torch", version="2.13.0", function="a|b", checked="x | y", verdict="FAIL (wrong)",
                    key_numbers="p = 0 | n = 3", smallest_failing_input="logit +inf")

    res = run_case(Case("fx", "Findings", "s", "d", run), quick=True, seed=0, out_dir=str(tmp_path))
    assert res.passed and len(res.findings) == 1
    write_report([res], tmp_path, quick=True, seed=0, seconds=1.0)
    report = (tmp_path / "report.md").read_text()
    assert "## Findings about other frameworks" in report
    header = "| " + " | ".join(FINDING_COLUMNS) + " |"
    assert header in report and "| torch | 2.13.0 | a\\|b | x \\| y | FAIL (wrong) | p = 0 \\| n = 3 |" in report
    for line in report.splitlines():  # every table row has as many unescaped cells as its header
        if line.startswith("| [fx](#fx) |"):
            assert line.replace("\\|", "").count("|") == len(FINDING_COLUMNS) + 2
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["findings"][0]["case"] == "fx" and data["findings"][0]["function"] == "a|b"
    with pytest.raises(ValueError, match="missing"):
        Context(Case("y", "y", "s", "d", run), True, 0, tmp_path).finding(framework="torch")
    assert escape_cell("a\nb|c") == "a b\\|c" and "\\|" in markdown_table(["a|b"], [["c"]])


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """Both cases run quick, with part (c) of check_relaxed_sampler (the exact marginal CDFs, a line
    integral per sample point and about 70 % of the torch case's 12 CPU s) turned off.

    That part has its own false-alarm and power tests in test_crosscheck_samplers.py; the case's
    controls still have to tell refgrad's samplers from deliberately wrong ones through the argmax
    frequencies and the Logistic law of the tempered log-ratios."""
    from refgrad import crosscheck as cc

    full = cc.check_relaxed_sampler

    def without_marginals(*args, **kwargs):
        kwargs.setdefault("marginals", False)
        return full(*args, **kwargs)

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cc, "check_relaxed_sampler", without_marginals)
        for name, module in zip(CASES, ("torch", "jax")):
            pytest.importorskip(module)
            res = run_case(_case(name), quick=True, seed=0, out_dir=str(tmp_path_factory.mktemp(name)))
            assert res.error is None, res.error  # a missing or broken verdict function fails here, never skips
            out[name] = res
    return out


@pytest.mark.parametrize("name", CASES)
def test_case_runs_quick_with_findings_and_passing_controls(quick_results, name):
    res = quick_results[name]
    assert res.error is None, res.error
    controls = [c for c in res.checks if c.name.startswith("control:")]
    assert controls and all(c.passed for c in res.checks), [(c.name, c.detail) for c in res.checks if not c.passed]
    assert res.passed and len(res.findings) >= 5
    keys = [c.replace(" ", "_") for c in FINDING_COLUMNS]
    for f in res.findings:
        assert all(f[k] not in (None, "") for k in keys[:5]), f
    assert any(f["verdict"].startswith(("FAIL", "reproduced")) for f in res.findings)


def test_torch_findings_reproduce_the_user_reports(quick_results):
    rows = quick_results["crosscheck_torch"].findings
    shape = [f for f in rows if f["function"] == "distributions.ExpRelaxedCategorical.log_prob"
             and "batched temperatures" in f["checked"]]
    assert shape and shape[0]["verdict"].startswith("reproduced") and "(3, 3)" in shape[0]["key_numbers"]
    tau0 = [f for f in rows if "'NaN at τ = 0'" in f["checked"]]
    assert tau0 and all(f["verdict"] == "reproduced" and f["smallest_failing_input"] == "τ = 0" for f in tau0)


def test_jax_categorical_with_two_plus_inf_logits_is_a_finding(quick_results):
    rows = [f for f in quick_results["crosscheck_jax"].findings if f["function"] == "random.categorical"
            and f["checked"].startswith("exact pmf")]
    assert rows and all(f["verdict"].startswith("FAIL") for f in rows)
    assert all("two +inf" in f["smallest_failing_input"] for f in rows)


def test_a_broken_verdict_function_fails_the_control(tmp_path, monkeypatch):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from refgrad import crosscheck as cc
    from refgrad.crosscheck import jax as adapter
    from validation.cases import crosscheck_jax as case_module

    def always_agrees(samples, logits, **kwargs):
        return cc.Verdict("check_categorical_sampler", True, "agrees", "none", None, 1.0, 1e-3, len(samples))

    was_x64 = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)  # as the case's run() does: float64 arrays on request
    try:
        ctx = Context(_case("crosscheck_jax"), True, 0, tmp_path)
        monkeypatch.setattr(cc, "check_categorical_sampler", always_agrees)
        case_module._categorical(ctx, jax, jnp, cc, adapter, jax.__version__)
        (control,) = [c for c in ctx.result.checks if c.name.startswith("control:")]
        assert not control.passed and not ctx.result.passed
        assert all(f["verdict"] == "agrees" for f in ctx.result.findings)  # the broken check also hides jax's bug
        monkeypatch.undo()
        ctx = Context(_case("crosscheck_jax"), True, 0, tmp_path)
        case_module._categorical(ctx, jax, jnp, cc, adapter, jax.__version__)
        assert ctx.result.passed and np.all([c.passed for c in ctx.result.checks])
    finally:
        jax.config.update("jax_enable_x64", was_x64)
