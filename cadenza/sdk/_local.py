"""The in-process transport: the SDK calling a server that runs in the same process.

It is the one place the SDK touches the engine, and it only translates errors: the server's
``ServiceError`` codes become the SDK's exceptions exactly as the network client maps status codes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, cast

from cadenza.engine import errors as server_errors
from cadenza.schemas.service import WorkflowService
from cadenza.sdk import exceptions as sdk_errors


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
    """Wraps an in-process ``WorkflowService`` implementation, translating its errors."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        fn = getattr(self._target, name)

        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except server_errors.ServiceError as e:
                raise translate_error(e) from None

        setattr(self, name, call)  # cache: later calls skip __getattr__
        return call


def local_service(target: Any) -> WorkflowService:
    return cast(WorkflowService, LocalService(target))
