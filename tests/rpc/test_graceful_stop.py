"""The first half of a graceful stop, over real gRPC: the health service turns NOT_SERVING, new calls
are refused with UNAVAILABLE (answers to handed-out tasks excepted), long polls in flight are
answered empty at once, and other calls in flight run to their end."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cadenza.engine.rpc.admission import TASK_ANSWERS, InFlightCalls
from cadenza.schemas import api
from cadenza.schemas.service import (
    GetHistoryRequest,
    StartWorkflowRequest,
    WorkflowExecution,
)
from cadenza.sdk._grpc import GrpcService
from cadenza.sdk.exceptions import RPCError

from .conftest import GrpcEnvironment


async def _raw(port: int, method: str, record: dict[str, Any]) -> grpc.StatusCode:
    """One call without the SDK's retries: the status the server answered with."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(f"/{api.SERVICE}/{method}")
        try:
            await stub(api.encode(f"{method}Request", record), timeout=10)
        except grpc.aio.AioRpcError as e:
            return e.code()
        return grpc.StatusCode.OK


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=api.SERVICE), timeout=10)
        return int(reply.status)


async def _scenario() -> None:
    env = await GrpcEnvironment.start()
    try:
        port = env.server.port
        service = env.client.service
        assert isinstance(service, GrpcService)
        assert await _health(port) == health_pb2.HealthCheckResponse.SERVING
        start = StartWorkflowRequest(
            namespace="default", workflow_id="drained", workflow_type="Nothing", task_queue="nobody"
        )
        run_id = (await service.start_workflow_execution(start)).run_id

        # In flight when the stop begins: a task poll and a history long poll (both 60 s waits).
        poll = asyncio.create_task(service.poll_activity_task_queue("default", "nobody", timeout_s=60))
        history_wait = asyncio.create_task(
            service.get_workflow_execution_history(
                GetHistoryRequest(
                    "default",
                    WorkflowExecution("drained", run_id),
                    wait_new_event=True,
                    close_event_only=True,
                    timeout_s=60,
                )
            )
        )
        await _until(lambda: env.server.calls.count == 2)

        await env.server.begin_stop()
        env.host.end_long_polls()
        # Answered empty, long before their 60 s: their workers poll again elsewhere.
        assert await asyncio.wait_for(poll, 10) is None
        assert (await asyncio.wait_for(history_wait, 10)).events == []
        assert await _health(port) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await _raw(port, "DescribeNamespace", {"name": "default"}) == grpc.StatusCode.UNAVAILABLE
        # An answer to a task handed out before the stop still reaches the engine (here it is
        # refused on its merits, a token of no task, which proves it was not refused at the door).
        with pytest.raises(RPCError) as refused:
            await service.respond_activity_task_completed(b"{}", None, identity="w")
        assert refused.value.status != "UNAVAILABLE"
        assert env.server.calls.refused == 1

        # Once no call is in flight the door shuts on answers too: the server can stop.
        assert await env.server.wait_idle(10)
        answer = {"task_token": b"{}", "result": None, "identity": "w"}
        assert await _raw(port, "RespondActivityTaskCompleted", answer) == grpc.StatusCode.UNAVAILABLE
    finally:
        await env.shutdown()


async def _until(cond: Any, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


def test_a_stopping_server_turns_away_new_calls_and_answers_long_polls_at_once() -> None:
    asyncio.run(asyncio.wait_for(_scenario(), 60))


def test_calls_in_flight_run_to_their_end_and_are_waited_for() -> None:
    async def main() -> None:
        calls = InFlightCalls()
        release = asyncio.Event()

        async def slow(record: dict[str, Any]) -> str:
            await release.wait()
            return "done"

        guarded = calls.guard("DescribeWorkflowExecution", slow)
        in_flight = asyncio.create_task(guarded({}))
        await asyncio.sleep(0)
        calls.close()
        assert not await calls.wait_idle(0)  # still running: not idle at a deadline of now
        with pytest.raises(Exception, match="shutting down") as refused:
            await guarded({})
        assert getattr(refused.value, "code", "") == "UNAVAILABLE"
        release.set()
        assert await calls.wait_idle(10)
        assert in_flight.result() == "done"
        assert calls.refused == 1

    asyncio.run(main())


def test_only_task_answers_pass_a_closed_door() -> None:
    async def main() -> None:
        calls = InFlightCalls()
        calls.close()

        async def ok(record: dict[str, Any]) -> str:
            return "ok"

        for method in sorted(api.METHODS):
            call = calls.guard(method, ok)
            if method in TASK_ANSWERS:
                assert await call({}) == "ok", method
            else:
                with pytest.raises(Exception, match="shutting down"):
                    await call({})
        assert TASK_ANSWERS <= set(api.METHODS)  # no name in it that is not a method

    asyncio.run(main())
