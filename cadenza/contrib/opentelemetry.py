"""OpenTelemetry traces of workflows and activities, as temporalio's ``TracingInterceptor``.

    from cadenza.contrib.opentelemetry import TracingInterceptor

    client = await Client.connect("localhost:7233", interceptors=[TracingInterceptor()])
    worker = Worker(client, task_queue="q", workflows=[...], activities=[...])  # traced too

Spans (names as temporalio's): ``StartWorkflow:<type>`` (``SignalWithStartWorkflow:<type>``),
``SignalWorkflow:<signal>`` and ``QueryWorkflow:<query>`` around the client's calls;
``RunWorkflow:<type>`` when a run's code starts, ``StartActivity:<type>`` when it schedules an
activity (or runs a local one), ``StartChildWorkflow:<type>``, ``SignalChildWorkflow:<signal>``,
``SignalExternalWorkflow:<signal>``, and ``HandleSignal:<signal>``, ``HandleQuery:<query>``,
``ValidateUpdate:<update>`` and ``HandleUpdate:<update>`` for its handlers; ``RunActivity:<type>``
around each activity attempt. The context travels in the ``_tracer-data`` header of the start
request, of each scheduled activity, local activity and child, and of a continue-as-new (W3C trace
context and baggage, JSON), and in the gRPC metadata of the calls (``traceparent``), so the
server's span of each call sits in the same trace.

Replay makes no spans: the workflow's spans are made only while its code runs a task for the first
time (``workflow.unsafe.is_replaying()`` is false), so a worker that replays a run after a restart
or an eviction adds nothing to the trace. Workflow spans are instants (started and ended at once),
because a run's code may be evicted and resumed on another worker; activities scheduled after such
a replay name the starter's span as their parent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import opentelemetry.baggage.propagation
import opentelemetry.context
import opentelemetry.propagators.composite
import opentelemetry.propagators.textmap
import opentelemetry.trace
import opentelemetry.trace.propagation.tracecontext
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator

from cadenza.sdk import workflow
from cadenza.sdk.converter import default_converter
from cadenza.sdk.interceptor import (
    OUTGOING_METADATA,
    ActivityInboundInterceptor,
    ClientOutboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    Headers,
    Interceptor,
    QueryWorkflowInput,
    SignalChildWorkflowInput,
    SignalExternalWorkflowInput,
    SignalWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

__all__ = ["TracingInterceptor", "default_text_map_propagator"]

default_text_map_propagator = opentelemetry.propagators.composite.CompositePropagator(
    [
        opentelemetry.trace.propagation.tracecontext.TraceContextTextMapPropagator(),
        opentelemetry.baggage.propagation.W3CBaggagePropagator(),
    ]
)


class TracingInterceptor(Interceptor):
    """Client and worker interceptor making OpenTelemetry spans (see the module docstring)."""

    def __init__(
        self,
        tracer: opentelemetry.trace.Tracer | None = None,
        *,
        header_key: str = "_tracer-data",
        text_map_propagator: TextMapPropagator = default_text_map_propagator,
    ) -> None:
        self.tracer = tracer or opentelemetry.trace.get_tracer(__name__)
        self.header_key = header_key
        self.text_map_propagator = text_map_propagator
        self._converter = default_converter()

    # -- hooks ---------------------------------------------------------------------------------------

    def intercept_client(self, next: ClientOutboundInterceptor) -> ClientOutboundInterceptor:
        return _TracingClientOutbound(next, self)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TracingActivityInbound(next, self)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        root = self

        class _Bound(_TracingWorkflowInbound):
            def __init__(self, next: WorkflowInboundInterceptor | None) -> None:
                super().__init__(next, root)

        return _Bound

    # -- carrying the context ------------------------------------------------------------------------

    def inject(self, headers: Headers, context: Context | None = None) -> None:
        """Put ``context`` (default: the current one) into ``headers`` under the header key."""
        carrier: dict[str, str] = {}
        self.text_map_propagator.inject(carrier, context=context)
        if carrier:
            headers[self.header_key] = self._converter.to_payload(carrier)

    def extract(self, headers: Mapping[str, Any] | None) -> Context | None:
        payload = (headers or {}).get(self.header_key)
        if not payload:
            return None
        carrier = self._converter.from_payload(payload, dict)
        if not isinstance(carrier, dict):
            raise TypeError(f"trace header {self.header_key!r} holds {type(carrier).__name__}, not a dict")
        return self.text_map_propagator.extract(carrier)

    @contextmanager
    def client_span(self, name: str, attributes: dict[str, str]) -> Iterator[None]:
        """A span around a client call, its context sent in the call's gRPC metadata."""
        with self.tracer.start_as_current_span(
            name, kind=opentelemetry.trace.SpanKind.CLIENT, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self.text_map_propagator.inject(carrier)
            token = OUTGOING_METADATA.set((*OUTGOING_METADATA.get(), *carrier.items()))
            try:
                yield
            finally:
                OUTGOING_METADATA.reset(token)

    def instant_span(self, name: str, parent: Context | None, attributes: dict[str, str]) -> Context:
        """A span started and ended at once; returns a context naming it as the parent."""
        span = self.tracer.start_span(name, context=parent, attributes=attributes)
        span.end()
        return opentelemetry.trace.set_span_in_context(span, parent)


class _TracingClientOutbound(ClientOutboundInterceptor):
    def __init__(self, next: ClientOutboundInterceptor, root: TracingInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        prefix = "SignalWithStartWorkflow" if input.start_signal else "StartWorkflow"
        with self.root.client_span(f"{prefix}:{input.workflow}", {"cadenzaWorkflowID": input.id}):
            self.root.inject(input.headers)
            return await self.next.start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        with self.root.client_span(f"SignalWorkflow:{input.signal}", {"cadenzaWorkflowID": input.id}):
            self.root.inject(input.headers)
            await self.next.signal_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        with self.root.client_span(f"QueryWorkflow:{input.query}", {"cadenzaWorkflowID": input.id}):
            self.root.inject(input.headers)
            return await self.next.query_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
        with self.root.client_span(f"StartWorkflowUpdate:{input.update}", {"cadenzaWorkflowID": input.id}):
            self.root.inject(input.headers)
            return await self.next.start_workflow_update(input)


class _TracingActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: TracingInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = input.info
        with self.root.tracer.start_as_current_span(
            f"RunActivity:{info.activity_type}",
            context=self.root.extract(input.headers),
            kind=opentelemetry.trace.SpanKind.SERVER,
            attributes={
                "cadenzaWorkflowID": info.workflow_id,
                "cadenzaRunID": info.run_id,
                "cadenzaActivityID": info.activity_id,
                "cadenzaAttempt": str(info.attempt),
            },
        ):
            return await self.next.execute_activity(input)


class _TracingWorkflowInbound(WorkflowInboundInterceptor):
    """One per run. Holds the parent context of the run's spans (never a current context: workflow
    code runs on its own loop and must not touch the worker's)."""

    def __init__(self, next: WorkflowInboundInterceptor | None, root: TracingInterceptor) -> None:
        super().__init__(next)
        self.root = root
        self.parent: Context | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_TracingWorkflowOutbound(outbound, self))

    def attributes(self) -> dict[str, str]:
        info = workflow.info()
        return {"cadenzaWorkflowID": info.workflow_id, "cadenzaRunID": info.run_id}

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self.parent = self.root.extract(input.headers)
        if not workflow.unsafe.is_replaying():
            self.parent = self.root.instant_span(
                f"RunWorkflow:{input.workflow_type}", self.parent, self.attributes()
            )
        assert self.next is not None
        return await self.next.execute_workflow(input)

    def handler_span(self, name: str, headers: Headers) -> None:
        """An instant span for a handler run, under the sender's context if its headers carry one
        (else under the run's own)."""
        if not workflow.unsafe.is_replaying():
            self.root.instant_span(name, self.root.extract(headers) or self.parent, self.attributes())

    async def handle_signal(self, input: HandleSignalInput) -> None:
        self.handler_span(f"HandleSignal:{input.signal}", input.headers)
        await super().handle_signal(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        # A query is answered from replayed state too: its span is made either way.
        self.root.instant_span(
            f"HandleQuery:{input.query}", self.root.extract(input.headers) or self.parent, self.attributes()
        )
        return await super().handle_query(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        self.handler_span(f"ValidateUpdate:{input.update}", input.headers)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        self.handler_span(f"HandleUpdate:{input.update}", input.headers)
        return await super().handle_update_handler(input)


class _TracingWorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, root: _TracingWorkflowInbound) -> None:
        super().__init__(next)
        self.root = root

    def _outgoing(self, name: str, headers: Headers) -> Headers:
        """An instant span for a call the run makes, and a copy of ``headers`` carrying it (on
        replay nothing: a replayed command is not sent again)."""
        if workflow.unsafe.is_replaying():
            return headers
        tracing = self.root.root
        out = dict(headers)
        tracing.inject(out, tracing.instant_span(name, self.root.parent, self.root.attributes()))
        return out

    def start_activity(self, input: StartActivityInput) -> Any:
        if not workflow.unsafe.is_replaying():
            tracing = self.root.root
            span = tracing.instant_span(
                f"StartActivity:{input.activity_type}", self.root.parent, self.root.attributes()
            )
            tracing.inject(input.headers, span)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> Any:
        input.headers = self._outgoing(f"StartActivity:{input.activity}", input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        input.headers = self._outgoing(f"StartChildWorkflow:{input.workflow}", input.headers)
        return await super().start_child_workflow(input)

    async def signal_child_workflow(self, input: SignalChildWorkflowInput) -> None:
        input.headers = self._outgoing(f"SignalChildWorkflow:{input.signal}", input.headers)
        await super().signal_child_workflow(input)

    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        input.headers = self._outgoing(f"SignalExternalWorkflow:{input.signal}", input.headers)
        await super().signal_external_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> Any:
        # The next run continues this trace: its RunWorkflow span sits under this run's.
        self.root.root.inject(input.headers, self.root.parent)
        super().continue_as_new(input)
