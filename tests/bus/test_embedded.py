"""The bus contract on the embedded log, plus what only the embedded log has (retention, files)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from cadenza.engine.bus import EmbeddedBus, TopicSpec
from cadenza.engine.bus.errors import TopicNotFoundError

from .contract import BusContract, consume, name, run


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
