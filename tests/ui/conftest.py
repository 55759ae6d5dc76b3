"""The UI's tests run a real server (embedded SQLite, the visibility pipeline) with its web UI on a
free port, and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from cadenza.client import Client
from cadenza.ops.devserver import ServerProcess, ServerSettings
from cadenza.ui import UISettings


@dataclass
class UIHarness:
    server: ServerProcess
    client: Client
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return str(self.server.ui.url)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, params=params) as resp:
            return resp.status, await resp.json()

    async def post(
        self, path: str, body: Any = None, *, raw: str | None = None, **params: Any
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body or {})
        async with self.http.post(self.url + path, data=data, params=params) as resp:
            return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def ui_harness(**settings: Any) -> AsyncIterator[UIHarness]:
    server = ServerProcess(ServerSettings(port=0, ui=UISettings(port=0), **settings))
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.port}", namespace="default")
        async with aiohttp.ClientSession() as http:
            yield UIHarness(server, client, http)
    finally:
        await server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, attempts: int = 400) -> None:
    """Waits for visibility (indexed a few tens of milliseconds after a write) or a run to settle:
    polls ``check`` a bounded number of times."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")
