"""The frontend API on the wire: one Avro request and response message per ``WorkflowService`` call.

Messages are single-object encoded (marker + schema fingerprint + body) with the ``.avsc`` files in
this directory, registered in the process-wide registry next to the history schemas. A reader
therefore always knows which schema (and version) wrote the bytes it got, and refuses bytes written
with another message's schema instead of misreading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _load() -> dict[str, RegisteredSchema]:
    registry = default_registry()
    out = {}
    for path in sorted(Path(__file__).parent.glob("*.avsc")):
        entry = registry.register(path)
        out[entry.name] = entry
    return out


_SCHEMAS = _load()
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
    return default_registry().encode(f"{NAMESPACE}.{message}", record)


def decode(message: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` as ``message``; raises ``SchemaError`` naming the problem (garbage bytes, an
    unknown fingerprint, or a message of another type)."""
    expected = schema(message)
    writer = default_registry().writer_of(data)
    if writer.name != expected.name:
        raise SchemaError(f"expected a {expected.name} message, got one written with {writer}")
    record: dict[str, Any] = read_body(data, writer, expected)
    return record


__all__ = [
    "LONG_POLL_METHODS",
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "METHODS",
    "SERVICE",
    "decode",
    "encode",
    "schema",
]
