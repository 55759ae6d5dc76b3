"""Several clusters in one process for replication tests: each its own SQLite stores and
visibility store, all replicating through one embedded log, as three dev servers on one machine
do through one log file.

The integration tests pass their own ``stores`` (a factory per cluster, e.g. Cassandra keyspaces)
and ``replication_bus`` with ``topics`` (e.g. real Kafka and per-run topic names); visibility then
stays on the embedded log and SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cadenza.client import Client
from cadenza.engine.bus import Bus, EmbeddedBus
from cadenza.engine.host import Host
from cadenza.engine.persistence import Stores, open_sqlite_stores
from cadenza.replication.applier import ClusterTopics
from cadenza.replication.cluster import ClusterInformation, ClusterMetadata
from cadenza.replication.service import InProcessRemote, ReplicationConfig, default_topics
from cadenza.schemas.codec import encode_events
from cadenza.schemas.service import NamespaceInfo
from cadenza.sdk._local import local_service
from cadenza.visibility.sqlite_store import SqliteVisibilityStore

NAMES = ("active", "standby", "other")

StoresFactory = Callable[[str], Awaitable[Stores]]
"""Opens the stores of the named cluster."""


def metadata(current: str, names: Sequence[str] = NAMES) -> ClusterMetadata:
    return ClusterMetadata(
        current_cluster_name=current,
        clusters={n: ClusterInformation(n, i + 1) for i, n in enumerate(names)},
        failover_version_increment=10,
        master_cluster_name=names[0],
        enable_global_namespace=True,
    )


@dataclass
class Clusters:
    hosts: dict[str, Host]
    bus: EmbeddedBus
    """The embedded log: visibility, and replication unless ``replication_bus`` was given."""
    remote: InProcessRemote
    topics: Mapping[str, ClusterTopics]
    replication_bus: Bus

    def client(self, cluster: str, namespace: str) -> Client:
        return Client(local_service(self.hosts[cluster].frontend), namespace=namespace)

    async def register_global(
        self, name: str, clusters: Sequence[str] | None = None, active: str = ""
    ) -> None:
        names = list(clusters or self.hosts)
        first = names[0]
        await self.hosts[first].namespaces.register(
            NamespaceInfo(name=name, id="", is_global=True, clusters=names, active_cluster=active or first)
        )
        await eventually(lambda: self.all_know(name, names))

    async def all_know(self, name: str, names: Sequence[str]) -> bool:
        for n in names:
            try:
                await self.hosts[n].namespaces.get(name)
            except Exception:
                return False
        return True

    async def histories(self, cluster: str) -> dict[tuple[str, str, str], bytes]:
        """Every run's history on ``cluster``, encoded, by (namespace id, workflow id, run id)."""
        host = self.hosts[cluster]
        out: dict[tuple[str, str, str], bytes] = {}
        for shard_id in host.history.shards:
            token: bytes | None = None
            while True:
                rows, token = await host.stores.executions.list_executions(shard_id, 500, token)
                for r in rows:
                    _, _, events = await host.history.get_state_and_events(
                        r.namespace_id, r.workflow_id, r.run_id
                    )
                    out[(r.namespace_id, r.workflow_id, r.run_id)] = encode_events(list(events))
                if not token:
                    break
        return out

    async def converged(self, names: Sequence[str] | None = None) -> bool:
        done, total = await self.agreement(names)
        return done == total

    async def agreement(self, names: Sequence[str] | None = None) -> tuple[int, int]:
        """(runs whose history on a later cluster equals the first cluster's, runs to compare):
        over every later cluster, each run either cluster has counts once, so the two are equal
        exactly when every cluster holds the same histories."""
        names = list(names or self.hosts)
        first = await self.histories(names[0])
        done = total = 0
        for n in names[1:]:
            other = await self.histories(n)
            total += len(first.keys() | other.keys())
            done += sum(1 for key, history in other.items() if first.get(key) == history)
        return done, total


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or check}")
        await asyncio.sleep(0.05)


async def while_progressing(
    progress: Callable[[], Awaitable[tuple[int, int]]], stall: float = 60.0, what: str = ""
) -> None:
    """Waits until ``progress()`` reports (done, total) with done == total; fails only when done
    has not grown for ``stall`` seconds.

    For a wait on a large batch of work (hundreds of workflows on Cassandra) whose wall time is
    set by the CPU the machine has to spare: a fixed deadline on it measures throughput, which is
    the benchmarks' business, and fails on a loaded machine. What the test asserts is that every
    item gets there, so what fails it is a stall."""
    loop = asyncio.get_running_loop()
    best = -1
    last_gain = loop.time()
    while True:
        done, total = await progress()
        if done == total:
            return
        if done > best:
            best, last_gain = done, loop.time()
        elif loop.time() - last_gain > stall:
            raise AssertionError(f"stalled at {done} of {total} for {stall} s: {what or progress}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_clusters(
    names: Sequence[str] = NAMES,
    *,
    stores: StoresFactory | None = None,
    replication_bus: Bus | None = None,
    topics: Mapping[str, ClusterTopics] | None = None,
    partitions: int = 4,
    num_shards: int = 2,
    forwarding: bool = True,
    dlq_retry_s: float = 0.5,
    **host_kwargs: Any,
) -> AsyncIterator[Clusters]:
    """``stores``: each cluster's stores (default: SQLite in memory), closed at the end.
    ``replication_bus``: what the clusters replicate through (default: the embedded log); the caller
    owns it. ``topics``: every cluster's replication topics (default: ``default_topics``), created
    with ``partitions`` each (a standby applies that many workflows' batches at once)."""
    bus = EmbeddedBus(":memory:")
    repl_bus = replication_bus if replication_bus is not None else bus
    remote = InProcessRemote()
    topics = topics if topics is not None else default_topics(list(names))
    hosts: dict[str, Host] = {}
    frontends: dict[str, Any] = {}  # filled as the clusters start: forwarding reaches them here
    owned: list[Any] = []
    try:
        for name in names:
            store = await SqliteVisibilityStore.open(":memory:")
            owned.append(store)
            cluster_stores = await stores(name) if stores is not None else open_sqlite_stores(":memory:")
            try:
                hosts[name] = await Host.start(
                    cluster_stores,
                    num_shards=num_shards,
                    cluster=metadata(name, names),
                    replication=ReplicationConfig(
                        repl_bus,
                        topics,
                        remote=remote,
                        partitions=partitions,
                        dlq_retry_s=dlq_retry_s,
                        forwarding=forwarding,
                        frontends=frontends,
                    ),
                    visibility_store=store,
                    bus=bus,
                    visibility_topic=f"{name}-visibility",
                    **host_kwargs,
                )
            except BaseException:
                await cluster_stores.close()
                raise
            remote.hosts[name] = hosts[name]
            frontends[name] = hosts[name].frontend
        yield Clusters(hosts, bus, remote, topics, repl_bus)
    finally:
        for host in hosts.values():
            await host.stop()
            await host.stores.close()
        for x in owned:
            await x.close()
        await bus.close()
