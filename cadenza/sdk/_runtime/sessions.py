"""Worker sessions as seen from workflow code (Cadence's design, on ordinary task queues).

A session pins activities to the one worker that accepted it:

1. ``create_session`` schedules the session-creation activity on ``<queue>__sessions``. Only workers
   with sessions enabled poll that queue, and only while they have a free session slot, which is how
   ``max_concurrent_sessions`` is enforced without the engine knowing about sessions.
2. The accepting worker signals the run with its own queue, ``<queue>@<worker identity>``, and keeps
   the creation activity running, heartbeating, for as long as the session lives.
3. Activities started inside ``async with`` are scheduled on that worker's queue.
4. Leaving the block cancels the creation activity: the worker frees the slot. If the worker dies,
   the activity's heartbeat timeout fails it, and the session turns FAILED: activities still running
   in it fail at once with an ``ActivityError`` caused by ``SessionFailedError``, and new ones raise
   ``SessionFailedError``.

Everything is ordinary history (activity events and one signal), so replay rebuilds a session as
the code runs again. ``recreate_token`` names the worker's queue; ``recreate_session`` schedules the
creation activity directly there, to get a new session on the same worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import json
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cadenza.sdk.common import RetryPolicy, timedelta_to_ms
from cadenza.sdk.exceptions import SessionFailedError

if TYPE_CHECKING:
    from cadenza.sdk._runtime.activities import ActivityHandle, ActivityState
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = [
    "SESSION_CREATED_SIGNAL",
    "SESSION_CREATION_ACTIVITY",
    "Session",
    "SessionInfo",
    "SessionState",
    "active_session",
    "create_session",
    "current_session",
    "recreate_session",
    "session_creation_queue",
    "session_queue",
]

SESSION_CREATION_ACTIVITY = "__cadenza_session_creation"
"""Activity type of the long-running activity that holds a session open on its worker."""
SESSION_CREATED_SIGNAL = "__cadenza_session_created"
"""Signal the accepting worker sends: (session id, its session queue, its identity)."""


def session_creation_queue(task_queue: str) -> str:
    """Where session-creation activities for workers of ``task_queue`` are scheduled."""
    return f"{task_queue}__sessions"


def session_queue(task_queue: str, worker_identity: str) -> str:
    """The queue only the worker ``worker_identity`` polls, for activities of its sessions."""
    return f"{task_queue}@{worker_identity}"


class SessionState(enum.StrEnum):
    """Where a session is in its life."""

    OPEN = "OPEN"
    """Created; activities started in it run on its worker."""
    CLOSED = "CLOSED"
    """Completed by leaving its ``async with`` block."""
    FAILED = "FAILED"
    """Its worker stopped heartbeating, or its execution timeout passed."""


class SessionInfo:
    """A session: its worker, its state, and the token to recreate it on the same worker."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._task_queue = ""
        self._worker_identity = ""
        self._state = SessionState.OPEN
        self._failure: SessionFailedError | None = None

    @property
    def session_id(self) -> str:
        """Id of the session within the run."""
        return self._session_id

    @property
    def task_queue(self) -> str:
        """The worker-specific queue activities of the session are scheduled on."""
        return self._task_queue

    @property
    def worker_identity(self) -> str:
        """Identity of the worker that accepted the session."""
        return self._worker_identity

    @property
    def state(self) -> SessionState:
        """OPEN, CLOSED or FAILED."""
        return self._state

    @property
    def failure(self) -> SessionFailedError | None:
        """Why the session failed, once FAILED."""
        return self._failure

    @property
    def recreate_token(self) -> bytes:
        """Opaque token for ``workflow.recreate_session``: a new session on the same worker."""
        return json.dumps({"task_queue": self._task_queue, "worker_identity": self._worker_identity}).encode()

    def __repr__(self) -> str:
        return (
            f"SessionInfo(session_id={self._session_id!r}, state={self._state.value}, "
            f"task_queue={self._task_queue!r})"
        )


_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar("cadenza_session", default=None)


def active_session() -> Session | None:
    """The session whose ``async with`` block the running workflow code is in, if any."""
    return _current.get()


