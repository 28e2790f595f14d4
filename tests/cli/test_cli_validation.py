"""``python -m validation`` refuses bad arguments and output paths before any work: a usage message and exit
status 2 (argparse's convention), never a traceback, and no case run.  Each run is a subprocess that fails
before work (a second or two each)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, cwd=ROOT, timeout=60):
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-m", "validation", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc, time.monotonic() - t0


def _refused(proc, *needles):
    """Exit status 2, argparse's usage line, the reason, no traceback and no case started."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("usage: python -m validation"), proc.stderr
    assert "Traceback" not in proc.stderr and "Error:" not in proc.stderr.split("error:", 1)[0]
    assert "refgrad validation:" not in proc.stdout and "started" not in proc.stdout  # no work began
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_out_pointing_at_a_file_is_refused(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("keep me")
    proc, _ = _cli("--quick", "--case", "gumbel_concrete", "--out", str(target))
    _refused(proc, "--out", "is a file, not a folder")
    assert target.read_text() == "keep me"


def test_out_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    proc, _ = _cli("--quick", "--case", "gumbel_concrete", "--out", str(blocker / "sub" / "report"))
    _refused(proc, "--out", "cannot create or write this folder")


def test_empty_out_is_refused_and_writes_nothing_into_the_current_folder(tmp_path):
    proc, _ = _cli("--quick", "--case", "gumbel_concrete", "--out", "", cwd=tmp_path)
    _refused(proc, "--out must name a folder", "empty string")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("jobs", ["0", "-3", str(2**31), str(10**30)])
def test_jobs_out_of_range_is_refused(tmp_path, jobs):
    proc, _ = _cli("--quick", "--case", "gumbel_concrete", "--out", str(tmp_path / "r"), "--jobs", jobs)
    _refused(proc, "--jobs must be an integer in [1, 1024]", f"got {jobs}")
    assert not (tmp_path / "r").exists()  # nothing created


def test_jobs_run_helper_refuses_out_of_range_values(tmp_path):
    from validation.runner import run

    for jobs in (0, 2**31, True, 1.5):
        with pytest.raises(ValueError, match=r"jobs must be an integer in \[1, 1024\]"):
            run(["gumbel_concrete"], out_dir=tmp_path, jobs=jobs)
    with pytest.raises(ValueError, match="out_dir must name a folder"):
        run(["gumbel_concrete"], out_dir="", jobs=1)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_usage_error_within_the_timeout(tmp_path):
    pytest.importorskip("distributed", reason='dask.distributed is not installed: pip install -e ".[dask]"')
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    proc, seconds = _cli("--quick", "--case", "gumbel_concrete", "--out", str(tmp_path / "r"), "--scheduler",
                         address, "--connect-timeout", "1")
    _refused(proc, f"--scheduler {address!r}: no Dask scheduler answered within 1 s", "dask scheduler")
    assert seconds < 25  # not Dask's 30 s default, and no case ran
    assert not (tmp_path / "r").exists()  # nothing created


@pytest.mark.parametrize("args, needle", [
    (["--scheduler", ""], "--scheduler must be a scheduler address"),
    (["--scheduler", "local", "--connect-timeout", "0"], "--connect-timeout must be in (0, 3600]"),
    (["--case", "no_such_case"], "unknown case(s) ['no_such_case']"),
])
def test_other_bad_arguments_are_refused(tmp_path, args, needle):
    proc, _ = _cli("--quick", "--out", str(tmp_path / "r"), *args)
    _refused(proc, needle)


def test_a_folder_named_refgrad_hiding_the_install_is_explained(tmp_path):
    """A clone named ``refgrad`` in the current folder (no ``__init__.py`` at its top) is a namespace package that
    hides the editable install: ``from refgrad import Categorical`` fails with '(unknown location)'.  The command
    says what happened and what to do (usage error, exit status 2).  ``validation`` is reached through a link."""
    (tmp_path / "refgrad" / "docs").mkdir(parents=True)  # the clone's top level: no __init__.py
    site = tmp_path / "site"
    site.mkdir()
    (site / "validation").symlink_to(ROOT / "validation", target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(site))
    probe = subprocess.run([sys.executable, "-c", "from refgrad import Categorical"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert "unknown location" in probe.stderr  # the trap is real here
    proc = subprocess.run([sys.executable, "-m", "validation", "--list"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"finds the folder(s) {tmp_path / 'refgrad'}, without an __init__.py" in proc.stderr
    assert "hides the installed package" in proc.stderr and "Run from inside the clone" in proc.stderr


def test_a_case_named_twice_runs_once(tmp_path):
    import io
    import json

    from validation.runner import run

    results, passed = run(["gumbel_concrete", "gumbel_concrete"], quick=True, out_dir=tmp_path, jobs=1,
                          stream=io.StringIO())
    assert passed and [r.name for r in results] == ["gumbel_concrete"]
    assert [c["name"] for c in json.loads((tmp_path / "results.json").read_text())["cases"]] == ["gumbel_concrete"]
