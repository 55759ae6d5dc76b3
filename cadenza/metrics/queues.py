"""Task metrics of the shard queues: ``task_requests``, ``task_latency``, ``task_latency_queue``,
``task_attempt`` and ``task_errors``, labelled by ``task_category`` (transfer, timer, visibility,
replication), ``task_type`` (``TransferWorkflowTask``, ``TimerUserTimer``, ...) and ``namespace``.

What each category measures where its task is executed:

* transfer: a workflow or activity task is handed to matching and acknowledged when a worker
  starts it (``task_requests``, and ``task_latency_queue`` from its arrival to that start); a
  cross-workflow task runs its handler until it succeeds (``task_latency``, ``task_attempt``);
* timer: the handler's time, and how late it fired after its due time;
* visibility and replication: tasks go in batches; each task counts in ``task_requests``, and each
  batch observes its time (``task_latency``) and its oldest task's wait (``task_latency_queue``)
  once per task type and namespace in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cadenza.engine.history.tasks import (
    ReplicationKind,
    Task,
    TimerKind,
    TransferKind,
    VisibilityKind,
)
from cadenza.engine.persistence.protocols import TaskCategory
from cadenza.metrics.core import Counter, Histogram
from cadenza.metrics.persistence import operation_name
from cadenza.metrics.server import ServerMetrics

_KINDS: dict[TaskCategory, tuple[str, type]] = {
    TaskCategory.TRANSFER: ("transfer", TransferKind),
    TaskCategory.TIMER: ("timer", TimerKind),
    TaskCategory.VISIBILITY: ("visibility", VisibilityKind),
    TaskCategory.REPLICATION: ("replication", ReplicationKind),
}

Children = tuple[Counter, Histogram, Histogram, Histogram]

TRANSFER = TaskCategory.TRANSFER

FULL_BATCH = 500
"""The shard queues' largest visibility or replication batch: a full one leaves tasks pending."""


def _type_name(category: TaskCategory, kind: int) -> str:
    prefix, enum = _KINDS[category]
    try:
        name = enum(kind).name
    except ValueError:
        name = str(kind)
    return prefix.capitalize() + operation_name(name.lower())


class QueueMetrics:
    def __init__(self, metrics: ServerMetrics, now_us: Callable[[], int]) -> None:
        self.metrics = metrics
        self._now_us = now_us
        self._oldest: dict[TaskCategory, float] = {}
        """Per batched category: when the oldest task still pending arrived."""

    def _children(self, category: TaskCategory, t: Task) -> Children:
        children = self.metrics._task_children.get((category, t.kind, t.namespace_id))
        if children is None:
            children = self.metrics.task_children(
                category, t.kind, t.namespace_id, _KINDS[category][0], _type_name(category, t.kind)
            )
        return children

    # -- transfer ------------------------------------------------------------------------------------

    def transfer_ack(self, t: Task, ack: Callable[[], None]) -> Callable[[], None]:
        """``ack`` that also records the task as done, and how long it waited since now."""
        # ``_children``'s lookup inline: this runs for every workflow and activity task.
        children = self.metrics._task_children.get((TRANSFER, t.kind, t.namespace_id))
        requests, _, queue, _ = children or self._children(TRANSFER, t)
        clock = time.perf_counter
        arrived = clock()

        def metered_ack() -> None:
            ack()
            requests.inc()
            queue.observe(clock() - arrived)

        return metered_ack

    def transfer_handled(self, t: Task, started: float, attempts: int) -> None:
        _, latency, _, attempt = self._children(TaskCategory.TRANSFER, t)
        latency.observe(time.perf_counter() - started)
        attempt.observe(attempts)

    def failed(self, category: TaskCategory, t: Task) -> None:
        labels = (
            _KINDS[category][0],
            _type_name(category, t.kind),
            self.metrics.namespace_label_of_id(t.namespace_id),
        )
        self.metrics.task_errors.labels(*labels).inc()

    # -- timers --------------------------------------------------------------------------------------

    def timer_fired(self, t: Task, started: float) -> None:
        requests, latency, queue, attempt = self._children(TaskCategory.TIMER, t)
        requests.inc()
        latency.observe(time.perf_counter() - started)
        queue.observe(max(0, self._now_us() - t.visibility_time) / 1e6)
        attempt.observe(1)

    # -- batches (visibility, replication) -----------------------------------------------------------

    def arrived(self, category: TaskCategory, shard_id: int, tasks: Sequence[Task]) -> None:
        """Tasks joined the category's pending list: only the oldest one's arrival is kept."""
        if category not in self._oldest:
            self._oldest[category] = time.perf_counter()

    def batch_done(self, category: TaskCategory, batch: Sequence[tuple[int, Task]], started: float) -> None:
        """Every task counts in ``task_requests``; the batch's time and its oldest task's wait are
        observed once per task type and namespace in it, so a batch costs a few updates whatever
        its size."""
        now = time.perf_counter()
        oldest = self._oldest.pop(category, started)
        if len(batch) >= FULL_BATCH:
            self._oldest[category] = now  # more are pending: they waited at least this batch
        groups: dict[tuple[int, str], list[Any]] = {}
        for _, t in batch:
            g = groups.get((t.kind, t.namespace_id))
            if g is None:
                groups[(t.kind, t.namespace_id)] = [t, 1]
            else:
                g[1] += 1
        took, waited = now - started, now - oldest
        for t, n in groups.values():
            requests, latency, queue, attempt = self._children(category, t)
            requests.inc(n)
            latency.observe(took)
            queue.observe(waited)
            attempt.observe(1)


def queue_metrics(metrics: Any, now_us: Callable[[], int]) -> QueueMetrics | None:
    if metrics is None or not metrics.enabled:
        return None
    return QueueMetrics(metrics, now_us)
