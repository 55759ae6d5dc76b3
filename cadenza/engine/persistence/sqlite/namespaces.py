"""Namespace rows, unique by id and by name, updated under a notification-version condition."""

from __future__ import annotations

import sqlite3

from ..errors import AlreadyExistsError, ConditionFailedError, EntityNotFoundError
from ..protocols import NamespaceRow
from .db import Database, decode_token, encode_token

_COLUMNS = "id, name, data, is_global, notification_version"


def _row_to_namespace(r: tuple) -> NamespaceRow:  # type: ignore[type-arg]
    return NamespaceRow(id=r[0], name=r[1], data=r[2], is_global=bool(r[3]), notification_version=r[4])


class SqliteNamespaceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_namespace(self, row: NamespaceRow) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            taken = conn.execute(
                "SELECT id, name FROM namespaces WHERE id = ? OR name = ?", (row.id, row.name)
            ).fetchone()
            if taken is not None:
                what = f"id {row.id}" if taken[0] == row.id else f"name {row.name}"
                raise AlreadyExistsError(f"namespace {what} already exists")
            conn.execute(
                f"INSERT INTO namespaces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (row.id, row.name, row.data, int(row.is_global), row.notification_version),
            )

        await self._db.write(txn)

    async def get_namespace(self, *, id: str | None = None, name: str | None = None) -> NamespaceRow:
        if (id is None) == (name is None):
            raise ValueError("get_namespace takes exactly one of id or name")
        column, value = ("id", id) if id is not None else ("name", name)

        def query(conn: sqlite3.Connection) -> NamespaceRow:
            r = conn.execute(f"SELECT {_COLUMNS} FROM namespaces WHERE {column} = ?", (value,)).fetchone()
            if r is None:
                raise EntityNotFoundError(f"namespace {column} {value} not found")
            return _row_to_namespace(r)

        return await self._db.read(query)

    async def update_namespace(self, row: NamespaceRow, *, expected_notification_version: int) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            r = conn.execute("SELECT notification_version FROM namespaces WHERE id = ?", (row.id,)).fetchone()
            if r is None:
                raise EntityNotFoundError(f"namespace id {row.id} not found")
            if r[0] != expected_notification_version:
                raise ConditionFailedError(
                    f"namespace {row.id}: notification version is {r[0]}, "
                    f"expected {expected_notification_version}"
                )
            # A rename onto another namespace's name violates UNIQUE(name) -> AlreadyExistsError.
            conn.execute(
                "UPDATE namespaces SET name = ?, data = ?, is_global = ?, notification_version = ? "
                "WHERE id = ?",
                (row.name, row.data, int(row.is_global), row.notification_version, row.id),
            )

        await self._db.write(txn)

    async def list_namespaces(
        self, page_size: int, token: bytes | None = None
    ) -> tuple[list[NamespaceRow], bytes | None]:
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        after = decode_token(token)

        def query(conn: sqlite3.Connection) -> tuple[list[NamespaceRow], bytes | None]:
            rows = [
                _row_to_namespace(r)
                for r in conn.execute(
                    f"SELECT {_COLUMNS} FROM namespaces WHERE id > ? ORDER BY id LIMIT ?",
                    (after or "", page_size + 1),
                )
            ]
            if len(rows) <= page_size:
                return rows, None
            return rows[:page_size], encode_token(rows[page_size - 1].id)

        return await self._db.read(query)
