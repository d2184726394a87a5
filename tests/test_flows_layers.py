"""The flows package's layering, read from the source: the language never imports the runtime,
no module of jobs/flows is part of an import cycle, and a project import inside a function says
why in a comment just above it."""

from __future__ import annotations

import ast
import concurrent.futures
from pathlib import Path

from tests.sources import parse_source

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "jobs" / "flows"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> list[tuple[ast.ImportFrom | ast.Import, str]]:
    """Every project import of a module (`jobs.…`), with the module it names."""
    found: list[tuple[ast.ImportFrom | ast.Import, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name) for alias in node.names if alias.name.startswith("jobs")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jobs"):
            # `from jobs.flows.runtime import engines` imports the module jobs.flows.runtime.engines
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((node, candidate if _is_module(candidate) else node.module))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_only(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _flows_modules() -> dict[str, tuple[Path, ast.AST]]:
    # Parsed on a fresh thread, as tests/test_import_graph.py does: CPython 3.11's ast.parse
    # fails ("AST constructor recursion depth mismatch") on a thread where an earlier test
    # ended in a RecursionError; in a full run this test failed that way now and then.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_parse_flows_modules).result()


def _parse_flows_modules() -> dict[str, tuple[Path, ast.AST]]:
    return {
        _module_name(path): (path, parse_source(path.read_text(), str(path)))
        for path in sorted(FLOWS.rglob("*.py"))
    }


def test_the_language_never_imports_the_runtime() -> None:
    # given
    modules = _flows_modules()
    # when
    offending = [
        f"{name} imports {target}"
        for name, (_, tree) in modules.items()
        if name.startswith("jobs.flows.language")
        for _, target in _imports(tree)
        if target.startswith(("jobs.flows.runtime", "jobs.flows.execute"))
    ]
    # then
    assert any(name.startswith("jobs.flows.language.") for name in modules)
    assert offending == []


def test_the_data_quality_library_knows_no_flow_and_no_django() -> None:
    # given
    modules = _flows_modules()
    # when
    offending = [
        f"{name} imports {target}"
        for name, (_, tree) in modules.items()
        if name.startswith("jobs.flows.quality")
        for _, target in _imports(tree)
        if not target.startswith("jobs.flows.quality")
    ]
    django = [
        name
        for name, (path, _) in modules.items()
        if name.startswith("jobs.flows.quality") and "django" in path.read_text()
    ]
    # then
    assert any(name.startswith("jobs.flows.quality.") for name in modules)
    assert offending == [] and django == []


def test_no_flows_module_is_in_an_import_cycle() -> None:
    # given: the graph of imports that run (TYPE_CHECKING ones do not)
    modules = _flows_modules()
    graph: dict[str, set[str]] = {}
    for name, (_, tree) in modules.items():
        skipped = _type_checking_only(tree)
        graph[name] = {
            target
            for node, target in _imports(tree)
            if target in modules and target != name and node.lineno not in skipped
        }
    # when: a depth-first walk looking for an edge back to a module on the current path
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # then
    assert sum(len(targets) for targets in graph.values()) > 10
    assert cycles == []


def test_a_project_import_inside_a_function_says_why() -> None:
    # given
    modules = _flows_modules()
    unexplained: list[str] = []
    for name, (path, tree) in modules.items():
        lines = path.read_text().splitlines()
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                # when: the lines just above the import (or its block) hold no comment
                above = lines[max(0, node.lineno - 4) : node.lineno - 1]
                if not any(line.strip().startswith("#") for line in above):
                    unexplained.append(f"{name}:{node.lineno}")
    # then
    assert unexplained == []
