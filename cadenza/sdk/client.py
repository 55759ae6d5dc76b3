"""The client: start workflows and talk to them.

``Client`` wraps a ``WorkflowService`` (in-process, or the network client) with the data converter;
``WorkflowHandle`` is one workflow id (optionally pinned to a run).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.schemas.ids import new_id
from cadenza.schemas.service import (
    GetHistoryRequest,
    StartWorkflowRequest,
    WorkflowExecution,
    WorkflowService,
)
from cadenza.sdk._call_options import RpcMetadata, check_metadata, rpc_options
from cadenza.sdk._runtime.definitions import _QUERY_MARK, _SIGNAL_MARK, QueryDefinition, WorkflowDefinition
from cadenza.sdk.common import (
    ARG_UNSET,
    QueryRejectCondition,
    RetryPolicy,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
    positional_args,
    timedelta_to_ms,
)
from cadenza.sdk.converter import DataConverter, default_converter
from cadenza.sdk.description import WorkflowExecutionDescription
from cadenza.sdk.exceptions import (
    CanceledError,
    QueryRejectedError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
    WorkflowFailureError,
)
from cadenza.sdk.history import (
    WorkflowHistory,
    WorkflowHistoryEventAsyncIterator,
    WorkflowHistoryEventFilterType,
)
from cadenza.sdk.interceptor import (
    AnyInterceptor,
    CancelWorkflowInput,
    CountWorkflowsInput,
    DescribeWorkflowInput,
    FetchWorkflowHistoryEventsInput,
    ListWorkflowsInput,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    TerminateWorkflowInput,
    UpdateWithStartStartWorkflowInput,
    UpdateWithStartUpdateWorkflowInput,
    client_chain,
)
from cadenza.sdk.listing import WorkflowExecutionAsyncIterator, WorkflowExecutionCount
from cadenza.sdk.runtime import Runtime, metered
from cadenza.sdk.search_attributes import TypedSearchAttributes, search_attribute_values

if TYPE_CHECKING:
    from cadenza.sdk.async_activity import AsyncActivityHandle
    from cadenza.sdk.client_updates import (
        WithStartWorkflowOperation,
        WorkflowUpdateHandle,
        WorkflowUpdateStage,
    )
    from cadenza.sdk.worker import Worker

R = TypeVar("R")

RESULT_POLL_S = 60.0
"""How long one call waits for a run to close before the client asks again."""
_EAGERLY_STARTED = "__cadenza_eagerly_started"
"""Set (True) on a handle whose start was eager: the first workflow task came back with it."""
_POLL_SHARE_OF_RPC_TIMEOUT = 0.8
"""With an ``rpc_timeout``, a long poll's wait on the server is this share of it, so the answer
(possibly empty) arrives before the deadline."""


def _start_input(req: StartWorkflowRequest, wait_s: float = 0.0) -> StartWorkflowInput:
    return StartWorkflowInput(
        req.workflow_type,
        req.workflow_id,
        req.task_queue,
        dict(req.header or {}),
        req,
        start_signal=req.signal_name,
        wait_s=wait_s,
    )


def _default_identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def workflow_type_name(workflow: Any) -> tuple[str, Any]:
    """(type name, result type hint) for a run method, a workflow class or a plain name."""
    if isinstance(workflow, str):
        return workflow, None
    if isinstance(workflow, type):
        defn = WorkflowDefinition.from_class(workflow)
    else:
        defn = WorkflowDefinition.from_run_fn(workflow)
    return defn.name, defn.run_return_type


def _handler_name(handler: Any, mark: str, kind: str) -> str:
    if isinstance(handler, str):
        return handler
    name = getattr(handler, mark, None)
    if not name:
        raise ValueError(f"{getattr(handler, '__qualname__', handler)!r} is not a @workflow.{kind} method")
    return str(name)


def _query_return_type(query: Any) -> Any:
    """The return hint of a ``@workflow.query`` method, to decode its answer (None if unknown)."""
    try:
        return QueryDefinition.from_fn(query).return_type
    except (ValueError, TypeError):
        return None


def _search_attribute_payloads(conv: DataConverter, values: Any) -> dict[str, Any]:
    """Payloads of search attributes given as a dict (any JSON value) or typed (their declared
    types recorded beside the values)."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {k: conv.to_payload(v) for k, v in values.items()}
    from cadenza.sdk._runtime.info import encode_search_attributes

    return encode_search_attributes(*search_attribute_values(values))


@dataclass(frozen=True)
class TLSConfig:
    """TLS for ``Client.connect``: PEM bytes. Set ``client_cert`` and ``client_private_key`` for a
    server that requires mutual TLS."""

    server_root_ca_cert: bytes | None = None
    """CA that signed the server's certificate; None uses the system's roots."""
    client_cert: bytes | None = None
    client_private_key: bytes | None = None
    domain: str | None = None
    """Name to verify the server's certificate against, when it differs from the target's host."""


