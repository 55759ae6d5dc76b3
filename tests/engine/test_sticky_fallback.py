"""A sticky workflow task whose schedule-to-start timeout fires while the store is down still
reaches its run's normal queue, and only once.

The timeout takes the task off the sticky queue, tries to clear the run's stickiness (a write) and
offers the task to the normal queue. With the store down the write failed, the timer fired again a
second later, and the second firing took the task, now ordinary, off the normal queue and "fell it
back" to a queue named '' that nobody polls: the run waited until the engine restarted (found by the
Cassandra kill test, 36 runs stuck with WORKFLOW_TASK_SCHEDULED as their last event).
"""

from __future__ import annotations

import asyncio
from typing import Any

from cadenza.engine.matching import WORKFLOW_TASK, MatchTask
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.testing import WorkflowEnvironment


def test_a_sticky_timeout_during_a_store_outage_falls_back_once_to_the_normal_queue() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        host: Any = env.host
        try:
            ns = await host.namespaces.get(env.client.namespace)
            task = MatchTask(ns.id, "wf", "run", 2, 1)
            task.normal_queue, task.sticky_timeout_ms = "orders", 60_000
            host.matching.add_task(ns.id, "orders:sticky:w1", WORKFLOW_TASK, task)

            async def store_down(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailableError("injected: cannot reach the store")

            host.history.mutate = store_down
            await host._sticky_timed_out(task)  # the timeout fires during the outage
            await host._sticky_timed_out(task)  # and, were it retried, again

            normal = host.matching.queue(ns.id, "orders", WORKFLOW_TASK)
            assert list(normal.tasks) == [task]
            assert task.normal_queue == "" and task.task_queue == "orders"
            assert not host.matching.queue(ns.id, "", WORKFLOW_TASK).tasks
            assert not host.matching.queue(ns.id, "orders:sticky:w1", WORKFLOW_TASK).tasks
        finally:
            await env.shutdown()

    asyncio.run(main())
