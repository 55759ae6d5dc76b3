"""The driver layer: connecting, prepared statements, the asyncio bridge and error translation.

cassandra-driver runs its own I/O thread (libev when available) and reports each request through a
``ResponseFuture`` callback on that thread. ``CassandraSession.execute`` turns one into an asyncio
future: the callbacks hand the rows (or the error) to the caller's event loop with
``call_soon_threadsafe``, so a coroutine awaiting Cassandra never blocks its loop and many requests
are in flight at once. Paged results are gathered page by page inside the callbacks.

Every driver exception becomes a contract error in ``translate_error``, and nowhere else.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, dict_factory

from ..errors import PersistenceError, StoreUnavailableError

Row = dict[str, Any]
Bound = tuple[PreparedStatement, Sequence[Any]]

KEYSPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
REQUEST_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0


def check_keyspace_name(keyspace: str) -> str:
    """Keyspace names are interpolated into CQL, so only Cassandra's own identifier syntax passes."""
    if not KEYSPACE_RE.match(keyspace):
        raise ValueError(
            f"invalid keyspace name {keyspace!r}: use letters, digits and '_', starting with a letter, "
            "at most 48 characters"
        )
    return keyspace


def consistency_level(name: str) -> int:
    try:
        return int(ConsistencyLevel.name_to_value[name.upper()])
    except KeyError:
        choices = ", ".join(sorted(ConsistencyLevel.name_to_value))
        raise ValueError(f"unknown consistency level {name!r}; one of {choices}") from None


def describe_hosts(hosts: Iterable[str], port: int) -> str:
    return ", ".join(f"{h}:{port}" for h in hosts)


def translate_error(exc: BaseException, where: str) -> BaseException:
    """The one place where driver exceptions become contract errors.

    Timeouts and unavailability become ``StoreUnavailableError``: a write that timed out may or may
    not have been applied (for a lightweight transaction too), and the engine treats it so.
    """
    if isinstance(exc, PersistenceError):
        return exc
    if isinstance(exc, NoHostAvailable):
        reasons = "; ".join(f"{host}: {err}" for host, err in list(exc.errors.items())[:3])
        return StoreUnavailableError(
            f"cannot reach Cassandra at {where}" + (f" ({reasons})" if reasons else "")
        )
    if isinstance(exc, WriteTimeout | ReadTimeout | OperationTimedOut):
        return StoreUnavailableError(f"Cassandra at {where} timed out: {exc}")
    if isinstance(exc, Unavailable):
        return StoreUnavailableError(f"Cassandra at {where} has too few replicas up: {exc}")
    if isinstance(exc, CoordinationFailure | ConnectionException | OSError):
        return StoreUnavailableError(f"Cassandra at {where} failed the request: {exc}")
    if isinstance(exc, InvalidRequest):
        return PersistenceError(f"Cassandra at {where} rejected the request: {exc}")
    return exc


