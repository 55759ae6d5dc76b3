"""Child workflows, handles to other workflows, and continue-as-new, as workflow code sees them.

A child is started by a START_CHILD_WORKFLOW_EXECUTION command; its handle resolves "started" when
history shows ChildWorkflowExecutionStarted (or fails on StartChildWorkflowExecutionFailed) and its
result on the child's close event. Signals and cancels to other workflows are commands whose
outcome events resolve their futures.

Cancelling a child (``ChildWorkflowHandle.cancel()``, or cancelling a task that awaits the child)
follows its :class:`ChildWorkflowCancellationType`, as temporalio's do: ABANDON asks nothing and
resolves at once; TRY_CANCEL asks for the child's cancellation and resolves at once;
WAIT_CANCELLATION_REQUESTED resolves once the request reached the child; WAIT_CANCELLATION_COMPLETED
(the default) resolves with the child's close. "Resolves as cancelled" means a
:class:`ChildWorkflowError` whose cause is a :class:`CanceledError`. A child whose start command has
not left the task is simply withdrawn. Continue-as-new ends the run by raising
``ContinueAsNewError``, a ``BaseException`` so that ``except Exception`` in workflow code cannot
swallow it by accident.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk.common import ARG_UNSET, RetryPolicy, WorkflowIDReusePolicy, positional_args, timedelta_to_ms
from cadenza.sdk.exceptions import (
    ApplicationError,
    CanceledError,
    ChildWorkflowError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
    WorkflowAlreadyStartedError,
)
from cadenza.sdk.interceptor import (
    ContinueAsNewInput,
    SignalChildWorkflowInput,
    SignalExternalWorkflowInput,
    StartChildWorkflowInput,
)
from cadenza.sdk.payload_converter import plain_headers

if TYPE_CHECKING:
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = [
    "ChildWorkflowCancellationType",
    "ChildWorkflowHandle",
    "ContinueAsNewError",
    "ExternalWorkflowHandle",
    "ParentClosePolicy",
    "continue_as_new",
    "execute_child_workflow",
    "get_external_workflow_handle",
    "get_external_workflow_handle_for",
    "start_child_workflow",
]


class ParentClosePolicy(enum.StrEnum):
    """What happens to a running child when its parent closes."""

    TERMINATE = "TERMINATE"
    REQUEST_CANCEL = "REQUEST_CANCEL"
    ABANDON = "ABANDON"


class ChildWorkflowCancellationType(enum.IntEnum):
    """What cancelling a child from its parent's code does (temporalio's names and values)."""

    ABANDON = 0
    """Do not tell the child: resolve at once as cancelled and let it run on."""
    TRY_CANCEL = 1
    """Ask for the child's cancellation and resolve at once as cancelled."""
    WAIT_CANCELLATION_COMPLETED = 2
    """Ask for the child's cancellation and wait for the child to close (the default)."""
    WAIT_CANCELLATION_REQUESTED = 3
    """Ask for the child's cancellation and resolve as cancelled once the request reached it."""


_WAIT_COMPLETED = ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED


class ContinueAsNewError(BaseException):
    """Raised by ``workflow.continue_as_new``: the run closes and a fresh one starts."""

    def __init__(self, command: Command) -> None:
        super().__init__("continue as new")
        self.command = command


def _instance(what: str) -> WorkflowInstance:
    from cadenza.sdk._runtime.instance import current_instance

    return current_instance(what)


def _type_name(workflow: Any) -> tuple[str, Any]:
    from cadenza.sdk._runtime.definitions import WorkflowDefinition

    if isinstance(workflow, str):
        return workflow, None
    defn = (
        WorkflowDefinition.from_class(workflow)
        if isinstance(workflow, type)
        else WorkflowDefinition.from_run_fn(workflow)
    )
    return defn.name, defn.run_return_type


