"""A workflow task's start-to-close timer times out the start that made it, not a later start of
the same attempt (one made after the first start's state was lost with a failed write)."""

from __future__ import annotations

from cadenza.engine.history import workflow_tasks as wft
from cadenza.engine.history.flushes import start_still_pending
from cadenza.engine.history.mutable_state import ExecutionInfo, MutableState
from cadenza.engine.history.mutation import Mutation
from cadenza.engine.history.tasks import MutationTasks, Task, TimerKind
from cadenza.schemas.events import EventType

NOW = 1_700_000_000_000_000


def _started(request_id: str) -> tuple[MutableState, Task]:
    """A run whose first workflow task was started by the poll ``request_id``, and the timeout
    timer that start made."""
    ms = MutableState(ExecutionInfo("ns", "wf", "run", task_queue="q"))
    started = {"workflow_type": "W", "task_queue": "q", "workflow_task_timeout_ms": 10_000}
    ms.add_event(EventType.WORKFLOW_EXECUTION_STARTED, NOW, started)
    m = Mutation(ms, MutationTasks(), NOW)
    m.schedule_workflow_task()
    scheduled = ms.workflow_task.scheduled_event_id
    m = Mutation(ms, MutationTasks(), NOW)
    wft.record_started(m, scheduled, 1, request_id, "worker")
    (timer,) = [t for t in m.tasks.timer if t.kind == TimerKind.WORKFLOW_TASK_TIMEOUT]
    return ms, timer


def _fire(ms: MutableState, timer: Task) -> bool:
    """Whether the timer timed the attempt out (True) or found nothing to do."""
    m = Mutation(ms, MutationTasks(), NOW + 10_000_000)
    a = timer.args
    wft.timed_out(m, a["s"], a["a"], a.get("r", ""))
    return not m.noop


def test_the_timer_of_a_lost_start_leaves_the_next_start_of_the_same_attempt_alone() -> None:
    _, first_timer = _started("poll-1")
    # The first start's state was dropped; the reloaded run is started again by another poll.
    again, second_timer = _started("poll-2")
    assert first_timer.args["s"] == second_timer.args["s"] and first_timer.args["a"] == second_timer.args["a"]
    assert not start_still_pending(again, first_timer)
    assert not _fire(again, first_timer)
    assert again.workflow_task.started_event_id  # still started, by poll-2
    assert start_still_pending(again, second_timer)
    assert _fire(again, second_timer)
    assert again.workflow_task.attempt == 2  # timed out: the next attempt is scheduled


def test_a_timer_made_from_state_alone_times_out_whichever_start_there_is() -> None:
    ms, timer = _started("poll-1")
    timer.args.pop("r")  # as the task refresher makes it after a failover or a reset
    assert _fire(ms, timer)
