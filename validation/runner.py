"""Run validation cases through any concurrent.futures.Executor and write the report.

Progress: a case is announced ("started NAME") when it starts running, by the worker
itself; :meth:`validation.core.Context.progress` events travel from the worker to this
process (directly with ``jobs=1``, through a multiprocessing queue given to the pool's
initializer with the default process pool, through a manager queue with an executor the
caller passes) and are shown by :mod:`validation.progress`-style displays defined here:
tqdm bars on a terminal, plain throttled lines otherwise.

On a Dask cluster (:func:`dask_executor`, ``python -m validation --scheduler ADDRESS|local``) the cases
are the cluster's tasks, and a case's own replication tasks (:meth:`validation.core.Context.map`) are
submitted from its worker to the same cluster.  The workers need refgrad installed, not this checkout:
:func:`dask_executor` uploads the ``validation`` package to them as a zip (``Client.upload_file``, which
also reaches workers that join later), so every case module, helper and result class is importable by
name there exactly as here.  A worker runs its case in a scratch folder and returns the figures' bytes
with the result; this process writes them into the report folder.  Progress messages travel as the
scheduler's events (``Worker.log_event`` / ``Client.subscribe_topic``), so "started" and progress lines
arrive from any worker that can reach the scheduler.
"""
import contextlib
import hashlib
import importlib
import io
import json
import multiprocessing
import os
import pickle
import queue as _queue
import sys
import tempfile
import time
import uuid
import zipfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from .core import run_case
from .report import write_report

__all__ = ["CASE_MODULES", "load_case", "run", "case_names", "dask_executor", "PlainDisplay", "BarDisplay",
           "DASK_INSTALL", "MAX_JOBS", "SchedulerUnreachable", "package_zip"]

#: What to install for ``--scheduler``.
DASK_INSTALL = 'pip install -e ".[dask]"'  # dask[distributed]

#: Case modules in report order.
CASE_MODULES = [
    "validation.cases.toy",
    "validation.cases.temperature",
    "validation.cases.gumbel_concrete",
    "validation.cases.xu_slides_gaussian",
    "validation.cases.rebar_report_mixture",
    "validation.cases.forum_experts",
    "validation.cases.sobolev_slides_variance",
    "validation.cases.optimisation",
    "validation.cases.calibration",
    "validation.cases.crosscheck_torch",
    "validation.cases.crosscheck_jax",
    "validation.cases.field_since_2019",
    "validation.cases.third_party",
]

#: Most worker processes ``jobs`` may ask for (a process pool or a LocalCluster never needs more than one per
#: case; far larger values overflowed a C int inside multiprocessing).
MAX_JOBS = 1024

#: A worker sends at most one "step" message per case and stage this often (seconds).
SEND_EVERY = 0.2


def load_case(module_name):
    return importlib.import_module(module_name).CASE


def case_names():
    """name -> module for every available case."""
    out = {}
    for mod in CASE_MODULES:
        try:
            out[load_case(mod).name] = mod
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    return out


# -- worker side ---------------------------------------------------------------------------------

_WORKER_QUEUE = None  # set in pool workers by _init_worker


def _init_worker(q, threads=None):
    """Worker set-up: the progress queue, and the worker's share of the cores for refgrad's threaded kernels.

    The cases already run in ``jobs`` processes; each uses ``cpu_count // jobs`` Numba threads (1 on 2 cores
    with 2 jobs), so the fused kernels' threads do not oversubscribe the machine (which made the calibration
    case 8 % slower).  Results do not depend on the thread count.
    """
    global _WORKER_QUEUE
    _WORKER_QUEUE = q
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


_COMPILE_TIMER = None  # numba's compile timer in this process, installed by _compile_seconds()


def _compile_seconds():
    """Seconds this process has spent compiling with Numba so far.

    Cache loads are excluded: they do not fire ``numba:compile``.  A "step" message carries it, so that the
    display can tell a cold cache's compilation from the steady rate.
    """
    global _COMPILE_TIMER
    if _COMPILE_TIMER is None:
        try:
            from numba.core import event
        except ImportError:  # pragma: no cover - numba is a dependency of refgrad
            return 0.0
        _COMPILE_TIMER = event.TimingListener()
        event.register("numba:compile", _COMPILE_TIMER)
    return float(_COMPILE_TIMER.duration) if _COMPILE_TIMER.done else 0.0


