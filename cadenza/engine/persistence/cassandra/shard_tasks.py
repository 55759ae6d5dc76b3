"""Reading and range-deleting the shard's tasks (row types 3-6 of the shard partition).

Tasks sort inside the partition by (type, visibility_ts, task_id), so a queue read is one contiguous
slice and acknowledging a range is one range tombstone, however many tasks it covers.
"""

from __future__ import annotations

from ..protocols import TaskCategory, TaskRow
from .session import CassandraSession

TASK_TYPE = {
    TaskCategory.TRANSFER: 3,
    TaskCategory.TIMER: 4,
    TaskCategory.VISIBILITY: 5,
    TaskCategory.REPLICATION: 6,
}
_PREFIX = "shard_id = ? AND type = ? AND namespace_id = '' AND workflow_id = '' AND run_id = ''"
_TIMER_RANGE = f"{_PREFIX} AND (visibility_ts, task_id) >= (?, ?) AND (visibility_ts, task_id) < (?, ?)"
_ID_RANGE = f"{_PREFIX} AND visibility_ts = 0 AND task_id >= ? AND task_id < ?"
_MIN, _MAX = -(1 << 63), (1 << 63) - 1


def task_id_bounds(min_key: tuple[int, int], max_key: tuple[int, int]) -> tuple[int, int] | None:
    """[lo, hi) task ids for a category keyed (0, task_id); None when the range is empty."""
    lo = min_key[1] if min_key[0] == 0 else (_MIN if min_key[0] < 0 else None)
    hi = max_key[1] if max_key[0] == 0 else (_MAX if max_key[0] > 0 else None)
    if lo is None or hi is None:
        return None
    return lo, hi


class ShardTaskReader:
    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        self._select_timers = db.prepare(
            f"SELECT task_id, visibility_ts, data FROM {{ks}}.executions WHERE {_TIMER_RANGE} LIMIT ?"
        )
        self._select_ids = db.prepare(
            f"SELECT task_id, visibility_ts, data FROM {{ks}}.executions WHERE {_ID_RANGE} LIMIT ?"
        )
        self._delete_timers = db.prepare(f"DELETE FROM {{ks}}.executions WHERE {_TIMER_RANGE}")
        self._delete_ids = db.prepare(f"DELETE FROM {{ks}}.executions WHERE {_ID_RANGE}")

    async def get_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
        batch_size: int,
    ) -> list[TaskRow]:
        category = TaskCategory(category)
        if category == TaskCategory.TIMER:
            rows = await self._db.execute(
                self._select_timers, (shard_id, TASK_TYPE[category], *min_key, *max_key, batch_size)
            )
        else:
            bounds = task_id_bounds(min_key, max_key)
            if bounds is None:
                return []
            rows = await self._db.execute(
                self._select_ids, (shard_id, TASK_TYPE[category], *bounds, batch_size)
            )
        return [
            TaskRow(task_id=r["task_id"], data=r["data"] or b"", visibility_time=r["visibility_ts"])
            for r in rows
        ]

    async def complete_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
    ) -> None:
        category = TaskCategory(category)
        if category == TaskCategory.TIMER:
            await self._db.execute(self._delete_timers, (shard_id, TASK_TYPE[category], *min_key, *max_key))
            return
        bounds = task_id_bounds(min_key, max_key)
        if bounds is not None:
            await self._db.execute(self._delete_ids, (shard_id, TASK_TYPE[category], *bounds))
