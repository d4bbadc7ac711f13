"""The CLI error table: wrong commands a new team types, each answered with one line that says what to do.

Every row runs the real ``petcap`` command line in a subprocess: exit code 2 for usage and prerequisite mistakes,
no traceback without ``--debug``, a message naming the fix, and an answer in seconds — these mistakes cannot pass
on a retry, so nothing retries them. The time limit is on the command's CPU time (5 s), which the shared test
machine's load does not inflate; the wall clock only has to stay clear of Prefect's retry delays.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from data_contracts.settings import Settings
from tests.flows.conftest import REPO, home_copy

CPU_LIMIT_S = 5.0
WALL_LIMIT_S = 60.0


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # after `petcap --home <home>`; "{tmp}", "{raw}" are filled in
    home: str  # empty | refreshed | no_val | registry
    code: int
    says: tuple[str, ...]  # substrings of the one error line (what is wrong, what to do)
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("unknown config", ["train", "localizer", "--config", "nosuch"], "refreshed", 2,
         ("no training config 'nosuch'", "use --config", "demo")),
    Case("unknown config key", ["train", "captioner", "--set", "loop.epoch=3"], "refreshed", 2,
         ("has no field 'epoch'", "epochs")),
    Case("cohort without a validation split", ["train", "captioner"], "no_val", 2,
         ("val split has no caption samples", "at least 3 patients", "petcap refresh")),
    Case("captioner before localizer", ["train", "captioner"], "refreshed", 2,
         ("no trained localizer", "petcap train localizer")),
    Case("unwritable store", ["ingest", "--raw", "{raw}", "--store", "{tmp}/a-file/volumes.zarr"], "empty", 2,
         ("cannot be written", "choose a folder you can write")),
    Case("missing report file", ["structure", "{tmp}/missing.txt"], "empty", 2,
         ("missing.txt", "no such report file", "- for standard input")),
    Case("unknown model version", ["promote", "--candidate", "99"], "registry", 2,
         ("model version 99", "not registered", "petcap train captioner")),
    Case("evaluate before anything is registered", ["evaluate"], "refreshed", 2,
         ("no model is registered", "petcap train localizer")),
    Case("evaluate before promote", ["evaluate"], "registry", 2,
         ("'champion' alias", "run `petcap promote` first")),
    Case("empty split", ["evaluate", "--split", "val"], "no_val", 2, ("val split has no caption samples",)),
    Case("link on an empty home", ["link"], "empty", 2, ("no studies table", "check --home")),
    Case("refresh without a delivery", ["refresh", "--raw", "{tmp}/nowhere"], "empty", 2,
         ("no manifest.csv", "--raw")),
    Case("split on an empty home", ["split"], "empty", 2, ("no studies table", "petcap ingest")),
    Case("caption a missing study", ["caption", "{tmp}/no-study"], "empty", 2,
         ("no such study folder", "ct.nii.gz")),
    Case("withdraw on an empty home", ["withdraw", "PETCT_1", "--reason", "consent"], "empty", 2,
         ("no deliveries table",)),
    Case("misspelt setting", ["split"], "empty", 2, ("PETCAP_LLM_MODEL", "did you mean PETCAP_LLM__MODEL"),
         env={"PETCAP_LLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"}),
    Case("setting that does not parse", ["split"], "empty", 2, ("setting splits.ratios", "PETCAP_"),
         env={"PETCAP_SPLITS__RATIOS": "[1, 0]"}),
    Case("argument argparse refuses", ["train", "detector"], "empty", 2, ("invalid choice: 'detector'",)),
]


@pytest.fixture(scope="module")
def homes(refreshed, tiny_raw, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-homes")
    out = {"empty": root / "empty", "refreshed": home_copy(refreshed, root / "refreshed"),
           "no_val": home_copy(refreshed, root / "no_val"), "registry": home_copy(refreshed, root / "registry")}
    # a cohort too small for a validation split: the val patients are train patients there
    path = Settings(home=out["no_val"]).table_path("splits")
    splits = pd.read_parquet(path)
    splits.loc[splits["split"] == "val", "split"] = "train"
    splits.to_parquet(path)
    from mlflow import MlflowClient

    settings = Settings(home=out["registry"])
    MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri).create_registered_model(
        settings.tracking.registered_model)
    (root / "a-file").write_text("not a folder")
    return {**out, "tmp": root, "raw": tiny_raw}


def petcap(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``python -m flows.cli`` -> (process, wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PETCAP_")}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(REPO), **(env or {})}, timeout=120, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_wrong_command_gets_one_line_saying_what_to_do(case, homes):
    fill = {"tmp": str(homes["tmp"]), "raw": str(homes["raw"])}
    args = ["--home", str(homes[case.home]), *[a.format(**fill) for a in case.args]]
    proc, wall, cpu = petcap(args, case.env)
    assert proc.returncode == case.code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    for text in case.says:
        assert text in lines[0], lines[0]
    assert cpu < CPU_LIMIT_S and wall < WALL_LIMIT_S, (cpu, wall)


def test_debug_shows_the_traceback(homes):
    proc, _, _ = petcap(["--home", str(homes["empty"]), "structure", str(homes["tmp"] / "missing.txt"), "--debug"])
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "UsageError" in proc.stderr


def test_comma_list_settings_are_accepted(homes, tmp_path):
    report = tmp_path / "report.txt"
    report.write_text("FDG PET/CT. FINDINGS: Osteolytic lesion in the T7 vertebral body, SUVmax 6.1.")
    proc, _, _ = petcap(["--home", str(homes["empty"]), "structure", str(report), "--backend", "rules"],
                        {"PETCAP_LLM__ALLOWED_HOSTS": "vllm,localhost"})
    assert proc.returncode == 0, proc.stderr
    assert Settings(llm={"allowed_hosts": "vllm, localhost"}).llm.allowed_hosts == ("vllm", "localhost")


def test_evaluate_help_says_what_it_uses(homes):
    proc, _, _ = petcap(["evaluate", "--help"])
    assert proc.returncode == 0 and "default: the champion" in proc.stdout and "newest" not in proc.stdout


def test_a_failure_inside_a_flow_is_one_line_too(homes, refreshed, tmp_path):
    """The refresh flow fails (LLM server down: every report fails) -> exit 1, one error line, no traceback from
    Prefect's logs, and the tables untouched."""
    import shutil
    import socket

    home = tmp_path / "home"
    shutil.copytree(refreshed[0], home)
    before = (home / "tables" / "caption_samples.parquet").read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PETCAP_LLM__BACKEND": "openai", "PETCAP_LLM__BASE_URL": f"http://127.0.0.1:{port}/v1",
           "PETCAP_LLM__MAX_RETRIES": "0", "PETCAP_PATCHES__PROCESSES": "false", "PETCAP_PATCHES__WORKERS": "1"}
    proc, wall, _ = petcap(["--home", str(home), "refresh", "--raw", str(homes["raw"])], env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("petcap refresh: error:")]
    assert "reports could not be structured" in line and "is the LLM server up?" in line
    assert (home / "tables" / "caption_samples.parquet").read_bytes() == before
