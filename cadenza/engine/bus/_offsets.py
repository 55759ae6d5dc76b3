"""Contiguous acknowledgement tracking per partition, shared by both consumers.

A partition's *commit point* is the first delivered offset not yet acknowledged (or, when every
delivered offset is acknowledged, the offset after the last one delivered). Only the commit point is
ever committed, so a message acknowledged out of order does not carry its unacknowledged
predecessors with it. Offsets are tracked as delivered, not assumed dense: Kafka logs have gaps
(compaction, transaction markers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionTracker:
    start: int
    """The position this partition was (re)started from: the commit point while nothing is in flight."""
    delivered: deque[int] = field(default_factory=deque)
    acked: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    committed: int | None = None
    """The last commit point persisted, to skip commits that would change nothing."""

    def deliver(self, offset: int) -> int:
        """Record a delivery; returns the attempt number of ``offset``."""
        if not self.delivered or offset > self.delivered[-1]:
            self.delivered.append(offset)
        attempt = self.attempts.get(offset, 0) + 1
        self.attempts[offset] = attempt
        return attempt

    def ack(self, offset: int) -> bool:
        """Mark ``offset`` acknowledged; False when it is not in flight here (a stale ack)."""
        if offset < self.point() or offset in self.acked:
            return True
        if offset not in self.attempts or not self.delivered or offset > self.delivered[-1]:
            return False
        self.acked.add(offset)
        # Advance past the acknowledged prefix, so memory stays proportional to what is in flight.
        while self.delivered and self.delivered[0] in self.acked:
            done = self.delivered.popleft()
            self.acked.discard(done)
            self.attempts.pop(done, None)
            self.start = done + 1
        return True

    def point(self) -> int:
        """The commit point."""
        return self.delivered[0] if self.delivered else self.start

    def rewind(self, offset: int) -> None:
        """Forget deliveries at or after ``offset`` (they will be delivered again); keeps attempts."""
        while self.delivered and self.delivered[-1] >= offset:
            self.acked.discard(self.delivered.pop())
        if not self.delivered:
            self.start = offset

    def pending(self) -> int:
        """Delivered and not yet acknowledged."""
        return len(self.delivered) - len(self.acked)
