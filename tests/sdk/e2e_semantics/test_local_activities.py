"""Local activities end to end: run in the worker, retried locally, recorded as markers."""

from __future__ import annotations

from datetime import timedelta

from e2e.conftest import run_in_env

from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .workflows import (
    LocalActivities,
    LocalActivityOverBudget,
    calls,
    checksum,
    flaky_lookup,
    normalize,
    rejects,
    sleepy,
)

ACTIVITIES = [normalize, checksum, flaky_lookup, rejects, sleepy]


def test_local_activities_run_in_the_worker_and_replay_from_markers() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        calls.clear()
        async with Worker(
            env.client,
            task_queue="local",
            workflows=[LocalActivities],
            activities=ACTIVITIES,
            max_cached_workflows=0,  # every task replays: recorded local activities must not run again
        ):
            handle = await env.client.start_workflow(
                LocalActivities.run, "  Hello World ", id="local-1", task_queue="local"
            )
            result = await handle.result()
        assert result["clean"] == "hello world"
        assert result["checksum"] == sum(b"hello world") % 997
        assert result["found"] == "hello world@3"
        assert result["error"] == "ApplicationError: bad key hello world (NON_RETRYABLE_FAILURE)"
        assert dict(calls) == {"normalize": 1, "checksum": 1, "flaky_lookup": 3, "rejects": 1}

        history = await handle.fetch_history()
        types = [e.event_type for e in history.events]
        assert EventType.ACTIVITY_TASK_SCHEDULED not in types
        markers = [e for e in history.events if e.event_type is EventType.MARKER_RECORDED]
        assert [m.attributes["marker_name"] for m in markers] == ["core_local_activity"] * 4
        assert markers[3].attributes["failure"]["message"] == "bad key hello world"
        Replayer(workflows=[LocalActivities]).replay_workflow(history)
        assert calls["flaky_lookup"] == 3

    run_in_env(scenario, time_skipping=True)


def test_a_local_activity_longer_than_the_task_budget_fails_with_a_clear_timeout() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client, task_queue="budget", workflows=[LocalActivityOverBudget], activities=ACTIVITIES
        ):
            result = await env.client.execute_workflow(
                LocalActivityOverBudget.run,
                id="budget-1",
                task_queue="budget",
                task_timeout=timedelta(seconds=1),
            )
        assert result.startswith("TimeoutError: local activity 'sleepy' did not finish within")
        assert "1 s workflow task timeout" in result

    run_in_env(scenario)
