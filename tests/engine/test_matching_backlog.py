"""Matching writes the tasks no poller takes to the task queue store and reads them back in order,
on SQLite and on the real Cassandra: memory stays bounded, a restart drains what was written, a
lost lease loses nothing, and a task a waiting poller takes never touches the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from persistence.cassandra.support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)

from cadenza.engine.matching import ACTIVITY_TASK, MatchingEngine, MatchTask, TaskQueue
from cadenza.engine.matching_backlog import MAX_TASK_ID, BacklogConfig
from cadenza.engine.persistence import Stores, open_sqlite_stores
from cadenza.engine.persistence.protocols import TaskQueueStore

NS = "backlog-ns"


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Stores]]:
    """Opens stores on one backend; every call opens a new handle on the same data (a restart)."""
    if request.param == "sqlite":
        path = tmp_path / "cadenza.db"
        yield lambda: open_sqlite_stores(path)
    else:
        ks: Keyspace = request.getfixturevalue("cassandra_keyspace")
        yield ks.stores


class Source:
    """Stands in for the shard's transfer queue: counts each task's acknowledgement."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def task(self, i: int, queue: str, created_at: float | None = None) -> MatchTask:
        t = MatchTask(NS, f"wf-{i}", "run", i, 1, ack=lambda: self.acked.append(i))
        if created_at is not None:
            t.created_at = created_at
        return t


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Waits for the matching engine's background store work to reach a state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def written_down(q: TaskQueue, config: BacklogConfig) -> Callable[[], bool]:
    """The queue's excess over ``max_in_memory`` is written (none is being written now)."""
    return lambda: len(q.tasks) <= config.max_in_memory and not (q.backlog and q.backlog.spilling)


async def take_all(
    engine: MatchingEngine,
    queue: str,
    count: int,
    pollers: int = 4,
    on_take: Callable[[], None] = lambda: None,
) -> list[int]:
    """Takes ``count`` tasks with concurrent pollers (no more: the caller adds no tasks meanwhile);
    each start is acknowledged at once. Returns the scheduled event ids in the order the queue
    handed the tasks out (pollers resume in their own order, so that is where it is recorded)."""
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    handed: list[int] = []
    take = q.take

    def recording_take() -> MatchTask | None:
        t = take()
        if t is not None:
            handed.append(t.scheduled_event_id)
        return t

    q.take = recording_take  # type: ignore[method-assign]
    taken = 0

    async def poller() -> None:
        nonlocal taken
        while taken < count:
            t = await engine.poll(NS, queue, ACTIVITY_TASK, 0.5)
            if t is None:
                continue
            taken += 1
            t.ack()
            on_take()

    try:
        await asyncio.wait_for(asyncio.gather(*(poller() for _ in range(pollers))), 120)
    finally:
        del q.take
    return handed


async def stored_ids(store: TaskQueueStore, queue: str) -> list[int]:
    rows = await store.get_tasks(
        NS, queue, ACTIVITY_TASK, min_task_id=0, max_task_id=MAX_TASK_ID, batch_size=10**6
    )
    return [r.task_id for r in rows]


class CountingStore:
    """A task queue store that records which methods were called (the fast path must call none)."""

    def __init__(self, inner: TaskQueueStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return call


def run(body: Callable[[Stores], Awaitable[None]], backend: Callable[[], Stores]) -> None:
    """Runs a test body in a fresh event loop with fresh stores (closed afterwards)."""

    async def main() -> None:
        stores = backend()
        try:
            await asyncio.wait_for(body(stores), 180)
        finally:
            await stores.close()

    asyncio.run(main())


def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


def test_a_task_a_waiting_poller_takes_never_touches_the_store(backend: Callable[[], Stores]) -> None:
    run(_test_a_task_a_waiting_poller_takes_never_touches_the_store, backend)


async def _test_a_task_a_waiting_poller_takes_never_touches_the_store(stores: Stores) -> None:
    counting = CountingStore(stores.task_queues)
    engine = MatchingEngine(counting, config=BacklogConfig(spill_after_s=0.0, max_in_memory=1))  # type: ignore[arg-type]
    source, queue = Source(), queue_name()
    for i in range(50):
        poll = asyncio.ensure_future(engine.poll(NS, queue, ACTIVITY_TASK, 5.0))
        await asyncio.sleep(0)  # the poller is waiting
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
        assert (await poll) is not None
    await engine.stop()
    assert counting.calls == []
    assert engine.queue(NS, queue, ACTIVITY_TASK).backlog is None


def test_order_holds_across_the_spill_and_back(backend: Callable[[], Stores]) -> None:
    run(_test_order_holds_across_the_spill_and_back, backend)


async def _test_order_holds_across_the_spill_and_back(stores: Stores) -> None:
    config = BacklogConfig(spill_after_s=3600, max_in_memory=10, write_batch=7, read_batch=5)
    engine = MatchingEngine(stores.task_queues, config=config)
    source, queue = Source(), queue_name()
    for i in range(100):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    await until(written_down(q, config), "the excess to be written")
    assert q.backlog is not None and q.backlog.written >= 90
    # Written tasks are acknowledged to their source; those still in memory are not.
    assert sorted(source.acked) == list(range(len(source.acked)))
    assert len(source.acked) == q.backlog.written
    # Some taken, more added while the store still holds older ones: they queue behind them.
    first = await take_all(engine, queue, 30, pollers=1)
    for i in range(100, 130):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    rest = await take_all(engine, queue, 100)
    assert first + rest == list(range(130))
    await engine.stop()
    # Everything was started: the ack level moved past it and the rows were deleted.
    assert await stored_ids(stores.task_queues, queue) == []


def test_a_task_that_waits_too_long_is_written_by_the_clock() -> None:
    run(_written_by_the_clock, lambda: open_sqlite_stores(":memory:"))


async def _written_by_the_clock(stores: Stores) -> None:
    now = [100.0]
    engine = MatchingEngine(
        stores.task_queues, config=BacklogConfig(spill_after_s=0.5, max_in_memory=1000), now=lambda: now[0]
    )
    source, queue = Source(), queue_name()
    for i in range(3):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue, created_at=100.0))
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    assert q.backlog is not None
    q.backlog.wake()
    for _ in range(20):  # the pump runs and finds nothing due yet (no store access to wait for)
        await asyncio.sleep(0)
    assert q.backlog.written == 0 and source.acked == []
    now[0] = 100.6
    q.backlog.wake()
    await until(lambda: q.backlog is not None and q.backlog.written == 3, "the old tasks to be written")
    assert source.acked == [0, 1, 2]
    assert len(await stored_ids(stores.task_queues, queue)) == 3
    assert await take_all(engine, queue, 3, pollers=1) == [0, 1, 2]
    await engine.stop()


