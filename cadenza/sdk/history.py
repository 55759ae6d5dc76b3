"""A run's history as a value: fetched from the server, exported to JSON, imported for replay.

The JSON form names event types as the anchors do (``"WorkflowExecutionStarted"``) and writes bytes
(payload data and metadata) as ``{"$bytes": "<base64>"}``, so a file round-trips exactly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadenza.schemas.events import EventType, HistoryEvent

if TYPE_CHECKING:
    from cadenza.sdk.client import Client
    from cadenza.sdk.interceptor import FetchWorkflowHistoryEventsInput

_BY_PASCAL = {t.pascal_name: t for t in EventType}


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


@dataclass
class WorkflowHistory:
    workflow_id: str
    run_id: str
    events: list[HistoryEvent]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "events": [
                {
                    "event_id": e.event_id,
                    "event_time": e.event_time,
                    "event_type": e.event_type.pascal_name,
                    "version": e.version,
                    "task_id": e.task_id,
                    "attributes": _to_jsonable(e.attributes),
                }
                for e in self.events
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowHistory:
        doc = json.loads(text)
        events = []
        for i, e in enumerate(doc.get("events") or []):
            et = e.get("event_type")
            event_type = _BY_PASCAL.get(et) if isinstance(et, str) else EventType(et)
            if event_type is None:
                raise ValueError(f"event {i}: unknown event_type {et!r}")
            events.append(
                HistoryEvent(
                    event_id=int(e["event_id"]),
                    event_time=int(e.get("event_time", 0)),
                    event_type=event_type,
                    version=int(e.get("version", 0)),
                    task_id=int(e.get("task_id", 0)),
                    attributes=_from_jsonable(e.get("attributes") or {}),
                )
            )
        for expected, ev in enumerate(events, start=1):
            if ev.event_id != expected:
                raise ValueError(f"history is not dense: event {expected} is missing (found {ev.event_id})")
        return cls(doc.get("workflow_id", ""), doc.get("run_id", ""), events)

    @classmethod
    def from_file(cls, path: str | Path) -> WorkflowHistory:
        return cls.from_json(Path(path).read_bytes())

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())


class WorkflowHistoryEventFilterType(IntEnum):
    """Which events ``WorkflowHandle.fetch_history_events`` returns (temporalio's values)."""

    ALL_EVENT = 1
    CLOSE_EVENT = 2


class WorkflowHistoryEventAsyncIterator(AsyncIterator[HistoryEvent]):
    """A run's history events, fetched a page at a time as they are iterated; ``run_id`` is the run
    the server read (the current one when the handle names none), known after the first page."""

    def __init__(self, client: Client, input: FetchWorkflowHistoryEventsInput) -> None:
        if input.page_size is not None and input.page_size <= 0:
            raise ValueError(f"page_size must be > 0, got {input.page_size}")
        self._client = client
        self._input = input
        self.next_page_token = input.next_page_token
        self.run_id = input.run_id or ""
        self._page: list[HistoryEvent] = []
        self._index = 0
        self._done = False

    def __aiter__(self) -> WorkflowHistoryEventAsyncIterator:
        return self

    async def _fetch_page(self) -> None:
        from cadenza.schemas.service import GetHistoryRequest, WorkflowExecution
        from cadenza.sdk._call_options import rpc_options

        c, i = self._client, self._input
        request = GetHistoryRequest(
            c.namespace,
            WorkflowExecution(i.id, i.run_id or ""),
            next_page_token=self.next_page_token,
            wait_new_event=i.wait_new_event,
            close_event_only=i.event_filter_type == WorkflowHistoryEventFilterType.CLOSE_EVENT,
            branch_id=i.branch_id,
        )
        if i.page_size is not None:
            request.maximum_page_size = i.page_size
        with rpc_options(i.rpc_metadata, i.rpc_timeout):
            resp = await c.service.get_workflow_execution_history(request)
        self._page, self._index = list(resp.events), 0
        self.run_id = resp.run_id or self.run_id
        self.next_page_token = resp.next_page_token
        self._done = not resp.next_page_token

    async def __anext__(self) -> HistoryEvent:
        while self._index >= len(self._page):
            if self._done:
                raise StopAsyncIteration
            await self._fetch_page()
        event = self._page[self._index]
        self._index += 1
        return event
