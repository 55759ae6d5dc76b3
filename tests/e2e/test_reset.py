"""Reset: start over from a past workflow task; signals received after that point come again, once."""

from __future__ import annotations

import asyncio

import pytest

from cadenza import workflow
from cadenza.exceptions import RPCError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env


@workflow.defn
class Collector:
    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self, wanted: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.items) >= wanted)
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)


async def _settled(handle) -> list:  # type: ignore[no-untyped-def]
    for _ in range(300):
        events = (await handle.fetch_history()).events
        if events[-1].event_type == EventType.WORKFLOW_TASK_COMPLETED:
            return events
        await asyncio.sleep(0.01)
    raise AssertionError("workflow did not settle")


def test_reset_to_the_first_workflow_task_reapplies_later_signals_exactly_once() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="reset", workflows=[Collector]):
            handle = await env.client.start_workflow(Collector.run, 3, id="collector", task_queue="reset")
            base_run = handle.first_run_id
            await _settled(handle)
            await handle.signal(Collector.add, "a")
            await handle.signal(Collector.add, "b")
            await _settled(handle)
            new_run = await handle.reset(reset_type="FirstWorkflowTask", reason="bad deploy")
            assert new_run != base_run
            old = env.client.get_workflow_handle("collector", run_id=base_run)
            assert (await old.describe()).status == "TERMINATED"
            await handle.signal(Collector.add, "c")
            assert await handle.result() == ["a", "b", "c"]
            events = (
                await env.client.get_workflow_handle("collector", run_id=new_run).fetch_history()
            ).events
            failed = next(e for e in events if e.event_type == EventType.WORKFLOW_TASK_FAILED)
            assert failed.attributes["cause"] == "RESET_WORKFLOW"
            assert failed.attributes["base_run_id"] == base_run
            signals = [
                e.attributes["input"] for e in events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
            ]
            assert len(signals) == 3  # a and b re-applied once each, then c

    run_in_env(scenario)


def test_reset_to_an_event_that_is_not_a_workflow_task_completion_is_refused() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="reset", workflows=[Collector]):
            handle = await env.client.start_workflow(Collector.run, 1, id="collector-2", task_queue="reset")
            await _settled(handle)
            with pytest.raises(RPCError) as info:
                await handle.reset(reset_type="EventId", event_id=1, reason="typo")
            assert info.value.status == "INVALID_ARGUMENT" and "WorkflowTaskCompleted" in info.value.message
            assert (await handle.describe()).status == "RUNNING"

    run_in_env(scenario)
