"""The frontend's workflow-update calls (Temporal's UpdateWorkflowExecution, and update-with-start).

A mixin of ``Frontend``: the rules live in ``history/updates.py``; here the namespace is resolved
and the update-with-start pair is put together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cadenza.engine.errors import InvalidArgumentError, WorkflowAlreadyStartedError
from cadenza.engine.forwarding import forwardable
from cadenza.schemas.service import (
    StartWorkflowRequest,
    StartWorkflowResponse,
    UpdateWorkflowRequest,
    UpdateWorkflowResponse,
    WorkflowExecution,
)

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.ratelimit import RequestRateLimiter


class UpdateOperations:
    history: HistoryEngine
    rate_limiter: RequestRateLimiter

    if TYPE_CHECKING:  # provided by Frontend

        async def _ns_id(self, namespace: str) -> str: ...

        async def start_workflow_execution(self, request: StartWorkflowRequest) -> StartWorkflowResponse: ...

    @forwardable
    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
        self.rate_limiter.admit(request.namespace)
        ns_id = await self._ns_id(request.namespace)
        return await self.history.updates.update(ns_id, request)

    @forwardable
    async def update_with_start_workflow_execution(
        self, start: StartWorkflowRequest, update: UpdateWorkflowRequest
    ) -> tuple[StartWorkflowResponse, UpdateWorkflowResponse]:
        """Starts the workflow unless it is running (then the running run is used, as Temporal's
        ``USE_EXISTING`` conflict policy does), then sends the update to that run."""
        if start.namespace != update.namespace:
            raise InvalidArgumentError("the start and the update must name the same namespace")
        if update.execution.workflow_id not in ("", start.workflow_id):
            raise InvalidArgumentError("the start and the update must name the same workflow id")
        # Both parts are admitted at once: the update must not be refused after the start is done.
        with self.rate_limiter.admitted(start.namespace, cost=2):
            try:
                started = await self.start_workflow_execution(start)
            except WorkflowAlreadyStartedError as e:
                run_id = str(e.details.get("run_id") or "")
                started = StartWorkflowResponse(run_id=run_id, started=False)
            update.execution = WorkflowExecution(start.workflow_id, started.run_id)
            return started, await self.update_workflow_execution(update)