class Client:
    def __init__(
        self,
        service: WorkflowService | None = None,
        *,
        namespace: str = "default",
        identity: str | None = None,
        data_converter: DataConverter | None = None,
        interceptors: Sequence[AnyInterceptor] = (),
        runtime: Runtime | None = None,
        service_client: WorkflowService | None = None,
        default_workflow_query_reject_condition: Any = None,
    ) -> None:
        """``service_client`` is temporalio's name for ``service``; so ``Client(**client.config())``
        makes a copy with some settings changed, as temporalio's samples do. temporalio's
        ``default_workflow_query_reject_condition`` is accepted and must be None (pass
        ``reject_condition`` per query)."""
        if (service is None) == (service_client is None):
            raise TypeError("Client(): pass the service (or temporalio's service_client), once")
        if default_workflow_query_reject_condition is not None:
            raise TypeError(
                "Client(): default_workflow_query_reject_condition is not supported; "
                "pass reject_condition to each query"
            )
        service = service if service is not None else service_client
        assert service is not None
        self._service_client = service
        self.runtime = runtime if runtime is not None else Runtime.default()
        """Where this client's and its workers' metrics go (``cadenza.sdk.runtime``)."""
        self.service = metered(service, self.runtime, namespace)
        self.namespace = namespace
        self.identity = identity or _default_identity()
        self.data_converter = data_converter or default_converter()
        self.interceptors = list(interceptors)
        """Also used by every ``Worker`` of this client (those that intercept workers)."""
        self._calls = client_chain(self.interceptors, self)
        """The client's calls through its interceptors (the calls themselves without any)."""
        self._outbound = self._calls if self.interceptors else None
        """Set when there are interceptors: the start path skips building their inputs otherwise."""
        self._api_key: str | Callable[[], str | Awaitable[str]] | None = None
        self._eager_workers: dict[str, list[Worker]] = {}
        """Running workers of this client by task queue: where an eager start's first workflow
        task goes (``start_workflow(request_eager_start=True)``)."""

    @classmethod
    async def connect(
        cls,
        target_host: Any = None,
        *,
        target: Any = None,
        namespace: str = "default",
        identity: str | None = None,
        data_converter: DataConverter | None = None,
        tls: TLSConfig | bool | None = None,
        rpc_timeout: float = 10.0,
        retries: int = 5,
        interceptors: Sequence[AnyInterceptor] = (),
        runtime: Runtime | None = None,
        api_key: str | Callable[[], str | Awaitable[str]] | None = None,
        rpc_metadata: RpcMetadata | None = None,
    ) -> Client:
        """Connects to a server.

        ``target`` is ``"host:port"``, a list of them (calls rotate between them and a retry moves
        on to the next), ``"dns:///name:port"`` (every address the name resolves to gets calls), or
        an in-process server object (a ``Host`` or anything with a ``frontend``), which is what the
        embedded engine and the test environment pass. ``tls`` is a ``TLSConfig`` (or True for TLS
        with the system's roots). ``rpc_timeout`` is the deadline of one call (long polls get
        their wait on top); ``retries`` bounds the retries of UNAVAILABLE (in process: of the
        client's calls, see ``_local.py``). Over the network the server is asked for its cluster
        info once, so a wrong address fails here. ``target_host`` (temporalio's name) and
        ``target`` are the same argument. ``interceptors`` wrap the client's calls (and the
        workers' runs; see ``cadenza.sdk.interceptor``). ``runtime`` (``cadenza.runtime.Runtime``)
        exports the client's and its workers' metrics (default: ``Runtime.default()``).
        ``api_key`` (temporalio's name) is sent as ``authorization: Bearer <api_key>`` with every
        call of the client and of its workers, for a server with authorization on (an in-process
        server has none and ignores it); it may also be
        a function (sync or async) returning the current key, asked before each call. Change it
        later with ``client.api_key = ...``. ``rpc_metadata`` (temporalio's name) is gRPC metadata
        sent with every call of the client and of its workers (``cadenza.envconfig`` fills it from
        a profile's ``grpc_meta``).
        """
        if target is not None and target_host is not None:
            raise TypeError("Client.connect: pass target_host or target, not both")
        target = target_host if target is None else target
        frontend = getattr(target, "frontend", None)
        if frontend is not None:
            from cadenza.sdk._local import local_service

            service: WorkflowService = local_service(frontend, retries=retries)
        elif isinstance(target, str) or (
            isinstance(target, list | tuple) and target and all(isinstance(t, str) for t in target)
        ):
            from cadenza.sdk._grpc import ChannelTLS, GrpcService

            targets = [target] if isinstance(target, str) else list(target)
            channel_tls = None
            if isinstance(tls, TLSConfig):
                channel_tls = ChannelTLS(
                    tls.server_root_ca_cert, tls.client_cert, tls.client_private_key, tls.domain
                )
            elif tls:
                channel_tls = ChannelTLS()
            grpc_service = GrpcService(
                targets,
                tls=channel_tls,
                rpc_timeout=rpc_timeout,
                retries=retries,
                api_key=api_key,
                metadata=check_metadata(rpc_metadata) if rpc_metadata else (),
            )
            try:
                await grpc_service.get_cluster_info()
            except BaseException:
                await grpc_service.close()
                raise
            service = grpc_service
        else:
            raise ValueError(
                f"cannot connect to {target!r}: pass 'host:port', a list of them, 'dns:///name:port', "
                "or an in-process server (the object returned by Host.start or WorkflowEnvironment)"
            )
        client = cls(
            service,
            namespace=namespace,
            identity=identity,
            data_converter=data_converter,
            interceptors=interceptors,
            runtime=runtime,
        )
        client._api_key = api_key
        return client

    def config(self) -> dict[str, Any]:
        """The keyword arguments that make this client (temporalio's ``Client.config()``): change
        some and pass them to ``Client(**config)`` for a client on the same connection."""
        return {
            "service_client": self._service_client,
            "namespace": self.namespace,
            "identity": self.identity,
            "data_converter": self.data_converter,
            "interceptors": list(self.interceptors),
            "runtime": self.runtime,
        }

    @property
    def api_key(self) -> str | Callable[[], str | Awaitable[str]] | None:
        """The key sent as ``authorization: Bearer <key>`` (None: none). Setting it applies to the
        next call of this client and of its workers, as temporalio's ``Client.api_key`` does."""
        return self._api_key

    @api_key.setter
    def api_key(self, value: str | Callable[[], str | Awaitable[str]] | None) -> None:
        set_api_key = getattr(self.service, "set_api_key", None)
        if set_api_key is None:
            raise ValueError("api_key applies to a client connected over the network (host:port)")
        set_api_key(value)
        self._api_key = value

    # -- starting ----------------------------------------------------------------------------------

    async def start_workflow(
        self,
        workflow: Callable[..., Any] | type | str,
        *arguments: Any,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str,
        task_queue: str,
        execution_timeout: timedelta | None = None,
        run_timeout: timedelta | None = None,
        task_timeout: timedelta | None = None,
        id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        retry_policy: RetryPolicy | None = None,
        cron_schedule: str = "",
        memo: dict[str, Any] | None = None,
        search_attributes: Mapping[str, Any] | TypedSearchAttributes | None = None,
        static_summary: str | None = None,
        static_details: str | None = None,
        start_delay: timedelta | None = None,
        request_id: str | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
        result_type: Any = None,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
        request_eager_start: bool = False,
    ) -> WorkflowHandle[Any]:
        """Starts a run; with ``start_signal``, signals it (starting it first if it is not running).
        Arguments are encoded before anything is sent, so one that cannot be encoded raises here.
        Arguments go positionally or as ``args=[...]``; ``search_attributes`` is a dict or
        ``TypedSearchAttributes``.

        ``id_reuse_policy`` decides about a *closed* run of the id, ``id_conflict_policy`` about a
        *running* one: FAIL (also UNSPECIFIED) raises ``WorkflowAlreadyStartedError``,
        USE_EXISTING returns the running run's handle, TERMINATE_EXISTING terminates it and starts
        this one in the same write. ``start_delay`` holds the first workflow task back (a durable
        timer; the started event's ``first_workflow_task_backoff_ms``); a signal-with-start to
        the delayed run dispatches it at once, a plain signal does not; not with
        ``cron_schedule``. ``rpc_metadata`` / ``rpc_timeout``: gRPC metadata and deadline of this
        call. ``request_eager_start``: when a worker of this client runs the workflow on
        ``task_queue`` with a free slot, the server starts the first workflow task for it and
        returns it with the start (no poll; the handle's ``__temporal_eagerly_started`` is then
        True, as temporalio's); otherwise the start is an ordinary one. ``static_summary`` and
        ``static_details`` are checked and not stored yet: ``describe()`` shows None."""
        req, ret = self._start_request(
            workflow,
            positional_args(arguments, args, "start_workflow()", arg),
            id=id,
            task_queue=task_queue,
            execution_timeout=execution_timeout,
            run_timeout=run_timeout,
            task_timeout=task_timeout,
            id_reuse_policy=id_reuse_policy,
            id_conflict_policy=id_conflict_policy,
            retry_policy=retry_policy,
            cron_schedule=cron_schedule,
            memo=memo,
            search_attributes=search_attributes,
            static_summary=static_summary,
            static_details=static_details,
            start_delay=start_delay,
            request_id=request_id,
            start_signal=start_signal,
            start_signal_args=start_signal_args,
        )
        eager = None
        if request_eager_start and not start_signal and not cron_schedule and not start_delay:
            eager = await self._eager_worker(task_queue, req.workflow_type)
            req.request_eager_execution = eager is not None
        resp = None
        try:
            with rpc_options(rpc_metadata, rpc_timeout):
                if self._outbound is not None:
                    resp = await self._outbound.start_workflow(_start_input(req))
                else:
                    resp = await self.service.start_workflow_execution(req)
        finally:
            if eager is not None:  # the reserved slot is used or given back
                eager._take_eager_workflow_task(getattr(resp, "eager_workflow_task", None))
        handle: WorkflowHandle[Any] = WorkflowHandle(
            self, id, run_id=None, first_run_id=resp.run_id, result_type=result_type or ret
        )
        if getattr(resp, "eager_workflow_task", None) is not None:
            setattr(handle, _EAGERLY_STARTED, True)
            setattr(handle, "__temporal_eagerly_started", True)  # temporalio's name, which its tests read
        return handle

    async def _eager_worker(self, task_queue: str, workflow_type: str) -> Worker | None:
        """A running worker of this client for an eager start, with a slot reserved; None if none."""
        for worker in self._eager_workers.get(task_queue, ()):
            if await worker._reserve_eager_workflow_task(workflow_type):
                return worker
        return None

    def _start_request(
        self,
        workflow: Callable[..., Any] | type | str,
        args: Sequence[Any],
        *,
        id: str,
        task_queue: str,
        execution_timeout: timedelta | None = None,
        run_timeout: timedelta | None = None,
        task_timeout: timedelta | None = None,
        id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        retry_policy: RetryPolicy | None = None,
        cron_schedule: str = "",
        memo: dict[str, Any] | None = None,
        search_attributes: Mapping[str, Any] | TypedSearchAttributes | None = None,
        static_summary: str | None = None,
        static_details: str | None = None,
        start_delay: timedelta | None = None,
        request_id: str | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
    ) -> tuple[StartWorkflowRequest, Any]:
        """The start request, and the result type the workflow's code declares."""
        for field_name, text in (("static_summary", static_summary), ("static_details", static_details)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"{field_name} must be a str, got {type(text).__name__}")
        name, ret = workflow_type_name(workflow)
        conv = self.data_converter
        req = StartWorkflowRequest(
            namespace=self.namespace,
            workflow_id=id,
            workflow_type=name,
            task_queue=task_queue,
            input=conv.to_payloads(args) if args else None,
            workflow_execution_timeout_ms=timedelta_to_ms(execution_timeout, "execution_timeout"),
            workflow_run_timeout_ms=timedelta_to_ms(run_timeout, "run_timeout"),
            workflow_task_timeout_ms=timedelta_to_ms(task_timeout, "task_timeout"),
            request_id=request_id or new_id(),
            identity=self.identity,
            workflow_id_reuse_policy=WorkflowIDReusePolicy(id_reuse_policy).value,
            workflow_id_conflict_policy=WorkflowIDConflictPolicy(id_conflict_policy).wire_name,
            workflow_start_delay_ms=timedelta_to_ms(start_delay, "start_delay"),
            retry_policy=retry_policy.to_dict() if retry_policy else None,
            cron_schedule=cron_schedule,
            memo={k: conv.to_payload(v) for k, v in (memo or {}).items()},
            search_attributes=_search_attribute_payloads(conv, search_attributes),
            signal_name=start_signal or "",
            signal_input=conv.to_payloads(list(start_signal_args)) if start_signal_args else None,
        )
        return req, ret

    async def execute_workflow(
        self,
        workflow: Callable[..., Any] | type | str,
        *arguments: Any,
        id: str,
        task_queue: str,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Starts a run and returns its result (``start_workflow`` then ``result``, with
        ``start_workflow``'s options). The start also waits for the close, so a run that ends
        within a minute costs one round trip; with ``rpc_timeout`` (which, as in temporalio,
        bounds the start only) it does not wait, and ``result()`` waits as long as it takes."""
        result_type = kwargs.pop("result_type", None)
        rpc_metadata = kwargs.pop("rpc_metadata", None)
        rpc_timeout = kwargs.pop("rpc_timeout", None)
        kwargs.pop("request_eager_start", None)  # accepted, as by start_workflow
        call_args = positional_args(arguments, args, "execute_workflow()", arg)
        req, ret = self._start_request(workflow, call_args, id=id, task_queue=task_queue, **kwargs)
        wait_s = RESULT_POLL_S if rpc_timeout is None else 0.0
        with rpc_options(rpc_metadata, rpc_timeout):
            if self._outbound is not None:
                started, closed = await self._outbound.start_workflow(_start_input(req, wait_s))
            else:
                started, closed = await self.service.start_workflow_execution_and_wait(req, wait_s)
        handle: WorkflowHandle[Any] = WorkflowHandle(
            self, id, run_id=None, first_run_id=started.run_id, result_type=result_type or ret
        )
        if closed:
            close = closed[-1]
            next_run = close.attributes.get("new_execution_run_id")
            if not next_run:
                return handle._decode_close(close)
            return await handle._wait_result(next_run)  # continued as new: follow it, as result() does
        return await handle.result()

    async def signal_with_start_workflow(
        self,
        workflow: Callable[..., Any] | type | str,
        *arguments: Any,
        id: str,
        task_queue: str,
        signal: Any,
        signal_args: Sequence[Any] = (),
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        return await self.start_workflow(
            workflow,
            *positional_args(arguments, args, "signal_with_start_workflow()", arg),
            id=id,
            task_queue=task_queue,
            start_signal=_handler_name(signal, _SIGNAL_MARK, "signal"),
            start_signal_args=signal_args,
            **kwargs,
        )

    async def start_update_with_start_workflow(
        self,
        update: Any,
        *arguments: Any,
        start_workflow_operation: WithStartWorkflowOperation[Any],
        wait_for_stage: WorkflowUpdateStage,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str | None = None,
        result_type: Any = None,
        rpc_timeout: timedelta | None = None,
        rpc_metadata: RpcMetadata | None = None,
    ) -> WorkflowUpdateHandle[Any]:
        """Update-with-start: starts ``start_workflow_operation``'s workflow unless it is running
        (then that run is used), sends it the update and waits for ``wait_for_stage``;
        ``await start_workflow_operation.workflow_handle()`` gives the workflow's handle."""
        from cadenza.sdk.client_updates import update_name, update_result_type

        op = start_workflow_operation
        start, ret = self._start_request(
            op.workflow, op.args, id=op.id, task_queue=op.task_queue, **op.start_options
        )
        metadata = dict(rpc_metadata or {})
        handle: WorkflowUpdateHandle[Any] = await self._calls.start_update_with_start_workflow(
            StartWorkflowUpdateWithStartInput(
                UpdateWithStartStartWorkflowInput(
                    start.workflow_type,
                    op.args,
                    op.id,
                    op.task_queue,
                    op.id_conflict_policy,
                    {},
                    op.result_type or ret,
                    start,
                    metadata,
                    rpc_timeout,
                ),
                UpdateWithStartUpdateWorkflowInput(
                    op.id,
                    id,
                    update_name(update),
                    positional_args(arguments, args, "update", arg),
                    wait_for_stage,
                    {},
                    result_type or update_result_type(update),
                    metadata,
                    rpc_timeout,
                ),
                op,
            )
        )
        return handle

    async def execute_update_with_start_workflow(
        self,
        update: Any,
        *arguments: Any,
        start_workflow_operation: WithStartWorkflowOperation[Any],
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str | None = None,
        result_type: Any = None,
        rpc_timeout: timedelta | None = None,
        rpc_metadata: RpcMetadata | None = None,
    ) -> Any:
        """Update-with-start, waiting for the update's result (see ``start_update_with_start_workflow``)."""
        from cadenza.sdk.client_updates import WorkflowUpdateStage

        handle = await self.start_update_with_start_workflow(
            update,
            *arguments,
            start_workflow_operation=start_workflow_operation,
            wait_for_stage=WorkflowUpdateStage.COMPLETED,
            args=args,
            arg=arg,
            id=id,
            result_type=result_type,
            rpc_timeout=rpc_timeout,
            rpc_metadata=rpc_metadata,
        )
        return await handle.result(rpc_timeout=rpc_timeout, rpc_metadata=rpc_metadata)

    def list_workflows(
        self,
        query: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 1000,
        next_page_token: bytes | None = None,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> WorkflowExecutionAsyncIterator:
        """The runs visibility holds that match ``query`` (the language of ``cadenza wf list -q``;
        None: all), as an async iterator fetching a page of ``page_size`` at a time; ``limit``
        stops after that many (temporalio's ``list_workflows``). ``rpc_metadata`` and
        ``rpc_timeout`` go with each page's call."""
        iterator: WorkflowExecutionAsyncIterator = self._calls.list_workflows(
            ListWorkflowsInput(query, page_size, next_page_token, rpc_metadata or {}, rpc_timeout, limit)
        )
        return iterator

    async def count_workflows(
        self,
        query: str | None = None,
        *,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> WorkflowExecutionCount:
        """How many runs match ``query``; ending it with ``GROUP BY ExecutionStatus`` also counts
        each status (temporalio's ``count_workflows``)."""
        count: WorkflowExecutionCount = await self._calls.count_workflows(
            CountWorkflowsInput(query, rpc_metadata or {}, rpc_timeout)
        )
        return count

    def get_workflow_handle(
        self,
        workflow_id: str,
        *,
        run_id: str | None = None,
        first_execution_run_id: str | None = None,
        result_type: Any = None,
    ) -> WorkflowHandle[Any]:
        return WorkflowHandle(
            self,
            workflow_id,
            run_id=run_id,
            first_run_id=run_id or first_execution_run_id,
            result_type=result_type,
        )

    def get_workflow_handle_for(
        self, workflow: Callable[..., Any], workflow_id: str, *, run_id: str | None = None
    ) -> WorkflowHandle[Any]:
        """A handle whose ``result()`` is decoded by ``workflow``'s return hint (temporalio's name)."""
        result_type = workflow_type_name(workflow)[1]
        return self.get_workflow_handle(workflow_id, run_id=run_id, result_type=result_type)

    def get_async_activity_handle(
        self,
        *,
        task_token: bytes | None = None,
        workflow_id: str | None = None,
        run_id: str | None = None,
        activity_id: str | None = None,
    ) -> AsyncActivityHandle:
        """A handle to complete, fail, heartbeat or cancel an activity that called
        ``activity.raise_complete_async()``: by its ``task_token`` (``activity.info().task_token``),
        or by ``workflow_id``, ``activity_id`` and optionally ``run_id`` (default: the current run)."""
        from cadenza.sdk.async_activity import AsyncActivityHandle

        return AsyncActivityHandle(
            self, task_token=task_token, workflow_id=workflow_id, run_id=run_id, activity_id=activity_id
        )


class WorkflowHandle(Generic[R]):
    """A workflow id, optionally pinned to one run (``run_id``); ``first_run_id`` is the run a start
    returned, which ``result()`` follows."""

    def __init__(
        self,
        client: Client,
        workflow_id: str,
        *,
        run_id: str | None,
        first_run_id: str | None,
        result_type: Any = None,
    ) -> None:
        self.client = client
        self.id = workflow_id
        self.run_id = run_id
        self.first_run_id = first_run_id
        self.result_type = result_type

    def _execution(self, run_id: str | None = None) -> WorkflowExecution:
        return WorkflowExecution(self.id, run_id or self.run_id or "")

    async def result(
        self,
        *,
        timeout: float | None = None,
        follow_runs: bool = True,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> R:
        """Waits for the workflow to close; returns its result or raises ``WorkflowFailureError``.

        With ``follow_runs`` (the default) a run that continued as new, was retried or is a cron run
        is followed to the run that finally closes, as the anchors' clients do. ``timeout`` bounds
        the whole wait; ``rpc_timeout`` (temporalio's) each history poll, whose wait on the server
        is shortened to fit it, so a long wait is several polls rather than a DEADLINE_EXCEEDED."""
        run_id = self.run_id or self.first_run_id or ""
        poll_s = RESULT_POLL_S
        if rpc_timeout is not None:
            poll_s = min(poll_s, rpc_timeout.total_seconds() * _POLL_SHARE_OF_RPC_TIMEOUT)
        with rpc_options(rpc_metadata, rpc_timeout):
            return await asyncio.wait_for(self._wait_result(run_id, follow_runs, poll_s), timeout)

    async def _wait_result(self, run_id: str, follow_runs: bool = True, poll_s: float = RESULT_POLL_S) -> Any:
        c = self.client
        while True:
            resp = await c.service.get_workflow_execution_history(
                GetHistoryRequest(
                    c.namespace,
                    WorkflowExecution(self.id, run_id),
                    close_event_only=True,
                    wait_new_event=True,
                    timeout_s=poll_s,
                )
            )
            if resp.events:
                close = resp.events[-1]
                next_run = close.attributes.get("new_execution_run_id")
                if follow_runs and next_run:
                    run_id = next_run
                    continue
                return self._decode_close(close)

    def _decode_close(self, event: HistoryEvent) -> Any:
        conv = self.client.data_converter
        a = event.attributes
        et = event.event_type
        if et == EventType.WORKFLOW_EXECUTION_COMPLETED:
            values = conv.from_payloads(a.get("result"), [self.result_type] if self.result_type else None)
            return values[0] if values else None
        if et == EventType.WORKFLOW_EXECUTION_FAILED:
            raise WorkflowFailureError(conv.failure_to_exception(a["failure"] or {}))
        if et == EventType.WORKFLOW_EXECUTION_CANCELED:
            details = conv.from_payloads(a.get("details"))
            raise WorkflowFailureError(CanceledError("workflow canceled", *details))
        if et == EventType.WORKFLOW_EXECUTION_TERMINATED:
            details = conv.from_payloads(a.get("details"))
            raise WorkflowFailureError(TerminatedError(a.get("reason") or "terminated", *details))
        if et == EventType.WORKFLOW_EXECUTION_TIMED_OUT:
            raise WorkflowFailureError(TimeoutError("workflow timed out", type=TimeoutType.START_TO_CLOSE))
        raise WorkflowFailureError(RuntimeError(f"run closed with {et.name}"))

    async def signal(
        self,
        signal: Any,
        *arguments: Any,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        request_id: str | None = None,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        """Sends a signal. Addressed by workflow id (no ``run_id``), it goes to the current run;
        UNAVAILABLE (a run that keeps continuing as new while the server resolves it) is retried
        with backoff a few times, under the same request id, by both transports."""
        name = _handler_name(signal, _SIGNAL_MARK, "signal")
        values = positional_args(arguments, args, "signal()", arg)
        await self.client._calls.signal_workflow(
            SignalWorkflowInput(
                self.id,
                self.run_id or "",
                name,
                values,
                {},
                request_id or new_id(),
                rpc_metadata or {},
                rpc_timeout,
            )
        )

    async def execute_update(
        self,
        update: Any,
        *arguments: Any,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str | None = None,
        result_type: Any = None,
        rpc_timeout: timedelta | None = None,
        rpc_metadata: RpcMetadata | None = None,
    ) -> Any:
        """Sends a workflow update and returns its result: ``WorkflowUpdateFailedError`` if the
        validator rejected it or the handler failed. ``id`` deduplicates: sent again with the same
        id, the update runs once and every caller gets its outcome."""
        from cadenza.sdk.client_updates import WorkflowUpdateStage

        handle = await self.start_update(
            update,
            *arguments,
            wait_for_stage=WorkflowUpdateStage.COMPLETED,
            args=args,
            arg=arg,
            id=id,
            result_type=result_type,
            rpc_timeout=rpc_timeout,
            rpc_metadata=rpc_metadata,
        )
        return await handle.result(rpc_timeout=rpc_timeout, rpc_metadata=rpc_metadata)

    async def start_update(
        self,
        update: Any,
        *arguments: Any,
        wait_for_stage: WorkflowUpdateStage,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        id: str | None = None,
        result_type: Any = None,
        rpc_timeout: timedelta | None = None,
        rpc_metadata: RpcMetadata | None = None,
    ) -> WorkflowUpdateHandle[Any]:
        """Sends a workflow update and waits until it reaches ``wait_for_stage`` (ACCEPTED: the
        validator passed and the handler started; COMPLETED); returns its handle."""
        from cadenza.sdk.client_updates import update_name, update_result_type

        values = positional_args(arguments, args, "update", arg)
        handle: WorkflowUpdateHandle[Any] = await self.client._calls.start_workflow_update(
            StartWorkflowUpdateInput(
                self.id,
                self.run_id,
                None,
                id,
                update_name(update),
                values,
                wait_for_stage,
                {},
                result_type or update_result_type(update),
                rpc_metadata or {},
                rpc_timeout,
            )
        )
        return handle

    def get_update_handle(
        self, id: str, *, workflow_run_id: str | None = None, result_type: Any = None
    ) -> WorkflowUpdateHandle[Any]:
        """The handle of update ``id`` of this workflow, sent before (by this client or another)."""
        from cadenza.sdk.client_updates import WorkflowUpdateHandle

        return WorkflowUpdateHandle(
            self.client, id, self.id, workflow_run_id=workflow_run_id or self.run_id, result_type=result_type
        )

    def get_update_handle_for(
        self, update: Any, id: str, *, workflow_run_id: str | None = None
    ) -> WorkflowUpdateHandle[Any]:
        """``get_update_handle`` with the result decoded by ``update``'s return hint."""
        from cadenza.sdk.client_updates import update_result_type

        result_type = update_result_type(update)
        return self.get_update_handle(id, workflow_run_id=workflow_run_id, result_type=result_type)

    async def query(
        self,
        query: Any,
        *arguments: Any,
        arg: Any = ARG_UNSET,
        args: Sequence[Any] | None = None,
        result_type: Any = None,
        reject_condition: QueryRejectCondition = QueryRejectCondition.NONE,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> Any:
        """Runs a query handler on the workflow's current state. ``reject_condition`` refuses the
        query (``QueryRejectedError``) when the run is closed, or closed other than cleanly. The
        answer is decoded by ``result_type`` or else the handler's return hint."""
        values = positional_args(arguments, args, "query()", arg)
        if result_type is None and not isinstance(query, str):
            result_type = _query_return_type(query)
        if reject_condition is not QueryRejectCondition.NONE:
            status = (await self.describe(rpc_metadata=rpc_metadata, rpc_timeout=rpc_timeout)).status
            if reject_condition.rejects(status):
                raise QueryRejectedError(status)
        name = _handler_name(query, _QUERY_MARK, "query")
        return await self.client._calls.query_workflow(
            QueryWorkflowInput(
                self.id,
                self.run_id or "",
                name,
                values,
                {},
                result_type,
                rpc_metadata or {},
                rpc_timeout,
            )
        )

    async def cancel(
        self, *, rpc_metadata: RpcMetadata | None = None, rpc_timeout: timedelta | None = None
    ) -> None:
        """Requests cancellation (UNAVAILABLE is retried as for :meth:`signal`)."""
        await self.client._calls.cancel_workflow(
            CancelWorkflowInput(self.id, self.run_id, None, rpc_metadata or {}, rpc_timeout)
        )

    async def terminate(
        self,
        reason_or_detail: Any = "",
        *details: Any,
        reason: str | None = None,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> None:
        """Terminates the run (UNAVAILABLE is retried as for :meth:`signal`). The reason goes first
        or, as temporalio writes it, as ``reason=`` after the details (``terminate(*details,
        reason=...)``)."""
        if reason is None:
            reason = str(reason_or_detail or "")
        elif reason_or_detail != "":
            details = (reason_or_detail, *details)
        await self.client._calls.terminate_workflow(
            TerminateWorkflowInput(
                self.id, self.run_id, None, details, reason, rpc_metadata or {}, rpc_timeout
            )
        )

    async def reset(self, *, reset_type: str = "LastWorkflowTask", event_id: int = 0, reason: str) -> str:
        """Starts the workflow over from a past workflow task (``FirstWorkflowTask``,
        ``LastWorkflowTask`` or ``EventId`` with a WorkflowTaskCompleted ``event_id``); the current run
        is terminated and signals received after that point are delivered again. Returns the new
        run's id; this handle then follows the new run."""
        c = self.client
        new_run = await c.service.reset_workflow_execution(  # type: ignore[attr-defined]
            c.namespace,
            self._execution(),
            reset_type=reset_type,
            event_id=event_id,
            reason=reason,
            identity=c.identity,
        )
        self.run_id = None
        self.first_run_id = new_run
        return str(new_run)

    async def describe(
        self, *, rpc_metadata: RpcMetadata | None = None, rpc_timeout: timedelta | None = None
    ) -> WorkflowExecutionDescription:
        """The run's state. ``search_attributes`` and ``memo`` are decoded values (the payloads stay in
        ``raw_search_attributes`` / ``raw_memo``); ``typed_search_attributes`` is the typed view."""
        description: WorkflowExecutionDescription = await self.client._calls.describe_workflow(
            DescribeWorkflowInput(self.id, self.run_id, rpc_metadata or {}, rpc_timeout)
        )
        return description

    async def fetch_history(
        self,
        *,
        branch_id: str = "",
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> WorkflowHistory:
        """The run's history; ``branch_id``: one of its other branches (``describe().version_histories``
        lists them), e.g. the history a conflict between clusters replaced."""
        events = self.fetch_history_events(
            rpc_metadata=rpc_metadata, rpc_timeout=rpc_timeout, branch_id=branch_id
        )
        collected = [e async for e in events]
        return WorkflowHistory(self.id, events.run_id, collected)

    def fetch_history_events(
        self,
        *,
        page_size: int | None = None,
        next_page_token: bytes | None = None,
        wait_new_event: bool = False,
        event_filter_type: WorkflowHistoryEventFilterType = WorkflowHistoryEventFilterType.ALL_EVENT,
        skip_archival: bool = False,
        rpc_metadata: RpcMetadata | None = None,
        rpc_timeout: timedelta | None = None,
        branch_id: str = "",
    ) -> WorkflowHistoryEventAsyncIterator:
        """The run's history events, fetched a page at a time as they are iterated (temporalio's
        name). ``wait_new_event``: once the events so far are read, wait for the next ones until
        the run closes; ``event_filter_type`` CLOSE_EVENT: only the close event."""
        iterator: WorkflowHistoryEventAsyncIterator = self.client._calls.fetch_workflow_history_events(
            FetchWorkflowHistoryEventsInput(
                self.id,
                self.run_id,
                page_size,
                next_page_token,
                wait_new_event,
                event_filter_type,
                skip_archival,
                rpc_metadata or {},
                rpc_timeout,
                branch_id,
            )
        )
        return iterator
