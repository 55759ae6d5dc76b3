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
from cadenza.worker import Worker

from .clusters import eventually, running_clusters


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


def test_failover_hands_pending_timers_and_work_to_the_new_active_cluster() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await c.register_global("video")
            ns = await c.hosts["active"].namespaces.get("video")
            on_active, on_standby = c.client("active", "video"), c.client("standby", "video")
            # A worker in each data centre, each polling its own cluster.
            async with (
                Worker(on_active, task_queue="q", workflows=[TwoSteps], activities=[step]),
                Worker(on_standby, task_queue="q", workflows=[TwoSteps], activities=[step]),
            ):
                handles = [
                    await on_active.start_workflow(TwoSteps.run, id=f"two-{i}", task_queue="q")
                    for i in range(5)
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
                results = [
                    await asyncio.wait_for(on_standby.get_workflow_handle(h.id).result(), 20) for h in handles
                ]
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

    asyncio.run(main())