def _deliver(future: asyncio.Future[list[Row]], rows: list[Row] | None, exc: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled; nobody wants the answer
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(rows or [])


class CassandraSession:
    """A driver session plus the keyspace Cadenza's tables live in.

    Statements name their tables with the keyspace (``{ks}.executions``), so one driver session can
    serve several keyspaces side by side (``cadenza_active`` and ``cadenza_standby`` in one process).
    """

    def __init__(
        self, cluster: Cluster | None, session: Session, keyspace: str, where: str, *, owns_cluster: bool
    ) -> None:
        self.cluster = cluster
        self.session = session
        self.keyspace = check_keyspace_name(keyspace)
        self.where = where
        """The contact points, for messages: "127.0.0.1:9042, 10.0.0.2:9042"."""
        self._owns_cluster = owns_cluster
        self._prepared: dict[str, PreparedStatement] = {}

    @classmethod
    def connect(
        cls,
        hosts: Sequence[str],
        port: int,
        keyspace: str,
        *,
        user: str | None = None,
        password: str | None = None,
        consistency: str = "LOCAL_QUORUM",
        serial_consistency: str = "LOCAL_SERIAL",
        protocol_version: int | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> CassandraSession:
        """Connects (blocking); raises ``StoreUnavailableError`` naming the hosts when none answers."""
        check_keyspace_name(keyspace)
        where = describe_hosts(hosts, port)
        profile = ExecutionProfile(
            # Token-aware: each request goes straight to a replica of its partition (the shard's, for
            # execution writes), saving the coordinator hop; DC-aware keeps traffic in the local DC.
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=consistency_level(consistency),
            serial_consistency_level=consistency_level(serial_consistency),
            request_timeout=request_timeout,
            row_factory=dict_factory,
        )
        kwargs: dict[str, Any] = {}
        if protocol_version is not None:
            kwargs["protocol_version"] = protocol_version
        if user is not None:
            kwargs["auth_provider"] = PlainTextAuthProvider(username=user, password=password or "")
        try:
            cluster = Cluster(
                contact_points=list(hosts),
                port=port,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                connect_timeout=connect_timeout,
                control_connection_timeout=connect_timeout,
                # The driver's default backs off to 10 minutes: after a node restart the engine would
                # wait that long to notice. Cap the back-off so service resumes within seconds.
                reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
                **kwargs,
            )
        except Exception as exc:  # e.g. UnresolvableContactPoints: no host name resolves
            raise StoreUnavailableError(
                f"cannot reach Cassandra at {where}: {type(exc).__name__}: {exc or 'no host resolves'}"
            ) from None
        try:
            session = cluster.connect()
        except Exception as exc:
            cluster.shutdown()
            # ``from None``: the driver's internals add nothing the message does not already say.
            raise translate_error(exc, where) from None
        return cls(cluster, session, keyspace, where, owns_cluster=True)

    def with_keyspace(self, keyspace: str) -> CassandraSession:
        """Another keyspace over the same connections (closing it leaves the connections open)."""
        return CassandraSession(self.cluster, self.session, keyspace, self.where, owns_cluster=False)

    def prepare(self, cql: str) -> PreparedStatement:
        """Prepares ``cql`` (``{ks}`` is replaced by the keyspace) once per session; blocking."""
        text = cql.replace("{ks}", self.keyspace)
        stmt = self._prepared.get(text)
        if stmt is None:
            try:
                stmt = self.session.prepare(text)
            except Exception as exc:
                raise translate_error(exc, self.where) from None
            self._prepared[text] = stmt
        return stmt

    async def execute(
        self, stmt: PreparedStatement | str, params: Sequence[Any] = (), *, fetch_size: int | None = None
    ) -> list[Row]:
        """Runs one statement; returns every row of every page."""
        bound: Any = stmt.bind(params) if isinstance(stmt, PreparedStatement) else stmt
        if fetch_size is not None:
            bound.fetch_size = fetch_size
        return await self._run(bound)

    async def execute_batch(self, statements: Sequence[Bound]) -> list[Row]:
        """Runs one batch. Cadenza's batches stay inside one partition: Cassandra applies those
        atomically and in isolation without the batch log, so they are UNLOGGED."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for stmt, params in statements:
            batch.add(stmt, params)
        return await self._run(batch)

    async def _run(self, statement: Any) -> list[Row]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Row]] = loop.create_future()
        try:
            response = self.session.execute_async(statement)
        except Exception as exc:
            raise translate_error(exc, self.where) from None
        rows: list[Row] = []

        def on_rows(page: list[Row] | None) -> None:
            rows.extend(page or ())
            if response.has_more_pages:
                response.start_fetching_next_page()  # calls on_rows again with the next page
                return
            loop.call_soon_threadsafe(_deliver, future, rows, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_deliver, future, None, exc)

        response.add_callbacks(on_rows, on_error)
        try:
            return await future
        except Exception as exc:
            raise translate_error(exc, self.where) from exc

    async def close(self) -> None:
        if self._owns_cluster and self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            # shutdown() joins the driver's threads: keep it off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)

    def close_blocking(self) -> None:
        if self._owns_cluster and self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.shutdown()


def applied(rows: list[Row]) -> bool:
    """Whether a lightweight transaction (or conditional batch) was applied."""
    return bool(rows) and bool(rows[0].get("[applied]"))
