"""Cross-cluster replication on the production backends.

Three clusters (active, standby, other) run in this process, each on its own Cassandra keyspace,
and replicate through one real Kafka with topics and consumer groups unique to the test run; missing
events are fetched in process. Visibility stays on the embedded log and SQLite: what is tested here
is history replication over Kafka and Cassandra. The scenarios are those of ``tests/replication``
on the embedded backends. Keyspaces and topics are dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from replication.clusters import NAMES, Clusters, running_clusters, while_progressing
from replication.test_failover import failover_takes_over, graceful_failover_under_load
from replication.test_split_brain import split_brain_heals
from replication.workflows import Child, Mixed, double

from cadenza.engine.bus import CommittedOffset
from cadenza.engine.bus.kafka import KafkaBus, KafkaConsumer
from cadenza.engine.persistence import Stores
from cadenza.engine.persistence.cassandra import (
    CassandraSession,
    CassandraStores,
    open_cassandra_stores_async,
    setup_schema,
)
from cadenza.replication.applier import ClusterTopics
from cadenza.worker import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]

WORKFLOWS = 200
PARTITIONS = 16
"""Of each replication topic: a standby applies as many workflows' batches at once. An apply takes
30-90 ms on Cassandra on a two-core machine, so with the embedded tests' 4 the standbys of this
test end about a minute behind the active cluster."""


class RunScopedKafkaBus(KafkaBus):
    """A ``KafkaBus`` whose consumer groups carry the run's suffix.

    The appliers' groups are named after their cluster (``cadenza-replication-active``), the same in
    every run; the suffix keeps concurrent runs on the same broker out of each other's groups."""

    def __init__(self, bootstrap_servers: str, suffix: str) -> None:
        super().__init__(bootstrap_servers)
        self.suffix = suffix

    def _group(self, group: str) -> str:
        return f"{group}-{self.suffix}"

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        return super().consumer(self._group(group), topics)

    async def committed(self, group: str, topic: str) -> dict[int, CommittedOffset]:
        return await super().committed(self._group(group), topic)

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        await super().set_committed(self._group(group), topic, offsets)


def _admin_session(contact: tuple[str, int], keyspace: str) -> CassandraSession:
    return CassandraSession.connect(
        [contact[0]], contact[1], keyspace, consistency="ONE", serial_consistency="SERIAL"
    )


@contextlib.asynccontextmanager
async def kafka_cassandra_clusters(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], names: Sequence[str] = NAMES, **options: Any
) -> AsyncIterator[Clusters]:
    """``running_clusters`` with each cluster on a fresh keyspace ``cadenza_repl_<cluster>_<run>``,
    replicating through Kafka topics ``<cluster>-<run>`` (DLQ ``<cluster>-<run>-dlq``)."""
    run = uuid.uuid4().hex[:8]
    keyspaces = {name: f"cadenza_repl_{name}_{run}" for name in names}
    topics = {name: ClusterTopics(f"{name}-{run}", f"{name}-{run}-dlq") for name in names}
    admin = await asyncio.to_thread(_admin_session, cassandra_contact, keyspaces[names[0]])
    bus = RunScopedKafkaBus(kafka_bootstrap, run)
    try:
        await asyncio.gather(
            *(asyncio.to_thread(setup_schema, admin, ks, replication_factor=1) for ks in keyspaces.values())
        )

        async def stores(name: str) -> Stores:
            return await open_cassandra_stores_async(
                cassandra_contact[0],
                cassandra_contact[1],
                keyspaces[name],
                consistency="ONE",
                serial_consistency="SERIAL",
            )

        async with running_clusters(
            names, stores=stores, replication_bus=bus, topics=topics, partitions=PARTITIONS, **options
        ) as c:
            yield c
    finally:
        try:
            existing = await bus.list_topics()
            await bus.delete_topics(
                [t for ct in topics.values() for t in (ct.topic, ct.dlq_topic) if t in existing]
            )
        finally:
            await bus.close()
            for ks in keyspaces.values():
                await asyncio.to_thread(admin.session.execute, f"DROP KEYSPACE IF EXISTS {ks}")
            await asyncio.to_thread(admin.close_blocking)


