"""The active side of replication: replication tasks and namespace changes onto this cluster's topic.

Replication tasks are written in the same transaction as the events they carry (see
``ShardContext._encode``) and handed here by the shard's replication queue in write order. Each
becomes one ``ReplicationMessage`` keyed by ``<namespace id>/<workflow id>``, so all of a
workflow's batches share a partition and reach every other cluster in order. The tasks are
acknowledged only after the bus acknowledged every message of the batch; a failed publish is
retried by the queue, so a message may be published twice (the appliers drop duplicates) but never
skipped.

A task published from memory carries the batch exactly as it was written; one recovered after a
restart reads it back from history (the node written by that transaction).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cadenza.engine.bus import Bus, Delivery, ReplicationMessage, ReplicationTaskType, workflow_key
from cadenza.engine.bus.messages import (
    NamespaceOperation,
    NamespaceReplication,
    SyncActivity,
    VersionHistoryItem,
    encode_replication,
)
from cadenza.engine.history.mutable_state import decode_plain_values
from cadenza.engine.history.tasks import ReplicationKind, Task
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.service import NamespaceInfo

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.persistence.protocols import HistoryStore

log = logging.getLogger("cadenza.replication")


class ReplicationPublisher:
    def __init__(self, bus: Bus, topic: str, engine: HistoryEngine) -> None:
        self.topic = topic
        self._producer = bus.producer()
        self._engine = engine
        self._history: HistoryStore = engine.stores.history
        self.published = 0

    async def publish(self, tasks: Sequence[Task]) -> None:
        """The replication queue's handler: returns once the bus holds every task's message."""
        futures: list[asyncio.Future[Delivery]] = []
        for t in tasks:
            if t.kind == ReplicationKind.HISTORY:
                message: ReplicationMessage | None = await self._history_message(t)
            else:
                message = await self._activity_message(t)
            if message is None:
                continue
            futures.append(
                self._producer.produce(
                    self.topic, workflow_key(t.namespace_id, t.workflow_id), encode_replication(message)
                )
            )
        if futures:
            await asyncio.gather(*futures)
            self.published += len(futures)

    async def _history_message(self, t: Task) -> ReplicationMessage:
        a = t.args
        blob = t.payload if t.payload is not None else await self._read_batch(t)
        return ReplicationMessage(
            namespace_id=t.namespace_id,
            workflow_id=t.workflow_id,
            run_id=t.run_id,
            task_id=t.task_id,
            task_type=ReplicationTaskType.HISTORY,
            version_history=[VersionHistoryItem(e, v) for e, v in a["vh"]],
            first_event_id=a["f"],
            next_event_id=a["n"],
            events=blob,
        )

    async def _activity_message(self, t: Task) -> ReplicationMessage | None:
        """The activity's state now (as visibility records are built when published): a late
        sync carries the newest state, and an activity that has finished needs none."""
        from cadenza.engine.errors import WorkflowNotFoundError

        try:
            _, ms = await self._engine.get_state(t.namespace_id, t.workflow_id, t.run_id)
        except WorkflowNotFoundError:
            return None
        info = ms.activities.get(t.args["s"])
        if info is None or not ms.is_running:
            return None
        return ReplicationMessage(
            namespace_id=t.namespace_id,
            workflow_id=t.workflow_id,
            run_id=t.run_id,
            task_id=t.task_id,
            task_type=ReplicationTaskType.SYNC_ACTIVITY,
            version_history=[VersionHistoryItem(e, v) for e, v in ms.version_history],
            activity=SyncActivity(
                version=ms.info.last_write_version,
                scheduled_event_id=info.scheduled_event_id,
                scheduled_time=info.scheduled_time,
                started_time=info.started_time,
                last_heartbeat_time=info.last_heartbeat_time,
                details=encode_plain(info.heartbeat_details),
                attempt=info.attempt,
                last_failure=encode_plain(info.last_failure),
                last_worker_identity=info.started_identity,
            ),
        )

    async def _read_batch(self, t: Task) -> bytes:
        """The batch as the task's transaction wrote it: normally one node starting at the first
        event; events of several nodes are encoded again into one batch."""
        a = t.args
        nodes, _ = await self._history.read_history_branch(
            a["t"], a["b"], min_node_id=a["f"], max_node_id=a["n"], page_size=1000
        )
        if len(nodes) == 1 and nodes[0].node_id == a["f"] and nodes[0].event_count == a["n"] - a["f"]:
            return nodes[0].data
        events = [e for n in nodes for e in decode_events(n.data) if a["f"] <= e.event_id < a["n"]]
        return encode_events(events)

    async def publish_namespace(self, info: NamespaceInfo, *, created: bool = False) -> None:
        """A change of a global namespace made in this cluster, for the others to apply."""
        message = ReplicationMessage(
            namespace_id=info.id,
            task_id=info.config_version,
            task_type=ReplicationTaskType.NAMESPACE,
            namespace=NamespaceReplication(
                operation=NamespaceOperation.CREATE if created else NamespaceOperation.UPDATE,
                id=info.id,
                name=info.name,
                description=info.description,
                owner_email=info.owner_email,
                data=dict(info.data),
                retention_days=info.retention_days,
                is_global=info.is_global,
                active_cluster_name=info.active_cluster,
                clusters=list(info.clusters),
                config_version=info.config_version,
                failover_version=info.failover_version,
                failover_history=list(info.failover_history),
            ),
        )
        await self._producer.produce(self.topic, workflow_key(info.id, ""), encode_replication(message))

    async def close(self) -> None:
        await self._producer.close()


def encode_plain(value: Any) -> bytes | None:
    """Payloads and failures (plain dicts, lists, bytes) for a sync message; None stays None."""
    return None if value is None else pickle.dumps(value, protocol=5)


def decode_plain(data: bytes | None) -> Any:
    """The inverse of ``encode_plain``; refuses anything but plain values (no classes), so a
    hostile message cannot run code."""
    return None if data is None else decode_plain_values(data)


def namespace_from_message(ns: NamespaceReplication) -> NamespaceInfo:
    return NamespaceInfo(
        name=ns.name,
        id=ns.id,
        description=ns.description,
        owner_email=ns.owner_email,
        retention_days=ns.retention_days,
        is_global=ns.is_global,
        clusters=list(ns.clusters),
        active_cluster=ns.active_cluster_name,
        failover_version=ns.failover_version,
        data=dict(ns.data),
        config_version=ns.config_version,
        failover_history=list(ns.failover_history),
    )
