"""A task queue as the server's matching sees it, for the UI's task queue page (in process only:
there is no API call for it yet).

Matching keeps no list of poller identities, only whether pollers wait now and when the queue was
last polled; the page shows those and the tasks held in memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK


def task_queue_info(host: Any) -> Any:
    """``TaskQueueInfo`` over ``host`` (a ``cadenza.engine.host.Host``)."""

    async def describe(namespace: str, name: str) -> dict[str, Any]:
        ns_id = (await host.namespaces.get(namespace)).id
        matching = host.matching
        loop_now = asyncio.get_running_loop().time()
        wall_now_us = host.history.clock.now_us()
        out: dict[str, Any] = {}
        for kind, task_type in (("workflow", WORKFLOW_TASK), ("activity", ACTIVITY_TASK)):
            q = matching.queue(ns_id, name, task_type)
            waiting = sum(1 for p in q.pollers if not p.done())
            last = q.last_poll_time
            out[kind] = {
                "backlog": matching.backlog(ns_id, name, task_type),
                "waiting_pollers": waiting,
                # The monotonic poll time as wall-clock microseconds, as every other time in the UI.
                "last_poll_time": int(wall_now_us - (loop_now - last) * 1e6) if last else 0,
                "pollers": [],
            }
        return out

    return describe
