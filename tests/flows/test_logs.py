"""Logging is configured once: pipeline loggers print INFO lines, a second call adds no second handler."""

from __future__ import annotations

import logging
import subprocess
import sys


def test_cli_logging_prints_pipeline_info_lines_once():
    code = ("from flows.logs import configure_logging as c; c(); c(); import logging; "
            "logging.getLogger('models.training.loop').info('captioner epoch 1/2: train_loss 1.5')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if "epoch 1/2" in ln]
    assert len(lines) == 1 and "INFO models.training.loop: captioner epoch 1/2: train_loss 1.5" in lines[0]
    assert logging.getLogger("models").propagate  # pytest's caplog (and a host's root handler) still see them
