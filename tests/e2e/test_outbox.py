"""The visibility outbox: every start and close reaches the sink, in version order, and a failing
sink makes the outbox back up and drain instead of skipping."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cadenza.engine.outbox import VisibilityUpdate
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import HelloWorkflow, say_hello


class RecordingSink:
    def __init__(self, failures: int = 0) -> None:
        self.updates: list[VisibilityUpdate] = []
        self.failures = failures
        self.calls = 0

    async def publish(self, updates: Sequence[VisibilityUpdate]) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unavailable")
        self.updates.extend(updates)


def _scenario(sink: RecordingSink):  # type: ignore[no-untyped-def]
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="vis", workflows=[HelloWorkflow], activities=[say_hello]):
            for i in range(5):
                await env.client.execute_workflow(HelloWorkflow.run, "v", id=f"vis-{i}", task_queue="vis")
        for _ in range(500):
            # A start task processed late publishes the state of then: possibly already Completed.
            if len({u.workflow_id for u in sink.updates if u.status == "Completed"}) == 5:
                break
            await asyncio.sleep(0.01)

    return scenario


def test_every_start_and_close_reaches_the_sink_with_increasing_versions() -> None:
    sink = RecordingSink()
    run_in_env(_scenario(sink), visibility_sink=sink)
    by_workflow: dict[str, list[VisibilityUpdate]] = {}
    for u in sink.updates:
        by_workflow.setdefault(u.workflow_id, []).append(u)
    assert sorted(by_workflow) == [f"vis-{i}" for i in range(5)]
    for updates in by_workflow.values():
        assert updates[-1].status == "Completed" and updates[-1].close_time > 0
        assert updates[-1].workflow_type == "HelloWorkflow" and updates[-1].history_length == 11
        versions = [u.task_id for u in updates]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_a_failing_sink_backs_the_outbox_up_and_loses_nothing() -> None:
    sink = RecordingSink(failures=3)
    run_in_env(_scenario(sink), visibility_sink=sink)
    assert sink.calls > 3
    assert {(u.workflow_id, u.status) for u in sink.updates} >= {(f"vis-{i}", "Completed") for i in range(5)}


class BlockingSink(RecordingSink):
    """Holds its first batch until released, so the tasks of the writes made meanwhile queue up."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish(self, updates: Sequence[VisibilityUpdate]) -> None:
        if self.calls == 0:
            self.calls += 1
            await self.release.wait()
            self.updates.extend(updates)
            return
        await super().publish(updates)


def test_a_runs_start_and_close_in_one_batch_publish_one_record_built_without_a_read() -> None:
    sink = BlockingSink()

    async def scenario(env: WorkflowEnvironment) -> None:
        reads: list[str] = []
        get_state = env.host.history.get_state

        async def counting(namespace_id: str, workflow_id: str, run_id: str):  # type: ignore[no-untyped-def]
            task = asyncio.current_task()
            if task is not None and task.get_name() == "cadenza-visibility-outbox":
                reads.append(workflow_id)
            return await get_state(namespace_id, workflow_id, run_id)

        env.host.history.get_state = counting  # type: ignore[method-assign]
        async with Worker(env.client, task_queue="vis", workflows=[HelloWorkflow], activities=[say_hello]):
            await env.client.execute_workflow(HelloWorkflow.run, "v", id="vis-held", task_queue="vis")
            for _ in range(500):  # the first batch is in the sink, held
                if sink.calls:
                    break
                await asyncio.sleep(0.01)
            # Its start and close queue up behind the held batch, and go out in the next one.
            await env.client.execute_workflow(HelloWorkflow.run, "v", id="vis-short", task_queue="vis")
        sink.release.set()
        for _ in range(500):
            if any(u.workflow_id == "vis-short" for u in sink.updates):
                break
            await asyncio.sleep(0.01)
        assert "vis-short" not in reads  # closed in the write that made the task: no store read

    run_in_env(scenario, visibility_sink=sink)
    short = [u for u in sink.updates if u.workflow_id == "vis-short"]
    assert len(short) == 1, short
    assert short[0].status == "Completed" and short[0].close_time > 0
    assert short[0].workflow_type == "HelloWorkflow" and short[0].history_length == 11
