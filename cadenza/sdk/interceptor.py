"""Interceptors: code that wraps a client's calls, a worker's activities and workflow runs.

Shaped as temporalio's: an :class:`Interceptor` passed to ``Client.connect(..., interceptors=[...])``
(and, when it also intercepts workers, used by every ``Worker`` of that client) or to
``Worker(..., interceptors=[...])``. Each hook gets the next interceptor of its chain (``next``) and
an input whose ``headers`` it may extend; headers travel with the start request (into the run's
WorkflowExecutionStarted event) and with each scheduled activity (into ActivityTaskScheduled and
the activity task), so what a client puts there reaches the run, and what a run puts on an
activity reaches its worker; a child's start, a local activity and continue-as-new carry the
workflow's outbound headers the same way, and a signal's header (from a client's ``signal_workflow``
or a workflow's ``signal_child_workflow``/``signal_external_workflow``) is written into the
WorkflowExecutionSignaled event, where the receiving run's ``handle_signal`` finds it.
``cadenza.contrib.opentelemetry.TracingInterceptor`` is one.

Workflow interceptors run inside workflow code: they must be deterministic, and they see
``WorkflowInboundInterceptor``/``WorkflowOutboundInterceptor`` calls on replay too (check
``workflow.unsafe.is_replaying()`` before doing anything with a side effect). Headers a replayed
activity schedule carries are never compared with history, so they may differ between runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from cadenza.schemas.service import StartWorkflowRequest, WorkflowExecution
from cadenza.sdk.payload_converter import plain_headers

__all__ = [
    "OUTGOING_METADATA",
    "ActivityInboundInterceptor",
    "ActivityOutboundInterceptor",
    "AsyncActivityIDReference",
    "CancelWorkflowInput",
    "ClientInterceptor",
    "ClientOutboundInterceptor",
    "CompleteAsyncActivityInput",
    "ContinueAsNewInput",
    "CountWorkflowsInput",
    "DescribeWorkflowInput",
    "ExecuteActivityInput",
    "ExecuteWorkflowInput",
    "FailAsyncActivityInput",
    "FetchWorkflowHistoryEventsInput",
    "HandleQueryInput",
    "HandleSignalInput",
    "HandleUpdateInput",
    "Headers",
    "HeartbeatAsyncActivityInput",
    "Interceptor",
    "ListWorkflowsInput",
    "QueryWorkflowInput",
    "ReportCancellationAsyncActivityInput",
    "SignalChildWorkflowInput",
    "SignalExternalWorkflowInput",
    "SignalWorkflowInput",
    "StartActivityInput",
    "StartChildWorkflowInput",
    "StartLocalActivityInput",
    "StartWorkflowInput",
    "StartWorkflowUpdateInput",
    "StartWorkflowUpdateWithStartInput",
    "TerminateWorkflowInput",
    "UpdateWithStartStartWorkflowInput",
    "UpdateWithStartUpdateWorkflowInput",
    "WorkerInterceptor",
    "WorkflowInboundInterceptor",
    "WorkflowInterceptorClassInput",
    "WorkflowOutboundInterceptor",
]

OUTGOING_METADATA: ContextVar[tuple[tuple[str, str | bytes], ...]] = ContextVar(
    "cadenza_outgoing_metadata", default=()
)
"""gRPC metadata the calls made in this context add (a client interceptor sets it around a call; the
tracing interceptor puts the trace context there so the server's span continues the client's; a
call's ``rpc_metadata`` goes there too). Values are text, or bytes for keys ending in ``-bin``."""

Headers = dict[str, dict[str, Any]]
"""Header name to payload (``{"metadata": {...}, "data": b"..."}``)."""

RpcMetadataMap = Mapping[str, str | bytes]
"""A call's extra gRPC metadata (``cadenza.sdk._call_options.RpcMetadata``)."""


# -- client ----------------------------------------------------------------------------------------


@dataclass
class StartWorkflowInput:
    workflow: str
    id: str
    task_queue: str
    headers: Headers
    request: StartWorkflowRequest
    start_signal: str = ""
    wait_s: float = 0.0
    """Above 0 for ``execute_workflow``: the call also waits (that long at most) for the run to close,
    and returns (start response, close events)."""


@dataclass
class SignalWorkflowInput:
    id: str
    run_id: str
    signal: str
    args: Sequence[Any]
    """The signal's arguments, as values (encoded by the data converter at the end of the chain)."""
    headers: Headers = field(default_factory=dict)
    """Written into the run's WorkflowExecutionSignaled event: its ``HandleSignalInput.headers``."""
    request_id: str = ""
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class QueryWorkflowInput:
    id: str
    run_id: str
    query: str
    args: Sequence[Any]
    """The query's arguments, as values."""
    headers: Headers = field(default_factory=dict)
    """Sent with the query: the handler's ``HandleQueryInput.headers``."""
    ret_type: Any = None
    """The type the answer is decoded to (None: as the converter finds it)."""
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class CancelWorkflowInput:
    id: str
    run_id: str | None
    first_execution_run_id: str | None = None
    """temporalio's chain guard; not sent (this server has no such check): ``run_id`` pins the run."""
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class TerminateWorkflowInput:
    id: str
    run_id: str | None
    first_execution_run_id: str | None
    """As in :class:`CancelWorkflowInput`: not sent."""
    args: Sequence[Any]
    """The termination's details, as values."""
    reason: str | None
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class DescribeWorkflowInput:
    id: str
    run_id: str | None
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class FetchWorkflowHistoryEventsInput:
    id: str
    run_id: str | None
    page_size: int | None
    next_page_token: bytes | None
    wait_new_event: bool
    event_filter_type: Any
    """``WorkflowHistoryEventFilterType``: all events, or the close event only."""
    skip_archival: bool
    """Accepted for temporalio; archived runs are read with ``cadenza wf show --archived``."""
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None
    branch_id: str = ""
    """Another branch of the run's history (a conflict between clusters replaced it)."""


@dataclass
class ListWorkflowsInput:
    query: str | None
    page_size: int
    next_page_token: bytes | None
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None
    limit: int | None = None


@dataclass
class CountWorkflowsInput:
    query: str | None
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class StartWorkflowUpdateInput:
    id: str
    run_id: str | None
    first_execution_run_id: str | None
    """As in :class:`CancelWorkflowInput`: not sent."""
    update_id: str | None
    """None: the client makes one up."""
    update: str
    args: Sequence[Any]
    """The update's arguments, as values."""
    wait_for_stage: Any
    """``WorkflowUpdateStage``: the call returns once the update reached it."""
    headers: Headers
    """Sent with the update: the run's ``HandleUpdateInput.headers``."""
    ret_type: Any
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class UpdateWithStartStartWorkflowInput:
    """The start half of update-with-start."""

    workflow: str
    args: Sequence[Any]
    id: str
    task_queue: str
    id_conflict_policy: Any
    """``WorkflowIDConflictPolicy``: USE_EXISTING (updates a running workflow) or FAIL."""
    headers: Headers
    """Written into WorkflowExecutionStarted when the workflow is started."""
    ret_type: Any
    request: StartWorkflowRequest = field(repr=False)
    """The start as the client built it from the operation's options (the headers join it)."""
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class UpdateWithStartUpdateWorkflowInput:
    """The update half of update-with-start."""

    id: str
    update_id: str | None
    update: str
    args: Sequence[Any]
    wait_for_stage: Any
    headers: Headers
    """Sent with the update: the run's ``HandleUpdateInput.headers``."""
    ret_type: Any
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class StartWorkflowUpdateWithStartInput:
    start_workflow_input: UpdateWithStartStartWorkflowInput
    update_workflow_input: UpdateWithStartUpdateWorkflowInput
    operation: Any = field(repr=False, default=None)
    """The ``WithStartWorkflowOperation`` whose ``workflow_handle()`` the end resolves."""


@dataclass
class HeartbeatAsyncActivityInput:
    id_or_token: AsyncActivityIDReference | bytes
    details: Sequence[Any]
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class CompleteAsyncActivityInput:
    id_or_token: AsyncActivityIDReference | bytes
    result: Any
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class FailAsyncActivityInput:
    id_or_token: AsyncActivityIDReference | bytes
    error: BaseException
    last_heartbeat_details: Sequence[Any]
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass
class ReportCancellationAsyncActivityInput:
    id_or_token: AsyncActivityIDReference | bytes
    details: Sequence[Any]
    rpc_metadata: RpcMetadataMap = field(default_factory=dict)
    rpc_timeout: timedelta | None = None


@dataclass(frozen=True)
class AsyncActivityIDReference:
    """An activity addressed by ids rather than by task token (``run_id`` None: the current run)."""

    workflow_id: str
    run_id: str | None
    activity_id: str


class ClientOutboundInterceptor:
    """Wraps the client's calls; override what you need and call ``self.next``. The inputs carry
    ``rpc_metadata`` and ``rpc_timeout`` as the caller gave them; the end of the chain applies
    what they hold when it calls the server."""

    def __init__(self, next: ClientOutboundInterceptor) -> None:
        self.next = next

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        return await self.next.start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await self.next.signal_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        """Returns the decoded answer."""
        return await self.next.query_workflow(input)

    async def cancel_workflow(self, input: CancelWorkflowInput) -> None:
        await self.next.cancel_workflow(input)

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        await self.next.terminate_workflow(input)

    async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
        """Returns a ``WorkflowExecutionDescription``."""
        return await self.next.describe_workflow(input)

    def fetch_workflow_history_events(self, input: FetchWorkflowHistoryEventsInput) -> Any:
        """Returns a ``WorkflowHistoryEventAsyncIterator`` (``WorkflowHandle.fetch_history`` and
        ``fetch_history_events`` both come through here)."""
        return self.next.fetch_workflow_history_events(input)

    def list_workflows(self, input: ListWorkflowsInput) -> Any:
        """Returns a ``WorkflowExecutionAsyncIterator``."""
        return self.next.list_workflows(input)

    async def count_workflows(self, input: CountWorkflowsInput) -> Any:
        """Returns a ``WorkflowExecutionCount``."""
        return await self.next.count_workflows(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
        """Returns a ``WorkflowUpdateHandle`` (``execute_update`` and ``start_update`` both)."""
        return await self.next.start_workflow_update(input)

    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> Any:
        """Returns a ``WorkflowUpdateHandle`` (``start_update_with_start_workflow`` and
        ``execute_update_with_start_workflow`` both)."""
        return await self.next.start_update_with_start_workflow(input)

    async def heartbeat_async_activity(self, input: HeartbeatAsyncActivityInput) -> None:
        await self.next.heartbeat_async_activity(input)

    async def complete_async_activity(self, input: CompleteAsyncActivityInput) -> None:
        await self.next.complete_async_activity(input)

    async def fail_async_activity(self, input: FailAsyncActivityInput) -> None:
        await self.next.fail_async_activity(input)

    async def report_cancellation_async_activity(self, input: ReportCancellationAsyncActivityInput) -> None:
        await self.next.report_cancellation_async_activity(input)


# -- activities ------------------------------------------------------------------------------------


@dataclass
class ExecuteActivityInput:
    fn: Callable[..., Any]
    args: Sequence[Any]
    headers: Headers
    info: Any
    """The attempt's :class:`cadenza.activity.ActivityInfo`."""
    run: Callable[[Sequence[Any]], Awaitable[Any]] = field(repr=False, default=None)  # type: ignore[assignment]
    """Runs the activity with the given arguments (in its executor when synchronous)."""


class ActivityOutboundInterceptor:
    """Calls an activity makes: ``activity.info()`` and ``activity.heartbeat()`` go through here.
    ``info`` is called often (the activity logger reads it): keep it cheap."""

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        self.next = next

    def info(self) -> Any:
        """The attempt's :class:`cadenza.activity.ActivityInfo`."""
        return self.next.info()

    def heartbeat(self, *details: Any) -> None:
        self.next.heartbeat(*details)


class ActivityInboundInterceptor:
    """Wraps one activity attempt: a chain is made for each attempt, and ``init`` gets the
    attempt's outbound chain (wrap it before passing it on to intercept ``info``/``heartbeat``)."""

    def __init__(self, next: ActivityInboundInterceptor) -> None:
        self.next = next

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self.next.init(outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await self.next.execute_activity(input)


# -- workflows -------------------------------------------------------------------------------------


@dataclass
class WorkflowInterceptorClassInput:
    workflow_type: str


@dataclass
class ExecuteWorkflowInput:
    workflow_type: str
    args: Sequence[Any]
    headers: Headers
    run: Callable[[Sequence[Any]], Awaitable[Any]] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class HandleSignalInput:
    """A signal delivered to the run (its handler runs when this is passed to the end of the chain)."""

    signal: str
    args: Sequence[Any]
    headers: Headers
    run: Callable[[Sequence[Any]], Any] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class HandleQueryInput:
    id: str
    query: str
    args: Sequence[Any]
    headers: Headers
    run: Callable[[Sequence[Any]], Any] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class HandleUpdateInput:
    """An update, given to ``handle_update_validator`` (validation) and then to
    ``handle_update_handler`` (the handler), each with its own ``run``."""

    id: str
    update: str
    args: Sequence[Any]
    headers: Headers
    run: Callable[[Sequence[Any]], Any] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class StartActivityInput:
    activity_type: str
    activity_id: str | None
    headers: Headers
    """The scheduled activity's header: extend it in place or replace it before calling on."""
    schedule: Callable[[], Any] = field(repr=False, default=None)  # type: ignore[assignment]
    args: Sequence[Any] = ()
    """The activity's arguments, as values; replaced ones are what the activity gets."""

    @property
    def activity(self) -> str:
        """temporalio's name for ``activity_type``."""
        return self.activity_type


@dataclass
class StartLocalActivityInput:
    activity: str
    args: Sequence[Any]
    activity_id: str | None
    headers: Headers
    """Reach the local activity's ``ActivityInboundInterceptor.execute_activity``."""
    schedule: Callable[[], Awaitable[Any]] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class StartChildWorkflowInput:
    workflow: str
    args: Sequence[Any]
    id: str
    task_queue: str
    headers: Headers
    """Written into the child's WorkflowExecutionStarted event (its ``ExecuteWorkflowInput``)."""
    start: Callable[[], Awaitable[Any]] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class SignalChildWorkflowInput:
    signal: str
    args: Sequence[Any]
    child_workflow_id: str
    headers: Headers
    """Reach the child's ``HandleSignalInput``."""
    send: Callable[[], Awaitable[None]] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class SignalExternalWorkflowInput:
    signal: str
    args: Sequence[Any]
    namespace: str
    workflow_id: str
    workflow_run_id: str
    headers: Headers
    """Reach the signalled run's ``HandleSignalInput``."""
    send: Callable[[], Awaitable[None]] = field(repr=False, default=None)  # type: ignore[assignment]


@dataclass
class ContinueAsNewInput:
    workflow: str
    args: Sequence[Any]
    task_queue: str
    headers: Headers
    """The next run's start header; left empty, the next run keeps this run's."""
    raise_: Callable[[], Any] = field(repr=False, default=None)  # type: ignore[assignment]


class WorkflowOutboundInterceptor:
    """Calls a run makes. ``start_activity`` returns the runtime's state of the scheduled activity,
    ``start_local_activity`` an awaitable of its result, ``start_child_workflow`` the child's
    handle; ``continue_as_new`` never returns."""

    def __init__(self, next: WorkflowOutboundInterceptor | None) -> None:
        self.next = next

    def _next(self) -> WorkflowOutboundInterceptor:
        assert self.next is not None
        return self.next

    def start_activity(self, input: StartActivityInput) -> Any:
        return self._next().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> Awaitable[Any]:
        return self._next().start_local_activity(input)

    async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        return await self._next().start_child_workflow(input)

    async def signal_child_workflow(self, input: SignalChildWorkflowInput) -> None:
        await self._next().signal_child_workflow(input)

    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        await self._next().signal_external_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        self._next().continue_as_new(input)

    def info(self) -> Any:
        """The run's ``workflow.Info``."""
        return self._next().info()


class WorkflowInboundInterceptor:
    """One per run; ``init`` gets the outbound chain, ``execute_workflow`` wraps the run's main,
    the ``handle_*`` hooks its signal, query and update handlers (also on replay)."""

    def __init__(self, next: WorkflowInboundInterceptor | None) -> None:
        self.next = next

    def _next(self) -> WorkflowInboundInterceptor:
        assert self.next is not None
        return self.next

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        if self.next is not None:
            self.next.init(outbound)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        return await self._next().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        await self._next().handle_signal(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        """Must not wait on anything: a query is answered at once, from the current state."""
        return await self._next().handle_query(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        self._next().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        return await self._next().handle_update_handler(input)


class ClientInterceptor:
    """Intercepts a client's calls (temporalio's ``temporalio.client.Interceptor``)."""

    def intercept_client(self, next: ClientOutboundInterceptor) -> ClientOutboundInterceptor:
        return next


class WorkerInterceptor:
    """Intercepts a worker's activities and workflow runs (temporalio's
    ``temporalio.worker.Interceptor``). Given to a client, it is used by every worker of it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return next

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return None


class Interceptor(ClientInterceptor, WorkerInterceptor):
    """Both at once; every hook by default adds nothing. Two classes as well, as temporalio has them:
    an interceptor written against temporalio subclasses both (``class I(client.Interceptor,
    worker.Interceptor)``), which needs them to be distinct."""


AnyInterceptor = ClientInterceptor | WorkerInterceptor
"""What a client or a worker takes in ``interceptors=``: each is used where it applies."""


# -- the ends of the chains (the SDK's own behaviour) ---------------------------------------------


class _ActivityRunner(ActivityInboundInterceptor):
    def __init__(self) -> None:
        super().__init__(self)
        self.outbound: ActivityOutboundInterceptor | None = None

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self.outbound = outbound  # the whole outbound chain, as the interceptors wrapped it

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await input.run(input.args)


class _ActivityCalls(ActivityOutboundInterceptor):
    """The end of an attempt's outbound chain: the attempt's own info and heartbeat."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(self)
        self.ctx = ctx

    def info(self) -> Any:
        return self.ctx.info

    def heartbeat(self, *details: Any) -> None:
        self.ctx.heartbeat(details)


class ActivityChain:
    """The worker's activity interceptors, made into a fresh chain for each attempt (as temporalio
    does: an interceptor may keep per-attempt state, and ``init`` binds the attempt's outbound)."""

    def __init__(self, interceptors: Sequence[WorkerInterceptor]) -> None:
        self.interceptors = interceptors

    def build(self, ctx: Any) -> ActivityInboundInterceptor:
        """The attempt's inbound chain, its outbound chain bound to ``ctx`` (``ctx.outbound``,
        which ``activity.info()`` and ``activity.heartbeat()`` then go through)."""
        runner = _ActivityRunner()
        chain: ActivityInboundInterceptor = runner
        for interceptor in reversed(self.interceptors):
            chain = interceptor.intercept_activity(chain)
        chain.init(_ActivityCalls(ctx))
        ctx.outbound = runner.outbound
        return chain


class _WorkflowRunner(WorkflowInboundInterceptor):
    def __init__(self) -> None:
        super().__init__(None)
        self.outbound: WorkflowOutboundInterceptor = _WorkflowScheduler()

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self.outbound = outbound  # the whole outbound chain, as the interceptors wrapped it

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        return await input.run(input.args)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        result = input.run(input.args)
        if inspect.isawaitable(result):
            await result

    async def handle_query(self, input: HandleQueryInput) -> Any:
        result = input.run(input.args)
        return await result if inspect.isawaitable(result) else result

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        outcome = input.run(input.args)
        if inspect.iscoroutine(outcome):
            outcome.close()
            raise TypeError("update validators must not be async")

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        result = input.run(input.args)
        return await result if inspect.isawaitable(result) else result


class _WorkflowScheduler(WorkflowOutboundInterceptor):
    def __init__(self) -> None:
        super().__init__(None)

    def start_activity(self, input: StartActivityInput) -> Any:
        return input.schedule()

    def start_local_activity(self, input: StartLocalActivityInput) -> Awaitable[Any]:
        return input.schedule()

    async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        return await input.start()

    async def signal_child_workflow(self, input: SignalChildWorkflowInput) -> None:
        await input.send()

    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        await input.send()

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        input.raise_()
        raise AssertionError("continue_as_new returned")

    def info(self) -> Any:
        from cadenza.sdk._runtime.instance import current_instance

        return current_instance("workflow.info()").info


class _ServiceCalls(ClientOutboundInterceptor):
    """The end of a client's chain: the calls themselves. Each applies its input's
    ``rpc_metadata``/``rpc_timeout`` (the caller's, or what an interceptor made of them)."""

    def __init__(self, client: Any) -> None:
        super().__init__(self)
        self.client = client

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        req = input.request
        if input.headers:
            req.header = {**(req.header or {}), **plain_headers(input.headers)}
        if input.wait_s > 0:
            return await self.client.service.start_workflow_execution_and_wait(req, input.wait_s)
        return await self.client.service.start_workflow_execution(req)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        c = self.client
        with _rpc(input):
            await c.service.signal_workflow_execution(
                c.namespace,
                WorkflowExecution(input.id, input.run_id),
                input.signal,
                c.data_converter.to_payloads(input.args) if input.args else None,
                identity=c.identity,
                request_id=input.request_id,
                header=plain_headers(input.headers) if input.headers else None,
            )

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        c = self.client
        payloads = c.data_converter.to_payloads(input.args) if input.args else None
        with _rpc(input):
            result = await c.service.query_workflow(
                c.namespace,
                WorkflowExecution(input.id, input.run_id),
                input.query,
                payloads,
                header=plain_headers(input.headers) if input.headers else None,
            )
        values = c.data_converter.from_payloads(result, [input.ret_type] if input.ret_type else None)
        return values[0] if values else None

    async def cancel_workflow(self, input: CancelWorkflowInput) -> None:
        from cadenza.schemas.ids import new_id

        c = self.client
        with _rpc(input):
            await c.service.request_cancel_workflow_execution(
                c.namespace,
                WorkflowExecution(input.id, input.run_id or ""),
                identity=c.identity,
                request_id=new_id(),
            )

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        c = self.client
        with _rpc(input):
            await c.service.terminate_workflow_execution(
                c.namespace,
                WorkflowExecution(input.id, input.run_id or ""),
                reason=input.reason or "",
                details=c.data_converter.to_payloads(input.args) if input.args else None,
                identity=c.identity,
            )

    async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
        from cadenza.sdk.description import WorkflowExecutionDescription

        c = self.client
        with _rpc(input):
            resp = await c.service.describe_workflow_execution(
                c.namespace, WorkflowExecution(input.id, input.run_id or "")
            )
        return WorkflowExecutionDescription.from_response(resp, c.data_converter)

    def fetch_workflow_history_events(self, input: FetchWorkflowHistoryEventsInput) -> Any:
        from cadenza.sdk.history import WorkflowHistoryEventAsyncIterator

        return WorkflowHistoryEventAsyncIterator(self.client, input)

    def list_workflows(self, input: ListWorkflowsInput) -> Any:
        from cadenza.sdk.listing import WorkflowExecutionAsyncIterator

        return WorkflowExecutionAsyncIterator(
            self.client,
            input.query or "",
            limit=input.limit,
            page_size=input.page_size,
            next_page_token=input.next_page_token,
            rpc_metadata=input.rpc_metadata,
            rpc_timeout=input.rpc_timeout,
        )

    async def count_workflows(self, input: CountWorkflowsInput) -> Any:
        from cadenza.sdk.listing import count_workflows

        with _rpc(input):
            return await count_workflows(self.client, input.query or "")

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
        from cadenza.sdk.client_updates import send_update

        with _rpc(input, timeout=False):  # the update's own wait is bounded by ``rpc_timeout``
            return await send_update(self.client, input)

    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> Any:
        from cadenza.sdk.client_updates import send_update_with_start

        with _rpc(input.update_workflow_input, timeout=False):  # the wait is bounded by rpc_timeout
            return await send_update_with_start(self.client, input)

    async def heartbeat_async_activity(self, input: HeartbeatAsyncActivityInput) -> None:
        c = self.client
        payloads = c.data_converter.to_payloads(input.details) if input.details else None
        with _rpc(input):
            if isinstance(input.id_or_token, bytes):
                await c.service.record_activity_task_heartbeat(
                    input.id_or_token, payloads, identity=c.identity
                )
            else:
                await c.service.record_activity_task_heartbeat_by_id(
                    *_activity_ids(c, input.id_or_token), payloads, identity=c.identity
                )

    async def complete_async_activity(self, input: CompleteAsyncActivityInput) -> None:
        c = self.client
        payloads = c.data_converter.to_payloads([input.result])
        with _rpc(input):
            if isinstance(input.id_or_token, bytes):
                await c.service.respond_activity_task_completed(
                    input.id_or_token, payloads, identity=c.identity
                )
            else:
                await c.service.respond_activity_task_completed_by_id(
                    *_activity_ids(c, input.id_or_token), payloads, identity=c.identity
                )

    async def fail_async_activity(self, input: FailAsyncActivityInput) -> None:
        c = self.client
        if input.last_heartbeat_details:
            await self.heartbeat_async_activity(
                HeartbeatAsyncActivityInput(
                    input.id_or_token, input.last_heartbeat_details, input.rpc_metadata, input.rpc_timeout
                )
            )
        failure = c.data_converter.exception_to_failure(input.error)
        with _rpc(input):
            if isinstance(input.id_or_token, bytes):
                await c.service.respond_activity_task_failed(input.id_or_token, failure, identity=c.identity)
            else:
                await c.service.respond_activity_task_failed_by_id(
                    *_activity_ids(c, input.id_or_token), failure, identity=c.identity
                )

    async def report_cancellation_async_activity(self, input: ReportCancellationAsyncActivityInput) -> None:
        c = self.client
        payloads = c.data_converter.to_payloads(input.details) if input.details else None
        with _rpc(input):
            if isinstance(input.id_or_token, bytes):
                await c.service.respond_activity_task_canceled(
                    input.id_or_token, payloads, identity=c.identity
                )
            else:
                await c.service.respond_activity_task_canceled_by_id(
                    *_activity_ids(c, input.id_or_token), payloads, identity=c.identity
                )


def _rpc(input: Any, *, timeout: bool = True) -> AbstractContextManager[None]:
    from cadenza.sdk._call_options import rpc_options

    return rpc_options(input.rpc_metadata, input.rpc_timeout if timeout else None)


def _activity_ids(client: Any, ref: AsyncActivityIDReference) -> tuple[str, str, str, str]:
    return client.namespace, ref.workflow_id, ref.run_id or "", ref.activity_id


def activity_chain(interceptors: Sequence[AnyInterceptor]) -> ActivityChain | None:
    """The activity interceptors, outermost first; None without any (nothing to pay)."""
    workers = [i for i in interceptors if isinstance(i, WorkerInterceptor)]
    return ActivityChain(workers) if workers else None


def workflow_classes(
    interceptors: Sequence[AnyInterceptor], workflow_type: str
) -> tuple[type[WorkflowInboundInterceptor], ...]:
    """The inbound interceptor classes the interceptors give runs of ``workflow_type``."""
    found = (
        i.workflow_interceptor_class(WorkflowInterceptorClassInput(workflow_type))
        for i in interceptors
        if isinstance(i, WorkerInterceptor)
    )
    return tuple(c for c in found if c is not None)


def workflow_chain(
    classes: Sequence[type[WorkflowInboundInterceptor]],
) -> tuple[WorkflowInboundInterceptor, WorkflowOutboundInterceptor]:
    """A run's inbound chain (outermost first) and its outbound chain (each inbound interceptor's
    ``init`` may wrap the outbound end before handing it on)."""
    runner = _WorkflowRunner()
    inbound: WorkflowInboundInterceptor = runner
    for cls in reversed(classes):
        inbound = cls(inbound)
    inbound.init(_WorkflowScheduler())
    return inbound, runner.outbound


def client_chain(interceptors: Sequence[AnyInterceptor], client: Any) -> ClientOutboundInterceptor:
    """The client's chain, outermost first (without interceptors, the calls themselves)."""
    chain: ClientOutboundInterceptor = _ServiceCalls(client)
    for interceptor in reversed(interceptors):
        if isinstance(interceptor, ClientInterceptor):
            chain = interceptor.intercept_client(chain)
    return chain
