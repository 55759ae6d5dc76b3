"""The engine on Cassandra: hello-world throughput, serial latency, raw store transactions.

    python bench/cassandra_bench.py [store|throughput|latency|all] [--host 127.0.0.1] [--port 19042]
        [--sqlite]    # the same engine workloads on a durable SQLite file, for comparison

Runs against the node of `cadenza dev services up cassandra` (single node: consistency ONE, serial
consistency SERIAL, replication factor 1) in a fresh keyspace that is dropped afterwards.

Workloads (issue target in brackets):
  store       raw execution transactions: create + 3 updates per run, 64 concurrent writers, 4 shards
  throughput  hello world (one activity) at concurrency 200 (--concurrency)  [>= 150 workflows/s]
  latency     serial hello world, start -> result
Every engine workload also reports persistence latency p50/p99 per store operation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.engine.persistence import (
    CreateWorkflowRequest,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    HistoryNode,
    NewRun,
    Stores,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
    open_sqlite_stores,
)
from cadenza.engine.persistence.cassandra import CassandraSession, CassandraStores, setup_schema
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

T = timedelta(seconds=30)


@activity.defn
async def hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(hello, name, start_to_close_timeout=T)


class Timings:
    """Wraps every coroutine method of a store set to record its latency per operation."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def wrap(self, stores: Stores) -> Stores:
        for attr in ("shards", "executions", "history", "task_queues", "namespaces"):
            store = getattr(stores, attr)
            for name in dir(store):
                fn = getattr(store, name)
                if name.startswith("_") or not asyncio.iscoroutinefunction(fn):
                    continue
                setattr(store, name, self._timed(f"{attr}.{name}", fn))
        return stores

    def _timed(self, key: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.samples[key].append((time.perf_counter() - t0) * 1000)

        return call

    def report(self) -> str:
        lines = []
        for key, xs in sorted(self.samples.items(), key=lambda kv: -len(kv[1])):
            xs.sort()
            p99 = xs[max(0, int(len(xs) * 0.99) - 1)]
            lines.append(
                f"    {key:<42} n={len(xs):>6}  p50 {statistics.median(xs):7.2f} ms  p99 {p99:7.2f} ms"
            )
        return "\n".join(lines)


class Backend:
    def __init__(self, args: argparse.Namespace) -> None:
        self.sqlite = args.sqlite
        self.shards = args.shards
        self.concurrency = args.concurrency
        self.visibility = args.visibility
        self.host, self.port = args.host, args.port
        self.keyspace = f"cadenza_bench_{uuid.uuid4().hex[:8]}"
        self._tmp = tempfile.TemporaryDirectory()
        self._session: CassandraSession | None = None

    def describe(self) -> str:
        if self.sqlite:
            return "durable SQLite file (synchronous=FULL)"
        return f"Cassandra 5.0 single node at {self.host}:{self.port} (consistency ONE/SERIAL, RF 1)"

    def __enter__(self) -> Backend:
        if not self.sqlite:
            self._session = CassandraSession.connect(
                [self.host], self.port, self.keyspace, consistency="ONE", serial_consistency="SERIAL"
            )
            setup_schema(self._session, self.keyspace, replication_factor=1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")
            self._session.close_blocking()
        self._tmp.cleanup()

    def stores(self) -> Stores:
        if self._session is None:
            return open_sqlite_stores(Path(self._tmp.name) / f"{uuid.uuid4().hex}.db")
        return CassandraStores(self._session, close_session=False)

    def group_factor(self, stores: Stores) -> str:
        if isinstance(stores, CassandraStores):
            batches, requests = stores.group_stats()
            return f" ({requests / max(batches, 1):.1f} execution writes per LWT batch)"
        return ""


def _row(ns: str, wf: str, run: str, version: int) -> ExecutionRow:
    return ExecutionRow(
        ns,
        wf,
        run,
        ExecutionState.RUNNING,
        ExecutionStatus.RUNNING,
        version + 1,
        version,
        0,
        "req",
        b"s" * 600,
    )


async def store(backend: Backend, runs: int = 1500, concurrency: int = 64, shards: int = 4) -> str:
    stores = backend.stores()
    # Shard ids far from the engine's (0..3): these rows hold fake task blobs.
    ranges = {s: (await stores.shards.acquire_shard(s, "bench")).range_id for s in range(1000, 1000 + shards)}
    next_id = [1 << 40]

    def ids(n: int) -> list[int]:
        start = next_id[0]
        next_id[0] += n
        return list(range(start, start + n))

    async def one_run(i: int) -> None:
        shard, ns, wf, run = 1000 + i % shards, "ns", f"wf-{i}", str(uuid.uuid4())
        t1, t2 = ids(2)
        first = [HistoryAppend(run, run, HistoryNode(1, t1, b"e" * 300, 2), is_new_branch=True)]
        await stores.executions.create_workflow_execution(
            CreateWorkflowRequest(
                shard,
                ranges[shard],
                NewRun(_row(ns, wf, run, 1), first, WorkflowTasks(transfer=[TaskRow(t2, b"t")])),
            )
        )
        for v in (2, 3, 4):
            txn, task = ids(2)
            node = [HistoryAppend(run, run, HistoryNode(v * 3, txn, b"e" * 300, 3))]
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(
                    shard,
                    ranges[shard],
                    _row(ns, wf, run, v),
                    v - 1,
                    node,
                    WorkflowTasks(transfer=[TaskRow(task, b"t")]),
                )
            )

    sem = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with sem:
            await one_run(i)

    await asyncio.gather(*(bounded(i) for i in range(100)))  # warm up
    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(100, 100 + runs)))
    dt = time.perf_counter() - t0
    factor = backend.group_factor(stores)
    await stores.close()
    txns = runs * 4
    return (
        f"store: {txns} execution transactions (create + 3 updates per run, history node + task each), "
        f"{concurrency} writers on {shards} shards: {txns / dt:,.0f} txn/s{factor}"
    )


