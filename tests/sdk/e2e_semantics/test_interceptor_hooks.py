"""Every workflow and client interceptor hook temporalio has is called, and what an outbound hook
puts in a header reaches the inbound hook on the other side: a client's start, signal and update,
a child's start, a local activity, continue-as-new, a signal to a child or another workflow; the
run's own signal, query and update handlers pass through ``handle_signal``, ``handle_query`` and
``handle_update_validator`` / ``handle_update_handler``, and ``workflow.info()`` through the
outbound ``info``.

The interceptor is written as temporalio's tracing and context-propagation interceptors are: each
outbound hook replaces ``input.headers`` with a new dict naming itself, each inbound hook records
its name and the header it got."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

import cadenza.client
import cadenza.common
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


client_calls: list[str] = []
"""The client hooks called, in order."""


class ClientRecorder(cadenza.client.Interceptor):
    def intercept_client(
        self, next: cadenza.client.OutboundInterceptor
    ) -> cadenza.client.OutboundInterceptor:
        return _ClientOut(next)


class _ClientOut(cadenza.client.OutboundInterceptor):
    """Marks the calls that carry a header, and records every hook."""

    async def start_workflow(self, input: cadenza.client.StartWorkflowInput) -> Any:
        client_calls.append("start_workflow")
        _mark(input, "start_workflow")
        return await super().start_workflow(input)

    async def signal_workflow(self, input: cadenza.client.SignalWorkflowInput) -> None:
        client_calls.append("signal_workflow")
        _mark(input, "signal_workflow")
        await super().signal_workflow(input)

    async def query_workflow(self, input: cadenza.client.QueryWorkflowInput) -> Any:
        client_calls.append("query_workflow")
        _mark(input, "query_workflow")
        return await super().query_workflow(input)

    async def start_workflow_update(self, input: cadenza.client.StartWorkflowUpdateInput) -> Any:
        client_calls.append("start_workflow_update")
        _mark(input, "start_workflow_update")
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: cadenza.client.StartWorkflowUpdateWithStartInput
    ) -> Any:
        client_calls.append("start_update_with_start_workflow")
        _mark(input.start_workflow_input, "update_with_start (start)")
        _mark(input.update_workflow_input, "update_with_start (update)")
        return await super().start_update_with_start_workflow(input)

    async def cancel_workflow(self, input: cadenza.client.CancelWorkflowInput) -> None:
        client_calls.append("cancel_workflow")
        await super().cancel_workflow(input)

    async def terminate_workflow(self, input: cadenza.client.TerminateWorkflowInput) -> None:
        client_calls.append(f"terminate_workflow {input.reason}")
        await super().terminate_workflow(input)

    async def describe_workflow(self, input: cadenza.client.DescribeWorkflowInput) -> Any:
        client_calls.append("describe_workflow")
        return await super().describe_workflow(input)

    def fetch_workflow_history_events(self, input: cadenza.client.FetchWorkflowHistoryEventsInput) -> Any:
        client_calls.append("fetch_workflow_history_events")
        return super().fetch_workflow_history_events(input)

    def list_workflows(self, input: cadenza.client.ListWorkflowsInput) -> Any:
        client_calls.append(f"list_workflows {input.query}")
        return super().list_workflows(input)

    async def count_workflows(self, input: cadenza.client.CountWorkflowsInput) -> Any:
        client_calls.append(f"count_workflows {input.query}")
        return await super().count_workflows(input)

    async def heartbeat_async_activity(self, input: cadenza.client.HeartbeatAsyncActivityInput) -> None:
        client_calls.append(f"heartbeat_async_activity {list(input.details)}")
        await super().heartbeat_async_activity(input)

    async def complete_async_activity(self, input: cadenza.client.CompleteAsyncActivityInput) -> None:
        client_calls.append(f"complete_async_activity {input.result}")
        # An interceptor may change what is sent: the workflow gets this result.
        input.result = f"{input.result} (intercepted)"
        await super().complete_async_activity(input)

    async def fail_async_activity(self, input: cadenza.client.FailAsyncActivityInput) -> None:
        client_calls.append("fail_async_activity")
        await super().fail_async_activity(input)

    async def report_cancellation_async_activity(
        self, input: cadenza.client.ReportCancellationAsyncActivityInput
    ) -> None:
        client_calls.append("report_cancellation_async_activity")
        await super().report_cancellation_async_activity(input)


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

    @workflow.update
    def add(self, value: str) -> str:
        self.got.append(value)
        return value


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
        client = cadenza.client.Client(
            env.client.service, namespace=env.client.namespace, interceptors=[ClientRecorder()]
        )
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
        ("execute_workflow", "hooks-parent", "start_workflow"),  # the first run
        ("execute_workflow", "hooks-parent", "continue_as_new"),
        ("execute_workflow", "hooks-target", "start_workflow"),
        ("execute_activity", "echo", "start_local_activity"),
        ("execute_workflow", "hooks-child", "start_child_workflow"),
        ("handle_signal poke", "hooks-child", "signal_child_workflow"),
        ("handle_signal poke", "hooks-target", "signal_external_workflow"),
        ("handle_signal note", "hooks-parent", "signal_workflow"),
        ("handle_query count", "hooks-parent", "query_workflow"),
        ("handle_update_validator release", "hooks-parent", "start_workflow_update"),
        ("handle_update_handler release", "hooks-parent", "start_workflow_update"),
        ("info", "hooks-parent", ""),
    }
    assert expected <= set(seen), f"missing: {sorted(expected - set(seen))}; seen: {seen}"


@activity.defn
async def finished_elsewhere() -> str:
    tokens.append(activity.info().task_token)
    activity.raise_complete_async()


tokens: list[bytes] = []


@workflow.defn
class AwaitsElsewhere:
    @workflow.run
    async def run(self) -> str:
        result: str = await workflow.execute_activity(
            finished_elsewhere, start_to_close_timeout=timedelta(seconds=60)
        )
        return result


def test_every_client_hook_is_called_with_what_the_caller_gave() -> None:
    client_calls.clear()
    tokens.clear()
    seen.clear()

    async def scenario(env: WorkflowEnvironment) -> None:
        client = cadenza.client.Client(
            env.client.service, namespace=env.client.namespace, interceptors=[ClientRecorder()]
        )
        async with Worker(
            client,
            task_queue="client-hooks",
            workflows=[Receiver, AwaitsElsewhere],
            activities=[finished_elsewhere],
            interceptors=[Recorder()],
        ):
            a = await client.start_workflow(Receiver.run, id="client-hooks-a", task_queue="client-hooks")
            await a.signal(Receiver.poke, "first")
            assert await a.result() == "first"
            assert (await a.describe()).status == cadenza.client.WorkflowExecutionStatus.COMPLETED
            history = await a.fetch_history()
            assert history.events[-1].event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
            signaled = [e for e in history.events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED]
            assert _sent_by(signaled[0].attributes["header"]) == "signal_workflow"
            listed = [w.id async for w in client.list_workflows("WorkflowId = 'client-hooks-a'")]
            assert listed == ["client-hooks-a"]
            assert (await client.count_workflows("WorkflowId = 'client-hooks-a'")).count == 1

            b = await client.start_workflow(Receiver.run, id="client-hooks-b", task_queue="client-hooks")
            await b.cancel()
            c = await client.start_workflow(Receiver.run, id="client-hooks-c", task_queue="client-hooks")
            await c.terminate(reason="done with it")
            assert (await c.describe()).status == cadenza.client.WorkflowExecutionStatus.TERMINATED

            d = await client.start_workflow(
                AwaitsElsewhere.run, id="client-hooks-d", task_queue="client-hooks"
            )
            while not tokens:
                await asyncio.sleep(0.01)
            elsewhere = client.get_async_activity_handle(task_token=tokens[0])
            await elsewhere.heartbeat("halfway")
            await elsewhere.complete("all done")
            assert await d.result() == "all done (intercepted)"

            start_e = cadenza.client.WithStartWorkflowOperation(
                Receiver.run,
                id="client-hooks-e",
                task_queue="client-hooks",
                id_conflict_policy=cadenza.common.WorkflowIDConflictPolicy.USE_EXISTING,
            )
            added = await client.execute_update_with_start_workflow(
                Receiver.add, "via update", start_workflow_operation=start_e
            )
            assert added == "via update"
            assert await (await start_e.workflow_handle()).result() == "via update"

    run_in_env(scenario)
    expected = [
        "start_workflow",
        "signal_workflow",
        "describe_workflow",
        "fetch_workflow_history_events",
        "list_workflows WorkflowId = 'client-hooks-a'",
        "count_workflows WorkflowId = 'client-hooks-a'",
        "start_workflow",
        "cancel_workflow",
        "start_workflow",
        "terminate_workflow done with it",
        "describe_workflow",
        "start_workflow",
        "heartbeat_async_activity ['halfway']",
        "complete_async_activity all done",
        "start_update_with_start_workflow",
    ]
    assert client_calls == expected
    assert ("execute_workflow", "client-hooks-e", "update_with_start (start)") in seen, seen
    assert ("handle_update_handler add", "client-hooks-e", "update_with_start (update)") in seen, seen
