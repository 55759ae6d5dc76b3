"""Workflow updates inside a run: validate, accept or reject, run the handler, report its outcome.

An update reaches the code with a workflow task (``PollWorkflowTaskResponse.updates``). Its
validator runs first, as a loop callback after those of the signals the task delivers; raising
rejects the update (a ``REJECT_WORKFLOW_UPDATE`` command, which history never records, so it is
kept out of the command queue that replay checks). Otherwise an ``ACCEPT_WORKFLOW_UPDATE`` command
is queued and the handler runs; its return value or ``FailureError`` becomes a
``COMPLETE_WORKFLOW_UPDATE`` command, whenever it finishes. Any other exception from a handler
fails the workflow task, as a bug in workflow code does.

On replay the updates of a task are read from the WorkflowExecutionUpdateAccepted events after its
WorkflowTaskCompleted and delivered at the same point, without their validators (as temporalio
does): the handlers run again exactly where they first ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk._runtime.commands import COMMAND_EVENT_TYPES
from cadenza.sdk._runtime.definitions import UpdateDefinition, _hints
from cadenza.sdk.exceptions import ApplicationError, FailureError
from cadenza.sdk.interceptor import HandleUpdateInput

if TYPE_CHECKING:
    from cadenza.schemas.service import UpdateRequest
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["WorkflowUpdates", "accepted_in_task"]


def accepted_in_task(events: Sequence[HistoryEvent], completed_index: int) -> list[HistoryEvent]:
    """The WorkflowExecutionUpdateAccepted events among the command events that follow the
    WorkflowTaskCompleted at ``completed_index``."""
    out = []
    for event in events[completed_index + 1 :]:
        if event.event_type not in COMMAND_EVENT_TYPES:
            break
        if event.event_type is EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            out.append(event)
    return out


class WorkflowUpdates:
    """The run's update handlers and the updates in flight."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._handlers: dict[str, UpdateDefinition] = dict(instance.defn.updates)
        self._seen: set[str] = set()
        self._rejections: list[Command] = []
        self.running = 0
        """Update handlers that have not finished (for ``all_handlers_finished``)."""

    def set_handler(
        self, name: str, handler: Callable[..., Any] | None, validator: Callable[..., Any] | None = None
    ) -> None:
        """Install (or, with None, remove) an update handler at run time."""
        if handler is None:
            self._handlers.pop(name, None)
            return
        params, ret = _hints(handler)
        self._handlers[name] = UpdateDefinition(
            name=name,
            fn=handler,
            is_async=asyncio.iscoroutinefunction(handler),
            param_types=params,
            return_type=ret,
            validator=validator,
            is_method=False,
        )

    # -- delivery ------------------------------------------------------------------------------------

    def deliver_requests(self, requests: Sequence[UpdateRequest]) -> None:
        """The updates a live task carries: validated, then accepted or rejected, in order."""
        for r in requests:
            self._instance.loop.call_soon(
                self._deliver, r.update_id, r.name, r.input, r.header, r.identity, False
            )

    def deliver_accepted(self, events: Sequence[HistoryEvent]) -> None:
        """On replay: the updates history shows the task accepted."""
        for e in events:
            a = e.attributes
            self._instance.loop.call_soon(
                self._deliver,
                a.get("update_id", ""),
                a.get("name", ""),
                a.get("input"),
                a.get("header") or {},
                a.get("identity", ""),
                True,
            )

    def take_rejections(self) -> list[Command]:
        out, self._rejections = self._rejections, []
        return out

    def _deliver(
        self,
        update_id: str,
        name: str,
        payloads: list[dict[str, Any]] | None,
        header: dict[str, Any],
        identity: str,
        replaying: bool,
    ) -> None:
        if update_id in self._seen:
            return  # delivered again (a task answered twice): it has its outcome already
        instance = self._instance
        defn = self._handlers.get(name)
        if defn is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            self._reject(
                update_id,
                ApplicationError(
                    f"Workflow type {instance.defn.name!r} has no update handler {name!r} (known: {known})",
                    type="UpdateNotFound",
                ),
            )
            return
        try:
            args = instance.converter.from_payloads(payloads, defn.param_types)
        except Exception as exc:
            self._reject(update_id, exc)
            return
        inbound = instance._inbound
        if defn.validator is not None and not replaying:
            validator = defn.validator
            try:
                if inbound is not None:
                    call = _bound(instance, validator, defn.is_method)
                    inbound.handle_update_validator(HandleUpdateInput(update_id, name, args, header, call))
                    outcome = None
                elif defn.is_method:
                    outcome = validator(instance.workflow_object(), *args)
                else:
                    outcome = validator(*args)
                if asyncio.iscoroutine(outcome):
                    outcome.close()
                    raise TypeError("update validators must not be async")
            except Exception as exc:
                self._reject(update_id, exc)
                return
        self._seen.add(update_id)
        instance.commands.add(
            Command(
                CommandType.ACCEPT_WORKFLOW_UPDATE,
                {
                    "update_id": update_id,
                    "name": name,
                    "input": payloads,
                    "header": header,
                    "identity": identity,
                },
            )
        )
        self.running += 1
        try:
            if inbound is not None:
                # Through the interceptors: always a task, as their hook is a coroutine.
                call = _bound(instance, defn.fn, defn.is_method)
                result = inbound.handle_update_handler(HandleUpdateInput(update_id, name, args, header, call))
            elif defn.is_method:
                result = defn.fn(instance.workflow_object(), *args)
            else:
                result = defn.fn(*args)
        except BaseException as exc:
            self._finish(update_id, defn, error=exc)
            return
        if asyncio.iscoroutine(result):
            task = instance.loop.create_task(result, name=f"update handler {name!r} ({update_id})")
            task.add_done_callback(lambda t: self._task_done(update_id, defn, t))
        else:
            self._finish(update_id, defn, result=result)

    def _reject(self, update_id: str, exc: BaseException) -> None:
        failure = self._instance.converter.exception_to_failure(exc)
        self._rejections.append(
            Command(CommandType.REJECT_WORKFLOW_UPDATE, {"update_id": update_id, "failure": failure})
        )

    def _task_done(self, update_id: str, defn: UpdateDefinition, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._finish(update_id, defn, error=asyncio.CancelledError())
        elif task.exception() is not None:
            self._finish(update_id, defn, error=task.exception())
        else:
            self._finish(update_id, defn, result=task.result())

    def _finish(
        self,
        update_id: str,
        defn: UpdateDefinition,
        *,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        self.running -= 1
        instance = self._instance
        attributes: dict[str, Any] = {"update_id": update_id, "result": None, "failure": None}
        if error is None:
            try:
                attributes["result"] = instance.converter.to_payloads([result])
            except Exception as exc:
                instance.on_callback_error(exc)
                return
        elif isinstance(error, FailureError | asyncio.CancelledError):
            # As temporalio: an ApplicationError (or cancellation) fails the update, not the run.
            attributes["failure"] = instance.converter.exception_to_failure(error)
        else:
            instance.on_callback_error(error)
            return
        instance.commands.add(Command(CommandType.COMPLETE_WORKFLOW_UPDATE, attributes))


def _bound(
    instance: WorkflowInstance, fn: Callable[..., Any], is_method: bool
) -> Callable[[Sequence[Any]], Any]:
    """A validator or handler called with decoded arguments: the end of an interceptor chain."""
    if is_method:
        return lambda args: fn(instance.workflow_object(), *args)
    return lambda args: fn(*args)
