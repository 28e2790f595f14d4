"""Module and function sizes in refgrad/: at most 600 lines of code per module, 80 per function body.

Lines of code are the source lines that hold a token other than a comment, and are not part of a docstring
(module, class or function).  Read from the source with :mod:`ast` and :mod:`tokenize`; nothing is imported.
"""
import ast
import io
import pathlib
import tokenize

ROOT = pathlib.Path(__file__).resolve().parents[2] / "refgrad"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
_LAYOUT = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


def code_lines(source):
    """``(set of line numbers holding code, the parsed tree)`` of a module's source."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _LAYOUT:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return lines, tree


def oversized(root=ROOT, max_module=MAX_MODULE_LINES, max_function=MAX_FUNCTION_LINES):
    """Readable lines naming every module and function body beyond the limits (empty: none)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines, tree = code_lines(path.read_text())
        name = path.relative_to(root.parent)
        if len(lines) > max_module:
            found.append(f"{name}: {len(lines)} lines of code (at most {max_module})")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = node.body[0].lineno
                count = sum(1 for n in lines if start <= n <= node.end_lineno)
                if count > max_function:
                    found.append(f"{name}:{node.lineno} {node.name}: {count} lines of code (at most {max_function})")
    return found


def test_no_module_or_function_beyond_the_limits():
    assert oversized() == []


def test_the_count_sees_code_and_not_docstrings_or_comments(tmp_path):
    """The check is not vacuous: a planted long function is reported, its docstring and comments are not counted."""
    package = tmp_path / "refgrad"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}  # comment" for i in range(81))
    doc = '    """' + "\n".join(["A docstring line."] * 200) + '"""\n'
    (package / "long.py").write_text(f"def f():\n{doc}    # a comment line\n{body}\n")
    (package / "short.py").write_text(f"def g():\n{doc}" + "\n".join(f"    y{i} = {i}" for i in range(80)) + "\n")
    assert oversized(package) == ["refgrad/long.py:1 f: 81 lines of code (at most 80)"]
    assert oversized(package, max_module=50) == [
        "refgrad/long.py: 82 lines of code (at most 50)", "refgrad/long.py:1 f: 81 lines of code (at most 80)",
        "refgrad/short.py: 81 lines of code (at most 50)"]
