"""Replication in one server process: its publisher, its applier, its DLQ re-drive.

``Replication.prepare`` runs before the host's queues start (so replication tasks recovered from the
store are published, and namespace changes are sent), ``start`` after (the applier writes through
the history engine's shards), ``stop`` before the host stops.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadenza.engine.bus import Bus, TopicSpec
from cadenza.engine.bus.dlq import read_dlq
from cadenza.replication.applier import ClusterTopics, DlqRetrier, RawBatch, RemoteHistory, ReplicationApplier
from cadenza.replication.credentials import ClusterCredentials
from cadenza.replication.failover import fail_over
from cadenza.replication.forwarding import ClusterForwarder
from cadenza.replication.publisher import ReplicationPublisher
from cadenza.replication.version_history import VersionHistory, VersionHistoryItem

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.host import Host
    from cadenza.schemas.service import NamespaceInfo

log = logging.getLogger("cadenza.replication")


@dataclass
class ReplicationConfig:
    bus: Bus
    topics: Mapping[str, ClusterTopics]
    """Every cluster's replication topic and DLQ topic (the ``cluster-topics`` of the config)."""
    remote: RemoteHistory | None = None
    """Where missing events are fetched from; None: a gap waits in the DLQ."""
    create_topics: bool = True
    """Create the topics if missing (the embedded log; on Kafka, ``admin setup-schema`` does)."""
    partitions: int = 4
    dlq_retry_s: float = 5.0
    forwarding: bool = True
    """Send the selected APIs of namespaces that are standby here to their active cluster
    (``dcRedirectionPolicy: selected-apis-forwarding``, the default; ``noop`` turns it off)."""
    frontends: dict[str, Any] = field(default_factory=dict)
    """Frontends of clusters in this process, by cluster name (tests, the embedded setup); other
    clusters are reached at their ``rpcAddress``."""
    options: dict[str, float] = field(default_factory=dict)


def default_topics(clusters: list[str]) -> dict[str, ClusterTopics]:
    """The conventional names: topic ``<cluster>``, DLQ ``<cluster>-dlq``."""
    return {c: ClusterTopics(c, f"{c}-dlq") for c in clusters}


class Replication:
    def __init__(self, host: Host, config: ReplicationConfig) -> None:
        self.host = host
        self.config = config
        self.cluster = host.namespaces.cluster
        name = self.cluster.current_cluster_name
        if name not in config.topics:
            raise ValueError(f"no replication topic for cluster {name!r} (cluster-topics)")
        self.own = config.topics[name]
        self.publisher = ReplicationPublisher(config.bus, self.own.topic, host.history)
        sources = {
            c: config.topics[c] for c in self.cluster.enabled_clusters() if c != name and c in config.topics
        }
        from cadenza.engine.bus import RunnerOptions

        self.applier = ReplicationApplier(
            config.bus,
            cluster_name=name,
            sources=sources,
            own=self.own,
            engine=host.history,
            namespaces=host.namespaces,
            remote=config.remote,
            options=RunnerOptions(**config.options) if config.options else None,  # type: ignore[arg-type]
        )
        self.forwarder = ClusterForwarder(
            host.namespaces,
            addresses={n: c.rpc_address for n, c in self.cluster.clusters.items() if c.rpc_address},
            services=config.frontends,
            enabled=self._forwarding_enabled,
            credentials=ClusterCredentials(self.cluster.clusters),
        )
        self.dlq = DlqRetrier(
            config.bus, self.own.dlq_topic, self.applier.handle, initial_s=self._dlq_interval
        )
        self._started = False

    def _setting(self, key: str, default: Any, **constraints: str) -> Any:
        dc = self.host.dynamic_config
        return dc.get(key, default, **constraints) if dc is not None else default

    def _forwarding_enabled(self, info: NamespaceInfo) -> bool:
        return bool(self._setting("system.enableNamespaceNotActiveAutoForwarding", True, namespace=info.name))

    def _dlq_interval(self) -> float:
        return float(self._setting("history.replicationDLQRetryIntervalSeconds", self.config.dlq_retry_s))

    async def prepare(self) -> None:
        c = self.config
        if c.create_topics:
            specs = []
            for t in c.topics.values():
                specs += [
                    TopicSpec(t.topic, c.partitions),
                    TopicSpec(t.dlq_topic, 1),
                    TopicSpec(f"{t.dlq_topic}-parked", 1),
                ]
            await c.bus.create_topics(specs, exist_ok=True)
        self.host.queues.replication_handler = self.publisher.publish
        self.host.namespaces.on_change = self.publisher.publish_namespace
        if self.config.forwarding:
            self.host.frontend.forwarder = self.forwarder
        self.host.frontend.failover = functools.partial(fail_over, self.host)
        self.host.frontend.replication_status = self.status
        self.host.frontend.replication_dlq = self.work_dlq

    def start(self) -> None:
        if self.applier.runner.topics:
            self.applier.start()
        self.dlq.start()
        self._started = True

    async def status(self) -> dict[str, Any]:
        """What ``cadenza admin cluster describe`` shows of replication: this cluster's unpublished
        replication tasks, and per source cluster the messages not yet applied here (the group's
        lag on the source's topic), the last applied batch's lag in seconds, and the DLQ."""
        bus = self.config.bus
        group = self.applier.runner.group
        sources = []
        for name, topics in sorted(self.applier.sources.items()):
            lag = 0
            try:
                marks = await bus.watermarks(topics.topic)
                committed = await bus.committed(group, topics.topic)
                for p, (low, high) in marks.items():
                    done = committed[p].offset if p in committed else low
                    lag += max(0, high - done)
            except Exception as e:  # a source's topic that cannot be read now: say so
                lag = -1
                log.debug("replication status of %s: %s", name, e)
            last = self.applier.last_lag_us.get(name)
            sources.append(
                {
                    "cluster": name,
                    "topic": topics.topic,
                    "lag_messages": lag,
                    "lag_seconds": None if last is None else round(last / 1e6, 3),
                    "applied_events": self.applier.events_by_source.get(name, 0),
                }
            )
        lags = sorted(self.applier.lags_us)

        def quantile(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] / 1e6, 3) if lags else None

        dlq = await read_dlq(bus, self.own.dlq_topic, limit=100_000)
        parked = await read_dlq(bus, self.dlq.parked_topic, limit=100_000)
        return {
            "topic": self.own.topic,
            "unpublished_tasks": self.host.queues.replication_backlog(),
            "published_messages": self.publisher.published,
            "applier": "running" if self.applier.running else "stopped",
            "sources": sources,
            "dlq": {"topic": self.own.dlq_topic, "depth": len(dlq), "parked": len(parked)},
            "outcomes": dict(self.applier.outcomes),
            "lag_seconds": {"p50": quantile(0.5), "p99": quantile(0.99), "max": quantile(1.0)},
        }

    async def work_dlq(self, source_cluster: str, action: str) -> dict[str, int]:
        """``cadenza admin dlq merge|purge --source-cluster``: applies now (merge) or drops (purge)
        what this cluster dead-lettered from ``source_cluster``. Raises ``ValueError`` naming a bad
        argument."""
        if action not in ("merge", "purge"):
            raise ValueError(f"action must be 'merge' or 'purge', not {action!r}")
        source = self.applier.sources.get(source_cluster)
        if source is None:
            known = ", ".join(sorted(self.applier.sources)) or "none"
            raise ValueError(
                f"source_cluster {source_cluster!r} is not a cluster this cluster replicates from "
                f"(it replicates from: {known})"
            )
        work = await self.dlq.work_source(source.topic, purge=action == "purge")
        log.info("replication DLQ %s: %s from %s: %s", self.own.dlq_topic, action, source_cluster, work)
        return work.as_json()

    async def stop(self) -> None:
        if self._started:
            await self.dlq.stop()
            if self.applier.runner.topics:
                await self.applier.stop()
        await self.publisher.close()
        await self.forwarder.close()


