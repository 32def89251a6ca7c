"""The apps and the adapters import in layers: no module imports, even lazily, one
that imports it back (GitHub issue #19: ``apps/serve.py`` and ``_aio.py`` /
``_threaded.py`` imported each other: ``run_server`` moved to ``launch.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import rfc6455

PACKAGE = Path(rfc6455.__file__).parent
#: The layers this test covers; the engine's own modules are left to theirs.
COVERED = ("rfc6455.apps", "rfc6455.asyncio", "rfc6455.sync", "rfc6455._driver")


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("rfc6455", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere (lazy imports too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in modules else module)
    return {module for module in found if module in modules and module != name}


def _covered(name: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in COVERED)


def test_no_import_cycle_among_apps_and_adapters() -> None:
    modules = _modules()
    graph = {name: {dep for dep in _imports(name, path, modules) if _covered(dep)}
             for name, path in modules.items() if _covered(name)}
    assert "rfc6455.apps.serve" in graph and graph["rfc6455.apps._aio"]  # the test sees them
    cycles: list[tuple[str, ...]] = []
    for start in graph:
        # Depth-first from each module: reaching it again is a cycle.
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    cycles.append((*trail, start))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, (*trail, dep)))
    assert not cycles, cycles
