"""Errors that are part of the persistence contract.

Every backend translates its driver's exceptions into these, in one place, and the contract suite
asserts these types. The engine reacts to them: a lost condition reloads and retries, a lost shard stops
writing to that shard.
"""

from __future__ import annotations


class PersistenceError(Exception):
    """Root of the persistence errors."""


class ConditionFailedError(PersistenceError):
    """A conditional write found the row changed since it was read (e.g. ``db_version`` moved on)."""


class ShardOwnershipLostError(PersistenceError):
    """The shard's ``range_id`` is no longer the writer's: another host owns the shard now."""

    def __init__(self, shard_id: int, expected_range_id: int, actual_range_id: int | None) -> None:
        super().__init__(
            f"shard {shard_id}: ownership lost (writer has range_id {expected_range_id}, "
            f"stored range_id is {actual_range_id})"
        )
        self.shard_id = shard_id
        self.expected_range_id = expected_range_id
        self.actual_range_id = actual_range_id


class CurrentWorkflowConditionFailedError(PersistenceError):
    """Creating a run found a different current run for the workflow id than the request expected."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        request_id: str,
        state: int,
        status: int,
        last_write_version: int,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.request_id = request_id
        self.state = state
        self.status = status
        self.last_write_version = last_write_version


class EntityNotFoundError(PersistenceError):
    """The requested row does not exist."""


class AlreadyExistsError(PersistenceError):
    """A create found the row already there (namespace name or id, task queue, ...)."""


class TaskQueueLeaseLostError(PersistenceError):
    """The task queue's ``range_id`` moved on: another matching host owns it now."""


class StoreUnavailableError(PersistenceError):
    """The backend could not be reached or timed out; the write may or may not have happened."""
