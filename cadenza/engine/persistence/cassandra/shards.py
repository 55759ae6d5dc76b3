"""Shard rows: row type 0 of the shard's partition in ``executions``, fenced by ``range_id``.

Acquiring a shard is a lightweight transaction ``IF range_id = <read value>``: of two hosts racing,
exactly one bumps it, the other re-reads and bumps the next value. Every execution write carries
``IF range_id = <owner's value>`` on this row in its batch, so a host that lost the shard cannot
write a single row of it any more.
"""

from __future__ import annotations

import time

from ..errors import EntityNotFoundError, ShardOwnershipLostError, StoreUnavailableError
from ..protocols import ShardInfo
from .session import CassandraSession, Row, applied

SHARD_KEY = (
    "shard_id = ? AND type = 0 AND namespace_id = '' AND workflow_id = '' AND run_id = '' "
    "AND visibility_ts = 0 AND task_id = 0"
)

ACQUIRE_ATTEMPTS = 20


def now_us() -> int:
    return time.time_ns() // 1000


def row_to_info(shard_id: int, row: Row) -> ShardInfo:
    return ShardInfo(
        shard_id=shard_id,
        range_id=row["range_id"],
        owner=row.get("owner") or "",
        ack_levels=dict(row.get("ack_levels") or {}),
        updated_time=row.get("updated_time") or 0,
    )


class CassandraShardStore:
    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        cols = "range_id, owner, ack_levels, updated_time"
        self._select = db.prepare(f"SELECT {cols} FROM {{ks}}.executions WHERE {SHARD_KEY}")
        self._create = db.prepare(
            "INSERT INTO {ks}.executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, "
            "task_id, range_id, owner, ack_levels, updated_time) "
            "VALUES (?, 0, '', '', '', 0, 0, ?, ?, {}, ?) "
            "IF NOT EXISTS"
        )
        self._bump = db.prepare(
            f"UPDATE {{ks}}.executions SET range_id = ?, owner = ?, updated_time = ? WHERE {SHARD_KEY} "
            "IF range_id = ?"
        )
        self._update = db.prepare(
            "UPDATE {ks}.executions SET range_id = ?, owner = ?, ack_levels = ?, updated_time = ? "
            f"WHERE {SHARD_KEY} IF range_id = ?"
        )

    async def acquire_shard(self, shard_id: int, owner: str) -> ShardInfo:
        rows = await self._db.execute(self._select, (shard_id,))
        for _ in range(ACQUIRE_ATTEMPTS):
            now = now_us()
            if not rows:
                result = await self._db.execute(self._create, (shard_id, 1, owner, now))
                if applied(result):
                    return ShardInfo(shard_id=shard_id, range_id=1, owner=owner, updated_time=now)
                rows = result  # somebody created it first: its row came back with the answer
                continue
            info = row_to_info(shard_id, rows[0])
            result = await self._db.execute(
                self._bump, (info.range_id + 1, owner, now, shard_id, info.range_id)
            )
            if applied(result):
                info.range_id += 1
                info.owner = owner
                info.updated_time = now
                return info
            # Another host bumped it between our read and our write; the answer carries its value.
            rows = [r for r in result if r.get("range_id") is not None] or await self._db.execute(
                self._select, (shard_id,)
            )
        raise StoreUnavailableError(f"shard {shard_id}: could not acquire after {ACQUIRE_ATTEMPTS} races")

    async def get_shard(self, shard_id: int) -> ShardInfo:
        rows = await self._db.execute(self._select, (shard_id,))
        if not rows or rows[0].get("range_id") is None:
            raise EntityNotFoundError(f"shard {shard_id} not found")
        return row_to_info(shard_id, rows[0])

    async def update_shard(self, info: ShardInfo, *, expected_range_id: int) -> None:
        updated = info.updated_time or now_us()
        result = await self._db.execute(
            self._update,
            (info.range_id, info.owner, dict(info.ack_levels), updated, info.shard_id, expected_range_id),
        )
        if not applied(result):
            actual = result[0].get("range_id") if result else None
            raise ShardOwnershipLostError(info.shard_id, expected_range_id, actual)
