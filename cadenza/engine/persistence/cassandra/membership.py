"""Cluster membership in the ``cluster_membership`` table, one partition as the anchors keep it.

Each heartbeat rewrites the row with a TTL a minute past its expiry, so a process that died leaves
no row behind for long; until the TTL removes it, readers skip it by its ``expiry`` (schema
version 2), which is what decides membership (a clock compared with the writer's expiry, not
Cassandra's own idea of the time).
"""

from __future__ import annotations

import math

from ..protocols import ROLES, ClusterMember, check_member
from .session import CassandraSession

ROW_TTL_MARGIN_S = 60
"""How long past its expiry a row stays (then Cassandra drops it)."""

_ROLE_IDS = {role: n for n, role in enumerate(ROLES, start=1)}
_ROLE_NAMES = {n: role for role, n in _ROLE_IDS.items()}


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, 0
    return host, int(port)


def _join_address(host: str, port: int) -> str:
    return f"{host}:{port}" if port else host


class CassandraMembershipStore:
    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        self._upsert = db.prepare(
            "INSERT INTO {ks}.cluster_membership (membership_partition, role, host_id, rpc_address, "
            "rpc_port, session_start, last_heartbeat, expiry) VALUES (0, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
        )
        self._list = db.prepare(
            "SELECT role, host_id, rpc_address, rpc_port, session_start, last_heartbeat, expiry "
            "FROM {ks}.cluster_membership WHERE membership_partition = 0"
        )
        self._remove = db.prepare(
            "DELETE FROM {ks}.cluster_membership WHERE membership_partition = 0 AND role = ? AND host_id = ?"
        )

    async def upsert_member(self, member: ClusterMember) -> None:
        check_member(member)
        m = member
        host, port = _split_address(m.rpc_address)
        ttl = math.ceil((m.expiry - m.last_heartbeat) / 1e6) + ROW_TTL_MARGIN_S
        await self._db.execute(
            self._upsert,
            (_ROLE_IDS[m.role], m.host_id, host, port, m.session_start, m.last_heartbeat, m.expiry, ttl),
        )

    async def list_members(self, *, now_us: int, role: str | None = None) -> list[ClusterMember]:
        rows = await self._db.execute(self._list)
        members = [
            ClusterMember(
                _ROLE_NAMES.get(r["role"], str(r["role"])),
                r["host_id"],
                _join_address(r["rpc_address"] or "", r["rpc_port"] or 0),
                r["session_start"] or 0,
                r["last_heartbeat"] or 0,
                r["expiry"] or 0,
            )
            for r in rows
        ]
        # Rows come ordered by (role, host id) within the partition: the order list_members promises.
        return [m for m in members if m.expiry > now_us and (role is None or m.role == role)]

    async def remove_member(self, role: str, host_id: str) -> None:
        if role not in _ROLE_IDS:
            return
        await self._db.execute(self._remove, (_ROLE_IDS[role], host_id))

    async def prune_members(self, now_us: int) -> int:
        return 0  # rows expire by their TTL
