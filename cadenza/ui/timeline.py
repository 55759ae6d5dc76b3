"""The run page's timeline, folded from the run's history page by page and kept, so that its cost
is bounded however long the history and however often an open run's page refreshes.

Cost. Folding reads the history in pages of ``PAGE`` events, from the event after the last one
folded: the first request of a run reads what exists, a live page's refresh reads only the new
events. Folds are kept for the ``CACHED_RUNS`` runs asked most recently (a run's history only
grows, so a kept fold stays true; a closed run's fold is final). A history longer than
``MAX_TIMELINE_EVENTS`` is folded up to that many events only: the answer says so
(``truncated``, ``events_folded``), the page shows it, and the history table, which pages, still
shows every event. 10,000 events fold in about 120 ms on the dev machine.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType, HistoryEvent
from cadenza.schemas.service import GetHistoryRequest, WorkflowExecution, WorkflowService
from cadenza.ui.encoding import TimelineBuilder

MAX_TIMELINE_EVENTS = 20_000
"""The most events of one run the timeline folds (about 250 ms of work, a few MB kept)."""
CACHED_RUNS = 16
"""Folds kept, most recently asked first."""
PAGE = 1000
"""Events per history read."""


@dataclass
class RunFold:
    """The timeline of one run, folded up to ``next_event_id`` (exclusive)."""

    run_id: str
    builder: TimelineBuilder = field(default_factory=TimelineBuilder)
    workflow_tasks: list[dict[str, int]] = field(default_factory=list)
    """The completed workflow tasks (the choices of a reset)."""
    start_time: int = 0
    last_event_time: int = 0
    next_event_id: int = 1
    closed: bool = False
    truncated: bool = False
    """The run has events past ``MAX_TIMELINE_EVENTS``, which are not folded."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add(self, e: HistoryEvent) -> None:
        if e.event_id != self.next_event_id:
            return  # a page that overlaps what is folded already
        if e.event_id == 1:
            self.start_time = e.event_time
        self.builder.add(e)
        if e.event_type == EventType.WORKFLOW_TASK_COMPLETED:
            self.workflow_tasks.append({"event_id": e.event_id, "event_time": e.event_time})
        self.closed = self.closed or e.event_type in CLOSE_EVENT_TYPES
        self.last_event_time = e.event_time
        self.next_event_id = e.event_id + 1

    def to_json(self) -> dict[str, Any]:
        b = self.builder
        return {
            "run_id": self.run_id,
            "start_time": self.start_time,
            "last_event_time": self.last_event_time,
            "spans": [s.to_json() for s in b.spans],
            "pending_children": [s.to_json() for s in b.pending("child")],
            "pending_timers": [s.to_json() for s in b.pending("timer")],
            "workflow_tasks": self.workflow_tasks,
            "events_folded": self.next_event_id - 1,
            "truncated": self.truncated,
            "max_events": MAX_TIMELINE_EVENTS,
        }


class Timelines:
    """The folds of the runs asked most recently (``CACHED_RUNS``)."""

    def __init__(self, service: WorkflowService, *, cached_runs: int = CACHED_RUNS) -> None:
        self._service = service
        self._cached_runs = cached_runs
        self._folds: collections.OrderedDict[tuple[str, str, str], RunFold] = collections.OrderedDict()

    async def timeline(self, namespace: str, execution: WorkflowExecution) -> dict[str, Any]:
        run_id = execution.run_id
        if not run_id:  # the current run: pinned first, so that its fold is kept under its id
            run_id = (await self._service.describe_workflow_execution(namespace, execution)).run_id
        key = (namespace, execution.workflow_id, run_id)
        fold = self._folds.get(key)
        if fold is None:
            fold = self._folds[key] = RunFold(run_id)
            while len(self._folds) > self._cached_runs:
                self._folds.popitem(last=False)
        self._folds.move_to_end(key)
        async with fold.lock:  # two refreshes of one run fold its new events once
            try:
                await self._catch_up(namespace, WorkflowExecution(execution.workflow_id, run_id), fold)
            except BaseException:
                if fold.next_event_id == 1:  # an unknown run: keep no empty fold for it
                    self._folds.pop(key, None)
                raise
            return fold.to_json()

    async def _catch_up(self, namespace: str, execution: WorkflowExecution, fold: RunFold) -> None:
        while not fold.closed and not fold.truncated:
            room = MAX_TIMELINE_EVENTS - fold.next_event_id + 1
            # The frontend's history page token is the id of the page's first event.
            token = str(fold.next_event_id).encode() if fold.next_event_id > 1 else None
            resp = await self._service.get_workflow_execution_history(
                GetHistoryRequest(
                    namespace, execution, next_page_token=token, maximum_page_size=max(1, min(PAGE, room))
                )
            )
            if room <= 0:  # read one event past the limit only to know whether there is one
                fold.truncated = bool(resp.events)
                return
            for e in resp.events:
                fold.add(e)
            if resp.next_page_token is None or not resp.events:
                return
