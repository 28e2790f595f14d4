"""Markdown and JSON output of a validation run.

Every table of report.md, the summary tables included, is written by :func:`markdown_table`, and
every cell goes through :func:`escape_cell`: a cell is literal text (``|``, backslashes, ``*``,
``_``, brackets and the like are escaped, line breaks become spaces), so that a CommonMark
renderer with tables (GitHub, markdown-it-py) shows exactly the text the case wrote.  Text that
is meant as markdown (a link, bold) is wrapped in :class:`Markup`; only its ``|`` are escaped.
A missing value (``None`` or NaN) is printed as ``n/a``; ``inf`` and ``-inf`` are kept.

A table drops, from report.md only, the columns that have no value in any row and the columns a
case declared constant (``ctx.table(..., constant=[...])``); the table's note says which and
their value.  results.json keeps every column.
"""
import datetime
import math
import platform
import re
from pathlib import Path

__all__ = ["write_report", "markdown_table", "escape_cell", "escape_text", "Markup", "format_value",
           "condense_table", "summary_lines", "PVALUE_FALLBACK"]

#: How combined p-values are formed, used when refgrad.stats has no ``COMBINED_PVALUE_EXPLANATION``.
PVALUE_FALLBACK = ("Unbiasedness p-values combine Hotelling's T² test and per-coordinate t-tests with Holm's "
                   "correction as min(1, 2·min(p_T², p_Holm)); with one coordinate the two coincide and the single "
                   "exact t-test p-value is reported.")

# ASCII characters with a markdown meaning inside a table cell (GitHub adds ~ for strikethrough, $ for math)
_SPECIAL = re.compile(r"([\\`*_\[\]<>&~$!])")
_FINDINGS_ANCHOR = "findings-other-frameworks"
_SOURCES_ANCHOR = "findings-source-documents"
VERDICTS = ("wrong", "imprecise", "correct")


class Markup(str):
    """A cell or text that is markdown already (a link, emphasis): :func:`escape_cell` escapes only its ``|``."""


def _is_missing(v):
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return isinstance(v, str) and not isinstance(v, Markup) and v.strip().lower() == "nan"


def format_value(v):
    """The text of one cell value: numbers to 6 significant digits, ``None``/NaN as ``n/a``."""
    if _is_missing(v):
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v == 0.0:
            return "0"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if abs(v) >= 1e4 or abs(v) < 1e-3:
            return f"{v:.4e}"
        return f"{v:.6g}"
    return v if isinstance(v, Markup) else str(v)


def escape_text(text):
    """``text`` as literal inline markdown (no table context): specials backslash-escaped, line breaks as spaces.

    ``|`` is left alone; :func:`escape_cell` escapes it.
    """
    text = str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return _SPECIAL.sub(r"\\\1", text)


def escape_cell(text):
    r"""A table cell's text made safe for a markdown table.

    Plain text becomes literal (see :func:`escape_text`); a :class:`Markup` keeps its markdown.
    In both, every ``|`` is written ``\|`` (a GFM table splits cells at unescaped pipes, also
    inside code spans) and line breaks become spaces.
    """
    if isinstance(text, Markup):
        out = str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    else:
        out = escape_text(text)
    return out.replace("|", "\\|")


