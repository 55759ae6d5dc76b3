"""Matching's task queues: the queue row and its backlog share the queue's partition of ``tasks``.

The queue row (type 1) carries the lease's ``range_id``; the backlog rows (type 0) sort by task id.
Leasing bumps ``range_id`` with a lightweight transaction; appending tasks is one conditional batch
``IF range_id = <lease>`` with the inserts, so a matching host that lost the lease writes nothing.
``task_queues`` only lists the queues of a namespace; values are read from each queue's own row.
"""

from __future__ import annotations

import asyncio

from ..errors import StoreUnavailableError, TaskQueueLeaseLostError
from ..protocols import QueuedTask, TaskQueueInfo
from .session import Bound, CassandraSession, Row, applied
from .shards import now_us

_QUEUE = "namespace_id = ? AND task_queue_name = ? AND task_queue_type = ?"
_QUEUE_ROW = f"{_QUEUE} AND type = 1 AND task_id = 0"
_ATTEMPTS = 20


def _to_info(ns: str, name: str, task_type: int, r: Row) -> TaskQueueInfo:
    return TaskQueueInfo(
        namespace_id=ns,
        name=name,
        task_type=task_type,
        range_id=r["range_id"],
        ack_level=r.get("ack_level") or 0,
        kind=r.get("kind") or 0,
        updated_time=r.get("updated_time") or 0,
    )


class CassandraTaskQueueStore:
    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        cols = "range_id, ack_level, kind, updated_time"
        self._select = db.prepare(f"SELECT {cols} FROM {{ks}}.tasks WHERE {_QUEUE_ROW}")
        self._create = db.prepare(
            "INSERT INTO {ks}.tasks (namespace_id, task_queue_name, task_queue_type, type, task_id, "
            f"{cols}) VALUES (?, ?, ?, 1, 0, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._bump = db.prepare(
            f"UPDATE {{ks}}.tasks SET range_id = ?, updated_time = ? WHERE {_QUEUE_ROW} IF range_id = ?"
        )
        self._update = db.prepare(
            "UPDATE {ks}.tasks SET ack_level = ?, kind = ?, updated_time = ? "
            f"WHERE {_QUEUE_ROW} IF range_id = ?"
        )
        self._fence = db.prepare(f"UPDATE {{ks}}.tasks SET range_id = ? WHERE {_QUEUE_ROW} IF range_id = ?")
        self._insert_task = db.prepare(
            "INSERT INTO {ks}.tasks (namespace_id, task_queue_name, task_queue_type, type, task_id, "
            "expiry_time, data) VALUES (?, ?, ?, 0, ?, ?, ?)"
        )
        self._index = db.prepare(
            "INSERT INTO {ks}.task_queues (namespace_id, name, task_type) VALUES (?, ?, ?)"
        )
        self._list = db.prepare("SELECT name, task_type FROM {ks}.task_queues WHERE namespace_id = ?")
        self._select_tasks = db.prepare(
            "SELECT task_id, data, expiry_time FROM {ks}.tasks "
            f"WHERE {_QUEUE} AND type = 0 AND task_id > ? AND task_id <= ? LIMIT ?"
        )
        self._select_below = db.prepare(
            f"SELECT task_id FROM {{ks}}.tasks WHERE {_QUEUE} AND type = 0 AND task_id < ?"
        )
        self._delete_below = db.prepare(
            f"DELETE FROM {{ks}}.tasks WHERE {_QUEUE} AND type = 0 AND task_id < ?"
        )

    async def lease_task_queue(
        self, namespace_id: str, name: str, task_type: int, *, kind: int = 0
    ) -> TaskQueueInfo:
        key = (namespace_id, name, task_type)
        rows = await self._db.execute(self._select, key)
        for _ in range(_ATTEMPTS):
            now = now_us()
            if not rows:
                result = await self._db.execute(self._create, (*key, 1, 0, kind, now))
                if applied(result):
                    await self._db.execute(self._index, key)
                    return TaskQueueInfo(
                        namespace_id, name, task_type, range_id=1, kind=kind, updated_time=now
                    )
                rows = result
                continue
            info = _to_info(*key, rows[0])
            result = await self._db.execute(self._bump, (info.range_id + 1, now, *key, info.range_id))
            if applied(result):
                info.range_id += 1
                info.updated_time = now
                return info
            rows = [r for r in result if r.get("range_id") is not None] or await self._db.execute(
                self._select, key
            )
        raise StoreUnavailableError(f"task queue {namespace_id}/{name}/{task_type}: lease too contended")

    def _lost(self, info: TaskQueueInfo, result: list[Row]) -> TaskQueueLeaseLostError:
        actual = result[0].get("range_id") if result else None
        return TaskQueueLeaseLostError(
            f"task queue {info.namespace_id}/{info.name}/{info.task_type}: lease has range_id "
            f"{info.range_id}, stored range_id is {actual}"
        )

    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        updated = info.updated_time or now_us()
        key = (info.namespace_id, info.name, info.task_type)
        result = await self._db.execute(
            self._update, (info.ack_level, info.kind, updated, *key, info.range_id)
        )
        if not applied(result):
            raise self._lost(info, result)

    async def list_task_queues(self, namespace_id: str) -> list[TaskQueueInfo]:
        listed = await self._db.execute(self._list, (namespace_id,))
        rows = await asyncio.gather(
            *(self._db.execute(self._select, (namespace_id, r["name"], r["task_type"])) for r in listed)
        )
        return [
            _to_info(namespace_id, q["name"], q["task_type"], found[0])
            for q, found in zip(listed, rows, strict=True)
            if found
        ]

    async def create_tasks(self, info: TaskQueueInfo, tasks: list[QueuedTask]) -> None:
        key = (info.namespace_id, info.name, info.task_type)
        statements: list[Bound] = [(self._fence, (info.range_id, *key, info.range_id))]
        statements += [(self._insert_task, (*key, t.task_id, t.expiry_time, t.data)) for t in tasks]
        result = await self._db.execute_batch(statements)
        if not applied(result):
            raise self._lost(info, result)

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
        rows = await self._db.execute(
            self._select_tasks, (namespace_id, name, task_type, min_task_id, max_task_id, batch_size)
        )
        return [QueuedTask(r["task_id"], r["data"] or b"", r.get("expiry_time") or 0) for r in rows]

    async def complete_tasks_less_than(
        self, namespace_id: str, name: str, task_type: int, task_id: int
    ) -> int:
        # A range delete does not say how much it removed: count first (tombstoned rows are skipped).
        found = await self._db.execute(self._select_below, (namespace_id, name, task_type, task_id))
        if found:
            await self._db.execute(self._delete_below, (namespace_id, name, task_type, task_id))
        return len(found)
