"""Sticky execution: a worker's cached runs get their workflow tasks on its own sticky queue with
only the new events; a task left there falls back to the normal queue with the whole history; a
worker that lets a run go (cache miss, shutdown) costs one whole-history task, then the run is
sticky again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from rpc.conftest import run_in_grpc_env

from cadenza import activity, workflow
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.matching import WORKFLOW_TASK
from cadenza.schemas.events import EventType
from cadenza.worker import Worker

from .conftest import run_in_env

QUICK = timedelta(seconds=10)


@activity.defn
async def step(total: int) -> int:
    return total + 1


@workflow.defn
class Steps:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for _ in range(n):
            total = await workflow.execute_activity(step, total, start_to_close_timeout=QUICK)
        return total


@workflow.defn
class Gated:
    """One activity per ``release`` signal, ``n`` times."""

    def __init__(self) -> None:
        self.released = 0
        self.done = 0

    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.wait_condition(lambda i=i: self.released > i)
            self.done = await workflow.execute_activity(step, self.done, start_to_close_timeout=QUICK)
        return self.done

    @workflow.signal
    def release(self) -> None:
        self.released += 1

    @workflow.query
    def progress(self) -> int:
        return self.done


@dataclass(frozen=True)
class Polled:
    queue: str
    first_event_id: int
    events: int
    query: bool


def record_polls(env: Any) -> list[Polled]:
    """Records every workflow task the client's transport hands a worker (gRPC or in process)."""
    service = env.client.service
    plain = service.poll_workflow_task_queue
    seen: list[Polled] = []

    async def poll(namespace: str, task_queue: str, **kwargs: Any) -> Any:
        task = await plain(namespace, task_queue, **kwargs)
        if task is not None:
            first = task.history[0].event_id if task.history else 0
            seen.append(Polled(task_queue, first, len(task.history), task.query is not None))
        return task

    service.poll_workflow_task_queue = poll
    return seen


def ns_id(env: Any) -> str:
    return str(env.host.frontend.namespaces._by_name["default"].id)


async def state(env: Any, workflow_id: str) -> MutableState:
    _, ms = await env.host.history.get_state(ns_id(env), workflow_id, "")
    return ms


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


async def completed_tasks(env: Any, workflow_id: str, n: int) -> None:
    async def done() -> bool:
        ms = await state(env, workflow_id)
        events = await env.client.get_workflow_handle(workflow_id).fetch_history()
        return sum(e.event_type == EventType.WORKFLOW_TASK_COMPLETED for e in events.events) >= n and bool(ms)

    await until(done, f"{workflow_id} completed {n} workflow tasks")


def sticky_pollers(env: Any, worker: Worker) -> Callable[[], Awaitable[bool]]:
    async def waiting() -> bool:
        q = env.host.matching._queues.get((ns_id(env), worker._cache.queue, WORKFLOW_TASK))
        return q is not None and any(not p.done() for p in q.pollers)

    return waiting


# -- later tasks carry only the new events -------------------------------------------------------------


def sequential_steps(n: int) -> Callable[[Any], Awaitable[None]]:
    async def scenario(env: Any) -> None:
        seen = record_polls(env)
        async with Worker(env.client, task_queue="st", workflows=[Steps], activities=[step]) as worker:
            assert await env.client.execute_workflow(Steps.run, n, id="steps", task_queue="st") == n
        tasks = [p for p in seen if not p.query]
        assert len(tasks) == n + 1  # one per activity result, and the first
        first, later = tasks[0], tasks[1:]
        assert (first.queue, first.first_event_id) == ("st", 1)
        for p in later:
            # From the sticky queue, starting after the events of the worker's previous task: the
            # size of a task does not grow with the history.
            assert p.queue == worker._cache.queue
            assert p.first_event_id > 1
            assert p.events <= 8, p
        assert later[-1].first_event_id > 5 * n

    return scenario


def test_a_sticky_runs_later_tasks_carry_only_new_events() -> None:
    run_in_env(sequential_steps(12))


def test_a_sticky_runs_later_tasks_carry_only_new_events_over_grpc() -> None:
    run_in_grpc_env(sequential_steps(12))


