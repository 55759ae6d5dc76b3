"""Namespaces, unique by id and by name.

All namespace rows share one partition of ``namespaces`` (keyed by name) with a metadata row (name
'') that counts changes to the set. A create is: claim the id in ``namespaces_by_id`` with
``IF NOT EXISTS`` (the id is unique), then ONE conditional batch on the namespaces partition that
inserts the name row ``IF NOT EXISTS`` (the name is unique) and bumps the metadata row's
notification version ``IF`` it is still the value read. If the name is taken, the id claim is undone.
An update is the same kind of batch, conditioned on the row's own notification version.
"""

from __future__ import annotations

from ..errors import AlreadyExistsError, ConditionFailedError, EntityNotFoundError, StoreUnavailableError
from ..protocols import NamespaceRow
from .session import Bound, CassandraSession, Row, applied

_COLS = "name, id, data, is_global, notification_version"
_ATTEMPTS = 20
_METADATA = ""


def _to_row(r: Row) -> NamespaceRow:
    return NamespaceRow(
        id=r["id"],
        name=r["name"],
        data=r["data"] or b"",
        is_global=bool(r["is_global"]),
        notification_version=r["notification_version"] or 0,
    )


class CassandraNamespaceStore:
    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        self._claim_id = db.prepare(
            "INSERT INTO {ks}.namespaces_by_id (id, name) VALUES (?, ?) IF NOT EXISTS"
        )
        self._release_id = db.prepare("DELETE FROM {ks}.namespaces_by_id WHERE id = ? IF name = ?")
        self._set_id_name = db.prepare("UPDATE {ks}.namespaces_by_id SET name = ? WHERE id = ?")
        self._get_id = db.prepare("SELECT name FROM {ks}.namespaces_by_id WHERE id = ?")
        self._get_name = db.prepare(
            f"SELECT {_COLS} FROM {{ks}}.namespaces WHERE namespaces_partition = 0 AND name = ?"
        )
        self._metadata = db.prepare(
            "SELECT notification_version FROM {ks}.namespaces WHERE namespaces_partition = 0 AND name = ''"
        )
        self._bump_metadata = db.prepare(
            "UPDATE {ks}.namespaces SET notification_version = ? "
            "WHERE namespaces_partition = 0 AND name = '' "
            "IF notification_version = ?"
        )
        self._insert = db.prepare(
            f"INSERT INTO {{ks}}.namespaces (namespaces_partition, {_COLS}) VALUES (0, ?, ?, ?, ?, ?) "
            "IF NOT EXISTS"
        )
        self._update = db.prepare(
            "UPDATE {ks}.namespaces SET data = ?, is_global = ?, notification_version = ? "
            "WHERE namespaces_partition = 0 AND name = ? IF id = ? AND notification_version = ?"
        )
        self._delete_renamed = db.prepare(
            "DELETE FROM {ks}.namespaces WHERE namespaces_partition = 0 AND name = ? "
            "IF id = ? AND notification_version = ?"
        )
        self._list = db.prepare(
            f"SELECT {_COLS} FROM {{ks}}.namespaces WHERE namespaces_partition = 0 AND name > ? LIMIT ?"
        )

    async def _metadata_version(self) -> int:
        rows = await self._db.execute(self._metadata)
        return (rows[0].get("notification_version") or 0) if rows else 0

    async def _batch_with_metadata(self, statements: list[Bound]) -> tuple[bool, dict[str, Row]]:
        """Runs ``statements`` plus the metadata bump, retrying while only the metadata moved.
        Returns (applied, rows of the failed answer by name)."""
        version = await self._metadata_version()
        for _ in range(_ATTEMPTS):
            rows = await self._db.execute_batch([*statements, (self._bump_metadata, (version + 1, version))])
            if applied(rows):
                return True, {}
            by_name = {r.get("name", ""): r for r in rows}
            meta = by_name.pop(_METADATA, None)
            current = (meta or {}).get("notification_version") or 0
            if meta is not None and current != version:
                version = current  # only the set's version moved (a concurrent change): go again
                continue
            return False, by_name
        raise StoreUnavailableError(f"namespaces: metadata row too contended after {_ATTEMPTS} attempts")

    async def create_namespace(self, row: NamespaceRow) -> None:
        claim = await self._db.execute(self._claim_id, (row.id, row.name))
        if not applied(claim):
            raise AlreadyExistsError(f"namespace id {row.id} already exists")
        insert: Bound = (
            self._insert,
            (row.name, row.id, row.data, row.is_global, row.notification_version),
        )
        try:
            ok, _ = await self._batch_with_metadata([insert])
        except BaseException:
            await self._db.execute(self._release_id, (row.id, row.name))
            raise
        if not ok:
            await self._db.execute(self._release_id, (row.id, row.name))
            raise AlreadyExistsError(f"namespace name {row.name} already exists")

    async def _by_name(self, name: str) -> NamespaceRow | None:
        rows = await self._db.execute(self._get_name, (name,))
        return _to_row(rows[0]) if rows and rows[0].get("id") else None

    async def get_namespace(self, *, id: str | None = None, name: str | None = None) -> NamespaceRow:
        if (id is None) == (name is None):
            raise ValueError("get_namespace takes exactly one of id or name")
        if name is not None:
            found = await self._by_name(name) if name != _METADATA else None
            if found is None:
                raise EntityNotFoundError(f"namespace name {name} not found")
            return found
        rows = await self._db.execute(self._get_id, (id,))
        found = await self._by_name(rows[0]["name"]) if rows and rows[0].get("name") else None
        if found is None or found.id != id:
            raise EntityNotFoundError(f"namespace id {id} not found")
        return found

    async def update_namespace(self, row: NamespaceRow, *, expected_notification_version: int) -> None:
        stored = await self.get_namespace(id=row.id)
        expected = expected_notification_version
        if stored.name == row.name:
            statements: list[Bound] = [
                (
                    self._update,
                    (row.data, row.is_global, row.notification_version, row.name, row.id, expected),
                )
            ]
        else:
            # A rename moves the row to its new name in the same batch (same partition): both or neither.
            statements = [
                (self._delete_renamed, (stored.name, row.id, expected)),
                (self._insert, (row.name, row.id, row.data, row.is_global, row.notification_version)),
            ]
        ok, rows = await self._batch_with_metadata(statements)
        if ok:
            if stored.name != row.name:
                await self._db.execute(self._set_id_name, (row.name, row.id))
            return
        old = rows.get(stored.name)
        if old is None or old.get("id") != row.id:
            raise EntityNotFoundError(f"namespace id {row.id} not found")
        if old.get("notification_version") != expected:
            raise ConditionFailedError(
                f"namespace {row.id}: notification version is {old.get('notification_version')}, "
                f"expected {expected}"
            )
        if row.name in rows:
            raise AlreadyExistsError(f"namespace name {row.name} already exists")
        raise ConditionFailedError(f"namespace {row.id}: changed concurrently")

    async def list_namespaces(
        self, page_size: int, token: bytes | None = None
    ) -> tuple[list[NamespaceRow], bytes | None]:
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        after = token.decode() if token else _METADATA  # names sort after '', the metadata row
        rows = [_to_row(r) for r in await self._db.execute(self._list, (after, page_size + 1)) if r.get("id")]
        if len(rows) <= page_size:
            return rows, None
        return rows[:page_size], rows[page_size - 1].name.encode()
