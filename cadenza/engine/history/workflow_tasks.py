"""Workflow-task rules: start an attempt, turn its commands into events, fail or time it out.

Transient attempts: after an attempt failed or timed out, the following attempts are kept only in
mutable state (their Scheduled/Started events are handed to the worker but not written) until one
completes; then its two events are written before WorkflowTaskCompleted. A workflow whose code keeps
failing therefore retries forever without growing its history, as in the anchors.
"""

from __future__ import annotations

import json
from typing import Any

from cadenza.engine.errors import InvalidArgumentError, TaskNotFoundError
from cadenza.engine.history import chaining, children, limits, updates
from cadenza.engine.history.mutable_state import EMPTY_EVENT_ID, MutableState, WorkflowTaskInfo
from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.engine.history.tasks import TimeoutType, TimerKind, TransferKind, VisibilityKind
from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent

TRANSIENT_SCHEDULED_ID = -1
"""Matching carries this for a transient attempt: its event ids are assigned when it starts."""
DEFAULT_STICKY_SCHEDULE_TO_START_MS = 5_000
"""How long a task waits on a worker's sticky queue before it goes to the normal one (the anchors'
default)."""


def encode_token(
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    scheduled_id: int,
    attempt: int,
    started_id: int = 0,
    request_id: str = "",
) -> bytes:
    """A task token. A workflow task's names the start (``request_id``) it belongs to: a start
    lost with the state it lived in can be made again with the same event ids, and the answer to
    the lost one (computed from history that may never have been written) must not complete it."""
    fields: list[Any] = [namespace_id, workflow_id, run_id, scheduled_id, attempt, started_id]
    if request_id:
        fields.append(request_id)
    return json.dumps(fields).encode()


_INT64 = range(-(2**63), 2**63)


def decode_workflow_token(token: bytes) -> tuple[str, str, str, int, int, int, str]:
    """The fields of a workflow or activity task token; ``InvalidArgumentError`` naming the problem
    for anything else (tokens come from workers, so from anyone who can call the frontend)."""
    try:
        ns, wid, rid, sid, attempt, started, *rest = json.loads(token)
        request_id = str(rest[0]) if rest else ""
        # int() of a float truncates and of inf overflows: ids and attempts are whole JSON numbers.
        numbers = (sid, attempt, started)
        if not all(type(n) is int for n in numbers):
            raise ValueError(f"event ids and attempt must be integers, got {numbers!r}")
        if not all(n in _INT64 for n in numbers):
            raise ValueError("event ids and attempt must fit in 64 bits")
        return str(ns), str(wid), str(rid), sid, attempt, started, request_id
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"task_token is malformed: {e}") from None
    except RecursionError:
        raise InvalidArgumentError("task_token is malformed: JSON nested too deeply") from None


def decode_token(token: bytes) -> tuple[str, str, str, int, int, int]:
    return decode_workflow_token(token)[:6]  # type: ignore[return-value]


# -- start ---------------------------------------------------------------------------------------


def record_started(
    m: Mutation, scheduled_id: int, attempt: int, request_id: str, identity: str
) -> tuple[int, int, list[HistoryEvent]]:
    """Starts the attempt speculatively; returns (scheduled id, started id, the unwritten events
    the worker needs after the written history: a held change's, then the attempt's own).

    Nothing is written: the start reserves its event ids (later events are buffered meanwhile) and
    its Started event is written with the task's outcome, saving a write per workflow task. The
    transfer task that offered it stays unacknowledged until then, so a crash offers it again."""
    ms = m.ms
    wt = ms.workflow_task
    if not ms.is_running or wt.scheduled_event_id != scheduled_id or wt.attempt != attempt:
        if ms.is_running and wt.started_event_id and wt.request_id == request_id and wt.attempt == attempt:
            m.noop = True  # the same poll retried: answer as before
            return wt.scheduled_event_id, wt.started_event_id, ms.unwritten_events()
        raise TaskNotFoundError("workflow task is no longer pending")
    if wt.started_event_id != EMPTY_EVENT_ID:
        if wt.request_id == request_id:
            m.noop = True
            return wt.scheduled_event_id, wt.started_event_id, ms.unwritten_events()
        raise TaskNotFoundError("workflow task already started by another poll")
    if wt.transient:
        wt.scheduled_event_id = ms.next_event_id
    wt.started_event_id = wt.scheduled_event_id + 1 if wt.transient else ms.next_event_id
    wt.started_time = m.now
    wt.request_id = request_id
    wt.identity = identity
    wt.started_written = False
    m.speculative = True
    m.timer(
        TimerKind.WORKFLOW_TASK_TIMEOUT,
        m.now + wt.timeout_ms * 1000,
        s=wt.scheduled_event_id,
        a=wt.attempt,
        t=str(TimeoutType.START_TO_CLOSE),
        r=request_id,
    )
    return wt.scheduled_event_id, wt.started_event_id, ms.unwritten_events()


