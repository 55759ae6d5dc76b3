"""History trees: branches (with their ancestors) and versioned nodes.

A node is keyed (tree_id, branch_id, node_id, txn_id); a rewrite of the same node id with a higher
txn_id supersedes the old one, and reads use SQLite's documented "bare column with MAX()" behaviour
to return, per node id, the columns of the row holding the highest txn_id.

Which branch stores which node ids, what a fork's ancestors are and what a delete may remove are
decided by ``..history_tree``; this module only runs the SQL.
"""

from __future__ import annotations

import json
import sqlite3

from .. import history_tree as ht
from ..errors import EntityNotFoundError
from ..protocols import HistoryAppend, HistoryBranch, HistoryNode
from .db import Database


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


def _encode_ancestors(branch: HistoryBranch) -> str:
    # JSON writes the pairs as lists: the column holds [[branch_id, end_node_id], ...].
    return json.dumps(ht.ancestors_to_pairs(branch.ancestors))


def _decode_branch(tree_id: str, branch_id: str, ancestors: str) -> HistoryBranch:
    return HistoryBranch(tree_id, branch_id, ht.ancestors_from_pairs(json.loads(ancestors)))


def _load_branch(conn: sqlite3.Connection, tree_id: str, branch_id: str) -> HistoryBranch | None:
    row = conn.execute(
        "SELECT ancestors FROM history_tree WHERE tree_id = ? AND branch_id = ?", (tree_id, branch_id)
    ).fetchone()
    return None if row is None else _decode_branch(tree_id, branch_id, row[0])


def _load_tree(conn: sqlite3.Connection, tree_id: str) -> list[HistoryBranch]:
    rows = conn.execute(
        "SELECT branch_id, ancestors FROM history_tree WHERE tree_id = ? ORDER BY branch_id", (tree_id,)
    ).fetchall()
    return [_decode_branch(tree_id, r[0], r[1]) for r in rows]


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
        start = ht.page_start(min_node_id, page_size, token)

        def query(conn: sqlite3.Connection) -> tuple[list[HistoryNode], bytes | None]:
            branch = _load_branch(conn, tree_id, branch_id)
            if branch is None:
                # A branch written only through non-first appends has no row: read it alone.
                branch = HistoryBranch(tree_id=tree_id, branch_id=branch_id)
            nodes: list[HistoryNode] = []
            want = page_size + 1  # one extra tells whether another page exists
            for seg in ht.read_ranges(branch, start, max_node_id):
                nodes.extend(_read_nodes(conn, tree_id, seg.branch_id, seg.start, seg.end, want - len(nodes)))
                if len(nodes) >= want:
                    break
            return ht.split_page(nodes, page_size)

        return await self._db.read(query)

    async def fork_history_branch(
        self, tree_id: str, base_branch_id: str, fork_node_id: int, new_branch_id: str
    ) -> HistoryBranch:
        def txn(conn: sqlite3.Connection) -> HistoryBranch:
            base = _load_branch(conn, tree_id, base_branch_id)
            if base is None:
                raise EntityNotFoundError(f"history branch {tree_id}/{base_branch_id} not found")
            branch = ht.fork_branch(base, fork_node_id, new_branch_id)
            conn.execute(
                "INSERT INTO history_tree (tree_id, branch_id, ancestors) VALUES (?, ?, ?)",
                (tree_id, new_branch_id, _encode_ancestors(branch)),
            )
            return branch

        return await self._db.write(txn)

    async def get_history_tree(self, tree_id: str) -> list[HistoryBranch]:
        return await self._db.read(lambda conn: _load_tree(conn, tree_id))

    async def delete_history_branch(self, tree_id: str, branch_id: str) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            target = _load_branch(conn, tree_id, branch_id) or HistoryBranch(tree_id, branch_id)
            conn.execute("DELETE FROM history_tree WHERE tree_id = ? AND branch_id = ?", (tree_id, branch_id))
            for seg in ht.deletable_ranges(target, _load_tree(conn, tree_id)):
                conn.execute(
                    "DELETE FROM history_node WHERE tree_id = ? AND branch_id = ? "
                    "AND node_id >= ? AND node_id < ?",
                    (tree_id, seg.branch_id, seg.start, seg.end),
                )

        await self._db.write(txn)
