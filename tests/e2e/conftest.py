"""End-to-end tests drive the real engine through the public SDK only.

Each test is an ``async def scenario(env)``; ``run_in_env`` gives it a fresh in-process server (SQLite
in memory unless a path is given) and shuts it down afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.testing import WorkflowEnvironment


def run_in_env(
    scenario: Callable[[WorkflowEnvironment], Awaitable[Any]],
    *,
    time_skipping: bool = False,
    timeout: float = 60.0,
    **kwargs: Any,
) -> Any:
    async def main() -> Any:
        if time_skipping:
            env = await WorkflowEnvironment.start_time_skipping(**kwargs)
        else:
            env = await WorkflowEnvironment.start_local(**kwargs)
        try:
            return await asyncio.wait_for(scenario(env), timeout)
        finally:
            await env.shutdown()

    return asyncio.run(main())