def test_without_a_cache_every_task_carries_the_whole_history() -> None:
    async def scenario(env: Any) -> None:
        seen = record_polls(env)
        async with Worker(
            env.client, task_queue="st", workflows=[Steps], activities=[step], max_cached_workflows=0
        ):
            assert await env.client.execute_workflow(Steps.run, 4, id="steps", task_queue="st") == 4
        assert [p.first_event_id for p in seen] == [1] * 5
        assert {p.queue for p in seen} == {"st"}
        assert not (await state(env, "steps")).info.sticky_task_queue

    run_in_env(scenario)


def test_a_query_to_a_sticky_run_is_answered_from_the_cache() -> None:
    async def scenario(env: Any) -> None:
        seen = record_polls(env)
        async with Worker(env.client, task_queue="st", workflows=[Gated], activities=[step]) as worker:
            handle = await env.client.start_workflow(Gated.run, 2, id="gated", task_queue="st")
            await handle.signal(Gated.release)
            await until(lambda: _progress_is(handle, 1), "the first step ran")
            await until(sticky_pollers(env, worker), "a sticky poller waits")
            assert await handle.query(Gated.progress) == 1
            queries = [p for p in seen if p.query]
            assert queries[-1].queue == worker._cache.queue and queries[-1].events == 0
            await handle.signal(Gated.release)
            assert await handle.result() == 2

    run_in_env(scenario)


async def _progress_is(handle: Any, n: int) -> bool:
    return bool(await handle.query(Gated.progress) == n)


# -- falling back to the normal queue --------------------------------------------------------------------


def test_a_task_left_on_a_dead_workers_sticky_queue_falls_back_after_the_timeout() -> None:
    """A worker dies (no reset): the run's next task waits on its sticky queue for the sticky
    schedule-to-start timeout (skipped, not slept), then goes to the normal queue, where the
    restarted worker gets it with the whole history once; after that the run is sticky again."""

    async def scenario(env: Any) -> None:
        first = Worker(env.client, task_queue="st", workflows=[Gated], activities=[step])
        first.start()
        handle = await env.client.start_workflow(Gated.run, 3, id="gated", task_queue="st")
        await completed_tasks(env, "gated", 1)
        assert (await state(env, "gated")).info.sticky_task_queue == first._cache.queue
        await first.abandon()  # as if the process died: nothing tells the server

        await handle.signal(Gated.release)
        backlog = env.host.matching.backlog
        assert backlog(ns_id(env), first._cache.queue, WORKFLOW_TASK) == 1
        seen = record_polls(env)
        async with Worker(env.client, task_queue="st", workflows=[Gated], activities=[step]) as second:
            await env.sleep(6)  # past the 5 s sticky schedule-to-start timeout
            await completed_tasks(env, "gated", 2)
            assert backlog(ns_id(env), first._cache.queue, WORKFLOW_TASK) == 0
            await handle.signal(Gated.release)
            await handle.signal(Gated.release)
            assert await handle.result() == 3
        tasks = [p for p in seen if not p.query]
        assert (tasks[0].queue, tasks[0].first_event_id) == ("st", 1)
        assert all(p.queue == second._cache.queue and p.first_event_id > 1 for p in tasks[1:])
        assert len(tasks) >= 3

    run_in_env(scenario, time_skipping=True)


def test_a_cache_miss_costs_one_whole_history_task_then_the_run_is_sticky_again() -> None:
    """The worker lost the run without telling the server (as after a restart that kept its
    queue): the partial history does not follow what it has, so it fails the task, and the retry
    comes from the normal queue with the whole history."""

    async def scenario(env: Any) -> None:
        seen = record_polls(env)
        async with Worker(env.client, task_queue="st", workflows=[Gated], activities=[step]) as worker:
            handle = await env.client.start_workflow(Gated.run, 3, id="gated", task_queue="st")
            await completed_tasks(env, "gated", 1)
            worker._cache._runs.clear()  # forgotten silently
            await handle.signal(Gated.release)
            await until(lambda: _progress_is(handle, 1), "the first step ran")
            await handle.signal(Gated.release)
            await handle.signal(Gated.release)
            assert await handle.result() == 3
        tasks = [(p.queue == "st", p.first_event_id == 1) for p in seen if not p.query]
        # first task (whole), the miss (partial, failed), its retry (whole), then partial again
        assert tasks[:3] == [(True, True), (False, False), (True, True)]
        assert all(t == (False, False) for t in tasks[3:]) and len(tasks) >= 5
        history = (await handle.fetch_history()).events
        failed = [e for e in history if e.event_type == EventType.WORKFLOW_TASK_FAILED]
        assert [e.attributes["cause"] for e in failed] == ["RESET_STICKY_TASK_QUEUE"]

    run_in_env(scenario)


