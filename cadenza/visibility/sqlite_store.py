"""The embedded visibility store: SQLite through the standard library, on its own file or in memory.

Layout (chosen by measurement, see ``bench/visibility_bench.py``): one row per run in
``executions_visibility`` with a column per system attribute, indexed by namespace then the common
filters, each followed by ``start_time`` so the default order (newest first) is read off the index;
custom attributes in a generic typed table ``search_attributes`` (one row per value, one per element
for KeywordList) indexed by ``(namespace_id, name, <value>)``. The typed table handles KeywordList and
attributes added at run time without DDL, which JSON columns with expression indexes cannot do (an
index per attribute, none usable for list membership). Records are rebuilt from the row alone: the
custom values are also kept as JSON there, so a page costs one statement.

sqlite3 calls block, so they run on one dedicated thread: that thread owns the connection, which
also serializes writers without any lock of ours.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cadenza.visibility._time import datetime_to_micros, micros_to_datetime
from cadenza.visibility.query import (
    DEFAULT_ORDER,
    SCAN_ORDER,
    VALUE_COLUMNS,
    IsNull,
    OrderBy,
    Query,
    Seek,
    conjoin,
    count_sql,
    decode_page_token,
    next_page,
    select_sql,
    text_column_value,
)
from cadenza.visibility.record import STATUS_BY_NAME, VisibilityRecord, decode_memo, encode_memo
from cadenza.visibility.search_attributes import (
    SearchAttributeRegistry,
    SearchAttributeType,
    SearchAttributeValue,
)
from cadenza.visibility.store import Page, QueryingStore, check_page_size

R = TypeVar("R")
Rows = list[tuple[Any, ...]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions_visibility (
    namespace_id      TEXT    NOT NULL,
    run_id            TEXT    NOT NULL,
    workflow_id       TEXT    NOT NULL,
    workflow_type     TEXT    NOT NULL,
    start_time        INTEGER NOT NULL,
    execution_time    INTEGER NOT NULL,
    close_time        INTEGER,            -- NULL while the run is open
    status            TEXT    NOT NULL,   -- the anchors' name: Running, Completed, ...
    history_length    INTEGER NOT NULL,
    task_queue        TEXT    NOT NULL,
    search_attributes TEXT    NOT NULL,   -- JSON of the custom values, to rebuild records
    memo              TEXT    NOT NULL,   -- JSON, payload bytes in base64
    task_id           INTEGER NOT NULL,   -- version: an upsert with a lower or equal one is ignored
    PRIMARY KEY (namespace_id, run_id)
);
CREATE INDEX IF NOT EXISTS ev_start ON executions_visibility (namespace_id, start_time, run_id);
CREATE INDEX IF NOT EXISTS ev_close ON executions_visibility (namespace_id, close_time, run_id);
CREATE INDEX IF NOT EXISTS ev_execution ON executions_visibility (namespace_id, execution_time, run_id);
CREATE INDEX IF NOT EXISTS ev_type ON executions_visibility (namespace_id, workflow_type, start_time, run_id);
CREATE INDEX IF NOT EXISTS ev_status ON executions_visibility (namespace_id, status, start_time, run_id);
-- Counts by status of one workflow type (the UI's list page asks for them with every query)
-- read this index alone instead of every run's row: 3 ms instead of 160-370 ms at 100k runs.
CREATE INDEX IF NOT EXISTS ev_type_status ON executions_visibility (namespace_id, workflow_type, status);
CREATE INDEX IF NOT EXISTS ev_workflow_id
    ON executions_visibility (namespace_id, workflow_id, start_time, run_id);
CREATE INDEX IF NOT EXISTS ev_task_queue
    ON executions_visibility (namespace_id, task_queue, start_time, run_id);

CREATE TABLE IF NOT EXISTS search_attributes (
    namespace_id   TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    int_value      INTEGER,
    double_value   REAL,
    text_value     TEXT,                  -- Keyword, KeywordList element, or Text as its words
    bool_value     INTEGER,
    datetime_value INTEGER                -- µs since the epoch
);
CREATE INDEX IF NOT EXISTS sa_run ON search_attributes (namespace_id, run_id, name);
-- Not partial: its (namespace_id, name) prefix also serves "has the attribute" and Text phrases.
CREATE INDEX IF NOT EXISTS sa_text ON search_attributes (namespace_id, name, text_value, run_id);
-- Partial: a row fills one value column, so each index holds only its type's rows.
CREATE INDEX IF NOT EXISTS sa_int ON search_attributes (namespace_id, name, int_value, run_id)
    WHERE int_value IS NOT NULL;
CREATE INDEX IF NOT EXISTS sa_double ON search_attributes (namespace_id, name, double_value, run_id)
    WHERE double_value IS NOT NULL;
CREATE INDEX IF NOT EXISTS sa_bool ON search_attributes (namespace_id, name, bool_value, run_id)
    WHERE bool_value IS NOT NULL;
CREATE INDEX IF NOT EXISTS sa_datetime ON search_attributes (namespace_id, name, datetime_value, run_id)
    WHERE datetime_value IS NOT NULL;

CREATE TABLE IF NOT EXISTS search_attribute_types (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL
);
"""

