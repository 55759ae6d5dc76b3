"""What the worker builds for each activity task: its info, and its heartbeats (sent from any thread,
at most one in flight, carrying cancellation back)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cadenza.schemas.service import PollActivityTaskResponse
from cadenza.sdk.activity import ActivityContext, ActivityInfo
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.exceptions import CadenzaError, CanceledError
from cadenza.sdk.interceptor import ActivityChain, ExecuteActivityInput, Headers

if TYPE_CHECKING:
    from cadenza.sdk.worker import Worker

__all__ = ["Heartbeater", "activity_info_from_task", "is_cancel", "run_intercepted"]


def _ms_to_td(ms: int) -> timedelta | None:
    return timedelta(milliseconds=ms) if ms else None


def _us_to_dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def activity_info_from_task(task: PollActivityTaskResponse, converter: DataConverter) -> ActivityInfo:
    """The :class:`ActivityInfo` of the attempt ``task`` starts."""
    return ActivityInfo(
        activity_id=task.activity_id,
        activity_type=task.activity_type,
        attempt=task.attempt,
        task_queue=task.task_queue,
        workflow_id=task.workflow_execution.workflow_id,
        run_id=task.workflow_execution.run_id,
        workflow_type=task.workflow_type,
        namespace=task.namespace,
        heartbeat_details=converter.from_payloads(task.heartbeat_details) if task.heartbeat_details else [],
        heartbeat_timeout=_ms_to_td(task.heartbeat_timeout_ms),
        scheduled_time=_us_to_dt(task.current_attempt_scheduled_time),
        started_time=_us_to_dt(task.started_time),
        task_token=task.task_token,
        schedule_to_close_timeout=_ms_to_td(task.schedule_to_close_timeout_ms),
        start_to_close_timeout=_ms_to_td(task.start_to_close_timeout_ms),
    )


def is_cancel(e: BaseException) -> bool:
    """True for the errors that mean the activity stopped because it was cancelled."""
    return isinstance(e, CanceledError | asyncio.CancelledError)


class Heartbeater:
    """Sends an activity's heartbeats, at most one in flight, keeping only the latest details."""

    def __init__(
        self, worker: Worker, task: PollActivityTaskResponse, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.worker = worker
        self.task = task
        self.loop = loop
        self.ctx: ActivityContext | None = None
        self.cancel_requested = False
        """The server asked for cancellation (or no longer knows the attempt)."""
        self.on_cancel: Callable[[], object] | None = None
        """Called when the server asks for cancellation (an async activity's task is cancelled)."""
        self._cancelled: threading.Event | None = None
        self._pending: Sequence[Any] | None = None
        self._sending = False
        self._stopped = False
        self._lock = threading.Lock()

    def attach(self, ctx: ActivityContext) -> None:
        """Heartbeat for the attempt ``ctx`` describes."""
        self.ctx = ctx
        # Kept apart from ``ctx`` so a thread still heartbeating after the attempt ended (its
        # worker abandoned it) still sees the cancellation.
        self._cancelled = ctx.cancelled

    def heartbeat_sync(self, details: Sequence[Any]) -> None:
        """A sync activity's heartbeat: raises ``CanceledError`` once cancellation was requested,
        as temporalio's does, since a thread cannot be interrupted and heartbeats are where a
        sync activity hears from its worker."""
        if self._cancelled is not None and self._cancelled.is_set():
            raise CanceledError(f"activity {self.task.activity_type!r} was cancelled")
        self.heartbeat_threadsafe(details)

    def heartbeat_threadsafe(self, details: Sequence[Any]) -> None:
        if self._stopped:
            return  # the attempt is over: nothing to send, and its loop may be gone
        with self._lock:
            self._pending = list(details)
        if threading.current_thread() is threading.main_thread() and self._in_loop():
            self._kick()
            return
        try:
            self.loop.call_soon_threadsafe(self._kick)
        except RuntimeError:
            pass  # the loop closed after the check above: the attempt is over

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _kick(self) -> None:
        if self._sending or self._stopped:
            return
        self._sending = True
        self.loop.create_task(self._send())

    async def _send(self) -> None:
        service = self.worker.client.service
        conv = self.worker._converter
        try:
            while not self._stopped:
                with self._lock:
                    details, self._pending = self._pending, None
                if details is None:
                    return
                try:
                    cancel = await service.record_activity_task_heartbeat(
                        self.task.task_token,
                        conv.to_payloads(details) if details else None,
                        identity=self.worker.identity,
                    )
                except CadenzaError:
                    cancel = True  # the attempt is gone (timed out): stop the work
                if cancel and self.ctx is not None:
                    self.cancel_requested = True
                    self.ctx.cancelled.set()
                    if self.on_cancel is not None:
                        self.on_cancel()
                    return
        finally:
            self._sending = False

    def stop(self) -> None:
        self._stopped = True
        self.ctx = None  # the context holds our heartbeat method: no cycle left for the collector
        self.on_cancel = None


async def run_intercepted(
    chain: ActivityChain,
    headers: Headers,
    fn: Callable[..., Any],
    is_async: bool,
    args: Sequence[Any],
    ctx: ActivityContext,
    executor: Executor | None,
) -> Any:
    """Runs an activity attempt through the worker's interceptors (the same calls as without them:
    an async activity in its context on this loop, a sync one in the executor)."""
    from cadenza.sdk import activity as activity_mod

    async def run(call_args: Sequence[Any]) -> Any:
        if is_async:
            with activity_mod._activity_context(ctx):
                return await fn(*call_args)
        cv = contextvars.copy_context()

        def call() -> Any:
            activity_mod._set_context(ctx)
            return fn(*call_args)

        return await asyncio.get_running_loop().run_in_executor(executor, cv.run, call)

    # The interceptors run in the attempt's context too: they may read ``activity.info()`` or
    # decode a header with ``activity.payload_converter()``, as temporalio's do.
    with activity_mod._activity_context(ctx):
        inbound = chain.build(ctx)
        return await inbound.execute_activity(ExecuteActivityInput(fn, list(args), headers, ctx.info, run))
