"""Reset: start the workflow over from one of its past workflow tasks.

The new run's history is the base run's history up to and including the WorkflowTaskStarted of the
chosen task, then WorkflowTaskFailed (cause RESET_WORKFLOW), then every signal the base run
received after that point, re-applied once, then a new workflow task. Its mutable state is rebuilt
from those events by the same state builder every write uses, and the tasks of what was pending at
that point (activities, timers, the run timeout) are made again. The current run, if still open, is
terminated in the same transaction that creates the new run and moves the current-run pointer.

History is copied, not shared as a branch of the base run's tree, because a node (one write's
batch) can straddle the reset point; the copy is written as the new run's first node.
"""

from __future__ import annotations

from cadenza.engine.errors import InvalidArgumentError
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.engine.history.task_refresher import refresh_tasks
from cadenza.engine.history.tasks import MutationTasks
from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.schemas.ids import new_id

RESET_TYPES = ("FirstWorkflowTask", "LastWorkflowTask", "EventId")


def reset_point(events: list[HistoryEvent], reset_type: str, event_id: int = 0) -> int:
    """The WorkflowTaskStarted event id the new run's history ends with."""
    completed = [e for e in events if e.event_type == EventType.WORKFLOW_TASK_COMPLETED]
    if reset_type == "FirstWorkflowTask":
        chosen = completed[:1]
    elif reset_type == "LastWorkflowTask":
        chosen = completed[-1:]
    elif reset_type == "EventId":
        chosen = [e for e in completed if e.event_id == event_id]
        if not chosen:
            ids = ", ".join(str(e.event_id) for e in completed) or "none"
            raise InvalidArgumentError(
                f"event_id {event_id} is not a WorkflowTaskCompleted event of this run (those are: {ids})"
            )
    else:
        raise InvalidArgumentError(f"reset type {reset_type!r} is not one of {', '.join(RESET_TYPES)}")
    if not chosen:
        raise InvalidArgumentError("the run has no completed workflow task to reset to")
    return int(chosen[0].attributes["started_event_id"])


def build_reset_run(
    base_events: list[HistoryEvent],
    started_id: int,
    *,
    namespace_id: str,
    workflow_id: str,
    base_run_id: str,
    now: int,
    reason: str,
    identity: str,
    version: int = 0,
) -> tuple[MutableState, MutationTasks, int]:
    """The new run's state and tasks; returns (state, tasks, number of signals re-applied).
    ``version``: the namespace's failover version, which the events the reset adds carry."""
    run_id = new_id()
    kept = [_copy(e) for e in base_events[:started_id]]
    ms = MutableState.rebuild(namespace_id, workflow_id, run_id, kept)
    ms.current_version = version
    ms.info.tree_id = run_id
    ms.info.branch_id = new_id()
    ms.pending_events = list(kept)
    m = Mutation(ms, MutationTasks(), now)
    wt = ms.workflow_task
    ms.add_event(
        EventType.WORKFLOW_TASK_FAILED,
        now,
        {
            "scheduled_event_id": wt.scheduled_event_id,
            "started_event_id": wt.started_event_id,
            "cause": "RESET_WORKFLOW",
            "failure": {
                "message": f"reset: {reason}",
                "source": "Server",
                "stack_trace": "",
                "failure_type": "ServerFailure",
                "application_type": None,
                "non_retryable": False,
                "details": None,
                "timeout_type": None,
                "cause": None,
            },
            "identity": identity,
            "base_run_id": base_run_id,
            "new_run_id": run_id,
            "fork_event_version": 0,
            "binary_checksum": "",
        },
    )
    reapplied = 0
    for e in base_events[started_id:]:
        if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED:
            ms.add_event(e.event_type, now, dict(e.attributes))
            reapplied += 1
    ms.workflow_task.attempt = 1
    m.schedule_workflow_task()
    # What was pending at the reset point starts afresh (the WorkflowTaskFailed above restarted
    # the activities at attempt 1, see ``MutableState._apply_reset``), the run timeout from now.
    refresh_tasks(m, workflow_task=False, run_timeout_from=m.now)
    return ms, m.tasks, reapplied


def _copy(e: HistoryEvent) -> HistoryEvent:
    return HistoryEvent(e.event_id, e.event_time, e.event_type, e.version, 0, dict(e.attributes))


def terminate_for_reset(
    m: Mutation, new_run: tuple[MutableState, MutationTasks], reason: str, identity: str
) -> None:
    """The rule applied to the current run: terminated if open; the new run is written with it."""
    if m.ms.is_running:
        close_run(
            m,
            EventType.WORKFLOW_EXECUTION_TERMINATED,
            {"reason": f"reset: {reason}", "details": None, "identity": identity},
        )
    m.next_run = new_run
