"""The persistence contract suite: every backend runs these tests unchanged.

A backend subclasses ``StoreContract`` and implements ``make_stores`` returning fresh ``Stores``.
Every test uses a random shard id and random uuids, so the suite can run against a shared server
whose tables already hold other tests' rows.

The shard and execution cases live here, the shard-task, history, task-queue and namespace cases in
``contract_more.py``, the builders in ``contract_base.py``; ``StoreContract`` combines them.
"""

from __future__ import annotations

import abc

import pytest

from cadenza.engine.persistence import (
    ConditionFailedError,
    CreateMode,
    CurrentWorkflowConditionFailedError,
    EntityNotFoundError,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    HistoryNode,
    ShardOwnershipLostError,
    Stores,
    TaskCategory,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
)

from .aio import store_test
from .contract_base import ContractBase, closed, execution, new_run, new_shard_id, uid
from .contract_membership import MembershipContract
from .contract_more import HistoryContract, NamespaceContract, ShardTaskContract, TaskQueueContract


class ShardContract(ContractBase):
    @store_test
    async def test_acquire_creates_shard(self, stores: Stores) -> None:
        shard_id = new_shard_id()
        info = await stores.shards.acquire_shard(shard_id, "host-a")
        assert info.shard_id == shard_id and info.owner == "host-a" and info.range_id >= 1
        got = await stores.shards.get_shard(shard_id)
        assert (got.range_id, got.owner) == (info.range_id, "host-a")

    @store_test
    async def test_acquire_again_bumps_range_id(self, stores: Stores) -> None:
        shard_id = new_shard_id()
        first = await stores.shards.acquire_shard(shard_id, "host-a")
        second = await stores.shards.acquire_shard(shard_id, "host-b")
        assert second.range_id == first.range_id + 1 and second.owner == "host-b"
        assert (await stores.shards.get_shard(shard_id)).range_id == second.range_id

    @store_test
    async def test_get_unknown_shard(self, stores: Stores) -> None:
        with pytest.raises(EntityNotFoundError):
            await stores.shards.get_shard(new_shard_id())

    @store_test
    async def test_update_shard_and_renew(self, stores: Stores) -> None:
        shard_id = new_shard_id()
        info = await stores.shards.acquire_shard(shard_id, "host-a")
        info.ack_levels = {"transfer": 42, "timer": 7}
        old_range = info.range_id
        info.range_id += 1
        await stores.shards.update_shard(info, expected_range_id=old_range)
        got = await stores.shards.get_shard(shard_id)
        assert got.range_id == old_range + 1 and got.ack_levels == {"transfer": 42, "timer": 7}

    @store_test
    async def test_update_shard_stale_range_fails(self, stores: Stores) -> None:
        shard_id = new_shard_id()
        stale = await stores.shards.acquire_shard(shard_id, "host-a")
        await stores.shards.acquire_shard(shard_id, "host-b")
        stale.ack_levels = {"transfer": 99}
        with pytest.raises(ShardOwnershipLostError) as err:
            await stores.shards.update_shard(stale, expected_range_id=stale.range_id)
        assert err.value.shard_id == shard_id and err.value.actual_range_id == stale.range_id + 1
        got = await stores.shards.get_shard(shard_id)
        assert got.owner == "host-b" and got.ack_levels == {}

    @store_test
    async def test_stale_owner_create_writes_nothing(self, stores: Stores) -> None:
        shard_id, old_range = await self.shard(stores)
        await stores.shards.acquire_shard(shard_id, "host-b")
        ex = execution(uid(), uid())
        with pytest.raises(ShardOwnershipLostError):
            await self.start(
                stores, shard_id, old_range, ex, tasks=WorkflowTasks(transfer=[TaskRow(1, b"t")])
            )
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_workflow_execution(
                shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
            )
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_current_execution(shard_id, ex.namespace_id, ex.workflow_id)
        assert await self.nodes(stores, ex.run_id, ex.run_id) == []
        assert await self.tasks(stores, shard_id, TaskCategory.TRANSFER) == []

    @store_test
    async def test_stale_owner_update_writes_nothing(self, stores: Stores) -> None:
        shard_id, old_range = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, old_range, ex)
        await stores.shards.acquire_shard(shard_id, "host-b")
        upd = execution(ex.namespace_id, ex.workflow_id, ex.run_id, db_version=2, data=b"v2")
        with pytest.raises(ShardOwnershipLostError):
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(
                    shard_id, old_range, upd, 1,
                    [HistoryAppend(ex.run_id, ex.run_id, HistoryNode(2, 2, b"e2", 1))],
                    WorkflowTasks(timer=[TaskRow(5, b"t", visibility_time=10)]),
                )
            )  # fmt: skip
        got = await stores.executions.get_workflow_execution(
            shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
        )
        assert got.db_version == 1 and got.data == b"state"
        assert [n.node_id for n in await self.nodes(stores, ex.run_id, ex.run_id)] == [1]
        assert await self.tasks(stores, shard_id, TaskCategory.TIMER) == []

    @store_test
    async def test_create_on_unacquired_shard_fails(self, stores: Stores) -> None:
        with pytest.raises(ShardOwnershipLostError):
            await self.start(stores, new_shard_id(), 1, execution(uid(), uid()))


