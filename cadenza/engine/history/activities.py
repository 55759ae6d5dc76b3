"""Activity rules: start an attempt, heartbeat, complete, fail, cancel, retry and time out.

An attempt's ActivityTaskStarted event is written only when the activity finally ends (with the last
attempt number and failure), as the anchors do: retries live in mutable state and cost no history.
The four timeouts: schedule-to-start (waited too long in the queue; not retried), start-to-close (one
attempt ran too long; retried), heartbeat (the worker went quiet; retried, resuming from the last
heartbeat details) and schedule-to-close (the whole activity, across attempts; final).
"""

from __future__ import annotations

from typing import Any

from cadenza.engine.errors import TaskNotFoundError
from cadenza.engine.history.mutable_state import ActivityInfo
from cadenza.engine.history.mutation import Mutation
from cadenza.engine.history.tasks import TimeoutType, TimerKind
from cadenza.schemas.events import EventType

DEFAULT_INITIAL_INTERVAL_MS = 1000
DEFAULT_BACKOFF = 2.0


def _pending(m: Mutation, scheduled_id: int, attempt: int) -> ActivityInfo:
    ms = m.ms
    info = ms.activities.get(scheduled_id)
    if not ms.is_running or info is None or info.attempt != attempt or info.result_buffered:
        raise TaskNotFoundError(
            f"activity task not found: it completed, timed out or was retried "
            f"(scheduled_event_id={scheduled_id}, attempt={attempt})"
        )
    return info


def record_started(
    m: Mutation, scheduled_id: int, attempt: int, request_id: str, identity: str
) -> ActivityInfo:
    info = _pending(m, scheduled_id, attempt)
    if info.started_time:
        if info.request_id == request_id:
            m.noop = True
            return info
        raise TaskNotFoundError("activity task already started by another poll")
    if info.cancel_requested:
        raise TaskNotFoundError("activity was cancelled before it started")
    info.started_time = m.now
    info.request_id = request_id
    info.started_identity = identity
    info.last_heartbeat_time = 0
    m.speculative = True  # written with the outcome, or by the run's next write
    if info.start_to_close_timeout_ms:
        m.timer(
            TimerKind.ACTIVITY_TIMEOUT,
            m.now + info.start_to_close_timeout_ms * 1000,
            s=scheduled_id,
            a=attempt,
            t=str(TimeoutType.START_TO_CLOSE),
        )
    if info.heartbeat_timeout_ms:
        m.timer(
            TimerKind.ACTIVITY_TIMEOUT,
            m.now + info.heartbeat_timeout_ms * 1000,
            s=scheduled_id,
            a=attempt,
            t=str(TimeoutType.HEARTBEAT),
        )
    return info


def _started(m: Mutation, scheduled_id: int, attempt: int) -> ActivityInfo:
    info = _pending(m, scheduled_id, attempt)
    if not info.started_time:
        raise TaskNotFoundError(f"activity task {scheduled_id} attempt {attempt} is not started")
    return info


def heartbeat(m: Mutation, scheduled_id: int, attempt: int, details: list[dict[str, Any]] | None) -> bool:
    info = _started(m, scheduled_id, attempt)
    info.last_heartbeat_time = m.now
    info.heartbeat_details = details
    m.sync_activity(scheduled_id)
    return info.cancel_requested


def _record_outcome(m: Mutation, info: ActivityInfo, event_type: EventType, attrs: dict[str, Any]) -> None:
    """Writes (or buffers) Started + the outcome, then makes sure the workflow gets to see it."""
    ms = m.ms
    started_attrs = {
        "scheduled_event_id": info.scheduled_event_id,
        "identity": info.started_identity,
        "request_id": info.request_id,
        "attempt": info.attempt,
        "last_failure": info.last_failure,
    }
    attrs = {"scheduled_event_id": info.scheduled_event_id, "started_event_id": 0, **attrs}
    if ms.has_started_workflow_task:
        info.result_buffered = True
        if info.started_time:
            ms.buffer_event(EventType.ACTIVITY_TASK_STARTED, m.now, started_attrs)
        ms.buffer_event(event_type, m.now, attrs)
    else:
        if info.started_time:
            attrs["started_event_id"] = ms.add_event(
                EventType.ACTIVITY_TASK_STARTED, m.now, started_attrs
            ).event_id
        ms.add_event(event_type, m.now, attrs)
        m.schedule_workflow_task()


def completed(
    m: Mutation, scheduled_id: int, attempt: int, result: list[dict[str, Any]] | None, identity: str
) -> None:
    info = _started(m, scheduled_id, attempt)
    _record_outcome(m, info, EventType.ACTIVITY_TASK_COMPLETED, {"result": result, "identity": identity})


def canceled(
    m: Mutation, scheduled_id: int, attempt: int, details: list[dict[str, Any]] | None, identity: str
) -> None:
    info = _started(m, scheduled_id, attempt)
    _record_outcome(
        m,
        info,
        EventType.ACTIVITY_TASK_CANCELED,
        {
            "details": details,
            "latest_cancel_requested_event_id": info.cancel_requested_event_id,
            "identity": identity,
        },
    )


