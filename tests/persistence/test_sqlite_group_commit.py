"""SQLite-specific behaviour: group commit, schema versioning, open/close."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cadenza.engine.persistence import (
    AlreadyExistsError,
    ConditionFailedError,
    CreateWorkflowRequest,
    ExecutionRow,
    HistoryAppend,
    HistoryNode,
    StoreUnavailableError,
    TaskCategory,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
    open_sqlite_stores,
)
from cadenza.engine.persistence.sqlite import SqliteStores, UnsupportedSchemaError
from cadenza.engine.persistence.sqlite.db import SCHEMA_VERSION, _schema_sql

from .aio import run
from .contract_base import ALL, execution, new_run, uid

N = 200


async def _start_many(stores: SqliteStores, shard_id: int, range_id: int) -> list[ExecutionRow]:
    runs = [execution(uid(), uid()) for _ in range(N)]
    await asyncio.gather(
        *(
            stores.executions.create_workflow_execution(
                CreateWorkflowRequest(shard_id, range_id, new_run(ex))
            )
            for ex in runs
        )
    )
    return runs


def _update(
    shard_id: int, range_id: int, ex: ExecutionRow, expected: int, task_id: int
) -> UpdateWorkflowRequest:
    upd = execution(ex.namespace_id, ex.workflow_id, ex.run_id, db_version=2, data=b"updated")
    return UpdateWorkflowRequest(
        shard_id,
        range_id,
        upd,
        expected,
        [HistoryAppend(ex.run_id, ex.run_id, HistoryNode(2, 2, b"e2", 1))],
        WorkflowTasks(transfer=[TaskRow(task_id, b"t")]),
    )


def test_concurrent_updates_all_commit_in_groups(tmp_path: Path) -> None:
    async def main() -> None:
        stores = open_sqlite_stores(tmp_path / "db.sqlite")
        try:
            info = await stores.shards.acquire_shard(1, "host")
            runs = await _start_many(stores, 1, info.range_id)
            before = (stores.stats.groups, stores.stats.requests)
            await asyncio.gather(
                *(
                    stores.executions.update_workflow_execution(_update(1, info.range_id, ex, 1, i))
                    for i, ex in enumerate(runs)
                )
            )
            groups, requests = stores.stats.groups - before[0], stores.stats.requests - before[1]
            assert requests == N
            assert groups < N, "concurrent writes should share transactions"
            for ex in runs:
                row = await stores.executions.get_workflow_execution(
                    1, ex.namespace_id, ex.workflow_id, ex.run_id
                )
                assert row.db_version == 2 and row.data == b"updated"
            tasks = await stores.executions.get_tasks(
                1, TaskCategory.TRANSFER, min_key=ALL[0], max_key=ALL[1], batch_size=10 * N
            )
            assert [t.task_id for t in tasks] == list(range(N))
        finally:
            await stores.close()

    run(main())


@pytest.mark.parametrize("failure", ["condition", "duplicate-task"])
def test_one_failing_request_fails_alone(tmp_path: Path, failure: str) -> None:
    bad = N // 2

    async def main() -> None:
        stores = open_sqlite_stores(tmp_path / "db.sqlite")
        try:
            info = await stores.shards.acquire_shard(1, "host")
            runs = await _start_many(stores, 1, info.range_id)
            requests = [_update(1, info.range_id, ex, 1, i) for i, ex in enumerate(runs)]
            if failure == "condition":
                requests[bad].expected_db_version = 7
            else:
                requests[bad].tasks.transfer.append(TaskRow(bad, b"dup"))  # same task id twice
            before = stores.stats.groups
            results = await asyncio.gather(
                *(stores.executions.update_workflow_execution(r) for r in requests), return_exceptions=True
            )
            assert stores.stats.groups - before < N
            expected_error = ConditionFailedError if failure == "condition" else AlreadyExistsError
            assert isinstance(results[bad], expected_error)
            assert all(r is None for i, r in enumerate(results) if i != bad)
            for i, ex in enumerate(runs):
                row = await stores.executions.get_workflow_execution(
                    1, ex.namespace_id, ex.workflow_id, ex.run_id
                )
                assert row.db_version == (1 if i == bad else 2)
                nodes, _ = await stores.history.read_history_branch(
                    ex.run_id, ex.run_id, min_node_id=1, max_node_id=100, page_size=10
                )
                assert len(nodes) == (1 if i == bad else 2)
            tasks = await stores.executions.get_tasks(
                1, TaskCategory.TRANSFER, min_key=ALL[0], max_key=ALL[1], batch_size=10 * N
            )
            assert [t.task_id for t in tasks] == [i for i in range(N) if i != bad]
        finally:
            await stores.close()

    run(main())


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"

    async def write() -> None:
        stores = open_sqlite_stores(path)
        await stores.shards.acquire_shard(5, "host")
        await stores.close()

    async def read() -> int:
        stores = open_sqlite_stores(path, synchronous="NORMAL")
        try:
            return (await stores.shards.get_shard(5)).range_id
        finally:
            await stores.close()

    run(write())
    assert run(read()) == 1


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    run(open_sqlite_stores(path).close())
    newer = SCHEMA_VERSION + 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT INTO schema_version (version, applied_at) VALUES ({newer}, 0)")
    with pytest.raises(UnsupportedSchemaError, match=f"version is {newer}"):
        open_sqlite_stores(path)


def test_a_file_of_an_older_schema_version_is_upgraded_in_place(tmp_path: Path) -> None:
    """A version-1 file (written before cluster membership) keeps its rows and gains the table."""
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_schema_sql(1))
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (1, 0)")
        conn.execute(
            "INSERT INTO shards (shard_id, range_id, owner, ack_levels, updated_time) "
            "VALUES (3, 7, 'h', '{}', 0)"
        )

    async def check() -> None:
        stores = open_sqlite_stores(path)
        try:
            assert (await stores.shards.get_shard(3)).range_id == 7
            assert await stores.membership.list_members(now_us=0) == []
        finally:
            await stores.close()

    run(check())
    with sqlite3.connect(path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_invalid_synchronous_mode() -> None:
    with pytest.raises(ValueError):
        open_sqlite_stores(None, synchronous="OFF")  # type: ignore[arg-type]


def test_closed_store_refuses_calls() -> None:
    async def main() -> None:
        stores = open_sqlite_stores(":memory:")
        await stores.close()
        with pytest.raises(StoreUnavailableError):
            await stores.shards.acquire_shard(1, "host")

    run(main())
