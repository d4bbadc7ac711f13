"""Prefect retries only what can pass on a retry: the project's task factory with ``retry_transient``."""

from __future__ import annotations

import pytest
from prefect import flow

from data_contracts.errors import PrerequisiteError, TransientError, UsageError
from flows.task_wrappers import _io, retry_transient
from tasks.deliveries import RefreshFailed


def run_failing(error: Exception) -> int:
    calls = []

    def step():
        calls.append(1)
        raise error

    t = _io(step, "step", retries=2, delays=[0, 0])
    assert t.retry_condition_fn is retry_transient

    @flow
    def f():
        return t()

    with pytest.raises(type(error)):
        f()
    return len(calls)


@pytest.mark.parametrize("error, calls", [
    (PrerequisiteError("no champion", hint="run promote"), 1),
    (UsageError("unknown config"), 1),
    (RefreshFailed("9 of 9 reports could not be structured"), 1),
    (FileNotFoundError("missing.txt"), 1),
    (TransientError("server away"), 3),
    (ConnectionError("refused"), 3),
])
def test_only_retryable_errors_are_retried(prefect_server, error, calls):
    assert run_failing(error) == calls


def test_every_task_with_retries_has_the_condition():
    import flows.task_wrappers as tw
    from prefect import Task

    tasks = [v for v in vars(tw).values() if isinstance(v, Task)]
    assert len(tasks) > 10
    for t in tasks:
        assert not t.retries or t.retry_condition_fn is retry_transient, t.name
