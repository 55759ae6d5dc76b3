"""The frontend's queries, sticky execution and task queue descriptions. A mixin of ``Frontend``
(which owns ``history``, ``matching``, ``query_timeout_s`` and ``_ns_id``).

Sticky execution, as the anchors do it: a worker that completes a workflow task names its own
sticky queue (``RespondWorkflowTaskCompletedRequest.sticky_task_queue``); the run's mutable state
records it, its next workflow tasks are offered there, and a task started from it carries only the
events after the last task that worker completed. A task left unstarted on the sticky queue for the
sticky schedule-to-start timeout falls back to the normal queue (``Host._sticky_timed_out``), and a
worker that lets a run go says so (``reset_sticky_task_queue``), so the next task goes to the normal
queue at once. Either way the task started from the normal queue carries the whole history.

``describe_task_queue`` (Temporal's DescribeTaskQueue) answers from this host's matching: the
pollers it saw recently (``matching_pollers``) and the tasks it holds in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    QueryFailedError,
    QueryRejectedError,
)
from cadenza.engine.forwarding import forwardable
from cadenza.engine.history import limits
from cadenza.engine.history import workflow_tasks as wft
from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK, MatchTask
from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.schemas.service import (
    DescribeTaskQueueResponse,
    PollWorkflowTaskResponse,
    WorkflowExecution,
    WorkflowTaskQuery,
)

Payloads = list[dict[str, Any]]

TASK_QUEUE_TYPES = {"workflow": WORKFLOW_TASK, "activity": ACTIVITY_TASK}
"""``DescribeTaskQueue``'s ``task_queue_type`` (Temporal's CLI spelling); "" means workflow."""
MAX_TASK_QUEUE_NAME = 1000


@dataclass(slots=True)
class PendingQuery:
    query_id: str
    query_type: str
    args: Payloads | None
    header: dict[str, Any]
    result: asyncio.Future[Payloads | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TaskQueueOperations:
    history: Any
    matching: Any
    query_timeout_s: float
    _queries: dict[str, PendingQuery]

    async def _ns_id(self, namespace: str) -> str:
        raise NotImplementedError

    # -- sticky execution -----------------------------------------------------------------------------

    async def reset_sticky_task_queue(self, namespace: str, execution: WorkflowExecution) -> None:
        """The worker that had the run cached let it go: clear the run's sticky queue and move a
        workflow task waiting there to the normal queue."""
        ns_id = await self._ns_id(namespace)
        sticky: str = await self.history.mutate(
            ns_id, execution.workflow_id, execution.run_id, wft.reset_stickiness
        )
        if sticky:
            self.matching.redirect_sticky(ns_id, sticky, execution.run_id)

    # -- task queues ---------------------------------------------------------------------------------

    async def describe_task_queue(
        self, namespace: str, task_queue: str, task_queue_type: str = "workflow"
    ) -> DescribeTaskQueueResponse:
        """The pollers of ``task_queue`` seen recently and its backlog held in memory, for one task
        type (``workflow`` or ``activity``)."""
        if not task_queue.strip():
            raise InvalidArgumentError("task_queue is required")
        if len(task_queue) > MAX_TASK_QUEUE_NAME:
            raise InvalidArgumentError(
                f"task_queue is {len(task_queue)} characters long; the limit is {MAX_TASK_QUEUE_NAME}"
            )
        task_type = TASK_QUEUE_TYPES.get(task_queue_type.lower() or "workflow")
        if task_type is None:
            raise InvalidArgumentError(
                f"task_queue_type must be workflow or activity (got {task_queue_type!r})"
            )
        ns_id = await self._ns_id(namespace)
        return DescribeTaskQueueResponse(
            pollers=self.matching.pollers(ns_id, task_queue, task_type),
            backlog_count_hint=self.matching.backlog(ns_id, task_queue, task_type),
        )

    # -- queries -------------------------------------------------------------------------------------

    @forwardable
    async def query_workflow(
        self,
        namespace: str,
        execution: WorkflowExecution,
        query_type: str,
        args: Payloads | None,
        *,
        header: dict[str, Any] | None = None,
    ) -> Payloads | None:
        ns_id = await self._ns_id(namespace)
        limits.validate_payloads("query_args", args)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.query_timeout_s
        while True:
            ctx, ms = await self.history.get_state(ns_id, execution.workflow_id, execution.run_id)
            # Before the first workflow task completes there is no state to query: wait for it, as
            # the anchors do, rather than fail a query sent right after a start.
            if ms.info.last_completed_workflow_task_event_id or not ms.is_running:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise QueryRejectedError(
                    f"workflow {execution.workflow_id!r} has not completed its first workflow task within "
                    f"{self.query_timeout_s:g} s; is a worker polling task queue {ms.info.task_queue!r}?"
                )
            await self.history.wait_for_change(ctx, remaining)
        if not ms.info.last_completed_workflow_task_event_id:
            raise QueryRejectedError(
                f"workflow {execution.workflow_id!r} closed before any workflow task completed: "
                "no state to query"
            )
        q = PendingQuery(self.matching.next_query_id(), query_type, args, header or {})
        self._queries[q.query_id] = q
        task = MatchTask(ns_id, ms.info.workflow_id, ms.info.run_id, 0, 0, query=q)
        sticky = ms.info.sticky_task_queue
        # A sticky run's query goes to the worker that has it cached if one of its pollers is
        # waiting right now (answered from its cache, no history); else the normal path.
        if not (sticky and self.matching.hand_over(ns_id, sticky, WORKFLOW_TASK, task)):
            self.matching.add_task(ns_id, ms.info.task_queue, WORKFLOW_TASK, task)
        try:
            return await asyncio.wait_for(asyncio.shield(q.result), self.query_timeout_s)
        except TimeoutError:
            raise DeadlineExceededError(
                f"query {query_type!r} on workflow {execution.workflow_id!r}: no worker answered within "
                f"{self.query_timeout_s:g} s (is a worker polling task queue {ms.info.task_queue!r}?)"
            ) from None
        finally:
            self._queries.pop(q.query_id, None)

    async def _query_task_response(self, namespace: str, task: MatchTask) -> PollWorkflowTaskResponse | None:
        q: PendingQuery = task.query
        if q.result.done():
            return None
        query = WorkflowTaskQuery(q.query_id, q.query_type, q.args, q.header)
        execution = WorkflowExecution(task.workflow_id, task.run_id)
        _, ms = await self.history.get_state(task.namespace_id, task.workflow_id, task.run_id)
        last = ms.info.last_completed_workflow_task_event_id
        if last and task.task_queue == ms.info.sticky_task_queue:
            # The sticky worker has the run cached through its last task (whose Started event
            # directly precedes its Completed one): no history to send.
            return PollWorkflowTaskResponse(
                q.query_id.encode(), execution, ms.info.workflow_type, namespace, 1, last - 1, [], query
            )
        _, ms, events = await self.history.get_state_and_events(
            task.namespace_id, task.workflow_id, task.run_id
        )
        # The worker replays up to the last completed workflow task: that is the state queries see.
        history = _history_through_task(events, ms.info.last_completed_workflow_task_event_id)
        return PollWorkflowTaskResponse(
            task_token=q.query_id.encode(),
            workflow_execution=execution,
            workflow_type=ms.info.workflow_type,
            namespace=namespace,
            attempt=1,
            started_event_id=history[-1].event_id if history else 0,
            history=history,
            query=query,
        )

    async def respond_query_task_completed(
        self, namespace: str, query_id: str, *, result: Payloads | None = None, error_message: str = ""
    ) -> None:
        q = self._queries.get(query_id)
        if q is None or q.result.done():
            return
        if error_message:
            q.result.set_exception(QueryFailedError(error_message))
        else:
            q.result.set_result(result)


def _history_through_task(events: list[HistoryEvent], last_completed_id: int) -> list[HistoryEvent]:
    """Events up to the WorkflowTaskStarted of the last completed workflow task (inclusive)."""
    if not last_completed_id:
        return []
    completed = events[last_completed_id - 1]
    started_id = completed.attributes["started_event_id"]
    out = events[:started_id]
    assert out and out[-1].event_type == EventType.WORKFLOW_TASK_STARTED
    return out
