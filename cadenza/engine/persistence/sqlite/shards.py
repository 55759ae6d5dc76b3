"""Shard rows and the range_id fence every execution write checks."""

from __future__ import annotations

import json
import sqlite3

from ..errors import EntityNotFoundError, ShardOwnershipLostError
from ..protocols import ShardInfo
from .db import Database


def check_range_id(conn: sqlite3.Connection, shard_id: int, range_id: int) -> None:
    """Fences a write: runs on the writer thread inside the write's own transaction (BEGIN IMMEDIATE
    holds the write lock), so no acquire can slip in between this check and the write."""
    row = conn.execute("SELECT range_id FROM shards WHERE shard_id = ?", (shard_id,)).fetchone()
    actual = row[0] if row else None
    if actual != range_id:
        raise ShardOwnershipLostError(shard_id, range_id, actual)


def _row_to_info(row: tuple[int, int, str, str, int]) -> ShardInfo:
    return ShardInfo(
        shard_id=row[0], range_id=row[1], owner=row[2], ack_levels=json.loads(row[3]), updated_time=row[4]
    )


_SELECT = "SELECT shard_id, range_id, owner, ack_levels, updated_time FROM shards WHERE shard_id = ?"


class SqliteShardStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def acquire_shard(self, shard_id: int, owner: str) -> ShardInfo:
        now = self._db.clock()

        def txn(conn: sqlite3.Connection) -> ShardInfo:
            # Read-then-bump is safe: the writer transaction is serial (BEGIN IMMEDIATE).
            row = conn.execute(_SELECT, (shard_id,)).fetchone()
            if row is None:
                info = ShardInfo(shard_id=shard_id, range_id=1, owner=owner, updated_time=now)
                conn.execute(
                    "INSERT INTO shards (shard_id, range_id, owner, ack_levels, updated_time) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (shard_id, info.range_id, owner, json.dumps(info.ack_levels), now),
                )
                return info
            info = _row_to_info(row)
            info.range_id += 1
            info.owner = owner
            info.updated_time = now
            conn.execute(
                "UPDATE shards SET range_id = ?, owner = ?, updated_time = ? WHERE shard_id = ?",
                (info.range_id, owner, now, shard_id),
            )
            return info

        return await self._db.write(txn)

    async def get_shard(self, shard_id: int) -> ShardInfo:
        def query(conn: sqlite3.Connection) -> ShardInfo:
            row = conn.execute(_SELECT, (shard_id,)).fetchone()
            if row is None:
                raise EntityNotFoundError(f"shard {shard_id} not found")
            return _row_to_info(row)

        return await self._db.read(query)

    async def update_shard(self, info: ShardInfo, *, expected_range_id: int) -> None:
        updated = info.updated_time or self._db.clock()
        ack_levels = json.dumps(info.ack_levels, sort_keys=True)

        def txn(conn: sqlite3.Connection) -> None:
            check_range_id(conn, info.shard_id, expected_range_id)
            conn.execute(
                "UPDATE shards SET range_id = ?, owner = ?, ack_levels = ?, updated_time = ? "
                "WHERE shard_id = ?",
                (info.range_id, info.owner, ack_levels, updated, info.shard_id),
            )

        await self._db.write(txn)
