"""Store protocols: the rows and blobs every persistence backend keeps.

The engine encodes (mutable state, events, tasks) once and hands the store opaque ``bytes``; a store
only knows rows, keys and conditions. This keeps backends small and lets one contract suite
(``tests/persistence/contract.py``) hold every backend to exactly the same behaviour.

Atomicity rules (what the engine relies on):

* ``create_workflow_execution`` and ``update_workflow_execution`` are each ONE transaction: the
  execution row, the current-run pointer, the history nodes and all tasks are written together or not
  at all, and only if the shard's ``range_id`` still equals the request's (else
  ``ShardOwnershipLostError``) and the row's ``db_version`` equals ``expected_db_version`` (else
  ``ConditionFailedError``).
* Backends may group many concurrent requests into one physical transaction (group commit), but a
  request that fails its condition never takes others down with it.

All methods are coroutines; backends with blocking drivers run them on their own threads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.schemas.service import ROLES, ClusterMember


class TaskCategory(enum.IntEnum):
    """The shard's task queues. Transfer, visibility and replication are ordered by task id; timers by
    (visibility_time, task_id)."""

    TRANSFER = 1
    TIMER = 2
    VISIBILITY = 3
    REPLICATION = 4


class ExecutionState(enum.IntEnum):
    CREATED = 0
    RUNNING = 1
    COMPLETED = 2
    ZOMBIE = 3


class ExecutionStatus(enum.IntEnum):
    """The user-facing status (Temporal's WorkflowExecutionStatus numbering)."""

    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    CONTINUED_AS_NEW = 6
    TIMED_OUT = 7


class CreateMode(enum.IntEnum):
    BRAND_NEW = 0
    """No current run may exist for the workflow id."""
    WORKFLOW_ID_REUSE = 1
    """The current run must be ``previous_run_id`` with ``previous_last_write_version`` and closed
    (``COMPLETED``, or ``ZOMBIE``: a run another cluster's newer run supersedes)."""
    CONTINUE_AS_NEW = 2
    """Used inside an update: the current run must be ``previous_run_id``."""
    ZOMBIE = 3
    """A replicated run that is not the current run of its workflow id (another run of the id has a
    higher failover version): its row, history and tasks are written, the current pointer is left
    alone. The run must not exist yet."""


@dataclass(slots=True)
class ShardInfo:
    shard_id: int
    range_id: int
    owner: str = ""
    ack_levels: dict[str, int] = field(default_factory=dict)
    """Per queue (``TaskCategory`` name, lower case), the highest key below which all is done."""
    updated_time: int = 0


@dataclass(slots=True)
class TaskRow:
    task_id: int
    """Allocated by the shard owner from its range: unique and increasing within the shard."""
    data: bytes
    visibility_time: int = 0
    """Microseconds since the epoch when the task is due; only timers use it."""


@dataclass(slots=True)
class ExecutionRow:
    """One run's row. ``data`` is the engine-encoded mutable state."""

    namespace_id: str
    workflow_id: str
    run_id: str
    state: ExecutionState
    status: ExecutionStatus
    next_event_id: int
    db_version: int
    last_write_version: int
    start_request_id: str
    data: bytes
    start_version: int = 0


@dataclass(slots=True)
class CurrentExecution:
    """The current-run pointer of a workflow id."""

    run_id: str
    create_request_id: str
    state: ExecutionState
    status: ExecutionStatus
    last_write_version: int
    start_version: int = 0


@dataclass(slots=True)
class HistoryNode:
    """A batch of events of one branch, starting at event id ``node_id``.

    A later write at the same ``node_id`` with a higher ``txn_id`` supersedes the earlier one (that is
    how a failed-over cluster overwrites a stale tail); readers see only the highest ``txn_id``."""

    node_id: int
    txn_id: int
    data: bytes
    event_count: int = 0


@dataclass(slots=True)
class HistoryAppend:
    tree_id: str
    branch_id: str
    node: HistoryNode
    is_new_branch: bool = False
    """True for a run's first batch: also creates the branch row (no ancestors)."""


@dataclass(slots=True)
class BranchAncestor:
    branch_id: str
    end_node_id: int
    """Exclusive: this branch owns nodes [previous end, end_node_id)."""


@dataclass(slots=True)
class HistoryBranch:
    tree_id: str
    branch_id: str
    ancestors: list[BranchAncestor] = field(default_factory=list)


@dataclass(slots=True)
class WorkflowTasks:
    """Tasks written in the same transaction as a mutation."""

    transfer: list[TaskRow] = field(default_factory=list)
    timer: list[TaskRow] = field(default_factory=list)
    visibility: list[TaskRow] = field(default_factory=list)
    replication: list[TaskRow] = field(default_factory=list)

    def by_category(self) -> dict[TaskCategory, list[TaskRow]]:
        return {
            TaskCategory.TRANSFER: self.transfer,
            TaskCategory.TIMER: self.timer,
            TaskCategory.VISIBILITY: self.visibility,
            TaskCategory.REPLICATION: self.replication,
        }


@dataclass(slots=True)
class NewRun:
    """A run created by a write: a brand-new start, a reuse of the id, or a continue-as-new."""

    execution: ExecutionRow
    history: list[HistoryAppend]
    tasks: WorkflowTasks
    mode: CreateMode = CreateMode.BRAND_NEW
    previous_run_id: str = ""
    previous_last_write_version: int = 0


@dataclass(slots=True)
class CreateWorkflowRequest:
    shard_id: int
    range_id: int
    new_run: NewRun


@dataclass(slots=True)
class UpdateWorkflowRequest:
    shard_id: int
    range_id: int
    execution: ExecutionRow
    """The new state of the row; its ``db_version`` is the version after this write."""
    expected_db_version: int
    history: list[HistoryAppend]
    tasks: WorkflowTasks
    continue_as_new: NewRun | None = None
    """Created in the same transaction; the current-run pointer moves to it."""


@dataclass(slots=True)
class TaskQueueInfo:
    namespace_id: str
    name: str
    task_type: int
    """0 = workflow tasks, 1 = activity tasks."""
    range_id: int
    ack_level: int = 0
    kind: int = 0
    """0 = normal, 1 = sticky (worker-specific, expires)."""
    updated_time: int = 0


@dataclass(slots=True)
class QueuedTask:
    task_id: int
    data: bytes
    expiry_time: int = 0
    """Microseconds since the epoch after which the task is dropped; 0 = never."""


@dataclass(slots=True)
class NamespaceRow:
    id: str
    name: str
    data: bytes
    """Engine-encoded namespace detail (config, replication config, failover version...)."""
    is_global: bool = False
    notification_version: int = 0


class ShardStore(Protocol):
    async def acquire_shard(self, shard_id: int, owner: str) -> ShardInfo:
        """Creates the shard if missing, then bumps its ``range_id`` by one (conditionally on the value
        read, like a lightweight transaction) and records ``owner``. Every earlier owner's writes fail
        with ``ShardOwnershipLostError`` from then on."""
        ...

    async def get_shard(self, shard_id: int) -> ShardInfo:
        """Raises ``EntityNotFoundError`` for an unknown shard."""
        ...

    async def update_shard(self, info: ShardInfo, *, expected_range_id: int) -> None:
        """Writes ``info`` (ack levels, owner, range_id) if the stored range_id is
        ``expected_range_id``; else ``ShardOwnershipLostError``. Used to renew a range as well."""
        ...


class ExecutionStore(Protocol):
    async def create_workflow_execution(self, request: CreateWorkflowRequest) -> None:
        """Creates a run with its first history batch and tasks, and points the current run at it.

        BRAND_NEW fails with ``CurrentWorkflowConditionFailedError`` (carrying the current run) when
        any run of the workflow id exists. WORKFLOW_ID_REUSE requires the current run to be
        ``previous_run_id`` with ``previous_last_write_version``. A stale ``range_id`` fails with
        ``ShardOwnershipLostError``. Nothing is written on failure."""
        ...

    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> None:
        """Replaces the row if its ``db_version`` equals ``expected_db_version`` (else
        ``ConditionFailedError``), appends history and tasks, updates the current-run pointer's state
        and status when this run is current, and creates ``continue_as_new`` moving the pointer."""
        ...

    async def get_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRow:
        """Raises ``EntityNotFoundError``."""
        ...

    async def get_current_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentExecution:
        """Raises ``EntityNotFoundError``."""
        ...

    async def list_executions(
        self, shard_id: int, page_size: int, token: bytes | None = None
    ) -> tuple[list[ExecutionRow], bytes | None]:
        """Every run of the shard, in a stable order, paged; used by scanners and recovery."""
        ...

    async def delete_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        """Deletes the run's row, and the current-run pointer if it points at this run. Idempotent."""
        ...

    async def get_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
        batch_size: int,
    ) -> list[TaskRow]:
        """Tasks with ``min_key <= key < max_key`` in key order, at most ``batch_size``. The key is
        ``(visibility_time, task_id)`` for timers and ``(0, task_id)`` for the other categories."""
        ...

    async def complete_tasks(
        self,
        shard_id: int,
        category: TaskCategory,
        *,
        min_key: tuple[int, int],
        max_key: tuple[int, int],
    ) -> None:
        """Deletes the tasks with ``min_key <= key < max_key``."""
        ...


