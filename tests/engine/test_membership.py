"""Membership through the store and the consistent-hash ring: the ring's rules as properties, and
the heartbeats, expiry and ring changes of several processes sharing one store (SQLite here; the
store's side is in the persistence contract, run on every backend)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.engine.clock import ManualClock
from cadenza.engine.membership import HashRing, Membership, MembershipSettings, shard_key
from cadenza.engine.persistence import open_sqlite_stores

host_ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=24)
rings = st.lists(host_ids, min_size=1, max_size=8, unique=True)
KEYS = [shard_key(i) for i in range(512)]


# -- the ring ------------------------------------------------------------------------------------------


@given(rings)
def test_every_key_has_exactly_one_owner_among_the_hosts(hosts: list[str]) -> None:
    ring = HashRing(hosts)
    assert set(ring.assignment(KEYS).values()) <= set(hosts)


@given(rings, st.randoms(use_true_random=False))
def test_the_same_hosts_make_the_same_ring_in_any_order(hosts: list[str], rng: Any) -> None:
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    assert HashRing(hosts).assignment(KEYS) == HashRing(shuffled).assignment(KEYS)


@given(rings, host_ids)
def test_a_joining_host_takes_keys_only_for_itself(hosts: list[str], new: str) -> None:
    if new in hosts:
        return
    before, after = HashRing(hosts).assignment(KEYS), HashRing([*hosts, new]).assignment(KEYS)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert all(after[k] == new for k in moved)


@given(st.lists(host_ids, min_size=2, max_size=8, unique=True), st.data())
def test_a_leaving_host_moves_only_its_own_keys(hosts: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(hosts))
    before = HashRing(hosts).assignment(KEYS)
    after = HashRing([h for h in hosts if h != gone]).assignment(KEYS)
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == gone}


@settings(max_examples=40, deadline=None)
@given(st.lists(host_ids, min_size=2, max_size=8, unique=True))
def test_each_host_gets_its_share_of_the_shards_within_30_percent(hosts: list[str]) -> None:
    ring = HashRing(hosts)
    counts = collections.Counter(ring.owner(shard_key(i)) for i in range(4096))
    even = 4096 / len(hosts)
    assert all(abs(counts[h] - even) <= 0.3 * even for h in hosts), counts


def test_an_empty_ring_owns_nothing() -> None:
    with pytest.raises(LookupError, match="no hosts"):
        HashRing().owner("shard/1")
    with pytest.raises(ValueError, match="replicas"):
        HashRing(["a"], replicas=0)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"ttl_s .* longer than heartbeat_s"):
        MembershipSettings(heartbeat_s=2.0, ttl_s=1.0)
    with pytest.raises(ValueError, match="refresh_s must be positive"):
        MembershipSettings(refresh_s=0)


# -- processes sharing a store -------------------------------------------------------------------------

FAST = MembershipSettings(heartbeat_s=1.0, ttl_s=3.0, refresh_s=1.0, max_join_s=5.0)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Lets the members' loops run (their store calls finish on the store's threads)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"never: {what}")


def _hosts(m: Membership, role: str = "history") -> tuple[str, ...]:
    return m.ring(role).hosts


def test_hosts_see_each_other_and_a_graceful_stop_leaves_at_the_next_refresh() -> None:
    async def main() -> None:
        stores = open_sqlite_stores(":memory:")
        clock = ManualClock()
        changes: list[tuple[str, tuple[str, ...]]] = []
        a = Membership(stores.membership, clock, host_id="a", rpc_address="10.0.0.1:7234", settings=FAST)
        b = Membership(
            stores.membership,
            clock,
            host_id="b",
            rpc_address="10.0.0.2:7234",
            roles=["history"],
            settings=FAST,
        )
        a.subscribe(lambda role, ring: changes.append((role, ring.hosts)))
        try:
            await a.start()
            await b.start()
            assert _hosts(a) == ("a",) and _hosts(b) == ("a", "b")
            clock.advance(1.0)
            await _until(lambda: _hosts(a) == ("a", "b"), "a sees b")
            assert a.ring("matching").hosts == ("a",)  # b runs history only
            assert [(m.role, m.rpc_address) for m in a.members() if m.host_id == "b"] == [
                ("history", "10.0.0.2:7234")
            ]
            await b.stop()
            clock.advance(1.0)
            await _until(lambda: _hosts(a) == ("a",), "a drops b")
            history_changes = [hosts for role, hosts in changes if role == "history"]
            assert history_changes == [("a",), ("a", "b"), ("a",)]
        finally:
            await a.stop()
            await b.stop()
            await stores.close()

    asyncio.run(main())


def test_a_host_whose_heartbeats_stop_leaves_once_its_expiry_passes() -> None:
    async def main() -> None:
        stores = open_sqlite_stores(":memory:")
        clock = ManualClock()
        a = Membership(stores.membership, clock, host_id="a", rpc_address="a:1", settings=FAST)
        b = Membership(stores.membership, clock, host_id="b", rpc_address="b:1", settings=FAST)
        try:
            await a.start()
            await b.start()
            # b dies without a word: its loop stops, its rows stay.
            assert b._task is not None
            b._task.cancel()
            await asyncio.gather(b._task, return_exceptions=True)
            b.joined = False
            for second in range(1, 4):
                clock.advance(1.0)
                await _until(lambda: a._last_beat == clock.now_us(), f"a's heartbeat at {second} s")
                await a.refresh()
                if clock.now_us() - b._last_beat < FAST.ttl_s * 1_000_000:
                    assert _hosts(a) == ("a", "b"), f"b is still a member at {second} s"
            clock.advance(1.0)
            await _until(lambda: _hosts(a) == ("a",), "a drops b once its expiry passed")
        finally:
            await a.stop()
            await stores.close()

    asyncio.run(main())


class _Unreachable:
    """A store that refuses the first ``failures`` writes, then passes calls on."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def upsert_member(self, member: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("store not up yet")
        await self.inner.upsert_member(member)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_joining_retries_a_store_that_is_not_up_yet_and_gives_up_after_max_join() -> None:
    async def main() -> None:
        stores = open_sqlite_stores(":memory:")
        clock = ManualClock()

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.001)
                clock.advance(0.05)

        ticker = asyncio.create_task(tick())
        try:
            patient = Membership(_Unreachable(stores.membership, 3), clock, host_id="a", rpc_address="a:1")
            await patient.start()
            assert _hosts(patient) == ("a",)
            await patient.stop()
            hopeless = Membership(
                _Unreachable(stores.membership, 10**6),
                clock,
                host_id="b",
                rpc_address="b:1",
                settings=MembershipSettings(max_join_s=2.0),
            )
            with pytest.raises(RuntimeError, match=r"within 2 s \(global.membership.maxJoinDuration\)"):
                await hopeless.start()
        finally:
            ticker.cancel()
            await stores.close()

    asyncio.run(main())


def test_a_server_joins_as_every_role_at_its_address_and_leaves_when_it_stops(tmp_path: Any) -> None:
    from cadenza.ops.devserver import ServerProcess, ServerSettings

    async def main() -> None:
        db = str(tmp_path / "cadenza.db")
        server = ServerProcess(ServerSettings(port=0, db_filename=db, visibility=False))
        port = await server.start()
        assert server.membership is not None and server.host is not None
        host_id = server.host.history.host
        members = server.membership.members()
        assert [(m.role, m.host_id, m.rpc_address) for m in members] == [
            (role, host_id, f"127.0.0.1:{port}") for role in ("frontend", "history", "matching", "worker")
        ]
        assert server.membership.ring("history").hosts == (host_id,)
        await server.stop()
        stores = open_sqlite_stores(db)
        try:
            assert await stores.membership.list_members(now_us=0) == []
        finally:
            await stores.close()

    asyncio.run(main())
