"""Storage of the embedded log: its tables and the writer thread that group-commits appends.

The writer follows the persistence layer's design (``engine/persistence/sqlite/db.py``): SQLite has
one writer per file anyway, and every COMMIT in ``synchronous=FULL`` pays an fsync, so one thread owns
the write connection and commits whatever queued up during the previous fsync as ONE transaction.
Produce requests of a group are appended with one ``executemany`` and one offset update per
partition, which is what makes the embedded log reach tens of thousands of messages per second.

Reads go to a small pool of reader connections (WAL readers see the last committed snapshot and never
block the writer). The tables are prefixed ``bus_`` so the log can live in the server's own SQLite
file next to the persistence tables.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import BusClosedError, BusError, BusUnavailableError, TopicNotFoundError
from .protocol import Delivery, partition_for

T = TypeVar("T")
MAX_GROUP = 1024
"""Most requests committed in one transaction; bounds the latency one group adds."""
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    replication_factor INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
-- next_offset survives retention deleting every message, so offsets are never reused.
CREATE TABLE IF NOT EXISTS bus_partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_messages (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE INDEX IF NOT EXISTS bus_messages_by_time ON bus_messages (timestamp_ms);
CREATE TABLE IF NOT EXISTS bus_group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
"""


def translate(exc: BaseException) -> BaseException:
    """The one place where ``sqlite3`` errors become bus errors."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return BusUnavailableError(f"embedded log unavailable: {exc}")
    return exc


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    return json.dumps([[k, v.hex()] for k, v in headers], separators=(",", ":")) if headers else None


def decode_headers(raw: str | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes.fromhex(v)) for k, v in json.loads(raw)) if raw else ()


@dataclass(slots=True)
class _Append:
    topic: str
    key: bytes | None
    value: bytes
    headers: str | None
    timestamp_ms: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Delivery]


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


Outcome = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any, BaseException | None]


class LogStore:
    """Owns the connections and threads of one embedded-log file."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        readers: int = 2,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.memory = str(path) == ":memory:"
        self._target = str(path)
        self._synchronous = synchronous
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Append | _Call | None] = queue.SimpleQueue()
        self.closed = False
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._writer = threading.Thread(target=self._writer_main, name="cadenza-bus-writer", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._writer.join()
            raise self._startup_error
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = None if self.memory else ThreadPoolExecutor(readers, "cadenza-bus-reader")

    # -- requests -----------------------------------------------------------------------------

    def append(
        self, topic: str, key: bytes | None, value: bytes, headers: str | None, timestamp_ms: int
    ) -> asyncio.Future[Delivery]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()
        if self.closed:
            future.set_exception(BusClosedError("embedded log is closed"))
        else:
            self._queue.put(_Append(topic, key, value, headers, timestamp_ms, loop, future))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` in the next group transaction; resolves after COMMIT."""
        if self.closed:
            raise BusClosedError("embedded log is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(fn, loop, future))
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` against one snapshot of the last committed state."""
        if self._readers is None:
            return await self.write(fn)
        if self.closed:
            raise BusClosedError("embedded log is closed")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, fn)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # -- threads ------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit so group commit decides when fsync happens.
        conn = sqlite3.connect(self._target, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._connect()
                conn.execute("PRAGMA query_only = 1")
                self._local.conn = conn
                with self._reader_lock:
                    self._reader_conns.append(conn)
            conn.execute("BEGIN")  # one WAL snapshot for every statement of fn
            try:
                result = fn(conn)
                if isinstance(result, sqlite3.Cursor):  # as in ``_run_group``: never hand one out
                    rows: Any = result.fetchall()
                    result.close()
                    return rows  # type: ignore[no-any-return]
                return result
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _writer_main(self) -> None:
        try:
            conn = self._connect()
            if not self.memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise BusUnavailableError(f"could not switch {self._target} to WAL (got {mode})")
            # FULL: the WAL is fsynced at every COMMIT, so an acknowledged produce survives power loss.
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "\nCOMMIT;")
        except BaseException as exc:
            self._startup_error = translate(exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    group.append(nxt)
                self._run_group(conn, group)
            closed = BusClosedError("embedded log is closed")
            while True:  # requests that raced close(): fail them rather than leave them hanging
                try:
                    req = self._queue.get_nowait()
                except queue.Empty:
                    break
                if req is not None:
                    _deliver([(req.loop, req.future, None, closed)])
        finally:
            conn.close()

    def _run_group(self, conn: sqlite3.Connection, group: list[_Append | _Call]) -> None:
        outcomes: list[Outcome] = []
        appended = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            pending: list[_Append] = []
            for req in group:
                if isinstance(req, _Append):
                    pending.append(req)
                    continue
                if pending:  # appends keep their order relative to calls (e.g. create then produce)
                    outcomes.extend(_append_all(conn, pending))
                    appended = True
                    pending = []
                conn.execute("SAVEPOINT req")
                try:
                    result = req.fn(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO req")
                    conn.execute("RELEASE req")
                    outcomes.append((req.loop, req.future, None, translate(exc)))
                    continue
                conn.execute("RELEASE req")
                if isinstance(result, sqlite3.Cursor):
                    # A cursor must not reach the event loop's thread: finalizing it there (when the
                    # caller drops it) would touch the connection while this thread uses it, which
                    # SQLite answers with "bad parameter or other API misuse".
                    result.close()
                    result = None
                outcomes.append((req.loop, req.future, result, None))
            if pending:
                outcomes.extend(_append_all(conn, pending))
                appended = True
            conn.execute("COMMIT")  # the one fsync for the whole group
        except BaseException as exc:
            err = BusUnavailableError(f"embedded log write failed: {translate(exc)}")
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(r.loop, r.future, None, err) for r in group]
            appended = False
        _deliver(outcomes)
        if appended and self._on_commit is not None:
            self._on_commit()

    def _shutdown(self) -> None:
        self._writer.join()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass


def _append_all(conn: sqlite3.Connection, reqs: list[_Append]) -> list[Outcome]:
    """Assigns offsets and inserts ``reqs`` inside the open transaction (one statement per table)."""
    partitions: dict[str, int | None] = {}
    next_offset: dict[tuple[str, int], int] = {}
    rows: list[tuple[Any, ...]] = []
    outcomes: list[Outcome] = []
    for req in reqs:
        if req.topic not in partitions:
            row = conn.execute("SELECT partitions FROM bus_topics WHERE name = ?", (req.topic,)).fetchone()
            partitions[req.topic] = row[0] if row else None
        count = partitions[req.topic]
        if count is None:
            outcomes.append(
                (req.loop, req.future, None, TopicNotFoundError(f"topic {req.topic!r} does not exist"))
            )
            continue
        partition = partition_for(req.key, count)
        tp = (req.topic, partition)
        if tp not in next_offset:
            next_offset[tp] = conn.execute(
                "SELECT next_offset FROM bus_partitions WHERE topic = ? AND partition = ?", tp
            ).fetchone()[0]
        offset = next_offset[tp]
        next_offset[tp] = offset + 1
        rows.append((req.topic, partition, offset, req.key, req.value, req.headers, req.timestamp_ms))
        outcomes.append((req.loop, req.future, Delivery(req.topic, partition, offset), None))
    conn.executemany(
        "INSERT INTO bus_messages (topic, partition, offset, key, value, headers, timestamp_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "UPDATE bus_partitions SET next_offset = ? WHERE topic = ? AND partition = ?",
        [(nxt, topic, partition) for (topic, partition), nxt in next_offset.items()],
    )
    return outcomes


def _deliver(outcomes: list[Outcome]) -> None:
    """Resolves futures on their own loops, one ``call_soon_threadsafe`` per loop per group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0], []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, items)
        except RuntimeError:
            pass  # that loop is closed; nobody waits any more


def _resolve_all(items: list[Outcome]) -> None:
    for _, future, result, exc in items:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
