"""Dead-letter queues: what a consumer gave up on, and the tools to read, purge and re-drive it.

A dead-lettered message keeps its key, value and headers, and gains ``error``, ``attempts``,
``source-topic``, ``source-partition`` and ``source-offset``.

What counts as "still in the DLQ" is everything at or after the committed offset of the group
``cadenza-dlq`` on the DLQ topic (partitions without one start at their first stored offset). The DLQ
topic itself is never rewritten: ``purge`` and ``merge`` only move that offset, and retention removes
the messages later.

Merge, without losing or duplicating anything. For each DLQ partition, in batches:

1. note the intent: commit the *unchanged* offset with metadata
   ``{"end": <offset after the batch>, "sources": {topic: {partition: high watermark}}}``;
2. produce every message of the batch to its source topic with header
   ``merged-from = <dlq topic>:<partition>:<offset>``, and wait until the broker acknowledged all;
3. commit the offset after the batch with empty metadata.

A crash before 1 merged nothing. A crash after 3 merged the batch completely. A crash between 1 and 3
left an intent: the next merge scans the source partitions from the watermarks recorded in it (nothing
from the batch can sit before them) for ``merged-from`` headers of the interrupted range, produces only
the messages not found, then commits. So every message reaches its source exactly once, however often
merge is interrupted and re-run. (Two merges of the same DLQ at the same time are not supported.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DeadLetterError
from .protocol import Bus, CommittedOffset, Delivery, Message, Producer

DLQ_GROUP = "cadenza-dlq"
H_ERROR = "error"
H_ATTEMPTS = "attempts"
H_SOURCE_TOPIC = "source-topic"
H_SOURCE_PARTITION = "source-partition"
H_SOURCE_OFFSET = "source-offset"
H_MERGED_FROM = "merged-from"
DLQ_HEADERS = frozenset({H_ERROR, H_ATTEMPTS, H_SOURCE_TOPIC, H_SOURCE_PARTITION, H_SOURCE_OFFSET})
MAX_ERROR_BYTES = 4000


def dead_letter_headers(message: Message, *, error: str, attempts: int) -> list[tuple[str, bytes]]:
    """``message``'s own headers (minus those of an earlier dead-lettering) plus the DLQ ones."""
    kept = [(k, v) for k, v in message.headers if k not in DLQ_HEADERS and k != H_MERGED_FROM]
    return [
        *kept,
        (H_ERROR, error.encode()[:MAX_ERROR_BYTES]),
        (H_ATTEMPTS, str(attempts).encode()),
        (H_SOURCE_TOPIC, message.topic.encode()),
        (H_SOURCE_PARTITION, str(message.partition).encode()),
        (H_SOURCE_OFFSET, str(message.offset).encode()),
    ]


def send_to_dlq(
    producer: Producer, message: Message, dlq_topic: str, *, error: str, attempts: int
) -> asyncio.Future[Delivery]:
    """Produce ``message`` to ``dlq_topic`` with the DLQ headers; resolves when acknowledged."""
    headers = dead_letter_headers(message, error=error, attempts=attempts)
    return producer.produce(dlq_topic, message.key, message.value or b"", headers)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message in a DLQ, with its DLQ headers parsed."""

    message: Message
    error: str
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int

    @staticmethod
    def of(message: Message) -> DeadLetter:
        def text(name: str) -> str:
            return (message.header(name) or b"").decode(errors="replace")

        def number(name: str) -> int:
            try:
                return int(text(name))
            except ValueError:
                return -1

        return DeadLetter(
            message,
            text(H_ERROR),
            number(H_ATTEMPTS),
            text(H_SOURCE_TOPIC),
            number(H_SOURCE_PARTITION),
            number(H_SOURCE_OFFSET),
        )

    def as_json(self) -> dict[str, object]:
        m = self.message
        return {
            "partition": m.partition,
            "offset": m.offset,
            "key": (m.key or b"").decode(errors="replace"),
            "error": self.error,
            "attempts": self.attempts,
            "source": f"{self.source_topic}[{self.source_partition}]@{self.source_offset}",
            "timestamp_ms": m.timestamp_ms,
        }


async def _positions(bus: Bus, dlq_topic: str) -> dict[int, tuple[CommittedOffset, int]]:
    """Per partition: the DLQ group's position (or the first stored offset) and the high watermark."""
    marks = await bus.watermarks(dlq_topic)
    committed = await bus.committed(DLQ_GROUP, dlq_topic)
    out = {}
    for partition, (low, high) in sorted(marks.items()):
        position = committed.get(partition, CommittedOffset(low))
        out[partition] = (CommittedOffset(max(position.offset, low), position.metadata), high)
    return out


async def _read_range(
    bus: Bus, topic: str, partition: int, start: int, end: int, batch: int = 500
) -> list[Message]:
    out: list[Message] = []
    while start < end:
        got = await bus.read(topic, partition, start, max_messages=min(batch, end - start))
        got = [m for m in got if m.offset < end]
        if not got:
            break
        out.extend(got)
        start = got[-1].offset + 1
    return out


