"""The failover-version arithmetic of ``cadenza.replication.cluster``: properties and the metadata checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.replication.cluster import (
    ClusterInformation,
    ClusterMetadata,
    ClusterMetadataError,
    next_failover_version,
    owner_of,
)


@st.composite
def topologies(draw: st.DrawFn, min_clusters: int = 1) -> tuple[int, dict[int, str]]:
    """An increment and distinct initial versions below it, by cluster name."""
    increment = draw(st.integers(1, 1000))
    initials = draw(
        st.lists(
            st.integers(0, increment - 1),
            min_size=min(min_clusters, increment),
            max_size=min(8, increment),
            unique=True,
        )
    )
    return increment, {v: f"c{n}" for n, v in enumerate(initials)}


def metadata_for(increment: int, by_initial: dict[int, str]) -> ClusterMetadata:
    names = sorted(by_initial.values())
    return ClusterMetadata(
        current_cluster_name=names[0],
        clusters={n: ClusterInformation(n, v) for v, n in by_initial.items()},
        failover_version_increment=increment,
        master_cluster_name=names[-1],
    )


currents = st.integers(0, 10**9)


@given(topologies(), currents, st.data())
def test_next_failover_version_is_the_smallest_owned_version_above_current(
    topology: tuple[int, dict[int, str]], current: int, data: st.DataObject
) -> None:
    increment, by_initial = topology
    initial = data.draw(st.sampled_from(sorted(by_initial)))
    nxt = next_failover_version(initial, current, increment)
    assert nxt > current
    assert owner_of(nxt, increment, by_initial) == by_initial[initial]
    # the owned versions are spaced `increment` apart, so the one before is not above `current`
    assert nxt - increment <= current
    if current < initial:
        assert nxt == initial


@settings(max_examples=200)
@given(st.integers(1, 30), st.integers(0, 200), st.data())
def test_next_failover_version_matches_brute_force(increment: int, current: int, data: st.DataObject) -> None:
    initial = data.draw(st.integers(0, increment - 1))
    brute = next(v for v in range(current + 1, current + increment + 1) if v % increment == initial)
    assert next_failover_version(initial, current, increment) == brute


@given(topologies(), currents)
def test_metadata_next_failover_version_agrees_with_the_function(
    topology: tuple[int, dict[int, str]], current: int
) -> None:
    increment, by_initial = topology
    md = metadata_for(increment, by_initial)
    for initial, name in by_initial.items():
        nxt = md.next_failover_version(name, current)
        assert nxt == next_failover_version(initial, current, increment)
        assert md.cluster_for_version(nxt) == name


@given(topologies(min_clusters=2), st.integers(0, 10**6), st.integers(1, 40))
def test_round_robin_failovers_only_grow(
    topology: tuple[int, dict[int, str]], start: int, rounds: int
) -> None:
    increment, by_initial = topology
    md = metadata_for(increment, by_initial)
    names = sorted(by_initial.values())
    version = start
    for n in range(rounds):
        target = names[n % len(names)]
        nxt = md.next_failover_version(target, version)
        assert version < nxt <= version + increment
        assert md.cluster_for_version(nxt) == target
        version = nxt


@given(topologies(), currents)
def test_failing_over_to_the_owner_moves_a_whole_increment(
    topology: tuple[int, dict[int, str]], current: int
) -> None:
    increment, by_initial = topology
    md = metadata_for(increment, by_initial)
    owned = next_failover_version(next(iter(by_initial)), current, increment)
    owner = md.cluster_for_version(owned)
    assert md.next_failover_version(owner, owned) == owned + increment


@given(topologies(), currents)
def test_owner_of_unknown_initial_version(topology: tuple[int, dict[int, str]], current: int) -> None:
    increment, by_initial = topology
    missing = [v for v in range(increment) if v not in by_initial]
    if not missing:
        return
    version = current // increment * increment + missing[0]
    with pytest.raises(ClusterMetadataError) as err:
        owner_of(version, increment, by_initial)
    assert f"failover version {version} belongs to no known cluster" in str(err.value)
    assert f"initial version {missing[0]} with increment {increment}" in str(err.value)


# -- ClusterMetadata validation -----------------------------------------------------------------


def test_single_cluster_default() -> None:
    md = ClusterMetadata.single("solo")
    assert md.current.name == "solo"
    assert md.is_master
    assert md.enabled_clusters() == ["solo"]
    assert md.cluster_for_version(0) == "solo"
    assert md.cluster_for_version(30) == "solo"
    assert md.next_failover_version("solo", 0) == 10


def test_three_clusters_as_in_the_examples() -> None:
    md = ClusterMetadata(
        "b",
        {n: ClusterInformation(n, v) for n, v in (("a", 1), ("b", 2), ("c", 3))},
        master_cluster_name="a",
    )
    assert not md.is_master
    assert md.cluster_for_version(22) == "b"
    assert md.next_failover_version("c", 22) == 23
    assert md.next_failover_version("a", 22) == 31
    assert md.next_failover_version("b", 22) == 32
    assert md.next_failover_version("a", 0) == 1


def test_duplicate_initial_versions_are_rejected() -> None:
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata("a", {"a": ClusterInformation("a", 1), "b": ClusterInformation("b", 1)})
    assert "clusterInformation.b.initialFailoverVersion 1 is also 'a''s" in str(err.value)


@pytest.mark.parametrize(("initial", "increment"), [(10, 10), (11, 10), (-1, 10), (5, 5), (1, 1)])
def test_initial_version_outside_the_increment_is_rejected(initial: int, increment: int) -> None:
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata("a", {"a": ClusterInformation("a", initial)}, failover_version_increment=increment)
    assert (
        f"clusterInformation.a.initialFailoverVersion {initial} must be at least 0 and "
        f"below failoverVersionIncrement {increment}"
    ) in str(err.value)


@pytest.mark.parametrize("increment", [0, -10])
def test_increment_below_one_is_rejected(increment: int) -> None:
    with pytest.raises(ClusterMetadataError, match=f"at least 1 \\(got {increment}\\)"):
        ClusterMetadata("a", {"a": ClusterInformation("a", 0)}, failover_version_increment=increment)


def test_unknown_current_cluster_is_rejected() -> None:
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata("zz", {"a": ClusterInformation("a", 0), "b": ClusterInformation("b", 1)})
    assert "currentClusterName 'zz' is not listed under clusterInformation (a, b)" in str(err.value)
    with pytest.raises(ClusterMetadataError, match=r"'zz' is not listed under clusterInformation \(none\)"):
        ClusterMetadata("zz", {})


def test_unknown_master_cluster_is_rejected() -> None:
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata("a", {"a": ClusterInformation("a", 0)}, master_cluster_name="m")
    assert "masterClusterName 'm' is not listed under clusterInformation" in str(err.value)


def test_misnamed_cluster_is_rejected() -> None:
    with pytest.raises(ClusterMetadataError, match=r"clusterInformation\.a: named 'b'"):
        ClusterMetadata("a", {"a": ClusterInformation("b", 0)})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata(
            "nowhere",
            {
                "a": ClusterInformation("a", 3),
                "b": ClusterInformation("b", 3),
                "c": ClusterInformation("c", 12),
                "d": ClusterInformation("x", 4),
            },
            master_cluster_name="boss",
        )
    msg = str(err.value)
    lines = [line for line in msg.splitlines() if line.startswith("  - ")]
    assert msg.startswith("invalid cluster metadata:\n")
    assert len(lines) == 5, msg
    for fragment in (
        "clusterInformation.b.initialFailoverVersion 3 is also 'a''s",
        "clusterInformation.c.initialFailoverVersion 12 must be at least 0 and below "
        "failoverVersionIncrement 10",
        "clusterInformation.d: named 'x'",
        "currentClusterName 'nowhere' is not listed",
        "masterClusterName 'boss' is not listed",
    ):
        assert fragment in msg


@given(
    st.integers(1, 50),
    st.lists(st.integers(-5, 60), min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_problems_lists_each_kind_of_fault(
    increment: int, initials: list[int], bad_current: bool, bad_master: bool
) -> None:
    clusters = {f"c{n}": ClusterInformation(f"c{n}", v) for n, v in enumerate(initials)}
    current = "missing" if bad_current else "c0"
    master = "gone" if bad_master else "c0"
    out_of_range = [v for v in initials if not 0 <= v < increment]
    duplicates = len(initials) - len(set(initials))
    expected = len(out_of_range) + duplicates + bad_current + bad_master
    if expected == 0:
        md = ClusterMetadata(current, clusters, increment, master)
        assert md.problems() == []
        return
    with pytest.raises(ClusterMetadataError) as err:
        ClusterMetadata(current, clusters, increment, master)
    lines = [line for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == expected


def test_several_clusters_need_a_master() -> None:
    with pytest.raises(ClusterMetadataError, match="masterClusterName is required"):
        ClusterMetadata("a", {"a": ClusterInformation("a", 1), "b": ClusterInformation("b", 2)})


def test_unknown_cluster_in_questions() -> None:
    md = ClusterMetadata.single("solo")
    with pytest.raises(ClusterMetadataError, match="unknown cluster 'other'; known: solo"):
        md.next_failover_version("other", 3)
    with pytest.raises(ClusterMetadataError, match="failover version 7 belongs to no known cluster"):
        ClusterMetadata(
            "a", {"a": ClusterInformation("a", 0), "b": ClusterInformation("b", 1)}, master_cluster_name="a"
        ).cluster_for_version(7)