def markdown_table(columns, rows):
    """A markdown table; header and cells go through :func:`format_value` and :func:`escape_cell`.

    Raises ``ValueError`` when a row does not have one value per column.
    """
    columns = list(columns)
    lines = ["| " + " | ".join(escape_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for i, r in enumerate(rows):
        r = list(r)
        if len(r) != len(columns):
            raise ValueError(f"rows[{i}] has {len(r)} values for {len(columns)} columns {columns}")
        lines.append("| " + " | ".join(escape_cell(format_value(v)) for v in r) + " |")
    return "\n".join(lines)


def condense_table(columns, rows, constant=()):
    """Drop empty and declared-constant columns: ``(columns, rows, note)`` with the note saying what was dropped.

    A column is empty when every row's value is missing (None, NaN or ""); a table without rows
    keeps its columns.  ``constant`` names columns whose single value moves to the note as
    ``column = value for every row``; so does, in a table of two rows or more, every column that shows
    the same value in every row (results.json keeps all columns).
    """
    columns, rows = list(columns), [list(r) for r in rows]
    if not rows:
        return columns, rows, ""
    empty = [j for j, _ in enumerate(columns) if all(_is_missing(r[j]) or r[j] == "" for r in rows)]
    same = [j for j in range(len(columns)) if len(rows) > 1 and len({format_value(r[j]) for r in rows}) == 1]
    const = [j for j, c in enumerate(columns) if (c in set(constant) or j in same) and j not in empty]
    drop = set(empty) | set(const)
    if len(drop) == len(columns):
        return columns, rows, ""
    parts = [f"{escape_text(columns[j])} = {escape_text(format_value(rows[0][j]))} for every row" for j in const]
    if empty:
        parts.append("no value in any row: " + ", ".join(escape_text(columns[j]) for j in empty))
    if not parts:
        return columns, rows, ""
    keep = [j for j in range(len(columns)) if j not in drop]
    return [columns[j] for j in keep], [[r[j] for j in keep] for r in rows], "; ".join(parts) + "."


def _link(text, anchor):
    return Markup(f"[{escape_text(text)}](#{anchor})")


def _uses_combined_pvalues(results):
    words = ("unbiasedness", "assert_unbiased", "combined p")
    for r in results:
        texts = [r.description] + r.notes + [c.name + " " + c.detail for c in r.checks]
        texts += [t.title + " " + t.note + " " + " ".join(map(str, t.columns)) for t in r.tables]
        if any(w in str(t).lower() for t in texts for w in words):
            return True
    return False


def _pvalue_explanation():
    try:
        from refgrad import stats
    except ImportError:  # pragma: no cover - refgrad is this project
        return PVALUE_FALLBACK
    return getattr(stats, "COMBINED_PVALUE_EXPLANATION", PVALUE_FALLBACK)


def _failed_items(results, limit=8):
    items = []
    for r in results:
        if r.error:
            items.append(f"- {_link(r.title, r.name)}: error `{r.error.strip().splitlines()[-1][:100]}`")
        if not r.checks and not r.skipped and not r.error:
            items.append(f"- {_link(r.title, r.name)}: no checks were recorded")
        for c in r.checks:
            if not c.passed:
                items.append(f"- {_link(r.title, r.name)}: {escape_text(c.name)}")
    if len(items) > limit:
        items = items[:limit] + [f"- … and {len(items) - limit} more (see the case sections)"]
    return items or ["Nothing: every check of every case passed."]


def _framework_summary(results):
    groups = {}
    for r in results:
        for f in r.findings:
            key = (str(f.get("framework", "")), str(f.get("version", "")))
            g = groups.setdefault(key, {"n": 0, "bad": 0, "cases": []})
            g["n"] += 1
            g["bad"] += not str(f.get("verdict", "")).lower().startswith("agree")
            if r.name not in g["cases"]:
                g["cases"].append(r.name)
    rows = [[fw, ver, g["n"], g["bad"], Markup(", ".join(_link(c, c) for c in g["cases"]))]
            for (fw, ver), g in groups.items()]
    return markdown_table(["framework", "version", "facts checked", "problems found", "case"], rows)


def _source_summary(results):
    from .sources import cite

    groups = {}
    for r in results:
        for f in r.source_findings:
            g = groups.setdefault(f["document"], {"cases": [], **{v: 0 for v in VERDICTS}})
            g[f["verdict"]] = g.get(f["verdict"], 0) + 1
            if r.name not in g["cases"]:
                g["cases"].append(r.name)
    rows = [[cite(doc), *[g[v] for v in VERDICTS], Markup(", ".join(_link(c, c) for c in g["cases"]))]
            for doc, g in groups.items()]
    return markdown_table(["document", *[f"claims {v}" for v in VERDICTS], "case"], rows)


def _source_findings_section(results):
    from .sources import cite

    rows = [[_link(r.name, r.name), cite(f["document"]), f["claim"], f["verdict"], f["numbers"]]
            for r in results for f in r.source_findings]
    return [f'<a id="{_SOURCES_ANCHOR}"></a>', "## Findings about the source documents", "",
            "Each row is one formula or statement of a source document, the verdict of the case that checked it, "
            "and the numbers measured.", "", markdown_table(["case", "document", "claim", "verdict", "numbers"], rows),
            ""]


def summary_lines(results):
    """The one-screen summary that leads report.md (cases, what failed, findings, p-values)."""
    lines = ["## Summary", ""]
    rows = []
    for r in results:
        verdict = {"PASS": "PASS", "FAIL": Markup("**FAIL**"), "SKIPPED": "SKIPPED"}[r.status]
        rows.append([_link(r.title, r.name), verdict, f"{sum(c.passed for c in r.checks)}/{len(r.checks)}",
                     f"{r.seconds:.1f}"])
    lines += [markdown_table(["case", "verdict", "checks passed", "seconds"], rows), ""]
    lines += ["**What failed**", ""] + _failed_items(results) + [""]
    if any(r.source_findings for r in results):
        lines += ["**Findings about the source documents** (details: "
                  + _link("all source findings", _SOURCES_ANCHOR) + ")", "", _source_summary(results), ""]
    if any(r.findings for r in results):
        lines += ["**Findings about other frameworks** (details: " + _link("all findings", _FINDINGS_ANCHOR) + ")",
                  "", _framework_summary(results), ""]
    if _uses_combined_pvalues(results):
        lines += ["**How p-values are combined.** " + escape_text(_pvalue_explanation()), ""]
    return lines


def _findings_table(findings, with_case=False):
    from .core import FINDING_COLUMNS

    keys = [c.replace(" ", "_") for c in FINDING_COLUMNS]
    columns = (["case"] if with_case else []) + FINDING_COLUMNS
    rows = [([_link(f["case"], f["case"])] if with_case else []) + [f.get(k, "") for k in keys] for f in findings]
    return markdown_table(columns, rows)


def _case_lines(r):
    lines = ["", f'<a id="{r.name}"></a>', f"## {r.title}", "", f"*Source:* {r.source}", "", r.description, ""]
    if r.skipped:
        lines += [f"**Skipped:** {r.skip_reason}", ""]
    if r.settings:
        lines += ["*Settings:* " + ", ".join(f"{escape_text(k)} = {escape_text(format_value(v))}"
                                             for k, v in r.settings.items()), ""]
    for t in r.tables:
        columns, rows, dropped = condense_table(t.columns, t.rows, getattr(t, "constant", ()))
        lines += [f"**{t.title}**", "", markdown_table(columns, rows), ""]
        note = " ".join(x for x in (t.note, f"*Columns not shown:* {dropped}" if dropped else "") if x)
        if note:
            lines += [note, ""]
    for fgr in r.figures:
        if fgr.path is None:
            lines += [f"*Figure skipped (matplotlib not installed): {fgr.title}*", ""]
        else:
            lines += [f"![{fgr.title}]({fgr.path})", "", f"*{fgr.title}*", ""]
    if r.findings:
        lines += ["**Findings**", "", _findings_table(r.findings), ""]
    for n in r.notes:
        lines += [n, ""]
    if r.warnings:
        lines += ["**Warnings raised during this case** (caught and shown here instead of the terminal)", "",
                  markdown_table(["category", "where", "times", "first message"],
                                 [[w["category"], w["where"], w["count"], w["message"]] for w in r.warnings]), ""]
    lines += ["**Checks**", ""]
    for c in r.checks:
        mark = "✔" if c.passed else "✘ **FAILED**"
        lines.append(f"- {mark} {c.name}" + (f" — {c.detail}" if c.detail else ""))
    if not r.checks and not r.skipped:
        lines.append("- ✘ **no checks were recorded**")
    elif not r.checks:
        lines.append("- none (skipped)")
    if r.error:
        lines += ["", "**Error**", "", "```", r.error.rstrip(), "```"]
    return lines + ["", f"**Verdict: {r.status}** ({r.seconds:.1f} s)"]


def write_report(results, out_dir, quick, seed, seconds, command=None):
    """Write ``report.md`` (summary first, then one section per case) and ``results.json`` into ``out_dir``."""
    import numpy

    import refgrad

    from .runner import dump_json

    out_dir = Path(out_dir)
    cmd = command or f"python -m validation{' --quick' if quick else ''} --seed {seed}"
    lines = [
        "# refgrad validation report",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- refgrad {refgrad.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}",
        f"- mode: {'quick' if quick else 'full'}; seed {seed}; wall time {seconds:.1f} s",
        "",
    ]
    lines += summary_lines(results)
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines += [f"- *{r.name} skipped:* {escape_text(r.skip_reason)}" for r in skipped] + [""]
    if any(r.source_findings for r in results):
        lines += _source_findings_section(results)
    findings = [{"case": r.name, **f} for r in results for f in r.findings]
    if findings:
        lines += [f'<a id="{_FINDINGS_ANCHOR}"></a>', "## Findings about other frameworks", "",
                  "Facts about the installed versions of other frameworks, found by refgrad.crosscheck. They are "
                  "not failures of this run; the cases' own checks (controls on refgrad's samplers and "
                  "estimators) are listed with each case.", "", _findings_table(findings, with_case=True)]
    for r in results:
        lines += _case_lines(r)
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    dump_json(results, out_dir / "results.json", quick=quick, seed=seed, seconds=seconds, command=cmd)
