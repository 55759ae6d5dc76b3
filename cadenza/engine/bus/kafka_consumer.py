"""The Kafka consumer of the bus contract (see ``kafka`` for the design)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from ._kafka_common import NOT_FOUND, log, to_message, translate, translate_error
from ._offsets import PartitionTracker
from .errors import BusClosedError, BusError, TopicNotFoundError
from .protocol import Message

T = TypeVar("T")
TP = tuple[str, int]


class KafkaConsumer:
    def __init__(self, config: Mapping[str, Any], group: str, topics: Sequence[str]) -> None:
        conf = {
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            **config,
            "group.id": group,
            # Offsets move only when this class commits a contiguous acknowledged point.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        self._group = group
        self._topics = tuple(topics)
        self._lock = threading.Lock()  # trackers: the loop thread acks, the consumer thread rebalances
        self._trackers: dict[TP, PartitionTracker] = {}
        self._seeks: dict[TP, int] = {}
        self._closed = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"cadenza-kafka-consumer-{group}")
        self._consumer = _RdConsumer(conf)
        self._consumer.subscribe(
            list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    @property
    def group(self) -> str:
        return self._group

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    def assignment(self) -> list[TP]:
        with self._lock:
            return sorted(self._trackers)

    # -- rebalance callbacks (on the consumer thread, inside consume) -------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                # The start is unknown until the first message arrives (-1: nothing to commit yet).
                self._trackers[(tp.topic, tp.partition)] = PartitionTracker(-1)
        log.debug("group %s assigned %s", self._group, [(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        try:
            self._commit_now(revoked)
        except BusError as exc:
            # The next owner starts from the last commit: some messages are delivered twice.
            log.warning("group %s: commit on revoke failed: %s", self._group, exc)
        with self._lock:
            for key in revoked:
                self._trackers.pop(key, None)
                self._seeks.pop(key, None)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        with self._lock:  # ownership is already gone: committing now could overwrite the new owner
            for tp in partitions:
                self._trackers.pop((tp.topic, tp.partition), None)

    # -- API ----------------------------------------------------------------------------------

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusClosedError("consumer is closed")
        raw = await self._run(self._consume, max_messages, timeout)
        out: list[Message] = []
        with self._lock:
            for msg in raw:
                tracker = self._trackers.get((msg.topic(), msg.partition()))
                if tracker is None:
                    continue  # revoked between fetch and now
                if tracker.start < 0:
                    tracker.start = msg.offset()
                out.append(to_message(msg, tracker.deliver(msg.offset())))
        return out

    def _consume(self, max_messages: int, timeout: float) -> list[Any]:
        with self._lock:
            seeks, self._seeks = self._seeks, {}
        for (topic, partition), offset in seeks.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))
        messages = []
        for msg in self._consumer.consume(max_messages, timeout):
            err = msg.error()
            if err is None:
                messages.append(msg)
            elif err.fatal() or err.code() in NOT_FOUND:
                raise translate_error(err)
            elif err.code() != KafkaError._PARTITION_EOF:
                # Broker down, transport errors: librdkafka reconnects by itself; the poll goes on.
                log.debug("group %s: %s", self._group, err.str())
        return messages

    def ack(self, message: Message) -> None:
        with self._lock:
            tracker = self._trackers.get((message.topic, message.partition))
            if tracker is not None:
                tracker.ack(message.offset)

    def nack(self, message: Message) -> None:
        key = (message.topic, message.partition)
        with self._lock:
            tracker = self._trackers.get(key)
            if tracker is not None and message.offset >= tracker.point():
                tracker.rewind(message.offset)
                self._seeks[key] = message.offset

    async def commit(self) -> dict[TP, int]:
        with self._lock:
            owned = list(self._trackers)
        return await self._run(self._commit_now, owned)

    def _commit_now(self, partitions: Sequence[TP]) -> dict[TP, int]:
        with self._lock:
            points = {}
            for key in partitions:
                tracker = self._trackers.get(key)
                if tracker is not None and tracker.point() >= 0 and tracker.point() != tracker.committed:
                    points[key] = tracker.point()
        if not points:
            return {}
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, off) for (t, p), off in points.items()], asynchronous=False
            )
        except KafkaException as exc:
            raise translate(exc) from exc
        with self._lock:
            for key, off in points.items():
                tracker = self._trackers.get(key)
                if tracker is not None:
                    tracker.committed = off
        return points

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        with self._lock:
            tracker = self._trackers.get(key)
            if tracker is None:
                raise TopicNotFoundError(f"{topic}[{partition}] is not assigned to this consumer")
            tracker.rewind(offset)
            tracker.delivered.clear()
            tracker.acked.clear()
            tracker.start = offset
            self._seeks[key] = offset

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.commit()
        except BusError as exc:
            log.warning("group %s: final commit failed: %s", self._group, exc)
        try:
            await self._run(self._consumer.close)  # leaves the group: the partitions move at once
        finally:
            self._thread.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except KafkaException as exc:
            raise translate(exc) from exc
        except RuntimeError as exc:
            if self._closed:
                raise BusClosedError("consumer is closed") from exc
            raise
