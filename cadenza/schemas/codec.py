"""Binary encoding of history: batches of ``HistoryEvent`` as Avro single-object messages.

A history node stores one ``io.cadenza.v1.HistoryEventBatch``. The header names the exact schema
version that wrote it, so nodes written by older versions decode into the current shape (added
fields take their defaults). Released schema versions live in ``avro/released`` and are all
registered in the default registry.

This is on the hot path of every workflow task (a replay decodes the whole history), so the schema is
parsed once, fastavro writes and reads in C, and the attributes union branch is named explicitly
(``(record_name, attributes)`` tuples) instead of letting fastavro try the 40 branches in turn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro

from cadenza.schemas.events import EVENT_FIELDS, EventType, HistoryEvent
from cadenza.schemas.registry import (
    AVRO_DATA_ERRORS,
    RegisteredSchema,
    SchemaError,
    SchemaRegistry,
    read_body,
)

NAMESPACE = "io.cadenza.v1"
BATCH_SCHEMA = f"{NAMESPACE}.HistoryEventBatch"
RELEASED_DIR = Path(__file__).with_name("avro") / "released"

# Event type -> full name of its attributes record (the union branch).
_BRANCH: dict[int, str] = {et: f"{NAMESPACE}.{et.pascal_name}EventAttributes" for et in EventType}
_EVENT_TYPES: dict[int, EventType] = {int(et): et for et in EventType}
_FIELDS: dict[int, frozenset[str]] = {et: frozenset(fields) for et, fields in EVENT_FIELDS.items()}
# Nullable complex fields per event type, with the name of their non-null union branch. Given a bare
# value, fastavro picks a union branch by validating the value against each branch (walking whole
# payload lists and records) before writing it; naming the branch skips that and cuts encode time
# by about a fifth on a typical history.
_UNION_BRANCH = {
    "P": "array",
    "F": f"{NAMESPACE}.Failure",
    "R": f"{NAMESPACE}.RetryPolicy",
    "X": f"{NAMESPACE}.WorkflowExecution",
}
_TAGGED: dict[int, tuple[tuple[str, str], ...]] = {
    et: tuple((name, _UNION_BRANCH[code]) for name, code in fields.items() if code in _UNION_BRANCH)
    for et, fields in EVENT_FIELDS.items()
}


def load_default_registry() -> SchemaRegistry:
    """A registry holding every released history schema version."""
    registry = SchemaRegistry()
    registry.register_directory(RELEASED_DIR)
    return registry


_registry = load_default_registry()
_current: RegisteredSchema = _registry.get(BATCH_SCHEMA)
_event_schema: Any = _current.parsed["fields"][0]["type"]["items"]


def default_registry() -> SchemaRegistry:
    """The process-wide registry used by ``encode_events``/``decode_events``.

    Other modules register their own schemas (API and bus messages) here too.
    """
    return _registry


def encode_events(events: Sequence[HistoryEvent]) -> bytes:
    """Encode ``events`` as one single-object encoded ``HistoryEventBatch`` (current version).

    Attribute fields that are absent take the schema default. A key that is not a field of the event
    type raises ``SchemaError`` naming both, rather than being dropped.
    """
    records: list[dict[str, Any]] = []
    append = records.append
    branch, tagged = _BRANCH, _TAGGED
    for e in events:
        attributes = e.attributes
        try:
            name = branch[e.event_type]
            tag = tagged[e.event_type]
        except KeyError:
            raise SchemaError(f"event {e.event_id}: unknown event type {e.event_type!r}") from None
        if tag:
            attributes = _tag_unions(attributes, tag)
        append(
            {
                "event_id": e.event_id,
                "event_time": e.event_time,
                "event_type": e.event_type,
                "version": e.version,
                "task_id": e.task_id,
                "attributes": (name, attributes),
            }
        )
    out = io.BytesIO()
    out.write(_current.header)
    try:
        fastavro.schemaless_writer(out, _current.parsed, {"events": records}, strict_allow_default=True)
    except AVRO_DATA_ERRORS as exc:
        # The batch error does not say which event; find it (slow path, only on failure).
        raise _diagnose(events, exc) from exc
    return out.getvalue()


def _tag_unions(attributes: dict[str, Any], tag: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A copy of ``attributes`` with non-null union values as ``(branch, value)``; never mutates."""
    tagged: dict[str, Any] | None = None
    for name, branch in tag:
        value = attributes.get(name)
        if value is not None:
            if tagged is None:
                tagged = dict(attributes)
            tagged[name] = (branch, value)
    return attributes if tagged is None else tagged


def _diagnose(events: Sequence[HistoryEvent], batch_error: Exception) -> SchemaError:
    for e in events:
        et = EventType(e.event_type)
        unknown = sorted(set(e.attributes) - _FIELDS[et])
        if unknown:
            return SchemaError(
                f"{et.name} (event {e.event_id}) has no attribute field {unknown[0]!r}; "
                f"its fields are: {', '.join(EVENT_FIELDS[et])}"
            )
        attributes = _tag_unions(e.attributes, _TAGGED[et])
        record = {
            "event_id": e.event_id,
            "event_time": e.event_time,
            "event_type": e.event_type,
            "version": e.version,
            "task_id": e.task_id,
            "attributes": (_BRANCH[et], attributes),
        }
        try:
            fastavro.schemaless_writer(io.BytesIO(), _event_schema, record, strict_allow_default=True)
        except AVRO_DATA_ERRORS as exc:
            return SchemaError(f"cannot encode {et.name} (event {e.event_id}): {exc}")
    return SchemaError(f"cannot encode history batch: {batch_error}")


def decode_events(data: bytes, *, registry: SchemaRegistry | None = None) -> list[HistoryEvent]:
    """Decode a ``HistoryEventBatch`` written by any registered version.

    ``event_type`` comes back as ``EventType``; attributes are plain dicts holding every field of the
    current schema (payloads as ``{"metadata": ..., "data": ...}``). ``registry`` defaults to
    ``default_registry()``; pass another to read versions registered only there.
    """
    reg = registry or _registry
    writer = reg.writer_of(data)
    if writer.name != BATCH_SCHEMA:
        raise SchemaError(f"expected a {BATCH_SCHEMA} message, got {writer}")
    reader = _current if registry is None else reg.get(BATCH_SCHEMA)
    batch = read_body(data, writer, reader)
    types = _EVENT_TYPES
    try:
        return [
            HistoryEvent(
                e["event_id"],
                e["event_time"],
                types[e["event_type"]],
                e["version"],
                e["task_id"],
                e["attributes"],
            )
            for e in batch["events"]
        ]
    except KeyError as exc:
        raise SchemaError(f"unknown event type {exc.args[0]!r} in history batch") from None
