"""The deterministic event loop workflow code runs on.

One loop per workflow run. It is never "run" in the asyncio sense: the instance installs it as the
running loop, calls :meth:`WorkflowEventLoop.run_ready` until nothing is ready, and restores the
caller's loop. Its clock is workflow time (the start time of the workflow task being processed), and
``call_later`` becomes a durable timer through the :class:`TimerHost`, so ``asyncio.sleep``,
``asyncio.wait_for`` and ``asyncio.timeout`` are replayable. Everything that would reach the real
world (threads, sockets, subprocesses, signals, file descriptors) raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar, TypeVarTuple

__all__ = ["TimerHost", "WorkflowEventLoop", "WorkflowTimerHandle", "label_future", "task_stacks"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

logger = logging.getLogger(__name__)


class TimerHost(Protocol):
    """What the loop needs from its workflow instance."""

    def loop_time(self) -> float:
        """Workflow time in seconds since the epoch."""
        ...

    def start_timer(self, delay: float, handle: WorkflowTimerHandle) -> None:
        """Turn ``handle`` into a durable timer firing after ``delay`` seconds (> 0)."""
        ...

    def cancel_timer(self, handle: WorkflowTimerHandle) -> None:
        """``handle`` was cancelled before firing."""
        ...

    def on_callback_error(self, exc: BaseException) -> None:
        """A loop callback raised: a bug in workflow code."""
        ...


class WorkflowTimerHandle(asyncio.TimerHandle):
    """A ``call_later`` handle that knows its durable timer."""

    __slots__ = ("timer_id",)

    def __init__(
        self,
        when: float,
        callback: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self.timer_id: str | None = None
        """Set by the host when a START_TIMER command is created for this handle."""


class WorkflowEventLoop(asyncio.AbstractEventLoop):
    """An asyncio loop whose time is workflow time and whose timers are commands."""

    def __init__(self, host: TimerHost) -> None:
        self._host = host
        self._ready: deque[asyncio.Handle] = deque()
        self._closed = False
        self._debug = False
        self._exception_handler: Any = None
        self._task_factory: Any = None
        self._task_count = 0
        self._pending: set[asyncio.Task[Any]] = set()
        self._finished: list[asyncio.Task[Any]] | None = None

    @property
    def host(self) -> TimerHost:
        """The workflow instance this loop belongs to."""
        return self._host

    # -- the part the instance drives ----------------------------------------------------------------

    def run_ready(self) -> None:
        """Run callbacks until none is ready.

        Callbacks are run directly rather than through ``Handle._run`` so an exception escaping one
        reaches the host (it is a bug in workflow code that must fail the workflow task) instead of
        being logged by ``call_exception_handler``.
        """
        ready = self._ready
        popleft = ready.popleft
        while ready:
            handle = popleft()
            if handle._cancelled:  # type: ignore[attr-defined]
                continue
            try:
                handle._context.run(handle._callback, *handle._args)  # type: ignore[attr-defined]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._host.on_callback_error(exc)

    def has_ready(self) -> bool:
        """True when some callback waits to run."""
        return bool(self._ready)

    def fire(self, handle: asyncio.Handle) -> None:
        """Queue a fired timer's callback."""
        self._ready.append(handle)

    # -- scheduling ----------------------------------------------------------------------------------

    def time(self) -> float:
        """Workflow time, in seconds since the epoch."""
        return self._host.loop_time()

    def call_soon(
        self, callback: Callable[[*Ts], object], *args: *Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """Queue ``callback`` to run in this activation."""
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[[*Ts], object], *args: *Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """Not allowed: no other thread may touch a workflow."""
        raise RuntimeError(
            "call_soon_threadsafe is not allowed in workflow code: threads are not deterministic"
        )

    def call_later(
        self,
        delay: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` after ``delay`` seconds of workflow time, as a durable timer.

        A delay of zero (or less) needs no timer: the callback is simply queued, as
        ``asyncio.sleep(0)`` would.
        """
        now = self._host.loop_time()
        handle = WorkflowTimerHandle(now + max(delay, 0.0), callback, args, self, context)
        if delay <= 0:
            self._ready.append(handle)
        else:
            self._host.start_timer(delay, handle)
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` at workflow time ``when``."""
        return self.call_later(when - self._host.loop_time(), callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # Called by TimerHandle.cancel(): a pending durable timer must be cancelled too.
        if isinstance(handle, WorkflowTimerHandle) and handle.timer_id is not None:
            self._host.cancel_timer(handle)

    def create_future(self) -> asyncio.Future[Any]:
        """A future bound to this loop."""
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,  # type: ignore[override]
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        """A task on this loop (what ``asyncio.create_task`` and ``gather`` use).

        Unnamed tasks are numbered per run (``workflow-task-2``), not by asyncio's process-wide
        counter, so the stack-trace query names them the same way on every worker.
        """
        self._task_count += 1
        if name is None:
            name = f"workflow-task-{self._task_count}"
        if self._task_factory is not None:
            task: asyncio.Task[T] = self._task_factory(self, coro)
            task.set_name(name)
        else:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
        task._cadenza_number = self._task_count  # type: ignore[attr-defined]
        self._pending.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if self._finished is not None:
            self._finished.append(task)

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The run's tasks not finished yet (eviction cancels them)."""
        if self._finished is None:
            self._finished = []  # from now on, remember the tasks that end
        return list(self._pending)

    def finished_tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks that ended since ``pending_tasks`` was first asked (while evicting)."""
        return list(self._finished or ())

    def has_pending_tasks(self) -> bool:
        """True while a task of this run has not finished."""
        return bool(self._pending)

    def set_task_factory(self, factory: Any) -> None:
        """Set a task factory, as the asyncio API allows."""
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        """The task factory, if one was set."""
        return self._task_factory

    # -- state ---------------------------------------------------------------------------------------

    def is_running(self) -> bool:
        """Workflow code only ever runs while the instance drives the loop."""
        return True

    def is_closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Drop pending callbacks; the loop cannot be used afterwards."""
        self._closed = True
        self._ready.clear()

    def get_debug(self) -> bool:
        """Debug mode (off: asyncio's debug mode records real-time tracebacks)."""
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        """Set debug mode."""
        self._debug = enabled

    async def shutdown_asyncgens(self) -> None:
        """Nothing to do: async generators die with the run."""

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Nothing to do: there is no executor."""

    # -- errors --------------------------------------------------------------------------------------

    def get_exception_handler(self) -> Any:
        """The custom exception handler, if any."""
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        """Set a custom exception handler."""
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log what asyncio reports (e.g. a task exception never retrieved)."""
        message = context.get("message", "")
        if message.startswith("Task was destroyed but it is pending"):
            # Normal when a worker drops a cached run that is still waiting: not worth a warning.
            return
        exc = context.get("exception")
        logger.warning(
            "Workflow event loop: %s",
            message or "unhandled error",
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        )

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Report an error asyncio could not deliver (usually from garbage collection)."""
        if "_host" not in self.__dict__:
            # A disposed run's loop (``WorkflowInstance.dispose`` cleared it): one of its futures
            # failing unobserved, collected after the run ended, is nothing anyone can act on.
            logger.debug("Workflow event loop of a finished run: %s", context.get("message", ""))
            return
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)


_labels: weakref.WeakKeyDictionary[asyncio.Future[Any], str] = weakref.WeakKeyDictionary()


def label_future(future: asyncio.Future[Any], label: str) -> None:
    """Name what ``future`` stands for (``activity 'greet' (id 1)``) in the stack-trace query."""
    _labels[future] = label


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """Where every unfinished task of ``loop`` is waiting: one block per task, oldest first.

    Each block names the task and lists ``file:line in function`` for every suspended coroutine of
    its await chain, outermost first, then what the task waits on (an activity, a timer, another
    task). Frames of the SDK itself are left out: they are the same in every workflow.
    """
    # Task.get_stack() shows only a suspended coroutine's outer frame; following ``cr_await``
    # shows the whole chain. The future at its end is the task's ``_fut_waiter``.
    tasks = sorted(asyncio.all_tasks(loop), key=_creation_order)
    stacks: list[str] = []
    for task in tasks:
        lines = [f"{task.get_name()}:"]
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                break
            code = frame.f_code
            if not code.co_filename.startswith(_SDK_DIR):
                lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            lines.append(f"  waiting on {_describe_awaitable(waiter)}")
        stacks.append("\n".join(lines))
    return "\n\n".join(stacks)


_SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _creation_order(task: asyncio.Task[Any]) -> tuple[int, str]:
    name = task.get_name()
    number = getattr(task, "_cadenza_number", None)
    return (number if isinstance(number, int) else 1 << 30, name)


def _describe_awaitable(awaited: Any) -> str:
    if isinstance(awaited, asyncio.Task):
        return f"task {awaited.get_name()!r}"
    label = _labels.get(awaited) if isinstance(awaited, asyncio.Future) else None
    if label:
        return label
    if isinstance(awaited, asyncio.Future):
        # A future's repr carries its callbacks (internal functions): its class is what helps.
        return f"{type(awaited).__name__}"
    return repr(awaited)


def _disallowed(name: str, why: str) -> Callable[..., Any]:
    def method(self: WorkflowEventLoop, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{name} is not allowed in workflow code: {why}. Do this in an activity instead.")

    method.__name__ = name
    method.__doc__ = f"Not allowed in workflow code: {why}."
    return method


# Generated rather than written out: each only raises, and their asyncio signatures vary by version.
_DISALLOWED: dict[str, str] = {
    "run_forever": "the workflow instance drives the loop",
    "run_until_complete": "the workflow instance drives the loop",
    "stop": "the workflow instance drives the loop",
    "run_in_executor": "threads are not deterministic",
    "set_default_executor": "threads are not deterministic",
    "getaddrinfo": "network I/O is not deterministic",
    "getnameinfo": "network I/O is not deterministic",
    "create_connection": "network I/O is not deterministic",
    "create_server": "network I/O is not deterministic",
    "create_unix_connection": "network I/O is not deterministic",
    "create_unix_server": "network I/O is not deterministic",
    "create_datagram_endpoint": "network I/O is not deterministic",
    "connect_accepted_socket": "network I/O is not deterministic",
    "sendfile": "file I/O is not deterministic",
    "start_tls": "network I/O is not deterministic",
    "sock_recv": "network I/O is not deterministic",
    "sock_recv_into": "network I/O is not deterministic",
    "sock_recvfrom": "network I/O is not deterministic",
    "sock_recvfrom_into": "network I/O is not deterministic",
    "sock_sendall": "network I/O is not deterministic",
    "sock_sendto": "network I/O is not deterministic",
    "sock_connect": "network I/O is not deterministic",
    "sock_accept": "network I/O is not deterministic",
    "sock_sendfile": "network I/O is not deterministic",
    "connect_read_pipe": "pipes are not deterministic",
    "connect_write_pipe": "pipes are not deterministic",
    "subprocess_shell": "subprocesses are not deterministic",
    "subprocess_exec": "subprocesses are not deterministic",
    "add_reader": "file descriptors are not deterministic",
    "remove_reader": "file descriptors are not deterministic",
    "add_writer": "file descriptors are not deterministic",
    "remove_writer": "file descriptors are not deterministic",
    "add_signal_handler": "OS signals are not deterministic",
    "remove_signal_handler": "OS signals are not deterministic",
}
for _name, _why in _DISALLOWED.items():
    setattr(WorkflowEventLoop, _name, _disallowed(_name, _why))
