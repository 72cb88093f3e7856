"""The layers stay layered: a walk over every module's imports (lazy ones too), so it stays true.

- runfolder/ (the run-folder contract) imports nothing of the project;
- service/ knows nothing of its harness: no runfolder, loadtests, analysis, bench or targets;
- analysis/ reads files: it imports neither bench/ nor service/ (nor loadtests/);
- no import cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runfolder", "service", "loadtests", "analysis", "bench", "targets")
FORBIDDEN = {
    "runfolder": {"service", "loadtests", "analysis", "bench", "targets"},
    "service": {"runfolder", "loadtests", "analysis", "bench", "targets"},
    "analysis": {"service", "loadtests", "bench", "targets"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        if (REPO / pkg).is_dir()
        for p in sorted((REPO / pkg).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that module `name` imports, anywhere in the file (function-level imports count)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_walk_sees_the_project(graph: dict[str, set[str]]) -> None:
    assert {"runfolder.schema", "service.api", "analysis.report", "bench.cli", "loadtests.api"} <= set(graph)
    assert "runfolder.schema" in graph["analysis.load"]  # the walk resolves real imports


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(graph: dict[str, set[str]], layer: str) -> None:
    bad = sorted(
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        if mod.split(".")[0] == layer
        for dep in deps
        if dep.split(".")[0] in FORBIDDEN[layer]
    )
    assert bad == []


def test_no_import_cycle_between_modules(graph: dict[str, set[str]]) -> None:
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []
