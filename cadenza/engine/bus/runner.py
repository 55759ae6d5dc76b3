"""A reusable consumer loop: poll, handle, acknowledge, retry with backoff, dead-letter, commit.

Replication and visibility plug a handler into it::

    runner = ConsumerRunner(bus, group="cadenza-visibility-indexer", topics=["cadenza-visibility"],
                            dlq_topic="cadenza-visibility-dlq", handler=index_one)
    task = runner.start()
    ...
    await runner.stop()   # finishes the message in hand, commits, leaves the group

Ordering: the messages of one partition are handled one after another (a workflow's messages share a
partition, so they are applied in order); different partitions are handled concurrently. A failing
message is retried in place with exponential backoff, holding back the rest of its partition, so a
later message of the same workflow is never applied before an earlier one. After ``max_attempts`` the
message goes to the DLQ topic with headers ``error``, ``attempts``, ``source-topic``,
``source-partition`` and ``source-offset``, and only once the DLQ write is acknowledged is the
original acknowledged: a message is never dropped. A handler raising ``PermanentMessageError`` (e.g.
``MessageDecodeError`` for garbage bytes) skips the retries.

Offsets are committed after every batch (or every ``commit_interval`` seconds while messages keep
coming, and whenever a poll brings none), only up to the contiguous acknowledged point (see
``protocol``). Effects must be idempotent: after a crash the uncommitted tail is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .dlq import send_to_dlq
from .errors import BusError, PermanentMessageError
from .protocol import Bus, Consumer, Message, Producer

log = logging.getLogger("cadenza.bus.runner")

Handler = Callable[[Message], Awaitable[None]]
BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class RunnerMetrics(Protocol):
    """Counters a runner reports; plug Prometheus or a test recorder in."""

    def consumed(self, topic: str, count: int) -> None: ...
    def acked(self, topic: str, count: int) -> None: ...
    def retried(self, topic: str, count: int) -> None: ...
    def dead_lettered(self, topic: str, count: int) -> None: ...
    def lag(self, topic: str, partition: int, messages: int) -> None: ...


class NoopMetrics:
    def consumed(self, topic: str, count: int) -> None: ...
    def acked(self, topic: str, count: int) -> None: ...
    def retried(self, topic: str, count: int) -> None: ...
    def dead_lettered(self, topic: str, count: int) -> None: ...
    def lag(self, topic: str, partition: int, messages: int) -> None: ...


class CountingMetrics:
    """Totals per counter name (``consumed``, ``acked``, ...) and the last lag per partition."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {"consumed": 0, "acked": 0, "retried": 0, "dead_lettered": 0}
        self.lags: dict[tuple[str, int], int] = {}

    def consumed(self, topic: str, count: int) -> None:
        self.totals["consumed"] += count

    def acked(self, topic: str, count: int) -> None:
        self.totals["acked"] += count

    def retried(self, topic: str, count: int) -> None:
        self.totals["retried"] += count

    def dead_lettered(self, topic: str, count: int) -> None:
        self.totals["dead_lettered"] += count

    def lag(self, topic: str, partition: int, messages: int) -> None:
        self.lags[(topic, partition)] = messages


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerOptions:
    batch_size: int = 500
    poll_timeout: float = 0.5
    """Also bounds how long ``stop`` waits for an idle poll to return."""
    max_attempts: int = 5
    """Handler calls per message before it is dead-lettered."""
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    backoff_multiplier: float = 2.0
    lag_interval: float = 10.0
    """Seconds between lag reports (0: never)."""
    commit_interval: float = 0.0
    """Seconds between offset commits while messages keep coming (0: after every batch). A poll
    that brings nothing commits what is pending at once, and so does ``stop``; a crash delivers
    the uncommitted tail again either way (effects are idempotent), this only bounds how long."""
    across_partitions: bool = False
    """With a ``batch_handler``: hand it a whole poll at once, every partition's messages in their
    partition's order (one store write instead of one per partition, for a handler that may take
    partitions together); if that fails, each partition is handled as without it."""

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_initial * self.backoff_multiplier ** (attempt - 1)))


