"""Interceptors: code that wraps a client's calls, a worker's activities and workflow runs.

Shaped as temporalio's: an :class:`Interceptor` passed to ``Client.connect(..., interceptors=[...])``
(and, when it also intercepts workers, used by every ``Worker`` of that client) or to
``Worker(..., interceptors=[...])``. Each hook gets the next interceptor of its chain (``next``) and
an input whose ``headers`` it may extend; headers travel with the start request (into the run's
WorkflowExecutionStarted event) and with each scheduled activity (into ActivityTaskScheduled and
the activity task), so what a client puts there reaches the run, and what a run puts on an
activity reaches its worker. ``cadenza.contrib.opentelemetry.TracingInterceptor`` is one.

Workflow interceptors run inside workflow code: they must be deterministic, and they see
``WorkflowInboundInterceptor``/``WorkflowOutboundInterceptor`` calls on replay too (check
``workflow.unsafe.is_replaying()`` before doing anything with a side effect). Headers a replayed
activity schedule carries are never compared with history, so they may differ between runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cadenza.schemas.service import Payloads, StartWorkflowRequest, WorkflowExecution
from cadenza.sdk.payload_converter import plain_headers

__all__ = [
    "OUTGOING_METADATA",
    "ActivityInboundInterceptor",
    "ClientInterceptor",
    "ClientOutboundInterceptor",
    "ExecuteActivityInput",
    "ExecuteWorkflowInput",
    "Headers",
    "Interceptor",
    "QueryWorkflowInput",
    "SignalWorkflowInput",
    "StartActivityInput",
    "StartWorkflowInput",
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
    args: Payloads | None
    headers: Headers = field(default_factory=dict)
    """Not carried to the run (signals have no header in this protocol); interceptors may still set it."""
    request_id: str = ""


@dataclass
class QueryWorkflowInput:
    id: str
    run_id: str
    query: str
    args: Payloads | None
    headers: Headers = field(default_factory=dict)


class ClientOutboundInterceptor:
    """Wraps the client's calls; override what you need and call ``self.next``."""

    def __init__(self, next: ClientOutboundInterceptor) -> None:
        self.next = next

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        return await self.next.start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await self.next.signal_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Payloads | None:
        return await self.next.query_workflow(input)


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


class ActivityInboundInterceptor:
    def __init__(self, next: ActivityInboundInterceptor) -> None:
        self.next = next

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
class StartActivityInput:
    activity_type: str
    activity_id: str | None
    headers: Headers
    """The scheduled activity's header: extend it in place or replace it before calling on."""
    schedule: Callable[[], Any] = field(repr=False, default=None)  # type: ignore[assignment]


class WorkflowOutboundInterceptor:
    """Calls a run makes; ``start_activity`` returns the runtime's state of the scheduled activity."""

    def __init__(self, next: WorkflowOutboundInterceptor | None) -> None:
        self.next = next

    def start_activity(self, input: StartActivityInput) -> Any:
        assert self.next is not None
        return self.next.start_activity(input)


class WorkflowInboundInterceptor:
    """One per run; ``init`` gets the outbound chain, ``execute_workflow`` wraps the run's main."""

    def __init__(self, next: WorkflowInboundInterceptor | None) -> None:
        self.next = next

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        if self.next is not None:
            self.next.init(outbound)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        assert self.next is not None
        return await self.next.execute_workflow(input)


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

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await input.run(input.args)


class _WorkflowRunner(WorkflowInboundInterceptor):
    def __init__(self) -> None:
        super().__init__(None)
        self.outbound: WorkflowOutboundInterceptor = _WorkflowScheduler()

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self.outbound = outbound  # the whole outbound chain, as the interceptors wrapped it

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        return await input.run(input.args)


class _WorkflowScheduler(WorkflowOutboundInterceptor):
    def __init__(self) -> None:
        super().__init__(None)

    def start_activity(self, input: StartActivityInput) -> Any:
        return input.schedule()


class _ServiceCalls(ClientOutboundInterceptor):
    """The end of a client's chain: the calls themselves."""

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
        await c.service.signal_workflow_execution(
            c.namespace,
            WorkflowExecution(input.id, input.run_id),
            input.signal,
            input.args,
            identity=c.identity,
            request_id=input.request_id,
        )

    async def query_workflow(self, input: QueryWorkflowInput) -> Payloads | None:
        c = self.client
        return await c.service.query_workflow(
            c.namespace, WorkflowExecution(input.id, input.run_id), input.query, input.args
        )


def activity_chain(interceptors: Sequence[AnyInterceptor]) -> ActivityInboundInterceptor | None:
    """The activity chain, outermost first; None without interceptors (nothing to pay)."""
    if not interceptors:
        return None
    chain: ActivityInboundInterceptor = _ActivityRunner()
    for interceptor in reversed(interceptors):
        if isinstance(interceptor, WorkerInterceptor):
            chain = interceptor.intercept_activity(chain)
    return chain


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


def client_chain(interceptors: Sequence[AnyInterceptor], client: Any) -> ClientOutboundInterceptor | None:
    """The client's chain, outermost first; None without interceptors (the calls go direct)."""
    if not interceptors:
        return None
    chain: ClientOutboundInterceptor = _ServiceCalls(client)
    for interceptor in reversed(interceptors):
        if isinstance(interceptor, ClientInterceptor):
            chain = interceptor.intercept_client(chain)
    return chain
