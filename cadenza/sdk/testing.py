"""Test environments: a whole server in the test's process, with real or skipped time.

``WorkflowEnvironment.start_local()`` runs the real engine on SQLite (in memory unless ``db_path`` is
given): the same code paths as a server, no network. ``start_time_skipping()`` does the same with a
clock that can jump to the next timer whenever no task is in flight, so a workflow that sleeps for
hours finishes in milliseconds while activity and workflow-task timeouts still behave as they would.

As with temporalio's time-skipping test server, time is skipped only while someone waits for it: a
client waiting on a workflow's result (``handle.result()``, ``execute_workflow``; any client of the
environment's server, in process or over gRPC) or the test sleeping with ``env.sleep``. Otherwise
time runs at its real pace, so a cron workflow nobody waits on fires on its schedule instead of as
fast as the engine can run it.
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
from cadenza.schemas.service import GetHistoryRequest, GetHistoryResponse
from cadenza.sdk._local import local_service
from cadenza.sdk.client import Client
from cadenza.sdk.converter import DataConverter


class WorkflowEnvironment:
    def __init__(self, host: Host, client: Client, clock: Clock) -> None:
        self.host = host
        self.client = client
        self.clock = clock
        self._skipper: asyncio.Task[None] | None = None
        self._result_waits = 0
        """Calls waiting on a run's close event right now: while there are some, time skips."""

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
        metrics: Any = None,
        archival: Any = None,
    ) -> WorkflowEnvironment:
        """``stores`` runs the engine on any backend (e.g. Cassandra); it is closed at shutdown.
        ``metrics`` (a ``cadenza.metrics.ServerMetrics``) is what the engine records into;
        ``archival`` (a ``cadenza.engine.archival.ArchivalSettings``) what retention archives."""
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
            metrics=metrics,
            archival=archival,
        )
        host._owned = [x for x in (bus, store) if x is not None]  # type: ignore[attr-defined]
        client = Client(local_service(host.frontend), namespace=namespace, data_converter=data_converter)
        return cls(host, client, clock)

    @classmethod
    async def start_time_skipping(cls, **kwargs: Any) -> WorkflowEnvironment:
        clock = SkippingClock()
        env = await cls.start_local(clock=clock, **kwargs)
        env._count_result_waits()
        env._skipper = asyncio.create_task(env._skip_while_results_awaited(clock))
        return env

    def _count_result_waits(self) -> None:
        """Count the waits on a run's result, whichever client sends them.

        A result wait is a history long poll for the close event only (what ``handle.result()`` and
        ``start_workflow_execution_and_wait`` send). It is observed on the frontend itself, where
        in-process clients and the gRPC server both call it, rather than in one client."""
        frontend = self.host.frontend
        plain = frontend.get_workflow_execution_history

        async def get_workflow_execution_history(request: GetHistoryRequest) -> GetHistoryResponse:
            if not (request.wait_new_event and request.close_event_only):
                return await plain(request)
            self._result_waits += 1
            try:
                return await plain(request)
            finally:
                self._result_waits -= 1

        frontend.get_workflow_execution_history = get_workflow_execution_history  # type: ignore[method-assign]

    @property
    def supports_time_skipping(self) -> bool:
        return self._skipper is not None

    async def sleep(self, seconds: float) -> None:
        """Moves time forward by ``seconds``: when skipping, at once, but one due deadline at a
        time, each once the engine has handled the previous one (a timer that fires on the way
        can start another one that fires before the end); really otherwise."""
        clock = self.clock
        if not isinstance(clock, SkippingClock):
            await asyncio.sleep(seconds)
            return
        # A sleeper of our own at the target: skipping to the next deadline never passes it.
        reached = asyncio.ensure_future(clock.sleep_until(clock.now_us() + int(seconds * 1e6)))
        try:
            while not reached.done():
                if await self._settled() and not reached.done():
                    clock.skip_to_next_deadline()
                await asyncio.sleep(0)
        finally:
            reached.cancel()

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
            if q.pending() and q.pollers:
                return False
        return True

    async def _settled(self) -> bool:
        """True when the engine is idle now and stays so for a few loop turns (a task just handed
        to a poller is briefly in neither a queue nor a worker); waits a little before checking."""
        await asyncio.sleep(0.002)
        if not self._idle():
            return False
        for _ in range(3):
            await asyncio.sleep(0)
            if not self._idle():
                return False
        return True

    async def _skip_while_results_awaited(self, clock: SkippingClock) -> None:
        while True:
            # A sleeper's real-time wake-up was set for its deadline as it stood before a skip
            # moved the clock on: release the deadlines real time has reached since, or they
            # would wait for as long as was skipped.
            clock.now_us()
            clock.wake()
            if not self._result_waits:
                await asyncio.sleep(0.002)
            elif await self._settled() and self._result_waits:
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
