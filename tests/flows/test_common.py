"""``flows.common.plain_calls``: a flow's body with every project task a plain call of its step (no flow or task run,
no API), and the command line's choice between that and a flow run (``flows.commands.common.run_flow``)."""

from __future__ import annotations

import argparse
import logging

import pytest
from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext

from flows.commands import common as commands
from flows.common import calls_are_plain, in_plain_calls, plain_calls, run_logger
from flows.task_wrappers import _io, _once

SEEN: list[tuple[bool, bool]] = []


def step(x: int) -> int:
    SEEN.append((FlowRunContext.get() is not None, TaskRunContext.get() is not None))
    return 2 * x


double = _io(step, "double", retries=2, delays=[0, 0])
once = _once(step, "once")


@flow
def compose(x: int) -> dict:
    return {"result": once(double(x)), "logger": type(run_logger()).__name__, "plain": calls_are_plain()}


def test_under_plain_calls_a_task_is_its_function_and_the_logger_a_standard_one():
    SEEN.clear()
    assert not in_plain_calls()
    with plain_calls():
        assert in_plain_calls()
        assert double(3) == 6
        assert compose.fn(5) == {"result": 20, "logger": "Logger", "plain": True}
        assert run_logger() is logging.getLogger("flows")
    assert not in_plain_calls()
    assert SEEN == [(False, False)] * 3  # no flow run, no task run


def test_the_command_line_runs_the_body_without_a_server_and_a_flow_run_with_one(prefect_server, monkeypatch):
    args = argparse.Namespace(flow_server=False, no_flow_server=False)
    monkeypatch.setattr(commands, "prefect_server_configured", lambda: False)
    SEEN.clear()
    assert commands.run_flow(compose, args, x=1) == {"result": 4, "logger": "Logger", "plain": True}
    assert SEEN == [(False, False)] * 2
    monkeypatch.setattr(commands, "prefect_server_configured", lambda: True)  # the session's server
    SEEN.clear()
    assert commands.run_flow(compose, args, x=1) == {"result": 4, "logger": "PrefectLogAdapter", "plain": False}
    assert SEEN == [(True, True)] * 2  # each step a task run of the flow run
    SEEN.clear()
    with plain_calls():  # a flow run started within plain_calls: its tasks are still task runs
        assert compose(1) == {"result": 4, "logger": "PrefectLogAdapter", "plain": False}
    assert SEEN == [(True, True)] * 2
    SEEN.clear()
    assert commands.run_flow(compose, argparse.Namespace(flow_server=False, no_flow_server=True), x=2)["result"] == 8
    assert SEEN == [(False, False)] * 2


@pytest.mark.parametrize("flag, configured, expected", [
    ("", False, False), ("", True, True), ("flow_server", False, True), ("no_flow_server", True, False)])
def test_wants_flow_run(monkeypatch, flag, configured, expected):
    monkeypatch.setattr(commands, "prefect_server_configured", lambda: configured)
    args = argparse.Namespace(flow_server=flag == "flow_server", no_flow_server=flag == "no_flow_server")
    assert commands.wants_flow_run(args) is expected
