"""The bus contract on Apache Kafka, through confluent-kafka (librdkafka).

Producer: idempotent (``enable.idempotence``, which implies ``acks=all`` and ordered retries without
duplicates), partitioned with librdkafka's ``consistent`` partitioner (CRC-32 of the key), the same
function as ``partition_for`` and the embedded log. ``produce`` never blocks the event loop: it hands
the message to librdkafka's queue and returns a future; a daemon thread serves delivery reports
(``poll``) and resolves each future on its loop with ``call_soon_threadsafe``. A message librdkafka
cannot deliver within ``message.timeout.ms`` fails its future with ``ProduceError``; until then a
broker outage only delays it (librdkafka reconnects and retries on its own).

Consumer: ``enable.auto.commit=false`` and ``enable.auto.offset.store=false``: nothing is committed
except the contiguous acknowledged point (``_offsets.PartitionTracker``), by ``commit``. Every
blocking librdkafka call (consume, commit, seek, close) runs on ONE dedicated thread: rebalance
callbacks fire inside ``consume`` on that thread, and keeping all calls there serialises them with the
callbacks. On revocation the callback commits what is contiguous for the revoked partitions and drops
their in-flight state (their unacknowledged messages go to the next owner); on assignment tracking
starts afresh from the group's committed offset.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import Consumer as _RdConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Producer as _RdProducer
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from ._kafka_common import TRANSIENT, librdkafka_log, to_message, translate, translate_error
from .errors import BusClosedError, BusUnavailableError, TopicExistsError, TopicNotFoundError
from .kafka_consumer import KafkaConsumer
from .protocol import CommittedOffset, Delivery, Headers, Message, TopicSpec, normalize_headers

T = TypeVar("T")
ADMIN_TIMEOUT = 30.0

__all__ = ["KafkaBus", "KafkaConsumer", "KafkaProducer"]


class KafkaBus:
    """A Kafka cluster. ``config`` adds librdkafka settings to every client (e.g. security)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        config: Mapping[str, Any] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        # librdkafka's own log lines (e.g. a refused connection every 50 ms while a broker restarts)
        # go to Python logging instead of stderr.
        self._base = {"bootstrap.servers": bootstrap_servers, "logger": librdkafka_log, **(config or {})}
        self._producer_config = dict(producer_config or {})
        self._consumer_config = dict(consumer_config or {})
        self._admin = AdminClient(dict(self._base))
        self._group_handles: dict[str, _RdConsumer] = {}
        self._handles_lock = threading.Lock()

    def producer(self) -> KafkaProducer:
        return KafkaProducer({**self._base, **self._producer_config})

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        return KafkaConsumer({**self._base, **self._consumer_config}, group, topics)

    async def close(self) -> None:
        with self._handles_lock:
            handles, self._group_handles = list(self._group_handles.values()), {}
        for handle in handles:
            await asyncio.to_thread(handle.close)

    # -- admin --------------------------------------------------------------------------------

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> list[str]:
        if not topics:
            return []
        futures = self._admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor)
                for s in topics
            ],
            operation_timeout=ADMIN_TIMEOUT,
        )
        created: list[str] = []
        for name, future in futures.items():
            try:
                await asyncio.wrap_future(future)
                created.append(name)
            except KafkaException as exc:
                err = translate(exc)
                if isinstance(err, TopicExistsError) and exist_ok:
                    continue
                raise err from exc
        await self._await_metadata({s.name: s.partitions for s in topics if s.name in created})
        return created

    async def _await_metadata(self, expected: Mapping[str, int]) -> None:
        # A topic is usable only once every partition has a leader in the metadata; producing or
        # subscribing before that sees "unknown topic" until the next metadata refresh.
        deadline = time.monotonic() + ADMIN_TIMEOUT
        for name, count in expected.items():
            while True:
                meta = await asyncio.to_thread(self._admin.list_topics, name, 10)
                topic = meta.topics.get(name)
                if (
                    topic is not None
                    and topic.error is None
                    and len(topic.partitions) == count
                    and all(p.leader >= 0 for p in topic.partitions.values())
                ):
                    break
                if time.monotonic() > deadline:
                    raise BusUnavailableError(f"topic {name!r} has no leader after {ADMIN_TIMEOUT:.0f}s")
                await asyncio.sleep(0.1)

    async def list_topics(self) -> dict[str, int]:
        meta = await self._call(self._admin.list_topics, timeout=10)
        return {name: len(t.partitions) for name, t in meta.topics.items() if not name.startswith("__")}

    async def _partitions(self, topic: str) -> list[int]:
        meta = await self._call(self._admin.list_topics, topic, 10)
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            raise TopicNotFoundError(f"topic {topic!r} does not exist")
        return sorted(found.partitions)

    async def delete_topics(self, names: Sequence[str]) -> None:
        if not names:
            return
        for future in self._admin.delete_topics(list(names), operation_timeout=ADMIN_TIMEOUT).values():
            try:
                await asyncio.wrap_future(future)
            except KafkaException as exc:
                err = translate(exc)
                if not isinstance(err, TopicNotFoundError):
                    raise err from exc

    async def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        partitions = await self._partitions(topic)
        return await _retrying(lambda: self._list_offsets(topic, partitions))

    async def _list_offsets(self, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
        lows = self._admin.list_offsets({TopicPartition(topic, p): OffsetSpec.earliest() for p in partitions})
        highs = self._admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions})
        out: dict[int, tuple[int, int]] = {}
        for tp, future in lows.items():
            low = (await asyncio.wrap_future(future)).offset
            high = (await asyncio.wrap_future(highs[_key(highs, tp)])).offset
            out[tp.partition] = (low, high)
        return out

    # Group offsets go through a consumer of the group, not the admin client: librdkafka's admin
    # ListConsumerGroupOffsets dereferences the admin client's (absent) consumer group when the broker
    # answers NOT_COORDINATOR, which it does while a restarted broker reloads its coordinators, and
    # the whole process dies of SIGSEGV (librdkafka issue 5040, still in 2.16). A consumer has a
    # group handle that re-queries the coordinator and retries instead.

    async def committed(self, group: str, topic: str) -> dict[int, CommittedOffset]:
        partitions = await self._partitions(topic)
        handle = self._group_handle(group)
        result = await _retrying(
            lambda: asyncio.to_thread(
                handle.committed, [TopicPartition(topic, p) for p in partitions], ADMIN_TIMEOUT
            )
        )
        return {
            tp.partition: CommittedOffset(tp.offset, tp.metadata or "")
            for tp in result
            if tp.offset >= 0 and tp.error is None
        }

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        if not offsets:
            return
        handle = self._group_handle(group)
        request = [TopicPartition(topic, p, o.offset, o.metadata) for p, o in offsets.items()]
        # A commit from outside the group's generation: the broker accepts it only while the group
        # has no active member, which is this method's contract.
        await _retrying(lambda: asyncio.to_thread(handle.commit, offsets=request, asynchronous=False))

    def _group_handle(self, group: str) -> _RdConsumer:
        """A consumer that never subscribes: it only reads and writes ``group``'s offsets."""
        with self._handles_lock:
            handle = self._group_handles.get(group)
            if handle is None:
                handle = _RdConsumer(
                    {
                        **self._base,
                        "group.id": group,
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                    }
                )
                self._group_handles[group] = handle
            return handle

    async def read(
        self, topic: str, partition: int, start: int, *, max_messages: int = 500, timeout: float = 5.0
    ) -> list[Message]:
        return await asyncio.to_thread(self._read, topic, partition, start, max_messages, timeout)

    def _read(
        self, topic: str, partition: int, start: int, max_messages: int, timeout: float
    ) -> list[Message]:
        reader = _RdConsumer(
            {
                **self._base,
                "group.id": f"cadenza-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            start = max(start, low)
            if start >= high:
                return []
            reader.assign([TopicPartition(topic, partition, start)])
            out: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(out) < max_messages and time.monotonic() < deadline:
                for msg in reader.consume(min(500, max_messages - len(out)), 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return out
                        raise translate_error(err)
                    out.append(to_message(msg, 1))
                if out and out[-1].offset >= high - 1:
                    break
            return out
        except KafkaException as exc:
            raise translate(exc) from exc
        finally:
            reader.close()

    @staticmethod
    async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except KafkaException as exc:
            raise translate(exc) from exc


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Run an admin call, retrying transient errors for up to ``ADMIN_TIMEOUT``.

    Right after a topic is created or a broker restarted, leadership and group coordinators are
    still moving: "not leader" or "coordinator loading" answers pass within moments.
    """
    deadline = time.monotonic() + ADMIN_TIMEOUT
    while True:
        try:
            return await call()
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            transient = err is not None and (err.retriable() or err.code() in TRANSIENT)
            if not transient or time.monotonic() > deadline:
                raise translate(exc) from exc
            await asyncio.sleep(0.1)


def _key(futures: Mapping[TopicPartition, Any], tp: TopicPartition) -> TopicPartition:
    for candidate in futures:
        if candidate.topic == tp.topic and candidate.partition == tp.partition:
            return candidate
    raise KeyError(tp)


class KafkaProducer:
    def __init__(self, config: Mapping[str, Any]) -> None:
        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "consistent",  # CRC-32 of the key: the same partition as the embedded log
            "linger.ms": 5,
            **config,
        }
        self._producer = _RdProducer(conf)
        self._in_flight: set[asyncio.Future[Delivery]] = set()
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve, name="cadenza-kafka-producer", daemon=True)
        self._poller.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)  # runs delivery callbacks on this thread
        self._producer.poll(0)

    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> asyncio.Future[Delivery]:
        if self._closed:
            raise BusClosedError("producer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        raw: list[tuple[str, str | bytes | None]] = list(normalize_headers(headers))
        self._send(loop, future, topic, key, value, raw)
        return future

    def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Delivery],
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]],
    ) -> None:
        if future.done():
            return

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            outcome: BaseException | Delivery
            if err is not None:
                outcome = translate_error(err)
            else:
                outcome = Delivery(msg.topic(), msg.partition(), msg.offset())
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:
                pass  # the caller's loop is closed

        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            # librdkafka's local queue is full (the broker is slow or down): try again shortly rather
            # than block the event loop; the future stays pending, which is the backpressure.
            loop.call_later(0.05, self._send, loop, future, topic, key, value, headers)
        except KafkaException as exc:
            future.set_exception(translate(exc))

    async def flush(self, timeout: float | None = None) -> int:
        pending = list(self._in_flight)
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=timeout)
        return len(still)

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        self._stop.set()
        await asyncio.to_thread(self._poller.join)
        await asyncio.to_thread(self._producer.flush, 5)


def _resolve(future: asyncio.Future[Delivery], outcome: BaseException | Delivery) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
