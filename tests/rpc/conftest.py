"""A test environment whose client and workers reach the server over gRPC.

``GrpcEnvironment`` has the shape of ``cadenza.testing.WorkflowEnvironment`` (``client``, ``host``,
``sleep``, ``supports_time_skipping``, ``shutdown``), so the end-to-end scenarios run unchanged: the
engine runs in this process (tests that patch server limits or read server logs still can), but
every call of the client and of the workers goes through the gRPC frontend on a free local port,
Avro-encoded, exactly as from another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.client import Client
from cadenza.engine.rpc import RpcServer
from cadenza.sdk._grpc import GrpcService
from cadenza.testing import WorkflowEnvironment


class GrpcEnvironment:
    def __init__(self, local: WorkflowEnvironment, server: RpcServer, client: Client) -> None:
        self.local = local
        self.server = server
        self.client = client
        self.host = local.host
        self.clock = local.clock

    @classmethod
    async def start(
        cls, *, time_skipping: bool = False, namespace: str = "default", **kwargs: Any
    ) -> GrpcEnvironment:
        if time_skipping:
            local = await WorkflowEnvironment.start_time_skipping(namespace=namespace, **kwargs)
        else:
            local = await WorkflowEnvironment.start_local(namespace=namespace, **kwargs)
        server = RpcServer(local.host.frontend)
        port = await server.start("127.0.0.1", 0)
        client = await Client.connect(
            f"127.0.0.1:{port}", namespace=namespace, data_converter=kwargs.get("data_converter")
        )
        return cls(local, server, client)

    @property
    def supports_time_skipping(self) -> bool:
        return self.local.supports_time_skipping

    async def sleep(self, seconds: float) -> None:
        await self.local.sleep(seconds)

    async def shutdown(self) -> None:
        service = self.client.service
        if isinstance(service, GrpcService):
            await service.close()
        await self.server.stop(0)
        await self.local.shutdown()


def run_in_grpc_env(
    scenario: Callable[[Any], Awaitable[Any]],
    *,
    time_skipping: bool = False,
    timeout: float = 60.0,
    **kwargs: Any,
) -> Any:
    """``tests.e2e.conftest.run_in_env`` with the client and workers on gRPC."""

    async def main() -> Any:
        env = await GrpcEnvironment.start(time_skipping=time_skipping, **kwargs)
        try:
            return await asyncio.wait_for(scenario(env), timeout)
        finally:
            await env.shutdown()

    return asyncio.run(main())
