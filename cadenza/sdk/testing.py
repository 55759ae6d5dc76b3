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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
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

_IGNORED_OPTIONS = frozenset(
    {
        # Where and how temporalio downloads and runs its server binaries: nothing to download here.
        "dev_server_download_version",
        "dev_server_existing_path",
        "dev_server_extra_args",
        "dev_server_download_ttl",
        "dev_server_download_max_concurrency",
        "dev_server_log_format",
        "dev_server_log_level",
        "test_server_download_version",
        "test_server_existing_path",
        "test_server_extra_args",
        "test_server_download_ttl",
        "download_dest_dir",
        # The network side of that server: this one runs in the test's process.
        "ip",
        "port",
        "ui",
        "ui_port",
        "tls",
        "retry_config",
        "rpc_metadata",
        "default_workflow_query_reject_condition",
        "plugins",
    }
)
"""temporalio's ``start_local`` / ``start_time_skipping`` options that have no meaning for an
in-process server: accepted, so temporalio test fixtures run unchanged, and ignored."""


class WorkflowEnvironment:
    def __init__(self, host: Host | None, client: Client, clock: Clock | None = None) -> None:
        self._host = host
        self.client = client
        self.clock = clock or SystemClock()
        self._skipper: asyncio.Task[None] | None = None
        self._result_waits = 0
        """Calls waiting on a run's close event right now: while there are some, time skips."""
        self._skipping_paused = 0

    @property
    def host(self) -> Host:
        """The in-process server."""
        if self._host is None:
            raise RuntimeError("this environment wraps a client (from_client): it has no in-process server")
        return self._host

    @classmethod
    def from_client(cls, client: Client) -> WorkflowEnvironment:
        """An environment around a client of a server running elsewhere (temporalio's name): real
        time, nothing to shut down."""
        return cls(None, client)

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
        interceptors: Sequence[Any] = (),
        identity: str | None = None,
        runtime: Any = None,
        search_attributes: Sequence[Any] = (),
        dev_server_database_filename: str | None = None,
        **temporal_options: Any,
    ) -> WorkflowEnvironment:
        """``stores`` runs the engine on any backend (e.g. Cassandra); it is closed at shutdown.
        ``metrics`` (a ``cadenza.metrics.ServerMetrics``) is what the engine records into;
        ``archival`` (a ``cadenza.engine.archival.ArchivalSettings``) what retention archives.

        temporalio's options work too: ``interceptors``, ``identity`` and ``runtime`` for the
        client, ``search_attributes`` (``SearchAttributeKey``s) registered before the first run,
        ``dev_server_database_filename`` as ``db_path``; the options about downloading and running
        its server binary (``dev_server_download_version``, ``port``, ``ui``, ...) are accepted
        and ignored. Any other keyword is a ``TypeError`` naming it."""
        unknown = sorted(set(temporal_options) - _IGNORED_OPTIONS)
        if unknown:
            raise TypeError(
                f"WorkflowEnvironment.start_local() got unexpected keyword argument(s) {', '.join(unknown)}"
            )
        if dev_server_database_filename and db_path is None:
            db_path = dev_server_database_filename
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
            await store.add_search_attributes({**DEV_SEARCH_ATTRIBUTES, **_declared(search_attributes)})
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
        client = Client(
            local_service(host.frontend),
            namespace=namespace,
            data_converter=data_converter,
            interceptors=interceptors,
            identity=identity,
            runtime=runtime,
        )
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

    async def get_current_time(self) -> datetime:
        """The environment's time now (skipped time included), as temporalio's."""
        return datetime.fromtimestamp(self.clock.now_us() / 1e6, UTC)

    @contextlib.contextmanager
    def auto_time_skipping_disabled(self) -> Iterator[None]:
        """Inside, time runs at its real pace even while a result is awaited (temporalio's
        name); ``sleep`` still moves it on."""
        self._skipping_paused += 1
        try:
            yield
        finally:
            self._skipping_paused -= 1

    async def sleep(self, duration: float | timedelta) -> None:
        """Moves time forward by ``duration`` (seconds or a ``timedelta``): when skipping, at once,
        but one due deadline at a time, each once the engine has handled the previous one (a timer
        that fires on the way can start another one that fires before the end); really otherwise."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
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
            if not self._result_waits or self._skipping_paused:
                await asyncio.sleep(0.002)
            elif await self._settled() and self._result_waits and not self._skipping_paused:
                clock.skip_to_next_deadline()

    async def shutdown(self) -> None:
        if self._skipper is not None:
            self._skipper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._skipper
        if self._host is None:
            return  # from_client: the server is someone else's
        await self.host.stop()
        for owned in getattr(self.host, "_owned", ()):
            await owned.close()
        await self.host.stores.close()

    async def __aenter__(self) -> WorkflowEnvironment:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()


def _declared(keys: Sequence[Any]) -> dict[str, str]:
    """``SearchAttributeKey``s (temporalio's ``search_attributes=`` option) as name -> type."""
    out: dict[str, str] = {}
    for key in keys:
        name = getattr(key, "name", None)
        kind = getattr(key, "indexed_value_type", None)
        if not isinstance(name, str) or kind is None:
            raise TypeError(f"search_attributes: expected SearchAttributeKey values, got {key!r}")
        out[name] = kind.type_name
    return out
