"""Runs that lead to a next run: continue-as-new, cron schedules and workflow retries.

In each case the closing run's last write also creates the next run, in one transaction (the
current-run pointer moves with it), so there is never a moment with no run, or two. The next run
keeps the workflow id, the first run id, the parent and the execution deadline; its first workflow
task waits for a backoff (the cron schedule's next fire time, the retry policy's interval, or the
continue-as-new backoff) on a durable timer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from cadenza.engine.errors import InvalidArgumentError
from cadenza.engine.history.mutable_state import ExecutionInfo, MutableState
from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.engine.history.tasks import MutationTasks, TimerKind, VisibilityKind
from cadenza.schemas.events import EventType
from cadenza.schemas.ids import new_id


def validate_cron(schedule: str) -> None:
    if schedule and not croniter.is_valid(schedule):
        raise InvalidArgumentError(f"cron_schedule {schedule!r} is not a valid cron expression")


def cron_backoff_ms(schedule: str, now_us: int) -> int:
    """Milliseconds from ``now_us`` to the schedule's next fire time (runs never overlap: a run that
    outlasts a fire time skips it)."""
    base = datetime.fromtimestamp(now_us / 1e6, UTC)
    nxt: float = croniter(schedule, base).get_next(float)
    # Round up: firing a fraction early would make the next run compute this same fire time again.
    return max(0, math.ceil((nxt * 1e6 - now_us) / 1000))


def start_next_run(
    m: Mutation,
    *,
    initiator: str,
    backoff_ms: int,
    attempt: int,
    workflow_type: str | None = None,
    task_queue: str | None = None,
    input: list[dict[str, Any]] | None = None,
    run_timeout_ms: int | None = None,
    task_timeout_ms: int | None = None,
    failure: dict[str, Any] | None = None,
    last_completion_result: list[dict[str, Any]] | None = None,
    retry_policy: dict[str, Any] | None = None,
    cron_schedule: str | None = None,
    memo: dict[str, Any] | None = None,
    search_attributes: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
) -> str:
    """Builds the next run of ``m``'s workflow (written with ``m``); returns its run id."""
    old = m.ms.info
    started_event = _started_attributes(m)
    run_id = new_id()
    info = ExecutionInfo(namespace_id=old.namespace_id, workflow_id=old.workflow_id, run_id=run_id)
    info.tree_id = run_id
    info.branch_id = new_id()
    ms = MutableState(info)
    ms.current_version = m.ms.current_version
    nxt = Mutation(ms, MutationTasks(), m.now)
    run_timeout = old.workflow_run_timeout_ms if run_timeout_ms is None else run_timeout_ms
    attrs: dict[str, Any] = {
        "workflow_type": workflow_type or old.workflow_type,
        "task_queue": task_queue or old.task_queue,
        "input": input if input is not None else started_event.get("input"),
        "workflow_execution_timeout_ms": old.workflow_execution_timeout_ms,
        "workflow_run_timeout_ms": run_timeout,
        "workflow_task_timeout_ms": task_timeout_ms or old.workflow_task_timeout_ms,
        "parent_workflow_namespace": old.parent_namespace or None,
        "parent_workflow_execution": (
            {"workflow_id": old.parent_workflow_id, "run_id": old.parent_run_id}
            if old.parent_workflow_id
            else None
        ),
        "parent_initiated_event_id": old.parent_initiated_event_id,
        "continued_execution_run_id": old.run_id,
        "initiator": initiator,
        "continued_failure": failure,
        "last_completion_result": last_completion_result,
        "original_execution_run_id": run_id,
        "identity": "cadenza-history",
        "first_execution_run_id": old.first_execution_run_id or old.run_id,
        "retry_policy": retry_policy if retry_policy is not None else old.retry_policy,
        "attempt": attempt,
        "workflow_execution_expiration_time": old.workflow_execution_expiration_time,
        "cron_schedule": (old.cron_schedule if cron_schedule is None else cron_schedule) or None,
        "first_workflow_task_backoff_ms": backoff_ms,
        "memo": memo if memo is not None else dict(old.memo),
        "search_attributes": search_attributes
        if search_attributes is not None
        else dict(old.search_attributes),
        "header": header if header is not None else started_event.get("header") or {},
        "request_id": new_id(),
    }
    ms.add_event(EventType.WORKFLOW_EXECUTION_STARTED, m.now, attrs)
    for signal in m.carried_signals:
        ms.add_event(EventType.WORKFLOW_EXECUTION_SIGNALED, signal.event_time, dict(signal.attributes))
    m.carried_signals = []
    if backoff_ms:
        nxt.timer(TimerKind.WORKFLOW_BACKOFF, m.now + backoff_ms * 1000)
    else:
        nxt.schedule_workflow_task()
    if run_timeout:
        nxt.timer(TimerKind.WORKFLOW_RUN_TIMEOUT, m.now + (backoff_ms + run_timeout) * 1000)
    nxt.visibility(VisibilityKind.START)
    m.next_run = (ms, nxt.tasks)
    return run_id


