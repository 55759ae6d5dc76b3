"""A tiny async test runner: no pytest-asyncio, each test runs in a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from cadenza.engine.persistence import Stores

TEST_TIMEOUT_S = 30.0


class HasStores(Protocol):
    async def make_stores(self) -> Stores: ...


def store_test(fn: Callable[[Any, Stores], Awaitable[None]]) -> Callable[[Any], None]:
    """Turns ``async def test_x(self, stores)`` into a sync pytest test with fresh stores.

    The wrapper deliberately does not use ``functools.wraps``: pytest would follow ``__wrapped__``
    and look for a ``stores`` fixture.
    """

    def test(self: HasStores) -> None:
        async def main() -> None:
            stores = await self.make_stores()
            try:
                await asyncio.wait_for(fn(self, stores), TEST_TIMEOUT_S)
            finally:
                await stores.close()

        asyncio.run(main())

    test.__name__ = fn.__name__
    test.__qualname__ = fn.__qualname__
    test.__doc__ = fn.__doc__
    return test


def run(coro: Awaitable[Any]) -> Any:
    """Runs one coroutine to completion in a fresh event loop."""

    async def main() -> Any:
        return await asyncio.wait_for(coro, TEST_TIMEOUT_S)

    return asyncio.run(main())
