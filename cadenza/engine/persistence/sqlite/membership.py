"""Cluster membership rows: one per role of a server process, moved on by its heartbeats."""

from __future__ import annotations

import sqlite3

from ..protocols import ROLES, ClusterMember, check_member
from .db import Database

_COLUMNS = "role, host_id, rpc_address, session_start, last_heartbeat, expiry"


class SqliteMembershipStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_member(self, member: ClusterMember) -> None:
        check_member(member)
        m = member

        def txn(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO cluster_membership ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (m.role, m.host_id, m.rpc_address, m.session_start, m.last_heartbeat, m.expiry),
            )

        await self._db.write(txn)

    async def list_members(self, *, now_us: int, role: str | None = None) -> list[ClusterMember]:
        def query(conn: sqlite3.Connection) -> list[ClusterMember]:
            if role is None:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM cluster_membership WHERE expiry > ?", (now_us,)
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM cluster_membership WHERE role = ? AND expiry > ?",
                    (role, now_us),
                ).fetchall()
            return [ClusterMember(*r) for r in rows]

        members = await self._db.read(query)
        members.sort(key=lambda m: (ROLES.index(m.role) if m.role in ROLES else len(ROLES), m.host_id))
        return members

    async def remove_member(self, role: str, host_id: str) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM cluster_membership WHERE role = ? AND host_id = ?", (role, host_id))

        await self._db.write(txn)

    async def prune_members(self, now_us: int) -> int:
        def txn(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM cluster_membership WHERE expiry <= ?", (now_us,)).rowcount

        result: int = await self._db.write(txn)
        return result
