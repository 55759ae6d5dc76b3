"""One workflow run in a worker: applies history, runs workflow code, returns commands.

``activate`` walks a slice of history. Resolving events (activity results, timer fires, signals,
cancel requests) are applied as they come; at each WorkflowTaskStarted the code runs until nothing
is ready, exactly as it ran when that task was first processed. A task followed by
WorkflowTaskCompleted is a replay: its commands must match the command events recorded after the
completion. A task followed by WorkflowTaskFailed/TimedOut never happened and is skipped. The last
WorkflowTaskStarted of the slice is the task being processed now: its commands are returned.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cadenza.schemas.events import (
    CLOSE_EVENT_TYPES,
    Command,
    CommandType,
    EventType,
    HistoryEvent,
)
from cadenza.sdk._runtime.activities import Activities, ActivityHandle
from cadenza.sdk._runtime.commands import COMMAND_EVENT_TYPES, CommandQueue
from cadenza.sdk._runtime.definitions import QueryDefinition, SignalDefinition, WorkflowDefinition, _hints
from cadenza.sdk._runtime.info import EPOCH, WorkflowInfo, info_from_started
from cadenza.sdk._runtime.loop import WorkflowEventLoop, WorkflowTimerHandle, task_stacks
from cadenza.sdk._runtime.timers import Timers
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.exceptions import (
    ActivityError,
    CanceledError,
    ChildWorkflowError,
    FailureError,
    QueryFailedError,
    WorkflowTaskError,
)

__all__ = ["STACK_TRACE_QUERY", "StaleInstanceError", "WorkflowInstance", "current_instance", "in_workflow"]

STACK_TRACE_QUERY = "__stack_trace"
"""Built-in query (as in Temporal): the stacks of the run's waiting tasks, unless the workflow defines it."""
_get_running_loop = asyncio.events._get_running_loop
_set_running_loop = asyncio.events._set_running_loop

_WFT_STARTED = EventType.WORKFLOW_TASK_STARTED
_WFT_COMPLETED = EventType.WORKFLOW_TASK_COMPLETED
_WFT_FAILED = EventType.WORKFLOW_TASK_FAILED
_WFT_TIMED_OUT = EventType.WORKFLOW_TASK_TIMED_OUT


class StaleInstanceError(RuntimeError):
    """The task this cached instance last answered did not complete; its state is no longer history's.

    The worker should drop the instance and replay the whole history in a new one.
    """


def current_instance(what: str = "This") -> WorkflowInstance:
    """The instance whose code is running now; ``RuntimeError`` outside workflow code."""
    loop = _get_running_loop()
    if isinstance(loop, WorkflowEventLoop):
        host = loop.host
        if isinstance(host, WorkflowInstance):
            return host
    raise RuntimeError(f"{what} can only be used in workflow code")


def in_workflow() -> bool:
    """True while workflow code (or a query handler) runs."""
    loop = _get_running_loop()
    return isinstance(loop, WorkflowEventLoop) and isinstance(loop.host, WorkflowInstance)


def is_cancelled_exception(exc: BaseException) -> bool:
    """Cancellation, directly or as the cause of an activity/child error (as temporalio decides)."""
    if isinstance(exc, asyncio.CancelledError | CanceledError):
        return True
    return isinstance(exc, ActivityError | ChildWorkflowError) and isinstance(exc.cause, CanceledError)


