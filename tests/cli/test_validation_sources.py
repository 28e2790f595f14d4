"""The source-document and toy validation cases cite their sources by what they are, and their tables are whole.

Static checks read the case modules' text and their ``CASE`` objects (no case is run), except one end-to-end
run of the fastest case (xu_slides_gaussian, about 2 s) for the recorded tables and source findings.
"""
import importlib
import math
from pathlib import Path

import pytest

from validation.core import run_case
from validation.sources import SOURCES, cite

CASES_DIR = Path(__file__).resolve().parents[2] / "validation" / "cases"

#: case module -> the source keys its CASE.source must cite
CITED = {
    "forum_experts": ["forum"],
    "xu_slides_gaussian": ["xu_slides"],
    "rebar_report_mixture": ["rebar_report"],
    "sobolev_slides_variance": ["sobolev_slides"],
    "optimisation": ["rebar_report"],
    "toy": [],
}

#: wording that points at files outside the repository or at internal labels a reader cannot resolve
FORBIDDEN = ["seed 00", "seed00", "seeds/", "design.md", "the seed's", "the seed "]


def _case(name):
    return importlib.import_module(f"validation.cases.{name}").CASE


@pytest.mark.parametrize("name", sorted(CITED))
def test_case_text_has_no_unresolvable_reference(name):
    text = (CASES_DIR / f"{name}.py").read_text(encoding="utf-8").lower()
    found = [w for w in FORBIDDEN if w in text.replace(f"{name}".lower(), "")]
    assert not found, f"{name}.py mentions {found}: cite the document by what it is (validation.sources.cite)"


@pytest.mark.parametrize("name", sorted(CITED))
def test_case_cites_its_documents(name):
    case = _case(name)
    for key in CITED[name]:
        assert cite(key) in case.source, f"{name}: source {case.source!r} does not cite {key!r}"
    for field in (case.title, case.source, case.description):
        assert "seed 0" not in field.lower()


def test_toy_description_starts_with_a_summary():
    assert _case("toy").description.startswith("**Summary.**")


def test_cite_rejects_unknown_key():
    with pytest.raises(ValueError, match="key must be one of"):
        cite("seed 000")
    assert set(SOURCES) == {"forum", "xu_slides", "rebar_report", "sobolev_slides"}


def test_xu_slides_tables_are_whole_and_findings_recorded(tmp_path):
    result = run_case(_case("xu_slides_gaussian"), True, 0, tmp_path)
    assert result.passed, [c.name for c in result.checks if not c.passed] or result.error
    for table in result.tables:
        for row in table.rows:
            assert len(row) == len(table.columns), (table.title, row)
            for value in row:
                assert not (isinstance(value, float) and not math.isfinite(value)), (table.title, row)
                assert value not in ("nan", "inf", "-inf"), (table.title, row)
    verdicts = [f["verdict"] for f in result.source_findings]
    assert {f["document"] for f in result.source_findings} == {"xu_slides"}
    assert "wrong" in verdicts and "correct" in verdicts
