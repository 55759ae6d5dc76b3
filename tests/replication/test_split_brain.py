"""A forced split brain heals with nothing lost.

Replication between the clusters is paused, the namespace is forced active on the standby while the
old active keeps taking writes, signals, a cancel request and a termination reach both sides, then
both records are forced to the same active cluster and replication resumes. Every cluster ends with
the same current history of every run, every signal accepted anywhere appears exactly once on it,
and the losing branches are kept.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

from cadenza.schemas.events import EventType

from .clusters import NAMES, Clusters, eventually, running_clusters
from .workflows import Waiter


async def _signals(c: Clusters, cluster: str, namespace_id: str, workflow_id: str) -> list[str]:
    _, _, events = await c.hosts[cluster].history.get_state_and_events(namespace_id, workflow_id, "")
    return [
        e.attributes["input"][0]["data"].decode().strip('"')
        for e in events
        if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
    ]


async def split_brain_heals(c: Clusters, *, timeout: float = 30.0) -> tuple[str, dict[str, set[str]]]:
    """The split, the writes on both sides, the heal, and what every cluster must then hold; shared
    with the same test on Kafka and Cassandra. Returns the namespace id and the signals expected."""
    await c.register_global("video")
    ns_id = (await c.hosts["active"].namespaces.get("video")).id
    on_active, on_standby = c.client("active", "video"), c.client("standby", "video")
    for i in range(6):
        await on_active.start_workflow(Waiter.run, id=f"w-{i}", task_queue="q")
        await on_active.get_workflow_handle(f"w-{i}").signal(Waiter.note, f"before-{i}")
    await eventually(c.converged, timeout=timeout, what="initial convergence")

    # The split: nothing flows between the clusters, and both take writes.
    for host in c.hosts.values():
        await host.replication.applier.pause()
    forced = await c.hosts["standby"].namespaces.force_active("video", "standby")
    assert forced.failover_version == 2

    await on_active.get_workflow_handle("w-0").signal(Waiter.note, "a-0")
    await on_standby.get_workflow_handle("w-0").signal(Waiter.note, "s-0")
    await on_active.get_workflow_handle("w-1").signal(Waiter.note, "a-1")
    await on_active.get_workflow_handle("w-1").signal(Waiter.note, "a-1b")
    await on_standby.get_workflow_handle("w-1").signal(Waiter.note, "s-1")
    await on_standby.get_workflow_handle("w-2").signal(Waiter.note, "s-2")
    await on_active.get_workflow_handle("w-3").cancel()
    await on_standby.get_workflow_handle("w-3").signal(Waiter.note, "s-3")
    await on_standby.get_workflow_handle("w-4").terminate("split")
    await on_active.get_workflow_handle("w-5").signal(Waiter.note, "a-5")
    # A workflow id both sides start afresh: two runs, one of which must end up current everywhere.
    older = await on_active.start_workflow(Waiter.run, id="both", task_queue="q")
    await older.signal(Waiter.note, "on-old")
    newer = await on_standby.start_workflow(Waiter.run, id="both", task_queue="q")

    # The heal: the old active's record is forced the same way, replication resumes.
    await c.hosts["active"].namespaces.force_active("video", "standby")
    for host in c.hosts.values():
        host.replication.applier.resume()
    await eventually(c.converged, timeout=timeout, what="convergence after the split")

    expected = {
        "w-0": {"before-0", "a-0", "s-0"},
        "w-1": {"before-1", "a-1", "a-1b", "s-1"},
        "w-2": {"before-2", "s-2"},
        "w-3": {"before-3", "s-3"},
        "w-5": {"before-5", "a-5"},
        "both": {"on-old"},
    }

    async def every_signal_everywhere() -> bool:
        # Converged histories may still lack a losing branch's signals: the active cluster
        # re-applies them when that branch reaches it, which can be after the others agreed.
        for cluster in NAMES:
            for wid, want in expected.items():
                if Counter(await _signals(c, cluster, ns_id, wid)) != Counter(want):
                    return False
        return await c.converged()

    await eventually(every_signal_everywhere, timeout=timeout, what="every signal, once, everywhere")
    for cluster in NAMES:
        for wid, want in expected.items():
            got = await _signals(c, cluster, ns_id, wid)
            assert Counter(got) == Counter(want), (cluster, wid, got)
        _, ms, events = await c.hosts[cluster].history.get_state_and_events(ns_id, "w-3", "")
        assert [e.event_type for e in events].count(EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED) == 1
        _, ms, events = await c.hosts[cluster].history.get_state_and_events(ns_id, "w-4", "")
        assert events[-1].event_type == EventType.WORKFLOW_EXECUTION_TERMINATED
    # "both": the run with the higher version (the standby's) is current everywhere; the older run
    # is kept on every cluster, terminated by the cluster that wrote it (a zombie elsewhere until
    # that termination arrived), with its signal still in its history.
    for cluster in NAMES:
        store = c.hosts[cluster].history
        _, current, _ = await store.get_state_and_events(ns_id, "both", "")
        assert current.info.run_id == newer.first_run_id and current.is_running, cluster
        _, old_ms, old_events = await store.get_state_and_events(ns_id, "both", older.first_run_id or "")
        assert old_events[-1].event_type == EventType.WORKFLOW_EXECUTION_TERMINATED, cluster
        assert old_events[-1].version == 1 and old_events[-1].attributes["identity"] == "cadenza-replication"
        assert not old_ms.is_running, cluster
        assert "on-old" in [
            e.attributes["input"][0]["data"].decode().strip('"')
            for e in old_events
            if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
        ]
        # The signal the older run took is not lost with it: the current run has it, once.
        assert await _signals(c, cluster, ns_id, "both") == ["on-old"], cluster
    # The old active's own writes of w-0 lost; its branch is kept beside the winner.
    _, ms, _ = await c.hosts["active"].history.get_state_and_events(ns_id, "w-0", "")
    assert ms.branches, "the losing branch is kept"
    assert ms.version_history[-1][1] == 2
    # Both sides of the conflict were taken: the old active switched to the winner, the new
    # active kept its branch and re-applied what the loser had.
    assert c.hosts["active"].replication.applier.outcomes.get("switched", 0) >= 2
    assert c.hosts["standby"].replication.applier.outcomes.get("forked", 0) >= 2
    return ns_id, expected


def test_split_brain_heals_with_identical_histories_and_no_lost_signal() -> None:
    async def main() -> None:
        async with running_clusters(forwarding=False) as c:  # each side takes its own writes
            ns_id, expected = await split_brain_heals(c)
            # ... and readable: `wf describe` lists the branches, `wf show --branch` reads one.
            handle = c.client("active", "video").get_workflow_handle("w-0")
            described = await handle.describe()
            assert len(described.version_histories) == 2
            loser = described.version_histories[1].split(":")[0]
            lost = await handle.fetch_history(branch_id=loser)
            lost_signals = [
                e.attributes["input"][0]["data"].decode().strip('"')
                for e in lost.events
                if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
            ]
            assert lost_signals == ["before-0", "a-0"]
            # Failing over to the old active after the heal: it takes over runs whose losing
            # branch it holds, and re-applies nothing twice (re-applied events name their origin).
            info = await c.hosts["standby"].namespaces.get("video")
            await c.hosts["standby"].namespaces.update(replace(info, active_cluster="active"))
            ns_active = c.hosts["active"].namespaces

            async def active_again() -> bool:
                return (await ns_active.get("video")).active_cluster == "active"

            await eventually(active_again, what="the failover back to the old active")
            await asyncio.sleep(0.5)  # its take-over runs
            await eventually(c.converged, timeout=30, what="convergence after failing back")
            for cluster in NAMES:
                for wid, want in expected.items():
                    got = await _signals(c, cluster, ns_id, wid)
                    assert Counter(got) == Counter(want), ("after failing back", cluster, wid, got)

    asyncio.run(main())


def test_a_gap_is_filled_from_the_branch_the_source_has_since_replaced() -> None:
    """After a split brain the old active switches its run to the winner's branch; a cluster that
    still misses some of the old active's batches asks it for them, and gets them from the branch
    they were written on (kept beside the winner), not from the winner's."""

    async def main() -> None:
        async with running_clusters(forwarding=False) as c:
            await c.register_global("video")
            ns_id = (await c.hosts["active"].namespaces.get("video")).id
            on_active, on_standby = c.client("active", "video"), c.client("standby", "video")
            await on_active.start_workflow(Waiter.run, id="gap", task_queue="q")
            await eventually(c.converged, what="initial convergence")
            for host in c.hosts.values():
                await host.replication.applier.pause()
            await c.hosts["standby"].namespaces.force_active("video", "standby")
            await on_active.get_workflow_handle("gap").signal(Waiter.note, "a-1")
            await on_active.get_workflow_handle("gap").signal(Waiter.note, "a-2")
            await on_standby.get_workflow_handle("gap").signal(Waiter.note, "s-1")
            await c.hosts["active"].namespaces.force_active("video", "standby")
            # Only the old active learns of the winner: it switches, keeping its branch.
            c.hosts["active"].replication.applier.resume()

            async def switched() -> bool:
                return c.hosts["active"].replication.applier.outcomes.get("switched", 0) >= 1

            await eventually(switched, what="the old active switched to the standby's branch")
            from .test_bad_input import published

            batches = await published(c.bus, ns_id, "gap")
            # 'other' gets the old active's last batch without the one before it: a gap whose
            # events only the old active's replaced branch holds.
            last = batches[-1]
            assert last.first_event_id > (await _next_event_id(c, "other", ns_id))
            await c.hosts["other"].replication.applier.apply(last, "active")
            _, _, events = await c.hosts["other"].history.get_state_and_events(ns_id, "gap", "")
            assert [_text(e) for e in events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED] == [
                "a-1",
                "a-2",
            ]
            for host in c.hosts.values():
                host.replication.applier.resume()

            async def every_signal_everywhere() -> bool:
                for cluster in NAMES:
                    got = await _signals(c, cluster, ns_id, "gap")
                    if Counter(got) != Counter(["a-1", "a-2", "s-1"]):
                        return False
                return await c.converged()

            # The old active's signals are re-applied by the standby once it sees that branch.
            await eventually(every_signal_everywhere, what="every signal in every cluster's history")

    asyncio.run(main())


