"""More of temporalio's workflow API, used as its own SDK tests use it: ``@workflow.init``, async query
handlers, the memo, ``workflow.wait``, the previous run's failure, the payload converter and the
handler policies (bodies as there; fixtures are ours)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.common import RawValue, RetryPolicy
from cadenza.exceptions import ApplicationError
from cadenza.sdk.converter import default_converter
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker


@workflow.defn
class WorkflowInitWorkflow:
    @workflow.init
    def __init__(self, value: str) -> None:
        self.value = value

    @workflow.run
    async def run(self, value: str) -> str:
        self.value += f" then {value}"
        return self.value


@workflow.defn
class AsyncQueryWorkflow:
    def __init__(self) -> None:
        self._state = "started"

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    async def state(self) -> str:
        return self._state


@workflow.defn
class MemoWorkflow:
    @workflow.run
    async def run(self) -> list[Any]:
        with pytest.raises(KeyError):
            workflow.memo_value("absent")
        return [
            workflow.memo(),
            workflow.memo_value("str_memo", type_hint=str),
            workflow.memo_value("absent", "blah"),
        ]


@workflow.defn
class WaitWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        async def after(seconds: float, name: str) -> str:
            await asyncio.sleep(seconds)
            return name

        slow = asyncio.create_task(after(10, "slow"))
        fast = asyncio.create_task(after(1, "fast"))
        done, pending = await workflow.wait([slow, fast], return_when=asyncio.FIRST_COMPLETED)
        names = [t.result() for t in done] + [f"pending {len(pending)}"]
        done, pending = await workflow.wait([slow, fast])
        return names + [t.result() for t in done] + [f"pending {len(pending)}"]


@workflow.defn
class LastFailureWorkflow:
    @workflow.run
    async def run(self) -> str:
        if workflow.info().attempt == 1:
            raise ApplicationError("first attempt fails", type="FirstAttempt")
        failure = workflow.get_last_failure()
        assert isinstance(failure, ApplicationError)
        payloads = workflow.payload_converter().to_payloads([failure.type])
        return f"{failure.message} ({workflow.payload_converter().from_payloads(payloads)[0]})"


@workflow.defn
class HandlerPolicyWorkflow:
    def __init__(self) -> None:
        self.signalled = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.signalled)
        return "signalled"

    @workflow.signal(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def go(self) -> None:
        self.signalled = True


WORKFLOWS = [
    WorkflowInitWorkflow,
    AsyncQueryWorkflow,
    MemoWorkflow,
    WaitWorkflow,
    LastFailureWorkflow,
    HandlerPolicyWorkflow,
]


def test_temporalio_workflow_api() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with Worker(client, task_queue="api", workflows=WORKFLOWS):
            # @workflow.init: the constructor gets the run's arguments.
            result = await client.execute_workflow(
                WorkflowInitWorkflow.run, "some value", id=f"wf-{uuid.uuid4()}", task_queue="api"
            )
            assert result == "some value then some value"

            # An async query handler (deprecated in temporalio, still accepted).
            handle = await client.start_workflow(
                AsyncQueryWorkflow.run, id=f"wf-{uuid.uuid4()}", task_queue="api"
            )
            assert await handle.query(AsyncQueryWorkflow.state) == "started"
            await handle.terminate()

            memo = {
                "dict_memo": {"dict_key": "dict_value"},
                "list_memo": ["list_value"],
                "str_memo": "str_value",
            }
            result = await client.execute_workflow(
                MemoWorkflow.run, id=f"wf-{uuid.uuid4()}", task_queue="api", memo=memo
            )
            assert result == [memo, "str_value", "blah"]

            handle = await client.start_workflow(WaitWorkflow.run, id=f"wf-{uuid.uuid4()}", task_queue="api")
            assert await handle.result() == ["fast", "pending 1", "slow", "fast", "pending 0"]
            Replayer(workflows=WORKFLOWS).replay_workflow(await handle.fetch_history())

            result = await client.execute_workflow(
                LastFailureWorkflow.run,
                id=f"wf-{uuid.uuid4()}",
                task_queue="api",
                retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(milliseconds=10)),
            )
            assert result == "first attempt fails (FirstAttempt)"

            handle = await client.start_workflow(
                HandlerPolicyWorkflow.run, id=f"wf-{uuid.uuid4()}", task_queue="api"
            )
            await handle.signal(HandlerPolicyWorkflow.go)
            assert await handle.result() == "signalled"

    run_in_env(scenario, time_skipping=True)


# -- dynamic workflows, activities, signals and queries ---------------------------------------------


@dataclass
class DynamicValue:
    some_string: str


@activity.defn(dynamic=True)
async def dynamic_activity(args: Sequence[RawValue]) -> str:
    values = [default_converter().from_payload(a.payload, DynamicValue) for a in args]
    return f"{activity.info().activity_type} - " + " - ".join(v.some_string for v in values)


@workflow.defn(dynamic=True)
class DynamicWorkflow:
    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> DynamicValue:
        assert len(args) == 2
        arg1 = workflow.payload_converter().from_payload(args[0].payload, DynamicValue)
        assert isinstance(arg1, DynamicValue)
        arg2 = workflow.payload_converter().from_payload(args[1].payload, DynamicValue)
        from_activity = await workflow.execute_activity(
            "some-activity", args=[arg1, arg2], start_to_close_timeout=timedelta(seconds=10)
        )
        await workflow.wait_condition(lambda: len(self.signals) == 2)
        return DynamicValue(f"{workflow.info().workflow_type} - {from_activity} - {','.join(self.signals)}")

    @workflow.signal(dynamic=True)
    def signal(self, name: str, args: Sequence[RawValue]) -> None:
        self.signals.append(f"{name}={workflow.payload_converter().from_payload(args[0].payload, str)}")

    @workflow.query(dynamic=True)
    def query(self, name: str, args: Sequence[RawValue]) -> str:
        return f"{name}: {len(self.signals)} signals, {len(args)} args"


def test_dynamic_workflow_activity_signal_and_query() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        async with Worker(
            client, task_queue="dyn", workflows=[DynamicWorkflow], activities=[dynamic_activity]
        ):
            handle = await client.start_workflow(
                "some-workflow",
                args=[DynamicValue("val1"), DynamicValue("val2")],
                id=f"wf-{uuid.uuid4()}",
                task_queue="dyn",
                result_type=DynamicValue,
            )
            await handle.signal("first", "a")
            assert await handle.query("anything", 1, 2) in (
                "anything: 1 signals, 2 args",
                "anything: 0 signals, 2 args",
            )
            await handle.signal("second", "b")
            result = await handle.result()
            assert result == DynamicValue("some-workflow - some-activity - val1 - val2 - first=a,second=b")

    run_in_env(scenario)
