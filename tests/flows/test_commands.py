"""The model-stage commands on the command line: ``petcap train`` without a Prefect server configured runs the
flow's steps as plain calls (no ephemeral API server) and prints a line per epoch with the loss and a validation
metric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.flows.conftest import TINY_LOCALIZER, home_copy

REPO = Path(__file__).resolve().parents[2]


def test_train_without_a_server_prints_each_epoch_and_starts_no_prefect_api(refreshed, tmp_path):
    home = home_copy(refreshed, tmp_path / "home")
    sets = [a for k, v in {**TINY_LOCALIZER, "loop.epochs": 3}.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PETCAP_", "PREFECT_API"))}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "--home", str(home), "train", "localizer", *sets],
                          cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "temporary server" not in out and "Flow run" not in out and "Task run" not in out
    epochs = re.findall(r"localizer epoch (\d)/3: train_loss [\d.e+-]+, val_top1 [\d.e+-]+", proc.stderr)
    assert epochs == ["1", "2", "3"], proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["epochs"] == 3 and Path(summary["checkpoint"]).is_file() and summary["mlflow_run_id"]
