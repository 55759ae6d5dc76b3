"""The in-process transport: the SDK calling a server that runs in the same process.

It is the one place the SDK touches the engine. It translates errors (the server's ``ServiceError``
codes become the SDK's exceptions exactly as the network client maps status codes) and, as the
network client does, retries UNAVAILABLE with exponential backoff and jitter, a few times, for the
calls a client makes. A signal, cancel or terminate addressed by workflow id gets UNAVAILABLE when
the run it resolves to keeps changing (a workflow that continues as new very fast); nothing was
written, and trying again shortly is the remedy. A worker's polls and reports are not retried here:
its poll loops already try again, and a report that failed is left to the attempt's timeout.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any, cast

from cadenza.engine import errors as server_errors
from cadenza.schemas.service import WorkflowService
from cadenza.sdk import exceptions as sdk_errors

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
        "get_search_attributes",
        "get_cluster_info",
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
    UNAVAILABLE for the calls in ``RETRIED_CALLS`` up to ``retries`` times."""

    def __init__(
        self, target: Any, *, retries: int = 5, initial_backoff: float = 0.05, max_backoff: float = 2.0
    ) -> None:
        self._target = target
        self.retries = retries
        self._backoff = (initial_backoff, max_backoff)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        fn = getattr(self._target, name)
        retries = self.retries if name in RETRIED_CALLS else 0
        initial_backoff, max_backoff = self._backoff

        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            delay = initial_backoff
            attempt = 0
            while True:
                try:
                    return await fn(*args, **kwargs)
                except server_errors.ServiceError as e:
                    if e.code == server_errors.UnavailableError.code and attempt < retries:
                        attempt += 1
                        await asyncio.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, max_backoff)
                        continue
                    err = translate_error(e)
                    if attempt and isinstance(err, sdk_errors.RPCError):
                        err.message = f"{err.message} ({attempt + 1} attempts)"
                        err.args = (f"{err.status}: {err.message}",)
                    raise err from None

        setattr(self, name, call)  # cache: later calls skip __getattr__
        return call


def local_service(target: Any, *, retries: int = 5) -> WorkflowService:
    """``target`` (a frontend) as a ``WorkflowService``; ``retries`` bounds the retries of UNAVAILABLE."""
    return cast(WorkflowService, LocalService(target, retries=retries))
