"""Markdown and JSON output of a validation run."""
import datetime
import platform
from pathlib import Path

__all__ = ["write_report", "markdown_table"]


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


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(lines)


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
        lines.append(f"| [{r.title}](#{r.name}) | {'PASS' if r.passed else '**FAIL**'} | "
                     f"{sum(c.passed for c in r.checks)}/{len(r.checks)} | {r.seconds:.1f} |")
    for r in results:
        lines += ["", f'<a id="{r.name}"></a>', f"## {r.title}", "", f"*Source:* {r.source}", "", r.description, ""]
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
        for n in r.notes:
            lines += [n, ""]
        lines.append("**Checks**")
        lines.append("")
        for c in r.checks:
            mark = "✔" if c.passed else "✘ **FAILED**"
            lines.append(f"- {mark} {c.name}" + (f" — {c.detail}" if c.detail else ""))
        if not r.checks:
            lines.append("- ✘ **no checks were recorded**")
        if r.error:
            lines += ["", "**Error**", "", "```", r.error.rstrip(), "```"]
        lines += ["", f"**Verdict: {'PASS' if r.passed else 'FAIL'}** ({r.seconds:.1f} s)"]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    dump_json(results, out_dir / "results.json", quick=quick, seed=seed, seconds=seconds, command=cmd)
