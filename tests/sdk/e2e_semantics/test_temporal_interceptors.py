"""An interceptor written as temporalio's ``context_propagation`` sample writes it: one class that is
both ``client.Interceptor`` and ``worker.Interceptor``, headers replaced (not extended in place) on
the way out, read back with ``workflow.payload_converter()`` and ``activity.payload_converter()``. A
value set in a context variable by the caller reaches the run and the activity it schedules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

import cadenza.client
import cadenza.converter
import cadenza.worker
from cadenza import activity, workflow
from cadenza.exceptions import ApplicationError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

HEADER = "user-id"
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)


def _set_header(input: Any, converter: Any) -> None:
    value = user_id.get()
    if value:
        input.headers = {**input.headers, HEADER: converter.to_payload(value)}


@contextmanager
def _from_header(headers: Mapping[str, Any], converter: Any) -> Iterator[None]:
    payload = headers.get(HEADER)
    token = user_id.set(converter.from_payload(payload, str)) if payload else None
    try:
        yield
    finally:
        if token:
            user_id.reset(token)


class Propagate(cadenza.client.Interceptor, cadenza.worker.Interceptor):
    def __init__(self) -> None:
        self.converter = cadenza.converter.default().payload_converter

    def intercept_client(
        self, next: cadenza.client.OutboundInterceptor
    ) -> cadenza.client.OutboundInterceptor:
        return _ClientOut(next, self.converter)

    def intercept_activity(
        self, next: cadenza.worker.ActivityInboundInterceptor
    ) -> cadenza.worker.ActivityInboundInterceptor:
        return _ActivityIn(next)

    def workflow_interceptor_class(
        self, input: cadenza.worker.WorkflowInterceptorClassInput
    ) -> type[cadenza.worker.WorkflowInboundInterceptor]:
        return _WorkflowIn


class _ClientOut(cadenza.client.OutboundInterceptor):
    def __init__(self, next: cadenza.client.OutboundInterceptor, converter: Any) -> None:
        super().__init__(next)
        self.converter = converter

    async def start_workflow(self, input: cadenza.client.StartWorkflowInput) -> Any:
        _set_header(input, self.converter)
        return await super().start_workflow(input)


class _ActivityIn(cadenza.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: cadenza.worker.ExecuteActivityInput) -> Any:
        assert activity.info().activity_type == "whoami"  # the attempt's context is there already
        if any(type(p) is not dict for p in input.headers.values()):
            # A Payload object kept in the run's state would make the state unreadable.
            raise ApplicationError("the header reached the server as a Payload object", non_retryable=True)
        with _from_header(input.headers, activity.payload_converter()):
            return await self.next.execute_activity(input)


class _WorkflowIn(cadenza.worker.WorkflowInboundInterceptor):
    def init(self, outbound: cadenza.worker.WorkflowOutboundInterceptor) -> None:
        assert self.next is not None
        self.next.init(_WorkflowOut(outbound))

    async def execute_workflow(self, input: cadenza.worker.ExecuteWorkflowInput) -> Any:
        assert self.next is not None
        with _from_header(input.headers, workflow.payload_converter()):
            return await self.next.execute_workflow(input)


class _WorkflowOut(cadenza.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: cadenza.worker.StartActivityInput) -> Any:
        assert self.next is not None
        # A new dict, not the one handed in, holding a ``Payload`` (temporalio's converter API).
        _set_header(input, cadenza.converter.default().payload_converter)
        return self.next.start_activity(input)


@activity.defn
async def whoami() -> str:
    return f"activity sees {user_id.get()}"


@workflow.defn
class WhoAmI:
    @workflow.run
    async def run(self) -> list[str]:
        seen = f"workflow sees {user_id.get()}"
        return [seen, await workflow.execute_activity(whoami, start_to_close_timeout=timedelta(seconds=10))]


def test_a_value_in_context_reaches_the_run_and_its_activity_through_headers() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        config = env.client.config()
        config["interceptors"] = [Propagate()]
        client = cadenza.client.Client(**config)
        async with Worker(client, task_queue="propagate", workflows=[WhoAmI], activities=[whoami]):
            token = user_id.set("ada")
            handle = await client.start_workflow(WhoAmI.run, id="who", task_queue="propagate")
            user_id.reset(token)
            assert await handle.result() == ["workflow sees ada", "activity sees ada"]
        # Not the worker's own context: the value came through the headers.
        assert user_id.get() is None

    run_in_env(scenario)


def test_client_and_worker_interceptor_classes_are_distinct() -> None:
    # temporalio code subclasses both; the same class twice would be a duplicate base.
    assert cadenza.client.Interceptor is not cadenza.worker.Interceptor
    assert not hasattr(cadenza.client.Interceptor(), "intercept_activity")
    assert not hasattr(cadenza.worker.Interceptor(), "intercept_client")
