"""The task refresher makes, from mutable state alone, the tasks a run's writes made: what a
cluster taking over a replicated run (or a reset) needs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.mutation import Mutation
from cadenza.engine.history.task_refresher import refresh_tasks
from cadenza.engine.history.tasks import MutationTasks, TimerKind, TransferKind
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

HOUR = timedelta(hours=1)


@activity.defn
async def never_runs() -> None:
    raise AssertionError("nobody polls this queue")


@workflow.defn
class Waits:
    @workflow.run
    async def run(self) -> None:
        workflow.start_activity(
            never_runs,
            task_queue="nobody-home",
            schedule_to_start_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=HOUR,
        )
        await workflow.sleep(HOUR)


@workflow.defn
class Broken:
    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("a bug: the workflow task fails")  # retried as a workflow task, forever


async def _folded(env: WorkflowEnvironment, workflow_id: str) -> MutableState:
    """The run's state as a standby has it: folded from the stored history alone."""
    ns = (await env.host.namespaces.get("default")).id
    _, ms, events = await env.host.history.get_state_and_events(ns, workflow_id, "")
    return MutableState.rebuild(ns, workflow_id, ms.info.run_id, list(events))


def _refreshed(ms: MutableState, now: int) -> MutationTasks:
    m = Mutation(ms, MutationTasks(), now)
    refresh_tasks(m)
    return m.tasks


def _kinds(tasks: MutationTasks) -> list[tuple[str, str, dict[str, Any]]]:
    out = [("transfer", TransferKind(t.kind).name, t.args) for t in tasks.transfer]
    return out + [("timer", TimerKind(t.kind).name, t.args) for t in tasks.timer]


def test_pending_activity_timer_and_run_timeout_are_made_again() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="q", workflows=[Waits]):
            handle = await env.client.start_workflow(
                Waits.run, id="waits", task_queue="q", run_timeout=2 * HOUR
            )
            while not any(
                e.event_type == EventType.TIMER_STARTED for e in (await handle.fetch_history()).events
            ):
                await asyncio.sleep(0.01)
        ms = await _folded(env, "waits")
        now = env.clock.now_us()
        tasks = _refreshed(ms, now)
        kinds = _kinds(tasks)
        activity_id = next(iter(ms.activities))
        assert ("transfer", "ACTIVITY_TASK", {"s": activity_id, "a": 1, "q": "nobody-home"}) in kinds
        timeouts = sorted(a["t"] for _, k, a in kinds if k == "ACTIVITY_TIMEOUT")
        assert timeouts == ["SCHEDULE_TO_CLOSE", "SCHEDULE_TO_START"]
        (timer,) = [t for t in tasks.timer if t.kind == TimerKind.USER_TIMER]
        assert timer.visibility_time == next(iter(ms.timers.values())).expiry_time > now
        (run_timeout,) = [t for t in tasks.timer if t.kind == TimerKind.WORKFLOW_RUN_TIMEOUT]
        assert run_timeout.visibility_time == ms.info.execution_time + 2 * 3600 * 1_000_000
        assert not [k for _, k, _ in kinds if k == "WORKFLOW_TASK"], "the workflow task completed"
        # Deadlines that passed while nobody watched fire at once.
        later = _refreshed(await _folded(env, "waits"), now + 3 * 3600 * 1_000_000)
        assert all(t.visibility_time == now + 3 * 3600 * 1_000_000 for t in later.timer)

    run_in_env(scenario)


def test_a_failed_workflow_task_is_retried_as_a_transient_attempt() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="q", workflows=[Broken]):
            handle = await env.client.start_workflow(Broken.run, id="broken", task_queue="q")
            while not any(
                e.event_type == EventType.WORKFLOW_TASK_FAILED for e in (await handle.fetch_history()).events
            ):
                await asyncio.sleep(0.01)
        ms = await _folded(env, "broken")
        assert ms.workflow_task.transient and ms.has_pending_workflow_task
        tasks = _refreshed(ms, env.clock.now_us())
        (wt,) = [t for t in tasks.transfer if t.kind == TransferKind.WORKFLOW_TASK]
        assert wt.args["s"] == -1 and wt.args["a"] >= 2

    run_in_env(scenario)


def test_a_closed_run_gets_only_its_visibility_record() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        await env.client.start_workflow(Waits.run, id="ended", task_queue="q")
        await env.client.get_workflow_handle("ended").terminate("done")
        tasks = _refreshed(await _folded(env, "ended"), env.clock.now_us())
        assert not tasks.transfer and not tasks.timer and len(tasks.visibility) == 1

    run_in_env(scenario)
