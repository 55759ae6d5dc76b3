"""Running a server process: every role in one process, serving gRPC until told to stop.

``ServerProcess`` opens the stores, starts the host (history shards, queue processors, matching),
registers the namespaces asked for and serves the frontend over gRPC. ``serve_forever`` adds what a
process needs: SIGTERM/SIGINT start a graceful stop (``ServerProcess.shutdown``: health NOT_SERVING,
new calls refused with UNAVAILABLE, long polls answered empty, calls in flight given
``drain_timeout_s``, then the engine stops in order and hands its shards over), and exit 0; a second
SIGTERM/SIGINT during it exits at once, as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from cadenza.engine import logcontext, tracing
from cadenza.engine.auth import AuthGate, AuthorizationSettings, open_gate
from cadenza.engine.bus.embedded import EmbeddedBus
from cadenza.engine.errors import AlreadyExistsError
from cadenza.engine.host import Host
from cadenza.engine.membership import Membership, MembershipSettings
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.rpc import ClusterInfo, RpcServer, ServerTLS
from cadenza.engine.tracing import TracingSettings
from cadenza.metrics.config import MetricsSettings
from cadenza.ops.dynamic_config import DynamicConfig
from cadenza.ops.heap import settle_startup_heap
from cadenza.replication.cluster import ClusterMetadata
from cadenza.schemas.service import NamespaceInfo

log = logging.getLogger("cadenza.server")


def default_replication_log(db_filename: str) -> str:
    if db_filename != ":memory:":
        return str(Path(db_filename).expanduser().parent / "replication.bus")
    return str(Path(tempfile.gettempdir()) / "cadenza-dev-replication.bus")


def server_version() -> str:
    try:
        return metadata.version("cadenza")
    except metadata.PackageNotFoundError:
        return "0+unknown"


DEFAULT_DRAIN_TIMEOUT_S = 10.0
"""How long a graceful stop waits for the calls in flight (the anchors' ``shutdownDrainDuration``
plays this part; a worker's long poll is answered at once, so only short calls are waited for)."""


@dataclass(frozen=True, slots=True)
class StopTimes:
    """How a graceful stop went (``ServerProcess.shutdown``), in seconds from its start."""

    drained_s: float
    """When no call was in flight any more (or the deadline came)."""
    total_s: float
    """When the engine had stopped and the stores were closed."""
    calls_cut_off: int
    """Calls still in flight at the deadline, cancelled (their clients retry them)."""
    calls_refused: int
    """New calls refused with UNAVAILABLE during the stop."""


@dataclass
class ServerSettings:
    ip: str = "127.0.0.1"
    port: int = 7233
    db_filename: str = ":memory:"
    num_shards: int = 4
    namespaces: Sequence[str] = ("default",)
    cluster_name: str = "active"
    tls: ServerTLS | None = None
    retention_days: int = 3
    visibility: bool = True
    """List and count workflows: the embedded bus carries visibility records to a SQLite visibility
    store (next to the database file, or in memory)."""
    cassandra: dict[str, Any] | None = None
    """Workflows in Cassandra instead of SQLite: hosts, port, keyspace, user, password, consistency."""
    visibility_es: dict[str, str] | None = None
    """Visibility in Elasticsearch: url and index (and username and password, for basic auth)."""
    kafka_brokers: str | None = None
    """Visibility records travel through Kafka instead of the embedded log."""
    cluster_metadata: ClusterMetadata | None = None
    """The clusters this one replicates with (``clusterMetadata``); None means one cluster named
    ``cluster_name``, as ``ClusterMetadata.single`` describes."""
    kafka_topology: Any = None
    """The validated ``kafka`` block (``cadenza.engine.bus.topology.KafkaTopology``), or None."""
    dynamic_config_file: str | None = None
    """A dynamic config YAML re-read while the server runs (``cadenza.ops.dynamic_config``)."""
    dynamic_config_poll_s: float = 10.0
    forwarding: bool = True
    """A standby cluster forwards the selected APIs of a global namespace to its active cluster."""
    replication_log: str | None = None
    """With several clusters and no Kafka: the embedded log file every cluster's server shares
    (default: ``replication.bus`` beside the database file, or in the temporary directory)."""
    metrics: MetricsSettings | None = None
    """Export Prometheus metrics (``cadenza.metrics``) on ``metrics.listen_address``."""
    tracing: TracingSettings | None = None
    """Export OpenTelemetry spans (``cadenza.engine.tracing``) over OTLP; off when None."""
    authorization: AuthorizationSettings | None = None
    """Require credentials on the frontend (``cadenza.engine.auth``); None: open, as a dev server."""
    frontend_limits: Any = None
    """``cadenza.engine.ratelimit.FrontendLimits`` (``services.frontend.limits``); None: the
    defaults. Dynamic config overrides them while the server runs."""
    archival: Any = None
    """``cadenza.engine.archival.ArchivalSettings`` (the config's ``archival`` and
    ``namespaceDefaults.archival``); None: retention deletes without archiving."""
    ui: Any = None
    """``cadenza.ui.UISettings``: serve the web UI (``start-dev --ui-port``, the config's ``ui``);
    None: no UI."""
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    """A graceful stop gives the calls in flight this long to finish, and the outboxes what is left
    of it to publish what they hold (``global.shutdown.drainTimeout``, ``--drain-timeout``)."""
    membership: MembershipSettings | None = field(default_factory=MembershipSettings)
    """Join the cluster's membership in the store (``cadenza.engine.membership``): a row per role
    with this process's address, kept alive by heartbeats (``cadenza admin membership list``).
    ``global.membership.maxJoinDuration`` sets ``max_join_s``; None: do not join."""
    broadcast_address: str | None = None
    """The address other processes reach this one at (``global.membership.broadcastAddress``);
    default: the bind address, or this host's name when binding every address."""
    extra: dict[str, str] = field(default_factory=dict)


RETENTION_INTERVAL_S = 60.0
"""How often the dev server trims its own visibility log (``EmbeddedBus.apply_retention``)."""


class PeriodicRetention:
    """Trims an embedded log every ``interval_s`` seconds while the server runs; ``close`` stops it
    (before the log itself is closed)."""

    def __init__(self, bus: EmbeddedBus, interval_s: float) -> None:
        self._bus = bus
        self._interval_s = interval_s
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cadenza-bus-retention")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                deleted = await self._bus.apply_retention()
            except Exception as e:  # the next round tries again; serving goes on
                log.warning("trimming the visibility log failed: %s", e)
            else:
                if deleted:
                    log.debug("trimmed %d consumed messages from the visibility log", deleted)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class ServerProcess:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.host: Host | None = None
        self.rpc: RpcServer | None = None
        self.port = 0
        self._closers: list[Any] = []
        self.dynamic_config: DynamicConfig | None = None
        self.metrics: Any = None
        """The ``ServerMetrics`` exported when ``settings.metrics`` is set."""
        self.metrics_port = 0
        self._gauges: Any = None
        self._auth: AuthGate | None = None
        self.membership: Membership | None = None
        self.ui: Any = None
        """The ``cadenza.ui.UIServer`` when ``settings.ui`` is set; its ``port`` is 0 if it could
        not take a port it was not required to have."""

    async def start(self) -> int:
        s = self.settings
        if s.db_filename != ":memory:":
            Path(s.db_filename).expanduser().parent.mkdir(parents=True, exist_ok=True)
        stores: Any
        if s.cassandra is not None:
            from cadenza.engine.persistence.cassandra import open_cassandra_stores_async

            c = dict(s.cassandra)
            stores = await open_cassandra_stores_async(c.pop("hosts"), c.pop("port"), c.pop("keyspace"), **c)
        else:
            stores = open_sqlite_stores(s.db_filename)
        try:
            logcontext.set_cluster(s.cluster_name)
            if s.tracing is not None:
                tracing.configure(s.tracing)
                stores = tracing.traced_stores(stores)
            visibility: dict[str, Any] = {}
            if s.visibility:
                visibility = await self._open_visibility(s.db_filename)
            cluster = s.cluster_metadata or ClusterMetadata.single(s.cluster_name)
            replication = None
            if len(cluster.enabled_clusters()) > 1:
                replication = await self._open_replication(cluster)
            self.dynamic_config = DynamicConfig(
                s.dynamic_config_file, poll_interval_s=s.dynamic_config_poll_s
            )
            self.dynamic_config.start()
            if s.metrics is not None:
                self._start_metrics(s.metrics)
            self.host = await Host.start(
                stores,
                num_shards=s.num_shards,
                default_namespace=None,
                cluster=cluster,
                replication=replication,
                dynamic_config=self.dynamic_config,
                metrics=self.metrics,
                archival=s.archival,
                **visibility,
            )
            if self.metrics is not None:
                from cadenza.metrics.gauges import ServerGauges

                interval = s.metrics.gauge_interval_s if s.metrics is not None else 5.0
                self._gauges = ServerGauges(self.metrics, self.host, interval_s=interval)
                self._gauges.start()
            for name in s.namespaces:
                with contextlib.suppress(AlreadyExistsError):
                    await self.host.namespaces.register(
                        NamespaceInfo(name=name, id="", retention_days=s.retention_days)
                    )
            info = ClusterInfo(
                cluster_name=s.cluster_name,
                num_history_shards=s.num_shards,
                persistence="cassandra" if s.cassandra is not None else "sqlite",
                server_version=server_version(),
            )
            if s.frontend_limits is not None:
                self.host.frontend.overload_limits = s.frontend_limits
            self._auth = await open_gate(s.authorization, self._namespace_name_of_id)
            self.rpc = RpcServer(self.host.frontend, cluster=info, metrics=self.metrics, auth=self._auth)
            self.port = await self.rpc.start(s.ip, s.port, tls=s.tls)
            if s.membership is not None:
                await self._join(s.membership)
            if s.ui is not None:
                await self._start_ui(s.ui)
        except BaseException:
            await self.stop()
            if self.host is None:
                await stores.close()
            raise
        return self.port

    async def _join(self, settings: MembershipSettings) -> None:
        """Every role runs in this process: it joins as each of them, at the frontend's address."""
        assert self.host is not None
        s = self.settings
        address = s.broadcast_address or (s.ip if s.ip not in ("0.0.0.0", "::") else socket.gethostname())
        self.membership = Membership(
            self.host.stores.membership,
            self.host.clock,
            host_id=self.host.history.host,
            rpc_address=f"{address}:{self.port}",
            settings=settings,
        )
        await self.membership.start()

    async def _start_ui(self, settings: Any) -> None:
        # Imported here: a server without the UI does not load the HTTP stack.
        from cadenza.sdk._local import local_service
        from cadenza.ui import UIServer

        assert self.host is not None
        # The same in-process client the SDK uses, so the UI sees the API's errors and rules.
        service: Any = local_service(self.host.frontend)
        self.ui = UIServer(service, settings)
        if await self.ui.start():
            log.info("web UI on %s", self.ui.url)

    async def _namespace_name_of_id(self, namespace_id: str) -> str:
        assert self.host is not None
        return (await self.host.namespaces.get_by_id(namespace_id)).name

    def _start_metrics(self, settings: MetricsSettings) -> None:
        from cadenza.metrics import MetricsRegistry, ServerMetrics

        registry = MetricsRegistry(tags=settings.tags)
        self.metrics = ServerMetrics(registry)
        self.metrics_port = registry.serve(settings.listen_address)
        host = settings.listen_address.rpartition(":")[0]
        log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)

    async def _open_visibility(self, db_filename: str) -> dict[str, Any]:
        from cadenza.engine.bus.embedded import EmbeddedBus
        from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES
        from cadenza.visibility.sqlite_store import SqliteVisibilityStore

        s = self.settings
        memory = db_filename == ":memory:"
        store: Any
        if s.visibility_es is not None:
            from cadenza.visibility.es_store import ElasticsearchVisibilityStore

            es: Any = s.visibility_es["url"]
            if "username" in s.visibility_es:
                from elasticsearch import Elasticsearch

                es = Elasticsearch(es, basic_auth=(s.visibility_es["username"], s.visibility_es["password"]))
            store = await ElasticsearchVisibilityStore.open(es, index=s.visibility_es["index"])
        else:
            store = await SqliteVisibilityStore.open(":memory:" if memory else f"{db_filename}.visibility")
            await store.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        bus: Any
        out: dict[str, Any] = {"visibility_store": store}
        if s.kafka_brokers:
            from cadenza.engine.bus.kafka import KafkaBus

            topology = s.kafka_topology
            bus = KafkaBus(s.kafka_brokers, config=topology.client_config() if topology is not None else None)
            # kafka.applications.visibility: clusters sharing one Kafka each name their own topic
            # (and so get their own indexer group); without it, the default topic.
            if topology is not None and topology.applications.visibility is not None:
                out["visibility_topic"] = topology.applications.visibility.topic
        else:
            bus = EmbeddedBus(":memory:" if memory else f"{db_filename}.bus")
            # Only this server's indexer reads this log, so what it has committed past is done
            # with; without trimming, the file kept every visibility message ever sent.
            self._closers.append(PeriodicRetention(bus, RETENTION_INTERVAL_S))
        self._closers += [bus, store]
        return {**out, "bus": bus}

    async def _open_replication(self, cluster: ClusterMetadata) -> Any:
        """The bus replication runs on: Kafka with the config's cluster topics, else an embedded
        log file shared by the servers of every cluster on this machine."""
        from cadenza.replication.applier import ClusterTopics
        from cadenza.replication.credentials import ClusterCredentials
        from cadenza.replication.remote import GrpcRemoteHistory
        from cadenza.replication.service import ReplicationConfig, default_topics

        s = self.settings
        topology = s.kafka_topology
        bus: Any
        if topology is not None and topology.cluster_topics:
            from cadenza.engine.bus.kafka import KafkaBus

            own = topology.replication_topics(cluster.current_cluster_name)
            bus = KafkaBus(",".join(topology.brokers(own.topic)), config=topology.client_config())
            topics = {
                name: ClusterTopics(pair.topic, pair.dlq_topic)
                for name, pair in topology.cluster_topics.items()
            }
        else:
            path = s.replication_log or default_replication_log(s.db_filename)
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            bus = EmbeddedBus(path)
            topics = default_topics(cluster.enabled_clusters())
        remote = GrpcRemoteHistory(
            {name: c.rpc_address for name, c in cluster.clusters.items() if c.rpc_address},
            credentials=ClusterCredentials(cluster.clusters),
        )
        self._closers += [bus, remote]
        return ReplicationConfig(bus, topics, remote=remote, forwarding=s.forwarding)

    async def shutdown(self) -> StopTimes:
        """The graceful stop: the health service answers NOT_SERVING and new calls are refused
        with UNAVAILABLE at once (both while the listener stays open, so clients hear it), long
        polls in flight are answered empty, the other calls in flight get until
        ``drain_timeout_s`` (then they are cancelled), and the engine stops in order within what
        is left of it (``Host.stop``): nothing acknowledged is lost, and the shards are left to
        their next owner."""
        started = time.monotonic()
        deadline = started + self.settings.drain_timeout_s
        if self.rpc is not None:
            await self.rpc.begin_stop()
        if self.membership is not None:
            # Leave at once: the other processes' rings drop this one while it drains.
            await self.membership.stop()
            self.membership = None
        if self.ui is not None:  # the UI is a client of the frontend: no new work from it either
            await self.ui.stop()
            self.ui = None
        if self.host is not None:
            self.host.end_long_polls()
        cut_off = refused = 0
        if self.rpc is not None:
            await self.rpc.wait_idle(deadline - time.monotonic())
            cut_off, refused = self.rpc.calls.count, self.rpc.calls.refused
        drained = time.monotonic()
        if cut_off:
            log.warning("%d calls still in flight after %.1f s are cancelled", cut_off, drained - started)
        await self.stop(0.0, publish_for_s=max(deadline - drained, 0.0))
        return StopTimes(drained - started, time.monotonic() - started, cut_off, refused)

    async def stop(self, grace: float = 1.0, *, publish_for_s: float = 0.0) -> None:
        """Stops everything now: calls in flight get ``grace`` seconds, the outboxes
        ``publish_for_s`` (``shutdown`` is the graceful stop)."""
        if self.membership is not None:
            # First: the others' rings drop this process before its calls stop being answered.
            await self.membership.stop()  # (a graceful stop left already, in ``shutdown``)
            self.membership = None
        if self.ui is not None:
            await self.ui.stop()
            self.ui = None
        if self._gauges is not None:
            await self._gauges.stop()
            self._gauges = None
        if self.metrics is not None:
            self.metrics.registry.stop_serving()
        if self.rpc is not None:
            await self.rpc.stop(grace)
            self.rpc = None
        if self._auth is not None:
            await self._auth.close()
            self._auth = None
        if self.host is not None:
            host, self.host = self.host, None
            await host.stop(publish_for_s=publish_for_s)
            await host.stores.close()
        if self.dynamic_config is not None:
            await self.dynamic_config.stop()
        for closer in self._closers:
            await closer.close()
        self._closers.clear()
        if self.settings.tracing is not None:
            tracing.shutdown()  # flushes the spans still queued


