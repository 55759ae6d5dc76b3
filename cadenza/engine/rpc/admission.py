"""Which calls the gRPC server still admits, and how many are in flight: the first half of a
graceful stop.

While serving, every call is admitted and counted. Once the server starts to stop (``close``),
a new call is refused with UNAVAILABLE before the frontend sees it, so the client retries it (on
another address it was given, or on this one after the restart) and nothing of it was done here.
The exception is a worker's answer to a task this server handed out (``TASK_ANSWERS``): refusing it
would throw away work already done (the activity ran, the workflow code replayed) and have the task
run again after the restart; admitting it costs one write. ``wait_idle`` then waits, up to a
deadline, until no call is in flight, and ``seal`` shuts the door on the answers too, so that the
server can stop without cutting off one that came in at the last moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.engine.errors import UnavailableError

TASK_ANSWERS = frozenset(
    {
        "RespondWorkflowTaskCompleted",
        "RespondWorkflowTaskCompletedAndPoll",
        "RespondWorkflowTaskCompletedEager",
        "RespondWorkflowTaskCompletedSticky",
        "RespondWorkflowTaskFailed",
        "RespondQueryTaskCompleted",
        "RespondActivityTaskCompleted",
        "RespondActivityTaskCompletedById",
        "RespondActivityTaskFailed",
        "RespondActivityTaskFailedById",
        "RespondActivityTaskCanceled",
        "RespondActivityTaskCanceledById",
        "RecordActivityTaskHeartbeat",
        "RecordActivityTaskHeartbeatById",
    }
)
"""Calls that answer a task handed out earlier: still admitted while the server drains."""

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class InFlightCalls:
    """Counts the calls in flight and refuses new ones once ``close`` was called."""

    def __init__(self) -> None:
        self.count = 0
        """Calls being handled right now."""
        self.closed = False
        """True once the server stops: new calls (but ``TASK_ANSWERS``) are refused."""
        self.sealed = False
        """True once no call at all is admitted any more (``seal``)."""
        self.refused = 0
        """Calls refused since ``close``."""
        self._idle = asyncio.Event()
        self._idle.set()

    def guard(self, method: str, handler: Handler) -> Handler:
        """``handler`` counted while it runs, and refused with ``UnavailableError`` after
        ``close`` unless ``method`` answers a task."""
        answers_a_task = method in TASK_ANSWERS

        async def call(record: dict[str, Any]) -> Any:
            if self.sealed or (self.closed and not answers_a_task):
                self.refused += 1
                raise UnavailableError(
                    f"{method}: the server is shutting down; retry on another frontend or after the restart"
                )
            self.count += 1
            self._idle.clear()
            try:
                return await handler(record)
            finally:
                self.count -= 1
                if self.count == 0:
                    self._idle.set()

        return call

    def close(self) -> None:
        """Refuse new calls from now on (the answers to handed-out tasks excepted)."""
        self.closed = True

    def seal(self) -> None:
        """Refuse every call from now on, the answers to handed-out tasks included."""
        self.closed = self.sealed = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no call is in flight, for at most ``timeout_s``; False if some still are."""
        if self.count == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return self.count == 0
        return True
