"""The SQLite connection layer: one writer thread doing group commit, a small pool of readers.

Why one writer thread: SQLite allows one writer at a time per database file anyway, and every commit
in ``synchronous=FULL`` costs an fsync of the WAL. Funnelling all writes through one thread that owns
the write connection lets it batch whatever requests queued up while the previous fsync ran into ONE
transaction (group commit): the fsync cost is paid once per group instead of once per request, so
throughput grows with concurrency instead of being capped at the disk's fsync rate.

Each request in a group runs inside its own ``SAVEPOINT``: a request whose condition fails (or that
raises anything) is rolled back to its savepoint and gets its own error, and the others still commit.

Why separate reader connections: in WAL mode readers never block the writer and always see the last
committed snapshot, so reads do not queue behind a group's fsync. Each reader thread owns its own
connection (sqlite3 connections must not be shared between threads without a lock). An in-memory
database exists per connection, so for ``:memory:`` all reads go through the writer thread instead;
it is the simplest way to let every store see the same data, and in-memory use is for tests.

All errors from ``sqlite3`` are translated into the contract errors in ``translate_error``.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import AlreadyExistsError, PersistenceError, StoreUnavailableError

T = TypeVar("T")
Clock = Callable[[], int]
"""Returns microseconds since the epoch."""
Synchronous = Literal["FULL", "NORMAL"]

SCHEMA_VERSION = 2
MAX_GROUP = 256
"""Most requests committed in one transaction; bounds the latency a single group adds."""
BUSY_TIMEOUT_MS = 10_000


def system_clock() -> int:
    return time.time_ns() // 1000


class UnsupportedSchemaError(PersistenceError):
    """The database was written by a newer (or unknown) schema version than this build knows."""


def translate_error(exc: BaseException) -> BaseException:
    """The one place where ``sqlite3`` exceptions become contract errors."""
    if isinstance(exc, PersistenceError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        return AlreadyExistsError(f"row already exists: {exc}")
    if isinstance(exc, sqlite3.OperationalError):
        # SQLITE_BUSY / LOCKED / IOERR / FULL: the write may or may not be durable; the caller retries.
        return StoreUnavailableError(f"sqlite unavailable: {exc}")
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailableError(f"sqlite error: {exc}")
    return exc


def encode_token(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def decode_token(token: bytes | None) -> Any:
    if not token:
        return None
    try:
        return json.loads(token.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PersistenceError(f"invalid page token: {token!r}") from exc


@dataclass(slots=True)
class _Request:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(slots=True)
class GroupStats:
    groups: int = 0
    requests: int = 0

    @property
    def average_group_size(self) -> float:
        return self.requests / self.groups if self.groups else 0.0


def _schema_sql(version: int) -> str:
    return resources.files(__package__).joinpath(f"schema/v{version}.sql").read_text()


def _connect(target: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module must not open transactions implicitly; every
    # transaction boundary below is explicit so group commit controls exactly when fsync happens.
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _apply_schema(conn: sqlite3.Connection, clock: Clock) -> None:
    """Brings the database to ``SCHEMA_VERSION``: ``schema/v1.sql`` creates the tables, each later
    ``schema/vN.sql`` adds to the one before (applied in order, each in its own transaction with
    its version row, so a file left at an older version is upgraded in place when opened).
    Refuses a newer or unknown version."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    version = 0
    if has_table is not None:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row and row[0] is not None else 0
    if version > SCHEMA_VERSION or (has_table is not None and version < 1):
        raise UnsupportedSchemaError(
            f"database schema version is {version}, this build supports version {SCHEMA_VERSION}"
        )
    for next_version in range(version + 1, SCHEMA_VERSION + 1):
        # BEGIN IMMEDIATE takes the write lock first, so two processes opening one file serialise
        # here; each script is idempotent (IF NOT EXISTS / INSERT OR IGNORE), so the second one
        # applies nothing twice.
        conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + _schema_sql(next_version)
            + f"\nINSERT OR IGNORE INTO schema_version (version, applied_at) "
            f"VALUES ({next_version}, {int(clock())});\nCOMMIT;"
        )


