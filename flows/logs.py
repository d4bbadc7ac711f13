"""Logging, configured once per process for the CLI and the flows.

The pipeline's modules log through standard loggers named after them (``tasks.ingest.ingest``,
``models.training.loop``, ``serving.study``, ...). ``configure_logging`` gives those packages one stderr handler
with a timestamped format at INFO (``PETCAP_LOG_LEVEL`` to change it), and names them to Prefect as extra
loggers (``PREFECT_LOGGING_EXTRA_LOGGERS``) so inside a flow run the same lines reach the run's log in the UI (and
Prefect's console handler prints them there, ours stays quiet: one line each). Libraries keep their own levels.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGES = ("data_contracts", "tasks", "models", "serving", "flows")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_done: list[bool] = []


def _outside_prefect_runs(record: logging.LogRecord) -> bool:
    """Inside a flow or task run Prefect prints (and stores) these loggers' records itself: ours would repeat."""
    if "prefect" not in sys.modules:
        return True
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is None and TaskRunContext.get() is None


def configure_logging(level: str | None = None) -> None:
    """Idempotent: the first call sets the handlers, later calls change nothing."""
    if _done:
        return
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", ",".join(PACKAGES))  # read when prefect is imported
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_outside_prefect_runs)
    lvl = (level or os.environ.get("PETCAP_LOG_LEVEL") or "INFO").upper()
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(lvl)
        logger.addHandler(handler)  # records still propagate (pytest's caplog, a root handler of the host)
    _done.append(True)
