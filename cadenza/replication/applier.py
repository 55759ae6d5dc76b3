"""The standby side: consume the other clusters' topics and apply what they published.

One consumer group per receiving cluster (``cadenza-replication-<cluster>``) reads the topic of every
other enabled cluster. A workflow's messages share a partition, and the runner handles a partition's
messages one after another, so a run's batches are applied in the order they were written. Offsets
are committed only after the batch is durable here, and applying is idempotent (a duplicate or older
batch is dropped), so a crash at any point loses and duplicates nothing.

A message that still fails after ``max_attempts`` (with backoff) goes to this cluster's DLQ topic with
the reason, and its partition moves on: one poison message never stalls the rest. The DLQ is
re-driven automatically (``DlqRetrier``): a batch that waited for a namespace, or for events resent
from the source, usually applies later; ``cadenza admin dlq`` works it by hand.

Events missing before a batch (its predecessors went to the DLQ, or the cluster joined late) are
fetched from the source cluster (``RemoteHistory``) and applied first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cadenza.engine.bus import (
    Bus,
    ConsumerRunner,
    Message,
    PermanentMessageError,
    RunnerOptions,
    decode_replication,
)
from cadenza.engine.bus.dlq import DLQ_GROUP, H_SOURCE_TOPIC, DeadLetter, read_dlq
from cadenza.engine.bus.messages import ReplicationMessage, ReplicationTaskType
from cadenza.engine.bus.protocol import CommittedOffset, Producer
from cadenza.engine.namespaces import ReplicatedNamespaceError
from cadenza.replication.history_replicator import (
    Batch,
    HistoryReplicator,
    InvalidBatchError,
    MissingHistoryError,
)
from cadenza.replication.publisher import namespace_from_message

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.namespaces import NamespaceRegistry

log = logging.getLogger("cadenza.replication")


@dataclass(frozen=True, slots=True)
class RawBatch:
    """One stored batch of a run as its cluster wrote it, with the branch's items up to its end."""

    first_event_id: int
    next_event_id: int
    version_history: list[tuple[int, int]]
    events: bytes


class RemoteHistory(Protocol):
    """Reads a run's stored batches from another cluster (over its admin API, or in process)."""

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
        """Events ``start .. end - 1`` of the branch that holds event ``end - 1`` with version
        ``end_event_version`` (the current branch when 0): the source may have switched its run to
        another branch since it sent the batch whose predecessors are missing."""
        ...


@dataclass(frozen=True, slots=True)
class ClusterTopics:
    topic: str
    dlq_topic: str