class HistoryStore(Protocol):
    async def append_history_nodes(self, append: HistoryAppend) -> None:
        """Writes one node outside an execution transaction (forks, imports, replication)."""
        ...

    async def read_history_branch(
        self,
        tree_id: str,
        branch_id: str,
        *,
        min_node_id: int,
        max_node_id: int,
        page_size: int,
        token: bytes | None = None,
    ) -> tuple[list[HistoryNode], bytes | None]:
        """Nodes with ``min_node_id <= node_id < max_node_id`` of the branch, following its
        ancestors for node ids below the fork points, each node id once (the highest ``txn_id``), in
        node order, paged by ``page_size`` nodes."""
        ...

    async def fork_history_branch(
        self, tree_id: str, base_branch_id: str, fork_node_id: int, new_branch_id: str
    ) -> HistoryBranch:
        """Creates ``new_branch_id`` sharing the base branch's nodes below ``fork_node_id``."""
        ...

    async def get_history_tree(self, tree_id: str) -> list[HistoryBranch]: ...

    async def delete_history_branch(self, tree_id: str, branch_id: str) -> None:
        """Deletes the branch's own nodes (not those shared with other branches). Idempotent."""
        ...


class TaskQueueStore(Protocol):
    async def lease_task_queue(
        self, namespace_id: str, name: str, task_type: int, *, kind: int = 0
    ) -> TaskQueueInfo:
        """Creates the queue if missing, bumps its ``range_id`` and returns it; from then on, writes
        with an older ``range_id`` fail with ``TaskQueueLeaseLostError``."""
        ...

    async def update_task_queue(self, info: TaskQueueInfo) -> None:
        """Writes ack level etc. if the stored ``range_id`` equals ``info.range_id``."""
        ...

    async def list_task_queues(self, namespace_id: str) -> list[TaskQueueInfo]: ...

    async def create_tasks(self, info: TaskQueueInfo, tasks: list[QueuedTask]) -> None:
        """Appends backlog tasks if the queue's ``range_id`` still equals ``info.range_id``."""
        ...

    async def get_tasks(
        self,
        namespace_id: str,
        name: str,
        task_type: int,
        *,
        min_task_id: int,
        max_task_id: int,
        batch_size: int,
    ) -> list[QueuedTask]:
        """Tasks with ``min_task_id < task_id <= max_task_id`` in order."""
        ...

    async def complete_tasks_less_than(
        self, namespace_id: str, name: str, task_type: int, task_id: int
    ) -> int:
        """Deletes tasks with ``task_id < task_id`` (exclusive); returns how many."""
        ...


