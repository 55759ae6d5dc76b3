"""One contract suite for the Bus protocol; each backend's test file subclasses ``BusContract``.

Every test makes fresh random topic and group names, so the suite can run against a shared Kafka.
A "restart" closes the bus and opens a new one on the same storage (``make_bus`` again).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pytest

from cadenza.engine.bus import (
    Bus,
    CommittedOffset,
    ConsumerRunner,
    CountingMetrics,
    Message,
    RunnerOptions,
    TopicSpec,
    VisibilityMessage,
    decode_visibility,
    encode_visibility,
    merge_dlq,
    partition_for,
    read_dlq,
    workflow_key,
)
from cadenza.engine.bus.errors import BusError, TopicNotFoundError

T = TypeVar("T")
FAST = RunnerOptions(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, poll_timeout=0.2)


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def consume(
    bus: Bus, group: str, topic: str, count: int, *, ack: bool = True, timeout: float = 30.0
) -> list[Message]:
    """Poll a fresh member of ``group`` until ``count`` messages arrived, then close it."""
    consumer = bus.consumer(group, [topic])
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            for m in await consumer.poll(count - len(got), 0.5):
                got.append(m)
                if ack:
                    consumer.ack(m)
    finally:
        await consumer.close()
    return got


async def nothing_more(bus: Bus, group: str, topic: str, wait: float = 3.0) -> list[Message]:
    consumer = bus.consumer(group, [topic])
    try:
        got: list[Message] = []
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            got += await consumer.poll(100, 0.5)
        return got
    finally:
        await consumer.close()


class FlakyBus:
    """Delegates to a bus but fails ``set_committed`` on chosen calls (a crash inside a DLQ merge)."""

    def __init__(self, inner: Bus, fail_on_call: int) -> None:
        self._inner = inner
        self._calls = 0
        self._fail_on = fail_on_call

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        self._calls += 1
        if self._calls == self._fail_on:
            raise BusError("simulated crash before the commit")
        await self._inner.set_committed(group, topic, offsets)


class BusContract:
    """Subclass with ``make_bus`` returning a bus on the same storage each time it is called."""

    group_settle: float = 0.0
    """Extra seconds a backend needs before a group has settled (Kafka rebalances)."""

    def make_bus(self) -> Bus:
        raise NotImplementedError

    async def topic(self, bus: Bus, partitions: int = 1, *, dlq: bool = False) -> str:
        topic = name("t")
        specs = [TopicSpec(topic, partitions)]
        if dlq:
            specs.append(TopicSpec(f"{topic}-dlq", 1))
        assert sorted(await bus.create_topics(specs)) == sorted(s.name for s in specs)
        return topic

    def run_with_bus(self, case: Callable[[Bus], Awaitable[None]], timeout: float = 120.0) -> None:
        async def main() -> None:
            bus = self.make_bus()
            try:
                await case(bus)
            finally:
                await bus.close()

        run(main(), timeout)

    # -- admin ----------------------------------------------------------------------------------

    def test_create_list_and_watermarks(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, 3)
            assert (await bus.list_topics())[topic] == 3
            assert await bus.create_topics([TopicSpec(topic, 3)]) == []  # exist_ok
            assert await bus.watermarks(topic) == {0: (0, 0), 1: (0, 0), 2: (0, 0)}
            with pytest.raises(TopicNotFoundError):
                await bus.watermarks(name("missing"))

        self.run_with_bus(case)

    # -- ordering -------------------------------------------------------------------------------

    def test_messages_of_one_key_arrive_in_order_in_the_keys_partition(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, 3)
            producer = bus.producer()
            keys = [workflow_key("ns", f"wf-{i}") for i in range(5)]
            deliveries = await asyncio.gather(
                *(
                    producer.produce(
                        topic, keys[i % 5], f"{i % 5}:{i // 5}".encode(), {"seq": str(i).encode()}
                    )
                    for i in range(60)
                )
            )
            await producer.close()
            for i, delivery in enumerate(deliveries):
                assert delivery.partition == partition_for(keys[i % 5], 3)
            got = await consume(bus, name("g"), topic, 60)
            assert len(got) == 60
            per_key: dict[bytes | None, list[int]] = {}
            for m in got:
                assert m.partition == partition_for(m.key, 3)
                per_key.setdefault(m.key, []).append(int((m.value or b"").split(b":")[1]))
            assert all(seqs == list(range(12)) for seqs in per_key.values()), per_key
            assert got[0].header("seq") is not None

        self.run_with_bus(case)

    # -- acknowledgement and commits ------------------------------------------------------------

    def test_restart_redelivers_only_unacknowledged_messages(self) -> None:
        async def main() -> None:
            bus = self.make_bus()
            topic = await self.topic(bus)
            group = name("g")
            producer = bus.producer()
            await asyncio.gather(*(producer.produce(topic, b"k", str(i).encode()) for i in range(10)))
            await producer.close()
            consumer = bus.consumer(group, [topic])
            seen: list[Message] = []
            while len(seen) < 10:
                seen += await consumer.poll(10, 1.0)
            for m in seen[:5]:
                consumer.ack(m)
            assert await consumer.commit() == {(topic, 0): 5}
            await consumer.close()
            await bus.close()

            bus = self.make_bus()  # restart
            try:
                again = await consume(bus, group, topic, 5)
                assert [m.value for m in again] == [str(i).encode() for i in range(5, 10)]
                assert await nothing_more(bus, group, topic, 1.0) == []
                assert (await bus.committed(group, topic))[0].offset == 10
            finally:
                await bus.close()

        run(main())

    def test_out_of_order_acks_commit_only_the_contiguous_point(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus)
            group = name("g")
            producer = bus.producer()
            await asyncio.gather(*(producer.produce(topic, b"k", str(i).encode()) for i in range(6)))
            await producer.close()
            consumer = bus.consumer(group, [topic])
            seen: list[Message] = []
            while len(seen) < 6:
                seen += await consumer.poll(6, 1.0)
            for i in (0, 1, 3, 4):
                consumer.ack(seen[i])
            assert await consumer.commit() == {(topic, 0): 2}
            consumer.ack(seen[2])
            assert await consumer.commit() == {(topic, 0): 5}
            # Closing commits the same point again: offset 5 was never acknowledged.
            await consumer.close()
            assert [m.offset for m in await consume(bus, group, topic, 1)] == [5]

        self.run_with_bus(case)

    def test_nack_redelivers_with_a_higher_attempt(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus)
            producer = bus.producer()
            await asyncio.gather(*(producer.produce(topic, b"k", str(i).encode()) for i in range(3)))
            await producer.close()
            consumer = bus.consumer(name("g"), [topic])
            try:
                first: list[Message] = []
                while len(first) < 3:
                    first += await consumer.poll(3, 1.0)
                consumer.ack(first[0])
                consumer.nack(first[1])
                again: list[Message] = []
                while len(again) < 2:
                    again += await consumer.poll(3, 1.0)
                assert [(m.offset, m.attempt) for m in again] == [(1, 2), (2, 2)]
            finally:
                await consumer.close()

        self.run_with_bus(case)

    def test_two_members_split_partitions_and_a_rebalance_loses_nothing(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, 4)
            group = name("g")
            producer = bus.producer()
            sent = [f"m{i}".encode() for i in range(200)]
            await asyncio.gather(
                *(producer.produce(topic, f"k{i}".encode(), v) for i, v in enumerate(sent[:100]))
            )
            a, b = bus.consumer(group, [topic]), bus.consumer(group, [topic])
            acked: set[bytes] = set()

            async def step(c: Any) -> None:
                for m in await c.poll(5, 0.3):
                    acked.add(m.value)
                    c.ack(m)
                await c.commit()

            deadline = asyncio.get_running_loop().time() + 60
            while not (a.assignment() and b.assignment()) or set(a.assignment()) & set(b.assignment()):
                assert asyncio.get_running_loop().time() < deadline, "the group never split the partitions"
                await asyncio.gather(step(a), step(b))
            assert set(a.assignment()) | set(b.assignment()) == {(topic, p) for p in range(4)}

            await asyncio.gather(
                *(producer.produce(topic, f"k{i}".encode(), v) for i, v in enumerate(sent[100:], start=100))
            )
            await producer.close()
            in_flight: list[Message] = []
            while not in_flight:  # a takes a batch and leaves without acknowledging it
                in_flight = await a.poll(5, 1.0)
            await a.close()
            while acked != set(sent):
                assert asyncio.get_running_loop().time() < deadline + 60, f"lost {len(set(sent) - acked)}"
                await step(b)
            assert {m.value for m in in_flight} <= acked
            await b.close()

        self.run_with_bus(case, timeout=180)

    # -- the consumer runner, DLQ and merge -----------------------------------------------------

    def test_runner_dead_letters_after_max_attempts_with_headers(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, dlq=True)
            handled: list[bytes] = []
            calls: dict[bytes, int] = {}

            async def handler(m: Message) -> None:
                calls[m.value or b""] = calls.get(m.value or b"", 0) + 1
                if m.value == b"poison":
                    raise RuntimeError("cannot apply poison")
                handled.append(m.value or b"")

            metrics = CountingMetrics()
            runner = ConsumerRunner(
                bus,
                group=name("g"),
                topics=[topic],
                dlq_topic=f"{topic}-dlq",
                handler=handler,
                options=FAST,
                metrics=metrics,
            )
            producer = bus.producer()
            for value in (b"a", b"poison", b"b"):
                await producer.produce(topic, b"wf", value, {"trace": b"t-1"})
            await producer.close()
            runner.start()
            await eventually(lambda: handled == [b"a", b"b"], "the runner to pass the poison message")
            await runner.stop()
            assert calls[b"poison"] == 3
            assert metrics.totals["dead_lettered"] == 1 and metrics.totals["retried"] == 2
            letters = await read_dlq(bus, f"{topic}-dlq")
            assert len(letters) == 1
            letter = letters[0]
            assert (letter.source_topic, letter.source_partition, letter.source_offset) == (topic, 0, 1)
            assert letter.attempts == 3 and "RuntimeError: cannot apply poison" in letter.error
            assert letter.message.key == b"wf" and letter.message.header("trace") == b"t-1"

        self.run_with_bus(case)

    def test_poison_message_is_redriven_by_merge_once_the_cause_is_fixed(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, dlq=True)
            dlq_topic = f"{topic}-dlq"
            broken = True
            applied: list[bytes] = []

            async def handler(m: Message) -> None:
                if m.value == b"needs-fix" and broken:
                    raise RuntimeError("dependency missing")
                applied.append(m.value or b"")

            runner = ConsumerRunner(
                bus, group=name("g"), topics=[topic], dlq_topic=dlq_topic, handler=handler, options=FAST
            )
            runner.start()
            producer = bus.producer()
            await producer.produce(topic, b"wf", b"needs-fix")
            await producer.produce(topic, b"wf", b"fine")
            await eventually(lambda: applied == [b"fine"], "the healthy message")
            assert len(await read_dlq(bus, dlq_topic)) == 1
            broken = False  # the cause is fixed
            result = await merge_dlq(bus, dlq_topic)
            assert (result.merged, result.skipped) == (1, 0)
            await eventually(lambda: applied == [b"fine", b"needs-fix"], "the re-driven message")
            assert await read_dlq(bus, dlq_topic) == []
            assert (await merge_dlq(bus, dlq_topic)).merged == 0
            await runner.stop()
            await producer.close()

        self.run_with_bus(case)

    def test_merge_interrupted_before_its_commit_does_not_duplicate_on_rerun(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, 2, dlq=True)
            dlq_topic = f"{topic}-dlq"
            producer = bus.producer()
            for i in range(4):
                await producer.produce(
                    dlq_topic,
                    f"wf{i}".encode(),
                    f"v{i}".encode(),
                    {
                        "error": b"boom",
                        "attempts": b"3",
                        "source-topic": topic.encode(),
                        "source-partition": b"0",
                        "source-offset": str(i).encode(),
                    },
                )
            await producer.close()
            with pytest.raises(BusError, match="simulated crash"):
                await merge_dlq(FlakyBus(bus, fail_on_call=2), dlq_topic)  # type: ignore[arg-type]
            result = await merge_dlq(bus, dlq_topic)
            assert (result.merged, result.skipped) == (0, 4)
            values: list[bytes | None] = []
            for p in range(2):
                values += [m.value for m in await bus.read(topic, p, 0)]
            assert sorted(v or b"" for v in values) == [b"v0", b"v1", b"v2", b"v3"]
            assert await read_dlq(bus, dlq_topic) == []

        self.run_with_bus(case)

    def test_garbage_bytes_go_to_the_dlq_and_the_consumer_keeps_going(self) -> None:
        async def case(bus: Bus) -> None:
            topic = await self.topic(bus, dlq=True)
            indexed: list[VisibilityMessage] = []

            async def index(m: Message) -> None:
                indexed.append(decode_visibility(m.value or b""))

            runner = ConsumerRunner(
                bus, group=name("g"), topics=[topic], dlq_topic=f"{topic}-dlq", handler=index, options=FAST
            )
            good = VisibilityMessage(namespace_id="ns", workflow_id="wf", run_id="r", task_id=7)
            producer = bus.producer()
            await producer.produce(topic, good.key, b"\x00garbage that is not avro")
            await producer.produce(topic, good.key, encode_visibility(good))
            await producer.close()
            runner.start()
            await eventually(lambda: indexed == [good], "the valid message after the garbage")
            await runner.stop()
            [letter] = await read_dlq(bus, f"{topic}-dlq")
            assert letter.attempts == 1  # a decode error is not retried
            assert "MessageDecodeError" in letter.error and "not Avro single-object encoded" in letter.error
            assert letter.message.value == b"\x00garbage that is not avro"

        self.run_with_bus(case)
