"""Mutable state: what the engine knows about one run, kept in step with its history.

Every change that history records goes through ``add_event``, which builds the event AND applies it to
the state with the same ``_apply_*`` method that ``rebuild`` uses on a stored history. So "the state is
a fold of the events" holds by construction; the only state that is not in history is what the anchors
also keep outside it (an activity's current attempt while it runs, heartbeat details, a transient
workflow task after a failed attempt, buffered events while a workflow task is in flight).

The state is persisted as a snapshot blob (see ``encode_state``) so loading a run never needs its
history; ``rebuild`` exists for reset, replication and as a consistency check in tests.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.persistence.protocols import ExecutionState, ExecutionStatus
from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType, HistoryEvent

EMPTY_EVENT_ID = 0


@dataclass(slots=True)
class ActivityInfo:
    scheduled_event_id: int
    activity_id: str
    activity_type: str
    task_queue: str
    input: list[dict[str, Any]] | None
    header: dict[str, Any]
    schedule_to_close_timeout_ms: int
    schedule_to_start_timeout_ms: int
    start_to_close_timeout_ms: int
    heartbeat_timeout_ms: int
    retry_policy: dict[str, Any] | None
    first_scheduled_time: int
    scheduled_time: int
    attempt: int = 1
    started_time: int = 0
    """0 while the current attempt waits in the queue; the started event is written only when the
    attempt ends (as the anchors do), so retries do not bloat history."""
    started_identity: str = ""
    request_id: str = ""
    last_heartbeat_time: int = 0
    heartbeat_details: list[dict[str, Any]] | None = None
    last_failure: dict[str, Any] | None = None
    cancel_requested: bool = False
    cancel_requested_event_id: int = 0
    result_buffered: bool = False
    """The attempt's outcome waits in the buffer for the in-flight workflow task to end."""


@dataclass(slots=True)
class TimerInfo:
    timer_id: str
    started_event_id: int
    expiry_time: int
    fired_buffered: bool = False


@dataclass(slots=True)
class ChildInfo:
    """A child workflow this run started (from StartChildWorkflowExecutionInitiated)."""

    initiated_event_id: int
    namespace: str
    workflow_id: str
    workflow_type: str
    parent_close_policy: str
    run_id: str = ""
    started_event_id: int = 0


@dataclass(slots=True)
class ExternalRequest:
    """A signal or cancel this run sent to another workflow, until it is confirmed or failed."""

    initiated_event_id: int
    namespace: str
    workflow_id: str
    run_id: str
    kind: str
    """"signal" or "cancel"."""


@dataclass(slots=True)
class WorkflowTaskInfo:
    scheduled_event_id: int = EMPTY_EVENT_ID
    started_event_id: int = EMPTY_EVENT_ID
    attempt: int = 1
    request_id: str = ""
    scheduled_time: int = 0
    started_time: int = 0
    timeout_ms: int = 0
    task_queue: str = ""
    identity: str = ""
    transient: bool = False
    """An attempt after a failure: its scheduled/started events are written only when it completes,
    so a workflow whose code keeps failing does not grow its history."""
    started_written: bool = False
    """A start is speculative: it reserves its event ids but its Started event is written with the
    task's outcome (see ``write_workflow_task_start``)."""
    speculative: bool = False
    """Scheduled in memory only, to deliver workflow updates (see ``updates``): if it ends with
    every update rejected and nothing else to record, it leaves no trace in history. The first
    write of the run that finds it makes it an ordinary (transient) task."""


