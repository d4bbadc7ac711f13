"""The import graph of the source packages (static, every ``import`` statement, function-local ones included):
layers point one way and no module imports itself back through others.

    data_contracts  <-  tasks, models  <-  serving  <-  flows (and the CLI)

``KNOWN`` / ``KNOWN_CYCLES`` list the exceptions still in the code: the test fails on any new one, and on a
listed one that is gone (so the lists only shrink).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("data_contracts", "tasks", "models", "serving", "flows")
ALLOWED = {  # package -> the packages it may import
    "data_contracts": set(),
    "tasks": {"data_contracts"},
    "models": {"data_contracts"},
    "serving": {"data_contracts", "tasks", "models"},
    "flows": {"data_contracts", "tasks", "models", "serving"},
}
KNOWN: set[tuple[str, str]] = set()  # (module, imported module) against the direction, still to be moved
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    modules = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t in modules and t != name:
                    graph.add_edge(name, t)
    return graph


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_imports_point_down_the_layers(graph):
    against = {(a, b) for a, b in graph.edges if b.split(".")[0] not in ALLOWED[a.split(".")[0]] | {a.split(".")[0]}}
    assert against - KNOWN == set(), "new imports against the layers"
    assert KNOWN - against == set(), "fixed: remove these from KNOWN"


def test_no_import_cycles_between_modules(graph):
    # a package's __init__ re-exporting its modules is not a cycle of the design: drop parent -> child edges
    g = graph.copy()
    g.remove_edges_from([(a, b) for a, b in graph.edges if b.startswith(a + ".")])
    cycles = {frozenset(c) for c in nx.simple_cycles(g)}
    assert cycles - KNOWN_CYCLES == set()
    assert KNOWN_CYCLES - cycles == set(), "fixed: remove these from KNOWN_CYCLES"


def test_the_pipeline_and_the_models_never_import_serving_or_flows(graph):
    for a, b in graph.edges:
        if a.split(".")[0] in ("data_contracts", "tasks", "models"):
            assert b.split(".")[0] not in ("serving", "flows"), (a, b)