class _Children:
    """Per-instance bookkeeping, installed on first use (its events only follow its commands)."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self.instance = instance
        self.by_initiated: dict[int, ChildWorkflowHandle] = {}
        self.requests: dict[int, asyncio.Future[None]] = {}
        a = instance.appliers
        a[EventType.START_CHILD_WORKFLOW_EXECUTION_FAILED] = self._start_failed
        a[EventType.CHILD_WORKFLOW_EXECUTION_STARTED] = self._started
        for et in (
            EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED,
            EventType.CHILD_WORKFLOW_EXECUTION_FAILED,
            EventType.CHILD_WORKFLOW_EXECUTION_CANCELED,
            EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
            EventType.CHILD_WORKFLOW_EXECUTION_TERMINATED,
        ):
            a[et] = self._closed
        for et in (
            EventType.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            EventType.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
        ):
            a[et] = self._request_done

    @classmethod
    def of(cls, instance: WorkflowInstance) -> _Children:
        existing: _Children | None = getattr(instance, "_cadenza_children", None)
        if existing is None:
            existing = cls(instance)
            instance._cadenza_children = existing  # type: ignore[attr-defined]
        return existing

    def _start_failed(self, event: HistoryEvent) -> None:
        handle = self.by_initiated.get(event.attributes["initiated_event_id"])
        if handle is not None and not handle._started.done():
            handle._started.set_exception(
                WorkflowAlreadyStartedError(handle.id, "", event.attributes.get("workflow_type", ""))
            )

    def _started(self, event: HistoryEvent) -> None:
        handle = self.by_initiated.get(event.attributes["initiated_event_id"])
        if handle is None:
            return
        handle.run_id = (event.attributes.get("workflow_execution") or {}).get("run_id", "")
        handle.started_event_id = event.event_id
        if not handle._started.done():
            handle._started.set_result(None)

    def _closed(self, event: HistoryEvent) -> None:
        a = event.attributes
        handle = self.by_initiated.get(a["initiated_event_id"])
        if handle is None or handle._result.done():
            return
        conv = self.instance.converter
        et = event.event_type
        if et == EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED:
            try:
                values = conv.from_payloads(
                    a.get("result"), [handle.result_type] if handle.result_type else None
                )
            except Exception as err:
                handle._result.set_exception(err)
                return
            handle._result.set_result(values[0] if values else None)
            return
        cause: BaseException
        if et == EventType.CHILD_WORKFLOW_EXECUTION_FAILED:
            cause = conv.failure_to_exception(a.get("failure") or {})
        elif et == EventType.CHILD_WORKFLOW_EXECUTION_CANCELED:
            cause = CanceledError("child workflow canceled")
        elif et == EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
            cause = TimeoutError("child workflow timed out", type=TimeoutType.START_TO_CLOSE)
        else:
            cause = TerminatedError("child workflow terminated")
        handle._result.set_exception(
            ChildWorkflowError(
                f"child workflow {handle.id!r} ended: {cause}",
                namespace=a.get("namespace", ""),
                workflow_id=handle.id,
                run_id=handle.run_id,
                workflow_type=handle.workflow_type,
                initiated_event_id=a["initiated_event_id"],
                started_event_id=handle.started_event_id,
                retry_state=a.get("retry_state"),
                cause=cause,
            )
        )

    def _request_done(self, event: HistoryEvent) -> None:
        fut = self.requests.pop(event.attributes["initiated_event_id"], None)
        if fut is None or fut.done():
            return
        if event.event_type in (
            EventType.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            EventType.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ):
            fut.set_result(None)
        else:
            target = event.attributes.get("workflow_execution") or {}
            fut.set_exception(
                ApplicationError(
                    f"workflow {target.get('workflow_id')!r} not found or already closed",
                    type="ExternalWorkflowExecutionNotFound",
                )
            )

    def request(self, command: Command) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.instance.loop.create_future()

        def on_recorded(event: HistoryEvent) -> None:
            self.requests[event.event_id] = fut

        self.instance.commands.add(command, on_recorded)
        return fut


class ChildWorkflowHandle:
    """A started child workflow: ``await`` it for its result, signal it, or ``cancel()`` it."""

    def __init__(
        self,
        instance: WorkflowInstance,
        workflow_id: str,
        workflow_type: str,
        result_type: Any,
        cancellation_type: ChildWorkflowCancellationType = _WAIT_COMPLETED,
    ) -> None:
        self._instance = instance
        self.id = workflow_id
        self.workflow_type = workflow_type
        self.run_id = ""
        self.started_event_id = 0
        self.result_type = result_type
        self.cancellation_type = ChildWorkflowCancellationType(cancellation_type)
        self._started: asyncio.Future[None] = instance.loop.create_future()
        self._result: asyncio.Future[Any] = instance.loop.create_future()
        self._cancel_requested = False

    @property
    def first_execution_run_id(self) -> str:
        """The run id the child started with (temporalio's name)."""
        return self.run_id

    def __await__(self) -> Any:
        return self._wait().__await__()

    async def result(self) -> Any:
        return await self._wait()

    def done(self) -> bool:
        """True once the child's outcome is known to the parent."""
        return self._result.done()

    async def _wait(self) -> Any:
        # Shielded: cancelling the awaiting task cancels the child (as its type says) and the wait
        # goes on for the outcome, instead of cancelling the future the close event resolves.
        future = self._result
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done():
                    raise
                self.cancel()

    def cancel(self, msg: Any | None = None) -> bool:
        """Request the child's cancellation as its cancellation type says (see the module
        docstring). False if its outcome is already known."""
        if self._result.done():
            return False
        if self._cancel_requested:
            return True
        self._cancel_requested = True
        kind = self.cancellation_type
        if kind is not ChildWorkflowCancellationType.ABANDON:
            request = _Children.of(self._instance).request(
                Command(
                    CommandType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
                    {
                        "namespace": "",
                        "workflow_id": self.id,
                        "run_id": self.run_id,
                        "child_workflow_only": True,
                    },
                )
            )
            request.add_done_callback(_retrieve)
            if kind is ChildWorkflowCancellationType.WAIT_CANCELLATION_REQUESTED:
                request.add_done_callback(lambda _: self._resolve_cancelled())
                return True
            if kind is ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED:
                return True  # the child's close event resolves it
        self._resolve_cancelled()
        return True

    def _resolve_cancelled(self) -> None:
        if self._result.done():
            return
        self._result.set_exception(
            ChildWorkflowError(
                f"child workflow {self.id!r} ended: child workflow cancelled",
                namespace=self._instance.namespace,
                workflow_id=self.id,
                run_id=self.run_id,
                workflow_type=self.workflow_type,
                initiated_event_id=0,
                started_event_id=self.started_event_id,
                retry_state=None,
                cause=CanceledError("child workflow cancelled"),
            )
        )

    async def signal(
        self, signal: Any, *arguments: Any, arg: Any = ARG_UNSET, args: Sequence[Any] | None = None
    ) -> None:
        values = positional_args(arguments, args, "signal()", arg)
        await ExternalWorkflowHandle(self.id, self.run_id, child_only=True).signal(signal, *values)


async def _uncancellable(future: asyncio.Future[Any]) -> None:
    """Waits for ``future`` whatever cancellations the awaiting task receives meanwhile."""
    while True:
        try:
            await asyncio.shield(future)
            return
        except asyncio.CancelledError:
            if future.done():
                future.result()
                return


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Marks a request's outcome as seen (a failed request to a child that already closed is fine)."""
    if not future.cancelled():
        future.exception()


class ExternalWorkflowHandle:
    """Another workflow, to signal or cancel from workflow code."""

    def __init__(self, workflow_id: str, run_id: str = "", *, child_only: bool = False) -> None:
        self.id = workflow_id
        self.run_id = run_id
        self._child_only = child_only

    async def signal(
        self, signal: Any, *arguments: Any, arg: Any = ARG_UNSET, args: Sequence[Any] | None = None
    ) -> None:
        from cadenza.sdk._runtime.definitions import _SIGNAL_MARK

        args = positional_args(arguments, args, "signal()", arg)
        inst = _instance("signalling another workflow")
        inst.check_can_command("signal another workflow")
        name = signal if isinstance(signal, str) else getattr(signal, _SIGNAL_MARK, None)
        if not name:
            raise ValueError(f"{signal!r} is not a signal name or a @workflow.signal method")
        attributes = {
            "namespace": "",
            "workflow_id": self.id,
            "run_id": self.run_id,
            "signal_name": name,
            "input": inst.converter.to_payloads(args) if args else None,
            "child_workflow_only": self._child_only,
        }

        async def send(headers: Mapping[str, Any] | None = None) -> None:
            if headers:
                attributes["header"] = plain_headers(headers)
            command = Command(CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION, attributes)
            await _Children.of(inst).request(command)

        outbound = inst._outbound
        if outbound is None:
            await send()
        elif self._child_only:
            child = SignalChildWorkflowInput(name, args, self.id, {})
            child.send = lambda: send(child.headers)
            await outbound.signal_child_workflow(child)
        else:
            external = SignalExternalWorkflowInput(name, args, inst.info.namespace, self.id, self.run_id, {})
            external.send = lambda: send(external.headers)
            await outbound.signal_external_workflow(external)

    async def cancel(self) -> None:
        inst = _instance("cancelling another workflow")
        inst.check_can_command("cancel another workflow")
        await _Children.of(inst).request(
            Command(
                CommandType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
                {
                    "namespace": "",
                    "workflow_id": self.id,
                    "run_id": self.run_id,
                    "child_workflow_only": self._child_only,
                },
            )
        )


def get_external_workflow_handle_for(
    workflow: Any, workflow_id: str, *, run_id: str | None = None
) -> ExternalWorkflowHandle:
    """``get_external_workflow_handle`` naming the workflow's run method too (temporalio's typed
    spelling; the method only types the handle)."""
    return get_external_workflow_handle(workflow_id, run_id=run_id or "")


def get_external_workflow_handle(workflow_id: str, *, run_id: str = "") -> ExternalWorkflowHandle:
    return ExternalWorkflowHandle(workflow_id, run_id)


async def start_child_workflow(
    workflow: Any,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    id: str | None = None,
    task_queue: str | None = None,
    execution_timeout: timedelta | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    retry_policy: RetryPolicy | None = None,
    cron_schedule: str = "",
    memo: dict[str, Any] | None = None,
    search_attributes: Any = None,
    result_type: Any = None,
    cancellation_type: ChildWorkflowCancellationType = _WAIT_COMPLETED,
) -> ChildWorkflowHandle:
    """Starts a child workflow; returns once the child is running (raises if it could not start).

    Without ``id`` the child gets a UUID drawn from the workflow's seeded random (``workflow.uuid4()``,
    as temporalio does), so every replay of the parent derives the same id."""
    inst = _instance("starting a child workflow")
    inst.check_can_command("start a child workflow")
    args = positional_args(arguments, args, "workflow.start_child_workflow()", arg)
    name, ret = _type_name(workflow)
    if id is None:
        id = str(uuid.UUID(int=inst.random.getrandbits(128), version=4))  # what workflow.uuid4() draws
    conv = inst.converter
    handle = ChildWorkflowHandle(inst, id, name, result_type or ret, cancellation_type)
    children = _Children.of(inst)

    def on_recorded(event: HistoryEvent) -> None:
        children.by_initiated[event.event_id] = handle

    queue = task_queue or inst.info.task_queue
    attributes: dict[str, Any] = {
        "namespace": "",
        "workflow_id": id,
        "workflow_type": name,
        "task_queue": queue,
        "input": conv.to_payloads(args) if args else None,
        "workflow_execution_timeout_ms": timedelta_to_ms(execution_timeout, "execution_timeout"),
        "workflow_run_timeout_ms": timedelta_to_ms(run_timeout, "run_timeout"),
        "workflow_task_timeout_ms": timedelta_to_ms(task_timeout, "task_timeout"),
        "parent_close_policy": ParentClosePolicy(parent_close_policy).value,
        "workflow_id_reuse_policy": WorkflowIDReusePolicy(id_reuse_policy).value,
        "retry_policy": retry_policy.to_dict() if retry_policy else None,
        "cron_schedule": cron_schedule or None,
        "memo": {k: conv.to_payload(v) for k, v in (memo or {}).items()},
        "search_attributes": _search_attribute_payloads(conv, search_attributes) or {},
    }

    async def start(headers: Mapping[str, Any] | None = None) -> ChildWorkflowHandle:
        if headers:
            attributes["header"] = plain_headers(headers)
        record = inst.commands.add(
            Command(CommandType.START_CHILD_WORKFLOW_EXECUTION, attributes), on_recorded
        )
        try:
            await asyncio.shield(handle._started)
        except asyncio.CancelledError:
            if not record.sent:
                record.removed = True  # never left this task: nothing started, nothing to cancel
                raise
            # The start is under way (or done): once the child runs, cancel it as its type says,
            # and end with the outcome that gives (a ChildWorkflowError whose cause is the
            # cancellation).
            await _uncancellable(handle._started)
            handle.cancel()
            await handle._wait()
        return handle

    outbound = inst._outbound
    if outbound is None:
        return await start()
    intercepted = StartChildWorkflowInput(name, args, id, queue, {})
    intercepted.start = lambda: start(intercepted.headers)
    return await outbound.start_child_workflow(intercepted)  # type: ignore[no-any-return]


async def execute_child_workflow(workflow: Any, *arguments: Any, id: str | None = None, **kwargs: Any) -> Any:
    """Starts a child workflow and waits for its result (``id``: as ``start_child_workflow``)."""
    handle = await start_child_workflow(workflow, *arguments, id=id, **kwargs)
    return await handle.result()


def _search_attribute_payloads(conv: Any, values: Any) -> dict[str, Any] | None:
    """Payloads of search attributes given as a dict (encoded as any value) or typed."""
    if values is None:
        return None
    if isinstance(values, dict):
        return {k: conv.to_payload(v) for k, v in values.items()}
    from cadenza.sdk._runtime.info import encode_search_attributes
    from cadenza.sdk.search_attributes import search_attribute_values

    return encode_search_attributes(*search_attribute_values(values))


def continue_as_new(
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    workflow: Any = None,
    task_queue: str | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    memo: dict[str, Any] | None = None,
    search_attributes: Any = None,
    backoff: timedelta | None = None,
) -> NoReturn:
    """Closes this run and starts a fresh one of the same workflow id with ``args`` (carried state)
    and an empty history. Never returns."""
    inst = _instance("continue_as_new")
    args = positional_args(arguments, args, "workflow.continue_as_new()", arg)
    conv = inst.converter
    name = _type_name(workflow)[0] if workflow is not None else inst.defn.name
    attrs: dict[str, Any] = {
        "workflow_type": name,
        "task_queue": task_queue or inst.info.task_queue,
        "input": conv.to_payloads(args) if args else None,
        "workflow_run_timeout_ms": timedelta_to_ms(run_timeout, "run_timeout"),
        "workflow_task_timeout_ms": timedelta_to_ms(task_timeout, "task_timeout"),
        "backoff_start_interval_ms": timedelta_to_ms(backoff, "backoff"),
        "initiator": "Workflow",
    }
    if memo is not None:
        attrs["memo"] = {k: conv.to_payload(v) for k, v in memo.items()}
    if search_attributes is not None:
        attrs["search_attributes"] = _search_attribute_payloads(conv, search_attributes)
    outbound = inst._outbound
    if outbound is None:
        raise ContinueAsNewError(Command(CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION, attrs))
    intercepted = ContinueAsNewInput(name, args, attrs["task_queue"], {})

    def raise_() -> NoReturn:
        if intercepted.headers:  # else the next run keeps this run's header (the server's rule)
            attrs["header"] = plain_headers(intercepted.headers)
        raise ContinueAsNewError(Command(CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION, attrs))

    intercepted.raise_ = raise_
    outbound.continue_as_new(intercepted)
