"""The frontend's visibility operations: list, scan and count workflows with the SQL-like query
language, and the cluster's search attributes. A mixin of ``Frontend`` (which owns ``visibility``,
the store lists and counts read from, and ``_ns_id``)."""

from __future__ import annotations

from typing import Any

from cadenza.engine.errors import FailedPreconditionError, InvalidArgumentError
from cadenza.schemas.service import (
    CountWorkflowExecutionsResponse,
    ListWorkflowExecutionsResponse,
    WorkflowExecutionInfo,
)


def listing(records: Any, next_page_token: bytes | None) -> ListWorkflowExecutionsResponse:
    """A page of visibility records (``cadenza.visibility.record.VisibilityRecord``) as the API
    lists them."""
    from cadenza.visibility.search_attributes import encode_search_attribute

    return ListWorkflowExecutionsResponse(
        [
            WorkflowExecutionInfo(
                workflow_id=r.workflow_id,
                run_id=r.run_id,
                workflow_type=r.workflow_type,
                status=r.status_name,
                start_time=r.start_time,
                execution_time=r.execution_time,
                close_time=r.close_time,
                history_length=r.history_length,
                task_queue=r.task_queue,
                search_attributes={k: encode_search_attribute(v) for k, v in r.search_attributes.items()},
                memo=dict(r.memo),
            )
            for r in records
        ],
        next_page_token,
    )


class VisibilityOperations:
    visibility: Any
    visibility_barrier: Any = None
    """``Host.visibility_barrier`` when this process indexes its own writes (embedded defaults): a
    list or count first waits for earlier writes to be indexed (read-after-write), bounded."""

    async def _ns_id(self, namespace: str) -> str:
        raise NotImplementedError

    def _visibility(self) -> Any:
        if self.visibility is None:
            raise FailedPreconditionError("visibility is not configured on this server")
        return self.visibility

    async def list_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        return await self._page("list", namespace, query, page_size, next_page_token)

    async def scan_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        return await self._page("scan", namespace, query, page_size, next_page_token)

    async def _page(
        self, how: str, namespace: str, query: str, page_size: int, token: bytes | None
    ) -> ListWorkflowExecutionsResponse:
        from cadenza.visibility.errors import VisibilityError

        store = self._visibility()
        ns_id = await self._ns_id(namespace)
        if not 1 <= page_size <= 1000:
            raise InvalidArgumentError(f"page_size must be between 1 and 1000 (got {page_size})")
        if self.visibility_barrier is not None and token is None:  # a later page reads on
            await self.visibility_barrier()
        try:
            records, nxt = await getattr(store, how)(ns_id, query, page_size, token)
        except VisibilityError as e:
            raise InvalidArgumentError(str(e)) from None
        return listing(records, nxt)

    async def count_workflow_executions(
        self, namespace: str, query: str = "", *, group_by_status: bool = False
    ) -> CountWorkflowExecutionsResponse:
        from cadenza.visibility.errors import VisibilityError

        store = self._visibility()
        ns_id = await self._ns_id(namespace)
        if self.visibility_barrier is not None:
            await self.visibility_barrier()
        try:
            if group_by_status:
                groups = await store.count_group_by_status(ns_id, query)
                return CountWorkflowExecutionsResponse(sum(groups.values()), dict(groups))
            return CountWorkflowExecutionsResponse(await store.count(ns_id, query))
        except VisibilityError as e:
            raise InvalidArgumentError(str(e)) from None

    async def get_search_attributes(self) -> dict[str, str]:
        types = await self._visibility().get_search_attributes()
        return {name: str(getattr(t, "value", t)) for name, t in types.items()}

    async def add_search_attributes(self, attributes: dict[str, str]) -> None:
        from cadenza.visibility.errors import VisibilityError

        try:
            await self._visibility().add_search_attributes(attributes)
        except VisibilityError as e:
            raise InvalidArgumentError(str(e)) from None
