"""Queries: the built-in stack trace, and reject conditions decided from the run's status."""

from __future__ import annotations

import inspect

import pytest
from e2e.conftest import run_in_env

from cadenza.exceptions import QueryRejectedError
from cadenza.sdk.common import QueryRejectCondition
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from . import workflows
from .waits import activity_started, eventually
from .workflows import Tagged, Waiter, wait_for_release


def test_stack_trace_names_each_waiting_coroutine_and_where_it_waits() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="stacks", workflows=[Waiter], activities=[wait_for_release]):
            handle = await env.client.start_workflow(Waiter.run, id="stacks-1", task_queue="stacks")
            await eventually(lambda: activity_started(handle, "wait_for_release"))
            trace = await handle.query("__stack_trace")
            await handle.signal(Waiter.stop)
        blocks = {block.split(":\n")[0]: block for block in trace.split("\n\n")}
        assert set(blocks) == {"Waiter (run)", "watcher"}
        source = workflows.__file__
        run_line = _line_of(Waiter.run, "await workflow.execute_activity")
        watch_line = _line_of(Waiter.watch, "await workflow.wait_condition")
        assert f"{source}:{run_line} in run" in blocks["Waiter (run)"]
        assert "waiting on activity 'wait_for_release' (id '1')" in blocks["Waiter (run)"]
        assert f"{source}:{watch_line} in watch" in blocks["watcher"]
        assert "waiting on wait_condition(" in blocks["watcher"]

    run_in_env(scenario)


def _line_of(fn: object, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)  # type: ignore[arg-type]
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_reject_conditions_follow_the_status_names() -> None:
    open_run = ["RUNNING"]
    unclean = ["FAILED", "CANCELED", "TERMINATED", "TIMED_OUT", "CONTINUED_AS_NEW"]
    for status in [*open_run, "COMPLETED", *unclean]:
        assert not QueryRejectCondition.NONE.rejects(status)
        assert QueryRejectCondition.NOT_OPEN.rejects(status) == (status != "RUNNING")
        assert QueryRejectCondition.NOT_COMPLETED_CLEANLY.rejects(status) == (status in unclean)
    assert str(QueryRejectedError("TERMINATED")) == "Query rejected: the workflow run is TERMINATED"


def test_queries_are_rejected_by_the_status_of_the_run() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="rq", workflows=[Tagged]):
            done = await env.client.start_workflow(Tagged.run, "x", id="rq-done", task_queue="rq")
            await done.signal(Tagged.finish)
            await done.result()
            gone = await env.client.start_workflow(Tagged.run, "y", id="rq-gone", task_queue="rq")
            await gone.terminate("stop")
        not_open = QueryRejectCondition.NOT_OPEN
        unclean = QueryRejectCondition.NOT_COMPLETED_CLEANLY
        with pytest.raises(QueryRejectedError) as info:
            await done.query(Tagged.snapshot, reject_condition=not_open)  # type: ignore[call-arg]
        assert info.value.status == "COMPLETED"
        with pytest.raises(QueryRejectedError) as info:
            await gone.query(Tagged.snapshot, reject_condition=unclean)  # type: ignore[call-arg]
        assert info.value.status == "TERMINATED"
        # A cleanly completed run is still answered (by replay) under NOT_COMPLETED_CLEANLY.
        async with Worker(env.client, task_queue="rq", workflows=[Tagged]):
            snapshot = await done.query(Tagged.snapshot, reject_condition=unclean)  # type: ignore[call-arg]
        assert snapshot["search_attributes"]["CustomIntField"] == "7"

    run_in_env(scenario)
