"""Small waits shared by the end-to-end semantics tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cadenza.client import WorkflowHandle
from cadenza.schemas.events import EventType


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def has_event(handle: WorkflowHandle[object], event_type: EventType, count: int = 1) -> bool:
    """True once the run's history holds ``count`` events of ``event_type``."""
    events = (await handle.fetch_history()).events
    return sum(1 for e in events if e.event_type is event_type) >= count


async def activity_started(handle: WorkflowHandle[object], activity_type: str | None = None) -> bool:
    """True once a pending activity (of ``activity_type``) has started."""
    pending = (await handle.describe()).pending_activities
    return any(
        p.state == "STARTED" and (activity_type is None or p.activity_type == activity_type) for p in pending
    )
