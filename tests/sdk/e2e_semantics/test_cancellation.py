"""Cancelling a workflow: asyncio.CancelledError semantics in workflow code, heartbeats in activities."""

from __future__ import annotations

import pytest
from e2e.conftest import run_in_env

from cadenza.exceptions import CanceledError, WorkflowFailureError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .waits import activity_started, eventually, has_event
from .workflows import (
    CancelsOneBranch,
    CatchesCancel,
    ReraisesCancel,
    calls,
    cancelled_activities,
    cleanup,
    long_work,
)

WORKFLOWS = [CatchesCancel, ReraisesCancel, CancelsOneBranch]
ACTIVITIES = [long_work, cleanup]


async def _until_learned(name: str) -> bool:
    return name in cancelled_activities


def test_a_workflow_that_catches_the_cancellation_cleans_up_and_completes() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        cancelled_activities.clear()
        async with Worker(env.client, task_queue="cx", workflows=WORKFLOWS, activities=ACTIVITIES):
            handle = await env.client.start_workflow(CatchesCancel.run, id="cx-catch", task_queue="cx")
            await eventually(lambda: activity_started(handle, "long_work"))
            await handle.cancel()
            assert await handle.result() == "completed after cancel: cleaned catch"
            # The running activity learns of the cancellation through its heartbeat.
            await eventually(lambda: _until_learned("catch"))
            assert (await handle.describe()).status == "COMPLETED"
        history = await handle.fetch_history()
        types = [e.event_type for e in history.events]
        assert EventType.ACTIVITY_TASK_CANCEL_REQUESTED in types
        assert types[-1] is EventType.WORKFLOW_EXECUTION_COMPLETED
        Replayer(workflows=WORKFLOWS).replay_workflow(history)

    run_in_env(scenario)


def test_a_workflow_that_lets_the_cancellation_propagate_ends_canceled_after_its_finally() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        calls.clear()
        async with Worker(env.client, task_queue="cx", workflows=WORKFLOWS, activities=ACTIVITIES):
            handle = await env.client.start_workflow(ReraisesCancel.run, id="cx-reraise", task_queue="cx")
            await eventually(lambda: has_event(handle, EventType.TIMER_STARTED))
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            assert isinstance(info.value.cause, CanceledError)
            assert (await handle.describe()).status == "CANCELED"
        assert calls["cleanup"] == 1
        history = await handle.fetch_history()
        types = [e.event_type for e in history.events]
        # The timer was cancelled, the cleanup activity ran, then the run closed as cancelled.
        assert types.index(EventType.TIMER_CANCELED) < types.index(EventType.ACTIVITY_TASK_COMPLETED)
        assert types[-1] is EventType.WORKFLOW_EXECUTION_CANCELED
        Replayer(workflows=WORKFLOWS).replay_workflow(history)

    run_in_env(scenario)


def test_workflow_code_cancels_one_activity_and_keeps_the_other() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        cancelled_activities.clear()
        async with Worker(env.client, task_queue="cx", workflows=WORKFLOWS, activities=ACTIVITIES):
            result = await env.client.execute_workflow(CancelsOneBranch.run, id="cx-branch", task_queue="cx")
            assert result == ["CanceledError", "cleaned branch"]
            await eventually(lambda: _until_learned("branch"))

    run_in_env(scenario)