class ReplicationApplier:
    def __init__(
        self,
        bus: Bus,
        *,
        cluster_name: str,
        sources: Mapping[str, ClusterTopics],
        own: ClusterTopics,
        engine: HistoryEngine,
        namespaces: NamespaceRegistry,
        remote: RemoteHistory | None = None,
        options: RunnerOptions | None = None,
    ) -> None:
        self.cluster_name = cluster_name
        self.bus = bus
        self.own = own
        self._source_of_topic = {t.topic: name for name, t in sources.items()}
        self.sources = dict(sources)
        self.last_lag_us: dict[str, int] = {}
        """Per source cluster, the lag of the last batch applied from it."""
        self.events_by_source: dict[str, int] = {}
        self.namespaces = namespaces
        self.replicator = HistoryReplicator(engine, cluster_name=cluster_name)
        self.remote = remote
        self.outcomes: dict[str, int] = {}
        """How many batches were created, appended, duplicate, forked, switched (tests, metrics)."""
        self.lags_us: deque[int] = deque(maxlen=100_000)
        """Per applied batch: from the writing of its last event on the source to durable here
        (the source's event time, so clocks are assumed in step, as the anchors assume)."""
        self.events_applied = 0
        self._options = options or RunnerOptions(
            poll_timeout=0.05, max_attempts=5, backoff_initial=0.1, backoff_max=2.0
        )
        self.runner = self._runner()

    def _runner(self) -> ConsumerRunner:
        return ConsumerRunner(
            self.bus,
            group=f"cadenza-replication-{self.cluster_name}",
            topics=sorted(self._source_of_topic),
            dlq_topic=self.own.dlq_topic,
            batch_handler=self._handle_batch,
            options=self._options,
        )

    def start(self) -> asyncio.Task[None]:
        return self.runner.start()

    @property
    def running(self) -> bool:
        task = self.runner._task
        return task is not None and not task.done()

    async def stop(self) -> None:
        await self.runner.stop()

    async def pause(self) -> None:
        """Stops consuming (offsets committed); ``resume`` picks up from there."""
        await self.runner.stop()
        self.runner = self._runner()

    def resume(self) -> None:
        self.runner.start()

    async def _handle_batch(self, messages: Sequence[Message]) -> None:
        """A partition's share of a poll: each workflow's messages in order, different workflows
        at once, so their writes share the store's group commits instead of paying one durable
        write after another. If any fails, the runner retries the messages one by one (applying
        is idempotent, so those that succeeded are dropped as duplicates) and only the poison
        one reaches the DLQ."""
        if len(messages) == 1:
            await self._handle(messages[0])
            return
        by_key: dict[bytes | None, list[Message]] = {}
        for message in messages:
            by_key.setdefault(message.key, []).append(message)

        async def in_order(items: list[Message]) -> None:
            for item in items:
                await self._handle(item)

        results = await asyncio.gather(
            *(in_order(items) for items in by_key.values()), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def handle(self, message: Message) -> None:
        """Applies one message (also what the DLQ re-drive calls)."""
        await self._handle(message)

    async def _handle(self, message: Message) -> None:
        if message.value is None:
            raise PermanentMessageError("replication message without a value")
        m = decode_replication(message.value)  # garbage: MessageDecodeError, straight to the DLQ
        topic = message.topic
        if topic == self.own.dlq_topic:  # re-driven from the DLQ: it names where it came from
            topic = (message.header(H_SOURCE_TOPIC) or b"").decode()
        source = self._source_of_topic.get(topic, "")
        await self.apply(m, source)

    async def apply(self, m: ReplicationMessage, source: str) -> None:
        if m.task_type == ReplicationTaskType.NAMESPACE:
            if m.namespace is None:
                raise PermanentMessageError("namespace replication message without a namespace")
            try:
                await self.namespaces.apply_replicated(namespace_from_message(m.namespace))
            except ReplicatedNamespaceError as e:
                raise PermanentMessageError(str(e)) from e
            return
        if m.task_type == ReplicationTaskType.SYNC_ACTIVITY:
            if m.activity is None:
                raise PermanentMessageError("activity sync message without an activity")
            try:
                outcome = await self.replicator.sync_activity(
                    m.namespace_id, m.workflow_id, m.run_id, m.version_history, m.activity
                )
            except InvalidBatchError as e:
                raise PermanentMessageError(str(e)) from e
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            return
        if m.task_type != ReplicationTaskType.HISTORY:
            raise PermanentMessageError(f"unknown replication task type {m.task_type}")
        try:
            batch = Batch.decode(
                m.namespace_id,
                m.workflow_id,
                m.run_id,
                m.first_event_id,
                m.next_event_id,
                m.version_history,
                m.events,
            )
        except InvalidBatchError as e:
            raise PermanentMessageError(str(e)) from e
        await self._apply_batch(batch, source)

    async def _apply_batch(self, batch: Batch, source: str, depth: int = 0) -> None:
        for _ in range(3):
            try:
                outcome = await self.replicator.apply(batch)
            except InvalidBatchError as e:
                raise PermanentMessageError(str(e)) from e
            except MissingHistoryError as gap:
                if self.remote is None or not source or depth > 2:
                    raise
                await self._fill(gap, source, depth)
                continue
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if outcome in ("created", "appended", "switched"):
                self.events_applied += len(batch.events)
                lag = self.replicator.engine.clock.now_us() - batch.events[-1].event_time
                self.lags_us.append(lag)
                self.last_lag_us[source] = lag
                self.events_by_source[source] = self.events_by_source.get(source, 0) + len(batch.events)
            return
        raise MissingHistoryError(
            batch.namespace_id, batch.workflow_id, batch.run_id, 0, batch.first_event_id
        )

    async def _fill(self, gap: MissingHistoryError, source: str, depth: int) -> None:
        assert self.remote is not None
        log.info("%s; asking cluster %s", gap, source)
        raw = await self.remote.raw_history(
            source,
            gap.namespace_id,
            gap.workflow_id,
            gap.run_id,
            gap.from_event_id,
            gap.to_event_id,
            gap.to_event_version,
        )
        for r in raw:
            try:
                batch = Batch.decode(
                    gap.namespace_id,
                    gap.workflow_id,
                    gap.run_id,
                    r.first_event_id,
                    r.next_event_id,
                    r.version_history,
                    r.events,
                )
            except InvalidBatchError as e:
                raise PermanentMessageError(f"resent history from {source}: {e}") from e
            await self._apply_batch(batch, source, depth + 1)


class DlqRetrier:
    """Re-drives this cluster's replication DLQ by itself, with backoff.

    While the DLQ holds messages, each round applies them in order (per DLQ partition) with the
    applier's own handler, and moves the DLQ's position (the group ``cadenza-dlq`` that
    ``cadenza admin dlq`` reads) past each one it applied. A message that can never apply
    (undecodable, an invalid batch: ``PermanentMessageError``) is moved to the parked topic
    ``<dlq>-parked`` for an operator, so it neither blocks the rest nor is lost. A message that
    still fails for a passing reason (a namespace not here yet, a source that cannot be reached)
    stops its partition until the next round, so the DLQ's order is kept.

    The messages are applied here, not produced back to their source topics, so a re-drive
    reaches only this cluster: the source topics are shared with every other cluster."""

    def __init__(
        self,
        bus: Bus,
        dlq_topic: str,
        apply: Callable[[Message], Awaitable[None]],
        *,
        initial_s: float | Callable[[], float] = 5.0,
        max_s: float = 300.0,
    ) -> None:
        self.bus = bus
        self.dlq_topic = dlq_topic
        self.parked_topic = f"{dlq_topic}-parked"
        self._apply = apply
        self._initial_s = initial_s
        self.max_s = max_s
        self.applied = 0
        self.parked = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one round or one operator's command at a time

    @property
    def initial_s(self) -> float:
        """The first interval (read each time: dynamic config may change it)."""
        return self._initial_s() if callable(self._initial_s) else self._initial_s

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"cadenza-dlq-retry-{self.dlq_topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = self.initial_s
        while True:
            await asyncio.sleep(delay)
            try:
                left = await self.redrive()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("replication DLQ %s: re-drive failed: %s", self.dlq_topic, e)
                left = 1
            delay = self.initial_s if not left else min(delay * 2, self.max_s)

    async def redrive(self) -> int:
        """One round; returns how many messages are still waiting in the DLQ."""
        async with self._lock:
            return await self._redrive()

    async def work_source(self, source_topic: str, *, purge: bool) -> DlqWork:
        """An operator's ``dlq merge|purge --source-cluster``: applies now (merge) or drops (purge)
        every message that came from ``source_topic``, whatever sits before it.

        The DLQ's position can only move past a prefix, and messages from other sources are
        interleaved; so each partition that holds messages of the source is rewritten: what stays
        (other sources' messages, and the source's messages that still fail) is appended to the
        DLQ again, in order, and acknowledged by the broker; then the position moves past the old
        range. A crash in between leaves the kept messages twice, which costs a duplicate
        application (dropped as a duplicate batch) and loses nothing."""
        work = DlqWork()
        async with self._lock:
            letters = await read_dlq(self.bus, self.dlq_topic, limit=1 << 30)
            producer = self.bus.producer()
            try:
                for partition, batch in _by_partition(letters).items():
                    if any(letter.source_topic == source_topic for letter in batch):
                        await self._rewrite(producer, partition, batch, source_topic, purge, work)
            finally:
                await producer.close()
        return work

    async def _rewrite(
        self,
        producer: Producer,
        partition: int,
        batch: list[DeadLetter],
        source_topic: str,
        purge: bool,
        work: DlqWork,
    ) -> None:
        keep: list[Message] = []
        for letter in batch:
            m = letter.message
            if letter.source_topic != source_topic:
                keep.append(m)
            elif purge:
                work.purged += 1
            else:
                try:
                    await self._apply(m)
                    work.merged += 1
                    self.applied += 1
                except PermanentMessageError as e:
                    await self._park(producer, m, e)
                    work.parked += 1
                except Exception as e:
                    log.info("replication DLQ %s: offset %d still fails: %s", self.dlq_topic, m.offset, e)
                    work.still_failing += 1
                    keep.append(m)
        dlq = self.dlq_topic
        await asyncio.gather(*(producer.produce(dlq, m.key, m.value or b"", list(m.headers)) for m in keep))
        end = batch[-1].message.offset + 1
        await self.bus.set_committed(DLQ_GROUP, dlq, {partition: CommittedOffset(end)})
        work.kept += len(keep)

    async def _redrive(self) -> int:
        left = 0
        producer = None
        try:
            for partition, letters in _by_partition(
                await read_dlq(self.bus, self.dlq_topic, limit=10_000)
            ).items():
                done = None
                for n, letter in enumerate(letters):
                    m = letter.message
                    try:
                        await self._apply(m)
                        self.applied += 1
                    except PermanentMessageError as e:
                        if producer is None:
                            producer = self.bus.producer()
                        await self._park(producer, m, e)
                    except Exception as e:
                        log.info("replication DLQ %s: offset %d still fails: %s", self.dlq_topic, m.offset, e)
                        left += len(letters) - n
                        break
                    done = m.offset + 1
                if done is not None:
                    await self.bus.set_committed(
                        DLQ_GROUP, self.dlq_topic, {partition: CommittedOffset(done)}
                    )
        finally:
            if producer is not None:
                await producer.close()
        return left

    async def _park(self, producer: Producer, m: Message, e: Exception) -> None:
        headers = [(k, v) for k, v in m.headers if k != "parked-reason"]
        headers.append(("parked-reason", f"{type(e).__name__}: {e}".encode()[:4000]))
        await producer.produce(self.parked_topic, m.key, m.value or b"", headers)
        self.parked += 1
        log.warning(
            "replication DLQ %s: offset %d can never apply (%s); parked in %s",
            self.dlq_topic,
            m.offset,
            e,
            self.parked_topic,
        )


@dataclass(slots=True)
class DlqWork:
    """What ``DlqRetrier.work_source`` did."""

    merged: int = 0
    purged: int = 0
    parked: int = 0
    """Messages of the source that can never apply, moved to the parked topic."""
    still_failing: int = 0
    """Messages of the source that failed again: still in the DLQ, retried automatically."""
    kept: int = 0
    """Messages left in the rewritten partitions (other sources' and the still failing ones)."""

    def as_json(self) -> dict[str, int]:
        return {
            "merged": self.merged,
            "purged": self.purged,
            "parked": self.parked,
            "still_failing": self.still_failing,
            "kept": self.kept,
        }


def _by_partition(letters: Sequence[DeadLetter]) -> dict[int, list[DeadLetter]]:
    out: dict[int, list[DeadLetter]] = {}
    for letter in letters:
        out.setdefault(letter.message.partition, []).append(letter)
    return out
