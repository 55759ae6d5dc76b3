"""Workflows: the decorators users put on classes, and what workflow code can call.

Users write ``from cadenza import workflow``::

    @workflow.defn
    class Greeting:
        @workflow.run
        async def run(self, name: str) -> str:
            return await workflow.execute_activity(
                greet, name, start_to_close_timeout=timedelta(seconds=10)
            )

Workflow code runs on a deterministic event loop: ``asyncio.sleep``, ``asyncio.gather``,
``asyncio.wait_for`` and ``asyncio.create_task`` work on workflow time, and every side effect goes
through an activity, a local activity or :func:`side_effect`. Code changes that would alter the
commands of running workflows go behind :func:`patched`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from random import Random
from typing import Any, TypeVar, overload

from cadenza.sdk._runtime.activities import ActivityCancellationType, ActivityHandle
from cadenza.sdk._runtime.definitions import (
    DYNAMIC,
    QueryDefinition,
    SignalDefinition,
    UpdateDefinition,
    WorkflowDefinition,
    build_workflow_definition,
    mark_init,
    mark_query,
    mark_run,
    mark_signal,
    mark_update,
)
from cadenza.sdk._runtime.helpers import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    HandlerUnfinishedPolicy,
    get_last_completion_result,
    get_last_failure,
    has_last_completion_result,
    memo,
    memo_value,
    payload_converter,
    wait,
)
from cadenza.sdk._runtime.info import ParentInfo, WorkflowInfo
from cadenza.sdk._runtime.instance import WorkflowInstance, current_instance
from cadenza.sdk._runtime.instance import in_workflow as _in_workflow
from cadenza.sdk._runtime.local_activities import execute_local_activity
from cadenza.sdk._runtime.markers import deprecate_patch, patched, side_effect
from cadenza.sdk._runtime.sessions import (
    SessionInfo,
    SessionState,
    create_session,
    current_session,
    recreate_session,
)
from cadenza.sdk.activity import ActivityDefinition
from cadenza.sdk.common import ARG_UNSET, RetryPolicy, positional_args, timedelta_to_ms
from cadenza.sdk.search_attributes import SearchAttributeUpdate, TypedSearchAttributes

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ActivityCancellationType",
    "ActivityHandle",
    "ChildWorkflowCancellationType",
    "ChildWorkflowHandle",
    "ExternalWorkflowHandle",
    "HandlerUnfinishedPolicy",
    "ParentClosePolicy",
    "ParentInfo",
    "QueryDefinition",
    "SessionInfo",
    "SessionState",
    "SignalDefinition",
    "UpdateDefinition",
    "WorkflowDefinition",
    "WorkflowInfo",
    "all_handlers_finished",
    "continue_as_new",
    "create_session",
    "current_session",
    "defn",
    "deprecate_patch",
    "execute_activity",
    "execute_activity_class",
    "execute_activity_method",
    "execute_child_workflow",
    "execute_local_activity",
    "execute_local_activity_class",
    "execute_local_activity_method",
    "get_dynamic_query_handler",
    "get_dynamic_signal_handler",
    "get_dynamic_update_handler",
    "get_external_workflow_handle",
    "get_external_workflow_handle_for",
    "get_last_completion_result",
    "get_last_failure",
    "get_query_handler",
    "get_signal_handler",
    "get_update_handler",
    "has_last_completion_result",
    "in_workflow",
    "info",
    "init",
    "instance",
    "logger",
    "memo",
    "memo_value",
    "now",
    "patched",
    "payload_converter",
    "query",
    "random",
    "recreate_session",
    "run",
    "set_dynamic_query_handler",
    "set_dynamic_signal_handler",
    "set_dynamic_update_handler",
    "set_query_handler",
    "set_signal_handler",
    "set_update_handler",
    "side_effect",
    "signal",
    "sleep",
    "start_activity",
    "start_activity_class",
    "start_activity_method",
    "start_child_workflow",
    "start_local_activity",
    "start_local_activity_class",
    "start_local_activity_method",
    "time",
    "unsafe",
    "update",
    "upsert_search_attributes",
    "uuid4",
    "wait",
    "wait_condition",
]

ClassT = TypeVar("ClassT", bound=type)
CallableT = TypeVar("CallableT", bound=Callable[..., Any])
ReturnT = TypeVar("ReturnT")


# -- decorators ------------------------------------------------------------------------------------


@overload
def defn(cls: ClassT) -> ClassT: ...


@overload
def defn(
    *,
    name: str | None = None,
    sandboxed: bool = True,
    failure_exception_types: Sequence[type[BaseException]] = (),
    dynamic: bool = False,
) -> Callable[[ClassT], ClassT]: ...


def defn(
    cls: ClassT | None = None,
    *,
    name: str | None = None,
    sandboxed: bool = True,
    failure_exception_types: Sequence[type[BaseException]] = (),
    dynamic: bool = False,
) -> ClassT | Callable[[ClassT], ClassT]:
    """Mark a class as a workflow named ``name`` (default: the class name).

    Validates the class (one async ``@workflow.run``, unique signal and query names, sync queries,
    an argument-free ``__init__``) and raises one ``ValueError`` listing every problem.
    ``sandboxed`` is accepted for temporalio's code and ignored: workflows run without a sandbox
    (determinism comes from the workflow event loop and replay checks).

    An exception escaping the workflow code fails the run if it is a ``FailureError`` (such as
    ``ApplicationError``), the builtin ``TimeoutError``, or an instance of a type in
    ``failure_exception_types`` (or the worker's ``workflow_failure_exception_types``); any other
    fails the workflow task, which is retried, so deploying a fix resumes the run.

    ``dynamic=True`` (no name) makes the workflow run every workflow type that no other workflow of
    its worker has; its run method takes one argument, the arguments as a sequence of
    ``cadenza.common.RawValue`` (decode them with ``workflow.payload_converter()``), and
    ``workflow.info().workflow_type`` names the type it runs.
    """
    del sandboxed

    def decorate(c: ClassT) -> ClassT:
        build_workflow_definition(c, name, failure_exception_types, dynamic=dynamic)
        return c

    return decorate(cls) if cls is not None else decorate


def init(fn: CallableT) -> CallableT:
    """Mark ``__init__`` as taking the same arguments as the ``@workflow.run`` method: the workflow
    object is then built with the run's arguments (before any signal or query reaches it)."""
    mark_init(fn)
    return fn


def run(fn: CallableT) -> CallableT:
    """Mark the workflow's entry point: an ``async def`` method whose return value is the result."""
    mark_run(fn)
    return fn


@overload
def signal(fn: CallableT) -> CallableT: ...


@overload
def signal(
    *,
    name: str | None = None,
    unfinished_policy: HandlerUnfinishedPolicy = HandlerUnfinishedPolicy.WARN_AND_ABANDON,
    description: str | None = None,
    dynamic: bool = False,
) -> Callable[[CallableT], CallableT]: ...


def signal(
    fn: CallableT | None = None,
    *,
    name: str | None = None,
    unfinished_policy: HandlerUnfinishedPolicy = HandlerUnfinishedPolicy.WARN_AND_ABANDON,
    description: str | None = None,
    dynamic: bool = False,
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a (sync or async) method as the handler of signal ``name`` (default: the method name).

    ``dynamic=True`` (no name): the handler of every signal without one of its own, called with the
    signal's name and its arguments as a sequence of ``cadenza.common.RawValue``.
    ``unfinished_policy`` and ``description`` are accepted for temporalio's code and change nothing.
    """
    del unfinished_policy, description

    def decorate(f: CallableT) -> CallableT:
        mark_signal(f, name, dynamic)
        return f

    return decorate(fn) if fn is not None else decorate


@overload
def query(fn: CallableT) -> CallableT: ...


@overload
def query(
    *, name: str | None = None, description: str | None = None, dynamic: bool = False
) -> Callable[[CallableT], CallableT]: ...


def query(
    fn: CallableT | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    dynamic: bool = False,
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a method as the handler of query ``name`` (default: the method name).

    Queries read state; they cannot wait, schedule activities or start timers. An ``async def``
    handler (deprecated in temporalio) is accepted as long as it never waits. ``dynamic=True`` (no
    name): the handler of every query without one of its own, called with the query's name and its
    arguments as a sequence of ``cadenza.common.RawValue``.
    """
    del description

    def decorate(f: CallableT) -> CallableT:
        mark_query(f, name, dynamic)
        return f

    return decorate(fn) if fn is not None else decorate


@overload
def update(fn: CallableT) -> CallableT: ...


@overload
def update(
    *,
    name: str | None = None,
    unfinished_policy: HandlerUnfinishedPolicy = HandlerUnfinishedPolicy.WARN_AND_ABANDON,
    description: str | None = None,
) -> Callable[[CallableT], CallableT]: ...


def update(
    fn: CallableT | None = None,
    *,
    name: str | None = None,
    unfinished_policy: HandlerUnfinishedPolicy = HandlerUnfinishedPolicy.WARN_AND_ABANDON,
    description: str | None = None,
) -> CallableT | Callable[[CallableT], CallableT]:
    """Mark a (sync or async) method as the handler of update ``name`` (default: the method name).

    Its return value is the update's result; an ``ApplicationError`` it raises fails the update
    (not the workflow). ``@my_update.validator`` marks a sync method taking the same arguments that
    runs first: raising there rejects the update, and nothing of it is recorded in history.
    ``unfinished_policy`` and ``description`` are accepted for temporalio's code and change nothing.
    """
    del unfinished_policy, description

    def decorate(f: CallableT) -> CallableT:
        mark_update(f, name)
        return f

    return decorate(fn) if fn is not None else decorate


# -- inside workflows ------------------------------------------------------------------------------


def in_workflow() -> bool:
    """True while workflow code (or one of its query handlers) runs."""
    return _in_workflow()


def instance() -> Any:
    """The running workflow's object: the instance of its ``@workflow.defn`` class that the run
    method is called on (temporalio's name)."""
    return current_instance("workflow.instance()").workflow_object()


def info() -> WorkflowInfo:
    """Facts about the running workflow (through the run's outbound interceptors, if any)."""
    inst = current_instance("workflow.info()")
    outbound = inst._outbound
    return inst.info if outbound is None else outbound.info()  # type: ignore[no-any-return]


def now() -> datetime:
    """Workflow time as an aware UTC datetime: the start of the workflow task being processed."""
    return current_instance("workflow.now()").now()


def time() -> float:
    """Workflow time in seconds since the epoch (what the workflow's event loop uses)."""
    return current_instance("workflow.time()").loop_time()


def random() -> Random:
    """A ``random.Random`` seeded from the run id: the same draws on every replay."""
    return current_instance("workflow.random()").random


def uuid4() -> uuid.UUID:
    """A version-4 UUID drawn from :func:`random`, so replays produce the same one."""
    return uuid.UUID(int=current_instance("workflow.uuid4()").random.getrandbits(128), version=4)


async def sleep(duration: float | timedelta) -> None:
    """Sleep for ``duration`` of workflow time (a durable timer; zero needs none)."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    if seconds < 0:
        raise ValueError(f"sleep duration must not be negative, got {duration!r}")
    await asyncio.sleep(seconds)


async def wait_condition(fn: Callable[[], bool], *, timeout: float | timedelta | None = None) -> None:
    """Wait until ``fn()`` returns true, checked whenever workflow code has nothing else to run.

    After ``timeout`` the builtin ``TimeoutError`` is raised (what ``asyncio.wait_for`` raises).
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds is not None and seconds < 0:
        raise ValueError(f"timeout must not be negative, got {timeout!r}")
    await current_instance("workflow.wait_condition()").wait_condition(fn, seconds)


def set_signal_handler(name: str, handler: Callable[..., Any] | None) -> None:
    """Handle signal ``name`` with ``handler`` (None removes it); buffered signals are delivered."""
    current_instance("workflow.set_signal_handler()").set_signal_handler(name, handler)


def set_update_handler(
    name: str, handler: Callable[..., Any] | None, *, validator: Callable[..., Any] | None = None
) -> None:
    """Handle update ``name`` with ``handler`` (None removes it), validated by ``validator``."""
    current_instance("workflow.set_update_handler()").set_update_handler(name, handler, validator)


def all_handlers_finished() -> bool:
    """True when no update handler and no async signal handler is still running (wait for it
    with ``await workflow.wait_condition(workflow.all_handlers_finished)`` before returning)."""
    return current_instance("workflow.all_handlers_finished()").all_handlers_finished()


def set_query_handler(name: str, handler: Callable[..., Any] | None) -> None:
    """Answer query ``name`` with ``handler`` (None removes it)."""
    current_instance("workflow.set_query_handler()").set_query_handler(name, handler)


def set_dynamic_signal_handler(handler: Callable[..., Any] | None) -> None:
    """Handle every signal without a handler of its own (temporalio's name; the handler takes
    the signal's name and its arguments as ``Sequence[RawValue]``)."""
    current_instance("workflow.set_dynamic_signal_handler()").set_signal_handler(DYNAMIC, handler)


def set_dynamic_query_handler(handler: Callable[..., Any] | None) -> None:
    """Answer every query without a handler of its own (temporalio's name)."""
    current_instance("workflow.set_dynamic_query_handler()").set_query_handler(DYNAMIC, handler)


def set_dynamic_update_handler(
    handler: Callable[..., Any] | None, *, validator: Callable[..., Any] | None = None
) -> None:
    """Handle every update without a handler of its own (temporalio's name)."""
    current_instance("workflow.set_dynamic_update_handler()").set_update_handler(DYNAMIC, handler, validator)


def get_signal_handler(name: str) -> Callable[..., Any] | None:
    """The handler of signal ``name`` (a method bound to the workflow object, or the function set
    at run time), or None (temporalio's name)."""
    return current_instance("workflow.get_signal_handler()").get_handler("signal", name)


def get_query_handler(name: str) -> Callable[..., Any] | None:
    """The handler of query ``name``, or None (temporalio's name)."""
    return current_instance("workflow.get_query_handler()").get_handler("query", name)


def get_update_handler(name: str) -> Callable[..., Any] | None:
    """The handler of update ``name``, or None (temporalio's name)."""
    return current_instance("workflow.get_update_handler()").get_handler("update", name)


def get_dynamic_signal_handler() -> Callable[..., Any] | None:
    return current_instance("workflow.get_dynamic_signal_handler()").get_handler("signal", DYNAMIC)


def get_dynamic_query_handler() -> Callable[..., Any] | None:
    return current_instance("workflow.get_dynamic_query_handler()").get_handler("query", DYNAMIC)


def get_dynamic_update_handler() -> Callable[..., Any] | None:
    return current_instance("workflow.get_dynamic_update_handler()").get_handler("update", DYNAMIC)


def _activity_request(
    instance: WorkflowInstance,
    activity: Callable[..., Any] | str,
    args: tuple[Any, ...],
    *,
    task_queue: str | None,
    schedule_to_close_timeout: timedelta | None,
    schedule_to_start_timeout: timedelta | None,
    start_to_close_timeout: timedelta | None,
    heartbeat_timeout: timedelta | None,
    retry_policy: RetryPolicy | None,
    result_type: Any,
) -> tuple[str, dict[str, Any], Any]:
    """Validate options and encode arguments: everything that can fail does so before a command exists."""
    if isinstance(activity, str):
        activity_type = activity
    else:
        activity_defn = ActivityDefinition.from_callable(activity)
        activity_type = activity_defn.name
        if result_type is None:
            result_type = activity_defn.return_type
    if schedule_to_close_timeout is None and start_to_close_timeout is None:
        raise ValueError(
            f"Activity {activity_type!r} needs schedule_to_close_timeout or start_to_close_timeout"
        )
    attributes: dict[str, Any] = {
        "activity_id": None,
        "activity_type": activity_type,
        "task_queue": task_queue or instance.info.task_queue,
        "header": {},
        "input": instance.converter.to_payloads(args),
        "schedule_to_close_timeout_ms": timedelta_to_ms(
            schedule_to_close_timeout, "schedule_to_close_timeout"
        ),
        "schedule_to_start_timeout_ms": timedelta_to_ms(
            schedule_to_start_timeout, "schedule_to_start_timeout"
        ),
        "start_to_close_timeout_ms": timedelta_to_ms(start_to_close_timeout, "start_to_close_timeout"),
        "heartbeat_timeout_ms": timedelta_to_ms(heartbeat_timeout, "heartbeat_timeout"),
        "retry_policy": retry_policy.to_dict() if retry_policy is not None else None,
        # The arguments as values, for the outbound interceptors (``StartActivityInput.args``);
        # taken out before the command is made.
        "_args": args,
    }
    return activity_type, attributes, result_type


@overload
async def execute_activity(
    activity: Callable[..., Awaitable[ReturnT]],
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ReturnT: ...


@overload
async def execute_activity(
    activity: Callable[..., ReturnT],
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ReturnT: ...


@overload
async def execute_activity(
    activity: str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> Any: ...


async def execute_activity(
    activity: Callable[..., Any] | str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> Any:
    """Run an activity and return its result; failures raise :class:`ActivityError`.

    ``activity`` is an ``@activity.defn`` function or an activity type name. One of
    ``schedule_to_close_timeout`` / ``start_to_close_timeout`` is required. ``task_queue`` defaults
    to the workflow's. ``result_type`` shapes the result (default: the function's return hint).
    ``cancellation_type`` says what cancelling it from workflow code does (see
    :class:`ActivityCancellationType`).
    """
    instance = current_instance("workflow.execute_activity()")
    activity_type, attributes, result_type = _activity_request(
        instance,
        activity,
        positional_args(arguments, args, "workflow.execute_activity()", arg),
        task_queue=task_queue,
        schedule_to_close_timeout=schedule_to_close_timeout,
        schedule_to_start_timeout=schedule_to_start_timeout,
        start_to_close_timeout=start_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        retry_policy=retry_policy,
        result_type=result_type,
    )
    return await instance.execute_activity(
        activity_type,
        attributes,
        result_type,
        activity_id,
        explicit_queue=task_queue is not None,
        cancellation_type=cancellation_type,
    )


@overload
def start_activity(
    activity: Callable[..., Awaitable[ReturnT]],
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ActivityHandle[ReturnT]: ...


@overload
def start_activity(
    activity: Callable[..., ReturnT],
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ActivityHandle[ReturnT]: ...


@overload
def start_activity(
    activity: str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ActivityHandle[Any]: ...


def start_activity(
    activity: Callable[..., Any] | str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
) -> ActivityHandle[Any]:
    """Schedule an activity now and return a handle: await it for the result, ``cancel()`` it to
    request cancellation. Options as for :func:`execute_activity`."""
    instance = current_instance("workflow.start_activity()")
    activity_type, attributes, result_type = _activity_request(
        instance,
        activity,
        positional_args(arguments, args, "workflow.start_activity()", arg),
        task_queue=task_queue,
        schedule_to_close_timeout=schedule_to_close_timeout,
        schedule_to_start_timeout=schedule_to_start_timeout,
        start_to_close_timeout=start_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        retry_policy=retry_policy,
        result_type=result_type,
    )
    return instance.start_activity(
        activity_type,
        attributes,
        result_type,
        activity_id,
        explicit_queue=task_queue is not None,
        cancellation_type=cancellation_type,
    )


execute_activity_method = execute_activity
"""temporalio's name for :func:`execute_activity` with an ``@activity.defn`` method
(``MyActivities.fetch``; the worker registers the bound method ``my_activities.fetch``)."""
start_activity_method = start_activity
"""temporalio's name for :func:`start_activity` with an ``@activity.defn`` method."""
execute_activity_class = execute_activity
"""temporalio's name for :func:`execute_activity` with a callable class whose ``__call__`` is the
activity (registered as an instance of the class)."""
start_activity_class = start_activity
"""temporalio's name for :func:`start_activity` with a callable activity class."""


def start_local_activity(
    activity: Callable[..., Any] | str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    start_to_close_timeout: timedelta | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
) -> asyncio.Task[Any]:
    """Start a local activity and return an awaitable task of its result (as temporalio's
    ``start_local_activity``); options as for :func:`execute_local_activity`."""
    call = execute_local_activity(
        activity,
        *positional_args(arguments, args, "workflow.start_local_activity()", arg),
        start_to_close_timeout=start_to_close_timeout,
        schedule_to_close_timeout=schedule_to_close_timeout,
        retry_policy=retry_policy,
        activity_id=activity_id,
        result_type=result_type,
    )
    return asyncio.get_running_loop().create_task(call)


execute_local_activity_method = execute_local_activity
"""temporalio's name for :func:`execute_local_activity` with an ``@activity.defn`` method."""
start_local_activity_method = start_local_activity
"""temporalio's name for :func:`start_local_activity` with an ``@activity.defn`` method."""
execute_local_activity_class = execute_local_activity
start_local_activity_class = start_local_activity


class unsafe:
    """temporalio's ``workflow.unsafe`` helpers. Workflows run without an import sandbox here, so
    the sandbox ones are accepted and do nothing."""

    @staticmethod
    def is_replaying() -> bool:
        """True while workflow code re-runs recorded history (its side effects already happened)."""
        return current_instance("workflow.unsafe.is_replaying()").is_replaying

    @staticmethod
    @contextlib.contextmanager
    def imports_passed_through() -> Iterator[None]:
        """A no-op context manager: there is no sandbox whose imports need passing through."""
        yield

    @staticmethod
    @contextlib.contextmanager
    def sandbox_unrestricted() -> Iterator[None]:
        """A no-op context manager (no sandbox)."""
        yield

    @staticmethod
    def is_sandbox_unrestricted() -> bool:
        """Always True: workflow code is never restricted by a sandbox."""
        return True


# -- search attributes ------------------------------------------------------------------------------


def upsert_search_attributes(
    values: Mapping[str, Any] | Sequence[SearchAttributeUpdate[Any]] | TypedSearchAttributes,
) -> None:
    """Set search attributes of this run (str, int, float, bool, aware datetime, list of str).

    ``values`` is a dict, or typed updates (``[key.value_set(v), other.value_unset()]``, as
    temporalio takes them). Recorded as an UpsertWorkflowSearchAttributes event; :func:`info`
    shows the new values at once (``info().typed_search_attributes`` in the typed spelling).
    """
    current_instance("workflow.upsert_search_attributes()").upsert_search_attributes(values)


# -- logging ---------------------------------------------------------------------------------------


class _ReplaySafeLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds the run's identity to records and stays silent while history is being replayed
    (the lines were already written when the task first ran)."""

    def isEnabledFor(self, level: int) -> bool:
        if _in_workflow() and current_instance().is_replaying:
            return False
        return self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        if _in_workflow():
            instance = current_instance()
            extra = {
                "workflow_id": instance.workflow_id,
                "run_id": instance.run_id,
                "workflow_type": instance.defn.name,
                "namespace": instance.namespace,
            }
            kwargs["extra"] = {**extra, **(kwargs.get("extra") or {})}
            msg = f"{msg} ({{'workflow_id': {instance.workflow_id!r}, 'run_id': {instance.run_id!r}}})"
        return msg, kwargs


logger = _ReplaySafeLoggerAdapter(logging.getLogger("cadenza.workflow"), None)
"""Logger for workflow code: adds workflow id and run id, and is silent during replay."""


# Child workflows, other workflows and continue-as-new (see ``_runtime.children``).
from cadenza.sdk._runtime.children import (  # noqa: E402
    ChildWorkflowCancellationType,
    ChildWorkflowHandle,
    ExternalWorkflowHandle,
    ParentClosePolicy,
    continue_as_new,
    execute_child_workflow,
    get_external_workflow_handle,
    get_external_workflow_handle_for,
    start_child_workflow,
)
