"""Execution rows, current-run pointers and the shard's task queues.

Every mutation is a closure run by the writer thread inside its own SAVEPOINT of a group transaction
(see ``db.py``): raising a contract error from anywhere in the closure rolls back exactly this
request's writes, which is what makes "nothing is written on failure" hold under group commit.
"""

from __future__ import annotations

import sqlite3

from ..errors import ConditionFailedError, CurrentWorkflowConditionFailedError, EntityNotFoundError
from ..protocols import (
    CreateMode,
    CreateWorkflowRequest,
    CurrentExecution,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    NewRun,
    TaskCategory,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
)
from .db import Database, decode_token, encode_token
from .history import write_append
from .shards import check_range_id

_TASK_TABLES = {
    TaskCategory.TRANSFER: "transfer_tasks",
    TaskCategory.TIMER: "timer_tasks",
    TaskCategory.VISIBILITY: "visibility_tasks",
    TaskCategory.REPLICATION: "replication_tasks",
}

_EXEC_COLUMNS = (
    "namespace_id, workflow_id, run_id, state, status, next_event_id, db_version, "
    "last_write_version, start_request_id, data, start_version"
)


def _row_to_execution(r: sqlite3.Row | tuple) -> ExecutionRow:  # type: ignore[type-arg]
    return ExecutionRow(
        namespace_id=r[0],
        workflow_id=r[1],
        run_id=r[2],
        state=ExecutionState(r[3]),
        status=ExecutionStatus(r[4]),
        next_event_id=r[5],
        db_version=r[6],
        last_write_version=r[7],
        start_request_id=r[8],
        data=r[9],
        start_version=r[10],
    )


def _load_current(
    conn: sqlite3.Connection, shard_id: int, namespace_id: str, workflow_id: str
) -> CurrentExecution | None:
    row = conn.execute(
        "SELECT run_id, create_request_id, state, status, last_write_version, start_version "
        "FROM current_executions WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ?",
        (shard_id, namespace_id, workflow_id),
    ).fetchone()
    if row is None:
        return None
    return CurrentExecution(
        run_id=row[0],
        create_request_id=row[1],
        state=ExecutionState(row[2]),
        status=ExecutionStatus(row[3]),
        last_write_version=row[4],
        start_version=row[5],
    )


def _current_conflict(message: str, current: CurrentExecution) -> CurrentWorkflowConditionFailedError:
    return CurrentWorkflowConditionFailedError(
        message,
        run_id=current.run_id,
        request_id=current.create_request_id,
        state=int(current.state),
        status=int(current.status),
        last_write_version=current.last_write_version,
    )


def _check_create_mode(conn: sqlite3.Connection, shard_id: int, new_run: NewRun) -> None:
    ex = new_run.execution
    current = _load_current(conn, shard_id, ex.namespace_id, ex.workflow_id)
    where = f"workflow {ex.namespace_id}/{ex.workflow_id}"
    if new_run.mode == CreateMode.BRAND_NEW:
        if current is not None:
            raise _current_conflict(f"{where}: a run already exists ({current.run_id})", current)
        return
    if new_run.mode == CreateMode.ZOMBIE:
        exists = conn.execute(
            "SELECT 1 FROM executions WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? "
            "AND run_id = ?",
            (shard_id, ex.namespace_id, ex.workflow_id, ex.run_id),
        ).fetchone()
        if exists is not None:
            raise ConditionFailedError(f"{where}: run {ex.run_id} already exists")
        return
    if current is None:
        # The pointer the caller based its decision on is gone (deleted): reload and decide again.
        raise ConditionFailedError(f"{where}: no current run, expected {new_run.previous_run_id}")
    if current.run_id != new_run.previous_run_id:
        raise _current_conflict(
            f"{where}: current run is {current.run_id}, expected {new_run.previous_run_id}", current
        )
    if new_run.mode == CreateMode.WORKFLOW_ID_REUSE:
        if current.last_write_version != new_run.previous_last_write_version:
            raise _current_conflict(
                f"{where}: current run's last_write_version is {current.last_write_version}, "
                f"expected {new_run.previous_last_write_version}",
                current,
            )
        if current.state not in (ExecutionState.COMPLETED, ExecutionState.ZOMBIE):
            raise _current_conflict(f"{where}: current run {current.run_id} is still open", current)


