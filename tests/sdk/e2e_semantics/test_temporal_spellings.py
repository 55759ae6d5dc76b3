"""temporalio's spellings, run on the real engine: code written for temporalio with only its imports
changed. Usage follows temporalio's samples and SDK tests; fixtures are ours."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from cadenza.exceptions import (
    ActivityError,
    ApplicationError,
    ApplicationErrorCategory,
    CanceledError,
    CancelledError,
    FailureError,
    NondeterminismError,
    WorkflowNotFoundError,
)
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker
from cadenza.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
    UnsandboxedWorkflowRunner,
)

from .temporal_workflows import (
    Chatty,
    Countdown,
    Inventory,
    Labeler,
    Order,
    OrderWorkflow,
    PackChild,
    Refusing,
    Tally,
    price,
    refuse,
    taxed,
    tick,
)
from .waits import eventually


def test_args_keyword_method_names_partials_and_typed_payloads() -> None:
    inventory = Inventory({"o-1": 10})

    async def scenario(env: WorkflowEnvironment) -> None:
        runner = SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("pydantic")
        )
        async with Worker(
            env.client,
            task_queue="spell",
            workflows=[OrderWorkflow, PackChild],
            activities=[price, taxed, inventory.reserve, Labeler("box")],
            workflow_runner=runner,
        ):
            handle = await env.client.start_workflow(
                OrderWorkflow.run, args=[Order("o-1", 3)], id="spell-1", task_queue="spell"
            )
            await handle.signal(OrderWorkflow.add, args=[Order("o-2", 1)])
            await eventually(lambda: _pending_count(handle))
            pending = await handle.query(OrderWorkflow.pending)
            assert isinstance(pending, Tally) and isinstance(pending.items[0], Order)
            result = await handle.result()
        assert result == {
            "priced": 7.5,
            "taxed": 9.38,
            "issued_at": "2026-01-02T03:04:05+00:00",
            "reserved": [7, 4, 1],
            "label": "box:o-1",
            "local": 3.0,
            "child": [3, ["o-1", "gift"]],
            "both": "workflow.execute_activity(): pass arguments either positionally or as args=[...], "
            "not both",
            "extra": ["Order"],
        }
        assert inventory.stock == {"o-1": 1}
        history = await handle.fetch_history()
        replayed = await Replayer(workflows=[OrderWorkflow]).replay_workflow(history)
        assert replayed.replay_failure is None and replayed.history is history

    run_in_env(scenario)


async def _pending_count(handle: object) -> bool:
    return bool((await handle.query(OrderWorkflow.pending)).count)  # type: ignore[attr-defined]


def test_client_args_keyword_and_both_spellings_refused() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client, task_queue="cd", workflows=[Countdown], workflow_runner=UnsandboxedWorkflowRunner()
        ):
            with pytest.raises(TypeError, match="either positionally or as args"):
                await env.client.start_workflow(
                    Countdown.run, Tally(1, []), args=[Tally(1, [])], id="cd-0", task_queue="cd"
                )
            with pytest.raises(TypeError, match="args must be a list"):
                await env.client.execute_workflow(Countdown.run, args="x", id="cd-0", task_queue="cd")
            result = await env.client.execute_workflow(
                Countdown.run, args=[Tally(2, [])], id="cd-1", task_queue="cd"
            )
        # continue_as_new(args=[...]) carried the dataclass through two new runs.
        assert result == Tally(0, [Order("2", 0), Order("1", 0)])
        with pytest.raises(WorkflowNotFoundError):  # the refused starts sent nothing
            await env.client.get_workflow_handle("cd-0").describe()

    run_in_env(scenario)


def test_workflow_logger_is_silent_on_replay_and_loggers_carry_run_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(env: WorkflowEnvironment) -> list[bool]:
        # No cache: every workflow task replays the run from its first event.
        async with Worker(
            env.client, task_queue="chat", workflows=[Chatty], activities=[tick], max_cached_workflows=0
        ):
            result: list[bool] = await env.client.execute_workflow(Chatty.run, id="chat-1", task_queue="chat")
        return result

    with caplog.at_level(logging.INFO, logger="cadenza"):
        seen = run_in_env(scenario)
    # The last task replayed the start (is_replaying) and then ran new code.
    assert seen == [True, False]
    messages = [r.getMessage() for r in caplog.records if r.name == "cadenza.workflow"]
    started = [m for m in messages if m.startswith("chatty started")]
    steps = [m for m in messages if m.startswith("chatty step")]
    assert len(started) == 1 and len(steps) == 3, messages
    record = next(r for r in caplog.records if r.name == "cadenza.workflow")
    assert record.__dict__["workflow_id"] == "chat-1" and "'workflow_id': 'chat-1'" in record.getMessage()


def test_activity_logger_carries_activity_info(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(
            env.client,
            task_queue="alog",
            workflows=[OrderWorkflow, PackChild],
            activities=[price, taxed, Inventory({}).reserve, Labeler("x")],
        ):
            handle = await env.client.start_workflow(
                OrderWorkflow.run, Order("o-9", 1), id="alog-1", task_queue="alog"
            )
            await handle.signal(OrderWorkflow.add, Order("o-10", 1))
            await handle.result()

    with caplog.at_level(logging.INFO, logger="cadenza.activity"):
        run_in_env(scenario)
    records = [r for r in caplog.records if r.name == "cadenza.activity"]
    assert records, "activity.logger wrote nothing"
    first = records[0]
    assert first.getMessage().startswith("pricing o-9 (")
    assert first.__dict__["activity_type"] == "price"
    assert first.__dict__["workflow_id"] == "alog-1"
    assert first.__dict__["activity_info"]["attempt"] == 1


def test_benign_application_error_and_failure_attributes(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="refuse", workflows=[Refusing], activities=[refuse]):
            with pytest.raises(WorkflowFailureError) as caught:
                await env.client.execute_workflow(Refusing.run, "closed", id="refuse-1", task_queue="refuse")
        activity_error = caught.value.cause
        assert isinstance(activity_error, ActivityError)
        app = activity_error.cause
        assert isinstance(app, ApplicationError)
        assert (app.type, app.non_retryable, list(app.details)) == ("Refused", True, [{"reason": "closed"}])
        # The failure reads as temporalio's message and still as the failure dict.
        failure = activity_error.failure
        assert failure is not None
        assert failure.message == failure["message"]
        assert failure.cause is not None and failure.cause.message == "refused: closed"
        info = failure.cause.application_failure_info
        assert info is not None and (info.type, info.non_retryable) == ("Refused", True)
        assert failure.cause.timeout_failure_info is None
        assert "refused: closed" in failure.cause.stack_trace
        assert failure.activity_failure_info is not None

    with caplog.at_level(logging.DEBUG, logger="cadenza.worker"):
        run_in_env(scenario)
    attempts = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert attempts and all(r.levelno == logging.DEBUG for r in attempts)


def test_error_names_where_temporalio_has_them() -> None:
    err = ApplicationError("x", 1, type="T", next_retry_delay=timedelta(seconds=2))
    assert err.category is ApplicationErrorCategory.UNSPECIFIED
    assert ApplicationErrorCategory.BENIGN == 1
    assert CancelledError is CanceledError and issubclass(CancelledError, FailureError)
    assert WorkflowExecutionStatus.COMPLETED == "COMPLETED"

    @workflow.defn(sandboxed=False)
    class Plain:
        @workflow.run
        async def run(self) -> None:
            return None

    assert Plain.__name__ == "Plain"
    with workflow.unsafe.imports_passed_through():
        import json  # noqa: F401
    assert workflow.unsafe.is_sandbox_unrestricted()


def test_client_connect_target_host_over_grpc() -> None:
    from cadenza.engine.rpc import RpcServer

    async def scenario(env: WorkflowEnvironment) -> None:
        server = RpcServer(env.host.frontend)
        port = await server.start("127.0.0.1", 0)
        try:
            by_keyword = await Client.connect(target_host=f"127.0.0.1:{port}", namespace="default")
            by_position = await Client.connect(f"127.0.0.1:{port}")
            with pytest.raises(TypeError, match="not both"):
                await Client.connect(f"127.0.0.1:{port}", target=f"127.0.0.1:{port}")
            async with Worker(by_keyword, task_queue="grpc-cd", workflows=[Countdown]):
                result = await by_position.execute_workflow(
                    Countdown.run, args=[Tally(1, [])], id="grpc-cd-1", task_queue="grpc-cd"
                )
            assert result == Tally(0, [Order("1", 0)])
            desc = await by_position.get_workflow_handle("grpc-cd-1").describe()
            assert desc.status is WorkflowExecutionStatus.COMPLETED
            for c in (by_keyword, by_position):
                await c.service.close()  # type: ignore[attr-defined]
        finally:
            await server.stop(0)

    run_in_env(scenario)


def test_replayer_result_is_awaitable_and_reports_failures() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="rp", workflows=[Countdown]):
            handle = await env.client.start_workflow(Countdown.run, Tally(0, []), id="rp-1", task_queue="rp")
            await handle.result()
        history = await handle.fetch_history()
        ok = await Replayer(workflows=[Countdown]).replay_workflow(history)
        assert ok.replay_failure is None
        # The sync spelling still replays at once.
        Replayer(workflows=[Countdown]).replay_workflow(history)

        @workflow.defn(name="Countdown")
        class Changed:
            @workflow.run
            async def run(self, tally: Tally) -> Tally:
                await workflow.sleep(1)
                return tally

        bad = await Replayer(workflows=[Changed]).replay_workflow(history, raise_on_replay_failure=False)
        assert bad.replay_failure is not None
        results = await Replayer(workflows=[Changed]).replay_workflows(
            [history], raise_on_replay_failure=False
        )
        assert list(results.replay_failures) == [history.run_id]
        with pytest.raises(NondeterminismError):
            await Replayer(workflows=[Changed]).replay_workflow(history)

    run_in_env(scenario)
