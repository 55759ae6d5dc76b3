"""A poll cancelled while the start of the task it took is being recorded (its worker stopped, its
RPC was abandoned) must not lose the task: the run would otherwise wait forever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e.workflows import HelloWorkflow, say_hello

from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


@pytest.mark.parametrize("task_type", [WORKFLOW_TASK, ACTIVITY_TASK], ids=["workflow_task", "activity_task"])
def test_a_poll_cancelled_during_the_start_leaves_the_task_to_the_next_poller(task_type: int) -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            frontend: Any = env.host.frontend
            history = frontend.history
            plain_mutate = history.mutate
            stalled = asyncio.Event()
            never = asyncio.Event()
            stall_next = [False]

            async def mutate(*args: Any, **kwargs: Any) -> Any:
                if stall_next[0] and kwargs.get("defer") is not None:  # a task start
                    stall_next[0] = False
                    stalled.set()
                    await never.wait()  # cancelled here, before the start is recorded
                return await plain_mutate(*args, **kwargs)

            history.mutate = mutate
            service = env.client.service
            handle = None
            if task_type == ACTIVITY_TASK:
                # Let a worker take the workflow task, then stall the activity's start.
                async with Worker(env.client, task_queue="cq", workflows=[HelloWorkflow]):
                    handle = await env.client.start_workflow(
                        HelloWorkflow.run, "hi", id="cancelled", task_queue="cq"
                    )
                    while not any(
                        e.event_type.name == "ACTIVITY_TASK_SCHEDULED"
                        for e in (await handle.fetch_history()).events
                    ):
                        await asyncio.sleep(0.01)
                stall_next[0] = True
                poll = asyncio.create_task(service.poll_activity_task_queue(env.client.namespace, "cq"))
            else:
                stall_next[0] = True
                handle = await env.client.start_workflow(
                    HelloWorkflow.run, "hi", id="cancelled", task_queue="cq"
                )
                poll = asyncio.create_task(service.poll_workflow_task_queue(env.client.namespace, "cq"))
            await stalled.wait()
            poll.cancel()
            with pytest.raises(asyncio.CancelledError):
                await poll
            async with Worker(env.client, task_queue="cq", workflows=[HelloWorkflow], activities=[say_hello]):
                assert await asyncio.wait_for(handle.result(), 10) == "Hello, hi!"
        finally:
            await env.shutdown()

    asyncio.run(main())