def _check_token(
    ms: MutableState, scheduled_id: int, attempt: int, started_id: int, request_id: str = ""
) -> WorkflowTaskInfo:
    wt = ms.workflow_task
    if (
        not ms.is_running
        or wt.scheduled_event_id != scheduled_id
        or wt.attempt != attempt
        or wt.started_event_id == EMPTY_EVENT_ID
        or (started_id and wt.started_event_id != started_id)
        or (request_id and wt.request_id != request_id)
    ):
        raise TaskNotFoundError(
            "workflow task not found: it timed out, was retried, or the run closed "
            f"(scheduled_event_id={scheduled_id}, attempt={attempt})"
        )
    return wt


# -- complete ------------------------------------------------------------------------------------


class BadCommandError(InvalidArgumentError):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message, cause=cause)
        self.cause = cause


def complete(
    m: Mutation,
    scheduled_id: int,
    attempt: int,
    started_id: int,
    commands: list[Command],
    identity: str,
    *,
    request_id: str = "",
    sticky_task_queue: str = "",
    sticky_schedule_to_start_timeout_ms: int = 0,
) -> None:
    """Completes the task with ``commands``. ``sticky_task_queue``: the worker keeps the run cached
    and polls that queue; the run's next workflow tasks go there (sticky execution)."""
    ms = m.ms
    wt = _check_token(ms, scheduled_id, attempt, started_id, request_id)
    if sticky_schedule_to_start_timeout_ms < 0:
        raise InvalidArgumentError(
            "sticky schedule_to_start_timeout must not be negative "
            f"(got {sticky_schedule_to_start_timeout_ms} ms)"
        )
    # Validate every command before writing anything: a bad one fails the task as a whole.
    _validate_commands(ms, commands)
    rejections = [
        (c.attributes.get("update_id") or "", c.attributes.get("failure"))
        for c in commands
        if c.command_type == CommandType.REJECT_WORKFLOW_UPDATE
    ]
    if (
        rejections
        and len(rejections) == len(commands)
        and updates.drop_rejected_task(m, rejections, keep_sticky=bool(sticky_task_queue))
    ):
        return  # a speculative task that only rejected updates: history stays as it was
    closes = [c for c in commands if c.command_type in _CLOSE_COMMANDS]
    if (
        closes
        and closes[0].command_type == CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION
        and ms.buffered_events
        and all(e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED for e in ms.buffered_events)
    ):
        # Signals that arrived while the task ran go to the new run instead: the code has not seen
        # them, and failing the task to deliver them would never let a workflow under a steady
        # stream of signals continue as new.
        m.carried_signals, ms.buffered_events = ms.buffered_events, []
    if closes and ms.buffered_events:
        # New events arrived while the task ran; the code has not seen them, so it may not close
        # yet. Fail the task (the anchors' UnhandledCommand) and let a new one deliver them.
        fail(
            m,
            scheduled_id,
            attempt,
            started_id,
            "UNHANDLED_COMMAND",
            {
                "message": "new events arrived while the workflow task ran; retrying with them",
                "failure_type": "ServerFailure",
            },
            identity,
            reschedule_now=True,
        )
        return
    m.ms.write_workflow_task_start()
    completed = ms.add_event(
        EventType.WORKFLOW_TASK_COMPLETED,
        m.now,
        {
            "scheduled_event_id": wt.scheduled_event_id,
            "started_event_id": wt.started_event_id,
            "identity": identity,
            "binary_checksum": "",
        },
    )
    if sticky_task_queue:  # after the event: applying WorkflowTaskCompleted clears stickiness
        ms.info.sticky_task_queue = sticky_task_queue
        ms.info.sticky_schedule_to_start_timeout_ms = (
            sticky_schedule_to_start_timeout_ms or DEFAULT_STICKY_SCHEDULE_TO_START_MS
        )
    for cmd in commands:
        if not ms.is_running:
            break
        _HANDLERS[cmd.command_type](m, cmd.attributes, completed.event_id)
    if ms.is_running:
        if ms.flush_buffered_events():
            m.schedule_workflow_task()


