"""Who polls a task queue: matching's memory of recent pollers (Temporal's poller history), read by
``DescribeTaskQueue``.

Every poll writes one dict entry, ``(identity, sticky queue) -> last access time`` (wall-clock
microseconds), into its queue's ``TaskQueue.pollers_seen``: nothing is read, no object is built
but the key, so the poll path does not slow. A worker's sticky queue is its own queue, but its
polls are recorded in the run's *normal* workflow queue under the sticky queue's name, once
matching knows which normal queue that is (the first workflow task offered to the sticky queue
names it, ``MatchTask.normal_queue``); so describing the normal queue shows each worker with the
sticky queue it polls.

Bounded twice, as Temporal bounds its poller cache: an entry not refreshed for ``ttl_s`` (five
minutes) is dropped when the queue is described or trimmed, and a queue never holds more than
``max_size`` entries (the oldest go first), so identities that change on every restart cannot
make it grow without end. Trimming runs only when an insert passed the bound, and then cuts to
nine tenths of it, so a queue at its bound does not trim on every poll.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.schemas.service import PollerInfo

PollerKey = tuple[str, str]
"""``(identity, sticky queue)``: the sticky queue is "" for a poll of the queue itself."""


@dataclass(frozen=True, slots=True)
class PollerHistoryConfig:
    """How long and how many pollers matching remembers per task queue and task type."""

    ttl_s: float = 300.0
    """A poller not seen for this long is forgotten (Temporal: five minutes)."""
    max_size: int = 1000
    """The most pollers remembered per queue (Temporal's poller cache holds 1,000)."""

    def __post_init__(self) -> None:
        if not self.ttl_s > 0:
            raise ValueError(f"poller history ttl_s must be positive (got {self.ttl_s})")
        if self.max_size < 1:
            raise ValueError(f"poller history max_size must be at least 1 (got {self.max_size})")


def trim(seen: dict[PollerKey, int], now_us: int, config: PollerHistoryConfig) -> None:
    """Drops expired entries, then the oldest, until ``seen`` holds nine tenths of the bound."""
    oldest_kept = now_us - int(config.ttl_s * 1e6)
    for key in [k for k, t in seen.items() if t < oldest_kept]:
        del seen[key]
    keep = max(1, config.max_size * 9 // 10)
    if len(seen) > keep:
        for key in sorted(seen, key=seen.__getitem__)[: len(seen) - keep]:
            del seen[key]


def pollers(seen: dict[PollerKey, int], now_us: int, config: PollerHistoryConfig) -> list[PollerInfo]:
    """The pollers seen within the expiry, one per identity, most recent first: the last access
    is the latest of the identity's polls, normal or sticky, and the sticky queue is the one it
    polled last (a worker that restarted under the same identity has a new one)."""
    oldest_kept = now_us - int(config.ttl_s * 1e6)
    by_identity: dict[str, PollerInfo] = {}
    sticky_at: dict[str, int] = {}
    for (identity, sticky), at in list(seen.items()):
        if at < oldest_kept:
            del seen[(identity, sticky)]
            continue
        known = by_identity.get(identity)
        queue = known.sticky_task_queue if known is not None else ""
        if sticky and at >= sticky_at.get(identity, -1):
            queue, sticky_at[identity] = sticky, at
        last = max(at, known.last_access_time) if known is not None else at
        by_identity[identity] = PollerInfo(identity, last, queue)
    return sorted(by_identity.values(), key=lambda p: (-p.last_access_time, p.identity))
