"""Queries answered by replay see the run exactly as history recorded it.

A worker without the run in its cache replays the history to answer a query. Every workflow task of
that history, the last completed one included, must replay as a replay: ``patched`` answers from the
recorded markers and every command the code produces is checked against the recorded ones. Running
the last task as if it were new would answer from a path the run never took.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.exceptions import QueryFailedError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .waits import eventually, has_event

QUEUE = "query-replay"


@workflow.defn(name="RoutePicker")
class RoutePickerV1:
    """The code before the change: always the old route."""

    def __init__(self) -> None:
        self.route = ""
        self.finish = False

    @workflow.run
    async def run(self) -> str:
        self.route = "old"
        await workflow.wait_condition(lambda: self.finish)
        return self.route

    @workflow.signal
    def done(self) -> None:
        self.finish = True

    @workflow.query
    def current_route(self) -> str:
        return self.route


@workflow.defn(name="RoutePicker")
class RoutePickerV2:
    """The same workflow after a versioned change: new runs take the new route."""

    def __init__(self) -> None:
        self.route = ""
        self.finish = False

    @workflow.run
    async def run(self) -> str:
        self.route = "new" if workflow.patched("new-route") else "old"
        await workflow.wait_condition(lambda: self.finish)
        return self.route

    @workflow.signal
    def done(self) -> None:
        self.finish = True

    @workflow.query
    def current_route(self) -> str:
        return self.route


def test_a_query_answered_by_replay_sees_the_path_the_run_took() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with Worker(client, task_queue=QUEUE, workflows=[RoutePickerV1]):
            old_run = await client.start_workflow(RoutePickerV1.run, id="route-old", task_queue=QUEUE)
            await eventually(lambda: has_event(old_run, EventType.WORKFLOW_TASK_COMPLETED))
        # The new code, on a worker that caches nothing: every query and task is a replay.
        async with Worker(client, task_queue=QUEUE, workflows=[RoutePickerV2], max_cached_workflows=0):
            new_run = await client.start_workflow(RoutePickerV2.run, id="route-new", task_queue=QUEUE)
            await eventually(lambda: has_event(new_run, EventType.WORKFLOW_TASK_COMPLETED))
            # No patch marker in the old run's history: it took the old route.
            assert await old_run.query(RoutePickerV2.current_route) == "old"
            # The new run recorded the marker in its last completed task: the new route.
            assert await new_run.query(RoutePickerV2.current_route) == "new"
            await old_run.signal(RoutePickerV2.done)
            await new_run.signal(RoutePickerV2.done)
            assert await old_run.result() == "old"
            assert await new_run.result() == "new"

    run_in_env(scenario)


@workflow.defn(name="Napper")
class NapperV1:
    def __init__(self) -> None:
        self.state = ""

    @workflow.run
    async def run(self) -> str:
        self.state = "napping"
        await asyncio.sleep(3600)
        return self.state

    @workflow.query
    def status(self) -> str:
        return self.state


@workflow.defn(name="Napper")
class NapperV2:
    """An incompatible change: the first task now schedules an activity instead of a timer."""

    def __init__(self) -> None:
        self.state = ""

    @workflow.run
    async def run(self) -> str:
        self.state = "working"
        await workflow.execute_activity("work", start_to_close_timeout=timedelta(seconds=10))
        return self.state

    @workflow.query
    def status(self) -> str:
        return self.state


def test_a_query_answered_by_replay_checks_the_last_tasks_commands() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with Worker(client, task_queue=QUEUE, workflows=[NapperV1]):
            handle = await client.start_workflow(NapperV1.run, id="napper", task_queue=QUEUE)
            await eventually(lambda: has_event(handle, EventType.TIMER_STARTED))
            assert await handle.query(NapperV1.status) == "napping"
        async with Worker(client, task_queue=QUEUE, workflows=[NapperV2]):
            with pytest.raises(QueryFailedError) as info:
                await handle.query(NapperV2.status)
        assert "NondeterminismError" in str(info.value)
        assert "StartTimer" in str(info.value) or "TimerStarted" in str(info.value)
        await handle.terminate("done")

    run_in_env(scenario)