class NamespaceStore(Protocol):
    async def create_namespace(self, row: NamespaceRow) -> None:
        """``AlreadyExistsError`` when the id or the name is taken."""
        ...

    async def get_namespace(self, *, id: str | None = None, name: str | None = None) -> NamespaceRow:
        """By exactly one of id or name; ``EntityNotFoundError`` when absent."""
        ...

    async def update_namespace(self, row: NamespaceRow, *, expected_notification_version: int) -> None:
        """Replaces data if the stored notification version matches (``ConditionFailedError``
        otherwise); the row's own ``notification_version`` is stored as the new one."""
        ...

    async def list_namespaces(
        self, page_size: int, token: bytes | None = None
    ) -> tuple[list[NamespaceRow], bytes | None]: ...


class MembershipStore(Protocol):
    async def upsert_member(self, member: ClusterMember) -> None:
        """Writes ``member`` (a join, or a heartbeat moving its ``expiry`` on). ``ValueError``
        for a role outside ``ROLES`` or an expiry not after the heartbeat."""
        ...

    async def list_members(self, *, now_us: int, role: str | None = None) -> list[ClusterMember]:
        """The members whose expiry is after ``now_us`` (of ``role``, or every role), ordered by
        role (as in ``ROLES``) and host id."""
        ...

    async def remove_member(self, role: str, host_id: str) -> None:
        """A process leaving on purpose (a graceful stop); nothing if the row is absent."""
        ...

    async def prune_members(self, now_us: int) -> int:
        """Deletes rows expired before ``now_us``; returns how many (a backend whose rows expire
        by themselves returns 0)."""
        ...


def check_member(member: ClusterMember) -> None:
    if member.role not in ROLES:
        raise ValueError(f"membership role {member.role!r} is not one of {', '.join(ROLES)}")
    if member.expiry <= member.last_heartbeat:
        raise ValueError(
            f"membership of {member.host_id!r}: expiry {member.expiry} is not after its heartbeat "
            f"{member.last_heartbeat}"
        )
    if not member.host_id:
        raise ValueError("membership host_id is empty")


class Stores(Protocol):
    """One backend's stores, opened and closed together."""

    shards: ShardStore
    executions: ExecutionStore
    history: HistoryStore
    task_queues: TaskQueueStore
    namespaces: NamespaceStore
    membership: MembershipStore

    async def close(self) -> None: ...
