"""Tables of the validation report render with a real Markdown parser (markdown-it-py, CommonMark + tables).

For every table: it renders as one <table>, the header has one cell per declared column, every
body row of the source has that many cells, and every cell's rendered text is the value the
case recorded (``n/a`` for a missing one).  Checked on synthetic tables with nasty cells, on a
real report of two cheap cases, and (``-m slow``) on the ``--quick`` report of every case.
"""
import json
import math
import re
from html.parser import HTMLParser

import pytest

markdown_it = pytest.importorskip("markdown_it")

from validation import runner  # noqa: E402
from validation.core import Case, Context, run_case  # noqa: E402
from validation.report import Markup, condense_table, escape_cell, format_value, markdown_table, write_report  # noqa: E402

MD = markdown_it.MarkdownIt("commonmark").enable("table")

NASTY = ["p(z|φ)", "|default − refined|", "E[z | b]", "a\\b", "x\\|y", "end\\", "two\nlines", "*not bold*",
         "straight_through and _x_", "`not code`", "<b>not html</b>", "&amp;", "~~not struck~~", "$x$",
         "[not](a link)", "a | b | c", "η* var", "![img](x.png)", "#"]


class _Tables(HTMLParser):
    """Collects every <table> as (header texts, [row texts])."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.cell, self.row, self.in_head = [], None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "thead":
            self.in_head = True
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None
        elif tag == "thead":
            self.in_head = False
        elif tag == "tr":
            head, body = self.tables[-1]
            if self.in_head:
                head.extend(self.row)
            else:
                body.append(self.row)

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def rendered_tables(markdown):
    parser = _Tables()
    parser.feed(MD.render(markdown))
    return parser.tables


def source_cells(line):
    """Cells of one source table row, split at unescaped pipes as a GFM table does."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return re.split(r"(?<!\\)\|", inner)


def table_blocks(markdown):
    """Consecutive lines starting with '|' (each a table in the source)."""
    blocks, cur = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    return blocks


def check_report_tables(markdown):
    """Every source table renders as one <table> of the declared shape; returns the rendered tables."""
    blocks = table_blocks(markdown)
    assert blocks, "no table in the report"
    for block in blocks:
        ncol = len(source_cells(block[1]))
        tables = rendered_tables("\n".join(block) + "\n")
        assert len(tables) == 1, f"does not render as one table:\n{block[0]}"
        head, body = tables[0]
        assert len(head) == ncol == len(source_cells(block[0])), block[0]
        assert len(body) == len(block) - 2
        for line in block[2:]:
            assert len(source_cells(line)) == ncol, f"{len(source_cells(line))} cells for {ncol} columns: {line}"
    whole = rendered_tables(markdown)
    assert len(whole) == len(blocks), "a table is not separated from the text around it"
    return whole


def expected_text(v):
    return " ".join(str(format_value(v)).split())


def check_case_tables(results_json, markdown):
    """Every table a case recorded: row lengths match its columns in results.json, and report.md shows
    its condensed columns with each cell's text round-tripped."""
    rendered = iter(check_report_tables(markdown))
    for case in results_json["cases"]:
        for t in case["tables"]:
            for i, row in enumerate(t["rows"]):
                assert len(row) == len(t["columns"]), (case["name"], t["title"], i, len(row), len(t["columns"]))
            columns, rows, _ = condense_table(t["columns"], t["rows"], t.get("constant", ()))
            want_head = [expected_text(c) for c in columns]
            # the next rendered table with this header (summary tables lie between); body is read after the break
            for head, body in rendered:  # noqa: B007
                if [" ".join(h.split()) for h in head] == want_head:
                    break
            else:
                raise AssertionError(f"{case['name']}: table {t['title']!r} not found with header {want_head}")
            got = [[" ".join(c.split()) for c in r] for r in body]
            assert got == [[expected_text(v) for v in r] for r in rows], (case["name"], t["title"])


# -- (a) synthetic tables -------------------------------------------------------------------------

def test_nasty_cells_round_trip():
    columns = ["p(z|φ)", "a\\b", "col_x", "E[z | b]"]
    rows = [[NASTY[i + j] for j in range(4)] for i in range(0, len(NASTY) - 4)]
    rows += [[None, float("nan"), "nan", float("inf")], [float("-inf"), 1e-5, 0.0, ""], [True, 3, 2.5, "ok"]]
    md = markdown_table(columns, rows)
    (head, body), = check_report_tables(md)
    assert head == columns
    assert [[" ".join(c.split()) for c in r] for r in body] == [[expected_text(v) for v in r] for r in rows]
    assert body[-3][:3] == ["n/a", "n/a", "n/a"] and body[-3][3] == "inf" and body[-2][0] == "-inf"


def test_markup_cells_keep_their_markdown_and_escape_pipes():
    md = markdown_table(["case", "verdict"], [[Markup("[a|b](#x)"), Markup("**FAIL**")]])
    html = MD.render(md)
    assert '<a href="#x">a|b</a>' in html and "<strong>FAIL</strong>" in html


