"""Cancelling activities and children from workflow code, and a cancel before the first workflow
task, as temporalio's own SDK tests expect them (bodies as there; fixtures are ours)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.client import Client, WorkflowFailureError
from cadenza.exceptions import CancelledError, ChildWorkflowError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from . import cancel_workflows as cw
from .cancel_workflows import (
    ActivityWaitCancelNotify,
    CancelActivityTaskWorkflow,
    CancelActivityWorkflow,
    CancelActivityWorkflowParams,
    CancelChildByTypeWorkflow,
    CancelChildWorkflow,
    CancelUnsentWorkflow,
    GatedHandleThenSleepWorkflow,
    GatedThenSleepWorkflow,
    LongSleepWorkflow,
    MultiCancelWorkflow,
    TrapCancelWorkflow,
    UncaughtCancelWorkflow,
    gated,
    wait_cancel,
    wait_forever,
)
from .waits import activity_started, eventually, has_event

CANCELLED = f"Error: {CancelledError.__name__}"
"""What the workflows report for a cancellation (temporalio's ``CancelledError`` is ``CanceledError``
here, so the class name differs)."""


def new_worker(client: Client, *workflows: type, activities: list[Any] | None = None, **kw: Any) -> Worker:
    return Worker(
        client,
        task_queue=kw.pop("task_queue", str(uuid.uuid4())),
        workflows=list(workflows),
        activities=activities or [],
        **kw,
    )


async def assert_eq_eventually(
    expected: Any, fn: Callable[[], Awaitable[Any]], *, timeout: timedelta = timedelta(seconds=10)
) -> None:
    last: Any = None

    async def check() -> bool:
        nonlocal last
        last = await fn()
        return bool(last == expected)

    try:
        await eventually(check, timeout=timeout.total_seconds())
    except AssertionError:
        raise AssertionError(f"expected {expected!r}, last was {last!r}") from None


# -- activities ------------------------------------------------------------------------------------


def test_workflow_cancel_activity() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        task_timeout = timedelta(seconds=1)
        assert_timeout = timedelta(seconds=10)
        activity_inst = ActivityWaitCancelNotify()

        async with new_worker(
            client, CancelActivityWorkflow, activities=[activity_inst.wait_cancel]
        ) as worker:
            # Try cancel - confirm error and activity was sent the cancel
            handle = await client.start_workflow(
                CancelActivityWorkflow.run,
                CancelActivityWorkflowParams(
                    cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL.name, local=False
                ),
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
                task_timeout=task_timeout,
            )

            async def activity_result() -> str:
                return await handle.query(CancelActivityWorkflow.activity_result)

            await assert_eq_eventually(CANCELLED, activity_result, timeout=assert_timeout)
            await asyncio.wait_for(activity_inst.wait_cancel_complete.wait(), 10)
            await handle.cancel()

            # Wait cancel - confirm no error due to graceful cancel handling
            handle = await client.start_workflow(
                CancelActivityWorkflow.run,
                CancelActivityWorkflowParams(
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED.name,
                    local=False,
                ),
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
                task_timeout=task_timeout,
            )
            await assert_eq_eventually(
                "Got cancelled error, cancelled? True", activity_result, timeout=assert_timeout
            )
            await asyncio.wait_for(activity_inst.wait_cancel_complete.wait(), 10)
            await handle.cancel()

            # Abandon - confirm error and that activity stays running
            handle = await client.start_workflow(
                CancelActivityWorkflow.run,
                CancelActivityWorkflowParams(
                    cancellation_type=workflow.ActivityCancellationType.ABANDON.name, local=False
                ),
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
                task_timeout=task_timeout,
            )
            await assert_eq_eventually(CANCELLED, activity_result, timeout=assert_timeout)
            await asyncio.sleep(0.5)
            assert not activity_inst.wait_cancel_complete.is_set()
            history = await handle.fetch_history()
            assert EventType.ACTIVITY_TASK_CANCEL_REQUESTED not in [e.event_type for e in history.events]
            await handle.cancel()
            await asyncio.wait_for(activity_inst.wait_cancel_complete.wait(), 10)

    run_in_env(scenario)


@pytest.mark.parametrize(
    ("cancellation_type", "expected"),
    [
        ("TRY_CANCEL", CANCELLED),
        ("WAIT_CANCELLATION_COMPLETED", "result: cancelled"),
        ("ABANDON", CANCELLED),
    ],
)
def test_cancelling_the_task_awaiting_execute_activity(cancellation_type: str, expected: str) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with new_worker(env.client, CancelActivityTaskWorkflow, activities=[wait_cancel]) as worker:
            handle = await env.client.start_workflow(
                CancelActivityTaskWorkflow.run,
                cancellation_type,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )
            assert await handle.result() == expected
            types = [e.event_type for e in (await handle.fetch_history()).events]
            requested = EventType.ACTIVITY_TASK_CANCEL_REQUESTED in types
            assert requested is (cancellation_type != "ABANDON")
            Replayer(workflows=[CancelActivityTaskWorkflow]).replay_workflow(await handle.fetch_history())

    run_in_env(scenario)


@pytest.mark.parametrize("activity", [True, False])
def test_workflow_uncaught_cancel(activity: bool) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with new_worker(client, UncaughtCancelWorkflow, activities=[wait_forever]) as worker:
            # Start workflow waiting on activity or child workflow, cancel it, and
            # confirm the workflow is shown as cancelled
            handle = await client.start_workflow(
                UncaughtCancelWorkflow.run,
                activity,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )

            async def started() -> bool:
                return await handle.query(UncaughtCancelWorkflow.started)

            await assert_eq_eventually(True, started)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert isinstance(err.value.cause, CancelledError)
            if not activity:
                # The child was asked to cancel too (WAIT_CANCELLATION_COMPLETED by default).
                child = client.get_workflow_handle(f"{handle.id}_child")
                assert (await child.describe()).status == "CANCELED"

    run_in_env(scenario)


# -- children --------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_execute", [True, False])
def test_workflow_cancel_child_started(use_execute: bool) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with new_worker(client, CancelChildWorkflow, LongSleepWorkflow) as worker:
            # Start workflow
            handle = await client.start_workflow(
                CancelChildWorkflow.run,
                use_execute,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )

            # Wait until child started
            async def child_started() -> bool:
                try:
                    return await handle.query(
                        CancelChildWorkflow.ready
                    ) and await client.get_workflow_handle_for(
                        LongSleepWorkflow.run,
                        workflow_id=f"{handle.id}_child",
                    ).query(LongSleepWorkflow.started)
                except Exception:
                    # The child may not have started yet
                    return False

            await assert_eq_eventually(True, child_started)
            # Send cancel signal and wait on the handle
            await handle.signal(CancelChildWorkflow.cancel_child)
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert isinstance(err.value.cause, ChildWorkflowError)
            assert isinstance(err.value.cause.cause, CancelledError)
            child = client.get_workflow_handle(f"{handle.id}_child")
            assert (await child.describe()).status == "CANCELED"

    run_in_env(scenario)


@pytest.mark.parametrize(
    ("cancellation_type", "child_status"),
    [
        ("ABANDON", "RUNNING"),
        ("TRY_CANCEL", "CANCELED"),
        ("WAIT_CANCELLATION_REQUESTED", "CANCELED"),
        ("WAIT_CANCELLATION_COMPLETED", "CANCELED"),
    ],
)
def test_cancelling_a_child_follows_its_cancellation_type(cancellation_type: str, child_status: str) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with new_worker(client, CancelChildByTypeWorkflow, LongSleepWorkflow) as worker:
            handle = await client.start_workflow(
                CancelChildByTypeWorkflow.run,
                cancellation_type,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )
            assert await handle.result() == CANCELLED
            child = client.get_workflow_handle(f"{handle.id}_child")

            async def status() -> str:
                return str((await child.describe()).status)

            await assert_eq_eventually(child_status, status)
            if child_status == "RUNNING":
                await child.terminate()
            types = [e.event_type for e in (await handle.fetch_history()).events]
            requested = EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED in types
            assert requested is (cancellation_type != "ABANDON")
            Replayer(workflows=[CancelChildByTypeWorkflow]).replay_workflow(await handle.fetch_history())

    run_in_env(scenario)


def test_workflow_cancel_multi() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with new_worker(
            client, MultiCancelWorkflow, LongSleepWorkflow, activities=[wait_cancel]
        ) as worker:
            results = await client.execute_workflow(
                MultiCancelWorkflow.run,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )
            assert sorted(results) == [
                "activity cancelled",
                "child cancelled",
                "timer cancelled",
                "timer success",
            ]

    run_in_env(scenario)


def test_workflow_cancel_unsent() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        workflow_id = f"workflow-{uuid.uuid4()}"
        async with new_worker(
            client, CancelUnsentWorkflow, LongSleepWorkflow, activities=[wait_cancel]
        ) as worker:
            await client.execute_workflow(
                CancelUnsentWorkflow.run, id=workflow_id, task_queue=worker.task_queue
            )
        # Check history
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        for event in history.events:
            # No activities or children scheduled
            assert event.event_type is not EventType.ACTIVITY_TASK_SCHEDULED
            assert event.event_type is not EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED

    run_in_env(scenario)


# -- cancel before the first task ------------------------------------------------------------------


def test_workflow_cancel_before_run() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        # Start the workflow _and_ send cancel before even starting the workflow
        task_queue = str(uuid.uuid4())
        handle = await client.start_workflow(
            TrapCancelWorkflow.run,
            id=f"workflow-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await handle.cancel()
        # Start worker and wait for result
        async with new_worker(client, TrapCancelWorkflow, task_queue=task_queue):
            assert "cancelled" == await handle.result()

    run_in_env(scenario)


# -- a cancel and the awaited activity's completion in the same workflow task -----------------------


@pytest.mark.parametrize("wf", [GatedThenSleepWorkflow, GatedHandleThenSleepWorkflow])
def test_cancel_and_activity_completion_in_one_workflow_task(wf: type) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        cw.gate.clear()
        task_queue = str(uuid.uuid4())
        async with new_worker(client, activities=[gated], task_queue="cx-gated-acts"):
            async with new_worker(client, wf, task_queue=task_queue):
                handle = await client.start_workflow(
                    wf.run, id=f"workflow-{uuid.uuid4()}", task_queue=task_queue
                )
                await eventually(lambda: activity_started(handle, "gated"))
            # No workflow worker now: the completion and the cancel land in one workflow task.
            cw.gate.set()
            await eventually(lambda: has_event(handle, EventType.ACTIVITY_TASK_COMPLETED))
            await handle.cancel()
            await eventually(lambda: has_event(handle, EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED))
            async with new_worker(client, wf, task_queue=task_queue):
                result = await asyncio.wait_for(handle.result(), 10)
        assert result == "cancelled"
        Replayer(workflows=[wf]).replay_workflow(await handle.fetch_history())

    run_in_env(scenario)