@dataclass(slots=True)
class ExecutionInfo:
    namespace_id: str
    workflow_id: str
    run_id: str
    workflow_type: str = ""
    task_queue: str = ""
    workflow_execution_timeout_ms: int = 0
    workflow_run_timeout_ms: int = 0
    workflow_task_timeout_ms: int = 10_000
    start_time: int = 0
    execution_time: int = 0
    close_time: int = 0
    state: ExecutionState = ExecutionState.CREATED
    status: ExecutionStatus = ExecutionStatus.RUNNING
    create_request_id: str = ""
    first_execution_run_id: str = ""
    attempt: int = 1
    retry_policy: dict[str, Any] | None = None
    cron_schedule: str = ""
    memo: dict[str, Any] = field(default_factory=dict)
    search_attributes: dict[str, Any] = field(default_factory=dict)
    cancel_requested: bool = False
    cancel_request_id: str = ""
    completion_event_id: int = EMPTY_EVENT_ID
    last_completed_workflow_task_event_id: int = EMPTY_EVENT_ID
    signal_count: int = 0
    history_size_bytes: int = 0
    tree_id: str = ""
    branch_id: str = ""
    start_version: int = 0
    last_write_version: int = 0
    parent_namespace: str = ""
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    parent_initiated_event_id: int = 0
    workflow_execution_expiration_time: int = 0
    """When the whole chain of runs (retries, continue-as-new, cron) must end; 0 = never."""
    sticky_task_queue: str = ""
    """The queue of the worker that has the run cached (sticky execution): its next workflow task
    goes there, with only the events after its last completed task. Local to this cluster and not
    an event: any workflow task outcome clears it (a replicated one too, so a standby or rebuilt
    state never has it), and only the completing worker's request sets it again."""
    sticky_schedule_to_start_timeout_ms: int = 0
    """How long a task waits on the sticky queue before it falls back to ``task_queue``."""


