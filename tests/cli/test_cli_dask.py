"""``python -m validation --scheduler tcp://...`` on a real multi-process Dask cluster started as a user starts one:
``dask scheduler`` and ``dask worker`` as separate processes in a folder outside the checkout, with nothing but the
installed refgrad importable there (no ``validation`` on their path).  The run must pass, print the "started" and
progress lines that came from the remote worker, and put the worker's figure into the report folder.

About 15-25 s on 2 cores (process start-up dominates); every wait has a timeout and every process is stopped.
"""
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAST_CASE = "gumbel_concrete"  # about 0.3 s of work, one figure


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outside_env():
    """The environment of a process started outside the checkout: no PYTHONPATH entry reaches it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _wait_for_port(port, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the scheduler exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no scheduler on port {port} after {seconds} s")


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # dask's CLIs close cleanly on SIGINT
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and one worker process, started in a temporary folder outside the checkout."""
    pytest.importorskip("distributed", reason='dask.distributed is not installed: pip install -e ".[dask]"')
    home = tmp_path_factory.mktemp("cluster")
    env = _outside_env()
    check = subprocess.run([sys.executable, "-c", "import validation"], cwd=home, env=env, capture_output=True,
                           timeout=60)
    assert check.returncode != 0, "validation is importable outside the checkout: the test would prove nothing"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        with open(home / "scheduler.log", "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--no-dashboard"], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_port(port, procs[0], 30)
        with open(home / "worker.log", "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(home / "worker-space")],
                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield address, home
    finally:
        for proc in procs[::-1]:
            _stop(proc)


def test_validation_on_a_separately_started_cluster(cluster, tmp_path):
    address, home = cluster
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    out = client_dir / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "validation", "--quick", "--case", FAST_CASE, "--scheduler", address,
         "--out", "report", "--progress-every", "0", "--connect-timeout", "30"],
        cwd=client_dir, env=dict(_outside_env(), PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120)
    logs = "\n".join((home / f).read_text()[-3000:] for f in ("scheduler.log", "worker.log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    out_text = proc.stdout
    assert f"queued   {FAST_CASE}" in out_text
    assert f"started  {FAST_CASE}" in out_text  # sent by the remote worker
    assert re.search(rf"^  {FAST_CASE}: \S.* \d+/\d+, \d+ s elapsed", out_text, re.M), out_text  # progress lines
    assert "PASSED: 1/1" in out_text
    assert (out / "report.md").is_file() and (out / "results.json").is_file()
    figures = list((out / "figures").glob(f"{FAST_CASE}-*.png"))
    if importlib.util.find_spec("matplotlib") is not None:  # figures need the plot extra (absent in CI's tests)
        assert figures and all(f.stat().st_size > 1000 for f in figures)  # written here from the worker's bytes
    else:
        assert not figures
    assert not (home / "report").exists() and not (home / "worker-space" / "report").exists()


def test_a_second_upload_replaces_the_first_on_a_long_lived_worker(cluster, tmp_path):
    """Two uploads of the package whose gumbel_concrete module differs (a marker): after each, the worker imports
    that upload's case module, not the one it imported before (the upload itself reloads only the package)."""
    import shutil

    import distributed

    from validation import runner

    address, _ = cluster

    def title():  # runs on the worker (pickled by value: a local function)
        import importlib

        return importlib.import_module("validation.cases.gumbel_concrete").UPLOAD_MARK

    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(1, timeout=30)
        seen = []
        for version in ("first", "second"):
            copy = tmp_path / version / "validation"
            shutil.copytree(ROOT / "validation", copy, ignore=shutil.ignore_patterns("__pycache__"))
            case = copy / "cases" / "gumbel_concrete.py"
            case.write_text(case.read_text() + f"\nUPLOAD_MARK = {version!r}\n")
            runner._upload_package(client, root=copy)
            seen.append(set(client.run(title).values()))
    assert seen == [{"first"}, {"second"}]
