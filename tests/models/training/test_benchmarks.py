"""The training benchmarks run end to end (slow: they time the demo-sized models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu_and_writes_its_figures(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_train.py"), "--cpu", "--quick",
                          "--configs", "demo", "--out", str(tmp_path)], capture_output=True, text=True, timeout=1800,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    (result,) = json.loads((tmp_path / "gpu_train.json").read_text())
    assert result["device"] == "cpu" and result["bf16"] is False
    for key in ("localizer_train_samples_per_s", "captioner_train_samples_per_s", "infer_ms_per_lesion_b1_greedy",
                "infer_ms_per_lesion_b32_greedy", "infer_ms_per_lesion_b32_beam3"):
        assert result[key] > 0
