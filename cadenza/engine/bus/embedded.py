"""The embedded log: the bus contract on one SQLite file, for one-process setups and unit tests.

Layout: ``bus_topics`` (name, partitions), ``bus_messages`` (topic, partition, offset, key, value,
headers, timestamp), ``bus_group_offsets`` and ``bus_group_members`` (see ``_sqlite_log``). The file
may be the server's own SQLite file: the tables are prefixed and the two writers share the file lock.

Groups. Members register in ``bus_group_members`` and heartbeat there; every member computes the same
assignment from the sorted list of live members (partition ``i`` of the sorted partitions goes to
member ``i mod n``), so no coordinator is needed. A member that stops heartbeating for
``session_timeout`` loses its partitions. While a rebalance settles, a partition can briefly be read
by its old and its new owner; that only duplicates deliveries (allowed: delivery is at least once),
and committed offsets never move backwards (``MAX``), so the old owner cannot undo the new one's work.

Waiting. ``poll`` waits on an in-process notifier that the writer signals after every commit that
appended messages, so a consumer wakes as soon as a message is durable, without busy-waiting. Writers
in other processes cannot signal it, so a waiting poll also re-reads the log every
``cross_process_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._offsets import PartitionTracker
from ._sqlite_log import LogStore, decode_headers, encode_headers
from .errors import BusClosedError, TopicExistsError, TopicNotFoundError
from .protocol import CommittedOffset, Delivery, Headers, Message, TopicSpec, normalize_headers

TopicPartition = tuple[str, int]
Row = tuple[Any, ...]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Notifier:
    """A change counter that coroutines on any event loop can wait on; bumped from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seq = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        with self._lock:
            self.seq += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_set_done, future)
            except RuntimeError:
                pass  # loop closed

    async def wait(self, seen: int, timeout: float) -> None:
        """Return when ``seq`` moved past ``seen`` or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.seq != seen:
                return
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EmbeddedBus:
    """The bus contract on a SQLite file (``":memory:"`` for a throwaway one-process log)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        session_timeout: float = 10.0,
        cross_process_interval: float = 0.5,
    ) -> None:
        self.notifier = _Notifier()
        self.store = LogStore(path, synchronous=synchronous, on_commit=self.notifier.notify)
        self.session_timeout = session_timeout
        self.cross_process_interval = cross_process_interval
        self.membership = _Notifier()
        """Bumped when a member joins or leaves in this process, so the others rebalance at once."""

    # -- clients ------------------------------------------------------------------------------

    def producer(self) -> EmbeddedProducer:
        return EmbeddedProducer(self)

    def consumer(self, group: str, topics: Sequence[str]) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, group, topics)

    async def close(self) -> None:
        await self.store.close()

    # -- admin --------------------------------------------------------------------------------

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> list[str]:
        for spec in topics:
            if spec.partitions < 1 or spec.replication_factor < 1:
                raise ValueError(f"topic {spec.name!r}: partitions and replication factor must be >= 1")

        def create(conn: sqlite3.Connection) -> list[str]:
            created = []
            for spec in topics:
                if conn.execute("SELECT 1 FROM bus_topics WHERE name = ?", (spec.name,)).fetchone():
                    if not exist_ok:
                        raise TopicExistsError(f"topic {spec.name!r} already exists")
                    continue
                conn.execute(
                    "INSERT INTO bus_topics VALUES (?, ?, ?, ?)",
                    (spec.name, spec.partitions, spec.replication_factor, _now_ms()),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO bus_partitions VALUES (?, ?, 0)",
                    [(spec.name, p) for p in range(spec.partitions)],
                )
                created.append(spec.name)
            return created

        return await self.store.write(create)

    async def list_topics(self) -> dict[str, int]:
        rows = await self.store.read(
            lambda c: c.execute("SELECT name, partitions FROM bus_topics").fetchall()
        )
        return {name: partitions for name, partitions in rows}

    async def delete_topics(self, names: Sequence[str]) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            for name in names:
                for table, column in (
                    ("bus_topics", "name"),
                    ("bus_partitions", "topic"),
                    ("bus_messages", "topic"),
                    ("bus_group_offsets", "topic"),
                ):
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

        await self.store.write(delete)

    async def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        def query(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
            rows = conn.execute(
                "SELECT p.partition, p.next_offset, (SELECT MIN(offset) FROM bus_messages m "
                "WHERE m.topic = p.topic AND m.partition = p.partition) "
                "FROM bus_partitions p WHERE p.topic = ?",
                (topic,),
            ).fetchall()
            if not rows:
                raise TopicNotFoundError(f"topic {topic!r} does not exist")
            return {p: (high if low is None else low, high) for p, high, low in rows}

        return await self.store.read(query)

    async def committed(self, group: str, topic: str) -> dict[int, CommittedOffset]:
        rows = await self.store.read(
            lambda c: c.execute(
                "SELECT partition, offset, metadata FROM bus_group_offsets WHERE group_id = ? AND topic = ?",
                (group, topic),
            ).fetchall()
        )
        return {p: CommittedOffset(off, meta) for p, off, meta in rows}

    async def set_committed(self, group: str, topic: str, offsets: Mapping[int, CommittedOffset]) -> None:
        await self.store.write(
            lambda c: c.executemany(
                "INSERT OR REPLACE INTO bus_group_offsets VALUES (?, ?, ?, ?, ?)",
                [(group, topic, p, o.offset, o.metadata) for p, o in offsets.items()],
            )
        )

    async def read(
        self, topic: str, partition: int, start: int, *, max_messages: int = 500, timeout: float = 5.0
    ) -> list[Message]:
        rows = await self.store.read(lambda c: _fetch(c, topic, partition, start, max_messages))
        return [_message(topic, partition, row, 1) for row in rows]

    async def apply_retention(self, *, max_age: float | None = None) -> int:
        """Delete messages every group has committed past, and those older than ``max_age`` seconds.

        A topic no group has committed on keeps its messages until they pass ``max_age``. Returns
        the number of messages deleted. The server runs this periodically.
        """

        def purge(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM bus_messages WHERE offset < (SELECT MIN(g.offset) FROM bus_group_offsets g "
                "WHERE g.topic = bus_messages.topic AND g.partition = bus_messages.partition)"
            ).rowcount
            if max_age is not None:
                cutoff = _now_ms() - int(max_age * 1000)
                deleted += conn.execute("DELETE FROM bus_messages WHERE timestamp_ms < ?", (cutoff,)).rowcount
            return deleted

        return await self.store.write(purge)


class EmbeddedProducer:
    def __init__(self, bus: EmbeddedBus) -> None:
        self._bus = bus
        self._in_flight: set[asyncio.Future[Delivery]] = set()
        self._closed = False

    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> asyncio.Future[Delivery]:
        if self._closed:
            raise BusClosedError("producer is closed")
        future = self._bus.store.append(
            topic, key, value, encode_headers(normalize_headers(headers)), _now_ms()
        )
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    async def flush(self, timeout: float | None = None) -> int:
        pending = list(self._in_flight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            return len(still)
        return 0

    async def close(self) -> None:
        await self.flush()
        self._closed = True


class EmbeddedConsumer:
    def __init__(self, bus: EmbeddedBus, group: str, topics: Sequence[str]) -> None:
        self._bus = bus
        self._group = group
        self._topics = tuple(topics)
        self.member_id = f"{_now_ms():015d}-{uuid.uuid4().hex[:12]}"
        self._trackers: dict[TopicPartition, PartitionTracker] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._joined = False
        self._closed = False
        self._last_heartbeat = 0.0
        self._membership_seen = -1

    @property
    def group(self) -> str:
        return self._group

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    def assignment(self) -> list[TopicPartition]:
        return sorted(self._trackers)

    async def poll(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusClosedError("consumer is closed")
        deadline = time.monotonic() + timeout
        while True:
            await self._rebalance_if_due()
            seen = self._bus.notifier.seq  # read before fetching, so no append can slip between
            messages = await self._fetch(max_messages)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            wait = min(remaining, self._bus.cross_process_interval, self._bus.session_timeout / 3)
            await self._bus.notifier.wait(seen, wait)

    def ack(self, message: Message) -> None:
        tracker = self._trackers.get((message.topic, message.partition))
        if tracker is not None:
            tracker.ack(message.offset)

    def nack(self, message: Message) -> None:
        tp = (message.topic, message.partition)
        tracker = self._trackers.get(tp)
        if tracker is not None and message.offset >= tracker.point():
            tracker.rewind(message.offset)
            self._positions[tp] = message.offset

    async def commit(self) -> dict[TopicPartition, int]:
        return await self._commit(self._trackers)

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        tracker = self._trackers.get(tp)
        if tracker is None:
            raise TopicNotFoundError(f"{topic}[{partition}] is not assigned to this consumer")
        tracker.rewind(offset)
        tracker.delivered.clear()
        tracker.acked.clear()
        tracker.start = offset
        self._positions[tp] = offset

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._joined:
            return
        await self._commit(self._trackers)
        self._trackers.clear()
        key = (self._group, self.member_id)
        await self._bus.store.write(
            lambda c: c.execute("DELETE FROM bus_group_members WHERE group_id = ? AND member_id = ?", key)
        )
        self._bus.membership.notify()

    # -- internals ----------------------------------------------------------------------------

    async def _commit(self, trackers: Mapping[TopicPartition, PartitionTracker]) -> dict[TopicPartition, int]:
        points = {tp: t.point() for tp, t in trackers.items() if t.point() != t.committed}
        if not points:
            return {}
        # MAX: a former owner committing late (during a rebalance) never moves the group backwards.
        await self._bus.store.write(
            lambda c: c.executemany(
                "INSERT INTO bus_group_offsets (group_id, topic, partition, offset) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (group_id, topic, partition) "
                "DO UPDATE SET offset = MAX(offset, excluded.offset), metadata = ''",
                [(self._group, t, p, off) for (t, p), off in points.items()],
            )
        )
        for tp, off in points.items():
            if tp in trackers:
                trackers[tp].committed = off
        return points

    async def _rebalance_if_due(self) -> None:
        now = time.monotonic()
        membership = self._bus.membership.seq
        if (
            self._joined
            and membership == self._membership_seen
            and now - self._last_heartbeat < self._bus.session_timeout / 3
        ):
            return
        first = not self._joined
        self._last_heartbeat, self._membership_seen = now, membership
        group, member, topics = self._group, self.member_id, self._topics
        timeout_ms = int(self._bus.session_timeout * 1000)

        def heartbeat(conn: sqlite3.Connection) -> tuple[list[str], list[TopicPartition]]:
            now_ms = _now_ms()
            conn.execute("INSERT OR REPLACE INTO bus_group_members VALUES (?, ?, ?)", (group, member, now_ms))
            conn.execute(
                "DELETE FROM bus_group_members WHERE group_id = ? AND heartbeat_ms < ?",
                (group, now_ms - timeout_ms),
            )
            members = [
                r[0]
                for r in conn.execute(
                    "SELECT member_id FROM bus_group_members WHERE group_id = ? ORDER BY member_id", (group,)
                )
            ]
            parts: list[TopicPartition] = []
            for topic in topics:
                rows = conn.execute(
                    "SELECT partition FROM bus_partitions WHERE topic = ? ORDER BY partition", (topic,)
                ).fetchall()
                if not rows:
                    raise TopicNotFoundError(f"topic {topic!r} does not exist")
                parts.extend((topic, r[0]) for r in rows)
            return members, parts

        members, partitions = await self._bus.store.write(heartbeat)
        self._joined = True
        if first:
            self._bus.membership.notify()
            self._membership_seen = self._bus.membership.seq
        index = members.index(member)
        mine = {tp for i, tp in enumerate(partitions) if i % len(members) == index}
        revoked = {tp: t for tp, t in self._trackers.items() if tp not in mine}
        if revoked:
            await self._commit(revoked)
            for tp in revoked:
                del self._trackers[tp]
                self._positions.pop(tp, None)
        added = mine - set(self._trackers)
        if added:
            committed: dict[TopicPartition, int] = {}
            for topic in {t for t, _ in added}:
                for p, c in (await self._bus.committed(group, topic)).items():
                    committed[(topic, p)] = c.offset
            for tp in added:
                start = committed.get(tp, 0)  # no committed offset: from the earliest message
                self._trackers[tp] = PartitionTracker(start, committed=committed.get(tp))
                self._positions[tp] = start

    async def _fetch(self, max_messages: int) -> list[Message]:
        if not self._positions:
            return []
        positions = dict(self._positions)
        share = max(1, max_messages // len(positions))

        def fetch(conn: sqlite3.Connection) -> list[tuple[TopicPartition, list[Row]]]:
            return [(tp, _fetch(conn, tp[0], tp[1], off, share)) for tp, off in positions.items()]

        out: list[Message] = []
        for tp, rows in await self._bus.store.read(fetch):
            tracker = self._trackers.get(tp)
            # The assignment may have changed while reading; only the current one's positions count.
            if tracker is None or not rows or self._positions.get(tp) != positions[tp]:
                continue
            for row in rows:
                out.append(_message(tp[0], tp[1], row, tracker.deliver(int(row[0]))))
            self._positions[tp] = int(rows[-1][0]) + 1
        return out


def _fetch(conn: sqlite3.Connection, topic: str, partition: int, start: int, limit: int) -> list[Row]:
    return conn.execute(
        "SELECT offset, key, value, headers, timestamp_ms FROM bus_messages "
        "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
        (topic, partition, start, limit),
    ).fetchall()


def _message(topic: str, partition: int, row: Row, attempt: int) -> Message:
    offset, key, value, headers, ts = row
    return Message(topic, partition, int(offset), key, value, decode_headers(headers), int(ts), attempt)
