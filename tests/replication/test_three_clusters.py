"""Three clusters, one global namespace: what the active cluster writes appears, event for event,
on the others; the standbys refuse writes; visibility follows."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from cadenza.client import Client
from cadenza.engine.rpc import RpcServer
from cadenza.exceptions import RPCError
from cadenza.schemas.events import EventType
from cadenza.worker import Worker

from .clusters import NAMES, eventually, running_clusters
from .workflows import PROGRESS, Child, Mixed, Progress, Waiter, double, report_progress


def test_global_namespace_and_workflows_replicate_event_for_event() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await c.register_global("video")
            infos = [await c.hosts[n].namespaces.get("video") for n in NAMES]
            assert {i.id for i in infos} == {infos[0].id}
            assert all(i.active_cluster == "active" and i.failover_version == 1 for i in infos)
            assert all(i.clusters == list(NAMES) for i in infos)

            client = c.client("active", "video")
            async with Worker(client, task_queue="q", workflows=[Mixed, Child], activities=[double]):
                handles = [
                    await client.start_workflow(Mixed.run, i, 2, id=f"mixed-{i}", task_queue="q")
                    for i in range(20)
                ]

                async def continued() -> bool:
                    for h in handles:
                        d = await client.get_workflow_handle(h.id).describe()
                        if d.run_id == h.first_run_id or d.status != "RUNNING":
                            return False
                    return True

                await eventually(continued, what="every workflow continued as new")
                for h in handles:
                    await client.get_workflow_handle(h.id).signal(Mixed.go, "active")
                results = [await client.get_workflow_handle(h.id).result() for h in handles]
            assert results == [16 * i + 1 for i in range(20)]  # (2i + 2i) doubled twice, plus one signal
            await eventually(c.converged, what="identical histories on every cluster")
            histories = await c.histories("standby")
            assert len(histories) == 20 * 2 * 2  # two runs of each workflow and of its children

            async def records(cluster: str) -> list[tuple[object, ...]]:
                fe = c.hosts[cluster].frontend
                out: list[tuple[object, ...]] = []
                token = None
                while True:
                    page = await fe.list_workflow_executions("video", "", 1000, token)
                    out += [
                        (
                            e.workflow_id,
                            e.run_id,
                            e.workflow_type,
                            e.status,
                            e.start_time,
                            e.close_time,
                            e.history_length,
                            e.task_queue,
                        )
                        for e in page.executions
                    ]
                    token = page.next_page_token
                    if not token:
                        return sorted(out)

            async def same_visibility() -> bool:
                mine = await records("active")
                return len(mine) == 80 and all([await records(n) == mine for n in ("standby", "other")])

            # Every cluster indexes what it applied: the same visibility records everywhere.
            await eventually(same_visibility, what="the same visibility records on every cluster")
            # every replicated event carries the namespace's failover version
            events = await c.hosts["other"].history.get_state_and_events(infos[0].id, "mixed-3", "")
            assert {e.version for e in events[2]} == {1}

    asyncio.run(main())


def test_without_forwarding_a_standby_refuses_writes_naming_the_active_cluster() -> None:
    async def main() -> None:
        async with running_clusters(forwarding=False) as c:
            await c.register_global("video")
            active = c.client("active", "video")
            await active.start_workflow(Waiter.run, id="w-1", task_queue="q")
            await eventually(c.converged)
            standby = c.client("standby", "video")
            with pytest.raises(RPCError) as e:
                await standby.get_workflow_handle("w-1").signal(Waiter.note, "hi")
            assert "not active in cluster 'standby'" in str(e.value)
            assert "'active'" in str(e.value)
            with pytest.raises(RPCError):
                await standby.start_workflow(Waiter.run, id="w-2", task_queue="q")
            # reads work on the standby
            history = await standby.get_workflow_handle("w-1").fetch_history()
            assert history.events[0].event_type.name == "WORKFLOW_EXECUTION_STARTED"

    asyncio.run(main())


def test_a_client_given_every_clusters_address_follows_the_active_cluster() -> None:
    """``Client.connect([standby, active, other])`` without forwarding: writes refused by a standby
    move on to the cluster that takes them, and after a failover the client follows again."""

    async def main() -> None:
        async with running_clusters(forwarding=False) as c:
            servers = {n: RpcServer(h.frontend) for n, h in c.hosts.items()}
            ports = {n: await srv.start("127.0.0.1", 0) for n, srv in servers.items()}
            client = await Client.connect(
                [f"127.0.0.1:{ports[n]}" for n in ("standby", "active", "other")], namespace="video"
            )
            try:
                await c.register_global("video")
                handle = await client.start_workflow(Waiter.run, id="follow-1", task_queue="q")
                await handle.signal(Waiter.note, "one")
                _, _, events = await c.hosts["active"].history.get_state_and_events(
                    (await c.hosts["active"].namespaces.get("video")).id, "follow-1", ""
                )
                assert [e.version for e in events] == [1] * len(events)
                await eventually(c.converged)
                ns = await c.hosts["active"].namespaces.get("video")
                await c.hosts["active"].namespaces.update(replace(ns, active_cluster="other"))

                async def everywhere() -> bool:
                    infos = [await h.namespaces.get("video") for h in c.hosts.values()]
                    return all(i.active_cluster == "other" for i in infos)

                await eventually(everywhere, what="the failover everywhere")
                await handle.signal(Waiter.note, "two")
                _, _, events = await c.hosts["other"].history.get_state_and_events(ns.id, "follow-1", "")
                assert events[-1].event_type == EventType.WORKFLOW_EXECUTION_SIGNALED
                assert events[-1].version == 3  # written by the new active cluster, 'other'
            finally:
                await client.service.close()  # type: ignore[attr-defined]
                for srv in servers.values():
                    await srv.stop(0)

    asyncio.run(main())


def test_a_pending_activitys_attempt_and_heartbeat_reach_the_standbys() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await c.register_global("video")
            ns_id = (await c.hosts["active"].namespaces.get("video")).id
            client = c.client("active", "video")
            PROGRESS["p-1"] = asyncio.Event()
            async with Worker(client, task_queue="q", workflows=[Progress], activities=[report_progress]):
                handle = await client.start_workflow(Progress.run, "p-1", id="p-1", task_queue="q")

                async def synced() -> bool:
                    for name in ("standby", "other"):
                        try:
                            _, ms = await c.hosts[name].history.get_state(ns_id, "p-1", "")
                        except Exception:
                            return False
                        acts = list(ms.activities.values())
                        if not acts or acts[0].attempt != 2 or not acts[0].heartbeat_details:
                            return False
                    return True

                await eventually(synced, what="attempt 2 and its heartbeat on every standby")
                _, ms = await c.hosts["standby"].history.get_state(ns_id, "p-1", "")
                act = next(iter(ms.activities.values()))
                assert act.heartbeat_details is not None and b"step-2" in act.heartbeat_details[0]["data"]
                assert act.last_failure is not None and "first attempt fails" in act.last_failure["message"]
                assert act.started_time > 0
                PROGRESS["p-1"].set()
                assert await handle.result() == "done"
            await eventually(c.converged, what="identical histories")

    asyncio.run(main())


def test_a_standby_forwards_the_selected_apis_to_the_active_cluster() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await c.register_global("video")
            standby = c.client("standby", "video")
            # A client in the standby's data centre: its start, signal, query, describe and
            # terminate reach the active cluster; the worker serves the active cluster.
            async with Worker(c.client("active", "video"), task_queue="q", workflows=[Waiter]):
                handle = await standby.start_workflow(Waiter.run, id="fw-1", task_queue="q")
                await standby.get_workflow_handle("fw-1").signal(Waiter.note, "from standby")
                await standby.get_workflow_handle("fw-1").signal(Waiter.note, "finish")
                assert await handle.result() == ["from standby", "finish"]
                assert (await standby.get_workflow_handle("fw-1").describe()).status == "COMPLETED"
                await standby.start_workflow(Waiter.run, id="fw-2", task_queue="q")
                await standby.get_workflow_handle("fw-2").terminate("done here")
            assert c.hosts["standby"].replication.forwarder.forwarded >= 6
            assert c.hosts["active"].replication.forwarder.forwarded == 0
            await eventually(c.converged, what="the forwarded writes replicated back")
            ns_id = (await c.hosts["standby"].namespaces.get("video")).id
            _, _, events = await c.hosts["standby"].history.get_state_and_events(ns_id, "fw-2", "")
            assert events[-1].event_type.name == "WORKFLOW_EXECUTION_TERMINATED"
            assert {e.version for e in events} == {1}, "written by the active cluster"

    asyncio.run(main())
