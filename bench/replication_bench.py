"""Replication benchmarks: three clusters (active, standby, other) on this machine, embedded defaults.

    python bench/replication_bench.py [lag|applier|overhead|all] [--seconds S] [--rate R] [--n N]
        [--real [--kafka HOST:PORT] [--cassandra HOST:PORT]] [--shards N] [--partitions N]

Every cluster keeps its workflows in its own durable SQLite file (synchronous=FULL, as the dev
server does with --db-filename) and they replicate through one embedded log file, all in this one
process (the standbys' appliers and the active's engine and worker share its event loop).

--real runs the same on the production backends of `cadenza dev services up kafka cassandra`: each
cluster on its own fresh Cassandra keyspace (consistency ONE/SERIAL, replication factor 1), and
replication through real Kafka, one topic and one DLQ topic per cluster, named for the run, with the
appliers' consumer groups named for the run too. Keyspaces and topics are dropped at the end.
Defaults there: 64 history shards per cluster (one Paxos round in flight per shard) and 16
partitions per replication topic (a standby applies that many workflows' batches at once). Target
for lag on Kafka + Cassandra: p99 <= 2 s at 100 workflows/s.

Workloads (issue targets in brackets):
  lag       hello world started on the active at --rate workflows/s for --seconds; lag of every
            batch applied on the standbys, from the source's event time to durable here
                                                                      [p99 <= 1 s at 100 workflows/s]
  applier   --n hello worlds written on the active while the standbys' appliers are paused, then
            one standby applies the backlog: events/s it applies     [>= 3,000 events/s]
  overhead  hello world at concurrency 200 on the active, --n workflows, in a local namespace
            and in a global namespace replicated to the two others (their appliers paused, so the
            figure is the active's own cost): global / local        [>= 0.75]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine.bus import Bus, CommittedOffset, EmbeddedBus
from cadenza.engine.bus.kafka import KafkaBus, KafkaConsumer
from cadenza.engine.host import Host
from cadenza.engine.persistence import Stores, open_sqlite_stores
from cadenza.engine.persistence.cassandra import CassandraSession, open_cassandra_stores_async, setup_schema
from cadenza.replication.applier import ClusterTopics
from cadenza.replication.cluster import ClusterMetadata
from cadenza.replication.service import InProcessRemote, ReplicationConfig, default_topics
from cadenza.schemas.service import NamespaceInfo
from cadenza.sdk._local import local_service
from cadenza.worker import Worker

T = timedelta(seconds=30)
NAMES = ("active", "standby", "other")


@activity.defn
async def hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(hello, name, start_to_close_timeout=T)


@dataclass
class Real:
    """Where the production backends listen (``--real``)."""

    kafka: str
    cassandra: tuple[str, int]


@dataclass
class Layout:
    real: Real | None
    shards: int
    partitions: int

    def describe(self) -> str:
        if self.real is None:
            return (
                f"embedded: SQLite file per cluster (synchronous=FULL), one embedded log file; "
                f"{self.shards} shards, {self.partitions} partitions per replication topic"
            )
        host, port = self.real.cassandra
        return (
            f"real: Cassandra {host}:{port} (keyspace per cluster, ONE/SERIAL, RF 1), Kafka "
            f"{self.real.kafka}; {self.shards} shards, {self.partitions} partitions per replication topic"
        )


class RunKafkaBus(KafkaBus):
    """A ``KafkaBus`` whose consumer groups carry the run's id: the appliers' groups are named after
    their cluster (``cadenza-replication-standby``), the same in every run and in every dev server on
    the same broker."""

    def __init__(self, bootstrap_servers: str, run: str) -> None:
        super().__init__(bootstrap_servers)
        self.run = run

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        return super().consumer(f"{group}-{self.run}", topics)

    async def committed(self, group: str, topic: str) -> dict[int, CommittedOffset]:
        return await super().committed(f"{group}-{self.run}", topic)

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        await super().set_committed(f"{group}-{self.run}", topic, offsets)


def _admin(real: Real, keyspace: str) -> CassandraSession:
    host, port = real.cassandra
    return CassandraSession.connect([host], port, keyspace, consistency="ONE", serial_consistency="SERIAL")


@asynccontextmanager
async def clusters(workdir: Path, layout: Layout) -> AsyncIterator[dict[str, Host]]:
    real = layout.real
    bus: Bus
    admin: CassandraSession | None = None
    if real is None:
        bus = EmbeddedBus(str(workdir / "replication.bus"))
        topics = default_topics(list(NAMES))
        keyspaces: dict[str, str] = {}
    else:
        run = uuid.uuid4().hex[:8]
        bus = RunKafkaBus(real.kafka, run)
        topics = {n: ClusterTopics(f"bench-{n}-{run}", f"bench-{n}-{run}-dlq") for n in NAMES}
        keyspaces = {n: f"cadenza_bench_{n}_{run}" for n in NAMES}
        admin = await asyncio.to_thread(_admin, real, keyspaces["active"])
        for ks in keyspaces.values():
            await asyncio.to_thread(setup_schema, admin, ks, replication_factor=1)

    async def stores(name: str) -> Stores:
        if real is None:
            return open_sqlite_stores(str(workdir / f"{name}.db"))
        host, port = real.cassandra
        return await open_cassandra_stores_async(
            host, port, keyspaces[name], consistency="ONE", serial_consistency="SERIAL"
        )

    remote = InProcessRemote()
    hosts: dict[str, Host] = {}
    try:
        for name in NAMES:
            cluster_stores = await stores(name)
            try:
                hosts[name] = await Host.start(
                    cluster_stores,
                    num_shards=layout.shards,
                    cluster=ClusterMetadata.dev(name),
                    replication=ReplicationConfig(bus, topics, remote=remote, partitions=layout.partitions),
                )
            except BaseException:
                await cluster_stores.close()
                raise
            remote.hosts[name] = hosts[name]
        yield hosts
    finally:
        for host in hosts.values():
            await host.stop()
            await host.stores.close()
        try:
            if isinstance(bus, KafkaBus):
                existing = await bus.list_topics()
                names = [x for t in topics.values() for x in (t.topic, t.dlq_topic, f"{t.dlq_topic}-parked")]
                await bus.delete_topics([x for x in names if x in existing])
        finally:
            await bus.close()
            if admin is not None:
                for ks in keyspaces.values():
                    await asyncio.to_thread(admin.session.execute, f"DROP KEYSPACE IF EXISTS {ks}")
                await asyncio.to_thread(admin.close_blocking)


async def _global(hosts: dict[str, Host], name: str) -> None:
    await hosts["active"].namespaces.register(
        NamespaceInfo(name=name, id="", is_global=True, clusters=list(NAMES), active_cluster="active")
    )
    while True:
        try:
            for n in NAMES:
                await hosts[n].namespaces.get(name)
            return
        except Exception:
            await asyncio.sleep(0.01)


def _client(host: Host, namespace: str) -> Client:
    return Client(local_service(host.frontend), namespace=namespace)


async def _caught_up(hosts: dict[str, Host], names: tuple[str, ...], timeout: float = 120.0) -> float:
    """Waits until the named clusters applied every history batch the active published; returns
    when (monotonic)."""
    active = hosts["active"].replication
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backlog = hosts["active"].queues.replication_backlog()
        published = active.publisher.published
        applied = [
            sum(hosts[n].replication.applier.outcomes.get(k, 0) for k in ("created", "appended", "duplicate"))
            for n in names
        ]
        if backlog == 0 and all(a >= published for a in applied):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise TimeoutError("the standbys did not catch up")


async def lag(workdir: Path, layout: Layout, seconds: float, rate: float) -> str:
    async with clusters(workdir, layout) as hosts:
        await _global(hosts, "video")
        client = _client(hosts["active"], "video")
        async with Worker(client, task_queue="q", workflows=[Hello], activities=[hello]):
            handles = []
            start = time.monotonic()
            n = int(seconds * rate)
            for i in range(n):
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                handles.append(
                    asyncio.ensure_future(
                        client.execute_workflow(Hello.run, str(i), id=f"h-{i}", task_queue="q")
                    )
                )
            await asyncio.gather(*handles)
            done = time.monotonic()
            achieved = n / (done - start)
        caught_up = await _caught_up(hosts, ("standby", "other"), timeout=600.0)
        lags = sorted(
            x / 1e3 for name in ("standby", "other") for x in hosts[name].replication.applier.lags_us
        )
    q = statistics.quantiles(lags, n=100)
    return (
        f"lag ({layout.describe()}): {n} workflows at {achieved:.0f}/s ({rate:.0f} asked), "
        f"{len(lags)} batches on two standbys: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, "
        f"max {lags[-1]:.1f} ms; standbys caught up {max(0.0, caught_up - done):.2f} s after the last "
        f"workflow completed"
    )


async def applier(workdir: Path, layout: Layout, n: int) -> str:
    async with clusters(workdir, layout) as hosts:
        await _global(hosts, "video")
        for name in ("standby", "other"):
            await hosts[name].replication.applier.pause()
        client = _client(hosts["active"], "video")
        async with Worker(client, task_queue="q", workflows=[Hello], activities=[hello]):
            sem = asyncio.Semaphore(200)

            async def one(i: int) -> None:
                async with sem:
                    await client.execute_workflow(Hello.run, str(i), id=f"h-{i}", task_queue="q")

            await asyncio.gather(*(one(i) for i in range(n)))
        while hosts["active"].queues.replication_backlog():
            await asyncio.sleep(0.01)
        a = hosts["standby"].replication.applier
        start = time.monotonic()
        a.resume()
        end = await _caught_up(hosts, ("standby",))
        events = a.events_applied
    elapsed = end - start
    return (
        f"applier: {events} events ({n} workflows) applied by one standby in {elapsed:.2f} s: "
        f"{events / elapsed:,.0f} events/s"
    )


async def _hello_throughput(client: Client, n: int, prefix: str) -> float:
    async with Worker(client, task_queue=f"q-{prefix}", workflows=[Hello], activities=[hello]):
        sem = asyncio.Semaphore(200)

        async def one(i: int) -> None:
            async with sem:
                await client.execute_workflow(Hello.run, str(i), id=f"{prefix}-{i}", task_queue=f"q-{prefix}")

        await asyncio.gather(*(one(i) for i in range(min(200, n))))  # warm-up
        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(200, n + 200)))
        return n / (time.monotonic() - start)


async def overhead(workdir: Path, layout: Layout, n: int) -> str:
    async with clusters(workdir, layout) as hosts:
        await _global(hosts, "video")
        for name in ("standby", "other"):
            await hosts[name].replication.applier.pause()
        await hosts["active"].namespaces.register(NamespaceInfo(name="local", id=""))
        local = await _hello_throughput(_client(hosts["active"], "local"), n, "l")
        glob = await _hello_throughput(_client(hosts["active"], "video"), n, "g")
        local2 = await _hello_throughput(_client(hosts["active"], "local"), n, "l2")
    base = (local + local2) / 2
    return (
        f"overhead: hello world at concurrency 200, {n} workflows: local namespace {local:.0f} and "
        f"{local2:.0f}/s, global namespace {glob:.0f}/s: global/local = {glob / base:.2f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", nargs="?", default="all", choices=["lag", "applier", "overhead", "all"])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--real", action="store_true", help="Cassandra keyspaces and Kafka topics (see above)")
    p.add_argument("--kafka", default="127.0.0.1:19092", help="with --real: Kafka bootstrap servers")
    p.add_argument("--cassandra", default="127.0.0.1:19042", help="with --real: a Cassandra node")
    p.add_argument("--shards", type=int, default=None, help="history shards per cluster [4; --real: 64]")
    p.add_argument(
        "--partitions", type=int, default=None, help="partitions per replication topic [4; --real: 16]"
    )
    args = p.parse_args()
    real = None
    if args.real:
        host, _, port = args.cassandra.rpartition(":")
        real = Real(args.kafka, (host, int(port)))
    layout = Layout(
        real,
        args.shards or (64 if real else 4),
        args.partitions or (16 if real else 4),
    )
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} python {platform.python_version()}"
    )
    for w in ["lag", "applier", "overhead"] if args.workload == "all" else [args.workload]:
        with tempfile.TemporaryDirectory() as d:
            if w == "lag":
                out = asyncio.run(lag(Path(d), layout, args.seconds, args.rate))
            elif w == "applier":
                out = asyncio.run(applier(Path(d), layout, args.n))
            else:
                out = asyncio.run(overhead(Path(d), layout, args.n))
        print(out, flush=True)


if __name__ == "__main__":
    main()