def failed(m: Mutation, scheduled_id: int, attempt: int, failure: dict[str, Any], identity: str) -> None:
    info = _started(m, scheduled_id, attempt)
    _fail_or_retry(m, info, failure, EventType.ACTIVITY_TASK_FAILED, {"identity": identity})


def _fail_or_retry(
    m: Mutation, info: ActivityInfo, failure: dict[str, Any], event_type: EventType, extra: dict[str, Any]
) -> None:
    backoff_ms, retry_state = retry_backoff(info, failure, m.now)
    if backoff_ms is not None and not info.cancel_requested:
        info.attempt += 1
        info.started_time = 0
        info.request_id = ""
        info.last_failure = failure
        info.scheduled_time = m.now + backoff_ms * 1000
        m.timer(TimerKind.ACTIVITY_RETRY, info.scheduled_time, s=info.scheduled_event_id, a=info.attempt)
        m.sync_activity(info.scheduled_event_id)
        return
    _record_outcome(m, info, event_type, {"failure": failure, "retry_state": retry_state, **extra})


def retry_backoff(info: ActivityInfo, failure: dict[str, Any], now_us: int) -> tuple[int | None, str]:
    """(milliseconds until the next attempt, or None when there is none; the retry state)."""
    policy = info.retry_policy or {}
    if failure.get("non_retryable"):
        return None, "NON_RETRYABLE_FAILURE"
    err_type = failure.get("application_type") or ""
    if err_type and err_type in (policy.get("non_retryable_error_types") or []):
        return None, "NON_RETRYABLE_FAILURE"
    if failure.get("timeout_type") == str(TimeoutType.SCHEDULE_TO_START):
        return None, "NON_RETRYABLE_FAILURE"
    max_attempts = policy.get("maximum_attempts") or 0
    if max_attempts and info.attempt >= max_attempts:
        return None, "MAXIMUM_ATTEMPTS_REACHED"
    requested = failure.get("next_retry_delay_ms")
    if requested is not None and failure.get("failure_type") == "ApplicationFailure":
        # The activity asked for this delay (ApplicationError's next_retry_delay): it replaces
        # the policy's backoff, as the anchors do.
        backoff = max(0, int(requested))
    else:
        initial = policy.get("initial_interval_ms") or DEFAULT_INITIAL_INTERVAL_MS
        coefficient = policy.get("backoff_coefficient") or DEFAULT_BACKOFF
        maximum = policy.get("maximum_interval_ms") or initial * 100
        backoff = min(int(initial * coefficient ** (info.attempt - 1)), maximum)
    if info.schedule_to_close_timeout_ms:
        deadline = info.first_scheduled_time + info.schedule_to_close_timeout_ms * 1000
        if now_us + backoff * 1000 >= deadline:
            return None, "TIMEOUT"
    return backoff, "IN_PROGRESS"


def _timeout_failure(info: ActivityInfo, timeout_type: TimeoutType) -> dict[str, Any]:
    return {
        "message": f"activity {timeout_type.value.lower().replace('_', '-')} timeout",
        "source": "Server",
        "stack_trace": "",
        "failure_type": "TimeoutFailure",
        "application_type": None,
        "non_retryable": False,
        "details": info.heartbeat_details,
        "timeout_type": str(timeout_type),
        "cause": info.last_failure,
    }


def timeout_fired(m: Mutation, scheduled_id: int, attempt: int, timeout_type: str) -> None:
    ms = m.ms
    info = ms.activities.get(scheduled_id)
    tt = TimeoutType(timeout_type)
    if not ms.is_running or info is None or info.result_buffered:
        m.noop = True
        return
    if tt == TimeoutType.SCHEDULE_TO_CLOSE:
        _record_outcome(
            m,
            info,
            EventType.ACTIVITY_TASK_TIMED_OUT,
            {"failure": _timeout_failure(info, tt), "retry_state": "TIMEOUT"},
        )
        return
    if info.attempt != attempt:
        m.noop = True
        return
    if tt == TimeoutType.SCHEDULE_TO_START:
        if info.started_time:
            m.noop = True
            return
        _record_outcome(
            m,
            info,
            EventType.ACTIVITY_TASK_TIMED_OUT,
            {"failure": _timeout_failure(info, tt), "retry_state": "NON_RETRYABLE_FAILURE"},
        )
        return
    if not info.started_time:
        m.noop = True
        return
    if tt == TimeoutType.HEARTBEAT:
        last = max(info.last_heartbeat_time, info.started_time)
        due = last + info.heartbeat_timeout_ms * 1000
        if due > m.now:
            # It heartbeat since this timer was set: check again a heartbeat timeout after that.
            m.timer(TimerKind.ACTIVITY_TIMEOUT, due, s=scheduled_id, a=attempt, t=str(tt))
            return
    _fail_or_retry(m, info, _timeout_failure(info, tt), EventType.ACTIVITY_TASK_TIMED_OUT, {})


def request_cancel_info(m: Mutation, scheduled_id: int) -> ActivityInfo | None:
    return m.ms.activities.get(scheduled_id)