class Session:
    """``async with workflow.create_session(...) as info:`` — see the module docstring."""

    def __init__(
        self,
        instance: WorkflowInstance,
        *,
        creation_queue: str,
        execution_timeout: timedelta,
        heartbeat_timeout: timedelta,
        creation_timeout: timedelta | None,
    ) -> None:
        self._instance = instance
        self._creation_queue = creation_queue
        self._execution_timeout = execution_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._creation_timeout = creation_timeout
        self.info = SessionInfo(instance.sessions.next_id())
        self._handle: ActivityHandle[Any] | None = None
        self._token: contextvars.Token[Session | None] | None = None
        self._tracked: list[ActivityState] = []

    async def __aenter__(self) -> SessionInfo:
        if self._handle is not None:
            raise RuntimeError("a session can be entered only once")
        instance = self._instance
        sessions = instance.sessions
        session_id = self.info.session_id
        created: asyncio.Future[tuple[str, str]] = instance.loop.create_future()
        sessions.expect(session_id, created)
        attributes: dict[str, Any] = {
            "activity_id": None,
            "activity_type": SESSION_CREATION_ACTIVITY,
            "task_queue": self._creation_queue,
            "header": {},
            "input": instance.converter.to_payloads([session_id]),
            "schedule_to_close_timeout_ms": 0,
            "schedule_to_start_timeout_ms": timedelta_to_ms(self._creation_timeout, "creation_timeout"),
            "start_to_close_timeout_ms": timedelta_to_ms(self._execution_timeout, "execution_timeout"),
            "heartbeat_timeout_ms": timedelta_to_ms(self._heartbeat_timeout, "heartbeat_timeout"),
            # One attempt: a retry could land on another worker, which is not this session.
            "retry_policy": RetryPolicy(maximum_attempts=1).to_dict(),
        }
        handle = instance.start_activity(
            SESSION_CREATION_ACTIVITY, attributes, None, f"__session-{session_id}"
        )
        self._handle = handle
        try:
            await asyncio.wait([created, handle], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            sessions.forget(session_id)
            handle.cancel()
            raise
        sessions.forget(session_id)
        if not created.done():
            error = handle.exception() if not handle.cancelled() else None
            self.info._state = SessionState.FAILED
            raise SessionFailedError(
                f"Session {session_id} could not be created on {self._creation_queue!r}: {_describe(error)}",
                session_id=session_id,
            ) from error
        self.info._task_queue, self.info._worker_identity = created.result()
        handle.add_done_callback(self._on_creation_done)
        self._token = _current.set(self)
        return self.info

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if self.info.state is SessionState.OPEN:
            self.info._state = SessionState.CLOSED
            if self._handle is not None:
                # Cancelling the creation activity is what tells the worker to free the slot.
                self._handle.cancel()

    def prepare(self, attributes: dict[str, Any], explicit_queue: bool) -> None:
        """Route an activity started in the session to its worker (or refuse it if failed)."""
        info = self.info
        if info.state is SessionState.FAILED:
            failure = info.failure
            raise SessionFailedError(
                f"Session {info.session_id} has failed ({failure}); activities cannot be started in it",
                session_id=info.session_id,
            )
        if not explicit_queue:
            attributes["task_queue"] = info.task_queue

    def track(self, state: ActivityState) -> None:
        """Remember an activity of the session, to fail it fast if the session fails."""
        self._tracked = [s for s in self._tracked if not s.done]
        self._tracked.append(state)

    def _on_creation_done(self, handle: asyncio.Task[Any]) -> None:
        # Retrieved in every case: a session completed by cancelling it is not an unhandled error.
        cause = handle.exception() if not handle.cancelled() else None
        info = self.info
        if info.state is not SessionState.OPEN:
            return
        failure = SessionFailedError(
            f"Session {info.session_id} on worker {info.worker_identity!r} failed: {_describe(cause)}",
            session_id=info.session_id,
        )
        failure.__cause__ = cause
        info._state = SessionState.FAILED
        info._failure = failure
        activities = self._instance.activities
        for state in self._tracked:
            if not state.done:
                activities.cancel(state, cause=failure)
        self._tracked.clear()


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "the creation activity ended"
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{error} ({type(cause).__name__}: {cause})"
    return str(error)


class Sessions:
    """The sessions of one run: ids, and the signal through which workers accept them."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._seq = 0
        self._waiting: dict[str, asyncio.Future[tuple[str, str]]] = {}
        self._installed = False

    def next_id(self) -> str:
        """A deterministic id for a new session."""
        self._seq += 1
        return str(self._seq)

    def expect(self, session_id: str, created: asyncio.Future[tuple[str, str]]) -> None:
        """Resolve ``created`` with (queue, worker identity) when the worker's signal arrives."""
        if not self._installed:
            self._installed = True
            self._instance.set_signal_handler(SESSION_CREATED_SIGNAL, self._on_created)
        self._waiting[session_id] = created

    def forget(self, session_id: str) -> None:
        """Stop waiting for session ``session_id``'s signal."""
        self._waiting.pop(session_id, None)

    def _on_created(self, session_id: str, task_queue: str, worker_identity: str) -> None:
        # A late signal (the session already failed or was abandoned) is ignored.
        future = self._waiting.get(session_id)
        if future is not None and not future.done():
            future.set_result((task_queue, worker_identity))


def parse_recreate_token(token: bytes | str) -> tuple[str, str]:
    """(queue, worker identity) from a ``recreate_token``; ``ValueError`` if it is not one."""
    try:
        data = json.loads(token)
        return str(data["task_queue"]), str(data["worker_identity"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not a session recreate token: {token!r}") from err


def _instance(what: str) -> WorkflowInstance:
    # Imported here: the instance module imports this one.
    from cadenza.sdk._runtime.instance import current_instance

    return current_instance(what)


# -- what workflow code calls (re-exported by ``cadenza.sdk.workflow``) -----------------------------


def create_session(
    *,
    task_queue: str | None = None,
    execution_timeout: timedelta = timedelta(hours=24),
    heartbeat_timeout: timedelta = timedelta(seconds=20),
    creation_timeout: timedelta | None = None,
) -> AbstractAsyncContextManager[SessionInfo]:
    """A worker session: ``async with workflow.create_session() as session:`` runs every activity
    started inside the block (without an explicit ``task_queue``) on the one worker that accepted it.

    A worker of ``task_queue`` (default: the workflow's) with ``max_concurrent_sessions`` set accepts
    it. The session fails (``session.state == SessionState.FAILED``; activities in it raise
    :class:`SessionFailedError`) when that worker stops heartbeating for ``heartbeat_timeout`` or
    ``execution_timeout`` passes. ``creation_timeout`` bounds the wait for a worker to accept it
    (default: until ``execution_timeout``); creation failures raise :class:`SessionFailedError`.
    """
    instance = _instance("workflow.create_session()")
    instance.check_can_command("create a session")
    return Session(
        instance,
        creation_queue=session_creation_queue(task_queue or instance.info.task_queue),
        execution_timeout=execution_timeout,
        heartbeat_timeout=heartbeat_timeout,
        creation_timeout=creation_timeout,
    )


def recreate_session(
    recreate_token: bytes,
    *,
    execution_timeout: timedelta = timedelta(hours=24),
    heartbeat_timeout: timedelta = timedelta(seconds=20),
    creation_timeout: timedelta | None = None,
) -> AbstractAsyncContextManager[SessionInfo]:
    """A new session on the worker of an earlier one, named by its ``SessionInfo.recreate_token``
    (which a child workflow can receive as an argument). Options as for :func:`create_session`."""
    instance = _instance("workflow.recreate_session()")
    instance.check_can_command("recreate a session")
    queue, _ = parse_recreate_token(recreate_token)
    return Session(
        instance,
        creation_queue=queue,
        execution_timeout=execution_timeout,
        heartbeat_timeout=heartbeat_timeout,
        creation_timeout=creation_timeout,
    )


def current_session() -> SessionInfo | None:
    """The session whose ``async with`` block the calling code runs in, if any."""
    _instance("workflow.current_session()")
    session = active_session()
    return session.info if session is not None else None
