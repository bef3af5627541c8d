"""The package's layers flow one way, with no import circle: read from the source, not from a diagram.

From the bottom: shared values (windows, exceptions, the vendor catalog) < ``transport/`` (one request) <
``engine/`` and ``filters`` (one walk) < ``hooks/`` (vendor declarations) < ``output/`` (records and objects) <
``tasks/`` (what Airflow tasks share) < operators, sensors, triggers. The shipped simulators (``testing/``) import
nothing of the provider but the vendor catalog, so the hooks are never tested against themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_conversations"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
RANKS = {
    "": 0, "exceptions": 0, "logs": 0, "windows": 0, "stats": 0, "catalog": 0,
    "transport": 1,
    "engine": 2, "filters": 2,
    "hooks": 3,
    "output": 4,
    "tasks": 5,
    "operators": 6, "sensors": 6, "triggers": 6, "get_provider_info": 6,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Modules of this package that ``name`` imports anywhere (also inside functions and TYPE_CHECKING)."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            target = node.module.removeprefix(PACKAGE).lstrip(".")
            for alias in node.names:  # ``from airflow_provider_conversations.output import storage``: the module
                submodule = f"{target}.{alias.name}".lstrip(".")
                found.add(submodule if submodule in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix(PACKAGE).lstrip(".") for a in node.names if a.name.startswith(PACKAGE))
    return {m for m in found if m in MODULES and m != name}


def _rank(name: str) -> int:
    return RANKS[name.split(".")[0] if name else ""]


RUNTIME = sorted(m for m in MODULES if not m.startswith("testing"))


@pytest.mark.parametrize("module", RUNTIME)
def test_a_module_imports_only_its_own_layer_or_lower_ones(module):
    upward = sorted(m for m in _imports(module) if not m.startswith("testing") and _rank(m) > _rank(module))
    assert not upward, f"{module} (layer {_rank(module)}) imports higher layers: {upward}"
    assert not any(m.startswith("testing") for m in _imports(module)), f"{module} imports the simulators"


def test_there_is_no_import_circle():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_simulators_import_nothing_of_the_provider():
    """Only the vendor catalog (data: which simulator serves which vendor)."""
    for module in (m for m in MODULES if m.startswith("testing")):
        foreign = sorted(m for m in _imports(module) if not m.startswith("testing") and m != "catalog")
        assert not foreign, f"{module} imports {foreign}"


TASK_NAMES = {"Context", "BaseOperator", "BaseSensorOperator", "XComArg", "PokeReturnValue", "TaskInstance"}


@pytest.mark.parametrize("module", [m for m in RUNTIME if _rank(m) < RANKS["tasks"]])
def test_no_airflow_task_knowledge_below_the_task_layer(module):
    tree = ast.parse(MODULES[module].read_text())
    names = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.module or "").startswith("airflow.") for a in node.names}
    assert not names & TASK_NAMES, f"{module} imports {sorted(names & TASK_NAMES)}"
    assert "data_interval" not in MODULES[module].read_text(), f"{module} reads a run's data interval"
