"""The vocabulary of history: event types, command types and the in-memory event.

Numbering follows Temporal 1.0 (event types 1-40, command types 1-13) so exported histories line up
with the anchors'. Attributes are plain dicts whose keys are the fields listed in ``EVENT_FIELDS`` /
``COMMAND_FIELDS``; the Avro schemas in this package are generated from the same tables, so a field
that is not listed here cannot be written.

Conventions for attribute values (they are what the Avro schemas encode):

* durations are ``int`` milliseconds, in fields ending ``_ms``; 0 means "not set";
* instants are ``int`` microseconds since the Unix epoch (UTC), in fields ending ``_time``;
* a *payload* is ``{"metadata": {str: bytes}, "data": bytes}``; *payloads* is a list of payloads
  (the positional arguments of a call, or a one-element list holding a result);
* a *failure* is ``{"message", "source", "stack_trace", "failure_type", "application_type",
  "non_retryable", "details", "timeout_type", "cause", "next_retry_delay_ms", "category"}``
  (``cause`` is a nested failure or None; ``next_retry_delay_ms`` is an application error's
  requested delay before the next attempt, or None; ``category`` is its
  ``ApplicationErrorCategory``, 0 when unspecified);
* a *retry policy* is ``{"initial_interval_ms", "backoff_coefficient", "maximum_interval_ms",
  "maximum_attempts", "non_retryable_error_types"}``;
* an *execution* is ``{"workflow_id": str, "run_id": str}``;
* search attributes, memo and header are ``{str: payload}``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class EventType(enum.IntEnum):
    WORKFLOW_EXECUTION_STARTED = 1
    WORKFLOW_EXECUTION_COMPLETED = 2
    WORKFLOW_EXECUTION_FAILED = 3
    WORKFLOW_EXECUTION_TIMED_OUT = 4
    WORKFLOW_TASK_SCHEDULED = 5
    WORKFLOW_TASK_STARTED = 6
    WORKFLOW_TASK_COMPLETED = 7
    WORKFLOW_TASK_TIMED_OUT = 8
    WORKFLOW_TASK_FAILED = 9
    ACTIVITY_TASK_SCHEDULED = 10
    ACTIVITY_TASK_STARTED = 11
    ACTIVITY_TASK_COMPLETED = 12
    ACTIVITY_TASK_FAILED = 13
    ACTIVITY_TASK_TIMED_OUT = 14
    ACTIVITY_TASK_CANCEL_REQUESTED = 15
    ACTIVITY_TASK_CANCELED = 16
    TIMER_STARTED = 17
    TIMER_FIRED = 18
    TIMER_CANCELED = 19
    WORKFLOW_EXECUTION_CANCEL_REQUESTED = 20
    WORKFLOW_EXECUTION_CANCELED = 21
    REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED = 22
    REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED = 23
    EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED = 24
    MARKER_RECORDED = 25
    WORKFLOW_EXECUTION_SIGNALED = 26
    WORKFLOW_EXECUTION_TERMINATED = 27
    WORKFLOW_EXECUTION_CONTINUED_AS_NEW = 28
    START_CHILD_WORKFLOW_EXECUTION_INITIATED = 29
    START_CHILD_WORKFLOW_EXECUTION_FAILED = 30
    CHILD_WORKFLOW_EXECUTION_STARTED = 31
    CHILD_WORKFLOW_EXECUTION_COMPLETED = 32
    CHILD_WORKFLOW_EXECUTION_FAILED = 33
    CHILD_WORKFLOW_EXECUTION_CANCELED = 34
    CHILD_WORKFLOW_EXECUTION_TIMED_OUT = 35
    CHILD_WORKFLOW_EXECUTION_TERMINATED = 36
    SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED = 37
    SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED = 38
    EXTERNAL_WORKFLOW_EXECUTION_SIGNALED = 39
    UPSERT_WORKFLOW_SEARCH_ATTRIBUTES = 40
    # Workflow updates, with Temporal's numbers (41-43 are Temporal's property changes, not used
    # here; 45, UpdateRejected, is never written: a rejected update leaves no trace in history).
    WORKFLOW_EXECUTION_UPDATE_ACCEPTED = 44
    WORKFLOW_EXECUTION_UPDATE_COMPLETED = 46

    @property
    def pascal_name(self) -> str:
        """The anchors' spelling, e.g. ``WorkflowExecutionStarted``."""
        return "".join(part.capitalize() for part in self.name.split("_"))


