"""How a worker runs activities: bound methods, failed attempts in the log, cancellation of sync
activities through their heartbeats, and what leaving ``async with Worker`` does to running ones."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.client import WorkflowHandle
from cadenza.common import RetryPolicy
from cadenza.exceptions import ActivityError, ApplicationError, CanceledError, WorkflowFailureError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .waits import activity_started, eventually, has_event

QUEUE = "activity-worker"
ONCE = RetryPolicy(maximum_attempts=1)
LONG = timedelta(minutes=10)


# -- activities that are methods --------------------------------------------------------------------


class Greeter:
    """Activities as methods, registered as the bound methods of one instance (state they share)."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting
        self.calls = 0

    @activity.defn
    async def greet(self, name: str) -> str:
        self.calls += 1
        return f"{self.greeting}, {name}"

    @activity.defn(name="shout")
    def shout(self, name: str) -> str:
        self.calls += 1
        return f"{self.greeting.upper()}, {name.upper()}!"


@workflow.defn
class Greets:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        return [
            await workflow.execute_activity(
                Greeter.greet, name, start_to_close_timeout=timedelta(seconds=10), retry_policy=ONCE
            ),
            await workflow.execute_activity(
                Greeter.shout, name, start_to_close_timeout=timedelta(seconds=10), retry_policy=ONCE
            ),
        ]


def test_bound_methods_run_as_activities_sync_and_async() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        greeter = Greeter("Hello")
        async with Worker(
            env.client, task_queue=QUEUE, workflows=[Greets], activities=[greeter.greet, greeter.shout]
        ):
            result = await env.client.execute_workflow(Greets.run, "ann", id="greets", task_queue=QUEUE)
        assert result == ["Hello, ann", "HELLO, ANN!"]
        assert greeter.calls == 2

    run_in_env(scenario)


# -- failed attempts are logged ---------------------------------------------------------------------


@activity.defn
async def always_fails(order: str) -> str:
    raise ApplicationError(f"the warehouse has no {order}", type="OutOfStock")


@workflow.defn
class Orders:
    @workflow.run
    async def run(self, order: str) -> str:
        return await workflow.execute_activity(
            always_fails,
            order,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=3),
        )


def test_every_failed_activity_attempt_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Orders], activities=[always_fails]):
            with pytest.raises(WorkflowFailureError):
                await env.client.execute_workflow(Orders.run, "lamps", id="order-1", task_queue=QUEUE)

    with caplog.at_level(logging.WARNING, logger="cadenza.worker"):
        run_in_env(scenario)
    failed = [
        r.getMessage()
        for r in caplog.records
        if r.name == "cadenza.worker" and r.levelno == logging.WARNING and "always_fails" in r.getMessage()
    ]
    assert len(failed) == 3, failed
    for attempt, message in enumerate(failed, start=1):
        assert "order-1" in message
        assert f"attempt {attempt}" in message
        assert "the warehouse has no lamps" in message


# -- cancelling sync activities ---------------------------------------------------------------------

heartbeat_raised: list[str] = []
reacted: list[str] = []


@activity.defn
def sync_heartbeater(name: str) -> str:
    """Heartbeats until the heartbeat raises the cancellation (bounded, so a worker that never
    delivers it cannot hold the test's thread for long)."""
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            activity.heartbeat(name)
            time.sleep(0.02)
    except CanceledError:
        heartbeat_raised.append(name)
        time.sleep(0.3)  # reacting to the cancellation takes a while
        reacted.append(name)
        raise
    return "never cancelled"


@workflow.defn
class CancelsSyncActivity:
    """Starts the sync activity, cancels it on a signal, then stays open until told to finish."""

    def __init__(self) -> None:
        self.stop = False
        self.finish = False

    @workflow.run
    async def run(self, name: str) -> str:
        handle = workflow.start_activity(
            sync_heartbeater, name, start_to_close_timeout=LONG, heartbeat_timeout=timedelta(seconds=5)
        )
        await workflow.wait_condition(lambda: self.stop)
        handle.cancel()
        try:
            await handle
        except ActivityError as e:
            outcome = type(e.cause).__name__
        else:
            outcome = "completed"
        await workflow.wait_condition(lambda: self.finish)
        return outcome

    @workflow.signal
    def cancel_it(self) -> None:
        self.stop = True

    @workflow.signal
    def done(self) -> None:
        self.finish = True


