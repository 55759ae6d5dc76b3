"""Throughput of the SQLite store under concurrency: create+update transactions per second.

Each "workflow" is one create (a ~1 KB row, one ~1 KB history node, 2 transfer tasks) followed by 4
updates (each appending one ~1 KB history node and one task). ``--concurrency`` asyncio tasks run
workflows back to back on one file database; the writer thread groups their transactions.

    .venv/bin/python bench/sqlite_store_bench.py --workflows 2000 --concurrency 200
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
import uuid
from pathlib import Path

from cadenza.engine.persistence import (
    CreateWorkflowRequest,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    HistoryNode,
    NewRun,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
    open_sqlite_stores,
)
from cadenza.engine.persistence.sqlite import SqliteStores

UPDATES = 4
BLOB = os.urandom(1024)
SHARD = 1


def _row(workflow_id: str, run_id: str, db_version: int) -> ExecutionRow:
    return ExecutionRow(
        namespace_id="bench",
        workflow_id=workflow_id,
        run_id=run_id,
        state=ExecutionState.RUNNING,
        status=ExecutionStatus.RUNNING,
        next_event_id=db_version * 3,
        db_version=db_version,
        last_write_version=0,
        start_request_id=run_id,
        data=BLOB,
    )


async def _workflow(stores: SqliteStores, range_id: int, task_ids: itertools.count[int]) -> None:
    wf, run = str(uuid.uuid4()), str(uuid.uuid4())
    await stores.executions.create_workflow_execution(
        CreateWorkflowRequest(
            SHARD,
            range_id,
            NewRun(
                _row(wf, run, 1),
                [HistoryAppend(run, run, HistoryNode(1, 1, BLOB, 3), is_new_branch=True)],
                WorkflowTasks(
                    transfer=[TaskRow(next(task_ids), b"t" * 64), TaskRow(next(task_ids), b"t" * 64)]
                ),
            ),
        )
    )
    for version in range(2, UPDATES + 2):
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(
                SHARD,
                range_id,
                _row(wf, run, version),
                version - 1,
                [HistoryAppend(run, run, HistoryNode(version * 3 - 3, version, BLOB, 3))],
                WorkflowTasks(transfer=[TaskRow(next(task_ids), b"t" * 64)]),
            )
        )


async def bench(path: Path, workflows: int, concurrency: int, synchronous: str) -> None:
    stores = open_sqlite_stores(path, synchronous=synchronous)  # type: ignore[arg-type]
    try:
        info = await stores.shards.acquire_shard(SHARD, "bench")
        task_ids = itertools.count(1)
        remaining = iter(range(workflows))

        async def worker() -> None:
            for _ in remaining:
                await _workflow(stores, info.range_id, task_ids)

        groups0, requests0 = stores.stats.groups, stores.stats.requests
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        groups = stores.stats.groups - groups0
        requests = stores.stats.requests - requests0
        txns = workflows * (1 + UPDATES)
        print(
            f"synchronous={synchronous} concurrency={concurrency} workflows={workflows} "
            f"transactions={txns} elapsed={elapsed:.2f}s"
        )
        print(f"throughput: {txns / elapsed:,.0f} txn/s ({workflows / elapsed:,.0f} workflows/s)")
        print(f"group commit: {groups} commits, average group size {requests / max(groups, 1):.1f}")
    finally:
        await stores.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the database file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        asyncio.run(bench(Path(tmp) / "bench.db", args.workflows, args.concurrency, args.synchronous))


if __name__ == "__main__":
    main()
