"""Contract cases for shard tasks, history trees, task queues and namespaces (see ``contract.py``)."""

from __future__ import annotations

import pytest

from cadenza.engine.persistence import (
    AlreadyExistsError,
    ConditionFailedError,
    EntityNotFoundError,
    HistoryAppend,
    HistoryNode,
    NamespaceRow,
    QueuedTask,
    Stores,
    TaskCategory,
    TaskQueueLeaseLostError,
    TaskRow,
    WorkflowTasks,
)

from .aio import store_test
from .contract_base import ContractBase, execution, new_shard_id, uid

ORDERED_BY_ID = (TaskCategory.TRANSFER, TaskCategory.VISIBILITY, TaskCategory.REPLICATION)


def _tasks_of(category: TaskCategory, rows: list[TaskRow]) -> WorkflowTasks:
    tasks = WorkflowTasks()
    tasks.by_category()[category].extend(rows)
    return tasks


class ShardTaskContract(ContractBase):
    async def _with_tasks(self, stores: Stores, category: TaskCategory, rows: list[TaskRow]) -> int:
        shard_id, range_id = await self.shard(stores)
        await self.start(stores, shard_id, range_id, execution(uid(), uid()), tasks=_tasks_of(category, rows))
        return shard_id

    @store_test
    async def test_id_ordered_tasks_range_reads(self, stores: Stores) -> None:
        for category in ORDERED_BY_ID:
            rows = [TaskRow(i, b"t%d" % i) for i in (5, 1, 9, 3, 7)]
            shard_id = await self._with_tasks(stores, category, rows)
            got = await stores.executions.get_tasks(
                shard_id, category, min_key=(0, 3), max_key=(0, 9), batch_size=100
            )
            assert [t.task_id for t in got] == [3, 5, 7], category
            assert got[0].data == b"t3"
            got = await stores.executions.get_tasks(
                shard_id, category, min_key=(0, 0), max_key=(0, 100), batch_size=2
            )
            assert [t.task_id for t in got] == [1, 3], category

    @store_test
    async def test_id_ordered_tasks_complete_range(self, stores: Stores) -> None:
        for category in ORDERED_BY_ID:
            shard_id = await self._with_tasks(stores, category, [TaskRow(i, b"t") for i in range(1, 8)])
            await stores.executions.complete_tasks(shard_id, category, min_key=(0, 2), max_key=(0, 5))
            assert [t.task_id for t in await self.tasks(stores, shard_id, category)] == [1, 5, 6, 7]

    @store_test
    async def test_tasks_are_per_shard_and_category(self, stores: Stores) -> None:
        shard_id = await self._with_tasks(stores, TaskCategory.TRANSFER, [TaskRow(1, b"t")])
        assert await self.tasks(stores, shard_id, TaskCategory.VISIBILITY) == []
        assert await self.tasks(stores, new_shard_id(), TaskCategory.TRANSFER) == []

    @store_test
    async def test_timer_tasks_ordered_by_time_then_id(self, stores: Stores) -> None:
        rows = [TaskRow(1, b"a", 300), TaskRow(2, b"b", 100), TaskRow(3, b"c", 200), TaskRow(4, b"d", 100)]
        shard_id = await self._with_tasks(stores, TaskCategory.TIMER, rows)
        got = await self.tasks(stores, shard_id, TaskCategory.TIMER)
        assert [(t.visibility_time, t.task_id) for t in got] == [(100, 2), (100, 4), (200, 3), (300, 1)]
        got = await stores.executions.get_tasks(
            shard_id, TaskCategory.TIMER, min_key=(100, 3), max_key=(300, 0), batch_size=100
        )
        assert [t.task_id for t in got] == [4, 3]
        got = await stores.executions.get_tasks(
            shard_id, TaskCategory.TIMER, min_key=(0, 0), max_key=(250, 0), batch_size=2
        )
        assert [t.task_id for t in got] == [2, 4]

    @store_test
    async def test_timer_tasks_complete_by_time(self, stores: Stores) -> None:
        rows = [TaskRow(i, b"t", vt) for i, vt in enumerate((100, 150, 200, 250), start=1)]
        shard_id = await self._with_tasks(stores, TaskCategory.TIMER, rows)
        await stores.executions.complete_tasks(shard_id, TaskCategory.TIMER, min_key=(0, 0), max_key=(200, 0))
        assert [t.task_id for t in await self.tasks(stores, shard_id, TaskCategory.TIMER)] == [3, 4]


