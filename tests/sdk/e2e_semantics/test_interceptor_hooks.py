"""Every workflow interceptor hook temporalio has is called, and what an outbound hook puts in a
header reaches the inbound hook on the other side: a child's start, a local activity,
continue-as-new (signals to a child or another workflow pass their hooks, but their header is not
carried to the receiver yet); the run's own signal, query and update
handlers pass through ``handle_signal``, ``handle_query`` and ``handle_update_validator`` /
``handle_update_handler``, and ``workflow.info()`` through the outbound ``info``.

The interceptor is written as temporalio's tracing and context-propagation interceptors are: each
outbound hook replaces ``input.headers`` with a new dict naming itself, each inbound hook records
its name and the header it got."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

import cadenza.converter
import cadenza.worker
from cadenza import activity, workflow
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

HEADER = "sent-by"
_converter = cadenza.converter.default().payload_converter
seen: list[tuple[str, str, str]] = []
"""(hook, workflow id or activity type, the ``sent-by`` header it got or "")."""


def _sent_by(headers: Any) -> str:
    payload = (headers or {}).get(HEADER)
    return _converter.from_payload(payload, str) if payload else ""


def _mark(input: Any, hook: str) -> None:
    input.headers = {**input.headers, HEADER: _converter.to_payload(hook)}


class Recorder(cadenza.worker.Interceptor):
    def intercept_activity(
        self, next: cadenza.worker.ActivityInboundInterceptor
    ) -> cadenza.worker.ActivityInboundInterceptor:
        return _ActivityIn(next)

    def workflow_interceptor_class(
        self, input: cadenza.worker.WorkflowInterceptorClassInput
    ) -> type[cadenza.worker.WorkflowInboundInterceptor]:
        return _WorkflowIn


class _ActivityIn(cadenza.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: cadenza.worker.ExecuteActivityInput) -> Any:
        seen.append(("execute_activity", activity.info().activity_type, _sent_by(input.headers)))
        return await self.next.execute_activity(input)


def _record(hook: str, headers: Any) -> None:
    if not workflow.unsafe.is_replaying():
        seen.append((hook, workflow.info().workflow_id, _sent_by(headers)))


class _WorkflowIn(cadenza.worker.WorkflowInboundInterceptor):
    def init(self, outbound: cadenza.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOut(outbound))

    async def execute_workflow(self, input: cadenza.worker.ExecuteWorkflowInput) -> Any:
        _record("execute_workflow", input.headers)
        return await super().execute_workflow(input)

    async def handle_signal(self, input: cadenza.worker.HandleSignalInput) -> None:
        _record(f"handle_signal {input.signal}", input.headers)
        await super().handle_signal(input)

    async def handle_query(self, input: cadenza.worker.HandleQueryInput) -> Any:
        # Queries run on replayed state too: recorded whether replaying or not.
        seen.append((f"handle_query {input.query}", workflow.info().workflow_id, _sent_by(input.headers)))
        return await super().handle_query(input)

    def handle_update_validator(self, input: cadenza.worker.HandleUpdateInput) -> None:
        _record(f"handle_update_validator {input.update}", input.headers)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: cadenza.worker.HandleUpdateInput) -> Any:
        _record(f"handle_update_handler {input.update}", input.headers)
        return await super().handle_update_handler(input)


class _WorkflowOut(cadenza.worker.WorkflowOutboundInterceptor):
    def start_local_activity(self, input: cadenza.worker.StartLocalActivityInput) -> Any:
        _mark(input, "start_local_activity")
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: cadenza.worker.StartChildWorkflowInput) -> Any:
        _mark(input, "start_child_workflow")
        return await super().start_child_workflow(input)

    async def signal_child_workflow(self, input: cadenza.worker.SignalChildWorkflowInput) -> None:
        _mark(input, "signal_child_workflow")
        await super().signal_child_workflow(input)

    async def signal_external_workflow(self, input: cadenza.worker.SignalExternalWorkflowInput) -> None:
        _mark(input, "signal_external_workflow")
        await super().signal_external_workflow(input)

    def continue_as_new(self, input: cadenza.worker.ContinueAsNewInput) -> Any:
        _mark(input, "continue_as_new")
        super().continue_as_new(input)

    def info(self) -> Any:
        info = super().info()
        if not workflow.unsafe.is_replaying():
            seen.append(("info", info.workflow_id, ""))
        return info


@activity.defn
async def echo(value: str) -> str:
    return value


@workflow.defn
class Receiver:
    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: bool(self.got))
        return self.got[0]

    @workflow.signal
    def poke(self, value: str) -> None:
        self.got.append(value)


@workflow.defn
class Parent:
    def __init__(self) -> None:
        self.signals: list[str] = []
        self.go = False

    @workflow.run
    async def run(self, stage: int) -> list[str]:
        if stage == 0:
            workflow.continue_as_new(1)
        local = await workflow.execute_local_activity(
            echo, "local", start_to_close_timeout=timedelta(seconds=10)
        )
        child = await workflow.start_child_workflow(Receiver.run, id="hooks-child")
        await child.signal(Receiver.poke, "to child")
        await workflow.get_external_workflow_handle("hooks-target").signal(Receiver.poke, "to target")
        await workflow.wait_condition(lambda: self.go)
        return [local, await child, *self.signals]

    @workflow.signal
    def note(self, value: str) -> None:
        self.signals.append(value)

    @workflow.query
    def count(self) -> int:
        return len(self.signals)

    @workflow.update
    def release(self, value: str) -> str:
        self.go = True
        return value

    @release.validator
    def check(self, value: str) -> None:
        if not value:
            raise ValueError("empty")


def test_every_workflow_hook_is_called_and_headers_cross_to_the_other_side() -> None:
    seen.clear()

    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        workflows = [Parent, Receiver]
        async with Worker(
            client, task_queue="hooks", workflows=workflows, activities=[echo], interceptors=[Recorder()]
        ):
            target = await client.start_workflow(Receiver.run, id="hooks-target", task_queue="hooks")
            first = await client.start_workflow(Parent.run, 0, id="hooks-parent", task_queue="hooks")
            # Talk to the run it continued as (a signal to the first run would end with it).
            first_run = client.get_workflow_handle("hooks-parent", run_id=first.first_run_id)
            while EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW not in [
                e.event_type for e in (await first_run.fetch_history()).events
            ]:
                await asyncio.sleep(0.02)
            handle = client.get_workflow_handle("hooks-parent")
            await handle.signal(Parent.note, "noted")
            await handle.query(Parent.count)
            assert await handle.execute_update(Parent.release, "ok") == "ok"
            assert await handle.result() == ["local", "to child", "noted"]
            assert await target.result() == "to target"

    run_in_env(scenario)
    expected = {
        ("execute_workflow", "hooks-parent", ""),  # the first run: nothing set by the client
        ("execute_workflow", "hooks-parent", "continue_as_new"),
        ("execute_activity", "echo", "start_local_activity"),
        ("execute_workflow", "hooks-child", "start_child_workflow"),
        # A signal's header stops at the sender's SignalExternalWorkflowExecutionInitiated event:
        # WorkflowExecutionSignaled has no header in the history schema yet.
        ("handle_signal poke", "hooks-child", ""),
        ("handle_signal poke", "hooks-target", ""),
        ("handle_signal note", "hooks-parent", ""),
        ("handle_query count", "hooks-parent", ""),
        ("handle_update_validator release", "hooks-parent", ""),
        ("handle_update_handler release", "hooks-parent", ""),
        ("info", "hooks-parent", ""),
    }
    assert expected <= set(seen), f"missing: {sorted(expected - set(seen))}; seen: {seen}"
