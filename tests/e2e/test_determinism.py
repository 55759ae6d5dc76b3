"""Determinism: a code change that breaks replay fails the workflow task, never the history; fixing
the code lets the workflow finish. Exported histories replay with the Replayer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from cadenza import activity, workflow
from cadenza.client import WorkflowHistory
from cadenza.exceptions import NondeterminismError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .conftest import run_in_env
from .workflows import HelloWorkflow, VideoPipeline, say_hello

QUICK = timedelta(seconds=10)


@activity.defn
async def step_a() -> str:
    return "a"


@activity.defn
async def step_b() -> str:
    return "b"


@workflow.defn(name="Deploy")
class DeployV1:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        first = await workflow.execute_activity(step_a, start_to_close_timeout=QUICK)
        await workflow.wait_condition(lambda: self.go)
        return first + await workflow.execute_activity(step_b, start_to_close_timeout=QUICK)

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="Deploy")
class DeployV2Broken:
    """Someone reordered the steps: replaying V1's history must notice."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        first = await workflow.execute_activity(step_b, start_to_close_timeout=QUICK)
        await workflow.wait_condition(lambda: self.go)
        return first + await workflow.execute_activity(step_a, start_to_close_timeout=QUICK)

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


async def _wait_for(handle, predicate, tries: int = 300):  # type: ignore[no-untyped-def]
    for _ in range(tries):
        events = (await handle.fetch_history()).events
        if predicate(events):
            return events
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_changed_code_fails_the_workflow_task_with_nondeterminism_and_recovers_once_fixed() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        acts = [step_a, step_b]
        async with Worker(env.client, task_queue="deploy", workflows=[DeployV1], activities=acts):
            handle = await env.client.start_workflow("Deploy", id="deploy-1", task_queue="deploy")
            await _wait_for(
                handle,
                lambda ev: (
                    any(e.event_type == EventType.ACTIVITY_TASK_COMPLETED for e in ev)
                    and ev[-1].event_type == EventType.WORKFLOW_TASK_COMPLETED
                ),
            )
        before = (await handle.fetch_history()).events

        async with Worker(env.client, task_queue="deploy", workflows=[DeployV2Broken], activities=acts):
            await handle.signal("proceed")
            events = await _wait_for(
                handle, lambda ev: any(e.event_type == EventType.WORKFLOW_TASK_FAILED for e in ev)
            )
        failed = next(e for e in events if e.event_type == EventType.WORKFLOW_TASK_FAILED)
        assert failed.attributes["cause"] == "NON_DETERMINISTIC_ERROR"
        message = failed.attributes["failure"]["message"]
        assert "step_a" in message and "step_b" in message
        # History is intact: everything written before is still there, unchanged.
        assert [(e.event_id, e.event_type) for e in events[: len(before)]] == [
            (e.event_id, e.event_type) for e in before
        ]
        assert (await handle.describe()).status == "RUNNING"

        async with Worker(env.client, task_queue="deploy", workflows=[DeployV1], activities=acts):
            assert await handle.result() == "ab"

    run_in_env(scenario)


def test_exported_history_replays_with_the_replayer(tmp_path: Path) -> None:
    path = tmp_path / "hello.json"

    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="hello", workflows=[HelloWorkflow], activities=[say_hello]):
            await env.client.execute_workflow(
                HelloWorkflow.run, "replay", id="hello-replay", task_queue="hello"
            )
        history = await env.client.get_workflow_handle("hello-replay").fetch_history()
        history.write(path)

    run_in_env(scenario)
    loaded = WorkflowHistory.from_file(path)
    assert loaded.events[-1].event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
    assert loaded.events[6].attributes["result"][0]["data"] == b'"Hello, replay!"'
    Replayer(workflows=[HelloWorkflow]).replay_workflow(loaded)


@workflow.defn(name="HelloWorkflow")
class HelloChanged:
    @workflow.run
    async def run(self, name: str) -> str:
        await asyncio.sleep(1)  # a timer where history has an activity
        return await workflow.execute_activity(say_hello, name, start_to_close_timeout=QUICK)


def test_replayer_rejects_code_that_diverges_from_a_recorded_history() -> None:
    fixture = Path(__file__).parent / "histories" / "hello_v1.json"
    history = WorkflowHistory.from_file(fixture)
    Replayer(workflows=[HelloWorkflow]).replay_workflow(history)
    with pytest.raises(NondeterminismError):
        Replayer(workflows=[HelloChanged]).replay_workflow(history)


def test_golden_histories_still_replay() -> None:
    """Histories recorded by released versions: a change that breaks their replay fails the build."""
    golden = sorted((Path(__file__).parent / "histories").glob("*.json"))
    assert golden, "no golden histories found"
    replayer = Replayer(workflows=[HelloWorkflow, VideoPipeline])
    for path in golden:
        replayer.replay_workflow(WorkflowHistory.from_file(path))
