"""One worker per cluster, for the same task queue, workflows and activities.

In a multi-DC deployment a workflow's tasks are dispatched only by the cluster that is active for
its namespace, and polls are never forwarded: a worker serves the cluster it is connected to. So a
team that must keep running across a failover runs workers in every cluster. ``WorkerPool`` (the
anchors' ``StartWorkerPool``) builds them in one call and stops them together::

    pool = await WorkerPool.connect(
        ["dc1.example:7233", "dc2.example:7233"], namespace="video",
        task_queue="video", workflows=[VideoPipeline], activities=[transcode],
    )
    async with pool:
        ...   # whichever cluster is active has pollers

Stopping the pool drains every worker (see ``Worker.shutdown``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cadenza.sdk.client import Client
from cadenza.sdk.worker import Worker


class WorkerPool:
    def __init__(self, clients: Sequence[Client], **worker_options: Any) -> None:
        """One ``Worker(client, **worker_options)`` per client (one client per cluster)."""
        if not clients:
            raise ValueError("a worker pool needs at least one client (one per cluster)")
        self.clients = list(clients)
        self.workers = [Worker(client, **worker_options) for client in self.clients]
        self._owned: list[Client] = []

    @classmethod
    async def connect(
        cls,
        addresses: Sequence[str],
        *,
        namespace: str = "default",
        connect_options: dict[str, Any] | None = None,
        **worker_options: Any,
    ) -> WorkerPool:
        """Connects to each cluster's frontend (one address each) and builds the pool; the
        connections are closed with the pool."""
        clients = [
            await Client.connect(address, namespace=namespace, **(connect_options or {}))
            for address in addresses
        ]
        pool = cls(clients, **worker_options)
        pool._owned = clients
        return pool

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def shutdown(self) -> None:
        """Stops every worker, each draining its running activities."""
        await asyncio.gather(*(worker.shutdown() for worker in self.workers))
        for client in self._owned:
            close = getattr(client.service, "close", None)
            if close is not None:
                await close()
        self._owned = []

    async def run(self) -> None:
        self.start()
        try:
            await asyncio.gather(*(worker._stopping.wait() for worker in self.workers))
        finally:
            await self.shutdown()

    async def __aenter__(self) -> WorkerPool:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
