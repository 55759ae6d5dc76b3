"""A list or count right after a run closed sees it, on the embedded defaults (the process indexes
its own writes): what a development server's users expect, without waiting for the indexer."""

from __future__ import annotations

from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


@workflow.defn
class Quick:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


def test_lists_and_counts_see_the_runs_that_just_closed() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with Worker(client, task_queue="raw", workflows=[Quick]):
            for n in range(15):
                await client.execute_workflow(Quick.run, n, id=f"raw-{n}", task_queue="raw")
                listed = [w.id async for w in client.list_workflows(f"WorkflowId = 'raw-{n}'")]
                assert listed == [f"raw-{n}"], n
                closed = await client.count_workflows(
                    "WorkflowType = 'Quick' AND ExecutionStatus = 'Completed'"
                )
                assert closed.count == n + 1, (n, closed)

    run_in_env(scenario)


def test_the_barrier_waits_for_nothing_when_all_is_indexed() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        assert await env.host.visibility_barrier(timeout_s=1.0) is True
        assert await env.host.visibility_barrier(timeout_s=0.0) is True  # nothing in flight

    run_in_env(scenario)
