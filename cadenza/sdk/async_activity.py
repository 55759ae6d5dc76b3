"""Completing an activity from outside its function (``activity.raise_complete_async()``).

The activity function hands its task token (``activity.info().task_token``), or its workflow id and
activity id, to whatever finishes the work, and ends with ``activity.raise_complete_async()``; the
worker then reports nothing. The other side takes ``client.get_async_activity_handle(...)`` and
calls :meth:`AsyncActivityHandle.complete`, :meth:`~AsyncActivityHandle.fail` or
:meth:`~AsyncActivityHandle.report_cancellation`, heartbeating meanwhile if the activity has a
heartbeat timeout. The activity's timeouts run as usual: one that passes retries or fails it, and
the handle's calls for the old attempt are then refused (``RPCError`` NOT_FOUND).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cadenza.sdk._call_options import RpcMetadata
from cadenza.sdk.exceptions import ApplicationError
from cadenza.sdk.interceptor import (
    AsyncActivityIDReference,
    CompleteAsyncActivityInput,
    FailAsyncActivityInput,
    HeartbeatAsyncActivityInput,
    ReportCancellationAsyncActivityInput,
)

if TYPE_CHECKING:
    from cadenza.sdk.client import Client

__all__ = ["AsyncActivityHandle"]


class AsyncActivityHandle:
    """One activity attempt to complete from outside: by task token, or by workflow id, run id
    (empty: the workflow's current run) and activity id."""

    def __init__(
        self,
        client: Client,
        *,
        task_token: bytes | None = None,
        workflow_id: str | None = None,
        run_id: str | None = None,
        activity_id: str | None = None,
    ) -> None:
        if task_token is not None and (workflow_id or run_id or activity_id):
            raise TypeError("get_async_activity_handle: pass task_token, or workflow_id and activity_id")
        if task_token is None and not (workflow_id and activity_id):
            raise TypeError("get_async_activity_handle needs task_token, or workflow_id and activity_id")
        self._client = client
        self.task_token = task_token
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.activity_id = activity_id

    def _ref(self) -> AsyncActivityIDReference | bytes:
        if self.task_token is not None:
            return self.task_token
        return AsyncActivityIDReference(self.workflow_id or "", self.run_id, self.activity_id or "")

    async def heartbeat(
        self, *details: Any, rpc_metadata: RpcMetadata | None = None, rpc_timeout: timedelta | None = None
    ) -> None:
        """Records a heartbeat (resetting the heartbeat timeout); ``details`` reach the next
        attempt as ``activity.info().heartbeat_details``."""
        await self._client._calls.heartbeat_async_activity(
            HeartbeatAsyncActivityInput(self._ref(), details, rpc_metadata or {}, rpc_timeout)
        )

    async def complete(
        self,
        result: Any = None,
        *,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        """Completes the activity with ``result``: the workflow's ``execute_activity`` returns it."""
        await self._client._calls.complete_async_activity(
            CompleteAsyncActivityInput(self._ref(), result, rpc_metadata or {}, rpc_timeout)
        )

    async def fail(
        self,
        error: BaseException,
        *,
        last_heartbeat_details: Sequence[Any] = (),
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        """Fails this attempt with ``error`` (retried per the activity's retry policy, as a failure
        raised by the function would be). ``last_heartbeat_details`` are recorded first."""
        if not isinstance(error, BaseException):
            error = ApplicationError(str(error))
        await self._client._calls.fail_async_activity(
            FailAsyncActivityInput(
                self._ref(), error, last_heartbeat_details, rpc_metadata or {}, rpc_timeout
            )
        )

    async def report_cancellation(
        self, *details: Any, rpc_metadata: RpcMetadata | None = None, rpc_timeout: timedelta | None = None
    ) -> None:
        """Reports the activity cancelled (after the workflow asked for it; a heartbeat's answer
        says so)."""
        await self._client._calls.report_cancellation_async_activity(
            ReportCancellationAsyncActivityInput(self._ref(), details, rpc_metadata or {}, rpc_timeout)
        )
