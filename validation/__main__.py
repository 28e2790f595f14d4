"""``python -m validation``: refgrad's validation suite.  See ``--help``."""
import argparse
import contextlib
import importlib.util
import sys
import tempfile
from pathlib import Path


def refgrad_import_problem():
    """Why ``import refgrad`` would not give the installed package, or None.

    A folder named ``refgrad`` without an ``__init__.py`` (typically a clone of the repository) in the current
    directory or on ``PYTHONPATH`` is a namespace package, found before the editable install's finder: the
    import "succeeds" and then fails with "cannot import name ... from 'refgrad' (unknown location)".
    """
    try:
        spec = importlib.util.find_spec("refgrad")
    except (ImportError, ValueError) as exc:
        return f"'import refgrad' fails ({type(exc).__name__}: {exc})"
    if spec is None:
        return "refgrad is not installed: run 'pip install -e .' in the repository's folder"
    if spec.origin is None or spec.origin == "namespace":  # a namespace package: a folder, not the package
        where = ", ".join(str(p) for p in (spec.submodule_search_locations or ()))
        return (f"'import refgrad' finds the folder(s) {where}, without an __init__.py: a folder named "
                f"'refgrad' (a clone of the repository?) in the current directory or on PYTHONPATH hides the "
                f"installed package. Run from inside the clone (cd into it) or from another folder, or rename that "
                f"folder")
    return None


_PROBLEM = refgrad_import_problem()
if _PROBLEM is not None and __name__ == "__main__":
    print(f"usage: python -m validation [-h] ...\npython -m validation: error: {_PROBLEM}", file=sys.stderr)
    sys.exit(2)

from .runner import MAX_JOBS, case_names, run  # noqa: E402 - after the check above, which must come first

#: Seconds ``--scheduler ADDRESS`` waits for the scheduler before the run is refused (``--connect-timeout``).
CONNECT_TIMEOUT = 10.0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m validation",
        description="Reproduce the literature's toy problems and the source documents' cases against refgrad's "
        "exact oracles, and write a report (report.md, figures, results.json).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smaller sample sizes: about 40 s on 2 cores with a warm Numba cache (the full run: about "
                             "2.5 minutes)")
    parser.add_argument("--case", nargs="+", metavar="NAME", help="run only these cases (see --list)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--out", default="validation-report", help="output folder (default validation-report/)")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"worker processes, 1 to {MAX_JOBS} (default: number of CPUs; 1 = inline)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the cases on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for "
                             "a LocalCluster of --jobs worker processes (default: number of CPUs); needs the dask "
                             'extra: pip install -e ".[dask]". Workers of an address need refgrad and dask installed, '
                             "not this checkout: the validation code is uploaded to them")
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="SECONDS",
                        help=f"with --scheduler ADDRESS: how long to wait for the scheduler before giving up "
                             f"(default {CONNECT_TIMEOUT:g})")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                        help="without a terminal, print a progress line per running case at most this often "
                             "(default 10); on a terminal tqdm bars are shown when tqdm is installed")
    args = parser.parse_args(argv)
    if args.list:
        from .runner import load_case

        for name, mod in case_names().items():
            case = load_case(mod)
            print(f"{name:<20} {case.title}  [{case.source}]")
        return 0
    # every argument and the output folder are checked before any work (argparse's usage message, exit status 2)
    if args.jobs is not None and not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs must be an integer in [1, {MAX_JOBS}]; got {args.jobs}")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if not args.progress_every >= 0:
        parser.error(f"--progress-every must be >= 0 seconds; got {args.progress_every}")
    if not 0 < args.connect_timeout <= 3600:
        parser.error(f"--connect-timeout must be in (0, 3600] seconds; got {args.connect_timeout}")
    unknown = [n for n in args.case or () if n not in case_names()]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; available: {', '.join(case_names())}")
    _check_out(parser, args.out)
    if args.scheduler is not None and not args.scheduler.strip():
        parser.error("--scheduler must be a scheduler address (tcp://host:8786) or 'local'; got ''")
    command = "python -m validation " + " ".join(argv if argv is not None else sys.argv[1:])
    options = dict(quick=args.quick, seed=args.seed, out_dir=args.out, command=command.strip(),
                   progress_interval=args.progress_every)
    try:
        if args.scheduler is None:
            _, passed = run(args.case, jobs=args.jobs, **options)
        else:
            passed = _run_on_dask(parser, args, options)
    except ValueError as exc:
        parser.error(str(exc))
    return 0 if passed else 1


def _check_out(parser, out):
    """Refuse an ``--out`` that is empty, a file, or a folder that cannot be created or written.

    The check comes before any work; nothing is created here (the run creates the folder).
    """
    if not out.strip():
        parser.error("--out must name a folder (it is created if missing); got an empty string")
    path = Path(out)
    if path.exists() and not path.is_dir():
        parser.error(f"--out {out!r} is a file, not a folder; name a folder (it is created if missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        parser.error(f"--out {out!r}: cannot create or write this folder ({exc.strerror or exc}); "
                     f"name a writable folder")


def _run_on_dask(parser, args, options):
    from .runner import DASK_INSTALL, SchedulerUnreachable, dask_executor

    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        parser.error(f"--scheduler needs dask.distributed, which is not installed ({exc}); install it with: "
                     f"{DASK_INSTALL}")
    with contextlib.ExitStack() as stack:
        try:  # connecting is the last check before any work
            executor = stack.enter_context(dask_executor(args.scheduler, args.jobs, timeout=args.connect_timeout))
        except SchedulerUnreachable as exc:
            parser.error(str(exc))
        _, passed = run(args.case, executor=executor, **options)
    return passed


if __name__ == "__main__":
    sys.exit(main())
