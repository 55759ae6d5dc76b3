"""History-tree arithmetic: table tests per function, then hypothesis properties over trees built by
random forks, appends and deletes against an in-memory model of the node table."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.engine.persistence.errors import AlreadyExistsError, PersistenceError
from cadenza.engine.persistence.history_tree import (
    END,
    FIRST_NODE_ID,
    HistoryTreeError,
    Segment,
    ancestors_from_pairs,
    ancestors_to_pairs,
    decode_page_token,
    deletable_ranges,
    encode_page_token,
    fork_branch,
    page_start,
    read_ranges,
    segments,
    split_page,
)
from cadenza.engine.persistence.protocols import BranchAncestor, HistoryBranch, HistoryNode

TREE = "tree"


def br(branch_id: str, *ancestors: tuple[str, int]) -> HistoryBranch:
    return HistoryBranch(TREE, branch_id, [BranchAncestor(b, e) for b, e in ancestors])


def pairs(branch: HistoryBranch) -> list[tuple[str, int]]:
    return ancestors_to_pairs(branch.ancestors)


# -- segments and read ranges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        (br("b"), [("b", 1, END)]),
        (br("b", ("a", 3)), [("a", 1, 3), ("b", 3, END)]),
        (br("b", ("a", 3), ("c", 6)), [("a", 1, 3), ("c", 3, 6), ("b", 6, END)]),
    ],
)
def test_segments(branch: HistoryBranch, expected: list[tuple[str, int, int]]) -> None:
    assert segments(branch) == [Segment(*s) for s in expected]


@pytest.mark.parametrize(
    ("start", "max_node_id", "expected"),
    [
        (1, 100, [("a", 1, 3), ("c", 3, 6), ("b", 6, 100)]),
        (0, 100, [("a", 1, 3), ("c", 3, 6), ("b", 6, 100)]),
        (2, 5, [("a", 2, 3), ("c", 3, 5)]),
        (4, 6, [("c", 4, 6)]),
        (3, 4, [("c", 3, 4)]),
        (6, 7, [("b", 6, 7)]),
        (7, 7, []),
        (9, 5, []),
    ],
)
def test_read_ranges_clip_segments(
    start: int, max_node_id: int, expected: list[tuple[str, int, int]]
) -> None:
    assert read_ranges(br("b", ("a", 3), ("c", 6)), start, max_node_id) == [Segment(*s) for s in expected]


# -- fork --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "fork_node_id", "expected"),
    [
        (br("base"), 5, [("base", 5)]),
        (br("base"), 2, [("base", 2)]),
        (br("f1", ("base", 4)), 6, [("base", 4), ("f1", 6)]),
        (br("f1", ("base", 4)), 4, [("base", 4)]),
        (br("f1", ("base", 4)), 3, [("base", 3)]),
        (br("f2", ("base", 4), ("f1", 6)), 5, [("base", 4), ("f1", 5)]),
        (br("f2", ("base", 4), ("f1", 6)), 9, [("base", 4), ("f1", 6), ("f2", 9)]),
    ],
)
def test_fork_branch(base: HistoryBranch, fork_node_id: int, expected: list[tuple[str, int]]) -> None:
    branch = fork_branch(base, fork_node_id, "new")
    assert (branch.tree_id, branch.branch_id, pairs(branch)) == (TREE, "new", expected)


@pytest.mark.parametrize("fork_node_id", [1, 0, -3, END, END + 1])
def test_fork_outside_the_node_ids_is_rejected_naming_the_ids(fork_node_id: int) -> None:
    with pytest.raises(HistoryTreeError) as info:
        fork_branch(br("base"), fork_node_id, "new")
    assert f"{TREE}" in str(info.value) and "base" in str(info.value) and str(fork_node_id) in str(info.value)


@pytest.mark.parametrize("new_branch_id", ["f1", "base"])
def test_fork_onto_an_id_of_the_base_chain_is_rejected(new_branch_id: str) -> None:
    with pytest.raises(AlreadyExistsError, match=f"branch id {new_branch_id} "):
        fork_branch(br("f1", ("base", 4)), 6, new_branch_id)


# -- delete ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "tree", "expected"),
    [
        # alone in its tree (or without a row at all): everything it stores
        (br("b"), [], [("b", 1, END)]),
        # the tree may still list the target: it is not one of "the others"
        (br("b"), [br("b")], [("b", 1, END)]),
        # a fork whose base remains: only the fork's own nodes
        (br("f", ("base", 3)), [br("base")], [("f", 3, END)]),
        # a base a fork reads below 2: the base's nodes from 2 on
        (br("base"), [br("f", ("base", 2))], [("base", 2, END)]),
        # two forks of it remain: the higher fork point wins
        (br("base"), [br("f", ("base", 3)), br("g", ("base", 5))], [("base", 5, END)]),
        # a fork of a deleted base: the base's nodes no sibling reads go with it
        (br("f", ("base", 5)), [br("g", ("base", 3))], [("base", 3, 5), ("f", 5, END)]),
        (br("f", ("base", 3)), [br("g", ("base", 5))], [("f", 3, END)]),
        # a fork of a fork: the middle branch is gone, the leaf still reads it below 6
        (
            br("f1", ("base", 4)),
            [br("base"), br("f2", ("base", 4), ("f1", 6))],
            [("f1", 6, END)],
        ),
    ],
)
def test_deletable_ranges(
    target: HistoryBranch, tree: list[HistoryBranch], expected: list[tuple[str, int, int]]
) -> None:
    assert deletable_ranges(target, tree) == [Segment(*s) for s in expected]


# -- paging and stored pairs -------------------------------------------------------------------


@pytest.mark.parametrize("node_id", [1, 17, 1 << 40])
def test_page_token_round_trip(node_id: int) -> None:
    token = encode_page_token(node_id)
    assert token == str(node_id).encode()  # the shape both stores have always issued
    assert decode_page_token(token) == node_id


@pytest.mark.parametrize("token", [None, b""])
def test_no_token_is_the_first_page(token: bytes | None) -> None:
    assert decode_page_token(token) is None
    assert page_start(3, 10, token) == 3


@pytest.mark.parametrize("token", [b"x", b"\xff", b'"5"', b"true", b"[1]", b"1.5", b"null", b"{}"])
def test_invalid_page_token(token: bytes) -> None:
    with pytest.raises(PersistenceError, match="invalid page token"):
        page_start(1, 10, token)


def test_page_start() -> None:
    assert page_start(1, 10, encode_page_token(7)) == 7
    assert page_start(9, 10, encode_page_token(7)) == 9  # a token never reads below min_node_id
    with pytest.raises(ValueError, match="page_size"):
        page_start(1, 0, None)


def node(node_id: int) -> HistoryNode:
    return HistoryNode(node_id, 1, b"")


def test_split_page() -> None:
    assert split_page([], 2) == ([], None)
    assert split_page([node(1), node(2)], 2) == ([node(1), node(2)], None)
    assert split_page([node(1), node(4), node(6)], 2) == ([node(1), node(4)], encode_page_token(6))


@pytest.mark.parametrize(
    "stored",
    [
        [["a", 3], ["c", 6]],  # SQLite: a JSON list of lists
        [("a", 3), ("c", 6)],  # Cassandra: a list of tuples
    ],
)
def test_ancestors_from_pairs(stored: list[list[object]] | list[tuple[str, int]]) -> None:
    ancestors = ancestors_from_pairs(stored)
    assert ancestors == [BranchAncestor("a", 3), BranchAncestor("c", 6)]
    assert ancestors_to_pairs(ancestors) == [("a", 3), ("c", 6)]


def test_no_stored_ancestors() -> None:
    assert ancestors_from_pairs(None) == [] == ancestors_from_pairs([])


# -- properties over a model of the node table -------------------------------------------------


@dataclass
class Model:
    """What a store holds: branch rows, and nodes as (stored branch id, node id) -> payload."""

    rows: dict[str, HistoryBranch] = field(default_factory=dict)
    nodes: dict[tuple[str, int], str] = field(default_factory=dict)
    next_id: int = 0

    def new_id(self) -> str:
        self.next_id += 1
        return f"b{self.next_id}"

    def append_own(self, branch: HistoryBranch, count: int) -> None:
        """Writes ``count`` nodes where the branch stores its own: from its own segment's start."""
        own = segments(branch)[-1]
        for n in range(own.start, own.start + count):
            self.nodes[(branch.branch_id, n)] = f"{branch.branch_id}/{n}"

    def read_keys(self, branch: HistoryBranch) -> list[tuple[str, int]]:
        """The stored nodes a full read of the branch returns, in order (the store's queries)."""
        return [
            (seg.branch_id, n)
            for seg in segments(branch)
            for (b, n) in sorted(self.nodes, key=lambda k: k[1])
            if b == seg.branch_id and seg.start <= n < seg.end
        ]

    def read(self, branch: HistoryBranch) -> list[tuple[int, str]]:
        return [(n, self.nodes[(b, n)]) for b, n in self.read_keys(branch)]

    def read_paged(self, branch: HistoryBranch, page_size: int) -> list[tuple[int, str]]:
        """The stores' paging loop, with the model's node table in place of the queries."""
        out: list[tuple[int, str]] = []
        token: bytes | None = None
        while True:
            start = page_start(FIRST_NODE_ID, page_size, token)
            want = page_size + 1
            got: list[HistoryNode] = []
            for seg in read_ranges(branch, start, END):
                found = [
                    HistoryNode(n, 1, self.nodes[(b, n)].encode())
                    for b, n in sorted(self.nodes, key=lambda k: k[1])
                    if b == seg.branch_id and seg.start <= n < seg.end
                ]
                got.extend(found[: want - len(got)])
                if len(got) >= want:
                    break
            page, token = split_page(got, page_size)
            assert len(page) <= page_size
            out.extend((n.node_id, n.data.decode()) for n in page)
            if token is None:
                return out

    def delete(self, branch_id: str) -> None:
        target = self.rows.pop(branch_id)
        for seg in deletable_ranges(target, self.rows.values()):
            for key in [k for k in self.nodes if k[0] == seg.branch_id and seg.start <= k[1] < seg.end]:
                del self.nodes[key]


