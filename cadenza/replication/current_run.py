"""Which run of a workflow id is current when its runs come from several clusters.

A workflow id has one current run per cluster. Two clusters that both took writes for a namespace
(a split brain, or a forced failover before replication caught up) may each have started a run of
the same id. When one of them arrives where the other is current, the run with the higher last
write version wins the pointer, as the anchors decide it:

* the arriving run is older (its last write version is lower): it is created as a **zombie**, kept
  with its history but not current, and never acted on here (no tasks, refused by every rule, as a
  closed run is). Its own cluster closes it, and that close arrives like any other event.
* the arriving run is newer and the current run is open: the current run is **suppressed** first.
  If this cluster wrote the current run's last version, this cluster terminates it (at that
  version, so the termination replicates as a plain continuation of the run); otherwise the run
  belongs to another cluster, which terminates it itself, and here it becomes a zombie.
  Then the arriving run becomes current.
* the arriving run is newer and the current run is closed: it becomes current, as a reused id.
* same version, current run open: one cluster wrote both, so the close of the current run is on its
  way before the next run (a cluster closes a run before it starts the next); retry.

Nothing is lost: every run of the id exists on every cluster with the same events; only which one
the id points to is decided.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cadenza.engine.persistence.protocols import CurrentExecution, ExecutionState

SUPERSEDED_IDENTITY = "cadenza-replication"


class CreatePlan(enum.Enum):
    BRAND_NEW = "brand new"
    """No run of the id here yet."""
    ZOMBIE = "zombie"
    """The current run is newer: the arriving run is kept beside it."""
    REPLACE_CLOSED = "replace closed"
    """The current run is closed and not newer: the arriving run takes the pointer."""
    SUPPRESS_CURRENT = "suppress current"
    """The current run is open and older: suppress it, then take the pointer."""
    WAIT = "wait"
    """The current run is open and of the same version: its close is still on its way."""


@dataclass(frozen=True, slots=True)
class Decision:
    plan: CreatePlan
    current: CurrentExecution | None = None


def decide_create(current: CurrentExecution | None, run_id: str, last_write_version: int) -> Decision:
    """What creating replicated run ``run_id`` (its last write version so far) does to the pointer."""
    if current is None:
        return Decision(CreatePlan.BRAND_NEW)
    if current.run_id == run_id:
        raise ValueError(f"run {run_id} is already current here")
    if current.last_write_version > last_write_version:
        return Decision(CreatePlan.ZOMBIE, current)
    if current.state not in (ExecutionState.CREATED, ExecutionState.RUNNING):
        return Decision(CreatePlan.REPLACE_CLOSED, current)
    if current.last_write_version == last_write_version:
        return Decision(CreatePlan.WAIT, current)
    return Decision(CreatePlan.SUPPRESS_CURRENT, current)


def superseded_reason(run_id: str, version: int) -> str:
    return f"superseded by run {run_id} of failover version {version} from another cluster"
