"""Matching: task queues that pair tasks with long-polling workers.

A task reaches a queue from the shard's transfer queue and stays *un-acknowledged* there until a worker
has recorded it as started (or it proved stale). Until then the transfer task row is the durable copy:
if the process dies, the transfer queue re-reads it and offers the task again, and a duplicate offer is
harmless because recording a task as started is idempotent and a stale one is dropped. So a task handed
to a waiting poller (a "sync match") costs no extra write.

Queries travel the same way but are never persisted: a query waits for its answer with a deadline.

Sticky queues (sticky execution) are ordinary queues named by one worker. A workflow task offered to
one carries the run's normal queue (``MatchTask.normal_queue``): queued there unstarted for its
schedule-to-start timeout (a timer of the engine's clock, armed through ``on_sticky_queued``), it
is withdrawn and offered to the normal queue instead (``fall_back``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WORKFLOW_TASK = 0
ACTIVITY_TASK = 1


@dataclass(slots=True, eq=False)
class MatchTask:
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    attempt: int
    ack: Callable[[], None] = lambda: None
    """Called once the task was started by a worker or found stale: the source task is done."""
    query: Any = None
    """For query tasks: the pending query (``PendingQuery``)."""
    task_queue: str = ""
    task_type: int = WORKFLOW_TASK
    normal_queue: str = ""
    """Set for a workflow task offered to a sticky queue: the run's own queue, to fall back to."""
    sticky_timeout_ms: int = 0
    """How long it may wait on the sticky queue unstarted."""
    created_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())


def expire(fut: asyncio.Future[Any]) -> None:
    """Ends a long-poll that nothing answered in time: it returns None."""
    if not fut.done():
        fut.set_result(None)


class TaskQueue:
    def __init__(self) -> None:
        self.tasks: collections.deque[MatchTask] = collections.deque()
        self.queries: collections.deque[MatchTask] = collections.deque()
        self.pollers: collections.deque[asyncio.Future[MatchTask | None]] = collections.deque()
        self.last_poll_time = 0.0

    def offer(self, task: MatchTask) -> bool:
        """Hands ``task`` to a waiting poller, else queues it; True if it was queued."""
        while self.pollers:
            poller = self.pollers.popleft()
            if not poller.done():
                poller.set_result(task)
                return False
        (self.queries if task.query is not None else self.tasks).append(task)
        return True

    def hand_over(self, task: MatchTask) -> bool:
        """Gives ``task`` to a poller waiting right now; False (and nothing queued) if none is."""
        while self.pollers:
            poller = self.pollers.popleft()
            if not poller.done():
                poller.set_result(task)
                return True
        return False

    def take(self) -> MatchTask | None:
        if self.queries:
            return self.queries.popleft()
        if self.tasks:
            return self.tasks.popleft()
        return None


