"""``python -m benchmarks [--quick] [--json PATH] [--only estimators|enumeration|compile] [--threads N]``.

Prints one table per section and, with ``--json PATH``, writes the results as JSON
with the keys ``machine`` (cpu_count, numba_threads, torch_threads, versions, date,
command), ``settings`` and one key per section run: ``estimators``, ``enumeration``,
``compile``.  Without ``--json`` nothing is written.  The path is checked before any
section runs.  See :mod:`benchmarks` for what each section measures.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile

#: ``--help`` text (plain, not reStructuredText).
DESCRIPTION = ("Time refgrad's estimators against NumPy and PyTorch implementations, exact enumeration against a "
               "NumPy enumeration, and import/compile times in fresh processes; print one table per section and, "
               "with --json PATH, write the results as JSON (nothing is written without --json).")

SECTIONS = ("estimators", "enumeration", "compile")

FULL = {"n_start": 100000, "min_seconds": 0.5, "repeats": 3, "sizes": (10, 14, 18, 20, 22),
        "labels": None, "compile": (("reinforce", "bernoulli"), ("rebar", "bernoulli"),
                                    ("reinforce", "categorical"), ("rebar", "categorical"))}
QUICK = {"n_start": 2000, "min_seconds": 0.05, "repeats": 2, "sizes": (10, 14, 18),
         "labels": ("bernoulli d=100", "categorical d=10 K=10"), "compile": (("reinforce", "bernoulli"),)}


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a subset: two families, shorter runs (< 1 min)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write the results to this JSON file (checked before any section runs; default: "
                             "write nothing)")
    parser.add_argument("--only", choices=SECTIONS, help="run one section")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="Numba (and torch) threads; default: Numba's default")
    return parser


def _check_json_path(parser, path):
    """Refuse a ``--json`` path that cannot be written, before any section runs (usage error, exit status 2)."""
    if not path.strip():
        parser.error("--json must name a file; got an empty string")
    if os.path.isdir(path):
        parser.error(f"--json {path!r} is a folder; name a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"--json {path!r}: the folder {folder!r} does not exist")
    try:
        if os.path.exists(path):
            with open(path, "a", encoding="utf-8"):
                pass
        else:
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as exc:
        parser.error(f"--json {path!r}: cannot write there ({exc.strerror or exc})")


def _versions():
    import numba
    import numpy
    import scipy

    import refgrad

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
           "scipy": scipy.__version__, "refgrad": refgrad.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    return out


def _set_threads(threads):
    import numba

    if threads is not None:
        if threads < 1 or threads > numba.config.NUMBA_NUM_THREADS:
            raise SystemExit(f"--threads must be in [1, {numba.config.NUMBA_NUM_THREADS}]; got {threads}")
        numba.set_num_threads(threads)
    torch_threads = None
    try:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        torch_threads = torch.get_num_threads()
    except ImportError:
        pass
    return numba.get_num_threads(), torch_threads


def machine(argv, numba_threads, torch_threads):
    return {"cpu_count": os.cpu_count(), "numba_threads": numba_threads, "torch_threads": torch_threads,
            "platform": platform.platform(), "processor": platform.processor(), "versions": _versions(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": "python -m benchmarks " + " ".join(argv)}


def _fmt(value, kind):
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value / 1e6:.3g}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "err":
        return f"{value:.1e}"
    if kind == "s":
        return f"{value:.3g}"
    if kind == "mib":
        return f"{value / 2**20:.1f}"
    return str(value)


def _table(rows, columns):
    """Plain-text table: columns = [(header, key, kind)]."""
    cells = [[h for h, _, _ in columns]] + [[_fmt(r.get(k), kind) for _, k, kind in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c[i].rjust(widths[i]) for i in range(len(columns))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


ESTIMATOR_COLUMNS = [
    ("estimator", "estimator", "str"), ("family", "family", "str"), ("n", "n", "str"),
    ("refgrad M/s", "refgrad_per_s", "rate"), ("numpy M/s", "numpy_per_s", "rate"),
    ("torch M/s", "torch_per_s", "rate"), ("rg+draw M/s", "refgrad_rng_per_s", "rate"),
    ("floor M/s", "floor_per_s", "rate"),
    ("rg/np", "refgrad_over_numpy", "ratio"), ("rg/torch", "refgrad_over_torch", "ratio"),
    ("rg/floor", "refgrad_over_floor", "ratio"), ("err np", "error_numpy", "err"), ("err torch", "error_torch", "err"),
]

ENUMERATION_COLUMNS = [
    ("d", "d", "str"), ("rg E s", "refgrad_expectation_s", "s"), ("rg grad s", "refgrad_gradient_s", "s"),
    ("np E s", "numpy_expectation_s", "s"), ("np grad s", "numpy_gradient_s", "s"),
    ("np/rg E", "speedup_expectation", "ratio"), ("np/rg grad", "speedup_gradient", "ratio"),
    ("rg grad MiB", "refgrad_gradient_peak_bytes", "mib"), ("np grad MiB", "numpy_gradient_peak_bytes", "mib"),
]


def _notes(rows, keys):
    """One line per note: ``  <estimator> <family>: [<implementation>: ]<text>``.

    A row's own ``note`` has no prefix; ``numpy_note`` is prefixed ``numpy:``; other keys by their name.
    """
    lines = []
    for r in rows:
        where = " ".join(str(x) for x in (r.get("estimator", r.get("d")), r.get("family")) if x not in (None, ""))
        for k in keys:
            if r.get(k):
                prefix = "" if k == "note" else (k[:-5] if k.endswith("_note") else k) + ": "
                lines.append(f"  {where}: {prefix}{r[k]}")
    return "\n".join(lines)


def _section_estimators(settings, out):
    from . import estimators

    labels = settings["labels"] or tuple(estimators.FAMILIES)
    rows = estimators.run(labels=labels, n_start=settings["n_start"], min_seconds=settings["min_seconds"],
                          repeats=settings["repeats"],
                          progress=lambda r: print(f"  {r['estimator']:>16} {r['family']}", file=sys.stderr))
    out["estimators"] = rows
    print("\nEstimates per second (M/s); rg/x = refgrad rate / x rate (rg/floor: refgrad with drawing, rg+draw);\nerr "
          "= max|x - refgrad| / max|refgrad|\n")
    print(_table(rows, ESTIMATOR_COLUMNS))
    notes = _notes(rows, ("note", "numpy_note", "torch_note"))
    if notes:
        print("notes:\n" + notes)


def _section_enumeration(settings, out):
    from . import enumeration

    rows = enumeration.run(settings["sizes"], repeats=settings["repeats"])
    out["enumeration"] = rows
    print("\nExact enumeration, Bernoulli d bits, f = sum (b - 0.45)^2; seconds (best of "
          f"{settings['repeats']}), peak traced memory\n")
    print(_table(rows, ENUMERATION_COLUMNS))
    notes = _notes(rows, ("numpy_skipped",))
    if notes:
        print("notes:\n" + notes)


def _section_compile(settings, out):
    from . import compile_time

    rows = compile_time.run(settings["compile"])
    out["compile"] = rows
    print("\nFresh process: import refgrad, first vs second call (seconds); warm = Numba cache filled, "
          "cold = empty NUMBA_CACHE_DIR\n")
    flat = []
    for r in rows:
        for cache in ("warm", "cold"):
            flat.append({"estimator": r["estimator"], "family": r["family"], "cache": cache, **r[cache]})
    print(_table(flat, [("estimator", "estimator", "str"), ("family", "family", "str"), ("cache", "cache", "str"),
                        ("import", "import_s", "s"), ("1st estimate", "estimate_first_s", "s"),
                        ("2nd estimate", "estimate_second_s", "s"),
                        ("1st exact.gradient", "exact_gradient_first_s", "s"),
                        ("2nd exact.gradient", "exact_gradient_second_s", "s"), ("error", "error", "str")]))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.json is not None:
        _check_json_path(parser, args.json)
    if args.threads is not None:
        import numba

        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            parser.error(f"--threads must be in [1, {numba.config.NUMBA_NUM_THREADS}]; got {args.threads}")
    settings = dict(QUICK if args.quick else FULL)
    numba_threads, torch_threads = _set_threads(args.threads)
    out = {"machine": machine(argv, numba_threads, torch_threads),
           "settings": {k: v for k, v in settings.items()} | {"quick": args.quick}}
    print(f"machine: {out['machine']['cpu_count']} CPUs, numba threads {numba_threads}, torch threads "
          f"{torch_threads}; {out['machine']['versions']}; {out['machine']['date']}")
    sections = (args.only,) if args.only else SECTIONS
    for section in sections:
        {"estimators": _section_estimators, "enumeration": _section_enumeration,
         "compile": _section_compile}[section](settings, out)
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1, default=str)
        print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