class MutableState:
    """One run's state. Not thread-safe: the engine holds the run's lock while it mutates."""

    def __init__(self, info: ExecutionInfo) -> None:
        self.info = info
        self.next_event_id = 1
        self.db_version = 0
        self.activities: dict[int, ActivityInfo] = {}
        self.activity_ids: dict[str, int] = {}
        self.timers: dict[str, TimerInfo] = {}
        self.workflow_task = WorkflowTaskInfo()
        self.signal_request_ids: set[str] = set()
        # Workflow updates by id: [accepted event id, completed event id (0 while it runs)].
        self.updates: dict[str, list[int]] = {}
        self.children: dict[int, ChildInfo] = {}
        self.external_requests: dict[int, ExternalRequest] = {}
        self.buffered_events: list[HistoryEvent] = []
        # (last event id, version) pairs of the current branch; one per failover version change.
        self.version_history: list[tuple[int, int]] = []
        self.current_version = 0
        # The run's other branches, [(branch id, version history items)], kept when a conflict
        # with another cluster's history was resolved against them (see ``replication``).
        self.branches: list[tuple[str, list[tuple[int, int]]]] = []
        # Events made by the mutation in progress; the engine persists and clears them.
        self.pending_events: list[HistoryEvent] = []

    # -- queries ---------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.info.state in (ExecutionState.CREATED, ExecutionState.RUNNING)

    @property
    def has_pending_workflow_task(self) -> bool:
        return self.workflow_task.scheduled_event_id != EMPTY_EVENT_ID

    @property
    def has_started_workflow_task(self) -> bool:
        return self.workflow_task.started_event_id != EMPTY_EVENT_ID

    def clear_stickiness(self) -> None:
        self.info.sticky_task_queue = ""
        self.info.sticky_schedule_to_start_timeout_ms = 0

    # -- writing events --------------------------------------------------------------------------

    def add_event(self, event_type: EventType, now_us: int, attributes: dict[str, Any]) -> HistoryEvent:
        """Makes the next event, applies it, and queues it for persistence.

        While a workflow task is in flight, events that come from outside the workflow (signals,
        activity results, timer fires, cancel requests) are buffered instead: writing them between
        WorkflowTaskStarted and WorkflowTaskCompleted would make replay deliver them before the code
        that the task ran, which is not what the worker saw."""
        event = HistoryEvent(
            event_id=self.next_event_id,
            event_time=now_us,
            event_type=event_type,
            version=self.current_version,
            task_id=0,
            attributes=attributes,
        )
        self.next_event_id += 1
        self.apply(event)
        self.pending_events.append(event)
        return event

    def buffer_event(self, event_type: EventType, now_us: int, attributes: dict[str, Any]) -> None:
        self.buffered_events.append(HistoryEvent(0, now_us, event_type, self.current_version, 0, attributes))

    def add_or_buffer(self, event_type: EventType, now_us: int, attributes: dict[str, Any]) -> None:
        if self.has_started_workflow_task:
            self.buffer_event(event_type, now_us, attributes)
        else:
            self.add_event(event_type, now_us, attributes)

    def flush_buffered_events(self) -> list[HistoryEvent]:
        """Writes the buffered events (after the in-flight workflow task ended)."""
        flushed: list[HistoryEvent] = []
        buffered, self.buffered_events = self.buffered_events, []
        started_ids: dict[int, int] = {}
        for ev in buffered:
            attrs = ev.attributes
            # A buffered activity outcome names its started event, whose id is only known now.
            if ev.event_type == EventType.ACTIVITY_TASK_STARTED:
                written = self.add_event(ev.event_type, ev.event_time, attrs)
                started_ids[attrs["scheduled_event_id"]] = written.event_id
                flushed.append(written)
                continue
            if "started_event_id" in attrs and not attrs["started_event_id"]:
                attrs["started_event_id"] = started_ids.get(attrs.get("scheduled_event_id", -1), 0)
            flushed.append(self.add_event(ev.event_type, ev.event_time, attrs))
        return flushed

    def unwritten_workflow_task_events(self) -> list[HistoryEvent]:
        """The events of the started workflow task that are not written yet: Started (and
        Scheduled, for a transient attempt), with the ids the start reserved. A worker gets them
        appended to the history it replays."""
        wt = self.workflow_task
        if not wt.started_event_id or wt.started_written:
            return []
        out = []
        if wt.transient:
            out.append(
                HistoryEvent(
                    wt.scheduled_event_id,
                    wt.scheduled_time,
                    EventType.WORKFLOW_TASK_SCHEDULED,
                    self.current_version,
                    0,
                    {
                        "task_queue": wt.task_queue,
                        "start_to_close_timeout_ms": wt.timeout_ms,
                        "attempt": wt.attempt,
                    },
                )
            )
        out.append(
            HistoryEvent(
                wt.started_event_id,
                wt.started_time,
                EventType.WORKFLOW_TASK_STARTED,
                self.current_version,
                0,
                {
                    "scheduled_event_id": wt.scheduled_event_id,
                    "identity": wt.identity,
                    "request_id": wt.request_id,
                },
            )
        )
        return out

    def unwritten_events(self) -> list[HistoryEvent]:
        """What follows the written history when a worker starts a workflow task: the events of a
        held change (see ``HistoryEngine._hold_write``), then the task's own unwritten events."""
        return self.pending_events + self.unwritten_workflow_task_events()

    def write_workflow_task_start(self) -> None:
        """Writes the started workflow task's unwritten events, before its outcome (or the run's
        close) so history reads Scheduled, Started, then what became of the task."""
        for ev in self.unwritten_workflow_task_events():
            written = self.add_event(ev.event_type, ev.event_time, ev.attributes)
            assert written.event_id == ev.event_id, "a speculative workflow task lost its reserved event ids"

    def take_pending_events(self) -> list[HistoryEvent]:
        events, self.pending_events = self.pending_events, []
        return events

    # -- the state builder -----------------------------------------------------------------------

    def apply(self, event: HistoryEvent) -> None:
        if self.version_history and self.version_history[-1][1] == event.version:
            self.version_history[-1] = (event.event_id, event.version)
        else:
            self.version_history.append((event.event_id, event.version))
        self.info.last_write_version = event.version
        handler = _APPLY.get(event.event_type)
        if handler is not None:
            handler(self, event)
        if event.event_type in CLOSE_EVENT_TYPES:
            self.info.state = ExecutionState.COMPLETED
            self.info.status = _CLOSE_STATUS[event.event_type]
            self.info.completion_event_id = event.event_id
            self.info.close_time = event.event_time

    @classmethod
    def rebuild(
        cls, namespace_id: str, workflow_id: str, run_id: str, events: list[HistoryEvent]
    ) -> MutableState:
        ms = cls(ExecutionInfo(namespace_id=namespace_id, workflow_id=workflow_id, run_id=run_id))
        for event in events:
            ms.next_event_id = event.event_id + 1
            ms.current_version = event.version
            ms.apply(event)
        return ms

    def _apply_started(self, e: HistoryEvent) -> None:
        a = e.attributes
        i = self.info
        i.workflow_type = a["workflow_type"]
        i.task_queue = a["task_queue"]
        i.workflow_execution_timeout_ms = a.get("workflow_execution_timeout_ms", 0)
        i.workflow_run_timeout_ms = a.get("workflow_run_timeout_ms", 0)
        i.workflow_task_timeout_ms = a.get("workflow_task_timeout_ms", 0) or 10_000
        i.start_time = e.event_time
        i.execution_time = e.event_time + a.get("first_workflow_task_backoff_ms", 0) * 1000
        i.state = ExecutionState.RUNNING
        i.status = ExecutionStatus.RUNNING
        i.create_request_id = a.get("request_id", "")
        i.first_execution_run_id = a.get("first_execution_run_id") or i.run_id
        i.attempt = a.get("attempt", 1) or 1
        i.retry_policy = a.get("retry_policy")
        i.cron_schedule = a.get("cron_schedule") or ""
        i.memo = dict(a.get("memo") or {})
        i.search_attributes = dict(a.get("search_attributes") or {})
        i.start_version = e.version
        i.workflow_execution_expiration_time = a.get("workflow_execution_expiration_time", 0) or 0
        parent = a.get("parent_workflow_execution")
        if parent:
            i.parent_namespace = a.get("parent_workflow_namespace") or ""
            i.parent_workflow_id = parent["workflow_id"]
            i.parent_run_id = parent["run_id"]
            i.parent_initiated_event_id = a.get("parent_initiated_event_id", 0)

    def _apply_wft_scheduled(self, e: HistoryEvent) -> None:
        a = e.attributes
        if not self.info.last_completed_workflow_task_event_id:
            # A first task scheduled before its backoff was due (the backoff timer fired early)
            # brings the execution time forward to when it was scheduled, as the timer's rule does.
            self.info.execution_time = min(self.info.execution_time, e.event_time)
        self.workflow_task = WorkflowTaskInfo(
            scheduled_event_id=e.event_id,
            attempt=a.get("attempt", 1),
            scheduled_time=e.event_time,
            timeout_ms=a.get("start_to_close_timeout_ms", 0),
            task_queue=a.get("task_queue", ""),
        )

    def _apply_wft_started(self, e: HistoryEvent) -> None:
        wt = self.workflow_task
        wt.started_written = True
        wt.started_event_id = e.event_id
        wt.started_time = e.event_time
        wt.request_id = e.attributes.get("request_id", "")
        wt.identity = e.attributes.get("identity", "")

    def _apply_wft_completed(self, e: HistoryEvent) -> None:
        self.workflow_task = WorkflowTaskInfo()
        self.info.last_completed_workflow_task_event_id = e.event_id
        self.clear_stickiness()  # the completing worker's request sets it again (workflow_tasks)

    def _apply_wft_failed_or_timed_out(self, e: HistoryEvent) -> None:
        self.clear_stickiness()
        if e.attributes.get("cause") == "RESET_WORKFLOW":
            self._apply_reset(e)
            return
        # The next attempt is transient, scheduled right away (its dispatch may wait for a backoff):
        # its events are written only once it completes, with the ids it gets when it starts.
        i = self.info
        self.workflow_task = WorkflowTaskInfo(
            scheduled_event_id=-1,  # workflow_tasks.TRANSIENT_SCHEDULED_ID
            attempt=self.workflow_task.attempt + 1,
            scheduled_time=e.event_time,
            timeout_ms=i.workflow_task_timeout_ms,
            task_queue=i.task_queue,
            transient=True,
        )

    def _apply_reset(self, e: HistoryEvent) -> None:
        """The first new event of a reset run (WorkflowTaskFailed, cause RESET_WORKFLOW): the reset
        schedules a fresh first workflow task itself, and every activity pending at the reset point
        starts over, scheduled at the reset, from its first attempt (the base run's attempts and
        schedule-to-close deadline do not carry over)."""
        self.workflow_task = WorkflowTaskInfo()
        for info in self.activities.values():
            info.attempt, info.started_time = 1, 0
            info.scheduled_time = info.first_scheduled_time = e.event_time

    def _apply_activity_scheduled(self, e: HistoryEvent) -> None:
        a = e.attributes
        info = ActivityInfo(
            scheduled_event_id=e.event_id,
            activity_id=a["activity_id"],
            activity_type=a["activity_type"],
            task_queue=a["task_queue"],
            input=a.get("input"),
            # The event's own dict, not a copy: 2,000 pending activities need not hold 2,000 more.
            header=a["header"] if a.get("header") is not None else {},
            schedule_to_close_timeout_ms=a.get("schedule_to_close_timeout_ms", 0),
            schedule_to_start_timeout_ms=a.get("schedule_to_start_timeout_ms", 0),
            start_to_close_timeout_ms=a.get("start_to_close_timeout_ms", 0),
            heartbeat_timeout_ms=a.get("heartbeat_timeout_ms", 0),
            retry_policy=a.get("retry_policy"),
            first_scheduled_time=e.event_time,
            scheduled_time=e.event_time,
        )
        self.activities[e.event_id] = info
        self.activity_ids[info.activity_id] = e.event_id

    def _apply_activity_started(self, e: HistoryEvent) -> None:
        info = self.activities.get(e.attributes["scheduled_event_id"])
        if info is not None:
            info.attempt = e.attributes.get("attempt", info.attempt)
            info.started_time = info.started_time or e.event_time

    def _apply_activity_closed(self, e: HistoryEvent) -> None:
        info = self.activities.pop(e.attributes["scheduled_event_id"], None)
        if info is not None:
            self.activity_ids.pop(info.activity_id, None)

    def _apply_activity_cancel_requested(self, e: HistoryEvent) -> None:
        info = self.activities.get(e.attributes["scheduled_event_id"])
        if info is not None:
            info.cancel_requested = True
            info.cancel_requested_event_id = e.event_id

    def _apply_timer_started(self, e: HistoryEvent) -> None:
        a = e.attributes
        self.timers[a["timer_id"]] = TimerInfo(
            timer_id=a["timer_id"],
            started_event_id=e.event_id,
            expiry_time=e.event_time + a["start_to_fire_timeout_ms"] * 1000,
        )

    def _apply_timer_closed(self, e: HistoryEvent) -> None:
        self.timers.pop(e.attributes["timer_id"], None)

    def _apply_cancel_requested(self, e: HistoryEvent) -> None:
        self.info.cancel_requested = True

    def _apply_signaled(self, e: HistoryEvent) -> None:
        self.info.signal_count += 1

    def _apply_update_accepted(self, e: HistoryEvent) -> None:
        self.updates[e.attributes["update_id"]] = [e.event_id, EMPTY_EVENT_ID]

    def _apply_update_completed(self, e: HistoryEvent) -> None:
        entry = self.updates.setdefault(e.attributes["update_id"], [e.attributes["accepted_event_id"], 0])
        entry[1] = e.event_id

    def _apply_upsert(self, e: HistoryEvent) -> None:
        for name, payload in (e.attributes.get("search_attributes") or {}).items():
            if payload.get("data") == b"null":
                self.info.search_attributes.pop(name, None)  # unset (JSON null)
            else:
                self.info.search_attributes[name] = payload

    def _apply_child_initiated(self, e: HistoryEvent) -> None:
        a = e.attributes
        self.children[e.event_id] = ChildInfo(
            e.event_id,
            a["namespace"],
            a["workflow_id"],
            a["workflow_type"],
            a.get("parent_close_policy") or "TERMINATE",
        )

    def _apply_child_started(self, e: HistoryEvent) -> None:
        child = self.children.get(e.attributes["initiated_event_id"])
        if child is not None:
            child.run_id = (e.attributes.get("workflow_execution") or {}).get("run_id", "")
            child.started_event_id = e.event_id

    def _apply_child_closed(self, e: HistoryEvent) -> None:
        self.children.pop(e.attributes["initiated_event_id"], None)

    def _apply_external_initiated(self, e: HistoryEvent) -> None:
        a = e.attributes
        target = a.get("workflow_execution") or {}
        kind = (
            "signal" if e.event_type == EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED else "cancel"
        )
        self.external_requests[e.event_id] = ExternalRequest(
            e.event_id, a.get("namespace", ""), target.get("workflow_id", ""), target.get("run_id", ""), kind
        )

    def _apply_external_resolved(self, e: HistoryEvent) -> None:
        self.external_requests.pop(e.attributes["initiated_event_id"], None)


