"""Version histories: table tests per function, then hypothesis properties over realistic branches."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.replication.version_history import (
    VersionHistories,
    VersionHistory,
    VersionHistoryError,
    VersionHistoryItem,
    compare_for_winner,
    find_lca_item,
    is_lca_appendable,
)

It = VersionHistoryItem


def vh(*items: tuple[int, int], branch_id: str = "") -> VersionHistory:
    return VersionHistory.from_list(items, branch_id)


# -- construction and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], []),
        ([(1, 0)], [It(1, 0)]),
        ([(3, 1), (5, 2), (9, 12)], [It(3, 1), It(5, 2), It(9, 12)]),
        ([[3, 1], [5, 2]], [It(3, 1), It(5, 2)]),
        ([It(4, 7)], [It(4, 7)]),
    ],
)
def test_from_list_accepts_increasing_items(items: list, expected: list[VersionHistoryItem]) -> None:
    h = VersionHistory.from_list(items, "b1")
    assert h.items == expected
    assert all(type(it) is VersionHistoryItem for it in h.items)
    assert h.branch_id == "b1"


def test_from_list_accepts_objects_with_event_id_and_version() -> None:
    @dataclass(frozen=True)
    class BusItem:
        event_id: int
        version: int

    assert VersionHistory.from_list([BusItem(2, 1), BusItem(6, 11)]).items == [It(2, 1), It(6, 11)]


@pytest.mark.parametrize(
    ("items", "fragments"),
    [
        ([(0, 1)], ["(0, 1)", "event id 0", "start at 1"]),
        ([(-2, 1)], ["(-2, 1)", "event id -2"]),
        ([(1, -1)], ["(1, -1)", "negative version -1"]),
        ([(5, 1), (5, 2)], ["item #1", "(5, 2)", "event id 5", "(5, 1)"]),
        ([(5, 1), (4, 2)], ["item #1", "(4, 2)", "event id 4", "(5, 1)"]),
        ([(5, 2), (7, 2)], ["item #1", "(7, 2)", "version 2", "(5, 2)"]),
        ([(5, 3), (7, 2)], ["item #1", "(7, 2)", "version 2", "(5, 3)"]),
        ([(1, 1), (2, 2), (3, 1)], ["item #2", "(3, 1)", "(2, 2)"]),
        ([(1,)], ["(1,)", "not an (event_id, version) pair"]),
        ([("a", 1)], ["'a'", "not an (event_id, version) pair"]),
        ([(1.5, 1)], ["1.5", "not an (event_id, version) pair"]),
    ],
)
def test_from_list_rejects_inconsistent_items(items: list, fragments: list[str]) -> None:
    with pytest.raises(VersionHistoryError) as err:
        VersionHistory.from_list(items, "br")
    for fragment in fragments:
        assert fragment in str(err.value)


def test_constructor_validates_like_from_list() -> None:
    with pytest.raises(VersionHistoryError, match=r"\(3, 1\)"):
        VersionHistory("x", [It(4, 1), It(3, 1)])
    assert VersionHistory("x", [(4, 1)]).items == [It(4, 1)]  # type: ignore[list-item]


def test_version_history_error_is_a_value_error() -> None:
    assert issubclass(VersionHistoryError, ValueError)


# -- simple accessors ---------------------------------------------------------------------------


def test_empty_branch() -> None:
    h = VersionHistory("empty")
    assert h.is_empty()
    assert h.last_event_id() == 0
    assert h.to_list() == []
    with pytest.raises(VersionHistoryError, match="'empty' is empty"):
        h.last_item()
    with pytest.raises(VersionHistoryError, match="'empty' is empty"):
        h.first_item()


def test_first_last_items() -> None:
    h = vh((3, 1), (5, 2), (9, 12))
    assert not h.is_empty()
    assert h.first_item() == It(3, 1)
    assert h.last_item() == It(9, 12)
    assert h.last_event_id() == 9
    assert h.to_list() == [(3, 1), (5, 2), (9, 12)]


# -- add_or_update ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "event_id", "version", "expected"),
    [
        ([], 1, 0, [(1, 0)]),
        ([], 4, 7, [(4, 7)]),
        ([(3, 1)], 4, 1, [(4, 1)]),
        ([(3, 1)], 10, 1, [(10, 1)]),
        ([(3, 1)], 4, 2, [(3, 1), (4, 2)]),
        ([(3, 1), (5, 2)], 8, 2, [(3, 1), (8, 2)]),
        ([(3, 1), (5, 2)], 6, 21, [(3, 1), (5, 2), (6, 21)]),
    ],
)
def test_add_or_update(
    start: list[tuple[int, int]], event_id: int, version: int, expected: list[tuple[int, int]]
) -> None:
    h = vh(*start)
    h.add_or_update(event_id, version)
    assert h.to_list() == expected


@pytest.mark.parametrize(
    ("start", "event_id", "version", "fragments"),
    [
        ([], 0, 1, ["event 0", "event id 0"]),
        ([], 1, -1, ["event 1", "negative version -1"]),
        ([(3, 1)], 3, 1, ["event 3", "(3, 1)", "event id 3"]),
        ([(3, 1)], 2, 1, ["event 2", "(2, 1)", "(3, 1)"]),
        ([(3, 1)], 3, 2, ["event 3", "(3, 2)", "event id 3"]),
        ([(3, 5)], 4, 4, ["event 4", "(4, 4)", "version 4", "(3, 5)"]),
        ([(3, 1), (5, 5)], 9, 2, ["event 9", "(9, 2)", "(5, 5)"]),
    ],
)
def test_add_or_update_rejects_and_changes_nothing(
    start: list[tuple[int, int]], event_id: int, version: int, fragments: list[str]
) -> None:
    h = vh(*start, branch_id="b")
    with pytest.raises(VersionHistoryError) as err:
        h.add_or_update(event_id, version)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert "'b'" in str(err.value)
    assert h.to_list() == start


# -- contains / event_version -------------------------------------------------------------------

BRANCH = vh((3, 1), (5, 2), (9, 12))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (It(1, 1), True),
        (It(3, 1), True),
        (It(4, 2), True),
        (It(5, 2), True),
        (It(6, 12), True),
        (It(9, 12), True),
        (It(3, 2), False),
        (It(4, 1), False),
        (It(6, 2), False),
        (It(10, 12), False),
        (It(0, 1), False),
        (It(0, 0), False),
        (It(-1, 1), False),
        (It(5, 7), False),
    ],
)
def test_contains(item: VersionHistoryItem, expected: bool) -> None:
    assert BRANCH.contains(item) is expected


def test_empty_branch_contains_nothing() -> None:
    assert not VersionHistory().contains(It(1, 0))
    assert not VersionHistory().contains(It(0, 0))


@pytest.mark.parametrize(("event_id", "version"), [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 12), (9, 12)])
def test_event_version(event_id: int, version: int) -> None:
    assert BRANCH.event_version(event_id) == version


@pytest.mark.parametrize("event_id", [0, -1, 10, 100])
def test_event_version_off_the_branch(event_id: int) -> None:
    with pytest.raises(VersionHistoryError) as err:
        vh((3, 1), (9, 12), branch_id="main").event_version(event_id)
    assert f"event {event_id} " in str(err.value)
    assert "'main'" in str(err.value)
    assert "1..9" in str(err.value)


def test_event_version_on_empty_branch() -> None:
    with pytest.raises(VersionHistoryError, match=r"event 1 .*1\.\.0"):
        VersionHistory().event_version(1)


# -- copy / copy_until --------------------------------------------------------------------------


def test_copy_is_independent() -> None:
    h = vh((3, 1), branch_id="a")
    c = h.copy()
    c.add_or_update(4, 2)
    assert h.to_list() == [(3, 1)]
    assert c.to_list() == [(3, 1), (4, 2)]
    assert c.branch_id == "a"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (It(1, 1), [(1, 1)]),
        (It(3, 1), [(3, 1)]),
        (It(4, 2), [(3, 1), (4, 2)]),
        (It(5, 2), [(3, 1), (5, 2)]),
        (It(7, 12), [(3, 1), (5, 2), (7, 12)]),
        (It(9, 12), [(3, 1), (5, 2), (9, 12)]),
    ],
)
def test_copy_until(item: VersionHistoryItem, expected: list[tuple[int, int]]) -> None:
    h = vh((3, 1), (5, 2), (9, 12), branch_id="b7")
    c = h.copy_until(item)
    assert c.to_list() == expected
    assert c.branch_id == "b7"
    assert h.to_list() == [(3, 1), (5, 2), (9, 12)]


@pytest.mark.parametrize("item", [It(0, 1), It(3, 2), It(4, 1), It(10, 12), It(9, 11)])
def test_copy_until_an_item_not_on_the_branch(item: VersionHistoryItem) -> None:
    with pytest.raises(VersionHistoryError) as err:
        vh((3, 1), (5, 2), (9, 12), branch_id="b7").copy_until(item)
    assert f"until {tuple(item)}" in str(err.value)
    assert f"event {item.event_id} with version {item.version}" in str(err.value)


# -- find_lca_item / is_lca_appendable ----------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "incoming", "expected"),
    [
        # identical
        ([(3, 1), (5, 2)], [(3, 1), (5, 2)], It(5, 2)),
        # incoming extends local with the same version / with a newer version
        ([(3, 1)], [(7, 1)], It(3, 1)),
        ([(3, 1)], [(3, 1), (6, 11)], It(3, 1)),
        # incoming is older than local
        ([(3, 1), (6, 11)], [(2, 1)], It(2, 1)),
        # fork: both failed over from version 1 after event 3, to 11 and to 2
        ([(3, 1), (6, 11)], [(3, 1), (8, 2)], It(3, 1)),
        # fork where one side kept writing with the shared version
        ([(5, 1)], [(3, 1), (4, 2)], It(3, 1)),
        # longer histories sharing a middle version
        ([(2, 0), (4, 1), (9, 21), (10, 31)], [(2, 0), (4, 1), (7, 21), (8, 42)], It(7, 21)),
        ([(2, 0), (4, 1), (9, 21)], [(2, 0), (3, 1), (5, 12)], It(3, 1)),
    ],
)
def test_find_lca_item(
    local: list[tuple[int, int]], incoming: list[tuple[int, int]], expected: VersionHistoryItem
) -> None:
    assert find_lca_item(vh(*local), vh(*incoming)) == expected
    assert find_lca_item(vh(*incoming), vh(*local)) == expected


@pytest.mark.parametrize(
    ("local", "incoming"),
    [
        ([(3, 1)], [(3, 2)]),
        ([(3, 1), (5, 3)], [(2, 2), (6, 4)]),
        ([], [(1, 0)]),
        ([(1, 0)], []),
        ([], []),
    ],
)
def test_find_lca_item_without_common_ancestor(
    local: list[tuple[int, int]], incoming: list[tuple[int, int]]
) -> None:
    with pytest.raises(VersionHistoryError) as err:
        find_lca_item(vh(*local, branch_id="L"), vh(*incoming, branch_id="R"))
    msg = str(err.value)
    assert "no common ancestor" in msg
    assert f"'L' {local}" in msg
    assert f"'R' {incoming}" in msg


def test_find_lca_item_rejects_two_writers_of_one_version() -> None:
    # version 2 covers events 6..6 on one side and 3..5 on the other: impossible with one writer.
    with pytest.raises(VersionHistoryError) as err:
        find_lca_item(vh((5, 1), (6, 2)), vh((2, 0), (5, 2)))
    assert "version 2" in str(err.value)
    assert "6..6 vs 3..5" in str(err.value)


@pytest.mark.parametrize(
    ("local", "lca", "expected"),
    [
        ([(3, 1)], It(3, 1), True),
        ([(3, 1), (5, 2)], It(5, 2), True),
        ([(3, 1), (5, 2)], It(3, 1), False),
        ([(3, 1), (5, 2)], It(4, 2), False),
        ([(5, 1)], It(3, 1), False),
        ([], It(0, 0), False),
        ([], It(1, 0), False),
    ],
)
def test_is_lca_appendable(local: list[tuple[int, int]], lca: VersionHistoryItem, expected: bool) -> None:
    assert is_lca_appendable(vh(*local), lca) is expected


# -- compare_for_winner -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([(3, 1), (5, 2)], [(3, 1), (5, 2)], 0),
        ([(3, 1), (5, 12)], [(3, 1), (8, 2)], 1),
        ([(3, 1), (8, 2)], [(3, 1), (5, 12)], -1),
        ([(3, 1), (9, 2)], [(3, 1), (8, 2)], 1),
        ([(7, 2)], [(3, 1), (8, 2)], -1),
        ([], [(1, 0)], -1),
        ([(1, 0)], [], 1),
        ([], [], 0),
    ],
)
def test_compare_for_winner(a: list[tuple[int, int]], b: list[tuple[int, int]], expected: int) -> None:
    assert compare_for_winner(vh(*a), vh(*b)) == expected


# -- VersionHistories ---------------------------------------------------------------------------


def three_branches() -> VersionHistories:
    return VersionHistories(
        [
            vh((3, 1), (6, 11), branch_id="a"),
            vh((3, 1), (8, 2), branch_id="b"),
            vh((3, 1), (5, 2), (7, 22), branch_id="c"),
        ],
        current_index=1,
    )


def test_version_histories_validation() -> None:
    with pytest.raises(VersionHistoryError, match="at least one branch"):
        VersionHistories([])
    with pytest.raises(VersionHistoryError, match="index 1 is out of range: the run has 1 branches"):
        VersionHistories([vh((1, 0))], current_index=1)
    with pytest.raises(VersionHistoryError, match="index -1"):
        VersionHistories([vh((1, 0))], current_index=-1)


def test_current_and_set_current() -> None:
    hs = three_branches()
    assert hs.current().branch_id == "b"
    assert hs.set_current(1) is False
    assert hs.set_current(2) is True
    assert hs.current().branch_id == "c"
    with pytest.raises(VersionHistoryError, match="index 3 is out of range: the run has 3 branches"):
        hs.set_current(3)
    assert hs.current_index == 2


def test_add() -> None:
    hs = three_branches()
    new = vh((3, 1), (6, 11), (9, 31), branch_id="d")
    assert hs.add(new) == 3
    assert hs.histories[3] is new
    assert hs.current_index == 1  # the caller decides which branch wins
    with pytest.raises(VersionHistoryError) as err:
        hs.add(vh((3, 1), (8, 2), branch_id="again"))
    assert "'again' [(3, 1), (8, 2)] is already branch #1 ('b')" in str(err.value)
    assert len(hs.histories) == 4


@pytest.mark.parametrize(
    ("incoming", "expected"),
    [
        ([(3, 1), (6, 11), (9, 31)], (0, It(6, 11))),
        ([(3, 1), (9, 2)], (1, It(8, 2))),
        ([(3, 1), (4, 2)], (1, It(4, 2))),  # b and c both reach (4, 2): the lowest index wins
        ([(3, 1), (5, 2), (6, 22)], (2, It(6, 22))),
        ([(2, 1)], (0, It(2, 1))),
        ([(3, 1), (4, 99)], (0, It(3, 1))),
    ],
)
def test_find_lca(incoming: list[tuple[int, int]], expected: tuple[int, VersionHistoryItem]) -> None:
    assert three_branches().find_lca(vh(*incoming)) == expected


def test_find_lca_without_common_ancestor() -> None:
    with pytest.raises(VersionHistoryError) as err:
        three_branches().find_lca(vh((3, 5), branch_id="z"))
    assert "'z' [(3, 5)] has no common ancestor with any of the 3 local branches" in str(err.value)


@pytest.mark.parametrize(
    ("item", "expected"),
    [(It(1, 1), 0), (It(6, 11), 0), (It(4, 2), 1), (It(8, 2), 1), (It(7, 22), 2)],
)
def test_find_first_index_containing(item: VersionHistoryItem, expected: int) -> None:
    assert three_branches().find_first_index_containing(item) == expected


@pytest.mark.parametrize("item", [It(9, 2), It(4, 1), It(0, 0), It(7, 11)])
def test_find_first_index_containing_none(item: VersionHistoryItem) -> None:
    with pytest.raises(VersionHistoryError) as err:
        three_branches().find_first_index_containing(item)
    assert f"event {item.event_id} with version {item.version}" in str(err.value)


def test_version_histories_to_list_from_list() -> None:
    hs = three_branches()
    data = hs.to_list()
    assert data == [
        1,
        [("a", [(3, 1), (6, 11)]), ("b", [(3, 1), (8, 2)]), ("c", [(3, 1), (5, 2), (7, 22)])],
    ]
    assert VersionHistories.from_list(data) == hs
    assert VersionHistories.from_list(pickle.loads(pickle.dumps(data))) == hs
    # a JSON round trip turns the tuples into lists
    as_json = [1, [["a", [[3, 1], [6, 11]]], ["b", [[3, 1], [8, 2]]], ["c", [[3, 1], [5, 2], [7, 22]]]]]
    assert VersionHistories.from_list(as_json) == hs


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "not [current_index"),
        ([0], "not [current_index"),
        (["x", [("a", [(1, 0)])]], "not [current_index"),
        ([0, [("a",)]], "not [current_index"),
        ([0, []], "at least one branch"),
        ([2, [("a", [(1, 0)])]], "index 2 is out of range"),
        ([0, [("a", [(2, 0), (1, 1)])]], "'a' item #1: item (1, 1)"),
    ],
)
def test_version_histories_from_list_rejects(data: list, fragment: str) -> None:
    with pytest.raises(VersionHistoryError) as err:
        VersionHistories.from_list(data)
    assert fragment in str(err.value)


# -- properties ---------------------------------------------------------------------------------

# A step of writing: the batch ends `event_step` events later with a version `version_step` higher.
steps = st.lists(
    st.tuples(
        st.integers(1, 20), st.integers(0, 3).flatmap(lambda n: st.just(0) if n else st.integers(1, 50))
    ),
    min_size=1,
    max_size=25,
)


def build(branch_steps: list[tuple[int, int]], start_version: int = 0) -> tuple[VersionHistory, list[int]]:
    """The branch written by `branch_steps`, and the version of each event (index 0 is event 1)."""
    h = VersionHistory("p")
    per_event: list[int] = []
    event_id, version = 0, start_version
    for event_step, version_step in branch_steps:
        event_id += event_step
        version += version_step
        h.add_or_update(event_id, version)
        per_event.extend([version] * event_step)
    return h, per_event


@st.composite
def branches(draw: st.DrawFn) -> VersionHistory:
    return build(draw(steps), draw(st.integers(0, 5)))[0]


@st.composite
def contained_items(draw: st.DrawFn, h: VersionHistory) -> VersionHistoryItem:
    event_id = draw(st.integers(1, h.last_event_id()))
    return It(event_id, h.event_version(event_id))


@st.composite
def forked_pair(draw: st.DrawFn) -> tuple[VersionHistory, VersionHistory, VersionHistoryItem]:
    """Two branches that share a prefix ending at the fork point, then were written by different
    clusters: only one side may continue with the fork point's version, and they use disjoint
    newer versions (each version has one writer)."""
    prefix = draw(branches())
    fork = prefix.last_item()
    a, b = prefix.copy(), prefix.copy()
    a.branch_id, b.branch_id = "a", "b"
    first, second = (a, b) if draw(st.booleans()) else (b, a)
    if draw(st.booleans()):
        first.add_or_update(fork.event_id + draw(st.integers(1, 10)), fork.version)
    for h, odd in ((first, True), (second, False)):
        k = 0  # this side's k-th own version is fork.version + 2k - 1 (odd) or + 2k (even)
        for event_step, n in draw(st.lists(st.tuples(st.integers(1, 10), st.integers(0, 3)), max_size=6)):
            if n or not k:
                k += max(n, 1)
            h.add_or_update(h.last_event_id() + event_step, fork.version + 2 * k - odd)
    return a, b, fork


@given(steps, st.integers(0, 5))
def test_building_a_branch_keeps_it_increasing_and_records_each_version(
    branch_steps: list[tuple[int, int]], start_version: int
) -> None:
    h, per_event = build(branch_steps, start_version)
    for prev, item in zip(h.items, h.items[1:], strict=False):
        assert prev.event_id < item.event_id
        assert prev.version < item.version
    assert h.last_event_id() == len(per_event)
    for event_id, version in enumerate(per_event, start=1):
        assert h.event_version(event_id) == version
    # the items are exactly the last event of each run of equal versions
    expected = [
        It(e, v) for e, v in enumerate(per_event, start=1) if e == len(per_event) or per_event[e] != v
    ]
    assert h.items == expected


@given(steps, st.integers(0, 5))
def test_contains_exactly_the_added_events(branch_steps: list[tuple[int, int]], start_version: int) -> None:
    h, per_event = build(branch_steps, start_version)
    versions = set(per_event) | {0, 1, per_event[-1] + 1}
    for event_id in range(-1, len(per_event) + 3):
        for version in versions:
            on_branch = 1 <= event_id <= len(per_event) and per_event[event_id - 1] == version
            assert h.contains(It(event_id, version)) is on_branch


@given(branches(), st.integers(1, 20), st.integers(-3, 3))
def test_add_or_update_either_extends_or_changes_nothing(h: VersionHistory, de: int, dv: int) -> None:
    last = h.last_item()
    before = h.to_list()
    event_id, version = last.event_id + de - 10, last.version + dv
    try:
        h.add_or_update(event_id, version)
    except VersionHistoryError as err:
        assert h.to_list() == before
        assert str(event_id) in str(err)
        assert event_id <= last.event_id or version < last.version
    else:
        assert event_id > last.event_id and version >= last.version
        assert h.last_item() == (event_id, version)
        assert h.contains(It(event_id, version))
        assert h.copy_until(last).to_list() == before


@given(st.data())
def test_lca_of_a_branch_and_its_prefix_is_the_prefix_end(data: st.DataObject) -> None:
    h = data.draw(branches())
    x = data.draw(contained_items(h))
    prefix = h.copy_until(x)
    assert prefix.last_item() == x
    assert h.items[: len(prefix.items) - 1] == prefix.items[:-1]
    assert find_lca_item(h, prefix) == x
    assert find_lca_item(prefix, h) == x
    assert is_lca_appendable(prefix, x)
    assert is_lca_appendable(h, x) is (x == h.last_item())


@given(forked_pair())
def test_lca_of_forked_branches_is_the_fork_point(
    pair: tuple[VersionHistory, VersionHistory, VersionHistoryItem],
) -> None:
    a, b, fork = pair
    assert find_lca_item(a, b) == fork
    assert find_lca_item(b, a) == fork
    # the literal definition: the last event id at which both branches have the same version
    shared = [
        e
        for e in range(1, min(a.last_event_id(), b.last_event_id()) + 1)
        if a.event_version(e) == b.event_version(e)
    ]
    assert max(shared) == fork.event_id
    assert a.copy_until(fork).items == b.copy_until(fork).items


@given(branches(), branches())
def test_lca_is_symmetric(a: VersionHistory, b: VersionHistory) -> None:
    def lca(x: VersionHistory, y: VersionHistory) -> VersionHistoryItem | str:
        try:
            return find_lca_item(x, y)
        except VersionHistoryError as err:
            return "none" if "no common ancestor" in str(err) else "inconsistent"

    ab, ba = lca(a, b), lca(b, a)
    assert ab == ba
    if isinstance(ab, VersionHistoryItem):
        assert a.contains(ab) and b.contains(ab)


@given(st.data())
def test_lca_with_an_extension_is_appendable(data: st.DataObject) -> None:
    local = data.draw(branches())
    extension = local.copy()
    for event_step, version_step in data.draw(steps):
        extension.add_or_update(
            extension.last_event_id() + event_step, extension.last_item().version + version_step
        )
    lca = find_lca_item(local, extension)
    assert lca == local.last_item()
    assert is_lca_appendable(local, lca)
    assert compare_for_winner(extension, local) == 1


@given(forked_pair())
def test_lca_of_a_real_fork_is_not_appendable(
    pair: tuple[VersionHistory, VersionHistory, VersionHistoryItem],
) -> None:
    a, b, fork = pair
    for local, incoming in ((a, b), (b, a)):
        lca = find_lca_item(local, incoming)
        assert is_lca_appendable(local, lca) is (local.last_item() == fork)


@given(branches())
def test_version_history_round_trips(h: VersionHistory) -> None:
    data = h.to_list()
    assert all(type(x) is tuple and len(x) == 2 for x in data)
    assert VersionHistory.from_list(data, h.branch_id) == h
    assert VersionHistory.from_list(pickle.loads(pickle.dumps(data)), h.branch_id) == h
    assert h.copy() == h


@given(branches(), branches(), branches())
def test_compare_for_winner_is_an_order(a: VersionHistory, b: VersionHistory, c: VersionHistory) -> None:
    assert compare_for_winner(a, a) == 0
    assert compare_for_winner(a, b) == -compare_for_winner(b, a)
    assert compare_for_winner(a, b) in (-1, 0, 1)
    if compare_for_winner(a, b) >= 0 and compare_for_winner(b, c) >= 0:
        assert compare_for_winner(a, c) >= 0
    if compare_for_winner(a, b) > 0:
        la, lb = a.last_item(), b.last_item()
        assert la.version > lb.version or (la.version == lb.version and la.event_id > lb.event_id)


@given(forked_pair())
def test_the_winner_of_a_fork_has_the_higher_last_version(
    pair: tuple[VersionHistory, VersionHistory, VersionHistoryItem],
) -> None:
    a, b, _ = pair
    winner = compare_for_winner(a, b)
    if a.last_item().version != b.last_item().version:
        assert winner == (1 if a.last_item().version > b.last_item().version else -1)


@given(st.data())
def test_version_histories_find_lca_matches_brute_force(data: st.DataObject) -> None:
    a, b, _ = data.draw(forked_pair())
    hs = VersionHistories([a], current_index=0)
    if b.items != a.items:
        hs.add(b)
    source = data.draw(st.sampled_from(hs.histories))
    incoming = source.copy_until(data.draw(contained_items(source)))
    extra = data.draw(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 3)), max_size=3))
    for event_step, version_step in extra:
        incoming.add_or_update(
            incoming.last_event_id() + event_step, incoming.last_item().version + 1000 + version_step
        )
    lcas = [find_lca_item(h, incoming) for h in hs.histories]
    deepest = max(x.event_id for x in lcas)
    index = next(n for n, x in enumerate(lcas) if x.event_id == deepest)
    assert hs.find_lca(incoming) == (index, lcas[index])
    assert hs.histories[index].contains(lcas[index])
    assert incoming.contains(lcas[index])


@given(st.data())
def test_find_first_index_containing_matches_contains(data: st.DataObject) -> None:
    a, b, _ = data.draw(forked_pair())
    hs = VersionHistories([a])
    if b.items != a.items:
        hs.add(b)
    source = data.draw(st.sampled_from(hs.histories))
    item = data.draw(contained_items(source))
    index = hs.find_first_index_containing(item)
    assert hs.histories[index].contains(item)
    assert not any(h.contains(item) for h in hs.histories[:index])


@given(st.data())
def test_version_histories_round_trip(data: st.DataObject) -> None:
    a, b, _ = data.draw(forked_pair())
    hs = VersionHistories([a])
    if b.items != a.items:
        hs.add(b)
    hs.set_current(data.draw(st.integers(0, len(hs.histories) - 1)))
    restored = VersionHistories.from_list(pickle.loads(pickle.dumps(hs.to_list())))
    assert restored == hs
    assert restored.current() == hs.current()


@settings(max_examples=50)
@given(forked_pair())
def test_fork_then_resolve_end_to_end(
    pair: tuple[VersionHistory, VersionHistory, VersionHistoryItem],
) -> None:
    """The receiver's side of the table in the module docstring, for a whole incoming branch."""
    local, incoming, fork = pair
    hs = VersionHistories([local.copy()])
    index, lca = hs.find_lca(incoming)
    assert lca == fork
    if incoming.items == local.items or local.contains(incoming.last_item()):
        return  # duplicate or older
    if is_lca_appendable(hs.histories[index], lca):
        for item in incoming.items:
            if item.event_id > lca.event_id:
                hs.histories[index].add_or_update(item.event_id, item.version)
        assert hs.current().items == incoming.items
        return
    new = hs.histories[index].copy_until(lca)
    for item in incoming.items:
        if item.event_id > lca.event_id:
            new.add_or_update(item.event_id, item.version)
    assert new.items == incoming.items
    new_index = hs.add(new)
    if compare_for_winner(new, hs.current()) > 0:
        assert hs.set_current(new_index)
    winner = max(local, incoming, key=lambda h: (h.last_item().version, h.last_event_id()))
    assert hs.current().items == winner.items