class HistoryContract(ContractBase):
    async def _branch(self, stores: Stores, nodes: list[tuple[int, int]]) -> tuple[str, str]:
        tree, branch = uid(), uid()
        for i, (node_id, txn_id) in enumerate(nodes):
            await stores.history.append_history_nodes(
                HistoryAppend(
                    tree, branch, HistoryNode(node_id, txn_id, b"%d/%d" % (node_id, txn_id), 1), i == 0
                )
            )
        return tree, branch

    @store_test
    async def test_append_and_read(self, stores: Stores) -> None:
        tree, branch = await self._branch(stores, [(1, 1), (3, 2), (6, 3)])
        got = await self.nodes(stores, tree, branch)
        assert [(n.node_id, n.txn_id, n.data, n.event_count) for n in got] == [
            (1, 1, b"1/1", 1), (3, 2, b"3/2", 1), (6, 3, b"6/3", 1),
        ]  # fmt: skip

    @store_test
    async def test_read_node_range(self, stores: Stores) -> None:
        tree, branch = await self._branch(stores, [(i, i) for i in range(1, 11)])
        got, _ = await stores.history.read_history_branch(
            tree, branch, min_node_id=3, max_node_id=7, page_size=100
        )
        assert [n.node_id for n in got] == [3, 4, 5, 6]

    @store_test
    async def test_read_paging(self, stores: Stores) -> None:
        tree, branch = await self._branch(stores, [(i, i) for i in range(1, 8)])
        pages: list[list[int]] = []
        token: bytes | None = None
        while True:
            got, token = await stores.history.read_history_branch(
                tree, branch, min_node_id=1, max_node_id=100, page_size=3, token=token
            )
            pages.append([n.node_id for n in got])
            if token is None:
                break
            assert len(pages) < 10
        assert [i for page in pages for i in page] == list(range(1, 8))
        assert all(len(p) <= 3 for p in pages) and pages[0] == [1, 2, 3]

    @store_test
    async def test_highest_txn_id_wins(self, stores: Stores) -> None:
        tree, branch = await self._branch(stores, [(1, 1), (2, 2), (3, 3), (2, 5), (2, 4)])
        got = await self.nodes(stores, tree, branch)
        assert [(n.node_id, n.txn_id, n.data) for n in got] == [
            (1, 1, b"1/1"),
            (2, 5, b"2/5"),
            (3, 3, b"3/3"),
        ]

    @store_test
    async def test_unknown_branch_reads_empty(self, stores: Stores) -> None:
        assert await self.nodes(stores, uid(), uid()) == []

    @store_test
    async def test_fork_reads_ancestors(self, stores: Stores) -> None:
        tree, base = await self._branch(stores, [(1, 1), (3, 2), (5, 3)])
        fork = uid()
        branch = await stores.history.fork_history_branch(tree, base, 5, fork)
        assert branch.branch_id == fork and [(a.branch_id, a.end_node_id) for a in branch.ancestors] == [
            (base, 5)
        ]
        await stores.history.append_history_nodes(HistoryAppend(tree, fork, HistoryNode(5, 10, b"fork-5", 2)))
        got = await self.nodes(stores, tree, fork)
        assert [(n.node_id, n.data) for n in got] == [(1, b"1/1"), (3, b"3/2"), (5, b"fork-5")]
        base_nodes = await self.nodes(stores, tree, base)
        assert [(n.node_id, n.data) for n in base_nodes] == [(1, b"1/1"), (3, b"3/2"), (5, b"5/3")]

    @store_test
    async def test_fork_of_fork_and_paging_across_ancestors(self, stores: Stores) -> None:
        tree, base = await self._branch(stores, [(i, 1) for i in range(1, 6)])
        f1, f2 = uid(), uid()
        await stores.history.fork_history_branch(tree, base, 4, f1)
        for i in range(4, 8):
            await stores.history.append_history_nodes(HistoryAppend(tree, f1, HistoryNode(i, 2, b"f1", 1)))
        branch = await stores.history.fork_history_branch(tree, f1, 6, f2)
        assert [(a.branch_id, a.end_node_id) for a in branch.ancestors] == [(base, 4), (f1, 6)]
        await stores.history.append_history_nodes(HistoryAppend(tree, f2, HistoryNode(6, 3, b"f2", 1)))
        ids: list[tuple[int, int]] = []
        token: bytes | None = None
        while True:
            got, token = await stores.history.read_history_branch(
                tree, f2, min_node_id=1, max_node_id=100, page_size=2, token=token
            )
            ids.extend((n.node_id, n.txn_id) for n in got)
            if token is None:
                break
        assert ids == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3)]

    @store_test
    async def test_fork_unknown_base_fails(self, stores: Stores) -> None:
        with pytest.raises(EntityNotFoundError):
            await stores.history.fork_history_branch(uid(), uid(), 3, uid())

    @store_test
    async def test_get_history_tree(self, stores: Stores) -> None:
        tree, base = await self._branch(stores, [(1, 1), (2, 1)])
        fork = uid()
        await stores.history.fork_history_branch(tree, base, 2, fork)
        branches = {b.branch_id: b for b in await stores.history.get_history_tree(tree)}
        assert set(branches) == {base, fork}
        assert branches[base].ancestors == []
        assert [(a.branch_id, a.end_node_id) for a in branches[fork].ancestors] == [(base, 2)]
        assert await stores.history.get_history_tree(uid()) == []

    @store_test
    async def test_delete_branch(self, stores: Stores) -> None:
        tree, branch = await self._branch(stores, [(1, 1), (2, 1)])
        await stores.history.delete_history_branch(tree, branch)
        assert await self.nodes(stores, tree, branch) == []
        assert await stores.history.get_history_tree(tree) == []
        await stores.history.delete_history_branch(tree, branch)  # idempotent

    @store_test
    async def test_delete_forked_branch_keeps_shared_nodes(self, stores: Stores) -> None:
        tree, base = await self._branch(stores, [(1, 1), (2, 1), (3, 1)])
        fork = uid()
        await stores.history.fork_history_branch(tree, base, 3, fork)
        await stores.history.append_history_nodes(HistoryAppend(tree, fork, HistoryNode(3, 2, b"f", 1)))
        await stores.history.delete_history_branch(tree, fork)
        assert [n.node_id for n in await self.nodes(stores, tree, base)] == [1, 2, 3]
        assert [b.branch_id for b in await stores.history.get_history_tree(tree)] == [base]

    @store_test
    async def test_delete_base_keeps_nodes_a_fork_reads(self, stores: Stores) -> None:
        tree, base = await self._branch(stores, [(1, 1), (2, 1), (3, 1)])
        fork = uid()
        await stores.history.fork_history_branch(tree, base, 2, fork)
        await stores.history.append_history_nodes(HistoryAppend(tree, fork, HistoryNode(2, 2, b"f", 1)))
        await stores.history.delete_history_branch(tree, base)
        assert [(n.node_id, n.txn_id) for n in await self.nodes(stores, tree, fork)] == [(1, 1), (2, 2)]
        assert [b.branch_id for b in await stores.history.get_history_tree(tree)] == [fork]


