"""Bad input gets a clear error that names the problem and writes nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from cadenza import activity, workflow
from cadenza.common import WorkflowIDReusePolicy
from cadenza.engine.history import limits
from cadenza.exceptions import (
    PayloadEncodeError,
    RPCError,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
)
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import Approval, HelloWorkflow, say_hello


async def _assert_nothing_written(env: WorkflowEnvironment, workflow_id: str) -> None:
    with pytest.raises(WorkflowNotFoundError):
        await env.client.get_workflow_handle(workflow_id).describe()


def test_unknown_workflow_type_fails_the_task_naming_the_type_then_runs_once_registered() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="types", workflows=[Approval]):
            handle = await env.client.start_workflow(
                "HelloWorkflow", "late", id="unknown-type", task_queue="types"
            )
            for _ in range(300):
                events = (await handle.fetch_history()).events
                failed = [e for e in events if e.event_type == EventType.WORKFLOW_TASK_FAILED]
                if failed:
                    break
                await asyncio.sleep(0.01)
            assert failed, "the workflow task did not fail"
            message = failed[0].attributes["failure"]["message"]
            assert "'HelloWorkflow'" in message and "not registered" in message
            assert failed[0].attributes["cause"] == "WORKFLOW_TYPE_NOT_FOUND"
        # Failed attempts after the first are transient: history does not grow while it keeps failing.
        assert (
            sum(e.event_type == EventType.WORKFLOW_TASK_FAILED for e in (await handle.fetch_history()).events)
            == 1
        )
        async with Worker(env.client, task_queue="types", workflows=[HelloWorkflow], activities=[say_hello]):
            assert await asyncio.wait_for(handle.result(), 20) == "Hello, late!"

    run_in_env(scenario)


def test_payload_over_two_megabytes_is_refused_naming_the_limit() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        with pytest.raises(RPCError) as info:
            await env.client.start_workflow(
                HelloWorkflow.run, "x" * (2 * 1024 * 1024 + 1), id="big", task_queue="q"
            )
        assert info.value.status == "INVALID_ARGUMENT"
        assert "input" in info.value.message and "2097152" in info.value.message
        await _assert_nothing_written(env, "big")

    run_in_env(scenario)


def test_negative_timeouts_are_refused_before_anything_is_written() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        with pytest.raises(ValueError, match="run_timeout"):
            await env.client.start_workflow(
                HelloWorkflow.run, "x", id="neg", task_queue="q", run_timeout=timedelta(seconds=-1)
            )
        await _assert_nothing_written(env, "neg")

    run_in_env(scenario)


@workflow.defn
class BadActivityOptions:
    @workflow.run
    async def run(self, mode: str) -> str:
        if mode == "missing":
            return await workflow.execute_activity(say_hello, "x")
        return await workflow.execute_activity(say_hello, "x", start_to_close_timeout=timedelta(seconds=-5))


@pytest.mark.parametrize("mode,needle", [("missing", "start_to_close_timeout"), ("negative", "-5")])
def test_missing_or_negative_activity_timeouts_fail_the_workflow_task_with_the_field(
    mode: str, needle: str
) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client, task_queue="opts", workflows=[BadActivityOptions], activities=[say_hello]
        ):
            handle = await env.client.start_workflow(
                BadActivityOptions.run, mode, id=f"opts-{mode}", task_queue="opts"
            )
            for _ in range(300):
                events = (await handle.fetch_history()).events
                failed = [e for e in events if e.event_type == EventType.WORKFLOW_TASK_FAILED]
                if failed:
                    break
                await asyncio.sleep(0.01)
        assert failed
        assert needle in failed[0].attributes["failure"]["message"]
        assert not any(e.event_type == EventType.ACTIVITY_TASK_SCHEDULED for e in events)

    run_in_env(scenario)


def test_duplicate_id_under_reject_duplicate_carries_the_existing_run_id() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        first = await env.client.start_workflow(Approval.run, 1, id="dup", task_queue="dup")
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            await env.client.start_workflow(
                Approval.run,
                1,
                id="dup",
                task_queue="dup",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        assert info.value.run_id == first.first_run_id
        await first.terminate("done")
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            await env.client.start_workflow(
                Approval.run,
                1,
                id="dup",
                task_queue="dup",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        assert info.value.run_id == first.first_run_id
        # The default policy allows a new run once the old one closed.
        again = await env.client.start_workflow(Approval.run, 1, id="dup", task_queue="dup")
        assert again.first_run_id != first.first_run_id

    run_in_env(scenario)


def test_start_with_the_same_request_id_is_idempotent() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        a = await env.client.start_workflow(Approval.run, 1, id="idem", task_queue="q", request_id="req-1")
        b = await env.client.start_workflow(Approval.run, 1, id="idem", task_queue="q", request_id="req-1")
        assert a.first_run_id == b.first_run_id

    run_in_env(scenario)


def test_an_argument_the_converter_cannot_encode_is_raised_in_the_caller() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        with pytest.raises(PayloadEncodeError) as info:
            await env.client.start_workflow(HelloWorkflow.run, object(), id="enc", task_queue="q")
        assert "0" in str(info.value)  # names the argument position
        await _assert_nothing_written(env, "enc")

    run_in_env(scenario)


def test_unknown_namespace_is_reported() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        from cadenza.client import Client
        from cadenza.exceptions import NamespaceNotFoundError

        other = Client(env.client.service, namespace="nope")
        with pytest.raises(NamespaceNotFoundError, match="nope"):
            await other.start_workflow(HelloWorkflow.run, "x", id="ns", task_queue="q")

    run_in_env(scenario)


@activity.defn
async def noop(i: int) -> int:
    return i


@workflow.defn
class LongHistory:
    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=5))
        return n


def test_history_limits_warn_then_terminate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The anchors' limits (warn at 10,240 events, terminate at 51,200) scaled down for speed.
    monkeypatch.setattr(limits, "HISTORY_COUNT_WARN", 20)
    monkeypatch.setattr(limits, "HISTORY_COUNT_LIMIT", 60)

    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="long", workflows=[LongHistory], activities=[noop]):
            handle = await env.client.start_workflow(LongHistory.run, 100, id="long", task_queue="long")
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            assert "history limit exceeded" in str(info.value.cause)
            events = (await handle.fetch_history()).events
        assert events[-1].event_type == EventType.WORKFLOW_EXECUTION_TERMINATED
        assert "history limit exceeded" in events[-1].attributes["reason"]
        assert len(events) <= 60 + 10

    with caplog.at_level(logging.WARNING, logger="cadenza.history"):
        run_in_env(scenario)
    assert any("history of workflow long" in r.getMessage() for r in caplog.records)


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, n: int) -> int:
        await asyncio.gather(
            *(
                workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=5))
                for i in range(n)
            )
        )
        return n


def test_pending_activity_and_signal_limits_are_refused_naming_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The anchors' limits (2,000 pending activities, 10,000 signals per run), scaled down for speed.
    monkeypatch.setattr(limits, "MAX_PENDING_ACTIVITIES", 5)
    monkeypatch.setattr(limits, "MAX_SIGNALS", 3)

    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="lim", workflows=[FanOut, Approval]):
            handle = await env.client.start_workflow(FanOut.run, 6, id="fan", task_queue="lim")
            for _ in range(300):
                events = (await handle.fetch_history()).events
                failed = [e for e in events if e.event_type == EventType.WORKFLOW_TASK_FAILED]
                if failed:
                    break
                await asyncio.sleep(0.01)
            assert failed and "over the limit of 5" in failed[0].attributes["failure"]["message"]
            assert not any(e.event_type == EventType.ACTIVITY_TASK_SCHEDULED for e in events)

            approval = await env.client.start_workflow(Approval.run, 10, id="sig-limit", task_queue="lim")
            for i in range(3):
                await approval.signal(Approval.approve, str(i))
            with pytest.raises(RPCError) as info:
                await approval.signal(Approval.approve, "one too many")
            assert info.value.status == "RESOURCE_EXHAUSTED" and "limit of 3" in info.value.message

    run_in_env(scenario)
