"""Builders and the abstract base shared by the contract suite's test groups (see ``contract.py``)."""

from __future__ import annotations

import abc
import random
import uuid

from cadenza.engine.persistence import (
    CreateMode,
    CreateWorkflowRequest,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    HistoryNode,
    NewRun,
    Stores,
    TaskCategory,
    TaskRow,
    WorkflowTasks,
)

ALL = ((-(1 << 62), 0), (1 << 62, 0))
"""A key range covering every task of any category."""


def uid() -> str:
    return str(uuid.uuid4())


def new_shard_id() -> int:
    return random.randint(1_000, 2**31 - 1)


def execution(
    namespace_id: str,
    workflow_id: str,
    run_id: str | None = None,
    *,
    db_version: int = 1,
    state: ExecutionState = ExecutionState.RUNNING,
    status: ExecutionStatus = ExecutionStatus.RUNNING,
    last_write_version: int = 0,
    next_event_id: int = 2,
    data: bytes = b"state",
) -> ExecutionRow:
    run_id = run_id or uid()
    return ExecutionRow(
        namespace_id=namespace_id,
        workflow_id=workflow_id,
        run_id=run_id,
        state=state,
        status=status,
        next_event_id=next_event_id,
        db_version=db_version,
        last_write_version=last_write_version,
        start_request_id=f"req-{run_id}",
        data=data,
    )


def first_batch(ex: ExecutionRow) -> list[HistoryAppend]:
    """A run's first history batch: tree id = run id, branch id = run id."""
    return [HistoryAppend(ex.run_id, ex.run_id, HistoryNode(1, 1, b"events-1", 1), is_new_branch=True)]


def new_run(
    ex: ExecutionRow,
    *,
    mode: CreateMode = CreateMode.BRAND_NEW,
    previous_run_id: str = "",
    previous_last_write_version: int = 0,
    tasks: WorkflowTasks | None = None,
) -> NewRun:
    return NewRun(
        ex, first_batch(ex), tasks or WorkflowTasks(), mode, previous_run_id, previous_last_write_version
    )


def closed(ex: ExecutionRow, *, db_version: int) -> ExecutionRow:
    return execution(
        ex.namespace_id,
        ex.workflow_id,
        ex.run_id,
        db_version=db_version,
        state=ExecutionState.COMPLETED,
        status=ExecutionStatus.COMPLETED,
        last_write_version=ex.last_write_version,
        next_event_id=ex.next_event_id + 1,
        data=b"closed",
    )


class ContractBase(abc.ABC):
    """Helpers shared by the contract's test groups."""

    @abc.abstractmethod
    async def make_stores(self) -> Stores:
        """Fresh, open stores; the suite closes them after each test."""

    async def shard(self, stores: Stores) -> tuple[int, int]:
        shard_id = new_shard_id()
        info = await stores.shards.acquire_shard(shard_id, "host-a")
        return shard_id, info.range_id

    async def start(
        self, stores: Stores, shard_id: int, range_id: int, ex: ExecutionRow, **kw: object
    ) -> None:
        await stores.executions.create_workflow_execution(
            CreateWorkflowRequest(shard_id, range_id, new_run(ex, **kw))  # type: ignore[arg-type]
        )

    async def nodes(self, stores: Stores, tree_id: str, branch_id: str) -> list[HistoryNode]:
        out, _ = await stores.history.read_history_branch(
            tree_id, branch_id, min_node_id=1, max_node_id=1 << 40, page_size=1000
        )
        return out

    async def tasks(self, stores: Stores, shard_id: int, category: TaskCategory) -> list[TaskRow]:
        return await stores.executions.get_tasks(
            shard_id, category, min_key=ALL[0], max_key=ALL[1], batch_size=1000
        )