class ExecutionContract(ContractBase):
    @store_test
    async def test_create_brand_new(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid(), last_write_version=3)
        tasks = WorkflowTasks(
            transfer=[TaskRow(10, b"tr")],
            timer=[TaskRow(11, b"ti", visibility_time=1_000)],
            visibility=[TaskRow(12, b"vi")],
            replication=[TaskRow(13, b"re")],
        )
        await self.start(stores, shard_id, range_id, ex, tasks=tasks)
        got = await stores.executions.get_workflow_execution(
            shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
        )
        assert got == ex
        cur = await stores.executions.get_current_execution(shard_id, ex.namespace_id, ex.workflow_id)
        assert (cur.run_id, cur.create_request_id, cur.state, cur.status, cur.last_write_version) == (
            ex.run_id, ex.start_request_id, ExecutionState.RUNNING, ExecutionStatus.RUNNING, 3,
        )  # fmt: skip
        assert await self.nodes(stores, ex.run_id, ex.run_id) == [HistoryNode(1, 1, b"events-1", 1)]
        assert [t.task_id for t in await self.tasks(stores, shard_id, TaskCategory.TRANSFER)] == [10]
        assert await self.tasks(stores, shard_id, TaskCategory.TIMER) == [TaskRow(11, b"ti", 1_000)]
        assert [t.data for t in await self.tasks(stores, shard_id, TaskCategory.VISIBILITY)] == [b"vi"]
        assert [t.data for t in await self.tasks(stores, shard_id, TaskCategory.REPLICATION)] == [b"re"]

    @store_test
    async def test_duplicate_create_reports_current_run(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ns, wf = uid(), uid()
        first = execution(ns, wf, last_write_version=5)
        await self.start(stores, shard_id, range_id, first)
        second = execution(ns, wf)
        with pytest.raises(CurrentWorkflowConditionFailedError) as err:
            await self.start(
                stores, shard_id, range_id, second, tasks=WorkflowTasks(transfer=[TaskRow(1, b"x")])
            )
        e = err.value
        assert (e.run_id, e.request_id, e.state, e.status, e.last_write_version) == (
            first.run_id, first.start_request_id, int(ExecutionState.RUNNING),
            int(ExecutionStatus.RUNNING), 5,
        )  # fmt: skip
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_workflow_execution(shard_id, ns, wf, second.run_id)
        assert await self.nodes(stores, second.run_id, second.run_id) == []
        assert await self.tasks(stores, shard_id, TaskCategory.TRANSFER) == []

    @store_test
    async def test_brand_new_fails_even_when_current_is_closed(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ns, wf = uid(), uid()
        first = execution(ns, wf, state=ExecutionState.COMPLETED, status=ExecutionStatus.COMPLETED)
        await self.start(stores, shard_id, range_id, first)
        with pytest.raises(CurrentWorkflowConditionFailedError) as err:
            await self.start(stores, shard_id, range_id, execution(ns, wf))
        assert err.value.run_id == first.run_id and err.value.state == int(ExecutionState.COMPLETED)

    async def _closed_run(self, stores: Stores, shard_id: int, range_id: int) -> ExecutionRow:
        ex = execution(uid(), uid(), last_write_version=7)
        await self.start(stores, shard_id, range_id, ex)
        done = closed(ex, db_version=2)
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, done, 1, [], WorkflowTasks())
        )
        return done

    @store_test
    async def test_workflow_id_reuse(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        nxt = execution(prev.namespace_id, prev.workflow_id)
        await self.start(
            stores, shard_id, range_id, nxt,
            mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=7,
        )  # fmt: skip
        cur = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert cur.run_id == nxt.run_id and cur.state == ExecutionState.RUNNING
        old = await stores.executions.get_workflow_execution(
            shard_id, prev.namespace_id, prev.workflow_id, prev.run_id
        )
        assert old.state == ExecutionState.COMPLETED

    @store_test
    async def test_workflow_id_reuse_wrong_previous_run(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        nxt = execution(prev.namespace_id, prev.workflow_id)
        with pytest.raises(CurrentWorkflowConditionFailedError) as err:
            await self.start(
                stores, shard_id, range_id, nxt,
                mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=uid(), previous_last_write_version=7,
            )  # fmt: skip
        assert err.value.run_id == prev.run_id and err.value.last_write_version == 7
        cur = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert cur.run_id == prev.run_id
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_workflow_execution(
                shard_id, prev.namespace_id, prev.workflow_id, nxt.run_id
            )

    @store_test
    async def test_workflow_id_reuse_wrong_version(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        with pytest.raises(CurrentWorkflowConditionFailedError):
            await self.start(
                stores, shard_id, range_id, execution(prev.namespace_id, prev.workflow_id),
                mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=8,
            )  # fmt: skip
        cur = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert cur.run_id == prev.run_id

    @store_test
    async def test_workflow_id_reuse_previous_still_running(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = execution(uid(), uid(), last_write_version=2)
        await self.start(stores, shard_id, range_id, prev)
        with pytest.raises(CurrentWorkflowConditionFailedError) as err:
            await self.start(
                stores, shard_id, range_id, execution(prev.namespace_id, prev.workflow_id),
                mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=2,
            )  # fmt: skip
        assert err.value.state == int(ExecutionState.RUNNING)

    @store_test
    async def test_zombie_run_leaves_the_current_pointer(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        cur = execution(uid(), uid(), last_write_version=12)
        await self.start(stores, shard_id, range_id, cur)
        zombie = execution(
            cur.namespace_id, cur.workflow_id, state=ExecutionState.ZOMBIE, last_write_version=1
        )
        await self.start(stores, shard_id, range_id, zombie, mode=CreateMode.ZOMBIE)
        pointer = await stores.executions.get_current_execution(shard_id, cur.namespace_id, cur.workflow_id)
        assert (pointer.run_id, pointer.state, pointer.last_write_version) == (
            cur.run_id, ExecutionState.RUNNING, 12,
        )  # fmt: skip
        got = await stores.executions.get_workflow_execution(
            shard_id, cur.namespace_id, cur.workflow_id, zombie.run_id
        )
        assert got.state == ExecutionState.ZOMBIE
        assert len(await self.nodes(stores, zombie.run_id, zombie.run_id)) == 1
        # Updating the zombie (its events keep arriving) leaves the pointer alone too.
        upd = execution(
            cur.namespace_id, cur.workflow_id, zombie.run_id, db_version=2,
            state=ExecutionState.COMPLETED, last_write_version=1,
        )  # fmt: skip
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, upd, 1, [], WorkflowTasks())
        )
        pointer = await stores.executions.get_current_execution(shard_id, cur.namespace_id, cur.workflow_id)
        assert (pointer.run_id, pointer.state) == (cur.run_id, ExecutionState.RUNNING)
        # The same zombie twice is refused and changes nothing.
        with pytest.raises(ConditionFailedError):
            await self.start(stores, shard_id, range_id, zombie, mode=CreateMode.ZOMBIE)

    @store_test
    async def test_workflow_id_reuse_after_a_zombie_current_run(self, stores: Stores) -> None:
        """A current run superseded by another cluster's newer run is made a zombie, then the
        newer run takes the pointer."""
        shard_id, range_id = await self.shard(stores)
        prev = execution(uid(), uid(), last_write_version=1)
        await self.start(stores, shard_id, range_id, prev)
        zombie = execution(
            prev.namespace_id, prev.workflow_id, prev.run_id, db_version=2,
            state=ExecutionState.ZOMBIE, last_write_version=1,
        )  # fmt: skip
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, zombie, 1, [], WorkflowTasks())
        )
        nxt = execution(prev.namespace_id, prev.workflow_id, last_write_version=2)
        await self.start(
            stores, shard_id, range_id, nxt,
            mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=1,
        )  # fmt: skip
        pointer = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert (pointer.run_id, pointer.state) == (nxt.run_id, ExecutionState.RUNNING)

    @store_test
    async def test_update_with_right_db_version(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        for version in (2, 3):
            upd = execution(
                ex.namespace_id, ex.workflow_id, ex.run_id, db_version=version, data=b"v%d" % version
            )
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(shard_id, range_id, upd, version - 1, [], WorkflowTasks())
            )
        got = await stores.executions.get_workflow_execution(
            shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
        )
        assert got.db_version == 3 and got.data == b"v3"

    @store_test
    async def test_update_with_wrong_db_version_writes_nothing(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        upd = execution(ex.namespace_id, ex.workflow_id, ex.run_id, db_version=3, data=b"bad")
        with pytest.raises(ConditionFailedError):
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(
                    shard_id, range_id, upd, 2,
                    [HistoryAppend(ex.run_id, ex.run_id, HistoryNode(2, 2, b"e2", 1))],
                    WorkflowTasks(transfer=[TaskRow(1, b"t")], timer=[TaskRow(2, b"t", 5)]),
                )
            )  # fmt: skip
        got = await stores.executions.get_workflow_execution(
            shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
        )
        assert got.db_version == 1 and got.data == b"state"
        assert [n.node_id for n in await self.nodes(stores, ex.run_id, ex.run_id)] == [1]
        assert await self.tasks(stores, shard_id, TaskCategory.TRANSFER) == []
        assert await self.tasks(stores, shard_id, TaskCategory.TIMER) == []

    @store_test
    async def test_update_of_missing_run_fails_condition(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        upd = execution(uid(), uid(), db_version=2)
        with pytest.raises(ConditionFailedError):
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(shard_id, range_id, upd, 1, [], WorkflowTasks())
            )

    @store_test
    async def test_update_writes_history_and_tasks(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        upd = execution(ex.namespace_id, ex.workflow_id, ex.run_id, db_version=2, next_event_id=5)
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(
                shard_id, range_id, upd, 1,
                [HistoryAppend(ex.run_id, ex.run_id, HistoryNode(2, 2, b"e2-4", 3))],
                WorkflowTasks(transfer=[TaskRow(20, b"t")], visibility=[TaskRow(21, b"v")]),
            )
        )  # fmt: skip
        assert [n.node_id for n in await self.nodes(stores, ex.run_id, ex.run_id)] == [1, 2]
        assert [t.task_id for t in await self.tasks(stores, shard_id, TaskCategory.TRANSFER)] == [20]
        assert [t.task_id for t in await self.tasks(stores, shard_id, TaskCategory.VISIBILITY)] == [21]

    @store_test
    async def test_continue_as_new_moves_current_pointer(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        old = execution(
            ex.namespace_id, ex.workflow_id, ex.run_id, db_version=2,
            state=ExecutionState.COMPLETED, status=ExecutionStatus.CONTINUED_AS_NEW,
        )  # fmt: skip
        nxt = execution(ex.namespace_id, ex.workflow_id)
        can = new_run(
            nxt, mode=CreateMode.CONTINUE_AS_NEW, previous_run_id=ex.run_id,
            tasks=WorkflowTasks(transfer=[TaskRow(31, b"first-task")]),
        )  # fmt: skip
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, old, 1, [], WorkflowTasks(), continue_as_new=can)
        )
        cur = await stores.executions.get_current_execution(shard_id, ex.namespace_id, ex.workflow_id)
        assert cur.run_id == nxt.run_id and cur.state == ExecutionState.RUNNING
        got_old = await stores.executions.get_workflow_execution(
            shard_id, ex.namespace_id, ex.workflow_id, ex.run_id
        )
        assert got_old.status == ExecutionStatus.CONTINUED_AS_NEW
        assert await self.nodes(stores, nxt.run_id, nxt.run_id) == [HistoryNode(1, 1, b"events-1", 1)]
        assert [t.task_id for t in await self.tasks(stores, shard_id, TaskCategory.TRANSFER)] == [31]

    @store_test
    async def test_continue_as_new_wrong_previous_is_atomic(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        ns, wf = prev.namespace_id, prev.workflow_id
        current = execution(ns, wf)
        await self.start(
            stores, shard_id, range_id, current,
            mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=7,
        )  # fmt: skip
        # ``prev`` is not current any more: its continue-as-new must fail and its update with it.
        upd = execution(ns, wf, prev.run_id, db_version=3, status=ExecutionStatus.CONTINUED_AS_NEW)
        can = new_run(execution(ns, wf), mode=CreateMode.CONTINUE_AS_NEW, previous_run_id=prev.run_id)
        with pytest.raises(CurrentWorkflowConditionFailedError) as err:
            await stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(shard_id, range_id, upd, 2, [], WorkflowTasks(), continue_as_new=can)
            )
        assert err.value.run_id == current.run_id
        got = await stores.executions.get_workflow_execution(shard_id, ns, wf, prev.run_id)
        assert got.db_version == 2
        cur = await stores.executions.get_current_execution(shard_id, ns, wf)
        assert cur.run_id == current.run_id

    @store_test
    async def test_current_pointer_follows_updates(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        done = execution(
            ex.namespace_id, ex.workflow_id, ex.run_id, db_version=2, last_write_version=4,
            state=ExecutionState.COMPLETED, status=ExecutionStatus.FAILED,
        )  # fmt: skip
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, done, 1, [], WorkflowTasks())
        )
        cur = await stores.executions.get_current_execution(shard_id, ex.namespace_id, ex.workflow_id)
        assert (cur.state, cur.status, cur.last_write_version) == (
            ExecutionState.COMPLETED, ExecutionStatus.FAILED, 4,
        )  # fmt: skip

    @store_test
    async def test_update_of_non_current_run_leaves_pointer(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        nxt = execution(prev.namespace_id, prev.workflow_id)
        await self.start(
            stores, shard_id, range_id, nxt,
            mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=7,
        )  # fmt: skip
        zombie = execution(
            prev.namespace_id, prev.workflow_id, prev.run_id, db_version=3,
            state=ExecutionState.ZOMBIE, status=ExecutionStatus.TERMINATED,
        )  # fmt: skip
        await stores.executions.update_workflow_execution(
            UpdateWorkflowRequest(shard_id, range_id, zombie, 2, [], WorkflowTasks())
        )
        cur = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert (cur.run_id, cur.state) == (nxt.run_id, ExecutionState.RUNNING)

    @store_test
    async def test_get_missing(self, stores: Stores) -> None:
        shard_id, _ = await self.shard(stores)
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_workflow_execution(shard_id, uid(), uid(), uid())
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_current_execution(shard_id, uid(), uid())

    @store_test
    async def test_list_executions_paging(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        other_shard, other_range = await self.shard(stores)
        created: set[str] = set()
        for _ in range(7):
            ex = execution(uid(), uid())
            await self.start(stores, shard_id, range_id, ex)
            created.add(ex.run_id)
        await self.start(stores, other_shard, other_range, execution(uid(), uid()))
        seen: list[str] = []
        sizes: list[int] = []
        token: bytes | None = None
        while True:
            rows, token = await stores.executions.list_executions(shard_id, 3, token)
            sizes.append(len(rows))
            seen.extend(r.run_id for r in rows)
            if token is None:
                break
            assert len(sizes) < 10
        assert sorted(seen) == sorted(created) and len(seen) == 7
        assert all(size <= 3 for size in sizes)

    @store_test
    async def test_delete_execution(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        ex = execution(uid(), uid())
        await self.start(stores, shard_id, range_id, ex)
        key = (shard_id, ex.namespace_id, ex.workflow_id, ex.run_id)
        await stores.executions.delete_workflow_execution(*key)
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_workflow_execution(*key)
        with pytest.raises(EntityNotFoundError):
            await stores.executions.get_current_execution(shard_id, ex.namespace_id, ex.workflow_id)
        await stores.executions.delete_workflow_execution(*key)  # idempotent

    @store_test
    async def test_delete_non_current_run_keeps_pointer(self, stores: Stores) -> None:
        shard_id, range_id = await self.shard(stores)
        prev = await self._closed_run(stores, shard_id, range_id)
        nxt = execution(prev.namespace_id, prev.workflow_id)
        await self.start(
            stores, shard_id, range_id, nxt,
            mode=CreateMode.WORKFLOW_ID_REUSE, previous_run_id=prev.run_id, previous_last_write_version=7,
        )  # fmt: skip
        await stores.executions.delete_workflow_execution(
            shard_id, prev.namespace_id, prev.workflow_id, prev.run_id
        )
        cur = await stores.executions.get_current_execution(shard_id, prev.namespace_id, prev.workflow_id)
        assert cur.run_id == nxt.run_id


class StoreContract(
    ShardContract,
    ExecutionContract,
    ShardTaskContract,
    HistoryContract,
    TaskQueueContract,
    NamespaceContract,
    MembershipContract,
    abc.ABC,
):
    """Subclass this (class name starting with ``Test``) and implement ``make_stores``."""