class TaskQueueContract(ContractBase):
    @store_test
    async def test_lease_creates_and_bumps_range_id(self, stores: Stores) -> None:
        ns, name = uid(), uid()
        first = await stores.task_queues.lease_task_queue(ns, name, 0)
        assert (first.namespace_id, first.name, first.task_type, first.kind) == (ns, name, 0, 0)
        second = await stores.task_queues.lease_task_queue(ns, name, 0)
        assert second.range_id == first.range_id + 1
        other = await stores.task_queues.lease_task_queue(ns, name, 1, kind=1)
        assert other.task_type == 1 and other.kind == 1
        listed = await stores.task_queues.list_task_queues(ns)
        assert sorted((q.task_type, q.range_id) for q in listed) == [
            (0, second.range_id),
            (1, other.range_id),
        ]
        assert await stores.task_queues.list_task_queues(uid()) == []

    @store_test
    async def test_stale_lease_create_tasks_fails(self, stores: Stores) -> None:
        ns, name = uid(), uid()
        stale = await stores.task_queues.lease_task_queue(ns, name, 0)
        await stores.task_queues.lease_task_queue(ns, name, 0)
        with pytest.raises(TaskQueueLeaseLostError):
            await stores.task_queues.create_tasks(stale, [QueuedTask(1, b"x")])
        assert (
            await stores.task_queues.get_tasks(ns, name, 0, min_task_id=0, max_task_id=100, batch_size=10)
            == []
        )

    @store_test
    async def test_update_task_queue(self, stores: Stores) -> None:
        ns, name = uid(), uid()
        stale = await stores.task_queues.lease_task_queue(ns, name, 0)
        stale.ack_level = 10
        await stores.task_queues.update_task_queue(stale)
        current = await stores.task_queues.lease_task_queue(ns, name, 0)
        assert current.ack_level == 10
        stale.ack_level = 20
        with pytest.raises(TaskQueueLeaseLostError):
            await stores.task_queues.update_task_queue(stale)
        current.ack_level = 30
        await stores.task_queues.update_task_queue(current)
        [listed] = await stores.task_queues.list_task_queues(ns)
        assert listed.ack_level == 30 and listed.range_id == current.range_id

    @store_test
    async def test_get_tasks_range(self, stores: Stores) -> None:
        ns, name = uid(), uid()
        lease = await stores.task_queues.lease_task_queue(ns, name, 1)
        await stores.task_queues.create_tasks(
            lease, [QueuedTask(i, b"t%d" % i, expiry_time=i) for i in range(1, 11)]
        )
        got = await stores.task_queues.get_tasks(ns, name, 1, min_task_id=3, max_task_id=7, batch_size=100)
        assert [t.task_id for t in got] == [4, 5, 6, 7] and got[0] == QueuedTask(4, b"t4", 4)
        got = await stores.task_queues.get_tasks(ns, name, 1, min_task_id=0, max_task_id=100, batch_size=3)
        assert [t.task_id for t in got] == [1, 2, 3]
        assert (
            await stores.task_queues.get_tasks(ns, name, 0, min_task_id=0, max_task_id=100, batch_size=3)
            == []
        )

    @store_test
    async def test_complete_tasks_less_than(self, stores: Stores) -> None:
        ns, name = uid(), uid()
        lease = await stores.task_queues.lease_task_queue(ns, name, 0)
        await stores.task_queues.create_tasks(lease, [QueuedTask(i, b"t") for i in range(1, 11)])
        assert await stores.task_queues.complete_tasks_less_than(ns, name, 0, 6) == 5
        got = await stores.task_queues.get_tasks(ns, name, 0, min_task_id=0, max_task_id=100, batch_size=100)
        assert [t.task_id for t in got] == [6, 7, 8, 9, 10]
        assert await stores.task_queues.complete_tasks_less_than(ns, name, 0, 6) == 0


