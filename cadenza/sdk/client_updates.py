"""Workflow updates from the client: ``WorkflowHandle.execute_update`` / ``start_update`` /
``get_update_handle``, ``WorkflowUpdateHandle``, and update-with-start
(``Client.execute_update_with_start_workflow`` with a ``WithStartWorkflowOperation``), with
temporalio's names.

A request waits on the server for the stage asked for, up to a minute per call; a call that comes
back earlier than that stage is sent again with the same update id, which the server deduplicates,
so a server that lost the request (a restart) gets it again.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cadenza.schemas.ids import new_id
from cadenza.schemas.service import UpdateWorkflowRequest, UpdateWorkflowResponse, WorkflowExecution
from cadenza.sdk._call_options import RpcMetadata, rpc_options
from cadenza.sdk._runtime.definitions import _UPDATE_MARK, UpdateDefinition
from cadenza.sdk.common import ARG_UNSET, WorkflowIDConflictPolicy, positional_args
from cadenza.sdk.exceptions import (
    WorkflowAlreadyStartedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from cadenza.sdk.payload_converter import plain_headers

if TYPE_CHECKING:
    from cadenza.sdk.client import Client, WorkflowHandle
    from cadenza.sdk.interceptor import StartWorkflowUpdateInput, StartWorkflowUpdateWithStartInput

__all__ = [
    "WithStartWorkflowOperation",
    "WorkflowIDConflictPolicy",
    "WorkflowUpdateHandle",
    "WorkflowUpdateStage",
]

R = TypeVar("R")

UPDATE_POLL_S = 60.0
"""How long one call waits on the server for the stage asked for."""


class WorkflowUpdateStage(enum.IntEnum):
    """How far an update has come (temporalio's values)."""

    ADMITTED = 1
    ACCEPTED = 2
    COMPLETED = 3


def update_name(update: Any) -> str:
    if isinstance(update, str):
        return update
    name = getattr(update, _UPDATE_MARK, None)
    if not name:
        raise ValueError(f"{getattr(update, '__qualname__', update)!r} is not a @workflow.update method")
    return str(name)


def update_result_type(update: Any) -> Any:
    if isinstance(update, str):
        return None
    try:
        return UpdateDefinition.from_fn(update).return_type
    except (ValueError, TypeError):
        return None


class WorkflowUpdateHandle(Generic[R]):
    """One update of one workflow: ``await handle.result()`` waits for its outcome."""

    def __init__(
        self,
        client: Client,
        id: str,
        workflow_id: str,
        *,
        workflow_run_id: str | None = None,
        name: str = "",
        result_type: Any = None,
        request: UpdateWorkflowRequest | None = None,
        outcome: UpdateWorkflowResponse | None = None,
    ) -> None:
        self._client = client
        self._id = id
        self._workflow_id = workflow_id
        self._workflow_run_id = workflow_run_id
        self._name = name
        self._result_type = result_type
        self._request = request
        self._outcome = outcome

    @property
    def id(self) -> str:
        return self._id

    @property
    def workflow_id(self) -> str:
        return self._workflow_id

    @property
    def workflow_run_id(self) -> str | None:
        return self._workflow_run_id

    @property
    def name(self) -> str:
        return self._name

    async def result(
        self, *, rpc_timeout: timedelta | None = None, rpc_metadata: RpcMetadata | None = None
    ) -> R:
        """The update's result; ``WorkflowUpdateFailedError`` if it was rejected or failed.
        ``rpc_timeout`` bounds the whole wait (``WorkflowUpdateRPCTimeoutOrCancelledError``)."""
        if self._outcome is None or self._outcome.stage != "COMPLETED":
            with rpc_options(rpc_metadata):
                self._outcome = await _wait(
                    self._client, self._poll_request(), WorkflowUpdateStage.COMPLETED, rpc_timeout
                )
        return self._decode(self._outcome)  # type: ignore[no-any-return]

    def _poll_request(self) -> UpdateWorkflowRequest:
        if self._request is not None:
            return self._request
        # Known by id only: ask for its outcome without sending it again.
        return UpdateWorkflowRequest(
            self._client.namespace,
            WorkflowExecution(self._workflow_id, self._workflow_run_id or ""),
            self._id,
            "",
            identity=self._client.identity,
        )

    def _decode(self, outcome: UpdateWorkflowResponse) -> Any:
        conv = self._client.data_converter
        if outcome.failure is not None:
            raise WorkflowUpdateFailedError(conv.failure_to_exception(outcome.failure))
        values = conv.from_payloads(outcome.result, [self._result_type] if self._result_type else None)
        return values[0] if values else None


async def _wait(
    client: Client,
    request: UpdateWorkflowRequest,
    stage: WorkflowUpdateStage,
    rpc_timeout: timedelta | None,
    send: Callable[[UpdateWorkflowRequest], Any] | None = None,
) -> UpdateWorkflowResponse:
    """Sends ``request`` until the update reaches ``stage`` (or the timeout runs out)."""
    loop = asyncio.get_running_loop()
    deadline = None if rpc_timeout is None else loop.time() + rpc_timeout.total_seconds()
    request.wait_stage = "ACCEPTED" if stage <= WorkflowUpdateStage.ACCEPTED else "COMPLETED"
    while True:
        wait_s = UPDATE_POLL_S
        if deadline is not None:
            wait_s = min(wait_s, deadline - loop.time())
            if wait_s <= 0:
                raise WorkflowUpdateRPCTimeoutOrCancelledError()
        request.timeout_s = wait_s
        if send is not None:
            resp: UpdateWorkflowResponse = await send(request)
            send = None  # only the first call starts the workflow
        else:
            resp = await client.service.update_workflow_execution(request)
        if resp.stage == "COMPLETED" or (resp.stage == "ACCEPTED" and stage <= WorkflowUpdateStage.ACCEPTED):
            return resp
        if stage == WorkflowUpdateStage.ADMITTED:
            return resp


def _request(
    client: Client, workflow_id: str, run_id: str | None, update_id: str | None, update: str,
    args: Sequence[Any], headers: dict[str, Any],
) -> UpdateWorkflowRequest:  # fmt: skip
    return UpdateWorkflowRequest(
        client.namespace,
        WorkflowExecution(workflow_id, run_id or ""),
        update_id or new_id(),
        update,
        client.data_converter.to_payloads(args) if args else None,
        header=plain_headers(headers) if headers else {},
        identity=client.identity,
    )


def _handle(
    client: Client, workflow_id: str, run_id: str | None, request: UpdateWorkflowRequest,
    resp: UpdateWorkflowResponse, ret_type: Any,
) -> WorkflowUpdateHandle[Any]:  # fmt: skip
    return WorkflowUpdateHandle(
        client,
        request.update_id,
        workflow_id,
        workflow_run_id=resp.run_id or run_id,
        name=request.name,
        result_type=ret_type,
        request=request,
        outcome=resp if resp.stage == "COMPLETED" else None,
    )


async def send_update(client: Client, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
    """The end of the client's ``start_workflow_update`` chain: sends the update and waits for
    ``input.wait_for_stage`` (bounded by ``input.rpc_timeout``)."""
    i = input
    request = _request(client, i.id, i.run_id, i.update_id, i.update, i.args, i.headers)
    resp = await _wait(client, request, i.wait_for_stage, i.rpc_timeout)
    return _handle(client, i.id, i.run_id, request, resp, i.ret_type)


class WithStartWorkflowOperation(Generic[R]):
    """The start half of update-with-start: the workflow to start when it is not running
    (``id_conflict_policy`` USE_EXISTING, the usual choice, updates the running one instead)."""

    def __init__(
        self,
        workflow: Callable[..., Any] | type | str,
        *arguments: Any,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str,
        task_queue: str,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        result_type: Any = None,
        **start_options: Any,
    ) -> None:
        if id_conflict_policy == WorkflowIDConflictPolicy.TERMINATE_EXISTING:
            raise ValueError("update-with-start takes id_conflict_policy USE_EXISTING or FAIL")
        self.workflow = workflow
        self.args = positional_args(arguments, args, "WithStartWorkflowOperation()", arg)
        self.id = id
        self.task_queue = task_queue
        self.id_conflict_policy = id_conflict_policy
        self.result_type = result_type
        self.start_options = start_options
        self._handle: asyncio.Future[WorkflowHandle[Any]] | None = None

    def _future(self) -> asyncio.Future[WorkflowHandle[Any]]:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().create_future()
        return self._handle

    async def workflow_handle(self) -> WorkflowHandle[R]:
        """The handle of the workflow the operation started or found running."""
        return await self._future()


async def send_update_with_start(
    client: Client, input: StartWorkflowUpdateWithStartInput
) -> WorkflowUpdateHandle[Any]:
    """The end of the client's ``start_update_with_start_workflow`` chain."""
    from cadenza.sdk.client import WorkflowHandle

    op: WithStartWorkflowOperation[Any] = input.operation
    s, u = input.start_workflow_input, input.update_workflow_input
    fut = op._future()
    if fut.done():
        raise RuntimeError("a WithStartWorkflowOperation can be used once")
    start = s.request
    if s.headers:
        start.header = {**(start.header or {}), **plain_headers(s.headers)}
    try:
        if s.id_conflict_policy == WorkflowIDConflictPolicy.FAIL:
            # The start must be new: start first (WorkflowAlreadyStartedError), then update.
            started = await client.service.start_workflow_execution(start)
            if not started.started:
                raise WorkflowAlreadyStartedError(s.id, started.run_id, start.workflow_type)
            first_run = started.run_id
            send = None
        else:
            first_run = ""
            send = True
        handle: WorkflowHandle[Any] = WorkflowHandle(
            client, s.id, run_id=None, first_run_id=first_run or None, result_type=s.ret_type
        )
        request = _request(client, s.id, None, u.update_id, u.update, u.args, u.headers)
        started_run: list[str] = []

        async def send_with_start(req: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
            started_resp, resp = await client.service.update_with_start_workflow_execution(start, req)
            started_run.append(started_resp.run_id)
            # Later calls of the same update name the run it went to.
            req.execution = WorkflowExecution(s.id, started_resp.run_id)
            return resp

        resp = await _wait(
            client, request, u.wait_for_stage, u.rpc_timeout, send_with_start if send else None
        )
        if started_run:
            handle.first_run_id = started_run[0]
    except BaseException as e:
        if not fut.done():
            fut.set_exception(e)
            fut.exception()  # retrieved: the caller sees the error here already
        raise
    if not fut.done():
        fut.set_result(handle)
    return _handle(client, s.id, handle.run_id, request, resp, u.ret_type)
