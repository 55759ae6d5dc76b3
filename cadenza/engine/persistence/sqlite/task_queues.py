"""Matching's task queues: leased by range_id, with their backlog of tasks."""

from __future__ import annotations

import sqlite3

from ..errors import TaskQueueLeaseLostError
from ..protocols import QueuedTask, TaskQueueInfo
from .db import Database

_KEY = "namespace_id = ? AND name = ? AND task_type = ?"
_COLUMNS = "namespace_id, name, task_type, range_id, ack_level, kind, updated_time"


def _row_to_info(r: tuple) -> TaskQueueInfo:  # type: ignore[type-arg]
    return TaskQueueInfo(
        namespace_id=r[0],
        name=r[1],
        task_type=r[2],
        range_id=r[3],
        ack_level=r[4],
        kind=r[5],
        updated_time=r[6],
    )


def _check_lease(conn: sqlite3.Connection, info: TaskQueueInfo) -> None:
    """Runs inside the write transaction, so the lease cannot move between check and write."""
    row = conn.execute(
        f"SELECT range_id FROM task_queues WHERE {_KEY}", (info.namespace_id, info.name, info.task_type)
    ).fetchone()
    actual = row[0] if row else None
    if actual != info.range_id:
        raise TaskQueueLeaseLostError(
            f"task queue {info.namespace_id}/{info.name}/{info.task_type}: lease has range_id "
            f"{info.range_id}, stored range_id is {actual}"
        )


class SqliteTaskQueueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lease_task_queue(
        self, namespace_id: str, name: str, task_type: int, *, kind: int = 0
    ) -> TaskQueueInfo:
        now = self._db.clock()
        key = (namespace_id, name, task_type)

        def txn(conn: sqlite3.Connection) -> TaskQueueInfo:
            row = conn.execute(f"SELECT {_COLUMNS} FROM task_queues WHERE {_KEY}", key).fetchone()
            if row is None:
                info = TaskQueueInfo(namespace_id, name, task_type, range_id=1, kind=kind, updated_time=now)
                conn.execute(
                    f"INSERT INTO task_queues ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (namespace_id, name, task_type, info.range_id, info.ack_level, kind, now),
                )
                return info
            info = _row_to_info(row)
            info.range_id += 1
            info.updated_time = now
            conn.execute(
                f"UPDATE task_queues SET range_id = ?, updated_time = ? WHERE {_KEY}",
                (info.range_id, now, *key),
            )
            return info

        return await self._db.write(txn)

    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        updated = info.updated_time or self._db.clock()

        def txn(conn: sqlite3.Connection) -> None:
            _check_lease(conn, info)
            conn.execute(
                f"UPDATE task_queues SET ack_level = ?, kind = ?, updated_time = ? WHERE {_KEY}",
                (info.ack_level, info.kind, updated, info.namespace_id, info.name, info.task_type),
            )

        await self._db.write(txn)

    async def list_task_queues(self, namespace_id: str) -> list[TaskQueueInfo]:
        def query(conn: sqlite3.Connection) -> list[TaskQueueInfo]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM task_queues WHERE namespace_id = ? ORDER BY name, task_type",
                (namespace_id,),
            )
            return [_row_to_info(r) for r in rows]

        return await self._db.read(query)

    async def create_tasks(self, info: TaskQueueInfo, tasks: list[QueuedTask]) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            _check_lease(conn, info)
            conn.executemany(
                "INSERT INTO tasks (namespace_id, name, task_type, task_id, expiry_time, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (info.namespace_id, info.name, info.task_type, t.task_id, t.expiry_time, t.data)
                    for t in tasks
                ],
            )

        await self._db.write(txn)

    async def get_tasks(
        self,
        namespace_id: str,
        name: str,
        task_type: int,
        *,
        min_task_id: int,
        max_task_id: int,
        batch_size: int,
    ) -> list[QueuedTask]:
        def query(conn: sqlite3.Connection) -> list[QueuedTask]:
            rows = conn.execute(
                f"SELECT task_id, data, expiry_time FROM tasks WHERE {_KEY} "
                "AND task_id > ? AND task_id <= ? ORDER BY task_id LIMIT ?",
                (namespace_id, name, task_type, min_task_id, max_task_id, batch_size),
            )
            return [QueuedTask(task_id=r[0], data=r[1], expiry_time=r[2]) for r in rows]

        return await self._db.read(query)

    async def complete_tasks_less_than(
        self, namespace_id: str, name: str, task_type: int, task_id: int
    ) -> int:
        def txn(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                f"DELETE FROM tasks WHERE {_KEY} AND task_id < ?", (namespace_id, name, task_type, task_id)
            )
            return cur.rowcount

        return await self._db.write(txn)
