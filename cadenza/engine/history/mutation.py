"""A mutation of one run: its state, the tasks the change causes, and the rule helpers every
operation shares (scheduling a workflow task, closing the run).

Operations (``workflow_tasks``, ``activities``, ``children``, ``chaining``, ``reset``, replication)
are functions over a ``Mutation``; ``HistoryEngine.mutate`` loads, persists and retries around them.
Kept apart from the engine so the rule modules import it without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.errors import WorkflowCompletedError
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.tasks import (
    MutationTasks,
    ReplicationKind,
    Task,
    TimerKind,
    TransferKind,
    VisibilityKind,
)
from cadenza.schemas.events import EventType, HistoryEvent


@dataclass(slots=True)
class Mutation:
    ms: MutableState
    tasks: MutationTasks
    now: int
    noop: bool = False
    """Set by an operation that found nothing to change (a duplicate request): nothing is written."""
    speculative: bool = False
    """Set by a start of a workflow or activity task: the change stays in memory until the run's
    next write (see ``HistoryEngine.mutate``)."""
    next_run: tuple[MutableState, MutationTasks] | None = None
    """A run this write creates as it closes the current one (see ``chaining``)."""
    carried_signals: list[HistoryEvent] = field(default_factory=list)
    """Signals a continue-as-new hands to the next run (see ``workflow_tasks.complete``)."""
    update_effects: list[tuple[str, str, Any]] = field(default_factory=list)
    """What became of workflow updates in this change, ``(kind, update id, value)``: ``accepted``,
    ``completed`` (value: ``{"result", "failure"}``) or ``rejected`` (value: the failure). The
    engine tells the updates' callers once the change is durable (see ``updates``)."""
    started_attributes: dict[str, Any] | None = None
    """The run's WorkflowExecutionStarted attributes, loaded for runs that may chain (their input
    and header carry over to the next run)."""

    @property
    def key(self) -> tuple[str, str, str]:
        i = self.ms.info
        return i.namespace_id, i.workflow_id, i.run_id

    def transfer(self, kind: TransferKind, **args: Any) -> None:
        ns, wid, rid = self.key
        self.tasks.transfer.append(Task(int(kind), ns, wid, rid, args))

    def timer(self, kind: TimerKind, at_us: int, **args: Any) -> None:
        ns, wid, rid = self.key
        self.tasks.timer.append(Task(int(kind), ns, wid, rid, args, visibility_time=at_us))

    def sync_activity(self, scheduled_event_id: int) -> None:
        """An activity's state that history does not hold changed (its attempt, its heartbeat):
        other clusters of a global namespace get it, so after a failover the activity resumes
        from its last heartbeat and attempt instead of from scratch. Dropped when the namespace
        does not replicate (see ``ShardContext._encode``)."""
        ns, wid, rid = self.key
        self.tasks.replication.append(
            Task(int(ReplicationKind.SYNC_ACTIVITY), ns, wid, rid, {"s": scheduled_event_id})
        )

    def visibility(self, kind: VisibilityKind) -> None:
        ns, wid, rid = self.key
        self.tasks.visibility.append(Task(int(kind), ns, wid, rid))

    def schedule_workflow_task(self) -> None:
        """Schedules a workflow task unless one is pending or the run is closed, or the run's first
        task still waits for its backoff (a cron run before its fire time): the backoff timer
        schedules it, and sees what arrived meanwhile."""
        ms = self.ms
        if ms.has_pending_workflow_task or not ms.is_running:
            return
        if ms.info.execution_time > self.now and not ms.info.last_completed_workflow_task_event_id:
            return
        ev = ms.add_event(
            EventType.WORKFLOW_TASK_SCHEDULED,
            self.now,
            {
                "task_queue": ms.info.task_queue,
                "start_to_close_timeout_ms": ms.info.workflow_task_timeout_ms,
                "attempt": 1,
            },
        )
        sticky = ms.info.sticky_task_queue
        if sticky:
            # Sticky execution: to the queue of the worker that has the run cached; ``n`` is where
            # it falls back to after ``st`` ms unstarted (see ``MatchingEngine``).
            self.transfer(
                TransferKind.WORKFLOW_TASK,
                s=ev.event_id,
                a=1,
                q=sticky,
                n=ms.info.task_queue,
                st=ms.info.sticky_schedule_to_start_timeout_ms,
            )
        else:
            self.transfer(TransferKind.WORKFLOW_TASK, s=ev.event_id, a=1, q=ms.info.task_queue)


def require_running(ms: MutableState) -> None:
    if not ms.is_running:
        raise WorkflowCompletedError(
            f"workflow {ms.info.workflow_id!r} run {ms.info.run_id} is already closed "
            f"({ms.info.status.name})",
            workflow_id=ms.info.workflow_id,
            run_id=ms.info.run_id,
        )


def close_run(m: Mutation, event_type: EventType, attributes: dict[str, Any]) -> None:
    """Closes the run with ``event_type``. Buffered events are written first: they happened before
    the close and must not be lost (a signal that raced a terminate is still recorded)."""
    ms = m.ms
    ms.write_workflow_task_start()
    ms.flush_buffered_events()
    ms.add_event(event_type, m.now, attributes)
    m.visibility(VisibilityKind.CLOSE)
    if ms.info.parent_workflow_id or ms.children:
        # Tell the parent (unless a next run carries on) and apply the parent close policy.
        m.transfer(TransferKind.CLOSE_EXECUTION, chained=bool(attributes.get("new_execution_run_id")))
