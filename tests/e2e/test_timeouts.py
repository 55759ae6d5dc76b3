"""Each of the four activity timeouts, and resuming from heartbeat details after a worker dies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.exceptions import ActivityError, TimeoutError, TimeoutType, WorkflowFailureError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env

ONCE = RetryPolicy(maximum_attempts=1)


@activity.defn
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@activity.defn
async def goes_quiet(seconds: float) -> str:
    activity.heartbeat("started")
    await asyncio.sleep(seconds)
    return "done"


@workflow.defn
class TimeoutWorkflow:
    @workflow.run
    async def run(self, kind: str) -> str:
        if kind == "schedule_to_start":
            # Nobody polls this queue.
            return await workflow.execute_activity(
                slow,
                0.0,
                task_queue="nobody-home",
                schedule_to_start_timeout=timedelta(seconds=30),
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=ONCE,
            )
        if kind == "start_to_close":
            return await workflow.execute_activity(
                slow,
                30.0,
                start_to_close_timeout=timedelta(milliseconds=300),
                retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=10)),
            )
        if kind == "heartbeat":
            return await workflow.execute_activity(
                goes_quiet,
                30.0,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(milliseconds=300),
                retry_policy=ONCE,
            )
        return await workflow.execute_activity(
            slow,
            30.0,
            schedule_to_close_timeout=timedelta(milliseconds=400),
        )


def _expect_timeout(kind: str, expected: TimeoutType, skipping: bool) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client, task_queue="timeouts", workflows=[TimeoutWorkflow], activities=[slow, goes_quiet]
        ):
            handle = await env.client.start_workflow(
                TimeoutWorkflow.run, kind, id=f"timeout-{kind}", task_queue="timeouts"
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            events = (await handle.fetch_history()).events
        err = info.value.cause
        assert isinstance(err, ActivityError), err
        assert isinstance(err.cause, TimeoutError), err.cause
        assert err.cause.type == expected
        timed_out = [e for e in events if e.event_type == EventType.ACTIVITY_TASK_TIMED_OUT]
        assert len(timed_out) == 1
        assert timed_out[0].attributes["failure"]["timeout_type"] == expected.value

    run_in_env(scenario, time_skipping=skipping)


def test_schedule_to_start_timeout_fires_when_no_worker_polls() -> None:
    _expect_timeout("schedule_to_start", TimeoutType.SCHEDULE_TO_START, skipping=True)


def test_start_to_close_timeout_fires_and_is_retried_per_policy() -> None:
    _expect_timeout("start_to_close", TimeoutType.START_TO_CLOSE, skipping=False)


def test_heartbeat_timeout_fires_when_the_activity_goes_quiet() -> None:
    _expect_timeout("heartbeat", TimeoutType.HEARTBEAT, skipping=False)


def test_schedule_to_close_timeout_bounds_the_whole_activity() -> None:
    _expect_timeout("schedule_to_close", TimeoutType.SCHEDULE_TO_CLOSE, skipping=False)


PROGRESS: list[tuple[int, int]] = []


@activity.defn
async def count_to(n: int) -> dict[str, int]:
    info = activity.info()
    start = int(info.heartbeat_details[0]) if info.heartbeat_details else 0
    for i in range(start, n):
        PROGRESS.append((info.attempt, i))
        activity.heartbeat(i + 1)
        await asyncio.sleep(0.01)
    return {"attempt": info.attempt, "resumed_from": start}


@workflow.defn
class Counter:
    @workflow.run
    async def run(self, n: int) -> dict[str, int]:
        return await workflow.execute_activity(
            count_to,
            n,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(milliseconds=300),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        )


def test_heartbeat_details_let_the_next_attempt_resume_after_a_worker_dies() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        PROGRESS.clear()
        first = Worker(env.client, task_queue="count", workflows=[Counter], activities=[count_to])
        first.start()
        handle = await env.client.start_workflow(Counter.run, 40, id="counter", task_queue="count")
        while len(PROGRESS) < 10:
            await asyncio.sleep(0.01)
        await first.abandon()  # the worker dies: no result, no more heartbeats
        pending = (await handle.describe()).pending_activities
        recorded = env.client.data_converter.from_payloads(pending[0].heartbeat_details)[0]
        async with Worker(env.client, task_queue="count", workflows=[Counter], activities=[count_to]):
            result = await handle.result()
        assert result["attempt"] == 2
        # The next attempt starts exactly where the last heartbeat the server recorded left off.
        assert result["resumed_from"] == recorded > 0
        second = [i for a, i in PROGRESS if a == 2]
        assert second[0] == recorded
        assert len(second) == 40 - recorded  # it did not start over

    run_in_env(scenario)


def test_time_skipping_resumes_after_a_worker_dies_mid_activity() -> None:
    """A task whose worker died must not hold skipped time still forever: once its heartbeat
    timeout passes, time skips again and the retry runs on another worker."""

    @workflow.defn(name="CounterSkipping")
    class CounterSkipping:
        @workflow.run
        async def run(self, n: int) -> dict[str, int]:
            await asyncio.sleep(3600)  # an hour of workflow time first: skipped
            return await workflow.execute_activity(
                count_to,
                n,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(milliseconds=500),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
            )

    async def scenario(env: WorkflowEnvironment) -> None:
        PROGRESS.clear()
        loop = asyncio.get_running_loop()
        first = Worker(env.client, task_queue="skip", workflows=[CounterSkipping], activities=[count_to])
        first.start()
        started = loop.time()
        handle = await env.client.start_workflow(
            CounterSkipping.run, 200, id="skip-counter", task_queue="skip"
        )
        await env.sleep(3600)  # nobody waits on a result yet: skip the hour explicitly
        while len(PROGRESS) < 5:
            await asyncio.sleep(0.01)
        await first.abandon()
        async with Worker(env.client, task_queue="skip", workflows=[CounterSkipping], activities=[count_to]):
            result = await handle.result()
        assert result["attempt"] == 2
        assert loop.time() - started < 15

    run_in_env(scenario, time_skipping=True)
