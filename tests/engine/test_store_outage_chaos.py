"""Store outages in the middle of a load: every acknowledged workflow still completes.

The store (SQLite here) goes away several times while workflows start, run activities and complete
over the in-process transport: each call during an outage fails with ``StoreUnavailableError``,
and a write may have applied before its answer was lost (a Cassandra node killed mid-request, a
write timeout), which the engine must treat as a write of unknown outcome. Once the store is back,
nothing the engine acknowledged may wait for a restart: every task lost with the cached state is
offered again, every timer of a write that landed fires.

The Cassandra fault test (``tests/persistence/cassandra/test_fault_kill.py``) does this once with a
real node killed; this one runs several outages per seed in seconds, with the outcome of each lost
write drawn at random, so the rarer orders of events come up.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker
from tests.stuck_runs import server_view

QUEUE = "outage"
STEPS = 3


@activity.defn
async def step(value: str) -> str:
    return f"did {value}"


@workflow.defn
class Steps:
    @workflow.run
    async def run(self) -> list[str]:
        done = []
        for i in range(STEPS):
            done.append(
                await workflow.execute_activity(
                    step,
                    f"step-{i}",
                    start_to_close_timeout=timedelta(seconds=2),
                    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
                )
            )
        return done


MAX_LATENCY_S = float(os.environ.get("OUTAGE_MAX_LATENCY_S", "0.02"))
LONG_OUTAGE_S = float(os.environ.get("OUTAGE_LONG_S", "12"))

EXPECTED = [f"did step-{i}" for i in range(STEPS)]

_READS = ("get", "read", "list", "scan", "count", "describe")


class Outage:
    """Wraps the stores' coroutine methods: while ``on``, a read fails, and a write fails after
    applying or not, as ``rng`` decides (its answer lost either way); some calls hang until the
    outage ends before they fail, as requests that time out."""

    def __init__(self, rng: random.Random) -> None:
        self.on = False
        self.rng = rng
        self.refused = 0
        self.applied_then_refused = 0

    def wrap(self, store: Any) -> None:
        for name in dir(type(store)):
            if name.startswith("_"):
                continue
            method = getattr(store, name)
            if inspect.iscoroutinefunction(method):
                setattr(store, name, self._gate(method, name.startswith(_READS)))

    def _gate(self, method: Any, read: bool) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            # A networked store's latency (an LWT takes milliseconds): more interleavings.
            await asyncio.sleep(self.rng.uniform(0, MAX_LATENCY_S))
            if not self.on:
                return await method(*args, **kwargs)
            if self.rng.random() < 0.3:
                # A request that hangs until the client gives up (a timeout): late, then refused.
                while self.on:
                    await asyncio.sleep(0.05)
            if not read and self.rng.random() < 0.5:
                await method(*args, **kwargs)
                self.applied_then_refused += 1
            else:
                self.refused += 1
            raise StoreUnavailableError("injected: the store is unreachable")

        return call


@pytest.mark.parametrize("seed", range(int(os.environ.get("OUTAGE_SEEDS", "2"))))
def test_every_acknowledged_workflow_completes_after_store_outages(seed: int) -> None:
    rng = random.Random(seed)
    acknowledged: list[str] = []
    stuck: dict[str, Any] = {}
    outage = Outage(rng)

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        stores: Any = env.host.stores
        for name in ("executions", "history", "shards", "task_queues"):
            outage.wrap(getattr(stores, name))
        try:
            async with Worker(env.client, task_queue=QUEUE, workflows=[Steps], activities=[step]):

                async def start_one() -> None:
                    wid = f"outage-{uuid.uuid4().hex[:8]}"
                    try:
                        await env.client.start_workflow(Steps.run, id=wid, task_queue=QUEUE)
                    except Exception:
                        return  # refused (or unknown): only acknowledged starts count
                    acknowledged.append(wid)

                starts: list[asyncio.Task[None]] = []
                # Outages of 0.2-1 s at random moments over the first 4 s of load, then one as
                # long as a node's restart: timeouts of every kind come due while it lasts.
                windows = sorted((rng.uniform(0.3, 3.5), rng.uniform(0.2, 1.0)) for _ in range(2))
                windows.append((4.0, LONG_OUTAGE_S))
                began = time.monotonic()
                while (now := time.monotonic() - began) < 4.5 + LONG_OUTAGE_S:
                    outage.on = any(at <= now < at + length for at, length in windows)
                    starts.append(asyncio.create_task(start_one()))
                    await asyncio.sleep(0.02)
                outage.on = False
                await asyncio.gather(*starts)

                async def result(wid: str) -> bool:
                    try:
                        got = await env.client.get_workflow_handle(wid).result(timeout=45)
                    except Exception:
                        return False
                    return got == EXPECTED

                done = await asyncio.gather(*(result(w) for w in acknowledged))
                for wid, ok in zip(acknowledged, done, strict=True):
                    if not ok and len(stuck) < 5:
                        events = (await env.client.get_workflow_handle(wid).fetch_history()).events
                        stuck[wid] = (
                            [EventType(e.event_type).name for e in events[-3:]],
                            await server_view(env, wid),
                        )
                if not all(done):
                    stuck["count"] = done.count(False)
        finally:
            await env.shutdown()

    asyncio.run(main())
    assert outage.refused and outage.applied_then_refused, "no outage was injected"
    assert len(acknowledged) > 20, f"only {len(acknowledged)} starts were acknowledged"
    assert not stuck, f"acknowledged workflows that never completed: {stuck}"
