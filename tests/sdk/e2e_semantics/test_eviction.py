"""An open run leaving a worker's cache (the cache is full, the worker stops): its ``finally:``
blocks run as workflow code at once and quietly, nothing is sent, and the run carries on from
history on its next task."""

from __future__ import annotations

import gc
import sys
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .waits import eventually, has_event

finally_ran: list[str] = []


@activity.defn
async def tidy_up(name: str) -> str:
    return f"tidied {name}"


@workflow.defn
class CleansUpInFinally:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def release(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, name: str) -> str:
        try:
            await workflow.wait_condition(lambda: self.go)
            return f"released {name}"
        finally:
            if not workflow.unsafe.is_replaying():  # reading still works while evicted
                finally_ran.append(name)
                workflow.logger.info("cleaning up %s", name)
            await workflow.execute_activity(tidy_up, name, start_to_close_timeout=timedelta(seconds=5))


def _collect_unraisable() -> tuple[list[Any], Any]:
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    return seen, previous


def test_a_stopping_worker_tears_its_open_runs_down_quietly() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        finally_ran.clear()
        seen, previous = _collect_unraisable()
        try:
            async with Worker(
                env.client, task_queue="ev", workflows=[CleansUpInFinally], activities=[tidy_up]
            ):
                handle = await env.client.start_workflow(
                    CleansUpInFinally.run, "a", id="ev-a", task_queue="ev"
                )
                await eventually(lambda: has_event(handle, EventType.WORKFLOW_TASK_COMPLETED))
            # Torn down when the worker stopped, not by the collector.
            assert finally_ran == ["a"]
            gc.collect()
            assert seen == [], [str(u.exc_value) for u in seen]
        finally:
            sys.unraisablehook = previous
        # Nothing the finally block started reached the server.
        types = [e.event_type for e in (await handle.fetch_history()).events]
        assert EventType.ACTIVITY_TASK_SCHEDULED not in types
        # A new worker replays the run and carries on.
        async with Worker(env.client, task_queue="ev", workflows=[CleansUpInFinally], activities=[tidy_up]):
            await handle.signal(CleansUpInFinally.release)
            assert await handle.result() == "released a"
        types = [e.event_type for e in (await handle.fetch_history()).events]
        assert types.count(EventType.ACTIVITY_TASK_SCHEDULED) == 1  # the real cleanup, once

    run_in_env(scenario)


def test_a_run_evicted_from_a_full_cache_carries_on_from_history() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        finally_ran.clear()
        seen, previous = _collect_unraisable()
        try:
            async with Worker(
                env.client,
                task_queue="ev1",
                workflows=[CleansUpInFinally],
                activities=[tidy_up],
                max_cached_workflows=1,
            ):
                first = await env.client.start_workflow(
                    CleansUpInFinally.run, "x", id="ev-x", task_queue="ev1"
                )
                await eventually(lambda: has_event(first, EventType.WORKFLOW_TASK_COMPLETED))
                second = await env.client.start_workflow(
                    CleansUpInFinally.run, "y", id="ev-y", task_queue="ev1"
                )
                await eventually(lambda: has_event(second, EventType.WORKFLOW_TASK_COMPLETED))
                assert finally_ran == ["x"]  # the first run left the one-run cache
                await first.signal(CleansUpInFinally.release)
                assert await first.result() == "released x"
                await second.signal(CleansUpInFinally.release)
                assert await second.result() == "released y"
            gc.collect()
            assert seen == [], [str(u.exc_value) for u in seen]
        finally:
            sys.unraisablehook = previous

    run_in_env(scenario)
