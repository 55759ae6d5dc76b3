"""Facts about a workflow run, as workflow code sees them through ``workflow.info()``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cadenza.schemas.events import HistoryEvent
from cadenza.sdk.common import ms_to_timedelta
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.search_attributes import TypedSearchAttributes, typed_from_values

__all__ = [
    "EPOCH",
    "ParentInfo",
    "WorkflowInfo",
    "decode_search_attributes",
    "encode_search_attributes",
    "info_from_started",
    "search_attribute_types",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Event times are microseconds since this instant."""


CONTINUE_AS_NEW_SUGGESTED_EVENTS = 10_240
"""The history length from which ``is_continue_as_new_suggested()`` is true: where the server starts
warning about a run's history (``cadenza.engine.history.limits.HISTORY_COUNT_WARN``)."""


@dataclass(frozen=True)
class ParentInfo:
    """The workflow that started this one as a child."""

    namespace: str
    """Namespace of the parent."""
    workflow_id: str
    """Workflow id of the parent."""
    run_id: str
    """Run id of the parent."""


@dataclass(frozen=True)
class WorkflowInfo:
    """Facts about the running workflow, fixed when the run starts."""

    namespace: str
    """Namespace of the run."""
    workflow_id: str
    """Workflow id."""
    run_id: str
    """Run id of this run."""
    workflow_type: str
    """Registered workflow type name."""
    task_queue: str
    """Task queue of the run's workflow tasks (and the default one for its activities)."""
    attempt: int
    """1 unless the workflow itself is being retried by a retry policy."""
    start_time: datetime
    """When the run started (UTC)."""
    run_timeout: timedelta | None
    """Timeout of this run, if set."""
    execution_timeout: timedelta | None
    """Timeout of the whole execution including retries and continue-as-new, if set."""
    task_timeout: timedelta | None
    """Start-to-close timeout of each workflow task."""
    first_execution_run_id: str
    """Run id of the first run of this execution chain."""
    continued_run_id: str | None
    """Run id of the run this one continued from, if any."""
    cron_schedule: str | None
    """Cron schedule, for cron workflows."""
    search_attributes: Mapping[str, Any]
    """Search attributes at start, updated by every ``upsert_search_attributes``, decoded (typed
    when the writer recorded the type: datetimes come back as datetimes)."""
    memo: Mapping[str, Any]
    """Memo at start, decoded."""
    parent: ParentInfo | None
    """The parent, for child workflows."""
    search_attribute_types: Mapping[str, str] = field(default_factory=dict)
    """The declared types (``Keyword``, ``Text``, ...) of search attributes whose writer recorded one."""

    @property
    def typed_search_attributes(self) -> TypedSearchAttributes:
        """:attr:`search_attributes` as ``TypedSearchAttributes`` (temporalio's typed spelling)."""
        return typed_from_values(self.search_attributes, self.search_attribute_types)

    def get_current_history_length(self) -> int:
        """Events in the run's history so far, as this workflow code has seen them (temporalio's
        name); only in workflow code."""
        from cadenza.sdk._runtime.instance import current_instance

        return current_instance("workflow.info().get_current_history_length()").last_event_id

    def is_continue_as_new_suggested(self) -> bool:
        """True once the history is long enough that the server warns about it (temporalio's
        name): a long-running workflow should ``continue_as_new`` at its next safe point."""
        return self.get_current_history_length() >= CONTINUE_AS_NEW_SUGGESTED_EVENTS


def info_from_started(
    event: HistoryEvent,
    *,
    namespace: str,
    workflow_id: str,
    run_id: str,
    default_type: str,
    converter: DataConverter,
) -> WorkflowInfo:
    """The run's info from its WorkflowExecutionStarted event."""
    attrs = event.attributes
    parent_execution = attrs.get("parent_workflow_execution")
    return WorkflowInfo(
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=run_id,
        workflow_type=attrs.get("workflow_type") or default_type,
        task_queue=attrs.get("task_queue", ""),
        attempt=attrs.get("attempt") or 1,
        start_time=EPOCH + timedelta(microseconds=event.event_time),
        run_timeout=ms_to_timedelta(attrs.get("workflow_run_timeout_ms")),
        execution_timeout=ms_to_timedelta(attrs.get("workflow_execution_timeout_ms")),
        task_timeout=ms_to_timedelta(attrs.get("workflow_task_timeout_ms")),
        first_execution_run_id=attrs.get("first_execution_run_id") or run_id,
        continued_run_id=attrs.get("continued_execution_run_id"),
        cron_schedule=attrs.get("cron_schedule"),
        search_attributes=decode_search_attributes(converter, attrs.get("search_attributes")),
        search_attribute_types=search_attribute_types(attrs.get("search_attributes")),
        memo=_decode_map(converter, attrs.get("memo")),
        parent=ParentInfo(
            namespace=attrs.get("parent_workflow_namespace") or namespace,
            workflow_id=parent_execution["workflow_id"],
            run_id=parent_execution["run_id"],
        )
        if parent_execution
        else None,
    )