_COLUMNS = (
    "v.namespace_id, v.run_id, v.workflow_id, v.workflow_type, v.start_time, v.execution_time, v.close_time,"
    " v.status, v.history_length, v.task_queue, v.search_attributes, v.memo, v.task_id"
)

_UPSERT = """
INSERT INTO executions_visibility (namespace_id, run_id, workflow_id, workflow_type, start_time,
    execution_time, close_time, status, history_length, task_queue, search_attributes, memo, task_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace_id, run_id) DO UPDATE SET
    workflow_id = excluded.workflow_id, workflow_type = excluded.workflow_type,
    start_time = excluded.start_time, execution_time = excluded.execution_time,
    close_time = excluded.close_time, status = excluded.status,
    history_length = excluded.history_length, task_queue = excluded.task_queue,
    search_attributes = excluded.search_attributes, memo = excluded.memo, task_id = excluded.task_id
WHERE excluded.task_id > executions_visibility.task_id
"""

_INSERT_VALUE = """
INSERT INTO search_attributes (namespace_id, run_id, name, int_value, double_value, text_value,
    bool_value, datetime_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_VALUE_SLOTS = ("int_value", "double_value", "text_value", "bool_value", "datetime_value")


class SqliteVisibilityStore(QueryingStore):
    """A :class:`~cadenza.visibility.store.VisibilityStore` on SQLite. Create with :meth:`open`."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visibility-sqlite")
        self._conn: sqlite3.Connection | None = None
        super().__init__(SearchAttributeRegistry(_SqliteSearchAttributeStorage(self)))

    @classmethod
    async def open(cls, path: str | Path = ":memory:") -> SqliteVisibilityStore:
        """Opens (creating tables and indexes when missing) the store at ``path``."""
        store = cls(path)
        await store._run(store._connect)
        await store.registry.load()
        return store

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    # -- plumbing --------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        if self._path != ":memory:":
            # WAL lets readers of another connection proceed while the indexer writes.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the SQLite visibility store is not open (use SqliteVisibilityStore.open)")
        return self._conn

    def _fetch(self, sql: str, params: Sequence[object]) -> Rows:
        return self.conn.execute(sql, params).fetchall()

    async def close(self) -> None:
        """Closes the connection and stops the store's thread."""
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def optimize(self) -> None:
        """Refreshes the planner's statistics (``ANALYZE``); worth running after a large bulk load."""
        await self._run(self.conn.execute, "ANALYZE")

    # -- writes ----------------------------------------------------------------------------------

    async def upsert(self, record: VisibilityRecord) -> None:
        await self.upsert_many([record])

    async def upsert_many(self, records: Sequence[VisibilityRecord]) -> None:
        typed = await self.validate(records)
        await self._run(self._write, typed)

    def _write(self, records: Sequence[VisibilityRecord]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for r in records:
                changed = conn.execute(_UPSERT, _row(r)).rowcount
                if not changed:
                    continue  # the stored record has a newer task id
                conn.execute(
                    "DELETE FROM search_attributes WHERE namespace_id = ? AND run_id = ?",
                    (r.namespace_id, r.run_id),
                )
                conn.executemany(_INSERT_VALUE, _value_rows(r, self.registry.types))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def delete(
        self, namespace_id: str, workflow_id: str, run_id: str, *, task_id: int | None = None
    ) -> None:
        await self._run(self._delete, namespace_id, workflow_id, run_id, task_id)

    def _delete(self, namespace_id: str, workflow_id: str, run_id: str, task_id: int | None) -> None:
        conn = self.conn
        sql = "DELETE FROM executions_visibility WHERE namespace_id = ? AND run_id = ? AND workflow_id = ?"
        params: tuple[object, ...] = (namespace_id, run_id, workflow_id)
        if task_id is not None:
            sql += " AND task_id < ?"  # like an external-version delete in Elasticsearch
            params += (task_id,)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(sql, params).rowcount:
                conn.execute(
                    "DELETE FROM search_attributes WHERE namespace_id = ? AND run_id = ?",
                    (namespace_id, run_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reads -----------------------------------------------------------------------------------

    async def list(
        self, namespace_id: str, query: str = "", page_size: int = 100, page_token: bytes | None = None
    ) -> Page:
        check_page_size(page_size)
        return await self._page(namespace_id, await self.parse(query), page_token, page_size, DEFAULT_ORDER)

    async def scan(
        self, namespace_id: str, query: str = "", page_size: int = 1000, page_token: bytes | None = None
    ) -> Page:
        check_page_size(page_size)
        parsed = await self.parse(query)
        return await self._page(namespace_id, Query(parsed.where), page_token, page_size, SCAN_ORDER)

    async def _page(
        self, namespace_id: str, parsed: Query, token: bytes | None, page_size: int, default: OrderBy
    ) -> Page:
        order = parsed.order_by or default
        seek = decode_page_token(token, order) if token else None
        if order.attribute.system:
            stmt = select_sql(
                Query(conjoin(parsed.where, seek), order), namespace_id, columns=_COLUMNS, limit=page_size + 1
            )
            rows = await self._run(self._fetch, stmt.sql, stmt.params)
        else:
            rows = await self._run(self._fetch_custom_order, namespace_id, parsed, order, seek, page_size + 1)
        types = self.registry.types
        return next_page([_record(row, types) for row in rows], page_size, order)

    def _fetch_custom_order(
        self, namespace_id: str, parsed: Query, order: OrderBy, seek: Seek | None, limit: int
    ) -> Rows:
        """Runs with the sort attribute, by value, then runs without it, by run id (see ``SortPhase``)."""
        rows: Rows = []
        if seek is None or seek.value is not None:
            valued = Query(conjoin(parsed.where, seek), order)
            stmt = select_sql(valued, namespace_id, columns=_COLUMNS, limit=limit, phase="valued")
            rows = self._fetch(stmt.sql, stmt.params)
        if len(rows) < limit:
            after = seek if seek is not None and seek.value is None else None
            missing = Query(conjoin(parsed.where, IsNull(order.attribute), after), order)
            stmt = select_sql(
                missing, namespace_id, columns=_COLUMNS, limit=limit - len(rows), phase="missing"
            )
            rows += self._fetch(stmt.sql, stmt.params)
        return rows

    async def count(self, namespace_id: str, query: str = "") -> int:
        stmt = count_sql(await self.parse(query), namespace_id)
        rows = await self._run(self._fetch, stmt.sql, stmt.params)
        return int(rows[0][0])

    async def count_group_by_status(self, namespace_id: str, query: str = "") -> dict[str, int]:
        stmt = count_sql(await self.parse(query), namespace_id, group_by_status=True)
        rows = await self._run(self._fetch, stmt.sql, stmt.params)
        return {str(status): int(n) for status, n in rows if n}


class _SqliteSearchAttributeStorage:
    """The registry's storage: the ``search_attribute_types`` table of the store's database."""

    def __init__(self, store: SqliteVisibilityStore) -> None:
        self._store = store

    async def load_search_attributes(self) -> dict[str, SearchAttributeType]:
        rows = await self._store._run(self._store._fetch, "SELECT name, type FROM search_attribute_types", ())
        return {name: SearchAttributeType(type_) for name, type_ in rows}

    async def save_search_attributes(self, attributes: Mapping[str, SearchAttributeType]) -> None:
        def save() -> None:
            self._store.conn.executemany(
                "INSERT OR IGNORE INTO search_attribute_types (name, type) VALUES (?, ?)",
                [(name, type_.value) for name, type_ in attributes.items()],
            )

        await self._store._run(save)


def _row(r: VisibilityRecord) -> tuple[object, ...]:
    plain = {
        k: datetime_to_micros(v) if isinstance(v, datetime) else v for k, v in r.search_attributes.items()
    }
    return (
        r.namespace_id,
        r.run_id,
        r.workflow_id,
        r.workflow_type,
        r.start_time,
        r.execution_time,
        r.close_time or None,
        r.status_name,
        r.history_length,
        r.task_queue,
        json.dumps(plain, separators=(",", ":")),
        json.dumps(encode_memo(r.memo), separators=(",", ":")),
        r.task_id,
    )


def _value_rows(r: VisibilityRecord, types: Mapping[str, SearchAttributeType]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for name, value in r.search_attributes.items():
        type_ = types[name]
        column = VALUE_COLUMNS[type_]
        stored: list[object]
        if type_ is SearchAttributeType.KEYWORD_LIST:
            assert isinstance(value, list)
            stored = list(dict.fromkeys(value))
        elif type_ is SearchAttributeType.TEXT:
            stored = [text_column_value(str(value))]
        elif isinstance(value, datetime):
            stored = [datetime_to_micros(value)]
        else:
            stored = [int(value) if isinstance(value, bool) else value]
        for v in stored:
            slots = [v if slot == column else None for slot in _VALUE_SLOTS]
            rows.append((r.namespace_id, r.run_id, name, *slots))
    return rows


def _record(row: tuple[Any, ...], types: Mapping[str, SearchAttributeType]) -> VisibilityRecord:
    (
        namespace_id,
        run_id,
        workflow_id,
        workflow_type,
        start_time,
        execution_time,
        close_time,
        status,
        history_length,
        task_queue,
        attrs,
        memo,
        task_id,
    ) = row
    values: dict[str, SearchAttributeValue] = {}
    for name, value in json.loads(attrs).items():
        values[name] = micros_to_datetime(value) if types.get(name) is SearchAttributeType.DATETIME else value
    return VisibilityRecord(
        namespace_id=namespace_id,
        workflow_id=workflow_id,
        run_id=run_id,
        workflow_type=workflow_type,
        start_time=start_time,
        execution_time=execution_time,
        close_time=close_time or 0,
        status=STATUS_BY_NAME[status],
        history_length=history_length,
        task_queue=task_queue,
        search_attributes=values,
        memo=decode_memo(json.loads(memo)),
        task_id=task_id,
    )