def test_a_restart_drains_the_written_backlog_first(backend: Callable[[], Stores]) -> None:
    asyncio.run(asyncio.wait_for(_restart_drains(backend), 180))


async def _restart_drains(backend: Callable[[], Stores]) -> None:
    config = BacklogConfig(spill_after_s=3600, max_in_memory=20, write_batch=50, read_batch=40)
    stores = backend()
    engine = MatchingEngine(stores.task_queues, config=config)
    source, queue = Source(), queue_name()
    for i in range(500):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    await until(written_down(q, config), "the backlog to be written")
    assert await take_all(engine, queue, 10, pollers=1) == list(range(10))
    written = q.backlog.written if q.backlog else 0
    engine.drain()
    await engine.stop()  # saves the ack level: the ten started ones are not delivered again
    await stores.close()
    # The tasks still in memory were never acknowledged: their source offers them again.
    unacked = sorted(set(range(500)) - set(source.acked))
    assert len(unacked) == 500 - written

    stores = backend()
    engine = MatchingEngine(stores.task_queues, config=config)
    assert await engine.start([NS]) >= 1
    for i in unacked:  # the shard's transfer queue re-offers what matching had not written
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    assert await take_all(engine, queue, 490) == list(range(10, 500))
    await engine.stop()
    assert await stored_ids(stores.task_queues, queue) == []
    await stores.close()


def test_a_lost_lease_loses_nothing_and_keeps_the_order(backend: Callable[[], Stores]) -> None:
    run(_test_a_lost_lease_loses_nothing_and_keeps_the_order, backend)


async def _test_a_lost_lease_loses_nothing_and_keeps_the_order(stores: Stores) -> None:
    config = BacklogConfig(spill_after_s=3600, max_in_memory=5, write_batch=10, read_batch=10)
    engine = MatchingEngine(stores.task_queues, config=config)
    source, queue = Source(), queue_name()
    for i in range(40):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    await until(written_down(q, config), "the backlog to be written")
    assert q.backlog is not None
    generation = q.backlog.generation
    # Another matching host takes the queue: this one's next write is refused.
    await stores.task_queues.lease_task_queue(NS, queue, ACTIVITY_TASK)
    for i in range(40, 60):
        engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
    await until(lambda: q.backlog is not None and q.backlog.generation > generation, "the loss to be noticed")
    assert await take_all(engine, queue, 60) == list(range(60))
    await engine.stop()
    assert await stored_ids(stores.task_queues, queue) == []


def test_100k_tasks_with_no_worker_stay_bounded_in_memory_and_drain_in_order(
    backend: Callable[[], Stores],
) -> None:
    run(_test_100k_tasks_with_no_worker_stay_bounded_in_memory_and_drain_in_order, backend)


async def _test_100k_tasks_with_no_worker_stay_bounded_in_memory_and_drain_in_order(stores: Stores) -> None:
    """Tasks arrive in bursts, as a shard's writes hand them over; memory holds at most the
    configured tasks plus the burst in hand, never the backlog."""
    config = BacklogConfig()
    engine = MatchingEngine(stores.task_queues, config=config)
    source, queue = Source(), queue_name()
    total, burst = 100_000, 1_000
    q = engine.queue(NS, queue, ACTIVITY_TASK)
    peak = 0
    for start in range(0, total, burst):
        for i in range(start, start + burst):
            engine.add_task(NS, queue, ACTIVITY_TASK, source.task(i, queue))
        peak = max(peak, q.held_in_memory())
        await until(written_down(q, config), "the burst to be written")
    bound = burst + config.max_in_memory + config.read_batch
    assert peak <= bound
    assert q.held_in_memory() <= config.max_in_memory + config.read_batch
    assert q.backlog is not None and q.backlog.written >= total - config.max_in_memory
    # Workers start: everything arrives once, in the order it was added, memory still bounded.
    peak = 0

    def sample() -> None:
        nonlocal peak
        peak = max(peak, q.held_in_memory())

    assert await take_all(engine, queue, total, on_take=sample) == list(range(total))
    assert peak <= config.max_in_memory + config.read_batch
    assert sorted(source.acked) == list(range(total))  # each source acknowledged exactly once
    await engine.stop()
    assert await stored_ids(stores.task_queues, queue) == []


def test_bad_backlog_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"BacklogConfig.write_batch must be an integer >= 1, got 0"):
        BacklogConfig(write_batch=0)
    with pytest.raises(ValueError, match=r"BacklogConfig.spill_after_s must be >= 0, got -1"):
        BacklogConfig(spill_after_s=-1)