async def read_dlq(
    bus: Bus, dlq_topic: str, *, limit: int = 100, partition: int | None = None
) -> list[DeadLetter]:
    """The messages still in the DLQ (not purged or merged), oldest first per partition."""
    out: list[DeadLetter] = []
    for p, (position, high) in (await _positions(bus, dlq_topic)).items():
        if partition is not None and p != partition:
            continue
        end = min(high, position.offset + max(0, limit - len(out)))
        out.extend(DeadLetter.of(m) for m in await _read_range(bus, dlq_topic, p, position.offset, end))
    return out[:limit]


async def purge_dlq(
    bus: Bus, dlq_topic: str, *, up_to: int | None = None, partition: int | None = None
) -> int:
    """Drop messages through offset ``up_to`` (inclusive; all when None); returns how many."""
    dropped = 0
    updates: dict[int, CommittedOffset] = {}
    for p, (position, high) in (await _positions(bus, dlq_topic)).items():
        if partition is not None and p != partition:
            continue
        if position.metadata:
            raise DeadLetterError(f"{dlq_topic}[{p}] has an interrupted merge; run merge again first")
        end = high if up_to is None else min(high, up_to + 1)
        if end > position.offset:
            dropped += len(await _read_range(bus, dlq_topic, p, position.offset, end))
            updates[p] = CommittedOffset(end)
    await bus.set_committed(DLQ_GROUP, dlq_topic, updates)
    return dropped


@dataclass(frozen=True, slots=True)
class MergeResult:
    merged: int
    """Messages produced to their source topics by this run."""
    skipped: int
    """Messages an interrupted earlier run had already produced (found by their ``merged-from``)."""


def _merged_from(dlq_topic: str, partition: int, offset: int) -> bytes:
    return f"{dlq_topic}:{partition}:{offset}".encode()


async def merge_dlq(
    bus: Bus, dlq_topic: str, *, up_to: int | None = None, partition: int | None = None, batch: int = 500
) -> MergeResult:
    """Move messages through offset ``up_to`` (all when None) back to their source topics."""
    merged = skipped = 0
    producer = bus.producer()
    try:
        for p, (position, high) in (await _positions(bus, dlq_topic)).items():
            if partition is not None and p != partition:
                continue
            end = high if up_to is None else min(high, up_to + 1)
            start = position.offset
            if position.metadata:  # an earlier run stopped between steps 1 and 3
                m, s = await _finish_interrupted(bus, producer, dlq_topic, p, start, position.metadata)
                merged, skipped = merged + m, skipped + s
                start = json.loads(position.metadata)["end"]
            while start < end:
                messages = await _read_range(bus, dlq_topic, p, start, min(end, start + batch))
                if not messages:
                    break
                stop = messages[-1].offset + 1
                sources = sorted({_source_of(m) for m in messages})
                intent = {
                    "end": stop,
                    "sources": {
                        t: {str(q): hi for q, (_, hi) in (await bus.watermarks(t)).items()} for t in sources
                    },
                }
                await bus.set_committed(DLQ_GROUP, dlq_topic, {p: CommittedOffset(start, json.dumps(intent))})
                await _produce_back(producer, dlq_topic, messages)
                await bus.set_committed(DLQ_GROUP, dlq_topic, {p: CommittedOffset(stop)})
                merged += len(messages)
                start = stop
    finally:
        await producer.close()
    return MergeResult(merged, skipped)


def _source_of(message: Message) -> str:
    source = message.header(H_SOURCE_TOPIC)
    if not source:
        raise DeadLetterError(
            f"{message.topic}[{message.partition}]@{message.offset} has no {H_SOURCE_TOPIC} header: "
            "it was not dead-lettered by a consumer runner; purge it instead"
        )
    return source.decode()


async def _produce_back(producer: Producer, dlq_topic: str, messages: Sequence[Message]) -> None:
    futures = []
    for m in messages:
        headers = [(k, v) for k, v in m.headers if k not in DLQ_HEADERS and k != H_MERGED_FROM]
        headers.append((H_MERGED_FROM, _merged_from(dlq_topic, m.partition, m.offset)))
        futures.append(producer.produce(_source_of(m), m.key, m.value or b"", headers))
    await asyncio.gather(*futures)  # every one acknowledged, or the merge stops before committing


async def _finish_interrupted(
    bus: Bus, producer: Producer, dlq_topic: str, partition: int, start: int, metadata: str
) -> tuple[int, int]:
    intent = json.loads(metadata)
    end = int(intent["end"])
    already: set[bytes] = set()
    for topic, marks in intent["sources"].items():
        for q, (_, high) in (await bus.watermarks(topic)).items():
            for m in await _read_range(bus, topic, q, int(marks.get(str(q), 0)), high):
                tag = m.header(H_MERGED_FROM)
                if tag is not None:
                    already.add(tag)
    messages = await _read_range(bus, dlq_topic, partition, start, end)
    missing = [m for m in messages if _merged_from(dlq_topic, partition, m.offset) not in already]
    await _produce_back(producer, dlq_topic, missing)
    await bus.set_committed(DLQ_GROUP, dlq_topic, {partition: CommittedOffset(end)})
    return len(missing), len(messages) - len(missing)
