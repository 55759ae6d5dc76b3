"""``client.list_workflows`` and ``client.count_workflows`` as temporalio users write them."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from e2e.conftest import run_in_env
from e2e.workflows import HelloWorkflow, say_hello

from cadenza import workflow
from cadenza.client import (
    WorkflowExecution,
    WorkflowExecutionCount,
    WorkflowExecutionCountAggregationGroup,
    WorkflowExecutionStatus,
)
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

QUEUE = "listing"


@workflow.defn
class Waiter:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.go)

    @workflow.signal
    def release(self) -> None:
        self.go = True


async def _listed(
    env: WorkflowEnvironment, query: str | None = None, *, limit: int | None = None, page_size: int = 1000
) -> list[WorkflowExecution]:
    return [e async for e in env.client.list_workflows(query, limit=limit, page_size=page_size)]


def test_list_and_count_workflows_with_queries_pages_limits_and_groups() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        workflows = [HelloWorkflow, Waiter]
        async with Worker(env.client, task_queue=QUEUE, workflows=workflows, activities=[say_hello]):
            for i in range(3):
                await env.client.execute_workflow(
                    HelloWorkflow.run, f"n{i}", id=f"hello-{i}", task_queue=QUEUE, memo={"n": i}
                )
            await env.client.start_workflow(Waiter.run, id="waiting", task_queue=QUEUE)
            # Visibility is eventually consistent: wait until all four are listed as they are.
            for _ in range(200):
                count = await env.client.count_workflows("ExecutionStatus = 'Completed'")
                if count.count == 3 and len(await _listed(env, "ExecutionStatus = 'Running'")) == 1:
                    break
                await asyncio.sleep(0.05)

            everything = await _listed(env)
            assert sorted(e.id for e in everything) == ["hello-0", "hello-1", "hello-2", "waiting"]
            running = await _listed(env, "ExecutionStatus = 'Running'")
            assert [(e.id, e.status, e.workflow_type) for e in running] == [
                ("waiting", WorkflowExecutionStatus.RUNNING, "Waiter")
            ]
            assert running[0].close_time is None and isinstance(running[0].start_time, datetime)
            done = {e.id: e for e in await _listed(env, "WorkflowType = 'HelloWorkflow'")}
            assert set(done) == {"hello-0", "hello-1", "hello-2"}
            first = done["hello-1"]
            assert first.status == "COMPLETED" and first.task_queue == QUEUE and first.run_id
            assert isinstance(first.close_time, datetime) and first.history_length > 0
            assert await first.memo() == {"n": 1} and await first.memo_value("n") == 1

            # One page at a time, and a limit across pages.
            paged = await _listed(env, page_size=1)
            assert sorted(e.id for e in paged) == sorted(e.id for e in everything)
            assert len(await _listed(env, limit=2, page_size=1)) == 2
            assert len(await _listed(env, limit=0)) == 0

            assert await env.client.count_workflows() == WorkflowExecutionCount(4, ())
            grouped = await env.client.count_workflows("TaskQueue = 'listing' GROUP BY ExecutionStatus")
            assert grouped.count == 4
            assert list(grouped.groups) == [
                WorkflowExecutionCountAggregationGroup(3, ("Completed",)),
                WorkflowExecutionCountAggregationGroup(1, ("Running",)),
            ]
            with pytest.raises(ValueError, match="page_size must be > 0, got 0"):
                env.client.list_workflows(page_size=0)
            await env.client.get_workflow_handle("waiting").signal(Waiter.release)

    run_in_env(scenario)
