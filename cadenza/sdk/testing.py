"""Test environments: a whole server in the test's process, with real or skipped time.

``WorkflowEnvironment.start_local()`` runs the real engine on SQLite (in memory unless ``db_path`` is
given): the same code paths as a server, no network. ``start_time_skipping()`` does the same with a
clock that jumps to the next timer whenever no task is in flight, so a workflow that sleeps for hours
finishes in milliseconds while activity and workflow-task timeouts still behave as they would.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from cadenza.engine.clock import Clock, SkippingClock, SystemClock
from cadenza.engine.host import Host
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.protocols import Stores
from cadenza.sdk._local import local_service
from cadenza.sdk.client import Client
from cadenza.sdk.converter import DataConverter


class WorkflowEnvironment:
    def __init__(self, host: Host, client: Client, clock: Clock) -> None:
        self.host = host
        self.client = client
        self.clock = clock
        self._skipper: asyncio.Task[None] | None = None

    @classmethod
    async def start_local(
        cls,
        *,
        db_path: str | Path | None = None,
        namespace: str = "default",
        num_shards: int = 4,
        data_converter: DataConverter | None = None,
        clock: Clock | None = None,
        stores: Stores | None = None,
        visibility_sink: Any = None,
        visibility: bool = True,
    ) -> WorkflowEnvironment:
        """``stores`` runs the engine on any backend (e.g. Cassandra); it is closed at shutdown."""
        if stores is None:
            stores = open_sqlite_stores(str(db_path) if db_path else ":memory:")
        clock = clock or SystemClock()
        bus = store = None
        if visibility and visibility_sink is None:
            # The embedded defaults: visibility flows through an embedded log to a SQLite store,
            # beside the database file (or in memory), exactly as it would through Kafka.
            from cadenza.engine.bus import EmbeddedBus
            from cadenza.visibility.sqlite_store import SqliteVisibilityStore

            base = str(db_path) if db_path else None
            bus = EmbeddedBus(f"{base}-bus" if base else ":memory:")
            from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES

            store = await SqliteVisibilityStore.open(f"{base}-visibility" if base else ":memory:")
            await store.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        host = await Host.start(
            stores,
            clock=clock,
            num_shards=num_shards,
            default_namespace=namespace,
            visibility_sink=visibility_sink,
            visibility_store=store,
            bus=bus,
        )
        host._owned = [x for x in (bus, store) if x is not None]  # type: ignore[attr-defined]
        client = Client(local_service(host.frontend), namespace=namespace, data_converter=data_converter)
        return cls(host, client, clock)

    @classmethod
    async def start_time_skipping(cls, **kwargs: Any) -> WorkflowEnvironment:
        clock = SkippingClock()
        env = await cls.start_local(clock=clock, **kwargs)
        env._skipper = asyncio.create_task(env._skip_when_idle(clock))
        return env

    @property
    def supports_time_skipping(self) -> bool:
        return self._skipper is not None

    async def sleep(self, seconds: float) -> None:
        """Moves time forward by ``seconds`` (instantly when skipping, really otherwise)."""
        if isinstance(self.clock, SkippingClock):
            self.clock.set(self.clock.now_us() + int(seconds * 1e6))
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds)

    def _idle(self) -> bool:
        fe = self.host.frontend
        now = self.clock.now_us()
        # A task whose timeout passed no longer holds time still: its worker may be gone, and only
        # the (skipped-to) timeout will move it on.
        for token in [t for t, deadline in fe.outstanding.items() if deadline <= now]:
            del fe.outstanding[token]
        if fe.outstanding or self.host.queues.in_flight():
            return False
        for q in self.host.matching._queues.values():
            if (q.tasks or q.queries) and q.pollers:
                return False
        return True

    async def _skip_when_idle(self, clock: SkippingClock) -> None:
        # Idle must hold across a few loop turns: a task just handed to a poller is briefly in
        # neither a queue nor a worker.
        while True:
            await asyncio.sleep(0.002)
            if not self._idle():
                continue
            settled = True
            for _ in range(3):
                await asyncio.sleep(0)
                if not self._idle():
                    settled = False
                    break
            if settled:
                clock.skip_to_next_deadline()

    async def shutdown(self) -> None:
        if self._skipper is not None:
            self._skipper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._skipper
        await self.host.stop()
        for owned in getattr(self.host, "_owned", ()):
            await owned.close()
        await self.host.stores.close()

    async def __aenter__(self) -> WorkflowEnvironment:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
