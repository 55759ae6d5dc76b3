"""Shard ownership fencing: a second engine host steals every shard while workflows run on the first.

Host A runs a load of workflows (activities, then signals). Mid-load host B starts on the same store
and acquires every shard (bumping ``range_id``). Signals keep coming, first to A, then to B when A
refuses. Afterwards every workflow has completed with every activity result and every acknowledged
signal exactly once, event ids are dense, no write A started after B took over succeeded, and A
logged the loss of its shards.

Runs on Cassandra (two driver sessions: two hosts) and on a SQLite file (two connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cadenza.client import Client
from cadenza.engine.host import Host
from cadenza.engine.persistence import ShardOwnershipLostError, Stores, open_sqlite_stores
from cadenza.sdk._local import local_service
from cadenza.worker import Worker

from .support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)
from .workflows import Collector, check_history, echo, expected_result

NUM_SHARDS = 4
WORKFLOWS = 24
SIGNALS_BEFORE = 2
SIGNALS_AFTER = 2
QUEUE = "fence"


@dataclass
class WriteLog:
    """Every create/update host A attempted: (start, end, succeeded)."""

    calls: list[tuple[float, float, bool]] = field(default_factory=list)

    def wrap(self, stores: Stores) -> None:
        inner = stores.executions
        log = self

        def recorded(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
            async def call(request: Any) -> None:
                start = time.monotonic()
                try:
                    await fn(request)
                except BaseException:
                    log.calls.append((start, time.monotonic(), False))
                    raise
                log.calls.append((start, time.monotonic(), True))

            return call

        class Recording:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        proxy = Recording()
        proxy.create_workflow_execution = recorded(inner.create_workflow_execution)  # type: ignore[attr-defined]
        proxy.update_workflow_execution = recorded(inner.update_workflow_execution)  # type: ignore[attr-defined]
        stores.executions = proxy  # type: ignore[assignment]


async def _signal(clients: list[Client], workflow_id: str, value: str) -> None:
    """Signals through the first client that accepts; one request id, so a retry is deduplicated."""
    request_id = str(uuid.uuid4())
    for _ in range(50):
        for client in clients:
            try:
                await client.get_workflow_handle(workflow_id).signal(
                    Collector.add, value, request_id=request_id
                )
                return
            except Exception:
                continue
        await asyncio.sleep(0.1)
    raise AssertionError(f"signal {value} to {workflow_id} was never accepted")


async def race(stores_a: Stores, stores_b: Stores) -> tuple[WriteLog, float]:
    writes = WriteLog()
    writes.wrap(stores_a)
    host_a = await Host.start(stores_a, num_shards=NUM_SHARDS, host_id="host-a")
    client_a = Client(local_service(host_a.frontend), namespace="default")
    ids = [f"fence-{i}-{uuid.uuid4().hex[:6]}" for i in range(WORKFLOWS)]
    signals: dict[str, list[str]] = {wid: [] for wid in ids}
    host_b: Host | None = None
    try:
        async with Worker(client_a, task_queue=QUEUE, workflows=[Collector], activities=[echo]):
            for wid in ids:
                await client_a.start_workflow(
                    Collector.run, SIGNALS_BEFORE + SIGNALS_AFTER, id=wid, task_queue=QUEUE,
                    task_timeout=timedelta(seconds=2),
                )  # fmt: skip
            for n in range(SIGNALS_BEFORE):
                await asyncio.gather(*(_signal([client_a], wid, f"a{n}") for wid in ids))
                for wid in ids:
                    signals[wid].append(f"a{n}")
            # Mid-load: host B takes every shard while A's worker is busy with activities.
            await asyncio.sleep(0.2)
            host_b = await Host.start(
                stores_b, num_shards=NUM_SHARDS, host_id="host-b", default_namespace=None
            )
            stolen_at = time.monotonic()
            client_b = Client(local_service(host_b.frontend), namespace="default")
            for n in range(SIGNALS_AFTER):
                await asyncio.gather(*(_signal([client_a, client_b], wid, f"b{n}") for wid in ids))
                for wid in ids:
                    signals[wid].append(f"b{n}")
            await asyncio.sleep(0.5)  # let A's worker bump into the fence for a while
        async with Worker(client_b, task_queue=QUEUE, workflows=[Collector], activities=[echo]):
            for wid in ids:
                handle = client_b.get_workflow_handle(wid)
                assert await handle.result(timeout=60) == expected_result(signals[wid]), wid
                check_history(wid, await handle.fetch_history(), signals[wid])
    finally:
        if host_b is not None:
            await host_b.stop()
        await host_a.stop()
    return writes, stolen_at


def _mentions_loss(record: logging.LogRecord) -> bool:
    """A log record about a lost shard: in its message, or in the exception it carries."""
    if record.exc_info and isinstance(record.exc_info[1], ShardOwnershipLostError):
        return True
    text = record.getMessage()
    return "ownership lost" in text or "no longer owned" in text


def run_race(stores_a: Stores, stores_b: Stores, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[WriteLog, float]:
        try:
            return await asyncio.wait_for(race(stores_a, stores_b), 120)
        finally:
            await stores_a.close()
            await stores_b.close()

    with caplog.at_level(logging.INFO):
        writes, stolen_at = asyncio.run(main())
    late = [c for c in writes.calls if c[0] > stolen_at and c[2]]
    assert not late, f"host A wrote {len(late)} times after host B took its shards"
    refused = [c for c in writes.calls if c[0] > stolen_at and not c[2]]
    lost = [r for r in caplog.records if _mentions_loss(r)]
    assert refused or lost, "host A never tried to write after the steal: the race did not happen"
    # Every path that meets the fence (create_run, update_run, the range renewal, the ack-level
    # flush) marks the shard lost through ShardContext.mark_lost, which logs it once.
    assert lost, "host A stopped writing but did not log the loss of its shards"


@pytest.mark.cassandra
def test_stolen_shards_on_cassandra_lose_nothing(
    cassandra_keyspace: Keyspace,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    ks = cassandra_keyspace
    shards = ", ".join(str(i) for i in range(NUM_SHARDS))
    ks.session.session.execute(f"DELETE FROM {ks.name}.executions WHERE shard_id IN ({shards})")
    from cadenza.engine.persistence.cassandra import CassandraStores

    # Two sessions with their own connections: two hosts as separate as two processes.
    run_race(ks.stores(), CassandraStores(ks.connect()), caplog)


def test_stolen_shards_on_sqlite_lose_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "fence.db"
    run_race(open_sqlite_stores(path), open_sqlite_stores(path), caplog)