async def _env(backend: Backend, timings: Timings) -> WorkflowEnvironment:
    # Like bench/core_bench.py, the engine alone unless --visibility: in production the visibility
    # indexer runs beside the engine on Kafka and Elasticsearch, not in the engine's process.
    return await WorkflowEnvironment.start_local(
        stores=timings.wrap(backend.stores()),
        num_shards=backend.shards,
        visibility=backend.visibility,
    )


async def throughput(backend: Backend, n: int = 1500) -> str:
    concurrency = backend.concurrency
    timings = Timings()
    env = await _env(backend, timings)
    async with Worker(env.client, task_queue="b", workflows=[Hello], activities=[hello]):
        await asyncio.gather(
            *(env.client.execute_workflow(Hello.run, "w", id=f"warm-{i}", task_queue="b") for i in range(100))
        )
        timings.samples.clear()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await env.client.execute_workflow(Hello.run, "x", id=f"tp-{i}", task_queue="b")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        dt = time.perf_counter() - t0
    factor = backend.group_factor(env.host.stores)
    await env.shutdown()
    return (
        f"throughput: {n} hello-world workflows at concurrency {concurrency}: "
        f"{n / dt:,.0f} workflows/s{factor}\n"
        f"  persistence latency per operation:\n{timings.report()}"
    )


async def latency(backend: Backend, n: int = 300) -> str:
    timings = Timings()
    env = await _env(backend, timings)
    samples = []
    async with Worker(env.client, task_queue="b", workflows=[Hello], activities=[hello]):
        for i in range(n + 30):
            if i == 30:
                timings.samples.clear()
            t0 = time.perf_counter()
            await env.client.execute_workflow(Hello.run, "x", id=f"lat-{i}", task_queue="b")
            if i >= 30:
                samples.append((time.perf_counter() - t0) * 1000)
    await env.shutdown()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return (
        f"latency: serial hello world start->result over {n}: p50 {p50:.2f} ms, p99 {p99:.2f} ms\n"
        f"  persistence latency per operation:\n{timings.report()}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["store", "throughput", "latency", "all"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=19042)
    ap.add_argument("--sqlite", action="store_true", help="run on a durable SQLite file instead")
    ap.add_argument("--shards", type=int, default=4, help="history shards of the engine (default 4)")
    ap.add_argument("--concurrency", type=int, default=200, help="workflows in flight (throughput)")
    ap.add_argument(
        "--visibility", action="store_true", help="also run the embedded visibility path in-process"
    )
    args = ap.parse_args()
    names = ["store", "throughput", "latency"] if args.which == "all" else [args.which]
    with Backend(args) as backend:
        print(
            f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{backend.describe()}; {backend.shards} shards, visibility "
            f"{'on' if backend.visibility else 'off'}"
        )
        for name in names:
            print(await globals()[name](backend), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