def _decode_map(converter: DataConverter, values: dict[str, Any] | None) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, payload in (values or {}).items():
        try:
            decoded[key] = converter.from_payload(payload)
        except Exception:
            # Informational only: keep the raw payload rather than fail the run.
            decoded[key] = payload
    return decoded


# Search attributes are indexed by visibility, which reads plain JSON: they never go through the
# payload codec. The ``type`` metadata (temporalio's convention) lets a reader restore datetimes.
_JSON = b"json/plain"
_TYPE_OF: list[tuple[type, bytes]] = [
    (bool, b"Bool"),
    (int, b"Int"),
    (float, b"Double"),
    (datetime, b"Datetime"),
    (str, b"Keyword"),
    (list, b"KeywordList"),
    (tuple, b"KeywordList"),
]


def encode_search_attributes(
    values: Mapping[str, Any], types: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Payloads for typed search-attribute values; ``TypeError`` naming an unsupported one.

    ``types`` names the declared type of some attributes (typed keys); the others are typed by their
    values. A value of None removes the attribute (its payload is JSON ``null``)."""
    encoded: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"search attribute names must be non-empty strings, got {name!r}")
        if value is None:
            encoded[name] = {"metadata": {"encoding": _JSON}, "data": b"null"}
            continue
        kind = next((k for t, k in _TYPE_OF if isinstance(value, t)), None)
        declared = (types or {}).get(name)
        if kind is not None and declared:
            kind = declared.encode()
        if kind is None:
            raise TypeError(
                f"search attribute {name!r}: {type(value).__name__} is not a search attribute type "
                "(str, int, float, bool, datetime or a list of str)"
            )
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise TypeError(f"search attribute {name!r}: datetimes must be timezone-aware")
            plain: Any = value.isoformat()
        elif isinstance(value, list | tuple):
            if not all(isinstance(v, str) for v in value):
                raise TypeError(f"search attribute {name!r}: lists must hold only strings")
            plain = list(value)
        else:
            plain = value
        encoded[name] = {
            "metadata": {"encoding": _JSON, "type": kind},
            "data": json.dumps(plain, separators=(",", ":")).encode(),
        }
    return encoded


def decode_search_attributes(converter: DataConverter, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Values of search-attribute payloads, typed where the payload says its type."""
    decoded: dict[str, Any] = {}
    for name, payload in (values or {}).items():
        metadata = payload.get("metadata") or {}
        if metadata.get("encoding") == _JSON:
            try:
                value = json.loads(payload.get("data") or b"null")
            except ValueError:
                decoded[name] = payload
                continue
            if value is None:
                decoded.pop(name, None)  # removed by an upsert
                continue
            if metadata.get("type") == b"Datetime" and isinstance(value, str):
                try:
                    value = datetime.fromisoformat(value)
                except ValueError:
                    pass  # informational: keep the text
            decoded[name] = value
        else:
            decoded.update(_decode_map(converter, {name: payload}))
    return decoded


def search_attribute_types(values: Mapping[str, Any] | None) -> dict[str, str]:
    """The declared type names (``Keyword``, ``Text``, ...) of search-attribute payloads that
    carry one."""
    types: dict[str, str] = {}
    for name, payload in (values or {}).items():
        kind = (payload.get("metadata") or {}).get("type") if isinstance(payload, Mapping) else None
        if isinstance(kind, bytes | str):
            types[name] = kind.decode() if isinstance(kind, bytes) else kind
    return types
