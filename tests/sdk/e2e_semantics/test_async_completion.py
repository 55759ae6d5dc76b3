"""Async activity completion, as temporalio's ``hello_async_activity_completion`` writes it: the
activity raises ``raise_complete_async()`` and a client completes it later, by task token or by
workflow id and activity id, in process and over gRPC."""

from __future__ import annotations

import pytest
from e2e.conftest import run_in_env

from cadenza.client import Client, WorkflowFailureError
from cadenza.exceptions import ActivityError, ApplicationError, RPCError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .temporal_workflows import ISSUED_AT, Approvals, ApprovalWorkflow, Order, Receipt, StoppableApproval
from .waits import eventually


async def _approve_by_token(client: Client, approvals: Approvals, queue: str) -> None:
    async with Worker(
        client, task_queue=queue, workflows=[ApprovalWorkflow], activities=[approvals.request_approval]
    ):
        handle = await client.start_workflow(
            ApprovalWorkflow.run, Order("o-1", 2), id=f"{queue}-1", task_queue=queue
        )
        token, _, _ = await approvals.tokens.get()
        pending = client.get_async_activity_handle(task_token=token)
        await pending.heartbeat("half way")
        described = await handle.describe()
        assert [p.state for p in described.pending_activities] == ["STARTED"]
        await pending.complete(Receipt(order_id="o-1", total=4.0, issued_at=ISSUED_AT))
        result = await handle.result()
    assert result == Receipt(order_id="o-1", total=4.0, issued_at=ISSUED_AT)
    with pytest.raises(RPCError, match="NOT_FOUND"):
        await pending.complete(None)  # the attempt is over


def test_complete_by_task_token_in_process() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        await _approve_by_token(env.client, Approvals(), "acl")

    run_in_env(scenario)


def test_complete_by_task_token_and_fail_by_id_over_grpc() -> None:
    from cadenza.engine.rpc import RpcServer

    async def scenario(env: WorkflowEnvironment) -> None:
        server = RpcServer(env.host.frontend)
        port = await server.start("127.0.0.1", 0)
        client = await Client.connect(target_host=f"127.0.0.1:{port}")
        try:
            await _approve_by_token(client, Approvals(), "acg")
            approvals = Approvals()
            async with Worker(
                client,
                task_queue="acg2",
                workflows=[ApprovalWorkflow],
                activities=[approvals.request_approval],
            ):
                handle = await client.start_workflow(
                    ApprovalWorkflow.run, Order("o-2", 1), id="acg2-1", task_queue="acg2"
                )
                _, workflow_id, activity_id = await approvals.tokens.get()
                assert (workflow_id, activity_id) == ("acg2-1", "approval")
                by_id = client.get_async_activity_handle(workflow_id=workflow_id, activity_id=activity_id)
                await by_id.heartbeat(1)
                await by_id.fail(ApplicationError("rejected", type="Rejected", non_retryable=True))
                with pytest.raises(WorkflowFailureError) as caught:
                    await handle.result()
            cause = caught.value.cause
            assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
            assert cause.cause.type == "Rejected"
        finally:
            await client.service.close()  # type: ignore[attr-defined]
            await server.stop(0)

    run_in_env(scenario)


def test_complete_and_cancel_by_workflow_and_activity_id() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        approvals = Approvals()
        async with Worker(
            env.client,
            task_queue="acid",
            workflows=[ApprovalWorkflow],
            activities=[approvals.request_approval],
        ):
            first = await env.client.start_workflow(
                ApprovalWorkflow.run, Order("o-3", 1), id="acid-1", task_queue="acid"
            )
            _, workflow_id, activity_id = await approvals.tokens.get()
            run_id = (await first.describe()).run_id
            pending = env.client.get_async_activity_handle(
                workflow_id=workflow_id, run_id=run_id, activity_id=activity_id
            )
            await pending.complete(Receipt(order_id="o-3", total=1.0, issued_at=ISSUED_AT))
            assert (await first.result()).total == 1.0

        async with Worker(
            env.client,
            task_queue="acid",
            workflows=[StoppableApproval],
            activities=[approvals.request_approval],
        ):
            second = await env.client.start_workflow(
                StoppableApproval.run, Order("o-4", 1), id="acid-2", task_queue="acid"
            )
            _, workflow_id, activity_id = await approvals.tokens.get()
            await second.signal(StoppableApproval.halt)
            cancelled = env.client.get_async_activity_handle(workflow_id=workflow_id, activity_id=activity_id)
            await eventually(lambda: _has_event(second, "ACTIVITY_TASK_CANCEL_REQUESTED"))
            await cancelled.report_cancellation("stopped")
            await eventually(lambda: _has_event(second, "ACTIVITY_TASK_CANCELED"))
            await second.signal(StoppableApproval.finish)
            assert await second.result() == "CanceledError"
            with pytest.raises(RPCError, match="NOT_FOUND"):
                await env.client.get_async_activity_handle(workflow_id="acid-2", activity_id="nope").complete(
                    1
                )
        with pytest.raises(TypeError, match="task_token, or workflow_id and activity_id"):
            env.client.get_async_activity_handle(workflow_id="acid-2")

    run_in_env(scenario)


async def _has_event(handle: object, name: str) -> bool:
    history = await handle.fetch_history()  # type: ignore[attr-defined]
    return any(e.event_type.name == name for e in history.events)
