"""Eager activity dispatch: the worker completing a workflow task gets back, started, the activities
it scheduled on its own task queue, within its free activity slots; others go through matching."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from cadenza import activity, workflow
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

QUICK = timedelta(seconds=10)
running = 0
peak = 0


@activity.defn
async def busy(i: int) -> int:
    global running, peak
    if i < 0:  # the one on the other worker's queue is not counted
        return i
    running += 1
    peak = max(peak, running)
    await asyncio.sleep(0.01)
    running -= 1
    return i


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, n: int) -> list[int]:
        here = [workflow.execute_activity(busy, i, start_to_close_timeout=QUICK) for i in range(n)]
        there = workflow.execute_activity(busy, -1, task_queue="elsewhere", start_to_close_timeout=QUICK)
        return list(await asyncio.gather(*here, there))


def test_eager_activities_respect_the_workers_slots_and_other_queues_go_through_matching() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        service: Any = env.client.service
        plain_complete = service.respond_workflow_task_completed
        plain_poll = service.poll_activity_task_queue
        eager: list[int] = []
        polled: list[str] = []

        async def complete(request: Any) -> Any:
            started = await plain_complete(request)
            eager.append(len(started))
            assert len(started) <= len(request.eager_activity_ids)
            return started

        async def poll(namespace: str, task_queue: str, **kwargs: Any) -> Any:
            task = await plain_poll(namespace, task_queue, **kwargs)
            if task is not None:
                polled.append(task_queue)
            return task

        service.respond_workflow_task_completed = complete
        service.poll_activity_task_queue = poll
        try:
            async with (
                Worker(
                    env.client,
                    task_queue="fan",
                    workflows=[FanOut],
                    activities=[busy],
                    max_concurrent_activities=3,
                    activity_pollers=1,
                ),
                Worker(env.client, task_queue="elsewhere", activities=[busy]),
            ):
                result = await env.client.execute_workflow(FanOut.run, 5, id="fan", task_queue="fan")
        finally:
            await env.shutdown()
        assert result == [0, 1, 2, 3, 4, -1]
        assert peak <= 3, f"{peak} activities ran at once on a worker with 3 slots"
        # The first workflow task scheduled them all; its poller held one slot: two came back started.
        assert eager[0] == 2
        assert polled.count("fan") == 3  # the rest went through matching
        assert polled.count("elsewhere") == 1  # another queue is never taken eagerly

    asyncio.run(main())
