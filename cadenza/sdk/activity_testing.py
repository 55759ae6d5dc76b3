"""``ActivityEnvironment``: run an activity function in a test, without a worker or a server.

As temporalio's: ``env.run(fn, *args)`` calls ``fn`` with an activity context around it, so
``activity.info()``, ``heartbeat()``, ``is_cancelled()`` and the logger work; heartbeats go to
``env.on_heartbeat``; ``env.cancel()`` cancels it (an async function's task is cancelled, a sync
function's next ``heartbeat()`` raises ``CanceledError``, as under a worker) and
``env.worker_shutdown()`` sets ``is_worker_shutdown()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from cadenza.sdk.activity import ActivityContext, ActivityInfo, _activity_context
from cadenza.sdk.exceptions import CanceledError

T = TypeVar("T")

__all__ = ["ActivityEnvironment", "default_info"]


def default_info() -> ActivityInfo:
    """The ``activity.info()`` an activity sees under ``ActivityEnvironment`` unless the test
    replaces ``env.info`` (``dataclasses.replace(env.info, attempt=3)``)."""
    now = datetime.now(UTC)
    return ActivityInfo(
        activity_id="test",
        activity_type="unknown",
        attempt=1,
        task_queue="test",
        workflow_id="test",
        run_id="test-run",
        workflow_type="test",
        namespace="default",
        heartbeat_details=[],
        heartbeat_timeout=None,
        scheduled_time=now,
        started_time=now,
        task_token=b"test",
    )


class ActivityEnvironment:
    def __init__(self, client: Any = None) -> None:
        self.info: ActivityInfo = default_info()
        """What ``activity.info()`` returns; replace it to test an attempt or a heartbeat resume."""
        self.on_heartbeat: Callable[..., None] = lambda *details: None
        """Called with the details of each ``activity.heartbeat(...)``."""
        self.client = client
        """temporalio's ``client`` argument, kept for the test; activities here reach no server."""
        self._cancelled = threading.Event()
        self._shutdown = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def cancel(self) -> None:
        """Requests cancellation of what ``run`` runs (from any thread)."""
        self._cancelled.set()
        for task in list(self._tasks):
            task.get_loop().call_soon_threadsafe(task.cancel)

    def worker_shutdown(self) -> None:
        """Tells the activity its worker is shutting down (``activity.is_worker_shutdown()``)."""
        self._shutdown.set()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls ``fn(*args, **kwargs)`` as an activity: for an async function, returns its
        awaitable (await it); for a sync one, its result."""
        if inspect.iscoroutinefunction(fn):
            return self._run_async(fn, args, kwargs)  # type: ignore[return-value]
        with _activity_context(self._context(sync=True)):
            return fn(*args, **kwargs)

    async def _run_async(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._cancelled.is_set():
                raise asyncio.CancelledError()
            with _activity_context(self._context(sync=False)):
                return await fn(*args, **kwargs)
        finally:
            self._tasks.discard(task)

    def _context(self, *, sync: bool) -> ActivityContext:
        info = dataclasses.replace(self.info)

        def heartbeat(details: Sequence[Any]) -> None:
            self.on_heartbeat(*details)
            if sync and self._cancelled.is_set():
                raise CanceledError(f"activity {info.activity_type!r} was cancelled")

        return ActivityContext(info, heartbeat, cancelled=self._cancelled, worker_shutdown=self._shutdown)
