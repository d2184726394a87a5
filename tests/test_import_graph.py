"""The project's import graph: no cycles, and no project import hidden inside a function.

Walks the AST of every module of the four packages. An import inside a function is allowed
only with a comment on the line before it or on the same line saying why (Django app
loading, an optional dependency, a process that must not load something).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.sources import parse_source

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "jobs", "datazen", "dataflux")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Project modules an import statement loads (a `from x import y` may name a module y)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod.
        for alias in node.names:
            names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    result = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            result.append(name)
    return result


@functools.cache
def _graph() -> tuple[dict[str, set[str]], list[str]]:
    return _walk()


def _walk() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    known = set(modules)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    hidden: list[str] = []
    for name, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = parse_source(source)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if not isinstance(inner, ast.Import | ast.ImportFrom):
                    continue
                targets = _imported(inner, name, is_package, known)
                if not targets:
                    continue
                before = lines[inner.lineno - 2].strip() if inner.lineno >= 2 else ""
                same = lines[inner.lineno - 1]
                explained = before.startswith("#") or "#" in same
                # A comment may also stand above a block of imports: look up past imports.
                row = inner.lineno - 2
                while (
                    not explained
                    and row >= 0
                    and lines[row].strip().startswith(("from ", "import "))
                ):
                    row -= 1
                    explained = row >= 0 and lines[row].strip().startswith("#")
                if not explained:
                    hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno} imports {targets[0]}")
        for node in tree.body:  # module level (`if TYPE_CHECKING:` blocks are not run)
            for target in _imported(node, name, is_package, known):
                if target != name:
                    edges[name].add(target)
    return edges, hidden


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    edges, _ = _graph()
    cycles = _cycles(edges)
    assert not cycles, "import cycles between modules:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_no_unexplained_import_inside_a_function() -> None:
    _, hidden = _graph()
    assert not hidden, "project imports inside functions without a comment saying why:\n" + (
        "\n".join(sorted(hidden))
    )


def test_the_checker_sees_a_cycle_and_a_hidden_import(tmp_path: Path) -> None:
    # given two modules that import each other
    edges = {"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": set()}
    # then
    assert _cycles(edges) == [["a.x", "a.y"]]
    # and an import statement resolves to the project module it loads
    tree = ast.parse("from jobs.sync import spec")
    known = {"jobs", "jobs.sync", "jobs.sync.spec"}
    assert "jobs.sync.spec" in _imported(tree.body[0], "jobs.x", False, known)
