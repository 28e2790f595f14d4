"""The validation suite end to end: CLI, report and JSON, exit codes, and failure on a wrong formula."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import refgrad
from validation.__main__ import main
from validation.core import run_case
from validation.runner import case_names, load_case

ROOT = Path(__file__).resolve().parents[2]


def test_cli_quick_two_cases_end_to_end(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "validation", "--quick", "--case", "xu_slides_gaussian", "rebar_report_mixture",
         "--out", str(out), "--jobs", "2", "--seed", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # progress lines while it runs, and the final verdict
    assert "started  xu_slides_gaussian" in proc.stdout and "[2/2]" in proc.stdout and "PASSED: 2/2" in proc.stdout
    report = (out / "report.md").read_text()
    assert "Seed 0" not in report and '<a id="xu_slides_gaussian"></a>' in report
    data = json.loads((out / "results.json").read_text())
    assert data["passed"] is True and data["quick"] is True and data["seed"] == 3
    assert [c["name"] for c in data["cases"]] == ["xu_slides_gaussian", "rebar_report_mixture"]
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
    case = load_case(case_names()["xu_slides_gaussian"])
    good = run_case(case, quick=True, seed=0, out_dir=str(tmp_path))
    assert good.passed, [c.name for c in good.checks if not c.passed]
    monkeypatch.setattr(refgrad.ESTIMATORS["pathwise"], "compute", _wrong_pathwise)
    bad = run_case(case, quick=True, seed=0, out_dir=str(tmp_path))
    assert not bad.passed
    assert any(not c.passed for c in bad.checks) or bad.error


def test_exit_status_nonzero_when_a_check_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(refgrad.ESTIMATORS["pathwise"], "compute", _wrong_pathwise)
    # --jobs 1 runs the case in this process, where the wrong formula is installed
    assert main(["--quick", "--case", "xu_slides_gaussian", "--out", str(tmp_path), "--jobs", "1"]) == 1
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
    assert main(["--quick", "--case", "xu_slides_gaussian", "--out", str(tmp_path), "--jobs", "1"]) == 0
    assert "Figure skipped (matplotlib not installed)" in (tmp_path / "report.md").read_text()
    np.testing.assert_equal(list((tmp_path).glob("figures/*.png")), [])


# -- progress: "started" when a case starts, progress lines from inside cases -----------------------

FAKE = '''
import json, time
from validation.core import Case

def run(ctx):
    t0 = time.time()
    for _ in ctx.progress(range(STEPS), label="stage"):
        time.sleep(0.12)
    ctx.check("ran", True)
    with open(OUT, "w") as fh:
        json.dump([t0, time.time()], fh)

STEPS = {steps}
OUT = {out!r}
CASE = Case({name!r}, {name!r}, "test", "a case that takes about a second", run)
'''


class _Clock:
    """A stream that stamps each line with the time it was written."""

    def __init__(self):
        self.lines, self.buf = [], ""

    def write(self, text):
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.lines.append((time.time(), line))

    def flush(self):
        pass

    def first(self, pattern):
        hits = [(t, line) for t, line in self.lines if re.search(pattern, line)]
        assert hits, f"no line matching {pattern!r} in:\n" + "\n".join(line for _, line in self.lines)
        return hits[0][0]


@pytest.fixture
def fake_cases(tmp_path, monkeypatch):
    import validation.runner as runner

    names = ["fake_a", "fake_b", "fake_c"]
    for i, name in enumerate(names):
        (tmp_path / f"{name}_mod.py").write_text(FAKE.format(steps=6 + i, out=str(tmp_path / f"{name}.json"),
                                                             name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(runner, "CASE_MODULES", [f"{n}_mod" for n in names])
    yield tmp_path, names
    for name in names:  # the next test writes its modules anew
        sys.modules.pop(f"{name}_mod", None)


def _check_started_lines(clock, tmp_path, names):
    for name in names:
        t0, t1 = json.loads((tmp_path / f"{name}.json").read_text())
        started = clock.first(rf"^\s+started\s+{name}$")
        assert t0 - 0.05 <= started <= t1, (name, t0, started, t1)  # printed while the case runs, not before
        assert started < clock.first(rf"\] {name}\s+PASS")
        assert re.search(rf"{name}: stage \d/\d, \d+ s elapsed, ~\d+ s left",
                         "\n".join(line for _, line in clock.lines)), name


@pytest.mark.parametrize("jobs", [1, 2])
def test_started_lines_and_progress_tell_the_truth(fake_cases, jobs):
    from validation.runner import run

    tmp_path, names = fake_cases
    clock = _Clock()
    _, passed = run(names, quick=True, out_dir=str(tmp_path / "out"), jobs=jobs, stream=clock, progress_interval=0.1)
    assert passed
    _check_started_lines(clock, tmp_path, names)


def test_a_callers_executor_prints_queued_then_started(fake_cases):
    from concurrent.futures import ThreadPoolExecutor

    from validation.runner import run

    tmp_path, names = fake_cases
    clock = _Clock()
    with ThreadPoolExecutor(2) as pool:
        _, passed = run(names, quick=True, out_dir=str(tmp_path / "out"), executor=pool, stream=clock,
                        progress_interval=0.1)
    assert passed
    assert clock.first(r"queued\s+fake_c") < clock.first(r"started\s+fake_c")
    _check_started_lines(clock, tmp_path, names)


def test_bars_on_a_terminal(fake_cases):
    pytest.importorskip("tqdm")
    import io

    from validation.runner import run

    tmp_path, names = fake_cases
    buf = io.StringIO()
    _, passed = run(names[:1], quick=True, out_dir=str(tmp_path / "out"), jobs=1, stream=buf, bars=True)
    text = buf.getvalue()
    assert passed and "fake_a: stage" in text and "started  fake_a" in text and "[1/1] fake_a" in text
    with pytest.raises(ValueError, match="progress_interval must be a number >= 0"):
        run(names[:1], out_dir=str(tmp_path / "out"), progress_interval=-1)


def test_warnings_of_a_case_go_to_the_report_not_the_terminal(tmp_path, capsys):
    import warnings

    from validation.core import Case, run_case
    from validation.report import write_report

    def run(ctx):
        for _ in range(3):
            warnings.warn("size | not guaranteed", UserWarning, stacklevel=1)
        ctx.check("ran", True)

    res = run_case(Case("warns", "Warns", "a test", "raises a warning", run), True, 0, str(tmp_path))
    captured = capsys.readouterr()
    assert "not guaranteed" not in captured.err + captured.out
    assert res.warnings == [{"category": "UserWarning", "where": res.warnings[0]["where"],
                             "message": "size | not guaranteed", "count": 3}]
    write_report([res], tmp_path, quick=True, seed=0, seconds=0.0)
    report = (tmp_path / "report.md").read_text()
    assert "| UserWarning | " in report and "| 3 | size \\| not guaranteed |" in report


def test_longest_cases_start_first_and_every_case_has_a_typical_time():
    from validation.runner import TYPICAL_SECONDS, case_names, start_order

    assert set(TYPICAL_SECONDS) == set(case_names())
    order = start_order(list(case_names()), quick=False)
    assert [TYPICAL_SECONDS[n][1] for n in order] == sorted((TYPICAL_SECONDS[n][1] for n in order), reverse=True)
    assert start_order(["toy", "new_a", "crosscheck_torch", "new_b"], quick=True) == [
        "new_a", "new_b", "crosscheck_torch", "toy"]
