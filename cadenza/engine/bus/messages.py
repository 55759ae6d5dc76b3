"""The messages carried on the bus, Avro single-object encoded (schemas in ``cadenza/schemas/bus``).

Every released version of each schema is registered in the project's registry
(``cadenza.schemas.codec.default_registry``), so bytes written by any released version decode into
the current dataclass; fields added since take their defaults. Bytes whose header names an unknown
schema, or that are not single-object encoded at all, raise ``MessageDecodeError`` naming the
problem: consumers send such messages to their DLQ instead of stopping.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.schemas.codec import default_registry
from cadenza.schemas.registry import SchemaError, SchemaRegistry

from .errors import MessageDecodeError
from .protocol import workflow_key

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "bus"
VISIBILITY_SCHEMA = "io.cadenza.bus.v1.VisibilityMessage"
REPLICATION_SCHEMA = "io.cadenza.bus.v1.ReplicationMessage"

Payload = dict[str, Any]
"""``{"metadata": {str: bytes}, "data": bytes}``, the shape of ``io.cadenza.v1.Payload``."""


def bus_registry() -> SchemaRegistry:
    """The registry holding every released bus schema (the project-wide one; registering is idempotent)."""
    registry = default_registry()
    registry.register_directory(SCHEMA_DIR)
    return registry


_registry = bus_registry()


class VisibilityMessageType(enum.StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"


class ReplicationTaskType(enum.StrEnum):
    HISTORY = "HISTORY"
    SYNC_ACTIVITY = "SYNC_ACTIVITY"
    NAMESPACE = "NAMESPACE"


class NamespaceOperation(enum.StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"


@dataclass(frozen=True, slots=True, kw_only=True)
class VisibilityMessage:
    """The visibility record of one run (times in microseconds since the epoch)."""

    namespace_id: str
    workflow_id: str
    run_id: str
    task_id: int
    """The visibility task's id; the indexer keeps the record of the highest task id per run."""
    message_type: VisibilityMessageType = VisibilityMessageType.UPSERT
    workflow_type: str = ""
    start_time: int = 0
    execution_time: int = 0
    close_time: int | None = None
    status: int = 0
    """``ExecutionStatus`` value; 0 when unspecified."""
    history_length: int = 0
    task_queue: str = ""
    search_attributes: dict[str, Payload] = field(default_factory=dict)
    memo: dict[str, Payload] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        return workflow_key(self.namespace_id, self.workflow_id)