async def _next_event_id(c: Clusters, cluster: str, namespace_id: str) -> int:
    _, ms, _ = await c.hosts[cluster].history.get_state_and_events(namespace_id, "gap", "")
    return ms.next_event_id


def _text(e: object) -> str:
    return e.attributes["input"][0]["data"].decode().strip('"')  # type: ignore[attr-defined, no-any-return]


def test_a_batch_from_elsewhere_meets_a_started_workflow_task_on_the_active_cluster() -> None:
    """The namespace was forced active on the standby, whose worker has started the run's workflow
    task when the old active's signal arrives: the batch applies at once (not retried into the DLQ)
    and its signal is in the run, whichever way the two meet."""

    async def main() -> None:
        async with running_clusters(forwarding=False) as c:
            await c.register_global("video")
            ns_id = (await c.hosts["active"].namespaces.get("video")).id
            on_active, on_standby = c.client("active", "video"), c.client("standby", "video")
            await on_active.start_workflow(Waiter.run, id="busy", task_queue="q")
            await eventually(c.converged, what="initial convergence")
            for host in c.hosts.values():
                await host.replication.applier.pause()
            await c.hosts["standby"].namespaces.force_active("video", "standby")
            from .test_bad_input import published

            before = len(await published(c.bus, ns_id, "busy"))
            await on_active.get_workflow_handle("busy").signal(Waiter.note, "a-1")

            async def signal_published() -> bool:
                return len(await published(c.bus, ns_id, "busy")) > before

            await eventually(signal_published, what="the old active published its signal")
            # The standby took over the run: its workflow task is offered there, and started.
            task = await on_standby.service.poll_workflow_task_queue("video", "q", timeout_s=10)
            assert task is not None and task.workflow_execution.workflow_id == "busy"
            signal_batch = (await published(c.bus, ns_id, "busy"))[-1]
            await c.hosts["standby"].replication.applier.apply(signal_batch, "active")
            _, ms, events = await c.hosts["standby"].history.get_state_and_events(ns_id, "busy", "")
            signals = [
                e
                for e in [*events, *ms.buffered_events]
                if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
            ]
            assert [_text(e) for e in signals] == ["a-1"]

    asyncio.run(main())