@st.composite
def trees(draw: st.DrawFn, max_ops: int = 10) -> Model:
    """A tree grown from one branch by random forks (each writing some nodes of its own) and deletes."""
    model = Model()
    root = br(model.new_id())
    model.rows[root.branch_id] = root
    model.append_own(root, draw(st.integers(0, 12)))
    for _ in range(draw(st.integers(0, max_ops))):
        live = sorted(model.rows)
        if live and draw(st.integers(0, 3)) == 0:
            model.delete(draw(st.sampled_from(live)))
        elif live:
            base = model.rows[draw(st.sampled_from(live))]
            fork = fork_branch(base, draw(st.integers(FIRST_NODE_ID + 1, 16)), model.new_id())
            model.rows[fork.branch_id] = fork
            model.append_own(fork, draw(st.integers(0, 5)))
    return model


def assert_tiles(branch: HistoryBranch) -> None:
    segs = segments(branch)
    assert segs[0].start == FIRST_NODE_ID and segs[-1].end == END
    assert all(s.start < s.end for s in segs), segs
    assert all(a.end == b.start for a, b in itertools.pairwise(segs)), segs
    assert len({s.branch_id for s in segs}) == len(segs), segs
    assert segs[-1].branch_id == branch.branch_id


@given(trees())
def test_segments_of_any_fork_chain_tile_the_node_ids(model: Model) -> None:
    for branch in model.rows.values():
        assert_tiles(branch)


