"""History trees: branches (with their ancestors) and versioned nodes.

A node is keyed (tree_id, branch_id, node_id, txn_id); a rewrite of the same node id with a higher
txn_id supersedes the old one, and reads use SQLite's documented "bare column with MAX()" behaviour
to return, per node id, the columns of the row holding the highest txn_id.

A branch owns the node ids from its last ancestor's ``end_node_id`` upwards; below that, reads follow
the ancestors, each owning ``[previous end, end_node_id)``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from ..errors import EntityNotFoundError
from ..protocols import BranchAncestor, HistoryAppend, HistoryBranch, HistoryNode
from .db import Database, decode_token, encode_token

_INF = 1 << 62


def write_append(conn: sqlite3.Connection, append: HistoryAppend) -> None:
    """Writes one node (and, for a run's first batch, its branch row); called inside a transaction."""
    if append.is_new_branch:
        conn.execute(
            "INSERT OR IGNORE INTO history_tree (tree_id, branch_id, ancestors) VALUES (?, ?, '[]')",
            (append.tree_id, append.branch_id),
        )
    node = append.node
    conn.execute(
        "INSERT INTO history_node (tree_id, branch_id, node_id, txn_id, event_count, data) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (append.tree_id, append.branch_id, node.node_id, node.txn_id, node.event_count, node.data),
    )


def _encode_ancestors(ancestors: list[BranchAncestor]) -> str:
    return json.dumps([[a.branch_id, a.end_node_id] for a in ancestors])


def _decode_ancestors(text: str) -> list[BranchAncestor]:
    return [BranchAncestor(branch_id=b, end_node_id=e) for b, e in json.loads(text)]


def _load_branch(conn: sqlite3.Connection, tree_id: str, branch_id: str) -> HistoryBranch | None:
    row = conn.execute(
        "SELECT ancestors FROM history_tree WHERE tree_id = ? AND branch_id = ?", (tree_id, branch_id)
    ).fetchone()
    if row is None:
        return None
    return HistoryBranch(tree_id=tree_id, branch_id=branch_id, ancestors=_decode_ancestors(row[0]))


def _segments(branch: HistoryBranch) -> Iterator[tuple[str, int, int]]:
    """(branch_id, begin, end) pieces that make up the branch, in node order."""
    begin = 0
    for anc in branch.ancestors:
        yield anc.branch_id, begin, anc.end_node_id
        begin = anc.end_node_id
    yield branch.branch_id, begin, _INF


def _read_nodes(
    conn: sqlite3.Connection, tree_id: str, branch_id: str, lo: int, hi: int, limit: int
) -> list[HistoryNode]:
    rows = conn.execute(
        "SELECT node_id, MAX(txn_id), data, event_count FROM history_node "
        "WHERE tree_id = ? AND branch_id = ? AND node_id >= ? AND node_id < ? "
        "GROUP BY node_id ORDER BY node_id LIMIT ?",
        (tree_id, branch_id, lo, hi, limit),
    ).fetchall()
    return [HistoryNode(node_id=r[0], txn_id=r[1], data=r[2], event_count=r[3]) for r in rows]


class SqliteHistoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append_history_nodes(self, append: HistoryAppend) -> None:
        await self._db.write(lambda conn: write_append(conn, append))

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
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        start = max(min_node_id, decode_token(token) or min_node_id)

        def query(conn: sqlite3.Connection) -> tuple[list[HistoryNode], bytes | None]:
            branch = _load_branch(conn, tree_id, branch_id)
            if branch is None:
                # A branch written only through non-first appends has no row: read it alone.
                branch = HistoryBranch(tree_id=tree_id, branch_id=branch_id)
            nodes: list[HistoryNode] = []
            want = page_size + 1  # one extra tells whether another page exists
            for seg_branch, begin, end in _segments(branch):
                lo, hi = max(begin, start), min(end, max_node_id)
                if lo >= hi:
                    continue
                nodes.extend(_read_nodes(conn, tree_id, seg_branch, lo, hi, want - len(nodes)))
                if len(nodes) >= want:
                    break
            if len(nodes) > page_size:
                return nodes[:page_size], encode_token(nodes[page_size].node_id)
            return nodes, None

        return await self._db.read(query)

    async def fork_history_branch(
        self, tree_id: str, base_branch_id: str, fork_node_id: int, new_branch_id: str
    ) -> HistoryBranch:
        def txn(conn: sqlite3.Connection) -> HistoryBranch:
            base = _load_branch(conn, tree_id, base_branch_id)
            if base is None:
                raise EntityNotFoundError(f"history branch {tree_id}/{base_branch_id} not found")
            ancestors: list[BranchAncestor] = []
            for seg_branch, begin, end in _segments(base):
                if begin >= fork_node_id:
                    break
                ancestors.append(BranchAncestor(seg_branch, min(end, fork_node_id)))
            branch = HistoryBranch(tree_id=tree_id, branch_id=new_branch_id, ancestors=ancestors)
            conn.execute(
                "INSERT INTO history_tree (tree_id, branch_id, ancestors) VALUES (?, ?, ?)",
                (tree_id, new_branch_id, _encode_ancestors(ancestors)),
            )
            return branch

        return await self._db.write(txn)

    async def get_history_tree(self, tree_id: str) -> list[HistoryBranch]:
        def query(conn: sqlite3.Connection) -> list[HistoryBranch]:
            rows = conn.execute(
                "SELECT branch_id, ancestors FROM history_tree WHERE tree_id = ? ORDER BY branch_id",
                (tree_id,),
            ).fetchall()
            return [HistoryBranch(tree_id, r[0], _decode_ancestors(r[1])) for r in rows]

        return await self._db.read(query)

    async def delete_history_branch(self, tree_id: str, branch_id: str) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            target = _load_branch(conn, tree_id, branch_id) or HistoryBranch(tree_id, branch_id)
            conn.execute("DELETE FROM history_tree WHERE tree_id = ? AND branch_id = ?", (tree_id, branch_id))
            others = [
                HistoryBranch(tree_id, r[0], _decode_ancestors(r[1]))
                for r in conn.execute(
                    "SELECT branch_id, ancestors FROM history_tree WHERE tree_id = ?", (tree_id,)
                )
            ]
            for seg_branch, begin, end in _segments(target):
                # Nodes of seg_branch below what any remaining branch still reads are shared: keep them.
                keep_below = begin
                for other in others:
                    if other.branch_id == seg_branch:
                        keep_below = _INF
                    for anc in other.ancestors:
                        if anc.branch_id == seg_branch:
                            keep_below = max(keep_below, anc.end_node_id)
                if keep_below < end:
                    conn.execute(
                        "DELETE FROM history_node WHERE tree_id = ? AND branch_id = ? "
                        "AND node_id >= ? AND node_id < ?",
                        (tree_id, seg_branch, keep_below, end),
                    )

        await self._db.write(txn)
