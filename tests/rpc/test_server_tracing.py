"""The server's spans (``cadenza.engine.tracing``), kept in memory: one per call, continuing the
client's trace from the call's metadata, with the store calls made while handling it as children;
and nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from e2e.workflows import HelloWorkflow, say_hello
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cadenza.client import Client
from cadenza.contrib.opentelemetry import TracingInterceptor
from cadenza.engine import tracing
from cadenza.engine.rpc import server as rpc_server
from cadenza.engine.tracing import TracingSettings
from cadenza.worker import Worker

from .conftest import GrpcEnvironment, run_in_grpc_env


@pytest.fixture
def server_spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(TracingSettings("http://127.0.0.1:1"), exporter=exporter)
    yield exporter
    tracing.shutdown()


def test_rpc_spans_continue_the_client_trace(server_spans: InMemorySpanExporter) -> None:
    client_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(client_spans))
    interceptor = TracingInterceptor(provider.get_tracer("test"))

    async def scenario(env: GrpcEnvironment) -> None:
        client = Client(env.client.service, interceptors=[interceptor])
        async with Worker(client, task_queue="traced", workflows=[HelloWorkflow], activities=[say_hello]):
            await client.execute_workflow(HelloWorkflow.run, "t", id="traced-1", task_queue="traced")

    run_in_grpc_env(scenario)
    start = next(s for s in client_spans.get_finished_spans() if s.name == "StartWorkflow:HelloWorkflow")
    spans = server_spans.get_finished_spans()
    handled = [s for s in spans if s.name.startswith(tracing.RPC_PREFIX + "StartWorkflowExecution")]
    assert len(handled) == 1
    call = handled[0]
    assert call.context.trace_id == start.context.trace_id
    assert call.parent is not None and call.parent.span_id == start.context.span_id
    assert call.attributes is not None and call.attributes["cadenza.workflow_id"] == "traced-1"
    # Polls are calls too: each its own trace (a worker sends no context with them).
    assert any(s.name == tracing.RPC_PREFIX + "PollActivityTaskQueue" for s in spans)


def test_off_wraps_nothing() -> None:
    assert not tracing.enabled()

    async def handler(record: object) -> object:
        return record

    wrapped = rpc_server._wrap("DescribeNamespace", handler)  # type: ignore[arg-type]
    assert wrapped.unary_unary.__name__ == "call"  # the plain handler, no span wrapper
    stores = object()
    assert tracing.traced_stores(stores) is stores


def test_store_calls_are_children_of_the_call_only(server_spans: InMemorySpanExporter) -> None:
    class Executions:
        async def get_workflow_execution(self, key: str) -> str:
            return key

    class Stores:
        executions = Executions()

    traced = tracing.traced_stores(Stores())
    tracer = tracing._state["tracer"]

    async def main() -> None:
        assert await traced.executions.get_workflow_execution("outside") == "outside"
        with tracer.start_as_current_span("call"):
            assert await traced.executions.get_workflow_execution("inside") == "inside"

    asyncio.run(main())
    spans = {s.name: s for s in server_spans.get_finished_spans()}
    assert set(spans) == {"call", "persistence/GetWorkflowExecution"}
    child = spans["persistence/GetWorkflowExecution"]
    assert child.parent is not None and child.parent.span_id == spans["call"].context.span_id
