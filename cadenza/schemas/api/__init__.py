"""The frontend API on the wire: one Avro request and response message per ``WorkflowService`` call.

Messages are single-object encoded (marker + schema fingerprint + body) with the ``.avsc`` files in
this directory, registered in the process-wide registry next to the history schemas. A reader
therefore always knows which schema (and version) wrote the bytes it got, and refuses bytes written
with another message's schema instead of misreading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadenza.schemas.api import _fill
from cadenza.schemas.codec import default_registry
from cadenza.schemas.registry import RegisteredSchema, SchemaError, read_body

SERVICE = "cadenza.api.v1.WorkflowService"
"""The gRPC service name; methods are ``/cadenza.api.v1.WorkflowService/<Method>``."""
NAMESPACE = "io.cadenza.api.v1"

MAX_REQUEST_BYTES = 4 * 1024 * 1024 + 512 * 1024
"""Largest request the server accepts: 4 MiB plus headroom for the envelope around a payload at the
2 MiB payload limit. Larger requests are refused with RESOURCE_EXHAUSTED before they are decoded."""
MAX_RESPONSE_BYTES = 128 * 1024 * 1024
"""Responses carry whole histories (a workflow task's replay input), which legitimately grow past
the request limit; the history limits bound them well below this."""

LONG_POLL_METHODS = frozenset(
    {
        "PollWorkflowTaskQueue",
        "PollActivityTaskQueue",
        "RespondWorkflowTaskCompletedAndPoll",
        "RespondWorkflowTaskCompletedEager",
        "RespondWorkflowTaskCompletedSticky",
        "StartWorkflowExecutionAndWait",
    }
)


RELEASED_DIR = Path(__file__).parent / "released"
"""Earlier versions of messages that gained fields (``<fullname>.v<N>.avsc``), never changed."""


def _load() -> dict[str, RegisteredSchema]:
    registry = default_registry()
    out = {}
    for path in sorted(Path(__file__).parent.glob("*.avsc")):
        entry = registry.register(path)
        out[entry.name] = entry
    return out


def _field_defaults(entry: RegisteredSchema) -> dict[str, Any]:
    return {f["name"]: f.get("default") for f in entry.parsed["fields"]}


def _load_released(
    current: dict[str, RegisteredSchema],
) -> tuple[dict[str, list[tuple[int, dict[str, Any]]]], dict[bytes, _fill.RecordFill | None]]:
    """By message full name, its released versions, oldest first, each with the top-level fields
    added since it and their defaults: a record that sets none of them is written with that
    version. Also, by fingerprint, the released versions that differ from the current one only by
    fields added (at any depth): they are read as written and given the defaults (``_fill``),
    which is cheaper than Avro's schema resolution, so a message from an older peer, or one a peer
    wrote in the oldest version that holds it, costs no more to decode."""
    registry = default_registry()
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    fills: dict[bytes, _fill.RecordFill | None] = {}
    for path in sorted(RELEASED_DIR.glob("*.avsc")):
        old = registry.register(path)
        now = current[old.name]
        kept = set(_field_defaults(old))
        added = {k: v for k, v in _field_defaults(now).items() if k not in kept}
        out.setdefault(old.name, []).append((old.version, added))
        try:
            fills[old.fingerprint] = _fill.plan(old.parsed, now.parsed)
        except _fill.Unsupported:
            pass  # read with Avro's resolution
    for versions in out.values():
        versions.sort(key=lambda v: v[0])
    return out, fills


_SCHEMAS = _load()
_RELEASED, _FILLS = _load_released(_SCHEMAS)
METHODS: tuple[str, ...] = tuple(
    sorted(n.removeprefix(NAMESPACE + ".").removesuffix("Request") for n in _SCHEMAS if n.endswith("Request"))
)


def schema(message: str) -> RegisteredSchema:
    """The current schema of ``message`` (short name, e.g. ``StartWorkflowExecutionRequest``)."""
    try:
        return _SCHEMAS[f"{NAMESPACE}.{message}"]
    except KeyError:
        raise SchemaError(f"unknown API message {message!r}") from None


def encode(message: str, record: dict[str, Any]) -> bytes:
    """Single-object encode ``record`` with the oldest version of ``message`` that holds every
    field it sets: a peer that predates a field the record leaves at its default still reads it."""
    name = f"{NAMESPACE}.{message}"
    released = _RELEASED.get(name)
    if released is not None:
        for version, added in released:
            if all(record.get(k, default) == default for k, default in added.items()):
                older = record.copy()  # a copy and two pops: cheaper than rebuilding the dict
                for k in added:
                    older.pop(k, None)
                try:
                    return default_registry().encode(name, older, version=version)
                except SchemaError:
                    # A field added inside a nested record (the older version refuses it): a
                    # newer version holds it.
                    continue
    return default_registry().encode(name, record)


def decode(message: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` as ``message``; raises ``SchemaError`` naming the problem (garbage bytes, an
    unknown fingerprint, or a message of another type)."""
    expected = schema(message)
    writer = default_registry().writer_of(data)
    if writer.name != expected.name:
        raise SchemaError(f"expected a {expected.name} message, got one written with {writer}")
    if writer.fingerprint in _FILLS:
        older: dict[str, Any] = read_body(data, writer)
        fill = _FILLS[writer.fingerprint]
        if fill is not None:
            _fill.apply(fill, older)
        return older
    record: dict[str, Any] = read_body(data, writer, expected)
    return record


__all__ = [
    "LONG_POLL_METHODS",
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "METHODS",
    "RELEASED_DIR",
    "SERVICE",
    "decode",
    "encode",
    "schema",
]
