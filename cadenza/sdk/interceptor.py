"""Interceptors: code that wraps a client's calls, a worker's activities and workflow runs.

Shaped as temporalio's: an :class:`Interceptor` passed to ``Client.connect(..., interceptors=[...])``
(and, when it also intercepts workers, used by every ``Worker`` of that client) or to
``Worker(..., interceptors=[...])``. Each hook gets the next interceptor of its chain (``next``) and
an input whose ``headers`` it may extend; headers travel with the start request (into the run's
WorkflowExecutionStarted event) and with each scheduled activity (into ActivityTaskScheduled and
the activity task), so what a client puts there reaches the run, and what a run puts on an
activity reaches its worker; a child's start, a local activity and continue-as-new carry the
workflow's outbound headers the same way. Signals (from a client or a workflow) carry no header to
the receiving run yet: WorkflowExecutionSignaled has no header in the history schema, so
``HandleSignalInput.headers`` is empty. ``cadenza.contrib.opentelemetry.TracingInterceptor`` is one.

Workflow interceptors run inside workflow code: they must be deterministic, and they see
``WorkflowInboundInterceptor``/``WorkflowOutboundInterceptor`` calls on replay too (check
``workflow.unsafe.is_replaying()`` before doing anything with a side effect). Headers a replayed
activity schedule carries are never compared with history, so they may differ between runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NoReturn

from cadenza.schemas.service import Payloads, StartWorkflowRequest, WorkflowExecution
from cadenza.sdk.payload_converter import plain_headers

__all__ = [
    "OUTGOING_METADATA",
    "ActivityInboundInterceptor",
    "ClientInterceptor",
    "ClientOutboundInterceptor",
    "ContinueAsNewInput",
    "ExecuteActivityInput",
    "ExecuteWorkflowInput",
    "HandleQueryInput",
    "HandleSignalInput",
    "HandleUpdateInput",
    "Headers",
    "Interceptor",
    "QueryWorkflowInput",
    "SignalChildWorkflowInput",
    "SignalExternalWorkflowInput",
    "SignalWorkflowInput",
    "StartActivityInput",
    "StartChildWorkflowInput",
    "StartLocalActivityInput",
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
