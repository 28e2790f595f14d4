"""``python -m benchmarks``: a bad ``--json`` path is refused before any section runs, nothing is written unless
``--json`` is given, ``--help`` is plain text, and the notes under a table read as sentences."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import benchmarks.__main__ as bench  # noqa: E402
from benchmarks import enumeration, estimators  # noqa: E402


def _cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("where, needle", [
    ("missing/bench.json", "does not exist"),
    ("blocker/bench.json", "does not exist"),  # a file where the folder should be
    ("a-folder", "is a folder; name a file"),
    ("", "--json must name a file"),
])
def test_unwritable_json_path_fails_before_any_section(tmp_path, where, needle):
    (tmp_path / "blocker").write_text("")
    (tmp_path / "a-folder").mkdir()
    path = str(tmp_path / where) if where else ""
    proc = _cli("--quick", "--only", "enumeration", "--json", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("usage: python -m benchmarks") and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""  # no machine line, no section ran


@pytest.mark.parametrize("threads", ["0", "-1", str(2**31)])
def test_threads_out_of_range_is_a_usage_error(threads):
    proc = _cli("--quick", "--only", "enumeration", "--threads", threads)
    assert proc.returncode == 2 and "--threads must be in [1, " in proc.stderr and proc.stdout == "", proc.stderr


def test_help_is_plain_text():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "``" not in proc.stdout and ":mod:" not in proc.stdout and "`" not in proc.stdout
    assert "--json PATH" in proc.stdout and "write nothing" in proc.stdout


def test_nothing_is_written_without_json(tmp_path, monkeypatch, capsys):
    """A quick enumeration section (d = 10 only) run from an empty folder leaves it empty, and the repository root
    gets no benchmarks.json."""
    monkeypatch.setitem(bench.QUICK, "sizes", (10,))
    monkeypatch.chdir(tmp_path)
    before = (ROOT / "benchmarks.json").exists()
    out = bench.main(["--quick", "--only", "enumeration"])
    assert [r["d"] for r in out["enumeration"]] == [10]
    assert list(tmp_path.iterdir()) == []
    assert (ROOT / "benchmarks.json").exists() == before
    assert "wrote" not in capsys.readouterr().out
    bench.main(["--quick", "--only", "enumeration", "--json", "b.json"])  # asked: written
    assert (tmp_path / "b.json").is_file()


def test_an_unsupported_pair_has_a_readable_note():
    row = estimators.one("arm", "categorical d=10 K=2", n_start=10, min_seconds=0.0, repeats=1)
    text = bench._notes([row, {"estimator": "rebar", "family": "bernoulli d=1", "torch_note": "torch not installed"}],
                        ("note", "numpy_note", "torch_note"))
    lines = text.splitlines()
    assert lines[0] == ("  arm categorical d=10 K=2: not run: refgrad's arm supports bernoulli variables, "
                        "not categorical")
    assert lines[1] == "  rebar bernoulli d=1: torch: torch not installed"
    assert "note:" not in text and "n/a" not in text


def test_enumeration_rows_are_labelled_by_d():
    assert bench._notes([{"d": 14, "numpy_skipped": "over the memory cap"}], ("numpy_skipped",)) == \
        "  14: numpy_skipped: over the memory cap"
    assert enumeration.numpy_bytes(12) > 0