def test_a_sync_activity_learns_of_its_cancellation_from_heartbeat() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        heartbeat_raised.clear()
        async with Worker(
            env.client, task_queue=QUEUE, workflows=[CancelsSyncActivity], activities=[sync_heartbeater]
        ):
            handle = await env.client.start_workflow(
                CancelsSyncActivity.run, "cancel-me", id="sync-cancel", task_queue=QUEUE
            )
            await eventually(lambda: activity_started(handle, "sync_heartbeater"))
            await handle.signal(CancelsSyncActivity.cancel_it)
            await eventually(lambda: _listed(heartbeat_raised, "cancel-me"))
            # The activity let the cancellation propagate: the worker reports it cancelled.
            await eventually(lambda: has_event(handle, EventType.ACTIVITY_TASK_CANCELED))
            await handle.signal(CancelsSyncActivity.done)
            assert await handle.result() == "CanceledError"

    run_in_env(scenario)


async def _listed(names: list[str], name: str) -> bool:
    return name in names


# -- leaving the worker -----------------------------------------------------------------------------

finished: list[str] = []
async_reacted: list[str] = []
shutdown_seen: list[tuple[bool, bool]] = []


@activity.defn
def finishes_soon(name: str) -> str:
    time.sleep(0.5)
    shutdown_seen.append((activity.is_cancelled(), activity.is_worker_shutdown()))
    finished.append(name)
    return f"finished {name}"


@activity.defn
async def async_heartbeater(name: str) -> str:
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleaning up takes a while
        async_reacted.append(name)
        raise


@workflow.defn
class RunsOne:
    @workflow.run
    async def run(self, activity_name: str, arg: str) -> str:
        return await workflow.execute_activity(
            activity_name,
            arg,
            start_to_close_timeout=LONG,
            heartbeat_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
            result_type=str,
        )


ALL = [sync_heartbeater, finishes_soon, async_heartbeater]


def test_leaving_the_worker_cancels_running_activities_and_waits_for_them() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        reacted.clear()
        async_reacted.clear()
        async with Worker(env.client, task_queue=QUEUE, workflows=[RunsOne], activities=ALL):
            sync_run = await env.client.start_workflow(
                RunsOne.run, "sync_heartbeater", "sync", id="leave-sync", task_queue=QUEUE
            )
            async_run = await env.client.start_workflow(
                RunsOne.run, "async_heartbeater", "async", id="leave-async", task_queue=QUEUE
            )
            await eventually(lambda: activity_started(sync_run, "sync_heartbeater"))
            await eventually(lambda: activity_started(async_run, "async_heartbeater"))
        # Both were cancelled at once (no graceful timeout) and had finished reacting on exit.
        assert reacted == ["sync"]
        assert async_reacted == ["async"]
        # The interrupted attempts were reported, so the server retries them without waiting for
        # a timeout.
        for handle in (sync_run, async_run):
            await eventually(lambda h=handle: _attempt_failed(h))
            await handle.terminate("done")

    run_in_env(scenario)


async def _attempt_failed(handle: WorkflowHandle[object]) -> bool:
    pending = (await handle.describe()).pending_activities
    return bool(pending) and pending[0].attempt >= 2 and pending[0].last_failure is not None


def test_a_graceful_shutdown_timeout_lets_running_activities_finish() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        finished.clear()
        shutdown_seen.clear()
        async with Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[RunsOne],
            activities=ALL,
            graceful_shutdown_timeout=timedelta(seconds=5),
        ):
            handle = await env.client.start_workflow(
                RunsOne.run, "finishes_soon", "gracefully", id="graceful", task_queue=QUEUE
            )
            await eventually(lambda: activity_started(handle, "finishes_soon"))
        assert finished == ["gracefully"]
        # It knew the worker was shutting down, but was not cancelled: it finished within the timeout.
        assert shutdown_seen == [(False, True)]
        await eventually(lambda: has_event(handle, EventType.ACTIVITY_TASK_COMPLETED))
        async with Worker(env.client, task_queue=QUEUE, workflows=[RunsOne], activities=ALL):
            assert await handle.result() == "finished gracefully"

    run_in_env(scenario)
