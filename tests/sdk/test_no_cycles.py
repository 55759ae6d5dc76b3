"""A finished workflow run and a finished activity leave no reference cycles behind: their memory
is freed by reference counting at once, not by the collector's full passes (which walked tens of
thousands of such objects in a busy worker)."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

from e2e.workflows import HelloWorkflow, say_hello

from cadenza.sdk._runtime.activity_tasks import Heartbeater
from cadenza.sdk._runtime.instance import WorkflowInstance
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


def test_finished_runs_and_activities_are_not_left_to_the_cycle_collector() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            async with Worker(env.client, task_queue="nc", workflows=[HelloWorkflow], activities=[say_hello]):
                for i in range(20):
                    assert await env.client.execute_workflow(
                        HelloWorkflow.run, "x", id=f"nc-{i}", task_queue="nc"
                    )
        finally:
            await env.shutdown()

    gc.collect()
    # Instances an earlier test still holds (a unit test's instance kept by a pytest report, say)
    # may become garbage while this runs: only the runs of this test are judged.
    # (type(), not isinstance: the heap holds weak proxies, whose isinstance needs their referent)
    earlier = {id(o) for o in gc.get_objects() if type(o) in (WorkflowInstance, Heartbeater)}
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        asyncio.run(main())
        gc.collect()
        left = Counter(
            type(o)
            for o in gc.garbage
            if isinstance(o, WorkflowInstance | Heartbeater) and id(o) not in earlier
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left, f"freed only by the cycle collector: {dict(left)}"