_APPLY = {
    EventType.WORKFLOW_EXECUTION_STARTED: MutableState._apply_started,
    EventType.WORKFLOW_TASK_SCHEDULED: MutableState._apply_wft_scheduled,
    EventType.WORKFLOW_TASK_STARTED: MutableState._apply_wft_started,
    EventType.WORKFLOW_TASK_COMPLETED: MutableState._apply_wft_completed,
    EventType.WORKFLOW_TASK_FAILED: MutableState._apply_wft_failed_or_timed_out,
    EventType.WORKFLOW_TASK_TIMED_OUT: MutableState._apply_wft_failed_or_timed_out,
    EventType.ACTIVITY_TASK_SCHEDULED: MutableState._apply_activity_scheduled,
    EventType.ACTIVITY_TASK_STARTED: MutableState._apply_activity_started,
    EventType.ACTIVITY_TASK_COMPLETED: MutableState._apply_activity_closed,
    EventType.ACTIVITY_TASK_FAILED: MutableState._apply_activity_closed,
    EventType.ACTIVITY_TASK_TIMED_OUT: MutableState._apply_activity_closed,
    EventType.ACTIVITY_TASK_CANCELED: MutableState._apply_activity_closed,
    EventType.ACTIVITY_TASK_CANCEL_REQUESTED: MutableState._apply_activity_cancel_requested,
    EventType.TIMER_STARTED: MutableState._apply_timer_started,
    EventType.TIMER_FIRED: MutableState._apply_timer_closed,
    EventType.TIMER_CANCELED: MutableState._apply_timer_closed,
    EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED: MutableState._apply_cancel_requested,
    EventType.WORKFLOW_EXECUTION_SIGNALED: MutableState._apply_signaled,
    EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: MutableState._apply_upsert,
    EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED: MutableState._apply_update_accepted,
    EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED: MutableState._apply_update_completed,
    EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED: MutableState._apply_child_initiated,
    EventType.START_CHILD_WORKFLOW_EXECUTION_FAILED: MutableState._apply_child_closed,
    EventType.CHILD_WORKFLOW_EXECUTION_STARTED: MutableState._apply_child_started,
    EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED: MutableState._apply_child_closed,
    EventType.CHILD_WORKFLOW_EXECUTION_FAILED: MutableState._apply_child_closed,
    EventType.CHILD_WORKFLOW_EXECUTION_CANCELED: MutableState._apply_child_closed,
    EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT: MutableState._apply_child_closed,
    EventType.CHILD_WORKFLOW_EXECUTION_TERMINATED: MutableState._apply_child_closed,
    EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: MutableState._apply_external_initiated,
    EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED: MutableState._apply_external_resolved,
    EventType.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED: MutableState._apply_external_resolved,
    EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: MutableState._apply_external_initiated,
    EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED: MutableState._apply_external_resolved,
    EventType.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED: MutableState._apply_external_resolved,
}

