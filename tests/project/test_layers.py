"""The package's layers: imports go one way, with no cycle, counting imports inside functions.

Each module of ``refgrad`` belongs to one layer (by its dotted name); a module may import modules of its own
layer and of the layers below it, never above.  Two packages of the same layer (``relaxations`` and
``stats``) do not import each other.  Inside ``refgrad.estimators`` the row kernels
(``estimators.kernels``) import no estimator module.  An import inside a function counts like any other;
only optional heavy dependencies (torch, jax, tensorflow, matplotlib, dask) may be imported there.  The
graph is read from the source with :mod:`ast` (nothing is imported), so a test here fails as soon as an
upward import or a cycle is written, wherever it is.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "refgrad"

#: Bottom to top.  A tuple groups packages of one layer that must not import each other.
LAYERS = (
    ("refgrad._core",),
    ("refgrad.random",),
    ("refgrad.relaxations", "refgrad.stats"),
    ("refgrad.distributions",),
    ("refgrad.objectives",),
    ("refgrad._oracle",),
    ("refgrad.multisample",),
    ("refgrad.estimators",),
    ("refgrad._moments",),
    ("refgrad.exact", "refgrad.limits"),
    ("refgrad.testing",),
    ("refgrad.crosscheck",),
    ("refgrad",),
)
#: Packages that may be imported inside a function (optional, heavy, imported on first use).
LAZY_ALLOWED = ("torch", "jax", "jaxlib", "tensorflow", "matplotlib", "dask", "distributed")
#: What the row kernels may import from refgrad.estimators.
KERNEL_ALLOWED = ("refgrad.estimators.kernels", "refgrad.estimators._fused")


def _module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name, modules):
    return name in modules


def read_graph(root=ROOT):
    """``(edges, lazy)``: ``edges[m]`` the refgrad modules ``m`` imports (set), ``lazy`` the imports inside functions.

    ``lazy`` lists ``(module, line, imported name)`` for every import statement inside a function body.
    ``from package import name`` is an edge to ``package.name`` when that is a module, else to ``package``
    (importing a submodule runs its package's ``__init__`` first; that is not counted as an import of it).
    """
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    edges, lazy = {m: set() for m in files}, []
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, in_function in _imports(tree):
            for target in _targets(node, package):
                if in_function:
                    lazy.append((module, node.lineno, target))
                if target.split(".")[0] != "refgrad":
                    continue
                while target not in files and "." in target:  # an attribute of a module: the module
                    target = target.rpartition(".")[0]
                if target != module:
                    edges[module].add(target)
    return edges, lazy


def _imports(tree):
    """``(import node, whether it is inside a function)`` for every import statement of ``tree``."""
    stack = [(child, False) for child in ast.iter_child_nodes(tree)]
    while stack:
        node, in_function = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
            continue
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _targets(node, package):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package.split(".")
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module
    return [f"{source}.{alias.name}" for alias in node.names]


def layer_of(module):
    """``(layer index, group)`` of a refgrad module: the longest matching prefix in :data:`LAYERS`."""
    best = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (i, prefix)
    return best


def violations(edges, lazy):
    """Every breach of the rules in the module docstring, as readable lines (empty: none)."""
    found = []
    for module, targets in sorted(edges.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if there[0] > here[0]:
                found.append(f"upward import: {module} (layer {here[1]}) imports {target} (layer {there[1]})")
            elif there[0] == here[0] and there[1] != here[1]:
                found.append(f"sideways import: {module} imports {target}, a sibling package of the same layer")
            if module.startswith("refgrad.estimators.kernels") and target.startswith("refgrad.estimators") \
                    and not target.startswith(KERNEL_ALLOWED):
                found.append(f"a row kernel imports an estimator module: {module} imports {target}")
    for module, line, target in lazy:
        if target.split(".")[0] not in LAZY_ALLOWED:
            found.append(f"import inside a function: {module}, line {line}: {target}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return found


def cycles(edges):
    """One cycle per strongly connected component of more than one module (Tarjan), as a closed path."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_closed_path(sorted(c), edges) for c in components]


def _closed_path(component, edges):
    """A path through ``component`` from its first module back to it (breadth first)."""
    start, members = component[0], set(component)
    previous, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ())):
                if w == start:
                    path = [v]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
                if w in members and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def test_every_module_has_a_layer():
    edges, _ = read_graph()
    assert len(edges) > 40
    assert [m for m in edges if layer_of(m) is None] == []


def test_imports_go_one_way_with_no_cycle():
    edges, lazy = read_graph()
    assert violations(edges, lazy) == []


@pytest.mark.parametrize("module, target, expected", [
    ("refgrad._core.checks", "refgrad.random", "upward import"),
    ("refgrad._oracle.stream", "refgrad.estimators", "upward import"),
    ("refgrad.stats.variance", "refgrad.relaxations", "sideways import"),
    ("refgrad.estimators.kernels.score", "refgrad.estimators.score", "a row kernel imports an estimator module"),
])
def test_a_planted_upward_import_is_reported(module, target, expected):
    """The checker is not vacuous: one added edge of each kind is reported."""
    edges, lazy = read_graph()
    assert module in edges and target in edges
    edges[module].add(target)
    assert any(line.startswith(expected) and module in line for line in violations(edges, lazy))


def test_a_planted_cycle_and_function_level_import_are_reported(tmp_path):
    """Read from files, as the real check is: a cycle inside one layer and an import inside a function."""
    package = tmp_path / "refgrad"
    (package / "_core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_core" / "__init__.py").write_text("")
    (package / "_core" / "a.py").write_text("from . import b\n")
    (package / "_core" / "b.py").write_text("def f():\n    from .a import g\n    import torch\n")
    edges, lazy = read_graph(package)
    found = violations(edges, lazy)
    assert "import cycle: refgrad._core.a -> refgrad._core.b -> refgrad._core.a" in found
    assert "import inside a function: refgrad._core.b, line 2: refgrad._core.a.g" in found
    assert not any("torch" in line for line in found)