def _insert_execution(conn: sqlite3.Connection, shard_id: int, ex: ExecutionRow) -> None:
    conn.execute(
        f"INSERT INTO executions (shard_id, {_EXEC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            shard_id,
            ex.namespace_id,
            ex.workflow_id,
            ex.run_id,
            int(ex.state),
            int(ex.status),
            ex.next_event_id,
            ex.db_version,
            ex.last_write_version,
            ex.start_request_id,
            ex.data,
            ex.start_version,
        ),
    )


def _write_tasks(conn: sqlite3.Connection, shard_id: int, tasks: WorkflowTasks) -> None:
    for category, rows in tasks.by_category().items():
        if not rows:
            continue
        if category == TaskCategory.TIMER:
            conn.executemany(
                "INSERT INTO timer_tasks (shard_id, visibility_time, task_id, data) VALUES (?, ?, ?, ?)",
                [(shard_id, t.visibility_time, t.task_id, t.data) for t in rows],
            )
        else:
            conn.executemany(
                f"INSERT INTO {_TASK_TABLES[category]} (shard_id, task_id, data) VALUES (?, ?, ?)",
                [(shard_id, t.task_id, t.data) for t in rows],
            )


def _create_run(conn: sqlite3.Connection, shard_id: int, new_run: NewRun) -> None:
    """Checks the create mode, then writes row, pointer, history and tasks (inside the caller's txn)."""
    _check_create_mode(conn, shard_id, new_run)
    ex = new_run.execution
    _insert_execution(conn, shard_id, ex)
    if new_run.mode != CreateMode.ZOMBIE:
        _point_current(conn, shard_id, ex)
    for append in new_run.history:
        write_append(conn, append)
    _write_tasks(conn, shard_id, new_run.tasks)


def _point_current(conn: sqlite3.Connection, shard_id: int, ex: ExecutionRow) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO current_executions (shard_id, namespace_id, workflow_id, run_id, "
        "create_request_id, state, status, last_write_version, start_version) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            shard_id,
            ex.namespace_id,
            ex.workflow_id,
            ex.run_id,
            ex.start_request_id,
            int(ex.state),
            int(ex.status),
            ex.last_write_version,
            ex.start_version,
        ),
    )


def _update_run(conn: sqlite3.Connection, request: UpdateWorkflowRequest) -> None:
    shard_id, ex = request.shard_id, request.execution
    check_range_id(conn, shard_id, request.range_id)
    key = (shard_id, ex.namespace_id, ex.workflow_id, ex.run_id)
    # The condition is part of the UPDATE (one statement on the hot path); only a miss reads the row
    # to say why.
    updated = conn.execute(
        "UPDATE executions SET state = ?, status = ?, next_event_id = ?, db_version = ?, "
        "last_write_version = ?, start_request_id = ?, data = ?, start_version = ? "
        "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ? AND db_version = ?",
        (
            int(ex.state),
            int(ex.status),
            ex.next_event_id,
            ex.db_version,
            ex.last_write_version,
            ex.start_request_id,
            ex.data,
            ex.start_version,
            *key,
            request.expected_db_version,
        ),
    ).rowcount
    if updated != 1:
        row = conn.execute(
            "SELECT db_version FROM executions "
            "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?",
            key,
        ).fetchone()
        if row is None:
            raise ConditionFailedError(f"execution {ex.namespace_id}/{ex.workflow_id}/{ex.run_id} not found")
        raise ConditionFailedError(
            f"execution {ex.namespace_id}/{ex.workflow_id}/{ex.run_id}: db_version is {row[0]}, "
            f"expected {request.expected_db_version}"
        )
    # The pointer mirrors the current run's state/status; a non-current run leaves it alone.
    # Usually nothing changed (state and status move only when the run closes): the extra terms
    # keep that case a read, not a page write.
    conn.execute(
        "UPDATE current_executions SET state = ?, status = ?, last_write_version = ? "
        "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ? "
        "AND (state != ? OR status != ? OR last_write_version != ?)",
        (
            int(ex.state),
            int(ex.status),
            ex.last_write_version,
            *key,
            int(ex.state),
            int(ex.status),
            ex.last_write_version,
        ),
    )
    for append in request.history:
        write_append(conn, append)
    _write_tasks(conn, shard_id, request.tasks)
    if request.continue_as_new is not None:
        _create_run(conn, shard_id, request.continue_as_new)


def _task_id_bounds(min_key: tuple[int, int], max_key: tuple[int, int]) -> tuple[int, int] | None:
    """[lo, hi) task ids for a category keyed (0, task_id); None when the range is empty."""
    lo = min_key[1] if min_key[0] == 0 else (-(1 << 63) if min_key[0] < 0 else None)
    hi = max_key[1] if max_key[0] == 0 else ((1 << 63) - 1 if max_key[0] > 0 else None)
    if lo is None or hi is None:
        return None
    return lo, hi


class SqliteExecutionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_workflow_execution(self, request: CreateWorkflowRequest) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            check_range_id(conn, request.shard_id, request.range_id)
            _create_run(conn, request.shard_id, request.new_run)

        await self._db.write(txn)

    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> None:
        await self._db.write(lambda conn: _update_run(conn, request))

    async def get_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRow:
        def query(conn: sqlite3.Connection) -> ExecutionRow:
            row = conn.execute(
                f"SELECT {_EXEC_COLUMNS} FROM executions "
                "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?",
                (shard_id, namespace_id, workflow_id, run_id),
            ).fetchone()
            if row is None:
                raise EntityNotFoundError(f"execution {namespace_id}/{workflow_id}/{run_id} not found")
            return _row_to_execution(row)

        return await self._db.read(query)

    async def get_current_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentExecution:
        def query(conn: sqlite3.Connection) -> CurrentExecution:
            current = _load_current(conn, shard_id, namespace_id, workflow_id)
            if current is None:
                raise EntityNotFoundError(f"no current run for {namespace_id}/{workflow_id}")
            return current

        return await self._db.read(query)

    async def list_executions(
        self, shard_id: int, page_size: int, token: bytes | None = None
    ) -> tuple[list[ExecutionRow], bytes | None]:
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        after = decode_token(token)

        def query(conn: sqlite3.Connection) -> tuple[list[ExecutionRow], bytes | None]:
            sql = f"SELECT {_EXEC_COLUMNS} FROM executions WHERE shard_id = ?"
            args: list[object] = [shard_id]
            if after is not None:
                sql += " AND (namespace_id, workflow_id, run_id) > (?, ?, ?)"
                args.extend(after)
            sql += " ORDER BY namespace_id, workflow_id, run_id LIMIT ?"
            args.append(page_size + 1)
            rows = [_row_to_execution(r) for r in conn.execute(sql, args)]
            if len(rows) <= page_size:
                return rows, None
            last = rows[page_size - 1]
            return rows[:page_size], encode_token([last.namespace_id, last.workflow_id, last.run_id])

        return await self._db.read(query)

    async def delete_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        key = (shard_id, namespace_id, workflow_id, run_id)

        def txn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM executions "
                "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?",
                key,
            )
            conn.execute(
                "DELETE FROM current_executions "
                "WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?",
                key,
            )

        await self._db.write(txn)

    async def get_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
        batch_size: int,
    ) -> list[TaskRow]:
        table = _TASK_TABLES[TaskCategory(category)]
        if category == TaskCategory.TIMER:
            sql = (
                "SELECT task_id, data, visibility_time FROM timer_tasks WHERE shard_id = ? "
                "AND (visibility_time, task_id) >= (?, ?) AND (visibility_time, task_id) < (?, ?) "
                "ORDER BY visibility_time, task_id LIMIT ?"
            )
            args: tuple[int, ...] = (shard_id, *min_key, *max_key, batch_size)
        else:
            bounds = _task_id_bounds(min_key, max_key)
            if bounds is None:
                return []
            sql = (
                f"SELECT task_id, data, 0 FROM {table} WHERE shard_id = ? "
                "AND task_id >= ? AND task_id < ? ORDER BY task_id LIMIT ?"
            )
            args = (shard_id, *bounds, batch_size)

        def query(conn: sqlite3.Connection) -> list[TaskRow]:
            return [TaskRow(task_id=r[0], data=r[1], visibility_time=r[2]) for r in conn.execute(sql, args)]

        return await self._db.read(query)

    async def complete_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
    ) -> None:
        table = _TASK_TABLES[TaskCategory(category)]
        if category == TaskCategory.TIMER:
            sql = (
                "DELETE FROM timer_tasks WHERE shard_id = ? "
                "AND (visibility_time, task_id) >= (?, ?) AND (visibility_time, task_id) < (?, ?)"
            )
            args: tuple[int, ...] = (shard_id, *min_key, *max_key)
        else:
            bounds = _task_id_bounds(min_key, max_key)
            if bounds is None:
                return
            sql = f"DELETE FROM {table} WHERE shard_id = ? AND task_id >= ? AND task_id < ?"
            args = (shard_id, *bounds)

        def txn(conn: sqlite3.Connection) -> None:
            conn.execute(sql, args)

        await self._db.write(txn)