class Database:
    """Owns the threads and connections; stores submit ``read`` and ``write`` closures to it."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        clock: Clock | None = None,
        synchronous: Synchronous = "FULL",
        readers: int = 2,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.clock: Clock = clock or system_clock
        self.memory = path is None or str(path) == ":memory:"
        self._target = ":memory:" if self.memory else str(path)
        self._synchronous = synchronous
        self.stats = GroupStats()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._writer = threading.Thread(target=self._writer_main, name="cadenza-sqlite-writer", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._writer.join()
            raise self._startup_error
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers: ThreadPoolExecutor | None = None
        if not self.memory:
            self._readers = ThreadPoolExecutor(
                max_workers=readers, thread_name_prefix="cadenza-sqlite-reader"
            )

    # -- public API ---------------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` inside the next group transaction on the writer thread; resolves after COMMIT."""
        if self._closed:
            raise StoreUnavailableError("sqlite store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Request(fn, loop, future))
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` against one consistent snapshot of the last committed state."""
        if self._readers is None:
            return await self.write(fn)
        if self._closed:
            raise StoreUnavailableError("sqlite store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    # -- readers ------------------------------------------------------------------------------

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                # Used only by this pool thread; check_same_thread=False just lets close() run
                # from the closing thread after the pool has shut down.
                conn = _connect(self._target, check_same_thread=False)
                conn.execute("PRAGMA query_only = 1")
                self._local.conn = conn
                with self._reader_lock:
                    self._reader_conns.append(conn)
            # A deferred BEGIN pins one WAL snapshot for every statement of fn (e.g. a branch row and
            # its nodes); it never takes the write lock, so it cannot block or be blocked by a group.
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc

    # -- writer -------------------------------------------------------------------------------

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self._target)
        if not self.memory:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailableError(f"could not switch {self._target} to WAL (got {mode})")
        # FULL: the WAL is fsynced at every COMMIT, so an acknowledged group survives power loss.
        # NORMAL: fsync only at checkpoints; survives a process crash but not an OS crash.
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        _apply_schema(conn, self.clock)
        return conn

    def _writer_main(self) -> None:
        try:
            conn = self._open_writer()
        except BaseException as exc:
            self._startup_error = translate_error(exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                stop = False
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
                if stop:
                    break
            # Anything enqueued after close() raced it: fail it rather than leave it hanging.
            while True:
                try:
                    req = self._queue.get_nowait()
                except queue.Empty:
                    break
                if req is not None:
                    self._deliver([(req, None, StoreUnavailableError("sqlite store is closed"))])
        finally:
            conn.close()

    def _run_group(self, conn: sqlite3.Connection, group: list[_Request]) -> None:
        outcomes: list[tuple[_Request, Any, BaseException | None]] = []
        try:
            # IMMEDIATE takes the write lock up front: condition reads and writes of every request in
            # the group see one serial state, and no other process can interleave (busy_timeout waits).
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            err = translate_error(exc)
            self._deliver([(req, None, err) for req in group])
            return
        broken: BaseException | None = None
        for req in group:
            if broken is not None:
                outcomes.append((req, None, broken))
                continue
            conn.execute("SAVEPOINT req")
            try:
                result = req.fn(conn)
            except BaseException as exc:
                err = translate_error(exc)
                try:
                    conn.execute("ROLLBACK TO req")
                    conn.execute("RELEASE req")
                    outcomes.append((req, None, err))
                except sqlite3.Error:
                    # SQLite already rolled back the whole transaction (e.g. SQLITE_FULL / IOERR):
                    # the earlier requests' writes are gone too, so the whole group fails.
                    broken = StoreUnavailableError(f"group transaction aborted: {err}")
                    outcomes = [(r, None, broken) for r, _, _ in outcomes]
                    outcomes.append((req, None, err))
                continue
            conn.execute("RELEASE req")
            outcomes.append((req, result, None))
        if broken is None:
            try:
                conn.execute("COMMIT")  # the one fsync for the whole group
            except BaseException as exc:
                err = StoreUnavailableError(f"group commit failed: {translate_error(exc)}")
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                outcomes = [(r, None, e if e is not None else err) for r, _, e in outcomes]
        elif conn.in_transaction:
            conn.execute("ROLLBACK")
        self.stats.groups += 1
        self.stats.requests += len(group)
        self._deliver(outcomes)

    @staticmethod
    def _deliver(outcomes: list[tuple[_Request, Any, BaseException | None]]) -> None:
        """Resolves futures on their own loops, one ``call_soon_threadsafe`` per loop per group."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:
                pass  # the caller's loop is closed; nobody is waiting any more

    def _shutdown(self) -> None:
        self._writer.join()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            # Closing from another thread is safe once the pool's threads have exited.
            try:
                conn.close()
            except sqlite3.Error:
                pass


def _resolve_all(items: list[tuple[_Request, Any, BaseException | None]]) -> None:
    for req, result, exc in items:
        if req.future.done():
            continue  # cancelled by the caller; the write itself has happened (or not) regardless
        if exc is not None:
            req.future.set_exception(exc)
        else:
            req.future.set_result(result)
