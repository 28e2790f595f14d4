"""The API as a newcomer meets it: submodules as attributes, help() on an estimator, documented arguments."""
import pydoc
import re
import subprocess
import sys

import pytest

import refgrad


def test_submodules_are_attributes_after_import_refgrad():
    # before: `import refgrad; refgrad.testing` raised AttributeError
    code = ("import sys, refgrad; assert 'refgrad.crosscheck' not in sys.modules; "
            "print(refgrad.testing.assert_unbiased.__name__, refgrad.stats.__name__, refgrad.exact.__name__, "
            "refgrad.estimators.__name__, refgrad.crosscheck.check_log_prob.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["assert_unbiased", "refgrad.stats", "refgrad.exact", "refgrad.estimators",
                                  "check_log_prob"]
    assert {"testing", "crosscheck", "stats", "exact"} <= set(dir(refgrad))
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        refgrad.not_a_module  # noqa: B018


@pytest.mark.parametrize("name", sorted(refgrad.ESTIMATORS))
def test_help_on_an_estimator_shows_its_own_formula_and_source(name):
    # before: help(ESTIMATORS[name]) showed the generic EstimatorSpec class text
    spec = refgrad.ESTIMATORS[name]
    text = pydoc.render_doc(spec, renderer=pydoc.plaintext)
    assert "Declaration of one estimator" not in text
    assert spec.doc.splitlines()[0].strip() in text
    assert ".. math::" in text  # the formula
    years = set(re.findall(r"(?:19|20)\d\d", spec.summary))
    assert years and any(year in text for year in years), (name, years)  # the source of the summary line


def test_estimate_says_n_is_needed_whenever_noise_is_not_given():
    # before: the docstring said n was "required with rng"
    doc = refgrad.estimate.__doc__
    assert "Required whenever ``noise`` is not given" in doc and "Required with ``rng``" not in doc
    dist = refgrad.Bernoulli([0.3])
    with pytest.raises(ValueError, match=r"n must be given .* when noise is not"):
        refgrad.estimate("reinforce", dist, refgrad.objectives.SquaredDistance(0.45))


def _readme_section(title):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_readme_your_own_objective_runs_and_prints_what_it_says():
    # the section did not exist: FunctionObjective, the one-hot convention and fit_relax were not mentioned
    section = _readme_section("Your own objective")
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    code = [b for lang, b in blocks if lang == "python"]
    printed = [b for lang, b in blocks if lang == ""]
    assert len(code) == 1 and len(printed) == 1
    for words in ("FunctionObjective", "(n, d, K)", "one-hot", "fit_relax", "ValueError"):
        assert words in section, words
    out = subprocess.run([sys.executable, "-W", "error", "-c", code[0]], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == printed[0]


def test_readme_documents_numba_cache_dir():
    section = _readme_section("Numba's cache")
    assert "NUMBA_CACHE_DIR" in section and "cache=True" in section and "__pycache__" in section


def test_readme_catalog_lists_every_estimator_with_its_families_and_bias():
    # the catalog stopped at the seed documents' estimators; every registered estimator must have its row
    section = _readme_section("The estimator catalog")
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(refgrad.ESTIMATORS)
    for name, spec in refgrad.ESTIMATORS.items():
        assert rows[name][1] == ", ".join(spec.families), name
        assert rows[name][2] == ("yes" if spec.unbiased else "no"), name