class NamespaceContract(ContractBase):
    def _ns(self, *, version: int = 0) -> NamespaceRow:
        return NamespaceRow(
            id=uid(), name=f"ns-{uid()}", data=b"cfg", is_global=True, notification_version=version
        )

    @store_test
    async def test_create_and_get(self, stores: Stores) -> None:
        row = self._ns(version=3)
        await stores.namespaces.create_namespace(row)
        assert await stores.namespaces.get_namespace(id=row.id) == row
        assert await stores.namespaces.get_namespace(name=row.name) == row

    @store_test
    async def test_duplicate_name_or_id(self, stores: Stores) -> None:
        row = self._ns()
        await stores.namespaces.create_namespace(row)
        with pytest.raises(AlreadyExistsError):
            await stores.namespaces.create_namespace(NamespaceRow(id=uid(), name=row.name, data=b""))
        with pytest.raises(AlreadyExistsError):
            await stores.namespaces.create_namespace(NamespaceRow(id=row.id, name=f"ns-{uid()}", data=b""))
        assert await stores.namespaces.get_namespace(id=row.id) == row

    @store_test
    async def test_get_missing(self, stores: Stores) -> None:
        with pytest.raises(EntityNotFoundError):
            await stores.namespaces.get_namespace(id=uid())
        with pytest.raises(EntityNotFoundError):
            await stores.namespaces.get_namespace(name=uid())

    @store_test
    async def test_update_with_version_condition(self, stores: Stores) -> None:
        row = self._ns(version=1)
        await stores.namespaces.create_namespace(row)
        row.data, row.notification_version = b"cfg-2", 2
        await stores.namespaces.update_namespace(row, expected_notification_version=1)
        assert await stores.namespaces.get_namespace(id=row.id) == row
        stale = NamespaceRow(row.id, row.name, b"stale", True, 3)
        with pytest.raises(ConditionFailedError):
            await stores.namespaces.update_namespace(stale, expected_notification_version=1)
        assert (await stores.namespaces.get_namespace(name=row.name)).data == b"cfg-2"

    @store_test
    async def test_list_paging(self, stores: Stores) -> None:
        mine = [self._ns() for _ in range(5)]
        for row in mine:
            await stores.namespaces.create_namespace(row)
        seen: list[str] = []
        token: bytes | None = None
        for _ in range(10_000):
            rows, token = await stores.namespaces.list_namespaces(2, token)
            assert len(rows) <= 2
            seen.extend(r.id for r in rows)
            if token is None:
                break
        assert len(seen) == len(set(seen))
        assert {r.id for r in mine} <= set(seen)
