"""What the engine's outbox hands on: visibility updates (and, later, replication tasks).

Visibility tasks are written in the same transaction as the mutation that caused them (start,
search-attribute upsert, close). The visibility queue processor turns each into a
``VisibilityUpdate`` read from the run's current mutable state and gives batches to a
``VisibilitySink``; the tasks are acknowledged only after the sink returned, so a sink that fails
(a broker down) makes the outbox back up and drain later, never skip. ``task_id`` grows with every
update of a run, so consumers use it as the version: a late or duplicate update never overwrites a
newer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class VisibilityUpdate:
    namespace_id: str
    workflow_id: str
    run_id: str
    task_id: int
    workflow_type: str
    task_queue: str
    status: str
    """The anchors' spelling, as queries use it: Running, Completed, Failed, Canceled, Terminated,
    ContinuedAsNew, TimedOut."""
    start_time: int
    execution_time: int
    close_time: int
    """Microseconds since the epoch; 0 while the run is open."""
    history_length: int
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """Payloads by attribute name, as the workflow set them."""
    memo: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    """The run is gone (retention): remove its record."""


class VisibilitySink(Protocol):
    async def publish(self, updates: Sequence[VisibilityUpdate]) -> None:
        """Durably hands the updates on (to the bus, or straight to a store); raises to retry."""
        ...


class DiscardingSink:
    """For servers configured without visibility: updates are dropped (and acknowledged)."""

    async def publish(self, updates: Sequence[VisibilityUpdate]) -> None:
        return None


STATUS_NAMES = {
    1: "Running",
    2: "Completed",
    3: "Failed",
    4: "Canceled",
    5: "Terminated",
    6: "ContinuedAsNew",
    7: "TimedOut",
}