@dataclass(frozen=True, slots=True)
class VersionHistoryItem:
    event_id: int
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncActivity:
    version: int
    scheduled_event_id: int
    scheduled_time: int = 0
    started_event_id: int = 0
    started_time: int = 0
    last_heartbeat_time: int = 0
    details: bytes | None = None
    attempt: int = 1
    last_failure: bytes | None = None
    last_worker_identity: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceReplication:
    operation: NamespaceOperation
    id: str
    name: str
    description: str = ""
    owner_email: str = ""
    data: dict[str, str] = field(default_factory=dict)
    retention_days: int = 0
    is_global: bool = True
    active_cluster_name: str = ""
    clusters: list[str] = field(default_factory=list)
    config_version: int = 0
    failover_version: int = 0
    failover_history: list[str] = field(default_factory=list)
    """Added in version 2 of the message; a version 1 message reads as an empty history."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationMessage:
    """One replication task; which optional fields are set depends on ``task_type``."""

    namespace_id: str
    workflow_id: str = ""
    run_id: str = ""
    task_id: int
    task_type: ReplicationTaskType
    version_history: list[VersionHistoryItem] = field(default_factory=list)
    first_event_id: int = 0
    next_event_id: int = 0
    events: bytes | None = None
    """A single-object encoded ``io.cadenza.v1.HistoryEventBatch`` (``codec.encode_events``)."""
    new_run_id: str = ""
    new_run_events: bytes | None = None
    activity: SyncActivity | None = None
    namespace: NamespaceReplication | None = None

    @property
    def key(self) -> bytes:
        """Namespace tasks are keyed by namespace id alone, so they stay ordered among themselves."""
        return workflow_key(self.namespace_id, self.workflow_id)


def encode_visibility(message: VisibilityMessage) -> bytes:
    # By hand, as ``encode_replication``: ``dataclasses.asdict`` deep-copies the payload dicts of
    # search attributes and memo, and every start and close of a run sends one of these.
    m = message
    record = {
        "namespace_id": m.namespace_id,
        "workflow_id": m.workflow_id,
        "run_id": m.run_id,
        "task_id": m.task_id,
        "message_type": m.message_type,
        "workflow_type": m.workflow_type,
        "start_time": m.start_time,
        "execution_time": m.execution_time,
        "close_time": m.close_time,
        "status": m.status,
        "history_length": m.history_length,
        "task_queue": m.task_queue,
        "search_attributes": m.search_attributes,
        "memo": m.memo,
    }
    return _registry.encode(VISIBILITY_SCHEMA, record)


def decode_visibility(data: bytes) -> VisibilityMessage:
    record = _decode(VISIBILITY_SCHEMA, data)
    record["message_type"] = VisibilityMessageType(record["message_type"])
    return VisibilityMessage(**record)


def encode_replication(message: ReplicationMessage) -> bytes:
    # Built by hand, not with ``dataclasses.asdict``: it deep-copies every field (the event batch
    # bytes included), and a replicating cluster encodes one message per write.
    m = message
    record = {
        "namespace_id": m.namespace_id,
        "workflow_id": m.workflow_id,
        "run_id": m.run_id,
        "task_id": m.task_id,
        "task_type": str(m.task_type),
        "version_history": [{"event_id": i.event_id, "version": i.version} for i in m.version_history],
        "first_event_id": m.first_event_id,
        "next_event_id": m.next_event_id,
        "events": m.events,
        "new_run_id": m.new_run_id,
        "new_run_events": m.new_run_events,
        "activity": dataclasses.asdict(m.activity) if m.activity is not None else None,
        "namespace": dataclasses.asdict(m.namespace) if m.namespace is not None else None,
    }
    return _registry.encode(REPLICATION_SCHEMA, record)


def decode_replication(data: bytes) -> ReplicationMessage:
    record = _decode(REPLICATION_SCHEMA, data)
    record["task_type"] = ReplicationTaskType(record["task_type"])
    record["version_history"] = [VersionHistoryItem(**item) for item in record["version_history"]]
    if record["activity"] is not None:
        record["activity"] = SyncActivity(**record["activity"])
    if record["namespace"] is not None:
        ns = record["namespace"]
        ns["operation"] = NamespaceOperation(ns["operation"])
        record["namespace"] = NamespaceReplication(**ns)
    return ReplicationMessage(**record)


def decode_message(data: bytes) -> VisibilityMessage | ReplicationMessage:
    """Decode whichever bus message ``data`` holds."""
    try:
        name = _registry.writer_of(data).name
    except SchemaError as exc:
        raise MessageDecodeError(str(exc)) from exc
    if name == VISIBILITY_SCHEMA:
        return decode_visibility(data)
    if name == REPLICATION_SCHEMA:
        return decode_replication(data)
    raise MessageDecodeError(f"{name} is not a bus message")


def _encode(schema: str, message: Any) -> bytes:
    # asdict recurses into nested dataclasses; StrEnum members are str, which Avro enums accept.
    return _registry.encode(schema, dataclasses.asdict(message))


def _decode(schema: str, data: bytes) -> dict[str, Any]:
    short = schema.rsplit(".", 1)[-1]
    try:
        writer = _registry.writer_of(data)
        if writer.name != schema:
            raise MessageDecodeError(f"cannot decode a {short}: the bytes hold a {writer}")
        _, record = _registry.decode(data, schema)
    except SchemaError as exc:
        raise MessageDecodeError(f"cannot decode a {short}: {exc}") from exc
    return dict(record)
