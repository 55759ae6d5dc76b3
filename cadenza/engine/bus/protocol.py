"""The bus contract: keyed produce with a durable acknowledgement, consume with explicit acks.

Terms, the same for every backend:

- A *topic* has a fixed number of *partitions*; each partition is an append-only log whose records
  are numbered by *offset* (0, 1, 2, ...; gaps are allowed, e.g. after Kafka compaction).
- A message's *key* picks its partition (``partition_for``: CRC-32 of the key modulo the partition
  count, librdkafka's ``consistent`` partitioner, so both backends put a key in the same partition).
  All messages of one workflow carry the key ``<namespace_id>/<workflow_id>`` (``workflow_key``) and
  therefore stay in order.
- A *consumer group* shares the partitions of its topics among its members; each partition has one
  owner at a time. The group's *committed offset* of a partition is the next offset to deliver after
  a restart or a rebalance.
- ``ack`` means "the effect of this message is durable". Offsets are committed only up to the
  *contiguous acknowledged point*: the first delivered offset not yet acknowledged. A message that was
  delivered but never acknowledged is therefore delivered again after a restart or a rebalance; a
  message acknowledged out of order waits for its predecessors. Delivery is at least once; consumers
  make their effects idempotent.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes]
"""Message headers: pairs (order kept, names may repeat, as in Kafka) or a mapping."""


def workflow_key(namespace_id: str, workflow_id: str) -> bytes:
    """The message key of everything about one workflow, so its messages share a partition."""
    return f"{namespace_id}/{workflow_id}".encode()


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition of ``key``: CRC-32 modulo the count, as librdkafka's ``consistent`` partitioner.

    A null key goes to partition 0 (the ``consistent`` partitioner hashes it as empty).
    """
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, not {partitions}")
    return zlib.crc32(key or b"") % partitions


def normalize_headers(headers: Headers | None) -> tuple[tuple[str, bytes], ...]:
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"header {name!r} must be bytes, not {type(value).__name__}")
        out.append((str(name), bytes(value)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create."""

    name: str
    partitions: int = 1
    replication_factor: int = 1
    """Copies of each partition on distinct brokers; the embedded log records it but keeps one copy."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """The broker's acknowledgement of one produced message: where it was durably stored."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """A group's committed position in one partition, with an optional free-form note.

    The note travels with the offset atomically (Kafka's offset metadata); the DLQ merge uses it to
    record its progress.
    """

    offset: int
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One delivered message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0
    attempt: int = 1
    """How many times this consumer delivered this offset (1 on first delivery, more after ``nack``).

    It is counted in memory: after a restart the count starts again at 1.
    """

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@runtime_checkable
class Producer(Protocol):
    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> asyncio.Future[Delivery]:
        """Queue ``value`` for ``topic``; the future resolves once the broker durably stored it.

        Must be called on the running event loop. It never blocks: many messages can be in flight
        and are sent in batches. The future fails with ``ProduceError`` when the broker did not
        acknowledge (the message may or may not be stored), or ``TopicNotFoundError``.
        """
        ...

    async def flush(self, timeout: float | None = None) -> int:
        """Wait until every message produced so far is acknowledged or failed; returns how many remain."""
        ...

    async def close(self) -> None:
        """Flush and release the connection; later ``produce`` calls raise ``BusClosedError``."""
        ...


@runtime_checkable
class Consumer(Protocol):
    @property
    def group(self) -> str: ...

    @property
    def topics(self) -> tuple[str, ...]: ...

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages, in offset order per partition; waits up to ``timeout`` s."""
        ...

    def ack(self, message: Message) -> None:
        """Record that the effect of ``message`` is durable; ``commit`` persists the contiguous point.

        Acks of messages of a partition this consumer no longer owns are ignored: the new owner
        redelivers them.
        """
        ...

    def nack(self, message: Message) -> None:
        """Deliver the partition again from ``message`` on (its ``attempt`` grows); later acks drop."""
        ...

    async def commit(self) -> dict[tuple[str, int], int]:
        """Commit each owned partition's contiguous acknowledged point; returns what was committed."""
        ...

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        """Deliver ``partition`` of ``topic`` from ``offset`` next (owned partitions only)."""
        ...

    def assignment(self) -> list[tuple[str, int]]:
        """The partitions this member owns now."""
        ...

    async def close(self) -> None:
        """Commit the contiguous points and leave the group (its partitions move to other members)."""
        ...


@runtime_checkable
class Bus(Protocol):
    """A broker: the Kafka cluster or the embedded log."""

    def producer(self) -> Producer: ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> list[str]:
        """Create topics; returns the names created. An existing topic is kept as it is when
        ``exist_ok`` (its partition count is not changed), else raises ``TopicExistsError``."""
        ...

    async def list_topics(self) -> dict[str, int]:
        """Every topic with its partition count (internal ``__`` topics excluded)."""
        ...

    async def delete_topics(self, names: Sequence[str]) -> None: ...

    async def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """Per partition ``(low, high)``: the first stored offset and the next offset to be written."""
        ...

    async def committed(self, group: str, topic: str) -> dict[int, CommittedOffset]:
        """The group's committed offsets of ``topic``; partitions without one are absent."""
        ...

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        """Overwrite the group's committed offsets (also backwards). The group must have no active
        member: this is for tools and tests (resets, the DLQ's progress), not for consumers."""
        ...

    async def read(
        self, topic: str, partition: int, start: int, *, max_messages: int = 500, timeout: float = 5.0
    ) -> list[Message]:
        """Messages of one partition from ``start`` on, outside any group (nothing is committed).

        Returns fewer than ``max_messages`` (possibly none) when the end of the log is reached.
        """
        ...

    async def close(self) -> None: ...