def test_global_namespace_and_workflows_replicate_event_for_event_on_kafka_and_cassandra(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int]
) -> None:
    async def main() -> None:
        async with kafka_cassandra_clusters(kafka_bootstrap, cassandra_contact) as c:
            started = time.monotonic()
            await c.register_global("video")
            infos = [await c.hosts[n].namespaces.get("video") for n in NAMES]
            assert {i.id for i in infos} == {infos[0].id}
            assert all(i.active_cluster == "active" and i.failover_version == 1 for i in infos)
            assert all(i.clusters == list(NAMES) for i in infos)

            client = c.client("active", "video")
            async with Worker(
                client,
                task_queue="q",
                workflows=[Mixed, Child],
                activities=[double],
                max_concurrent_workflow_tasks=32,
            ):
                handles = list(
                    await asyncio.gather(
                        *(
                            client.start_workflow(Mixed.run, i, 2, id=f"mixed-{i}", task_queue="q")
                            for i in range(WORKFLOWS)
                        )
                    )
                )

                continued: set[str] = set()

                async def continuing() -> tuple[int, int]:
                    # A run that continued stays continued (its second run waits for a signal), so
                    # only the others are described again.
                    for h in handles:
                        if h.id not in continued:
                            d = await client.get_workflow_handle(h.id).describe()
                            if d.run_id != h.first_run_id and d.status == "RUNNING":
                                continued.add(h.id)
                    return len(continued), len(handles)

                await while_progressing(continuing, what="every workflow continued as new")
                await asyncio.gather(
                    *(client.get_workflow_handle(h.id).signal(Mixed.go, "active") for h in handles)
                )
                results = await asyncio.gather(*(client.get_workflow_handle(h.id).result() for h in handles))
            assert list(results) == [16 * i + 1 for i in range(WORKFLOWS)]
            completed = time.monotonic()
            await while_progressing(c.agreement, what="identical histories on every cluster")
            converged = time.monotonic()
            histories = await c.histories("standby")
            assert len(histories) == WORKFLOWS * 2 * 2  # two runs of each workflow and of its children
            _, _, events = await c.hosts["other"].history.get_state_and_events(infos[0].id, "mixed-3", "")
            assert {e.version for e in events} == {1}
            # It went the production way: every cluster on Cassandra, every batch through Kafka.
            assert all(isinstance(h.stores, CassandraStores) for h in c.hosts.values())
            marks = await c.replication_bus.watermarks(c.topics["active"].topic)
            published = c.hosts["active"].replication.publisher.published
            assert sum(high for _, high in marks.values()) >= published > WORKFLOWS * 4 * 2
            print(
                f"{WORKFLOWS} workflows completed in {completed - started:.1f} s, "
                f"every cluster identical {converged - completed:.1f} s later"
            )

    asyncio.run(main())


def test_split_brain_heals_on_kafka_and_cassandra(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int]
) -> None:
    """``tests/replication/test_split_brain.py`` on the production backends."""

    async def main() -> None:
        async with kafka_cassandra_clusters(kafka_bootstrap, cassandra_contact, forwarding=False) as c:
            await split_brain_heals(c, timeout=45)

    asyncio.run(main())


def test_failover_takes_over_on_kafka_and_cassandra(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int]
) -> None:
    """``tests/replication/test_failover.py`` on the production backends: a timer that came due
    while standby fires once, the worker pool finishes the workflows, histories stay identical."""

    async def main() -> None:
        async with kafka_cassandra_clusters(kafka_bootstrap, cassandra_contact) as c:
            await failover_takes_over(c)

    asyncio.run(main())


def test_graceful_failover_under_load_on_kafka_and_cassandra(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int]
) -> None:
    """No request refused, no run forked, through a graceful failover on the production backends."""

    async def main() -> None:
        async with kafka_cassandra_clusters(kafka_bootstrap, cassandra_contact) as c:
            await graceful_failover_under_load(c)

    asyncio.run(main())
