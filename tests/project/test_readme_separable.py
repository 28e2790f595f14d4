"""The README's "Exact moments at any dimension" example runs as written and prints what the README says."""
import subprocess
import sys
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]


def _fences():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Exact moments at any dimension")
    end = text.index("\n## ", start + 1)
    tokens = MarkdownIt().parse(text[start:end])
    return [(t.info.strip(), t.content) for t in tokens if t.type == "fence"]


def test_separable_example_is_the_example_file_and_prints_what_the_readme_says():
    fences = _fences()
    code = [c for info, c in fences if info == "python"]
    printed = [c for info, c in fences if info == ""]
    assert len(code) == 1 and len(printed) == 1
    example = ROOT / "examples" / "separable_example.py"
    assert code[0] == example.read_text(encoding="utf-8")
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == printed[0]
