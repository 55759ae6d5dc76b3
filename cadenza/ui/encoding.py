"""What the web UI's JSON API sends: payloads decoded for people, events, and the run's timeline.

Payloads go through the SDK's data converter, so what the UI shows is what a workflow received:
a JSON payload appears as its JSON value, ``binary/null`` as null, and anything else (binary
data, an encoding a codec produced) as base64 beside its encoding, never as a guess. Bytes that
are not payloads (task tokens) are base64 too. Times stay microseconds since the epoch (UTC), as
history keeps them; the page formats them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType, HistoryEvent
from cadenza.sdk.converter import ENCODING_BINARY_NULL, ENCODING_JSON_PLAIN, default_converter


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _is_payload(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"metadata", "data"} and isinstance(value["data"], bytes)


def decode_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``{"encoding": ..., "json": value}`` for what the data converter decodes to a JSON value;
    ``{"encoding": ..., "base64": ...}`` for everything else (and for JSON that does not parse)."""
    metadata = payload.get("metadata") or {}
    encoding = metadata.get("encoding", b"")
    encoding_b = encoding if isinstance(encoding, bytes) else str(encoding).encode()
    if encoding_b in (ENCODING_JSON_PLAIN, ENCODING_BINARY_NULL):
        try:
            return {"encoding": encoding_b.decode(), "json": default_converter().from_payload(payload)}
        except Exception:  # a payload that claims JSON but is not: show its bytes, do not fail the page
            pass
    return {"encoding": _text(encoding), "base64": base64.b64encode(payload["data"]).decode()}


def readable(value: Any) -> Any:
    """``value`` (event attributes, a failure, a description) with every payload decoded and every
    other byte string in base64, so ``json.dumps`` takes it."""
    if _is_payload(value):
        return decode_payload(value)
    if isinstance(value, dict):
        return {str(k): readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [readable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


def event_json(e: HistoryEvent) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "event_time": e.event_time,
        "event_type": e.event_type.pascal_name,
        "version": e.version,
        "task_id": e.task_id,
        "attributes": readable(e.attributes),
    }


def encode_token(token: bytes | None) -> str | None:
    """A page token as the API hands it out: URL-safe base64 (it goes back in a query string)."""
    return base64.urlsafe_b64encode(token).decode() if token else None


def decode_token(text: str | None, *, name: str = "next_page_token") -> bytes | None:
    if not text:
        return None
    try:
        return base64.urlsafe_b64decode(text.encode())
    except (ValueError, TypeError):
        raise ValueError(f"{name} {text[:40]!r} is not a page token this API handed out") from None


# -- the timeline ------------------------------------------------------------------------------------------

_ACTIVITY_END = {
    EventType.ACTIVITY_TASK_COMPLETED: "Completed",
    EventType.ACTIVITY_TASK_FAILED: "Failed",
    EventType.ACTIVITY_TASK_TIMED_OUT: "TimedOut",
    EventType.ACTIVITY_TASK_CANCELED: "Canceled",
}
_TIMER_END = {EventType.TIMER_FIRED: "Fired", EventType.TIMER_CANCELED: "Canceled"}
_CHILD_END = {
    EventType.START_CHILD_WORKFLOW_EXECUTION_FAILED: "StartFailed",
    EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED: "Completed",
    EventType.CHILD_WORKFLOW_EXECUTION_FAILED: "Failed",
    EventType.CHILD_WORKFLOW_EXECUTION_CANCELED: "Canceled",
    EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "TimedOut",
    EventType.CHILD_WORKFLOW_EXECUTION_TERMINATED: "Terminated",
}


@dataclass
class Span:
    """One bar of the timeline: an activity from scheduled to its end, a timer from started to fired
    or canceled, a child from initiated to its close. ``end_time`` 0 while it is pending."""

    kind: str
    """``activity``, ``timer`` or ``child``."""
    id: str
    """The activity id, timer id or child workflow id."""
    name: str
    """The activity type, the timer's duration, or the child's workflow type."""
    start_event_id: int
    start_time: int
    end_time: int = 0
    status: str = "Pending"
    """``Scheduled``/``Started`` while pending (activities), then how it ended; ``Abandoned``
    when the run closed first."""
    end_event_id: int = 0
    attempt: int = 1
    run_id: str = ""
    """A child's run, once it started."""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "start_event_id": self.start_event_id,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "end_event_id": self.end_event_id,
            "status": self.status,
            "attempt": self.attempt,
            "run_id": self.run_id,
            "detail": self.detail,
        }


class TimelineBuilder:
    """Folds events into spans, in history order; the spans' order is their start order."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._by_start: dict[int, Span] = {}

    def add(self, e: HistoryEvent) -> None:
        t, a = e.event_type, e.attributes
        if t == EventType.ACTIVITY_TASK_SCHEDULED:
            self._open(Span("activity", a.get("activity_id", ""), a.get("activity_type", ""),
                            e.event_id, e.event_time, status="Scheduled"))  # fmt: skip
        elif t == EventType.ACTIVITY_TASK_STARTED:
            if (span := self._by_start.get(a.get("scheduled_event_id", 0))) is not None:
                span.status, span.attempt = "Started", int(a.get("attempt") or 1)
        elif t in _ACTIVITY_END:
            self._close(a.get("scheduled_event_id", 0), e, _ACTIVITY_END[t])
        elif t == EventType.TIMER_STARTED:
            ms = int(a.get("start_to_fire_timeout_ms") or 0)
            self._open(Span("timer", a.get("timer_id", ""), _duration(ms), e.event_id, e.event_time,
                            detail={"start_to_fire_timeout_ms": ms}))  # fmt: skip
        elif t in _TIMER_END:
            self._close(a.get("started_event_id", 0), e, _TIMER_END[t])
        elif t == EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            self._open(Span("child", a.get("workflow_id", ""), a.get("workflow_type", ""),
                            e.event_id, e.event_time, status="Initiated",
                            detail={"namespace": a.get("namespace", "")}))  # fmt: skip
        elif t == EventType.CHILD_WORKFLOW_EXECUTION_STARTED:
            if (span := self._by_start.get(a.get("initiated_event_id", 0))) is not None:
                span.status = "Started"
                span.run_id = (a.get("workflow_execution") or {}).get("run_id", "")
        elif t in _CHILD_END:
            self._close(a.get("initiated_event_id", 0), e, _CHILD_END[t])
        elif t in CLOSE_EVENT_TYPES:
            # Nothing is pending in a closed run: what was still open ends with it.
            for start_event_id in list(self._by_start):
                self._close(start_event_id, e, "Abandoned")

    def _open(self, span: Span) -> None:
        self.spans.append(span)
        self._by_start[span.start_event_id] = span

    def _close(self, start_event_id: int, e: HistoryEvent, status: str) -> None:
        span = self._by_start.pop(start_event_id, None)
        if span is not None:
            span.end_time, span.end_event_id, span.status = e.event_time, e.event_id, status

    def pending(self, kind: str) -> list[Span]:
        return [s for s in self._by_start.values() if s.kind == kind]


def _duration(ms: int) -> str:
    if ms % 3_600_000 == 0 and ms:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
