"""``python -m validation``: refgrad's validation suite.  See ``--help``."""
import argparse
import sys

from .runner import case_names, run


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m validation",
        description="Reproduce the literature's toy problems and the source documents' cases against refgrad's "
        "exact oracles, and write a report (report.md, figures, results.json).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smaller sample sizes: about 40 s on 2 cores with a warm Numba cache (the full run: about 2.5 minutes)")
    parser.add_argument("--case", nargs="+", metavar="NAME", help="run only these cases (see --list)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--out", default="validation-report", help="output folder (default validation-report/)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of CPUs; 1 = inline)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the cases on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for "
                             "a LocalCluster of --jobs worker processes (default: number of CPUs); needs the dask "
                             'extra: pip install -e ".[dask]"')
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
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if not args.progress_every >= 0:
        parser.error(f"--progress-every must be >= 0 seconds; got {args.progress_every}")
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


def _run_on_dask(parser, args, options):
    from .runner import DASK_INSTALL, dask_executor

    unknown = [n for n in args.case or () if n not in case_names()]
    if unknown:  # before starting a cluster
        parser.error(f"unknown case(s) {unknown}; available: {', '.join(case_names())}")
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        parser.error(f"--scheduler needs dask.distributed, which is not installed ({exc}); install it with: "
                     f"{DASK_INSTALL}")
    with dask_executor(args.scheduler, args.jobs) as executor:
        _, passed = run(args.case, executor=executor, **options)
    return passed


if __name__ == "__main__":
    sys.exit(main())
