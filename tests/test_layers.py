"""The import graph of the source packages (static, every ``import`` statement, function-local ones included):
layers point one way and no module imports itself back through others.

    data_contracts  <-  tasks, models  <-  serving  <-  flows (and the CLI)

Cycles are looked for in the whole graph, a package's ``__init__`` included.

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


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = REPO) -> nx.DiGraph:
    """module -> the modules it imports. ``from pkg import name``: an edge to ``pkg.name`` when that is a module
    (the package's ``__init__`` only runs first, as for any import of a submodule), else to ``pkg``."""
    modules = {module_name(p, root): p for pkg in PACKAGES if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in named if t in modules]
                if len(targets) < len(named):  # some names are attributes of the module itself
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t in modules and t != name:
                    graph.add_edge(name, t)
    return graph


def against_layers(graph: nx.DiGraph) -> set[tuple[str, str]]:
    """The imports of ``graph`` that go against ``ALLOWED`` (a package may always import itself)."""
    return {(a, b) for a, b in graph.edges if b.split(".")[0] not in ALLOWED[a.split(".")[0]] | {a.split(".")[0]}}


def cycles(graph: nx.DiGraph) -> set[frozenset[str]]:
    """Every import cycle of ``graph``, as the set of its modules (a package's ``__init__`` included)."""
    return {frozenset(c) for c in nx.simple_cycles(graph)}


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_imports_point_down_the_layers(graph):
    against = against_layers(graph)
    assert against - KNOWN == set(), "new imports against the layers"
    assert KNOWN - against == set(), "fixed: remove these from KNOWN"


def test_no_import_cycles_between_modules(graph):
    found = cycles(graph)
    assert found - KNOWN_CYCLES == set()
    assert KNOWN_CYCLES - found == set(), "fixed: remove these from KNOWN_CYCLES"


def test_relative_imports_are_not_used():
    """The graph reads absolute imports only: a relative one would hide an edge."""
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level], path


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
    """The graph on a made-up tree: a model importing a task, a contract importing a model, and a cycle through a
    package's __init__ are all found (so the tests above can fail)."""
    files = {
        "data_contracts/__init__.py": "", "data_contracts/types.py": "from models.net import Net\n",
        "tasks/__init__.py": "", "tasks/stage/__init__.py": "from tasks.stage.run import go\n",
        "tasks/stage/run.py": "from tasks.stage import helper\nfrom tasks.stage import VALUE\n",
        "tasks/stage/helper.py": "import math\n",
        "models/__init__.py": "", "models/net.py": "def f():\n    from tasks.stage import helper\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = import_graph(tmp_path)
    assert against_layers(g) == {("data_contracts.types", "models.net"), ("models.net", "tasks.stage.helper")}
    assert ("tasks.stage.run", "tasks.stage.helper") in g.edges  # a submodule import names the submodule ...
    assert cycles(g) == {frozenset({"tasks.stage", "tasks.stage.run"})}  # ... a name defined in the package's
    # __init__ closes a cycle


def test_the_pipeline_and_the_models_never_import_serving_or_flows(graph):
    for a, b in graph.edges:
        if a.split(".")[0] in ("data_contracts", "tasks", "models"):
            assert b.split(".")[0] not in ("serving", "flows"), (a, b)
