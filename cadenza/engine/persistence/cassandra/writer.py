"""Group commit of execution writes: one conditional batch per shard partition at a time.

Why: every execution write is a lightweight transaction (Paxos) on its shard's partition. Paxos
rounds on one partition that overlap make each other retry (contention), so many concurrent writers
on one shard get slower, not faster. A ``ShardWriter`` keeps exactly one batch in flight per shard
from this process and folds every write that queued up meanwhile into the next batch: one Paxos round
then commits many workflow mutations, all fenced by the same ``IF range_id = ?`` on the shard row.

A request whose own condition fails must not take the others down with it. When a batch is not
applied, Cassandra returns the current values of the rows the conditions named; each request checks
its own conditions against them: those that failed get their contract error, the rest go again in the
next batch. When the returned rows explain nothing (a condition on a row that vanished meanwhile),
the requests are retried one by one so each gets its own answer.

Two requests on the same workflow id never share a batch (their conditions would be on the same
rows); the later one waits for the next batch, keeping each workflow's writes in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cassandra.query import PreparedStatement

from ..errors import ConditionFailedError, ShardOwnershipLostError
from .session import Bound, CassandraSession, Row, applied

RowKey = tuple[int, str, str, str]
"""(type, namespace_id, workflow_id, run_id) of a row in the shard partition."""
Check = Callable[[dict[RowKey, Row]], Awaitable[BaseException | None]]

MAX_GROUP = 32
"""Most requests in one batch."""
MAX_GROUP_BYTES = 40_000
"""Cassandra rejects batches over ``batch_size_fail_threshold`` (50 KiB by default)."""


@dataclass(eq=False, slots=True)
class Txn:
    """One request's statements (without the fence), the workflows it touches, and how to tell,
    from the rows of a failed batch, whether its own conditions failed."""

    range_id: int
    statements: list[Bound]
    workflows: frozenset[tuple[str, str]]
    check: Check
    size: int
    future: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def resolve(self, exc: BaseException | None) -> None:
        if self.future.done():
            return
        if exc is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(exc)


def row_key(row: Row) -> RowKey:
    return (
        row.get("type", -1),
        row.get("namespace_id", ""),
        row.get("workflow_id", ""),
        row.get("run_id", ""),
    )


class ShardWriter:
    def __init__(self, db: CassandraSession, fence: PreparedStatement, shard_id: int) -> None:
        self._db = db
        self._fence = fence
        self.shard_id = shard_id
        self._queue: list[Txn] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0

    async def submit(self, txn: Txn) -> None:
        self._queue.append(txn)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await txn.future

    def _take(self) -> list[Txn]:
        first = self._queue[0]
        group: list[Txn] = []
        size = 0
        touched: set[tuple[str, str]] = set()
        rest: list[Txn] = []
        for txn in self._queue:
            fits = (
                len(group) < MAX_GROUP
                and txn.range_id == first.range_id
                and (not group or size + txn.size <= MAX_GROUP_BYTES)
                and touched.isdisjoint(txn.workflows)
            )
            if fits:
                group.append(txn)
                size += txn.size
            else:
                rest.append(txn)
            # A skipped request blocks its workflows too, so a later write never overtakes it.
            touched |= txn.workflows
        self._queue = rest
        return group

    async def _drain(self) -> None:
        while self._queue:
            group = self._take()
            try:
                await self._commit(group)
            except BaseException as exc:  # never leave a caller waiting
                for txn in group:
                    txn.resolve(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _commit(self, group: list[Txn]) -> None:
        pending = group
        range_id = group[0].range_id
        while pending:
            statements: list[Bound] = [(self._fence, (range_id, self.shard_id, range_id))]
            for txn in pending:
                statements.extend(txn.statements)
            self.batches += 1
            self.requests += len(pending)
            try:
                rows = await self._db.execute_batch(statements)
            except Exception as exc:
                # Unknown outcome (timeout) or unreachable: every request of the batch shares it.
                for txn in pending:
                    txn.resolve(exc)
                return
            if applied(rows):
                for txn in pending:
                    txn.resolve(None)
                return
            by_key = {row_key(r): r for r in rows}
            shard = by_key.get((0, "", "", ""))
            actual = shard.get("range_id") if shard else None
            if actual != range_id:
                lost = ShardOwnershipLostError(self.shard_id, range_id, actual)
                for txn in pending:
                    txn.resolve(lost)
                return
            still: list[Txn] = []
            for txn in pending:
                err = await txn.check(by_key)
                if err is None:
                    still.append(txn)
                else:
                    txn.resolve(err)
            if len(still) == len(pending):
                if len(pending) == 1:
                    pending[0].resolve(
                        ConditionFailedError(
                            f"shard {self.shard_id}: conditional write not applied "
                            "(rows changed concurrently)"
                        )
                    )
                    return
                for txn in pending:  # nothing explained the failure: give each its own answer
                    await self._commit([txn])
                return
            pending = still
