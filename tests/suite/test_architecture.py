"""The design's rules about imports, checked on the source: no import cycle between the suite's
modules, counting the imports written inside functions (which import-linter's contracts also
see, but a cycle through them is easy to miss in review); and every import written inside a
function says why it is there (heavy code kept off the request path, or Django's app registry
not being ready), unless it sits in an ``AppConfig.ready()``."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tailored", "consent", "segments", "segments_ml", "personalization", "cms_blocks")


def _modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    found = {}
    for app in APPS:
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Edges between the suite's modules (module-level and function-local imports alike), and
    the function-local imports as (module, line, source text)."""
    modules = _modules(root)
    edges: dict[str, set[str]] = defaultdict(set)
    local: list[tuple[str, int, str]] = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for module, (path, is_package) in modules.items():
        source = path.read_text()
        tree = ast.parse(source)
        lines = source.splitlines()
        in_function = set()
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                in_function.update(
                    id(n) for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)
                )
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, is_package, node)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                resolved = resolve(target)
                if resolved and resolved != module:
                    edges[module].add(resolved)
            if id(node) in in_function:
                text = " ".join(lines[node.lineno - 1 : node.end_lineno])
                local.append((module, node.lineno, text))
    return edges, local


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_the_suites_modules_even_through_function_local_imports():
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path):
    app = tmp_path / "segments"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "a.py").write_text("from . import b\n")
    (app / "b.py").write_text("def f():\n    from . import a  # lazy\n")
    edges, local = import_graph(tmp_path)
    assert cycles(edges) == [["segments.a", "segments.b"]]
    assert local == [("segments.b", 2, "    from . import a  # lazy")]


def _is_app_ready(module: str) -> bool:
    return module.endswith(".apps")


def explained(lines: list[str], line: int, text: str) -> bool:
    """An import carries its reason: a comment on its own line(s), or a comment just above the
    run of imports it belongs to."""
    if "#" in text:
        return True
    i = line - 2
    while i >= 0:
        above = lines[i].strip()
        if above.startswith("#"):
            return True
        if above and not above.startswith(("from ", "import ", ")")) and not above.endswith(","):
            return False
        i -= 1
    return False


@pytest.mark.parametrize("app", APPS)
def test_every_function_local_import_says_why(app):
    """A function-local import is an exception (numpy/scikit-learn or Celery kept off the
    request path...): it carries a comment with the reason. ``AppConfig.ready()`` is exempt,
    since Django wants models and signal handlers imported there."""
    _, local = import_graph()
    source_lines = {}
    unexplained = []
    for module, line, text in local:
        if module.split(".")[0] != app or _is_app_ready(module):
            continue
        path = _modules()[module][0]
        lines = source_lines.setdefault(module, path.read_text().splitlines())
        if not explained(lines, line, text):
            unexplained.append(f"{module}:{line}: {text.strip()}")
    assert unexplained == []


def test_an_import_without_a_reason_is_found():
    lines = ["def f():", "    x = 1", "    from . import a", "    # numpy: lazy", "    import b"]
    assert not explained(lines, 3, lines[2])
    assert explained(lines, 5, lines[4])
    assert explained(["def f():", "    from . import c  # lazy: numpy"], 2, "from . import c  # n")
