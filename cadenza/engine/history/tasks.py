"""The shard's tasks: what must happen because of a committed mutation.

Tasks are written in the same transaction as the events that cause them (the transactional outbox) and
processed afterwards by the transfer and timer queue processors. A task names its run and what to do;
processing re-checks the run's mutable state, so a stale task (its activity already finished, its timer
cancelled) is simply dropped. That is what makes at-least-once processing safe.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadenza.engine.matching import MatchTask

# One encoder for all task rows: ``json.dumps`` with non-default separators builds a new encoder
# per call, and several rows are written per workflow.
_encode_row = json.JSONEncoder(separators=(",", ":")).encode


class TransferKind(enum.IntEnum):
    WORKFLOW_TASK = 1
    """Hand a workflow task to matching."""
    ACTIVITY_TASK = 2
    """Hand an activity task to matching."""
    CLOSE_EXECUTION = 3
    """The run closed: tell its parent, and apply its parent close policy to its children."""
    START_CHILD = 4
    SIGNAL_EXTERNAL = 5
    CANCEL_EXTERNAL = 6


class TimerKind(enum.IntEnum):
    WORKFLOW_TASK_TIMEOUT = 1
    ACTIVITY_TIMEOUT = 2
    USER_TIMER = 3
    WORKFLOW_RUN_TIMEOUT = 4
    ACTIVITY_RETRY = 5
    WORKFLOW_TASK_RETRY = 6
    """Backoff before a transient workflow task attempt."""
    WORKFLOW_BACKOFF = 7
    """The first workflow task of a run that waits: a cron schedule, a retry, a continue-as-new
    with a backoff."""
    STICKY_SCHEDULE_TO_START = 8
    """A workflow task waited on a sticky queue for too long: offer it to the normal queue. Only
    in memory (never stored), armed when the task is queued there."""
    DELETE_HISTORY_EVENT = 9
    """The namespace's retention after a run closed is over: archive the run (when the namespace
    archives) and delete it from history, executions and visibility. Written by the write that
    closes the run (see ``ShardContext.update_run``); handled by ``history.retention``."""


class VisibilityKind(enum.IntEnum):
    """Why a run's visibility record changed; the record itself is built from mutable state when
    the task is processed (as the anchors do), so a late task publishes the newest state."""

    START = 1
    UPSERT = 2
    CLOSE = 3


class ReplicationKind(enum.IntEnum):
    """What a replication task sends to the other clusters of a global namespace."""

    HISTORY = 1
    """A batch of events (one write of one run) with the branch's version history."""
    SYNC_ACTIVITY = 2
    """The state of a pending activity that history does not hold (attempt, heartbeat)."""


class TimeoutType(enum.StrEnum):
    START_TO_CLOSE = "START_TO_CLOSE"
    SCHEDULE_TO_START = "SCHEDULE_TO_START"
    SCHEDULE_TO_CLOSE = "SCHEDULE_TO_CLOSE"
    HEARTBEAT = "HEARTBEAT"


@dataclass(slots=True)
class Task:
    """A task before its id is allocated (``task_id`` 0) or after it was read back."""

    kind: int
    namespace_id: str
    workflow_id: str
    run_id: str
    args: dict[str, Any] = field(default_factory=dict)
    visibility_time: int = 0
    task_id: int = 0
    claim: Callable[[MatchTask], None] | None = field(default=None, compare=False, repr=False)
    """Not stored: an activity task the worker completing the workflow task asked to run itself
    (eager dispatch), or the first workflow task of an eager start. Once written, it goes to
    ``claim`` instead of to matching; read back after a crash it has none and goes to matching as
    usual."""
    payload: bytes | None = field(default=None, compare=False, repr=False)
    """Not stored: a replication task's encoded event batch, as written in the same transaction,
    so publishing it needs no read; read back after a crash it has none and the batch is read
    from history."""
    state: Any = field(default=None, compare=False, repr=False)
    """Not stored: for a visibility task written by the write that closed its run, the run's
    mutable state as written (a closed run's state leaves the cache, and it never changes again),
    so publishing its record needs no read; read back after a crash it has none and the state is
    read from the store."""

    def encode(self) -> bytes:
        return _encode_row([self.kind, self.namespace_id, self.workflow_id, self.run_id, self.args]).encode()

    @classmethod
    def decode(cls, data: bytes, task_id: int, visibility_time: int = 0) -> Task:
        kind, ns, wid, rid, args = json.loads(data)
        return cls(kind, ns, wid, rid, args, visibility_time, task_id)


@dataclass(slots=True)
class MutationTasks:
    transfer: list[Task] = field(default_factory=list)
    timer: list[Task] = field(default_factory=list)
    visibility: list[Task] = field(default_factory=list)
    replication: list[Task] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transfer or self.timer or self.visibility or self.replication)