def test_the_checker_catches_unescaped_cells():
    naive = "| a | b |\n|---|---|\n| p(z|φ) | 1 |\n"
    with pytest.raises(AssertionError):
        check_report_tables(naive)
    short = "| a | b | c |\n|---|---|---|\n| 1 | 2 |\n"  # a row with a missing value
    with pytest.raises(AssertionError):
        check_report_tables(short)
    with pytest.raises(ValueError, match=r"rows\[0\] has 2 values for 3 columns"):
        markdown_table(["a", "b", "c"], [[1, 2]])


def test_escape_cell_is_literal():
    assert escape_cell("a\nb|c") == "a b\\|c"
    for text in NASTY:
        (head, _), = rendered_tables(f"| {escape_cell(text)} |\n|---|\n")
        assert head == [" ".join(text.split())], text


def _case_with_tables(ctx):
    ctx.table("T|1", ["x", "empty", "τ", "p(z|φ)"], [[1, None, 0.5, "a|b"], [2, float("nan"), 0.5, "c"]],
              note="a note", constant=["τ"])
    ctx.table("nothing to drop", ["a", "b"], [[1, 2], [2, 3]])
    ctx.table("undeclared constant", ["k", "p"], [[1, 0.0], [2, 0.0]])
    ctx.check("ok", True)


def test_empty_and_constant_columns_move_to_the_note(tmp_path):
    res = run_case(Case("t", "T", "s", "d", _case_with_tables), True, 0, str(tmp_path))
    assert res.error is None, res.error
    write_report([res], tmp_path, quick=True, seed=0, seconds=1.0)
    md = (tmp_path / "report.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["cases"][0]["tables"][0]["columns"] == ["x", "empty", "τ", "p(z|φ)"]  # json keeps every column
    check_case_tables(data, md)
    table = [t for t in rendered_tables(md) if t[0][0] == "x"]
    assert table == [(["x", "p(z|φ)"], [["1", "a|b"], ["2", "c"]])]
    assert "a note *Columns not shown:* τ = 0.5 for every row; no value in any row: empty." in md
    assert "*Columns not shown:* p = 0 for every row." in md  # found without being declared
    assert md.count("Columns not shown") == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(columns=["a", "b"], rows=[[1, 2], [3]]), r"rows\[1\] .* has 1 values; it must have one per column, 2"),
    (dict(columns=["a", "b"], rows=[[1, 2], [3, 4]], constant=["a"]), r"'a' .* not constant: rows\[1\] has 3"),
    (dict(columns=["a"], rows=[[1]], constant=["z"]), r"constant names column 'z'"),
])
def test_table_rejects_bad_shapes(tmp_path, kwargs, match):
    ctx = Context(Case("t", "T", "s", "d", _case_with_tables), True, 0, tmp_path)
    with pytest.raises(ValueError, match=match):
        ctx.table("T", **kwargs)
    with pytest.raises(TypeError, match="columns must be strings"):
        ctx.table("T", ["a", 3], [[1, 2]])


def test_summary_fits_one_screen_and_links_failures(tmp_path):
    def run(ctx):
        ctx.check("good", True)
        ctx.check("bad | one", False, "detail")
        ctx.source_finding("xu_slides", "z = μ + xσ²", "wrong", "variance σ⁴")
        ctx.table("unbiasedness_test p-values", ["p"], [[0.5]])

    res = run_case(Case("c1", "Case | one", "s", "d", run), True, 0, str(tmp_path))
    write_report([res], tmp_path, quick=True, seed=0, seconds=1.0)
    md = (tmp_path / "report.md").read_text()
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert len(summary.strip().splitlines()) <= 40
    html = MD.render(summary)
    assert '<a href="#c1">Case | one</a>' in html and "bad | one" in html and "Nothing" not in summary
    assert "How p-values are combined" in summary and '<a id="c1"></a>' in md
    check_report_tables(md)


# -- (b) a real report ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    import io

    out = tmp_path_factory.mktemp("report")
    runner.run(["xu_slides_gaussian", "rebar_report_mixture"], quick=True, jobs=1, out_dir=str(out),
               stream=io.StringIO())
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text()


def test_real_report_tables_render(real_report):
    data, md = real_report
    assert all(c["error"] is None for c in data["cases"]), [c["error"] for c in data["cases"]]
    check_case_tables(data, md)
    assert sum(len(c["tables"]) for c in data["cases"]) >= 10
    assert "## Summary" in md.split("<a id=")[0]


# -- (c) every case --------------------------------------------------------------------------------

@pytest.mark.slow
def test_full_quick_report_tables_render(tmp_path):
    import io

    runner.run(None, quick=True, out_dir=str(tmp_path), stream=io.StringIO())
    data = json.loads((tmp_path / "results.json").read_text())
    check_case_tables(data, (tmp_path / "report.md").read_text())
    assert not any(isinstance(v, float) and math.isnan(v) for c in data["cases"] for t in c["tables"]
                   for r in t["rows"] for v in r)
