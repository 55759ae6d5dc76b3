"""The network transport: ``WorkflowService`` over gRPC to a Cadenza frontend.

Each call encodes its arguments as the API's Avro request message, sends the bytes to
``/cadenza.api.v1.WorkflowService/<Method>`` and decodes the response. Failures become the same SDK
exceptions the in-process transport raises: the server puts the error's class and details in trailing
metadata, so a duplicate start still carries the existing run id and an unknown namespace still
names the namespace.

Deadlines: unary calls get ``rpc_timeout`` (a call's own ``rpc_timeout``, see ``_call_options``,
replaces it for every RPC of that call); long polls (task polls, history waits) get their own
server-side wait plus ``rpc_timeout``, so a quiet queue ends in an empty response, never in
DEADLINE_EXCEEDED. UNAVAILABLE (the server restarting, a connection dropped) is retried with
exponential backoff and jitter, up to ``retries`` times; with several targets each retry moves on
to the next one. RESOURCE_EXHAUSTED from the server's overload limits is retried (on the same
target) for the calls safe to repeat, waiting at least the server's ``retry-after-ms`` each time,
for up to ``max_overload_wait`` seconds in all (see ``_overload.py``). Several targets may be the
frontends of several clusters: calls stay on one target and move on when it answers that the
namespace is active elsewhere (``NamespaceNotActive``), so the client follows the active cluster;
long polls go round all of them.

Completing a workflow task also asks for the next one (``RespondWorkflowTaskCompletedAndPoll``): a
worker's poller completes a task and then polls again, so the server long-polls right after the
completion and the task it finds waits here for that poller's next ``poll_workflow_task_queue``,
which then costs no round trip. This applies only when the coroutine that polled a task also
completes it (a worker handling each task in its poller); otherwise, and against a server without
that method, the plain completion is used.

A completion that asks for eager activities (``eager_activity_ids``), or polls, goes through
``RespondWorkflowTaskCompletedEager``, which also returns the activity tasks started for this worker;
against a server without it the client falls back to the two ways above. A completion that names the
worker's sticky queue (sticky execution) goes through ``RespondWorkflowTaskCompletedSticky``, the
same call with the sticky attributes; against a server without it, through the ways above.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from cadenza.schemas import api
from cadenza.schemas.api import convert as cv
from cadenza.schemas.codec import decode_events
from cadenza.schemas.events import HistoryEvent
from cadenza.schemas.registry import SchemaError
from cadenza.schemas.service import (
    ClusterMember,
    CountWorkflowExecutionsResponse,
    DescribeTaskQueueResponse,
    DescribeWorkflowResponse,
    FailoverResponse,
    GetHistoryRequest,
    GetHistoryResponse,
    ListWorkflowExecutionsResponse,
    NamespaceInfo,
    PollActivityTaskResponse,
    PollerInfo,
    PollWorkflowTaskResponse,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
    StartWorkflowRequest,
    StartWorkflowResponse,
    UpdateWorkflowRequest,
    UpdateWorkflowResponse,
    WorkflowExecution,
)
from cadenza.sdk import exceptions as sdk_errors
from cadenza.sdk._call_options import RPC_TIMEOUT, deadline_exceeded
from cadenza.sdk._overload import DEFAULT_MAX_WAIT_S, RETRIED_ON_OVERLOAD, RETRY_AFTER_KEY, OverloadRetry
from cadenza.sdk.interceptor import OUTGOING_METADATA

Payloads = list[dict[str, Any]]
Record = dict[str, Any]

ApiKey = str | Callable[[], str | Awaitable[str]]
"""A bearer token, or a function (sync or async) returning the current one."""
AUTHORIZATION_KEY = "authorization"
ERROR_TYPE_KEY = "cadenza-error-type"
ERROR_DETAILS_KEY = "cadenza-error-details-bin"
QUERY_EXTRA_S = 15.0
"""The server waits up to 10 s for a worker to answer a query; give it that on top of the deadline."""
MAX_TRACKED_TASKS = 10_000
"""Workflow tasks remembered between their poll and their completion (a worker that abandons tasks
must not grow this without bound)."""


@dataclass(frozen=True, slots=True)
class _PolledFrom:
    """Where a workflow task came from, so its completion can poll the same queue again."""

    namespace: str
    task_queue: str
    timeout_s: float
    poller: asyncio.Task[Any] | None
    """The asyncio task that polled: only if that same task completes (and so polls next) is the
    next workflow task fetched with the completion; a task handed to another coroutine to run
    would leave a fetched task waiting for a poller busy in its own long poll."""


@dataclass(frozen=True, slots=True)
class ChannelTLS:
    """PEM material for a TLS channel (built from the public ``TLSConfig``)."""

    server_root_ca_cert: bytes | None = None
    client_cert: bytes | None = None
    client_private_key: bytes | None = None
    domain: str | None = None


def translate_status(code: str, message: str, metadata: Any) -> Exception:
    """The SDK exception for a failed call, mirroring ``_local.translate_error``."""
    kind, details = "", {}
    for key, value in metadata or ():
        if key == ERROR_TYPE_KEY:
            kind = value
        elif key == ERROR_DETAILS_KEY:
            try:
                details = json.loads(value)
            except ValueError:
                details = {}
    if kind == "WorkflowAlreadyStartedError":
        return sdk_errors.WorkflowAlreadyStartedError(
            details.get("workflow_id", ""), details.get("run_id", ""), details.get("workflow_type", "")
        )
    if kind == "WorkflowNotFoundError":
        err = sdk_errors.WorkflowNotFoundError(details.get("workflow_id", ""), details.get("run_id"))
        err.args = (message,)
        return err
    if kind == "NamespaceNotFoundError":
        return sdk_errors.NamespaceNotFoundError(details.get("namespace", message))
    if kind == "QueryFailedError":
        return sdk_errors.QueryFailedError(message)
    return sdk_errors.RPCError(code, message, details=details)


def _not_active_here(code: grpc.StatusCode, metadata: Any) -> bool:
    """Whether a call was refused because the namespace is active in another cluster."""
    if code != grpc.StatusCode.FAILED_PRECONDITION:
        return False
    return any(k == ERROR_TYPE_KEY and v == "NamespaceNotActiveError" for k, v in metadata or ())


def _retry_hint(metadata: Any) -> dict[str, float]:
    """The server's hint on an overload refusal (``retry-after-ms``), as the error's details say it."""
    for key, value in metadata or ():
        if key == RETRY_AFTER_KEY:
            try:
                return {"retry_after_ms": float(value)}
            except ValueError:
                return {}
    return {}


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", api.MAX_RESPONSE_BYTES),
        ("grpc.max_send_message_length", -1),  # the server enforces the request limit and says so
        # With dns:///name:port every resolved address gets calls, not just the first.
        ("grpc.lb_policy_name", "round_robin"),
        # Retries are ours (UNAVAILABLE only, with backoff); grpc's transparent ones would double them.
        ("grpc.enable_retries", 0),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # A server that stops gracefully is back after its restart within seconds: reconnect
        # attempts at most 2 s apart find it (grpc's default backoff grows to two minutes).
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def open_channel(target: str, tls: ChannelTLS | None) -> grpc.aio.Channel:
    options = channel_options()
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    if tls.domain:
        options.append(("grpc.ssl_target_name_override", tls.domain))
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.server_root_ca_cert,
        private_key=tls.client_private_key,
        certificate_chain=tls.client_cert,
    )
    return grpc.aio.secure_channel(target, creds, options=options)


class GrpcService:
    """``WorkflowService`` over one or more gRPC channels (see the module docstring for which
    target a call goes to)."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        tls: ChannelTLS | None = None,
        rpc_timeout: float = 10.0,
        retries: int = 5,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        metadata: Sequence[tuple[str, str | bytes]] = (),
        api_key: ApiKey | None = None,
        max_overload_wait: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        if not targets:
            raise ValueError("no target to connect to")
        self._base_metadata = tuple(metadata)
        self._metadata: tuple[tuple[str, str | bytes], ...] | None = None
        """Sent with every call (a server forwarding requests marks them this way; the bearer
        token of a fixed ``api_key``)."""
        self._api_key_fn: Callable[[], str | Awaitable[str]] | None = None
        self.set_api_key(api_key)
        self.targets = list(targets)
        self.rpc_timeout = rpc_timeout
        self.retries = retries
        self._backoff = (initial_backoff, max_backoff)
        self.max_overload_wait = max_overload_wait
        """Seconds one call may wait in total, retrying a server over its limits (RESOURCE_EXHAUSTED
        with a hint; see ``cadenza.sdk._overload``), before the refusal is raised. 0: no retries."""
        self._channels = [open_channel(t, tls) for t in self.targets]
        self._next = itertools.cycle(range(len(self._channels)))
        """Long polls go round the targets: a worker given several addresses polls them all."""
        self._preferred = 0
        """Every other call goes to this target, and moves on to the next when it is unreachable or
        answers that the namespace is active in another cluster: a client given the addresses of
        several clusters follows the active one (and keeps working if that cluster forwards)."""
        self._stubs: dict[tuple[int, str], grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._polled_from: OrderedDict[bytes, _PolledFrom] = OrderedDict()
        self._next_workflow_tasks: dict[tuple[str, str], deque[PollWorkflowTaskResponse]] = {}
        self._complete_and_poll = True
        """False once a server answered UNIMPLEMENTED to ``RespondWorkflowTaskCompletedAndPoll``."""
        self._eager = True
        """False once a server answered UNIMPLEMENTED to ``RespondWorkflowTaskCompletedEager``."""
        self._sticky = True
        """False once a server answered UNIMPLEMENTED to ``RespondWorkflowTaskCompletedSticky``
        (sticky execution): completions no longer name the worker's sticky queue."""
        self._start_and_wait = True
        """False once a server answered UNIMPLEMENTED to ``StartWorkflowExecutionAndWait``."""

    def set_api_key(self, api_key: ApiKey | None) -> None:
        """Sends ``authorization: Bearer <api_key>`` with every call from now on (None: nothing).
        A callable (sync or async) is asked for the current key before each call, so a token
        that expires can be refreshed by whoever issues it."""
        fixed = api_key if isinstance(api_key, str) and api_key else None
        self._api_key_fn = api_key if callable(api_key) else None
        auth = ((AUTHORIZATION_KEY, f"Bearer {fixed}"),) if fixed else ()
        self._metadata = (*self._base_metadata, *auth) or None

    async def _bearer(self, fn: Callable[[], str | Awaitable[str]]) -> tuple[tuple[str, str], ...]:
        key = fn()
        if inspect.isawaitable(key):
            key = await key
        if not isinstance(key, str):
            raise TypeError(f"api_key callable returned {type(key).__name__}, not str")
        return ((AUTHORIZATION_KEY, f"Bearer {key}"),) if key else ()

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    def _stub(self, index: int, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        stub = self._stubs.get((index, method))
        if stub is None:
            stub = self._channels[index].unary_unary(f"/{api.SERVICE}/{method}")
            self._stubs[(index, method)] = stub
        return stub

    async def call(self, method: str, record: Record, *, timeout: float | None = None) -> Record:
        """One RPC with retries; raises the SDK exception for the final failure."""
        try:
            request = api.encode(f"{method}Request", record)
        except SchemaError as e:
            raise sdk_errors.RPCError("INVALID_ARGUMENT", f"{method}: {e}") from None
        deadline = timeout if timeout is not None else self.rpc_timeout
        per_call = RPC_TIMEOUT.get()
        if per_call is not None:
            deadline = per_call  # the caller's rpc_timeout, long polls included (they fit their wait to it)
        delay, max_delay = self._backoff
        attempt = 0
        long_poll = method in api.LONG_POLL_METHODS
        overload: OverloadRetry | None = None
        if method in RETRIED_ON_OVERLOAD and self.max_overload_wait > 0:
            overload = OverloadRetry(self.max_overload_wait, initial_backoff=delay, max_backoff=max_delay)
        elsewhere = len(self._channels) - 1  # other targets to try on NamespaceNotActive
        metadata: tuple[tuple[str, str | bytes], ...] | None = self._metadata
        extra = OUTGOING_METADATA.get()
        if extra:  # set around this call: an interceptor's trace context, the call's rpc_metadata
            metadata = (*(metadata or ()), *extra)
        if self._api_key_fn is not None:
            metadata = (*(metadata or ()), *await self._bearer(self._api_key_fn))
        while True:
            index = next(self._next) if long_poll else self._preferred
            stub = self._stub(index, method)
            try:
                response: bytes = await stub(request, timeout=deadline, metadata=metadata)
                break
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    attempt += 1
                    self._move_on(index)
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, max_delay)
                    continue
                if overload is not None and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    if await overload.wait(code.name, _retry_hint(e.trailing_metadata())):
                        continue
                if elsewhere and not long_poll and _not_active_here(code, e.trailing_metadata()):
                    elsewhere -= 1
                    self._move_on(index)
                    continue
                message = e.details() or code.name
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and per_call is not None:
                    raise deadline_exceeded(method, per_call) from None
                if code == grpc.StatusCode.UNAVAILABLE:
                    message = f"{message} (target {', '.join(self.targets)}, {attempt + 1} attempts)"
                raise translate_status(code.name, message, e.trailing_metadata()) from None
        try:
            return api.decode(f"{method}Response", response)
        except SchemaError as e:
            raise sdk_errors.RPCError("INTERNAL", f"{method}: undecodable response: {e}") from None

    def _move_on(self, index: int) -> None:
        if self._preferred == index:
            self._preferred = (index + 1) % len(self._channels)

    def _long(self, wait_s: float) -> float:
        return wait_s + self.rpc_timeout

    # -- workflows -------------------------------------------------------------------------------

    async def start_workflow_execution(self, request: StartWorkflowRequest) -> StartWorkflowResponse:
        r = await self.call("StartWorkflowExecution", cv.start_request_to_record(request))
        eager = r.get("eager_workflow_task")
        return StartWorkflowResponse(
            run_id=r["run_id"],
            started=r["started"],
            eager_workflow_task=cv.workflow_task_from_record(eager) if eager is not None else None,
        )

    async def start_workflow_execution_and_wait(
        self, request: StartWorkflowRequest, wait_s: float
    ) -> tuple[StartWorkflowResponse, list[HistoryEvent]]:
        if self._start_and_wait:
            try:
                r = await self.call(
                    "StartWorkflowExecutionAndWait",
                    {**cv.start_request_to_record(request), "wait_s": wait_s},
                    timeout=self._long(wait_s),
                )
            except sdk_errors.RPCError as e:
                if e.status != "UNIMPLEMENTED":
                    raise
                self._start_and_wait = False  # an older server: it did nothing with the call
            else:
                started = StartWorkflowResponse(run_id=r["run_id"], started=r["started"])
                return started, cv.history_from_bytes(r["history"])
        return await self.start_workflow_execution(request), []

    async def signal_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        signal_name: str,
        input: Payloads | None,
        *,
        identity: str = "",
        request_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> None:
        await self.call(
            "SignalWorkflowExecution",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
                "signal_name": signal_name,
                "input": input,
                "identity": identity,
                "request_id": request_id,
                "header": header or {},
            },
        )

    async def query_workflow(
        self,
        namespace: str,
        execution: WorkflowExecution,
        query_type: str,
        args: Payloads | None,
        *,
        header: dict[str, Any] | None = None,
    ) -> Payloads | None:
        r = await self.call(
            "QueryWorkflow",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
                "query_type": query_type,
                "query_args": args,
                "header": header or {},
            },
            timeout=self._long(QUERY_EXTRA_S),
        )
        result: Payloads | None = r["result"]
        return result

    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
        r = await self.call(
            "UpdateWorkflowExecution",
            cv.update_request_to_record(request),
            timeout=self._long(request.timeout_s),
        )
        return cv.update_response_from_record(r)

    async def update_with_start_workflow_execution(
        self, start: StartWorkflowRequest, update: UpdateWorkflowRequest
    ) -> tuple[StartWorkflowResponse, UpdateWorkflowResponse]:
        record = {f"start_{k}": v for k, v in cv.start_request_to_record(start).items()}
        r = await self.call(
            "UpdateWithStartWorkflowExecution",
            {**record, **cv.update_request_to_record(update)},
            timeout=self._long(update.timeout_s),
        )
        started = StartWorkflowResponse(run_id=r["run_id"], started=r["started"])
        return started, cv.update_response_from_record(r)

    async def request_cancel_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, *, identity: str = "", request_id: str = ""
    ) -> None:
        await self.call(
            "RequestCancelWorkflowExecution",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
                "identity": identity,
                "request_id": request_id,
            },
        )

    async def terminate_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reason: str = "",
        details: Payloads | None = None,
        identity: str = "",
    ) -> None:
        await self.call(
            "TerminateWorkflowExecution",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
                "reason": reason,
                "details": details,
                "identity": identity,
            },
        )

    async def describe_workflow_execution(
        self, namespace: str, execution: WorkflowExecution
    ) -> DescribeWorkflowResponse:
        r = await self.call(
            "DescribeWorkflowExecution",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
            },
        )
        return cv.describe_from_record(r)

    async def get_workflow_execution_history(self, request: GetHistoryRequest) -> GetHistoryResponse:
        waits = request.wait_new_event or request.close_event_only
        r = await self.call(
            "GetWorkflowExecutionHistory",
            {
                "namespace": request.namespace,
                "execution": cv.execution_to_record(request.execution),
                "next_page_token": request.next_page_token,
                "maximum_page_size": request.maximum_page_size,
                "wait_new_event": request.wait_new_event,
                "close_event_only": request.close_event_only,
                "timeout_s": request.timeout_s,
                "branch_id": request.branch_id,
            },
            timeout=self._long(request.timeout_s) if waits else None,
        )
        return GetHistoryResponse(cv.history_from_bytes(r["history"]), r["next_page_token"], r["run_id"])

    # -- workflow tasks ----------------------------------------------------------------------------

    async def poll_workflow_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollWorkflowTaskResponse | None:
        waiting = self._next_workflow_tasks.get((namespace, task_queue))
        if waiting:
            task: PollWorkflowTaskResponse | None = waiting.popleft()
        else:
            r = await self.call(
                "PollWorkflowTaskQueue",
                {
                    "namespace": namespace,
                    "task_queue": task_queue,
                    "identity": identity,
                    "timeout_s": timeout_s,
                },
                timeout=self._long(timeout_s),
            )
            task = cv.workflow_task_from_record(r["task"]) if r["task"] is not None else None
        if task is not None and task.query is None:
            self._remember(
                task.task_token, _PolledFrom(namespace, task_queue, timeout_s, asyncio.current_task())
            )
        return task

    def _remember(self, task_token: bytes, source: _PolledFrom) -> None:
        self._polled_from[task_token] = source
        while len(self._polled_from) > MAX_TRACKED_TASKS:
            self._polled_from.popitem(last=False)

    async def respond_workflow_task_completed(
        self, request: RespondWorkflowTaskCompletedRequest
    ) -> list[PollActivityTaskResponse]:
        record = {
            "task_token": request.task_token,
            "commands": cv.commands_to_records(request.commands),
            "identity": request.identity,
            "namespace": request.namespace,
        }
        source = self._polled_from.pop(request.task_token, None)
        poll_next = source is not None and source.poller is asyncio.current_task()
        eager_ids = list(request.eager_activity_ids)
        if self._sticky and request.sticky_task_queue:
            extra = {
                "eager_activity_ids": eager_ids,
                "sticky_task_queue": request.sticky_task_queue,
                "sticky_schedule_to_start_timeout_ms": request.sticky_schedule_to_start_timeout_ms,
            }
            started = await self._complete_with("Sticky", record, extra, source, poll_next)
            if started is not None:
                return started
            self._sticky = False  # an older server: it did nothing with the call
        if self._eager and (eager_ids or (poll_next and self._complete_and_poll)):
            started = await self._complete_with(
                "Eager", record, {"eager_activity_ids": eager_ids}, source, poll_next
            )
            if started is not None:
                return started
            self._eager = False  # an older server: it did nothing with the call
        if not poll_next or source is None or not self._complete_and_poll:
            await self.call("RespondWorkflowTaskCompleted", record)
            return []
        try:
            r = await self.call(
                "RespondWorkflowTaskCompletedAndPoll",
                # The task token names the run; namespace and task_queue say where to poll next.
                {
                    **record,
                    "namespace": source.namespace,
                    "task_queue": source.task_queue,
                    "timeout_s": source.timeout_s,
                },
                timeout=self._long(source.timeout_s),
            )
        except sdk_errors.RPCError as e:
            if e.status != "UNIMPLEMENTED":
                raise
            # An older server: it did nothing with the call, so complete the plain way from now on.
            self._complete_and_poll = False
            await self.call("RespondWorkflowTaskCompleted", record)
            return []
        if r["task"] is not None:
            key = (source.namespace, source.task_queue)
            self._next_workflow_tasks.setdefault(key, deque()).append(cv.workflow_task_from_record(r["task"]))
        return []

    async def _complete_with(
        self, kind: str, record: Record, extra: Record, source: _PolledFrom | None, poll_next: bool
    ) -> list[PollActivityTaskResponse] | None:
        """``RespondWorkflowTaskCompleted<kind>`` (Eager or Sticky): the completion, the activity
        tasks started for this worker and, when ``poll_next``, the poller's next workflow task.
        None if the server does not have the method (it did nothing with the call)."""
        try:
            r = await self.call(
                f"RespondWorkflowTaskCompleted{kind}",
                {
                    **record,
                    "namespace": source.namespace if source is not None else record["namespace"],
                    "task_queue": source.task_queue if poll_next and source is not None else "",
                    "timeout_s": source.timeout_s if source is not None else 0.0,
                    **extra,
                },
                timeout=self._long(source.timeout_s) if poll_next and source is not None else None,
            )
        except sdk_errors.RPCError as e:
            if e.status != "UNIMPLEMENTED":
                raise
            return None
        if r["task"] is not None and source is not None:
            key = (source.namespace, source.task_queue)
            self._next_workflow_tasks.setdefault(key, deque()).append(cv.workflow_task_from_record(r["task"]))
        return [cv.activity_task_from_record(a) for a in r["activity_tasks"]]

    async def reset_sticky_task_queue(self, namespace: str, execution: WorkflowExecution) -> None:
        if not self._sticky:
            return
        try:
            await self.call(
                "ResetStickyTaskQueue",
                {"namespace": namespace, "execution": cv.execution_to_record(execution)},
            )
        except sdk_errors.RPCError as e:
            if e.status != "UNIMPLEMENTED":
                raise
            self._sticky = False  # an older server: no sticky execution there

    async def respond_workflow_task_failed(self, request: RespondWorkflowTaskFailedRequest) -> None:
        self._polled_from.pop(request.task_token, None)
        await self.call(
            "RespondWorkflowTaskFailed",
            {
                "task_token": request.task_token,
                "cause": request.cause,
                "failure": request.failure,
                "identity": request.identity,
                "namespace": request.namespace,
            },
        )

    async def respond_query_task_completed(
        self, namespace: str, query_id: str, *, result: Payloads | None = None, error_message: str = ""
    ) -> None:
        await self.call(
            "RespondQueryTaskCompleted",
            {
                "namespace": namespace,
                "query_id": query_id,
                "result": result,
                "error_message": error_message,
            },
        )

    # -- activity tasks ------------------------------------------------------------------------------

    async def poll_activity_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollActivityTaskResponse | None:
        r = await self.call(
            "PollActivityTaskQueue",
            {
                "namespace": namespace,
                "task_queue": task_queue,
                "identity": identity,
                "timeout_s": timeout_s,
            },
            timeout=self._long(timeout_s),
        )
        return cv.activity_task_from_record(r["task"]) if r["task"] is not None else None

    async def record_activity_task_heartbeat(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> bool:
        r = await self.call(
            "RecordActivityTaskHeartbeat",
            {
                "task_token": task_token,
                "details": details,
                "identity": identity,
            },
        )
        return bool(r["cancel_requested"])

    async def respond_activity_task_completed(
        self, task_token: bytes, result: Payloads | None, *, identity: str = ""
    ) -> None:
        await self.call(
            "RespondActivityTaskCompleted",
            {
                "task_token": task_token,
                "result": result,
                "identity": identity,
            },
        )

    async def respond_activity_task_failed(
        self, task_token: bytes, failure: dict[str, Any], *, identity: str = ""
    ) -> None:
        await self.call(
            "RespondActivityTaskFailed",
            {
                "task_token": task_token,
                "failure": failure,
                "identity": identity,
            },
        )

    async def respond_activity_task_canceled(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> None:
        await self.call(
            "RespondActivityTaskCanceled",
            {
                "task_token": task_token,
                "details": details,
                "identity": identity,
            },
        )

    async def _by_id(self, method: str, ids: tuple[str, str, str, str], value: Record) -> Record:
        namespace, workflow_id, run_id, activity_id = ids
        record = {"namespace": namespace, "workflow_id": workflow_id, "run_id": run_id}
        return await self.call(method, {**record, "activity_id": activity_id, **value})

    async def record_activity_task_heartbeat_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        details: Payloads | None, *, identity: str = "",
    ) -> bool:  # fmt: skip
        ids = (namespace, workflow_id, run_id, activity_id)
        value = {"details": details, "identity": identity}
        return bool((await self._by_id("RecordActivityTaskHeartbeatById", ids, value))["cancel_requested"])

    async def respond_activity_task_completed_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        result: Payloads | None, *, identity: str = "",
    ) -> None:  # fmt: skip
        ids = (namespace, workflow_id, run_id, activity_id)
        await self._by_id("RespondActivityTaskCompletedById", ids, {"result": result, "identity": identity})

    async def respond_activity_task_failed_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        failure: dict[str, Any], *, identity: str = "",
    ) -> None:  # fmt: skip
        ids = (namespace, workflow_id, run_id, activity_id)
        await self._by_id("RespondActivityTaskFailedById", ids, {"failure": failure, "identity": identity})

    async def respond_activity_task_canceled_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        details: Payloads | None, *, identity: str = "",
    ) -> None:  # fmt: skip
        ids = (namespace, workflow_id, run_id, activity_id)
        await self._by_id("RespondActivityTaskCanceledById", ids, {"details": details, "identity": identity})

    # -- namespaces, visibility, cluster -------------------------------------------------------------

    async def register_namespace(self, info: NamespaceInfo) -> None:
        await self.call("RegisterNamespace", {"namespace": cv.namespace_to_record(info)})

    async def describe_namespace(self, name: str) -> NamespaceInfo:
        r = await self.call("DescribeNamespace", {"name": name})
        return cv.namespace_from_record(r["namespace"])

    async def list_namespaces(self) -> list[NamespaceInfo]:
        r = await self.call("ListNamespaces", {})
        return [cv.namespace_from_record(n) for n in r["namespaces"]]

    async def update_namespace(self, info: NamespaceInfo) -> None:
        await self.call("UpdateNamespace", {"namespace": cv.namespace_to_record(info)})

    async def describe_task_queue(
        self, namespace: str, task_queue: str, task_queue_type: str = "workflow"
    ) -> DescribeTaskQueueResponse:
        r = await self.call(
            "DescribeTaskQueue",
            {"namespace": namespace, "task_queue": task_queue, "task_queue_type": task_queue_type},
        )
        return DescribeTaskQueueResponse(
            [PollerInfo(p["identity"], p["last_access_time"], p["sticky_task_queue"]) for p in r["pollers"]],
            r["backlog_count_hint"],
        )

    async def describe_cluster(self) -> dict[str, Any]:
        r = await self.call("DescribeCluster", {})
        document: dict[str, Any] = json.loads(r["document"])
        return document

    async def list_cluster_members(self, role: str = "") -> list[ClusterMember]:
        r = await self.call("ListClusterMembers", {"role": role})
        return [ClusterMember(**m) for m in r["members"]]

    async def replication_dlq_work(self, source_cluster: str, action: str) -> dict[str, int]:
        r = await self.call("ReplicationDLQ", {"source_cluster": source_cluster, "action": action})
        document: dict[str, int] = json.loads(r["document"])
        return document

    async def failover_namespace(
        self, name: str, target_cluster: str, *, graceful: bool = False, timeout_s: float = 60.0
    ) -> FailoverResponse:
        r = await self.call(
            "FailoverNamespace",
            {"name": name, "target_cluster": target_cluster, "graceful": graceful, "timeout_s": timeout_s},
            timeout=self._long(timeout_s),
        )
        return FailoverResponse(
            cv.namespace_from_record(r["namespace"]), r["graceful"], r["seconds"], r["message"]
        )

    async def list_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        """One page of visibility records; FAILED_PRECONDITION (or UNIMPLEMENTED on an older server)
        when the server has no visibility store."""
        r = await self.call(
            "ListWorkflowExecutions",
            {
                "namespace": namespace,
                "query": query,
                "page_size": page_size,
                "next_page_token": next_page_token,
            },
        )
        return cv.executions_page_from_record(r)

    async def scan_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        r = await self.call(
            "ScanWorkflowExecutions",
            {
                "namespace": namespace,
                "query": query,
                "page_size": page_size,
                "next_page_token": next_page_token,
            },
        )
        return cv.executions_page_from_record(r)

    async def get_archived_workflow_history(
        self, namespace: str, workflow_id: str, run_id: str
    ) -> list[HistoryEvent]:
        """A run's history as retention archived it (the server must enable archival reads)."""
        r = await self.call(
            "GetArchivedWorkflowHistory",
            {"namespace": namespace, "workflow_id": workflow_id, "run_id": run_id},
        )
        return decode_events(r["history"])

    async def list_archived_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        """One page of archived visibility records matching ``query`` (the list-query language)."""
        r = await self.call(
            "ListArchivedWorkflowExecutions",
            {
                "namespace": namespace,
                "query": query,
                "page_size": page_size,
                "next_page_token": next_page_token,
            },
        )
        return cv.executions_page_from_record(r)

    async def count_workflow_executions(
        self, namespace: str, query: str = "", *, group_by_status: bool = False
    ) -> CountWorkflowExecutionsResponse:
        r = await self.call(
            "CountWorkflowExecutions",
            {"namespace": namespace, "query": query, "group_by_status": group_by_status},
        )
        return CountWorkflowExecutionsResponse(r["count"], dict(r["groups"]))

    async def reset_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reset_type: str,
        event_id: int = 0,
        reason: str = "",
        identity: str = "",
    ) -> str:
        r = await self.call(
            "ResetWorkflowExecution",
            {
                "namespace": namespace,
                "execution": cv.execution_to_record(execution),
                "reset_type": reset_type,
                "event_id": event_id,
                "reason": reason,
                "identity": identity,
            },
        )
        return str(r["run_id"])

    async def get_search_attributes(self) -> dict[str, str]:
        return dict((await self.call("GetSearchAttributes", {}))["attributes"])

    async def add_search_attributes(self, attributes: dict[str, str]) -> None:
        await self.call("AddSearchAttributes", {"attributes": dict(attributes)})

    async def get_cluster_info(self) -> Record:
        return await self.call("GetClusterInfo", {})
