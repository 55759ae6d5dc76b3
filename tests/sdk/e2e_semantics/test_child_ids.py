"""A child workflow started without ``id=`` gets one the parent's replays derive again."""

from __future__ import annotations

from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

QUEUE = "child-ids"


@workflow.defn
class Doubler:
    @workflow.run
    async def run(self, n: int) -> int:
        return 2 * n


@workflow.defn
class Family:
    @workflow.run
    async def run(self, n: int) -> list[int]:
        first = await workflow.execute_child_workflow(Doubler.run, n)
        handle = await workflow.start_child_workflow(Doubler.run, first)
        return [first, await handle.result(), len({handle.id, workflow.info().workflow_id})]


def test_children_started_without_an_id_get_distinct_ids_that_replay() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Family, Doubler], max_cached_workflows=0):
            result = await env.client.execute_workflow(Family.run, 3, id="family", task_queue=QUEUE)
        assert result == [6, 12, 2]
        history = await env.client.get_workflow_handle("family").fetch_history()
        initiated = [
            e.attributes["workflow_id"]
            for e in history.events
            if e.event_type is EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        assert len(initiated) == 2 and len(set(initiated)) == 2 and "" not in initiated
        for child_id in initiated:
            child = await env.client.get_workflow_handle(child_id).describe()
            assert child.status == "COMPLETED"
        # Every task of the parent replayed (no cache) and produced the same ids; so does a replayer.
        Replayer(workflows=[Family, Doubler]).replay_workflow(history)

    run_in_env(scenario, timeout=30)
