"""A run's history as a value: fetched from the server, exported to JSON, imported for replay.

The JSON form names event types as the anchors do (``"WorkflowExecutionStarted"``) and writes bytes
(payload data and metadata) as ``{"$bytes": "<base64>"}``, so a file round-trips exactly.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadenza.schemas.events import EventType, HistoryEvent

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
