"""What ``WorkflowHandle.describe()`` returns: the server's description with its values decoded."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cadenza.schemas.service import DescribeWorkflowResponse
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.search_attributes import TypedSearchAttributes, typed_from_values

__all__ = ["WorkflowExecutionDescription", "WorkflowExecutionStatus"]


class WorkflowExecutionStatus(enum.StrEnum):
    """A run's status. String-valued, so it equals the plain status text too
    (``desc.status == "COMPLETED"``)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    TIMED_OUT = "TIMED_OUT"


def _time(us: int) -> datetime | None:
    return datetime.fromtimestamp(us / 1e6, UTC) if us else None


@dataclass(slots=True)
class WorkflowExecutionDescription(DescribeWorkflowResponse):
    """``DescribeWorkflowResponse`` with ``search_attributes`` and ``memo`` decoded to values."""

    raw_search_attributes: dict[str, Any] = field(default_factory=dict)
    """The search attributes as the server keeps them (payloads)."""
    raw_memo: dict[str, Any] = field(default_factory=dict)
    """The memo as the server keeps it (payloads)."""
    search_attribute_types: dict[str, str] = field(default_factory=dict)
    """Declared types of the search attributes whose writer recorded one."""

    @classmethod
    def from_response(
        cls, resp: DescribeWorkflowResponse, converter: DataConverter
    ) -> WorkflowExecutionDescription:
        from cadenza.sdk._runtime.info import (
            _decode_map,
            decode_search_attributes,
            search_attribute_types,
        )

        values = {f.name: getattr(resp, f.name) for f in dataclasses.fields(DescribeWorkflowResponse)}
        status = values["status"]
        if status in WorkflowExecutionStatus.__members__:
            values["status"] = WorkflowExecutionStatus(status)
        # A server that does not send it (or a run without a delay): the run was due at its start.
        values["execution_time"] = resp.execution_time or resp.start_time
        values["search_attributes"] = decode_search_attributes(converter, resp.search_attributes)
        values["memo"] = _decode_map(converter, resp.memo)
        return cls(
            **values,
            raw_search_attributes=dict(resp.search_attributes),
            raw_memo=dict(resp.memo),
            search_attribute_types=search_attribute_types(resp.search_attributes),
        )

    @property
    def typed_search_attributes(self) -> TypedSearchAttributes:
        """The search attributes as ``TypedSearchAttributes``."""
        return typed_from_values(self.search_attributes, self.search_attribute_types)

    @property
    def id(self) -> str:
        """The workflow id (temporalio's name)."""
        return self.workflow_id

    @property
    def start_datetime(self) -> datetime | None:
        """``start_time`` (microseconds since the epoch) as an aware datetime."""
        return _time(self.start_time)

    @property
    def close_datetime(self) -> datetime | None:
        """``close_time`` as an aware datetime; None while the run is open."""
        return _time(self.close_time)

    @property
    def execution_datetime(self) -> datetime | None:
        """``execution_time`` (when the first workflow task was due: after a ``start_delay`` or a
        cron or retry backoff) as an aware datetime."""
        return _time(self.execution_time)

    @property
    def parent_id(self) -> str | None:
        """The parent's workflow id for a child run (temporalio's name); None otherwise."""
        return self.parent_workflow_id or None

    @property
    def raw_description(self) -> SimpleNamespace:
        """The parts of temporalio's raw ``DescribeWorkflowExecutionResponse`` that tests read,
        in its shape: ``pending_activities`` (each with ``activity_id``, ``activity_type.name``,
        ``state``, ``attempt``) and ``workflow_execution_info`` (``execution.workflow_id`` /
        ``run_id``, ``type.name``, ``task_queue``, ``status``, ``history_length``). States and
        statuses are their names (``"STARTED"``), not protobuf numbers."""
        return SimpleNamespace(
            pending_activities=[
                SimpleNamespace(
                    activity_id=p.activity_id,
                    activity_type=SimpleNamespace(name=p.activity_type),
                    state=p.state,
                    attempt=p.attempt,
                    heartbeat_details=p.heartbeat_details,
                    last_failure=p.last_failure,
                )
                for p in self.pending_activities
            ],
            workflow_execution_info=SimpleNamespace(
                execution=SimpleNamespace(workflow_id=self.workflow_id, run_id=self.run_id),
                type=SimpleNamespace(name=self.workflow_type),
                task_queue=self.task_queue,
                status=str(self.status),
                history_length=self.history_length,
            ),
        )

    async def memo_value(self, key: str, default: Any = None) -> Any:
        """One decoded memo value (temporalio's coroutine); ``memo`` holds them all."""
        return self.memo.get(key, default)

    async def static_summary(self) -> str | None:
        """temporalio's start option ``static_summary``: accepted by ``start_workflow`` and not
        stored yet, so None."""
        return None

    async def static_details(self) -> str | None:
        """As ``static_summary``: not stored yet, so None."""
        return None
