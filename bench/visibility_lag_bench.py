"""Close → searchable lag through the production visibility path: engine outbox → Kafka → indexer →
Elasticsearch, at a paced rate of workflows.

    python bench/visibility_lag_bench.py [--rate 200] [--seconds 15] [--kafka 127.0.0.1:19092]
                                         [--es http://127.0.0.1:19200]

Needs `cadenza dev services up kafka elasticsearch`. Each workflow closes at once; the lag of one
workflow is from its result reaching the client to the first search (every 100 ms, without forcing
an index refresh: Elasticsearch's own 1 s refresh counts, as users see it) that returns it Completed.
Target (issue 7): p99 ≤ 2 s at 200 workflows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import workflow
from cadenza.engine.bus.kafka import KafkaBus
from cadenza.engine.host import Host
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.sdk._local import local_service
from cadenza.sdk.client import Client
from cadenza.visibility.es_store import ElasticsearchVisibilityStore
from cadenza.worker import Worker


@workflow.defn
class Quick:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


async def main(rate: float, seconds: float, kafka: str, es: str) -> None:
    index = f"cadenza_vis_lag_{uuid.uuid4().hex[:8]}"
    store = await ElasticsearchVisibilityStore.open(es, index=index)
    bus = KafkaBus(kafka)
    host = await Host.start(open_sqlite_stores(":memory:"), visibility_store=store, bus=bus)
    client = Client(local_service(host.frontend))
    ns_id = (await host.namespaces.get("default")).id
    closed: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()
    stop_at = 0.0

    async def watcher() -> None:
        while not done.is_set() or len(seen) < len(closed):
            token = None
            while True:
                records, token = await store.scan(ns_id, "ExecutionStatus = 'Completed'", 1000, token)
                now = time.monotonic()
                for r in records:
                    seen.setdefault(r.workflow_id, now)
                if not token:
                    break
            if done.is_set() and time.monotonic() - stop_at > 60:
                break
            await asyncio.sleep(0.1)

    async def one(i: int) -> None:
        wid = f"lag-{i}"
        await client.execute_workflow(Quick.run, i, id=wid, task_queue="lag")
        closed[wid] = time.monotonic()

    try:
        async with Worker(client, task_queue="lag", workflows=[Quick]):
            await client.execute_workflow(Quick.run, -1, id="warm-up", task_queue="lag")
            watch = asyncio.create_task(watcher())
            n = int(rate * seconds)
            start = time.monotonic()
            tasks = []
            for i in range(n):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            achieved = n / (time.monotonic() - start)
            stop_at = time.monotonic()
            done.set()
            await watch
        lags = sorted(seen[w] - closed[w] for w in closed if w in seen)
        missing = len(closed) - len(lags)
        p50 = statistics.median(lags)
        p99 = lags[max(0, int(len(lags) * 0.99) - 1)]
        print(
            f"visibility lag over Kafka + Elasticsearch: {n} workflows at {achieved:.0f}/s "
            f"(asked {rate:g}/s): close -> searchable p50 {p50:.2f} s, p99 {p99:.2f} s, "
            f"max {lags[-1]:.2f} s; never seen: {missing}"
        )
    finally:
        await host.stop()
        await bus.close()
        await store.drop()
        await store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--kafka", default="127.0.0.1:19092")
    ap.add_argument("--es", default="http://127.0.0.1:19200")
    a = ap.parse_args()
    asyncio.run(main(a.rate, a.seconds, a.kafka, a.es))
