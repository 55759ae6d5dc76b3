"""Matching: task queues that pair tasks with long-polling workers.

A task reaches a queue from the shard's transfer queue and stays *un-acknowledged* there until a worker
has recorded it as started (or it proved stale). Until then the transfer task row is the durable copy:
if the process dies, the transfer queue re-reads it and offers the task again, and a duplicate offer is
harmless because recording a task as started is idempotent and a stale one is dropped. So a task handed
to a waiting poller (a "sync match") costs no extra write.

Queries travel the same way but are never persisted: a query waits for its answer with a deadline.

A task that no poller takes within a short time is written to the task queue's rows in the store and
read back in order when pollers come (``matching_backlog``), so a large backlog is not held in memory;
its source row is acknowledged once the store holds it.

Sticky queues (sticky execution) are ordinary queues named by one worker. A workflow task offered to
one carries the run's normal queue (``MatchTask.normal_queue``): queued there unstarted for its
schedule-to-start timeout (a timer of the engine's clock, armed through ``on_sticky_queued``), it
is withdrawn and offered to the normal queue instead (``fall_back``).

Every poll is remembered, by the poller's identity, for ``DescribeTaskQueue`` (``matching_pollers``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.errors import UnavailableError
from cadenza.engine.matching_backlog import MAX_TASK_ID, Backlog, BacklogConfig
from cadenza.engine.matching_pollers import PollerHistoryConfig, PollerKey, pollers, trim
from cadenza.engine.persistence.protocols import TaskQueueStore
from cadenza.schemas.service import PollerInfo

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
    """One queue's tasks and waiting pollers. With a store, tasks that wait too long go to its
    ``backlog`` (see ``matching_backlog``); ``tasks`` holds the ones in memory, newest last."""

    def __init__(self, engine: MatchingEngine | None = None, key: tuple[str, str, int] | None = None) -> None:
        self.tasks: collections.deque[MatchTask] = collections.deque()
        self.queries: collections.deque[MatchTask] = collections.deque()
        self.pollers: collections.deque[asyncio.Future[MatchTask | None]] = collections.deque()
        self.last_poll_time = 0.0
        self.pollers_seen: dict[PollerKey, int] = {}
        """Where a poll of this queue is remembered: the queue's own pollers, or for a sticky queue
        whose normal queue is known, that queue's (``matching_pollers``)."""
        self.sticky_name = ""
        """For a sticky queue recorded in its normal queue's pollers: its own name (the key's
        second half); "" otherwise."""
        self.backlog: Backlog | None = None
        self._engine = engine
        self._key = key

    def offer(self, task: MatchTask) -> bool:
        """Hands ``task`` to a waiting poller, else queues it; True if it was queued."""
        if task.query is not None:
            if self.hand_over(task):
                return False
            self.queries.append(task)
            return True
        if not self.tasks and (self.backlog is None or not self.backlog.blocks_memory()):
            while self.pollers:  # the fast path: no store access
                poller = self.pollers.popleft()
                if not poller.done():
                    poller.set_result(task)
                    return False
        self.tasks.append(task)
        if self.backlog is None and not task.normal_queue and self._engine is not None:
            self.backlog = self._engine.new_backlog(self)
        if self.backlog is not None:
            self.backlog.queued()
        return True

    def hand_over(self, task: MatchTask) -> bool:
        """Gives ``task`` to a poller waiting right now; False (and nothing queued) if none is, or
        if older tasks of the queue wait in the store (they go first)."""
        if task.query is None and (self.tasks or (self.backlog is not None and self.backlog.blocks_memory())):
            return False
        while self.pollers:
            poller = self.pollers.popleft()
            if not poller.done():
                poller.set_result(task)
                return True
        return False

    def take(self) -> MatchTask | None:
        if self.queries:
            return self.queries.popleft()
        backlog = self.backlog
        if backlog is not None:
            task = backlog.take()
            if task is not None:
                return task
            if backlog.blocks_memory():
                backlog.wake()  # older tasks are in the store: read them first
                return None
        if self.tasks:
            return self.tasks.popleft()
        return None

    def feed(self) -> None:
        """Hands what can be taken now to waiting pollers (the backlog read or wrote tasks)."""
        pollers = self.pollers
        while pollers:
            if pollers[0].done():
                pollers.popleft()
                continue
            task = self.take()
            if task is None:
                return
            pollers.popleft().set_result(task)

    def pending(self) -> bool:
        """Tasks or queries wait here, in memory or in the store."""
        return bool(self.tasks or self.queries) or (self.backlog is not None and self.backlog.blocks_memory())

    def held_in_memory(self) -> int:
        """Tasks (not queries) this queue holds in memory: queued, read back or being written."""
        return len(self.tasks) + (self.backlog.held() if self.backlog is not None else 0)


