"""The path of a visibility record: engine outbox → bus topic → indexer → visibility store.

``BusVisibilitySink`` is the outbox's sink: it publishes each update keyed by namespace/workflow id
(so one workflow's updates stay ordered) and returns only when the broker acknowledged all of them;
until then the engine keeps the visibility tasks. ``VisibilityIndexer`` consumes the topic and
upserts into a store with the visibility task id as the version, so a late or duplicate message
never overwrites a newer record. A message whose search attributes do not fit the cluster's
registry cannot be indexed and goes to the dead-letter topic (``cadenza admin dlq``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from cadenza.engine.bus import (
    Bus,
    ConsumerRunner,
    Message,
    PermanentMessageError,
    RunnerOptions,
    TopicSpec,
    VisibilityMessage,
    VisibilityMessageType,
    decode_visibility,
    encode_visibility,
    workflow_key,
)
from cadenza.engine.outbox import VisibilityUpdate
from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility.errors import SearchAttributeError
from cadenza.visibility.record import STATUS_BY_NAME, VisibilityRecord
from cadenza.visibility.store import VisibilityStore

log = logging.getLogger("cadenza.visibility")

VISIBILITY_TOPIC = "cadenza-visibility"
VISIBILITY_DLQ_TOPIC = "cadenza-visibility-dlq"
INDEXER_GROUP = "cadenza-visibility-indexer"

DEV_SEARCH_ATTRIBUTES = {
    "CustomKeywordField": "Keyword",
    "CustomTextField": "Text",
    "CustomIntField": "Int",
    "CustomDoubleField": "Double",
    "CustomBoolField": "Bool",
    "CustomDatetimeField": "Datetime",
    "CustomKeywordListField": "KeywordList",
}
"""Registered by the embedded defaults (dev server, test environment), as the anchors' dev servers
do, so examples can use search attributes without an admin step."""


async def ensure_topics(bus: Bus, *, partitions: int = 4, topic: str = VISIBILITY_TOPIC) -> None:
    await bus.create_topics([TopicSpec(topic, partitions), TopicSpec(f"{topic}-dlq", 1)], exist_ok=True)


class BusVisibilitySink:
    def __init__(self, bus: Bus, *, topic: str = VISIBILITY_TOPIC) -> None:
        self._producer = bus.producer()
        self._topic = topic

    async def publish(self, updates: Sequence[VisibilityUpdate]) -> None:
        futures = []
        for u in updates:
            message = VisibilityMessage(
                namespace_id=u.namespace_id,
                workflow_id=u.workflow_id,
                run_id=u.run_id,
                task_id=u.task_id,
                message_type=VisibilityMessageType.DELETE if u.deleted else VisibilityMessageType.UPSERT,
                workflow_type=u.workflow_type,
                start_time=u.start_time,
                execution_time=u.execution_time,
                close_time=u.close_time or None,
                status=int(STATUS_BY_NAME[u.status]) if u.status else 0,
                history_length=u.history_length,
                task_queue=u.task_queue,
                search_attributes=dict(u.search_attributes),
                memo=dict(u.memo),
            )
            futures.append(
                self._producer.produce(
                    self._topic, workflow_key(u.namespace_id, u.workflow_id), encode_visibility(message)
                )
            )
        await asyncio.gather(*futures)

    async def close(self) -> None:
        await self._producer.close()


class VisibilityIndexer:
    def __init__(
        self,
        bus: Bus,
        store: VisibilityStore,
        *,
        topic: str = VISIBILITY_TOPIC,
        dlq_topic: str = VISIBILITY_DLQ_TOPIC,
        group: str = INDEXER_GROUP,
        options: RunnerOptions | None = None,
    ) -> None:
        self.store = store
        self.topic = topic
        self.runner = ConsumerRunner(
            bus,
            group=group,
            topics=[topic],
            dlq_topic=dlq_topic,
            batch_handler=self._index_batch,
            # A store that is down (Elasticsearch restarting) is retried for as long as it takes, with
            # backoff: dead-lettering records during an outage would leave them unsearchable until
            # someone merged the DLQ. Records that can never be indexed raise PermanentMessageError
            # and go to the DLQ at once.
            # A poll's messages of every partition go to the store in one write: the newest record
            # of each run wins whatever partition it came from. Offsets are committed every 0.2 s
            # while records keep coming rather than after every batch (a write to the bus each);
            # after a crash at most that much is indexed again, and indexing is idempotent.
            options=options
            or RunnerOptions(
                poll_timeout=0.05,
                max_attempts=1 << 30,
                backoff_max=5.0,
                across_partitions=True,
                commit_interval=0.2,
            ),
        )

    def start(self) -> asyncio.Task[None]:
        return self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    async def _index_batch(self, messages: Sequence[Message]) -> None:
        """One write for a batch: the newest version of each run. Any failure makes the runner
        retry the messages one by one (a batch of one), so one bad record cannot hold the others
        back and only it goes to the dead-letter topic.

        A run's close record and its deletion by retention can arrive in one batch. Deletes go
        after the upserts, and an upsert older than a delete of the same run is dropped: applied
        after the delete, it would bring a deleted run back to every list for good (the stores
        keep no tombstone once the row is gone)."""
        newest: dict[tuple[str, str, str], VisibilityRecord] = {}
        deletes: dict[tuple[str, str, str], int] = {}
        for message in messages:
            if message.value is None:
                raise PermanentMessageError("visibility message without a value")
            m = decode_visibility(message.value)  # garbage: MessageDecodeError, straight to the DLQ
            key = (m.namespace_id, m.workflow_id, m.run_id)
            if m.message_type == VisibilityMessageType.DELETE:
                deletes[key] = max(deletes.get(key, m.task_id), m.task_id)
                continue
            record = self._record(m)
            if key not in newest or newest[key].task_id < record.task_id:
                newest[key] = record
        upserts = [r for key, r in newest.items() if key not in deletes or r.task_id > deletes[key]]
        try:
            if upserts:
                await self.store.upsert_many(upserts)
        except SearchAttributeError as e:
            raise PermanentMessageError(str(e)) from e
        for (namespace_id, workflow_id, run_id), task_id in deletes.items():
            await self.store.delete(namespace_id, workflow_id, run_id, task_id=task_id)

    def _record(self, m: VisibilityMessage) -> VisibilityRecord:
        registry = getattr(self.store, "registry", None)
        try:
            typed = registry.decode(m.search_attributes) if registry is not None else {}
        except SearchAttributeError as e:
            raise PermanentMessageError(f"cannot index {m.workflow_id} run {m.run_id}: {e}") from e
        return VisibilityRecord(
            namespace_id=m.namespace_id,
            workflow_id=m.workflow_id,
            run_id=m.run_id,
            workflow_type=m.workflow_type,
            start_time=m.start_time,
            execution_time=m.execution_time,
            close_time=m.close_time or 0,
            status=ExecutionStatus(m.status or 1),
            history_length=m.history_length,
            task_queue=m.task_queue,
            search_attributes=typed,
            memo=dict(m.memo),
            task_id=m.task_id,
        )
