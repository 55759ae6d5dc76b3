"""``wait_condition``: predicates re-checked whenever workflow code has nothing else to run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cadenza.sdk._runtime.loop import WorkflowEventLoop, label_future

__all__ = ["Conditions"]


class Conditions:
    """The pending ``wait_condition`` predicates of one run."""

    def __init__(self, loop: WorkflowEventLoop, on_error: Callable[[BaseException], None]) -> None:
        self._loop = loop
        self._on_error = on_error
        self._pending: list[tuple[Callable[[], bool], asyncio.Future[Any]]] = []

    async def wait(self, fn: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``fn()`` is true; after ``timeout`` seconds the builtin ``TimeoutError``."""
        if fn():
            return
        future: asyncio.Future[Any] = self._loop.create_future()
        label_future(future, f"wait_condition({getattr(fn, '__qualname__', fn)})")
        self._pending.append((fn, future))
        if timeout is None:
            await future
        else:
            await asyncio.wait_for(future, timeout)

    def check(self) -> bool:
        """Wake the waiters whose predicate now holds; True if any woke (the code has more to run).

        A predicate that raises is a bug in workflow code: reported, and no more are checked.
        """
        if not self._pending:
            return False
        fired = False
        remaining: list[tuple[Callable[[], bool], asyncio.Future[Any]]] = []
        for fn, future in self._pending:
            if future.done():
                continue
            try:
                ok = fn()
            except BaseException as exc:
                self._on_error(exc)
                return False
            if ok:
                future.set_result(True)
                fired = True
            else:
                remaining.append((fn, future))
        self._pending = remaining
        return fired
