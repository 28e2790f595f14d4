"""Structured results of validation cases: checks, tables, figures, and the context a case runs in.

A case is a module in :mod:`validation.cases` defining ``CASE = Case(...)``.  Its
``run(ctx)`` function computes numbers through refgrad's public API only, records
them with ``ctx.table``, ``ctx.check`` and ``ctx.figure``, and returns nothing.
Everything a case records is plain data (picklable), so cases can run in worker
processes of any :class:`concurrent.futures.Executor`.

A case that needs an optional package calls ``ctx.require(module, install)``; when the
package is missing the case is reported as skipped, with the reason, and does not fail
the run.  Facts about another framework (a cross-check of PyTorch or JAX) are recorded
with ``ctx.finding(...)``: they go to the findings table, never to the checks, so another
project's bug cannot fail refgrad's run.  A verdict on a formula of one of the source documents
(:data:`validation.sources.SOURCES`) is recorded with
``ctx.source_finding(document, claim, verdict, numbers)``; both kinds lead the report's summary.

Tables: ``ctx.table(title, columns, rows, note="", constant=())`` checks that every row has one
value per column; report.md states ``constant`` columns and columns with no value in any row in
the table's note instead of repeating them (results.json keeps every column).  Long stages wrap
their outer loop in ``ctx.progress(items, label=...)``; the runner shows the progress.
"""
import math
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

__all__ = ["Case", "Check", "Table", "Figure", "CaseResult", "Context", "CaseSkipped", "FINDING_COLUMNS",
           "run_case"]

#: Columns of a findings table (one row per fact found about another framework).
FINDING_COLUMNS = ["framework", "version", "function", "checked", "verdict", "key numbers",
                   "smallest failing input"]


