"""Activities: the decorator users put on functions, and what those functions can call while running.

Users write ``from cadenza import activity``::

    @activity.defn
    async def transcode(video: str, fmt: str) -> str:
        activity.heartbeat("half way")
        ...

The worker builds an :class:`ActivityContext` for each attempt and runs the function inside
:func:`_activity_context` (for sync functions, inside the thread that runs them), so
:func:`info`, :func:`heartbeat` and :func:`is_cancelled` find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

__all__ = [
    "ActivityContext",
    "ActivityDefinition",
    "ActivityInfo",
    "CompleteAsyncError",
    "defn",
    "heartbeat",
    "in_activity",
    "info",
    "is_cancelled",
    "is_worker_shutdown",
    "logger",
    "payload_converter",
    "raise_complete_async",
    "wait_for_cancelled",
    "wait_for_cancelled_sync",
]

CallableT = TypeVar("CallableT", bound=Callable[..., Any])

_DEFN_ATTR = "__cadenza_activity_definition"
DYNAMIC_ACTIVITY = "__cadenza_dynamic_activity"
"""The name a dynamic activity is registered under in a worker."""


def dynamic_arguments(converter: Any, payloads: list[dict[str, Any]] | None) -> list[Any]:
    """The one argument a dynamic activity takes: its payloads as ``RawValue``s."""
    from cadenza.sdk.converter import RawValue

    return [converter.from_payloads(payloads, [RawValue] * len(payloads or []))]


@dataclass(frozen=True)
class ActivityDefinition:
    """What ``@activity.defn`` records about a function."""

    name: str
    """Registered activity type name."""
    fn: Callable[..., Any]
    """The user function."""
    is_async: bool
    """True for ``async def`` functions (run on the worker's loop); sync ones run in threads."""
    param_types: Sequence[Any]
    """Type hints of the positional parameters (``Any`` where missing), to decode arguments."""
    return_type: Any
    """Return type hint, or None when missing."""
    dynamic: bool = False
    """``@activity.defn(dynamic=True)``: runs every activity type its worker has no function for,
    with one argument, the arguments as a sequence of ``cadenza.common.RawValue``."""

    @staticmethod
    def from_callable(fn: Callable[..., Any]) -> ActivityDefinition:
        """The definition attached by ``@activity.defn``; ``ValueError`` if ``fn`` is not decorated."""
        defn = getattr(fn, _DEFN_ATTR, None)
        if not isinstance(defn, ActivityDefinition) and isinstance(fn, functools.partial):
            # ``functools.partial(decorated, dependency)``: the activity the partial wraps, called
            # through the partial, with the parameters the partial leaves open.
            inner = ActivityDefinition.from_callable(fn.func)
            return dataclasses.replace(inner, fn=fn, param_types=_param_and_return_hints(fn)[0])
        if not isinstance(defn, ActivityDefinition):
            name = getattr(fn, "__qualname__", repr(fn))
            raise ValueError(f"Activity {name} is not decorated with @activity.defn")
        if isinstance(defn.fn, type) and isinstance(fn, defn.fn):
            # An instance of an ``@activity.defn`` class with ``__call__`` (temporalio's callable
            # activity classes): the instance is what runs.
            return dataclasses.replace(defn, fn=fn)
        if inspect.ismethod(fn) and fn.__func__ is defn.fn:
            # ``instance.method``: the decorator saw the plain function, so the definition it
            # recorded would be called without ``self``. Call the bound method instead, and take
            # the parameters from it (its signature has no ``self``, whatever that is named).
            return dataclasses.replace(defn, fn=fn, param_types=_param_and_return_hints(fn)[0])
        return defn

    @staticmethod
    def _build(fn: Callable[..., Any], name: str | None, dynamic: bool = False) -> ActivityDefinition:
        if not callable(fn):
            raise TypeError(f"@activity.defn needs a function, got {fn!r}")
        if dynamic:
            if name:
                raise ValueError("a dynamic activity has no name: it runs every unregistered type")
            name = DYNAMIC_ACTIVITY
        fn_name = getattr(fn, "__name__", None)
        if name is None and (not fn_name or fn_name == "<lambda>"):
            raise ValueError("@activity.defn on a lambda needs an explicit name= (as on a functools.partial)")
        param_types, return_type = _param_and_return_hints(fn)
        # Callable objects count too: their ``__call__`` decides (for a class, its instances').
        call = fn.__call__ if isinstance(fn, type) else type(fn).__call__
        is_async = inspect.iscoroutinefunction(fn) or (
            not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)
        )
        return ActivityDefinition(
            name=name or str(fn_name),
            fn=fn,
            is_async=is_async,
            param_types=param_types,
            return_type=return_type,
            dynamic=dynamic,
        )