class ConsumerRunner:
    """Runs ``handler`` (or ``batch_handler``) over ``topics`` as a member of ``group``.

    With ``batch_handler``, each partition's share of a poll is handed over at once; if the batch
    fails, its messages are retried one by one (as one-message batches) so only the poison message
    reaches the DLQ.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        group: str,
        topics: Sequence[str],
        dlq_topic: str,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        options: RunnerOptions | None = None,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self.bus = bus
        self.group = group
        self.topics = tuple(topics)
        self.dlq_topic = dlq_topic
        self._handler: Handler = handler if handler is not None else self._one_of(batch_handler)
        self._batch_handler = batch_handler
        self.options = options or RunnerOptions()
        self.metrics: RunnerMetrics = metrics or NoopMetrics()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.handled: dict[tuple[str, int], int] = {}
        """Per (topic, partition), the offset after the last message this process handled."""
        self._progress = asyncio.Event()
        self.consumer: Consumer | None = None
        self._producer: Producer | None = None

    @staticmethod
    def _one_of(batch_handler: BatchHandler | None) -> Handler:
        assert batch_handler is not None

        async def one(message: Message) -> None:
            await batch_handler([message])

        return one

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (returned; it ends after ``stop``)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"consumer-runner-{self.group}")
        return self._task

    async def stop(self) -> None:
        """Finish the message in hand, commit, leave the group. Retries in backoff are abandoned
        (their messages stay unacknowledged and are delivered again later)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        self.consumer = consumer = self.bus.consumer(self.group, self.topics)
        self._producer = self.bus.producer()
        last_lag = last_commit = time.monotonic()
        pending = False  # handled messages whose offsets are not committed yet
        try:
            while not self._stop.is_set():
                try:
                    messages = await consumer.poll(self.options.batch_size, self.options.poll_timeout)
                except BusError as exc:
                    log.warning("group %s: poll failed, retrying: %s", self.group, exc)
                    await self._sleep(self.options.backoff_initial)
                    continue
                if messages:
                    await self._handle_batch(messages)
                    self._note_handled(messages)
                    pending = True
                if pending and (
                    not messages or time.monotonic() - last_commit >= self.options.commit_interval
                ):
                    await self._commit()
                    pending, last_commit = False, time.monotonic()
                if self.options.lag_interval and time.monotonic() - last_lag >= self.options.lag_interval:
                    last_lag = time.monotonic()
                    await self._report_lag()
        finally:
            await self._commit()
            await consumer.close()
            await self._producer.close()

    def _note_handled(self, messages: list[Message]) -> None:
        handled = self.handled
        for m in messages:
            key = (m.topic, m.partition)
            if m.offset + 1 > handled.get(key, 0):
                handled[key] = m.offset + 1
        self._progress.set()
        self._progress = asyncio.Event()

    async def caught_up(self, topic: str, timeout_s: float) -> bool:
        """Waits until this runner has handled (indexed, or dead-lettered) every message the
        topic held when called; False if ``timeout_s`` passed first. What a read-after-write
        barrier waits for (``Host.visibility_barrier``)."""
        marks = await self.bus.watermarks(topic)
        # What an earlier process (or this one, before) committed counts as handled too.
        committed = {p: c.offset for p, c in (await self.bus.committed(self.group, topic)).items()}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            behind = [
                p
                for p, (low, high) in marks.items()
                if max(self.handled.get((topic, p), low), committed.get(p, low)) < high
            ]
            if not behind:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self._task is None or self._task.done():
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return False

    async def _commit(self) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.commit()
        except BusError as exc:  # the next commit carries the same point forward
            log.warning("group %s: commit failed: %s", self.group, exc)

    async def _handle_batch(self, messages: list[Message]) -> None:
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            by_partition.setdefault((message.topic, message.partition), []).append(message)
        for (topic, _), items in by_partition.items():
            self.metrics.consumed(topic, len(items))
        if self.options.across_partitions and self._batch_handler is not None and len(by_partition) > 1:
            assert self.consumer is not None
            try:
                await self._batch_handler(messages)
            except Exception as exc:
                log.info(
                    "group %s: batch of %d failed (%s); retrying by partition", self.group, len(messages), exc
                )
            else:
                for (topic, _), items in by_partition.items():
                    for message in items:
                        self.consumer.ack(message)
                    self.metrics.acked(topic, len(items))
                return
        await asyncio.gather(*(self._handle_partition(items) for items in by_partition.values()))

    async def _handle_partition(self, messages: list[Message]) -> None:
        assert self.consumer is not None
        if self._batch_handler is not None and len(messages) > 1:
            try:
                await self._batch_handler(messages)
            except Exception as exc:
                log.info(
                    "group %s: batch of %d failed (%s); retrying one by one", self.group, len(messages), exc
                )
            else:
                for message in messages:
                    self.consumer.ack(message)
                self.metrics.acked(messages[0].topic, len(messages))
                return
        for message in messages:
            if not await self._handle_one(message):
                return  # stopping: the rest of this partition stays unacknowledged

    async def _handle_one(self, message: Message) -> bool:
        """Handle with retries, else dead-letter; False only when stopped before either finished."""
        assert self.consumer is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(message)
            except PermanentMessageError as exc:
                return await self._dead_letter(message, exc, attempt)
            except Exception as exc:
                if attempt >= self.options.max_attempts:
                    return await self._dead_letter(message, exc, attempt)
                self.metrics.retried(message.topic, 1)
                log.info(
                    "group %s: %s[%d]@%d attempt %d failed: %s",
                    self.group,
                    message.topic,
                    message.partition,
                    message.offset,
                    attempt,
                    exc,
                )
                if await self._sleep(self.options.backoff(attempt)):
                    return False
            else:
                self.consumer.ack(message)
                self.metrics.acked(message.topic, 1)
                return True

    async def _dead_letter(self, message: Message, exc: BaseException, attempts: int) -> bool:
        assert self.consumer is not None and self._producer is not None
        error = f"{type(exc).__name__}: {exc}"
        retry = 0
        while True:
            try:
                await send_to_dlq(self._producer, message, self.dlq_topic, error=error, attempts=attempts)
                break
            except BusError as dlq_exc:
                # Acknowledging before the DLQ holds the message would lose it: keep trying.
                retry += 1
                log.warning("group %s: DLQ write to %s failed: %s", self.group, self.dlq_topic, dlq_exc)
                if await self._sleep(self.options.backoff(retry)):
                    return False
        log.warning(
            "group %s: %s[%d]@%d dead-lettered to %s after %d attempt(s): %s",
            self.group,
            message.topic,
            message.partition,
            message.offset,
            self.dlq_topic,
            attempts,
            error,
        )
        self.consumer.ack(message)
        self.metrics.dead_lettered(message.topic, 1)
        return True

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _report_lag(self) -> None:
        try:
            for topic in self.topics:
                marks = await self.bus.watermarks(topic)
                committed = await self.bus.committed(self.group, topic)
                for partition, (low, high) in marks.items():
                    done = committed[partition].offset if partition in committed else low
                    self.metrics.lag(topic, partition, max(0, high - done))
        except BusError as exc:
            log.debug("group %s: lag unavailable: %s", self.group, exc)