_CLOSE_STATUS = {
    EventType.WORKFLOW_EXECUTION_COMPLETED: ExecutionStatus.COMPLETED,
    EventType.WORKFLOW_EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: ExecutionStatus.TIMED_OUT,
    EventType.WORKFLOW_EXECUTION_CANCELED: ExecutionStatus.CANCELED,
    EventType.WORKFLOW_EXECUTION_TERMINATED: ExecutionStatus.TERMINATED,
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: ExecutionStatus.CONTINUED_AS_NEW,
}


# -- snapshot encoding ---------------------------------------------------------------------------
#
# The snapshot is pickled as PLAIN builtins only (dict, list, tuple, str, int, bytes, bool, None): no
# class references, so renaming a class never breaks stored data, and the restricted unpickler below
# refuses anything else, so a tampered row cannot run code. It is several times faster than JSON for
# the bytes-heavy payloads that activities carry.

STATE_ENCODING = "pickle-plain/1"


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"mutable state may hold plain values only, not {module}.{name}")


def decode_plain_values(data: bytes) -> Any:
    """Unpickles plain values only (what ``encode_state`` writes); ``pickle.UnpicklingError``
    for anything that names a class."""
    return _PlainUnpickler(io.BytesIO(data)).load()


def _slots(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def encode_state(ms: MutableState) -> bytes:
    info = _slots(ms.info)
    info["state"] = int(ms.info.state)
    info["status"] = int(ms.info.status)
    doc = {
        "info": info,
        "next_event_id": ms.next_event_id,
        "db_version": ms.db_version,
        "activities": [_slots(a) for a in ms.activities.values()],
        "timers": [_slots(t) for t in ms.timers.values()],
        "workflow_task": _slots(ms.workflow_task),
        "signal_request_ids": list(ms.signal_request_ids),
        "updates": ms.updates,
        "children": [_slots(c) for c in ms.children.values()],
        "external": [_slots(x) for x in ms.external_requests.values()],
        "buffered": [(e.event_time, int(e.event_type), e.version, e.attributes) for e in ms.buffered_events],
        "version_history": ms.version_history,
        "current_version": ms.current_version,
        "branches": [(b, [tuple(x) for x in items]) for b, items in ms.branches],
    }
    return pickle.dumps(doc, protocol=5)


def decode_state(data: bytes) -> MutableState:
    doc = _PlainUnpickler(io.BytesIO(data)).load()
    info = doc["info"]
    info["state"] = ExecutionState(info["state"])
    info["status"] = ExecutionStatus(info["status"])
    ms = MutableState(ExecutionInfo(**info))
    ms.next_event_id = doc["next_event_id"]
    ms.db_version = doc["db_version"]
    for a in doc["activities"]:
        act = ActivityInfo(**a)
        ms.activities[act.scheduled_event_id] = act
        ms.activity_ids[act.activity_id] = act.scheduled_event_id
    for t in doc["timers"]:
        ms.timers[t["timer_id"]] = TimerInfo(**t)
    ms.workflow_task = WorkflowTaskInfo(**doc["workflow_task"])
    ms.signal_request_ids = set(doc["signal_request_ids"])
    ms.updates = {k: list(v) for k, v in doc.get("updates", {}).items()}
    for c in doc.get("children", ()):
        ms.children[c["initiated_event_id"]] = ChildInfo(**c)
    for x in doc.get("external", ()):
        ms.external_requests[x["initiated_event_id"]] = ExternalRequest(**x)
    ms.buffered_events = [
        HistoryEvent(0, t, EventType(et), v, 0, attrs) for (t, et, v, attrs) in doc["buffered"]
    ]
    ms.version_history = [tuple(x) for x in doc["version_history"]]  # type: ignore[misc]
    ms.current_version = doc["current_version"]
    ms.branches = [(b, [tuple(x) for x in items]) for b, items in doc.get("branches", ())]  # type: ignore[misc]
    return ms