async def serve_forever(settings: ServerSettings, *, announce: bool = True) -> None:
    """Serves until SIGTERM or SIGINT, then stops gracefully (``ServerProcess.shutdown``) and
    returns; a second SIGTERM or SIGINT during that stop exits the process at once."""
    server = ServerProcess(settings)
    port = await server.start()
    settle_startup_heap()  # full collections no longer walk what the start-up made (ops/heap.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            stop.set()
            return
        # Asked twice: the operator will not wait. Exiting now is a crash, which loses nothing
        # acknowledged (every acknowledged write is durable); only the handover is skipped.
        print(
            f"Cadenza server: {signal.Signals(signum).name} again, exiting at once",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    if announce:
        # A line on stdout, whatever the log level: scripts and tests wait for it.
        s = settings
        print(
            f"Cadenza server {server_version()} serving on {s.ip}:{port} "
            f"(namespaces: {', '.join(s.namespaces)}; database: {s.db_filename}; "
            f"{'cluster: ' + s.cluster_name + '; ' if s.cluster_metadata is not None else ''}"
            f"{f'metrics: {server.metrics_port}; ' if server.metrics_port else ''}"
            f"{f'ui: {server.ui.url}; ' if server.ui is not None and server.ui.port else ''}"
            f"{'authorization on; ' if server.rpc is not None and server.rpc.auth is not None else ''}ready)",
            flush=True,
        )
    log.info("server ready", extra={"port": port})
    try:
        await stop.wait()
    finally:
        log.info("shutting down", extra={"drain_timeout_s": settings.drain_timeout_s})
        try:
            times = await server.shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    if announce:
        # Beside the ready line: how long the stop took, for scripts and benchmarks.
        print(
            f"Cadenza server stopped in {times.total_s:.2f} s (calls drained in {times.drained_s:.2f} s; "
            f"{times.calls_refused} refused, {times.calls_cut_off} cut off at the "
            f"{settings.drain_timeout_s:g} s deadline)",
            flush=True,
        )
