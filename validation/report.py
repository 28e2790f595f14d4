"""Markdown and JSON output of a validation run."""
import datetime
import platform
from pathlib import Path

__all__ = ["write_report", "markdown_table", "escape_cell"]


def _fmt(v):
    if isinstance(v, float):
        if v == 0.0:
            return "0"
        if abs(v) >= 1e4 or abs(v) < 1e-3:
            return f"{v:.4e}"
        return f"{v:.6g}"
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return v
    return str(v)


def escape_cell(text):
    """A table cell's text made safe for a markdown table: ``|`` escaped, line breaks as spaces."""
    return str(text).replace("\\|", "|").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(escape_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(escape_cell(_fmt(v)) for v in r) + " |")
    return "\n".join(lines)


def _findings_table(findings, with_case=False):
    from .core import FINDING_COLUMNS

    keys = [c.replace(" ", "_") for c in FINDING_COLUMNS]
    columns = (["case"] if with_case else []) + FINDING_COLUMNS
    rows = [([f["case"]] if with_case else []) + [f.get(k, "") for k in keys] for f in findings]
    return markdown_table(columns, rows)


def write_report(results, out_dir, quick, seed, seconds, command=None):
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
        "| case | verdict | checks | seconds |",
        "|---|---|---|---|",
    ]
    for r in results:
        verdict = {"PASS": "PASS", "FAIL": "**FAIL**", "SKIPPED": "SKIPPED"}[r.status]
        lines.append(f"| [{escape_cell(r.title)}](#{r.name}) | {verdict} | "
                     f"{sum(c.passed for c in r.checks)}/{len(r.checks)} | {r.seconds:.1f} |")
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines += [""] + [f"- *{r.name} skipped:* {r.skip_reason}" for r in skipped]
    findings = [{"case": r.name, **f} for r in results for f in r.findings]
    if findings:
        lines += ["", "## Findings about other frameworks", "",
                  "Facts about the installed versions of other frameworks, found by refgrad.crosscheck. They are "
                  "not failures of this run; the cases' own checks (controls on refgrad's samplers and "
                  "estimators) are listed with each case.", "", _findings_table(findings, with_case=True)]
    for r in results:
        lines += ["", f'<a id="{r.name}"></a>', f"## {r.title}", "", f"*Source:* {r.source}", "", r.description, ""]
        if r.skipped:
            lines += [f"**Skipped:** {r.skip_reason}", ""]
        if r.settings:
            lines.append("*Settings:* " + ", ".join(f"{k} = {v}" for k, v in r.settings.items()))
            lines.append("")
        for t in r.tables:
            lines += [f"**{t.title}**", "", markdown_table(t.columns, t.rows), ""]
            if t.note:
                lines += [t.note, ""]
        for fgr in r.figures:
            if fgr.path is None:
                lines += [f"*Figure skipped (matplotlib not installed): {fgr.title}*", ""]
            else:
                lines += [f"![{fgr.title}]({fgr.path})", "", f"*{fgr.title}*", ""]
        if r.findings:
            lines += ["**Findings**", "", _findings_table(r.findings), ""]
        for n in r.notes:
            lines += [n, ""]
        lines.append("**Checks**")
        lines.append("")
        for c in r.checks:
            mark = "✔" if c.passed else "✘ **FAILED**"
            lines.append(f"- {mark} {c.name}" + (f" — {c.detail}" if c.detail else ""))
        if not r.checks and not r.skipped:
            lines.append("- ✘ **no checks were recorded**")
        elif not r.checks:
            lines.append("- none (skipped)")
        if r.error:
            lines += ["", "**Error**", "", "```", r.error.rstrip(), "```"]
        lines += ["", f"**Verdict: {r.status}** ({r.seconds:.1f} s)"]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    dump_json(results, out_dir / "results.json", quick=quick, seed=seed, seconds=seconds, command=cmd)
