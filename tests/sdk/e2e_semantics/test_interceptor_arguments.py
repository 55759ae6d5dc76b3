"""What temporalio's own interceptor tests expect of the hooks beyond headers: each input carries
the call's arguments as values (and an outbound hook may replace them), an activity's
``activity.info()`` and ``activity.heartbeat()`` pass through an ``ActivityOutboundInterceptor``
the inbound one installs in ``init``, and ``workflow.instance()`` is the object the run method is
called on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

import cadenza.worker
from cadenza import activity, workflow
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

calls: list[tuple[str, Any]] = []


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
    def init(self, outbound: cadenza.worker.ActivityOutboundInterceptor) -> None:
        super().init(_ActivityOut(outbound))

    async def execute_activity(self, input: cadenza.worker.ExecuteActivityInput) -> Any:
        calls.append(("execute_activity", list(input.args)))
        return await super().execute_activity(input)


class _ActivityOut(cadenza.worker.ActivityOutboundInterceptor):
    def info(self) -> Any:
        info = super().info()
        calls.append(("activity info", info.activity_type))
        return info

    def heartbeat(self, *details: Any) -> None:
        calls.append(("heartbeat", list(details)))
        super().heartbeat(*details)


class _WorkflowIn(cadenza.worker.WorkflowInboundInterceptor):
    def init(self, outbound: cadenza.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOut(outbound))

    async def execute_workflow(self, input: cadenza.worker.ExecuteWorkflowInput) -> Any:
        result = await super().execute_workflow(input)
        # The object the run method ran on is the one workflow.instance() gives an interceptor.
        if isinstance(result, dict):
            result["same_object"] = result.pop("object_id") == id(workflow.instance())
        return result


def _record(hook: str, value: Any) -> None:
    if not workflow.unsafe.is_replaying():
        calls.append((hook, value))


class _WorkflowOut(cadenza.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: cadenza.worker.StartActivityInput) -> Any:
        _record("start_activity", list(input.args))
        if input.args == ["swap me"]:
            input.args = ["swapped"]  # what the activity gets
        return super().start_activity(input)

    def start_local_activity(self, input: cadenza.worker.StartLocalActivityInput) -> Any:
        _record("start_local_activity", list(input.args))
        return super().start_local_activity(input)


@activity.defn
async def shout(value: str) -> str:
    activity.heartbeat("working", 1)
    assert activity.info().activity_type == "shout"
    return value.upper()


@workflow.defn
class Shouter:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        remote = await workflow.execute_activity(
            shout, "swap me", start_to_close_timeout=timedelta(seconds=10)
        )
        local = await workflow.execute_local_activity(
            shout, "local", start_to_close_timeout=timedelta(seconds=10)
        )
        return {"remote": remote, "local": local, "object_id": id(self)}


def test_hooks_see_the_arguments_and_the_activity_outbound_calls() -> None:
    calls.clear()

    async def scenario(env: WorkflowEnvironment) -> Any:
        async with Worker(
            env.client, task_queue="args", workflows=[Shouter], activities=[shout], interceptors=[Recorder()]
        ):
            return await env.client.execute_workflow(Shouter.run, id="interceptor-args", task_queue="args")

    result = run_in_env(scenario)
    assert result == {"remote": "SWAPPED", "local": "LOCAL", "same_object": True}
    for expected in [
        ("start_activity", ["swap me"]),
        ("execute_activity", ["swapped"]),
        ("start_local_activity", ["local"]),
        ("execute_activity", ["local"]),
        ("heartbeat", ["working", 1]),
        ("activity info", "shout"),
    ]:
        assert expected in calls, (expected, calls)
    assert calls.count(("heartbeat", ["working", 1])) == 2  # the remote and the local attempt
