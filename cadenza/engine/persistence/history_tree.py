"""History-tree arithmetic shared by every history store: pure functions over branches, no I/O.

Terms
-----

*Node*
    One batch of events of a branch, keyed by ``node_id`` (the event id of its first event; event
    ids start at ``FIRST_NODE_ID``). A node id may be written more than once; the version with the
    highest ``txn_id`` is the one readers see.
*Tree*
    Every branch of one run's history (``tree_id``).
*Branch*
    A linear history: ``branch_id`` and its *ancestors*.
*Ancestor* ``(branch_id, end_node_id)``
    "Node ids up to ``end_node_id`` (exclusive, and from the previous ancestor's ``end_node_id``) are
    read from branch ``branch_id``". Ancestors are listed oldest first and their ends strictly
    increase; a branch never names itself or the same ancestor twice.
*Segment* ``(branch_id, start, end)``
    A half-open node-id range ``[start, end)`` of a branch and the branch that stores it. The segments
    of a branch are its ancestors' ranges followed by its own range ``[last end, END)``: together they
    tile ``[FIRST_NODE_ID, END)``, so a read follows them in order and meets each node id once.
*Fork* at ``fork_node_id``
    A new branch that reads the base branch's segments below ``fork_node_id`` and stores its own nodes
    from there on. Its ancestor list is the base's, cut at the fork point: there is no chain of
    forks to walk at read time, and every segment of a given branch, in any branch of the tree,
    starts at the same node id (that branch's own start).
*Delete*
    Removes the branch's row and the nodes of its segments that no remaining branch reads. Because
    all segments of one stored branch start at the same node id, what the remaining branches read of
    it is a single range ``[start, max end)`` (everything, if that branch itself remains).
*Page token*
    The node id the next page starts at, as JSON (e.g. ``b"17"``).

Stores keep their I/O (rows, queries, the per-node "highest txn_id wins" read) and ask this module
which ranges to read and delete and what a fork's row holds, so every backend answers with the same
nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .errors import AlreadyExistsError, PersistenceError
from .protocols import BranchAncestor, HistoryBranch, HistoryNode

__all__ = [
    "END",
    "FIRST_NODE_ID",
    "HistoryTreeError",
    "Segment",
    "ancestors_from_pairs",
    "ancestors_to_pairs",
    "decode_page_token",
    "deletable_ranges",
    "encode_page_token",
    "fork_branch",
    "page_start",
    "read_ranges",
    "segments",
    "split_page",
]

FIRST_NODE_ID = 1
"""The lowest node id: a run's first event id."""

END = 1 << 62
"""Exclusive upper bound of a branch's own segment; below both SQLite INTEGER and CQL bigint limits."""


class HistoryTreeError(ValueError):
    """A request that cannot describe a valid tree (e.g. a fork that would share nothing)."""


class Segment(NamedTuple):
    branch_id: str
    start: int
    end: int
    """Exclusive."""


def ancestors_from_pairs(pairs: Iterable[Sequence[Any]] | None) -> list[BranchAncestor]:
    """Ancestors from their stored ``(branch_id, end_node_id)`` pairs (JSON lists or CQL tuples);
    ``None`` is how Cassandra returns an empty list."""
    return [BranchAncestor(branch_id=b, end_node_id=e) for b, e in pairs or ()]


def ancestors_to_pairs(ancestors: Iterable[BranchAncestor]) -> list[tuple[str, int]]:
    return [(a.branch_id, a.end_node_id) for a in ancestors]


def segments(branch: HistoryBranch) -> list[Segment]:
    """The branch's segments in node order, tiling ``[FIRST_NODE_ID, END)``.

    Stored ancestors are taken as they are (a segment whose end is not above its start is empty) so
    that reads of an odd row degrade to reading less, never to failing."""
    out: list[Segment] = []
    start = FIRST_NODE_ID
    for anc in branch.ancestors:
        out.append(Segment(anc.branch_id, start, anc.end_node_id))
        start = anc.end_node_id
    out.append(Segment(branch.branch_id, start, END))
    return out