class CaseSkipped(Exception):
    """Raised by :meth:`Context.skip`: the case cannot run here (``reason`` says why)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = str(reason)


@dataclass(frozen=True)
class Case:
    """A validation case.

    Attributes
    ----------
    name : str
        Short identifier used on the command line (``--case NAME``).
    title : str
        Section title in the report.
    source : str
        Where the checked claims come from (paper and equation, or a source document of :mod:`validation.sources`).
    description : str
        What is checked, in a few sentences (markdown).
    run : callable
        ``run(ctx)``.
    """

    name: str
    title: str
    source: str
    description: str
    run: Callable


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""
    expected: Optional[object] = None
    observed: Optional[object] = None


@dataclass
class Table:
    title: str
    columns: List[str]
    rows: List[list]
    note: str = ""
    constant: List[str] = field(default_factory=list)  # columns shown in the note, not the table


@dataclass
class Figure:
    title: str
    path: Optional[str]  # relative to the report directory; None when matplotlib is missing
    command: str = ""


@dataclass
class CaseResult:
    name: str
    title: str
    source: str
    description: str
    checks: List[Check] = field(default_factory=list)
    tables: List[Table] = field(default_factory=list)
    figures: List[Figure] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: Optional[str] = None
    settings: dict = field(default_factory=dict)
    findings: List[dict] = field(default_factory=list)
    source_findings: List[dict] = field(default_factory=list)
    warnings: List[dict] = field(default_factory=list)
    skip_reason: Optional[str] = None

    @property
    def skipped(self):
        """True when the case could not run here (a missing optional package); see ``skip_reason``."""
        return self.skip_reason is not None

    @property
    def passed(self):
        """A skipped case does not fail the run; otherwise every check passes and there is at least one."""
        if self.error is not None:
            return False
        if self.skipped:
            return True
        return all(c.passed for c in self.checks) and len(self.checks) > 0

    @property
    def status(self):
        """``"SKIPPED"``, ``"PASS"`` or ``"FAIL"``."""
        if self.skipped and self.error is None:
            return "SKIPPED"
        return "PASS" if self.passed else "FAIL"

    def to_json(self):
        out = asdict(self)
        out["passed"] = self.passed
        out["skipped"] = self.skipped
        out["status"] = self.status
        return _jsonable(out)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else repr(v)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


class _NullReporter:
    """Progress reporter that shows nothing (the default)."""

    def begin(self, case, label, total):
        pass

    def step(self, case, label):
        pass

    def end(self, case, label):
        pass


class Context:
    """What a case sees: settings, a seed, the output folder, and recorders."""

    def __init__(self, case, quick, seed, out_dir):
        self.case = case
        self.quick = bool(quick)
        self.seed = int(seed)
        self.out_dir = Path(out_dir)
        self.result = CaseResult(case.name, case.title, case.source, case.description)
        self.result.settings = {"quick": self.quick, "seed": self.seed}
        self.reporter = _NullReporter()
        self.mapper = map  # mapper(fn, tasks) -> iterable of results in task order; see map()

    # -- randomness: one independent stream per purpose, reproducible from (seed, case, label)
    def seed_sequence(self, label=""):
        """The SeedSequence behind :meth:`rng`: from the run seed, the case name and ``label``.

        Its ``spawn(k)`` children seed k independent tasks (the i-th child depends only on i, not on where
        or in which order the tasks run).
        """
        return np.random.SeedSequence([self.seed] + [ord(c) for c in f"{self.case.name}/{label}"])

    def rng(self, label=""):
        """A Generator seeded from the run seed, the case name and ``label``."""
        return np.random.default_rng(self.seed_sequence(label))

    def size(self, quick, full):
        """Pick a sample size (or any setting) for quick vs full runs, and record it."""
        return quick if self.quick else full

    # -- progress inside a long case
    def progress(self, iterable, total=None, label=""):
        """Iterate over ``iterable``, reporting each step to the run's progress display.

        ``total`` defaults to ``len(iterable)``; ``label`` names the stage (e.g. "τ sweep").
        Use it around the outer loop of any stage that takes more than a few seconds.
        """
        if total is None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        reporter = self.reporter
        reporter.begin(self.case.name, label, total)
        try:
            for item in iterable:
                yield item
                reporter.step(self.case.name, label)
        finally:
            reporter.end(self.case.name, label)

    def map(self, fn, tasks, label=""):
        """``[fn(t) for t in tasks]`` in task order, through the run's task mapper when it has one.

        On a Dask cluster the tasks run in parallel; elsewhere the builtin ``map``.  Each finished task is a
        progress step of stage ``label``.  ``fn`` (a module-level function) and the tasks must be
        picklable, and a task's result must depend only on the task (seed it with a
        :meth:`seed_sequence` child), so that the numbers do not depend on where tasks run.
        """
        tasks = list(tasks)
        return list(self.progress(self.mapper(fn, tasks), total=len(tasks), label=label))

    # -- recorders
    def check(self, name, passed, detail="", expected=None, observed=None):
        self.result.checks.append(Check(name, bool(passed), detail, _jsonable(expected), _jsonable(observed)))
        return bool(passed)

    def table(self, title, columns, rows, note="", constant=()):
        """Record a table: one value per column in every row.

        Parameters
        ----------
        title : str
        columns : sequence of str
        rows : sequence of sequences, each of length ``len(columns)``
        note : str, optional
            Markdown shown under the table.
        constant : sequence of str, optional
            Columns with the same value in every row: report.md states them in the note as
            ``column = value for every row`` instead of repeating them (results.json keeps them).
            Columns with no value in any row (None or NaN) are moved to the note automatically.

        Raises
        ------
        TypeError
            ``title`` or a column name is not a string.
        ValueError
            A row has the wrong length, or a ``constant`` column is unknown or not constant.
        """
        if not isinstance(title, str):
            raise TypeError(f"title must be a str; got {type(title).__name__} {title!r}")
        columns = list(columns)
        bad = [(j, c) for j, c in enumerate(columns) if not isinstance(c, str)]
        if bad:
            raise TypeError(f"columns must be strings; columns[{bad[0][0]}] is {bad[0][1]!r} (table {title!r})")
        rows = [_jsonable(list(r)) for r in rows]
        for i, r in enumerate(rows):
            if len(r) != len(columns):
                raise ValueError(f"rows[{i}] of table {title!r} has {len(r)} values; it must have one per column, "
                                 f"{len(columns)} ({columns})")
        constant = list(constant)
        for c in constant:
            if c not in columns:
                raise ValueError(f"constant names column {c!r}, which is not one of the columns {columns}")
            j = columns.index(c)
            diff = [i for i, r in enumerate(rows) if r[j] != rows[0][j]]
            if diff:
                raise ValueError(f"constant column {c!r} of table {title!r} is not constant: rows[{diff[0]}] has "
                                 f"{rows[diff[0]][j]!r}, rows[0] has {rows[0][j]!r}")
        self.result.tables.append(Table(title, columns, rows, str(note), constant))

    def note(self, text):
        self.result.notes.append(text)

    def skip(self, reason):
        """Stop the case here and report it as skipped (not failed) with ``reason``."""
        raise CaseSkipped(reason)

    def require(self, module, install):
        """Import and return ``module``, or skip the case saying it is not installed and how to install it."""
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError as exc:
            self.skip(f"{module} is not installed ({exc}): {install}")

    def finding(self, **row):
        """Record a fact about another framework.  Findings never fail the case.

        Keys: :data:`FINDING_COLUMNS` with spaces as underscores, plus any extra numbers for results.json.
        """
        keys = [c.replace(" ", "_") for c in FINDING_COLUMNS]
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"finding is missing {missing}; got keys {sorted(row)}")
        self.result.findings.append(_jsonable(dict(row)))

    def source_finding(self, document, claim, verdict, numbers):
        """Record what this case found about a formula in one of the source documents.

        Parameters
        ----------
        document : str
            A key of :data:`validation.sources.SOURCES` (``"forum"``, ``"xu_slides"``, ``"rebar_report"``,
            ``"sobolev_slides"``).
        claim : str
            The formula or statement under test, quoted briefly (plain text, shown literally).
        verdict : str
            ``"correct"``, ``"wrong"`` or ``"imprecise"``.
        numbers : str
            What was measured, with the numbers (e.g. "its mean is 0.12, the exact gradient −0.05").
        """
        from .sources import SOURCES

        if document not in SOURCES:
            raise ValueError(f"document must be one of {sorted(SOURCES)}; got {document!r}")
        if verdict not in ("correct", "wrong", "imprecise"):
            raise ValueError(f"verdict must be 'correct', 'wrong' or 'imprecise'; got {verdict!r}")
        self.result.source_findings.append({"document": document, "claim": str(claim), "verdict": verdict,
                                            "numbers": str(numbers)})

    def record(self, **numbers):
        """Store numbers for results.json (not shown in the report)."""
        self.result.numbers.update(_jsonable(numbers))

    def setting(self, **settings):
        """Record sample sizes and other settings (shown in the report)."""
        self.result.settings.update(_jsonable(settings))

    def figure(self, name, title, draw):
        """Draw a figure with matplotlib if available: ``draw(fig)`` fills a new Figure.

        Saved as ``<out>/figures/<case>-<name>.png``.  Without matplotlib the report
        says the figure was skipped.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.result.figures.append(Figure(title, None))
            return None
        fig = plt.figure(figsize=(6.4, 4.2))
        try:
            draw(fig)
            rel = Path("figures") / f"{self.case.name}-{name}.png"
            (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            fig.tight_layout()
            fig.savefig(self.out_dir / rel, dpi=110)
        finally:
            plt.close(fig)
        self.result.figures.append(Figure(title, str(rel)))
        return rel


def run_case(case, quick, seed, out_dir, reporter=None, mapper=None):
    """Run one case; never raises (an exception becomes a failed result with its traceback).

    ``reporter`` receives :meth:`Context.progress` events (``begin(case, label, total)``,
    ``step(case, label)``, ``end(case, label)``); by default they are dropped.  ``mapper(fn, tasks)``
    runs the tasks of :meth:`Context.map` (default: the builtin ``map``).
    """
    ctx = Context(case, quick, seed, out_dir)
    if reporter is not None:
        ctx.reporter = reporter
    if mapper is not None:
        ctx.mapper = mapper
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            case.run(ctx)
        except CaseSkipped as exc:
            ctx.result.skip_reason = exc.reason
        except Exception:  # noqa: BLE001 - the report must show every failure
            ctx.result.error = traceback.format_exc()
    ctx.result.warnings = _summarise_warnings(caught)
    ctx.result.seconds = time.perf_counter() - start
    return ctx.result


def _summarise_warnings(caught):
    """Warnings a case raised, as ``{"category", "where", "message", "count"}``.

    One per distinct place and category, first message kept: they go to the report instead of the terminal.
    """
    out = {}
    for w in caught:
        key = (w.category.__name__, f"{Path(w.filename).name}:{w.lineno}")
        if key in out:
            out[key]["count"] += 1
        else:
            out[key] = {"category": key[0], "where": key[1], "message": str(w.message), "count": 1}
    return list(out.values())
