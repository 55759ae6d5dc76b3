"""``Client.list_workflows`` and ``Client.count_workflows``, as temporalio spells them: the runs
visibility holds, found with the same SQL-like query as ``cadenza wf list -q``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cadenza.schemas.service import WorkflowExecutionInfo
from cadenza.sdk._call_options import RpcMetadata, rpc_options
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.description import WorkflowExecutionStatus
from cadenza.sdk.search_attributes import TypedSearchAttributes, typed_from_values

if TYPE_CHECKING:
    from cadenza.sdk.client import Client
    from cadenza.sdk.history import WorkflowHistory

__all__ = [
    "WorkflowExecution",
    "WorkflowExecutionAsyncIterator",
    "WorkflowExecutionCount",
    "WorkflowExecutionCountAggregationGroup",
]

# Visibility spells statuses as queries do (``ContinuedAsNew``); the SDK's enum as temporalio does.
_STATUS = {
    "Running": WorkflowExecutionStatus.RUNNING,
    "Completed": WorkflowExecutionStatus.COMPLETED,
    "Failed": WorkflowExecutionStatus.FAILED,
    "Canceled": WorkflowExecutionStatus.CANCELED,
    "Terminated": WorkflowExecutionStatus.TERMINATED,
    "ContinuedAsNew": WorkflowExecutionStatus.CONTINUED_AS_NEW,
    "TimedOut": WorkflowExecutionStatus.TIMED_OUT,
}
_GROUP_BY_STATUS = re.compile(r"\s*\bgroup\s+by\s+ExecutionStatus\s*$", re.IGNORECASE)


def _time(us: int) -> datetime | None:
    return datetime.fromtimestamp(us / 1e6, UTC) if us else None


@dataclass(slots=True)
class WorkflowExecution:
    """One run as visibility lists it (temporalio's ``client.WorkflowExecution``)."""

    id: str
    run_id: str
    workflow_type: str
    status: WorkflowExecutionStatus | str
    start_time: datetime | None
    execution_time: datetime | None
    close_time: datetime | None
    history_length: int
    task_queue: str
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """Decoded values by attribute name."""
    raw_search_attributes: dict[str, Any] = field(default_factory=dict)
    raw_memo: dict[str, Any] = field(default_factory=dict)
    """The memo as the server keeps it (payloads); ``memo()`` decodes it."""
    data_converter: DataConverter | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_info(cls, info: WorkflowExecutionInfo, converter: DataConverter) -> WorkflowExecution:
        from cadenza.sdk._runtime.info import decode_search_attributes

        return cls(
            id=info.workflow_id,
            run_id=info.run_id,
            workflow_type=info.workflow_type,
            status=_STATUS.get(info.status, info.status),
            start_time=_time(info.start_time),
            execution_time=_time(info.execution_time),
            close_time=_time(info.close_time),
            history_length=info.history_length,
            task_queue=info.task_queue,
            search_attributes=decode_search_attributes(converter, info.search_attributes),
            raw_search_attributes=dict(info.search_attributes),
            raw_memo=dict(info.memo),
            data_converter=converter,
        )

    @property
    def workflow_id(self) -> str:
        """Cadenza's name for ``id``."""
        return self.id

    @property
    def typed_search_attributes(self) -> TypedSearchAttributes:
        from cadenza.sdk._runtime.info import search_attribute_types

        return typed_from_values(self.search_attributes, search_attribute_types(self.raw_search_attributes))

    async def memo(self) -> dict[str, Any]:
        """The memo decoded (a coroutine, as temporalio has it)."""
        from cadenza.sdk._runtime.info import _decode_map

        assert self.data_converter is not None
        return _decode_map(self.data_converter, self.raw_memo)

    async def memo_value(self, key: str, default: Any = None) -> Any:
        return (await self.memo()).get(key, default)


class WorkflowExecutionAsyncIterator(AsyncIterator[WorkflowExecution]):
    """The runs a query matches, fetched a page at a time as they are iterated. ``limit`` stops after
    that many; ``current_page`` and ``next_page_token`` are the page last fetched."""

    def __init__(
        self,
        client: Client,
        query: str,
        *,
        limit: int | None,
        page_size: int,
        next_page_token: bytes | None,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if page_size <= 0:
            raise ValueError(f"page_size must be > 0, got {page_size}")
        with rpc_options(rpc_metadata, rpc_timeout):
            pass  # bad options raise here, before the first page is asked for
        self._rpc = (rpc_metadata, rpc_timeout)
        self._client = client
        self._query = query
        self._limit = limit
        self._page_size = page_size
        self.next_page_token = next_page_token
        self.current_page: Sequence[WorkflowExecution] | None = None
        self._index = 0
        self._yielded = 0
        self._done = False

    def __aiter__(self) -> WorkflowExecutionAsyncIterator:
        return self

    async def fetch_next_page(self) -> None:
        c = self._client
        size = self._page_size
        if self._limit is not None:
            size = max(1, min(size, self._limit - self._yielded))
        with rpc_options(*self._rpc):
            page = await c.service.list_workflow_executions(
                c.namespace, self._query, page_size=size, next_page_token=self.next_page_token
            )
        self.current_page = [WorkflowExecution.from_info(e, c.data_converter) for e in page.executions]
        self._index = 0
        self.next_page_token = page.next_page_token
        if not page.next_page_token:
            self._done = True

    async def map_histories(
        self,
        *,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
        **temporal_options: Any,
    ) -> AsyncIterator[WorkflowHistory]:
        """The full history of each listed run, in order (temporalio's name), e.g. for
        ``Replayer.replay_workflows``. temporalio's ``event_filter_type`` (all events is the only
        filter here) and ``skip_archival`` are accepted; any other keyword is a ``TypeError``."""
        unknown = sorted(set(temporal_options) - {"event_filter_type", "skip_archival"})
        if unknown:
            raise TypeError(f"map_histories() got unexpected keyword argument(s) {', '.join(unknown)}")
        async for execution in self:
            handle = self._client.get_workflow_handle(execution.id, run_id=execution.run_id)
            yield await handle.fetch_history(rpc_metadata=rpc_metadata, rpc_timeout=rpc_timeout)

    async def __anext__(self) -> WorkflowExecution:
        if self._limit is not None and self._yielded >= self._limit:
            raise StopAsyncIteration
        while self.current_page is None or self._index >= len(self.current_page):
            if self._done:
                raise StopAsyncIteration
            await self.fetch_next_page()
        execution = self.current_page[self._index]
        self._index += 1
        self._yielded += 1
        return execution


@dataclass(frozen=True, slots=True)
class WorkflowExecutionCountAggregationGroup:
    count: int
    group_values: Sequence[Any]


@dataclass(frozen=True, slots=True)
class WorkflowExecutionCount:
    """How many runs a query matches; with ``GROUP BY ExecutionStatus``, one group per status."""

    count: int
    groups: Sequence[WorkflowExecutionCountAggregationGroup] = ()


async def count_workflows(client: Client, query: str) -> WorkflowExecutionCount:
    grouped = _GROUP_BY_STATUS.search(query)
    where = query[: grouped.start()] if grouped else query
    resp = await client.service.count_workflow_executions(
        client.namespace, where, group_by_status=grouped is not None
    )
    groups: Mapping[str, int] = resp.groups if grouped else {}
    return WorkflowExecutionCount(
        resp.count,
        tuple(WorkflowExecutionCountAggregationGroup(n, (status,)) for status, n in sorted(groups.items())),
    )