@pytest.mark.parametrize("evict", [False, True], ids=["shutdown", "eviction"])
def test_a_worker_that_lets_a_run_go_resets_its_stickiness(evict: bool) -> None:
    """Shutting down (or evicting the run from a full cache) tells the server, so the next task
    goes to the normal queue at once, not after the sticky timeout."""

    async def scenario(env: Any) -> None:
        handle = await env.client.start_workflow(Gated.run, 2, id="gated", task_queue="st")
        async with Worker(
            env.client, task_queue="st", workflows=[Gated], activities=[step], max_cached_workflows=1
        ) as worker:
            await completed_tasks(env, "gated", 1)
            assert (await state(env, "gated")).info.sticky_task_queue == worker._cache.queue
            if evict:
                # Another run takes the only cache slot.
                await env.client.start_workflow(Gated.run, 1, id="other", task_queue="st")
                await completed_tasks(env, "other", 1)

                async def reset() -> bool:
                    return not (await state(env, "gated")).info.sticky_task_queue

                await until(reset, "the evicted run's stickiness is reset")
        ms = await state(env, "gated")
        assert ms.info.sticky_task_queue == ""
        await handle.signal(Gated.release)
        # No poller anywhere now: the task waits on the normal queue, not on the sticky one.
        assert env.host.matching.backlog(ns_id(env), "st", WORKFLOW_TASK) == 1
        assert env.host.matching.backlog(ns_id(env), worker._cache.queue, WORKFLOW_TASK) == 0
        async with Worker(env.client, task_queue="st", workflows=[Gated], activities=[step]):
            await handle.signal(Gated.release)
            assert await handle.result() == 2

    run_in_env(scenario)


# -- persisted, but local to the cluster ------------------------------------------------------------------


def test_stickiness_persists_with_the_state_but_is_never_part_of_history() -> None:
    """Kept in the stored snapshot (SQLite and Cassandra store the same blob), while a state folded
    from history (a standby's, a conflict's, a reset's) has none, and a replicated workflow task
    outcome clears it."""
    from cadenza.engine.history.mutable_state import decode_state, encode_state

    async def scenario(env: Any) -> None:
        async with Worker(env.client, task_queue="st", workflows=[Gated], activities=[step]) as worker:
            handle = await env.client.start_workflow(Gated.run, 2, id="gated", task_queue="st")
            await handle.signal(Gated.release)
            await until(lambda: _progress_is(handle, 1), "the first step ran")
            ms = await state(env, "gated")
            assert ms.info.sticky_task_queue == worker._cache.queue
            stored = decode_state(encode_state(ms))
            assert stored.info.sticky_task_queue == worker._cache.queue
            assert stored.info.sticky_schedule_to_start_timeout_ms == 5_000
            events = (await handle.fetch_history()).events
            i = ms.info
            assert (
                MutableState.rebuild(i.namespace_id, i.workflow_id, i.run_id, events).info.sticky_task_queue
                == ""
            )
            # A standby that had stickiness (it was active before) loses it with the next
            # replicated workflow task outcome.
            completed = [n for n, e in enumerate(events) if e.event_type == EventType.WORKFLOW_TASK_COMPLETED]
            standby = MutableState.rebuild(i.namespace_id, i.workflow_id, i.run_id, events[: completed[-1]])
            standby.info.sticky_task_queue = "elsewhere"
            standby.apply(events[completed[-1]])
            assert standby.info.sticky_task_queue == ""
            await handle.signal(Gated.release)
            assert await handle.result() == 2

    run_in_env(scenario)
