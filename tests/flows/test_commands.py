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


def test_benchmark_command_leaves_the_home_to_the_flow_and_prints_the_summary_it_returns(tmp_path, monkeypatch,
                                                                                       capsys):
    """``petcap benchmark --seeds N`` without --home: the flow picks its default home (``benchmark_home``) and
    the command prints the summary path the flow returns, not one it builds itself."""
    import argparse
    import dataclasses

    import flows.benchmark as bench
    from flows.commands.model_stages import cmd_benchmark
    from tasks.evaluate.seeds import seed_summary
    from tests.tasks.evaluate.fakes import seed_evaluation

    ev = seed_evaluation(0, {"B": 0.0})
    long = ev.configs["B"].per_sample.rename_axis("sample_id").reset_index().assign(config="B", seed=0)
    overall = ev.overall.reset_index().assign(seed=0)
    got = {}

    def fake_flow(**params):
        got.update(params)
        return dataclasses.replace(seed_summary(long, overall, overall[["seed"]]), report=tmp_path / "x" / "s.md")

    monkeypatch.setattr(bench, "benchmark_seeds_flow", fake_flow)
    args = argparse.Namespace(home=None, patients=None, preset="benchmark", seeds=2)
    assert cmd_benchmark(args) == 0
    assert got["home"] is None and got["seeds"] == [0, 1]
    assert capsys.readouterr().out.splitlines()[-1] == f"summary: {tmp_path / 'x' / 's.md'}"
    cmd_benchmark(argparse.Namespace(home=str(tmp_path / "h"), patients=None, preset="benchmark", seeds=1))
    assert got["home"] == str(tmp_path / "h")