def _param_and_return_hints(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    """Positional parameter hints and the return hint; unresolvable hints become ``Any``.

    For a ``functools.partial`` the hints come from the function it wraps and the parameters from
    what it leaves open; for a callable object, from its ``__call__``."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):
        target = fn = target.__call__  # a callable activity class: its instances' ``__call__``
    elif not inspect.isroutine(target) and callable(target):
        target = type(target).__call__
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        # Forward references to names that don't exist at import time: decode without shaping.
        hints = {}
    params: list[Any] = []
    for param in inspect.signature(fn).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_KEYWORD, param.KEYWORD_ONLY):
            continue
        if param.kind == param.VAR_POSITIONAL:
            break
        params.append(hints.get(param.name, Any))
    return params, hints.get("return")


@overload
def defn(fn: CallableT) -> CallableT: ...


@overload
def defn(*, name: str | None = None, dynamic: bool = False) -> Callable[[CallableT], CallableT]: ...


def defn(
    fn: CallableT | None = None, *, name: str | None = None, dynamic: bool = False
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a sync or async function as an activity, registered as ``name`` (default: its name).

    ``dynamic=True`` (no name): the activity runs every activity type its worker has no function
    for; it takes one argument, the arguments as a sequence of ``cadenza.common.RawValue``
    (``activity.info().activity_type`` names the type it runs).
    """

    def decorate(f: CallableT) -> CallableT:
        setattr(f, _DEFN_ATTR, ActivityDefinition._build(f, name, dynamic))
        return f

    return decorate(fn) if fn is not None else decorate


@dataclass(frozen=True)
class ActivityInfo:
    """Facts about the running activity attempt."""

    activity_id: str
    """Id of the activity within its workflow run."""
    activity_type: str
    """Registered activity name."""
    attempt: int
    """1 for the first attempt."""
    task_queue: str
    """Task queue the activity was polled from."""
    workflow_id: str
    """Id of the workflow that scheduled it."""
    run_id: str
    """Run id of the workflow that scheduled it."""
    workflow_type: str
    """Type of the workflow that scheduled it."""
    namespace: str
    """Namespace of the workflow."""
    heartbeat_details: Sequence[Any]
    """Details of the last heartbeat of a previous attempt (decoded), to resume from."""
    heartbeat_timeout: timedelta | None
    """Heartbeat timeout, if set."""
    scheduled_time: datetime
    """When the activity was scheduled (this attempt)."""
    started_time: datetime
    """When this attempt started."""
    task_token: bytes
    """Opaque token identifying this attempt to the engine."""
    schedule_to_close_timeout: timedelta | None = None
    """Schedule-to-close timeout, if set."""
    start_to_close_timeout: timedelta | None = None
    """Start-to-close timeout, if set."""
    is_local: bool = False
    """True for a local activity (run by the workflow's worker, without the task queues; heartbeats
    are accepted and ignored)."""


@dataclass
class ActivityContext:
    """Everything the activity functions of this module reach; built by the worker per attempt."""

    info: ActivityInfo
    """Facts about the attempt."""
    heartbeat: Callable[[Sequence[Any]], None]
    """Records a heartbeat with these details; must be thread-safe (sync activities use threads)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set by the worker when cancellation is requested (or the heartbeat found the activity gone)."""
    worker_shutdown: threading.Event = field(default_factory=threading.Event)
    """Set by the worker when it starts shutting down (before its graceful timeout cancels)."""
    converter: Any = None
    """The worker's ``DataConverter`` (``payload_converter()``); None: the default one."""
    outbound: Any = None
    """The attempt's ``ActivityOutboundInterceptor`` chain when the worker has interceptors:
    ``info()`` and ``heartbeat()`` go through it."""


_current: contextvars.ContextVar[ActivityContext | None] = contextvars.ContextVar(
    "cadenza_activity_context", default=None
)


def _set_context(ctx: ActivityContext | None) -> contextvars.Token[ActivityContext | None]:
    """Install ``ctx`` as the current activity context (for the worker); returns a reset token."""
    return _current.set(ctx)


@contextlib.contextmanager
def _activity_context(ctx: ActivityContext) -> Iterator[ActivityContext]:
    """Run a block with ``ctx`` as the current activity context (for the worker).

    Context variables do not cross into executor threads on their own: for a sync activity enter
    this inside the thread (or submit ``contextvars.copy_context().run``).
    """
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def _context() -> ActivityContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("Not in an activity: activity functions can only be called while one runs")
    return ctx


def in_activity() -> bool:
    """True while an activity function runs in this context."""
    return _current.get() is not None


def payload_converter() -> Any:
    """The converter this activity's payloads go through (``to_payloads`` / ``from_payloads``; its
    worker's data converter), e.g. to read a header an interceptor put on the activity."""
    from cadenza.sdk.converter import default_converter

    return _context().converter or default_converter()


def info() -> ActivityInfo:
    """Facts about the running activity attempt."""
    ctx = _context()
    if ctx.outbound is not None:
        return ctx.outbound.info()  # type: ignore[no-any-return]
    return ctx.info


def heartbeat(*details: Any) -> None:
    """Report progress; ``details`` are handed to the next attempt as ``info().heartbeat_details``.

    In a sync activity this raises :class:`~cadenza.exceptions.CanceledError` once cancellation
    was requested (by the workflow, or by the worker shutting down), as temporalio's does: a thread
    cannot be interrupted, so its heartbeats are where it learns of it. Letting the error propagate
    reports the activity cancelled (or, at a worker's shutdown, the attempt failed, to be retried).
    Async activities get ``asyncio.CancelledError`` instead."""
    ctx = _context()
    if ctx.outbound is not None:
        ctx.outbound.heartbeat(*details)
    else:
        ctx.heartbeat(details)


def is_cancelled() -> bool:
    """True once cancellation of this activity has been requested."""
    return _context().cancelled.is_set()


def is_worker_shutdown() -> bool:
    """True once the worker running this activity has begun to shut down. A cancellation that
    follows comes from the shutdown (after the worker's ``graceful_shutdown_timeout``), not from the
    workflow."""
    return _context().worker_shutdown.is_set()


async def wait_for_cancelled(poll_interval: float = 0.05) -> None:
    """Wait until cancellation is requested.

    The flag is a ``threading.Event`` (sync activities share it), which an event loop cannot await,
    so this polls; ``poll_interval`` bounds the added latency.
    """
    ctx = _context()
    while not ctx.cancelled.is_set():
        await asyncio.sleep(poll_interval)


def wait_for_cancelled_sync(timeout: float | None = None) -> bool:
    """Block (in a sync activity) until cancellation is requested or ``timeout`` seconds pass."""
    return _context().cancelled.wait(timeout)


class CompleteAsyncError(BaseException):
    """Raised by :func:`raise_complete_async`: the function is done, the activity is not. A
    ``BaseException`` so that ``except Exception`` in the activity does not swallow it."""


def raise_complete_async() -> typing.NoReturn:
    """End the activity function without completing the activity: something else completes it
    later through ``client.get_async_activity_handle(task_token=info().task_token)`` (or by
    workflow id and activity id) with ``complete``, ``fail`` or ``report_cancellation``. Until then
    its timeouts run as usual; heartbeat through the handle."""
    _context()
    raise CompleteAsyncError()


class _ActivityLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds the running activity's identity to records (as fields and to the message)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        ctx = _current.get()
        if ctx is not None:
            i = ctx.info
            details = {
                "activity_id": i.activity_id,
                "activity_type": i.activity_type,
                "attempt": i.attempt,
                "namespace": i.namespace,
                "task_queue": i.task_queue,
                "workflow_id": i.workflow_id,
                "workflow_run_id": i.run_id,
                "workflow_type": i.workflow_type,
            }
            kwargs["extra"] = {**details, "activity_info": details, **(kwargs.get("extra") or {})}
            msg = f"{msg} ({details})"
        return msg, kwargs


logger = _ActivityLoggerAdapter(logging.getLogger("cadenza.activity"), None)
"""Logger for activity code: adds the activity's id, type, attempt and workflow to each record."""
