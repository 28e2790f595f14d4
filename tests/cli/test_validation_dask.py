"""The validation runner on Dask gives the inline runner's numbers; the calibration case's replication
tasks give the same numbers however they are assigned to workers."""
import io
import json

import numpy as np
import pytest

from validation import runner
from validation.cases import _calibration_tasks as tasks
from validation.core import Context
from validation.runner import load_case

CHEAP = ["gumbel_concrete", "xu_slides_gaussian"]


def _cases(out_dir):
    data = json.loads((out_dir / "results.json").read_text())
    cases = {c["name"]: c for c in data["cases"]}
    for c in cases.values():
        c.pop("seconds")  # wall time: the only field allowed to differ
    return cases


def test_dask_runner_equals_inline(tmp_path):
    distributed = pytest.importorskip("distributed",
                                      reason='dask.distributed is not installed: pip install -e ".[dask]"')
    inline, dask = tmp_path / "inline", tmp_path / "dask"
    _, ok_inline = runner.run(CHEAP, quick=True, out_dir=inline, jobs=1, stream=io.StringIO())
    stream = io.StringIO()
    with runner.dask_executor("local", jobs=2) as executor:
        assert isinstance(executor._client, distributed.Client)
        _, ok_dask = runner.run(CHEAP, quick=True, out_dir=dask, executor=executor, stream=stream)
    out = stream.getvalue()
    assert ok_inline and ok_dask
    a, b = _cases(inline), _cases(dask)
    assert sorted(a) == sorted(CHEAP)
    assert a == b  # every number, table, check and note
    for name in CHEAP:
        assert f"queued   {name}" in out and f"started  {name}" in out


def test_dask_executor_checks_its_arguments():
    with pytest.raises(TypeError, match="scheduler must be a str"):
        with runner.dask_executor(8786):
            pass
    for jobs in (0, 2**31):
        with pytest.raises(ValueError, match=rf"jobs must be an integer in \[1, 1024\] or None; got {jobs}"):
            with runner.dask_executor("local", jobs=jobs):
                pass
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        with runner.dask_executor("tcp://127.0.0.1:1", timeout=0):
            pass


def test_missing_distributed_names_the_extra(monkeypatch, capsys):
    import builtins

    from validation.__main__ import main

    real = builtins.__import__

    def fake(name, *args, **kw):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(SystemExit):
        main(["--scheduler", "local", "--case", "gumbel_concrete"])
    assert 'pip install -e ".[dask]"' in capsys.readouterr().err


def _setting(reps=60, n=200):
    from refgrad.distributions import Bernoulli
    from refgrad.objectives import SquaredDistance

    dist, f = Bernoulli(np.array([0.3])), SquaredDistance(np.array([0.45]))
    ctx = Context(load_case("validation.cases.calibration"), True, 0, ".")
    target = np.array([0.0])
    return [("reinforce", dist, f, {}, n, chunk, target, {"alpha": 0.05}) for chunk in
            tasks.chunks(ctx.seed_sequence("test"), reps)]


def test_chunks_cover_the_replications_with_spawned_seeds():
    parts = tasks.chunks(np.random.SeedSequence(7), 60)
    assert [(s, c) for s, c, _ in parts] == [(0, 25), (25, 25), (50, 10)]
    assert [p[2].spawn_key for p in parts] == [(0,), (1,), (2,)]


def test_replication_tasks_do_not_depend_on_their_assignment():
    """Two assignments of the tasks to two 'workers' (alternating, and reversed halves), each worker running its
    tasks in its own order: the merged result equals the in-order one, bit for bit."""
    settings = _setting()
    in_order = tasks.merge([tasks.unbiasedness_chunk(t) for t in settings])
    for assign in ([0, 1, 0], [1, 1, 0]):
        results = {}
        for worker in (1, 0):  # worker 1 runs first, its tasks last-to-first
            for i in [i for i, w in enumerate(assign) if w == worker][::-1]:
                results[i] = tasks.unbiasedness_chunk(settings[i])
        merged = tasks.merge([results[i] for i in range(len(settings))])
        for key, value in in_order.items():
            np.testing.assert_array_equal(merged[key], value, err_msg=key)
    assert in_order["hotelling"].shape == (60,)
    assert np.unique(in_order["hotelling"]).size > 10  # the tasks draw different estimates


@pytest.mark.slow
def test_calibration_case_on_dask_equals_inline(tmp_path):
    """The whole calibration case (quick; about 15 s inline, 20–30 s on 2 workers) on a LocalCluster, its
    replication tasks spread over the workers, gives the inline numbers."""
    pytest.importorskip("distributed", reason='dask.distributed is not installed: pip install -e ".[dask]"')
    inline, dask = tmp_path / "inline", tmp_path / "dask"
    runner.run(["calibration"], quick=True, out_dir=inline, jobs=1, stream=io.StringIO())
    with runner.dask_executor("local", jobs=2) as executor:
        runner.run(["calibration"], quick=True, out_dir=dask, executor=executor, stream=io.StringIO())
    assert _cases(inline) == _cases(dask)
