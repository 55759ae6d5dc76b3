"""Overload protection over gRPC: a flooded namespace is refused with RESOURCE_EXHAUSTED carrying
a retry hint (trailing ``retry-after-ms`` and the error's details), the refused calls changed
nothing, another namespace is served meanwhile, the SDK's retry gets through once tokens return,
and long polls are capped per namespace and per client identity.

The limits are small (a few requests per second) so that tokens return within the test's time;
nothing here asserts a duration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio

from cadenza import workflow
from cadenza.client import Client
from cadenza.engine.rpc import RpcServer
from cadenza.exceptions import RPCError, WorkflowNotFoundError
from cadenza.ops.dynamic_config import DynamicConfig
from cadenza.schemas import api
from cadenza.schemas.api import convert as cv
from cadenza.schemas.service import NamespaceInfo, StartWorkflowRequest
from cadenza.sdk._grpc import GrpcService
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

FLOODED, CALM = "flooded", "calm"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


@workflow.defn
class Idle:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@asynccontextmanager
async def overload_server(tmp_path: Path, dynamic_config: str) -> AsyncIterator[str]:
    """A server with namespaces FLOODED and CALM and ``dynamic_config`` in force; yields its address."""
    f = tmp_path / "dynamicconfig.yaml"
    f.write_text(dynamic_config)
    env = await WorkflowEnvironment.start_local()
    for name in (FLOODED, CALM):
        await env.host.namespaces.register(NamespaceInfo(name=name, id="", retention_days=1))
    env.host.frontend.dynamic_config = DynamicConfig(f)
    server = RpcServer(env.host.frontend)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await env.shutdown()


async def client(address: str, namespace: str, *, overload_wait: float) -> Client:
    c = await Client.connect(address, namespace=namespace)
    assert isinstance(c.service, GrpcService)
    c.service.max_overload_wait = overload_wait
    return c


def start_request(workflow_id: str, namespace: str = FLOODED) -> StartWorkflowRequest:
    return StartWorkflowRequest(
        namespace=namespace,
        workflow_id=workflow_id,
        workflow_type="Idle",
        task_queue="idle",
        input=None,
        request_id=f"req-{workflow_id}",
    )


def test_a_flooded_namespace_is_refused_with_a_hint_and_another_is_served(tmp_path: Path) -> None:
    dc = "frontend.namespaceRPS:\n  - value: 3\n    constraints: {namespace: flooded}\n"

    async def main() -> None:
        async with overload_server(tmp_path, dc) as address:
            flooder = await client(address, FLOODED, overload_wait=0)
            calm = await client(address, CALM, overload_wait=0)
            ids = [f"flood-{i}" for i in range(20)]
            outcomes = await asyncio.gather(
                *(flooder.start_workflow(Idle.run, id=i, task_queue="idle") for i in ids),
                return_exceptions=True,
            )
            refused = {i: o for i, o in zip(ids, outcomes, strict=True) if isinstance(o, BaseException)}
            assert len(refused) == 17, outcomes  # the burst is the rate: 3 admitted
            for e in refused.values():
                assert isinstance(e, RPCError) and e.status == "RESOURCE_EXHAUSTED"
                assert e.details["namespace"] == FLOODED
                assert e.details["limit_name"] == "frontend.namespaceRPS" and e.details["limit"] == 3
                assert e.retry_after is not None and 0 < e.retry_after <= 1.0
                assert "namespace 'flooded' is over its rate of 3 requests/s" in e.message

            # The hint is in the trailing metadata too, for clients that do not read the details.
            assert isinstance(flooder.service, GrpcService)
            stub = flooder.service._stub(0, "StartWorkflowExecution")
            request = api.encode(
                "StartWorkflowExecutionRequest", cv.start_request_to_record(start_request("raw"))
            )
            try:
                await stub(request, timeout=5)
                raise AssertionError("the flooded namespace admitted another start")
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                trailing = dict(e.trailing_metadata() or ())
                assert 0 < int(trailing["retry-after-ms"]) <= 1000

            # The other namespace is served meanwhile: hello worlds run end to end.
            async with Worker(calm, task_queue="hello", workflows=[Hello]):
                for n in range(3):
                    result = await calm.execute_workflow(
                        Hello.run, f"w{n}", id=f"hello-{n}", task_queue="hello"
                    )
                    assert result == f"hello w{n}"

            # A refused start changed nothing: no run exists under its id, and starting it later
            # starts it fresh.
            refused_id = next(iter(refused))
            try:
                await flooder.get_workflow_handle(refused_id).describe()
                raise AssertionError(f"refused start {refused_id} left a run behind")
            except WorkflowNotFoundError:
                pass
            await asyncio.sleep(1.0)  # the bucket refills
            handle = await flooder.start_workflow(Idle.run, id=refused_id, task_queue="idle")
            assert (await handle.describe()).status.name == "RUNNING"

    asyncio.run(main())


def test_the_sdk_retries_a_refused_start_until_tokens_return(tmp_path: Path) -> None:
    dc = "frontend.namespaceRPS:\n  - value: 2\n    constraints: {namespace: flooded}\n"

    async def main() -> None:
        async with overload_server(tmp_path, dc) as address:
            patient = await client(address, FLOODED, overload_wait=10.0)
            impatient = await client(address, FLOODED, overload_wait=0)
            await patient.start_workflow(Idle.run, id="r-0", task_queue="idle")
            await patient.start_workflow(Idle.run, id="r-1", task_queue="idle")
            try:
                await impatient.start_workflow(Idle.run, id="r-2", task_queue="idle")
                raise AssertionError("a third start within the second was admitted")
            except RPCError as e:
                assert e.status == "RESOURCE_EXHAUSTED" and e.retry_after is not None
            # The same start from a client that waits out refusals gets through once a token is back.
            handle = await patient.start_workflow(Idle.run, id="r-2", task_queue="idle")
            assert (await handle.describe()).status.name == "RUNNING"
            # A signal carries a request id, so it is retried the same way.
            for _ in range(3):
                await handle.signal("nothing")

    asyncio.run(main())


def test_long_polls_are_capped_per_namespace_and_per_client(tmp_path: Path) -> None:
    dc = (
        "frontend.namespaceCount:\n  - value: 2\n    constraints: {namespace: calm}\n"
        "frontend.namespaceCountPerIdentity:\n  - value: 1\n"
    )

    async def main() -> None:
        async with overload_server(tmp_path, dc) as address:
            c = await client(address, CALM, overload_wait=0)
            service = c.service
            assert isinstance(service, GrpcService)
            held = asyncio.create_task(
                service.poll_workflow_task_queue(CALM, "q", identity="w1", timeout_s=30)
            )
            for _ in range(200):  # until the server holds the first poll
                await asyncio.sleep(0.01)
                try:
                    await service.poll_workflow_task_queue(CALM, "q", identity="w1", timeout_s=0)
                except RPCError as e:
                    refused = e
                    break
            else:
                raise AssertionError("the second poll of w1 was never refused")
            assert refused.status == "RESOURCE_EXHAUSTED" and refused.retry_after == 1.0
            assert refused.details["limit_name"] == "frontend.namespaceCountPerIdentity"
            assert "client 'w1' already holds 1 open polls of namespace 'calm'" in refused.message
            # Another client still gets a slot (the namespace has two), which fills the namespace.
            second = asyncio.create_task(
                service.poll_activity_task_queue(CALM, "q", identity="w2", timeout_s=30)
            )
            for _ in range(200):
                await asyncio.sleep(0.01)
                try:
                    await service.poll_activity_task_queue(CALM, "q", identity="w3", timeout_s=0)
                except RPCError as e:
                    assert e.details["limit_name"] == "frontend.namespaceCount"
                    assert "namespace 'calm' already has 2 open polls" in e.message
                    break
            else:
                raise AssertionError("a third client's poll was never refused")
            # A poll that ends gives its slot back.
            held.cancel()
            second.cancel()
            await asyncio.gather(held, second, return_exceptions=True)
            for _ in range(200):
                await asyncio.sleep(0.01)
                try:
                    assert (
                        await service.poll_workflow_task_queue(CALM, "q", identity="w1", timeout_s=0) is None
                    )
                    break
                except RPCError:
                    continue
            else:
                raise AssertionError("the slots of ended polls were never given back")

    asyncio.run(main())
