"""Replication benchmarks: three clusters (active, standby, other) on this machine, embedded defaults.

    python bench/replication_bench.py [lag|applier|overhead|all] [--seconds S] [--rate R] [--n N]

Every cluster keeps its workflows in its own durable SQLite file (synchronous=FULL, as the dev
server does with --db-filename) and they replicate through one embedded log file, all in this one
process (the standbys' appliers and the active's engine and worker share its event loop).

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine.bus import EmbeddedBus
from cadenza.engine.host import Host
from cadenza.engine.persistence import open_sqlite_stores
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


@asynccontextmanager
async def clusters(workdir: Path) -> AsyncIterator[dict[str, Host]]:
    bus = EmbeddedBus(str(workdir / "replication.bus"))
    remote = InProcessRemote()
    hosts: dict[str, Host] = {}
    try:
        for name in NAMES:
            hosts[name] = await Host.start(
                open_sqlite_stores(str(workdir / f"{name}.db")),
                num_shards=4,
                cluster=ClusterMetadata.dev(name),
                replication=ReplicationConfig(bus, default_topics(list(NAMES)), remote=remote),
            )
            remote.hosts[name] = hosts[name]
        yield hosts
    finally:
        for host in hosts.values():
            await host.stop()
            await host.stores.close()
        await bus.close()


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


async def lag(workdir: Path, seconds: float, rate: float) -> str:
    async with clusters(workdir) as hosts:
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
            achieved = n / (time.monotonic() - start)
        await _caught_up(hosts, ("standby", "other"))
        lags = sorted(
            x / 1e3 for name in ("standby", "other") for x in hosts[name].replication.applier.lags_us
        )
    q = statistics.quantiles(lags, n=100)
    return (
        f"lag: {n} workflows at {achieved:.0f}/s ({rate:.0f} asked), {len(lags)} batches on two standbys: "
        f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lags[-1]:.1f} ms"
    )


async def applier(workdir: Path, n: int) -> str:
    async with clusters(workdir) as hosts:
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


async def overhead(workdir: Path, n: int) -> str:
    async with clusters(workdir) as hosts:
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
    args = p.parse_args()
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} python {platform.python_version()}"
    )
    for w in ["lag", "applier", "overhead"] if args.workload == "all" else [args.workload]:
        with tempfile.TemporaryDirectory() as d:
            if w == "lag":
                out = asyncio.run(lag(Path(d), args.seconds, args.rate))
            elif w == "applier":
                out = asyncio.run(applier(Path(d), args.n))
            else:
                out = asyncio.run(overhead(Path(d), args.n))
        print(out, flush=True)


if __name__ == "__main__":
    main()
