"""The folder listing tells the architecture, and imports run one way (docs/design.md).

main.py uses live/ (what a live run adds), which uses the design modules at the top, which use
foundation/ (the stand-ins and shared rules). These tests read every module's imports, those
inside functions too, so a shortcut taken anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.program import PACKAGES, ROOT

DESIGN_MODULES = {"main", "config", "api_layer", "redis_adapter", "db", "backup_data"}
LAYERS = {"foundation": 0, "design": 1, "live": 2, "main": 3}
"""A module may import modules of its own layer or of a lower one, never of a higher one."""


def project_modules() -> dict[str, Path]:
    """Every module of the program, by its dotted name."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def layer(module: str) -> int:
    if module == "main":
        return LAYERS["main"]
    top = module.split(".")[0]
    return LAYERS[top] if top in LAYERS else LAYERS["design"]


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The program's own modules that ``path`` imports (``from foundation import records`` is
    foundation.records; a name imported from a module is that module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} - _parents(name)
            for name, path in modules.items()}


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_the_top_level_holds_the_design_modules_only():
    """The seed's design modules are the only Python modules at the top level."""
    assert {path.stem for path in ROOT.glob("*.py")} == DESIGN_MODULES


def test_no_module_imports_a_higher_layer():
    """foundation/ imports nothing above it, the design modules nothing from live/ or main."""
    upward = sorted(f"{module} imports {imported}"
                    for module, imported_set in import_graph().items()
                    for imported in imported_set if layer(imported) > layer(module))
    assert upward == []


def test_foundation_does_not_read_config():
    """The stand-ins take what they need as arguments: config.py is read above them."""
    graph = import_graph()
    assert sorted(m for m, imported in graph.items()
                  if m.startswith("foundation") and "config" in imported) == []


def test_no_circular_imports():
    """No module reaches itself through the imports of the modules it imports."""
    graph = import_graph()
    cycles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