def _started_attributes(m: Mutation) -> dict[str, Any]:
    """The closing run's WorkflowExecutionStarted attributes (its input and header carry over)."""
    return m.started_attributes or {}


def complete_with_result(m: Mutation, result: list[dict[str, Any]] | None, completed_id: int) -> None:
    """Completes the run; a cron workflow continues with its next scheduled run."""
    info = m.ms.info
    new_run_id = None
    if info.cron_schedule and not _past_deadline(m):
        new_run_id = start_next_run(
            m,
            initiator="CronSchedule",
            backoff_ms=cron_backoff_ms(info.cron_schedule, m.now),
            attempt=1,
            last_completion_result=result,
        )
    close_run(
        m,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
        {
            "result": result,
            "workflow_task_completed_event_id": completed_id,
            "new_execution_run_id": new_run_id,
        },
    )


def fail_or_retry(
    m: Mutation, failure: dict[str, Any], completed_id: int, *, timed_out: bool = False
) -> None:
    """Fails (or times out) the run; retries it per the workflow's retry policy, or continues a cron
    workflow with its next scheduled run."""
    info = m.ms.info
    new_run_id = None
    retry_state = "RETRY_POLICY_NOT_SET"
    backoff = _workflow_retry_backoff(m, failure)
    if backoff is not None:
        retry_state = "IN_PROGRESS"
        new_run_id = start_next_run(
            m,
            initiator="RetryPolicy",
            backoff_ms=backoff,
            attempt=info.attempt + 1,
            failure=failure,
        )
    elif info.retry_policy:
        retry_state = "MAXIMUM_ATTEMPTS_REACHED"
    if new_run_id is None and info.cron_schedule and not _past_deadline(m):
        new_run_id = start_next_run(
            m,
            initiator="CronSchedule",
            backoff_ms=cron_backoff_ms(info.cron_schedule, m.now),
            attempt=1,
            failure=failure,
        )
    if timed_out:
        close_run(
            m,
            EventType.WORKFLOW_EXECUTION_TIMED_OUT,
            {"retry_state": retry_state, "new_execution_run_id": new_run_id},
        )
    else:
        close_run(
            m,
            EventType.WORKFLOW_EXECUTION_FAILED,
            {
                "failure": failure,
                "retry_state": retry_state,
                "workflow_task_completed_event_id": completed_id,
                "new_execution_run_id": new_run_id,
            },
        )


def continue_as_new(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    backoff = a.get("backoff_start_interval_ms") or 0
    new_run_id = start_next_run(
        m,
        initiator=a.get("initiator") or "Workflow",
        backoff_ms=backoff,
        attempt=1,
        workflow_type=a.get("workflow_type"),
        task_queue=a.get("task_queue"),
        input=a.get("input"),
        run_timeout_ms=a.get("workflow_run_timeout_ms") or None,
        task_timeout_ms=a.get("workflow_task_timeout_ms") or None,
        failure=a.get("failure"),
        last_completion_result=a.get("last_completion_result"),
        retry_policy=a.get("retry_policy"),
        cron_schedule=a.get("cron_schedule"),
        memo=a.get("memo"),
        search_attributes=a.get("search_attributes"),
        header=a.get("header"),
    )
    nxt_attrs = m.next_run[0].info if m.next_run else None
    close_run(
        m,
        EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        {
            "new_execution_run_id": new_run_id,
            "workflow_type": nxt_attrs.workflow_type if nxt_attrs else "",
            "task_queue": nxt_attrs.task_queue if nxt_attrs else "",
            "input": a.get("input"),
            "workflow_run_timeout_ms": a.get("workflow_run_timeout_ms") or 0,
            "workflow_task_timeout_ms": a.get("workflow_task_timeout_ms") or 0,
            "workflow_task_completed_event_id": completed_id,
            "backoff_start_interval_ms": backoff,
            "initiator": a.get("initiator") or "Workflow",
            "failure": a.get("failure"),
            "last_completion_result": a.get("last_completion_result"),
            "header": a.get("header") or {},
            "memo": a.get("memo") or {},
            "search_attributes": a.get("search_attributes") or {},
        },
    )


def _past_deadline(m: Mutation, backoff_ms: int = 0) -> bool:
    deadline = m.ms.info.workflow_execution_expiration_time
    return bool(deadline) and m.now + backoff_ms * 1000 >= deadline


def _workflow_retry_backoff(m: Mutation, failure: dict[str, Any]) -> int | None:
    info = m.ms.info
    policy = info.retry_policy
    if not policy or failure.get("non_retryable"):
        return None
    err_type = failure.get("application_type") or ""
    if err_type and err_type in (policy.get("non_retryable_error_types") or []):
        return None
    max_attempts = policy.get("maximum_attempts") or 0
    if max_attempts and info.attempt >= max_attempts:
        return None
    initial = policy.get("initial_interval_ms") or 1000
    backoff = min(
        int(initial * (policy.get("backoff_coefficient") or 2.0) ** (info.attempt - 1)),
        policy.get("maximum_interval_ms") or initial * 100,
    )
    if _past_deadline(m, backoff):
        return None
    return backoff
