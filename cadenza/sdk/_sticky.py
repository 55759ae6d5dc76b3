"""A worker's workflow cache and its sticky queue (sticky execution, as the anchors do it).

A worker keeps recently used runs between their workflow tasks. With the cache on, it also polls a
queue of its own (``WorkflowCache.queue``) and names it when it completes a task, so the server sends
that run's next tasks there with only the events the worker has not seen. When the worker lets a
run go while the server may still send it there (the cache is full, or the worker shuts down), it
says so (``ResetStickyTaskQueue``), and the run's next task goes to the normal queue at once with the
whole history. A cache of size 0 turns all of this off: every task carries the whole history.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.schemas.service import PollWorkflowTaskResponse, WorkflowExecution
from cadenza.sdk._runtime.instance import WorkflowInstance

log = logging.getLogger("cadenza.worker")

RESETS_AT_ONCE = 64
"""Reset calls a shutting-down worker has in flight at once."""


class StickyCacheMiss(Exception):
    """A task's history starts after events this worker does not hold for the run (the server
    thought it had the run cached): the task must be failed so it is sent again in full."""


class WorkflowCache:
    def __init__(self, service: Any, task_queue: str, max_cached: int, schedule_to_start: timedelta) -> None:
        if max_cached < 0:
            raise ValueError(f"max_cached_workflows must not be negative: {max_cached}")
        if schedule_to_start <= timedelta(0):
            raise ValueError(f"sticky_queue_schedule_to_start_timeout must be positive: {schedule_to_start}")
        self._service = service
        self.max_cached = max_cached
        self.queue = f"{task_queue}:sticky:{uuid.uuid4().hex}" if max_cached else ""
        """This worker's sticky queue ("" with the cache off)."""
        self.schedule_to_start_ms = max(1, int(schedule_to_start.total_seconds() * 1000))
        self._runs: OrderedDict[str, tuple[WorkflowInstance, str, str]] = OrderedDict()
        """run id -> (instance, namespace, workflow id), least recently used first."""
        self._resets: set[asyncio.Task[None]] = set()
        self.hits = 0
        """Tasks that found their run cached (``sticky_cache_hit``)."""
        self.misses = 0
        """Tasks of a run with earlier tasks that was not cached (``sticky_cache_miss``)."""

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: str) -> WorkflowInstance | None:
        entry = self._runs.get(run_id)
        return entry[0] if entry is not None else None

    def instance_for(
        self, task: PollWorkflowTaskResponse, new: Any
    ) -> tuple[WorkflowInstance, Sequence[HistoryEvent]]:
        """The run's instance and the events of ``task`` it has not applied yet: the cached one if
        the task's history follows what it has seen, else a new one (``new()``) for the whole
        history. Raises ``StickyCacheMiss`` for a partial history that does not follow."""
        run_id = task.workflow_execution.run_id
        history = task.history
        entry = self._runs.get(run_id)
        first = history[0].event_id if history else 1
        if entry is not None:
            inst = entry[0]
            last = inst.last_event_id
            if first > 1:
                if first == last + 1:
                    self._runs.move_to_end(run_id)
                    self.hits += 1
                    return inst, history
            elif last and last < len(history) and history[last - 1].event_id == last:
                self._runs.move_to_end(run_id)
                self.hits += 1
                return inst, history[last:]
            self._runs.pop(run_id, None)
            inst.evict()
        if first > 1 or any(e.event_type == EventType.WORKFLOW_TASK_COMPLETED for e in history):
            self.misses += 1  # a run past its first task, not in the cache: replayed or refused
        if first > 1:
            raise StickyCacheMiss(
                f"the task's history starts at event {first}, but this worker does not have run "
                f"{run_id!r} cached through event {first - 1}"
            )
        inst = new()
        self.put(task, inst)
        return inst, history

    def put(self, task: PollWorkflowTaskResponse, inst: WorkflowInstance) -> None:
        ex = task.workflow_execution
        self._runs[ex.run_id] = (inst, task.namespace, ex.workflow_id)
        while len(self._runs) > self.max_cached:
            run_id, (evicted, namespace, workflow_id) = self._runs.popitem(last=False)
            if evicted is not inst:  # with the cache off, the run being put is about to be used
                evicted.evict()
            if self.queue:
                self._reset_later(namespace, WorkflowExecution(workflow_id, run_id))

    def drop(self, run_id: str, *, tell_server: bool = False) -> None:
        """Forgets the run. ``tell_server``: the server may still send its next task to the sticky
        queue (it does not know the task ended the way it did), so tell it not to."""
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            entry[0].evict()
        if entry is not None and tell_server and self.queue:
            self._reset_later(entry[1], WorkflowExecution(entry[2], run_id))

    def _reset_later(self, namespace: str, execution: WorkflowExecution) -> None:
        t = asyncio.create_task(self._reset(namespace, execution))
        self._resets.add(t)
        t.add_done_callback(self._resets.discard)

    async def _reset(self, namespace: str, execution: WorkflowExecution) -> None:
        try:
            await self._service.reset_sticky_task_queue(namespace, execution)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The task waiting on the sticky queue falls back after its schedule-to-start timeout.
            log.info("resetting the sticky queue of %s failed: %s", execution.workflow_id, e)

    async def close(self) -> None:
        """The worker shuts down: every cached run's next task goes to the normal queue."""
        runs, self._runs = self._runs, OrderedDict()
        for inst, _, _ in runs.values():
            inst.evict()
        if self.queue:
            pending = [(ns, WorkflowExecution(wid, rid)) for rid, (_, ns, wid) in runs.items()]
            for i in range(0, len(pending), RESETS_AT_ONCE):
                await asyncio.gather(*(self._reset(ns, ex) for ns, ex in pending[i : i + RESETS_AT_ONCE]))
        if self._resets:
            await asyncio.gather(*self._resets, return_exceptions=True)
