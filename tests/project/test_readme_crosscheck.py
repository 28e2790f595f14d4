"""The README's "Checking another framework" example runs as written and prints what the README says."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _section():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Checking another framework")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_example_is_the_example_file_and_prints_what_the_readme_says():
    pytest.importorskip("torch")
    blocks = re.findall(r"```(\w*)\n(.*?)```", _section(), flags=re.S)
    code = [b for lang, b in blocks if lang == "python"]
    printed = [b for lang, b in blocks if lang == ""]
    assert len(code) == 1 and len(printed) == 1
    example = ROOT / "examples" / "crosscheck_example.py"
    assert code[0] == example.read_text(encoding="utf-8")
    assert len(code[0].strip().splitlines()) <= 20
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == printed[0]
