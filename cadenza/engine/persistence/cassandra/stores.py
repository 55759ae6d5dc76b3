"""``open_cassandra_stores``: Cadenza's production backend on Apache Cassandra."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..protocols import (
    ExecutionStore,
    HistoryStore,
    MembershipStore,
    NamespaceStore,
    ShardStore,
    TaskQueueStore,
)
from .executions import CassandraExecutionStore
from .history import CassandraHistoryStore, HistoryWriter
from .membership import CassandraMembershipStore
from .namespaces import CassandraNamespaceStore
from .schema import check_schema
from .session import CassandraSession
from .shards import CassandraShardStore
from .task_queues import CassandraTaskQueueStore


class CassandraStores:
    """All stores over one keyspace; satisfies the ``Stores`` protocol.

    ``close_session`` says whether ``close()`` also closes the session (False when the session is
    shared, e.g. by several keyspaces or many short-lived store sets in tests)."""

    def __init__(self, db: CassandraSession, *, close_session: bool = True) -> None:
        self.db = db
        self._close_session = close_session
        history_writer = HistoryWriter(db)
        self._executions = CassandraExecutionStore(db, history_writer)
        # Annotated with the protocol types: the attributes of ``Stores`` are invariant, and this
        # makes mypy check each store against its protocol here.
        self.shards: ShardStore = CassandraShardStore(db)
        self.executions: ExecutionStore = self._executions
        self.history: HistoryStore = CassandraHistoryStore(db, history_writer)
        self.task_queues: TaskQueueStore = CassandraTaskQueueStore(db)
        self.namespaces: NamespaceStore = CassandraNamespaceStore(db)
        self.membership: MembershipStore = CassandraMembershipStore(db)

    @property
    def keyspace(self) -> str:
        return self.db.keyspace

    def group_stats(self) -> tuple[int, int]:
        """(batches, requests) of execution writes: requests / batches is the group-commit factor."""
        return self._executions.group_stats()

    async def close(self) -> None:
        if self._close_session:
            await self.db.close()


def open_cassandra_stores(
    hosts: Sequence[str] | str,
    port: int = 9042,
    keyspace: str = "cadenza",
    *,
    user: str | None = None,
    password: str | None = None,
    consistency: str = "LOCAL_QUORUM",
    serial_consistency: str = "LOCAL_SERIAL",
    protocol_version: int | None = None,
) -> CassandraStores:
    """Connects to Cassandra and opens the stores of ``keyspace`` (blocking: call it before the event
    loop runs, or use ``open_cassandra_stores_async``).

    ``consistency`` applies to reads and writes (LOCAL_QUORUM in production, ONE for a single test
    node); ``serial_consistency`` to the Paxos phase of lightweight transactions (LOCAL_SERIAL, or
    SERIAL). Raises ``StoreUnavailableError`` naming the hosts when none answers, and
    ``CassandraSchemaError`` naming the command to run when the keyspace lacks the right schema.
    """
    host_list = [h.strip() for h in hosts.split(",")] if isinstance(hosts, str) else list(hosts)
    db = CassandraSession.connect(
        host_list,
        port,
        keyspace,
        user=user,
        password=password,
        consistency=consistency,
        serial_consistency=serial_consistency,
        protocol_version=protocol_version,
    )
    try:
        check_schema(db, host_list, port)
        return CassandraStores(db)
    except BaseException:
        db.close_blocking()
        raise


async def open_cassandra_stores_async(
    hosts: Sequence[str] | str, port: int = 9042, keyspace: str = "cadenza", **kwargs: object
) -> CassandraStores:
    """``open_cassandra_stores`` on a worker thread, so the event loop keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None,
        lambda: open_cassandra_stores(hosts, port, keyspace, **kwargs),  # type: ignore[arg-type]
    )