class _Sender:
    """Context reporter in a worker: forwards progress events as tuples, steps throttled to SEND_EVERY.

    A "step" message's value is ``[steps done, seconds this process has compiled with Numba]``.
    """

    def __init__(self, sink, name):
        self.sink, self.name, self.done, self.last = sink, name, {}, {}

    def put(self, *msg):
        try:
            self.sink.put(msg)
        except Exception:  # noqa: BLE001 - a lost progress message must never fail the case
            pass

    def begin(self, case, label, total):
        self.done[label], self.last[label] = 0, time.monotonic()
        self.put("begin", self.name, label, [total, _compile_seconds()])

    def step(self, case, label):
        self.done[label] = self.done.get(label, 0) + 1
        now = time.monotonic()
        if now - self.last.get(label, 0.0) >= SEND_EVERY:
            self.last[label] = now
            self.put("step", self.name, label, [self.done[label], _compile_seconds()])

    def end(self, case, label):
        self.put("end", self.name, label, self.done.pop(label, 0))


class _PortableSink:
    """A manager queue proxy that may travel to a machine which cannot reach the manager.

    Unpickling it there gives a sink that drops messages instead of failing the task (a progress message is
    never essential).
    """

    def __init__(self, q):
        self.q = q

    def __getstate__(self):
        return {"blob": pickle.dumps(self.q)}

    def __setstate__(self, state):
        try:
            self.q = pickle.loads(state["blob"])
        except Exception:  # noqa: BLE001 - manager unreachable from this worker: no progress, the case runs
            self.q = None

    def put(self, msg):
        if self.q is not None:
            self.q.put(msg)


class _EventSink:
    """Progress messages from a Dask worker, logged as the scheduler's events of ``topic``.

    The client subscribes to them: they reach the client wherever the worker runs, as long as it reaches the
    scheduler.
    """

    def __init__(self, topic):
        self.topic = topic

    def put(self, msg):
        from distributed import get_worker

        get_worker().log_event(self.topic, list(msg))


def _dask_mapper():
    """In a Dask worker: a ``Context.map`` mapper submitting the tasks to the worker's cluster.

    The worker leaves its thread slot while it waits.  Elsewhere ``None`` (the builtin map).
    """
    if "distributed" not in sys.modules:  # a Dask worker has imported it; elsewhere do not pay its import
        return None
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return None

    def mapper(fn, tasks):
        with worker_client() as client:
            for fut in client.map(fn, tasks, pure=False):
                yield fut.result()

    return mapper


def _run_module(module_name, quick, seed, out_dir, sink=None):
    # worker entry point, picklable by name; ``sink`` (or the pool's queue) receives progress tuples
    sink = sink if sink is not None else _WORKER_QUEUE
    case = load_case(module_name)
    sender = _Sender(sink, case.name) if sink is not None else None
    if sender is not None:
        sender.put("start", case.name, "", None)
    return run_case(case, quick, seed, out_dir, reporter=sender, mapper=_dask_mapper())


def _run_module_shipped(module_name, quick, seed, sink=None):
    """Dask entry point: run the case in a scratch folder of the worker and return ``(result, files)``.

    ``files`` are the files it wrote (figures) as ``{relative path: bytes}``, for the client to write into its
    report folder (a remote worker cannot write there).
    """
    with tempfile.TemporaryDirectory(prefix="refgrad-validation-") as scratch:
        result = _run_module(module_name, quick, seed, scratch, sink)
        root = Path(scratch)
        files = {f.relative_to(root).as_posix(): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}
    return result, files


