"""The gRPC frontend at the byte level: bad input is refused with a status naming the problem, and
the server keeps serving; errors keep their meaning across the wire."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cadenza.client import Client
from cadenza.engine.rpc import RpcServer
from cadenza.exceptions import NamespaceNotFoundError, RPCError
from cadenza.schemas import api
from cadenza.schemas.api._generate import check as check_generated
from cadenza.testing import WorkflowEnvironment

Scenario = Callable[[str, grpc.aio.Channel], Awaitable[Any]]


def run_against_server(scenario: Scenario) -> Any:
    async def main() -> Any:
        env = await WorkflowEnvironment.start_local()
        server = RpcServer(env.host.frontend)
        port = await server.start("127.0.0.1", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            return await asyncio.wait_for(scenario(f"127.0.0.1:{port}", channel), 30)
        finally:
            await channel.close()
            await server.stop(0)
            await env.shutdown()

    return asyncio.run(main())


async def raw(channel: grpc.aio.Channel, method: str, body: bytes) -> bytes:
    stub = channel.unary_unary(f"/{api.SERVICE}/{method}")
    result: bytes = await stub(body, timeout=10)
    return result


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def still_serving(channel: grpc.aio.Channel) -> None:
    reply = await raw(channel, "ListNamespaces", api.encode("ListNamespacesRequest", {}))
    assert [n["name"] for n in api.decode("ListNamespacesResponse", reply)["namespaces"]] == ["default"]


def test_generated_schemas_match_the_table() -> None:
    assert check_generated() == []


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"", "truncated single-object header"),
        (b"\x00\x01garbage-garbage", "not Avro single-object encoded"),
        (b"\xc3\x01" + b"\x11" * 8 + b"body", "unknown schema fingerprint"),
    ],
)
def test_garbage_bytes_are_invalid_argument_and_the_server_keeps_serving(body: bytes, needle: str) -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        code, details = await status_of(raw(channel, "StartWorkflowExecution", body))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "StartWorkflowExecution" in details and needle in details
        await still_serving(channel)

    run_against_server(scenario)


def test_a_message_of_another_schema_is_refused_naming_both() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        wrong = api.encode("DescribeNamespaceRequest", {"name": "default"})
        code, details = await status_of(raw(channel, "StartWorkflowExecution", wrong))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "StartWorkflowExecutionRequest" in details and "DescribeNamespaceRequest" in details
        truncated = api.encode("DescribeNamespaceRequest", {"name": "default"})[:-3]
        code, details = await status_of(raw(channel, "DescribeNamespace", truncated))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "truncated" in details
        await still_serving(channel)

    run_against_server(scenario)


def test_a_decodable_record_that_cannot_become_a_call_is_invalid_argument() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        body = api.encode("RespondActivityTaskFailedRequest", {"task_token": b"x", "failure": None})
        code, details = await status_of(raw(channel, "RespondActivityTaskFailed", body))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "failure is required" in details
        await still_serving(channel)

    run_against_server(scenario)


def test_unknown_namespace_is_not_found_on_the_wire_and_named_in_the_sdk() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        body = api.encode("DescribeNamespaceRequest", {"name": "nope"})
        code, details = await status_of(raw(channel, "DescribeNamespace", body))
        assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
        client = await Client.connect(address, namespace="nope")
        with pytest.raises(NamespaceNotFoundError, match="nope"):
            await client.start_workflow("Anything", id="x", task_queue="q")
        await client.service.close()  # type: ignore[attr-defined]

    run_against_server(scenario)


def test_a_request_over_the_size_limit_is_resource_exhausted() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        big = api.MAX_REQUEST_BYTES + 1024
        code, details = await status_of(raw(channel, "StartWorkflowExecution", b"\xc3\x01" + b"x" * big))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(api.MAX_REQUEST_BYTES) in details
        # Through the SDK: the same status, as an RPCError.
        client = await Client.connect(address)
        with pytest.raises(RPCError) as info:
            await client.start_workflow("Big", "x" * big, id="big", task_queue="q")
        assert info.value.status == "RESOURCE_EXHAUSTED"
        await client.service.close()  # type: ignore[attr-defined]
        await still_serving(channel)

    run_against_server(scenario)


def test_health_reports_serving() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", api.SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    run_against_server(scenario)


def test_a_list_of_targets_moves_past_a_dead_one() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        dead = await _unused_address()
        client = await Client.connect([dead, address], retries=3)
        for _ in range(4):  # every call lands, whichever target it starts on
            assert [n.name for n in await client.service.list_namespaces()] == ["default"]
        await client.service.close()  # type: ignore[attr-defined]

    run_against_server(scenario)


def test_an_unreachable_server_is_unavailable_after_the_retries() -> None:
    async def main() -> None:
        dead = await _unused_address()
        with pytest.raises(RPCError) as info:
            await Client.connect(dead, retries=2)
        assert info.value.status == "UNAVAILABLE"
        assert dead in info.value.message and "3 attempts" in info.value.message

    asyncio.run(main())


def test_cluster_info_describes_the_server() -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        reply = await raw(channel, "GetClusterInfo", api.encode("GetClusterInfoRequest", {}))
        info = api.decode("GetClusterInfoResponse", reply)
        assert info["cluster_name"] == "active" and info["num_history_shards"] == 4

    run_against_server(scenario)


async def _unused_address() -> str:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"127.0.0.1:{port}"
