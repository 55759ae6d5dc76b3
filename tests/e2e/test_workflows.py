"""The everyday paths: hello world, the video pipeline, retries, signals, queries, cancel, terminate."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.exceptions import (
    ActivityError,
    ApplicationError,
    CanceledError,
    TerminatedError,
    WorkflowFailureError,
)
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import (
    ANALYSIS_QUEUE,
    ATTEMPTS,
    Approval,
    Cancellable,
    HelloWorkflow,
    PipelineResult,
    RetryWorkflow,
    Sleeper,
    VideoPipeline,
    classify,
    detect_watermark,
    flaky,
    refuses,
    say_hello,
    transcode,
    update_media_db,
    wait_forever,
)


def test_hello_world_runs_and_records_the_expected_history() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="hello", workflows=[HelloWorkflow], activities=[say_hello]):
            result = await env.client.execute_workflow(
                HelloWorkflow.run, "world", id="hello-1", task_queue="hello"
            )
            assert result == "Hello, world!"
            history = await env.client.get_workflow_handle("hello-1").fetch_history()
        assert [e.event_type for e in history.events] == [
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.WORKFLOW_TASK_SCHEDULED,
            EventType.WORKFLOW_TASK_STARTED,
            EventType.WORKFLOW_TASK_COMPLETED,
            EventType.ACTIVITY_TASK_SCHEDULED,
            EventType.ACTIVITY_TASK_STARTED,
            EventType.ACTIVITY_TASK_COMPLETED,
            EventType.WORKFLOW_TASK_SCHEDULED,
            EventType.WORKFLOW_TASK_STARTED,
            EventType.WORKFLOW_TASK_COMPLETED,
            EventType.WORKFLOW_EXECUTION_COMPLETED,
        ]
        assert [e.event_id for e in history.events] == list(range(1, 12))

    run_in_env(scenario)


def test_video_pipeline_runs_analysis_in_parallel_then_fans_out_twelve_transcodes() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        # Two teams, two task queues: analysis activities run on their own workers.
        async with (
            Worker(
                env.client,
                task_queue="video",
                workflows=[VideoPipeline],
                activities=[transcode, update_media_db],
            ),
            Worker(env.client, task_queue=ANALYSIS_QUEUE, activities=[detect_watermark, classify]),
        ):
            handle = await env.client.start_workflow(
                VideoPipeline.run, "v-42-wm", id="video-v-42", task_queue="video"
            )
            result = await handle.result()
            assert isinstance(result, PipelineResult)
            assert result.watermark is True and result.category == "sports"
            assert len(result.renditions) == 12
            assert len({r.url for r in result.renditions}) == 12
            assert await handle.query(VideoPipeline.progress) == {"stage": "done", "transcoded": 12}
            events = (await handle.fetch_history()).events
        scheduled = [e for e in events if e.event_type == EventType.ACTIVITY_TASK_SCHEDULED]
        assert len(scheduled) == 15
        # The two analysis activities were scheduled by one workflow task, the 12 transcodes by another.
        by_task: dict[int, list[str]] = {}
        for e in scheduled:
            by_task.setdefault(e.attributes["workflow_task_completed_event_id"], []).append(
                e.attributes["activity_type"]
            )
        groups = sorted(by_task.values(), key=len)
        assert sorted(groups[0]) == ["update_media_db"]
        assert sorted(groups[1]) == ["classify", "detect_watermark"]
        assert groups[2] == ["transcode"] * 12

    run_in_env(scenario)


def test_activity_retries_with_backoff_until_it_succeeds() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        ATTEMPTS.pop("r1", None)
        async with Worker(
            env.client, task_queue="retry", workflows=[RetryWorkflow], activities=[flaky, refuses]
        ):
            attempt = await env.client.execute_workflow(
                RetryWorkflow.run, "r1", False, id="retry-1", task_queue="retry"
            )
            events = (await env.client.get_workflow_handle("retry-1").fetch_history()).events
        assert attempt == 3 and ATTEMPTS["r1"] == 3
        started = [e for e in events if e.event_type == EventType.ACTIVITY_TASK_STARTED]
        # Retries live in mutable state: one Started event, carrying the final attempt and last failure.
        assert len(started) == 1
        assert started[0].attributes["attempt"] == 3
        assert "transient failure 2" in started[0].attributes["last_failure"]["message"]

    run_in_env(scenario)


def test_non_retryable_application_error_fails_the_workflow_after_one_attempt() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        ATTEMPTS.pop("r2", None)
        async with Worker(
            env.client, task_queue="retry", workflows=[RetryWorkflow], activities=[flaky, refuses]
        ):
            with pytest.raises(WorkflowFailureError) as info:
                await env.client.execute_workflow(
                    RetryWorkflow.run, "r2", True, id="retry-2", task_queue="retry"
                )
        assert ATTEMPTS["r2"] == 1
        cause = info.value.cause
        assert isinstance(cause, ActivityError)
        assert isinstance(cause.cause, ApplicationError)
        assert cause.cause.type == "CardDeclined"
        assert cause.cause.non_retryable

    run_in_env(scenario)


def test_signals_are_delivered_and_queries_read_state() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="sig", workflows=[Approval]):
            handle = await env.client.start_workflow(Approval.run, 3, id="approval-1", task_queue="sig")
            await handle.signal(Approval.approve, "ann")
            await handle.signal("approve", "bob")
            for _ in range(100):
                if await handle.query(Approval.count) == 2:
                    break
                await asyncio.sleep(0.01)
            assert await handle.query(Approval.count) == 2
            await handle.signal(Approval.approve, "cid")
            assert await handle.result() == ["ann", "bob", "cid"]
            # Queries still answer after the run closed, from replayed history.
            assert await handle.query(Approval.count) == 3

    run_in_env(scenario)


def test_signal_with_start_starts_once_then_signals() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="sig", workflows=[Approval]):
            h1 = await env.client.signal_with_start_workflow(
                Approval.run, 2, id="sws", task_queue="sig", signal=Approval.approve, signal_args=["ann"]
            )
            h2 = await env.client.signal_with_start_workflow(
                Approval.run, 2, id="sws", task_queue="sig", signal=Approval.approve, signal_args=["bob"]
            )
            assert h1.first_run_id == h2.first_run_id
            assert await h1.result() == ["ann", "bob"]

    run_in_env(scenario)


def test_timers_of_minutes_finish_instantly_with_time_skipping() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        loop = asyncio.get_running_loop()
        async with Worker(env.client, task_queue="sleep", workflows=[Sleeper]):
            started = loop.time()
            elapsed = await env.client.execute_workflow(Sleeper.run, 30, id="sleeper", task_queue="sleep")
            wall = loop.time() - started
        assert elapsed >= 3600  # an hour of workflow time...
        assert wall < 5  # ...in well under the test's own patience

    run_in_env(scenario, time_skipping=True)


def test_cancel_reaches_the_running_activity_and_the_workflow_ends_canceled() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client, task_queue="cancel", workflows=[Cancellable], activities=[wait_forever]
        ):
            handle = await env.client.start_workflow(Cancellable.run, id="cancel-1", task_queue="cancel")
            for _ in range(200):
                desc = await handle.describe()
                if desc.pending_activities and desc.pending_activities[0].state == "STARTED":
                    break
                await asyncio.sleep(0.01)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            assert isinstance(info.value.cause, CanceledError)
            assert (await handle.describe()).status == "CANCELED"
            events = (await handle.fetch_history()).events
            types = [e.event_type for e in events]
            assert EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED in types
            assert EventType.ACTIVITY_TASK_CANCEL_REQUESTED in types
            assert types[-1] == EventType.WORKFLOW_EXECUTION_CANCELED

    run_in_env(scenario)


def test_terminate_closes_the_run_with_the_reason() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="term", workflows=[Approval]):
            handle = await env.client.start_workflow(Approval.run, 5, id="term-1", task_queue="term")
            await handle.terminate("operator said so")
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            assert isinstance(info.value.cause, TerminatedError)
            assert "operator said so" in str(info.value.cause)
            assert (await handle.describe()).status == "TERMINATED"
            # A closed run refuses further signals, and says why.
            with pytest.raises(Exception, match="already closed"):
                await handle.signal(Approval.approve, "late")

    run_in_env(scenario)