def _check_pending_limits(ms: MutableState, commands: list[Command]) -> None:
    counts = {t: 0 for t in _PENDING_LIMITS}
    for cmd in commands:
        if cmd.command_type in counts:
            counts[cmd.command_type] += 1
    pending = {
        CommandType.SCHEDULE_ACTIVITY_TASK: len(ms.activities),
        CommandType.START_CHILD_WORKFLOW_EXECUTION: len(ms.children),
        CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: sum(
            1 for r in ms.external_requests.values() if r.kind == "signal"
        ),
    }
    for command_type, (limit_name, what) in _PENDING_LIMITS.items():
        limit = getattr(limits, limit_name)
        total = pending[command_type] + counts[command_type]
        if counts[command_type] and total > limit:
            raise BadCommandError(
                "PENDING_LIMIT_EXCEEDED",
                f"{command_type.name}: the run would have {total} pending {what}, over the limit of {limit}",
            )


_PENDING_LIMITS = {
    CommandType.SCHEDULE_ACTIVITY_TASK: ("MAX_PENDING_ACTIVITIES", "activities"),
    CommandType.START_CHILD_WORKFLOW_EXECUTION: ("MAX_PENDING_CHILDREN", "child workflows"),
    CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: (
        "MAX_PENDING_EXTERNAL_SIGNALS",
        "signals to other workflows",
    ),
}


def _validate_commands(ms: MutableState, commands: list[Command]) -> None:
    _check_pending_limits(ms, commands)
    timer_ids = set(ms.timers)
    activity_ids = set(ms.activity_ids)
    for i, cmd in enumerate(commands):
        a = cmd.attributes
        where = f"command {i} ({cmd.command_type.name})"
        if cmd.command_type in _CLOSE_COMMANDS and i != len(commands) - 1:
            raise BadCommandError(
                "BAD_COMMAND_ORDER", f"{where} closes the workflow but is not the last command"
            )
        if cmd.command_type == CommandType.SCHEDULE_ACTIVITY_TASK:
            if not a.get("activity_type"):
                raise BadCommandError(
                    "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES", f"{where}: activity_type is required"
                )
            for f in (
                "schedule_to_close_timeout_ms",
                "schedule_to_start_timeout_ms",
                "start_to_close_timeout_ms",
                "heartbeat_timeout_ms",
            ):
                if (a.get(f) or 0) < 0:
                    raise BadCommandError(
                        "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES",
                        f"{where}: {f} must not be negative (got {a[f]} ms)",
                    )
            if not (a.get("schedule_to_close_timeout_ms") or a.get("start_to_close_timeout_ms")):
                raise BadCommandError(
                    "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES",
                    f"{where}: one of schedule_to_close_timeout and start_to_close_timeout is required",
                )
            aid = a.get("activity_id")
            if aid and aid in activity_ids:
                raise BadCommandError(
                    "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES",
                    f"{where}: activity_id {aid!r} is already in use by a pending activity",
                )
            if aid:
                activity_ids.add(aid)
            _payload_check(where, "input", a.get("input"))
        elif cmd.command_type == CommandType.START_TIMER:
            tid = a.get("timer_id")
            if not tid or tid in timer_ids:
                raise BadCommandError(
                    "BAD_START_TIMER_ATTRIBUTES", f"{where}: timer_id {tid!r} is missing or in use"
                )
            if (a.get("start_to_fire_timeout_ms") or 0) <= 0:
                raise BadCommandError(
                    "BAD_START_TIMER_ATTRIBUTES", f"{where}: start_to_fire_timeout must be positive"
                )
            timer_ids.add(tid)
        elif cmd.command_type == CommandType.CANCEL_TIMER:
            if a.get("timer_id") not in timer_ids:
                raise BadCommandError(
                    "BAD_CANCEL_TIMER_ATTRIBUTES", f"{where}: no pending timer {a.get('timer_id')!r}"
                )
            timer_ids.discard(a["timer_id"])
        elif cmd.command_type == CommandType.REQUEST_CANCEL_ACTIVITY_TASK:
            if a.get("scheduled_event_id") not in ms.activities and not _scheduled_in_batch(a, commands):
                raise BadCommandError(
                    "BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES",
                    f"{where}: no pending activity {a.get('scheduled_event_id')}",
                )
        elif cmd.command_type in (CommandType.COMPLETE_WORKFLOW_EXECUTION,):
            _payload_check(where, "result", a.get("result"))
        elif cmd.command_type in _UPDATE_COMMANDS:
            problem = updates.validate_command(where, a)
            if problem:
                raise BadCommandError("BAD_UPDATE_ATTRIBUTES", problem)
        elif cmd.command_type not in _HANDLERS:
            raise BadCommandError("UNSUPPORTED_COMMAND", f"{where} is not supported by this server yet")


