"""Timeouts, workflow failures, activity retry delays and failing queries, as temporalio's own SDK
tests expect them (bodies as there; fixtures are ours)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from e2e.conftest import run_in_env

from cadenza.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from cadenza.exceptions import ActivityError, ApplicationError, QueryFailedError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .failure_workflows import (
    ActivitiesWithRetryDelayWorkflow,
    MissingLocalActivityWorkflow,
    RaisesConfiguredFailureWorkflow,
    RetryDelay,
    SignalAndQueryErrorsWorkflow,
    WaitConditionTimeoutWorkflow,
    WorkerLevelFailure,
    activity_with_retry_delay,
    not_registered_yet,
)
from .waits import eventually, has_event


def new_worker(client: Client, *workflows: type, activities: list[Any] | None = None, **kw: Any) -> Worker:
    return Worker(
        client,
        task_queue=kw.pop("task_queue", str(uuid.uuid4())),
        workflows=list(workflows),
        activities=activities or [],
        **kw,
    )


def test_an_uncaught_wait_condition_timeout_fails_the_workflow() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with new_worker(env.client, WaitConditionTimeoutWorkflow) as worker:
            handle = await env.client.start_workflow(
                WaitConditionTimeoutWorkflow.run, id=f"workflow-{uuid.uuid4()}", task_queue=worker.task_queue
            )
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert isinstance(err.value.cause, ApplicationError)
            assert err.value.cause.type == "TimeoutError"
            assert (await handle.describe()).status == "FAILED"
            types = [e.event_type for e in (await handle.fetch_history()).events]
            assert EventType.WORKFLOW_TASK_FAILED not in types
            Replayer(workflows=[WaitConditionTimeoutWorkflow]).replay_workflow(await handle.fetch_history())

    run_in_env(scenario)


@pytest.mark.parametrize("which", ["workflow-level", "worker-level", "bug"])
def test_workflow_failure_exception_types(which: str) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with new_worker(
            env.client,
            RaisesConfiguredFailureWorkflow,
            workflow_failure_exception_types=[WorkerLevelFailure],
        ) as worker:
            handle = await env.client.start_workflow(
                RaisesConfiguredFailureWorkflow.run,
                which,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )
            if which == "bug":
                # Not a failure type: the workflow task fails (and is retried), the run goes on.
                await eventually(lambda: has_event(handle, EventType.WORKFLOW_TASK_FAILED))
                assert (await handle.describe()).status == "RUNNING"
                await handle.terminate()
                return
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert isinstance(err.value.cause, ApplicationError)
            expected = "MyFailure" if which == "workflow-level" else "WorkerLevelFailure"
            assert err.value.cause.type == expected

    run_in_env(scenario)


def test_activity_retry_delay() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        RetryDelay.attempts.clear()
        async with new_worker(
            env.client, ActivitiesWithRetryDelayWorkflow, activities=[activity_with_retry_delay]
        ) as worker:
            # The retry policy waits five minutes; the error's next_retry_delay (5 ms) wins.
            with pytest.raises(WorkflowFailureError) as err:
                await env.client.execute_workflow(
                    ActivitiesWithRetryDelayWorkflow.run,
                    id=f"workflow-{uuid.uuid4()}",
                    task_queue=worker.task_queue,
                )
            assert isinstance(err.value.cause, ActivityError)
            assert isinstance(err.value.cause.cause, ApplicationError)
            assert str(err.value.cause.cause) == RetryDelay.error_message
            assert err.value.cause.cause.next_retry_delay == RetryDelay.next_retry_delay
        assert RetryDelay.attempts == [1, 2]

    run_in_env(scenario, timeout=30)


def test_workflow_signal_and_query_errors() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with new_worker(env.client, SignalAndQueryErrorsWorkflow) as worker:
            handle = await env.client.start_workflow(
                SignalAndQueryErrorsWorkflow.run,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=worker.task_queue,
            )
            # Query
            with pytest.raises(WorkflowQueryFailedError) as err:
                await handle.query(SignalAndQueryErrorsWorkflow.bad_query)
            assert str(err.value) == "query fail"
            assert isinstance(err.value, QueryFailedError)
            await handle.terminate()

    run_in_env(scenario)


def test_a_local_activity_of_an_unknown_type_fails_the_workflow_task() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        task_queue = str(uuid.uuid4())
        async with new_worker(env.client, MissingLocalActivityWorkflow, task_queue=task_queue):
            handle = await env.client.start_workflow(
                MissingLocalActivityWorkflow.run,
                id=f"workflow-{uuid.uuid4()}",
                task_queue=task_queue,
                task_timeout=timedelta(seconds=2),
            )
            await eventually(lambda: has_event(handle, EventType.WORKFLOW_TASK_FAILED))
            assert (await handle.describe()).status == "RUNNING"
        # Deploying the activity resumes the run.
        async with new_worker(
            env.client, MissingLocalActivityWorkflow, activities=[not_registered_yet], task_queue=task_queue
        ):
            assert await handle.result() == "registered now"

    run_in_env(scenario, timeout=40)
