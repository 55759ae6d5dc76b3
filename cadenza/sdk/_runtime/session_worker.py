"""The worker's side of sessions: accepting them, holding them open, and its own session queue.

See ``sessions.py`` for the whole design. A worker with ``max_concurrent_sessions = N``:

- polls ``<queue>__sessions`` for session-creation activities, only while it holds fewer than N
  sessions, so a full worker leaves new sessions to the others;
- polls its own ``<queue>@<identity>`` for the activities of its sessions, and for creation
  activities of ``recreate_session``;
- runs each creation activity as long as the session lives: it takes a slot (waiting, and
  heartbeating, if a recreation or a race with another creation filled the worker meanwhile),
  signals the run with its queue, then heartbeats until the workflow cancels it (the session
  completed) or the worker stops. The slot is released when the activity ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cadenza.sdk import activity
from cadenza.sdk._runtime.sessions import (
    SESSION_CREATED_SIGNAL,
    SESSION_CREATION_ACTIVITY,
    session_creation_queue,
    session_queue,
)
from cadenza.sdk.activity import ActivityDefinition
from cadenza.sdk.exceptions import ApplicationError

if TYPE_CHECKING:
    from cadenza.sdk.client import Client

__all__ = ["SessionHost"]

_DEFAULT_HEARTBEAT_S = 20.0


class SessionHost:
    """The sessions one worker accepts, at most ``max_sessions`` at a time."""

    def __init__(self, client: Client, task_queue: str, identity: str, max_sessions: int) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_concurrent_sessions must be positive, got {max_sessions}")
        self._client = client
        self._identity = identity
        self.max_sessions = max_sessions
        self.creation_queue = session_creation_queue(task_queue)
        """Where new sessions are asked for."""
        self.queue = session_queue(task_queue, identity)
        """This worker's own queue: activities of its sessions, and recreated sessions."""
        self.active = 0
        """Sessions holding a slot on this worker now."""
        self._changed = asyncio.Condition()

    def definition(self) -> ActivityDefinition:
        """The creation activity, registered with the worker's activities."""
        return ActivityDefinition(
            name=SESSION_CREATION_ACTIVITY,
            fn=self.hold_session,
            is_async=True,
            param_types=[str],
            return_type=None,
        )

    async def has_capacity(self) -> None:
        """Wait until the worker holds fewer sessions than its limit (before polling for more)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.max_sessions)

    async def hold_session(self, session_id: str) -> None:
        """The creation activity: accept session ``session_id`` and keep it open until cancelled."""
        info = activity.info()
        timeout = _DEFAULT_HEARTBEAT_S
        if info.heartbeat_timeout is not None:
            timeout = info.heartbeat_timeout.total_seconds()
        # Three heartbeats per timeout: one lost or late heartbeat does not fail the session.
        interval = max(timeout / 3, 0.01)
        await self._take_slot(interval)
        try:
            handle = self._client.get_workflow_handle(info.workflow_id, run_id=info.run_id)
            await handle.signal(SESSION_CREATED_SIGNAL, session_id, self.queue, self._identity)
            try:
                while not activity.is_cancelled():
                    activity.heartbeat()
                    await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if not activity.is_worker_shutdown():
                    raise  # the workflow cancelled it: the session completed
            # Getting here means the worker is shutting down: fail the session now rather than at
            # the heartbeat timeout.
            raise ApplicationError(
                f"worker {self._identity!r} shut down while holding the session",
                type="SessionWorkerStopped",
                non_retryable=True,
            )
        finally:
            async with self._changed:
                self.active -= 1
                self._changed.notify_all()

    async def _take_slot(self, heartbeat_interval: float) -> None:
        async with self._changed:
            while self.active >= self.max_sessions:
                activity.heartbeat()
                try:
                    await asyncio.wait_for(self._changed.wait(), heartbeat_interval)
                except TimeoutError:
                    pass
            self.active += 1