def _scheduled_in_batch(a: dict[str, Any], commands: list[Command]) -> bool:
    return False


def _payload_check(where: str, field: str, payloads: list[dict[str, Any]] | None) -> None:
    size = limits.payloads_size(payloads)
    if size > limits.BLOB_SIZE_LIMIT:
        raise BadCommandError(
            "BAD_PAYLOAD_SIZE",
            f"{where}: {field} is {size} bytes, over the blob size limit of {limits.BLOB_SIZE_LIMIT} bytes",
        )


def _schedule_activity(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    s2c = a.get("schedule_to_close_timeout_ms") or 0
    stc = a.get("start_to_close_timeout_ms") or s2c
    s2s = a.get("schedule_to_start_timeout_ms") or 0
    if s2c and s2s > s2c:
        s2s = s2c
    ev = ms.add_event(
        EventType.ACTIVITY_TASK_SCHEDULED,
        m.now,
        {
            "activity_id": a.get("activity_id") or "",
            "activity_type": a["activity_type"],
            "task_queue": a.get("task_queue") or ms.info.task_queue,
            "header": a.get("header") or {},
            "input": a.get("input"),
            "schedule_to_close_timeout_ms": s2c,
            "schedule_to_start_timeout_ms": s2s,
            "start_to_close_timeout_ms": stc,
            "heartbeat_timeout_ms": a.get("heartbeat_timeout_ms") or 0,
            "workflow_task_completed_event_id": completed_id,
            "retry_policy": a.get("retry_policy"),
        },
    )
    if not ev.attributes["activity_id"]:
        # The anchors require an id; default to the scheduled event id, unique within the run.
        ev.attributes["activity_id"] = str(ev.event_id)
        info = ms.activities[ev.event_id]
        info.activity_id = str(ev.event_id)
        ms.activity_ids[info.activity_id] = ev.event_id
    m.transfer(TransferKind.ACTIVITY_TASK, s=ev.event_id, a=1, q=ev.attributes["task_queue"])
    if s2s:
        m.timer(
            TimerKind.ACTIVITY_TIMEOUT,
            m.now + s2s * 1000,
            s=ev.event_id,
            a=1,
            t=str(TimeoutType.SCHEDULE_TO_START),
        )
    if s2c:
        m.timer(
            TimerKind.ACTIVITY_TIMEOUT,
            m.now + s2c * 1000,
            s=ev.event_id,
            a=0,
            t=str(TimeoutType.SCHEDULE_TO_CLOSE),
        )


def _request_cancel_activity(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    sid = a["scheduled_event_id"]
    info = ms.activities.get(sid)
    if info is None:
        return
    req = ms.add_event(
        EventType.ACTIVITY_TASK_CANCEL_REQUESTED,
        m.now,
        {"scheduled_event_id": sid, "workflow_task_completed_event_id": completed_id},
    )
    if not info.started_time and not info.result_buffered:
        # Never handed to a worker: cancelled at once, as the anchors do.
        ms.add_event(
            EventType.ACTIVITY_TASK_CANCELED,
            m.now,
            {
                "details": None,
                "latest_cancel_requested_event_id": req.event_id,
                "scheduled_event_id": sid,
                "started_event_id": 0,
                "identity": "",
            },
        )


def _start_timer(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ev = m.ms.add_event(
        EventType.TIMER_STARTED,
        m.now,
        {
            "timer_id": a["timer_id"],
            "start_to_fire_timeout_ms": a["start_to_fire_timeout_ms"],
            "workflow_task_completed_event_id": completed_id,
        },
    )
    m.timer(
        TimerKind.USER_TIMER, m.now + a["start_to_fire_timeout_ms"] * 1000, id=a["timer_id"], e=ev.event_id
    )


def _cancel_timer(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    timer = ms.timers.get(a["timer_id"])
    if timer is None:
        return
    if timer.fired_buffered:
        # It fired while this task ran; the code cancelled it without seeing that, so the fire
        # never happened as far as the workflow is concerned.
        ms.buffered_events = [
            e
            for e in ms.buffered_events
            if not (e.event_type == EventType.TIMER_FIRED and e.attributes.get("timer_id") == timer.timer_id)
        ]
    ms.add_event(
        EventType.TIMER_CANCELED,
        m.now,
        {
            "timer_id": timer.timer_id,
            "started_event_id": timer.started_event_id,
            "workflow_task_completed_event_id": completed_id,
            "identity": "",
        },
    )


def _complete_workflow(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    chaining.complete_with_result(m, a.get("result"), completed_id)


def _fail_workflow(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    chaining.fail_or_retry(m, a.get("failure") or {}, completed_id)


def _continue_as_new(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    chaining.continue_as_new(m, a, completed_id)


def _cancel_workflow(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    close_run(
        m,
        EventType.WORKFLOW_EXECUTION_CANCELED,
        {"workflow_task_completed_event_id": completed_id, "details": a.get("details")},
    )


def _record_marker(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    m.ms.add_event(
        EventType.MARKER_RECORDED,
        m.now,
        {
            "marker_name": a.get("marker_name", ""),
            "details": a.get("details") or {},
            "workflow_task_completed_event_id": completed_id,
            "header": a.get("header") or {},
            "failure": a.get("failure"),
        },
    )


def _upsert_search_attributes(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    m.visibility(VisibilityKind.UPSERT)
    m.ms.add_event(
        EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        m.now,
        {
            "workflow_task_completed_event_id": completed_id,
            "search_attributes": a.get("search_attributes") or {},
        },
    )


_HANDLERS = {
    CommandType.SCHEDULE_ACTIVITY_TASK: _schedule_activity,
    CommandType.REQUEST_CANCEL_ACTIVITY_TASK: _request_cancel_activity,
    CommandType.START_TIMER: _start_timer,
    CommandType.CANCEL_TIMER: _cancel_timer,
    CommandType.COMPLETE_WORKFLOW_EXECUTION: _complete_workflow,
    CommandType.FAIL_WORKFLOW_EXECUTION: _fail_workflow,
    CommandType.CANCEL_WORKFLOW_EXECUTION: _cancel_workflow,
    CommandType.RECORD_MARKER: _record_marker,
    CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: _upsert_search_attributes,
    CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION: _continue_as_new,
    CommandType.START_CHILD_WORKFLOW_EXECUTION: children.start_child,
    CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: children.signal_external,
    CommandType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: children.cancel_external,
    CommandType.ACCEPT_WORKFLOW_UPDATE: updates.accept,
    CommandType.COMPLETE_WORKFLOW_UPDATE: updates.complete,
    CommandType.REJECT_WORKFLOW_UPDATE: updates.reject,
}
_UPDATE_COMMANDS = frozenset(
    {
        CommandType.ACCEPT_WORKFLOW_UPDATE,
        CommandType.COMPLETE_WORKFLOW_UPDATE,
        CommandType.REJECT_WORKFLOW_UPDATE,
    }
)

_CLOSE_COMMANDS = frozenset(
    {
        CommandType.COMPLETE_WORKFLOW_EXECUTION,
        CommandType.FAIL_WORKFLOW_EXECUTION,
        CommandType.CANCEL_WORKFLOW_EXECUTION,
        CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
    }
)


# -- fail and time out ---------------------------------------------------------------------------


def fail(
    m: Mutation,
    scheduled_id: int,
    attempt: int,
    started_id: int,
    cause: str,
    failure: dict[str, Any] | None,
    identity: str,
    *,
    reschedule_now: bool = False,
    request_id: str = "",
) -> None:
    ms = m.ms
    wt = _check_token(ms, scheduled_id, attempt, started_id, request_id)
    ms.clear_stickiness()  # the next attempt replays in full on the normal queue
    if wt.transient and not ms.buffered_events:
        next_attempt = wt.attempt + 1
    else:
        m.ms.write_workflow_task_start()
        ms.add_event(
            EventType.WORKFLOW_TASK_FAILED,
            m.now,
            {
                "scheduled_event_id": wt.scheduled_event_id,
                "started_event_id": wt.started_event_id,
                "cause": cause,
                "failure": failure,
                "identity": identity,
                "binary_checksum": "",
            },
        )
        next_attempt = ms.workflow_task.attempt
        ms.flush_buffered_events()
    schedule_transient(m, next_attempt, immediately=reschedule_now)


def timed_out(m: Mutation, scheduled_id: int, attempt: int, request_id: str = "") -> None:
    """The start-to-close timeout of the attempt started by ``request_id`` passed. A start can be
    lost (its state dropped after a failed write) and the same attempt started again by another
    poll: the first start's timer, due earlier, must not time out the second. A timer made
    without a request id (from state alone, ``task_refresher``) times out whichever start there is."""
    ms = m.ms
    wt = ms.workflow_task
    if (
        not ms.is_running
        or wt.scheduled_event_id != scheduled_id
        or wt.attempt != attempt
        or not wt.started_event_id
        or (request_id and wt.request_id != request_id)
    ):
        m.noop = True
        return
    ms.clear_stickiness()
    if wt.transient and not ms.buffered_events:
        next_attempt = wt.attempt + 1
    else:
        m.ms.write_workflow_task_start()
        ms.add_event(
            EventType.WORKFLOW_TASK_TIMED_OUT,
            m.now,
            {
                "scheduled_event_id": wt.scheduled_event_id,
                "started_event_id": wt.started_event_id,
                "timeout_type": str(TimeoutType.START_TO_CLOSE),
            },
        )
        next_attempt = ms.workflow_task.attempt
        ms.flush_buffered_events()
    schedule_transient(m, next_attempt, immediately=True)


def reset_stickiness(m: Mutation, queue: str = "") -> str:
    """The worker that had the run cached no longer has it (it evicted the run, shut down, or did
    not take a task from its sticky queue in time): later tasks go to the normal queue. With
    ``queue``, only if that is still the run's sticky queue. Changes memory only; the run's next
    write carries it. Returns the sticky queue that was cleared ("" if none)."""
    ms = m.ms
    sticky = ms.info.sticky_task_queue
    if not sticky or not ms.is_running or (queue and sticky != queue):
        m.noop = True
        return ""
    ms.clear_stickiness()
    m.speculative = True
    return sticky


def schedule_transient(m: Mutation, attempt: int, *, immediately: bool) -> None:
    ms = m.ms
    ms.workflow_task = WorkflowTaskInfo(
        scheduled_event_id=TRANSIENT_SCHEDULED_ID,
        attempt=attempt,
        scheduled_time=m.now,
        timeout_ms=ms.info.workflow_task_timeout_ms,
        task_queue=ms.info.task_queue,
        transient=True,
    )
    # Back off a failing task: immediately at first (a bug fixed by a deploy, a poison event),
    # then exponentially up to 10 s, so a broken workflow does not spin the server.
    delay_ms = 0 if immediately or attempt <= 2 else min(100 * 2 ** (attempt - 3), 10_000)
    if delay_ms:
        m.timer(TimerKind.WORKFLOW_TASK_RETRY, m.now + delay_ms * 1000, s=TRANSIENT_SCHEDULED_ID, a=attempt)
    else:
        m.transfer(TransferKind.WORKFLOW_TASK, s=TRANSIENT_SCHEDULED_ID, a=attempt, q=ms.info.task_queue)
