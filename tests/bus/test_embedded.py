"""The bus contract on the embedded log, plus what only the embedded log has (retention, files)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path

import pytest

from cadenza.engine.bus import ConsumerRunner, EmbeddedBus, Message, RunnerOptions, TopicSpec
from cadenza.engine.bus.errors import TopicNotFoundError

from .contract import BusContract, consume, eventually, name, run


class TestEmbeddedBus(BusContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bus.db"

    def make_bus(self) -> EmbeddedBus:
        return EmbeddedBus(self.path)


def test_retention_deletes_below_the_lowest_committed_offset_of_all_groups(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EmbeddedBus(tmp_path / "bus.db")
        try:
            await bus.create_topics([TopicSpec("t", 1)])
            producer = bus.producer()
            await asyncio.gather(*(producer.produce("t", b"k", str(i).encode()) for i in range(10)))
            await consume(bus, "fast", "t", 8)
            await consume(bus, "slow", "t", 3)
            assert await bus.apply_retention() == 3
            assert await bus.watermarks("t") == {0: (3, 10)}
            await asyncio.sleep(0.01)
            assert await bus.apply_retention(max_age=0) == 7
            assert await bus.watermarks("t") == {0: (10, 10)}
            # Offsets are never reused after retention emptied a partition.
            assert (await producer.produce("t", b"k", b"x")).offset == 10
        finally:
            await bus.close()

    run(main())


def test_producing_to_a_missing_topic_fails_that_message_only(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EmbeddedBus(tmp_path / "bus.db")
        try:
            await bus.create_topics([TopicSpec("t", 1)])
            producer = bus.producer()
            ok = producer.produce("t", b"k", b"v")
            missing = producer.produce(name("missing"), b"k", b"v")
            assert (await ok).offset == 0
            with pytest.raises(TopicNotFoundError):
                await missing
        finally:
            await bus.close()

    run(main())


def test_the_log_can_share_the_servers_sqlite_file(tmp_path: Path) -> None:
    from cadenza.engine.persistence.sqlite.db import Database

    async def main() -> None:
        path = tmp_path / "cadenza.db"
        db = Database(path)
        bus = EmbeddedBus(path)
        try:
            await bus.create_topics([TopicSpec("t", 2)])
            await bus.producer().produce("t", b"k", b"v")
            tables = await db.read(
                lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            )
            assert "bus_messages" in tables and "schema_version" in tables
        finally:
            await bus.close()
            await db.close()

    run(main())


def test_a_waiting_poll_wakes_when_a_message_is_produced(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EmbeddedBus(tmp_path / "bus.db", cross_process_interval=30)
        try:
            await bus.create_topics([TopicSpec("t", 1)])
            consumer = bus.consumer("g", ["t"])
            await consumer.poll(1, 0)  # join the group
            loop = asyncio.get_running_loop()
            started = loop.time()
            waiting = asyncio.create_task(consumer.poll(10, 20.0))
            await asyncio.sleep(0.2)
            await bus.producer().produce("t", b"k", b"v")
            got = await waiting
            assert [m.value for m in got] == [b"v"]
            assert loop.time() - started < 2.0
            await consumer.close()
        finally:
            await bus.close()

    run(main())


def test_writes_that_return_a_cursor_never_break_the_writer(tmp_path: Path) -> None:
    """A request whose function returns a cursor (``c.execute(...)``, as offset commits do) used to
    hand it to the event loop's thread; finalizing it there while the writer thread used the
    connection failed other requests with "bad parameter or other API misuse" (consumer commits
    under load). Many such requests at once, cursors dropped and collected: none may fail."""
    from cadenza.engine.bus._sqlite_log import LogStore

    async def main() -> int:
        store = LogStore(tmp_path / "log.db", synchronous="NORMAL")
        await store.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)"))
        failures = 0

        async def writer(i: int) -> None:
            nonlocal failures
            for j in range(300):
                rows = [(i * 1_000_000 + j * 50 + r, j) for r in range(50)]
                try:
                    result = await store.write(
                        lambda c, rows=rows: c.executemany("INSERT INTO t (k, v) VALUES (?, ?)", rows)
                    )
                    del result
                except Exception:
                    failures += 1
                if j % 50 == 0:
                    gc.collect()

        try:
            await asyncio.gather(*(writer(i) for i in range(20)))
            count = await store.read(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0])
            assert count == 20 * 300 * 50 - failures * 50
        finally:
            await store.close()
        return failures

    assert asyncio.run(main()) == 0


def test_a_runner_across_partitions_hands_a_whole_poll_to_one_batch_call(tmp_path: Path) -> None:
    """``across_partitions``: one batch call for every partition's messages, each partition's in
    order; a failing call falls back to the partitions one by one, and nothing is handled twice."""

    async def main() -> None:
        bus = EmbeddedBus(tmp_path / "bus.db")
        try:
            await bus.create_topics([TopicSpec("t", 4), TopicSpec("t-dlq", 1)])
            keys = [f"wf-{i}".encode() for i in range(8)]
            producer = bus.producer()
            batches: list[list[Message]] = []
            fail_next = False

            async def handle(messages: Sequence[Message]) -> None:
                nonlocal fail_next
                if fail_next:
                    fail_next = False
                    raise RuntimeError("the store is down")
                batches.append(list(messages))

            options = RunnerOptions(poll_timeout=0.05, backoff_initial=0.01, across_partitions=True)
            runner = ConsumerRunner(
                bus, group="g", topics=["t"], dlq_topic="t-dlq", batch_handler=handle, options=options
            )

            async def produce(round_: int) -> None:
                await asyncio.gather(*(producer.produce("t", k, k + b":%d" % round_) for k in keys))

            await produce(0)
            runner.start()
            await eventually(lambda: sum(map(len, batches)) == 8, "the first round")
            assert len({m.partition for m in batches[0]}) > 1  # one call took several partitions
            fail_next = True
            await produce(1)
            await produce(2)
            await eventually(lambda: sum(map(len, batches)) == 24, "the other rounds")
            await runner.stop()
            values = [m.value or b"" for batch in batches for m in batch]
            assert sorted(values) == sorted(k + b":%d" % r for k in keys for r in range(3))
            for k in keys:
                assert [v for v in values if v.startswith(k + b":")] == [k + b":0", k + b":1", k + b":2"]
            assert all(o.offset == 6 for o in (await bus.committed("g", "t")).values())
        finally:
            await bus.close()

    run(main())


def test_a_runner_with_a_commit_interval_commits_when_messages_stop_coming(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EmbeddedBus(tmp_path / "bus.db")
        try:
            await bus.create_topics([TopicSpec("t", 1), TopicSpec("t-dlq", 1)])
            handled: list[bytes] = []
            commits: list[int] = []

            async def handle(message: Message) -> None:
                handled.append(message.value or b"")

            options = RunnerOptions(poll_timeout=0.5, commit_interval=60.0)
            runner = ConsumerRunner(
                bus, group="g", topics=["t"], dlq_topic="t-dlq", handler=handle, options=options
            )
            runner.start()
            await eventually(lambda: runner.consumer is not None, "the runner to start")
            assert runner.consumer is not None
            commit = runner.consumer.commit

            async def counting() -> dict[tuple[str, int], int]:
                done = await commit()
                if done:
                    commits.append(max(done.values()))
                return done

            runner.consumer.commit = counting  # type: ignore[method-assign]
            producer = bus.producer()
            for i in range(30):  # a steady stream: every poll brings a message
                await producer.produce("t", b"k", b"%d" % i)
                await asyncio.sleep(0.005)
            await eventually(lambda: len(handled) == 30, "the messages")
            # Quiet now: the next poll comes back empty and commits, long before the interval.
            await eventually(lambda: bool(commits) and commits[-1] == 30, "the commit")
            assert len(commits) <= 3, commits  # not one per batch
            await runner.stop()
            assert (await bus.committed("g", "t"))[0].offset == 30
        finally:
            await bus.close()

    run(main())
