"""The timer queue holds only the timers due within its window; later ones wait in the store.

A retention timer per closed run, or a month-long ``workflow.sleep``, must not live in memory for
its whole wait: the queue reads them when the window reaches them. The engine's clock is a
``ManualClock`` (or the time-skipping environment's), so days pass with one ``advance``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from cadenza import workflow
from cadenza.engine.clock import ManualClock
from cadenza.engine.history.queues import TIMER_WINDOW_S
from cadenza.engine.history.tasks import TimerKind
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.protocols import TaskCategory
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

T = TypeVar("T")
HOUR_S = 3600


@workflow.defn
class Naps:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(timedelta(seconds=seconds))
        return "rested"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self) -> str:
        return "hi"


async def eventually(fn: Callable[[], Awaitable[T] | T], ok: Callable[[T], bool], what: str) -> T:
    """Waits (a real-time poll, not a clock) for the engine's background work to show."""
    for _ in range(1200):  # 30 s: a bound against hangs, not a speed check (Cassandra under load)
        value = fn()
        if asyncio.iscoroutine(value):
            value = await value
        if ok(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


def held_timers(env: WorkflowEnvironment, kind: TimerKind | None = None) -> int:
    heap = env.host.queues._timers
    return sum(1 for _, task_id, _, t in heap if task_id >= 0 and (kind is None or t.kind == kind))


async def stored_timers(env: WorkflowEnvironment) -> int:
    n = 0
    for shard_id in range(env.host.history.num_shards):
        rows = await env.host.stores.executions.get_tasks(
            shard_id, TaskCategory.TIMER, min_key=(0, 0), max_key=(1 << 62, 1 << 62), batch_size=10_000
        )
        n += len(rows)
    return n


def test_a_timer_beyond_the_window_waits_in_the_store_and_fires_on_time(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        env = await WorkflowEnvironment.start_local(clock=clock, stores=open_sqlite_stores(":memory:"))
        try:
            async with Worker(env.client, task_queue="tq", workflows=[Naps]):
                handle = await env.client.start_workflow(Naps.run, 2 * HOUR_S, id="nap", task_queue="tq")
                await eventually(lambda: stored_timers(env), lambda n: n >= 1, "the user timer's row")
                assert held_timers(env, TimerKind.USER_TIMER) == 0

                await env.host.queues.flush_ack_levels()  # the level must not pass the unloaded timer
                assert await stored_timers(env) >= 1

                clock.advance(2 * HOUR_S - TIMER_WINDOW_S / 2)  # half a window before: loaded, not due
                await eventually(lambda: held_timers(env, TimerKind.USER_TIMER), lambda n: n == 1, "the load")
                assert not (await handle.describe()).close_time

                clock.advance(TIMER_WINDOW_S / 2)
                assert await asyncio.wait_for(handle.result(), 30) == "rested"
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_closed_runs_retention_timers_are_not_held_in_memory() -> None:
    async def main() -> None:
        stores = open_sqlite_stores(":memory:")
        env = await WorkflowEnvironment.start_local(clock=ManualClock(), stores=stores)
        try:
            async with Worker(env.client, task_queue="tq", workflows=[Hello]):
                for i in range(50):
                    assert await env.client.execute_workflow(Hello.run, id=f"h-{i}", task_queue="tq") == "hi"
            # Each closed run wrote its retention timer (the default namespace keeps runs for days).
            assert await stored_timers(env) >= 50
            assert held_timers(env) == 0
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_an_unloaded_timer_survives_a_restart_and_fires(tmp_path: Path) -> None:
    db = str(tmp_path / "engine.db")

    async def first() -> tuple[str, int]:
        clock = ManualClock()
        env = await WorkflowEnvironment.start_local(clock=clock, db_path=db)
        try:
            # Not sticky: after the restart the task must not wait out a sticky timeout on a
            # clock that only moves when told.
            async with Worker(env.client, task_queue="tq", workflows=[Naps], max_cached_workflows=0):
                handle = await env.client.start_workflow(Naps.run, 3 * HOUR_S, id="nap", task_queue="tq")
                await eventually(lambda: stored_timers(env), lambda n: n >= 1, "the user timer's row")
            await env.host.queues.flush_ack_levels()
            return handle.first_run_id or "", clock.now_us()
        finally:
            await env.shutdown()

    async def second(run_id: str, now_us: int) -> None:
        clock = ManualClock(start_us=now_us)
        env = await WorkflowEnvironment.start_local(clock=clock, db_path=db)
        try:
            assert held_timers(env, TimerKind.USER_TIMER) == 0
            async with Worker(env.client, task_queue="tq", workflows=[Naps]):
                clock.advance(3 * HOUR_S)
                handle = env.client.get_workflow_handle("nap", run_id=run_id)
                assert await asyncio.wait_for(handle.result(), 30) == "rested"
        finally:
            await env.shutdown()

    run_id, now_us = asyncio.run(first())
    asyncio.run(second(run_id, now_us))


def test_time_skipping_reaches_a_month_long_sleep() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_time_skipping()
        try:
            async with Worker(env.client, task_queue="tq", workflows=[Naps]):
                result = env.client.execute_workflow(Naps.run, 30 * 24 * HOUR_S, id="month", task_queue="tq")
                assert await asyncio.wait_for(result, 60) == "rested"
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_a_timer_written_while_the_queue_is_idle_survives_a_restart(tmp_path: Path) -> None:
    """With no timer outstanding, the timer queue's ack level has nothing to stay below. It must
    still not run ahead of the present: a timer written next (a one-minute sleep) is due before
    the loaded window's end, and a restart reads timers from the saved level on."""
    db = str(tmp_path / "engine.db")

    async def first() -> tuple[str, int]:
        clock = ManualClock()
        env = await WorkflowEnvironment.start_local(clock=clock, db_path=db)
        try:
            async with Worker(env.client, task_queue="tq", workflows=[Hello, Naps], max_cached_workflows=0):
                # A closed run's retention timer is due days ahead: the level may move up to the
                # window's end once it is the only timer seen.
                assert await env.client.execute_workflow(Hello.run, id="hello", task_queue="tq") == "hi"
                await env.host.queues.flush_ack_levels()
                handle = await env.client.start_workflow(Naps.run, 60, id="nap", task_queue="tq")
                await eventually(lambda: stored_timers(env), lambda n: n >= 2, "the user timer's row")
            await env.host.queues.flush_ack_levels()
            return handle.first_run_id or "", clock.now_us()
        finally:
            await env.shutdown()

    async def second(run_id: str, now_us: int) -> None:
        clock = ManualClock(start_us=now_us)
        env = await WorkflowEnvironment.start_local(clock=clock, db_path=db)
        try:
            async with Worker(env.client, task_queue="tq", workflows=[Naps]):
                clock.advance(61)
                handle = env.client.get_workflow_handle("nap", run_id=run_id)
                assert await asyncio.wait_for(handle.result(), 30) == "rested"
        finally:
            await env.shutdown()

    run_id, now_us = asyncio.run(first())
    asyncio.run(second(run_id, now_us))


@workflow.defn
class ShortSleep:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0.2)
        return "woke"


def test_a_timer_that_failed_once_is_acknowledged_by_its_retry() -> None:
    """A timer whose handler fails is retried a second later; the retry is acknowledged under the
    key the timer was tracked by, not its own later due time, or the shard's timer level would stay
    below it for good (and its row, and every later one, would never be trimmed)."""

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        queues = env.host.queues
        handler = queues._timer_handler
        failed: list[int] = []

        async def flaky(task: Any) -> None:
            if task.kind == TimerKind.USER_TIMER and not failed:
                failed.append(task.task_id)
                raise RuntimeError("injected: the timer's handler failed once")
            await handler(task)

        queues._timer_handler = flaky
        try:
            async with Worker(env.client, task_queue="flaky-timer", workflows=[ShortSleep]):
                result = await env.client.execute_workflow(
                    ShortSleep.run, id="flaky-timer", task_queue="flaky-timer"
                )
            assert result == "woke" and failed, "the handler never failed: nothing was tested"
            outstanding = [k for acks in queues._timer_acks.values() for k in acks.outstanding]
            assert not [k for k in outstanding if k[1] == failed[0]], outstanding
        finally:
            await env.shutdown()

    asyncio.run(main())
