"""The membership cases of the persistence contract (``StoreContract`` combines them).

The table is one partition shared with every other test on the same server, so each case uses its
own host ids and looks only at them."""

from __future__ import annotations

import time

import pytest

from cadenza.engine.persistence import ClusterMember, Stores

from .aio import store_test
from .contract_base import ContractBase, uid

S = 1_000_000


def _now() -> int:
    # Real time: a backend may also expire rows by its own clock (a TTL).
    return time.time_ns() // 1000


def _member(
    role: str, host: str, *, at: int, ttl_s: int = 30, address: str = "10.0.0.1:7234"
) -> ClusterMember:
    return ClusterMember(role, host, address, session_start=at, last_heartbeat=at, expiry=at + ttl_s * S)


async def _mine(stores: Stores, hosts: set[str], *, now: int, role: str | None = None) -> list[ClusterMember]:
    return [m for m in await stores.membership.list_members(now_us=now, role=role) if m.host_id in hosts]


class MembershipContract(ContractBase):
    @store_test
    async def test_a_member_is_listed_with_what_it_wrote(self, stores: Stores) -> None:
        now, host = _now(), f"host-{uid()}"
        member = _member("history", host, at=now, address="10.1.2.3:7234")
        await stores.membership.upsert_member(member)
        assert await _mine(stores, {host}, now=now) == [member]
        assert await _mine(stores, {host}, now=now, role="history") == [member]
        assert await _mine(stores, {host}, now=now, role="matching") == []

    @store_test
    async def test_members_are_ordered_by_role_then_host(self, stores: Stores) -> None:
        now, tag = _now(), uid()
        hosts = {f"b-{tag}", f"a-{tag}"}
        for host in sorted(hosts, reverse=True):
            for role in ("worker", "matching", "history", "frontend"):
                await stores.membership.upsert_member(_member(role, host, at=now))
        listed = [(m.role, m.host_id) for m in await _mine(stores, hosts, now=now)]
        assert listed == [
            (role, host) for role in ("frontend", "history", "matching", "worker") for host in sorted(hosts)
        ]

    @store_test
    async def test_a_heartbeat_moves_the_expiry_on(self, stores: Stores) -> None:
        now, host = _now(), f"host-{uid()}"
        await stores.membership.upsert_member(_member("history", host, at=now, ttl_s=5))
        later = now + 4 * S
        beat = ClusterMember("history", host, "10.0.0.1:7234", now, later, later + 5 * S)
        await stores.membership.upsert_member(beat)
        assert await _mine(stores, {host}, now=now + 8 * S) == [beat]
        assert await _mine(stores, {host}, now=now + 9 * S) == []

    @store_test
    async def test_an_expired_member_is_not_listed_and_prune_keeps_the_live(self, stores: Stores) -> None:
        now, tag = _now(), uid()
        gone, live = f"gone-{tag}", f"live-{tag}"
        await stores.membership.upsert_member(_member("history", gone, at=now - 20 * S, ttl_s=10))
        await stores.membership.upsert_member(_member("history", live, at=now, ttl_s=30))
        assert [m.host_id for m in await _mine(stores, {gone, live}, now=now)] == [live]
        await stores.membership.prune_members(now)
        assert [m.host_id for m in await _mine(stores, {gone, live}, now=now)] == [live]
        assert [m.host_id for m in await _mine(stores, {gone, live}, now=now - 15 * S)] in (
            [live],
            [gone, live],
        )

    @store_test
    async def test_remove_takes_one_role_of_one_host(self, stores: Stores) -> None:
        now, host = _now(), f"host-{uid()}"
        for role in ("history", "matching"):
            await stores.membership.upsert_member(_member(role, host, at=now))
        await stores.membership.remove_member("history", host)
        await stores.membership.remove_member("history", host)  # absent: nothing happens
        assert [m.role for m in await _mine(stores, {host}, now=now)] == ["matching"]

    @store_test
    async def test_a_bad_member_is_refused(self, stores: Stores) -> None:
        now, host = _now(), f"host-{uid()}"
        with pytest.raises(ValueError, match="role 'scheduler'"):
            await stores.membership.upsert_member(_member("scheduler", host, at=now))
        with pytest.raises(ValueError, match="expiry"):
            await stores.membership.upsert_member(_member("history", host, at=now, ttl_s=0))
        assert await _mine(stores, {host}, now=now) == []
