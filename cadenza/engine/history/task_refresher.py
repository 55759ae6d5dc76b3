"""Every task a run's mutable state calls for, made again from the state alone.

The rules emit tasks as they change a run (a scheduled activity gets its transfer task and its
timeout timers in the same write). A run whose state did not come from those rules has none: a run
replicated from another cluster (the standby applies events, it dispatches and fires nothing), a
run whose namespace just failed over to this cluster, a run reset to an earlier point. The
refresher makes them from the state: what is pending is dispatched, what is running is timed, and
deadlines that passed while nobody was watching fire at once (``max(deadline, now)``).

Processing is idempotent (every handler re-checks the state, see ``tasks``), so refreshing a run
that still has some of its tasks only duplicates work, never repeats an effect.
"""

from __future__ import annotations

from cadenza.engine.history.mutation import Mutation
from cadenza.engine.history.tasks import TimeoutType, TimerKind, TransferKind, VisibilityKind
from cadenza.engine.history.workflow_tasks import schedule_transient


def refresh_tasks(m: Mutation, *, workflow_task: bool = True, run_timeout_from: int | None = None) -> None:
    """Adds to ``m`` the tasks of everything the run has pending. ``workflow_task=False`` leaves
    the workflow task out (a caller that schedules one itself); ``run_timeout_from`` restarts the
    run timeout from that time (a reset) instead of the run's execution time."""
    ms = m.ms
    i = ms.info
    now = m.now
    m.visibility(VisibilityKind.UPSERT)
    if not ms.is_running:
        return
    if workflow_task:
        _workflow_task(m)
    for a in ms.activities.values():
        s = a.scheduled_event_id
        if a.started_time:
            if a.start_to_close_timeout_ms:
                due = a.started_time + a.start_to_close_timeout_ms * 1000
                m.timer(
                    TimerKind.ACTIVITY_TIMEOUT,
                    max(due, now),
                    s=s,
                    a=a.attempt,
                    t=str(TimeoutType.START_TO_CLOSE),
                )
            if a.heartbeat_timeout_ms:
                due = max(a.last_heartbeat_time, a.started_time) + a.heartbeat_timeout_ms * 1000
                m.timer(
                    TimerKind.ACTIVITY_TIMEOUT, max(due, now), s=s, a=a.attempt, t=str(TimeoutType.HEARTBEAT)
                )
        elif a.scheduled_time > now:
            m.timer(TimerKind.ACTIVITY_RETRY, a.scheduled_time, s=s, a=a.attempt)
        else:
            m.transfer(TransferKind.ACTIVITY_TASK, s=s, a=a.attempt, q=a.task_queue)
            if a.schedule_to_start_timeout_ms:
                due = a.scheduled_time + a.schedule_to_start_timeout_ms * 1000
                m.timer(
                    TimerKind.ACTIVITY_TIMEOUT,
                    max(due, now),
                    s=s,
                    a=a.attempt,
                    t=str(TimeoutType.SCHEDULE_TO_START),
                )
        if a.schedule_to_close_timeout_ms:
            due = a.first_scheduled_time + a.schedule_to_close_timeout_ms * 1000
            m.timer(TimerKind.ACTIVITY_TIMEOUT, max(due, now), s=s, a=0, t=str(TimeoutType.SCHEDULE_TO_CLOSE))
    for timer in ms.timers.values():
        if not timer.fired_buffered:
            m.timer(
                TimerKind.USER_TIMER, max(timer.expiry_time, now), id=timer.timer_id, e=timer.started_event_id
            )
    if i.workflow_run_timeout_ms:
        start = i.execution_time if run_timeout_from is None else run_timeout_from
        m.timer(TimerKind.WORKFLOW_RUN_TIMEOUT, max(start + i.workflow_run_timeout_ms * 1000, now))
    for child in ms.children.values():
        if not child.started_event_id:
            m.transfer(TransferKind.START_CHILD, i=child.initiated_event_id)
    for x in ms.external_requests.values():
        kind = TransferKind.SIGNAL_EXTERNAL if x.kind == "signal" else TransferKind.CANCEL_EXTERNAL
        m.transfer(kind, i=x.initiated_event_id)


def _workflow_task(m: Mutation) -> None:
    ms = m.ms
    wt = ms.workflow_task
    now = m.now
    if not ms.has_pending_workflow_task:
        if wt.attempt > 1:
            # A failed attempt with no next one scheduled (the fold schedules it; a state written
            # by an older build may not have): schedule the transient next attempt.
            schedule_transient(m, wt.attempt, immediately=True)
        elif not ms.info.last_completed_workflow_task_event_id:
            # The run's first workflow task waits for its backoff (cron, retry, continue-as-new).
            m.timer(TimerKind.WORKFLOW_BACKOFF, max(ms.info.execution_time, now))
        return
    if wt.started_event_id:
        due = wt.started_time + wt.timeout_ms * 1000
        m.timer(
            TimerKind.WORKFLOW_TASK_TIMEOUT,
            max(due, now),
            s=wt.scheduled_event_id,
            a=wt.attempt,
            t=str(TimeoutType.START_TO_CLOSE),
        )
        return
    m.transfer(TransferKind.WORKFLOW_TASK, s=wt.scheduled_event_id, a=wt.attempt, q=ms.info.task_queue)
