"""``open_sqlite_stores``: the embedded default backend."""

from __future__ import annotations

from pathlib import Path

from ..protocols import (
    ExecutionStore,
    HistoryStore,
    MembershipStore,
    NamespaceStore,
    ShardStore,
    TaskQueueStore,
)
from .db import Clock, Database, GroupStats, Synchronous
from .executions import SqliteExecutionStore
from .history import SqliteHistoryStore
from .membership import SqliteMembershipStore
from .namespaces import SqliteNamespaceStore
from .shards import SqliteShardStore
from .task_queues import SqliteTaskQueueStore


class SqliteStores:
    """All stores over one SQLite database; satisfies the ``Stores`` protocol."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Annotated with the protocol types: the attributes of ``Stores`` are invariant, and this
        # makes mypy check each store against its protocol here.
        self.shards: ShardStore = SqliteShardStore(db)
        self.executions: ExecutionStore = SqliteExecutionStore(db)
        self.history: HistoryStore = SqliteHistoryStore(db)
        self.task_queues: TaskQueueStore = SqliteTaskQueueStore(db)
        self.namespaces: NamespaceStore = SqliteNamespaceStore(db)
        self.membership: MembershipStore = SqliteMembershipStore(db)

    @property
    def stats(self) -> GroupStats:
        """Group-commit counters: transactions committed and requests they carried."""
        return self._db.stats

    async def close(self) -> None:
        await self._db.close()


def open_sqlite_stores(
    path: str | Path | None,
    *,
    clock: Clock | None = None,
    synchronous: Synchronous = "FULL",
    readers: int = 2,
) -> SqliteStores:
    """Opens (creating if needed) the database at ``path``; ``":memory:"`` or None for an in-memory one.

    Applies the schema when absent and raises ``UnsupportedSchemaError`` for an unknown version.
    ``clock`` returns microseconds since the epoch (for ``updated_time`` columns).
    """
    return SqliteStores(Database(path, clock=clock, synchronous=synchronous, readers=readers))
