"""What every flow shares: the settings a flow run works on, its logger, and running its body without Prefect.

Deployed flows take plain JSON parameters (Prefect stores and validates them); the working set is chosen by
``home`` (a folder: raw drop, stores, tables, runs all derive from it) or, when it is not given, by the
environment of the worker (``PETCAP_HOME`` and the other ``PETCAP_`` variables, e.g. set as job variables).

``plain_calls``: the command line without a Prefect server runs a flow's body (``flow.fn``) with every task
(``flows.task_wrappers``) a plain call of its step — the same composition, no flow or task runs, so no ephemeral
API server is started (14-28 s measured, ``flows.commands.common``) and no retries are made. ``run_logger`` is the run's logger in a flow run and
the ``flows`` logger in plain calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from data_contracts.settings import Settings, get_settings

_PLAIN_CALLS: ContextVar[bool] = ContextVar("petcap_plain_calls", default=False)


def flow_settings(home: str | None = None, raw_dir: str | None = None) -> Settings:
    """Settings from the environment, with the flow's ``home`` / ``raw_dir`` parameters taking precedence."""
    overrides = {k: v for k, v in (("home", home), ("raw_dir", raw_dir)) if v}
    return Settings(**overrides) if overrides else get_settings()


@contextmanager
def plain_calls() -> Iterator[None]:
    """Within: a project task called outside a flow run is a plain call of its step (``in_plain_calls``)."""
    token = _PLAIN_CALLS.set(True)
    try:
        yield
    finally:
        _PLAIN_CALLS.reset(token)


def in_plain_calls() -> bool:
    return _PLAIN_CALLS.get()


def calls_are_plain() -> bool:
    """Under ``plain_calls`` and outside a flow run: a project task is a plain call of its step and the logger
    the ``flows`` one (a flow run started within ``plain_calls`` still has task runs and the run's logger)."""
    from prefect.context import FlowRunContext

    return in_plain_calls() and FlowRunContext.get() is None


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger (its lines in the UI); the ``flows`` logger in plain calls (no run to log to)."""
    from prefect import get_run_logger

    if calls_are_plain():
        return logging.getLogger("flows")
    return get_run_logger()
