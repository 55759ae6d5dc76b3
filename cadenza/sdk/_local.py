"""The in-process transport: the SDK calling a server that runs in the same process.

It is the one place the SDK touches the engine. It translates errors (the server's ``ServiceError``
codes become the SDK's exceptions exactly as the network client maps status codes) and, as the
network client does, retries UNAVAILABLE with exponential backoff and jitter, a few times, for the
calls a client makes. A signal, cancel or terminate addressed by workflow id gets UNAVAILABLE when
the run it resolves to keeps changing (a workflow that continues as new very fast); nothing was
written, and trying again shortly is the remedy. A worker's polls and reports are not retried here:
its poll loops already try again, and a report that failed is left to the attempt's timeout.
RESOURCE_EXHAUSTED from the server's overload limits is retried as over gRPC: for the calls safe to
repeat, waiting at least the server's hint each time, for up to ``max_overload_wait`` seconds in all
(see ``_overload.py``).

A client call's ``rpc_timeout`` (see ``_call_options``) bounds each call made in its context: past
it the call is cancelled and raises ``RPCError`` DEADLINE_EXCEEDED, as the gRPC deadline does.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from cadenza.engine import errors as server_errors
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.schemas.service import WorkflowService
from cadenza.sdk import exceptions as sdk_errors
from cadenza.sdk._call_options import RPC_TIMEOUT, deadline_exceeded
from cadenza.sdk._overload import DEFAULT_MAX_WAIT_S, RETRIED_ON_OVERLOAD_CALLS, OverloadRetry

RETRIED_CALLS = frozenset(
    {
        # Starts are idempotent by request id; signals and cancels carry one too.
        "start_workflow_execution",
        "start_workflow_execution_and_wait",
        "signal_workflow_execution",
        "request_cancel_workflow_execution",
        "terminate_workflow_execution",
        # Updates are idempotent by update id.
        "update_workflow_execution",
        # Reads.
        "query_workflow",
        "describe_workflow_execution",
        "get_workflow_execution_history",
        "describe_namespace",
        "list_namespaces",
        "list_workflow_executions",
        "scan_workflow_executions",
        "count_workflow_executions",
        "get_archived_workflow_history",
        "list_archived_workflow_executions",
        "get_search_attributes",
        "get_cluster_info",
        "describe_task_queue",
    }
)
"""The calls retried on UNAVAILABLE: those of the client that are safe to repeat."""


def translate_error(e: server_errors.ServiceError) -> Exception:
    d = e.details
    if isinstance(e, server_errors.WorkflowAlreadyStartedError):
        return sdk_errors.WorkflowAlreadyStartedError(e.workflow_id, e.run_id, d.get("workflow_type", ""))
    if isinstance(e, server_errors.WorkflowNotFoundError):
        err = sdk_errors.WorkflowNotFoundError(d.get("workflow_id", ""), d.get("run_id"))
        err.args = (e.message,)
        return err
    if isinstance(e, server_errors.NamespaceNotFoundError):
        return sdk_errors.NamespaceNotFoundError(d.get("namespace", e.message))
    if isinstance(e, server_errors.QueryFailedError):
        return sdk_errors.QueryFailedError(e.message)
    return sdk_errors.RPCError(e.code, e.message, details=d)


class LocalService:
    """Wraps an in-process ``WorkflowService`` implementation, translating its errors and retrying
    UNAVAILABLE for the calls in ``RETRIED_CALLS`` up to ``retries`` times.

    Observers (metrics) see every call: the target's ``call_observers`` (a metered server's) and
    ``observers`` (a metered client's). ``observer.hook(method)`` gives ``(before, after)`` for a
    method, or None; ``before(args, kwargs)`` (may be None) runs before the call, ``after(args,
    kwargs, elapsed, result, error)`` once it ended (``elapsed`` in seconds, read once for all
    observers; ``error`` is the server's exception). They run inside this wrapper's own coroutine:
    metering adds no coroutine per call."""

    def __init__(
        self,
        target: Any,
        *,
        retries: int = 5,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        observers: Sequence[Any] = (),
        max_overload_wait: float = DEFAULT_MAX_WAIT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._target = target
        self._sleep = sleep
        self.retries = retries
        self._backoff = (initial_backoff, max_backoff)
        self.observers = list(observers)
        self.max_overload_wait = max_overload_wait
        """Seconds one call may wait in total, retrying a server over its limits, before the
        refusal is raised (0: no retries)."""

    def observed_by(self, observer: Any) -> LocalService:
        """A service to the same target whose calls ``observer`` sees too."""
        initial_backoff, max_backoff = self._backoff
        return LocalService(
            self._target,
            retries=self.retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            observers=[*self.observers, observer],
            max_overload_wait=self.max_overload_wait,
            sleep=self._sleep,
        )

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        fn = getattr(self._target, name)
        retries = self.retries if name in RETRIED_CALLS else 0
        overload_retried = name in RETRIED_ON_OVERLOAD_CALLS
        initial_backoff, max_backoff = self._backoff
        hooks = [
            hook
            for observer in (*getattr(self._target, "call_observers", ()), *self.observers)
            if (hook := observer.hook(name)) is not None
        ]
        if hooks:
            observed = self._observed(fn, retries, hooks, name, overload_retried)
            setattr(self, name, observed)
            return observed

        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            delay = initial_backoff
            attempt = 0
            overload = self._overload_retry(overload_retried)
            rpc_timeout = RPC_TIMEOUT.get()
            while True:
                try:
                    if rpc_timeout is not None:
                        return await _bounded(_invoke(fn, args, kwargs), name, rpc_timeout)
                    return await _invoke(fn, args, kwargs)
                except server_errors.ServiceError as e:
                    if e.code == server_errors.UnavailableError.code and attempt < retries:
                        attempt += 1
                        delay = await _back_off(delay, max_backoff)
                        continue
                    if await overload.wait(e.code, e.details):
                        continue
                    raise _client_error(e, attempt) from None

        setattr(self, name, call)  # cache: later calls skip __getattr__
        return call

    def _overload_retry(self, retried: bool) -> OverloadRetry:
        """One call's budget for waiting out overload refusals (none for calls not safe to repeat)."""
        initial_backoff, max_backoff = self._backoff
        return OverloadRetry(
            self.max_overload_wait if retried else 0.0,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            sleep=self._sleep,
        )

    def _observed(
        self,
        fn: Callable[..., Any],
        retries: int,
        hooks: list[Any],
        name: str = "",
        overload_retried: bool = False,
    ) -> Callable[..., Any]:
        """``__getattr__``'s call with the observers' hooks around it."""
        initial_backoff, max_backoff = self._backoff
        befores = tuple(before for before, _ in hooks if before is not None)
        afters = tuple(after for _, after in hooks)
        clock = time.perf_counter

        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            for before in befores:
                before(args, kwargs)
            started = clock()
            delay = initial_backoff
            attempt = 0
            overload = self._overload_retry(overload_retried)
            rpc_timeout = RPC_TIMEOUT.get()
            while True:
                try:
                    if rpc_timeout is not None:
                        result = await _bounded(_invoke(fn, args, kwargs), name, rpc_timeout)
                    else:
                        result = await _invoke(fn, args, kwargs)
                except server_errors.ServiceError as e:
                    if e.code == server_errors.UnavailableError.code and attempt < retries:
                        attempt += 1
                        delay = await _back_off(delay, max_backoff)
                        continue
                    if await overload.wait(e.code, e.details):
                        continue
                    elapsed = clock() - started
                    for after in afters:
                        after(args, kwargs, elapsed, None, e)
                    raise _client_error(e, attempt) from None
                except BaseException as e:
                    elapsed = clock() - started
                    for after in afters:
                        after(args, kwargs, elapsed, None, e)
                    raise
                elapsed = clock() - started
                for after in afters:
                    after(args, kwargs, elapsed, result, None)
                return result

        return call


async def _invoke(fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any) -> Any:
    """One call of the server. A store it could not reach is UNAVAILABLE, as over gRPC: retried
    like any other (a write's outcome is then unknown, which every retried call tolerates)."""
    try:
        return await fn(*args, **kwargs)
    except StoreUnavailableError as e:
        raise server_errors.UnavailableError(str(e)) from e


async def _bounded(call: Awaitable[Any], name: str, rpc_timeout: float) -> Any:
    """Awaits ``call`` for at most ``rpc_timeout`` seconds (a client call's ``rpc_timeout``): past
    it the call is cancelled and ``RPCError`` DEADLINE_EXCEEDED raised, as over gRPC."""
    try:
        async with asyncio.timeout(rpc_timeout) as scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise deadline_exceeded(name, rpc_timeout) from None
        raise


async def _back_off(delay: float, max_backoff: float) -> float:
    """Sleeps about ``delay`` (jittered) before a retry of UNAVAILABLE; returns the next delay."""
    await asyncio.sleep(delay * (0.5 + random.random()))
    return min(delay * 2, max_backoff)


def _client_error(e: server_errors.ServiceError, attempt: int) -> BaseException:
    """The SDK's error for a server error, naming the attempts when the call was retried."""
    err = translate_error(e)
    if attempt and isinstance(err, sdk_errors.RPCError):
        err.message = f"{err.message} ({attempt + 1} attempts)"
        err.args = (f"{err.status}: {err.message}",)
    return err


def local_service(target: Any, *, retries: int = 5) -> WorkflowService:
    """``target`` (a frontend) as a ``WorkflowService``; ``retries`` bounds the retries of UNAVAILABLE."""
    return cast(WorkflowService, LocalService(target, retries=retries))
