"""Failing a global namespace over: the new active cluster takes over the runs it received while
standby (a timer that came due fires once, pending work is dispatched to its workers), the old
one stops writing, and the histories stay identical everywhere."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from cadenza import activity, workflow
from cadenza.engine.errors import NamespaceNotActiveError
from cadenza.schemas.events import EventType
from cadenza.worker import Worker, WorkerPool

from .clusters import Clusters, eventually, running_clusters


@activity.defn
async def step(name: str) -> str:
    return f"{name} done"


@workflow.defn
class TwoSteps:
    @workflow.run
    async def run(self) -> list[str]:
        first = await workflow.execute_activity(step, "first", start_to_close_timeout=timedelta(seconds=10))
        await workflow.sleep(timedelta(seconds=1))
        second = await workflow.execute_activity(step, "second", start_to_close_timeout=timedelta(seconds=10))
        return [first, second]


async def failover_takes_over(c: Clusters) -> None:
    """Shared with the same test on Kafka and Cassandra."""
    await c.register_global("video")
    ns = await c.hosts["active"].namespaces.get("video")
    on_active, on_standby = c.client("active", "video"), c.client("standby", "video")
    # A worker in each data centre, each polling its own cluster, built in one call.
    async with WorkerPool(
        [on_active, on_standby, c.client("other", "video")],
        task_queue="q",
        workflows=[TwoSteps],
        activities=[step],
    ):
        handles = [
            await on_active.start_workflow(TwoSteps.run, id=f"two-{i}", task_queue="q") for i in range(5)
        ]

        async def timers_started() -> bool:
            for h in handles:
                events = (await h.fetch_history()).events
                if not any(e.event_type == EventType.TIMER_STARTED for e in events):
                    return False
            return True

        await eventually(timers_started, what="every workflow sleeping")
        await eventually(c.converged, what="the standbys caught up")
        await c.hosts["active"].namespaces.update(replace(ns, active_cluster="standby"))

        async def standby_active() -> bool:
            return (await c.hosts["standby"].namespaces.get("video")).active_cluster == "standby"

        await eventually(standby_active, what="the failover replicated")
        results = [await asyncio.wait_for(on_standby.get_workflow_handle(h.id).result(), 20) for h in handles]
    assert results == [["first done", "second done"]] * 5
    moved = (await c.hosts["standby"].namespaces.get("video")).failover_version
    assert moved == 2
    await eventually(c.converged, what="identical histories after the failover")
    for h in handles:
        events = (await on_standby.get_workflow_handle(h.id).fetch_history()).events
        assert [e.event_type for e in events].count(EventType.TIMER_FIRED) == 1
        # Written by the old active before the failover, by the new one after.
        assert {e.version for e in events} == {1, 2}
    # The old active writes no more: its own write path refuses, naming the new active.
    with pytest.raises(NamespaceNotActiveError, match="its active cluster is 'standby'"):
        c.hosts["active"].namespaces.write_version(ns.id)


def test_failover_hands_pending_timers_and_work_to_the_new_active_cluster() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await failover_takes_over(c)

    asyncio.run(main())


@workflow.defn
class Quick:
    def __init__(self) -> None:
        self.pings = 0

    @workflow.run
    async def run(self, n: int) -> int:
        await workflow.execute_activity(step, str(n), start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: self.pings > 0)
        return n + self.pings

    @workflow.signal
    def ping(self) -> None:
        self.pings += 1


async def graceful_failover_under_load(c: Clusters) -> None:
    """Shared with the same test on Kafka and Cassandra."""
    await c.register_global("video")
    on_active = c.client("active", "video")
    errors: list[BaseException] = []
    started: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:
        # A client of the active cluster keeps starting and signalling workflows through
        # the failover: after the switch its requests are forwarded to the new active.
        n = 0
        while not stop.is_set():
            wid = f"q-{n}"
            try:
                await on_active.start_workflow(Quick.run, n, id=wid, task_queue="q")
                started.append(wid)
                await on_active.get_workflow_handle(wid).signal(Quick.ping)
            except BaseException as e:
                errors.append(e)
            n += 1
            await asyncio.sleep(0.005)

    async with (
        Worker(on_active, task_queue="q", workflows=[Quick], activities=[step]),
        Worker(c.client("standby", "video"), task_queue="q", workflows=[Quick], activities=[step]),
    ):
        loader = asyncio.create_task(load())

        async def under_load() -> bool:
            return len(started) >= 10

        await eventually(under_load, what="workflows starting")
        result = await c.hosts["active"].frontend.failover_namespace(
            "video", "standby", graceful=True, timeout_s=30
        )
        assert result.graceful, result.message  # its duration is measured by bench/multidc_drill.py
        assert result.namespace.active_cluster == "standby"
        switched_at = len(started)

        async def more_after_the_switch() -> bool:
            return len(started) >= switched_at + 10

        await eventually(more_after_the_switch, what="starts through the old active after the switch")
        stop.set()
        await loader
        assert errors == [], errors[:3]
        on_standby = c.client("standby", "video")
        results = [await asyncio.wait_for(on_standby.get_workflow_handle(w).result(), 20) for w in started]
    assert results == [int(w.split("-")[1]) + 1 for w in started]
    await eventually(c.converged, what="identical histories after the graceful failover")

    async def history_everywhere() -> bool:
        for host in c.hosts.values():
            h = (await host.namespaces.get("video")).failover_history
            if len(h) != 1 or not h[0].endswith("active -> standby v2 graceful"):
                return False
        return True

    await eventually(history_everywhere, what="the failover in every cluster's namespace history")
    for host in c.hosts.values():
        outcomes = host.replication.applier.outcomes
        assert outcomes.get("forked", 0) == outcomes.get("switched", 0) == 0, outcomes


def test_graceful_failover_under_load_refuses_no_request_and_forks_nothing() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await graceful_failover_under_load(c)

    asyncio.run(main())
