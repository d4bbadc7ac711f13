"""Logging, configured once per process for the CLI and the flows.

The pipeline's modules log through standard loggers named after them (``tasks.ingest.ingest``,
``models.training.loop``, ``serving.study``, ...). ``configure_logging`` gives those packages one stderr handler
with a timestamped format at INFO (``PETCAP_LOG_LEVEL`` to change it), and names them to Prefect as extra
loggers (``PREFECT_LOGGING_EXTRA_LOGGERS``) so inside a flow run the same lines reach the run's log in the UI (and
once Prefect's logging is set up its console handler prints them, in a run or not, and ours stays quiet: one
line each). Libraries keep their own levels.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGES = ("data_contracts", "tasks", "models", "serving", "flows")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_done: list[bool] = []


def _prefect_does_not_print(record: logging.LogRecord) -> bool:
    """Once Prefect has set up its logging it prints these loggers' records itself (its console handler on the
    package logger, inside a run and outside one): ours would repeat them."""
    logger = logging.getLogger(record.name.split(".")[0])
    return not any(type(h).__module__.startswith("prefect") for h in logger.handlers)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (a test's capture, a redirected CLI), never
    to the stream that happened to be there when logging was configured (which may be closed by then)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ / setStream assign it; the property above always wins
        pass


def configure_logging(level: str | None = None) -> None:
    """Idempotent: the first call sets the handlers, later calls change nothing."""
    if _done:
        return
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", ",".join(PACKAGES))  # read when prefect is imported
    # outside a flow run (``petcap caption`` without a server) a record has no run to go to: not worth a warning
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_prefect_does_not_print)
    lvl = (level or os.environ.get("PETCAP_LOG_LEVEL") or "INFO").upper()
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(lvl)
        logger.addHandler(handler)  # records still propagate (pytest's caplog, a root handler of the host)
    _done.append(True)
