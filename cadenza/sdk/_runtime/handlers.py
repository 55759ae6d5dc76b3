"""Signal and query handlers of one workflow run: the class's, and those installed at run time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cadenza.schemas.events import HistoryEvent
from cadenza.sdk._runtime.definitions import DYNAMIC, QueryDefinition, SignalDefinition, _hints
from cadenza.sdk._runtime.loop import task_stacks
from cadenza.sdk.converter import RawValue
from cadenza.sdk.exceptions import FailureError, QueryFailedError
from cadenza.sdk.interceptor import HandleQueryInput, HandleSignalInput

if TYPE_CHECKING:
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["STACK_TRACE_QUERY", "Handlers"]

STACK_TRACE_QUERY = "__stack_trace"
"""Built-in query (as in Temporal): the stacks of the run's waiting tasks, unless the workflow defines it."""


class Handlers:
    """Delivers signals (buffering those without a handler) and answers queries."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        defn = instance.defn
        self._signals: dict[str, SignalDefinition] = dict(defn.signals)
        self._queries: dict[str, QueryDefinition] = dict(defn.queries)
        self._buffered: dict[str, list[tuple[list[dict[str, Any]] | None, dict[str, Any]]]] = {}
        self.running = 0
        """Async signal handlers that have not finished (for ``all_handlers_finished``)."""

    # -- signals -------------------------------------------------------------------------------------

    def apply_signaled(self, event: HistoryEvent) -> None:
        """WorkflowExecutionSignaled: run the handler in this activation, or buffer the signal."""
        name = event.attributes.get("signal_name", "")
        payloads = event.attributes.get("input")
        header = event.attributes.get("header") or {}
        defn = self._signals.get(name) or (self._signals.get(DYNAMIC) if name else None)
        if defn is None:
            self._buffered.setdefault(name, []).append((payloads, header))
        else:
            self._instance.loop.call_soon(self._invoke_signal, defn, payloads, name, header)

    def set_signal_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Install (or, with None, remove) a handler; signals buffered under ``name`` go to it."""
        if handler is None:
            self._signals.pop(name, None)
            return
        params, _ = _hints(handler)
        defn = SignalDefinition(
            name=name,
            fn=handler,
            is_async=asyncio.iscoroutinefunction(handler),
            param_types=params,
            is_method=False,
        )
        self._signals[name] = defn
        for buffered_name in [name] if name != DYNAMIC else list(self._buffered):
            for payloads, header in self._buffered.pop(buffered_name, []):
                self._instance.loop.call_soon(self._invoke_signal, defn, payloads, buffered_name, header)

    def _invoke_signal(
        self,
        defn: SignalDefinition,
        payloads: list[dict[str, Any]] | None,
        name: str = "",
        header: dict[str, Any] | None = None,
    ) -> None:
        instance = self._instance
        try:
            args = _args(instance, defn.name, name, payloads, defn.param_types)
            inbound = instance._inbound
            if inbound is not None:
                # Through the interceptors: always a task, as their hook is a coroutine.
                result = inbound.handle_signal(
                    HandleSignalInput(name or defn.name, args, header or {}, _handler_call(instance, defn))
                )
            elif defn.is_method:
                result = defn.fn(instance.workflow_object(), *args)
            else:
                result = defn.fn(*args)
            if asyncio.iscoroutine(result):
                task = instance.loop.create_task(result, name=f"signal handler {defn.name!r}")
                self.running += 1
                task.add_done_callback(self._on_handler_done)
        except BaseException as exc:
            self._on_handler_error(exc)

    def _on_handler_done(self, task: asyncio.Task[Any]) -> None:
        self.running -= 1
        if not task.cancelled() and task.exception() is not None:
            self._on_handler_error(task.exception())  # type: ignore[arg-type]

    def _on_handler_error(self, exc: BaseException) -> None:
        instance = self._instance
        if isinstance(exc, FailureError):
            # As in temporalio: a failure raised by a signal handler fails the workflow.
            instance.fail(exc)
        elif not isinstance(exc, asyncio.CancelledError):
            instance.on_callback_error(exc)

    # -- queries -------------------------------------------------------------------------------------

    def set_query_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Install (or, with None, remove) a query handler."""
        if handler is None:
            self._queries.pop(name, None)
            return
        params, ret = _hints(handler)
        self._queries[name] = QueryDefinition(
            name=name, fn=handler, param_types=params, return_type=ret, is_method=False
        )

    def query(
        self,
        name: str,
        args: list[dict[str, Any]] | None,
        *,
        query_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Answer query ``name`` (the workflow loop is the running loop): payloads in, payloads out."""
        instance = self._instance
        converter = instance.converter
        defn = self._queries.get(name)
        if defn is None and name == STACK_TRACE_QUERY:
            return converter.to_payloads([task_stacks(instance.loop)])
        if defn is None and name:
            defn = self._queries.get(DYNAMIC)
        if defn is None:
            known = ", ".join(sorted(self._queries)) or "none"
            raise QueryFailedError(
                f"Workflow type {instance.defn.name!r} has no query {name!r} (known: {known})"
            )
        try:
            values = _args(instance, defn.name, name, args, defn.param_types)
            inbound = instance._inbound
            if inbound is not None:
                result = inbound.handle_query(
                    HandleQueryInput(query_id, name, values, header or {}, _handler_call(instance, defn))
                )
            elif defn.is_method:
                result = defn.fn(instance.workflow_object(), *values)
            else:
                result = defn.fn(*values)
            if asyncio.iscoroutine(result):
                result = _run_at_once(result)
            return converter.to_payloads([result])
        except QueryFailedError:
            raise
        except FailureError as exc:
            # An ApplicationError raised on purpose: its message is what the caller sees, as in temporalio.
            raise QueryFailedError(exc.message) from exc
        except Exception as exc:
            raise QueryFailedError(f"Query {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _handler_call(instance: WorkflowInstance, defn: Any) -> Callable[[Sequence[Any]], Any]:
    """Calls a handler (a method of the workflow object or a function installed at run time) with
    decoded arguments: the end of an interceptor chain."""
    if defn.is_method:
        return lambda args: defn.fn(instance.workflow_object(), *args)
    return lambda args: defn.fn(*args)


def _run_at_once(coro: Any) -> Any:
    """The value of an ``async def`` query handler (deprecated in temporalio, still accepted) that
    never waits; one that waits cannot answer a query, which must not change the workflow."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise TypeError("an async query handler must not wait on anything: queries cannot wait")


def _args(
    instance: WorkflowInstance,
    handler_name: str,
    name: str,
    payloads: list[dict[str, Any]] | None,
    param_types: Any,
) -> list[Any]:
    """A handler's arguments; a dynamic one's are the name and the payloads as ``RawValue``s."""
    if handler_name != DYNAMIC:
        return instance.converter.from_payloads(payloads, param_types)
    raw = instance.converter.from_payloads(payloads, [RawValue] * len(payloads or []))
    return [name, raw]
