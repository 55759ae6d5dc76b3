"""Cluster membership through the store, and the consistent-hash ring built from it.

Each server process writes one ``cluster_membership`` row per role it runs (``frontend``,
``history``, ``matching``, ``worker``) with the address its gRPC service answers on, and moves
the row's expiry on with a heartbeat. Every process reads the rows back on its own schedule and
builds, per role, a :class:`HashRing` of the live hosts: a host whose heartbeats stopped (kill -9,
a lost network) drops out of everyone's ring once its expiry passes; a host that stops gracefully
removes its rows at once. This is the anchors' membership on SQL and Cassandra (their ringpop
gossip bootstraps from the same table), without the gossip: the store is the only source, so two
processes that read it at the same moment see the same ring.

Timing (``MembershipSettings``): heartbeat every ``heartbeat_s``, expiry ``ttl_s`` after each
heartbeat, rings rebuilt every ``refresh_s``. With the defaults a dead host leaves the rings
within ``ttl_s + refresh_s`` (6 s), inside the 10 s the shard handoff has in all.

A process learns of a change of the rings through ``subscribe``; the ring decides nothing by
itself (ownership of a shard stays fenced by the shard's ``range_id`` in the store).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cadenza.engine.clock import Clock
from cadenza.engine.persistence.protocols import ROLES, ClusterMember, MembershipStore

log = logging.getLogger("cadenza.membership")

US = 1_000_000
PRUNE_EVERY_S = 60.0
"""How often a process deletes rows expired for longer than ``ttl_s`` (readers skip expired rows
anyway; on Cassandra a TTL deletes them, and pruning there is a no-op)."""
DEFAULT_REPLICAS = 256
"""Points per host on the ring: with 256, each of 2-8 hosts gets its even share of 4,096 shards
within ±30 % (±21 % at worst over 210 random rings; 128 points gave ±36 %).
``tests/engine/test_membership.py`` checks the bound."""


def _point(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


class HashRing:
    """A consistent-hash ring over host ids: each key belongs to the first host point at or
    after the key's hash. Adding a host takes keys only to that host; removing one moves only
    its own keys (each to the next point's host). The same hosts give the same ring in every
    process (the hash is blake2b, not Python's salted ``hash``)."""

    def __init__(self, hosts: Iterable[str] = (), *, replicas: int = DEFAULT_REPLICAS) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.hosts: tuple[str, ...] = tuple(sorted(set(hosts)))
        self.replicas = replicas
        points = sorted((_point(f"{host}#{i}"), host) for host in self.hosts for i in range(replicas))
        self._hashes = [p for p, _ in points]
        self._owners = [h for _, h in points]

    def __len__(self) -> int:
        return len(self.hosts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashRing) and (self.hosts, self.replicas) == (other.hosts, other.replicas)

    def __hash__(self) -> int:
        return hash((self.hosts, self.replicas))

    def __repr__(self) -> str:
        return f"HashRing({list(self.hosts)!r})"

    def owner(self, key: str | int) -> str:
        """The host ``key`` belongs to; ``LookupError`` on an empty ring."""
        if not self._hashes:
            raise LookupError("the ring has no hosts")
        i = bisect.bisect_left(self._hashes, _point(str(key)))
        return self._owners[i % len(self._owners)]

    def assignment(self, keys: Iterable[str | int]) -> dict[str | int, str]:
        """Each key's owner."""
        return {k: self.owner(k) for k in keys}


def shard_key(shard_id: int) -> str:
    """The ring key of a history shard (shards are owned through the ``history`` ring)."""
    return f"shard/{shard_id}"


@dataclass(frozen=True)
class MembershipSettings:
    heartbeat_s: float = 1.0
    ttl_s: float = 5.0
    """How long after its last heartbeat a host still counts as a member."""
    refresh_s: float = 1.0
    max_join_s: float = 30.0
    """How long ``start`` may take to write this host's rows (the store may be starting too):
    the anchors' ``maxJoinDuration``."""

    def __post_init__(self) -> None:
        for name in ("heartbeat_s", "ttl_s", "refresh_s", "max_join_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"membership {name} must be positive, got {getattr(self, name)}")
        if self.ttl_s <= self.heartbeat_s:
            raise ValueError(
                f"membership ttl_s ({self.ttl_s:g} s) must be longer than heartbeat_s "
                f"({self.heartbeat_s:g} s), or a live host would expire between two heartbeats"
            )


RingListener = Callable[[str, HashRing], None]
"""Called with a role and its new ring whenever the ring's hosts change."""


class Membership:
    """This process's membership: joins with a row per role, heartbeats, and keeps each role's
    ring up to date from the store."""

    def __init__(
        self,
        store: MembershipStore,
        clock: Clock,
        *,
        host_id: str,
        rpc_address: str,
        roles: Sequence[str] = ROLES,
        settings: MembershipSettings | None = None,
    ) -> None:
        unknown = [r for r in roles if r not in ROLES]
        if unknown or not roles:
            raise ValueError(f"membership roles must be some of {', '.join(ROLES)}, got {list(roles)}")
        self.store = store
        self.clock = clock
        self.host_id = host_id
        self.rpc_address = rpc_address
        self.roles = tuple(r for r in ROLES if r in roles)
        self.settings = settings or MembershipSettings()
        self.session_start = 0
        self._members: dict[str, list[ClusterMember]] = {role: [] for role in ROLES}
        self._rings: dict[str, HashRing] = {role: HashRing() for role in ROLES}
        self._listeners: list[RingListener] = []
        self._task: asyncio.Task[None] | None = None
        self._last_beat = 0
        self.joined = False

    # -- reading -------------------------------------------------------------------------------------

    def ring(self, role: str) -> HashRing:
        return self._rings[role]

    def members(self, role: str | None = None) -> list[ClusterMember]:
        """The live members as last read (of ``role``, or all), ordered by role and host id."""
        if role is not None:
            return list(self._members[role])
        return [m for r in ROLES for m in self._members[r]]

    def subscribe(self, listener: RingListener) -> None:
        self._listeners.append(listener)

    # -- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Writes this host's rows (retrying a store that is not answering yet, up to
        ``max_join_s``), reads the rings, and starts heartbeating."""
        self.session_start = self.clock.now_us()
        deadline = self.session_start + int(self.settings.max_join_s * US)
        delay = 0.05
        while True:
            try:
                await self.heartbeat()
                break
            except Exception as e:
                if self.clock.now_us() + int(delay * US) > deadline:
                    raise RuntimeError(
                        f"could not join the cluster's membership within {self.settings.max_join_s:g} s "
                        f"(global.membership.maxJoinDuration): {e}"
                    ) from e
                log.info("joining membership failed, retrying: %s", e)
                await self.clock.sleep_until(self.clock.now_us() + int(delay * US))
                delay = min(delay * 2, 1.0)
        self.joined = True
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name=f"cadenza-membership-{self.host_id}")

    async def stop(self) -> None:
        """Stops heartbeating and removes this host's rows: the others' rings drop it at their
        next refresh rather than after its expiry."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not self.joined:
            return
        self.joined = False
        for role in self.roles:
            try:
                await self.store.remove_member(role, self.host_id)
            except Exception as e:
                log.warning(
                    "could not remove %s's %s membership (it expires by itself): %s", self.host_id, role, e
                )

    # -- the loop ------------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        now = self.clock.now_us()
        expiry = now + int(self.settings.ttl_s * US)
        for role in self.roles:
            await self.store.upsert_member(
                ClusterMember(role, self.host_id, self.rpc_address, self.session_start, now, expiry)
            )
        self._last_beat = now

    async def refresh(self) -> None:
        """Reads the live members and rebuilds each role's ring; tells the listeners of each ring
        whose hosts changed."""
        now = self.clock.now_us()
        members = await self.store.list_members(now_us=now)
        by_role: dict[str, list[ClusterMember]] = {role: [] for role in ROLES}
        for m in members:
            if m.role in by_role:
                by_role[m.role].append(m)
        self._members = by_role
        for role, role_members in by_role.items():
            ring = HashRing(m.host_id for m in role_members)
            if ring == self._rings[role]:
                continue
            log.info("%s ring: %s -> %s", role, list(self._rings[role].hosts), list(ring.hosts))
            self._rings[role] = ring
            for listener in self._listeners:
                try:
                    listener(role, ring)
                except Exception:
                    log.exception("a membership listener failed")

    async def _run(self) -> None:
        s = self.settings
        heartbeat_us, refresh_us = int(s.heartbeat_s * US), int(s.refresh_s * US)
        next_refresh = self.clock.now_us() + refresh_us
        next_prune = self.clock.now_us()
        while True:
            next_beat = self._last_beat + heartbeat_us
            await self.clock.sleep_until(min(next_beat, next_refresh))
            now = self.clock.now_us()
            try:
                if now >= next_beat:
                    await self.heartbeat()
                if now >= next_refresh:
                    next_refresh = now + refresh_us
                    await self.refresh()
                if now >= next_prune:
                    next_prune = now + int(PRUNE_EVERY_S * US)
                    await self.store.prune_members(now - int(s.ttl_s * US))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # The store is down: keep trying on the same schedule. This host's rows expire
                # if it lasts longer than ttl_s, and the others' rings then drop it, as they should.
                log.warning("membership heartbeat or refresh failed: %s", e)
                if now >= next_beat:
                    self._last_beat = now  # next attempt a heartbeat later, not in a tight loop
