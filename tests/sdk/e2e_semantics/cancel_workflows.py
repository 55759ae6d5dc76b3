"""Workflows and activities for the cancellation, timeout and failure tests, written as temporalio's
own SDK tests write them (only the imports differ)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from cadenza import activity, workflow
from cadenza.exceptions import ActivityError, CancelledError, ChildWorkflowError

# -- activities ------------------------------------------------------------------------------------


class ActivityWaitCancelNotify:
    def __init__(self) -> None:
        self.wait_cancel_complete = asyncio.Event()

    @activity.defn
    async def wait_cancel(self) -> str:
        self.wait_cancel_complete.clear()
        try:
            if activity.info().is_local:
                await asyncio.sleep(1000)
            else:
                while True:
                    await asyncio.sleep(0.3)
                    activity.heartbeat()
            return "Manually stopped"
        except asyncio.CancelledError:
            return "Got cancelled error, cancelled? " + str(activity.is_cancelled())
        finally:
            self.wait_cancel_complete.set()


@activity.defn
async def wait_cancel() -> str:
    try:
        while True:
            await asyncio.sleep(0.1)
            activity.heartbeat()
    except asyncio.CancelledError:
        return "cancelled"


@activity.defn
async def wait_forever() -> NoReturn:
    await asyncio.Future()
    raise RuntimeError("Unreachable")


gate = threading.Event()
"""Released by a test to let ``gated`` return."""


@activity.defn
async def gated() -> str:
    while not gate.is_set():
        await asyncio.sleep(0.02)
    return "gated done"


# -- activity cancellation -------------------------------------------------------------------------


@dataclass
class CancelActivityWorkflowParams:
    cancellation_type: str
    local: bool


@workflow.defn
class CancelActivityWorkflow:
    def __init__(self) -> None:
        self._activity_result = "<none>"

    @workflow.run
    async def run(self, params: CancelActivityWorkflowParams) -> None:
        if params.local:
            handle = workflow.start_local_activity_method(
                ActivityWaitCancelNotify.wait_cancel,
                schedule_to_close_timeout=timedelta(seconds=5),
                cancellation_type=workflow.ActivityCancellationType[params.cancellation_type],
            )
        else:
            handle = workflow.start_activity_method(
                ActivityWaitCancelNotify.wait_cancel,
                schedule_to_close_timeout=timedelta(seconds=5),
                heartbeat_timeout=timedelta(seconds=1),
                cancellation_type=workflow.ActivityCancellationType[params.cancellation_type],
            )
        await asyncio.sleep(0.01)
        try:
            handle.cancel()
            self._activity_result = await handle
        except ActivityError as err:
            self._activity_result = f"Error: {err.cause.__class__.__name__}"
        except CancelledError as err:
            self._activity_result = f"Error: {err.__class__.__name__}"
        # Wait forever
        await asyncio.Future()

    @workflow.query
    def activity_result(self) -> str:
        return self._activity_result


@workflow.defn
class CancelActivityTaskWorkflow:
    """Cancels the asyncio task that awaits ``execute_activity`` (not an activity handle)."""

    def __init__(self) -> None:
        self._activity_result = "<none>"

    @workflow.run
    async def run(self, cancellation_type: str) -> str:
        task = asyncio.create_task(
            workflow.execute_activity(
                wait_cancel,
                schedule_to_close_timeout=timedelta(seconds=20),
                heartbeat_timeout=timedelta(seconds=2),
                cancellation_type=workflow.ActivityCancellationType[cancellation_type],
            )
        )
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            return f"result: {await task}"
        except ActivityError as err:
            return f"Error: {err.cause.__class__.__name__}"


@workflow.defn
class UncaughtCancelWorkflow:
    @workflow.run
    async def run(self, activity: bool) -> NoReturn:
        self._started = True
        # Wait forever on activity or child workflow
        if activity:
            await workflow.execute_activity(wait_forever, start_to_close_timeout=timedelta(seconds=1000))
        else:
            await workflow.execute_child_workflow(
                UncaughtCancelWorkflow.run,
                True,
                id=f"{workflow.info().workflow_id}_child",
            )
        raise RuntimeError("Unreachable")

    @workflow.query
    def started(self) -> bool:
        return self._started


# -- children --------------------------------------------------------------------------------------


@workflow.defn
class LongSleepWorkflow:
    @workflow.run
    async def run(self) -> None:
        self._started = True
        await asyncio.sleep(1000)

    @workflow.query
    def started(self) -> bool:
        return self._started


@workflow.defn
class CancelChildWorkflow:
    def __init__(self) -> None:
        self._ready = False

    @workflow.run
    async def run(self, use_execute: bool) -> None:
        if use_execute:
            self._task = asyncio.create_task(
                workflow.execute_child_workflow(
                    LongSleepWorkflow.run, id=f"{workflow.info().workflow_id}_child"
                )
            )
        else:
            self._task = await workflow.start_child_workflow(
                LongSleepWorkflow.run, id=f"{workflow.info().workflow_id}_child"
            )
        self._ready = True
        await self._task

    @workflow.query
    def ready(self) -> bool:
        return self._ready

    @workflow.signal
    async def cancel_child(self) -> None:
        self._task.cancel()


@workflow.defn
class CancelChildByTypeWorkflow:
    """Cancels the task awaiting a child started with the given cancellation type."""

    @workflow.run
    async def run(self, cancellation_type: str) -> str:
        task = asyncio.create_task(
            workflow.execute_child_workflow(
                LongSleepWorkflow.run,
                id=f"{workflow.info().workflow_id}_child",
                cancellation_type=workflow.ChildWorkflowCancellationType[cancellation_type],
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        )
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
            return "child completed"
        except ChildWorkflowError as err:
            # Stay open a moment: a cancel request from a closed parent is not delivered.
            await asyncio.sleep(1)
            return f"Error: {err.cause.__class__.__name__}"


@workflow.defn
class MultiCancelWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        events: list[str] = []

        async def timer() -> None:
            nonlocal events
            try:
                await asyncio.sleep(1)
                events.append("timer success")
            except asyncio.CancelledError:
                events.append("timer cancelled")

        async def activity() -> None:
            nonlocal events
            try:
                await workflow.execute_activity(wait_cancel, schedule_to_close_timeout=timedelta(5))
                events.append("activity success")
            except ActivityError as err:
                if isinstance(err.cause, CancelledError):
                    events.append("activity cancelled")

        async def child(id: str) -> None:
            nonlocal events
            try:
                await workflow.execute_child_workflow(LongSleepWorkflow.run, id=id)
                events.append("child success")
            except ChildWorkflowError as err:
                if isinstance(err.cause, CancelledError):
                    events.append("child cancelled")

        # Start all tasks, send a cancel to all, and wait until done
        fut = asyncio.gather(
            timer(),
            asyncio.shield(timer()),
            activity(),
            child(f"child-{workflow.info().workflow_id}"),
            return_exceptions=True,
        )
        await asyncio.sleep(0.1)
        fut.cancel()
        await workflow.wait_condition(lambda: len(events) == 4, timeout=30)
        # Wait on the future just to make asyncio happy
        try:
            await fut
        except asyncio.CancelledError:
            pass
        return events


@workflow.defn
class CancelUnsentWorkflow:
    @workflow.run
    async def run(self) -> None:
        # Start activity
        activity_handle = workflow.start_activity(wait_cancel, schedule_to_close_timeout=timedelta(seconds=5))
        activity_handle.cancel()
        await self.wait_and_swallow(activity_handle)

        # Execute activity
        activity_task = asyncio.create_task(
            workflow.execute_activity(wait_cancel, schedule_to_close_timeout=timedelta(seconds=5))
        )
        activity_task.cancel()
        await self.wait_and_swallow(activity_task)

        # Start child
        child_task1 = asyncio.create_task(
            workflow.start_child_workflow(LongSleepWorkflow.run, id=f"{workflow.info().workflow_id}_child1")
        )
        child_task1.cancel()
        await self.wait_and_swallow(child_task1)

        # Execute child
        child_task2 = asyncio.create_task(
            workflow.execute_child_workflow(LongSleepWorkflow.run, id=f"{workflow.info().workflow_id}_child2")
        )
        child_task2.cancel()
        await self.wait_and_swallow(child_task2)

        # Sleep for a short bit to force another task to run so we know that
        # workflow completion isn't saving us here
        await asyncio.sleep(0.01)

    async def wait_and_swallow(self, aw: Awaitable[Any]) -> None:
        try:
            await aw
        except (Exception, asyncio.CancelledError):
            pass


# -- cancel before the first task, and with a completion in the same task ---------------------------


@workflow.defn
class TrapCancelWorkflow:
    @workflow.run
    async def run(self) -> str:
        try:
            await asyncio.Future()
            raise RuntimeError("should not get here")
        except asyncio.CancelledError:
            return "cancelled"


@workflow.defn
class GatedThenSleepWorkflow:
    """Awaits an activity on another queue, then sleeps: a cancel must reach it either way."""

    @workflow.run
    async def run(self) -> str:
        try:
            result = await workflow.execute_activity(
                gated, task_queue="cx-gated-acts", start_to_close_timeout=timedelta(seconds=30)
            )
            await asyncio.sleep(3600)
            return result
        except asyncio.CancelledError:
            return "cancelled"
        except ActivityError as err:
            return f"Error: {err.cause.__class__.__name__}"


@workflow.defn
class GatedHandleThenSleepWorkflow:
    """As ``GatedThenSleepWorkflow``, awaiting the handle ``start_activity`` returns."""

    @workflow.run
    async def run(self) -> str:
        try:
            handle = workflow.start_activity(
                gated, task_queue="cx-gated-acts", start_to_close_timeout=timedelta(seconds=30)
            )
            result = await handle
            await asyncio.sleep(3600)
            return result
        except asyncio.CancelledError:
            return "cancelled"
        except ActivityError as err:
            return f"Error: {err.cause.__class__.__name__}"
