"""The row kernels of ``refgrad/estimators/kernels/`` import only what a row needs.

They import ``refgrad._core``, ``refgrad.random``, ``refgrad.relaxations`` and ``refgrad.estimators._fused``:
never an estimator module, the objectives or the distributions (the estimator modules compute what a plan
needs and hand it down).  The package-wide rules -- layers, no cycle, no import inside a function -- are
tested in ``tests/project/test_layers.py``.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "refgrad" / "estimators"
KERNEL_ALLOWED = ("refgrad._core", "refgrad.random", "refgrad.relaxations", "refgrad.estimators._fused")


def _module(path, root=ROOT):
    parts = list(path.relative_to(root.parent.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, root=ROOT):
    """(absolute module imported, whether at the top level) for every refgrad import of ``path``.

    ``root``: the ``refgrad/estimators`` folder ``path`` lies under.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    package = _module(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                names = [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [(name, id(node) in top) for name in names if name.startswith("refgrad")]
    return out


@pytest.mark.parametrize("path", sorted(ROOT.glob("kernels/*.py")), ids=lambda p: p.name)
def test_kernels_import_no_estimator_module(path):
    bad = [name for name, _ in _imports(path) if not name.startswith(KERNEL_ALLOWED)]
    assert not bad, f"{path.name} imports {bad}; kernels may import only {KERNEL_ALLOWED}"


def test_the_check_sees_an_upward_import(tmp_path):
    """Not vacuous: a kernel importing an estimator module, even inside a function, is reported."""
    late = "\n\ndef _late():\n    from ..rebar import _Parts  # noqa: F401\n"
    text = (ROOT / "kernels" / "rebar.py").read_text(encoding="utf-8") + late
    probe = tmp_path / "refgrad" / "estimators" / "kernels" / "rebar.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(text, encoding="utf-8")
    root = tmp_path / "refgrad" / "estimators"
    found = [(name, top) for name, top in _imports(probe, root) if name == "refgrad.estimators.rebar"]
    assert found == [("refgrad.estimators.rebar", False)]
    assert not found[0][0].startswith(KERNEL_ALLOWED)