class WorkflowInstance:
    """The state of one workflow run inside a worker, advanced one history slice at a time.

    The worker creates one per run (``activate`` with the whole history) and may keep it to feed it
    only the new events of later tasks. Features beyond activities, timers, signals and queries plug
    in through two points: ``commands.add(command, on_recorded)`` queues a command (its matching
    against history on replay is automatic once its key fields are listed in ``commands.py``), and
    ``appliers[event_type]`` resolves what the engine reports back (markers for ``patched``,
    child-workflow events, ...).
    """

    def __init__(
        self,
        defn: WorkflowDefinition,
        *,
        namespace: str,
        workflow_id: str,
        run_id: str,
        converter: DataConverter,
    ) -> None:
        self.defn = defn
        self.namespace = namespace
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.converter = converter
        # The I/O methods asyncio declares abstract are supplied as raising stubs after the class body.
        self.loop = WorkflowEventLoop(self)  # type: ignore[abstract]
        self.commands = CommandQueue()
        self.activities = Activities(self)
        self.timers = Timers(self.loop, self.commands)
        self.random = random.Random(run_id)
        """Seeded from the run id: the same draws on every replay."""
        self.is_replaying = False
        """True while the code runs a task that history shows completed before."""
        self._info: WorkflowInfo | None = None
        self._now_us = 0
        self._last_event_id = 0
        self._object: Any = None
        self._main_task: asyncio.Task[Any] | None = None
        self._terminal: Command | None = None
        self._closed = False
        self._task_error: BaseException | None = None
        self._broken: BaseException | None = None
        self._awaiting_completion = False
        self._in_query = False
        self.cancel_requested = False
        """Set once the run's cancellation has been requested."""
        self._signals: dict[str, SignalDefinition] = dict(defn.signals)
        self._queries: dict[str, QueryDefinition] = dict(defn.queries)
        self._buffered_signals: dict[str, list[list[dict[str, Any]] | None]] = {}
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[Any]]] = []
        # One small method per kind of event; new features (markers, children) add entries here.
        self.appliers: dict[EventType, Callable[[HistoryEvent], None]] = {
            EventType.WORKFLOW_EXECUTION_STARTED: self._apply_started,
            EventType.ACTIVITY_TASK_COMPLETED: self.activities.apply_completed,
            EventType.ACTIVITY_TASK_FAILED: self.activities.apply_failed,
            EventType.ACTIVITY_TASK_TIMED_OUT: self.activities.apply_failed,
            EventType.ACTIVITY_TASK_CANCELED: self.activities.apply_canceled,
            EventType.TIMER_FIRED: self.timers.apply_fired,
            EventType.WORKFLOW_EXECUTION_SIGNALED: self._apply_signaled,
            EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED: self._apply_cancel_requested,
        }

    # -- the worker's interface ----------------------------------------------------------------------

    @property
    def last_event_id(self) -> int:
        """Id of the last event applied so far (0 before the first activation)."""
        return self._last_event_id

    @property
    def info(self) -> WorkflowInfo:
        """Facts about the run (available once WorkflowExecutionStarted has been applied)."""
        if self._info is None:
            raise RuntimeError("Workflow info is not known before WorkflowExecutionStarted is applied")
        return self._info

    def activate(self, events: Sequence[HistoryEvent]) -> list[Command]:
        """Apply the next slice of history and return the commands of its last workflow task.

        Raises :class:`WorkflowTaskError` (or its subclass ``NondeterminismError``) when the workflow
        code fails the task; the instance is unusable afterwards.
        """
        if self._broken is not None:
            raise RuntimeError(
                "This workflow instance failed an earlier activation and cannot be used; "
                "replay the history in a new instance"
            ) from self._broken
        if not events:
            return []
        expected = self._last_event_id + 1
        if events[0].event_id != expected:
            raise ValueError(f"History slice starts at event {events[0].event_id}, expected event {expected}")
        # The worker calls us from its own running loop: swap ours in for the step, then restore it.
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        try:
            return self._activate(events)
        except BaseException as exc:
            self._broken = exc
            raise
        finally:
            _set_running_loop(previous)

    def query(self, name: str, args: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Answer query ``name`` from the current state: payloads in, payloads out."""
        defn = self._queries.get(name)
        if defn is None and name == STACK_TRACE_QUERY:
            return self.converter.to_payloads([task_stacks(self.loop)])
        if defn is None:
            known = ", ".join(sorted(self._queries)) or "none"
            raise QueryFailedError(f"Workflow type {self.defn.name!r} has no query {name!r} (known: {known})")
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        self._in_query = True
        try:
            values = self.converter.from_payloads(args, defn.param_types)
            result = defn.fn(self._workflow_object(), *values) if defn.is_method else defn.fn(*values)
            if asyncio.iscoroutine(result):
                result.close()
                raise TypeError("query handlers must not be async")
            return self.converter.to_payloads([result])
        except QueryFailedError:
            raise
        except Exception as exc:
            raise QueryFailedError(f"Query {name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._in_query = False
            _set_running_loop(previous)

    # -- walking history -----------------------------------------------------------------------------

    def _activate(self, events: Sequence[HistoryEvent]) -> list[Command]:
        commands: list[Command] = []
        appliers = self.appliers
        queue = self.commands
        last_index = len(events) - 1
        for index, event in enumerate(events):
            event_type = event.event_type
            if event_type is _WFT_STARTED:
                if index == last_index:
                    commands = self._run_task(event, replaying=False)
                    self._awaiting_completion = True
                elif events[index + 1].event_type is _WFT_COMPLETED:
                    self._run_task(event, replaying=True)
                # Otherwise a failed or timed-out attempt: whatever it produced never happened.
            elif event_type in COMMAND_EVENT_TYPES:
                queue.match(event)
            elif event_type is _WFT_COMPLETED:
                self._awaiting_completion = False
            elif event_type is _WFT_FAILED or event_type is _WFT_TIMED_OUT:
                if self._awaiting_completion:
                    raise StaleInstanceError(
                        f"Workflow task started at event {event.event_id - 1} did not complete "
                        f"({event_type.pascal_name}); replay from event 1"
                    )
            else:
                applier = appliers.get(event_type)
                if applier is not None:
                    applier(event)
            self._last_event_id = event.event_id
        last = events[-1]
        if last.event_type in CLOSE_EVENT_TYPES:
            # A closed history (a replayer's): the code must not have produced more than history has.
            queue.check_all_recorded(last.event_id)
        return commands

    def _run_task(self, started: HistoryEvent, *, replaying: bool) -> list[Command]:
        self.commands.check_all_recorded(started.event_id)
        self._now_us = started.event_time
        self.is_replaying = replaying
        self._run_until_idle()
        if self._task_error is not None:
            raise WorkflowTaskError(self._task_error)
        terminal = None
        if self._terminal is not None and not self._closed:
            terminal = self._terminal
            self._closed = True
        return self.commands.finish_task(terminal)

    def _run_until_idle(self) -> None:
        loop = self.loop
        while True:
            loop.run_ready()
            if self._task_error is not None or not self._conditions or not self._check_conditions():
                return

    def _check_conditions(self) -> bool:
        fired = False
        remaining: list[tuple[Callable[[], bool], asyncio.Future[Any]]] = []
        for fn, future in self._conditions:
            if future.done():
                continue
            try:
                ok = fn()
            except BaseException as exc:
                self._task_error = exc
                return False
            if ok:
                future.set_result(True)
                fired = True
            else:
                remaining.append((fn, future))
        self._conditions = remaining
        return fired

    # -- appliers ------------------------------------------------------------------------------------

    def _apply_started(self, event: HistoryEvent) -> None:
        self._info = info_from_started(
            event,
            namespace=self.namespace,
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            default_type=self.defn.name,
            converter=self.converter,
        )
        self._now_us = event.event_time
        self._main_task = self.loop.create_task(self._run_main(event.attributes.get("input")))
        self._main_task.add_done_callback(self._on_main_done)

    def _apply_signaled(self, event: HistoryEvent) -> None:
        name = event.attributes.get("signal_name", "")
        payloads = event.attributes.get("input")
        defn = self._signals.get(name)
        if defn is None:
            self._buffered_signals.setdefault(name, []).append(payloads)
        else:
            self.loop.call_soon(self._invoke_signal, defn, payloads)

    def _apply_cancel_requested(self, event: HistoryEvent) -> None:
        self.cancel_requested = True
        if self._main_task is not None and not self._main_task.done():
            self._main_task.cancel()

    # -- running workflow code -----------------------------------------------------------------------

    def _workflow_object(self) -> Any:
        if self._object is None:
            self._object = self.defn.cls()
        return self._object

    async def _run_main(self, payloads: list[dict[str, Any]] | None) -> Any:
        if self.info.workflow_type != self.defn.name:
            raise TypeError(
                f"History is of workflow type {self.info.workflow_type!r}, "
                f"but the definition given is {self.defn.name!r}"
            )
        args = self.converter.from_payloads(payloads, self.defn.run_param_types)
        return await self.defn.run_fn(self._workflow_object(), *args)

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        if self._terminal is not None:
            return
        exc: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            try:
                result = self.converter.to_payloads([task.result()])
            except Exception as err:
                self._task_error = err
                return
            self._terminal = Command(CommandType.COMPLETE_WORKFLOW_EXECUTION, {"result": result})
        elif self.cancel_requested and is_cancelled_exception(exc):
            self._terminal = Command(CommandType.CANCEL_WORKFLOW_EXECUTION, {"details": None})
        elif isinstance(exc, FailureError):
            self._fail(exc)
        else:
            # A bug (TypeError, KeyError, ...): fail the task, not the workflow, so a fix can resume it.
            self._task_error = exc

    def _fail(self, exc: FailureError) -> None:
        self._terminal = Command(
            CommandType.FAIL_WORKFLOW_EXECUTION, {"failure": self.converter.exception_to_failure(exc)}
        )

    def _invoke_signal(self, defn: SignalDefinition, payloads: list[dict[str, Any]] | None) -> None:
        try:
            args = self.converter.from_payloads(payloads, defn.param_types)
            result = defn.fn(self._workflow_object(), *args) if defn.is_method else defn.fn(*args)
            if asyncio.iscoroutine(result):
                self.loop.create_task(result).add_done_callback(self._on_handler_done)
        except BaseException as exc:
            self._on_handler_error(exc)

    def _on_handler_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._on_handler_error(task.exception())  # type: ignore[arg-type]

    def _on_handler_error(self, exc: BaseException) -> None:
        if isinstance(exc, FailureError):
            # As in temporalio: a failure raised by a signal handler fails the workflow.
            if self._terminal is None:
                self._fail(exc)
        elif not isinstance(exc, asyncio.CancelledError):
            self._task_error = exc

    def on_callback_error(self, exc: BaseException) -> None:
        """A loop callback raised (part of the loop's host interface)."""
        self._task_error = exc

    # -- what workflow code calls --------------------------------------------------------------------

    def check_can_command(self, what: str) -> None:
        """Refuse to create commands from a query handler."""
        if self._in_query:
            raise RuntimeError(f"Cannot {what} in a query handler: queries must not change the workflow")

    def now_us(self) -> int:
        """Workflow time in microseconds: the start of the workflow task being processed."""
        return self._now_us

    def now(self) -> datetime:
        """Workflow time as an aware UTC datetime."""
        return EPOCH + timedelta(microseconds=self._now_us)

    def loop_time(self) -> float:
        """Workflow time in seconds (the loop's clock)."""
        return self._now_us / 1_000_000

    def start_activity(
        self, activity_type: str, attributes: dict[str, Any], result_type: Any, activity_id: str | None
    ) -> ActivityHandle[Any]:
        """Schedule an activity and return a handle (task) for it."""
        state = self.activities.schedule(activity_type, attributes, result_type, activity_id)
        return self.activities.start(state)

    async def execute_activity(
        self, activity_type: str, attributes: dict[str, Any], result_type: Any, activity_id: str | None
    ) -> Any:
        """Schedule an activity and wait for its result (no extra task, unlike start_activity)."""
        state = self.activities.schedule(activity_type, attributes, result_type, activity_id)
        return await self.activities.wait(state)

    def start_timer(self, delay: float, handle: WorkflowTimerHandle) -> None:
        """Turn a ``call_later`` handle into a durable timer (the loop's host interface)."""
        self.check_can_command("start a timer")
        self.timers.start(delay, handle)

    def cancel_timer(self, handle: WorkflowTimerHandle) -> None:
        """A timer's handle was cancelled before it fired (the loop's host interface)."""
        self.timers.cancel(handle)

    async def wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``fn()`` is true, checked whenever the code has nothing else to run."""
        if fn():
            return
        future: asyncio.Future[Any] = self.loop.create_future()
        self._conditions.append((fn, future))
        if timeout is None:
            await future
        else:
            await asyncio.wait_for(future, timeout)

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
        for payloads in self._buffered_signals.pop(name, []):
            self.loop.call_soon(self._invoke_signal, defn, payloads)

    def set_query_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Install (or, with None, remove) a query handler."""
        if handler is None:
            self._queries.pop(name, None)
            return
        params, ret = _hints(handler)
        self._queries[name] = QueryDefinition(
            name=name, fn=handler, param_types=params, return_type=ret, is_method=False
        )
