"""History trees (``history_tree``) and versioned nodes (``history_node``).

Nodes of one branch share a partition, sorted by node_id ascending and txn_id descending, so the
first row of each node id is the one with the highest txn_id: the version readers must see.

Which branch stores which node ids, what a fork's ancestors are and what a delete may remove are
decided by ``..history_tree``; this module only runs the CQL.
"""

from __future__ import annotations

import asyncio

from .. import history_tree as ht
from ..errors import EntityNotFoundError
from ..protocols import BranchAncestor, HistoryAppend, HistoryBranch, HistoryNode
from .session import CassandraSession, Row
from .shards import now_us

_READ_CHUNK = 256


def _ancestors(row: Row) -> list[BranchAncestor]:
    return ht.ancestors_from_pairs(row.get("ancestors"))


class HistoryWriter:
    """The node writes an execution request makes before its batch, and their undo."""

    def __init__(self, db: CassandraSession) -> None:
        self._db = db
        # An UPDATE creates the branch row without touching ``ancestors``: an INSERT would reset the
        # ancestors of a branch that already exists, and IF NOT EXISTS would cost a Paxos round.
        self._touch_branch = db.prepare(
            "UPDATE {ks}.history_tree SET created_time = ? WHERE tree_id = ? AND branch_id = ?"
        )
        self._insert_node = db.prepare(
            "INSERT INTO {ks}.history_node (tree_id, branch_id, node_id, txn_id, event_count, data) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._delete_node = db.prepare(
            "DELETE FROM {ks}.history_node WHERE tree_id = ? AND branch_id = ? AND node_id = ? AND txn_id = ?"
        )
        self._delete_branch_row = db.prepare(
            "DELETE FROM {ks}.history_tree WHERE tree_id = ? AND branch_id = ?"
        )

    async def write(self, append: HistoryAppend) -> None:
        node = append.node
        writes = [
            self._db.execute(
                self._insert_node,
                (append.tree_id, append.branch_id, node.node_id, node.txn_id, node.event_count, node.data),
            )
        ]
        if append.is_new_branch:
            writes.append(self._db.execute(self._touch_branch, (now_us(), append.tree_id, append.branch_id)))
        await asyncio.gather(*writes)

    async def write_all(self, appends: list[HistoryAppend]) -> None:
        if appends:
            await asyncio.gather(*(self.write(a) for a in appends))

    async def undo_all(self, appends: list[HistoryAppend]) -> None:
        """Deletes exactly the node versions ``appends`` wrote (a txn_id is never reused), and the
        branch rows of first batches (their branch ids are fresh)."""
        writes = []
        for a in appends:
            n = a.node
            writes.append(self._db.execute(self._delete_node, (a.tree_id, a.branch_id, n.node_id, n.txn_id)))
            if a.is_new_branch:
                writes.append(self._db.execute(self._delete_branch_row, (a.tree_id, a.branch_id)))
        await asyncio.gather(*writes)


class CassandraHistoryStore:
    def __init__(self, db: CassandraSession, writer: HistoryWriter) -> None:
        self._db = db
        self._writer = writer
        self._select_branch = db.prepare(
            "SELECT ancestors FROM {ks}.history_tree WHERE tree_id = ? AND branch_id = ?"
        )
        self._select_tree = db.prepare("SELECT branch_id, ancestors FROM {ks}.history_tree WHERE tree_id = ?")
        self._insert_branch = db.prepare(
            "INSERT INTO {ks}.history_tree (tree_id, branch_id, ancestors, created_time) VALUES (?, ?, ?, ?)"
        )
        self._select_nodes = db.prepare(
            "SELECT node_id, txn_id, data, event_count FROM {ks}.history_node "
            "WHERE tree_id = ? AND branch_id = ? AND node_id >= ? AND node_id < ? LIMIT ?"
        )
        self._delete_nodes = db.prepare(
            "DELETE FROM {ks}.history_node WHERE tree_id = ? AND branch_id = ? "
            "AND node_id >= ? AND node_id < ?"
        )
        self._delete_branch_row = db.prepare(
            "DELETE FROM {ks}.history_tree WHERE tree_id = ? AND branch_id = ?"
        )

    async def append_history_nodes(self, append: HistoryAppend) -> None:
        await self._writer.write(append)

    async def _load_branch(self, tree_id: str, branch_id: str) -> HistoryBranch | None:
        rows = await self._db.execute(self._select_branch, (tree_id, branch_id))
        if not rows:
            return None
        return HistoryBranch(tree_id, branch_id, _ancestors(rows[0]))

    async def _read_nodes(
        self, tree_id: str, branch_id: str, lo: int, hi: int, want: int
    ) -> list[HistoryNode]:
        """Up to ``want`` nodes in [lo, hi), each node id once with its highest txn_id."""
        nodes: list[HistoryNode] = []
        while len(nodes) < want and lo < hi:
            limit = max(_READ_CHUNK, 2 * (want - len(nodes)))
            rows = await self._db.execute(self._select_nodes, (tree_id, branch_id, lo, hi, limit))
            for r in rows:
                if nodes and nodes[-1].node_id == r["node_id"]:
                    continue  # an older txn_id of a node already taken (txn_id sorts descending)
                nodes.append(HistoryNode(r["node_id"], r["txn_id"], r["data"] or b"", r["event_count"] or 0))
            if len(rows) < limit:
                break
            # The slice may have stopped inside the last node's versions; its winner is taken already.
            lo = rows[-1]["node_id"] + 1
        return nodes[:want]

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
        start = ht.page_start(min_node_id, page_size, token)
        # A branch written only through non-first appends has no row: read it alone.
        branch = await self._load_branch(tree_id, branch_id) or HistoryBranch(tree_id, branch_id)
        nodes: list[HistoryNode] = []
        want = page_size + 1  # one extra tells whether another page exists
        for seg in ht.read_ranges(branch, start, max_node_id):
            nodes.extend(
                await self._read_nodes(tree_id, seg.branch_id, seg.start, seg.end, want - len(nodes))
            )
            if len(nodes) >= want:
                break
        return ht.split_page(nodes, page_size)

    async def fork_history_branch(
        self, tree_id: str, base_branch_id: str, fork_node_id: int, new_branch_id: str
    ) -> HistoryBranch:
        base = await self._load_branch(tree_id, base_branch_id)
        if base is None:
            raise EntityNotFoundError(f"history branch {tree_id}/{base_branch_id} not found")
        branch = ht.fork_branch(base, fork_node_id, new_branch_id)
        await self._db.execute(
            self._insert_branch, (tree_id, new_branch_id, ht.ancestors_to_pairs(branch.ancestors), now_us())
        )
        return branch

    async def get_history_tree(self, tree_id: str) -> list[HistoryBranch]:
        rows = await self._db.execute(self._select_tree, (tree_id,))
        return [HistoryBranch(tree_id, r["branch_id"], _ancestors(r)) for r in rows]

    async def delete_history_branch(self, tree_id: str, branch_id: str) -> None:
        target = await self._load_branch(tree_id, branch_id) or HistoryBranch(tree_id, branch_id)
        await self._db.execute(self._delete_branch_row, (tree_id, branch_id))
        for seg in ht.deletable_ranges(target, await self.get_history_tree(tree_id)):
            await self._db.execute(self._delete_nodes, (tree_id, seg.branch_id, seg.start, seg.end))