class CommandType(enum.IntEnum):
    SCHEDULE_ACTIVITY_TASK = 1
    REQUEST_CANCEL_ACTIVITY_TASK = 2
    START_TIMER = 3
    COMPLETE_WORKFLOW_EXECUTION = 4
    FAIL_WORKFLOW_EXECUTION = 5
    CANCEL_TIMER = 6
    CANCEL_WORKFLOW_EXECUTION = 7
    REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION = 8
    RECORD_MARKER = 9
    CONTINUE_AS_NEW_WORKFLOW_EXECUTION = 10
    START_CHILD_WORKFLOW_EXECUTION = 11
    SIGNAL_EXTERNAL_WORKFLOW_EXECUTION = 12
    UPSERT_WORKFLOW_SEARCH_ATTRIBUTES = 13
    # Temporal carries an update's acceptance, rejection and outcome as protocol messages beside the
    # commands (command type 14 marks their place). Here each is a command of its own, numbered
    # apart from Temporal's range; a rejection produces no event.
    ACCEPT_WORKFLOW_UPDATE = 101
    COMPLETE_WORKFLOW_UPDATE = 102
    REJECT_WORKFLOW_UPDATE = 103


# Events that close a run: after one of them no other event may be appended.
CLOSE_EVENT_TYPES = frozenset(
    {
        EventType.WORKFLOW_EXECUTION_COMPLETED,
        EventType.WORKFLOW_EXECUTION_FAILED,
        EventType.WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.WORKFLOW_EXECUTION_CANCELED,
        EventType.WORKFLOW_EXECUTION_TERMINATED,
        EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)


@dataclass(slots=True)
class HistoryEvent:
    """One entry of a workflow's history."""

    event_id: int
    """Dense, from 1, per run."""
    event_time: int
    """Microseconds since the Unix epoch (UTC), from the engine's clock."""
    event_type: EventType
    version: int = 0
    """The namespace failover version in force when the event was written."""
    task_id: int = 0
    """Monotonic per shard: orders events written by one shard owner."""
    attributes: dict[str, Any] = field(default_factory=dict)
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    """The event's Avro encoding inside a batch, kept once it is written (a written event does not
    change), so histories sent to workers again and again are not encoded again each time."""


@dataclass(slots=True)
class Command:
    """What workflow code asks the engine to do, produced by a completed workflow task."""

    command_type: CommandType
    attributes: dict[str, Any] = field(default_factory=dict)


# Field tables. Types: s=string, l=long, i=int, b=boolean, d=double, P=payloads (nullable list),
# p1=payload, F=failure (nullable), R=retry policy (nullable), X=execution (nullable), M=map of payload,
# MP=map of payloads, S?=nullable string, L?=nullable long.
EVENT_FIELDS: dict[EventType, dict[str, str]] = {
    EventType.WORKFLOW_EXECUTION_STARTED: {
        "workflow_type": "s",
        "task_queue": "s",
        "input": "P",
        "workflow_execution_timeout_ms": "l",
        "workflow_run_timeout_ms": "l",
        "workflow_task_timeout_ms": "l",
        "parent_workflow_namespace": "S?",
        "parent_workflow_execution": "X",
        "parent_initiated_event_id": "l",
        "continued_execution_run_id": "S?",
        "initiator": "S?",
        "continued_failure": "F",
        "last_completion_result": "P",
        "original_execution_run_id": "s",
        "identity": "s",
        "first_execution_run_id": "s",
        "retry_policy": "R",
        "attempt": "i",
        "workflow_execution_expiration_time": "l",
        "cron_schedule": "S?",
        "first_workflow_task_backoff_ms": "l",
        "memo": "M",
        "search_attributes": "M",
        "header": "M",
        "request_id": "s",
    },
    EventType.WORKFLOW_EXECUTION_COMPLETED: {
        "result": "P",
        "workflow_task_completed_event_id": "l",
        "new_execution_run_id": "S?",
    },
    EventType.WORKFLOW_EXECUTION_FAILED: {
        "failure": "F",
        "retry_state": "S?",
        "workflow_task_completed_event_id": "l",
        "new_execution_run_id": "S?",
    },
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: {"retry_state": "S?", "new_execution_run_id": "S?"},
    EventType.WORKFLOW_TASK_SCHEDULED: {"task_queue": "s", "start_to_close_timeout_ms": "l", "attempt": "i"},
    EventType.WORKFLOW_TASK_STARTED: {"scheduled_event_id": "l", "identity": "s", "request_id": "s"},
    EventType.WORKFLOW_TASK_COMPLETED: {
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "identity": "s",
        "binary_checksum": "s",
    },
    EventType.WORKFLOW_TASK_TIMED_OUT: {
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "timeout_type": "s",
    },
    EventType.WORKFLOW_TASK_FAILED: {
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "cause": "s",
        "failure": "F",
        "identity": "s",
        "base_run_id": "S?",
        "new_run_id": "S?",
        "fork_event_version": "l",
        "binary_checksum": "s",
    },
    EventType.ACTIVITY_TASK_SCHEDULED: {
        "activity_id": "s",
        "activity_type": "s",
        "task_queue": "s",
        "header": "M",
        "input": "P",
        "schedule_to_close_timeout_ms": "l",
        "schedule_to_start_timeout_ms": "l",
        "start_to_close_timeout_ms": "l",
        "heartbeat_timeout_ms": "l",
        "workflow_task_completed_event_id": "l",
        "retry_policy": "R",
    },
    EventType.ACTIVITY_TASK_STARTED: {
        "scheduled_event_id": "l",
        "identity": "s",
        "request_id": "s",
        "attempt": "i",
        "last_failure": "F",
    },
    EventType.ACTIVITY_TASK_COMPLETED: {
        "result": "P",
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "identity": "s",
    },
    EventType.ACTIVITY_TASK_FAILED: {
        "failure": "F",
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "identity": "s",
        "retry_state": "S?",
    },
    EventType.ACTIVITY_TASK_TIMED_OUT: {
        "failure": "F",
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "retry_state": "S?",
    },
    EventType.ACTIVITY_TASK_CANCEL_REQUESTED: {
        "scheduled_event_id": "l",
        "workflow_task_completed_event_id": "l",
    },
    EventType.ACTIVITY_TASK_CANCELED: {
        "details": "P",
        "latest_cancel_requested_event_id": "l",
        "scheduled_event_id": "l",
        "started_event_id": "l",
        "identity": "s",
    },
    EventType.TIMER_STARTED: {
        "timer_id": "s",
        "start_to_fire_timeout_ms": "l",
        "workflow_task_completed_event_id": "l",
    },
    EventType.TIMER_FIRED: {"timer_id": "s", "started_event_id": "l"},
    EventType.TIMER_CANCELED: {
        "timer_id": "s",
        "started_event_id": "l",
        "workflow_task_completed_event_id": "l",
        "identity": "s",
    },
    EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED: {
        "cause": "s",
        "external_initiated_event_id": "l",
        "external_workflow_execution": "X",
        "identity": "s",
    },
    EventType.WORKFLOW_EXECUTION_CANCELED: {"workflow_task_completed_event_id": "l", "details": "P"},
    EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: {
        "workflow_task_completed_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
        "control": "S?",
        "child_workflow_only": "b",
    },
    EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED: {
        "cause": "s",
        "workflow_task_completed_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
        "initiated_event_id": "l",
        "control": "S?",
    },
    EventType.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED: {
        "initiated_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
    },
    EventType.MARKER_RECORDED: {
        "marker_name": "s",
        "details": "MP",
        "workflow_task_completed_event_id": "l",
        "header": "M",
        "failure": "F",
    },
    EventType.WORKFLOW_EXECUTION_SIGNALED: {
        "signal_name": "s",
        "input": "P",
        "identity": "s",
        # Version 4: the sender's header (a client's interceptors, a workflow's outbound ones).
        "header": "M",
    },
    EventType.WORKFLOW_EXECUTION_TERMINATED: {"reason": "s", "details": "P", "identity": "s"},
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: {
        "new_execution_run_id": "s",
        "workflow_type": "s",
        "task_queue": "s",
        "input": "P",
        "workflow_run_timeout_ms": "l",
        "workflow_task_timeout_ms": "l",
        "workflow_task_completed_event_id": "l",
        "backoff_start_interval_ms": "l",
        "initiator": "S?",
        "failure": "F",
        "last_completion_result": "P",
        "header": "M",
        "memo": "M",
        "search_attributes": "M",
    },
    EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED: {
        "namespace": "s",
        "workflow_id": "s",
        "workflow_type": "s",
        "task_queue": "s",
        "input": "P",
        "workflow_execution_timeout_ms": "l",
        "workflow_run_timeout_ms": "l",
        "workflow_task_timeout_ms": "l",
        "parent_close_policy": "s",
        "control": "S?",
        "workflow_task_completed_event_id": "l",
        "workflow_id_reuse_policy": "s",
        "retry_policy": "R",
        "cron_schedule": "S?",
        "header": "M",
        "memo": "M",
        "search_attributes": "M",
    },
    EventType.START_CHILD_WORKFLOW_EXECUTION_FAILED: {
        "namespace": "s",
        "workflow_id": "s",
        "workflow_type": "s",
        "cause": "s",
        "control": "S?",
        "initiated_event_id": "l",
        "workflow_task_completed_event_id": "l",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_STARTED: {
        "namespace": "s",
        "initiated_event_id": "l",
        "workflow_execution": "X",
        "workflow_type": "s",
        "header": "M",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED: {
        "result": "P",
        "namespace": "s",
        "workflow_execution": "X",
        "workflow_type": "s",
        "initiated_event_id": "l",
        "started_event_id": "l",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_FAILED: {
        "failure": "F",
        "namespace": "s",
        "workflow_execution": "X",
        "workflow_type": "s",
        "initiated_event_id": "l",
        "started_event_id": "l",
        "retry_state": "S?",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_CANCELED: {
        "details": "P",
        "namespace": "s",
        "workflow_execution": "X",
        "workflow_type": "s",
        "initiated_event_id": "l",
        "started_event_id": "l",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT: {
        "namespace": "s",
        "workflow_execution": "X",
        "workflow_type": "s",
        "initiated_event_id": "l",
        "started_event_id": "l",
        "retry_state": "S?",
    },
    EventType.CHILD_WORKFLOW_EXECUTION_TERMINATED: {
        "namespace": "s",
        "workflow_execution": "X",
        "workflow_type": "s",
        "initiated_event_id": "l",
        "started_event_id": "l",
    },
    EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: {
        "workflow_task_completed_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
        "signal_name": "s",
        "input": "P",
        "control": "S?",
        "child_workflow_only": "b",
        "header": "M",
    },
    EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED: {
        "cause": "s",
        "workflow_task_completed_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
        "initiated_event_id": "l",
        "control": "S?",
    },
    EventType.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED: {
        "initiated_event_id": "l",
        "namespace": "s",
        "workflow_execution": "X",
        "control": "S?",
    },
    EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
        "workflow_task_completed_event_id": "l",
        "search_attributes": "M",
    },
    # Temporal nests the request (meta: update id and identity; input: name, args, header); the
    # fields are flattened here.
    EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED: {
        "update_id": "s",
        "name": "s",
        "input": "P",
        "header": "M",
        "identity": "s",
        "workflow_task_completed_event_id": "l",
    },
    # The outcome: ``result`` (success) or ``failure``.
    EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED: {
        "update_id": "s",
        "accepted_event_id": "l",
        "result": "P",
        "failure": "F",
        "identity": "s",
    },
}

# Command attributes are the matching event's fields that the workflow decides; the engine fills in
# the rest (event ids, identity, run ids).
COMMAND_FIELDS: dict[CommandType, tuple[str, ...]] = {
    CommandType.SCHEDULE_ACTIVITY_TASK: (
        "activity_id",
        "activity_type",
        "task_queue",
        "header",
        "input",
        "schedule_to_close_timeout_ms",
        "schedule_to_start_timeout_ms",
        "start_to_close_timeout_ms",
        "heartbeat_timeout_ms",
        "retry_policy",
    ),
    CommandType.REQUEST_CANCEL_ACTIVITY_TASK: ("scheduled_event_id",),
    CommandType.START_TIMER: ("timer_id", "start_to_fire_timeout_ms"),
    CommandType.COMPLETE_WORKFLOW_EXECUTION: ("result",),
    CommandType.FAIL_WORKFLOW_EXECUTION: ("failure",),
    CommandType.CANCEL_TIMER: ("timer_id",),
    CommandType.CANCEL_WORKFLOW_EXECUTION: ("details",),
    CommandType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: (
        "namespace",
        "workflow_id",
        "run_id",
        "control",
        "child_workflow_only",
    ),
    CommandType.RECORD_MARKER: ("marker_name", "details", "header", "failure"),
    CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION: (
        "workflow_type",
        "task_queue",
        "input",
        "workflow_run_timeout_ms",
        "workflow_task_timeout_ms",
        "backoff_start_interval_ms",
        "retry_policy",
        "initiator",
        "failure",
        "last_completion_result",
        "cron_schedule",
        "header",
        "memo",
        "search_attributes",
    ),
    CommandType.START_CHILD_WORKFLOW_EXECUTION: (
        "namespace",
        "workflow_id",
        "workflow_type",
        "task_queue",
        "input",
        "workflow_execution_timeout_ms",
        "workflow_run_timeout_ms",
        "workflow_task_timeout_ms",
        "parent_close_policy",
        "control",
        "workflow_id_reuse_policy",
        "retry_policy",
        "cron_schedule",
        "header",
        "memo",
        "search_attributes",
    ),
    CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: (
        "namespace",
        "workflow_id",
        "run_id",
        "signal_name",
        "input",
        "control",
        "child_workflow_only",
        "header",
    ),
    CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: ("search_attributes",),
    CommandType.ACCEPT_WORKFLOW_UPDATE: ("update_id", "name", "input", "header", "identity"),
    CommandType.COMPLETE_WORKFLOW_UPDATE: ("update_id", "result", "failure"),
    CommandType.REJECT_WORKFLOW_UPDATE: ("update_id", "failure"),
}

# The event a command produces, for replay matching.
COMMAND_EVENT: dict[CommandType, EventType] = {
    CommandType.SCHEDULE_ACTIVITY_TASK: EventType.ACTIVITY_TASK_SCHEDULED,
    CommandType.REQUEST_CANCEL_ACTIVITY_TASK: EventType.ACTIVITY_TASK_CANCEL_REQUESTED,
    CommandType.START_TIMER: EventType.TIMER_STARTED,
    CommandType.COMPLETE_WORKFLOW_EXECUTION: EventType.WORKFLOW_EXECUTION_COMPLETED,
    CommandType.FAIL_WORKFLOW_EXECUTION: EventType.WORKFLOW_EXECUTION_FAILED,
    CommandType.CANCEL_TIMER: EventType.TIMER_CANCELED,
    CommandType.CANCEL_WORKFLOW_EXECUTION: EventType.WORKFLOW_EXECUTION_CANCELED,
    CommandType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: (
        EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    ),
    CommandType.RECORD_MARKER: EventType.MARKER_RECORDED,
    CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION: EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    CommandType.START_CHILD_WORKFLOW_EXECUTION: EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    CommandType.ACCEPT_WORKFLOW_UPDATE: EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    CommandType.COMPLETE_WORKFLOW_UPDATE: EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}

COMMAND_FIELD_TYPES: dict[CommandType, EventType] = {
    **COMMAND_EVENT,
    CommandType.REJECT_WORKFLOW_UPDATE: EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}
"""Where a command's attribute types come from: its event's fields (a rejection has no event; its
fields are typed like the update's outcome)."""