def _write_shipped(out_dir, files):
    """Write a shipped case's files under ``out_dir`` (relative paths inside it only)."""
    root = Path(out_dir).resolve()
    for rel, data in files.items():
        target = (root / rel).resolve()
        if root not in target.parents:
            raise ValueError(f"a worker returned a file outside the report folder: {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class _InlineExecutor:
    """A trivial executor running each call when submitted (``--jobs 1``)."""

    def __init__(self):
        from concurrent.futures import Future

        self._Future = Future

    def submit(self, fn, *args):
        fut = self._Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- main-process displays -------------------------------------------------------------------------

def _seconds(s):
    return f"{s:.0f} s" if s < 600 else f"{s / 60:.1f} min"


class PlainDisplay:
    """Plain lines for pipes, CI logs and tests.

    "started NAME", at most one progress line per running case every ``interval`` seconds, and the result
    lines.

    The remaining-time estimate is printed only once it can be trusted: a stage's first steps on a cold Numba
    cache include compilation, and later steps may compile again (a new estimator, a new shape), which made a
    plain rate extrapolation 2-5 times optimistic.  So no estimate is given while the worker compiled since the
    previous line of that stage (the line says so instead), and otherwise the estimate extrapolates the slower
    of the stage's average rate and its rate since that line.  ``clock`` (default ``time.monotonic``) is for tests.
    """

    def __init__(self, stream, interval=10.0, clock=time.monotonic):
        self.stream, self.interval, self.clock = stream, float(interval), clock
        self.stages, self.last = {}, {}

    def write(self, text):
        print(text, file=self.stream, flush=True)

    def start(self, name):
        self.last[name] = self.clock()
        self.write(f"  started  {name}")

    def begin(self, name, label, total, compile_s=None):
        now = self.clock()
        # [label, total, done, t0, compile at t0, (time, done, compile) at the previous line]
        self.stages.setdefault(name, []).append([label, total, 0, now, compile_s, (now, 0, compile_s)])

    def _estimate(self, stage, now, compile_s):
        """The remaining-time text of a stage, or why there is none yet."""
        label, total, done, t0, c0, (t_prev, done_prev, c_prev) = stage
        if not total or not 0 < done < total:
            return ""
        if compile_s is not None and c_prev is not None and compile_s > c_prev:
            return ", compiling (cold Numba cache): no estimate yet"
        rates = [(now - t0) / done]  # seconds per step, whole stage
        if done > done_prev:
            rates.append((now - t_prev) / (done - done_prev))  # since the previous line
        return f", ~{_seconds(max(rates) * (total - done))} left"

    def step(self, name, label, done, compile_s=None):
        stack = self.stages.get(name)
        if not stack:
            return
        stage = stack[-1]
        stage[2] = done
        now = self.clock()
        if now - self.last.get(name, 0.0) < self.interval:
            return
        self.last[name] = now
        label, total, done, t0 = stage[:4]
        elapsed = now - t0
        if total:
            eta = self._estimate(stage, now, compile_s)
            self.write(f"  {name}: {label} {done}/{total}, {_seconds(elapsed)} elapsed{eta}")
        else:
            self.write(f"  {name}: {label} {done} steps, {_seconds(elapsed)} elapsed")
        stage[5] = (now, done, compile_s)

    def end(self, name, label, done):
        stack = self.stages.get(name)
        if stack:
            stack.pop()

    def finish(self, name):
        self.stages.pop(name, None)

    def close(self):
        pass


class BarDisplay(PlainDisplay):
    """One tqdm bar per running case (its current stage, elapsed time and remaining-time estimate)."""

    def __init__(self, stream, tqdm):
        super().__init__(stream, interval=0.0)
        self.tqdm, self.bars, self.pos, self.free = tqdm, {}, {}, []

    def write(self, text):
        self.tqdm.write(text, file=self.stream)

    def _bar(self, name, label, total):
        bar = self.bars.get(name)
        if bar is None:
            pos = self.pos[name] = self.free.pop(0) if self.free else len(self.bars)
            bar = self.bars[name] = self.tqdm(total=total, desc=f"{name}: {label}", position=pos, leave=False,
                                              file=self.stream, dynamic_ncols=True)
        else:
            bar.reset(total=total)
            bar.set_description(f"{name}: {label}")
        return bar

    def start(self, name):
        self.write(f"  started  {name}")
        self._bar(name, "starting", None)

    def begin(self, name, label, total, compile_s=None):
        super().begin(name, label, total, compile_s)
        self._bar(name, label, total)

    def step(self, name, label, done, compile_s=None):
        bar = self.bars.get(name)
        if bar is not None and done > bar.n:
            bar.update(done - bar.n)

    def end(self, name, label, done):
        super().end(name, label, done)
        stack = self.stages.get(name)
        if stack:  # back to the enclosing stage
            lab, total, d = stack[-1][:3]
            self._bar(name, lab, total).update(d)

    def finish(self, name):
        super().finish(name)
        bar = self.bars.pop(name, None)
        if bar is not None:
            self.free.append(self.pos.pop(name))
            bar.close()

    def close(self):
        for name in list(self.bars):
            self.finish(name)


def _display(stream, interval, bars):
    if bars is None:
        bars = hasattr(stream, "isatty") and stream.isatty()
    if bars:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return PlainDisplay(stream, interval)
        return BarDisplay(stream, tqdm)
    return PlainDisplay(stream, interval)


class _Direct:
    """The ``sink`` of inline runs: each message goes straight to the display."""

    def __init__(self, handle):
        self.put = handle


# -- the run ---------------------------------------------------------------------------------------

def _result_line(done, total, name, res):
    failed = [c.name for c in res.checks if not c.passed]
    extra = f"  failed: {', '.join(failed)}" if failed else ""
    if res.skipped:
        extra += f"  ({res.skip_reason})"
    if res.findings:
        extra += f"  [{len(res.findings)} finding(s) about other frameworks]"
    if res.error:
        extra += "  (error: " + res.error.strip().splitlines()[-1] + ")"
    return (f"  [{done}/{total}] {name:<20} {res.status}  {res.seconds:7.1f} s  "
            f"({sum(c.passed for c in res.checks)}/{len(res.checks)} checks){extra}")


class _Progress:
    """Routes worker messages to a display and prints results; keeps "started" before the result line."""

    def __init__(self, display, total):
        self.display, self.total, self.started, self.finished = display, total, set(), set()

    def handle(self, msg):
        kind, name, label, value = msg
        if name in self.finished:
            return
        if kind == "start":
            if name not in self.started:
                self.started.add(name)
                self.display.start(name)
        elif name in self.started:
            if kind in ("begin", "step") and isinstance(value, (list, tuple)):  # [total or done, compile seconds]
                getattr(self.display, kind)(name, label, value[0], value[1])
            else:
                getattr(self.display, kind)(name, label, value)

    def drain(self, q):
        while q is not None:
            try:
                msg = q.get_nowait()
            except (_queue.Empty, EOFError, OSError):
                return
            self.handle(msg)

    def result(self, name, res, announce_missing):
        if name not in self.started and announce_missing:
            self.handle(("start", name, "", None))
        self.finished.add(name)
        self.display.finish(name)
        self.display.write(_result_line(len(self.finished), self.total, name, res))


def _mp_context():
    """Worker processes start from a fresh server process ("forkserver"), not by forking this one.

    A process that has imported a multithreaded library (JAX, PyTorch) can deadlock in a forked child.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _dask_client(executor):
    """The ``distributed.Client`` behind a Dask executor (``Client.get_executor()``), else None."""
    client = getattr(executor, "_client", None)
    distributed = sys.modules.get("distributed")
    return client if distributed is not None and isinstance(client, distributed.Client) else None


def _executor(executor, jobs, n, progress, stack):
    """(executor, sink_for_submit, queue_to_drain, ship); what must be closed is entered on ``stack``."""
    if executor is not None:
        client = _dask_client(executor)
        if client is not None:  # progress as the scheduler's events; figures shipped back with the result
            q, topic = _queue.SimpleQueue(), f"refgrad-validation-{uuid.uuid4().hex}"
            client.subscribe_topic(topic, lambda event: q.put(event[1]))
            stack.callback(client.unsubscribe_topic, topic)
            return executor, _EventSink(topic), q, True
        try:
            manager = _mp_context().Manager()
            q = manager.Queue()
        except Exception:  # noqa: BLE001 - no progress then, but the run goes on
            return executor, None, None, False
        stack.callback(manager.shutdown)
        return executor, _PortableSink(q), q, False
    jobs = min(jobs or os.cpu_count() or 1, n)
    if jobs == 1:
        return _InlineExecutor(), _Direct(progress.handle), None, False
    mp = _mp_context()
    q = mp.Queue()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp, initializer=_init_worker, initargs=(q, threads))
    stack.callback(pool.shutdown)
    return pool, None, q, False


#: Typical seconds of each case on 2 cores with a warm Numba cache, (quick, full), measured with
#: ``python -m validation [--quick]`` (the per-case times it prints).  Used only to start the longest cases
#: first, so that a short case, not a long one, runs last (on 2 workers the full run takes ~140 s in this order
#: and ~170 s in report order); an unknown case counts as long.
TYPICAL_SECONDS = {
    "toy": (4.8, 11.2), "temperature": (6.0, 53.0), "gumbel_concrete": (0.3, 0.4),
    "xu_slides_gaussian": (0.5, 4.3), "rebar_report_mixture": (2.5, 5.3), "forum_experts": (3.6, 21.2),
    "sobolev_slides_variance": (6.3, 20.0), "optimisation": (6.4, 57.7), "calibration": (13.8, 45.8),
    "crosscheck_torch": (11.7, 58.6), "crosscheck_jax": (3.4, 4.3),
    "field_since_2019": (10.6, 22.8),
    "third_party": (76.0, 91.0),
}


def start_order(names, quick):
    """``names`` sorted by typical run time, longest first (ties and unknown cases keep their order)."""
    col = 0 if quick else 1
    return sorted(names, key=lambda n: -TYPICAL_SECONDS.get(n, (float("inf"),) * 2)[col])


def _collect(names, quick, seed, out_dir, available, executor, sink, q, progress, foreign, ship):
    results, pending = {}, {}

    def harvest(block):
        done, _ = wait(list(pending), timeout=0.1 if block else 0, return_when=FIRST_COMPLETED)
        progress.drain(q)
        for fut in done:
            name = pending.pop(fut)
            res = fut.result()
            if ship:
                res, files = res
                _write_shipped(out_dir, files)
            results[name] = res
            progress.drain(q)  # the worker's last messages before its result line
            progress.result(name, res, announce_missing=not foreign)

    for name in start_order(names, quick):
        if ship:
            fut = executor.submit(_run_module_shipped, available[name], quick, seed, sink)
        else:
            args = (available[name], quick, seed, str(out_dir)) + ((sink,) if sink is not None else ())
            fut = executor.submit(_run_module, *args)
        pending[fut] = name
        if foreign:
            progress.display.write(f"  queued   {name}")
        harvest(False)
    while pending:
        harvest(True)
    return results


def run(names=None, quick=False, seed=0, out_dir="validation-report", jobs=None, executor=None, stream=sys.stdout,
        command=None, progress_interval=10.0, bars=None):
    """Run the named cases (all when None), write report.md / results.json, return (results, passed).

    ``executor`` may be any :class:`concurrent.futures.Executor`; by default a process pool
    with ``jobs`` workers (``jobs=1`` runs in this process).  Progress is printed to ``stream``:
    tqdm bars when ``bars`` is true (default: when ``stream`` is a terminal and tqdm is
    installed), else plain lines, at most one per running case every ``progress_interval`` s.
    With a caller's executor each case is printed as "queued" when submitted and "started"
    when its worker reports that it started (progress needs a ``multiprocessing.Manager``).
    """
    available = case_names()
    names = list(available) if not names else list(dict.fromkeys(names))  # a case named twice runs once
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; available: {', '.join(available)}")
    if not isinstance(progress_interval, (int, float)) or not progress_interval >= 0:
        raise ValueError(f"progress_interval must be a number >= 0 (seconds); got {progress_interval!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS):
        raise ValueError(f"jobs must be an integer in [1, {MAX_JOBS}] or None; got {jobs!r}")
    if not str(out_dir).strip():
        raise ValueError("out_dir must name a folder; got an empty string")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    display = _display(stream, progress_interval, bars)
    progress = _Progress(display, len(names))
    foreign = executor is not None
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.callback(display.close)
        executor, sink, q, ship = _executor(executor, jobs, len(names), progress, stack)
        display.write(f"refgrad validation: {len(names)} case(s), {'quick' if quick else 'full'}, seed {seed}, "
                      f"output {out_dir}/")
        results = _collect(names, quick, seed, out_dir, available, executor, sink, q, progress, foreign, ship)
    ordered = [results[n] for n in names]
    elapsed = time.perf_counter() - start
    passed = all(r.passed for r in ordered)
    write_report(ordered, out_dir, quick=quick, seed=seed, seconds=elapsed, command=command)
    skipped = sum(r.skipped for r in ordered)
    print(f"{'PASSED' if passed else 'FAILED'}: {sum(r.passed and not r.skipped for r in ordered)}/{len(ordered)} "
          f"cases passed{f', {skipped} skipped' if skipped else ''} in "
          f"{elapsed:.1f} s; report {out_dir / 'report.md'}, numbers {out_dir / 'results.json'}",
          file=stream, flush=True)
    return ordered, passed


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class SchedulerUnreachable(OSError):
    """No Dask scheduler answered at the given address within the timeout (raised before any work)."""


def package_zip(folder, root=None):
    """The ``validation`` package as a zip in ``folder``; returns the zip's path.

    The zip holds the package's ``.py`` files (``root``: the package folder, default this one) and is named by
    a hash of its content (a worker that already imported one version never reads a changed file under the
    same name).
    """
    root = Path(__file__).resolve().parent if root is None else Path(root)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*.py")):
            if "__pycache__" not in f.parts:
                info = zipfile.ZipInfo(f"validation/{f.relative_to(root).as_posix()}", (1980, 1, 1, 0, 0, 0))
                zf.writestr(info, f.read_bytes(), zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    path = Path(folder) / f"refgrad_validation_{hashlib.sha256(data).hexdigest()[:16]}.zip"
    path.write_bytes(data)
    return path


def _upload_package(client, root=None):
    """Make ``validation`` importable on every worker of ``client``'s cluster, present and future.

    Only refgrad needs to be installed there: ``Client.upload_file`` registers the zip as a worker plugin,
    which puts it first on the workers' ``sys.path``.

    Shipping the code (rather than pickling the case functions by value) keeps every import working on the
    workers: the case modules import each other and ``validation.core`` by name, the results are instances of
    ``validation.core`` classes, and a case's replication tasks are submitted from the worker by reference.
    """
    with tempfile.TemporaryDirectory(prefix="refgrad-validation-") as tmp:
        path = package_zip(tmp, root)
        client.upload_file(str(path), load=True)
    try:  # best effort: a worker holding an older validation.runner may not know this function
        client.run(_forget_stale_modules, path.name)
    except Exception:  # noqa: BLE001
        pass


def _forget_stale_modules(zip_name):
    """On a worker after an upload: drop the ``validation`` submodules imported from an earlier upload.

    The upload reloads the package itself only; dropping them makes the next import read this run's code.
    """
    for name, module in list(sys.modules.items()):
        if name.startswith("validation.") and zip_name not in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]


@contextlib.contextmanager
def dask_executor(scheduler, jobs=None, timeout=10.0):
    """A ``concurrent.futures.Executor`` on a Dask cluster, closed on exit.

    On exit it closes its client and any cluster started here.

    With a scheduler address, the ``validation`` package is uploaded to the workers (:func:`_upload_package`):
    they need ``refgrad`` (``pip install refgrad`` or the checkout's ``pip install .``) and its dependencies,
    not this checkout.

    Parameters
    ----------
    scheduler : str
        A scheduler address (``"tcp://host:8786"``), or ``"local"`` to start a ``distributed.LocalCluster``
        of worker processes, one thread each.
    jobs : int, optional
        Workers of the local cluster (default: the CPU count); ignored with an address.
    timeout : float, optional
        Seconds to wait for the scheduler at ``scheduler`` (default 10).

    Raises
    ------
    ModuleNotFoundError
        ``distributed`` is not installed (the message says: ``pip install -e ".[dask]"``).
    TypeError, ValueError
        ``scheduler`` is not a non-empty string, or ``jobs`` is not a positive integer.
    SchedulerUnreachable
        No scheduler answered at ``scheduler`` within ``timeout`` seconds (before any work).
    """
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a str (an address or 'local'); got {type(scheduler).__name__} "
                        f"{scheduler!r}")
    if not scheduler.strip():
        raise ValueError(f"scheduler must be a scheduler address or 'local'; got {scheduler!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS):
        raise ValueError(f"jobs must be an integer in [1, {MAX_JOBS}] or None; got {jobs!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ValueError(f"timeout must be a number of seconds in (0, 3600]; got {timeout!r}")
    try:
        import distributed
    except ImportError as exc:
        raise ModuleNotFoundError(f"running on a Dask scheduler needs dask.distributed, which is not installed "
                                  f"({exc}); install it with: {DASK_INSTALL}", name="distributed") from exc
    import dask

    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            # Dask's nanny sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in its workers; the BLAS thread count changes the last
            # bits of refgrad.exact.moments (sums reordered), so local workers keep this process's environment,
            # like the process pool's, and give the same numbers
            environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                       if k not in _THREAD_VARIABLES}
            stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": environ}))
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                dashboard_address=None))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout=timeout))
            except (OSError, ValueError, TypeError) as exc:  # refused, timed out, or not an address
                raise SchedulerUnreachable(
                    f"--scheduler {scheduler!r}: no Dask scheduler answered within {timeout:g} s "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); start one with 'dask scheduler' "
                    f"and workers with 'dask worker {scheduler}', or use --scheduler local") from exc
            _upload_package(client)
        yield client.get_executor(pure=False)


def dump_json(results, path, **meta):
    import refgrad

    data = {"refgrad_version": refgrad.__version__, **meta, "passed": all(r.passed for r in results),
            "skipped": {r.name: r.skip_reason for r in results if r.skipped},
            "findings": [{"case": r.name, **f} for r in results for f in r.findings],
            "cases": [r.to_json() for r in results]}
    Path(path).write_text(json.dumps(data, indent=1))
