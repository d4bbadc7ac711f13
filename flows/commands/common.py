"""What the sub-commands share: the settings an invocation works on, and how a flow is run from the command line.

A flow runs as a Prefect flow run (in the UI, with its tasks' retries) when a Prefect API is configured
(``PREFECT_API_URL`` in the environment or the active profile) or ``--flow-server`` is given. Without one, the
flow's body runs with each task as a plain call of its step (``flows.common.plain_calls``): the same composition,
without Prefect's ephemeral API server (and without task retries: a transient failure ends the command with its
one-line error; rerun it — every step is idempotent). The server's start-up, measured as the first run of a
trivial flow in a fresh process (``PREFECT_HOME`` a new temp folder, ``PREFECT_SERVER_ANALYTICS_ENABLED=false``,
no ``PREFECT_API_URL``; Prefect 3.9.1, the project's 2-core machine at load average 4-6): 13.7, 18.3 and 27.8 s
in three runs, where a second run in the same process took 1.1-1.4 s.
"""

from __future__ import annotations

import argparse

from data_contracts.settings import Settings, get_settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with paths given on the command line taking precedence."""
    overrides = {
        name: value
        for name, value in (("home", getattr(args, "home", None)), ("raw_dir", getattr(args, "raw", None)),
                            ("store_url", getattr(args, "store", None)))
        if value
    }
    return Settings(**overrides) if overrides else get_settings()


def prefect_server_configured() -> bool:
    """Whether a Prefect API is configured (``PREFECT_API_URL`` in the environment or the active profile)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def wants_flow_run(args: argparse.Namespace) -> bool:
    """``--flow-server``, or a configured Prefect API without ``--no-flow-server``."""
    if getattr(args, "flow_server", False):
        return True
    return not getattr(args, "no_flow_server", False) and prefect_server_configured()


def run_flow(flow, args: argparse.Namespace, **params):
    """``flow(**params)`` as a flow run when ``wants_flow_run(args)``, else its body with plain step calls."""
    if wants_flow_run(args):  # an ephemeral server gets 120 s to start (``flows.cli.main``)
        return flow(**params)
    from flows.common import plain_calls

    with plain_calls():
        return flow.fn(**params)


def add_flow_server_flags(parser: argparse.ArgumentParser) -> None:
    """``--flow-server`` / ``--no-flow-server`` of a command that runs a flow."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--flow-server", action="store_true",
                   help="run as a Prefect flow run even without a configured Prefect server (ephemeral API: "
                        "its start-up took 14-28 s on 2 busy cores)")
    g.add_argument("--no-flow-server", action="store_true",
                   help="plain function calls even when a Prefect server is configured")
