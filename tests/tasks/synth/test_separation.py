"""The generator is a separate sub-package: no pipeline stage imports ``tasks.synth``.

Only the CLI and flows (``petcap synth``, the demo), the benchmark orchestrator, benchmarks and tests may; a
pipeline stage that imported it would run on synthetic assumptions in a hospital.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ALLOWED = {"tasks/evaluate/benchmark.py"}  # `petcap benchmark` synthesises its own cohort


def _imports_synth(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tasks.synth")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("tasks.synth") or (node.module == "tasks" and any(
                    a.name == "synth" for a in node.names)):
                found.append(node.module)
    return found


def test_no_pipeline_stage_imports_the_generator():
    offenders = {}
    for top in ("data_contracts", "tasks", "models"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("tasks/synth/") or rel in ALLOWED:
                continue
            if hits := _imports_synth(path):
                offenders[rel] = hits
    assert offenders == {}


def test_the_check_sees_an_import():
    assert _imports_synth(ROOT / "tasks/synth/cohort.py")
    assert _imports_synth(ROOT / "flows/task_wrappers.py")
