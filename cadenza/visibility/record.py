"""The visibility record: what the list and count APIs know about one workflow run.

The engine produces a record when a run starts, when it upserts search attributes and when it closes;
each carries the id of the visibility task that produced it. Stores keep only the record with the
highest ``task_id`` per run, so a late or duplicated update never overwrites a newer one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility._time import datetime_to_micros
from cadenza.visibility.search_attributes import SearchAttributeValue

STATUS_NAMES: Mapping[ExecutionStatus, str] = {
    ExecutionStatus.RUNNING: "Running",
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELED: "Canceled",
    ExecutionStatus.TERMINATED: "Terminated",
    ExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    ExecutionStatus.TIMED_OUT: "TimedOut",
}
"""The anchors' spelling of each status, as queries (``ExecutionStatus = 'Running'``) and stores use it."""

STATUS_BY_NAME: Mapping[str, ExecutionStatus] = {name: status for status, name in STATUS_NAMES.items()}

Payload = dict[str, Any]
"""``{"metadata": {str: bytes}, "data": bytes}`` (see ``cadenza.schemas.events``)."""


@dataclass(frozen=True, kw_only=True)
class VisibilityRecord:
    """One workflow run as visibility stores index it."""

    namespace_id: str
    workflow_id: str
    run_id: str
    workflow_type: str
    start_time: int
    """Microseconds since the Unix epoch (UTC)."""
    execution_time: int
    """When the first workflow task may run (start time plus any start delay or cron wait), µs."""
    close_time: int = 0
    """Microseconds since the epoch; 0 while the run is open (``CloseTime IS NULL`` in queries)."""
    status: ExecutionStatus = ExecutionStatus.RUNNING
    history_length: int = 0
    task_queue: str = ""
    search_attributes: Mapping[str, SearchAttributeValue] = field(default_factory=dict)
    """Custom attributes as typed values (validated by the store against the cluster's registry)."""
    memo: Mapping[str, Payload] = field(default_factory=dict)
    """Unindexed payloads returned with the record."""
    task_id: int = 0
    """The visibility task that produced this record: the version stores compare on upsert."""

    @property
    def status_name(self) -> str:
        """The status as queries spell it, e.g. ``"Running"``."""
        return STATUS_NAMES[self.status]

    def query_value(self, name: str) -> str | int | float | bool | list[str] | None:
        """The value the query language compares for attribute ``name`` (None when absent).

        Datetimes are µs integers, the status is its name, an open run has no ``CloseTime``.
        """
        system = _SYSTEM_VALUES.get(name)
        if system is not None:
            return system(self)
        value = self.search_attributes.get(name)
        if isinstance(value, datetime):
            return datetime_to_micros(value)
        if isinstance(value, list) and not value:
            return None
        return value


_SYSTEM_VALUES: Mapping[str, Any] = {
    "WorkflowId": lambda r: r.workflow_id,
    "RunId": lambda r: r.run_id,
    "WorkflowType": lambda r: r.workflow_type,
    "ExecutionStatus": lambda r: r.status_name,
    "StartTime": lambda r: r.start_time,
    "CloseTime": lambda r: r.close_time or None,
    "ExecutionTime": lambda r: r.execution_time,
    "HistoryLength": lambda r: r.history_length,
    "TaskQueue": lambda r: r.task_queue,
}


def encode_memo(memo: Mapping[str, Payload]) -> dict[str, Any]:
    """The memo as JSON-safe data (bytes in base64), for a SQLite column or an Elasticsearch field."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return {
        key: {
            "metadata": {k: b64(v) for k, v in payload.get("metadata", {}).items()},
            "data": b64(payload.get("data", b"")),
        }
        for key, payload in memo.items()
    }


def decode_memo(data: Mapping[str, Any]) -> dict[str, Payload]:
    """The inverse of :func:`encode_memo`."""
    return {
        key: {
            "metadata": {k: base64.b64decode(v) for k, v in payload["metadata"].items()},
            "data": base64.b64decode(payload["data"]),
        }
        for key, payload in data.items()
    }