def read_ranges(branch: HistoryBranch, start: int, max_node_id: int) -> list[Segment]:
    """The non-empty pieces of the branch's segments within ``[start, max_node_id)``, in node order:
    what a read queries, one stored branch per piece."""
    out: list[Segment] = []
    for seg in segments(branch):
        lo, hi = max(seg.start, start), min(seg.end, max_node_id)
        if lo < hi:
            out.append(Segment(seg.branch_id, lo, hi))
    return out


def fork_branch(base: HistoryBranch, fork_node_id: int, new_branch_id: str) -> HistoryBranch:
    """The branch a fork of ``base`` at ``fork_node_id`` creates: the base's segments below the fork
    point become its ancestors, the last one cut at ``fork_node_id``."""
    where = f"history tree {base.tree_id}: fork of branch {base.branch_id} at node {fork_node_id}"
    if fork_node_id <= FIRST_NODE_ID:
        raise HistoryTreeError(f"{where} would share no node (fork_node_id must be > {FIRST_NODE_ID})")
    if fork_node_id >= END:
        raise HistoryTreeError(f"{where} leaves the new branch no node ids (fork_node_id must be < {END})")
    if new_branch_id == base.branch_id or any(a.branch_id == new_branch_id for a in base.ancestors):
        # The new branch would read its own nodes as an ancestor's, and on a backend whose insert is
        # an upsert it would overwrite the base's row.
        raise AlreadyExistsError(f"{where}: branch id {new_branch_id} is already on that branch")
    ancestors = [
        BranchAncestor(seg.branch_id, min(seg.end, fork_node_id))
        for seg in segments(base)
        if seg.start < fork_node_id
    ]
    return HistoryBranch(tree_id=base.tree_id, branch_id=new_branch_id, ancestors=ancestors)


def _read_below(stored_branch_id: str, readers: Iterable[HistoryBranch]) -> int:
    """Node ids of ``stored_branch_id`` below this bound are read by some of ``readers``: all of them
    (``END``) if it is one of the readers, else up to the highest end any reader's ancestor gives it.
    Every reader's segment of that branch starts at the same node id, so the bound is exact."""
    bound = 0
    for reader in readers:
        if reader.branch_id == stored_branch_id:
            return END
        for anc in reader.ancestors:
            if anc.branch_id == stored_branch_id:
                bound = max(bound, anc.end_node_id)
    return bound


def deletable_ranges(target: HistoryBranch, tree: Iterable[HistoryBranch]) -> list[Segment]:
    """The node ranges deleting ``target`` may remove: the parts of its segments that no other branch
    of ``tree`` reads. ``tree`` may include ``target`` itself (it is skipped)."""
    others = [b for b in tree if b.branch_id != target.branch_id]
    out: list[Segment] = []
    for seg in segments(target):
        start = max(seg.start, _read_below(seg.branch_id, others))
        if start < seg.end:
            out.append(Segment(seg.branch_id, start, seg.end))
    return out


def encode_page_token(node_id: int) -> bytes:
    return json.dumps(node_id).encode()


def decode_page_token(token: bytes | None) -> int | None:
    """The node id a page token names, or ``None`` for no token (the first page)."""
    if not token:
        return None
    try:
        value = json.loads(token.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PersistenceError(f"invalid page token: {token!r}") from exc
    # bool is an int to Python but never a token this module wrote.
    if not isinstance(value, int) or isinstance(value, bool):
        raise PersistenceError(f"invalid page token: {token!r}")
    return value


def page_start(min_node_id: int, page_size: int, token: bytes | None) -> int:
    """Validates a read request and returns the node id its page starts at."""
    if page_size <= 0:
        raise ValueError("page_size must be positive")
    after = decode_page_token(token)
    return min_node_id if after is None else max(min_node_id, after)


def split_page(nodes: list[HistoryNode], page_size: int) -> tuple[list[HistoryNode], bytes | None]:
    """A page from up to ``page_size + 1`` nodes read in order: stores read one node more than the
    page so that the token is issued only when another page exists, and names where it starts."""
    if len(nodes) > page_size:
        return nodes[:page_size], encode_page_token(nodes[page_size].node_id)
    return nodes, None
