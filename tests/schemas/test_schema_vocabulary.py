"""The event vocabulary is pinned to Temporal's numbering, and the committed .avsc match the table."""

from __future__ import annotations

import json

from fastavro.schema import load_schema, to_parsing_canonical_form

from cadenza.schemas import CommandType, EventType
from cadenza.schemas import _generate as gen
from cadenza.schemas.codec import BATCH_SCHEMA, default_registry
from cadenza.schemas.events import COMMAND_EVENT, COMMAND_FIELDS, EVENT_FIELDS

# temporal.api.enums.v1.EventType, without EVENT_TYPE_UNSPECIFIED (0).
TEMPORAL_EVENT_TYPES = [
    "WorkflowExecutionStarted",
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowTaskScheduled",
    "WorkflowTaskStarted",
    "WorkflowTaskCompleted",
    "WorkflowTaskTimedOut",
    "WorkflowTaskFailed",
    "ActivityTaskScheduled",
    "ActivityTaskStarted",
    "ActivityTaskCompleted",
    "ActivityTaskFailed",
    "ActivityTaskTimedOut",
    "ActivityTaskCancelRequested",
    "ActivityTaskCanceled",
    "TimerStarted",
    "TimerFired",
    "TimerCanceled",
    "WorkflowExecutionCancelRequested",
    "WorkflowExecutionCanceled",
    "RequestCancelExternalWorkflowExecutionInitiated",
    "RequestCancelExternalWorkflowExecutionFailed",
    "ExternalWorkflowExecutionCancelRequested",
    "MarkerRecorded",
    "WorkflowExecutionSignaled",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionContinuedAsNew",
    "StartChildWorkflowExecutionInitiated",
    "StartChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionStarted",
    "ChildWorkflowExecutionCompleted",
    "ChildWorkflowExecutionFailed",
    "ChildWorkflowExecutionCanceled",
    "ChildWorkflowExecutionTimedOut",
    "ChildWorkflowExecutionTerminated",
    "SignalExternalWorkflowExecutionInitiated",
    "SignalExternalWorkflowExecutionFailed",
    "ExternalWorkflowExecutionSignaled",
    "UpsertWorkflowSearchAttributes",
]

# temporal.api.enums.v1.CommandType, without COMMAND_TYPE_UNSPECIFIED (0).
TEMPORAL_COMMAND_TYPES = [
    "ScheduleActivityTask",
    "RequestCancelActivityTask",
    "StartTimer",
    "CompleteWorkflowExecution",
    "FailWorkflowExecution",
    "CancelTimer",
    "CancelWorkflowExecution",
    "RequestCancelExternalWorkflowExecution",
    "RecordMarker",
    "ContinueAsNewWorkflowExecution",
    "StartChildWorkflowExecution",
    "SignalExternalWorkflowExecution",
    "UpsertWorkflowSearchAttributes",
]


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


# Beyond Temporal 1.0: the update events, with Temporal's later numbers.
TEMPORAL_UPDATE_EVENT_TYPES = [
    (44, "WorkflowExecutionUpdateAccepted"),
    (46, "WorkflowExecutionUpdateCompleted"),
]
# Update outcomes travel as protocol messages in Temporal; here they are commands of their own,
# numbered apart from Temporal's range.
UPDATE_COMMAND_TYPES = [
    (101, "AcceptWorkflowUpdate"),
    (102, "CompleteWorkflowUpdate"),
    (103, "RejectWorkflowUpdate"),
]


def test_event_type_numbering_matches_temporal() -> None:
    assert [(et.value, et.pascal_name) for et in EventType] == [
        *enumerate(TEMPORAL_EVENT_TYPES, start=1),
        *TEMPORAL_UPDATE_EVENT_TYPES,
    ]


def test_command_type_numbering_matches_temporal() -> None:
    assert [(ct.value, _pascal(ct.name)) for ct in CommandType] == [
        *enumerate(TEMPORAL_COMMAND_TYPES, start=1),
        *UPDATE_COMMAND_TYPES,
    ]


def test_tables_cover_every_type() -> None:
    assert set(EVENT_FIELDS) == set(EventType)
    assert set(COMMAND_FIELDS) == set(CommandType) == {*COMMAND_EVENT, CommandType.REJECT_WORKFLOW_UPDATE}


def test_generated_avsc_files_are_up_to_date() -> None:
    # Fix with: .venv/bin/python -m cadenza.schemas._generate
    assert gen.check() == []


def test_per_type_files_and_released_snapshot_agree() -> None:
    per_type = load_schema(str(gen.AVRO_DIR / f"{gen.full_name(gen.BATCH_NAME)}.avsc"))
    released = json.loads(gen.released_path(gen.BATCH_NAME, gen.SCHEMA_VERSION).read_text())
    assert to_parsing_canonical_form(per_type) == to_parsing_canonical_form(released)


def test_current_version_is_the_latest_registered() -> None:
    current = default_registry().get(BATCH_SCHEMA)
    assert current.version == gen.SCHEMA_VERSION
    released = {int(p.stem.rsplit(".v", 1)[1]) for p in gen.RELEASED_DIR.glob("HistoryEventBatch.v*.avsc")}
    assert released == {s.version for s in default_registry().schemas() if s.name == BATCH_SCHEMA}


def test_every_field_has_a_default_and_union_follows_event_numbering() -> None:
    records = {r["name"]: r for r in gen.all_records()}
    for record in records.values():
        for field in record["fields"]:
            if (record["name"], field["name"]) != ("HistoryEvent", "attributes"):
                assert "default" in field, (record["name"], field["name"])
    union = next(f for f in records["HistoryEvent"]["fields"] if f["name"] == "attributes")["type"]
    assert union == [f"{et.pascal_name}EventAttributes" for et in EventType]
    for et in EventType:
        fields = records[gen.record_name(et)]["fields"]
        assert [f["name"] for f in fields] == list(EVENT_FIELDS[et])
