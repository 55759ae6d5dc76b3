"""Writes through a file-backed SQLite store and prints one line per acknowledged write.

Run by ``test_sqlite_durability.py``, which SIGKILLs this process mid-stream and then checks that every
acknowledged write is in the file. Output lines: ``ready`` then ``ack <workflow_id> <db_version>``.
"""

from __future__ import annotations

import asyncio
import sys

from cadenza.engine.persistence import (
    CreateWorkflowRequest,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    HistoryNode,
    NewRun,
    Stores,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
    open_sqlite_stores,
)

WORKERS = 16
NAMESPACE = "durability"


def _row(workflow_id: str, db_version: int) -> ExecutionRow:
    return ExecutionRow(
        namespace_id=NAMESPACE,
        workflow_id=workflow_id,
        run_id=f"run-{workflow_id}",
        state=ExecutionState.RUNNING,
        status=ExecutionStatus.RUNNING,
        next_event_id=db_version + 1,
        db_version=db_version,
        last_write_version=0,
        start_request_id=f"req-{workflow_id}",
        data=b"x" * 512,
    )


def _ack(workflow_id: str, db_version: int) -> None:
    sys.stdout.write(f"ack {workflow_id} {db_version}\n")
    sys.stdout.flush()


async def _worker(s: Stores, worker: int, range_id: int, ids: list[int]) -> None:
    for i in range(1_000_000):
        wf = f"wf-{worker}-{i}"
        run_id = f"run-{wf}"
        task_id = ids[0] = ids[0] + 2
        await s.executions.create_workflow_execution(
            CreateWorkflowRequest(
                1,
                range_id,
                NewRun(
                    _row(wf, 1),
                    [HistoryAppend(run_id, run_id, HistoryNode(1, 1, b"e" * 512, 1), is_new_branch=True)],
                    WorkflowTasks(transfer=[TaskRow(task_id, b"t")]),
                ),
            )
        )
        _ack(wf, 1)
        await s.executions.update_workflow_execution(
            UpdateWorkflowRequest(
                1,
                range_id,
                _row(wf, 2),
                1,
                [HistoryAppend(run_id, run_id, HistoryNode(2, 2, b"e" * 512, 1))],
                WorkflowTasks(transfer=[TaskRow(task_id + 1, b"t")]),
            )
        )
        _ack(wf, 2)


async def main(path: str) -> None:
    stores = open_sqlite_stores(path)
    info = await stores.shards.acquire_shard(1, "durability-writer")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    ids = [0]  # one shared task-id allocator; the event loop is single threaded
    await asyncio.gather(*(_worker(stores, w, info.range_id, ids) for w in range(WORKERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