async def read_raw_history(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    start_event_id: int,
    end_event_id: int,
    end_event_version: int = 0,
) -> list[RawBatch]:
    """The stored batches that hold events ``start .. end - 1`` of the run's branch holding event
    ``end - 1`` with ``end_event_version`` (the current branch when 0, or when no branch does), each
    with the branch's version history up to its last event: what another cluster asks for to fill a
    gap. Not only the current branch: the batch that found the gap may come from a branch this
    cluster has since replaced (a conflict it lost), and only that branch holds its predecessors."""
    shard, ctx = await engine.run_context(namespace_id, workflow_id, run_id)
    async with ctx.lock:
        ms = await engine.load(shard, ctx)
        written_up_to = ms.next_event_id - len(ms.pending_events)
        branch = VersionHistory.from_list(ms.version_history, ms.info.branch_id)
        tree_id = ms.info.tree_id
        if end_event_version and end_event_id > 1:
            wanted = VersionHistoryItem(end_event_id - 1, end_event_version)
            if not branch.contains(wanted):
                for other_id, items in ms.branches:
                    other = VersionHistory.from_list(items, other_id)
                    if other.contains(wanted):
                        branch, written_up_to = other, other.last_event_id() + 1
                        break
    branch_id = branch.branch_id
    end = min(end_event_id, written_up_to)
    out: list[RawBatch] = []
    token: bytes | None = None
    while True:
        nodes, token = await engine.stores.history.read_history_branch(
            tree_id, branch_id, min_node_id=1, max_node_id=end, page_size=1000, token=token
        )
        for node in nodes:
            last = node.node_id + node.event_count - 1
            if last < start_event_id or node.event_count <= 0:
                continue
            vh = branch.copy_until(VersionHistoryItem(last, branch.event_version(last)))
            out.append(RawBatch(node.node_id, last + 1, vh.to_list(), node.data))
        if not token:
            return out


class InProcessRemote:
    """``RemoteHistory`` for clusters running in this process (tests, the embedded three-cluster setup)."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}

    async def raw_history(
        self,
        cluster: str,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        start_event_id: int,
        end_event_id: int,
        end_event_version: int = 0,
    ) -> list[RawBatch]:
        host = self.hosts[cluster]
        return await read_raw_history(
            host.history, namespace_id, workflow_id, run_id, start_event_id, end_event_id, end_event_version
        )


__all__ = ["InProcessRemote", "Replication", "ReplicationConfig", "default_topics", "read_raw_history"]