class MatchingEngine:
    def __init__(self) -> None:
        self._queues: dict[tuple[str, str, int], TaskQueue] = {}
        self._query_ids = itertools.count(1)
        self.on_sticky_queued: Callable[[MatchTask], None] | None = None
        """Called when a workflow task is queued on a sticky queue: arms its fallback timer."""
        self.metrics: Any = None
        """``cadenza.metrics.ServerMetrics``: records each task's schedule-to-start latency."""

    def _offer(self, q: TaskQueue, task: MatchTask) -> None:
        if q.offer(task) and task.normal_queue and self.on_sticky_queued is not None:
            self.on_sticky_queued(task)

    def queue(self, namespace_id: str, name: str, task_type: int) -> TaskQueue:
        key = (namespace_id, name, task_type)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = TaskQueue()
        return q

    def add_task(self, namespace_id: str, name: str, task_type: int, task: MatchTask) -> None:
        task.task_queue = name
        task.task_type = task_type
        self._offer(self.queue(namespace_id, name, task_type), task)

    def hand_over(self, namespace_id: str, name: str, task_type: int, task: MatchTask) -> bool:
        """Gives ``task`` to a poller waiting right now, if there is one (see ``TaskQueue``)."""
        q = self._queues.get((namespace_id, name, task_type))
        if q is None:
            return False
        task.task_queue = name
        task.task_type = task_type
        return q.hand_over(task)

    def reoffer(self, task: MatchTask) -> None:
        """Offers a task again whose start was lost (see ``RunContext.deferred``)."""
        self._offer(self.queue(task.namespace_id, task.task_queue, task.task_type), task)

    def withdraw(self, task: MatchTask) -> bool:
        """Takes a queued task back; False if it is not queued (a poller has it)."""
        q = self._queues.get((task.namespace_id, task.task_queue, task.task_type))
        if q is None:
            return False
        try:
            (q.queries if task.query is not None else q.tasks).remove(task)
        except ValueError:
            return False
        return True

    def fall_back(self, task: MatchTask) -> None:
        """Offers a workflow task taken off a sticky queue to the run's normal queue."""
        # A task that is not sticky has no normal queue to go to: offered to queue '' it would
        # wait there for a poller that never comes.
        assert task.normal_queue, f"workflow task of {task.workflow_id} is not on a sticky queue"
        normal, task.normal_queue, task.sticky_timeout_ms = task.normal_queue, "", 0
        self.add_task(task.namespace_id, normal, task.task_type, task)

    def redirect_sticky(self, namespace_id: str, name: str, run_id: str) -> int:
        """Moves the workflow tasks of ``run_id`` queued on sticky queue ``name`` to the run's
        normal queue (its worker let the run go); returns how many were moved."""
        q = self._queues.get((namespace_id, name, WORKFLOW_TASK))
        if q is None:
            return 0
        moved = [t for t in q.tasks if t.run_id == run_id and t.normal_queue]
        for t in moved:
            q.tasks.remove(t)
            self.fall_back(t)
        return len(moved)

    async def poll(self, namespace_id: str, name: str, task_type: int, timeout_s: float) -> MatchTask | None:
        q = self.queue(namespace_id, name, task_type)
        loop = asyncio.get_running_loop()
        q.last_poll_time = loop.time()
        task = q.take()
        if task is not None or timeout_s <= 0:
            if task is not None and self.metrics is not None:
                self._started(task, loop.time())
            return task  # a poll that does not wait only takes what is queued
        fut: asyncio.Future[MatchTask | None] = loop.create_future()
        q.pollers.append(fut)
        # A timer that answers None rather than ``asyncio.wait_for``, which wraps every poll in a
        # second future and callbacks: polls are a hot path.
        expiry = loop.call_later(timeout_s, expire, fut)
        try:
            task = await fut
            if task is not None and self.metrics is not None:
                self._started(task, loop.time())
            return task
        except asyncio.CancelledError:
            # A task handed to a poller that went away must not be lost: offer it again.
            if fut.done() and not fut.cancelled():
                task = fut.result()
                if task is not None:
                    self._offer(q, task)
            raise
        finally:
            expiry.cancel()

    def _started(self, task: MatchTask, now: float) -> None:
        if task.query is None:
            self.metrics.schedule_to_start(
                task.namespace_id,
                # A sticky queue belongs to one worker: reported under the run's normal queue.
                task.normal_queue or task.task_queue,
                "workflow" if task.task_type == WORKFLOW_TASK else "activity",
                now - task.created_at,
            )

    def has_pollers(self, namespace_id: str, name: str, task_type: int, within_s: float = 70.0) -> bool:
        q = self._queues.get((namespace_id, name, task_type))
        if q is None:
            return False
        return bool(q.pollers) or asyncio.get_running_loop().time() - q.last_poll_time < within_s

    def backlog(self, namespace_id: str, name: str, task_type: int) -> int:
        q = self._queues.get((namespace_id, name, task_type))
        return len(q.tasks) if q else 0

    def next_query_id(self) -> str:
        return f"q{next(self._query_ids)}"

    def drain(self) -> None:
        """Fails every waiting poller (server shutdown)."""
        for q in self._queues.values():
            while q.pollers:
                p = q.pollers.popleft()
                if not p.done():
                    p.cancel()
