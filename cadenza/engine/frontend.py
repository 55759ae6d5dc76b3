"""The frontend: ``WorkflowService`` on top of history and matching.

It resolves namespaces, validates requests, routes to the history engine and runs the poll loops that
join matching to history (a task offered by matching becomes a worker's task only once history has
recorded it as started). In one process the SDK calls this object directly; the gRPC server wraps it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from cadenza.engine.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from cadenza.engine.forwarding import FORWARDED, Forwarder, forwardable, forwardable_when
from cadenza.engine.frontend_activities import ActivityByIdOperations
from cadenza.engine.frontend_admin import ClusterOperations
from cadenza.engine.frontend_archival import ArchivalOperations
from cadenza.engine.frontend_queries import PendingQuery, TaskQueueOperations
from cadenza.engine.frontend_updates import UpdateOperations
from cadenza.engine.frontend_visibility import VisibilityOperations
from cadenza.engine.history import activities, limits
from cadenza.engine.history import workflow_tasks as wft
from cadenza.engine.history.engine import HistoryEngine, Mutation
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.shard import Deferred
from cadenza.engine.history.tasks import TransferKind
from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK, MatchingEngine, MatchTask
from cadenza.engine.namespaces import NamespaceRegistry
from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.engine.ratelimit import FrontendLimits, LongPollLimiter, RequestRateLimiter
from cadenza.schemas.codec import decode_events
from cadenza.schemas.events import HistoryEvent
from cadenza.schemas.ids import new_id
from cadenza.schemas.service import (
    DescribeWorkflowResponse,
    GetHistoryRequest,
    GetHistoryResponse,
    PendingActivity,
    PollActivityTaskResponse,
    PollWorkflowTaskResponse,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
    StartWorkflowRequest,
    StartWorkflowResponse,
    WorkflowExecution,
)

Payloads = list[dict[str, Any]]


T = TypeVar("T")


class Frontend(
    ClusterOperations,
    VisibilityOperations,
    TaskQueueOperations,
    ActivityByIdOperations,
    UpdateOperations,
    ArchivalOperations,
):
    def __init__(
        self,
        history: HistoryEngine,
        matching: MatchingEngine,
        namespaces: NamespaceRegistry,
        *,
        query_timeout_s: float = 10.0,
    ) -> None:
        self.history = history
        self.matching = matching
        self.namespaces = namespaces
        self.query_timeout_s = query_timeout_s
        self._queries: dict[str, PendingQuery] = {}
        self.visibility: Any = None
        """The visibility store lists and counts read from (None: not configured)."""
        self.dynamic_config: Any = None
        """Settings an operator changes while the server runs (``cadenza.ops.dynamic_config``)."""
        self.overload_limits = FrontendLimits()
        """The static overload limits (``services.frontend.limits``); dynamic config overrides them."""
        self.rate_limiter = RequestRateLimiter(self._limit)
        """API requests per second, per namespace and for this host (``cadenza.engine.ratelimit``)."""
        self.poll_limiter = LongPollLimiter(self._limit)
        """Open long polls per namespace and per client identity."""
        self.failover: Any = None
        self.replication_status: Any = None
        self.replication_dlq: Any = None
        """Returns this cluster's replication state (``Replication.status``), when it replicates."""
        """``cadenza.replication.failover.fail_over`` bound to this host, when it replicates."""
        self.forwarder: Forwarder | None = None
        """Sends the selected APIs of a namespace that is standby here to its active cluster."""
        self.outstanding: dict[bytes, int] = {}
        """Tokens of tasks handed to workers and not yet answered (the time-skipping environment
        only moves time while this is empty)."""

    def _handed_out(self, token: bytes, timeout_ms: int) -> None:
        """Tracks a task handed to a worker until it is answered or its timeout passes. Expired
        entries (their worker died; the timeout retried the task) are dropped as new ones arrive, so
        a long-running server does not keep them forever."""
        now = self.history.clock.now_us()
        if len(self.outstanding) >= 4096:
            for t in [t for t, deadline in self.outstanding.items() if deadline <= now]:
                del self.outstanding[t]
        self.outstanding[token] = now + timeout_ms * 1000

    async def _answered(self, token: bytes, call: Any) -> None:
        try:
            await call
        finally:
            self.outstanding.pop(token, None)

    def _limit(self, key: str, namespace: str) -> int:
        """An overload limit: dynamic config's matching entry, else the static value. Host-wide
        keys (``namespace`` "") match only entries without constraints."""
        static = self.overload_limits.value(key)
        dc = self.dynamic_config
        if dc is None:
            return static
        if not namespace:
            return int(dc.get(key, static))
        return int(dc.get(key, static, namespace=namespace))

    async def _ns_id(self, namespace: str) -> str:
        return (await self.namespaces.get(namespace)).id

    # -- workflows -----------------------------------------------------------------------------------

    @forwardable
    async def start_workflow_execution_and_wait(
        self, request: StartWorkflowRequest, wait_s: float
    ) -> tuple[StartWorkflowResponse, list[HistoryEvent]]:
        """Starts (idempotent by ``request_id``, so a retried call does not start twice), then waits
        up to ``wait_s`` for the run to close: its close event, or nothing if it is still open."""
        started = await self.start_workflow_execution(request)
        closed = await self.get_workflow_execution_history(
            GetHistoryRequest(
                request.namespace,
                WorkflowExecution(request.workflow_id, started.run_id),
                wait_new_event=True,
                close_event_only=True,
                timeout_s=wait_s,
            )
        )
        return started, closed.events

    @forwardable
    async def start_workflow_execution(self, request: StartWorkflowRequest) -> StartWorkflowResponse:
        self.rate_limiter.admit(request.namespace)
        ns_id = await self._ns_id(request.namespace)
        if request.search_attributes and self.visibility is not None:
            # Refuse attributes the cluster does not know, or of the wrong type, before writing.
            from cadenza.visibility.errors import SearchAttributeError

            try:
                await self.visibility.get_search_attributes()
                self.visibility.registry.decode(request.search_attributes)
            except SearchAttributeError as e:
                raise InvalidArgumentError(f"search_attributes: {e}") from None
        if not request.request_id:
            request.request_id = new_id()
        # Eager start (Temporal's request_eager_execution): not for a request another cluster
        # forwarded (its caller's worker answers that cluster), nor for a first task that waits.
        eager = (
            request.request_eager_execution
            and not FORWARDED.get()
            and not request.cron_schedule
            and not request.workflow_start_delay_ms
        )
        claimed: list[MatchTask] = []
        run_id, started = await self.history.start_workflow(
            ns_id, request, claim=claimed.append if eager else None
        )
        response = StartWorkflowResponse(run_id=run_id, started=started)
        if claimed:
            response.eager_workflow_task = await self._start_eager_workflow_task(
                request.namespace, claimed[0], request.identity
            )
        return response

    async def _start_eager_workflow_task(
        self, namespace: str, task: MatchTask, identity: str
    ) -> PollWorkflowTaskResponse | None:
        """Starts an eager start's first workflow task for its caller; None (the task goes through
        matching, as without eager start) if that fails. The start itself is done either way."""
        try:
            return await self._start_workflow_task(namespace, task, identity)
        except UnavailableError:
            return None  # offered again through matching (``_record_start``)

    @forwardable
    async def signal_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        signal_name: str,
        input: Payloads | None,
        *,
        identity: str = "",
        request_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> None:
        self.rate_limiter.admit(namespace)
        ns_id = await self._ns_id(namespace)
        await self.history.signal(
            ns_id,
            execution.workflow_id,
            execution.run_id,
            signal_name,
            input,
            identity=identity,
            request_id=request_id,
            header=header,
        )

    @forwardable
    async def request_cancel_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, *, identity: str = "", request_id: str = ""
    ) -> None:
        self.rate_limiter.admit(namespace)
        ns_id = await self._ns_id(namespace)
        await self.history.request_cancel(
            ns_id, execution.workflow_id, execution.run_id, identity=identity, request_id=request_id
        )

    @forwardable
    async def terminate_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reason: str = "",
        details: Payloads | None = None,
        identity: str = "",
    ) -> None:
        self.rate_limiter.admit(namespace)
        ns_id = await self._ns_id(namespace)
        limits.validate_payloads("details", details)
        await self.history.terminate(
            ns_id, execution.workflow_id, execution.run_id, reason=reason, details=details, identity=identity
        )

    @forwardable
    async def reset_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reset_type: str,
        event_id: int = 0,
        reason: str = "",
        identity: str = "",
    ) -> str:
        self.rate_limiter.admit(namespace)
        ns_id = await self._ns_id(namespace)
        return await self.history.reset(
            ns_id,
            execution.workflow_id,
            execution.run_id,
            reset_type=reset_type,
            event_id=event_id,
            reason=reason,
            identity=identity,
        )

    @forwardable
    async def describe_workflow_execution(
        self, namespace: str, execution: WorkflowExecution
    ) -> DescribeWorkflowResponse:
        ns_id = await self._ns_id(namespace)
        _, ms = await self.history.get_state(ns_id, execution.workflow_id, execution.run_id)
        i = ms.info
        return DescribeWorkflowResponse(
            workflow_id=i.workflow_id,
            run_id=i.run_id,
            workflow_type=i.workflow_type,
            task_queue=i.task_queue,
            status=ExecutionStatus(i.status).name,
            start_time=i.start_time,
            close_time=i.close_time,
            history_length=ms.next_event_id - 1,
            history_size_bytes=i.history_size_bytes,
            memo=dict(i.memo),
            search_attributes=dict(i.search_attributes),
            pending_activities=[
                PendingActivity(
                    activity_id=a.activity_id,
                    activity_type=a.activity_type,
                    state="STARTED" if a.started_time else "SCHEDULED",
                    attempt=a.attempt,
                    scheduled_time=a.scheduled_time,
                    last_started_time=a.started_time,
                    last_heartbeat_time=a.last_heartbeat_time,
                    heartbeat_details=a.heartbeat_details,
                    last_failure=a.last_failure,
                )
                for a in ms.activities.values()
            ],
            pending_timers=len(ms.timers),
            attempt=i.attempt,
            version_histories=[
                f"{branch}: " + " ".join(f"{e}@{v}" for e, v in items)
                for branch, items in [(i.branch_id, ms.version_history), *ms.branches]
            ],
            # Only when it says something: a response without the newer fields is written in the
            # older schema version, which clients that predate them still read.
            execution_time=i.execution_time if i.execution_time != i.start_time else 0,
            parent_workflow_id=i.parent_workflow_id,
            parent_run_id=i.parent_run_id,
        )

    @forwardable_when(lambda request: request.wait_new_event or request.close_event_only)
    async def get_workflow_execution_history(self, request: GetHistoryRequest) -> GetHistoryResponse:
        ns_id = await self._ns_id(request.namespace)
        ex = request.execution
        if request.branch_id:
            return await self._branch_history(ns_id, request)
        first = history_page_start(request.next_page_token)
        page = max(1, min(request.maximum_page_size or 1000, 10_000))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        while True:
            if request.close_event_only:
                _, ctx = await self.history.run_context(ns_id, ex.workflow_id, ex.run_id)
                if ctx.close_event is not None:  # a closed run keeps only this in the cache
                    return GetHistoryResponse([ctx.close_event], None, ctx.key[2])
                ctx, ms = await self.history.get_state(ns_id, ex.workflow_id, ex.run_id)
                if not ms.is_running:
                    close = ctx.close_event
                    if close is None:
                        _, ms, events = await self.history.get_state_and_events(
                            ns_id, ex.workflow_id, ex.run_id
                        )
                        close = events[ms.info.completion_event_id - 1]
                    return GetHistoryResponse([close], None, ms.info.run_id)
            else:
                ctx, ms, events = await self.history.get_state_and_events(ns_id, ex.workflow_id, ex.run_id)
                available = len(events)
                if available >= first:
                    chunk = events[first - 1 : first - 1 + page]
                    nxt = first + len(chunk)
                    more = nxt <= available or (request.wait_new_event and ms.is_running)
                    return GetHistoryResponse(chunk, str(nxt).encode() if more else None, ms.info.run_id)
                if not request.wait_new_event or not ms.is_running:
                    return GetHistoryResponse([], None, ms.info.run_id)
            if not request.wait_new_event and not request.close_event_only:
                return GetHistoryResponse([], None, ms.info.run_id)
            remaining = deadline - loop.time()
            if remaining <= 0 or self.history.stopping:  # stopping: the client polls again elsewhere
                return GetHistoryResponse([], request.next_page_token or b"1", ms.info.run_id)
            await self.history.wait_for_change(ctx, remaining, close_only=request.close_event_only)

    async def _branch_history(self, ns_id: str, request: GetHistoryRequest) -> GetHistoryResponse:
        """All events of one branch of the run (its current one, or one a conflict left behind)."""
        ex = request.execution
        _, ms, events = await self.history.get_state_and_events(ns_id, ex.workflow_id, ex.run_id)
        if request.branch_id == ms.info.branch_id:
            return GetHistoryResponse(list(events), None, ms.info.run_id)
        known = dict(ms.branches)
        if request.branch_id not in known:
            branches = ", ".join([ms.info.branch_id, *known]) or "none"
            raise InvalidArgumentError(
                f"workflow {ex.workflow_id!r} run {ms.info.run_id} has no branch {request.branch_id!r} "
                f"(its branches: {branches})"
            )
        last = known[request.branch_id][-1][0] if known[request.branch_id] else 0
        out: list[HistoryEvent] = []
        token: bytes | None = None
        while True:
            nodes, token = await self.history.stores.history.read_history_branch(
                ms.info.tree_id,
                request.branch_id,
                min_node_id=1,
                max_node_id=last + 1,
                page_size=1000,
                token=token,
            )
            for node in nodes:
                out.extend(e for e in decode_events(node.data) if e.event_id <= last)
            if not token:
                return GetHistoryResponse(out, None, ms.info.run_id)

    # -- workflow tasks ----------------------------------------------------------------------------------

    async def poll_workflow_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollWorkflowTaskResponse | None:
        ns_id = await self._ns_id(namespace)
        with self.poll_limiter.slot(namespace, identity):
            return await self._poll_workflow_task(namespace, ns_id, task_queue, identity, timeout_s)

    async def _poll_workflow_task(
        self, namespace: str, ns_id: str, task_queue: str, identity: str, timeout_s: float
    ) -> PollWorkflowTaskResponse | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        first = True
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and not first:
                return None
            first = False
            # ``timeout_s`` 0: take a queued task if there is one, without waiting.
            task = await self.matching.poll(
                ns_id, task_queue, WORKFLOW_TASK, max(remaining, 0.0), identity=identity
            )
            if task is None:
                return None
            if task.query is not None:
                resp = await self._query_task_response(namespace, task)
                if resp is not None:
                    return resp
                continue
            resp = await self._start_workflow_task(namespace, task, identity)
            if resp is not None:
                return resp

    async def _start_workflow_task(
        self, namespace: str, task: MatchTask, identity: str
    ) -> PollWorkflowTaskResponse | None:
        request_id = new_id()
        result = await self._record_start(
            task,
            lambda m: (
                wft.record_started(m, task.scheduled_event_id, task.attempt, request_id, identity),
                m.ms.info.workflow_type,
                _sticky_from(m.ms, task),
            ),
        )
        if result is None:
            return None
        (scheduled_id, started_id, synthetic), workflow_type, first = result
        _, ms_now, events = await self.history.get_state_and_events(
            task.namespace_id, task.workflow_id, task.run_id
        )
        wt = ms_now.workflow_task
        if wt.started_event_id != started_id or wt.request_id != request_id:
            # The state holding this start was dropped meanwhile (a failed write): the task was
            # offered again, and the history at hand may lack what the start was based on.
            return None
        written = started_id - len(synthetic)
        # From the sticky queue: only the events after the worker's last task (sticky execution).
        start = first - 1 if 0 < first <= written + 1 else 0
        history = events[start:written] + synthetic if synthetic else events[start:started_id]
        token = wft.encode_token(
            task.namespace_id,
            task.workflow_id,
            task.run_id,
            scheduled_id,
            task.attempt,
            started_id,
            request_id=request_id,
        )
        self._handed_out(token, ms_now.workflow_task.timeout_ms)
        return PollWorkflowTaskResponse(
            task_token=token,
            workflow_execution=WorkflowExecution(task.workflow_id, task.run_id),
            workflow_type=workflow_type,
            namespace=namespace,
            attempt=task.attempt,
            started_event_id=started_id,
            history=history,
            updates=self.history.updates.registry.deliver((task.namespace_id, task.workflow_id, task.run_id)),
        )

    async def _record_start(self, task: MatchTask, rule: Callable[[Mutation], T]) -> T | None:
        """Records the start of a task taken from matching; None when it cannot start (stale: done
        with it; the store failing: offered again a second later, and UnavailableError raised)."""
        try:
            return await self.history.mutate(
                task.namespace_id,
                task.workflow_id,
                task.run_id,
                rule,
                defer=Deferred(task.ack, functools.partial(self.matching.reoffer, task)),
            )
        except asyncio.CancelledError:
            self._start_cancelled(task)
            raise
        except Exception as e:
            self._start_failed(task, e)
            if isinstance(e, UnavailableError):
                raise
            return None

    def _start_cancelled(self, task: MatchTask) -> None:
        """The poll that took ``task`` was cancelled (its worker stopped, its RPC was abandoned)
        while the start was being recorded. Whether it was recorded is unknown, and a task taken
        from matching has no other trigger, so it is offered again: if the start was recorded, the
        second start is refused as stale and the first one's timeout retries it; if not, the task
        would otherwise be lost and its run would wait forever."""
        self.matching.reoffer(task)

    def _start_failed(self, task: MatchTask, e: BaseException) -> None:
        """A task whose start failed. Stale (nothing to start any more): done with it. Otherwise
        (the store is down, the shard is busy...) it is offered again a second later: dropping it
        would leave its run waiting forever, since a scheduled task has no other trigger."""
        stale = isinstance(e, NotFoundError | InvalidArgumentError | FailedPreconditionError)
        try:
            lost = self.history.shard(task.namespace_id, task.workflow_id).lost
        except UnavailableError:
            lost = True
        if stale or lost:
            task.ack()  # a lost shard's new owner re-reads the task from the store
        else:
            asyncio.get_running_loop().call_later(1.0, self.matching.reoffer, task)

    async def respond_workflow_task_completed(
        self, request: RespondWorkflowTaskCompletedRequest
    ) -> list[PollActivityTaskResponse]:
        """Completes a workflow task. Returns the activity tasks started for the worker that asked
        to run them itself (``eager_activity_ids``; see ``_claim_eager``)."""
        ns, wid, rid, sid, attempt, started, start_id = wft.decode_workflow_token(request.task_token)
        claimed: list[MatchTask] = []
        eager = set(request.eager_activity_ids)

        def rule(m: Mutation) -> None:
            wft.complete(
                m,
                sid,
                attempt,
                started,
                request.commands,
                request.identity,
                request_id=start_id,
                sticky_task_queue=request.sticky_task_queue,
                sticky_schedule_to_start_timeout_ms=request.sticky_schedule_to_start_timeout_ms,
            )
            if eager:
                _claim_eager(m, eager, claimed.append)

        try:
            await self._answered(request.task_token, self.history.mutate(ns, wid, rid, rule))
        except wft.BadCommandError as e:
            # Nothing of the task was written; record why it failed, as the anchors do, so the
            # history shows the cause and the task is retried (by fixed code) instead of timing out.
            failure = {
                "message": e.message,
                "source": "Server",
                "stack_trace": "",
                "failure_type": "ServerFailure",
                "application_type": e.cause,
                "non_retryable": False,
                "details": None,
                "timeout_type": None,
                "cause": None,
            }
            cause = e.cause
            await self.history.mutate(
                ns,
                wid,
                rid,
                lambda m: wft.fail(
                    m, sid, attempt, started, cause, failure, request.identity, request_id=start_id
                ),
            )
            raise
        out: list[PollActivityTaskResponse] = []
        for n, task in enumerate(claimed):
            try:
                resp = await self._start_activity_task(request.namespace, task, request.identity)
            except UnavailableError:
                continue  # offered again through matching; the completion itself is done
            except BaseException:
                # The call was cancelled (its worker went away): the claimed tasks not started yet
                # have no other way to matching.
                for rest in claimed[n + 1 :]:
                    self.matching.reoffer(rest)
                raise
            if resp is not None:
                out.append(resp)
        return out

    async def respond_workflow_task_failed(self, request: RespondWorkflowTaskFailedRequest) -> None:
        ns, wid, rid, sid, attempt, started, start_id = wft.decode_workflow_token(request.task_token)
        await self._answered(
            request.task_token,
            self.history.mutate(
                ns,
                wid,
                rid,
                lambda m: wft.fail(
                    m,
                    sid,
                    attempt,
                    started,
                    request.cause,
                    request.failure,
                    request.identity,
                    request_id=start_id,
                ),
            ),
        )

    # -- activity tasks ------------------------------------------------------------------------------------

    async def poll_activity_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollActivityTaskResponse | None:
        ns_id = await self._ns_id(namespace)
        with self.poll_limiter.slot(namespace, identity):
            return await self._poll_activity_task(namespace, ns_id, task_queue, identity, timeout_s)

    async def _poll_activity_task(
        self, namespace: str, ns_id: str, task_queue: str, identity: str, timeout_s: float
    ) -> PollActivityTaskResponse | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            task = await self.matching.poll(ns_id, task_queue, ACTIVITY_TASK, remaining, identity=identity)
            if task is None:
                return None
            resp = await self._start_activity_task(namespace, task, identity)
            if resp is not None:
                return resp

    async def _start_activity_task(
        self, namespace: str, task: MatchTask, identity: str
    ) -> PollActivityTaskResponse | None:
        """Records the start of an activity task taken from matching (or claimed eagerly); None when
        it cannot start (stale: dropped; the store failing: offered again)."""
        started = await self._record_start(task, _activity_start_rule(task, new_id(), identity))
        if started is None:
            return None
        info, workflow_type = started
        token = wft.encode_token(
            task.namespace_id, task.workflow_id, task.run_id, info.scheduled_event_id, info.attempt
        )
        budget = [t for t in (info.start_to_close_timeout_ms, info.heartbeat_timeout_ms) if t]
        self._handed_out(token, min(budget or [0]))
        return PollActivityTaskResponse(
            task_token=token,
            workflow_execution=WorkflowExecution(task.workflow_id, task.run_id),
            workflow_type=workflow_type,
            namespace=namespace,
            activity_id=info.activity_id,
            activity_type=info.activity_type,
            input=info.input,
            header=info.header,
            attempt=info.attempt,
            scheduled_time=info.first_scheduled_time,
            current_attempt_scheduled_time=info.scheduled_time,
            started_time=info.started_time,
            schedule_to_close_timeout_ms=info.schedule_to_close_timeout_ms,
            start_to_close_timeout_ms=info.start_to_close_timeout_ms,
            heartbeat_timeout_ms=info.heartbeat_timeout_ms,
            heartbeat_details=info.heartbeat_details,
            task_queue=info.task_queue,
        )

    async def record_activity_task_heartbeat(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> bool:
        ns, wid, rid, sid, attempt, _ = wft.decode_token(task_token)
        limits.validate_payloads("details", details)

        def rule(m: Mutation) -> tuple[bool, int]:
            cancel = activities.heartbeat(m, sid, attempt, details)
            return cancel, m.ms.activities[sid].heartbeat_timeout_ms

        cancel, heartbeat_timeout_ms = await self.history.mutate(ns, wid, rid, rule)
        if heartbeat_timeout_ms and task_token in self.outstanding:
            # The worker is alive: its task counts as in flight for another heartbeat timeout.
            self.outstanding[task_token] = self.history.clock.now_us() + heartbeat_timeout_ms * 1000
        return cancel

    async def respond_activity_task_completed(
        self, task_token: bytes, result: Payloads | None, *, identity: str = ""
    ) -> None:
        ns, wid, rid, sid, attempt, _ = wft.decode_token(task_token)
        try:
            limits.validate_payloads("result", result)
        except InvalidArgumentError as e:
            # The activity's result cannot be stored: fail the attempt instead, non-retryably, so
            # the workflow learns why rather than the activity timing out.
            await self.respond_activity_task_failed(
                task_token,
                {
                    "message": str(e),
                    "source": "Server",
                    "stack_trace": "",
                    "failure_type": "ApplicationFailure",
                    "application_type": "PayloadSizeLimitExceeded",
                    "non_retryable": True,
                    "details": None,
                    "timeout_type": None,
                    "cause": None,
                },
                identity=identity,
            )
            raise
        await self._answered(
            task_token,
            self.history.mutate(
                ns, wid, rid, lambda m: activities.completed(m, sid, attempt, result, identity), hold=True
            ),
        )

    async def respond_activity_task_failed(
        self, task_token: bytes, failure: dict[str, Any], *, identity: str = ""
    ) -> None:
        ns, wid, rid, sid, attempt, _ = wft.decode_token(task_token)
        await self._answered(
            task_token,
            self.history.mutate(
                ns, wid, rid, lambda m: activities.failed(m, sid, attempt, failure, identity)
            ),
        )

    async def respond_activity_task_canceled(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> None:
        ns, wid, rid, sid, attempt, _ = wft.decode_token(task_token)
        await self._answered(
            task_token,
            self.history.mutate(
                ns, wid, rid, lambda m: activities.canceled(m, sid, attempt, details, identity)
            ),
        )


MAX_HISTORY_PAGE_TOKEN_DIGITS = 12
"""A history page token is the id of the page's first event, in ASCII digits."""


def history_page_start(token: bytes | None) -> int:
    """The first event id of the page ``token`` names (1 without a token); raises
    ``InvalidArgumentError`` for anything this server would not have handed out (``int`` alone
    takes ``-5``, ``0``, `` 1_0 `` and 4,000 digits, and a negative id would page from the end)."""
    if not token:
        return 1
    if len(token) > MAX_HISTORY_PAGE_TOKEN_DIGITS or not token.isdigit() or int(token) < 1:
        shown = token[:40].decode("ascii", errors="replace")
        raise InvalidArgumentError(
            f"next_page_token {shown!r}{'...' if len(token) > 40 else ''} is not a history page token "
            f"of this server (an event id of 1 to {MAX_HISTORY_PAGE_TOKEN_DIGITS} digits); "
            "pass the token of the previous page, or none for the first"
        )
    return int(token)


def _claim_eager(m: Mutation, eager: set[str], take: Callable[[MatchTask], None]) -> None:
    """Eager activity dispatch, as the anchors offer it: the worker completing a workflow task names
    the activities it scheduled that it will run itself (registered there, with a free slot). Those
    on the run's own task queue skip matching and the worker's activity poll: once the write
    commits, their tasks are started for that worker and returned with the completion. Their
    transfer tasks are written as usual, so a crash before the start offers them through matching."""
    ms = m.ms
    for t in m.tasks.transfer:
        if t.kind != TransferKind.ACTIVITY_TASK or t.args["q"] != ms.info.task_queue:
            continue
        info = ms.activities.get(t.args["s"])
        if info is not None and info.activity_id in eager:
            t.claim = take


def _activity_start_rule(task: MatchTask, request_id: str, identity: str) -> Any:
    def rule(m: Mutation) -> tuple[Any, str]:
        info = activities.record_started(m, task.scheduled_event_id, task.attempt, request_id, identity)
        return info, m.ms.info.workflow_type

    return rule


def _sticky_from(ms: MutableState, task: MatchTask) -> int:
    """For a workflow task taken from the run's sticky queue: the id of the first event its worker
    has not seen (the last completed task's WorkflowTaskCompleted; the worker has everything
    through that task's Started). 0 otherwise: the whole history."""
    if task.normal_queue and task.task_queue == ms.info.sticky_task_queue:
        return ms.info.last_completed_workflow_task_event_id
    return 0
