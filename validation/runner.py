"""Run validation cases through any concurrent.futures.Executor and write the report."""
import importlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .core import run_case
from .report import write_report

__all__ = ["CASE_MODULES", "load_case", "run", "case_names"]

#: Case modules in report order.
CASE_MODULES = [
    "validation.cases.toy",
    "validation.cases.temperature",
    "validation.cases.gumbel_concrete",
    "validation.cases.seed001_gaussian",
    "validation.cases.seed002_mixture",
    "validation.cases.seed000_experts",
    "validation.cases.seed003_variance",
    "validation.cases.optimisation",
    "validation.cases.calibration",
    "validation.cases.crosscheck_torch",
    "validation.cases.crosscheck_jax",
]


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


def _run_module(module_name, quick, seed, out_dir):
    # worker entry point: picklable by name
    return run_case(load_case(module_name), quick, seed, out_dir)


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


def run(names=None, quick=False, seed=0, out_dir="validation-report", jobs=None, executor=None, stream=sys.stdout,
        command=None):
    """Run the named cases (all when None), write report.md / results.json, return (results, passed).

    ``executor`` may be any :class:`concurrent.futures.Executor`; by default a process pool
    with ``jobs`` workers (``jobs=1`` runs in this process).
    """
    available = case_names()
    names = list(available) if not names else list(names)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; available: {', '.join(available)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own = executor is None
    if own:
        jobs = jobs or min(len(names), os.cpu_count() or 1)
        executor = _InlineExecutor() if jobs == 1 else ProcessPoolExecutor(max_workers=jobs)
    start = time.perf_counter()
    print(f"refgrad validation: {len(names)} case(s), {'quick' if quick else 'full'}, seed {seed}, "
          f"output {out_dir}/", file=stream, flush=True)
    results = {}
    try:
        futures = {}
        for name in names:
            futures[executor.submit(_run_module, available[name], quick, seed, str(out_dir))] = name
            print(f"  started  {name}", file=stream, flush=True)
        for done, fut in enumerate(as_completed(futures), 1):
            name = futures[fut]
            res = fut.result()
            results[name] = res
            verdict = res.status
            failed = [c.name for c in res.checks if not c.passed]
            extra = f"  failed: {', '.join(failed)}" if failed else ""
            if res.skipped:
                extra += f"  ({res.skip_reason})"
            if res.findings:
                extra += f"  [{len(res.findings)} finding(s) about other frameworks]"
            if res.error:
                extra += "  (error: " + res.error.strip().splitlines()[-1] + ")"
            print(f"  [{done}/{len(names)}] {name:<20} {verdict}  {res.seconds:7.1f} s  "
                  f"({sum(c.passed for c in res.checks)}/{len(res.checks)} checks){extra}", file=stream, flush=True)
    finally:
        if own and hasattr(executor, "shutdown"):
            executor.shutdown()
    ordered = [results[n] for n in names]
    elapsed = time.perf_counter() - start
    passed = all(r.passed for r in ordered)
    write_report(ordered, out_dir, quick=quick, seed=seed, seconds=elapsed, command=command)
    skipped = sum(r.skipped for r in ordered)
    print(f"{'PASSED' if passed else 'FAILED'}: {sum(r.passed and not r.skipped for r in ordered)}/{len(ordered)} cases "
          f"passed{f', {skipped} skipped' if skipped else ''} in "
          f"{elapsed:.1f} s; report {out_dir / 'report.md'}, numbers {out_dir / 'results.json'}", file=stream, flush=True)
    return ordered, passed


def dump_json(results, path, **meta):
    import refgrad

    data = {"refgrad_version": refgrad.__version__, **meta, "passed": all(r.passed for r in results),
            "skipped": {r.name: r.skip_reason for r in results if r.skipped},
            "findings": [{"case": r.name, **f} for r in results for f in r.findings],
            "cases": [r.to_json() for r in results]}
    Path(path).write_text(json.dumps(data, indent=1))
