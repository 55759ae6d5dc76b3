"""Matching remembers who polls each task queue (``DescribeTaskQueue``'s pollers): by identity, with
the last access time from the injected clock, the worker's sticky queue, an expiry and a bound."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.engine.clock import ManualClock
from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK, MatchingEngine, MatchTask
from cadenza.engine.matching_pollers import PollerHistoryConfig
from cadenza.schemas.service import PollerInfo

NS = "ns-1"
S = 1_000_000  # microseconds


def _engine(clock: ManualClock, **config: float) -> MatchingEngine:
    return MatchingEngine(now_us=clock.now_us, poller_history=PollerHistoryConfig(**config))  # type: ignore[arg-type]


def test_each_poll_records_its_identity_and_time_per_queue_and_task_type() -> None:
    async def main() -> None:
        clock = ManualClock()
        m = _engine(clock)
        start = clock.now_us()
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="w1")
        clock.advance(2)
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="w2")
        await m.poll(NS, "orders", ACTIVITY_TASK, 0, identity="w1")
        clock.advance(3)
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="w1")  # refreshed
        assert m.pollers(NS, "orders", WORKFLOW_TASK) == [
            PollerInfo("w1", start + 5 * S),
            PollerInfo("w2", start + 2 * S),
        ]
        assert m.pollers(NS, "orders", ACTIVITY_TASK) == [PollerInfo("w1", start + 2 * S)]
        assert m.pollers(NS, "other", WORKFLOW_TASK) == []
        assert m.pollers("ns-2", "orders", WORKFLOW_TASK) == []

    asyncio.run(main())


def test_a_poller_not_seen_within_the_expiry_is_forgotten() -> None:
    async def main() -> None:
        clock = ManualClock()
        m = _engine(clock, ttl_s=300.0)
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="gone")
        clock.advance(200)
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="alive")
        clock.advance(100 + 1e-6)
        assert [p.identity for p in m.pollers(NS, "orders", WORKFLOW_TASK)] == ["alive"]
        assert ("gone", "") not in m.queue(NS, "orders", WORKFLOW_TASK).pollers_seen

    asyncio.run(main())


def test_the_record_of_one_queue_stays_within_its_bound_dropping_the_oldest() -> None:
    async def main() -> None:
        clock = ManualClock()
        m = _engine(clock, max_size=10)
        for i in range(25):
            clock.advance(1)
            await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity=f"w{i}")
            assert len(m.queue(NS, "orders", WORKFLOW_TASK).pollers_seen) <= 10
        names = [p.identity for p in m.pollers(NS, "orders", WORKFLOW_TASK)]
        assert names[0] == "w24" and "w0" not in names
        assert names == sorted(names, key=lambda n: -int(n[1:]))  # the newest are the ones kept

    asyncio.run(main())


def test_sticky_polls_show_on_the_normal_queue_with_the_workers_sticky_queue() -> None:
    async def main() -> None:
        clock = ManualClock()
        m = _engine(clock)
        start = clock.now_us()
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="w1")
        # Before a task names the sticky queue's normal queue, its polls stay on the sticky queue.
        await m.poll(NS, "orders:sticky:a", WORKFLOW_TASK, 0, identity="w1")
        assert m.pollers(NS, "orders", WORKFLOW_TASK) == [PollerInfo("w1", start)]
        task = MatchTask(NS, "wf", "run", 2, 1)
        task.normal_queue, task.sticky_timeout_ms = "orders", 5000
        m.add_task(NS, "orders:sticky:a", WORKFLOW_TASK, task)
        clock.advance(1)
        assert await m.poll(NS, "orders:sticky:a", WORKFLOW_TASK, 0, identity="w1") is task
        await m.poll(NS, "orders", WORKFLOW_TASK, 0, identity="w2")
        assert m.pollers(NS, "orders", WORKFLOW_TASK) == [
            PollerInfo("w1", start + S, "orders:sticky:a"),
            PollerInfo("w2", start + S),
        ]
        # Describing the sticky queue itself shows only its own worker.
        assert m.pollers(NS, "orders:sticky:a", WORKFLOW_TASK) == [
            PollerInfo("w1", start + S, "orders:sticky:a")
        ]

        # A task handed straight to a waiting sticky poller (no queueing) links the queue too.
        waiting = asyncio.create_task(m.poll(NS, "orders:sticky:b", WORKFLOW_TASK, 10, identity="w2"))
        await asyncio.sleep(0)
        handed = MatchTask(NS, "wf-2", "run-2", 2, 1)
        handed.normal_queue, handed.sticky_timeout_ms = "orders", 5000
        assert m.hand_over(NS, "orders:sticky:b", WORKFLOW_TASK, handed)
        assert await waiting is handed
        clock.advance(1)
        await m.poll(NS, "orders:sticky:b", WORKFLOW_TASK, 0, identity="w2")
        assert PollerInfo("w2", start + 2 * S, "orders:sticky:b") in m.pollers(NS, "orders", WORKFLOW_TASK)

    asyncio.run(main())


@pytest.mark.parametrize(("ttl_s", "max_size"), [(0.0, 10), (-1.0, 10), (60.0, 0)])
def test_a_bad_poller_history_config_is_refused_naming_the_field(ttl_s: float, max_size: int) -> None:
    with pytest.raises(ValueError, match="ttl_s" if ttl_s <= 0 else "max_size"):
        PollerHistoryConfig(ttl_s=ttl_s, max_size=max_size)