class MatchingEngine:
    """Task queues by (namespace id, name, task type). ``store``: where tasks that wait too long
    are written (``BacklogConfig``); None keeps every task in memory. ``now``: the monotonic clock
    that task ages are measured by (``MatchTask.created_at``); ``now_us``: wall-clock time, stored
    with a task so its age survives a restart."""

    def __init__(
        self,
        store: TaskQueueStore | None = None,
        *,
        config: BacklogConfig | None = None,
        now: Callable[[], float] = time.monotonic,
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        poller_history: PollerHistoryConfig | None = None,
    ) -> None:
        self._store = store
        self.config = config or BacklogConfig()
        self._now = now
        self._now_us = now_us
        self._queues: dict[tuple[str, str, int], TaskQueue] = {}
        self.poller_history = poller_history or PollerHistoryConfig()
        self._query_ids = itertools.count(1)
        self.on_sticky_queued: Callable[[MatchTask], None] | None = None
        """Called when a workflow task is queued on a sticky queue: arms its fallback timer."""
        self.metrics: Any = None
        """``cadenza.metrics.ServerMetrics``: records each task's schedule-to-start latency."""
        self.draining = False
        """Set by ``drain`` (the server is stopping): no poll gets a task any more."""

    def _link_sticky(self, q: TaskQueue, task: MatchTask) -> None:
        """The first task on a sticky queue names the run's normal queue: from now on this
        worker's sticky polls are remembered there, beside its normal ones."""
        normal = self.queue(task.namespace_id, task.normal_queue, task.task_type)
        q.pollers_seen, q.sticky_name = normal.pollers_seen, task.task_queue

    def _offer(self, q: TaskQueue, task: MatchTask) -> None:
        if task.normal_queue and not q.sticky_name:
            self._link_sticky(q, task)
        if q.offer(task) and task.normal_queue and self.on_sticky_queued is not None:
            self.on_sticky_queued(task)

    def queue(self, namespace_id: str, name: str, task_type: int) -> TaskQueue:
        key = (namespace_id, name, task_type)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = TaskQueue(self, key)
        return q

    def new_backlog(self, q: TaskQueue, *, ack_level: int = 0, rows_beyond: bool = False) -> Backlog | None:
        """The store side of queue ``q`` (None without a store)."""
        if self._store is None or q._key is None:
            return None
        return Backlog(
            q,
            self._store,
            q._key,
            self.config,
            now=self._now,
            now_us=self._now_us,
            ack_level=ack_level,
            rows_beyond=rows_beyond,
        )

    async def start(self, namespace_ids: list[str]) -> int:
        """Finds the queues whose backlog a previous process left in the store, so that they are
        served before the tasks offered from now on. Returns how many it found."""
        if self._store is None:
            return 0
        found = 0
        for ns in namespace_ids:
            for info in await self._store.list_task_queues(ns):
                rows = await self._store.get_tasks(
                    ns,
                    info.name,
                    info.task_type,
                    min_task_id=info.ack_level,
                    max_task_id=MAX_TASK_ID,
                    batch_size=1,
                )
                if not rows:
                    continue
                q = self.queue(ns, info.name, info.task_type)
                q.backlog = self.new_backlog(q, ack_level=info.ack_level, rows_beyond=True)
                assert q.backlog is not None
                q.backlog.wake()
                found += 1
        return found

    async def stop(self) -> None:
        """Stops the backlogs' store work and saves their ack levels (after ``drain``)."""
        await asyncio.gather(*(q.backlog.stop() for q in self._queues.values() if q.backlog is not None))

    def held_in_memory(self) -> int:
        """Tasks held in memory by all queues (not counting what waits in the store)."""
        return sum(q.held_in_memory() for q in self._queues.values())

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
        if task.normal_queue and not q.sticky_name:
            self._link_sticky(q, task)
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

    async def poll(
        self, namespace_id: str, name: str, task_type: int, timeout_s: float, *, identity: str = ""
    ) -> MatchTask | None:
        if self.draining:
            # Refused rather than answered empty: a worker would poll again at once, in a loop.
            raise UnavailableError(f"task queue {name!r}: matching is stopping; poll another server")
        q = self.queue(namespace_id, name, task_type)
        loop = asyncio.get_running_loop()
        q.last_poll_time = loop.time()
        seen = q.pollers_seen
        seen[identity, q.sticky_name] = self._now_us()  # one dict write: the poll path stays fast
        if len(seen) > self.poller_history.max_size:
            trim(seen, self._now_us(), self.poller_history)
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

    def pollers(self, namespace_id: str, name: str, task_type: int) -> list[PollerInfo]:
        """The pollers of the queue seen within the poller history's expiry, most recent first;
        for a workflow queue each with the sticky queue it polls, if any."""
        q = self._queues.get((namespace_id, name, task_type))
        if q is None:
            return []
        found = pollers(q.pollers_seen, self._now_us(), self.poller_history)
        if q.sticky_name:  # a sticky queue shares its normal queue's record: only its own worker
            found = [p for p in found if p.sticky_task_queue == q.sticky_name]
        return found

    def backlog(self, namespace_id: str, name: str, task_type: int) -> int:
        """Tasks of the queue held in memory (queued, or read back from the store)."""
        q = self._queues.get((namespace_id, name, task_type))
        return q.held_in_memory() if q else 0

    def next_query_id(self) -> str:
        return f"q{next(self._query_ids)}"

    def drain(self) -> None:
        """The server is stopping: every waiting poller is answered empty at once, as the anchors'
        matching does on shutdown, so its worker polls again (elsewhere, or here after the
        restart) instead of waiting out its long poll; later polls are refused (``poll``). Queued
        tasks stay backed by their source rows (or the store) and are offered again after it."""
        self.draining = True
        for q in self._queues.values():
            while q.pollers:
                p = q.pollers.popleft()
                if not p.done():
                    p.set_result(None)