@given(trees(), st.data())
def test_a_fork_reads_its_base_below_the_fork_point_each_node_id_once(
    model: Model, data: st.DataObject
) -> None:
    if not model.rows:
        return
    base = model.rows[data.draw(st.sampled_from(sorted(model.rows)))]
    fork_node_id = data.draw(st.integers(FIRST_NODE_ID + 1, 20))
    fork = fork_branch(base, fork_node_id, model.new_id())
    assert_tiles(fork)
    before = model.read(base)
    assert model.read(fork) == [x for x in before if x[0] < fork_node_id]
    model.rows[fork.branch_id] = fork
    model.append_own(fork, data.draw(st.integers(0, 5)))
    ids = [n for n, _ in model.read(fork)]
    assert ids == sorted(set(ids))
    assert model.read(base) == before  # writing the fork never changes what the base reads


@given(trees(), st.data())
def test_a_delete_removes_exactly_what_no_other_branch_reads(model: Model, data: st.DataObject) -> None:
    if not model.rows:
        return
    target_id = data.draw(st.sampled_from(sorted(model.rows)))
    others = [b for b in model.rows.values() if b.branch_id != target_id]
    reads_before = {b.branch_id: model.read(b) for b in others}
    still_read = {k for b in others for k in model.read_keys(b)}
    stored_before = set(model.nodes)
    expected_gone = set(model.read_keys(model.rows[target_id])) - still_read
    model.delete(target_id)
    assert {b.branch_id: model.read(b) for b in others} == reads_before
    assert stored_before - set(model.nodes) == expected_gone


@given(trees(), st.randoms(use_true_random=False))
def test_deleting_every_branch_leaves_no_node(model: Model, rnd: random.Random) -> None:
    order = sorted(model.rows)
    rnd.shuffle(order)
    for branch_id in order:
        model.delete(branch_id)
    assert model.nodes == {}


@settings(max_examples=50)
@given(trees(), st.data())
def test_paging_reads_the_same_nodes_as_one_read(model: Model, data: st.DataObject) -> None:
    for branch in model.rows.values():
        page_size = data.draw(st.integers(1, 6))
        assert model.read_paged(branch, page_size) == model.read(branch)
