"""Write the binary fixtures that prove old history schema versions keep decoding.

Run ``.venv/bin/python tests/schemas/make_fixtures.py`` once per released schema version. Existing
files are never overwritten (``--force`` to override): a fixture records what an old writer produced,
so regenerating it with a newer writer would defeat its purpose.

Per fixture ``NAME``: ``NAME.bin`` (a single-object encoded ``HistoryEventBatch``) and ``NAME.json``
(the events that were encoded, bytes as ``{"$b64": ...}``). ``history_v0.avsc`` is an artificial
older version with fewer fields in a few records, to check resolution of old data into the current
schema. The sample builders here are shared with the tests.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import sys
from pathlib import Path
from typing import Any

from cadenza.schemas import EventType, HistoryEvent, encode_events
from cadenza.schemas._generate import (
    SCHEMA_VERSION,
    VERSION_PROPERTY,
    all_records,
    batch_schema,
    record_name,
)
from cadenza.schemas.codec import BATCH_SCHEMA, load_default_registry
from cadenza.schemas.events import EVENT_FIELDS

FIXTURES = Path(__file__).with_name("fixtures")
T0 = 1_700_000_000_000_000  # microseconds


def payload(value: Any, encoding: bytes = b"json/plain") -> dict[str, Any]:
    return {"metadata": {"encoding": encoding}, "data": json.dumps(value).encode()}


def failure(message: str, cause: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "message": message,
        "source": "PythonSDK",
        "stack_trace": f"Traceback: {message}",
        "failure_type": "application",
        "application_type": "ValueError",
        "non_retryable": True,
        "details": [payload({"why": message})],
        "timeout_type": "START_TO_CLOSE",
        "cause": cause,
        "next_retry_delay_ms": 1500,
        "category": 1,
    }


def _value(code: str, field: str, n: int) -> Any:
    """A non-default value of type ``code``, distinct per field and event."""
    if code in ("s", "S?"):
        return f"{field}-{n}"
    if code in ("l", "L?"):
        return 10_000_000_000 + n * 1000 + len(field)
    if code == "i":
        return n + len(field)
    if code == "b":
        return True
    if code == "d":
        return 1.5 + n
    if code == "P":
        return [payload({"field": field, "n": n}), payload("second", b"binary/plain")]
    if code == "p1":
        return payload({"field": field})
    if code == "F":
        return failure(f"{field} {n}", cause=failure(f"cause of {field}"))
    if code == "R":
        return {
            "initial_interval_ms": 1000,
            "backoff_coefficient": 2.0,
            "maximum_interval_ms": 60_000,
            "maximum_attempts": 5,
            "non_retryable_error_types": ["ValueError", "KeyError"],
        }
    if code == "X":
        return {"workflow_id": f"wf-{n}", "run_id": f"run-{n}"}
    if code == "M":
        return {"k1": payload(n), "k2": payload({"nested": [1, 2]})}
    if code == "MP":
        return {"k1": [payload(n), payload("x")], "k2": []}
    raise ValueError(code)


def full_events() -> list[HistoryEvent]:
    """One event of each of the 40 types with every attribute field set to a non-default value."""
    return [
        HistoryEvent(
            n,
            T0 + n * 1_000,
            et,
            7,
            1_000 + n,
            {name: _value(code, name, n) for name, code in EVENT_FIELDS[et].items()},
        )
        for n, et in enumerate(EventType, start=1)
    ]


def typical_events() -> list[HistoryEvent]:
    """A short real-looking history; most fields are left out and take their defaults."""
    e = EventType
    rows: list[tuple[EventType, dict[str, Any]]] = [
        (
            e.WORKFLOW_EXECUTION_STARTED,
            {
                "workflow_type": "OrderWorkflow",
                "task_queue": "orders",
                "input": [payload({"order": 1})],
                "workflow_run_timeout_ms": 60_000,
                "workflow_task_timeout_ms": 10_000,
                "attempt": 1,
                "original_execution_run_id": "run-1",
                "first_execution_run_id": "run-1",
            },
        ),
        (
            e.WORKFLOW_TASK_SCHEDULED,
            {"task_queue": "orders", "start_to_close_timeout_ms": 10_000, "attempt": 1},
        ),
        (e.WORKFLOW_TASK_STARTED, {"scheduled_event_id": 2, "identity": "w1", "request_id": "r1"}),
        (e.WORKFLOW_TASK_COMPLETED, {"scheduled_event_id": 2, "started_event_id": 3, "identity": "w1"}),
        (
            e.ACTIVITY_TASK_SCHEDULED,
            {
                "activity_id": "1",
                "activity_type": "charge",
                "task_queue": "orders",
                "input": [payload({"amount": 10})],
                "start_to_close_timeout_ms": 5_000,
                "workflow_task_completed_event_id": 4,
            },
        ),
        (
            e.TIMER_STARTED,
            {"timer_id": "t1", "start_to_fire_timeout_ms": 1_000, "workflow_task_completed_event_id": 4},
        ),
        (e.ACTIVITY_TASK_STARTED, {"scheduled_event_id": 5, "identity": "w1", "attempt": 1}),
        (
            e.ACTIVITY_TASK_FAILED,
            {
                "failure": failure("card declined", cause=failure("gateway 402")),
                "scheduled_event_id": 5,
                "started_event_id": 7,
                "retry_state": "NON_RETRYABLE_FAILURE",
            },
        ),
        (e.TIMER_FIRED, {"timer_id": "t1", "started_event_id": 6}),
        (e.WORKFLOW_EXECUTION_SIGNALED, {"signal_name": "cancel", "input": None}),
        (e.MARKER_RECORDED, {"marker_name": "Version", "details": {"change_id": [payload("v2")]}}),
        (
            e.WORKFLOW_EXECUTION_COMPLETED,
            {"result": [payload("done")], "workflow_task_completed_event_id": 4},
        ),
    ]
    return [HistoryEvent(n, T0 + n, et, 1, 500 + n, attrs) for n, (et, attrs) in enumerate(rows, start=1)]


# The artificial version 0: fields that version 1 added, per record.
V0_REMOVED: dict[str, set[str]] = {
    "Failure": {"application_type", "details", "timeout_type"},
    "ActivityTaskScheduledEventAttributes": {"header", "retry_policy", "heartbeat_timeout_ms"},
    "WorkflowExecutionStartedEventAttributes": set(EVENT_FIELDS[EventType.WORKFLOW_EXECUTION_STARTED])
    - {"workflow_type", "task_queue", "input", "identity"},
}


def v0_schema() -> dict[str, Any]:
    """The version 1 batch schema with the ``V0_REMOVED`` fields taken out."""
    records = copy.deepcopy(all_records())
    for record in records:
        record[VERSION_PROPERTY] = 0
        removed = V0_REMOVED.get(record["name"], set())
        record["fields"] = [f for f in record["fields"] if f["name"] not in removed]
    return batch_schema(records)


def v0_events() -> list[HistoryEvent]:
    """Events as a version 0 writer would hold them (only v0 fields)."""
    v0_failure = failure("boom", cause=failure("root"))
    for f in (v0_failure, v0_failure["cause"]):
        for name in V0_REMOVED["Failure"]:
            del f[name]
    return [
        HistoryEvent(
            1,
            T0,
            EventType.WORKFLOW_EXECUTION_STARTED,
            0,
            1,
            {
                "workflow_type": "OldWorkflow",
                "task_queue": "old",
                "input": [payload([1, 2])],
                "identity": "old-client",
            },
        ),
        HistoryEvent(
            2,
            T0 + 1,
            EventType.ACTIVITY_TASK_SCHEDULED,
            0,
            2,
            {
                "activity_id": "1",
                "activity_type": "legacy",
                "task_queue": "old",
                "input": None,
                "start_to_close_timeout_ms": 1_000,
            },
        ),
        HistoryEvent(
            3,
            T0 + 2,
            EventType.ACTIVITY_TASK_FAILED,
            0,
            3,
            {
                "failure": v0_failure,
                "scheduled_event_id": 2,
                "started_event_id": 0,
                "identity": "w",
            },
        ),
    ]


def encode_v0(events: list[HistoryEvent], schema: dict[str, Any]) -> bytes:
    registry = load_default_registry()
    registry.register(schema, version=0)
    batch = {
        "events": [
            {
                "event_id": e.event_id,
                "event_time": e.event_time,
                "event_type": int(e.event_type),
                "version": e.version,
                "task_id": e.task_id,
                "attributes": (f"io.cadenza.v1.{record_name(e.event_type)}", e.attributes),
            }
            for e in events
        ]
    }
    return registry.encode(BATCH_SCHEMA, batch, version=0)


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def events_to_json(events: list[HistoryEvent]) -> str:
    rows = [
        {
            "event_id": e.event_id,
            "event_time": e.event_time,
            "event_type": EventType(e.event_type).name,
            "version": e.version,
            "task_id": e.task_id,
            "attributes": to_json(e.attributes),
        }
        for e in events
    ]
    return json.dumps(rows, indent=1) + "\n"


def events_from_json(text: str) -> list[HistoryEvent]:
    return [
        HistoryEvent(
            r["event_id"],
            r["event_time"],
            EventType[r["event_type"]],
            r["version"],
            r["task_id"],
            from_json(r["attributes"]),
        )
        for r in json.loads(text)
    ]


def fixture_files() -> dict[str, bytes | str]:
    v = SCHEMA_VERSION
    v0 = v0_schema()
    return {
        f"history_v{v}_all_types.bin": encode_events(full_events()),
        f"history_v{v}_all_types.json": events_to_json(full_events()),
        f"history_v{v}_typical.bin": encode_events(typical_events()),
        f"history_v{v}_typical.json": events_to_json(typical_events()),
        "history_v0.avsc": json.dumps(v0, indent=1) + "\n",
        "history_v0.bin": encode_v0(v0_events(), v0),
        "history_v0.json": events_to_json(v0_events()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write schema fixtures that do not exist yet")
    parser.add_argument("--force", action="store_true", help="overwrite existing fixtures")
    args = parser.parse_args(argv)
    FIXTURES.mkdir(exist_ok=True)
    for name, content in fixture_files().items():
        path = FIXTURES / name
        if path.exists() and not args.force:
            print(f"kept    {path}")
            continue
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        print(f"wrote   {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
